import { FlatGuestMemory } from '@ringzero/mmu-ept';
import { describe, expect, it } from 'vitest';
import type { BlockBackend } from './block-backend';
import { MemoryBlockBackend } from './block-backend';
import {
  BLK_F_RO,
  BLK_S_IOERR,
  BLK_S_OK,
  BLK_S_UNSUPP,
  BLK_T_DISCARD,
  BLK_T_FLUSH,
  BLK_T_GET_ID,
  BLK_T_IN,
  BLK_T_OUT,
  BLK_T_WRITE_ZEROES,
  VirtioBlk,
} from './blk';
import { STATUS_NEEDS_RESET } from './constants';
import { VirtioMmio } from './mmio';
import { GuestAllocator } from './testing/alloc';
import { blkData, blkStatus, submitBlk } from './testing/blk-helpers';
import type { MockDriverInit } from './testing/driver';
import { MockDriver } from './testing/driver';
import { mmioDriverTransport } from './testing/mmio-transport';
import { writeSplitDesc } from './testing/split-driver';
import type { DriverSplitQueue } from './testing/split-driver';
import { VIRTQ_DESC_F_NEXT } from './constants';

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

/** A back end whose operations complete only when the test says so, in any order. */
class DeferredBackend implements BlockBackend {
  readonly inner: MemoryBlockBackend;
  readonly pending: (() => void)[] = [];
  failNext = false;
  constructor(size: number) {
    this.inner = new MemoryBlockBackend(size);
  }
  get size(): number {
    return this.inner.size;
  }
  get readOnly(): boolean {
    return false;
  }
  private defer<T>(op: () => Promise<T>): Promise<T> {
    const fail = this.failNext;
    this.failNext = false;
    return new Promise<T>((resolve, reject) => {
      this.pending.push(() => {
        if (fail) reject(new Error('EIO'));
        else void op().then(resolve, reject);
      });
    });
  }
  read(o: number, l: number): Promise<Uint8Array> {
    return this.defer(() => this.inner.read(o, l).then((v) => v.slice()));
  }
  write(o: number, d: Uint8Array): Promise<void> {
    const copy = d.slice();
    return this.defer(() => this.inner.write(o, copy));
  }
  flush(): Promise<void> {
    return this.defer(() => this.inner.flush());
  }
  discard(o: number, l: number): Promise<void> {
    return this.defer(() => this.inner.discard(o, l));
  }
  writeZeroes(o: number, l: number): Promise<void> {
    return this.defer(() => this.inner.writeZeroes(o, l));
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

function setup(backend: BlockBackend = new MemoryBlockBackend(1 << 20), init: MockDriverInit = {}) {
  const mem = new FlatGuestMemory(4 << 20);
  const alloc = new GuestAllocator(0x1000, mem.limit);
  const blk = new VirtioBlk(backend, { queueSize: 64, serial: 'rz-disk-0001' });
  let irqs = 0;
  const dev = new VirtioMmio(blk, mem, { irq: (l) => void (l && irqs++) });
  const drv = new MockDriver(mmioDriverTransport(dev), mem, alloc);
  expect(drv.init({ queueSize: 64, ...init })).toBe(true);
  return { mem, blk, dev, drv, backend, irqs: () => irqs };
}

function pattern(n: number, seed: number): Uint8Array {
  const a = new Uint8Array(n);
  for (let i = 0; i < n; i++) a[i] = (i * 31 + seed * 7 + (i >> 9)) & 0xff;
  return a;
}

for (const packed of [false, true]) {
  describe(`virtio-blk over virtio-mmio (${packed ? 'packed' : 'split'} ring)`, () => {
    it('writes and reads back through the back end, several requests in flight, direct and indirect', async () => {
      const backend = new MemoryBlockBackend(1 << 20);
      const { drv } = setup(backend, { packed });
      const writes = [];
      for (let i = 0; i < 8; i++) {
        writes.push(submitBlk(drv, BLK_T_OUT, i * 8, { out: pattern(4096, i), segments: 1 + (i % 3), indirect: i % 2 === 1 }));
      }
      drv.kick(0);
      await tick();
      const used = drv.drain(0);
      expect(used.map((u) => u.id).sort((a, b) => a - b)).toEqual(writes.map((w) => w.id).sort((a, b) => a - b));
      for (const u of used) expect(u.len).toBe(1);
      for (let i = 0; i < 8; i++) {
        expect(blkStatus(drv, writes[i])).toBe(BLK_S_OK);
        expect(backend.data.subarray(i * 4096, (i + 1) * 4096)).toEqual(pattern(4096, i));
      }
      const reads = [];
      for (let i = 7; i >= 0; i--) reads.push(submitBlk(drv, BLK_T_IN, i * 8, { inLen: 4096, segments: 1 + (i % 4), indirect: i % 2 === 0 }));
      drv.kick(0);
      await tick();
      const rused = drv.drain(0);
      expect(rused).toHaveLength(8);
      for (const u of rused) expect(u.len).toBe(4097);
      reads.forEach((r, k) => {
        expect(blkStatus(drv, r)).toBe(BLK_S_OK);
        expect(blkData(drv, r)).toEqual(pattern(4096, 7 - k));
      });
    });

    it('completes out of order when the back end does, each with its own status', async () => {
      const backend = new DeferredBackend(1 << 20);
      const { drv, blk } = setup(backend, { packed });
      backend.inner.data.set(pattern(1024, 9), 0);
      const a = submitBlk(drv, BLK_T_IN, 0, { inLen: 512 });
      const b = submitBlk(drv, BLK_T_IN, 1, { inLen: 512 });
      backend.failNext = false;
      const c = submitBlk(drv, BLK_T_FLUSH, 0);
      drv.kick(0);
      expect(blk.inFlight).toBe(3);
      expect(backend.pending).toHaveLength(3);
      backend.failNext = true;
      const d = submitBlk(drv, BLK_T_OUT, 2, { out: new Uint8Array(512).fill(1) });
      drv.kick(0);
      expect(blk.inFlight).toBe(4);
      backend.pending[3]();
      backend.pending[1]();
      await tick();
      expect(drv.drain(0).map((u) => u.id)).toEqual([d.id, b.id]);
      expect(blkStatus(drv, d)).toBe(BLK_S_IOERR);
      expect(backend.inner.data[1024]).toBe(0);
      expect(blkData(drv, b)).toEqual(pattern(1024, 9).subarray(512));
      backend.pending[2]();
      backend.pending[0]();
      await tick();
      expect(drv.drain(0).map((u) => u.id)).toEqual([c.id, a.id]);
      expect(blkStatus(drv, a)).toBe(BLK_S_OK);
      expect(blkStatus(drv, c)).toBe(BLK_S_OK);
      expect(blk.inFlight).toBe(0);
    });
  });
}

describe('virtio-blk requests and statuses', () => {
  it('GET_ID returns the serial, FLUSH succeeds, unknown types are UNSUPP', async () => {
    const { drv } = setup();
    const id = submitBlk(drv, BLK_T_GET_ID, 0, { inLen: 20 });
    const fl = submitBlk(drv, BLK_T_FLUSH, 0);
    const bad = submitBlk(drv, 99, 0, { inLen: 8 });
    drv.kick(0);
    await tick();
    const used = drv.drain(0);
    expect(used.find((u) => u.id === id.id)?.len).toBe(21);
    expect(new TextDecoder().decode(blkData(drv, id)).replace(/\0+$/, '')).toBe('rz-disk-0001');
    expect(blkStatus(drv, fl)).toBe(BLK_S_OK);
    expect(blkStatus(drv, bad)).toBe(BLK_S_UNSUPP);
  });

  it('DISCARD and WRITE_ZEROES zero the range; unmap on discard and several segments are UNSUPP', async () => {
    const backend = new MemoryBlockBackend(1 << 20);
    backend.data.fill(0xaa);
    const { drv } = setup(backend);
    const seg = (sector: number, n: number, flags: number): Uint8Array => {
      const b = new Uint8Array(16);
      const v = new DataView(b.buffer);
      v.setUint32(0, sector, true);
      v.setUint32(8, n, true);
      v.setUint32(12, flags, true);
      return b;
    };
    const d = submitBlk(drv, BLK_T_DISCARD, 0, { out: seg(2, 2, 0) });
    const z = submitBlk(drv, BLK_T_WRITE_ZEROES, 0, { out: seg(10, 1, 1) });
    const du = submitBlk(drv, BLK_T_DISCARD, 0, { out: seg(20, 1, 1) });
    const two = new Uint8Array(32);
    two.set(seg(30, 1, 0));
    two.set(seg(40, 1, 0), 16);
    const d2 = submitBlk(drv, BLK_T_DISCARD, 0, { out: two });
    const past = submitBlk(drv, BLK_T_WRITE_ZEROES, 0, { out: seg(2047, 2, 0) });
    drv.kick(0);
    await tick();
    expect([d, z, du, d2, past].map((r) => blkStatus(drv, r))).toEqual([BLK_S_OK, BLK_S_OK, BLK_S_UNSUPP, BLK_S_UNSUPP, BLK_S_IOERR]);
    expect(backend.data.subarray(1024, 2048).every((x) => x === 0)).toBe(true);
    expect(backend.data[1023]).toBe(0xaa);
    expect(backend.data[2048]).toBe(0xaa);
    expect(backend.data.subarray(5120, 5632).every((x) => x === 0)).toBe(true);
    expect(backend.data[20 * 512]).toBe(0xaa);
    expect(backend.data[2047 * 512]).toBe(0xaa);
  });

  it('IOERR for sectors past the end, partial sectors, sectors above 2^53 and wrong buffer directions', async () => {
    const backend = new MemoryBlockBackend(1 << 20);
    const { drv, mem } = setup(backend);
    const past = submitBlk(drv, BLK_T_IN, 2047, { inLen: 1024 });
    const partial = submitBlk(drv, BLK_T_OUT, 0, { out: new Uint8Array(100).fill(5) });
    const huge = submitBlk(drv, BLK_T_IN, 0, { inLen: 512 });
    mem.write64(huge.header.addr + 8, 0, 0xffff_ffff);
    // IN whose data buffer is device-readable: the device must write there, it cannot.
    const wrongDir = submitBlk(drv, BLK_T_IN, 0, { out: new Uint8Array(512).fill(3) });
    const ok = submitBlk(drv, BLK_T_IN, 2046, { inLen: 1024 });
    drv.kick(0);
    await tick();
    expect([past, partial, huge, wrongDir, ok].map((r) => blkStatus(drv, r))).toEqual([BLK_S_IOERR, BLK_S_IOERR, BLK_S_IOERR, BLK_S_IOERR, BLK_S_OK]);
    expect(backend.data.subarray(0, 100).every((x) => x === 0)).toBe(true);
  });

  it('a read-only disk offers VIRTIO_BLK_F_RO and fails writes, discards and write-zeroes with IOERR, data untouched', async () => {
    const backend = new MemoryBlockBackend(new Uint8Array(1 << 16).fill(0x77), { readOnly: true });
    const { drv, dev } = setup(backend);
    expect(dev.core.offeredLo & BLK_F_RO).toBe(BLK_F_RO);
    const w = submitBlk(drv, BLK_T_OUT, 0, { out: new Uint8Array(512) });
    const seg = new Uint8Array(16);
    seg[8] = 1;
    const z = submitBlk(drv, BLK_T_WRITE_ZEROES, 0, { out: seg });
    const r = submitBlk(drv, BLK_T_IN, 0, { inLen: 512 });
    drv.kick(0);
    await tick();
    expect([w, z, r].map((x) => blkStatus(drv, x))).toEqual([BLK_S_IOERR, BLK_S_IOERR, BLK_S_OK]);
    expect(backend.data.every((x) => x === 0x77)).toBe(true);
    expect(blkData(drv, r).every((x) => x === 0x77)).toBe(true);
  });

  it('a back end that throws or rejects ends in IOERR, never in an exception', async () => {
    const throwing: BlockBackend = {
      size: 1 << 16,
      readOnly: false,
      read: () => Promise.reject(new Error('EIO')),
      write: () => Promise.reject(new Error('EIO')),
      flush: () => Promise.reject(new Error('EIO')),
      discard: () => Promise.reject(new Error('EIO')),
      writeZeroes: () => Promise.reject(new Error('EIO')),
      close: () => Promise.resolve(),
    };
    const { drv, blk } = setup(throwing);
    const rs = [submitBlk(drv, BLK_T_IN, 0, { inLen: 512 }), submitBlk(drv, BLK_T_OUT, 0, { out: new Uint8Array(512) }), submitBlk(drv, BLK_T_FLUSH, 0)];
    drv.kick(0);
    await tick();
    expect(rs.map((r) => blkStatus(drv, r))).toEqual([BLK_S_IOERR, BLK_S_IOERR, BLK_S_IOERR]);
    expect(blk.completed[BLK_S_IOERR]).toBe(3);
  });

  it('a chain without a status byte or a short header sets NEEDS_RESET', () => {
    const { drv, dev, mem } = setup();
    const q = drv.queues[0] as DriverSplitQueue;
    const h = drv.buffer(16);
    writeSplitDesc(mem, q.desc, 0, h.addr, 16, 0, 0); // header only, nothing writable
    q.publishHead(0);
    drv.kick(0);
    expect(dev.core.getStatus() & STATUS_NEEDS_RESET).toBe(STATUS_NEEDS_RESET);
    expect(dev.core.lastError).toMatch(/status byte/);
    const s2 = setup();
    const q2 = s2.drv.queues[0] as DriverSplitQueue;
    const st = s2.drv.buffer(1);
    writeSplitDesc(s2.mem, q2.desc, 0, h.addr, 8, VIRTQ_DESC_F_NEXT, 1);
    writeSplitDesc(s2.mem, q2.desc, 1, st.addr, 1, 2, 0);
    q2.publishHead(0);
    s2.drv.kick(0);
    expect(s2.dev.core.getStatus() & STATUS_NEEDS_RESET).toBe(STATUS_NEEDS_RESET);
  });

  it('completions that arrive after a reset do not touch guest memory', async () => {
    const backend = new DeferredBackend(1 << 20);
    backend.inner.data.fill(0x55);
    const { drv, dev, mem } = setup(backend);
    const r = submitBlk(drv, BLK_T_IN, 0, { inLen: 512 });
    drv.kick(0);
    expect(backend.pending).toHaveLength(1);
    drv.transport.setStatus(0);
    const before = mem.bytes.slice();
    backend.pending[0]();
    await tick();
    expect(Buffer.compare(mem.bytes, before)).toBe(0); // byte-identical guest RAM
    expect(blkStatus(drv, r)).toBe(0xee);
    expect(dev.core.getStatus()).toBe(0);
  });

  it('stops popping at queue-size requests in flight when the guest re-publishes heads', async () => {
    const backend = new DeferredBackend(1 << 20);
    const { drv, blk } = setup(backend, { queueSize: 4 });
    const q = drv.queues[0] as DriverSplitQueue;
    const r = submitBlk(drv, BLK_T_IN, 0, { inLen: 512 });
    for (let i = 0; i < 3; i++) q.publishHead(r.id); // the same chain 4 times
    drv.kick(0);
    expect(blk.inFlight).toBe(4);
    for (let i = 0; i < 4; i++) q.publishHead(r.id);
    drv.kick(0);
    expect(blk.inFlight).toBe(4); // bounded
    backend.pending[0]();
    await tick();
    expect(blk.inFlight).toBe(4); // one completed, one more started
    expect(backend.pending).toHaveLength(5);
  });
});
