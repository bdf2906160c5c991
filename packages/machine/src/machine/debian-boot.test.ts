// The acceptance tests of the machine with the real, unmodified Debian bookworm kernels.
//
// Boot 1, amd64: the kernel boots in RingZero (x86-core's vCPU, our chipset, ACPI and PCI) to
// the initramfs's /init, which loads the virtio and FAT modules shipped in the same kernel
// package; Linux's own virtio_blk, virtio_net, virtio_console and virtio-rng drivers bind to
// our virtio-pci devices; the guest makes a FAT filesystem on /dev/vda, which is a qcow2 image
// (@ringzero/qcow2), mounts it, writes files (one of 384 KiB from /dev/urandom), prints their
// SHA-256, unmounts and powers off through ACPI S5. Then QEMU's qemu-img checks the image,
// dosfstools' fsck.vfat checks the filesystem and mtools reads the files back on the host.
//
// Boot 2, i386 (the second boot of the same disk): the 32-bit kernel, entered through its
// 32-bit protected-mode entry (the ELF vmlinux), boots to /init with its own virtio modules,
// mounts the filesystem the amd64 guest made and finds the files with the same SHA-256.
//
// The kernels are Debian's; we only decompress their payload on the host (the loader's fast
// path) so the guest skips the xz decompressor. Time is deterministic (derived from retired
// instructions), so a boot replays exactly and a slow host cannot starve Linux's watchdogs.
// QEMU TCG boots the same kernels and initramfs in guest.test.ts. RINGZERO_BOOT_LOG=FILE appends
// the guests' consoles to FILE as they come (a slow boot can be watched).
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { canPrepareGuests, prepareGuest } from '../node';
import { createQcow2File } from '@ringzero/qcow2/node';
import { buildDebianMachine, parseSums } from './debian-harness';

const canApt = canPrepareGuests();
const has = (tool: string, arg = '--version'): boolean => !spawnSync(tool, [arg]).error;
const hasXz = has('xz');
const hasQemuImg = has('qemu-img');
const hasFsck = has('fsck.vfat');
const hasMtools = has('mcopy');
if (!hasQemuImg) console.warn('SKIPPED: qemu-img not installed: the disk the guest wrote is not checked by QEMU');
if (!hasFsck) console.warn('SKIPPED: fsck.vfat not installed (Debian dosfstools): the guest-made filesystem is not checked on the host');
if (!hasMtools) console.warn('SKIPPED: mcopy not installed (Debian mtools): the guest-written files are not read back on the host');
if (!canApt) console.warn('SKIPPED: apt-get/dpkg-deb not available: the Debian kernels are not booted in RingZero');
else if (!hasXz) console.warn('SKIPPED: xz not installed (Debian xz-utils): the Debian kernel payload cannot be decompressed for the boot tests');

/** The files boot 1 writes, relative to the mount point. */
const FILES = ['hello.txt', 'random.bin', 'seq.txt', 'sub/copy.bin'];
/** A sector past the end of the 48 MiB filesystem, written raw through /dev/vda. */
const RAW_SECTOR = 120_000;
const MSG = 'written by the Debian guest through virtio_blk';
/**
 * Kernel parameters that skip work our devices play no part in, measured with QEMU -icount
 * shift=0: the crypto self-tests are 0.74 of the 1.76 G instructions the amd64 kernel runs to
 * /init and 3.1 of 4.7 for i386; the i386 ISA PnP probe 0.35 (amd64 has none and ignores it).
 * RINGZERO_FULL_BOOT=1 boots with the kernel's own command line (self-tests included).
 */
const FAST_CMDLINE = process.env.RINGZERO_FULL_BOOT === '1' ? 'console=ttyS0 panic=-1' : 'console=ttyS0 panic=-1 cryptomgr.notests noisapnp';
const NO_WARNINGS = /WARNING:|BUG:|Oops|Call Trace|soft lockup|Kernel panic/;

describe.skipIf(!canApt || !hasXz)('the Debian kernels in RingZero', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rz-debian-boot-'));
  const disk = join(dir, 'disk.qcow2');
  let sums1 = new Map<string, string>();
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('amd64 boots to /init; Linux binds our virtio blk/net/console/rng; the guest makes a FAT filesystem on the qcow2 disk and writes files that qemu-img, fsck.vfat and mtools accept; ACPI S5 power-off', async () => {
    const guest = prepareGuest({ arch: 'amd64' });
    await createQcow2File(disk, { size: 64 << 20 });
    const boot = await buildDebianMachine(guest, {
      dir,
      cmdline: FAST_CMDLINE,
      drives: [{ file: disk, format: 'qcow2' }],
      netdevs: [{ type: 'switch', id: 'n0' }],
      devices: [{ type: 'virtio-net', netdev: 'n0', mac: '52:54:00:12:34:56' }, { type: 'virtio-rng' }, { type: 'virtio-console' }],
      script: [
        'echo "MARKER uname=$(uname -r) arch=$(uname -m) modules=$(wc -l < /proc/modules) cpus=$(grep -c ^processor /proc/cpuinfo)"',
        'echo "VIRTIO $(ls /sys/bus/virtio/drivers/virtio_blk /sys/bus/virtio/drivers/virtio_net /sys/bus/virtio/drivers/virtio_console /sys/bus/virtio/drivers/virtio_rng | grep -c ^virtio)"',
        'echo "VDA $(cat /sys/block/vda/size)"',
        `echo "${MSG}" > /tmp/msg`,
        `dd if=/tmp/msg of=/dev/vda bs=512 seek=${RAW_SECTOR} count=1 conv=sync 2>/dev/null && sync`,
        `echo "READBACK $(dd if=/dev/vda bs=512 skip=${RAW_SECTOR} count=1 2>/dev/null | head -c ${MSG.length})"`,
        'echo "ETH0 $(cat /sys/class/net/eth0/address)"',
        'echo "HVC0 $(ls /dev/hvc0) HWRNG $(head -c 16 /dev/hwrng | wc -c)"',
        'mkdosfs -n RINGZERO /dev/vda 49152 >/dev/null && echo "MKFS ok"',
        'mount -t vfat /dev/vda /mnt && echo "MOUNT ok"',
        'echo "hello from the amd64 guest" > /mnt/hello.txt',
        'dd if=/dev/urandom of=/mnt/random.bin bs=1024 count=384 2>/dev/null',
        'seq 1 30000 > /mnt/seq.txt',
        'mkdir /mnt/sub && cp /mnt/random.bin /mnt/sub/copy.bin',
        `(cd /mnt && sha256sum ${FILES.join(' ')}) | sed 's/^/SUM1 /'`,
        'umount /mnt && echo "UMOUNT ok"',
      ].join('\n'),
    });
    const { text, stop } = await boot.run();
    expect(text, text.slice(-3000)).toContain('Run /init as init process');
    expect(text).toContain('ringzero-init: started');
    expect(text).toMatch(new RegExp(`MARKER uname=${guest.kernelVersion} arch=x86_64 modules=${guest.modules.length} cpus=1\\b`));
    expect(text).not.toContain('insmod'); // no module failed to load
    // Linux's drivers bound one device each: virtio_blk, virtio_net, virtio_console, virtio_rng.
    expect(text).toMatch(/^VIRTIO 4$/m);
    expect(text).toMatch(/^VDA 131072$/m);
    expect(text).toMatch(new RegExp(`^READBACK ${MSG}$`, 'm'));
    expect(text).toMatch(/^ETH0 52:54:00:12:34:56$/m);
    expect(text).toMatch(/^HVC0 \/dev\/hvc0 HWRNG 16$/m);
    expect(text).toMatch(/^MKFS ok$/m);
    expect(text).toMatch(/^MOUNT ok$/m);
    expect(text).toMatch(/^UMOUNT ok$/m);
    sums1 = parseSums(text, 'SUM1');
    expect([...sums1.keys()]).toEqual(FILES);
    expect(sums1.get('sub/copy.bin')).toBe(sums1.get('random.bin'));
    expect(text).toContain('reboot: Power down');
    expect(stop.reason).toBe('poweroff');
    // No warnings, oopses or lockups caused by our devices or CPU.
    expect(text).not.toMatch(NO_WARNINGS);
    // QEMU's, dosfstools' and mtools' judgement of the disk the guest wrote.
    if (!hasQemuImg) return;
    const check = spawnSync('qemu-img', ['check', disk], { encoding: 'utf8' });
    expect(check.status, check.stdout + check.stderr).toBe(0);
    const raw = join(dir, 'disk.raw');
    expect(spawnSync('qemu-img', ['convert', '-O', 'raw', disk, raw]).status).toBe(0);
    const sector = readFileSync(raw).subarray(RAW_SECTOR * 512, (RAW_SECTOR + 1) * 512);
    expect(sector.toString('latin1')).toBe(`${MSG}\n`.padEnd(512, '\0'));
    if (hasFsck) {
      // fsck.fat 4.2 objects to how busybox's mkdosfs stores the volume label (the same
      // under QEMU); every other finding would be a corruption by our disk path.
      const fsck = spawnSync('fsck.vfat', ['-n', raw], { encoding: 'utf8' });
      const findings = (fsck.stdout + fsck.stderr)
        .split('\n')
        .filter((l) => l.trim() !== '' && !/^fsck\.fat |label|^Leaving filesystem unchanged\.$|: \d+ files, \d+\/\d+ clusters$/i.test(l.trim()));
      expect(findings, fsck.stdout + fsck.stderr).toEqual([]);
      expect(fsck.stdout).toMatch(/: 6 files, \d+\/\d+ clusters/); // 4 files, sub/ and the label
    }
    if (hasMtools) {
      const env = { ...process.env, MTOOLS_SKIP_CHECK: '1' };
      const label = spawnSync('mlabel', ['-i', raw, '-s', '::'], { encoding: 'utf8', env });
      expect(label.stdout).toContain('RINGZERO');
      for (const f of FILES) {
        const r = spawnSync('mtype', ['-i', raw, `::${f}`], { env, maxBuffer: 4 << 20 });
        expect(r.status, `mtype ${f}: ${r.stderr?.toString()}`).toBe(0);
        expect(createHash('sha256').update(r.stdout).digest('hex'), f).toBe(sums1.get(f));
      }
    }
  }, 3_600_000);

  it('i386 boots to /init through the 32-bit entry with its virtio modules and, as a second boot of the same disk, finds the files with the same SHA-256', async () => {
    expect(sums1.size, 'the amd64 boot wrote no files').toBe(FILES.length);
    const guest = prepareGuest({ arch: 'i386' });
    const boot = await buildDebianMachine(guest, {
      dir,
      cmdline: FAST_CMDLINE,
      drives: [{ file: disk, format: 'qcow2' }],
      netdevs: [{ type: 'switch', id: 'n0' }],
      devices: [{ type: 'virtio-net', netdev: 'n0', mac: '52:54:00:12:34:57' }, { type: 'virtio-rng' }],
      script: [
        'echo "MARKER uname=$(uname -r) arch=$(uname -m) modules=$(wc -l < /proc/modules)"',
        'echo "VIRTIO $(ls /sys/bus/virtio/drivers/virtio_blk /sys/bus/virtio/drivers/virtio_net /sys/bus/virtio/drivers/virtio_rng | grep -c ^virtio)"',
        'echo "ETH0 $(cat /sys/class/net/eth0/address)"',
        'mount -t vfat -o ro /dev/vda /mnt && echo "MOUNT ok"',
        `(cd /mnt && sha256sum ${FILES.join(' ')}) | sed 's/^/SUM2 /'`,
        'umount /mnt',
      ].join('\n'),
    });
    const { text, stop } = await boot.run();
    expect(text, text.slice(-3000)).toContain('Run /init as init process');
    expect(text).toMatch(new RegExp(`MARKER uname=${guest.kernelVersion} arch=i686 modules=${guest.modules.length}\\b`));
    expect(text).not.toContain('insmod');
    expect(text).toMatch(/^VIRTIO 3$/m);
    expect(text).toMatch(/^ETH0 52:54:00:12:34:57$/m);
    expect(text).toMatch(/^MOUNT ok$/m);
    expect(parseSums(text, 'SUM2')).toEqual(sums1);
    expect(stop.reason).toBe('poweroff');
    expect(text).not.toMatch(NO_WARNINGS);
    if (hasQemuImg) {
      const check = spawnSync('qemu-img', ['check', disk], { encoding: 'utf8' });
      expect(check.status, check.stdout + check.stderr).toBe(0);
    }
  }, 3_600_000);
});
