// @ringzero/balloon-ksm/testing: a guest-side virtio-balloon driver over @ringzero/virtio's
// MockDriver, behaving like Linux's virtio_balloon (compact queue numbering, 256 PFNs per
// request, one primed stats buffer, actual written after each fill/leak).
import type { GuestBuffer, MockDriver, MockDriverInit } from '@ringzero/virtio/testing';
import {
  BALLOON_CFG_ACTUAL,
  BALLOON_CFG_FREE_PAGE_HINT_CMD_ID,
  BALLOON_CFG_NUM_PAGES,
  BALLOON_CFG_POISON_VAL,
  BALLOON_F_FREE_PAGE_HINT,
  BALLOON_F_PAGE_POISON,
  BALLOON_F_REPORTING,
  BALLOON_F_STATS_VQ,
  BALLOON_STAT_SIZE,
  BQ_DEFLATE,
  BQ_FREE_PAGE,
  BQ_INFLATE,
  BQ_REPORTING,
  BQ_STATS,
  balloonQueueIndex,
} from './balloon';

export { ManualScheduler } from './clock';

/** Linux's VIRTIO_BALLOON_ARRAY_PFNS_MAX. */
export const LINUX_PFNS_PER_REQUEST = 256;

/**
 * A Linux-like balloon driver for tests and benchmarks. Pages it can give come from a pool of
 * PFNs (the guest's "free memory"), taken from the top like a stack.
 */
export class BalloonDriver {
  readonly driver: MockDriver;
  /** Queue index per role (BQ_*), -1 when its feature is off. */
  readonly queue: Int8Array = new Int8Array(5).fill(-1);
  /** PFNs currently in the balloon, in inflation order. */
  readonly inBalloon: number[] = [];
  private readonly pool: number[];
  private pfnBuf: GuestBuffer | null = null;
  private statsBuf: GuestBuffer | null = null;
  features = 0;

  constructor(driver: MockDriver, freePfns: number[]) {
    this.driver = driver;
    this.pool = freePfns.slice();
  }

  /** Initialises the device (features: which device features to accept; default all offered). */
  init(acceptLo?: number, opts: Omit<MockDriverInit, 'queues' | 'features'> = {}): boolean {
    const d = this.driver;
    const ok = d.init({
      ...opts,
      features: (lo, hi) => [acceptLo === undefined ? lo : lo & (acceptLo | 0x3000_0000), hi & ~0x4],
      // Linux sets up only the queues of negotiated features (compact numbering).
      queues: 2 + popcount(((acceptLo ?? 0x3f) & d.transport.readDeviceFeatures(0)) & (BALLOON_F_STATS_VQ | BALLOON_F_FREE_PAGE_HINT | BALLOON_F_REPORTING)),
    });
    if (!ok) return false;
    this.features = d.featuresLo;
    for (let r = BQ_INFLATE; r <= BQ_REPORTING; r++) this.queue[r] = balloonQueueIndex(this.features, r);
    this.pfnBuf = d.buffer(4 * LINUX_PFNS_PER_REQUEST);
    return true;
  }

  /** Config num_pages (the host's target). */
  numPages(): number {
    return this.driver.transport.readConfig(BALLOON_CFG_NUM_PAGES, 4);
  }

  actual(): number {
    return this.driver.transport.readConfig(BALLOON_CFG_ACTUAL, 4);
  }

  cmdId(): number {
    return this.driver.transport.readConfig(BALLOON_CFG_FREE_PAGE_HINT_CMD_ID, 4);
  }

  /** Writes config actual (one 32-bit access, as Linux does). */
  setActual(pages: number): void {
    this.driver.transport.writeConfig(BALLOON_CFG_ACTUAL, 4, pages >>> 0);
  }

  setPoison(value: number): void {
    if ((this.features & BALLOON_F_PAGE_POISON) !== 0) this.driver.transport.writeConfig(BALLOON_CFG_POISON_VAL, 4, value >>> 0);
  }

  /** Sends one inflate or deflate request with these PFNs (any values, for hostile tests); returns the used elements. */
  send(role: number, pfns: readonly number[]): { id: number; len: number }[] {
    const d = this.driver;
    const idx = this.queue[role];
    if (idx < 0) throw new Error(`BalloonDriver: queue role ${role} not negotiated`);
    const bytes = new Uint8Array(4 * pfns.length);
    const dv = new DataView(bytes.buffer);
    pfns.forEach((p, i) => dv.setUint32(4 * i, p >>> 0, true));
    let buf = this.pfnBuf;
    if (buf == null || bytes.length > buf.len || bytes.length === 0) buf = d.buffer(Math.max(bytes.length, 1));
    d.mem.writeFrom(buf.addr, bytes);
    d.queues[idx].add([{ addr: buf.addr, len: Math.max(bytes.length, 0) }], []);
    d.kick(idx);
    return d.drain(idx);
  }

  /**
   * Linux's update_balloon_size loop, done synchronously: inflate or deflate in requests of at
   * most 256 PFNs until actual == num_pages, writing actual after each request. Returns the
   * number of requests sent.
   */
  adjust(): number {
    let requests = 0;
    for (;;) {
      const target = this.numPages();
      const have = this.inBalloon.length;
      if (target === have) break;
      if (target > have) {
        const n = Math.min(LINUX_PFNS_PER_REQUEST, target - have, this.pool.length);
        if (n === 0) break;
        const pfns = this.pool.splice(this.pool.length - n, n);
        this.send(BQ_INFLATE, pfns);
        for (const p of pfns) this.inBalloon.push(p);
      } else {
        const n = Math.min(LINUX_PFNS_PER_REQUEST, have - target);
        const pfns = this.inBalloon.splice(this.inBalloon.length - n, n);
        this.send(BQ_DEFLATE, pfns);
        for (const p of pfns) this.pool.push(p);
      }
      requests++;
      this.setActual(this.inBalloon.length);
    }
    return requests;
  }

  /** Primes (or refills) the stats queue with these {tag: value} entries and kicks it. */
  sendStats(entries: readonly (readonly [tag: number, value: number])[]): void {
    const d = this.driver;
    const idx = this.queue[BQ_STATS];
    if (idx < 0) throw new Error('BalloonDriver: STATS_VQ not negotiated');
    const bytes = new Uint8Array(BALLOON_STAT_SIZE * entries.length);
    const dv = new DataView(bytes.buffer);
    entries.forEach(([tag, v], i) => {
      dv.setUint16(i * BALLOON_STAT_SIZE, tag, true);
      dv.setUint32(i * BALLOON_STAT_SIZE + 2, v % 0x1_0000_0000, true);
      dv.setUint32(i * BALLOON_STAT_SIZE + 6, Math.floor(v / 0x1_0000_0000), true);
    });
    if (this.statsBuf == null || this.statsBuf.len < bytes.length) this.statsBuf = d.buffer(Math.max(bytes.length, BALLOON_STAT_SIZE * 16));
    d.mem.writeFrom(this.statsBuf.addr, bytes);
    d.queues[idx].add([{ addr: this.statsBuf.addr, len: bytes.length }], []);
    d.kick(idx);
  }

  /** Stats buffers the device has given back (the guest should refill them). */
  statsReturned(): number {
    return this.driver.drain(this.queue[BQ_STATS]).length;
  }

  /** Reports free page ranges [gpa, bytes] on the reporting queue (device-writable buffers, as Linux). */
  report(ranges: readonly (readonly [gpa: number, bytes: number])[]): number {
    const d = this.driver;
    const idx = this.queue[BQ_REPORTING];
    if (idx < 0) throw new Error('BalloonDriver: REPORTING not negotiated');
    d.queues[idx].add([], ranges.map(([addr, len]) => ({ addr, len })));
    d.kick(idx);
    return d.drain(idx).length;
  }

  /** One free page hint run: START with the cmd id, the ranges (device-writable), then STOP. */
  hint(cmdId: number, ranges: readonly (readonly [gpa: number, bytes: number])[]): void {
    const d = this.driver;
    const idx = this.queue[BQ_FREE_PAGE];
    if (idx < 0) throw new Error('BalloonDriver: FREE_PAGE_HINT not negotiated');
    const id = d.buffer(4, new Uint8Array(new Uint32Array([cmdId]).buffer));
    d.queues[idx].add([id], []);
    for (const [addr, len] of ranges) d.queues[idx].add([], [{ addr, len }]);
    const stop = d.buffer(4, new Uint8Array(4));
    d.queues[idx].add([stop], []);
    d.kick(idx);
    d.drain(idx);
  }
}

function popcount(x: number): number {
  let n = 0;
  for (let v = x >>> 0; v !== 0; v &= v - 1) n++;
  return n;
}
