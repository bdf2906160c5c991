// Memory overcommit with the real Linux drivers: two unmodified Debian bookworm amd64 guests,
// booted from the same kernel and initramfs in one process on one HostMemory.
//
// Balloon (Linux's virtio_balloon on our virtio-balloon-pci): guest A (QEMU's defaults, no
// DEFLATE_ON_OOM) is inflated by 128 MiB: its MemTotal drops by exactly 128 MiB, the host frames
// behind the inflated pages go back to the pool, the stats queue delivers the same free and total
// memory /proc/meminfo shows, polled in guest seconds; deflating restores MemTotal and the pages
// are usable again (they get fresh zero frames). Guest B (deflate-on-oom, free-page-reporting)
// keeps its MemTotal and loses free memory instead, and reports its free blocks.
//
// KSM: both guests' RAM is registered as mergeable; after boot and full scans many pages are
// shared across the two VMs; guest A then writes (random data in a file): only A's copies break,
// B's memory reads exactly as before, and both guests go on computing correct results (the
// sha256 of their busybox binary, checked against the host's).
//
// Time is deterministic (from retired instructions): the host acts on serial markers and on
// the balloon's BALLOON_CHANGE event, never on wall time, and types commands on the guests'
// serial consoles.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { appendFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Ksm, xxh32 } from '@ringzero/balloon-ksm';
import { HostMemory, ZERO_FRAME } from '@ringzero/mmu-ept';
import { canPrepareGuests, extractVmlinux, prepareGuest, writeInitramfs } from '../node';
import type { DeviceDescription } from './config';
import { Machine, type MachineStopInfo } from './machine';
import { BALLOON_GUEST_SCRIPT as SCRIPT } from './balloon-guest.fixture';

const canApt = canPrepareGuests();
const hasXz = !spawnSync('xz', ['--version']).error;
if (!canApt) console.warn('SKIPPED: apt-get/dpkg-deb not available: the balloon and KSM checks with Linux guests do not run');
else if (!hasXz) console.warn('SKIPPED: xz not installed (Debian xz-utils): the balloon and KSM checks with Linux guests do not run');

/** RZ_PROGRESS_FILE=path: a long run writes its notes and both guests' consoles there as they come. */
const PROGRESS = process.env.RZ_PROGRESS_FILE;
function progress(text: string): void {
  if (PROGRESS !== undefined && PROGRESS !== '') appendFileSync(PROGRESS, text);
}

const MiB = 1 << 20;
const RAM = 256 * MiB;
const PAGE = 4096;



/** The serial console of one guest: waits for markers, types commands. */
class GuestConsole {
  text = '';
  private stopped: MachineStopInfo | null = null;
  private waiters: (() => void)[] = [];

  constructor(
    readonly name: string,
    readonly machine: Machine,
  ) {
    machine.on('serial', (b) => {
      const t = Buffer.from(b).toString('latin1').replace(/\r/g, '');
      this.text += t;
      progress(t.replace(/^/gm, `${name}| `));
      this.wake();
    });
    machine.on('stop', (info) => {
      this.stopped = info;
      this.wake();
    });
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** Resolves with the first match of `re` in the output after offset `from`. */
  async expect(re: RegExp, from = 0): Promise<RegExpExecArray> {
    for (;;) {
      const m = re.exec(this.text.slice(from));
      if (m != null) return m;
      if (this.stopped != null) throw new Error(`${this.name} stopped (${this.stopped.message}) before ${re}:\n${this.text.slice(-3000)}`);
      await new Promise<void>((r) => this.waiters.push(r));
    }
  }

  /** Types a command and waits for its DONE marker; returns what it printed. */
  async run(line: string): Promise<string> {
    const from = this.text.length;
    this.machine.sendSerial(Buffer.from(line + '\n', 'latin1'));
    const cmd = line.split(' ')[0];
    const m = await this.expect(new RegExp(`^DONE ${cmd}$`, 'm'), from);
    return this.text.slice(from, from + m.index);
  }

  async mem(tag: string): Promise<{ total: number; free: number; avail: number }> {
    const out = await this.run(`mem ${tag}`);
    const m = new RegExp(`^MEM ${tag} (\\d+) (\\d+) (\\d+)$`, 'm').exec(out);
    if (m == null) throw new Error(`${this.name}: no MEM line in ${JSON.stringify(out)}`);
    return { total: Number(m[1]) * 1024, free: Number(m[2]) * 1024, avail: Number(m[3]) * 1024 };
  }
}

/** Resolves when the guest's balloon driver reports `bytes` as its size. */
function balloonAt(m: Machine, bytes: number): Promise<void> {
  return new Promise((resolve, reject) => {
    if (m.balloon!.query().actual === bytes) return resolve();
    const offs = [
      m.on('balloon-change', (b) => {
        if (b !== bytes) return;
        offs.forEach((f) => f());
        resolve();
      }),
      m.on('stop', (info) => reject(new Error(`stopped before the balloon reached ${bytes}: ${info.message}`))),
    ];
  });
}

/** Host frame of every RAM page (ZERO_FRAME when never written), in address order. */
function frameMap(m: Machine): Int32Array {
  const out = new Int32Array(RAM / PAGE);
  let i = 0;
  for (const r of m.memory.regions()) if (r.kind === 'ram') for (let a = r.start; a < r.start + r.size; a += PAGE) out[i++] = m.memory.frameAt(a);
  return out;
}

function ramPages(m: Machine): number[] {
  const out: number[] = [];
  for (const r of m.memory.regions()) if (r.kind === 'ram') for (let a = r.start; a < r.start + r.size; a += PAGE) out.push(a);
  return out;
}

/** An XXH32 of every RAM page as the guest would read it. */
function pageChecksums(m: Machine): Uint32Array {
  const pages = ramPages(m);
  const out = new Uint32Array(pages.length);
  const buf = new Uint8Array(PAGE);
  pages.forEach((a, i) => {
    m.memory.readInto(a, buf);
    out[i] = xxh32(buf, 0);
  });
  return out;
}

/** Pages of `b` whose host frame is also mapped by `a` (memory the two VMs share). */
function crossShared(a: Machine, b: Machine): number {
  const fa = new Set<number>();
  for (const f of frameMap(a)) if (f !== ZERO_FRAME) fa.add(f);
  let n = 0;
  for (const f of frameMap(b)) if (f !== ZERO_FRAME && fa.has(f)) n++;
  return n;
}

async function statsUpdate(m: Machine, after: number): Promise<void> {
  // Waits for the guest's answer (no timing is asserted; vitest's timeout bounds the wait).
  while (m.balloon!.device.counters.statsUpdates <= after) await new Promise((r) => setTimeout(r, 5));
}

describe.skipIf(!canApt || !hasXz)('virtio-balloon and KSM with two Debian guests', () => {
  it('inflates and deflates with Linux virtio_balloon (MemTotal, host frames, stats), and KSM shares pages across the guests with private copy-on-write', async () => {
    const guest = prepareGuest({ arch: 'amd64' });
    const dir = mkdtempSync(join(tmpdir(), 'rz-balloon-ksm-'));
    const log: string[] = [];
    const note = (s: string): void => {
      log.push(s);
      progress(`NOTE ${s}\n`);
    };
    try {
      const initrd = new Uint8Array(readFileSync(writeInitramfs(guest, join(dir, 'initrd.gz'), { script: SCRIPT })));
      const vmlinux = extractVmlinux(new Uint8Array(readFileSync(guest.kernel))).vmlinux;
      const host = new HostMemory({ maxFrames: 2 * (RAM / PAGE) + (1 << 15) });
      const build = (devices: readonly DeviceDescription[]): Promise<Machine> =>
        Machine.build({ memory: RAM, kernel: vmlinux, initrd, cmdline: 'console=ttyS0 panic=-1 cryptomgr.notests', time: 'deterministic', devices }, { hostMemory: host });
      const A = await build([{ type: 'virtio-balloon' }]);
      const B = await build([{ type: 'virtio-balloon', deflateOnOom: true, freePageReporting: true }]);
      const ca = new GuestConsole('A', A);
      const cb = new GuestConsole('B', B);
      // QEMU's mem-merge=on: all guest RAM is MADV_MERGEABLE from the start; nothing is scanned until asked.
      const ksm = new Ksm();
      for (const [name, m] of [['A', A], ['B', B]] as const) for (const r of m.memory.regions()) if (r.kind === 'ram') ksm.register(m.memory, r.start, r.size, name);

      const runs = [A.start(), B.start()];
      await Promise.all([ca.expect(/^READY$/m), cb.expect(/^READY$/m)]);
      const fa = /^FEATURES (.*)$/m.exec(ca.text)!;
      const fb = /^FEATURES (.*)$/m.exec(cb.text)!;
      note(`A features ${fa[1]}, B features ${fb[1]}`);
      // Linux's feature string: one character per bit. A: STATS_VQ; B: also DEFLATE_ON_OOM and REPORTING.
      const bit = (s: RegExpExecArray, n: number): string => s[1][n];
      expect([bit(fa, 1), bit(fa, 2), bit(fa, 5)]).toEqual(['1', '0', '0']);
      expect([bit(fb, 1), bit(fb, 2), bit(fb, 5)]).toEqual(['1', '1', '1']);

      // ---- balloon, guest A (no deflate-on-oom): MemTotal and host frames drop by 128 MiB.
      const filled = Number(/^FILLED (\d+)$/m.exec(await ca.run('fill 16'))![1]); // back most free pages with host frames
      const m0 = await ca.mem('m0');
      const before = frameMap(A);
      const frames0 = host.framesInUse;
      const g0 = A.clock.nowNs();
      const w0 = performance.now();
      A.balloon!.setTarget(RAM - 128 * MiB);
      await balloonAt(A, RAM - 128 * MiB);
      note(`A: inflate 128 MiB took ${((A.clock.nowNs() - g0) / 1e6).toFixed(1)} guest ms, ${(performance.now() - w0).toFixed(0)} wall ms`);
      const frames1 = host.framesInUse;
      const m1 = await ca.mem('m1');
      note(`A: filled ${filled} MiB; MemTotal ${m0.total / MiB} -> ${m1.total / MiB} MiB, MemAvailable ${(m0.avail / MiB).toFixed(1)} -> ${(m1.avail / MiB).toFixed(1)} MiB; host frames ${frames0} -> ${frames1}`);
      expect(A.balloon!.query()).toEqual({ actual: RAM - 128 * MiB, target: RAM - 128 * MiB });
      expect(m0.total - m1.total).toBe(128 * MiB); // adjust_managed_page_count for every balloon page
      expect(m0.avail - m1.avail).toBeGreaterThan(120 * MiB);
      // Every page in the balloon is back on the zero frame; each one that had a frame freed it.
      const dev = A.balloon!.device;
      expect(dev.counters.inflatedPages).toBe(32768);
      let inflated = 0;
      let hadFrames = 0;
      let stillBacked = 0;
      ramPages(A).forEach((gpa, i) => {
        if (!dev.isInflated(gpa / PAGE)) return;
        inflated++;
        if (before[i] !== ZERO_FRAME) hadFrames++;
        if (A.memory.frameAt(gpa) !== ZERO_FRAME) stillBacked++;
      });
      expect(inflated).toBe(32768);
      expect(stillBacked).toBe(0);
      note(`A: ${hadFrames} of the 32768 inflated pages had host frames`);
      expect(hadFrames).toBeGreaterThan(24576); // the fill backed most free memory: at least 96 MiB really returned
      expect(frames0 - frames1).toBeGreaterThan(hadFrames - 1024); // the guest allocated a little meanwhile

      // Stats: the guest's own figures, fetched on request and then polled every 2 guest seconds.
      const u0 = dev.counters.statsUpdates;
      expect(A.balloon!.requestStats()).toBe(true);
      await statsUpdate(A, u0);
      const st = A.balloon!.stats();
      const m2 = await ca.mem('m2');
      note(`A: stats ${JSON.stringify(st.stats)}; meminfo free ${m2.free} avail ${m2.avail} total ${m2.total}`);
      expect(st.stats['total-memory']).toBe(m2.total);
      expect(Math.abs(st.stats['free-memory'] - m2.free)).toBeLessThan(2 * MiB);
      expect(Math.abs(st.stats['available-memory'] - m2.avail)).toBeLessThan(2 * MiB);
      expect(st.age).toBeGreaterThanOrEqual(0);
      A.balloon!.setStatsPollingInterval(2);
      const u1 = dev.counters.statsUpdates;
      await statsUpdate(A, u1);
      const t1 = A.balloon!.stats().lastUpdate;
      await statsUpdate(A, u1 + 1);
      const t2 = A.balloon!.stats().lastUpdate;
      expect(t2 - t1).toBeGreaterThanOrEqual(2000); // guest milliseconds between polls
      A.balloon!.setStatsPollingInterval(0);

      // Deflate: MemTotal comes back, and the pages are usable again (fresh zero frames).
      const g1 = A.clock.nowNs();
      const w1 = performance.now();
      A.balloon!.setTarget(RAM);
      await balloonAt(A, RAM);
      note(`A: deflate 128 MiB took ${((A.clock.nowNs() - g1) / 1e6).toFixed(1)} guest ms, ${(performance.now() - w1).toFixed(0)} wall ms`);
      const m3 = await ca.mem('m3');
      expect(m3.total).toBe(m0.total);
      expect(dev.counters.inflatedPages).toBe(0);
      const refilled = Number(/^FILLED (\d+)$/m.exec(await ca.run('fill 16'))![1]);
      const frames2 = host.framesInUse;
      note(`A: deflated, MemTotal ${m3.total / MiB} MiB; refilled ${refilled} MiB; host frames ${frames2}`);
      expect(refilled).toBeGreaterThan(filled - 8);
      expect(frames2 - frames1).toBeGreaterThan(24576);

      // ---- balloon, guest B (deflate-on-oom): MemTotal stays, free memory goes.
      const b0 = await cb.mem('b0');
      B.balloon!.setTarget(RAM - 64 * MiB);
      await balloonAt(B, RAM - 64 * MiB);
      const b1 = await cb.mem('b1');
      note(`B: MemTotal ${b0.total / MiB} -> ${b1.total / MiB} MiB, MemFree ${(b0.free / MiB).toFixed(1)} -> ${(b1.free / MiB).toFixed(1)} MiB; reported pages ${B.balloon!.device.counters.reportedPages}`);
      expect(b1.total).toBe(b0.total);
      expect(b0.free - b1.free).toBeGreaterThan(56 * MiB);
      expect(b0.free - b1.free).toBeLessThan(72 * MiB);
      B.balloon!.setTarget(RAM);
      await balloonAt(B, RAM);
      expect((await cb.mem('b2')).free).toBeGreaterThan(b1.free + 56 * MiB);
      expect(B.balloon!.device.counters.reportedPages).toBeGreaterThan(8192); // free page reporting ran (2 MiB+ blocks)

      // ---- KSM: both guests idle at their prompt, paused; full scans.
      A.pause();
      B.pause();
      const cpu0 = process.cpuUsage();
      const scanned = ksm.scanFull(3);
      const cpu = process.cpuUsage(cpu0);
      note(`KSM: ${scanned} pages of Debian guest RAM scanned in ${((cpu.user + cpu.system) / 1000).toFixed(0)} ms of CPU (${Math.round(scanned / ((cpu.user + cpu.system) / 1e6))} pages/s per core)`);
      const c1 = ksm.counters();
      const shared1 = crossShared(A, B);
      note(`KSM after 3 full scans: ${JSON.stringify(c1)}; pages of B sharing a frame with A: ${shared1}`);
      expect(c1.pages_sharing).toBeGreaterThan(8192);
      expect(shared1).toBeGreaterThan(4096); // at least 16 MiB of B is the very same host memory as A's
      expect(ksm.vmStat('B').ksm_merging_pages).toBeGreaterThan(4096);

      // A writes (B stays paused): A's copies break, B reads exactly what it read before.
      const sumsB = pageChecksums(B);
      const framesB = frameMap(B);
      const framesA = frameMap(A);
      const setB = new Set(framesB);
      A.resume();
      const rand = /^RAND ([0-9a-f]{64})/m.exec(await ca.run('rand 4'))![1];
      A.pause();
      // A's pages that mapped a frame B also maps and now have another frame: A's copies, broken on write.
      const afterA = frameMap(A);
      let broken = 0;
      framesA.forEach((f, i) => void (f !== ZERO_FRAME && setB.has(f) && afterA[i] !== f && broken++));
      note(`A wrote 4 MiB: ${broken} of its pages shared with B were copied on write; pages of B sharing a frame with A: ${shared1} -> ${crossShared(A, B)}`);
      expect(broken).toBeGreaterThan(0);
      expect(pageChecksums(B)).toEqual(sumsB);
      expect(frameMap(B)).toEqual(framesB); // B's mappings did not move either
      ksm.scanFull(2);
      expect(pageChecksums(B)).toEqual(sumsB);

      // Both keep running and compute correct results over merged memory.
      A.resume();
      B.resume();
      const want = createHash('sha256').update(readFileSync(guest.busybox)).digest('hex');
      const [ra, rb] = await Promise.all([ca.run('sum'), cb.run('sum')]);
      const sa = /^SUM ([0-9a-f]{64})/m.exec(ra)?.[1];
      const sb = /^SUM ([0-9a-f]{64})/m.exec(rb)?.[1];
      const xa = /^XSUM ([0-9a-f]{64})/m.exec(await ca.run('xsum'))?.[1];
      expect(sa).toBe(want);
      expect(sb).toBe(want);
      expect(xa).toBe(rand);
      ca.machine.sendSerial(Buffer.from('off\n'));
      cb.machine.sendSerial(Buffer.from('off\n'));
      const [ia, ib] = await Promise.all(runs);
      expect(ia.reason).toBe('poweroff');
      expect(ib.reason).toBe('poweroff');
      for (const c of [ca, cb]) expect(c.text).not.toMatch(/WARNING:|BUG:|Oops|Call Trace|soft lockup|Kernel panic|Out of memory/);
      console.log(log.join('\n'));
    } catch (e) {
      console.log(log.join('\n'));
      throw e;
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 3_600_000);
});
