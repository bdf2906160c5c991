// Persistent dirty bitmaps (the qcow2 bitmaps extension), kept the way QEMU keeps them while an
// image is open read-write: every bitmap is flagged in-use on the first change of guest data,
// enabled ("auto") bitmaps record what is written, zeroed or discarded, and a clean close
// writes their bits and clears the flag. A crash leaves the flag set, so QEMU knows they are
// inconsistent. Bitmaps that were already in-use stay so and are not updated (as QEMU).
import { AUTOCLEAR_BITMAPS, EXT_BITMAPS, getU64, setU64 } from './format';
import type { Qcow2Image } from './qcow2';

/** Directory entry flags. */
const BME_IN_USE = 1;
const BME_AUTO = 2;
/** Table entry: offset bits 9..55; bit 0 with offset 0 means "all ones". */
const TABLE_ALL_ONES = 1;
/** QEMU's limits (BME_MAX_TABLE_SIZE, BME_MAX_GRANULARITY_BITS, BME_MIN_GRANULARITY_BITS). */
const MAX_TABLE_SIZE = 0x8000000;
const MIN_GRAN_BITS = 9;
const MAX_GRAN_BITS = 31;
/** QEMU's BME_MAX_PHYS_SIZE: bitmaps of more bytes than this are not loaded. */
const MAX_BITMAP_BYTES = 0x20000000;
/** Dirty granules are kept in pages of 32768 bits (4 KiB), allocated when first touched. */
const PAGE_BITS = 32768;

export interface BitmapEntry {
  name: string;
  flags: number;
  granularityBits: number;
  tableOffset: number;
  tableSize: number;
  /** Byte position of the entry in the directory. */
  dirPos: number;
}

export interface BitmapDirectory {
  offset: number;
  bytes: Uint8Array;
  entries: BitmapEntry[];
}

/** The bitmap directory the header extension points at, or null when absent or invalid. */
export async function loadBitmapDirectory(img: Qcow2Image): Promise<BitmapDirectory | null> {
  const h = img.header;
  if (h.version < 3 || !(h.autoclearLo & AUTOCLEAR_BITMAPS)) return null;
  const ext = h.extensions.find((e) => e.type === EXT_BITMAPS);
  if (!ext || ext.data.length < 24) return null;
  const edv = new DataView(ext.data.buffer, ext.data.byteOffset, ext.data.byteLength);
  const nb = edv.getUint32(0);
  const size = getU64(edv, 8);
  const off = getU64(edv, 16);
  const cs = img.clusterSize;
  if (nb === 0 || nb > 65535 || size > 64 << 20 || size < nb * 24 || off % cs || off + size > (await img.store.size())) return null;
  const bytes = await img.store.pread(off, size);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const entries: BitmapEntry[] = [];
  let p = 0;
  for (let i = 0; i < nb; i++) {
    if (p + 24 > bytes.length) return null;
    const tableOffset = getU64(dv, p);
    const tableSize = dv.getUint32(p + 8);
    const flags = dv.getUint32(p + 12);
    const type = bytes[p + 16];
    const granularityBits = bytes[p + 17];
    const nameSize = dv.getUint16(p + 18);
    const extra = dv.getUint32(p + 20);
    if (p + 24 + extra + nameSize > bytes.length) return null;
    if (type !== 1 || granularityBits < MIN_GRAN_BITS || granularityBits > MAX_GRAN_BITS || tableOffset % cs || tableSize > MAX_TABLE_SIZE) return null;
    const name = new TextDecoder().decode(bytes.subarray(p + 24 + extra, p + 24 + extra + nameSize));
    entries.push({ name, flags, granularityBits, tableOffset, tableSize, dirPos: p });
    p = (p + 24 + extra + nameSize + 7) & ~7;
  }
  return { offset: off, bytes, entries };
}

/** Bits a bitmap needs for the disk, and clusters of bitmap data for those bits. */
function geometry(img: Qcow2Image, e: BitmapEntry): { bits: number; clusters: number } {
  const bits = Math.ceil(img.size / 2 ** e.granularityBits);
  return { bits, clusters: Math.ceil(bits / (img.clusterSize * 8)) };
}

async function readTable(img: Qcow2Image, e: BitmapEntry): Promise<Float64Array | null> {
  const { bits, clusters } = geometry(img, e);
  // Bitmaps bigger than QEMU loads are refused (their tables stay under 64 MiB that way).
  if (e.tableSize < clusters || bits / 8 > MAX_BITMAP_BYTES) return null;
  const raw = await img.store.pread(e.tableOffset, clusters * 8);
  const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const t = new Float64Array(clusters);
  for (let i = 0; i < clusters; i++) {
    const v = getU64(dv, i * 8);
    const off = v - (v % 512);
    if (off % img.clusterSize) return null;
    t[i] = off || v & TABLE_ALL_ONES;
  }
  return t;
}

/**
 * The bits of bitmap `name` (bit i, least significant first within each byte, covers guest
 * bytes [i*granularity, (i+1)*granularity)), or null when there is no such valid bitmap.
 */
export async function readBitmap(img: Qcow2Image, name: string): Promise<Uint8Array | null> {
  const dir = await loadBitmapDirectory(img);
  const e = dir?.entries.find((x) => x.name === name);
  if (!e) return null;
  const t = await readTable(img, e);
  if (!t) return null;
  const { bits } = geometry(img, e);
  const cs = img.clusterSize;
  const out = new Uint8Array(Math.ceil(bits / 8));
  for (let i = 0; i < t.length; i++) {
    const n = Math.min(cs, out.length - i * cs);
    if (t[i] === TABLE_ALL_ONES) out.fill(0xff, i * cs, i * cs + n);
    else if (t[i]) out.set((await img.store.pread(t[i], cs)).subarray(0, n), i * cs);
  }
  return out;
}

interface Tracked {
  entry: BitmapEntry;
  pages: Map<number, Uint8Array>;
}

/** What an open image does with its persistent bitmaps (see the file comment). */
export class BitmapTracker {
  private readonly img: Qcow2Image;
  private readonly dir: BitmapDirectory;
  /** Entries this session flagged in-use (to clear on a clean close). */
  private readonly flagged: BitmapEntry[];
  private readonly tracked: Tracked[];

  private constructor(img: Qcow2Image, dir: BitmapDirectory) {
    this.img = img;
    this.dir = dir;
    this.flagged = dir.entries.filter((e) => !(e.flags & BME_IN_USE));
    this.tracked = this.flagged.filter((e) => e.flags & BME_AUTO).map((entry) => ({ entry, pages: new Map<number, Uint8Array>() }));
  }

  /** Flag every bitmap in-use on disk (before any guest data changes); null when there are none. */
  static async start(img: Qcow2Image): Promise<BitmapTracker | null> {
    const dir = await loadBitmapDirectory(img);
    if (!dir) return null;
    const t = new BitmapTracker(img, dir);
    if (t.flagged.length) {
      await t.writeFlags(true);
      await img.store.flush();
    }
    return t;
  }

  private async writeFlags(inUse: boolean): Promise<void> {
    const dv = new DataView(this.dir.bytes.buffer, this.dir.bytes.byteOffset, this.dir.bytes.byteLength);
    for (const e of this.flagged) {
      const f = inUse ? e.flags | BME_IN_USE : e.flags & ~BME_IN_USE;
      dv.setUint32(e.dirPos + 12, f >>> 0);
    }
    await this.img.store.pwrite(this.dir.offset, this.dir.bytes);
  }

  /** Record guest bytes [offset, offset+length) as changed. */
  dirty(offset: number, length: number): void {
    if (length <= 0) return;
    for (let k = 0; k < this.tracked.length; k++) {
      const tr = this.tracked[k];
      const g = tr.entry.granularityBits;
      const first = Math.floor(offset / 2 ** g);
      const last = Math.floor((offset + length - 1) / 2 ** g);
      for (let b = first; b <= last; ) {
        const pi = Math.floor(b / PAGE_BITS);
        let page = tr.pages.get(pi);
        if (!page) {
          page = new Uint8Array(PAGE_BITS / 8);
          tr.pages.set(pi, page);
        }
        const end = Math.min(last, (pi + 1) * PAGE_BITS - 1);
        for (let i = b - pi * PAGE_BITS, e = end - pi * PAGE_BITS; i <= e; i++) {
          if ((i & 7) === 0 && i + 7 <= e) {
            page[i >>> 3] = 0xff;
            i += 7;
          } else page[i >>> 3] |= 1 << (i & 7);
        }
        b = end + 1;
      }
    }
  }

  /**
   * On a clean close, under the image's lock: merge the recorded bits into each tracked
   * bitmap (allocating data clusters for all-zero parts), make that durable, then clear the
   * in-use flags.
   */
  async finish(): Promise<void> {
    const img = this.img;
    const cs = img.clusterSize;
    const bitsPerCluster = cs * 8;
    for (const tr of this.tracked) {
      if (!tr.pages.size) continue;
      const t = await readTable(img, tr.entry);
      if (!t) return; // an invalid table: leave every flag set (inconsistent)
      // Group dirty pages by bitmap data cluster.
      const byCluster = new Map<number, number[]>();
      for (const pi of tr.pages.keys()) {
        const c = Math.floor((pi * PAGE_BITS) / bitsPerCluster);
        let l = byCluster.get(c);
        if (!l) byCluster.set(c, (l = []));
        l.push(pi);
      }
      // Bitmap clusters are updated in place, so a damaged table must not aim those writes at
      // anything else: every cluster written (table, data) must lie in the file, outside the
      // image's own metadata, and have refcount 1. Otherwise the flags stay set (inconsistent).
      const fileEnd = await img.store.size();
      const owned = async (off: number, len: number): Promise<boolean> => {
        if (off <= 0 || off % cs || off + len > fileEnd || img.metadataOverlap(off, len)) return false;
        for (let o = off; o < off + len; o += cs) if ((await img.getRefcount(o / cs)) !== 1) return false;
        return true;
      };
      if (!(await owned(tr.entry.tableOffset, Math.ceil((t.length * 8) / cs) * cs))) return;
      for (const c of byCluster.keys()) if (c < t.length && t[c] > TABLE_ALL_ONES && !(await owned(t[c], cs))) return;
      let tableChanged = false;
      for (const [c, pis] of byCluster) {
        if (c >= t.length || t[c] === TABLE_ALL_ONES) continue;
        const fresh = t[c] === 0;
        const off = fresh ? await img.allocInternal(1) : t[c];
        const data = fresh ? new Uint8Array(cs) : await img.store.pread(off, cs);
        for (const pi of pis) {
          const page = tr.pages.get(pi)!;
          const at = (pi * PAGE_BITS - c * bitsPerCluster) / 8;
          for (let i = 0; i < page.length && at + i < cs; i++) data[at + i] |= page[i];
        }
        // Bits past the end of the disk stay zero.
        const { bits } = geometry(img, tr.entry);
        const lastBit = Math.min(bits, (c + 1) * bitsPerCluster) - c * bitsPerCluster;
        for (let i = lastBit; i < Math.min(bitsPerCluster, Math.ceil(lastBit / 8) * 8); i++) data[i >>> 3] &= ~(1 << (i & 7));
        data.fill(0, Math.ceil(lastBit / 8));
        await img.store.pwrite(off, data);
        if (fresh) {
          t[c] = off;
          tableChanged = true;
        }
      }
      await img.flushLocked();
      if (tableChanged) {
        const raw = new Uint8Array(t.length * 8);
        const dv = new DataView(raw.buffer);
        for (let i = 0; i < t.length; i++) if (t[i]) setU64(dv, i * 8, t[i]);
        await img.store.pwrite(tr.entry.tableOffset, raw);
        await img.store.flush();
      }
    }
    if (this.flagged.length) {
      await this.writeFlags(false);
      await img.store.flush();
    }
  }
}

/** A bitmap to store in an image (`bits` as `readBitmap` returns them). */
export interface NewBitmap {
  name: string;
  granularityBits: number;
  /** Enabled (QEMU's "auto" flag): records later writes. */
  enabled: boolean;
  bits: Uint8Array;
}

/**
 * Store persistent bitmaps in an image that has none (what `convert --bitmaps` does to its new
 * target): data clusters for the non-zero parts, the tables, the directory, then the header
 * extension and the autoclear bit, each step durable before the next refers to it.
 */
export async function addBitmaps(img: Qcow2Image, list: NewBitmap[]): Promise<void> {
  if (list.length === 0) return;
  if (img.header.version < 3) throw new Error('Cannot store persistent bitmaps in a version 2 image');
  if (await loadBitmapDirectory(img)) throw new Error('The image already has persistent bitmaps');
  const cs = img.clusterSize;
  const enc = new TextEncoder();
  await img.exclusive(async () => {
    const entries: { table: number; size: number; b: NewBitmap; name: Uint8Array }[] = [];
    for (const b of list) {
      const bits = Math.ceil(img.size / 2 ** b.granularityBits);
      const bytes = Math.ceil(bits / 8);
      const clusters = Math.ceil(bytes / cs);
      const table = new Uint8Array(Math.ceil((clusters * 8) / cs) * cs);
      const tdv = new DataView(table.buffer);
      for (let c = 0; c < clusters; c++) {
        const part = b.bits.subarray(c * cs, Math.min(bytes, (c + 1) * cs));
        if (part.every((x) => x === 0)) continue;
        const data = new Uint8Array(cs);
        data.set(part);
        // Bits past the end of the disk stay zero.
        const lastBit = Math.min(bits, (c + 1) * cs * 8) - c * cs * 8;
        if (lastBit % 8) data[lastBit >>> 3] &= (1 << (lastBit % 8)) - 1;
        const off = await img.allocInternal(1);
        await img.store.pwrite(off, data);
        setU64(tdv, c * 8, off);
      }
      const tOff = await img.allocInternal(table.length / cs);
      await img.store.pwrite(tOff, table);
      entries.push({ table: tOff, size: clusters, b, name: enc.encode(b.name) });
    }
    let dirSize = 0;
    for (const e of entries) dirSize += (24 + e.name.length + 7) & ~7;
    const dir = new Uint8Array(Math.ceil(dirSize / cs) * cs);
    const ddv = new DataView(dir.buffer);
    let p = 0;
    for (const e of entries) {
      setU64(ddv, p, e.table);
      ddv.setUint32(p + 8, e.size);
      ddv.setUint32(p + 12, e.b.enabled ? BME_AUTO : 0);
      dir[p + 16] = 1;
      dir[p + 17] = e.b.granularityBits;
      ddv.setUint16(p + 18, e.name.length);
      ddv.setUint32(p + 20, 0);
      dir.set(e.name, p + 24);
      p = (p + 24 + e.name.length + 7) & ~7;
    }
    const dOff = await img.allocInternal(dir.length / cs);
    await img.store.pwrite(dOff, dir);
    await img.flushLocked();
    await img.store.flush();
    const ext = new Uint8Array(24);
    const edv = new DataView(ext.buffer);
    edv.setUint32(0, entries.length);
    setU64(edv, 8, dirSize);
    setU64(edv, 16, dOff);
    img.header.extensions = img.header.extensions.filter((e) => e.type !== EXT_BITMAPS);
    img.header.extensions.push({ type: EXT_BITMAPS, data: ext });
    img.header.autoclearLo |= AUTOCLEAR_BITMAPS;
    await img.writeHeader();
    await img.store.flush();
  });
}
