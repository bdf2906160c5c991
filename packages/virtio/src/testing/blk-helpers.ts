import type { GuestBuffer } from './alloc';
import type { MockDriver } from './driver';

/** A virtio-blk request the mock driver built: its buffers and buffer id. */
export interface BlkRequest {
  id: number;
  header: GuestBuffer;
  data: GuestBuffer[];
  status: GuestBuffer;
}

/** Options of submitBlk. */
export interface BlkSubmit {
  /** Data the device reads (OUT, DISCARD, WRITE_ZEROES segments). */
  out?: Uint8Array;
  /** Bytes the device writes before the status byte (IN, GET_ID). */
  inLen?: number;
  /** Device-readable data of this length whose contents are already in the (reused) buffers. */
  outLen?: number;
  /** Split the data into this many descriptors. */
  segments?: number;
  indirect?: boolean;
  /** Reuse these guest buffers instead of allocating (benchmarks). */
  reuse?: BlkRequest;
}

/** Builds and publishes one virtio-blk request on queue 0 (does not kick). */
export function submitBlk(drv: MockDriver, type: number, sector: number, opts: BlkSubmit = {}): BlkRequest {
  const mem = drv.mem;
  const header = opts.reuse?.header ?? drv.buffer(16);
  mem.write32(header.addr, type);
  mem.write32(header.addr + 4, 0);
  mem.write64(header.addr + 8, sector >>> 0, Math.floor(sector / 2 ** 32));
  const status = opts.reuse?.status ?? drv.buffer(1);
  mem.write8(status.addr, 0xee);
  const segs = opts.segments ?? 1;
  const data: GuestBuffer[] = [];
  const readable = opts.out !== undefined || opts.outLen !== undefined;
  const len = opts.out?.length ?? opts.outLen ?? opts.inLen ?? 0;
  if (len > 0) {
    if (opts.reuse !== undefined) data.push(...opts.reuse.data);
    else {
      const per = Math.ceil(len / segs);
      for (let o = 0; o < len; o += per) data.push(drv.buffer(Math.min(per, len - o)));
    }
    if (opts.out !== undefined) {
      let o = 0;
      for (const d of data) {
        mem.writeFrom(d.addr, opts.out.subarray(o, o + d.len));
        o += d.len;
      }
    }
  }
  const out = readable ? [header, ...data] : [header];
  const inn = readable ? [status] : [...data, status];
  const id = drv.queues[0].add(out, inn, opts.indirect ?? false);
  if (id < 0) throw new Error('submitBlk: queue full');
  return { id, header, data, status };
}

/** The status byte the device wrote (0xee if untouched). */
export function blkStatus(drv: MockDriver, r: BlkRequest): number {
  return drv.mem.read8(r.status.addr);
}

/** Concatenated data buffers of a request. */
export function blkData(drv: MockDriver, r: BlkRequest): Uint8Array {
  const total = r.data.reduce((n, d) => n + d.len, 0);
  const out = new Uint8Array(total);
  let o = 0;
  for (const d of r.data) {
    out.set(drv.bytes(d), o);
    o += d.len;
  }
  return out;
}
