// Zero clusters in internal snapshots' tables, made expressible in version 2 (compat=0.10),
// as QEMU's qcow2_expand_zero_clusters does for every snapshot's L1 table.
import { ImageError } from './device';
import { HI_COMPRESSED, HI_COPIED, HI_OFFSET_MASK, LO_OFFSET_MASK } from './format';
import type { Qcow2Image } from './qcow2';

const TWO32 = 4294967296;

/**
 * Rewrite the zero-flagged entries of every snapshot's L2 tables (after the active table was
 * done with `expandZeroClusters`): without a backing file an unallocated zero cluster becomes a
 * hole; otherwise it gets a zero-filled cluster. An allocated zero cluster is zero-filled in
 * place when only this table references it; when it is shared with other tables (QEMU zeroes
 * it in place anyway, which changes what the others read) it gets a fresh zero-filled cluster.
 * A cluster placed in an L2 table shared by several L1 tables gets that many references, as
 * QEMU counts them. Order: zeros and refcounts are on disk before the table points at them,
 * and references are dropped only after the table stopped pointing at them.
 */
export function expandSnapshotZeroClusters(img: Qcow2Image): Promise<void> {
  return img.exclusive(async () => {
    if (img.extendedL2) throw new ImageError('Cannot expand zero clusters of an image with extended L2 entries', 'ENOTSUP');
    const cs = img.clusterSize;
    const zeros = new Uint8Array(cs);
    const hasBacking = img.header.backingFile != null;
    await img.flushLocked();
    const zeroFill = async (host: number): Promise<void> => {
      const what = img.metadataOverlap(host, cs);
      if (what) await img.signalCorruption(`Preventing invalid write on metadata (overlaps with ${what})`);
      await img.store.pwrite(host, zeros);
    };
    for (const s of img.snapshots) {
      const l1 = await img.store.pread(s.l1TableOffset, s.l1Size * 8);
      const l1dv = new DataView(l1.buffer, l1.byteOffset, l1.byteLength);
      for (let i = 0; i < s.l1Size; i++) {
        const l2off = (l1dv.getUint32(i * 8) & HI_OFFSET_MASK) * TWO32 + ((l1dv.getUint32(i * 8 + 4) & LO_OFFSET_MASK) >>> 0);
        if (!l2off) continue;
        if (l2off % cs) throw new ImageError(`Snapshot L2 table offset 0x${l2off.toString(16)} unaligned`, 'EIO');
        const t = (await img.readL2Raw(l2off)).slice();
        const dv = new DataView(t.buffer);
        const l2rc = await img.getRefcount(l2off / cs);
        const drops: number[] = [];
        let changed = false;
        for (let j = 0; j < img.l2Entries; j++) {
          const hi = dv.getUint32(j * 8);
          const lo = dv.getUint32(j * 8 + 4);
          if (hi & HI_COMPRESSED || !(lo & 1)) continue;
          changed = true;
          const host = (hi & HI_OFFSET_MASK) * TWO32 + ((lo & LO_OFFSET_MASK) >>> 0);
          let target = host;
          if (!host && !hasBacking) {
            dv.setUint32(j * 8, 0);
            dv.setUint32(j * 8 + 4, 0);
            continue;
          }
          if (host && host % cs) throw new ImageError(`Cluster allocation offset 0x${host.toString(16)} unaligned`, 'EIO');
          const rc = host ? await img.getRefcount(host / cs) : 0;
          if (!host || rc !== l2rc) {
            target = await img.allocInternal(1);
            if (l2rc > 1) await img.changeRefcount(target / cs, l2rc - 1);
            if (host) for (let k = 0; k < l2rc; k++) drops.push(host);
          }
          await zeroFill(target);
          dv.setUint32(j * 8, (l2rc === 1 ? HI_COPIED : 0) | Math.floor(target / TWO32));
          dv.setUint32(j * 8 + 4, target >>> 0);
        }
        if (!changed) continue;
        // New refcounts and zeros first, then the table, then the dropped references.
        await img.flushLocked();
        await img.store.pwrite(l2off, t);
        await img.store.flush();
        img.replaceCachedL2(l2off, t);
        for (const d of drops) img.deferFree(d);
      }
    }
    await img.flushLocked();
  });
}
