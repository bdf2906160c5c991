// MAC learning table: (MAC, VLAN) -> port index, with ageing and a size limit.
// Entries live in preallocated typed arrays (a pool of `limit` slots chained from a bucket
// array); when the table is full the oldest-learned entry is evicted (FIFO order kept in a
// doubly linked list), as OVS's mac-table-size does. No allocation per packet.

/** One learned entry, as reported by MacTable.entries(). */
export interface MacEntry {
  mac: string;
  vlan: number;
  port: number;
  ageSeconds: number;
}

export class MacTable {
  readonly limit: number;
  /** Ageing time in milliseconds (OVS default 300 s). */
  agingMs: number;
  private readonly hi: Uint16Array;
  private readonly lo: Uint32Array;
  private readonly vlan: Uint16Array;
  private readonly port: Int32Array;
  private readonly seen: Float64Array;
  private readonly chain: Int32Array;
  private readonly older: Int32Array;
  private readonly newer: Int32Array;
  private readonly heads: Int32Array;
  private readonly bucketMask: number;
  private freeHead: number;
  private oldest = -1;
  private newest = -1;
  private count = 0;
  /** Entries evicted because the table was full. */
  evictions = 0;

  constructor(limit = 8192, agingSeconds = 300) {
    if (!Number.isInteger(limit) || limit < 1 || limit > 1 << 22) throw new RangeError(`mac table size ${limit} out of range 1..4194304`);
    this.limit = limit;
    this.agingMs = agingSeconds * 1000;
    this.hi = new Uint16Array(limit);
    this.lo = new Uint32Array(limit);
    this.vlan = new Uint16Array(limit);
    this.port = new Int32Array(limit).fill(-1);
    this.seen = new Float64Array(limit);
    this.chain = new Int32Array(limit);
    this.older = new Int32Array(limit);
    this.newer = new Int32Array(limit);
    let buckets = 16;
    while (buckets < limit * 2) buckets <<= 1;
    this.heads = new Int32Array(buckets).fill(-1);
    this.bucketMask = buckets - 1;
    for (let i = 0; i < limit; i++) this.chain[i] = i + 1 < limit ? i + 1 : -1;
    this.freeHead = 0;
  }

  get size(): number {
    return this.count;
  }

  private bucket(hi: number, lo: number, vlan: number): number {
    let h = Math.imul(lo ^ 0x9e3779b9, 0x85ebca6b);
    h = Math.imul(h ^ (h >>> 13) ^ (hi << 12) ^ vlan, 0xc2b2ae35);
    return (h ^ (h >>> 16)) & this.bucketMask;
  }

  private find(hi: number, lo: number, vlan: number): number {
    let i = this.heads[this.bucket(hi, lo, vlan)];
    while (i >= 0) {
      if (this.lo[i] === lo && this.hi[i] === hi && this.vlan[i] === vlan) return i;
      i = this.chain[i];
    }
    return -1;
  }

  /** Port index learned for (mac, vlan), or -1 when unknown or aged out. */
  lookup(hi: number, lo: number, vlan: number, now: number): number {
    const i = this.find(hi, lo, vlan);
    if (i < 0 || now - this.seen[i] > this.agingMs) return -1;
    return this.port[i];
  }

  /** Learns (or refreshes) an entry. Returns true when the port of the MAC changed or it is new. */
  learn(hi: number, lo: number, vlan: number, port: number, now: number): boolean {
    let i = this.find(hi, lo, vlan);
    if (i >= 0) {
      this.seen[i] = now;
      if (this.port[i] === port) return false;
      this.port[i] = port;
      return true;
    }
    if (this.freeHead < 0) {
      this.remove(this.oldest);
      this.evictions++;
    }
    i = this.freeHead;
    this.freeHead = this.chain[i];
    this.hi[i] = hi;
    this.lo[i] = lo;
    this.vlan[i] = vlan;
    this.port[i] = port;
    this.seen[i] = now;
    const b = this.bucket(hi, lo, vlan);
    this.chain[i] = this.heads[b];
    this.heads[b] = i;
    this.older[i] = this.newest;
    this.newer[i] = -1;
    if (this.newest >= 0) this.newer[this.newest] = i;
    else this.oldest = i;
    this.newest = i;
    this.count++;
    return true;
  }

  private remove(i: number): void {
    const b = this.bucket(this.hi[i], this.lo[i], this.vlan[i]);
    let p = this.heads[b];
    if (p === i) this.heads[b] = this.chain[i];
    else {
      while (this.chain[p] !== i) p = this.chain[p];
      this.chain[p] = this.chain[i];
    }
    const o = this.older[i];
    const n = this.newer[i];
    if (o >= 0) this.newer[o] = n;
    else this.oldest = n;
    if (n >= 0) this.older[n] = o;
    else this.newest = o;
    this.port[i] = -1;
    this.chain[i] = this.freeHead;
    this.freeHead = i;
    this.count--;
  }

  /** Removes entries older than the ageing time. Returns how many were removed. */
  expire(now: number): number {
    let removed = 0;
    for (let i = 0; i < this.limit; i++) {
      if (this.port[i] >= 0 && now - this.seen[i] > this.agingMs) {
        this.remove(i);
        removed++;
      }
    }
    return removed;
  }

  /** Forgets every entry pointing at `port` (port removed or reconfigured). */
  flushPort(port: number): void {
    for (let i = 0; i < this.limit; i++) if (this.port[i] === port) this.remove(i);
  }

  flush(): void {
    for (let i = 0; i < this.limit; i++) if (this.port[i] >= 0) this.remove(i);
  }

  entries(now: number): MacEntry[] {
    const out: MacEntry[] = [];
    for (let i = this.oldest; i >= 0; i = this.newer[i]) {
      const b = [this.hi[i] >> 8, this.hi[i] & 255, this.lo[i] >>> 24, (this.lo[i] >>> 16) & 255, (this.lo[i] >>> 8) & 255, this.lo[i] & 255];
      out.push({
        mac: b.map((x) => x.toString(16).padStart(2, '0')).join(':'),
        vlan: this.vlan[i],
        port: this.port[i],
        ageSeconds: Math.max(0, Math.floor((now - this.seen[i]) / 1000)),
      });
    }
    return out;
  }
}
