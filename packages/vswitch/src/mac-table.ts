// MAC learning table: (MAC, VLAN) -> port, with ageing and a size limit.
//
// Layout (no Map, no allocation per packet):
// - an open-addressing index with linear probing, one Int32Array with 3 words per slot:
//   [mac low 32 bits, mac high 16 bits | vlan << 16, entry id (-1 = empty)], so a probe reads
//   one cache line and compares two ints without following a pointer; deletions shift the
//   following cluster back (no tombstones), so lookups never degrade;
// - per-entry typed arrays (port, last-seen time, FIFO links) indexed by entry id, from a pool
//   of `limit` ids; when the table is full the oldest-learned entry is evicted, as OVS's
//   mac-table-size does.
// `generation` changes whenever an entry is added, removed, moves to another port or is
// refreshed after it aged out: with the
// clock unchanged, no lookup answer can change without it, so callers can cache a result and
// check it with one compare.

/** One learned entry, as reported by MacTable.entries(). */
export interface MacEntry {
  mac: string;
  vlan: number;
  port: number;
  ageSeconds: number;
}

const EMPTY = -1;

export class MacTable {
  readonly limit: number;
  /** Ageing time in milliseconds (OVS default 300 s). */
  agingMs: number;
  /** Bumped when an entry is added, removed or changes port (see the file comment). */
  generation = 0;
  private readonly index: Int32Array;
  private readonly slotMask: number;
  private readonly lo: Int32Array;
  private readonly hiVlan: Int32Array;
  private readonly port: Int32Array;
  private readonly seen: Float64Array;
  private readonly older: Int32Array;
  private readonly newer: Int32Array;
  /** Free entry ids (a stack). */
  private readonly free: Int32Array;
  private nFree: number;
  private oldest = -1;
  private newest = -1;
  /** Entries evicted because the table was full. */
  evictions = 0;

  constructor(limit = 8192, agingSeconds = 300) {
    if (!Number.isInteger(limit) || limit < 1 || limit > 1 << 22) throw new RangeError(`mac table size ${limit} out of range 1..4194304`);
    this.limit = limit;
    this.agingMs = agingSeconds * 1000;
    let slots = 16;
    while (slots < limit * 2) slots <<= 1; // load factor <= 1/2
    this.slotMask = slots - 1;
    this.index = new Int32Array(slots * 3);
    for (let s = 0; s < slots; s++) this.index[s * 3 + 2] = EMPTY;
    this.lo = new Int32Array(limit);
    this.hiVlan = new Int32Array(limit);
    this.port = new Int32Array(limit).fill(-1);
    this.seen = new Float64Array(limit);
    this.older = new Int32Array(limit);
    this.newer = new Int32Array(limit);
    this.free = new Int32Array(limit);
    for (let i = 0; i < limit; i++) this.free[i] = limit - 1 - i;
    this.nFree = limit;
  }

  get size(): number {
    return this.limit - this.nFree;
  }

  private home(lo: number, hv: number): number {
    let h = Math.imul(lo ^ Math.imul(hv, 0x9e3779b1), 0x85ebca6b);
    h ^= h >>> 15;
    h = Math.imul(h, 0xc2b2ae35);
    return (h ^ (h >>> 13)) & this.slotMask;
  }

  /** Index slot holding (lo, hv), or -1. */
  private slotOf(lo: number, hv: number): number {
    const idx = this.index;
    const mask = this.slotMask;
    let s = this.home(lo, hv);
    for (;;) {
      const b = s * 3;
      const id = idx[b + 2];
      if (id === EMPTY) return -1;
      if (idx[b] === lo && idx[b + 1] === hv) return s;
      s = (s + 1) & mask;
    }
  }

  /** Port learned for (mac, vlan), or -1 when unknown or aged out. hi: top 16 bits of the MAC, lo: low 32. */
  lookup(hi: number, lo: number, vlan: number, now: number): number {
    const s = this.slotOf(lo | 0, hi | (vlan << 16));
    if (s < 0) return -1;
    const id = this.index[s * 3 + 2];
    if (now - this.seen[id] > this.agingMs) return -1;
    return this.port[id];
  }

  /** Learns (or refreshes) an entry. Returns true when the port of the MAC changed or it is new. */
  learn(hi: number, lo: number, vlan: number, port: number, now: number): boolean {
    const l = lo | 0;
    const hv = hi | (vlan << 16);
    const idx = this.index;
    const mask = this.slotMask;
    let s = this.home(l, hv);
    for (;;) {
      const b = s * 3;
      const id = idx[b + 2];
      if (id === EMPTY) break;
      if (idx[b] === l && idx[b + 1] === hv) {
        // An aged entry coming back changes lookup answers too.
        if (now - this.seen[id] > this.agingMs) this.generation++;
        this.seen[id] = now;
        if (this.port[id] === port) return false;
        this.port[id] = port;
        this.generation++;
        return true;
      }
      s = (s + 1) & mask;
    }
    if (this.nFree === 0) {
      this.removeId(this.oldest);
      this.evictions++;
      // The removal may have shifted the cluster: find the free slot again.
      s = this.home(l, hv);
      while (idx[s * 3 + 2] !== EMPTY) s = (s + 1) & mask;
    }
    const id = this.free[--this.nFree];
    const b = s * 3;
    idx[b] = l;
    idx[b + 1] = hv;
    idx[b + 2] = id;
    this.lo[id] = l;
    this.hiVlan[id] = hv;
    this.port[id] = port;
    this.seen[id] = now;
    this.older[id] = this.newest;
    this.newer[id] = -1;
    if (this.newest >= 0) this.newer[this.newest] = id;
    else this.oldest = id;
    this.newest = id;
    this.generation++;
    return true;
  }

  private removeId(id: number): void {
    const idx = this.index;
    const mask = this.slotMask;
    let hole = this.slotOf(this.lo[id], this.hiVlan[id]);
    // Backward-shift deletion: pull later members of the cluster into the hole when their
    // home slot does not lie cyclically in (hole, j].
    let j = hole;
    for (;;) {
      j = (j + 1) & mask;
      const bj = j * 3;
      if (idx[bj + 2] === EMPTY) break;
      const h = this.home(idx[bj], idx[bj + 1]);
      const inRange = hole <= j ? h > hole && h <= j : h > hole || h <= j;
      if (inRange) continue;
      const bh = hole * 3;
      idx[bh] = idx[bj];
      idx[bh + 1] = idx[bj + 1];
      idx[bh + 2] = idx[bj + 2];
      hole = j;
    }
    idx[hole * 3 + 2] = EMPTY;
    const o = this.older[id];
    const n = this.newer[id];
    if (o >= 0) this.newer[o] = n;
    else this.oldest = n;
    if (n >= 0) this.older[n] = o;
    else this.newest = o;
    this.port[id] = -1;
    this.free[this.nFree++] = id;
    this.generation++;
  }

  /** Removes entries older than the ageing time. Returns how many were removed. */
  expire(now: number): number {
    let removed = 0;
    for (let id = this.oldest; id >= 0; ) {
      const next = this.newer[id];
      if (now - this.seen[id] > this.agingMs) {
        this.removeId(id);
        removed++;
      }
      id = next;
    }
    return removed;
  }

  /** Forgets every entry pointing at `port` (port removed or reconfigured). */
  flushPort(port: number): void {
    for (let id = this.oldest; id >= 0; ) {
      const next = this.newer[id];
      if (this.port[id] === port) this.removeId(id);
      id = next;
    }
  }

  flush(): void {
    while (this.oldest >= 0) this.removeId(this.oldest);
  }

  entries(now: number): MacEntry[] {
    const out: MacEntry[] = [];
    for (let i = this.oldest; i >= 0; i = this.newer[i]) {
      const hi = this.hiVlan[i] & 0xffff;
      const lo = this.lo[i] >>> 0;
      const b = [hi >> 8, hi & 255, lo >>> 24, (lo >>> 16) & 255, (lo >>> 8) & 255, lo & 255];
      out.push({
        mac: b.map((x) => x.toString(16).padStart(2, '0')).join(':'),
        vlan: this.hiVlan[i] >>> 16,
        port: this.port[i],
        ageSeconds: Math.max(0, Math.floor((now - this.seen[i]) / 1000)),
      });
    }
    return out;
  }
}
