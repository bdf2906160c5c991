// Fast path caches in front of the OpenFlow tables, as in OVS's userspace datapath:
// - an exact-match cache (EMC): 8192 slots, two candidate slots per key hash, full key compare;
// - a megaflow cache: tuple-space search over the wildcard masks the slow path reported.
// Both hold compiled datapath programs and key on the packet words of the flow key only
// (registers are zero on arrival; translation marks the packet bits they are computed from). Invalidation bumps a generation (EMC) and clears the
// megaflow subtables: the bridge does it on every flow-table or port change.
import { PKT_WORDS } from './consts.js';
import type { Flow } from './flow.js';

/**
 * A compiled action program (the result of translating a packet through the tables). Each
 * translation context owns one scratch Program that is reset and refilled on every miss
 * (no allocation); the caches keep right-sized copies made by compact().
 */
export class Program {
  /** Op codes with inline operands (see OP_* in bridge.ts); nOps are valid. */
  ops: Int32Array;
  nOps = 0;
  /** Objects referenced by ops (learn specs, flows for packet-in cookies). */
  refs: unknown[] = [];
  nRefs = 0;
  /** Flows whose counters each packet bumps. */
  flows: Flow[] = [];
  nFlows = 0;
  /** Table ids looked up, and 1/0 whether each lookup matched (dump-tables counters). */
  tables: Int32Array;
  matched: Uint8Array;
  nTables = 0;

  constructor(opsCapacity = 64, tablesCapacity = 8) {
    this.ops = new Int32Array(Math.max(1, opsCapacity));
    this.tables = new Int32Array(Math.max(1, tablesCapacity));
    this.matched = new Uint8Array(Math.max(1, tablesCapacity));
  }

  reset(): void {
    for (let i = 0; i < this.nRefs; i++) this.refs[i] = null;
    for (let i = 0; i < this.nFlows; i++) this.flows[i] = null as unknown as Flow;
    this.nOps = 0;
    this.nRefs = 0;
    this.nFlows = 0;
    this.nTables = 0;
  }

  private room(n: number): Int32Array {
    if (this.nOps + n > this.ops.length) {
      const o = new Int32Array(Math.max(this.ops.length * 2, this.nOps + n));
      o.set(this.ops.subarray(0, this.nOps));
      this.ops = o;
    }
    return this.ops;
  }

  op1(a: number): void {
    this.room(1)[this.nOps++] = a;
  }

  op2(a: number, b: number): void {
    const o = this.room(2);
    o[this.nOps++] = a;
    o[this.nOps++] = b;
  }

  op3(a: number, b: number, c: number): void {
    const o = this.room(3);
    o[this.nOps++] = a;
    o[this.nOps++] = b;
    o[this.nOps++] = c;
  }

  op4(a: number, b: number, c: number, d: number): void {
    const o = this.room(4);
    o[this.nOps++] = a;
    o[this.nOps++] = b;
    o[this.nOps++] = c;
    o[this.nOps++] = d;
  }

  /** Stores a reference and returns its index. */
  ref(x: unknown): number {
    this.refs[this.nRefs] = x;
    return this.nRefs++;
  }

  /** Adds a flow to be counted (once per program). */
  flow(f: Flow): void {
    for (let i = 0; i < this.nFlows; i++) if (this.flows[i] === f) return;
    this.flows[this.nFlows++] = f;
  }

  table(id: number, matched: boolean): void {
    if (this.nTables === this.tables.length) {
      const t = new Int32Array(this.tables.length * 2);
      t.set(this.tables);
      this.tables = t;
      const m = new Uint8Array(this.matched.length * 2);
      m.set(this.matched);
      this.matched = m;
    }
    this.tables[this.nTables] = id;
    this.matched[this.nTables++] = matched ? 1 : 0;
  }

  /** A right-sized copy, for the caches. */
  compact(): Program {
    const p = new Program(this.nOps, this.nTables);
    p.ops.set(this.ops.subarray(0, this.nOps));
    p.nOps = this.nOps;
    p.refs = this.refs.slice(0, this.nRefs);
    p.nRefs = this.nRefs;
    p.flows = this.flows.slice(0, this.nFlows);
    p.nFlows = this.nFlows;
    p.tables.set(this.tables.subarray(0, this.nTables));
    p.matched.set(this.matched.subarray(0, this.nTables));
    p.nTables = this.nTables;
    return p;
  }
}

/**
 * EMC row layout (one Uint32Array, ROW words per slot, so that a probe touches one row):
 *   0..PKT_WORDS-1  the packet key
 *   EMC_GEN         the cache generation the row was written in (stale rows have an old one)
 *   EMC_MEMO        NORMAL memo: stamp << 16 | output port (0xffff: flood); stamp 0 = none (see Bridge.normal)
 */
const ROW = 16;
export const EMC_GEN: number = PKT_WORDS;
export const EMC_MEMO: number = PKT_WORDS + 1;

export class ExactMatchCache {
  readonly size: number;
  /** The rows (see the layout above); readable by the bridge for the NORMAL memo. */
  readonly rows: Uint32Array;
  private readonly progs: (Program | null)[];
  private gen = 1;
  private readonly smask: number;
  /** Counts row writes and invalidations: a row offset kept across other packets is only trusted while it is unchanged. */
  writes = 0;

  constructor(size = 8192) {
    if ((size & (size - 1)) !== 0 || size < 2) throw new RangeError('EMC size must be a power of two');
    this.size = size;
    this.smask = size - 1;
    this.rows = new Uint32Array(size * ROW);
    this.progs = new Array<Program | null>(size).fill(null);
  }

  /** The row offset (slot * ROW) holding `key`, or -1. */
  lookupRow(key: Uint32Array, hash: number): number {
    const rows = this.rows;
    const gen = this.gen;
    let b = (hash & this.smask) * ROW;
    if (rows[b + EMC_GEN] === gen && same(rows, b, key)) return b;
    b = ((hash >>> 16) & this.smask) * ROW;
    if (rows[b + EMC_GEN] === gen && same(rows, b, key)) return b;
    return -1;
  }

  /** The program of a row returned by lookupRow() or insert(). */
  program(row: number): Program {
    return this.progs[row / ROW]!;
  }

  lookup(key: Uint32Array, hash: number): Program | null {
    const b = this.lookupRow(key, hash);
    return b < 0 ? null : this.progs[b / ROW];
  }

  /** Stores `prog` for `key`; returns the row offset. */
  insert(key: Uint32Array, hash: number, prog: Program): number {
    const rows = this.rows;
    const s1 = hash & this.smask;
    const s2 = (hash >>> 16) & this.smask;
    const slot = rows[s1 * ROW + EMC_GEN] !== this.gen ? s1 : rows[s2 * ROW + EMC_GEN] !== this.gen ? s2 : (hash & 0x100) !== 0 ? s1 : s2;
    const b = slot * ROW;
    for (let i = 0; i < PKT_WORDS; i++) rows[b + i] = key[i];
    rows[b + EMC_GEN] = this.gen;
    rows[b + EMC_MEMO] = 0;
    this.progs[slot] = prog;
    this.writes++;
    return b;
  }

  invalidate(): void {
    this.writes++;
    this.gen = (this.gen + 1) >>> 0;
    if (this.gen === 0) {
      for (let b = EMC_GEN; b < this.rows.length; b += ROW) this.rows[b] = 0;
      this.gen = 1;
    }
  }
}

function same(rows: Uint32Array, b: number, key: Uint32Array): boolean {
  for (let i = 0; i < PKT_WORDS; i++) if (rows[b + i] !== key[i]) return false;
  return true;
}

class MegaEntry {
  readonly value: Uint32Array;
  readonly prog: Program;
  next: MegaEntry | null;
  constructor(value: Uint32Array, prog: Program, next: MegaEntry | null) {
    this.value = value;
    this.prog = prog;
    this.next = next;
  }
}

class MegaSubtable {
  readonly mask: Uint32Array;
  readonly words: Int32Array;
  buckets: (MegaEntry | null)[] = new Array<MegaEntry | null>(16).fill(null);
  count = 0;
  hits = 0;

  constructor(mask: Uint32Array) {
    this.mask = mask.slice();
    const w: number[] = [];
    for (let i = 0; i < PKT_WORDS; i++) if (mask[i] !== 0) w.push(i);
    this.words = Int32Array.from(w);
  }

  hash(key: Uint32Array): number {
    let h = 0x27d4eb2f;
    const words = this.words;
    const mask = this.mask;
    for (let i = 0; i < words.length; i++) {
      const w = words[i];
      h = Math.imul(h ^ (key[w] & mask[w]), 0x5bd1e995);
      h ^= h >>> 13;
    }
    return (h ^ (h >>> 15)) >>> 0;
  }
}

export class MegaflowCache {
  readonly limit: number;
  private subtables: MegaSubtable[] = [];
  count = 0;

  constructor(limit = 65536) {
    this.limit = limit;
  }

  lookup(key: Uint32Array): Program | null {
    const sts = this.subtables;
    for (let i = 0; i < sts.length; i++) {
      const st = sts[i];
      const words = st.words;
      const mask = st.mask;
      let e = st.buckets[st.hash(key) & (st.buckets.length - 1)];
      while (e != null) {
        let ok = true;
        for (let j = 0; j < words.length; j++) {
          const w = words[j];
          if (((key[w] & mask[w]) >>> 0) !== e.value[w]) {
            ok = false;
            break;
          }
        }
        if (ok) {
          st.hits++;
          return e.prog;
        }
        e = e.next;
      }
    }
    return null;
  }

  insert(key: Uint32Array, mask: Uint32Array, prog: Program): void {
    if (this.count >= this.limit) this.invalidate();
    let st: MegaSubtable | null = null;
    outer: for (const s of this.subtables) {
      for (let i = 0; i < PKT_WORDS; i++) if (s.mask[i] !== mask[i]) continue outer;
      st = s;
      break;
    }
    if (st == null) {
      st = new MegaSubtable(mask);
      this.subtables.push(st);
    }
    if (st.count >= st.buckets.length) {
      const old = st.buckets;
      st.buckets = new Array<MegaEntry | null>(old.length * 2).fill(null);
      for (let e of old) {
        while (e != null) {
          const nx: MegaEntry | null = e.next;
          const b = st.hash(e.value) & (st.buckets.length - 1);
          e.next = st.buckets[b];
          st.buckets[b] = e;
          e = nx;
        }
      }
    }
    const value = new Uint32Array(PKT_WORDS);
    for (let i = 0; i < PKT_WORDS; i++) value[i] = (key[i] & mask[i]) >>> 0;
    const b = st.hash(value) & (st.buckets.length - 1);
    st.buckets[b] = new MegaEntry(value, prog, st.buckets[b]);
    st.count++;
    this.count++;
  }

  invalidate(): void {
    this.subtables = [];
    this.count = 0;
  }

  get masks(): number {
    return this.subtables.length;
  }
}
