import { ImageError } from './device';
import type { ByteStore } from './store';
import type { QcowHeader } from './format';
import {
  AUTOCLEAR_DATA_FILE_RAW,
  COMPAT_LAZY_REFCOUNTS,
  EXT_FEATURE_TABLE,
  featureTable,
  HI_COPIED,
  INCOMPAT_COMPRESSION,
  INCOMPAT_DATA_FILE,
  INCOMPAT_EXTL2,
  serializeHeader,
  setU64,
} from './format';
import { Qcow2Image } from './qcow2';

export type Preallocation = 'off' | 'metadata' | 'falloc' | 'full';

export interface Qcow2CreateOptions {
  /** Virtual size in bytes. */
  size: number;
  clusterSize?: number;
  /** '0.10' (version 2) or '1.1' (version 3, the default); 'v2'/'v3' also accepted. */
  compat?: string;
  lazyRefcounts?: boolean;
  refcountBits?: number;
  compressionType?: 'zlib' | 'zstd';
  extendedL2?: boolean;
  backingFile?: string;
  backingFormat?: string;
  /** External data file name (the caller creates the file itself). */
  dataFile?: string;
  dataFileRaw?: boolean;
  preallocation?: Preallocation;
}

function isPow2(n: number): boolean {
  return Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;
}

/** Validate options the way qemu-img does and return the header version. */
export function validateCreateOptions(o: Qcow2CreateOptions): number {
  const cs = o.clusterSize ?? 65536;
  if (!isPow2(cs) || cs < 512 || cs > 2 * 1024 * 1024) throw new ImageError('Cluster size must be a power of two between 512 and 2048k');
  let version = 3;
  const compat = o.compat ?? '1.1';
  if (compat === '0.10' || compat === 'v2') version = 2;
  else if (compat !== '1.1' && compat !== 'v3') throw new ImageError(`Invalid parameter '${compat}'`);
  const rb = o.refcountBits ?? 16;
  if (!isPow2(rb) || rb > 64) throw new ImageError('Refcount width must be a power of two and may not exceed 64 bits');
  if (version === 2 && rb !== 16) throw new ImageError('Different refcount widths than 16 bits require compatibility level 1.1 or above (use compat=1.1 or greater)');
  if (version === 2 && o.lazyRefcounts) throw new ImageError('Lazy refcounts only supported with compatibility level 1.1 and above (use compat=1.1 or greater)');
  if (o.extendedL2) {
    if (version === 2) throw new ImageError('Extended L2 entries are only supported with compatibility level 1.1 and above (use compat=1.1 or greater)');
    if (cs < 16384) throw new ImageError('Extended L2 entries are only supported with cluster sizes of at least 16384 bytes');
  }
  if (o.compressionType === 'zstd' && version === 2) throw new ImageError('Compression type zstd requires compatibility level 1.1 and above');
  if (o.dataFile !== undefined && version === 2) throw new ImageError('Data file requires compatibility level 1.1 and above');
  if (o.dataFileRaw && o.dataFile === undefined) throw new ImageError('data-file-raw requires data-file');
  if (o.backingFile !== undefined && o.dataFile !== undefined && o.dataFileRaw) throw new ImageError('Backing file and data-file-raw cannot be used at the same time');
  if (!Number.isSafeInteger(o.size) || o.size < 0) throw new ImageError(`Invalid image size specified. Must be between 0 and 9223372036854775807.`);
  if ((o.preallocation ?? 'off') !== 'off' && o.backingFile !== undefined) throw new ImageError('Backing file and preallocation can only be used at the same time if extended_l2 is on');
  return version;
}

/** Write a new, empty qcow2 image into `store` (which should be empty). */
export async function createQcow2(store: ByteStore, o: Qcow2CreateOptions): Promise<void> {
  const version = validateCreateOptions(o);
  const cs = o.clusterSize ?? 65536;
  const clusterBits = Math.log2(cs);
  const rb = o.refcountBits ?? 16;
  const entryBytes = o.extendedL2 ? 16 : 8;
  const l2Entries = cs / entryBytes;
  const l1Size = Math.ceil(o.size / (cs * l2Entries));
  if (l1Size * 8 > 32 * 1024 * 1024) throw new ImageError('Image size too large for this cluster size');
  const l1Clusters = Math.ceil((l1Size * 8) / cs);
  const perBlock = (cs * 8) / rb;
  let rtClusters = 1;
  let blocks = 1;
  for (;;) {
    const total = 1 + rtClusters + blocks + l1Clusters;
    const nb = Math.ceil(total / perBlock);
    const nr = Math.max(1, Math.ceil((nb * 8) / cs));
    if (nb === blocks && nr === rtClusters) break;
    blocks = nb;
    rtClusters = nr;
  }
  const rtOff = cs;
  const rbOff = rtOff + rtClusters * cs;
  const l1Off = rbOff + blocks * cs;
  let incompat = 0;
  if (o.compressionType === 'zstd') incompat |= INCOMPAT_COMPRESSION;
  if (o.extendedL2) incompat |= INCOMPAT_EXTL2;
  if (o.dataFile !== undefined) incompat |= INCOMPAT_DATA_FILE;
  const h: QcowHeader = {
    version,
    backingFileOffset: 0,
    backingFileSize: 0,
    clusterBits,
    size: o.size,
    cryptMethod: 0,
    l1Size,
    l1TableOffset: l1Off,
    refcountTableOffset: rtOff,
    refcountTableClusters: rtClusters,
    nbSnapshots: 0,
    snapshotsOffset: 0,
    incompatLo: incompat,
    incompatHi: 0,
    compatLo: o.lazyRefcounts ? COMPAT_LAZY_REFCOUNTS : 0,
    compatHi: 0,
    autoclearLo: o.dataFileRaw ? AUTOCLEAR_DATA_FILE_RAW : 0,
    autoclearHi: 0,
    refcountOrder: Math.log2(rb),
    headerLength: version === 2 ? 72 : 112,
    compressionType: o.compressionType === 'zstd' ? 1 : 0,
    extraHeader: new Uint8Array(0),
    extensions: version === 3 ? [{ type: EXT_FEATURE_TABLE, data: featureTable() }] : [],
    backingFile: o.backingFile ?? null,
    backingFormat: o.backingFile !== undefined ? (o.backingFormat ?? null) : null,
    dataFile: o.dataFile ?? null,
  };
  const hdr = serializeHeader(h);
  const c0 = new Uint8Array(cs);
  c0.set(hdr);
  await store.truncate(0);
  await store.pwrite(0, c0);
  const rt = new Uint8Array(rtClusters * cs);
  const rtdv = new DataView(rt.buffer);
  for (let b = 0; b < blocks; b++) setU64(rtdv, b * 8, rbOff + b * cs);
  await store.pwrite(rtOff, rt);
  // Refcount blocks: clusters 0 .. end of L1 are in use.
  const used = 1 + rtClusters + blocks + l1Clusters;
  const rbBuf = new Uint8Array(blocks * cs);
  for (let c = 0; c < used; c++) {
    const bitPos = c * rb;
    if (rb >= 8) {
      // Big-endian value 1 in an rb-bit field.
      rbBuf[(bitPos + rb) / 8 - 1] = 1;
    } else {
      rbBuf[bitPos >>> 3] |= 1 << (bitPos & 7);
    }
  }
  await store.pwrite(rbOff, rbBuf);
  if (l1Size) await store.pwrite(l1Off, new Uint8Array(l1Size * 8));
  await store.flush();
  if ((o.preallocation ?? 'off') !== 'off' && o.size > 0) {
    const img = await Qcow2Image.open(store, { noBacking: true });
    await img.exclusive(() => preallocate(img, o.preallocation === 'full'));
    await img.close();
  }
}

/** Allocate every L2 table and data cluster (preallocation=metadata/falloc/full). */
async function preallocate(img: Qcow2Image, writeZeros: boolean): Promise<void> {
  const cs = img.clusterSize;
  const totalClusters = Math.ceil(img.size / cs);
  for (let l1i = 0; l1i * img.l2Entries < totalClusters; l1i++) {
    const n = Math.min(img.l2Entries, totalClusters - l1i * img.l2Entries);
    await img.l2ForWrite(l1i);
    const host = await img.allocInternal(n);
    const t = await img.l2ForWrite(l1i);
    for (let i = 0; i < n; i++) {
      const h = host + i * cs;
      const e = i * img.l2EntryBytes;
      t.dv.setUint32(e, HI_COPIED | Math.floor(h / 4294967296));
      t.dv.setUint32(e + 4, h >>> 0);
      if (img.extendedL2) t.dv.setUint32(e + 12, 0xffffffff);
    }
    img.markTableDirty(t);
    if (writeZeros) {
      const z = new Uint8Array(Math.min(n * cs, 4 << 20));
      for (let p = 0; p < n * cs; p += z.length) await img.store.pwrite(host + p, z.subarray(0, Math.min(z.length, n * cs - p)));
    }
    await img.flushLocked();
  }
  const end = img.fileEnd;
  if ((await img.store.size()) < end) await img.store.truncate(end);
}
