// The peer for balloon-ksm-guest.test.ts: the same Debian kernel, initramfs and guest script
// under qemu-system-x86_64 (TCG) with QEMU's own virtio-balloon-pci, driven over QMP
// (`balloon`, `query-balloon`, `qom-get guest-stats`). It pins down the Linux behaviour the
// RingZero test expects of our device: the feature bits Linux 6.1 keeps, MemTotal dropping by
// exactly the inflated size without deflate-on-oom (and not at all with it, MemFree instead),
// and the stats queue carrying exactly /proc/meminfo's figures.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { canPrepareGuests, prepareGuest, writeInitramfs } from '../node';
import { BALLOON_GUEST_SCRIPT } from './balloon-guest.fixture';

const hasQemu = !spawnSync('qemu-system-x86_64', ['--version']).error;
const canApt = canPrepareGuests();
if (!hasQemu) console.warn('SKIPPED: qemu-system-x86_64 not installed: the balloon checks are not confirmed against QEMU + Linux');
else if (!canApt) console.warn('SKIPPED: apt-get/dpkg-deb not available: no Debian guest for the QEMU balloon peer');

const MiB = 1 << 20;

interface Qmp {
  cmd(execute: string, args?: object): Promise<{ return?: unknown; error?: unknown }>;
  close(): void;
}

async function qmpConnect(path: string): Promise<Qmp> {
  const sock: Socket = await new Promise((resolve, reject) => {
    const s = connect(path, () => resolve(s));
    s.on('error', reject);
  });
  let buf = '';
  const pending: ((v: { return?: unknown; error?: unknown }) => void)[] = [];
  sock.on('data', (d) => {
    buf += d.toString();
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      const msg = JSON.parse(buf.slice(0, i)) as { return?: unknown; error?: unknown; event?: string };
      buf = buf.slice(i + 1);
      if (msg.return !== undefined || msg.error !== undefined) pending.shift()?.(msg);
    }
  });
  const q: Qmp = {
    cmd: (execute, args) =>
      new Promise((resolve) => {
        pending.push(resolve);
        sock.write(JSON.stringify(args === undefined ? { execute } : { execute, arguments: args }) + '\n');
      }),
    close: () => sock.destroy(),
  };
  await q.cmd('qmp_capabilities');
  return q;
}

async function runQemu(initrd: string, kernel: string, dir: string, balloonOpts: string, inflateBy: number) {
  const sockPath = join(dir, `qmp-${balloonOpts.length}.sock`);
  const qemu = spawn(
    'qemu-system-x86_64',
    ['-accel', 'tcg', '-m', '256', '-kernel', kernel, '-initrd', initrd, '-append', 'console=ttyS0 panic=-1', '-nographic', '-no-reboot', '-device', `virtio-balloon-pci,id=b0${balloonOpts}`, '-qmp', `unix:${sockPath},server=on,wait=off`],
    { stdio: ['pipe', 'pipe', 'pipe'] },
  );
  let text = '';
  let exited = false;
  const waiters: (() => void)[] = [];
  const wake = (): void => void waiters.splice(0).forEach((w) => w());
  qemu.stdout.on('data', (b: Buffer) => {
    text += b.toString('latin1').replace(/\r/g, '');
    wake();
  });
  qemu.on('exit', () => {
    exited = true;
    wake();
  });
  const expectOut = async (re: RegExp, from = 0): Promise<RegExpExecArray> => {
    for (;;) {
      const m = re.exec(text.slice(from));
      if (m != null) return m;
      if (exited) throw new Error(`QEMU exited before ${re}:\n${text.slice(-2000)}`);
      await new Promise<void>((r) => waiters.push(r));
    }
  };
  const run = async (line: string): Promise<string> => {
    const from = text.length;
    qemu.stdin.write(line + '\n');
    const m = await expectOut(new RegExp(`^DONE ${line.split(' ')[0]}$`, 'm'), from);
    return text.slice(from, from + m.index);
  };
  const mem = async (tag: string): Promise<{ total: number; free: number; avail: number }> => {
    const m = new RegExp(`^MEM ${tag} (\\d+) (\\d+) (\\d+)$`, 'm').exec(await run(`mem ${tag}`))!;
    return { total: Number(m[1]) * 1024, free: Number(m[2]) * 1024, avail: Number(m[3]) * 1024 };
  };
  try {
    await expectOut(/^READY$/m);
    const features = /^FEATURES (.*)$/m.exec(text)![1];
    const qmp = await qmpConnect(sockPath);
    const waitActual = async (bytes: number): Promise<void> => {
      for (;;) {
        const r = (await qmp.cmd('query-balloon')).return as { actual: number };
        if (r.actual === bytes) return;
        await new Promise((res) => setTimeout(res, 50));
      }
    };
    await run('fill 16');
    const m0 = await mem('m0');
    await qmp.cmd('balloon', { value: 256 * MiB - inflateBy });
    await waitActual(256 * MiB - inflateBy);
    const m1 = await mem('m1');
    // Fresh stats: QEMU returns the stats buffer at each polling interval (wall seconds in QEMU).
    await qmp.cmd('qom-set', { path: '/machine/peripheral/b0', property: 'guest-stats-polling-interval', value: 1 });
    let stats: Record<string, number> = {};
    for (let last = -1; ; ) {
      const g = (await qmp.cmd('qom-get', { path: '/machine/peripheral/b0', property: 'guest-stats' })).return as { stats: Record<string, number>; 'last-update': number };
      if (last >= 0 && g['last-update'] !== last) {
        stats = g.stats;
        break;
      }
      last = g['last-update'];
      await new Promise((res) => setTimeout(res, 300));
    }
    await qmp.cmd('qom-set', { path: '/machine/peripheral/b0', property: 'guest-stats-polling-interval', value: 0 });
    const m2 = await mem('m2');
    await qmp.cmd('balloon', { value: 256 * MiB });
    await waitActual(256 * MiB);
    const m3 = await mem('m3');
    qmp.close();
    qemu.stdin.write('off\n');
    await expectOut(/reboot: Power down/);
    return { features, m0, m1, m2, m3, stats };
  } finally {
    qemu.kill();
  }
}

describe.skipIf(!hasQemu || !canApt)('Linux virtio_balloon under QEMU (the peer of the RingZero balloon test)', () => {
  it('no deflate-on-oom: MemTotal drops by exactly the inflation; stats equal /proc/meminfo; deflate restores', async () => {
    const guest = prepareGuest({ arch: 'amd64' });
    const dir = mkdtempSync(join(tmpdir(), 'rz-balloon-qemu-'));
    try {
      const initrd = writeInitramfs(guest, join(dir, 'initrd.gz'), { script: BALLOON_GUEST_SCRIPT });
      const a = await runQemu(initrd, guest.kernel, dir, '', 128 * MiB);
      expect([a.features[1], a.features[2], a.features[4], a.features[5]]).toEqual(['1', '0', '0', '0']); // STATS_VQ; PAGE_POISON dropped by Linux
      expect(a.m0.total - a.m1.total).toBe(128 * MiB);
      expect(a.m0.avail - a.m1.avail).toBeGreaterThan(120 * MiB);
      expect(a.stats['stat-total-memory']).toBe(a.m2.total);
      expect(Math.abs(a.stats['stat-free-memory'] - a.m2.free)).toBeLessThan(2 * MiB);
      expect(Math.abs(a.stats['stat-available-memory'] - a.m2.avail)).toBeLessThan(2 * MiB);
      expect(a.m3.total).toBe(a.m0.total);

      const b = await runQemu(initrd, guest.kernel, dir, ',deflate-on-oom=on,free-page-reporting=on', 64 * MiB);
      expect([b.features[1], b.features[2], b.features[5]]).toEqual(['1', '1', '1']);
      expect(b.m1.total).toBe(b.m0.total);
      expect(b.m0.free - b.m1.free).toBeGreaterThan(56 * MiB);
      expect(b.m0.free - b.m1.free).toBeLessThan(72 * MiB);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 300_000);
});
