#!/usr/bin/env node
// `npm run boot` (and `npm start`): boots the default Debian guest (bookworm amd64 kernel + a
// busybox initramfs with the virtio modules) in RingZero's own machine, with the serial
// console on this terminal (Ctrl-A X quits). On a terminal it ends in an interactive busybox
// shell; without one (CI, a pipe) /init prints what it found and powers the machine off.
// Extra arguments go to `ringzero` (e.g. -m 512M).
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const ringzero = join(root, 'packages/machine/bin/ringzero.js');
const { prepareGuest, writeInitramfs, extractVmlinux, GuestFixtureError } = await import('@ringzero/machine/node');

let guest;
try {
  guest = prepareGuest({ arch: 'amd64', log: (l) => process.stderr.write(`boot: ${l}\n`) });
} catch (err) {
  if (err instanceof GuestFixtureError) {
    process.stderr.write(`boot: ${err.message}\n`);
    process.exit(1);
  }
  throw err;
}
// The host-side fast path: decompress the bzImage payload once, so the guest skips its own
// (xz) decompressor, which would take most of the boot at interpreter speed.
const vmlinux = join(guest.dir, 'vmlinux');
if (!existsSync(vmlinux)) {
  process.stderr.write('boot: decompressing the kernel payload on the host (fast path)\n');
  writeFileSync(vmlinux, extractVmlinux(new Uint8Array(readFileSync(guest.kernel))).vmlinux);
}
const initrd = join(guest.dir, 'initramfs-shell.cpio.gz');
const interactive = process.stdin.isTTY === true;
const script = [
  'echo "RingZero: Debian $(uname -r) on $(uname -m) is up"',
  'echo "virtio drivers: $(ls /sys/bus/virtio/drivers | tr "\\n" " ")"',
  'grep MemTotal /proc/meminfo',
].join('\n');
writeInitramfs(guest, initrd, { script, poweroff: !interactive });
// Time follows retired instructions (-icount): an interpreter is slower than the hardware
// Linux expects, and wall-clock time would starve its watchdogs and calibrations.
// cryptomgr.notests skips the kernel's crypto self-tests (about 40% of the instructions to
// /init, RSA bignum code); the machine's acceptance tests and boot benchmark pass it too.
const args = ['-m', '256M', '-kernel', vmlinux, '-initrd', initrd, '-append', 'console=ttyS0 cryptomgr.notests', '-nographic', '-icount', 'shift=auto',
  ...process.argv.slice(2)];
process.stderr.write(`boot: ringzero ${args.join(' ')}\n`);
const r = spawnSync(process.execPath, [ringzero, ...args], { stdio: 'inherit' });
process.exit(r.status ?? 1);
