// The acceptance test of the machine: the unmodified Debian bookworm amd64 kernel boots in
// RingZero (x86-core's vCPU, our chipset, ACPI and PCI) to the initramfs's /init, which loads
// the virtio modules shipped in the same kernel package; Linux's own virtio_blk, virtio_net,
// virtio_console and virtio-rng drivers bind to our virtio-pci devices; the guest writes to
// /dev/vda, which is a qcow2 image (@ringzero/qcow2) that qemu-img then checks and reads; and
// /init powers off through ACPI S5. The kernel is Debian's real one; we only decompress its payload on the host (the
// loader's fast path) so the guest skips its xz decompressor. Time is deterministic (derived
// from retired instructions), so the boot replays exactly and a slow host cannot starve
// Linux's watchdogs. QEMU TCG boots the same kernel and initramfs in guest.test.ts.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { canPrepareGuests, extractVmlinux, nodeMachineHost, prepareGuest, writeInitramfs } from '../node';
import { createQcow2File } from '@ringzero/qcow2/node';
import { Machine } from './machine';

const canApt = canPrepareGuests();
const hasXz = !spawnSync('xz', ['--version']).error;
const hasQemuImg = !spawnSync('qemu-img', ['--version']).error;
if (!hasQemuImg) console.warn('SKIPPED: qemu-img not installed: the disk the guest wrote is not checked by QEMU');
if (!canApt) console.warn('SKIPPED: apt-get/dpkg-deb not available: the Debian kernel is not booted in RingZero');
else if (!hasXz) console.warn('SKIPPED: xz not installed (Debian xz-utils): the Debian kernel payload cannot be decompressed for the boot test');

describe.skipIf(!canApt || !hasXz)('the Debian amd64 kernel in RingZero', () => {
  it('boots to /init; Linux binds our virtio blk/net/console/rng; the guest writes a qcow2 disk qemu-img accepts; ACPI S5 power-off', async () => {
    const guest = prepareGuest({ arch: 'amd64' });
    const dir = mkdtempSync(join(tmpdir(), 'rz-debian-boot-'));
    try {
      const disk = join(dir, 'disk.qcow2');
      await createQcow2File(disk, { size: 64 << 20 });
      const initrd = writeInitramfs(guest, join(dir, 'initrd.gz'), {
        script: [
          'echo "MARKER uname=$(uname -r) arch=$(uname -m) modules=$(wc -l < /proc/modules) cpus=$(grep -c ^processor /proc/cpuinfo)"',
          'echo "VIRTIO $(ls /sys/bus/virtio/drivers/virtio_blk /sys/bus/virtio/drivers/virtio_net /sys/bus/virtio/drivers/virtio_console /sys/bus/virtio/drivers/virtio_rng | grep -c ^virtio)"',
          'echo "VDA $(cat /sys/block/vda/size)"',
          'echo "written by the Debian guest through virtio_blk" > /tmp/msg',
          'dd if=/tmp/msg of=/dev/vda bs=512 seek=8 count=1 conv=sync 2>/dev/null && sync',
          'echo "READBACK $(dd if=/dev/vda bs=512 skip=8 count=1 2>/dev/null | head -c 46)"',
          'echo "ETH0 $(cat /sys/class/net/eth0/address)"',
          'echo "HVC0 $(ls /dev/hvc0) HWRNG $(head -c 16 /dev/hwrng | wc -c)"',
        ].join('\n'),
      });
      const vmlinux = extractVmlinux(new Uint8Array(readFileSync(guest.kernel))).vmlinux;
      const machine = await Machine.build(
        {
          memory: 256 << 20,
          kernel: vmlinux,
          initrd: new Uint8Array(readFileSync(initrd)),
          cmdline: 'console=ttyS0 panic=-1',
          time: 'deterministic',
          drives: [{ file: disk, format: 'qcow2' }],
          netdevs: [{ type: 'switch', id: 'n0' }],
          devices: [{ type: 'virtio-net', netdev: 'n0', mac: '52:54:00:12:34:56' }, { type: 'virtio-rng' }, { type: 'virtio-console' }],
        },
        { host: nodeMachineHost() },
      );
      let log = '';
      machine.on('serial', (b) => (log += Buffer.from(b).toString('latin1')));
      const info = await machine.start();
      const text = log.replace(/\r/g, '');
      expect(text, text.slice(-3000)).toContain('Run /init as init process');
      expect(text).toContain('ringzero-init: started');
      expect(text).toMatch(new RegExp(`MARKER uname=${guest.kernelVersion} arch=x86_64 modules=${guest.modules.length} cpus=1\\b`));
      expect(text).not.toContain('insmod'); // no module failed to load
      // Linux's drivers bound one device each: virtio_blk, virtio_net, virtio_console, virtio_rng.
      expect(text).toMatch(/^VIRTIO 4$/m);
      expect(text).toMatch(/^VDA 131072$/m);
      expect(text).toMatch(/^READBACK written by the Debian guest through virtio_blk$/m);
      expect(text).toMatch(/^ETH0 52:54:00:12:34:56$/m);
      expect(text).toMatch(/^HVC0 \/dev\/hvc0 HWRNG 16$/m);
      expect(text).toContain('reboot: Power down');
      expect(info.reason).toBe('poweroff');
      // No warnings, oopses or lockups caused by our devices or CPU.
      expect(text).not.toMatch(/WARNING:|BUG:|Oops|Call Trace|soft lockup|Kernel panic/);
      // QEMU's own tools judge the disk the guest wrote.
      if (hasQemuImg) {
        const check = spawnSync('qemu-img', ['check', disk], { encoding: 'utf8' });
        expect(check.status, check.stdout + check.stderr).toBe(0);
        const raw = join(dir, 'disk.raw');
        expect(spawnSync('qemu-img', ['convert', '-O', 'raw', disk, raw]).status).toBe(0);
        const sector = readFileSync(raw).subarray(8 * 512, 9 * 512);
        expect(sector.toString('latin1')).toBe('written by the Debian guest through virtio_blk\n'.padEnd(512, '\0'));
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 1_800_000);
});
