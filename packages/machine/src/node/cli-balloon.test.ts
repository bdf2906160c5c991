// `-device virtio-balloon-pci` with QEMU's property names.
import { describe, expect, it } from 'vitest';
import { validateMachineDescription } from '../machine/config';
import { CliError, parseBootArgs } from './cli-args';

const boot = (...device: string[]): ReturnType<typeof parseBootArgs> => parseBootArgs(['-kernel', 'vmlinuz', ...device.flatMap((d) => ['-device', d])]);

describe('-device virtio-balloon-pci', () => {
  it('maps QEMU’s properties onto the balloon description', () => {
    expect(boot('virtio-balloon-pci').description.devices).toEqual([{ type: 'virtio-balloon' }]);
    const d = boot('virtio-balloon-pci,id=b0,deflate-on-oom=on,free-page-reporting=on,free-page-hint=off,page-poison=off,guest-stats-polling-interval=10').description;
    expect(d.devices).toEqual([{ type: 'virtio-balloon', deflateOnOom: true, freePageReporting: true, freePageHint: false, pagePoison: false, statsPollingInterval: 10 }]);
    expect(() => validateMachineDescription(d)).not.toThrow();
    expect(boot('virtio-balloon').description.devices).toEqual([{ type: 'virtio-balloon' }]);
  });

  it('rejects bad values, a second balloon and balloon properties on other devices', () => {
    const bad: [string[], RegExp][] = [
      [['virtio-balloon-pci,deflate-on-oom=maybe'], /deflate-on-oom=maybe must be on or off/],
      [['virtio-balloon-pci,guest-stats-polling-interval=-1'], /guest-stats-polling-interval=-1/],
      [['virtio-balloon-pci,guest-stats-polling-interval=1e3'], /whole number of seconds/],
      [['virtio-balloon-pci,size=1'], /unknown property 'size'/],
      [['virtio-balloon-pci', 'virtio-balloon-pci'], /only one balloon/],
      [['virtio-rng-pci,deflate-on-oom=on'], /virtio-rng-pci: unknown property 'deflate-on-oom'/],
    ];
    for (const [args, msg] of bad) {
      expect(() => boot(...args)).toThrow(CliError);
      expect(() => boot(...args)).toThrow(msg);
    }
  });
});
