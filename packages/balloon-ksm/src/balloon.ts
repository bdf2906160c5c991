import type { GuestMemory } from '@ringzero/mmu-ept';
import { DescriptorChain, MAX_QUEUE_SIZE, POP_EMPTY, type VirtioContext, type VirtioDevice, type Virtqueue } from '@ringzero/virtio';
import { RealScheduler, type Scheduler } from './clock';

// virtio-balloon (virtio 1.x §5.5, Linux include/uapi/linux/virtio_balloon.h).

export const DEVICE_ID_BALLOON = 5;

// Device feature bits (lo word).
export const BALLOON_F_MUST_TELL_HOST: number = 1 << 0;
export const BALLOON_F_STATS_VQ: number = 1 << 1;
export const BALLOON_F_DEFLATE_ON_OOM: number = 1 << 2;
export const BALLOON_F_FREE_PAGE_HINT: number = 1 << 3;
export const BALLOON_F_PAGE_POISON: number = 1 << 4;
export const BALLOON_F_REPORTING: number = 1 << 5;
/** Every device feature this implementation offers by default. */
export const BALLOON_F_ALL: number = 0x3f;

/** PFNs on the inflate/deflate queues are in 4 KiB units whatever the guest's page size. */
export const BALLOON_PFN_SHIFT = 12;
export const BALLOON_PAGE_SIZE = 4096;

/** free_page_hint_cmd_id values with a fixed meaning; the host's own ids start at 0x80000000 (as QEMU's). */
export const BALLOON_CMD_ID_STOP = 0;
export const BALLOON_CMD_ID_DONE = 1;
export const BALLOON_CMD_ID_MIN = 0x8000_0000;

// struct virtio_balloon_config (16 bytes, little-endian even for legacy drivers).
export const BALLOON_CFG_NUM_PAGES = 0;
export const BALLOON_CFG_ACTUAL = 4;
export const BALLOON_CFG_FREE_PAGE_HINT_CMD_ID = 8;
export const BALLOON_CFG_POISON_VAL = 12;
export const BALLOON_CONFIG_SIZE = 16;

// Stats tags (struct virtio_balloon_stat {le16 tag; le64 val} packed: 10 bytes).
export const BALLOON_S_SWAP_IN = 0;
export const BALLOON_S_SWAP_OUT = 1;
export const BALLOON_S_MAJFLT = 2;
export const BALLOON_S_MINFLT = 3;
export const BALLOON_S_MEMFREE = 4;
export const BALLOON_S_MEMTOT = 5;
export const BALLOON_S_AVAIL = 6;
export const BALLOON_S_CACHES = 7;
export const BALLOON_S_HTLB_PGALLOC = 8;
export const BALLOON_S_HTLB_PGFAIL = 9;
// Linux 6.12 and later:
export const BALLOON_S_OOM_KILL = 10;
export const BALLOON_S_ALLOC_STALL = 11;
export const BALLOON_S_ASYNC_SCAN = 12;
export const BALLOON_S_DIRECT_SCAN = 13;
export const BALLOON_S_ASYNC_RECLAIM = 14;
export const BALLOON_S_DIRECT_RECLAIM = 15;
export const BALLOON_S_NR = 16;
export const BALLOON_STAT_SIZE = 10;
/** Linux's VIRTIO_BALLOON_S_NAMES, indexed by tag. */
export const BALLOON_STAT_NAMES: readonly string[] = [
  'swap-in',
  'swap-out',
  'major-faults',
  'minor-faults',
  'free-memory',
  'total-memory',
  'available-memory',
  'disk-caches',
  'hugetlb-allocations',
  'hugetlb-failures',
  'oom-kills',
  'alloc-stalls',
  'async-scans',
  'direct-scans',
  'async-reclaims',
  'direct-reclaims',
];

/** Queue roles. Which virtqueue index serves a role depends on the negotiated features (see queueIndex). */
export const BQ_INFLATE = 0;
export const BQ_DEFLATE = 1;
export const BQ_STATS = 2;
export const BQ_FREE_PAGE = 3;
export const BQ_REPORTING = 4;
const BQ_NONE = -1;

/**
 * Virtqueue index of each role for the negotiated features, numbered the way Linux's
 * virtio_balloon (and QEMU for the optional queues) number them: inflate 0, deflate 1, then
 * stats, free_page and reporting in that order, each present only when its feature was
 * negotiated, so the indexes stay compact (reporting is queue 2 without STATS_VQ and
 * FREE_PAGE_HINT). Returns -1 for a role whose feature is off.
 */
export function balloonQueueIndex(features: number, role: number): number {
  if (role === BQ_INFLATE) return 0;
  if (role === BQ_DEFLATE) return 1;
  let idx = 2;
  if ((features & BALLOON_F_STATS_VQ) !== 0) {
    if (role === BQ_STATS) return idx;
    idx++;
  } else if (role === BQ_STATS) return -1;
  if ((features & BALLOON_F_FREE_PAGE_HINT) !== 0) {
    if (role === BQ_FREE_PAGE) return idx;
    idx++;
  } else if (role === BQ_FREE_PAGE) return -1;
  if (role === BQ_REPORTING) return (features & BALLOON_F_REPORTING) !== 0 ? idx : -1;
  return -1;
}

/** What the balloon needs to give guest pages back to the host: mmu-ept's AddressSpace has it. */
export interface BalloonMemory {
  /** Drops the host frames behind [gpa, gpa + size) (page-aligned); the guest reads zeros there afterwards and a write gets a fresh frame. */
  discard(gpa: number, size: number): void;
}

/** The latest guest memory statistics, as QEMU's `guest-stats` property reports them. */
export interface BalloonStats {
  /** Value per stat name (BALLOON_STAT_NAMES); tags the guest did not send are absent. */
  stats: Record<string, number>;
  /** Scheduler time (ms) of the last update, or -1 when the guest never sent stats. */
  lastUpdate: number;
  /** Milliseconds since the last update (-1 when never). */
  age: number;
  /** Polling interval in seconds (0 = off). */
  pollingInterval: number;
}

/** Options of VirtioBalloon. */
export interface VirtioBalloonOptions {
  /** Guest RAM size in bytes (QEMU's ram_size): the balloon target is expressed against it. */
  ramSize: number;
  /** Where discarded pages go. Default: the transport's guest memory when it has discard(). */
  memory?: BalloonMemory;
  /** Device features to offer (BALLOON_F_*; default BALLOON_F_ALL). */
  features?: number;
  /** Queue size offered for every queue (power of two, default 128 as QEMU's inflate/deflate/stats). */
  queueSize?: number;
  /** Timers for stats polling (default: the platform's). */
  scheduler?: Scheduler;
  /** BALLOON_CHANGE: called with the guest's new size in bytes whenever the guest updates `actual`. */
  onChange?: (actualBytes: number) => void;
  /** Called for each free page hint range (gpa, bytes) while a hint command is running. */
  onFreePageHint?: (gpa: number, length: number) => void;
  /** Also discard hinted free pages (default false: hints only tell the host the contents do not matter, as QEMU uses them for migration). */
  discardFreePageHints?: boolean;
}

/** Most PFNs read from one inflate/deflate buffer (Linux sends 256); the rest is ignored and counted. */
export const BALLOON_MAX_PFNS_PER_BUFFER = 65536;
/** Most stats entries read from one stats buffer. */
const MAX_STATS_ENTRIES = 64;
const PFN_BATCH = 256;
const PAGES_PER_BITMAP_CHUNK = 32768; // 128 MiB of guest memory per lazily created bitmap word array

/**
 * virtio-balloon device. The host sets a target guest size (QMP `balloon`), the guest driver
 * inflates (gives pages: their host frames are freed at once) or deflates and reports `actual`.
 * Works over any virtio transport of @ringzero/virtio (virtio-pci, virtio-mmio).
 */
export class VirtioBalloon implements VirtioDevice {
  readonly deviceId: number = DEVICE_ID_BALLOON;
  /** Five queue slots; only those whose feature is negotiated are used (see balloonQueueIndex). */
  readonly queueCount: number = 5;
  readonly maxQueueSize: number;
  readonly featuresLo: number;
  readonly featuresHi: number = 0;
  readonly configSize: number = BALLOON_CONFIG_SIZE;
  readonly ramSize: number;

  /** Host-side counters (plain numbers, for tests and monitoring). */
  readonly counters: {
    inflatedPages: number;
    inflateRequests: number;
    deflateRequests: number;
    badPfns: number;
    ignoredPfns: number;
    duplicatePfns: number;
    statsUpdates: number;
    hintedPages: number;
    reportedPages: number;
    reportSkippedPoison: number;
    badSegments: number;
  } = {
    inflatedPages: 0,
    inflateRequests: 0,
    deflateRequests: 0,
    badPfns: 0,
    ignoredPfns: 0,
    duplicatePfns: 0,
    statsUpdates: 0,
    hintedPages: 0,
    reportedPages: 0,
    reportSkippedPoison: 0,
    badSegments: 0,
  };

  onChange: ((actualBytes: number) => void) | null;
  onFreePageHint: ((gpa: number, length: number) => void) | null;
  discardFreePageHints: boolean;

  private ctx: VirtioContext | null = null;
  private readonly memory: BalloonMemory | null;
  private readonly scheduler: Scheduler;
  private numPages = 0;
  private actual = 0;
  private reportedActual = 0;
  private cmdId = BALLOON_CMD_ID_STOP;
  private nextCmdId = BALLOON_CMD_ID_MIN;
  private hintActive = false;
  private poison = 0;
  /** Staging copy of the driver-writable config bytes (actual, poison_val). */
  private readonly cfg = new Uint8Array(BALLOON_CONFIG_SIZE);
  private readonly chain = new DescriptorChain(8);
  private heldStats: DescriptorChain = new DescriptorChain(4);
  private spareStats: DescriptorChain = new DescriptorChain(4);
  private holding = false;
  private pollSeconds = 0;
  private pollTimer = -1;
  private readonly statVals = new Float64Array(BALLOON_S_NR);
  private readonly statSeen = new Uint8Array(BALLOON_S_NR);
  private lastUpdate = -1;
  private readonly pfnBuf = new Uint8Array(4 * PFN_BATCH);
  private readonly pfnWords = new Uint32Array(this.pfnBuf.buffer);
  private readonly statBuf = new Uint8Array(BALLOON_STAT_SIZE * MAX_STATS_ENTRIES);
  private readonly word = new Uint8Array(4);
  /** Pages currently in the balloon (host view), one bit per 4 KiB guest page, in lazily created chunks. */
  private readonly bitmap = new Map<number, Uint32Array>();
  /** Role -> queue index for the negotiated features (valid after activate). */
  private readonly roleQueue = new Int8Array([0, 1, -1, -1, -1]);
  private readonly queueRole = new Int8Array([BQ_INFLATE, BQ_DEFLATE, BQ_NONE, BQ_NONE, BQ_NONE]);

  constructor(opts: VirtioBalloonOptions) {
    if (!Number.isInteger(opts.ramSize) || opts.ramSize <= 0 || opts.ramSize % BALLOON_PAGE_SIZE !== 0 || opts.ramSize / BALLOON_PAGE_SIZE > 0xffff_ffff) {
      throw new RangeError('VirtioBalloon: ramSize must be a positive multiple of 4096 below 16 TiB');
    }
    const qs = opts.queueSize ?? 128;
    if (qs < 2 || qs > MAX_QUEUE_SIZE || (qs & (qs - 1)) !== 0) throw new RangeError('VirtioBalloon: queueSize must be a power of two');
    const f = opts.features ?? BALLOON_F_ALL;
    if ((f & ~BALLOON_F_ALL) !== 0) throw new RangeError('VirtioBalloon: unknown feature bits');
    this.ramSize = opts.ramSize;
    this.maxQueueSize = qs;
    this.featuresLo = f;
    this.memory = opts.memory ?? null;
    this.scheduler = opts.scheduler ?? new RealScheduler();
    this.onChange = opts.onChange ?? null;
    this.onFreePageHint = opts.onFreePageHint ?? null;
    this.discardFreePageHints = opts.discardFreePageHints === true;
  }

  // ---- host API (QMP balloon / query-balloon / guest-stats) -------------------------------

  /** QMP `balloon`: the target guest size in bytes (clamped to [0, ramSize]); the guest is told by a config interrupt. */
  setTarget(bytes: number): void {
    if (!Number.isFinite(bytes)) throw new RangeError('setTarget: bytes must be a finite number');
    const target = Math.min(Math.max(0, Math.floor(bytes)), this.ramSize);
    this.setNumPages(Math.floor((this.ramSize - target) / BALLOON_PAGE_SIZE));
  }

  /** The same in 4 KiB pages to take away from the guest (config num_pages). */
  setNumPages(pages: number): void {
    if (!Number.isInteger(pages) || pages < 0) throw new RangeError('setNumPages: pages must be a non-negative integer');
    const p = Math.min(pages, this.ramSize / BALLOON_PAGE_SIZE);
    if (p === this.numPages) return;
    this.numPages = p;
    this.ctx?.configChanged();
  }

  /** Target in pages (config num_pages). */
  get targetPages(): number {
    return this.numPages;
  }

  /** Pages the guest says are in the balloon (config actual). */
  get actualPages(): number {
    return this.actual;
  }

  /** QMP query-balloon: the guest's current size in bytes (ramSize - actual pages). */
  query(): { actual: number } {
    return { actual: this.ramSize - this.actual * BALLOON_PAGE_SIZE };
  }

  /** Latest stats from the guest, with their age. */
  stats(): BalloonStats {
    const out: Record<string, number> = {};
    for (let t = 0; t < BALLOON_S_NR; t++) if (this.statSeen[t] !== 0) out[BALLOON_STAT_NAMES[t]] = this.statVals[t];
    return {
      stats: out,
      lastUpdate: this.lastUpdate,
      age: this.lastUpdate < 0 ? -1 : this.scheduler.now() - this.lastUpdate,
      pollingInterval: this.pollSeconds,
    };
  }

  /** guest-stats-polling-interval (seconds, 0 = off): the device returns the stats buffer to the guest that often. */
  setStatsPollingInterval(seconds: number): void {
    if (!Number.isInteger(seconds) || seconds < 0 || seconds > 0x7fff_ffff) throw new RangeError('setStatsPollingInterval: seconds must be a non-negative integer');
    this.pollSeconds = seconds;
    this.cancelPoll();
    if (seconds > 0 && this.holding) this.armPoll();
  }

  /** Asks the guest for fresh stats now (returns the held stats buffer); false when the guest has none queued. */
  requestStats(): boolean {
    return this.returnStatsBuffer();
  }

  /** Starts a free page hint run: a new command id in config; returns it. Needs FREE_PAGE_HINT negotiated to have an effect. */
  startFreePageHint(): number {
    const id = this.nextCmdId;
    this.nextCmdId = this.nextCmdId >= 0xffff_ffff ? BALLOON_CMD_ID_MIN : this.nextCmdId + 1;
    this.cmdId = id;
    this.hintActive = false;
    this.ctx?.configChanged();
    return id;
  }

  /** Stops the current hint run (cmd id STOP). */
  stopFreePageHint(): void {
    this.cmdId = BALLOON_CMD_ID_STOP;
    this.hintActive = false;
    this.ctx?.configChanged();
  }

  /** Tells the guest the host is done with the hints (cmd id DONE): the guest frees the hinted pages. */
  doneFreePageHint(): void {
    this.cmdId = BALLOON_CMD_ID_DONE;
    this.hintActive = false;
    this.ctx?.configChanged();
  }

  /** The poison value the guest reported (0 when none or PAGE_POISON is off). */
  get poisonValue(): number {
    return this.poison;
  }

  /** True when the host considers page `pfn` inflated (it is in the balloon). */
  isInflated(pfn: number): boolean {
    const w = this.bitmap.get(Math.floor(pfn / PAGES_PER_BITMAP_CHUNK));
    if (w === undefined) return false;
    const i = pfn % PAGES_PER_BITMAP_CHUNK;
    return (w[i >>> 5] & (1 << (i & 31))) !== 0;
  }

  /** Virtqueue index serving a role (BQ_*) under the negotiated features, or -1. */
  queueIndex(role: number): number {
    return this.roleQueue[role] ?? -1;
  }

  // ---- VirtioDevice -------------------------------------------------------------------

  attach(ctx: VirtioContext): void {
    this.ctx = ctx;
  }

  readConfig(offset: number): number {
    let v: number;
    if (offset < 4) v = this.numPages;
    else if (offset < 8) v = this.actual;
    else if (offset < 12) v = this.cmdId;
    else v = this.poison;
    return (v >>> (8 * (offset & 3))) & 0xff;
  }

  writeConfig(offset: number, value: number): void {
    // The driver owns actual and poison_val; num_pages and the command id are the device's.
    if (offset >= BALLOON_CFG_ACTUAL && offset < BALLOON_CFG_ACTUAL + 4) {
      this.cfg[offset] = value;
      this.actual = (this.cfg[4] | (this.cfg[5] << 8) | (this.cfg[6] << 16) | (this.cfg[7] << 24)) >>> 0;
      // Linux writes actual as one 32-bit access, which the transport hands over byte by byte
      // in ascending order: report the change once the top byte has landed.
      if (offset === BALLOON_CFG_ACTUAL + 3 && this.actual !== this.reportedActual) {
        this.reportedActual = this.actual;
        this.onChange?.(this.ramSize - Math.min(this.actual, this.ramSize / BALLOON_PAGE_SIZE) * BALLOON_PAGE_SIZE);
      }
    } else if (offset >= BALLOON_CFG_POISON_VAL && offset < BALLOON_CFG_POISON_VAL + 4) {
      const ctx = this.ctx;
      if (ctx == null || (ctx.featuresLo & BALLOON_F_PAGE_POISON) === 0) return;
      this.cfg[offset] = value;
      this.poison = (this.cfg[12] | (this.cfg[13] << 8) | (this.cfg[14] << 16) | (this.cfg[15] << 24)) >>> 0;
    }
  }

  checkFeatures(): boolean {
    return true;
  }

  activate(): void {
    const ctx = this.ctx;
    if (ctx == null) return;
    const f = ctx.featuresLo;
    this.queueRole.fill(BQ_NONE);
    for (let r = BQ_INFLATE; r <= BQ_REPORTING; r++) {
      const q = balloonQueueIndex(f, r);
      this.roleQueue[r] = q;
      if (q >= 0) this.queueRole[q] = r;
    }
    for (let q = 0; q < this.queueCount; q++) if (this.queueRole[q] !== BQ_NONE && ctx.queue(q) != null) this.notify(q);
  }

  notify(index: number): void {
    const ctx = this.ctx;
    if (ctx == null || !ctx.active) return;
    const q = ctx.queue(index);
    if (q == null) return;
    switch (this.queueRole[index]) {
      case BQ_INFLATE:
        this.processPfns(ctx, q, index, true);
        break;
      case BQ_DEFLATE:
        this.processPfns(ctx, q, index, false);
        break;
      case BQ_STATS:
        this.receiveStats(ctx, q, index);
        break;
      case BQ_FREE_PAGE:
        this.processHints(ctx, q, index);
        break;
      case BQ_REPORTING:
        this.processReports(ctx, q, index);
        break;
      default:
        break; // a queue slot whose feature was not negotiated: ignore
    }
  }

  reset(): void {
    this.cancelPoll();
    this.holding = false;
    this.hintActive = false;
    this.cmdId = BALLOON_CMD_ID_STOP;
    this.poison = 0;
    this.cfg.fill(0);
    this.bitmap.clear();
    this.counters.inflatedPages = 0;
    this.roleQueue.set([0, 1, -1, -1, -1]);
    this.queueRole.set([BQ_INFLATE, BQ_DEFLATE, BQ_NONE, BQ_NONE, BQ_NONE]);
    // A reset guest owns all its memory again (the pages were freed already: it gets zero frames).
    this.actual = 0;
    if (this.reportedActual !== 0) {
      this.reportedActual = 0;
      this.onChange?.(this.ramSize);
    }
  }

  // ---- queues ---------------------------------------------------------------------------

  private release(): BalloonMemory | null {
    if (this.memory != null) return this.memory;
    const m = this.ctx?.mem as (GuestMemory & Partial<BalloonMemory>) | undefined;
    return m != null && typeof m.discard === 'function' ? (m as BalloonMemory) : null;
  }

  private processPfns(ctx: VirtioContext, q: Virtqueue, index: number, inflate: boolean): void {
    const c = this.chain;
    const mem = ctx.mem;
    const rel = this.release();
    let pushed = false;
    for (;;) {
      const r = q.pop(c);
      if (r === POP_EMPTY) {
        if (q.enableNotification()) continue;
        break;
      }
      if (r < 0) break;
      if (inflate) this.counters.inflateRequests++;
      else this.counters.deflateRequests++;
      const total = Math.floor(c.readableBytes / 4);
      const n = Math.min(total, BALLOON_MAX_PFNS_PER_BUFFER);
      this.counters.ignoredPfns += total - n;
      for (let done = 0; done < n; ) {
        const k = Math.min(PFN_BATCH, n - done);
        if (!c.read(mem, done * 4, this.pfnBuf, 0, k * 4)) {
          this.counters.badPfns += n - done;
          break;
        }
        for (let i = 0; i < k; i++) this.onePfn(mem, rel, littleEndianWord(this.pfnWords, this.pfnBuf, i), inflate);
        done += k;
      }
      q.pushUsed(c, 0);
      pushed = true;
    }
    if (pushed || q.error !== 0) ctx.signalUsed(index);
  }

  private onePfn(mem: GuestMemory, rel: BalloonMemory | null, pfn: number, inflate: boolean): void {
    const gpa = pfn * BALLOON_PAGE_SIZE;
    if (!mem.isRam(gpa, BALLOON_PAGE_SIZE)) {
      this.counters.badPfns++;
      return;
    }
    const key = Math.floor(pfn / PAGES_PER_BITMAP_CHUNK);
    const i = pfn % PAGES_PER_BITMAP_CHUNK;
    let w = this.bitmap.get(key);
    const bit = 1 << (i & 31);
    if (inflate) {
      if (w === undefined) {
        w = new Uint32Array(PAGES_PER_BITMAP_CHUNK / 32);
        this.bitmap.set(key, w);
      }
      if ((w[i >>> 5] & bit) !== 0) this.counters.duplicatePfns++;
      else {
        w[i >>> 5] |= bit;
        this.counters.inflatedPages++;
      }
      // As QEMU's MADV_DONTNEED: the frame goes back to the host now (also for a duplicate, in
      // case the guest wrote to the page in between).
      rel?.discard(gpa, BALLOON_PAGE_SIZE);
    } else {
      if (w === undefined || (w[i >>> 5] & bit) === 0) {
        this.counters.duplicatePfns++;
        return;
      }
      w[i >>> 5] &= ~bit;
      this.counters.inflatedPages--;
    }
  }

  private receiveStats(ctx: VirtioContext, q: Virtqueue, index: number): void {
    for (;;) {
      const c = this.spareStats;
      const r = q.pop(c);
      if (r === POP_EMPTY) {
        if (q.enableNotification()) continue;
        break;
      }
      if (r < 0) break;
      if (this.holding) {
        // A driver that follows the spec keeps one buffer; give the older one back (as QEMU does).
        q.pushUsed(this.heldStats, 0);
        ctx.signalUsed(index);
      }
      this.parseStats(ctx.mem, c);
      this.spareStats = this.heldStats;
      this.heldStats = c;
      this.holding = true;
      this.cancelPoll();
      if (this.pollSeconds > 0) this.armPoll();
    }
    if (q.error !== 0) ctx.signalUsed(index);
  }

  private parseStats(mem: GuestMemory, c: DescriptorChain): void {
    const n = Math.min(Math.floor(c.readableBytes / BALLOON_STAT_SIZE), MAX_STATS_ENTRIES);
    const b = this.statBuf;
    if (n === 0 || !c.read(mem, 0, b, 0, n * BALLOON_STAT_SIZE)) return;
    for (let i = 0; i < n; i++) {
      const o = i * BALLOON_STAT_SIZE;
      const tag = b[o] | (b[o + 1] << 8);
      if (tag >= BALLOON_S_NR) continue; // unknown tags are skipped, as QEMU does
      const lo = (b[o + 2] | (b[o + 3] << 8) | (b[o + 4] << 16) | (b[o + 5] << 24)) >>> 0;
      const hi = (b[o + 6] | (b[o + 7] << 8) | (b[o + 8] << 16) | (b[o + 9] << 24)) >>> 0;
      this.statVals[tag] = hi * 0x1_0000_0000 + lo;
      this.statSeen[tag] = 1;
    }
    this.lastUpdate = this.scheduler.now();
    this.counters.statsUpdates++;
  }

  private armPoll(): void {
    this.pollTimer = this.scheduler.setTimer(this.pollSeconds * 1000, () => {
      this.pollTimer = -1;
      this.returnStatsBuffer();
    });
  }

  private cancelPoll(): void {
    if (this.pollTimer >= 0) this.scheduler.cancelTimer(this.pollTimer);
    this.pollTimer = -1;
  }

  private returnStatsBuffer(): boolean {
    const ctx = this.ctx;
    const idx = this.roleQueue[BQ_STATS];
    if (ctx == null || !ctx.active || !this.holding || idx < 0) return false;
    const q = ctx.queue(idx);
    if (q == null) return false;
    this.holding = false;
    q.pushUsed(this.heldStats, 0);
    ctx.signalUsed(idx);
    return true;
  }

  private processHints(ctx: VirtioContext, q: Virtqueue, index: number): void {
    const c = this.chain;
    const rel = this.release();
    let pushed = false;
    for (;;) {
      const r = q.pop(c);
      if (r === POP_EMPTY) {
        if (q.enableNotification()) continue;
        break;
      }
      if (r < 0) break;
      if (c.readableBytes >= 4 && c.read(ctx.mem, 0, this.word, 0, 4)) {
        const id = (this.word[0] | (this.word[1] << 8) | (this.word[2] << 16) | (this.word[3] << 24)) >>> 0;
        if (id === this.cmdId && id >= BALLOON_CMD_ID_MIN) this.hintActive = true;
        else if (id === BALLOON_CMD_ID_STOP) this.hintActive = false;
      }
      if (this.hintActive) {
        for (let i = c.firstWritable; i < c.count; i++) {
          const addr = c.addr[i];
          const len = c.len[i];
          if (!ctx.mem.isRam(addr, len)) {
            this.counters.badSegments++;
            continue;
          }
          this.counters.hintedPages += Math.floor(len / BALLOON_PAGE_SIZE);
          this.onFreePageHint?.(addr, len);
          if (this.discardFreePageHints && this.poison === 0) discardWhole(rel, addr, len);
        }
      }
      q.pushUsed(c, 0);
      pushed = true;
    }
    if (pushed || q.error !== 0) ctx.signalUsed(index);
  }

  private processReports(ctx: VirtioContext, q: Virtqueue, index: number): void {
    const c = this.chain;
    const rel = this.release();
    let pushed = false;
    for (;;) {
      const r = q.pop(c);
      if (r === POP_EMPTY) {
        if (q.enableNotification()) continue;
        break;
      }
      if (r < 0) break;
      // Linux hands free page ranges over as device-writable buffers (virtqueue_add_inbuf).
      this.counters.badSegments += c.firstWritable;
      for (let i = c.firstWritable; i < c.count; i++) {
        const addr = c.addr[i];
        const len = c.len[i];
        if (!ctx.mem.isRam(addr, len)) {
          this.counters.badSegments++;
          continue;
        }
        const pages = discardPages(addr, len);
        if (this.poison !== 0) {
          // The guest expects reported pages to keep its poison pattern: keep them (as QEMU does).
          this.counters.reportSkippedPoison += pages;
          continue;
        }
        this.counters.reportedPages += pages;
        discardWhole(rel, addr, len);
      }
      q.pushUsed(c, 0);
      pushed = true;
    }
    if (pushed || q.error !== 0) ctx.signalUsed(index);
  }
}

/** Whole 4 KiB pages inside [addr, addr + len). */
function discardPages(addr: number, len: number): number {
  const start = Math.ceil(addr / BALLOON_PAGE_SIZE);
  const end = Math.floor((addr + len) / BALLOON_PAGE_SIZE);
  return Math.max(0, end - start);
}

/** Discards only the pages entirely inside the range (a partial page keeps its contents). */
function discardWhole(rel: BalloonMemory | null, addr: number, len: number): void {
  const start = Math.ceil(addr / BALLOON_PAGE_SIZE) * BALLOON_PAGE_SIZE;
  const end = Math.floor((addr + len) / BALLOON_PAGE_SIZE) * BALLOON_PAGE_SIZE;
  if (rel != null && end > start) rel.discard(start, end - start);
}

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

function littleEndianWord(words: Uint32Array, bytes: Uint8Array, i: number): number {
  if (LITTLE_ENDIAN) return words[i];
  const o = 4 * i;
  return (bytes[o] | (bytes[o + 1] << 8) | (bytes[o + 2] << 16) | (bytes[o + 3] << 24)) >>> 0;
}
