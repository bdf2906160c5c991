// The guest fixtures are proven by the real peer: QEMU boots the Debian kernel with our
// initramfs, which loads the virtio modules, runs a script and powers off.
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GUEST_MODULES, canPrepareGuests, prepareGuest, writeInitramfs, type GuestArch } from '../node';

const qemu: Record<GuestArch, string> = { amd64: 'qemu-system-x86_64', i386: 'qemu-system-i386' };
const canApt = canPrepareGuests();
if (!canApt) console.warn('SKIPPED: apt-get/dpkg-deb not available: the Debian guest fixtures are not prepared or booted');

function hasQemu(arch: GuestArch): boolean {
  const ok = !spawnSync(qemu[arch], ['--version']).error;
  if (!ok) console.warn(`SKIPPED: ${qemu[arch]} not installed: the ${arch} fixture is not booted`);
  return ok;
}

describe.skipIf(!canApt).each(['amd64', 'i386'] as const)('%s guest fixture', (arch) => {
  it('has the kernel, busybox and every virtio module, in dependency order', () => {
    const g = prepareGuest({ arch });
    expect(existsSync(g.kernel) && existsSync(g.busybox) && existsSync(g.initramfs)).toBe(true);
    expect(g.kernelPackage).toMatch(arch === 'amd64' ? /^linux-image-6\.1\.0-\d+-amd64$/ : /^linux-image-6\.1\.0-\d+-686$/);
    const names = g.modules.map((m) => m.replace(/^.*\//, '').replace(/\.ko$/, ''));
    for (const m of GUEST_MODULES) expect(names).toContain(m);
    expect(names.indexOf('virtio_ring')).toBeLessThan(names.indexOf('virtio'));
    expect(names.indexOf('virtio')).toBeLessThan(names.indexOf('virtio_pci'));
    expect(names.indexOf('net_failover')).toBeLessThan(names.indexOf('virtio_net'));
  });

  it('writes an initramfs with a subset of the modules, their dependencies first', () => {
    const g = prepareGuest({ arch });
    const dir = mkdtempSync(join(tmpdir(), 'rz-guest-'));
    try {
      const cpio = gunzipSync(readFileSync(writeInitramfs(g, join(dir, 'i.gz'), { modules: ['virtio_net', 'vfat'] }))).toString('latin1');
      const loaded = [...cpio.matchAll(/^insmod (\S+)/gm)].map((m) => m[1].replace(/^.*\//, '').replace(/\.ko$/, ''));
      expect(loaded).toEqual(['virtio_ring', 'virtio', 'failover', 'net_failover', 'virtio_net', 'fat', 'vfat']);
      expect(() => writeInitramfs(g, join(dir, 'j.gz'), { modules: ['ext4'] })).toThrow(/module ext4 is not in the/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it.skipIf(!hasQemu(arch))('boots under QEMU TCG to the configured /init, which prints a marker and powers off', () => {
    const g = prepareGuest({ arch });
    const dir = mkdtempSync(join(tmpdir(), 'rz-guest-'));
    try {
      const initrd = writeInitramfs(g, join(dir, 'initrd.cpio.gz'), {
        script: 'echo "MARKER arch=$(uname -m) modules=$(wc -l < /proc/modules)"',
      });
      const r = spawnSync(
        qemu[arch],
        ['-accel', 'tcg', '-m', '512', '-kernel', g.kernel, '-initrd', initrd, '-append', 'console=ttyS0 panic=-1 quiet',
          '-nographic', '-no-reboot', '-monitor', 'none'],
        { encoding: 'utf8', timeout: 180_000 },
      );
      expect(r.error).toBeUndefined();
      expect(r.stdout).toContain('ringzero-init: started');
      expect(r.stdout).toMatch(new RegExp(`MARKER arch=${arch === 'amd64' ? 'x86_64' : 'i686'} modules=${g.modules.length}\\b`));
      expect(r.stdout).not.toContain('insmod');
      expect(r.stdout).toMatch(/reboot: Power down/);
      expect(r.status).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 300_000);
});
