/**
 * The narrow storage interface every image sits on: positional reads and writes, a durability
 * barrier, truncation and the current size. `pread` always returns `length` bytes; bytes past
 * the end of the store read as zero.
 */
export interface ByteStore {
  pread(offset: number, length: number): Promise<Uint8Array>;
  /** Optional: read `length` bytes at `offset` straight into `out[outOff..]` (zeros past the end). */
  preadInto?(offset: number, out: Uint8Array, outOff: number, length: number): Promise<void>;
  pwrite(offset: number, data: Uint8Array): Promise<void>;
  /** Durability barrier: every write issued before it is stable when it resolves. */
  flush(): Promise<void>;
  truncate(size: number): Promise<void>;
  size(): Promise<number>;
  close(): Promise<void>;
}

/** A growable in-memory byte store (browser, tests, scratch images). */
export class MemoryByteStore implements ByteStore {
  private buf: Uint8Array;
  private len: number;

  constructor(initial?: Uint8Array) {
    this.buf = initial ? initial.slice() : new Uint8Array(0);
    this.len = this.buf.length;
  }

  /** A copy of the current contents. */
  bytes(): Uint8Array {
    return this.buf.slice(0, this.len);
  }

  pread(offset: number, length: number): Promise<Uint8Array> {
    const out = new Uint8Array(length);
    if (offset < this.len) out.set(this.buf.subarray(offset, Math.min(this.len, offset + length)));
    return Promise.resolve(out);
  }

  pwrite(offset: number, data: Uint8Array): Promise<void> {
    const end = offset + data.length;
    this.ensure(end);
    this.buf.set(data, offset);
    if (end > this.len) this.len = end;
    return Promise.resolve();
  }

  flush(): Promise<void> {
    return Promise.resolve();
  }

  truncate(size: number): Promise<void> {
    if (size > this.len) this.ensure(size);
    else this.buf.fill(0, size, this.len);
    this.len = size;
    return Promise.resolve();
  }

  size(): Promise<number> {
    return Promise.resolve(this.len);
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  private ensure(end: number): void {
    if (end <= this.buf.length) return;
    let cap = Math.max(4096, this.buf.length);
    while (cap < end) cap *= 2;
    const nb = new Uint8Array(cap);
    nb.set(this.buf.subarray(0, this.len));
    this.buf = nb;
  }
}
