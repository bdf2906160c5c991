// Size estimates for a new qcow2 image, with the arithmetic of QEMU's qcow2_measure(): the
// metadata of a fully allocated image (header, L2 tables, L1 table and the refcount structures
// that count every cluster including themselves), plus the data clusters actually needed.
import { ImageError } from './device';
import type { BlockStatus } from './device';

export interface MeasureTarget {
  clusterSize: number;
  refcountBits: number;
  extendedL2: boolean;
  /** Version 3 (compat=1.1) stores bitmaps; version 2 does not. */
  version: number;
}

export interface MeasureResult {
  required: number;
  fullyAllocated: number;
  /** Space for the source's persistent bitmaps, when both sides support them. */
  bitmaps: number | null;
}

/** One persistent bitmap of the source (size in bytes of the disk it covers). */
export interface MeasureBitmap {
  name: string;
  granularity: number;
  diskSize: number;
}

const roundUp = (n: number, a: number): number => Math.ceil(n / a) * a;

/** Clusters taken by refcount blocks and the refcount table that count `clusters` clusters and themselves. */
export function refcountMetadataSize(clusters: number, clusterSize: number, refcountBits: number): number {
  const perTableCluster = clusterSize / 8;
  const perBlock = (clusterSize * 8) / refcountBits;
  let table = 0;
  let blocks = 0;
  let n = 0;
  let last: number;
  do {
    last = n;
    blocks = Math.ceil((clusters + table + blocks) / perBlock);
    table = Math.ceil(blocks / perTableCluster);
    n = clusters + blocks + table;
  } while (n !== last);
  return (blocks + table) * clusterSize;
}

/** File size of an image of `size` bytes with every cluster allocated (preallocation=full). */
export function fullyAllocatedSize(size: number, t: MeasureTarget): number {
  const cs = t.clusterSize;
  const l2e = t.extendedL2 ? 16 : 8;
  const aligned = roundUp(size, cs);
  let meta = cs;
  const nl2e = roundUp(aligned / cs, cs / l2e);
  meta += nl2e * l2e;
  const nl1e = roundUp((nl2e * l2e) / cs, cs / 8);
  meta += nl1e * 8;
  meta += refcountMetadataSize((meta + aligned) / cs, cs, t.refcountBits);
  return meta + aligned;
}

/** Bytes a copy of these bitmaps needs at `clusterSize` (data, tables, directory). */
export function bitmapsSize(list: MeasureBitmap[], clusterSize: number): number {
  let total = 0;
  let dir = 0;
  for (const b of list) {
    const bytes = Math.ceil(Math.ceil(b.diskSize / b.granularity) / 8);
    const clusters = Math.ceil(bytes / clusterSize);
    total += clusters * clusterSize + roundUp(clusters * 8, clusterSize);
    dir += roundUp(24 + new TextEncoder().encode(b.name).length, 8);
  }
  return total + roundUp(dir, clusterSize);
}

/** Block status of the source at `offset` (at most `length` bytes), as QEMU queries it. */
export type StatusQuery = (offset: number, length: number) => Promise<BlockStatus>;

/**
 * Measure a qcow2 image of `size` bytes, optionally holding the data of a source of that size
 * (`status` answers its block status). With `backing` the new image is assumed to share nothing
 * with its backing file (every cluster counts), as QEMU does.
 */
export async function measureQcow2(
  size: number,
  t: MeasureTarget,
  status: StatusQuery | null,
  o: { backing?: boolean; preallocation?: string; bitmaps?: MeasureBitmap[] | null } = {},
): Promise<MeasureResult> {
  const cs = t.clusterSize;
  const l2e = t.extendedL2 ? 16 : 8;
  const virtualSize = roundUp(size, cs);
  if (Math.ceil(virtualSize / cs / (cs / l2e)) * 8 > 32 * 1024 * 1024) {
    throw new ImageError('The image size is too large (try using a larger cluster size)', 'EFBIG');
  }
  let required = 0;
  if (status) {
    if (o.backing) required = virtualSize;
    else {
      for (let offset = 0; offset < size; ) {
        const e = await status(offset, size - offset);
        let pnum = e.length;
        if (pnum <= 0) throw new ImageError('block status made no progress', 'EIO');
        if (!e.zero && e.data && e.present) {
          // Extend to the end of the cluster; the next query starts there.
          pnum = roundUp(offset + pnum, cs) - offset;
          required += (offset % cs) + pnum;
        }
        offset += pnum;
      }
    }
  }
  if (o.preallocation === 'full' || o.preallocation === 'falloc') required = virtualSize;
  const fullyAllocated = fullyAllocatedSize(virtualSize, t);
  const bitmaps = t.version >= 3 && status && o.bitmaps ? bitmapsSize(o.bitmaps, cs) : null;
  return { required: fullyAllocated - virtualSize + required, fullyAllocated, bitmaps };
}
