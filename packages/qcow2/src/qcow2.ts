import { BitmapTracker } from './bitmaps';
import type { BlockDevice, BlockStatus, BlockStatusSource } from './device';
import { checkRange, ImageError } from './device';
import type { ByteStore } from './store';
import type { ClusterCodec } from './compress';
import { getCodec } from './compress';
import type { QcowHeader, SnapshotEntry } from './format';
import {
  AUTOCLEAR_DATA_FILE_RAW,
  AUTOCLEAR_KNOWN,
  COMPAT_LAZY_REFCOUNTS,
  getU64,
  HI_COMPRESSED,
  HI_COPIED,
  HI_OFFSET_MASK,
  INCOMPAT_CORRUPT,
  INCOMPAT_DATA_FILE,
  INCOMPAT_DIRTY,
  INCOMPAT_EXTL2,
  LO_OFFSET_MASK,
  parseHeader,
  parseSnapshots,
  serializeHeader,
  setU64,
} from './format';

/** Cluster (or subcluster) kinds as QEMU classifies L2 entries. */
export const KIND_UNALLOCATED = 0;
export const KIND_ZERO_PLAIN = 1;
export const KIND_ZERO_ALLOC = 2;
export const KIND_NORMAL = 3;
export const KIND_COMPRESSED = 4;
export const KIND_INVALID = 5;

const TWO32 = 4294967296;

/** A device usable as a backing file: readable, optionally with block status. */
export type BackingDevice = BlockDevice & Partial<BlockStatusSource>;

export interface Qcow2OpenOptions {
  readOnly?: boolean;
  /** Opens the backing file the header names (relative names are the caller's business). */
  openBacking?: (name: string, format: string | null) => Promise<BackingDevice>;
  /** Opens the external data file the header names. */
  openDataFile?: (name: string) => Promise<ByteStore>;
  /** Ignore the backing file (unallocated clusters read as zeros). */
  noBacking?: boolean;
  /** L2 cache budget in bytes (default 32 MiB). */
  l2CacheBytes?: number;
  /** Rebuild refcounts of an image left dirty (default true on read-write opens). */
  repairDirty?: boolean;
  /**
   * A faster codec for a compression type (0 zlib, 1 zstd), e.g. the Node adapter's native
   * zlib; null or undefined keeps the built-in isomorphic one.
   */
  codec?: (compressionType: number) => ClusterCodec | null | Promise<ClusterCodec | null>;
}

interface Table {
  offset: number;
  data: Uint8Array;
  dv: DataView;
  dirty: boolean;
}

/**
 * A request's hold on a guest byte range (cluster-aligned). Requests whose ranges overlap and
 * at least one of which writes run in submission order; the others run side by side.
 */
interface RangeHold {
  start: number;
  end: number;
  write: boolean;
  done: Promise<void>;
  release: () => void;
}

/** What one write step left to do outside the metadata lock. */
interface WritePlan {
  /** Bytes of the request this step covers. */
  n: number;
  /** Host offset to write them at, or -1 when the step already wrote them. */
  host: number;
  /** The clusters were freshly allocated: their L2 entries are set after the data write. */
  alloc: boolean;
}

function entryOffset(hi: number, lo: number): number {
  return (hi & HI_OFFSET_MASK) * TWO32 + ((lo & LO_OFFSET_MASK) >>> 0);
}

function corruptError(msg: string): ImageError {
  return new ImageError(msg, 'EIO');
}

/**
 * A qcow2 image opened over a ByteStore. Several requests can be in flight: each holds its
 * guest range (cluster-aligned), so overlapping requests run in submission order while the
 * others overlap; every metadata lookup or change (L1/L2, refcounts, allocation) runs under
 * one metadata lock, and guest data moves outside it. Newly allocated clusters get their L2
 * entry only after their data is written. `flush()` and whole-image operations are barriers.
 *
 * Crash consistency: guest data is written in place immediately; metadata changes are kept in
 * the L2/refcount caches and written by `flush()` in dependency order, with a store barrier
 * between steps: refcount increments, refcount table, L2 tables, L1 table, then refcount
 * decrements for clusters whose last reference was removed (so on disk a refcount is never
 * below the number of references).
 */
export class Qcow2Image implements BlockDevice, BlockStatusSource {
  readonly store: ByteStore;
  readOnly: boolean;
  header: QcowHeader;
  readonly clusterSize: number;
  readonly clusterBits: number;
  readonly extendedL2: boolean;
  /** Bytes per L2 entry (8, or 16 with extended L2). */
  readonly l2EntryBytes: number;
  readonly l2Entries: number;
  readonly subclusterSize: number;
  readonly refcountBits: number;
  readonly refblockEntries: number;
  backing: BackingDevice | null = null;
  dataStore: ByteStore;
  snapshots: SnapshotEntry[] = [];

  // Active L1 table as hi/lo words.
  l1Hi: Uint32Array = new Uint32Array(0);
  l1Lo: Uint32Array = new Uint32Array(0);
  private l1DirtyMin = -1;
  private l1DirtyMax = -1;
  // Refcount table: block offsets.
  reftable: Float64Array = new Float64Array(0);
  private reftableDirtyMin = -1;
  private reftableDirtyMax = -1;
  private readonly l2Cache = new Map<number, Table>();
  private readonly rbCache = new Map<number, Table>();
  private readonly l2CacheMax: number;
  private pendingFrees: number[] = [];
  private freeHint = 0;
  private freeByte = 0;
  fileEnd = 0;
  private queue: Promise<unknown> = Promise.resolve();
  private codec: ClusterCodec | null = null;
  private decompHost = -1;
  private decompBuf: Uint8Array;
  private dirtyMarked = false;
  private cBuf: Uint8Array | null = null;
  private cBufStart = 0;
  private cBufLen = 0;
  private bitmapsMarked = false;
  private bitmapTracker: BitmapTracker | null = null;
  private closed = false;
  /** close() was called: new requests are refused. */
  private closing = false;
  private holds: RangeHold[] = [];
  private l2Set = new Set<number>();
  private rbSet = new Set<number>();

  protected constructor(store: ByteStore, header: QcowHeader, readOnly: boolean, l2CacheBytes: number) {
    this.store = store;
    this.dataStore = store;
    this.header = header;
    this.readOnly = readOnly;
    this.clusterBits = header.clusterBits;
    this.clusterSize = 2 ** header.clusterBits;
    this.extendedL2 = (header.incompatLo & INCOMPAT_EXTL2) !== 0;
    this.l2EntryBytes = this.extendedL2 ? 16 : 8;
    this.l2Entries = this.clusterSize / this.l2EntryBytes;
    this.subclusterSize = this.extendedL2 ? this.clusterSize / 32 : this.clusterSize;
    this.refcountBits = 2 ** header.refcountOrder;
    this.refblockEntries = (this.clusterSize * 8) / this.refcountBits;
    this.l2CacheMax = Math.max(2, Math.floor(l2CacheBytes / this.clusterSize));
    this.decompBuf = new Uint8Array(this.clusterSize);
  }

  /** Open an existing image. */
  static async open(store: ByteStore, options: Qcow2OpenOptions = {}): Promise<Qcow2Image> {
    const fileSize = await store.size();
    // Only cluster 0 (header, extensions, backing name), as QEMU: reading more would pull guest
    // data into the page cache, which changes what SEEK_DATA reports for unwritten extents.
    const first = await store.pread(0, Math.min(Math.max(fileSize, 72), 512));
    const bits = first.length >= 24 ? first[23] | (first[22] << 8) | (first[21] << 16) | (first[20] << 24) : 0;
    const headLen = bits >= 9 && bits <= 21 ? 2 ** bits : 2 * 1024 * 1024;
    const head = headLen <= first.length ? first : await store.pread(0, Math.min(Math.max(fileSize, 72), headLen));
    const header = parseHeader(head.subarray(0, Math.min(head.length, Math.max(fileSize, 72))), fileSize);
    const cs = 2 ** header.clusterBits;
    const readOnly = options.readOnly ?? false;
    if (!readOnly && header.incompatLo & INCOMPAT_CORRUPT) {
      throw new ImageError('Image is corrupt; cannot be opened read/write', 'EACCES');
    }
    const img = new Qcow2Image(store, header, readOnly, options.l2CacheBytes ?? 32 * 1024 * 1024);
    img.fileEnd = fileSize;
    // L1 and refcount tables are bounded by the header checks (32 MiB and 8 MiB).
    const l1Bytes = await store.pread(header.l1TableOffset, header.l1Size * 8);
    img.loadL1(l1Bytes, header.l1Size);
    const rtEntries = (header.refcountTableClusters * cs) / 8;
    const rt = await store.pread(header.refcountTableOffset, rtEntries * 8);
    const rdv = new DataView(rt.buffer, rt.byteOffset, rt.byteLength);
    img.reftable = new Float64Array(rtEntries);
    for (let i = 0; i < rtEntries; i++) {
      const v = getU64(rdv, i * 8);
      const off = v - (v % 512);
      img.reftable[i] = off;
      if (off) img.rbSet.add(off);
    }
    if (header.nbSnapshots) {
      // Each entry is at least 40 bytes plus id/name; read in bounded steps.
      const maxBytes = Math.min(header.nbSnapshots * (40 + 1024 + 65535 * 2 + 8), 64 * 1024 * 1024, Math.max(0, fileSize - header.snapshotsOffset));
      const sbuf = await store.pread(header.snapshotsOffset, maxBytes);
      img.snapshots = parseSnapshots(sbuf, header.nbSnapshots, header.size);
      for (const s of img.snapshots) {
        if (s.l1TableOffset % cs) throw new ImageError('Snapshot L1 table offset invalid', 'EINVAL');
        if (s.l1Size * 8 > 32 * 1024 * 1024) throw new ImageError('Snapshot L1 table too large', 'EINVAL');
      }
    }
    if (header.incompatLo & INCOMPAT_DATA_FILE) {
      if (header.dataFile == null) throw new ImageError("Could not open data file: the image names none", 'EINVAL');
      if (!options.openDataFile) throw new ImageError(`Data file '${header.dataFile}' cannot be opened here`, 'ENOTSUP');
      img.dataStore = await options.openDataFile(header.dataFile);
    }
    img.codec = (await options.codec?.(header.compressionType)) ?? (await getCodec(header.compressionType));
    if (header.backingFile != null && !options.noBacking) {
      if (!options.openBacking) throw new ImageError(`Could not open backing file '${header.backingFile}'`, 'ENOENT');
      img.backing = await options.openBacking(header.backingFile, header.backingFormat);
    }
    if (!readOnly) {
      if (header.version === 3 && (header.autoclearLo & ~AUTOCLEAR_KNOWN || header.autoclearHi)) {
        header.autoclearLo &= AUTOCLEAR_KNOWN;
        header.autoclearHi = 0;
        await img.writeFeatureWords();
      }
      if (header.incompatLo & INCOMPAT_DIRTY && (options.repairDirty ?? true)) {
        const { repairImage } = await import('./check');
        await repairImage(img, 'all');
        header.incompatLo &= ~INCOMPAT_DIRTY;
        await img.writeFeatureWords();
        await store.flush();
      }
    }
    return img;
  }

  get size(): number {
    return this.header.size;
  }

  get isDirty(): boolean {
    return (this.header.incompatLo & INCOMPAT_DIRTY) !== 0;
  }

  get isCorrupt(): boolean {
    return (this.header.incompatLo & INCOMPAT_CORRUPT) !== 0;
  }

  /**
   * Run `fn` as a barrier: after every earlier request finished and before any later one
   * starts, holding the metadata lock (whole-image operations: snapshots, check, flush).
   */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    return this.withRange(0, Infinity, true, () => this.meta(fn));
  }

  /** Run `fn` under the metadata lock (FIFO); never wait for a range inside it. */
  private meta<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.queue.then(fn);
    this.queue = p.catch(() => undefined);
    return p;
  }

  /** Take [start, end) after every earlier conflicting request (FIFO per overlap). */
  private lockRange(start: number, end: number, write: boolean): Promise<RangeHold> {
    let waits: Promise<void>[] | null = null;
    const holds = this.holds;
    for (let i = 0; i < holds.length; i++) {
      const h = holds[i];
      if ((write || h.write) && h.start < end && start < h.end) (waits ??= []).push(h.done);
    }
    let release!: () => void;
    const done = new Promise<void>((r) => {
      release = r;
    });
    const hold: RangeHold = { start, end, write, done, release };
    holds.push(hold);
    if (!waits) return Promise.resolve(hold);
    return (waits.length === 1 ? waits[0] : Promise.all(waits)).then(() => hold);
  }

  private unlockRange(h: RangeHold): void {
    const i = this.holds.indexOf(h);
    if (i >= 0) this.holds.splice(i, 1);
    h.release();
  }

  private async withRange<T>(start: number, end: number, write: boolean, fn: () => Promise<T>): Promise<T> {
    const h = await this.lockRange(start, end, write);
    try {
      return await fn();
    } finally {
      this.unlockRange(h);
    }
  }

  /** The cluster-aligned range a request at [offset, offset+length) holds. */
  private lockCluster(offset: number, length: number, write: boolean): Promise<RangeHold> {
    const cs = this.clusterSize;
    return this.lockRange(Math.floor(offset / cs) * cs, Math.ceil((offset + length) / cs) * cs, write);
  }

  loadL1(bytes: Uint8Array, n: number): void {
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.l1Hi = new Uint32Array(n);
    this.l1Lo = new Uint32Array(n);
    this.l2Set.clear();
    for (let i = 0; i < n; i++) {
      this.l1Hi[i] = dv.getUint32(i * 8);
      this.l1Lo[i] = dv.getUint32(i * 8 + 4);
      const off = entryOffset(this.l1Hi[i], this.l1Lo[i]);
      if (off) this.l2Set.add(off);
    }
  }

  // ---------------------------------------------------------------- public block device API

  async read(offset: number, length: number): Promise<Uint8Array> {
    this.checkOpen();
    checkRange(this, offset, length);
    const out = new Uint8Array(length);
    await this.readShared(offset, out, 0, length, false);
    return out;
  }

  /** Read into `out[outOff..outOff+length)` (any previous content is overwritten). */
  async readIntoBuffer(offset: number, out: Uint8Array, outOff: number, length: number): Promise<void> {
    this.checkOpen();
    checkRange(this, offset, length);
    // Only what reads as zeros is zero-filled (not the whole buffer first).
    await this.readShared(offset, out, outOff, length, true);
  }

  /**
   * Reads look clusters up under the metadata lock (compressed clusters are inflated there
   * too), then move plain data and backing-file data outside it, beside other requests.
   */
  private async readShared(offset: number, out: Uint8Array, outOff: number, length: number, zeroFill: boolean): Promise<void> {
    const h = await this.lockCluster(offset, length, false);
    try {
      const plan: number[] = [];
      await this.meta(async () => {
        await this.readInto(offset, out, outOff, length, plan, zeroFill);
        this.trimCaches();
      });
      const ds = this.dataStore;
      for (let i = 0; i < plan.length; i += 4) {
        const at = plan[i + 1];
        const o = plan[i + 2];
        const n = plan[i + 3];
        if (plan[i] === 1) await this.readBacking(at, out, o, n);
        else if (ds.preadInto) await ds.preadInto(at, out, o, n);
        else out.set(await ds.pread(at, n), o);
      }
    } finally {
      this.unlockRange(h);
    }
  }

  async write(offset: number, data: Uint8Array): Promise<void> {
    this.checkWritable();
    checkRange(this, offset, data.length);
    const h = await this.lockCluster(offset, data.length, true);
    try {
      const plan: WritePlan = { n: 0, host: -1, alloc: false };
      const len = data.length;
      let pos = 0;
      while (pos < len) {
        const at = offset + pos;
        const from = pos;
        await this.meta(async () => {
          await this.markDirtyIfLazy();
          await this.trimCachesAsync();
          await this.writeStep(at, data, from, len - from, plan);
        });
        const n = plan.n;
        if (plan.host >= 0) {
          const host = plan.host;
          await this.dataStore.pwrite(host, data.subarray(from, from + n));
          if (plan.alloc) await this.meta(() => this.commitAlloc(at, host, n));
        }
        pos += n;
      }
      this.bitmapTracker?.dirty(offset, len);
    } finally {
      this.unlockRange(h);
    }
  }

  /** Write one full cluster compressed (falls back to a plain write when it doesn't shrink). */
  writeCompressed(offset: number, data: Uint8Array): Promise<void> {
    return this.writePrecompressed(offset, data, undefined);
  }

  /** The header's compression type (0 zlib, 1 zstd). */
  get compressionType(): number {
    return this.header.compressionType;
  }

  /** The codec of this image's compression type (to compress clusters ahead, in parallel). */
  get compressionCodec(): ClusterCodec {
    return this.codec!;
  }

  /**
   * Like `writeCompressed`, with `compressed` already produced by `compressionCodec` for a
   * zero-padded cluster with limit `clusterSize - 1` (null: did not shrink; undefined:
   * compress here).
   */
  async writePrecompressed(offset: number, data: Uint8Array, compressed: Uint8Array | null | undefined): Promise<void> {
    this.checkWritable();
    checkRange(this, offset, data.length);
    if (offset % this.clusterSize || (data.length !== this.clusterSize && offset + data.length !== this.size)) {
      throw new ImageError('Compressed writes must cover one whole cluster', 'EINVAL');
    }
    if (compressed && compressed.length >= this.clusterSize) throw new ImageError('Compressed data larger than a cluster', 'EINVAL');
    const h = await this.lockCluster(offset, data.length, true);
    try {
      await this.meta(async () => {
        await this.markDirtyIfLazy();
        await this.writeCompressedLocked(offset, data, compressed);
        this.bitmapTracker?.dirty(offset, data.length);
        await this.trimCachesAsync();
      });
    } finally {
      this.unlockRange(h);
    }
  }

  /** A barrier: waits for every earlier request, then makes their metadata durable. */
  async flush(): Promise<void> {
    this.checkOpen();
    if (this.readOnly) return;
    await this.exclusive(() => this.flushMetadata());
  }

  async discard(offset: number, length: number): Promise<void> {
    this.checkWritable();
    checkRange(this, offset, length);
    await this.zeroShared(offset, length, true);
  }

  async writeZeroes(offset: number, length: number): Promise<void> {
    this.checkWritable();
    checkRange(this, offset, length);
    await this.zeroShared(offset, length, false);
  }

  private async zeroShared(offset: number, length: number, discard: boolean): Promise<void> {
    const h = await this.lockCluster(offset, length, true);
    try {
      await this.meta(async () => {
        await this.markDirtyIfLazy();
        await this.zeroRange(offset, length, discard);
        this.bitmapTracker?.dirty(offset, length);
        await this.trimCachesAsync();
      });
    } finally {
      this.unlockRange(h);
    }
  }

  close(): Promise<void> {
    if (this.closed || this.closing) return this.closed ? Promise.resolve() : this.exclusive(() => Promise.resolve());
    this.closing = true;
    return this.exclusive(async () => {
      if (this.closed) return;
      if (!this.readOnly) {
        await this.flushMetadata();
        if (this.bitmapTracker) await this.bitmapTracker.finish();
        if (this.dirtyMarked) {
          this.header.incompatLo &= ~INCOMPAT_DIRTY;
          await this.writeFeatureWords();
          await this.store.flush();
        }
      }
      this.closed = true;
      if (this.dataStore !== this.store) await this.dataStore.close();
      await this.store.close();
      if (this.backing) await this.backing.close();
    });
  }

  async blockStatus(offset: number, length: number): Promise<BlockStatus> {
    this.checkOpen();
    checkRange(this, offset, length);
    const h = await this.lockCluster(offset, length, false);
    try {
      return await this.meta(() => this.blockStatusLocked(offset, length));
    } finally {
      this.unlockRange(h);
    }
  }

  // ---------------------------------------------------------------- classification

  /** Kind of the (sub)cluster at guest offset `off` given its L2 entry words. */
  kindOf(hi: number, lo: number, bhi: number, blo: number, inCluster: number): number {
    if (hi & HI_COMPRESSED) return KIND_COMPRESSED;
    if (this.extendedL2) {
      const sc = Math.floor(inCluster / this.subclusterSize);
      const bit = 1 << sc;
      const alloc = (blo & bit) !== 0;
      const zero = (bhi & bit) !== 0;
      if (alloc && zero) return KIND_INVALID;
      if (zero) return KIND_ZERO_PLAIN;
      if (alloc) return entryOffset(hi, lo) || this.hasDataFileRaw() ? KIND_NORMAL : KIND_INVALID;
      return KIND_UNALLOCATED;
    }
    const off = entryOffset(hi, lo);
    if (lo & 1) return off ? KIND_ZERO_ALLOC : KIND_ZERO_PLAIN;
    if (off) return KIND_NORMAL;
    if (hi & HI_COPIED && this.dataStore !== this.store) return KIND_NORMAL;
    return KIND_UNALLOCATED;
  }

  private hasDataFileRaw(): boolean {
    return this.dataStore !== this.store;
  }

  /** Extent of uniform kind starting inside one cluster: number of bytes from inCluster. */
  private runInCluster(bhi: number, blo: number, inCluster: number, maxLen: number, kind: number, hi: number): number {
    if (!this.extendedL2 || hi & HI_COMPRESSED) return Math.min(maxLen, this.clusterSize - inCluster);
    const scs = this.subclusterSize;
    let end = (Math.floor(inCluster / scs) + 1) * scs;
    while (end < this.clusterSize && end - inCluster < maxLen) {
      const bit = 1 << (end / scs);
      const k = blo & bit && bhi & bit ? KIND_INVALID : bhi & bit ? KIND_ZERO_PLAIN : blo & bit ? KIND_NORMAL : KIND_UNALLOCATED;
      if (k !== kind) break;
      end += scs;
    }
    return Math.min(maxLen, end - inCluster);
  }

  // ---------------------------------------------------------------- tables and caches

  async loadTable(cache: Map<number, Table>, offset: number): Promise<Table> {
    let t = cache.get(offset);
    if (t) {
      cache.delete(offset);
      cache.set(offset, t);
      return t;
    }
    const data = await this.store.pread(offset, this.clusterSize);
    t = { offset, data, dv: new DataView(data.buffer, data.byteOffset, data.byteLength), dirty: false };
    cache.set(offset, t);
    return t;
  }

  /** L2 table for L1 index `l1i` (read path), or null when unallocated. */
  async getL2(l1i: number): Promise<Table | null> {
    if (l1i >= this.l1Hi.length) return null;
    const off = entryOffset(this.l1Hi[l1i], this.l1Lo[l1i]);
    if (off === 0) return null;
    if (off % this.clusterSize || off < this.clusterSize) {
      await this.signalCorruption(`L2 table offset 0x${off.toString(16)} unaligned (L1 index: 0x${l1i.toString(16)})`);
    }
    return this.loadTable(this.l2Cache, off);
  }

  private setL1(l1i: number, off: number, copied: boolean): void {
    const old = entryOffset(this.l1Hi[l1i], this.l1Lo[l1i]);
    if (old) this.l2Set.delete(old);
    this.l1Hi[l1i] = (copied ? HI_COPIED : 0) | Math.floor(off / TWO32);
    this.l1Lo[l1i] = off >>> 0;
    if (off) this.l2Set.add(off);
    if (this.l1DirtyMin < 0 || l1i < this.l1DirtyMin) this.l1DirtyMin = l1i;
    if (l1i > this.l1DirtyMax) this.l1DirtyMax = l1i;
  }

  /** L2 table for writing: allocated, and private to the active L1 (COW if shared). */
  private async getL2ForWrite(l1i: number): Promise<Table> {
    const hi = this.l1Hi[l1i];
    const off = entryOffset(hi, this.l1Lo[l1i]);
    if (off && hi & HI_COPIED) {
      const t = await this.getL2(l1i);
      return t!;
    }
    const newOff = await this.allocClusters(1);
    const data = new Uint8Array(this.clusterSize);
    if (off) {
      const old = await this.getL2(l1i);
      data.set(old!.data);
      this.pendingFrees.push(off);
    }
    const t: Table = { offset: newOff, data, dv: new DataView(data.buffer), dirty: true };
    this.l2Cache.set(newOff, t);
    this.setL1(l1i, newOff, true);
    return t;
  }

  private touch(cache: Map<number, Table>, t: Table): void {
    t.dirty = true;
    if (cache.get(t.offset) !== t) cache.set(t.offset, t);
  }

  private trimCaches(): void {
    if (this.l2Cache.size > this.l2CacheMax) {
      for (const [k, t] of this.l2Cache) {
        if (this.l2Cache.size <= this.l2CacheMax) break;
        if (!t.dirty) this.l2Cache.delete(k);
      }
    }
    if (this.rbCache.size > 64) {
      for (const [k, t] of this.rbCache) {
        if (this.rbCache.size <= 64) break;
        if (!t.dirty) this.rbCache.delete(k);
      }
    }
  }

  private async trimCachesAsync(): Promise<void> {
    if (this.l2Cache.size > this.l2CacheMax * 2 || this.rbCache.size > 256 || this.pendingFrees.length > 65536) {
      await this.flushMetadata();
    }
    this.trimCaches();
  }

  // ---------------------------------------------------------------- refcounts

  private readRefEntry(t: Table, i: number): number {
    switch (this.refcountBits) {
      case 16:
        return t.dv.getUint16(i * 2);
      case 8:
        return t.data[i];
      case 32:
        return t.dv.getUint32(i * 4);
      case 64:
        return t.dv.getUint32(i * 8) * TWO32 + t.dv.getUint32(i * 8 + 4);
      default: {
        const bits = this.refcountBits;
        const bitPos = i * bits;
        return (t.data[bitPos >>> 3] >>> (bitPos & 7)) & ((1 << bits) - 1);
      }
    }
  }

  private writeRefEntry(t: Table, i: number, v: number): void {
    switch (this.refcountBits) {
      case 16:
        t.dv.setUint16(i * 2, v);
        return;
      case 8:
        t.data[i] = v;
        return;
      case 32:
        t.dv.setUint32(i * 4, v);
        return;
      case 64:
        setU64(t.dv, i * 8, v);
        return;
      default: {
        const bits = this.refcountBits;
        const bitPos = i * bits;
        const mask = ((1 << bits) - 1) << (bitPos & 7);
        t.data[bitPos >>> 3] = (t.data[bitPos >>> 3] & ~mask) | ((v << (bitPos & 7)) & mask);
      }
    }
  }

  get maxRefcount(): number {
    return this.refcountBits >= 53 ? Number.MAX_SAFE_INTEGER : 2 ** this.refcountBits - 1;
  }

  async getRefBlock(blockIndex: number): Promise<Table | null> {
    if (blockIndex >= this.reftable.length) return null;
    const off = this.reftable[blockIndex];
    if (!off) return null;
    if (off % this.clusterSize) {
      await this.signalCorruption(`Refblock offset 0x${off.toString(16)} unaligned (reftable index: 0x${blockIndex.toString(16)})`);
    }
    return this.loadTable(this.rbCache, off);
  }

  async getRefcount(ci: number): Promise<number> {
    const b = Math.floor(ci / this.refblockEntries);
    const t = await this.getRefBlock(b);
    return t ? this.readRefEntry(t, ci - b * this.refblockEntries) : 0;
  }

  /** Add `delta` to the refcount of cluster `ci`; the refcount block must exist when delta < 0. */
  private async addRefcount(ci: number, delta: number): Promise<number> {
    const b = Math.floor(ci / this.refblockEntries);
    let t = await this.getRefBlock(b);
    if (!t) {
      if (delta < 0) throw corruptError(`Refcount of cluster ${ci} would drop below zero`);
      await this.createRefBlock(b, ci);
      t = (await this.getRefBlock(b))!;
    }
    const i = ci - b * this.refblockEntries;
    const v = this.readRefEntry(t, i) + delta;
    if (v < 0) throw corruptError(`Refcount of cluster ${ci} would drop below zero`);
    if (v > this.maxRefcount) throw new ImageError('Reference count overflow', 'ERANGE');
    this.writeRefEntry(t, i, v);
    this.touch(this.rbCache, t);
    return v;
  }

  /** Create refcount block `b`, stored inside its own range (self-describing). */
  private async createRefBlock(b: number, hintCluster: number): Promise<void> {
    if (b >= this.reftable.length) await this.growReftable(b + 1);
    const first = b * this.refblockEntries;
    // Every cluster covered by a missing block is free, so take the hint cluster if it lies in the range.
    const ci = hintCluster >= first && hintCluster < first + this.refblockEntries ? hintCluster : first;
    const off = ci * this.clusterSize;
    const data = new Uint8Array(this.clusterSize);
    const t: Table = { offset: off, data, dv: new DataView(data.buffer), dirty: true };
    this.writeRefEntry(t, ci - first, 1);
    this.rbCache.set(off, t);
    this.reftable[b] = off;
    this.rbSet.add(off);
    this.markReftableDirty(b);
    if (off + this.clusterSize > this.fileEnd) this.fileEnd = off + this.clusterSize;
  }

  private markReftableDirty(i: number): void {
    if (this.reftableDirtyMin < 0 || i < this.reftableDirtyMin) this.reftableDirtyMin = i;
    if (i > this.reftableDirtyMax) this.reftableDirtyMax = i;
  }

  /** First-fit search for `n` contiguous free clusters; returns the first cluster index. */
  private async findFree(n: number): Promise<number> {
    let ci = this.freeHint;
    let run = 0;
    let start = ci;
    // The file end bounds the search: everything past the last refcount block is free.
    for (;;) {
      const b = Math.floor(ci / this.refblockEntries);
      const t = await this.getRefBlock(b);
      if (!t) {
        // Whole block free.
        if (run === 0) start = ci;
        const avail = (b + 1) * this.refblockEntries - ci;
        if (run + avail >= n) return start;
        run += avail;
        ci += avail;
        continue;
      }
      const base = b * this.refblockEntries;
      const end = base + this.refblockEntries;
      for (; ci < end; ci++) {
        if (this.readRefEntry(t, ci - base) === 0) {
          if (run === 0) start = ci;
          if (++run >= n) return start;
        } else run = 0;
      }
    }
  }

  /** Allocate `n` contiguous clusters (refcount 1 each); returns the host byte offset. */
  async allocClusters(n: number): Promise<number> {
    if (this.readOnly) throw new ImageError('Image is read-only', 'EACCES');
    let start: number;
    for (;;) {
      start = await this.findFree(n);
      let created = false;
      const b0 = Math.floor(start / this.refblockEntries);
      const b1 = Math.floor((start + n - 1) / this.refblockEntries);
      for (let b = b0; b <= b1; b++) {
        if (b >= this.reftable.length || !this.reftable[b]) {
          await this.createRefBlock(b, Math.max(start, b * this.refblockEntries));
          created = true;
        }
      }
      if (!created) break;
    }
    for (let i = 0; i < n; i++) await this.addRefcount(start + i, 1);
    this.freeHint = start + n;
    const end = (start + n) * this.clusterSize;
    if (end > this.fileEnd) this.fileEnd = end;
    return start * this.clusterSize;
  }

  /**
   * Host clusters for guest clusters `gci..gci+n-1`. With an external data file QEMU maps
   * guest offset N to data-file offset N and refcounts nothing there; otherwise a contiguous
   * allocation in the image file.
   */
  private allocData(gci: number, n: number): Promise<number> {
    if (this.dataStore !== this.store) return Promise.resolve(gci * this.clusterSize);
    return this.allocClusters(n);
  }

  /** Allocate `len` bytes for compressed data, packed after the previous compressed cluster. */
  private async allocBytes(len: number): Promise<number> {
    const cs = this.clusterSize;
    if (this.freeByte && this.freeByte % cs) {
      const clusterStart = this.freeByte - (this.freeByte % cs);
      if (this.freeByte + len <= clusterStart + cs && (await this.getRefcount(clusterStart / cs)) > 0) {
        const off = this.freeByte;
        await this.addRefcount(clusterStart / cs, 1);
        this.freeByte += len;
        return off;
      }
    }
    const n = Math.ceil(len / cs);
    const off = await this.allocClusters(n);
    this.freeByte = off + len;
    return off;
  }

  /** Grow the refcount table so it holds at least `minEntries` entries. */
  private async growReftable(minEntries: number): Promise<void> {
    const cs = this.clusterSize;
    const per = this.refblockEntries;
    let entries = Math.max(minEntries, Math.ceil(this.reftable.length * 1.5), cs / 8);
    let tableClusters = 0;
    const startCluster = Math.ceil(this.fileEnd / cs);
    let newBlocks: number[] = [];
    for (let iter = 0; iter < 16; iter++) {
      tableClusters = Math.ceil((entries * 8) / cs);
      // The new table goes at the end of the file, followed by new refblocks for that range.
      newBlocks = [];
      let total = tableClusters;
      for (;;) {
        const last = startCluster + total + newBlocks.length - 1;
        const needed: number[] = [];
        for (let b = Math.floor(startCluster / per); b <= Math.floor(last / per); b++) {
          if (b >= this.reftable.length || !this.reftable[b]) needed.push(b);
        }
        if (needed.length === newBlocks.length) break;
        newBlocks = needed;
        total = tableClusters;
      }
      const maxBlock = Math.max(minEntries - 1, ...newBlocks);
      if (maxBlock < entries) break;
      entries = maxBlock + 1;
    }
    entries = (tableClusters * cs) / 8;
    if (tableClusters * cs > 8 * 1024 * 1024) throw new ImageError('Reference count table too large', 'EFBIG');
    const tableOff = startCluster * cs;
    const newTable = new Float64Array(entries);
    newTable.set(this.reftable);
    // Place the new refblocks right after the table.
    newBlocks.forEach((b, i) => {
      const off = (startCluster + tableClusters + i) * cs;
      newTable[b] = off;
      const data = new Uint8Array(cs);
      this.rbCache.set(off, { offset: off, data, dv: new DataView(data.buffer), dirty: true });
      this.rbSet.add(off);
    });
    const oldOff = this.header.refcountTableOffset;
    const oldClusters = this.header.refcountTableClusters;
    const oldTable = this.reftable;
    this.reftable = newTable;
    this.fileEnd = Math.max(this.fileEnd, (startCluster + tableClusters + newBlocks.length) * cs);
    // Refcounts for the table and the new blocks (their blocks exist now).
    for (let c = startCluster; c < startCluster + tableClusters + newBlocks.length; c++) {
      const b = Math.floor(c / per);
      const t = (await this.getRefBlock(b))!;
      this.writeRefEntry(t, c - b * per, this.readRefEntry(t, c - b * per) + 1);
      this.touch(this.rbCache, t);
    }
    // Persist: blocks, barrier, table, barrier, header switch, barrier.
    await this.writeDirtyRefBlocks();
    await this.store.flush();
    const tb = new Uint8Array(entries * 8);
    const tdv = new DataView(tb.buffer);
    for (let i = 0; i < entries; i++) if (newTable[i]) setU64(tdv, i * 8, newTable[i]);
    await this.store.pwrite(tableOff, tb);
    await this.store.flush();
    const hb = new Uint8Array(12);
    const hdv = new DataView(hb.buffer);
    setU64(hdv, 0, tableOff);
    hdv.setUint32(8, tableClusters);
    await this.store.pwrite(48, hb);
    await this.store.flush();
    this.header.refcountTableOffset = tableOff;
    this.header.refcountTableClusters = tableClusters;
    this.reftableDirtyMin = this.reftableDirtyMax = -1;
    void oldTable;
    if (oldOff) for (let i = 0; i < oldClusters; i++) this.pendingFrees.push(oldOff + i * cs);
  }

  private async writeDirtyRefBlocks(): Promise<boolean> {
    let any = false;
    for (const t of this.rbCache.values()) {
      if (t.dirty) {
        await this.store.pwrite(t.offset, t.data);
        t.dirty = false;
        any = true;
      }
    }
    return any;
  }

  /** Free the host clusters an L2 entry references (deferred until its removal is on disk). */
  private freeEntry(hi: number, lo: number): void {
    if (hi & HI_COMPRESSED) {
      const [off, len] = this.compressedRange(hi, lo);
      const cs = this.clusterSize;
      for (let c = Math.floor(off / cs); c * cs < off + len; c++) this.pendingFrees.push(c * cs);
      return;
    }
    const off = entryOffset(hi, lo);
    if (off && this.dataStore === this.store) this.pendingFrees.push(off);
  }

  /** Byte offset and length (to the end of its last sector) of a compressed cluster. */
  compressedRange(hi: number, lo: number): [number, number] {
    const x = 62 - (this.clusterBits - 8);
    const hiBits = x - 32;
    const off = (hi & ((1 << hiBits) - 1)) * TWO32 + (lo >>> 0);
    const nsec = ((hi >>> hiBits) & ((1 << (this.clusterBits - 8)) - 1)) + 1;
    return [off, nsec * 512 - (off % 512)];
  }

  // ---------------------------------------------------------------- metadata flush

  /** Write all cached metadata in dependency order with barriers, then apply deferred frees. */
  async flushMetadata(): Promise<void> {
    if (this.cBufLen) await this.flushCompressedBuffer();
    if (this.readOnly) return;
    if (await this.writeDirtyRefBlocks()) await this.store.flush();
    if (this.reftableDirtyMin >= 0) {
      const a = this.reftableDirtyMin;
      const b = this.reftableDirtyMax;
      const buf = new Uint8Array((b - a + 1) * 8);
      const dv = new DataView(buf.buffer);
      for (let i = a; i <= b; i++) setU64(dv, (i - a) * 8, this.reftable[i]);
      await this.store.pwrite(this.header.refcountTableOffset + a * 8, buf);
      this.reftableDirtyMin = this.reftableDirtyMax = -1;
      await this.store.flush();
    }
    let any = false;
    for (const t of this.l2Cache.values()) {
      if (t.dirty) {
        await this.store.pwrite(t.offset, t.data);
        t.dirty = false;
        any = true;
      }
    }
    if (any) await this.store.flush();
    if (this.l1DirtyMin >= 0) {
      const a = this.l1DirtyMin;
      const b = this.l1DirtyMax;
      const buf = new Uint8Array((b - a + 1) * 8);
      const dv = new DataView(buf.buffer);
      for (let i = a; i <= b; i++) {
        dv.setUint32((i - a) * 8, this.l1Hi[i]);
        dv.setUint32((i - a) * 8 + 4, this.l1Lo[i]);
      }
      await this.store.pwrite(this.header.l1TableOffset + a * 8, buf);
      this.l1DirtyMin = this.l1DirtyMax = -1;
      await this.store.flush();
    }
    if (this.pendingFrees.length) {
      const frees = this.pendingFrees;
      this.pendingFrees = [];
      const cs = this.clusterSize;
      let lowest = Infinity;
      for (const off of frees) {
        const v = await this.addRefcount(off / cs, -1);
        if (v === 0) {
          if (off / cs < lowest) lowest = off / cs;
          if (this.decompHost >= 0 && Math.floor(this.decompHost / cs) === off / cs) this.decompHost = -1;
        }
      }
      if (lowest < this.freeHint) this.freeHint = lowest;
      this.freeByte = 0;
      if (await this.writeDirtyRefBlocks()) await this.store.flush();
    }
    if (this.dataStore !== this.store) await this.dataStore.flush();
    await this.store.flush();
  }

  /** Rewrite feature words (incompatible, compatible, autoclear) in place. */
  async writeFeatureWords(): Promise<void> {
    if (this.header.version < 3) return;
    const b = new Uint8Array(24);
    const dv = new DataView(b.buffer);
    dv.setUint32(0, this.header.incompatHi);
    dv.setUint32(4, this.header.incompatLo);
    dv.setUint32(8, this.header.compatHi);
    dv.setUint32(12, this.header.compatLo);
    dv.setUint32(16, this.header.autoclearHi);
    dv.setUint32(20, this.header.autoclearLo);
    await this.store.pwrite(72, b);
  }

  /** Rewrite the whole header cluster content (header, extensions, backing name). */
  async writeHeader(): Promise<void> {
    const h = serializeHeader(this.header);
    await this.store.pwrite(0, h);
  }

  private async markDirtyIfLazy(): Promise<void> {
    if (!this.bitmapsMarked) {
      // Before the first change of guest data: persistent bitmaps are flagged in-use and the
      // enabled ones start recording (see bitmaps.ts).
      this.bitmapsMarked = true;
      this.bitmapTracker = await BitmapTracker.start(this);
    }
    if (this.dirtyMarked || this.header.version < 3 || !(this.header.compatLo & COMPAT_LAZY_REFCOUNTS)) return;
    this.header.incompatLo |= INCOMPAT_DIRTY;
    await this.writeFeatureWords();
    await this.store.flush();
    this.dirtyMarked = true;
  }

  /** Mark the image corrupt (read-write) and fail the request with EIO. */
  async signalCorruption(msg: string): Promise<never> {
    if (!this.readOnly && !(this.header.incompatLo & INCOMPAT_CORRUPT) && this.header.version >= 3) {
      this.header.incompatLo |= INCOMPAT_CORRUPT;
      await this.writeFeatureWords();
      await this.store.flush();
      this.readOnly = true;
    }
    throw corruptError(`Marking image as corrupt: ${msg}; further corruption events will be suppressed`);
  }

  /** Which metadata structure (if any) host range [off, off+len) overlaps. */
  metadataOverlap(off: number, len: number): string | null {
    const cs = this.clusterSize;
    const end = off + len;
    const hit = (a: number, l: number): boolean => a < end && off < a + l;
    if (off < cs) return 'qcow2_header';
    if (hit(this.header.l1TableOffset, this.l1Hi.length * 8)) return 'active L1 table';
    if (hit(this.header.refcountTableOffset, this.header.refcountTableClusters * cs)) return 'refcount table';
    if (this.header.nbSnapshots && hit(this.header.snapshotsOffset, cs)) return 'snapshot table';
    for (let c = off - (off % cs); c < end; c += cs) {
      if (this.rbSet.has(c)) return 'refcount block';
      if (this.l2Set.has(c)) return 'active L2 table';
    }
    return null;
  }

  private async checkOverlap(host: number, len: number): Promise<void> {
    if (this.dataStore === this.store) {
      const what = this.metadataOverlap(host, len);
      if (what) await this.signalCorruption(`Preventing invalid write on metadata (overlaps with ${what})`);
    }
  }

  private async checkedDataWrite(host: number, data: Uint8Array): Promise<void> {
    await this.checkOverlap(host, data.length);
    await this.dataStore.pwrite(host, data);
  }

  // ---------------------------------------------------------------- read path

  private async readBacking(off: number, out: Uint8Array, outOff: number, len: number): Promise<void> {
    const b = this.backing;
    if (!b || off >= b.size) return;
    const n = Math.min(len, b.size - off);
    const data = await b.read(off, n);
    out.set(data, outOff);
  }

  private async readCompressed(hi: number, lo: number): Promise<Uint8Array> {
    const [off, len] = this.compressedRange(hi, lo);
    if (off === this.decompHost) return this.decompBuf;
    const src = await this.store.pread(off, len);
    this.decompHost = -1;
    if (!this.codec || !this.codec.decompress(src, this.decompBuf)) {
      throw corruptError(`Could not decompress cluster at host offset 0x${off.toString(16)}`);
    }
    this.decompHost = off;
    return this.decompBuf;
  }

  /**
   * Decompress up to `max` consecutive compressed entries of table `t` starting at `l2i` into
   * whole clusters of `out`, reading their host bytes with one read when they lie close
   * together. Returns the number of clusters done (0: let the caller go one by one).
   */
  private async readCompressedRun(t: Table, l2i: number, out: Uint8Array, outOff: number, max: number): Promise<number> {
    const cs = this.clusterSize;
    const limit = Math.min(max, 256);
    let lo0 = Infinity;
    let hi0 = 0;
    let k = 0;
    const ranges: number[] = [];
    for (; k < limit; k++) {
      const e = (l2i + k) * this.l2EntryBytes;
      const hi = t.dv.getUint32(e);
      if (!(hi & HI_COMPRESSED)) break;
      const [off, len] = this.compressedRange(hi, t.dv.getUint32(e + 4));
      const a = Math.min(lo0, off);
      const b = Math.max(hi0, off + len);
      if (b - a > 8 << 20) break;
      lo0 = a;
      hi0 = b;
      ranges.push(off, len);
    }
    if (k < 2) return 0;
    const buf = await this.store.pread(lo0, hi0 - lo0);
    const codec = this.codec!;
    const fail = (i: number): Promise<never> => Promise.reject(corruptError(`Could not decompress cluster at host offset 0x${ranges[i * 2].toString(16)}`));
    if (codec.decompressAsync) {
      const jobs: Promise<void>[] = [];
      for (let i = 0; i < k; i++) {
        const src = buf.subarray(ranges[i * 2] - lo0, ranges[i * 2] - lo0 + ranges[i * 2 + 1]);
        jobs.push(codec.decompressAsync(src, out.subarray(outOff + i * cs, outOff + (i + 1) * cs)).then((ok) => (ok ? undefined : fail(i))));
      }
      await Promise.all(jobs);
    } else {
      for (let i = 0; i < k; i++) {
        const src = buf.subarray(ranges[i * 2] - lo0, ranges[i * 2] - lo0 + ranges[i * 2 + 1]);
        if (!codec.decompress(src, out.subarray(outOff + i * cs, outOff + (i + 1) * cs))) await fail(i);
      }
    }
    return k;
  }

  /**
   * Compressed clusters are packed byte after byte, so consecutive ones are gathered and written
   * with one call (up to 1 MiB). Anything that could read, reuse or point at those bytes on disk
   * (reads, other writes, a metadata flush) writes the buffer out first.
   */
  private async bufferCompressed(host: number, c: Uint8Array): Promise<void> {
    const what = this.metadataOverlap(host, c.length);
    if (what) await this.signalCorruption(`Preventing invalid write on metadata (overlaps with ${what})`);
    const buf = (this.cBuf ??= new Uint8Array(1 << 20));
    if (this.cBufLen && (this.cBufStart + this.cBufLen !== host || this.cBufLen + c.length > buf.length)) await this.flushCompressedBuffer();
    if (c.length > buf.length) {
      await this.store.pwrite(host, c);
      return;
    }
    if (!this.cBufLen) this.cBufStart = host;
    buf.set(c, this.cBufLen);
    this.cBufLen += c.length;
  }

  private async flushCompressedBuffer(): Promise<void> {
    const n = this.cBufLen;
    this.cBufLen = 0;
    await this.store.pwrite(this.cBufStart, this.cBuf!.subarray(0, n));
  }

  /**
   * Read guest range into out[outOff..]; out must be zero-filled for that range. With `plan`,
   * plain data and backing reads are not done but appended to it as [0 data / 1 backing,
   * offset, outOff, length] for the caller to do after leaving the metadata lock. With
   * `zeroFill`, `out` need not be zero-filled: what reads as zeros is filled here.
   */
  async readInto(offset: number, out: Uint8Array, outOff: number, length: number, plan: number[] | null = null, zeroFill = false): Promise<void> {
    if (this.cBufLen) await this.flushCompressedBuffer();
    const cs = this.clusterSize;
    let runHost = -1;
    let runOut = 0;
    let runLen = 0;
    const backing = async (at: number, o: number, n: number): Promise<void> => {
      if (zeroFill) {
        // Past the end of the backing file (or without one) the range reads as zeros.
        const covered = this.backing ? Math.max(0, Math.min(n, this.backing.size - at)) : 0;
        if (covered < n) out.fill(0, o + covered, o + n);
      }
      if (plan) {
        if (this.backing && at < this.backing.size) plan.push(1, at, o, n);
      } else await this.readBacking(at, out, o, n);
    };
    const flushRun = async (): Promise<void> => {
      if (runLen && plan) {
        plan.push(0, runHost, runOut, runLen);
        runLen = 0;
      } else if (runLen) {
        const ds = this.dataStore;
        if (ds.preadInto) await ds.preadInto(runHost, out, runOut, runLen);
        else out.set(await ds.pread(runHost, runLen), runOut);
        runLen = 0;
      }
    };
    let pos = 0;
    while (pos < length) {
      const off = offset + pos;
      const gci = Math.floor(off / cs);
      const inCl = off - gci * cs;
      const l1i = Math.floor(gci / this.l2Entries);
      const l2i = gci - l1i * this.l2Entries;
      const t = await this.getL2(l1i);
      if (!t) {
        // Whole L2 range unallocated.
        const n = Math.min(length - pos, (l1i + 1) * this.l2Entries * cs - off);
        await flushRun();
        await backing(off, outOff + pos, n);
        pos += n;
        continue;
      }
      const e = l2i * this.l2EntryBytes;
      const hi = t.dv.getUint32(e);
      const lo = t.dv.getUint32(e + 4);
      const bhi = this.extendedL2 ? t.dv.getUint32(e + 8) : 0;
      const blo = this.extendedL2 ? t.dv.getUint32(e + 12) : 0;
      const kind = this.kindOf(hi, lo, bhi, blo, inCl);
      const n = this.runInCluster(bhi, blo, inCl, length - pos, kind, hi);
      switch (kind) {
        case KIND_NORMAL: {
          const host = entryOffset(hi, lo);
          if (host % cs) {
            await this.signalCorruption(`Cluster allocation offset 0x${host.toString(16)} unaligned (L2 offset: 0x${t.offset.toString(16)}, L2 index: 0x${l2i.toString(16)})`);
          }
          const h = host + inCl;
          if (runLen && runHost + runLen === h && runOut + runLen === outOff + pos) runLen += n;
          else {
            await flushRun();
            runHost = h;
            runOut = outOff + pos;
            runLen = n;
          }
          break;
        }
        case KIND_COMPRESSED: {
          await flushRun();
          if (inCl === 0 && n === cs && pos + 2 * cs <= length) {
            // A run of whole compressed clusters: one read for all of them, then decompress.
            const done = await this.readCompressedRun(t, l2i, out, outOff + pos, Math.min((length - pos) / cs, this.l2Entries - l2i) | 0);
            if (done > 0) {
              pos += done * cs;
              continue;
            }
          }
          const c = await this.readCompressed(hi, lo);
          out.set(c.subarray(inCl, inCl + n), outOff + pos);
          break;
        }
        case KIND_UNALLOCATED:
          await flushRun();
          await backing(off, outOff + pos, n);
          break;
        case KIND_INVALID:
          await flushRun();
          throw corruptError(`Invalid L2 entry at L2 offset 0x${t.offset.toString(16)} index 0x${l2i.toString(16)}`);
        default:
          // Zero: the output is already zero-filled, unless asked to fill it.
          if (zeroFill) out.fill(0, outOff + pos, outOff + pos + n);
          break;
      }
      pos += n;
    }
    await flushRun();
  }

  // ---------------------------------------------------------------- write path

  /** A whole write under the metadata lock (internal callers: zeroing, preallocation). */
  private async writeData(offset: number, src: Uint8Array, srcOff: number, length: number): Promise<void> {
    const plan: WritePlan = { n: 0, host: -1, alloc: false };
    let pos = 0;
    while (pos < length) {
      await this.writeStep(offset + pos, src, srcOff + pos, length - pos, plan);
      const n = plan.n;
      if (plan.host >= 0) {
        await this.dataStore.pwrite(plan.host, src.subarray(srcOff + pos, srcOff + pos + n));
        if (plan.alloc) await this.commitAlloc(offset + pos, plan.host, n);
      }
      pos += n;
    }
  }

  /**
   * One step of a write, under the metadata lock. Fast cases leave the data write to the
   * caller (`plan.host`): a run of private clusters written in place, or a run of whole
   * unallocated clusters given one contiguous allocation (then `plan.alloc`: the caller sets
   * their L2 entries with `commitAlloc` once the data is written). Everything else (partial
   * clusters, copy-on-write, subclusters, compressed) is done here.
   */
  private async writeStep(offset: number, src: Uint8Array, srcOff: number, length: number, plan: WritePlan): Promise<void> {
    if (this.cBufLen) await this.flushCompressedBuffer();
    const cs = this.clusterSize;
    const gci = Math.floor(offset / cs);
    const inCl = offset - gci * cs;
    const l1i = Math.floor(gci / this.l2Entries);
    const l2i = gci - l1i * this.l2Entries;
    const t = await this.getL2ForWrite(l1i);
    const e = l2i * this.l2EntryBytes;
    const hi = t.dv.getUint32(e);
    const lo = t.dv.getUint32(e + 4);
    const n = Math.min(cs - inCl, length);
    plan.host = -1;
    plan.alloc = false;
    if (!this.extendedL2) {
      const kind = this.kindOf(hi, lo, 0, 0, inCl);
      if (kind === KIND_NORMAL && hi & HI_COPIED) {
        // In place; extend over following clusters that are contiguous on the host.
        const host = entryOffset(hi, lo);
        if (host % cs) await this.signalCorruption(`Cluster allocation offset 0x${host.toString(16)} unaligned`);
        let total = n;
        let j = l2i + 1;
        while (total < length && j < this.l2Entries) {
          const h2 = t.dv.getUint32(j * 8);
          const l2 = t.dv.getUint32(j * 8 + 4);
          if (!(h2 & HI_COPIED) || h2 & HI_COMPRESSED || l2 & 1 || entryOffset(h2, l2) !== host + (j - l2i) * cs) break;
          total += Math.min(cs, length - total);
          j++;
        }
        await this.checkOverlap(host + inCl, total);
        plan.n = total;
        plan.host = host + inCl;
        return;
      }
      if (inCl === 0 && n === cs && (kind === KIND_UNALLOCATED || kind === KIND_ZERO_PLAIN)) {
        // Bulk: a run of whole unallocated clusters gets one contiguous allocation and one write.
        let k = 1;
        while ((k + 1) * cs <= length && l2i + k < this.l2Entries) {
          const h2 = t.dv.getUint32((l2i + k) * 8);
          const l2 = t.dv.getUint32((l2i + k) * 8 + 4);
          const k2 = this.kindOf(h2, l2, 0, 0, 0);
          if (k2 !== KIND_UNALLOCATED && k2 !== KIND_ZERO_PLAIN) break;
          k++;
        }
        const host = await this.allocData(gci, k);
        await this.checkOverlap(host, k * cs);
        plan.n = k * cs;
        plan.host = host;
        plan.alloc = true;
        return;
      }
    }
    plan.n = await this.writeClusterGeneral(l1i, l2i, gci, inCl, src, srcOff, n);
  }

  /** Point the L2 entries of whole clusters [offset, offset+n) at host (data already written). */
  private async commitAlloc(offset: number, host: number, n: number): Promise<void> {
    const cs = this.clusterSize;
    const gci = offset / cs;
    const l1i = Math.floor(gci / this.l2Entries);
    const l2i = gci - l1i * this.l2Entries;
    const t = await this.getL2ForWrite(l1i);
    for (let i = 0; i < n / cs; i++) {
      const h = host + i * cs;
      t.dv.setUint32((l2i + i) * 8, HI_COPIED | Math.floor(h / TWO32));
      t.dv.setUint32((l2i + i) * 8 + 4, h >>> 0);
    }
    this.touch(this.l2Cache, t);
  }

  /** Write within one cluster through copy-on-write / allocation. Returns bytes consumed. */
  private async writeClusterGeneral(l1i: number, l2i: number, gci: number, inCl: number, src: Uint8Array, srcOff: number, n: number): Promise<number> {
    const cs = this.clusterSize;
    let t = await this.getL2ForWrite(l1i);
    const e = l2i * this.l2EntryBytes;
    const hi = t.dv.getUint32(e);
    const lo = t.dv.getUint32(e + 4);
    const host0 = entryOffset(hi, lo);
    const compressed = (hi & HI_COMPRESSED) !== 0;
    const privateHost = host0 !== 0 && !compressed && (hi & HI_COPIED) !== 0;
    if (this.extendedL2 && !compressed && (privateHost || host0 === 0)) {
      const bhi = t.dv.getUint32(e + 8);
      const blo = t.dv.getUint32(e + 12);
      const scs = this.subclusterSize;
      const s0 = Math.floor(inCl / scs);
      const s1 = Math.ceil((inCl + n) / scs);
      const regionStart = s0 * scs;
      const regionLen = (s1 - s0) * scs;
      let buf: Uint8Array;
      if (regionStart === inCl && regionLen === n) buf = src.subarray(srcOff, srcOff + n);
      else {
        buf = new Uint8Array(regionLen);
        await this.readInto(gci * cs + regionStart, buf, 0, regionLen);
        buf.set(src.subarray(srcOff, srcOff + n), inCl - regionStart);
      }
      const host = privateHost ? host0 : await this.allocData(gci, 1);
      await this.checkedDataWrite(host + regionStart, buf);
      const mask = (s1 - s0 === 32 ? 0xffffffff : ((1 << (s1 - s0)) - 1) << s0) >>> 0;
      t = await this.getL2ForWrite(l1i);
      t.dv.setUint32(e, HI_COPIED | Math.floor(host / TWO32));
      t.dv.setUint32(e + 4, host >>> 0);
      t.dv.setUint32(e + 8, (bhi & ~mask) >>> 0);
      t.dv.setUint32(e + 12, (blo | mask) >>> 0);
      this.touch(this.l2Cache, t);
      return n;
    }
    // Whole-cluster rewrite: merge with the current content.
    const clusterLen = Math.min(cs, this.size - gci * cs);
    let buf: Uint8Array;
    if (inCl === 0 && n === cs) buf = src.subarray(srcOff, srcOff + n);
    else {
      buf = new Uint8Array(cs);
      await this.readInto(gci * cs, buf, 0, clusterLen);
      buf.set(src.subarray(srcOff, srcOff + n), inCl);
    }
    const reuse = privateHost; // zero-flagged but allocated and private
    const host = reuse ? host0 : await this.allocData(gci, 1);
    await this.checkedDataWrite(host, buf);
    t = await this.getL2ForWrite(l1i);
    t.dv.setUint32(e, HI_COPIED | Math.floor(host / TWO32));
    t.dv.setUint32(e + 4, host >>> 0);
    if (this.extendedL2) {
      t.dv.setUint32(e + 8, 0);
      t.dv.setUint32(e + 12, 0xffffffff);
    }
    this.touch(this.l2Cache, t);
    if (!reuse && (host0 || compressed)) this.freeEntry(hi, lo);
    return n;
  }

  private async writeCompressedLocked(offset: number, data: Uint8Array, pre: Uint8Array | null | undefined): Promise<void> {
    const cs = this.clusterSize;
    let c = pre;
    if (c === undefined) {
      let src = data;
      if (data.length < cs) {
        src = new Uint8Array(cs);
        src.set(data);
      }
      c = this.codec!.compress(src, cs - 1);
    }
    if (!c || this.dataStore !== this.store) {
      await this.writeData(offset, data, 0, data.length);
      return;
    }
    const gci = offset / cs;
    const l1i = Math.floor(gci / this.l2Entries);
    const l2i = gci - l1i * this.l2Entries;
    const host = await this.allocBytes(c.length);
    await this.bufferCompressed(host, c);
    const t = await this.getL2ForWrite(l1i);
    const e = l2i * this.l2EntryBytes;
    const oldHi = t.dv.getUint32(e);
    const oldLo = t.dv.getUint32(e + 4);
    const x = 62 - (this.clusterBits - 8);
    const nsec = Math.ceil(((host % 512) + c.length) / 512) - 1;
    const hi = HI_COMPRESSED | ((nsec << (x - 32)) >>> 0) | Math.floor(host / TWO32);
    t.dv.setUint32(e, hi >>> 0);
    t.dv.setUint32(e + 4, host >>> 0);
    if (this.extendedL2) {
      t.dv.setUint32(e + 8, 0);
      t.dv.setUint32(e + 12, 0);
    }
    this.touch(this.l2Cache, t);
    if (oldHi & HI_COMPRESSED || entryOffset(oldHi, oldLo)) this.freeEntry(oldHi, oldLo);
  }

  /** Discard (`unmap`) or write zeroes over a guest range. */
  private async zeroRange(offset: number, length: number, discard: boolean): Promise<void> {
    if (this.cBufLen) await this.flushCompressedBuffer();
    const cs = this.clusterSize;
    const end = offset + length;
    let pos = offset;
    const v3 = this.header.version >= 3;
    while (pos < end) {
      const gci = Math.floor(pos / cs);
      const inCl = pos - gci * cs;
      const clusterEnd = Math.min((gci + 1) * cs, this.size);
      const n = Math.min(clusterEnd, end) - pos;
      const whole = inCl === 0 && pos + n === clusterEnd;
      if (!whole) {
        if (!discard) await this.writeData(pos, new Uint8Array(n), 0, n);
        pos += n;
        continue;
      }
      const l1i = Math.floor(gci / this.l2Entries);
      const l2i = gci - l1i * this.l2Entries;
      if (!this.backing && (l1i >= this.l1Hi.length || !entryOffset(this.l1Hi[l1i], this.l1Lo[l1i]))) {
        pos += n; // already reads as zero
        continue;
      }
      if (!v3 && this.backing && !discard) {
        await this.writeData(pos, new Uint8Array(n), 0, n);
        pos += n;
        continue;
      }
      const t = await this.getL2ForWrite(l1i);
      const e = l2i * this.l2EntryBytes;
      const hi = t.dv.getUint32(e);
      const lo = t.dv.getUint32(e + 4);
      if (hi & HI_COMPRESSED || entryOffset(hi, lo)) this.freeEntry(hi, lo);
      const zeroFlag = v3 && (this.backing != null || !discard || true);
      t.dv.setUint32(e, 0);
      t.dv.setUint32(e + 4, zeroFlag && !this.extendedL2 ? 1 : 0);
      if (this.extendedL2) {
        t.dv.setUint32(e + 8, 0xffffffff);
        t.dv.setUint32(e + 12, 0);
      }
      this.touch(this.l2Cache, t);
      pos += n;
    }
  }

  // ---------------------------------------------------------------- block status

  private async blockStatusLocked(offset: number, length: number): Promise<BlockStatus> {
    const cs = this.clusterSize;
    const st: BlockStatus = { start: offset, length: 0, depth: 0, present: false, zero: true, data: false, compressed: false, offset: null };
    let pos = offset;
    const end = offset + length;
    let first = true;
    let lastKind = -1;
    let nextHost = -1;
    while (pos < end) {
      const gci = Math.floor(pos / cs);
      const inCl = pos - gci * cs;
      const l1i = Math.floor(gci / this.l2Entries);
      const l2i = gci - l1i * this.l2Entries;
      const t = await this.getL2(l1i);
      let kind: number;
      let n: number;
      let host = -1;
      if (!t) {
        kind = KIND_UNALLOCATED;
        n = Math.min(end - pos, (l1i + 1) * this.l2Entries * cs - pos);
      } else {
        const e = l2i * this.l2EntryBytes;
        const hi = t.dv.getUint32(e);
        const lo = t.dv.getUint32(e + 4);
        const bhi = this.extendedL2 ? t.dv.getUint32(e + 8) : 0;
        const blo = this.extendedL2 ? t.dv.getUint32(e + 12) : 0;
        kind = this.kindOf(hi, lo, bhi, blo, inCl);
        n = this.runInCluster(bhi, blo, inCl, end - pos, kind, hi);
        if (kind === KIND_NORMAL || kind === KIND_ZERO_ALLOC) host = entryOffset(hi, lo) + inCl;
        if (kind === KIND_INVALID) kind = KIND_NORMAL;
      }
      if (first) {
        first = false;
        lastKind = kind;
        if (kind === KIND_UNALLOCATED) {
          const b = this.backing;
          if (b && pos < b.size) {
            const lim = Math.min(n, b.size - pos);
            if (b.blockStatus) {
              const bs = await b.blockStatus(pos, lim);
              return { ...bs, start: offset, depth: bs.depth + 1 };
            }
            return { start: offset, length: lim, depth: 1, present: true, zero: false, data: true, compressed: false, offset: null };
          }
          if (b) n = Math.min(n, Math.max(0, end - pos));
        } else {
          st.present = true;
          st.zero = kind === KIND_ZERO_PLAIN || kind === KIND_ZERO_ALLOC;
          st.data = kind === KIND_NORMAL || kind === KIND_COMPRESSED;
          st.compressed = kind === KIND_COMPRESSED;
          st.offset = host >= 0 ? host : null;
        }
        nextHost = host >= 0 ? host + n : -1;
      } else {
        if (kind !== lastKind) break;
        if (host >= 0 && host !== nextHost) break;
        if (kind === KIND_UNALLOCATED && this.backing && pos < this.backing.size) break;
        nextHost = host >= 0 ? host + n : -1;
      }
      st.length += n;
      pos += n;
    }
    return st;
  }

  private checkOpen(): void {
    if (this.closed || this.closing) throw new ImageError('Image is closed', 'EBADF');
  }

  private checkWritable(): void {
    this.checkOpen();
    if (this.readOnly) throw new ImageError('Image is read-only', 'EACCES');
  }

  /** Flush cached metadata without taking the queue (for use inside `exclusive`). */
  async flushLocked(): Promise<void> {
    await this.flushMetadata();
  }

  /** Drop cached tables (after a repair rewrote them on disk). */
  dropCaches(): void {
    this.l2Cache.clear();
    this.rbCache.clear();
    this.decompHost = -1;
    this.freeHint = 0;
    this.freeByte = 0;
  }

  /** Refresh the refcount-block overlap set from the reftable. */
  refreshRbSet(): void {
    this.rbSet.clear();
    for (const off of this.reftable) if (off) this.rbSet.add(off);
  }

  /** Raw L2 table content for checks (read-through cache). */
  async readL2Raw(offset: number): Promise<Uint8Array> {
    const t = this.l2Cache.get(offset);
    if (t) return t.data;
    return this.store.pread(offset, this.clusterSize);
  }

  /** After an L2 table was rewritten on disk directly: refresh its cached copy, if any. */
  replaceCachedL2(offset: number, data: Uint8Array): void {
    const t = this.l2Cache.get(offset);
    if (t) t.data.set(data);
  }

  /** Whether a data file is raw (guest offset == host offset). */
  get dataFileRaw(): boolean {
    return (this.header.autoclearLo & AUTOCLEAR_DATA_FILE_RAW) !== 0;
  }

  /** Allocate clusters for internal users (snapshots, resize). */
  allocInternal(n: number): Promise<number> {
    return this.allocClusters(n);
  }

  /** Queue a deferred decrement of a cluster's refcount. */
  deferFree(off: number): void {
    this.pendingFrees.push(off);
  }

  /** Immediate refcount change (increments must be followed by a flush before use). */
  changeRefcount(ci: number, delta: number): Promise<number> {
    return this.addRefcount(ci, delta);
  }

  /** Replace cached L2 table content (snapshots). */
  setL1Entry(l1i: number, off: number, copied: boolean): void {
    this.setL1(l1i, off, copied);
  }

  async l2ForWrite(l1i: number): Promise<Table> {
    return this.getL2ForWrite(l1i);
  }

  /** Unmap every whole cluster from `from` to the end of the device (used by shrink). */
  async unmapTail(from: number): Promise<void> {
    const cs = this.clusterSize;
    for (let gci = from / cs; gci * cs < this.size; gci++) {
      const l1i = Math.floor(gci / this.l2Entries);
      if (!entryOffset(this.l1Hi[l1i], this.l1Lo[l1i])) {
        gci = (l1i + 1) * this.l2Entries - 1;
        continue;
      }
      const t = await this.getL2ForWrite(l1i);
      const e = (gci - l1i * this.l2Entries) * this.l2EntryBytes;
      const hi = t.dv.getUint32(e);
      const lo = t.dv.getUint32(e + 4);
      if (hi & HI_COMPRESSED || entryOffset(hi, lo)) this.freeEntry(hi, lo);
      t.data.fill(0, e, e + this.l2EntryBytes);
      this.touch(this.l2Cache, t);
    }
  }

  markTableDirty(t: Table): void {
    this.touch(this.l2Cache, t);
  }

  // ---------------------------------------------------------------- whole-image operations

  /**
   * Unmap every cluster of the active L1 table so that all reads fall through to the backing
   * file (what `qemu-img commit` does to the overlay afterwards), then cut the file after its
   * last used cluster. Tables shared with snapshots keep their content.
   */
  makeEmpty(): Promise<void> {
    this.checkWritable();
    return this.exclusive(async () => {
      await this.flushMetadata();
      const cs = this.clusterSize;
      for (let l1i = 0; l1i < this.l1Hi.length; l1i++) {
        const off = entryOffset(this.l1Hi[l1i], this.l1Lo[l1i]);
        if (!off) continue;
        if (off % cs === 0 && (await this.getRefcount(off / cs)) === 1) {
          const t = (await this.getL2(l1i))!;
          for (let i = 0; i < this.l2Entries; i++) {
            const e = i * this.l2EntryBytes;
            const hi = t.dv.getUint32(e);
            const lo = t.dv.getUint32(e + 4);
            if (hi & HI_COMPRESSED || entryOffset(hi, lo)) this.freeEntry(hi, lo);
          }
          this.l2Cache.delete(off);
        }
        this.pendingFrees.push(off);
        this.setL1(l1i, 0, false);
      }
      await this.flushMetadata();
      await this.trimFileEndLocked();
    });
  }

  /** Truncate the file after the last cluster whose refcount is not zero. */
  async trimFileEndLocked(): Promise<void> {
    const cs = this.clusterSize;
    const size = await this.store.size();
    let c = Math.ceil(size / cs) - 1;
    while (c > 0 && (await this.getRefcount(c)) === 0) c--;
    const end = (c + 1) * cs;
    if (end < size) {
      await this.store.truncate(end);
      this.fileEnd = end;
    }
  }

  /**
   * Rewrite cluster 0 from `this.header` (header, extensions including unknown ones, backing
   * name), zero-filling the rest of the cluster. Throws, leaving the file alone, when it does
   * not fit.
   */
  async rewriteHeaderLocked(): Promise<void> {
    const bytes = serializeHeader(this.header);
    const c0 = new Uint8Array(Math.min(this.clusterSize, Math.max(bytes.length, 4096)));
    c0.set(bytes);
    await this.store.pwrite(0, c0);
    await this.store.flush();
  }

  /** Point the header at another backing file (`null` for none); data is not touched. */
  setBackingFile(name: string | null, format: string | null): Promise<void> {
    this.checkWritable();
    return this.exclusive(async () => {
      await this.flushMetadata();
      const h = this.header;
      const saved = { backingFile: h.backingFile, backingFormat: h.backingFormat, off: h.backingFileOffset, size: h.backingFileSize };
      h.backingFile = name;
      h.backingFormat = name == null ? null : format;
      try {
        await this.rewriteHeaderLocked();
      } catch (e) {
        h.backingFile = saved.backingFile;
        h.backingFormat = saved.backingFormat;
        h.backingFileOffset = saved.off;
        h.backingFileSize = saved.size;
        throw e;
      }
    });
  }

  /**
   * Replace zero-flagged entries of the active tables by what version 2 can express (for a
   * downgrade to compat=0.10): allocated zero clusters get zeros written and lose the flag;
   * unallocated ones become holes, or allocated zero clusters when a backing file would
   * otherwise show through.
   */
  expandZeroClusters(): Promise<void> {
    this.checkWritable();
    return this.exclusive(async () => {
      if (this.extendedL2) throw new ImageError('Cannot expand zero clusters of an image with extended L2 entries', 'ENOTSUP');
      const cs = this.clusterSize;
      const hasBacking = this.header.backingFile != null;
      const zeros = new Uint8Array(cs);
      for (let l1i = 0; l1i < this.l1Hi.length; l1i++) {
        const r = await this.getL2(l1i);
        if (!r) continue;
        let any = false;
        for (let i = 0; i < this.l2Entries && !any; i++) any = (r.dv.getUint32(i * 8) & HI_COMPRESSED) === 0 && (r.dv.getUint32(i * 8 + 4) & 1) === 1;
        if (!any) continue;
        for (let i = 0; i < this.l2Entries; i++) {
          let t = await this.getL2ForWrite(l1i);
          const hi = t.dv.getUint32(i * 8);
          const lo = t.dv.getUint32(i * 8 + 4);
          if (hi & HI_COMPRESSED || !(lo & 1)) continue;
          const host = entryOffset(hi, lo);
          if (host && hi & HI_COPIED) {
            await this.checkedDataWrite(host, zeros);
            t.dv.setUint32(i * 8 + 4, (lo & ~1) >>> 0);
          } else if (host || hasBacking) {
            const n = await this.allocData(l1i * this.l2Entries + i, 1);
            await this.checkedDataWrite(n, zeros);
            t = await this.getL2ForWrite(l1i);
            t.dv.setUint32(i * 8, HI_COPIED | Math.floor(n / TWO32));
            t.dv.setUint32(i * 8 + 4, n >>> 0);
            if (host) this.freeEntry(hi, lo);
          } else {
            t.dv.setUint32(i * 8, 0);
            t.dv.setUint32(i * 8 + 4, 0);
          }
          this.touch(this.l2Cache, t);
        }
      }
      await this.flushMetadata();
    });
  }

  /** True when some L2 entry of the active table or a snapshot is compressed. */
  async hasCompressedClusters(): Promise<boolean> {
    const l1s: [number, number][] = [[this.header.l1TableOffset, this.l1Hi.length]];
    for (const s of this.snapshots) l1s.push([s.l1TableOffset, s.l1Size]);
    for (const [off, n] of l1s) {
      const b = await this.store.pread(off, n * 8);
      const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
      for (let i = 0; i < n; i++) {
        const l2 = entryOffset(dv.getUint32(i * 8), dv.getUint32(i * 8 + 4));
        if (!l2) continue;
        const t = await this.readL2Raw(l2);
        const tdv = new DataView(t.buffer, t.byteOffset, t.byteLength);
        for (let j = 0; j < this.l2Entries; j++) if (tdv.getUint32(j * this.l2EntryBytes) & HI_COMPRESSED) return true;
      }
    }
    return false;
  }
}
