/**
 * Host frames: 4 KiB pages of "host physical" memory held in several large ArrayBuffers.
 *
 * Frame n lives at host-physical address n * 4096. Frames are grouped in chunks of
 * 2^chunkShift frames; each chunk is one ArrayBuffer created the first time one of its frames is
 * handed out, so a 6 GiB guest that touches 10 MiB costs about one chunk. Frame 0 is the shared
 * zero frame: always allocated, pinned, never written (guest pages that were never written map
 * to it read-only).
 *
 * Per-frame metadata (flat typed arrays indexed by frame number, grown as chunks are created):
 *   refs[f]   reference count (0 = free). A frame mapped by several guest pages (copy-on-write
 *             sharing, the zero frame) has refs > 1.
 *   flags[f]  bit 0 FRAME_SHARED  refs > 1: a write must copy first (maintained by ref/unref)
 *             bit 1 FRAME_CODE    the CPU's JIT holds translated code from this frame; writes
 *                                 call onWatchedWrite before they land
 *             bit 2 FRAME_WP      write-protected for KSM; writes call onWatchedWrite first
 *             bit 3 FRAME_TABLE   holds EPT / IOMMU paging structures (host-owned, not guest RAM)
 *   A frame whose flags are 0 may be written directly; any flag sends writers to the slow path.
 */

export const FRAME_SHIFT = 12;
export const FRAME_SIZE = 4096;
export const FRAME_SHARED = 1;
export const FRAME_CODE = 2;
export const FRAME_WP = 4;
export const FRAME_TABLE = 8;
/** Flags that make a write leave the fast path. */
export const FRAME_WRITE_SLOW: number = FRAME_SHARED | FRAME_CODE | FRAME_WP;
/** The shared, always-zero frame. */
export const ZERO_FRAME = 0;

/** Something that caches write permission to frames (a TLB) and must drop it on demand. */
export interface WriteCache {
  /** Forget any cached right to write to this frame. */
  dropWrite(frame: number): void;
  /** Forget everything cached (frames were freed or remapped). */
  flushAll(): void;
}

export interface HostMemoryOptions {
  /** log2 of frames per chunk (default 14: 64 MiB buffers). */
  chunkShift?: number;
  /** Most frames this host may hand out (default 2^22 = 16 GiB). */
  maxFrames?: number;
}

export class HostMemory {
  readonly chunkShift: number;
  readonly chunkFrames: number;
  readonly chunkMask: number;
  readonly maxFrames: number;
  /** Byte view of each chunk; index with chunkOf(frame) and byteIndex(frame). */
  u8: Uint8Array[] = [];
  /** 32-bit little-endian view of each chunk (index = byte index >> 2). */
  u32: Uint32Array[] = [];
  /** DataView of each chunk, for unaligned little-endian accesses within a frame. */
  dv: DataView[] = [];
  refs: Uint32Array = new Uint32Array(0);
  flags: Uint8Array = new Uint8Array(0);
  /** Called before a write lands in a frame with FRAME_CODE or FRAME_WP. */
  onWatchedWrite: ((frame: number, flags: number) => void) | null = null;

  private freeList: Int32Array = new Int32Array(64);
  private freeCount = 0;
  /** Frames below this have been created (their chunk exists). */
  private fresh = 0;
  private used = 0;
  private readonly caches: WriteCache[] = [];

  constructor(options: HostMemoryOptions = {}) {
    const shift = options.chunkShift ?? 14;
    if (!Number.isInteger(shift) || shift < 1 || shift > 18) throw new RangeError(`chunkShift must be 1..18, got ${shift}`);
    const max = options.maxFrames ?? 1 << 22;
    if (!Number.isInteger(max) || max < 2 || max > 0x7fff_ffff) throw new RangeError(`maxFrames must be 2..2^31-1, got ${max}`);
    this.chunkShift = shift;
    this.chunkFrames = 1 << shift;
    this.chunkMask = this.chunkFrames - 1;
    this.maxFrames = max;
    const zero = this.alloc();
    if (zero !== ZERO_FRAME) throw new Error('HostMemory: zero frame must be frame 0');
    this.ref(ZERO_FRAME); // pinned: refs >= 2, so it is always FRAME_SHARED and never written
  }

  /** Frames currently allocated (including the zero frame). */
  get framesInUse(): number {
    return this.used;
  }

  /** Bytes of ArrayBuffer created so far. */
  get bytesReserved(): number {
    return this.u8.length * this.chunkFrames * FRAME_SIZE;
  }

  chunkOf(frame: number): number {
    return frame >>> this.chunkShift;
  }

  /** Byte index of the frame's first byte inside its chunk. */
  byteIndex(frame: number): number {
    return (frame & this.chunkMask) << FRAME_SHIFT;
  }

  /** Registers a TLB (or other cache of write rights) to be told when a frame becomes watched. */
  addWriteCache(cache: WriteCache): void {
    if (!this.caches.includes(cache)) this.caches.push(cache);
  }

  removeWriteCache(cache: WriteCache): void {
    const i = this.caches.indexOf(cache);
    if (i >= 0) this.caches.splice(i, 1);
  }

  /**
   * Allocates one zero-filled frame with refs = 1, or returns -1 when the host is out of frames
   * (never throws on the allocation path).
   */
  alloc(): number {
    let f: number;
    if (this.freeCount > 0) {
      f = this.freeList[--this.freeCount];
      this.u8[f >>> this.chunkShift].fill(0, this.byteIndex(f), this.byteIndex(f) + FRAME_SIZE);
    } else {
      if (this.fresh >= this.maxFrames) return -1;
      f = this.fresh;
      if ((f & this.chunkMask) === 0) this.addChunk();
      this.fresh++;
    }
    this.refs[f] = 1;
    this.flags[f] = 0;
    this.used++;
    return f;
  }

  /**
   * Allocates `count` frames that are consecutive inside one chunk (so a guest range backed by
   * them has a single host view). Returns the first frame or -1.
   */
  allocRun(count: number): number {
    if (!Number.isInteger(count) || count < 1 || count > this.chunkFrames) return -1;
    let f = this.fresh;
    const room = this.chunkFrames - (f & this.chunkMask);
    if ((f & this.chunkMask) !== 0 && room < count) {
      // Give the tail of the current chunk to the free list and start a new chunk.
      for (let i = 0; i < room; i++) this.pushFree(f + i);
      f += room;
      this.fresh = f;
    }
    if (f + count > this.maxFrames) return -1;
    if ((f & this.chunkMask) === 0) this.addChunk();
    this.fresh = f + count;
    for (let i = 0; i < count; i++) {
      this.refs[f + i] = 1;
      this.flags[f + i] = 0;
    }
    this.used += count;
    return f;
  }

  /** Adds a reference to an allocated frame. */
  ref(frame: number): void {
    this.checkLive(frame);
    const r = ++this.refs[frame];
    if (r > 1) this.flags[frame] |= FRAME_SHARED;
  }

  /** Drops a reference; the frame is freed when the count reaches 0. Returns the new count. */
  unref(frame: number): number {
    this.checkLive(frame);
    const r = --this.refs[frame];
    if (r <= 1) this.flags[frame] &= ~FRAME_SHARED;
    if (r === 0) {
      // A frame that held decoded code is about to be reused: its decodes must go too.
      if ((this.flags[frame] & FRAME_CODE) !== 0) this.notifyWrite(frame);
      this.flags[frame] = 0;
      this.used--;
      this.pushFree(frame);
    }
    return r;
  }

  refCount(frame: number): number {
    return frame >= 0 && frame < this.fresh ? this.refs[frame] : 0;
  }

  /** Sets or clears FRAME_CODE / FRAME_WP on a frame; setting one revokes cached write rights. */
  setWatch(frame: number, flag: number, on: boolean): void {
    if ((flag & ~(FRAME_CODE | FRAME_WP)) !== 0 || flag === 0) throw new RangeError('setWatch: flag must be FRAME_CODE and/or FRAME_WP');
    // Clearing is allowed on a frame that unref() is freeing: its watchers are told (and drop
    // their watch) after the last reference is gone, just before the frame is reused.
    if (!on && Number.isInteger(frame) && frame >= 0 && frame < this.fresh) {
      this.flags[frame] &= ~flag;
      return;
    }
    this.checkLive(frame);
    if (on) {
      this.flags[frame] |= flag;
      for (const c of this.caches) c.dropWrite(frame);
    } else {
      this.flags[frame] &= ~flag;
    }
  }

  /** Tells every registered cache to drop everything (used after remapping or freeing frames). */
  flushWriteCaches(): void {
    for (const c of this.caches) c.flushAll();
  }

  /** Called by writers that found FRAME_CODE or FRAME_WP set, before they write. */
  notifyWrite(frame: number): void {
    const fl = this.flags[frame] & (FRAME_CODE | FRAME_WP);
    if (fl !== 0 && this.onWatchedWrite != null) this.onWatchedWrite(frame, fl);
  }

  /** A byte view of one whole frame (allocates a view: not for hot paths). */
  frameBytes(frame: number): Uint8Array {
    this.checkLive(frame);
    const b = this.byteIndex(frame);
    return this.u8[frame >>> this.chunkShift].subarray(b, b + FRAME_SIZE);
  }

  copyFrame(dst: number, src: number): void {
    const s = this.byteIndex(src);
    this.u8[dst >>> this.chunkShift].set(this.u8[src >>> this.chunkShift].subarray(s, s + FRAME_SIZE), this.byteIndex(dst));
  }

  /** 32-bit read at a byte offset (multiple of 4) inside a frame. */
  readU32(frame: number, offset: number): number {
    return this.u32[frame >>> this.chunkShift][(this.byteIndex(frame) + offset) >>> 2];
  }

  writeU32(frame: number, offset: number, value: number): void {
    this.u32[frame >>> this.chunkShift][(this.byteIndex(frame) + offset) >>> 2] = value;
  }

  private checkLive(frame: number): void {
    if (!Number.isInteger(frame) || frame < 0 || frame >= this.fresh || this.refs[frame] === 0) {
      throw new RangeError(`HostMemory: frame ${frame} is not allocated`);
    }
  }

  private pushFree(f: number): void {
    if (this.freeCount === this.freeList.length) {
      const n = new Int32Array(this.freeList.length * 2);
      n.set(this.freeList);
      this.freeList = n;
    }
    this.freeList[this.freeCount++] = f;
  }

  private addChunk(): void {
    const buf = new ArrayBuffer(this.chunkFrames * FRAME_SIZE);
    this.u8.push(new Uint8Array(buf));
    this.u32.push(new Uint32Array(buf));
    this.dv.push(new DataView(buf));
    const need = this.u8.length * this.chunkFrames;
    if (this.refs.length < need) {
      const cap = Math.min(Math.max(need, this.refs.length * 2), Math.max(need, this.maxFrames));
      const r = new Uint32Array(cap);
      r.set(this.refs);
      this.refs = r;
      const fl = new Uint8Array(cap);
      fl.set(this.flags);
      this.flags = fl;
    }
  }
}
