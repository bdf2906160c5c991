// Internal snapshots (create / apply / delete) and resize. Each operation flushes first, then
// orders its steps so that on disk a refcount never drops below its number of references:
// increments are written before the new references, references are removed before decrements.
import { ImageError } from './device';
import { fixCopied } from './check';
import type { SnapshotEntry } from './format';
import { HI_COMPRESSED, HI_OFFSET_MASK, INCOMPAT_DATA_FILE, LO_OFFSET_MASK, serializeSnapshots, setU64 } from './format';
import type { Qcow2Image } from './qcow2';

const TWO32 = 4294967296;

function off64(hi: number, lo: number): number {
  return (hi & HI_OFFSET_MASK) * TWO32 + ((lo & LO_OFFSET_MASK) >>> 0);
}

async function readL1(img: Qcow2Image, offset: number, size: number): Promise<DataView> {
  const b = await img.store.pread(offset, size * 8);
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

/** Add `delta` to the refcount of every L2 table and data cluster an L1 table references. */
async function adjustTree(img: Qcow2Image, l1: DataView, n: number, delta: number): Promise<void> {
  const cs = img.clusterSize;
  const external = (img.header.incompatLo & INCOMPAT_DATA_FILE) !== 0;
  for (let i = 0; i < n; i++) {
    const l2 = off64(l1.getUint32(i * 8), l1.getUint32(i * 8 + 4));
    if (!l2) continue;
    if (l2 % cs) throw new ImageError('L2 table offset unaligned', 'EIO');
    const t = await img.readL2Raw(l2);
    const dv = new DataView(t.buffer, t.byteOffset, t.byteLength);
    for (let j = 0; j < img.l2Entries; j++) {
      const e = j * img.l2EntryBytes;
      const hi = dv.getUint32(e);
      const lo = dv.getUint32(e + 4);
      if (hi & HI_COMPRESSED) {
        const [off, len] = img.compressedRange(hi, lo);
        for (let c = Math.floor(off / cs); c * cs < off + len; c++) await change(img, c * cs, delta);
        continue;
      }
      const host = off64(hi, lo);
      if (host && !external) await change(img, host, delta);
    }
    await change(img, l2, delta);
  }
}

async function change(img: Qcow2Image, off: number, delta: number): Promise<void> {
  if (delta > 0) await img.changeRefcount(off / img.clusterSize, delta);
  else img.deferFree(off);
}

async function allocAndWrite(img: Qcow2Image, data: Uint8Array): Promise<number> {
  const n = Math.max(1, Math.ceil(data.length / img.clusterSize));
  const off = await img.allocInternal(n);
  await img.store.pwrite(off, data);
  return off;
}

async function writeSnapshotTable(img: Qcow2Image, list: SnapshotEntry[]): Promise<void> {
  const cs = img.clusterSize;
  const oldOff = img.header.snapshotsOffset;
  const oldLen = img.header.nbSnapshots ? serializeSnapshots(img.snapshots).length : 0;
  const table = serializeSnapshots(list);
  const off = list.length ? await allocAndWrite(img, table) : 0;
  await img.flushLocked();
  const hb = new Uint8Array(12);
  const dv = new DataView(hb.buffer);
  dv.setUint32(0, list.length);
  setU64(dv, 4, off);
  await img.store.pwrite(60, hb);
  await img.store.flush();
  img.header.nbSnapshots = list.length;
  img.header.snapshotsOffset = off;
  img.snapshots = list;
  if (oldLen) for (let c = 0; c < Math.ceil(oldLen / cs); c++) img.deferFree(oldOff + c * cs);
}

function activeL1Bytes(img: Qcow2Image): Uint8Array {
  const b = new Uint8Array(img.l1Hi.length * 8);
  const dv = new DataView(b.buffer);
  for (let i = 0; i < img.l1Hi.length; i++) {
    dv.setUint32(i * 8, img.l1Hi[i]);
    dv.setUint32(i * 8 + 4, img.l1Lo[i]);
  }
  return b;
}

function find(img: Qcow2Image, idOrName: string): number {
  let i = img.snapshots.findIndex((s) => s.id === idOrName);
  if (i < 0) i = img.snapshots.findIndex((s) => s.name === idOrName);
  return i;
}

/** Create an internal snapshot of the active state. */
export function createSnapshot(img: Qcow2Image, name: string, now: number = Date.now()): Promise<SnapshotEntry> {
  return img.exclusive(async () => {
    if (img.readOnly) throw new ImageError('Image is read-only', 'EACCES');
    if (img.header.incompatLo & INCOMPAT_DATA_FILE) throw new ImageError('Operation not supported', 'ENOTSUP');
    if (img.snapshots.some((s) => s.name === name)) throw new ImageError('File exists', 'EEXIST');
    if (img.snapshots.length >= 65536) throw new ImageError('Too many snapshots', 'EFBIG');
    await img.flushLocked();
    // Clear COPIED first (harmless: costs a copy-on-write), then raise refcounts, then commit:
    // a crash anywhere leaves only leaks, never a COPIED flag on a shared cluster.
    await fixCopied(img, true);
    const l1 = activeL1Bytes(img);
    const l1dv = new DataView(l1.buffer);
    await adjustTree(img, l1dv, img.l1Hi.length, 1);
    // Snapshot L1 entries never carry COPIED.
    for (let i = 0; i < img.l1Hi.length; i++) l1dv.setUint32(i * 8, l1dv.getUint32(i * 8) & 0x7fffffff);
    const l1Off = l1.length ? await allocAndWrite(img, l1) : 0;
    await img.flushLocked();
    const maxId = img.snapshots.reduce((m, s) => Math.max(m, Number(s.id) || 0), 0);
    const entry: SnapshotEntry = {
      l1TableOffset: l1Off,
      l1Size: img.l1Hi.length,
      id: String(maxId + 1),
      name,
      dateSec: Math.floor(now / 1000),
      dateNsec: (now % 1000) * 1e6,
      vmClockNsec: 0,
      vmStateSize: 0,
      extra: new Uint8Array(24),
      diskSize: img.size,
      icount: 0,
    };
    await writeSnapshotTable(img, [...img.snapshots, entry]);
    await img.flushLocked();
    return entry;
  });
}

/** Delete a snapshot by id or name. */
export function deleteSnapshot(img: Qcow2Image, idOrName: string): Promise<void> {
  return img.exclusive(async () => {
    if (img.readOnly) throw new ImageError('Image is read-only', 'EACCES');
    const i = find(img, idOrName);
    if (i < 0) throw new ImageError('snapshot not found', 'ENOENT');
    await img.flushLocked();
    const s = img.snapshots[i];
    await writeSnapshotTable(img, img.snapshots.filter((_, k) => k !== i));
    const l1 = await readL1(img, s.l1TableOffset, s.l1Size);
    await adjustTree(img, l1, s.l1Size, -1);
    for (let c = 0; c < Math.ceil((s.l1Size * 8) / img.clusterSize); c++) img.deferFree(s.l1TableOffset + c * img.clusterSize);
    await img.flushLocked();
    await fixCopied(img);
  });
}

/** Revert the active state to a snapshot. */
export function applySnapshot(img: Qcow2Image, idOrName: string): Promise<void> {
  return img.exclusive(async () => {
    if (img.readOnly) throw new ImageError('Image is read-only', 'EACCES');
    const i = find(img, idOrName);
    if (i < 0) throw new ImageError('snapshot not found', 'ENOENT');
    await img.flushLocked();
    const s = img.snapshots[i];
    const cs = img.clusterSize;
    const snapL1 = await readL1(img, s.l1TableOffset, s.l1Size);
    await adjustTree(img, snapL1, s.l1Size, 1);
    await img.flushLocked();
    const oldL1 = activeL1Bytes(img);
    const oldN = img.l1Hi.length;
    const oldOff = img.header.l1TableOffset;
    const bytes = new Uint8Array(snapL1.buffer, snapL1.byteOffset, snapL1.byteLength).slice();
    if (s.l1Size === oldN) {
      await img.store.pwrite(oldOff, bytes);
      await img.store.flush();
    } else {
      const off = bytes.length ? await allocAndWrite(img, bytes) : 0;
      await img.flushLocked();
      const hb = new Uint8Array(24);
      const dv = new DataView(hb.buffer);
      setU64(dv, 0, s.diskSize);
      dv.setUint32(8, img.header.cryptMethod);
      dv.setUint32(12, s.l1Size);
      setU64(dv, 16, off);
      await img.store.pwrite(24, hb);
      await img.store.flush();
      img.header.l1TableOffset = off;
      img.header.l1Size = s.l1Size;
      for (let c = 0; c < Math.ceil((oldN * 8) / cs); c++) img.deferFree(oldOff + c * cs);
    }
    if (s.diskSize !== img.header.size) {
      const hb = new Uint8Array(8);
      setU64(new DataView(hb.buffer), 0, s.diskSize);
      await img.store.pwrite(24, hb);
      img.header.size = s.diskSize;
    }
    img.loadL1(bytes, s.l1Size);
    img.dropCaches();
    await adjustTree(img, new DataView(oldL1.buffer), oldN, -1);
    await img.flushLocked();
    await fixCopied(img);
  });
}

/** Grow (or, with no snapshots, shrink) the virtual size. */
export function resizeImage(img: Qcow2Image, size: number): Promise<void> {
  return img.exclusive(async () => {
    if (img.readOnly) throw new ImageError('Image is read-only', 'EACCES');
    if (!Number.isSafeInteger(size) || size < 0) throw new ImageError('Invalid size', 'EINVAL');
    if (img.snapshots.length && size < img.size) throw new ImageError("Can't shrink an image with internal snapshots", 'ENOTSUP');
    const cs = img.clusterSize;
    await img.flushLocked();
    if (size < img.size) {
      // Unmap everything past the new end (whole clusters), keeping the tail of a partial one.
      const from = Math.ceil(size / cs) * cs;
      if (from < img.size) await img.unmapTail(from);
      await img.flushLocked();
    }
    const need = Math.ceil(size / (cs * img.l2Entries));
    const hb = new Uint8Array(24);
    const dv = new DataView(hb.buffer);
    setU64(dv, 0, size);
    dv.setUint32(8, img.header.cryptMethod);
    if (need > img.l1Hi.length) {
      if (need * 8 > 32 * 1024 * 1024) throw new ImageError('Image size too large', 'EFBIG');
      const bytes = new Uint8Array(need * 8);
      bytes.set(activeL1Bytes(img));
      const off = await allocAndWrite(img, bytes);
      await img.flushLocked();
      const oldOff = img.header.l1TableOffset;
      const oldN = img.l1Hi.length;
      dv.setUint32(12, need);
      setU64(dv, 16, off);
      await img.store.pwrite(24, hb);
      await img.store.flush();
      img.header.l1TableOffset = off;
      img.header.l1Size = need;
      img.loadL1(bytes, need);
      for (let c = 0; c < Math.ceil((oldN * 8) / cs); c++) if (oldN) img.deferFree(oldOff + c * cs);
    } else {
      await img.store.pwrite(24, hb.subarray(0, 8));
      await img.store.flush();
    }
    img.header.size = size;
    await img.flushLocked();
  });
}
