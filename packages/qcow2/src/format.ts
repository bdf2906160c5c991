// qcow2 on-disk layout (QEMU docs/interop/qcow2.rst). All fields are big-endian.
//
// Header: 0 magic | 4 version | 8 backing_file_offset u64 | 16 backing_file_size u32 |
//   20 cluster_bits | 24 size u64 | 32 crypt_method | 36 l1_size | 40 l1_table_offset u64 |
//   48 refcount_table_offset u64 | 56 refcount_table_clusters | 60 nb_snapshots |
//   64 snapshots_offset u64 | v3: 72 incompatible u64 | 80 compatible u64 | 88 autoclear u64 |
//   96 refcount_order | 100 header_length | 104 compression_type u8 | 105..111 padding
// L1 entry: bits 9-55 L2 offset, bit 63 COPIED.
// L2 entry: bit 63 COPIED, bit 62 COMPRESSED; standard: bits 9-55 host offset, bit 0 ZERO.
import { ImageError } from './device';

export const QCOW_MAGIC = 0x514649fb;
export const INCOMPAT_DIRTY = 1;
export const INCOMPAT_CORRUPT = 2;
export const INCOMPAT_DATA_FILE = 4;
export const INCOMPAT_COMPRESSION = 8;
export const INCOMPAT_EXTL2 = 16;
export const INCOMPAT_KNOWN = 0x1f;
export const COMPAT_LAZY_REFCOUNTS = 1;
export const AUTOCLEAR_BITMAPS = 1;
export const AUTOCLEAR_DATA_FILE_RAW = 2;
export const AUTOCLEAR_KNOWN = 3;

export const EXT_END = 0;
export const EXT_BACKING_FORMAT = 0xe2792aca;
export const EXT_FEATURE_TABLE = 0x6803f857;
export const EXT_BITMAPS = 0x23852875;
export const EXT_CRYPTO = 0x0537be77;
export const EXT_DATA_FILE = 0x44415441;

export const MAX_L1_BYTES: number = 32 * 1024 * 1024;
export const MAX_REFTABLE_BYTES: number = 8 * 1024 * 1024;
export const MAX_SNAPSHOTS = 65536;
export const V2_HEADER_LENGTH = 72;
export const V3_HEADER_LENGTH = 112;

/** High 32-bit word masks of table entries. */
export const HI_COPIED = 0x80000000;
export const HI_COMPRESSED = 0x40000000;
/** Bits 32..55 of an offset (the high word's low 24 bits). */
export const HI_OFFSET_MASK = 0x00ffffff;
export const LO_OFFSET_MASK = 0xfffffe00;

export interface HeaderExtension {
  type: number;
  data: Uint8Array;
}

export interface QcowHeader {
  version: number;
  backingFileOffset: number;
  backingFileSize: number;
  clusterBits: number;
  size: number;
  cryptMethod: number;
  l1Size: number;
  l1TableOffset: number;
  refcountTableOffset: number;
  refcountTableClusters: number;
  nbSnapshots: number;
  snapshotsOffset: number;
  /** Feature fields as (hi, lo) words: known bits all live in the low word. */
  incompatLo: number;
  incompatHi: number;
  compatLo: number;
  compatHi: number;
  autoclearLo: number;
  autoclearHi: number;
  refcountOrder: number;
  headerLength: number;
  compressionType: number;
  /** Bytes 112..headerLength (unknown later header fields), preserved on rewrite. */
  extraHeader: Uint8Array;
  /** Extensions other than backing format and data file, in file order. */
  extensions: HeaderExtension[];
  backingFile: string | null;
  backingFormat: string | null;
  dataFile: string | null;
}

export function getU64(dv: DataView, off: number): number {
  return dv.getUint32(off) * 4294967296 + dv.getUint32(off + 4);
}

export function setU64(dv: DataView, off: number, v: number): void {
  dv.setUint32(off, Math.floor(v / 4294967296));
  dv.setUint32(off + 4, v >>> 0);
}

const dec = new TextDecoder('utf-8', { fatal: false });
const enc = new TextEncoder();

function invalid(msg: string): ImageError {
  return new ImageError(msg, 'EINVAL');
}

/**
 * Parse and validate the header cluster. `buf` holds the first bytes of the file (at least
 * one cluster when the file is that long); `fileSize` bounds offsets.
 */
export function parseHeader(buf: Uint8Array, fileSize: number): QcowHeader {
  if (buf.length < V2_HEADER_LENGTH) throw invalid('Image is not in qcow2 format');
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  if (dv.getUint32(0) !== QCOW_MAGIC) throw invalid('Image is not in qcow2 format');
  const version = dv.getUint32(4);
  if (version < 2 || version > 3) throw new ImageError(`Unsupported qcow2 version ${version}`, 'ENOTSUP');
  const clusterBits = dv.getUint32(20);
  if (clusterBits < 9 || clusterBits > 21) throw invalid(`Unsupported cluster size: 2^${clusterBits}`);
  const cs = 2 ** clusterBits;
  const h: QcowHeader = {
    version,
    backingFileOffset: getU64(dv, 8),
    backingFileSize: dv.getUint32(16),
    clusterBits,
    size: getU64(dv, 24),
    cryptMethod: dv.getUint32(32),
    l1Size: dv.getUint32(36),
    l1TableOffset: getU64(dv, 40),
    refcountTableOffset: getU64(dv, 48),
    refcountTableClusters: dv.getUint32(56),
    nbSnapshots: dv.getUint32(60),
    snapshotsOffset: getU64(dv, 64),
    incompatLo: 0,
    incompatHi: 0,
    compatLo: 0,
    compatHi: 0,
    autoclearLo: 0,
    autoclearHi: 0,
    refcountOrder: 4,
    headerLength: V2_HEADER_LENGTH,
    compressionType: 0,
    extraHeader: new Uint8Array(0),
    extensions: [],
    backingFile: null,
    backingFormat: null,
    dataFile: null,
  };
  if (version === 3) {
    if (buf.length < 104) throw invalid('Image is not in qcow2 format');
    h.incompatHi = dv.getUint32(72);
    h.incompatLo = dv.getUint32(76);
    h.compatHi = dv.getUint32(80);
    h.compatLo = dv.getUint32(84);
    h.autoclearHi = dv.getUint32(88);
    h.autoclearLo = dv.getUint32(92);
    h.refcountOrder = dv.getUint32(96);
    h.headerLength = dv.getUint32(100);
    if (h.headerLength < 104) throw invalid('qcow2 header too short');
    if (h.headerLength > cs) throw invalid('qcow2 header exceeds cluster size');
    if (h.headerLength > buf.length) throw invalid('qcow2 header exceeds the file');
    if (h.headerLength >= 105) h.compressionType = buf[104];
    if (h.headerLength > V3_HEADER_LENGTH) h.extraHeader = buf.slice(V3_HEADER_LENGTH, h.headerLength);
  }
  if (h.refcountOrder > 6) throw invalid('Reference count entry width too large; may not exceed 64 bits');
  if (h.incompatHi !== 0 || (h.incompatLo & ~INCOMPAT_KNOWN) !== 0) {
    const hi = h.incompatHi;
    const lo = (h.incompatLo & ~INCOMPAT_KNOWN) >>> 0;
    const mask = hi ? hi.toString(16) + lo.toString(16).padStart(8, '0') : lo.toString(16);
    throw new ImageError(`Unsupported qcow2 feature(s): Unknown incompatible feature: ${mask}`, 'ENOTSUP');
  }
  if (h.compressionType > 1) throw invalid(`Unknown compression type ${h.compressionType}`);
  if (h.compressionType !== 0 && !(h.incompatLo & INCOMPAT_COMPRESSION)) {
    throw invalid('Compression type incompatible feature bit must be set if compression type is not zlib');
  }
  if (h.compressionType === 0 && h.incompatLo & INCOMPAT_COMPRESSION) {
    throw invalid('Compression type incompatible feature bit must not be set if compression type is zlib');
  }
  if (h.incompatLo & INCOMPAT_EXTL2 && clusterBits < 14) {
    throw invalid('Extended L2 entries are only supported with cluster sizes of at least 16384 bytes');
  }
  if (h.cryptMethod !== 0) throw new ImageError('Encrypted images are not supported', 'ENOTSUP');
  if (h.backingFileSize > 1023 || (h.backingFileSize > 0 && h.backingFileOffset + h.backingFileSize > cs)) {
    throw invalid('Backing file name too long');
  }
  if (!Number.isSafeInteger(h.size) || h.size > 2 ** 53 - cs) throw invalid('Image too large');
  if (h.refcountTableClusters * cs > MAX_REFTABLE_BYTES) throw invalid('Reference count table too large');
  if (h.refcountTableOffset % cs) throw invalid('Reference count table offset invalid');
  if (h.nbSnapshots > MAX_SNAPSHOTS) throw invalid('Too many snapshots');
  if (h.nbSnapshots && h.snapshotsOffset % cs) throw invalid('Snapshot table offset invalid');
  if (h.l1Size * 8 > MAX_L1_BYTES) throw invalid('Active L1 table too large');
  if (h.l1Size && (h.l1TableOffset % cs || h.l1TableOffset >= fileSize)) throw invalid('Active L1 table offset invalid');
  if (h.refcountTableOffset >= fileSize || h.refcountTableOffset === 0) throw invalid('Reference count table offset invalid');
  const entryBytes = h.incompatLo & INCOMPAT_EXTL2 ? 16 : 8;
  const perL2 = cs / entryBytes;
  const needL1 = Math.ceil(h.size / (cs * perL2));
  if (h.l1Size < needL1) throw invalid('L1 table is too small');

  // Header extensions, from the end of the header to the end of cluster 0 (or the backing name).
  const extEnd = h.backingFileOffset ? Math.min(h.backingFileOffset, cs) : Math.min(cs, buf.length);
  let p = version === 2 ? V2_HEADER_LENGTH : h.headerLength;
  while (p + 8 <= extEnd) {
    const type = dv.getUint32(p);
    const len = dv.getUint32(p + 4);
    p += 8;
    if (type === EXT_END) break;
    if (len > extEnd - p) throw invalid('Header extension too large');
    const data = buf.slice(p, p + len);
    p += (len + 7) & ~7;
    if (type === EXT_BACKING_FORMAT) {
      if (len > 1023) throw invalid('ERROR: ext_backing_format: len=' + len + ' too large');
      h.backingFormat = dec.decode(data);
    } else if (type === EXT_DATA_FILE) {
      h.dataFile = dec.decode(data);
    } else {
      h.extensions.push({ type, data });
    }
  }
  if (h.backingFileOffset && h.backingFileSize) {
    if (h.backingFileOffset + h.backingFileSize > buf.length) throw invalid('Backing file name past the end of the file');
    h.backingFile = dec.decode(buf.subarray(h.backingFileOffset, h.backingFileOffset + h.backingFileSize));
  }
  return h;
}

/** The feature-name table QEMU writes into new images. */
export function featureTable(): Uint8Array {
  const entries: [number, number, string][] = [
    [0, 0, 'dirty bit'],
    [0, 1, 'corrupt bit'],
    [0, 2, 'external data file'],
    [0, 3, 'compression type'],
    [0, 4, 'extended L2 entries'],
    [1, 0, 'lazy refcounts'],
    [2, 0, 'bitmaps'],
    [2, 1, 'raw external data'],
  ];
  const out = new Uint8Array(entries.length * 48);
  entries.forEach(([t, b, name], i) => {
    out[i * 48] = t;
    out[i * 48 + 1] = b;
    out.set(enc.encode(name), i * 48 + 2);
  });
  return out;
}

/**
 * Serialize the header, its extensions and the backing file name. The result must fit in one
 * cluster; `backingFileOffset` is recomputed.
 */
export function serializeHeader(h: QcowHeader): Uint8Array {
  const cs = 2 ** h.clusterBits;
  const exts: HeaderExtension[] = [];
  if (h.backingFormat != null && h.backingFile != null) exts.push({ type: EXT_BACKING_FORMAT, data: enc.encode(h.backingFormat) });
  if (h.dataFile != null) exts.push({ type: EXT_DATA_FILE, data: enc.encode(h.dataFile) });
  for (const e of h.extensions) exts.push(e);
  const hdrLen = h.version === 2 ? V2_HEADER_LENGTH : Math.max(V3_HEADER_LENGTH, V3_HEADER_LENGTH + h.extraHeader.length);
  let len = hdrLen;
  for (const e of exts) len += 8 + ((e.data.length + 7) & ~7);
  len += 8;
  const name = h.backingFile != null ? enc.encode(h.backingFile) : null;
  if (name && name.length > 1023) throw invalid('Backing file name too long');
  const total = len + (name ? name.length : 0);
  if (total > cs) throw invalid('Header, extensions and backing file name do not fit in the first cluster');
  const out = new Uint8Array(total);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, QCOW_MAGIC);
  dv.setUint32(4, h.version);
  if (name) {
    setU64(dv, 8, len);
    dv.setUint32(16, name.length);
    out.set(name, len);
  }
  h.backingFileOffset = name ? len : 0;
  h.backingFileSize = name ? name.length : 0;
  dv.setUint32(20, h.clusterBits);
  setU64(dv, 24, h.size);
  dv.setUint32(32, h.cryptMethod);
  dv.setUint32(36, h.l1Size);
  setU64(dv, 40, h.l1TableOffset);
  setU64(dv, 48, h.refcountTableOffset);
  dv.setUint32(56, h.refcountTableClusters);
  dv.setUint32(60, h.nbSnapshots);
  setU64(dv, 64, h.snapshotsOffset);
  if (h.version === 3) {
    dv.setUint32(72, h.incompatHi);
    dv.setUint32(76, h.incompatLo);
    dv.setUint32(80, h.compatHi);
    dv.setUint32(84, h.compatLo);
    dv.setUint32(88, h.autoclearHi);
    dv.setUint32(92, h.autoclearLo);
    dv.setUint32(96, h.refcountOrder);
    dv.setUint32(100, hdrLen);
    out[104] = h.compressionType;
    out.set(h.extraHeader, V3_HEADER_LENGTH);
  }
  h.headerLength = hdrLen;
  let p = hdrLen;
  for (const e of exts) {
    dv.setUint32(p, e.type);
    dv.setUint32(p + 4, e.data.length);
    out.set(e.data, p + 8);
    p += 8 + ((e.data.length + 7) & ~7);
  }
  return out;
}

// ---- snapshot table -------------------------------------------------------------------------

export interface SnapshotEntry {
  l1TableOffset: number;
  l1Size: number;
  id: string;
  name: string;
  dateSec: number;
  dateNsec: number;
  vmClockNsec: number;
  vmStateSize: number;
  /** Extra data beyond what we interpret, preserved. */
  extra: Uint8Array;
  diskSize: number;
  icount: number;
}

/** Parse `nb` snapshot entries from `buf`; throws on a table that runs past the buffer. */
export function parseSnapshots(buf: Uint8Array, nb: number, defaultSize: number): SnapshotEntry[] {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const out: SnapshotEntry[] = [];
  let p = 0;
  for (let i = 0; i < nb; i++) {
    if (p + 40 > buf.length) throw invalid('Snapshot table is truncated');
    const idLen = dv.getUint16(p + 12);
    const nameLen = dv.getUint16(p + 14);
    const extraSize = dv.getUint32(p + 36);
    if (extraSize > 1024) throw invalid('Too much extra metadata in snapshot table entry');
    const end = p + 40 + extraSize + idLen + nameLen;
    if (end > buf.length) throw invalid('Snapshot table is truncated');
    const extra = buf.slice(p + 40, p + 40 + extraSize);
    const edv = new DataView(extra.buffer);
    const s: SnapshotEntry = {
      l1TableOffset: getU64(dv, p),
      l1Size: dv.getUint32(p + 8),
      dateSec: dv.getUint32(p + 16),
      dateNsec: dv.getUint32(p + 20),
      vmClockNsec: getU64(dv, p + 24),
      vmStateSize: dv.getUint32(p + 32),
      extra,
      diskSize: extraSize >= 16 ? getU64(edv, 8) : defaultSize,
      icount: extraSize >= 24 && edv.getUint32(16) !== 0xffffffff ? getU64(edv, 16) : -1,
      id: dec.decode(buf.subarray(p + 40 + extraSize, p + 40 + extraSize + idLen)),
      name: dec.decode(buf.subarray(p + 40 + extraSize + idLen, end)),
    };
    if (extraSize >= 8) {
      const large = getU64(edv, 0);
      if (large) s.vmStateSize = large;
    }
    out.push(s);
    p = (end + 7) & ~7;
  }
  return out;
}

export function serializeSnapshots(list: SnapshotEntry[]): Uint8Array {
  const parts: Uint8Array[] = [];
  let total = 0;
  for (const s of list) {
    const id = enc.encode(s.id);
    const name = enc.encode(s.name);
    const extraSize = Math.max(24, s.extra.length);
    const len = (40 + extraSize + id.length + name.length + 7) & ~7;
    const b = new Uint8Array(len);
    const dv = new DataView(b.buffer);
    setU64(dv, 0, s.l1TableOffset);
    dv.setUint32(8, s.l1Size);
    dv.setUint16(12, id.length);
    dv.setUint16(14, name.length);
    dv.setUint32(16, s.dateSec);
    dv.setUint32(20, s.dateNsec);
    setU64(dv, 24, s.vmClockNsec);
    dv.setUint32(32, s.vmStateSize > 0xffffffff ? 0 : s.vmStateSize);
    dv.setUint32(36, extraSize);
    b.set(s.extra, 40);
    setU64(dv, 40, s.vmStateSize);
    setU64(dv, 48, s.diskSize);
    if (s.icount < 0) {
      dv.setUint32(56, 0xffffffff);
      dv.setUint32(60, 0xffffffff);
    } else setU64(dv, 56, s.icount);
    b.set(id, 40 + extraSize);
    b.set(name, 40 + extraSize + id.length);
    parts.push(b);
    total += len;
  }
  const out = new Uint8Array(total);
  let p = 0;
  for (const b of parts) {
    out.set(b, p);
    p += b.length;
  }
  return out;
}
