// Builds an initramfs for the Debian bookworm kernel that runs a script of ours and powers off,
// then boots it. RingZero's machine cannot boot kernels yet, so QEMU does it here; once the
// machine package can, this example switches to it.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GuestFixtureError, canPrepareGuests, prepareGuest, writeInitramfs } from '@ringzero/machine/node';

const check = process.argv.includes('--check');
if (!canPrepareGuests() || spawnSync('qemu-system-x86_64', ['--version']).error) {
  console.warn('SKIPPED: needs apt-get/dpkg-deb and qemu-system-x86_64 (Debian package qemu-system-x86)');
  process.exit(0);
}
const dir = mkdtempSync(join(tmpdir(), 'rz-example-'));
try {
  const guest = prepareGuest({ arch: 'amd64', log: (l) => console.error(l) });
  const script = [
    'echo "Hello from $(uname -sr) on $(uname -m)"',
    'echo "virtio drivers: $(ls /sys/bus/virtio/drivers | tr "\\n" " ")"',
    'echo "memory: $(grep MemTotal /proc/meminfo)"',
  ].join('\n');
  const initrd = writeInitramfs(guest, join(dir, 'initrd.gz'), { script });
  console.log(`kernel ${guest.kernelPackage}, initramfs ${initrd}`);
  const r = spawnSync(
    'qemu-system-x86_64',
    ['-accel', 'tcg', '-m', '256', '-kernel', guest.kernel, '-initrd', initrd, '-append', 'console=ttyS0 quiet panic=-1',
      '-nographic', '-no-reboot', '-monitor', 'none'],
    { encoding: 'utf8', timeout: 180_000 },
  );
  const lines = r.stdout.split(/\r?\n/).filter((l) => /^(Hello|virtio drivers|memory)/.test(l));
  for (const l of lines) console.log(`  guest> ${l}`);
  if (check && (lines.length !== 3 || !lines[1]!.includes('virtio_net'))) {
    console.error(r.stdout.slice(-2000));
    throw new Error('the guest did not print what its script says');
  }
} catch (err) {
  if (err instanceof GuestFixtureError) {
    console.error(err.message);
    process.exit(1);
  }
  throw err;
} finally {
  rmSync(dir, { recursive: true, force: true });
}
