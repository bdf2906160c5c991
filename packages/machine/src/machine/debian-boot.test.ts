// The acceptance test of the machine: the unmodified Debian bookworm amd64 kernel boots in
// RingZero (x86-core's vCPU, our chipset, ACPI and PCI) to the initramfs's /init, which loads
// the virtio modules shipped in the same kernel package, runs a script and powers off through
// ACPI S5. The kernel is Debian's real one; we only decompress its payload on the host (the
// loader's fast path) so the guest skips its xz decompressor. Time is deterministic (derived
// from retired instructions), so the boot replays exactly and a slow host cannot starve
// Linux's watchdogs. QEMU TCG boots the same kernel and initramfs in guest.test.ts.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { canPrepareGuests, extractVmlinux, prepareGuest, writeInitramfs } from '../node';
import { Machine } from './machine';

const canApt = canPrepareGuests();
const hasXz = !spawnSync('xz', ['--version']).error;
if (!canApt) console.warn('SKIPPED: apt-get/dpkg-deb not available: the Debian kernel is not booted in RingZero');
else if (!hasXz) console.warn('SKIPPED: xz not installed (Debian xz-utils): the Debian kernel payload cannot be decompressed for the boot test');

describe.skipIf(!canApt || !hasXz)('the Debian amd64 kernel in RingZero', () => {
  it('boots to /init, loads every virtio module, runs the script and powers off via ACPI S5', async () => {
    const guest = prepareGuest({ arch: 'amd64' });
    const dir = mkdtempSync(join(tmpdir(), 'rz-debian-boot-'));
    try {
      const initrd = writeInitramfs(guest, join(dir, 'initrd.gz'), {
        script: 'echo "MARKER uname=$(uname -r) arch=$(uname -m) modules=$(wc -l < /proc/modules) cpus=$(grep -c ^processor /proc/cpuinfo)"',
      });
      const vmlinux = extractVmlinux(new Uint8Array(readFileSync(guest.kernel))).vmlinux;
      const machine = await Machine.build(
        { memory: 256 << 20, kernel: vmlinux, initrd: new Uint8Array(readFileSync(initrd)), cmdline: 'console=ttyS0 panic=-1', time: 'deterministic' },
        {},
      );
      let log = '';
      machine.on('serial', (b) => (log += Buffer.from(b).toString('latin1')));
      const info = await machine.start();
      const text = log.replace(/\r/g, '');
      expect(text, text.slice(-3000)).toContain('Run /init as init process');
      expect(text).toContain('ringzero-init: started');
      expect(text).toMatch(new RegExp(`MARKER uname=${guest.kernelVersion} arch=x86_64 modules=${guest.modules.length} cpus=1\\b`));
      expect(text).not.toContain('insmod'); // no module failed to load
      expect(text).toContain('reboot: Power down');
      expect(info.reason).toBe('poweroff');
      // No warnings, oopses or lockups caused by our devices or CPU.
      expect(text).not.toMatch(/WARNING:|BUG:|Oops|Call Trace|soft lockup|Kernel panic/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 1_800_000);
});
