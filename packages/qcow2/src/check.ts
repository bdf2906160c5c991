// Consistency check and repair, following `qemu-img check`: recompute every cluster's
// reference count by walking the header, L1/L2 tables (active and snapshots), the snapshot
// table, the refcount structures and the bitmap directory; compare with the stored refcounts;
// check the COPIED flags of the active tables.
import { ImageError } from './device';
import { EXT_BITMAPS, getU64, HI_COMPRESSED, HI_COPIED, HI_OFFSET_MASK, INCOMPAT_CORRUPT, LO_OFFSET_MASK, setU64 } from './format';
import type { Qcow2Image } from './qcow2';

export interface CheckResult {
  corruptions: number;
  leaks: number;
  checkErrors: number;
  corruptionsFixed: number;
  leaksFixed: number;
  imageEndOffset: number;
  totalClusters: number;
  allocatedClusters: number;
  fragmentedClusters: number;
  compressedClusters: number;
  /** Diagnostics as qemu-img prints them on stderr. */
  messages: string[];
}

export type RepairMode = 'none' | 'leaks' | 'all';

const TWO32 = 4294967296;
const MAX_TRACKED_CLUSTERS = 1 << 27;

function off64(hi: number, lo: number): number {
  return (hi & HI_OFFSET_MASK) * TWO32 + ((lo & LO_OFFSET_MASK) >>> 0);
}

interface Walk {
  refs: Uint32Array;
  /** References from refcount structures (excluded when rebuilding them). */
  metaRefs: Uint32Array;
  corruptions: number;
  messages: string[];
  allocated: number;
  fragmented: number;
  compressed: number;
  copiedChecks: { kind: 'l1' | 'l2'; tableOff: number; index: number; hi: number; lo: number; target: number }[];
}

async function walk(img: Qcow2Image, fileSize: number): Promise<Walk> {
  const cs = img.clusterSize;
  const nClusters = Math.min(MAX_TRACKED_CLUSTERS, Math.ceil(fileSize / cs) + 1);
  const w: Walk = {
    refs: new Uint32Array(nClusters),
    metaRefs: new Uint32Array(nClusters),
    corruptions: 0,
    messages: [],
    allocated: 0,
    fragmented: 0,
    compressed: 0,
    copiedChecks: [],
  };
  const inc = (off: number, len: number, meta = false): void => {
    if (len <= 0) return;
    const first = Math.floor(off / cs);
    const last = Math.floor((off + len - 1) / cs);
    for (let c = first; c <= last; c++) {
      if (c >= nClusters) {
        w.messages.push(`ERROR: reference to cluster ${c} (offset 0x${(c * cs).toString(16)}) beyond the end of the image file`);
        w.corruptions++;
        return;
      }
      w.refs[c]++;
      if (meta) w.metaRefs[c]++;
    }
  };
  inc(0, cs);
  const h = img.header;
  const externalData = img.dataStore !== img.store;
  const walkL1 = async (l1: Uint32Array[], active: boolean): Promise<void> => {
    const [his, los] = l1;
    let nextContig = -1;
    for (let i = 0; i < his.length; i++) {
      const l2off = off64(his[i], los[i]);
      if (!l2off) continue;
      if (l2off % cs) {
        w.messages.push(`ERROR l2_offset=${l2off.toString(16)}: Table is not cluster aligned; L1 entry corrupted`);
        w.corruptions++;
        continue;
      }
      inc(l2off, cs);
      if (active) w.copiedChecks.push({ kind: 'l1', tableOff: h.l1TableOffset, index: i, hi: his[i], lo: los[i], target: l2off });
      if (l2off >= fileSize) continue;
      const t = await img.readL2Raw(l2off);
      const dv = new DataView(t.buffer, t.byteOffset, t.byteLength);
      for (let j = 0; j < img.l2Entries; j++) {
        const e = j * img.l2EntryBytes;
        const hi = dv.getUint32(e);
        const lo = dv.getUint32(e + 4);
        if (hi & HI_COMPRESSED) {
          if (img.extendedL2 && (dv.getUint32(e + 8) || dv.getUint32(e + 12))) {
            w.messages.push(`ERROR compressed cluster ${j} with non-zero subcluster allocation bitmap, entry=0x${hi.toString(16)}${lo.toString(16).padStart(8, '0')}`);
            w.corruptions++;
          }
          const [coff, clen] = img.compressedRange(hi, lo);
          inc(coff, clen);
          if (active) {
            w.allocated++;
            w.compressed++;
          }
          continue;
        }
        const host = off64(hi, lo);
        if (!host) continue;
        if (host % cs) {
          w.messages.push(`ERROR offset=${host.toString(16)}: Cluster is not properly aligned; L2 entry corrupted`);
          w.corruptions++;
          continue;
        }
        if (!externalData) inc(host, cs);
        if (active) {
          w.allocated++;
          if (nextContig >= 0 && host !== nextContig) w.fragmented++;
          nextContig = host + cs;
          if (!externalData) w.copiedChecks.push({ kind: 'l2', tableOff: l2off, index: j, hi, lo, target: host });
        }
      }
    }
  };
  inc(h.l1TableOffset, h.l1Size * 8);
  await walkL1([img.l1Hi, img.l1Lo], true);
  for (const s of img.snapshots) {
    inc(s.l1TableOffset, s.l1Size * 8);
    const b = await img.store.pread(s.l1TableOffset, s.l1Size * 8);
    const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
    const his = new Uint32Array(s.l1Size);
    const los = new Uint32Array(s.l1Size);
    for (let i = 0; i < s.l1Size; i++) {
      his[i] = dv.getUint32(i * 8);
      los[i] = dv.getUint32(i * 8 + 4);
    }
    await walkL1([his, los], false);
  }
  if (h.nbSnapshots) {
    const { serializeSnapshots } = await import('./format');
    inc(h.snapshotsOffset, serializeSnapshots(img.snapshots).length || 1);
  }
  // Bitmap directory and tables.
  for (const ext of h.extensions) {
    if (ext.type !== EXT_BITMAPS || ext.data.length < 24) continue;
    const edv = new DataView(ext.data.buffer, ext.data.byteOffset, ext.data.byteLength);
    const nb = edv.getUint32(0);
    const dirSize = getU64(edv, 8);
    const dirOff = getU64(edv, 16);
    if (dirSize > 64 * 1024 * 1024 || dirOff % cs) continue;
    inc(dirOff, dirSize);
    const dir = await img.store.pread(dirOff, dirSize);
    const ddv = new DataView(dir.buffer, dir.byteOffset, dir.byteLength);
    let p = 0;
    for (let i = 0; i < nb && p + 24 <= dir.length; i++) {
      const tOff = getU64(ddv, p);
      const tSize = ddv.getUint32(p + 8);
      const nameSize = ddv.getUint16(p + 18);
      const extra = ddv.getUint32(p + 20);
      if (tSize * 8 <= 64 * 1024 * 1024 && tOff % cs === 0) {
        inc(tOff, tSize * 8);
        const tb = await img.store.pread(tOff, tSize * 8);
        const tdv = new DataView(tb.buffer, tb.byteOffset, tb.byteLength);
        for (let k = 0; k < tSize; k++) {
          const o = off64(tdv.getUint32(k * 8), tdv.getUint32(k * 8 + 4));
          if (o) inc(o, cs);
        }
      }
      p = (p + 24 + extra + nameSize + 7) & ~7;
    }
  }
  inc(h.refcountTableOffset, h.refcountTableClusters * cs, true);
  for (let b = 0; b < img.reftable.length; b++) {
    const off = img.reftable[b];
    if (!off) continue;
    if (off % cs) {
      w.messages.push(`ERROR refcount block ${b} is not cluster aligned; refcount table entry corrupted`);
      w.corruptions++;
      continue;
    }
    if (off >= fileSize) {
      w.messages.push(`ERROR refcount block ${b} is outside image`);
      w.corruptions++;
      continue;
    }
    inc(off, cs, true);
  }
  return w;
}

/** Check (and optionally repair) an image; the image must not be in use by other callers. */
export async function checkImage(img: Qcow2Image, mode: RepairMode = 'none'): Promise<CheckResult> {
  return img.exclusive(() => checkLocked(img, mode));
}

/** Repair inside an already-held queue slot (used by open on dirty images). */
export async function repairImage(img: Qcow2Image, mode: RepairMode): Promise<CheckResult> {
  return checkLocked(img, mode);
}

async function checkLocked(img: Qcow2Image, mode: RepairMode): Promise<CheckResult> {
  if (!img.readOnly) await img.flushLocked();
  if (mode !== 'none' && img.readOnly) throw new ImageError('Cannot repair a read-only image', 'EACCES');
  const first = await checkPass(img);
  if (mode === 'none') return first.result;
  const r = first.result;
  let corruptionsFixed = 0;
  let leaksFixed = 0;
  const needRebuild = mode === 'all' && r.corruptions > 0;
  if (needRebuild) {
    await rebuildRefcounts(img, first.walk);
    await fixCopied(img);
    corruptionsFixed = r.corruptions;
    leaksFixed = r.leaks;
  } else if (r.leaks > 0) {
    // Lower leaked refcounts to the computed value (their blocks exist by definition).
    for (const [c, ref] of first.leaked) {
      const cur = await img.getRefcount(c);
      if (cur > ref) await img.changeRefcount(c, ref - cur);
    }
    await img.flushLocked();
    leaksFixed = r.leaks;
    const end = r.imageEndOffset;
    const second = await checkPass(img);
    if (second.result.imageEndOffset < end) {
      const newEnd = second.result.imageEndOffset;
      if ((await img.store.size()) > newEnd) await img.store.truncate(newEnd);
      img.fileEnd = newEnd;
    }
  }
  if (mode === 'all' && img.header.incompatLo & INCOMPAT_CORRUPT) {
    img.header.incompatLo &= ~INCOMPAT_CORRUPT;
    await img.writeFeatureWords();
    await img.store.flush();
  }
  img.dropCaches();
  const after = (await checkPass(img)).result;
  after.corruptionsFixed = corruptionsFixed;
  after.leaksFixed = leaksFixed;
  after.messages = [...r.messages, ...after.messages];
  return after;
}

async function checkPass(img: Qcow2Image): Promise<{ result: CheckResult; walk: Walk; leaked: [number, number][] }> {
  const cs = img.clusterSize;
  const fileSize = await img.store.size();
  const w = await walk(img, fileSize);
  let leaks = 0;
  let corruptions = w.corruptions;
  let highest = -1;
  const leaked: [number, number][] = [];
  const n = w.refs.length;
  for (let c = 0; c < n; c++) {
    const stored = await img.getRefcount(c);
    const ref = w.refs[c];
    if (stored > 0 || ref > 0) highest = c;
    if (stored === ref) continue;
    if (stored > ref) {
      // More stored references than real ones: a leak (wasted space, no harm to data).
      w.messages.push(`Leaked cluster ${c} refcount=${stored} reference=${ref}`);
      leaks++;
      leaked.push([c, ref]);
    } else {
      w.messages.push(`ERROR cluster ${c} refcount=${stored} reference=${ref}`);
      corruptions++;
    }
  }
  // COPIED flags of the active tables must say "refcount is exactly one".
  for (const cc of w.copiedChecks) {
    const rc = await img.getRefcount(Math.floor(cc.target / cs));
    if ((rc === 1) !== ((cc.hi & HI_COPIED) !== 0)) {
      const entry = `${cc.hi.toString(16)}${cc.lo.toString(16).padStart(8, '0')}`.replace(/^0+(?=.)/, '');
      w.messages.push(
        cc.kind === 'l1'
          ? `ERROR OFLAG_COPIED L2 cluster: l1_index=${cc.index} l1_entry=${entry} refcount=${rc}`
          : `ERROR OFLAG_COPIED data cluster: l2_entry=${entry} refcount=${rc}`,
      );
      corruptions++;
    }
  }
  return {
    result: {
      corruptions,
      leaks,
      checkErrors: 0,
      corruptionsFixed: 0,
      leaksFixed: 0,
      imageEndOffset: (highest + 1) * cs,
      totalClusters: Math.ceil(img.size / cs),
      allocatedClusters: w.allocated,
      fragmentedClusters: w.fragmented,
      compressedClusters: w.compressed,
      messages: w.messages,
    },
    walk: w,
    leaked,
  };
}

/** Write brand-new refcount structures from the computed references, after the image's end. */
async function rebuildRefcounts(img: Qcow2Image, w: Walk, bits: number = img.refcountBits): Promise<void> {
  const cs = img.clusterSize;
  const per = (cs * 8) / bits;
  const refs = new Float64Array(w.refs.length);
  let highest = 0;
  for (let c = 0; c < refs.length; c++) {
    refs[c] = w.refs[c] - w.metaRefs[c];
    if (refs[c] > 0) highest = c;
  }
  const start = Math.max(highest + 1, Math.ceil((await img.store.size()) / cs));
  let blocks = 1;
  let tableClusters = 1;
  for (;;) {
    const total = start + tableClusters + blocks;
    const nb = Math.ceil(total / per);
    const nt = Math.max(1, Math.ceil((nb * 8) / cs));
    if (nb === blocks && nt === tableClusters) break;
    blocks = nb;
    tableClusters = nt;
  }
  const tableOff = start * cs;
  const blocksOff = (start + tableClusters) * cs;
  const max = bits >= 53 ? Number.MAX_SAFE_INTEGER : 2 ** bits - 1;
  const blockBuf = new Uint8Array(blocks * cs);
  const bdv = new DataView(blockBuf.buffer);
  const setRef = (c: number, v: number): void => {
    if (v > max) throw new ImageError(`Cannot decrease refcount entry width to ${bits} bits: Cluster at offset 0x${(c * cs).toString(16)} has a refcount of ${v}`, 'ERANGE');
    if (bits === 16) bdv.setUint16(c * 2, v);
    else if (bits === 8) blockBuf[c] = v;
    else if (bits === 32) bdv.setUint32(c * 4, v);
    else if (bits === 64) setU64(bdv, c * 8, v);
    else {
      const bp = c * bits;
      blockBuf[bp >>> 3] |= v << (bp & 7);
    }
  };
  for (let c = 0; c < refs.length; c++) if (refs[c] > 0) setRef(c, refs[c]);
  for (let c = start; c < start + tableClusters + blocks; c++) setRef(c, 1);
  const table = new Uint8Array(tableClusters * cs);
  const tdv = new DataView(table.buffer);
  for (let b = 0; b < blocks; b++) setU64(tdv, b * 8, blocksOff + b * cs);
  await img.store.pwrite(blocksOff, blockBuf);
  await img.store.pwrite(tableOff, table);
  await img.store.flush();
  if (bits !== img.refcountBits) {
    // Table offset, size and refcount_order switch in one write of header bytes 48..99.
    const hb = new Uint8Array(52);
    const hdv = new DataView(hb.buffer);
    setU64(hdv, 0, tableOff);
    hdv.setUint32(8, tableClusters);
    hdv.setUint32(12, img.header.nbSnapshots);
    setU64(hdv, 16, img.header.snapshotsOffset);
    hdv.setUint32(24, img.header.incompatHi);
    hdv.setUint32(28, img.header.incompatLo);
    hdv.setUint32(32, img.header.compatHi);
    hdv.setUint32(36, img.header.compatLo);
    hdv.setUint32(40, img.header.autoclearHi);
    hdv.setUint32(44, img.header.autoclearLo);
    hdv.setUint32(48, Math.log2(bits));
    await img.store.pwrite(48, hb);
    await img.store.flush();
    img.header.refcountOrder = Math.log2(bits);
    img.header.refcountTableOffset = tableOff;
    img.header.refcountTableClusters = tableClusters;
    // The open image still counts with the old width: it must be reopened.
    img.dropCaches();
    img.readOnly = true;
    return;
  }
  const hb = new Uint8Array(12);
  const hdv = new DataView(hb.buffer);
  setU64(hdv, 0, tableOff);
  hdv.setUint32(8, tableClusters);
  await img.store.pwrite(48, hb);
  await img.store.flush();
  img.header.refcountTableOffset = tableOff;
  img.header.refcountTableClusters = tableClusters;
  img.reftable = new Float64Array((tableClusters * cs) / 8);
  for (let b = 0; b < blocks; b++) img.reftable[b] = blocksOff + b * cs;
  img.refreshRbSet();
  img.dropCaches();
  img.fileEnd = Math.max(img.fileEnd, blocksOff + blocks * cs);
}

/**
 * Rewrite the refcount structures with entries of `bits` bits (qemu-img amend -o
 * refcount_bits). The image is left read-only and must be closed and reopened.
 */
export function changeRefcountWidth(img: Qcow2Image, bits: number): Promise<void> {
  return img.exclusive(async () => {
    if (img.readOnly) throw new ImageError('Image is read-only', 'EACCES');
    if (img.header.version < 3 && bits !== 16) throw new ImageError('Refcount widths other than 16 bits require compatibility level 1.1 or above (use compat=1.1 or greater)');
    await img.flushLocked();
    const first = await checkPass(img);
    if (first.result.corruptions) throw new ImageError('Cannot change the refcount width of a corrupted image; run check -r all first', 'EIO');
    await rebuildRefcounts(img, first.walk, bits);
  });
}

/** Set or clear COPIED in the active L1/L2 tables to match the refcounts. */
/** With `clearAll`, drop every COPIED flag (before a snapshot shares everything). */
export async function fixCopied(img: Qcow2Image, clearAll = false): Promise<void> {
  const cs = img.clusterSize;
  const l1 = new Uint8Array(img.l1Hi.length * 8);
  const l1dv = new DataView(l1.buffer);
  let l1Changed = false;
  for (let i = 0; i < img.l1Hi.length; i++) {
    const l2off = off64(img.l1Hi[i], img.l1Lo[i]);
    if (l2off && l2off % cs === 0) {
      const rc = await img.getRefcount(l2off / cs);
      const want = rc === 1 && !clearAll ? HI_COPIED : 0;
      if ((img.l1Hi[i] & HI_COPIED) !== want) {
        img.l1Hi[i] = ((img.l1Hi[i] & ~HI_COPIED) | want) >>> 0;
        l1Changed = true;
      }
      const t = await img.store.pread(l2off, cs);
      const dv = new DataView(t.buffer);
      let changed = false;
      for (let j = 0; j < img.l2Entries; j++) {
        const e = j * img.l2EntryBytes;
        const hi = dv.getUint32(e);
        const lo = dv.getUint32(e + 4);
        if (hi & HI_COMPRESSED) continue;
        const host = off64(hi, lo);
        if (!host || host % cs || img.dataStore !== img.store) continue;
        const r = await img.getRefcount(host / cs);
        const wantBit = r === 1 && !clearAll ? HI_COPIED : 0;
        if ((hi & HI_COPIED) !== wantBit) {
          dv.setUint32(e, ((hi & ~HI_COPIED) | wantBit) >>> 0);
          changed = true;
        }
      }
      if (changed) await img.store.pwrite(l2off, t);
    }
    l1dv.setUint32(i * 8, img.l1Hi[i]);
    l1dv.setUint32(i * 8 + 4, img.l1Lo[i]);
  }
  if (l1Changed) await img.store.pwrite(img.header.l1TableOffset, l1);
  await img.store.flush();
  img.dropCaches();
}
