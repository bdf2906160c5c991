import { ZERO_FRAME, type AddressSpace, type HostMemory } from '@ringzero/mmu-ept';
import { RealScheduler, type Scheduler } from './clock';
import { xxh32Page } from './xxhash';

/**
 * Kernel samepage merging, after Linux's mm/ksm.c.
 *
 * Guest RAM ranges registered as mergeable (madvise(MADV_MERGEABLE) / QEMU's mem-merge) are
 * scanned page by page, `pages_to_scan` pages per batch with `sleep_millisecs` pauses on an
 * injectable scheduler. Per page (cmp_and_merge_page):
 *   1. its XXH32 checksum is computed; the stable index is searched for a KSM page with the
 *      same bytes: on a hit the page is remapped onto that frame (read-only, copy-on-write);
 *   2. otherwise, if the checksum changed since the last visit the page is volatile: remember
 *      the checksum and move on;
 *   3. with use_zero_pages, an all-zero page is given back to the shared zero frame;
 *   4. otherwise the unstable index (flushed at the start of every full scan) is searched:
 *      a page with the same bytes is merged with this one into a new KSM page (stable node),
 *      else this page is inserted.
 * Merging is mmu-ept's AddressSpace.mergeWith (both pages map one frame read-only, the other
 * frame goes back to the pool, EPT entries and TLB write rights are dropped); the first write to
 * a merged page is an EPT violation (or a GuestMemory write) that copies it (copy-on-write). The
 * engine holds one reference on each KSM frame (as the KSM page itself in Linux), so a KSM page
 * is never written in place and lives until its last mapper goes.
 *
 * The "trees" are hash indexes ordered by content: Linux keeps red-black trees ordered by
 * memcmp; here both are open-addressing tables keyed by the page's 32-bit XXH32 (which the
 * volatility check computes anyway), each hit confirmed by a full 4 KiB comparison. The stable
 * index chains the stable nodes of one checksum (identical content = the dups of a chain, or a
 * rare checksum collision); the unstable index keeps one page per checksum (a newer page
 * replaces a stale or colliding one) and is emptied in O(1) per full scan by a generation
 * stamp.
 *
 * Per-page state ("rmap items") lives in typed arrays per region: no allocation per page.
 * Linux updates some counters when a page is unmapped or written; here a page whose sharing
 * was broken behind the scanner's back (COW write, balloon discard) is noticed on its next
 * visit, so pages_sharing and ksm_zero_pages lag by up to one full scan (Linux's pages_sharing
 * lags the same way).
 */

/** Knobs of /sys/kernel/mm/ksm with Linux's names. */
export interface KsmKnobs {
  run: number;
  pages_to_scan: number;
  sleep_millisecs: number;
  merge_across_nodes: number;
  use_zero_pages: number;
  max_page_sharing: number;
  stable_node_chains_prune_millisecs: number;
  smart_scan: number;
}

/** Counters of /sys/kernel/mm/ksm with Linux's names. */
export interface KsmCounters {
  pages_shared: number;
  pages_sharing: number;
  pages_unshared: number;
  pages_volatile: number;
  pages_scanned: number;
  pages_skipped: number;
  full_scans: number;
  stable_node_chains: number;
  stable_node_dups: number;
  ksm_zero_pages: number;
  general_profit: number;
}

/** Per-VM figures, as /proc/<pid>/ksm_stat. */
export interface KsmVmStat {
  ksm_rmap_items: number;
  ksm_merging_pages: number;
  ksm_zero_pages: number;
  ksm_process_profit: number;
}

/** Linux's defaults. */
export const KSM_DEFAULTS: Readonly<KsmKnobs> = Object.freeze({
  run: 0,
  pages_to_scan: 100,
  sleep_millisecs: 20,
  merge_across_nodes: 1,
  use_zero_pages: 0,
  max_page_sharing: 256,
  stable_node_chains_prune_millisecs: 2000,
  smart_scan: 1,
});

/** sizeof(struct ksm_rmap_item) on 64-bit Linux: the per-page cost general_profit charges. */
export const KSM_RMAP_ITEM_BYTES = 64;
const PAGE = 4096;

/** A knob write Linux would refuse: code is the errno name (EINVAL, EBUSY). */
export class KsmKnobError extends Error {
  readonly code: 'EINVAL' | 'EBUSY';
  constructor(code: 'EINVAL' | 'EBUSY', message: string) {
    super(message);
    this.name = 'KsmKnobError';
    this.code = code;
  }
}

// Per-page state.
const S_NONE = 0; // no rmap item (page absent, or never scanned)
const S_ITEM = 1; // rmap item with a checksum: volatile or waiting for a partner
const S_UNSTABLE = 2; // inserted in the unstable index
const S_STABLE = 3; // mapped onto a KSM page (stable node)
const S_ZERO = 4; // merged with the zero frame (use_zero_pages); no rmap item, as in Linux

const NIL = -1;
const TWO32 = 0x1_0000_0000;

class VmAccount {
  rmapItems = 0;
  merging = 0;
  zero = 0;
  regions = 0;
  constructor(readonly name: string) {}
}

class Region {
  readonly state: Uint8Array;
  readonly checksum: Uint32Array;
  readonly age: Uint8Array;
  readonly skips: Uint8Array;
  readonly node: Int32Array;
  readonly next: Float64Array;
  readonly prev: Float64Array;
  constructor(
    readonly slot: number,
    readonly id: number,
    readonly space: AddressSpace,
    readonly start: number,
    readonly pages: number,
    readonly vm: VmAccount,
  ) {
    this.state = new Uint8Array(pages);
    this.checksum = new Uint32Array(pages);
    this.age = new Uint8Array(pages);
    this.skips = new Uint8Array(pages);
    this.node = new Int32Array(pages).fill(NIL);
    this.next = new Float64Array(pages).fill(NIL);
    this.prev = new Float64Array(pages).fill(NIL);
  }
}

/** Open-addressing table from a 32-bit key to a number, with O(1) clear by generation. */
class KeyIndex {
  keys: Uint32Array;
  vals: Float64Array;
  stamp: Uint32Array;
  gen = 1;
  count = 0;
  mask: number;

  constructor(capacity: number) {
    this.keys = new Uint32Array(capacity);
    this.vals = new Float64Array(capacity);
    this.stamp = new Uint32Array(capacity);
    this.mask = capacity - 1;
  }

  /** Slot holding key, or the empty slot where it would go (check `has`). */
  slot(key: number): number {
    let i = (key ^ (key >>> 16)) & this.mask;
    const g = this.gen;
    while (this.stamp[i] === g && this.keys[i] !== key) i = (i + 1) & this.mask;
    return i;
  }

  has(i: number): boolean {
    return this.stamp[i] === this.gen;
  }

  /** Sets slot i (from slot()) to key -> val. */
  put(i: number, key: number, val: number): void {
    if (this.stamp[i] !== this.gen) {
      this.stamp[i] = this.gen;
      this.keys[i] = key;
      this.count++;
    }
    this.vals[i] = val;
    if (this.count * 2 > this.mask + 1) this.grow();
  }

  clear(): void {
    this.count = 0;
    if (++this.gen === 0xffff_ffff) {
      this.stamp.fill(0);
      this.gen = 1;
    }
  }

  /** Rebuilds at twice the size, keeping entries whose value is not NIL. */
  grow(): void {
    const { keys, vals, stamp, gen } = this;
    const cap = (this.mask + 1) * 2;
    this.keys = new Uint32Array(cap);
    this.vals = new Float64Array(cap);
    this.stamp = new Uint32Array(cap);
    this.mask = cap - 1;
    this.gen = 1;
    this.count = 0;
    for (let i = 0; i < keys.length; i++) {
      if (stamp[i] !== gen || vals[i] === NIL) continue;
      const j = this.slot(keys[i]);
      this.stamp[j] = 1;
      this.keys[j] = keys[i];
      this.vals[j] = vals[i];
      this.count++;
    }
  }
}

/** Options of Ksm. */
export interface KsmOptions {
  /** Timers for the scan loop (default: the platform's). */
  scheduler?: Scheduler;
  /** Initial knob values (default: Linux's, with run 0). */
  knobs?: Partial<KsmKnobs>;
}

/** A range registered with Ksm.register. */
export interface KsmRegion {
  readonly id: number;
  readonly vm: string;
  readonly start: number;
  readonly size: number;
}

/** The KSM engine: register mergeable guest RAM, then run it (knob run = 1) or call scanBatch(). */
export class Ksm {
  private readonly sched: Scheduler;
  private readonly k: KsmKnobs;
  private host: HostMemory | null = null;
  private regions: (Region | null)[] = [];
  private order: Region[] = [];
  private readonly vms = new Map<string, VmAccount>();
  private nextRegionId = 1;
  private cursor = 0;
  private cursorPage = 0;
  private roundStart = true;
  private timer = -1;

  // Counters.
  private rmapItems = 0;
  private unshared = 0;
  private stableItems = 0;
  private liveNodes = 0;
  private zeroPages = 0;
  private scanned = 0;
  private skipped = 0;
  private fullScans = 0;
  private chains = 0;
  private dups = 0;
  /** Merges undone behind the scanner's back, noticed on a later visit (COW breaks, discards). */
  staleMappings = 0;

  // Stable nodes (struct of arrays) and chains.
  private nFrame = new Int32Array(64);
  private nKey = new Uint32Array(64);
  private nCount = new Int32Array(64);
  private nHead = new Float64Array(64);
  private nNext = new Int32Array(64);
  private nChain = new Int32Array(64);
  private nodeTop = 0;
  private freeNodes: number[] = [];
  private chainDups = new Int32Array(16);
  private chainTop = 0;
  private freeChains: number[] = [];
  private readonly stable = new KeyIndex(1024);
  private readonly unstable = new KeyIndex(1024);
  private zeroChecksum = 0;

  constructor(opts: KsmOptions = {}) {
    this.sched = opts.scheduler ?? new RealScheduler();
    this.k = { ...KSM_DEFAULTS };
    const w = new Uint32Array(1024);
    this.zeroChecksum = xxh32Page(w, 0);
    if (opts.knobs !== undefined) for (const [name, v] of Object.entries(opts.knobs)) this.set(name as keyof KsmKnobs, v);
  }

  // ---- registration ------------------------------------------------------------------

  /**
   * Registers [start, start + size) of a guest's RAM as mergeable (MADV_MERGEABLE), accounted
   * to `vm`. All spaces must share one HostMemory. Returns the region id.
   */
  register(space: AddressSpace, start: number, size: number, vm = 'vm'): number {
    if (!Number.isInteger(start) || !Number.isInteger(size) || start < 0 || size <= 0 || start % PAGE !== 0 || size % PAGE !== 0) {
      throw new RangeError('Ksm.register: start and size must be page-aligned, size > 0');
    }
    if (size / PAGE > 0x4000_0000) throw new RangeError('Ksm.register: region larger than 2^30 pages');
    if (this.host == null) this.host = space.host;
    else if (space.host !== this.host) throw new Error('Ksm.register: every space must share one HostMemory');
    for (const r of this.order) {
      if (r.space === space && start < r.start + r.pages * PAGE && r.start < start + size) throw new RangeError(`Ksm.register: overlaps region ${r.id}`);
    }
    let acct = this.vms.get(vm);
    if (acct === undefined) {
      acct = new VmAccount(vm);
      this.vms.set(vm, acct);
    }
    let slot = this.regions.indexOf(null);
    if (slot < 0) slot = this.regions.length;
    const r = new Region(slot, this.nextRegionId++, space, start, size / PAGE, acct);
    this.regions[slot] = r;
    this.order.push(r);
    acct.regions++;
    return r.id;
  }

  /**
   * Unregisters a region (MADV_UNMERGEABLE). With `unmerge` (default true) its merged pages get
   * private copies again, as Linux does; otherwise they stay shared copy-on-write, untracked.
   * Returns how many pages could not be unmerged for lack of host memory.
   */
  unregister(id: number, unmerge = true): number {
    const i = this.order.findIndex((r) => r.id === id);
    if (i < 0) throw new RangeError(`Ksm.unregister: no region ${id}`);
    const r = this.order[i];
    const failed = this.forgetRegion(r, unmerge);
    this.order.splice(i, 1);
    this.regions[r.slot] = null;
    r.vm.regions--;
    if (r.vm.regions === 0) this.vms.delete(r.vm.name);
    // Unstable entries may point into the slot: empty the index (it is rebuilt every scan anyway).
    this.unstable.clear();
    if (i < this.cursor) this.cursor--;
    else if (i === this.cursor) this.cursorPage = 0;
    if (this.cursor >= this.order.length) {
      this.cursor = 0;
      this.cursorPage = 0;
    }
    return failed;
  }

  /** Registered regions. */
  list(): KsmRegion[] {
    return this.order.map((r) => ({ id: r.id, vm: r.vm.name, start: r.start, size: r.pages * PAGE }));
  }

  private forgetRegion(r: Region, unmerge: boolean): number {
    let failed = 0;
    for (let p = 0; p < r.pages; p++) {
      const st = r.state[p];
      if (st === S_STABLE) {
        this.detach(r, p);
        if (unmerge && r.space.breakCow(r.start + p * PAGE) < 0) failed++;
      } else if (st === S_ZERO) {
        this.zeroPages--;
        r.vm.zero--;
      }
      if (r.state[p] === S_UNSTABLE) this.unshared--;
      if (r.state[p] === S_ITEM || r.state[p] === S_UNSTABLE) {
        this.rmapItems--;
        r.vm.rmapItems--;
      }
      r.state[p] = S_NONE;
    }
    return failed;
  }

  // ---- knobs and counters ----------------------------------------------------------------

  /** Current knob values (a copy). */
  get knobs(): KsmKnobs {
    return { ...this.k };
  }

  /** Writes a knob as `echo value > /sys/kernel/mm/ksm/<name>` would; throws KsmKnobError where Linux fails. */
  set(name: keyof KsmKnobs, value: number): void {
    if (!(name in KSM_DEFAULTS)) throw new KsmKnobError('EINVAL', `unknown knob ${String(name)}`);
    if (!Number.isInteger(value) || value < 0 || value > 0xffff_ffff) throw new KsmKnobError('EINVAL', `${name}: ${value} is not an unsigned integer`);
    switch (name) {
      case 'run':
        if (value > 2) throw new KsmKnobError('EINVAL', 'run: 0, 1 or 2');
        break;
      case 'merge_across_nodes':
      case 'use_zero_pages':
      case 'smart_scan':
        if (value > 1) throw new KsmKnobError('EINVAL', `${name}: 0 or 1`);
        if (name === 'merge_across_nodes' && value !== this.k.merge_across_nodes && this.liveNodes > 0) {
          throw new KsmKnobError('EBUSY', 'merge_across_nodes: KSM pages exist');
        }
        break;
      case 'max_page_sharing':
        if (value < 2) throw new KsmKnobError('EINVAL', 'max_page_sharing: at least 2');
        if (value !== this.k.max_page_sharing && this.liveNodes > 0) throw new KsmKnobError('EBUSY', 'max_page_sharing: KSM pages exist');
        break;
      case 'pages_to_scan':
        if (value === 0) throw new KsmKnobError('EINVAL', 'pages_to_scan: at least 1');
        break;
      default:
        break;
    }
    this.k[name] = value;
    if (name === 'run') {
      if (value === 2) this.unmergeAll();
      this.schedule();
    }
  }

  /** Counters with Linux's names. */
  counters(): KsmCounters {
    const sharing = this.stableItems - this.liveNodes;
    return {
      pages_shared: this.liveNodes,
      pages_sharing: sharing,
      pages_unshared: this.unshared,
      pages_volatile: this.rmapItems - this.liveNodes - sharing - this.unshared,
      pages_scanned: this.scanned,
      pages_skipped: this.skipped,
      full_scans: this.fullScans,
      stable_node_chains: this.chains,
      stable_node_dups: this.dups,
      ksm_zero_pages: this.zeroPages,
      general_profit: (sharing + this.zeroPages) * PAGE - this.rmapItems * KSM_RMAP_ITEM_BYTES,
    };
  }

  /** /proc/<pid>/ksm_stat for one VM (zeros for an unknown VM). */
  vmStat(vm: string): KsmVmStat {
    const a = this.vms.get(vm);
    if (a === undefined) return { ksm_rmap_items: 0, ksm_merging_pages: 0, ksm_zero_pages: 0, ksm_process_profit: 0 };
    return {
      ksm_rmap_items: a.rmapItems,
      ksm_merging_pages: a.merging,
      ksm_zero_pages: a.zero,
      ksm_process_profit: (a.merging + a.zero) * PAGE - a.rmapItems * KSM_RMAP_ITEM_BYTES,
    };
  }

  /** Like `grep -r . /sys/kernel/mm/ksm`: one `/sys/kernel/mm/ksm/<name>:<value>` line per file, sorted. */
  sysfs(): string {
    const all: Record<string, number> = { ...this.k, ...this.counters() };
    return Object.keys(all)
      .sort()
      .map((n) => `/sys/kernel/mm/ksm/${n}:${all[n]}\n`)
      .join('');
  }

  /** Reads one sysfs file ("value\n"). */
  readFile(name: string): string {
    const all: Record<string, number> = { ...this.k, ...this.counters() };
    if (!(name in all)) throw new KsmKnobError('EINVAL', `no file ${name}`);
    return `${all[name]}\n`;
  }

  /** Writes one sysfs knob file from text, as a shell `echo` would. */
  writeFile(name: string, text: string): void {
    const t = text.trim();
    if (!/^\d+$/.test(t)) throw new KsmKnobError('EINVAL', `${name}: "${t}" is not a number`);
    this.set(name as keyof KsmKnobs, Number(t));
  }

  // ---- the scanner (ksmd) --------------------------------------------------------------

  private schedule(): void {
    if (this.k.run === 1) {
      if (this.timer < 0) this.timer = this.sched.setTimer(0, () => this.tick());
    } else if (this.timer >= 0) {
      this.sched.cancelTimer(this.timer);
      this.timer = -1;
    }
  }

  private tick(): void {
    this.timer = -1;
    if (this.k.run !== 1) return;
    this.scanBatch();
    this.timer = this.sched.setTimer(this.k.sleep_millisecs, () => this.tick());
  }

  /**
   * One ksmd wake-up: scans up to pages_to_scan pages (absent and skipped pages do not count,
   * but at most 64 x pages_to_scan + 1024 are visited). Returns the pages scanned.
   */
  scanBatch(pages: number = this.k.pages_to_scan, stopAtRoundEnd = false): number {
    const order = this.order;
    if (order.length === 0) return 0;
    let scanned = 0;
    let visits = 0;
    const maxVisits = pages * 64 + 1024;
    while (scanned < pages && visits < maxVisits) {
      if (this.roundStart) {
        this.unstable.clear();
        this.roundStart = false;
      }
      const r = order[this.cursor];
      if (this.cursorPage >= r.pages) {
        this.cursorPage = 0;
        if (++this.cursor >= order.length) {
          this.cursor = 0;
          this.fullScans++;
          this.roundStart = true;
          if (stopAtRoundEnd) break;
        }
        continue;
      }
      visits++;
      if (this.scanPage(r, this.cursorPage++)) scanned++;
    }
    return scanned;
  }

  /** Scans until `count` more full scans have completed (for tests and benchmarks). Returns pages scanned. */
  scanFull(count = 1): number {
    const target = this.fullScans + count;
    let n = 0;
    while (this.fullScans < target && this.order.length > 0) n += this.scanBatch(this.k.pages_to_scan, true);
    return n;
  }

  /** One page; true when it counts as scanned. */
  private scanPage(r: Region, p: number): boolean {
    const gpa = r.start + p * PAGE;
    const space = r.space;
    const f = space.frameAt(gpa);
    let st = r.state[p];
    if (st === S_STABLE) {
      if (f === this.nFrame[r.node[p]]) {
        this.scanned++;
        return true; // still merged: KSM pages are never skipped
      }
      this.staleMappings++;
      this.detach(r, p);
      st = S_ITEM;
    } else if (st === S_ZERO) {
      if (f === ZERO_FRAME) return false; // still the zero page: no rmap item
      this.zeroPages--;
      r.vm.zero--;
      this.staleMappings++;
      r.state[p] = st = S_NONE;
    }
    if (f <= ZERO_FRAME) {
      // Not present (never written, discarded, or the RAM slot went away): no rmap item.
      if (st !== S_NONE) this.dropItem(r, p, st);
      return false;
    }
    const fresh = st === S_NONE;
    if (fresh) {
      r.state[p] = st = S_ITEM;
      r.age[p] = 0;
      r.skips[p] = 0;
      this.rmapItems++;
      r.vm.rmapItems++;
    } else if (this.k.smart_scan !== 0) {
      const age = r.age[p];
      if (age !== 255) r.age[p] = age + 1;
      if (age >= 3) {
        if (r.skips[p] === 0) r.skips[p] = age <= 3 ? 1 : age <= 5 ? 2 : age <= 8 ? 4 : 8;
        else {
          r.skips[p]--;
          this.skipped++;
          if (st === S_UNSTABLE) {
            r.state[p] = S_ITEM;
            this.unshared--;
          }
          return false;
        }
      }
    }
    if (st === S_UNSTABLE) {
      r.state[p] = S_ITEM;
      this.unshared--;
    }
    this.scanned++;
    const host = this.host as HostMemory;
    const words = host.u32[f >>> host.chunkShift];
    const at = host.byteIndex(f) >>> 2;
    const cs = xxh32Page(words, at);

    // 1. Stable index.
    const si = this.stable.slot(cs);
    if (this.stable.has(si) && this.stable.vals[si] !== NIL && this.mergeStable(r, p, gpa, f, words, at, this.stable.vals[si])) return true;

    // 2. Volatility gate.
    if (fresh || r.checksum[p] !== cs) {
      r.checksum[p] = cs;
      return true;
    }

    // 3. Zero pages.
    if (this.k.use_zero_pages !== 0 && cs === this.zeroChecksum && isZero(words, at)) {
      space.discard(gpa, PAGE);
      if (space.frameAt(gpa) === ZERO_FRAME) {
        this.dropItem(r, p, S_ITEM);
        r.state[p] = S_ZERO;
        this.zeroPages++;
        r.vm.zero++;
      }
      return true;
    }

    // 4. Unstable index.
    const ui = this.unstable.slot(cs);
    const handle = r.slot * TWO32 + p;
    if (this.unstable.has(ui)) {
      const h = this.unstable.vals[ui];
      const qr = this.regions[Math.floor(h / TWO32)];
      const qp = h % TWO32;
      if (qr != null && qr.state[qp] === S_UNSTABLE && qr.checksum[qp] === cs && (qr !== r || qp !== p)) {
        const qgpa = qr.start + qp * PAGE;
        if (space.mergeWith(gpa, qr.space, qgpa) && space.frameAt(gpa) === f && qr.space.frameAt(qgpa) === f) {
          qr.state[qp] = S_ITEM;
          this.unshared--;
          const n = this.newNode(cs, f);
          this.attach(r, p, n);
          this.attach(qr, qp, n);
          this.unstable.vals[ui] = NIL;
          return true;
        }
      }
    }
    this.unstable.put(ui, cs, handle);
    r.state[p] = S_UNSTABLE;
    this.unshared++;
    return true;
  }

  /** Tries to map page p onto a KSM page of the same content among the nodes listed under its checksum. */
  private mergeStable(r: Region, p: number, gpa: number, f: number, words: Uint32Array, at: number, head: number): boolean {
    const host = this.host as HostMemory;
    const max = this.k.max_page_sharing;
    // Pick the identical node with the most sharers below max_page_sharing (Linux's choice of dup).
    let best = NIL;
    for (let n = head; n !== NIL; n = this.nNext[n]) {
      const nf = this.nFrame[n];
      if (nf === f) {
        best = n;
        break;
      }
      if (this.nCount[n] >= max || (best !== NIL && this.nCount[n] <= this.nCount[best])) continue;
      // A lone node under this checksum needs no comparison here: mergeWith compares the bytes.
      if ((n === head && this.nNext[n] === NIL) || samePage(words, at, host.u32[nf >>> host.chunkShift], host.byteIndex(nf) >>> 2)) best = n;
    }
    if (best === NIL) return false;
    const n = best;
    const nf = this.nFrame[n];
    if (nf !== f) {
      // mergeWith needs a guest page that maps the KSM frame: any live mapper of the node.
      let h = this.nHead[n];
      while (h !== NIL) {
        const mr = this.regions[Math.floor(h / TWO32)] as Region;
        const mp = h % TWO32;
        const mgpa = mr.start + mp * PAGE;
        if (mr.space.frameAt(mgpa) === nf) {
          if (!mr.space.mergeWith(mgpa, r.space, gpa) || r.space.frameAt(gpa) !== nf) return false;
          break;
        }
        const next = mr.next[mp];
        this.staleMappings++;
        const last = this.nCount[n] === 1;
        this.detach(mr, mp);
        if (last) return false; // the node is gone
        h = next;
      }
      if (h === NIL) return false;
    }
    this.attach(r, p, n);
    return true;
  }

  private attach(r: Region, p: number, n: number): void {
    const h = r.slot * TWO32 + p;
    const head = this.nHead[n];
    r.state[p] = S_STABLE;
    r.node[p] = n;
    r.prev[p] = NIL;
    r.next[p] = head;
    if (head !== NIL) (this.regions[Math.floor(head / TWO32)] as Region).prev[head % TWO32] = h;
    this.nHead[n] = h;
    this.nCount[n]++;
    this.stableItems++;
    r.vm.merging++;
    r.age[p] = 0;
    r.skips[p] = 0;
  }

  /** Takes page p off its stable node (it keeps its rmap item); frees the node when it was the last. */
  private detach(r: Region, p: number): void {
    const n = r.node[p];
    const prev = r.prev[p];
    const next = r.next[p];
    if (prev !== NIL) (this.regions[Math.floor(prev / TWO32)] as Region).next[prev % TWO32] = next;
    else this.nHead[n] = next;
    if (next !== NIL) (this.regions[Math.floor(next / TWO32)] as Region).prev[next % TWO32] = prev;
    r.prev[p] = NIL;
    r.next[p] = NIL;
    r.node[p] = NIL;
    r.state[p] = S_ITEM;
    this.stableItems--;
    r.vm.merging--;
    if (--this.nCount[n] === 0) this.freeNode(n);
  }

  private dropItem(r: Region, p: number, st: number): void {
    if (st === S_STABLE) this.detach(r, p);
    if (r.state[p] === S_UNSTABLE) this.unshared--;
    this.rmapItems--;
    r.vm.rmapItems--;
    r.state[p] = S_NONE;
  }

  private newNode(cs: number, f: number): number {
    let n = this.freeNodes.pop();
    if (n === undefined) {
      if (this.nodeTop === this.nFrame.length) this.growNodes();
      n = this.nodeTop++;
    }
    const host = this.host as HostMemory;
    host.ref(f); // the KSM page's own reference
    this.nFrame[n] = f;
    this.nKey[n] = cs;
    this.nCount[n] = 0;
    this.nHead[n] = NIL;
    this.nChain[n] = NIL;
    const si = this.stable.slot(cs);
    const head = this.stable.has(si) ? this.stable.vals[si] : NIL;
    this.nNext[n] = head;
    this.stable.put(si, cs, n);
    this.liveNodes++;
    // A node with the same bytes already exists (all full): the two are dups of one chain.
    const words = host.u32[f >>> host.chunkShift];
    const at = host.byteIndex(f) >>> 2;
    for (let m = head; m !== NIL; m = this.nNext[m]) {
      const mf = this.nFrame[m];
      if (!samePage(words, at, host.u32[mf >>> host.chunkShift], host.byteIndex(mf) >>> 2)) continue;
      let c = this.nChain[m];
      if (c === NIL) {
        c = this.freeChains.pop() ?? this.chainTop++;
        if (c >= this.chainDups.length) {
          const g = new Int32Array(this.chainDups.length * 2);
          g.set(this.chainDups);
          this.chainDups = g;
        }
        this.chainDups[c] = 1;
        this.nChain[m] = c;
        this.chains++;
        this.dups++;
      }
      this.nChain[n] = c;
      this.chainDups[c]++;
      this.dups++;
      break;
    }
    return n;
  }

  private freeNode(n: number): void {
    const host = this.host as HostMemory;
    const cs = this.nKey[n];
    const si = this.stable.slot(cs);
    // Unlink from the checksum's list.
    let prev = NIL;
    for (let m = this.stable.vals[si]; m !== NIL; prev = m, m = this.nNext[m]) {
      if (m !== n) continue;
      if (prev === NIL) this.stable.vals[si] = this.nNext[n];
      else this.nNext[prev] = this.nNext[n];
      break;
    }
    const c = this.nChain[n];
    if (c !== NIL) {
      this.dups--;
      if (--this.chainDups[c] === 1) {
        // One dup left: it becomes a plain stable node again (what the chain prune does).
        for (let m = this.stable.vals[si]; m !== NIL; m = this.nNext[m]) {
          if (this.nChain[m] !== c) continue;
          this.nChain[m] = NIL;
          break;
        }
        this.dups--;
        this.chains--;
        this.freeChains.push(c);
      }
    }
    host.unref(this.nFrame[n]);
    this.nFrame[n] = -1;
    this.liveNodes--;
    this.freeNodes.push(n);
  }

  private growNodes(): void {
    const cap = this.nFrame.length * 2;
    const g = <T extends Int32Array | Uint32Array | Float64Array>(a: T, make: (n: number) => T): T => {
      const b = make(cap);
      b.set(a);
      return b;
    };
    this.nFrame = g(this.nFrame, (n) => new Int32Array(n));
    this.nKey = g(this.nKey, (n) => new Uint32Array(n));
    this.nCount = g(this.nCount, (n) => new Int32Array(n));
    this.nHead = g(this.nHead, (n) => new Float64Array(n));
    this.nNext = g(this.nNext, (n) => new Int32Array(n));
    this.nChain = g(this.nChain, (n) => new Int32Array(n));
  }

  /** run = 2: unmerge every KSM page (private copies again) and stop. */
  private unmergeAll(): void {
    for (const r of this.order) {
      for (let p = 0; p < r.pages; p++) {
        if (r.state[p] === S_STABLE) {
          this.detach(r, p);
          r.space.breakCow(r.start + p * PAGE);
        } else if (r.state[p] === S_ZERO) {
          this.zeroPages--;
          r.vm.zero--;
          r.state[p] = S_NONE;
        }
      }
    }
  }
}

function samePage(a: Uint32Array, ai: number, b: Uint32Array, bi: number): boolean {
  for (let i = 0; i < 1024; i++) if (a[ai + i] !== b[bi + i]) return false;
  return true;
}

function isZero(w: Uint32Array, at: number): boolean {
  for (let i = 0; i < 1024; i++) if (w[at + i] !== 0) return false;
  return true;
}
