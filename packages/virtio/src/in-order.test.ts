// VIRTIO_F_IN_ORDER (virtio 1.x §2.7.9 / §2.8.x): offered on request, and then every device uses
// chains in the order they were made available, even when virtio-blk's back end completes them
// out of order.
import { FlatGuestMemory } from '@ringzero/mmu-ept';
import { describe, expect, it } from 'vitest';
import type { BlockBackend } from './block-backend';
import { MemoryBlockBackend } from './block-backend';
import { BLK_S_OK, BLK_T_GET_ID, BLK_T_IN, BLK_T_OUT, VirtioBlk } from './blk';
import { F_HI_IN_ORDER } from './constants';
import type { VirtioDevice } from './device';
import { VirtioMmio } from './mmio';
import { VirtioNet } from './net';
import { VirtioPci } from './pci';
import { VirtioRng } from './rng';
import { GuestAllocator } from './testing/alloc';
import { blkData, blkStatus, submitBlk } from './testing/blk-helpers';
import { acceptFeatures, MockDriver } from './testing/driver';
import { mmioDriverTransport } from './testing/mmio-transport';
import { pciDriverTransport } from './testing/pci-transport';

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

class DeferredBackend implements BlockBackend {
  readonly inner = new MemoryBlockBackend(1 << 20);
  readonly pending: (() => void)[] = [];
  readonly size = 1 << 20;
  readonly readOnly = false;
  private defer<T>(op: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => this.pending.push(() => void op().then(resolve, reject)));
  }
  read(o: number, l: number): Promise<Uint8Array> {
    return this.defer(() => this.inner.read(o, l).then((v) => v.slice()));
  }
  write(o: number, d: Uint8Array): Promise<void> {
    return this.defer(() => this.inner.write(o, d.slice()));
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

function blkSetup(packed: boolean, inOrder: boolean, transport: 'mmio' | 'pci' = 'mmio') {
  const mem = new FlatGuestMemory(4 << 20);
  const be = new DeferredBackend();
  const blk = new VirtioBlk(be, { queueSize: 16 });
  const t = transport === 'mmio' ? new VirtioMmio(blk, mem, { irq: () => undefined, inOrder: true }) : new VirtioPci(blk, mem, { msi: () => undefined, inOrder: true });
  const drv = new MockDriver(t instanceof VirtioMmio ? mmioDriverTransport(t) : pciDriverTransport(t, { msix: true }), mem, new GuestAllocator(0x1000, mem.limit));
  expect(drv.init({ queueSize: 16, features: acceptFeatures({ packed, ...(inOrder ? {} : { hi: ~F_HI_IN_ORDER }) }) })).toBe(true);
  expect(drv.featuresHi & F_HI_IN_ORDER).toBe(inOrder ? F_HI_IN_ORDER : 0);
  return { mem, be, blk, t, drv };
}

describe('VIRTIO_F_IN_ORDER', () => {
  it('is offered only when the transport is asked to and the device supports it', () => {
    const mem = new FlatGuestMemory(1 << 20);
    const blk = () => new VirtioBlk(new MemoryBlockBackend(4096));
    expect(new VirtioMmio(blk(), mem, { irq: () => undefined }).core.deviceFeatures(1) & F_HI_IN_ORDER).toBe(0);
    expect(new VirtioMmio(blk(), mem, { irq: () => undefined, inOrder: true }).core.deviceFeatures(1) & F_HI_IN_ORDER).toBe(F_HI_IN_ORDER);
    expect(new VirtioPci(new VirtioRng(), mem, { msi: () => undefined, inOrder: true }).core.deviceFeatures(1) & F_HI_IN_ORDER).toBe(F_HI_IN_ORDER);
    // A device model that does not say it completes in order never gets it offered.
    const rng = new VirtioRng();
    const plain: VirtioDevice = {
      deviceId: rng.deviceId,
      queueCount: 1,
      maxQueueSize: 8,
      featuresLo: 0,
      featuresHi: 0,
      configSize: 0,
      attach: (c) => rng.attach(c),
      readConfig: () => 0,
      writeConfig: () => undefined,
      checkFeatures: () => true,
      activate: () => undefined,
      notify: () => undefined,
      reset: () => undefined,
    };
    expect(new VirtioMmio(plain, mem, { irq: () => undefined, inOrder: true }).core.deviceFeatures(1) & F_HI_IN_ORDER).toBe(0);
  });

  for (const packed of [false, true]) {
    it(`virtio-blk (${packed ? 'packed' : 'split'}): back-end completions in reverse order are used in submission order`, async () => {
      const { be, drv } = blkSetup(packed, true, packed ? 'pci' : 'mmio');
      const w = submitBlk(drv, BLK_T_OUT, 0, { out: new Uint8Array(512).fill(7) });
      const r = submitBlk(drv, BLK_T_IN, 8, { inLen: 1024, segments: 2 });
      const id = submitBlk(drv, BLK_T_GET_ID, 0, { inLen: 20 }); // completes at once, but must wait
      const w2 = submitBlk(drv, BLK_T_OUT, 16, { out: new Uint8Array(1024).fill(9), indirect: true });
      drv.kick(0);
      expect(be.pending).toHaveLength(3);
      be.pending[2](); // w2
      be.pending[1](); // r
      await tick();
      expect(drv.drain(0)).toEqual([]); // w is still in the back end: nothing may be used
      be.pending[0](); // w
      await tick();
      expect(drv.drain(0)).toEqual([
        { id: w.id, len: 1 },
        { id: r.id, len: 1025 },
        { id: id.id, len: 21 },
        { id: w2.id, len: 1 },
      ]);
      for (const q of [w, r, id, w2]) expect(blkStatus(drv, q)).toBe(BLK_S_OK);
      expect(blkData(drv, r)).toEqual(new Uint8Array(1024));
    });
  }

  it('without IN_ORDER negotiated virtio-blk still completes as the back end does', async () => {
    const { be, drv } = blkSetup(false, false);
    const a = submitBlk(drv, BLK_T_IN, 0, { inLen: 512 });
    const b = submitBlk(drv, BLK_T_IN, 8, { inLen: 512 });
    drv.kick(0);
    be.pending[1]();
    await tick();
    expect(drv.drain(0)).toEqual([{ id: b.id, len: 513 }]);
    be.pending[0]();
    await tick();
    expect(drv.drain(0)).toEqual([{ id: a.id, len: 513 }]);
  });

  it('a request finished but waiting for its turn is saved as in flight and completes in order after a restore', async () => {
    const { be, drv, t, mem } = blkSetup(false, true);
    const a = submitBlk(drv, BLK_T_IN, 0, { inLen: 512 });
    const b = submitBlk(drv, BLK_T_OUT, 8, { out: new Uint8Array(512).fill(3) });
    drv.kick(0);
    be.pending[1](); // b done, held behind a
    await tick();
    expect(drv.drain(0)).toEqual([]);
    const state = JSON.parse(JSON.stringify(t.saveState())) as unknown;
    expect((state as { device: { inFlight: { head: number }[] } }).device.inFlight.map((c) => c.head)).toEqual([a.id, b.id]);
    const back = new MemoryBlockBackend(be.inner.data.slice());
    const t2 = new VirtioMmio(new VirtioBlk(back, { queueSize: 16 }), mem, { irq: () => undefined, inOrder: true });
    t2.restoreState(state);
    await tick();
    const d2 = new MockDriver(mmioDriverTransport(t2), mem, drv.alloc);
    d2.queues.push(...drv.queues);
    expect(d2.drain(0)).toEqual([
      { id: a.id, len: 513 },
      { id: b.id, len: 1 },
    ]);
    expect(back.data.subarray(8 * 512, 9 * 512)).toEqual(new Uint8Array(512).fill(3));
  });

  it('virtio-net with IN_ORDER on a packed ring: frames both ways, buffers used in order', () => {
    const mem = new FlatGuestMemory(4 << 20);
    const sent: number[] = [];
    const net = new VirtioNet({ mac: new Uint8Array(6), send: (b, o) => sent.push(b[o]) > 0, queueSize: 16 });
    const t = new VirtioPci(net, mem, { msi: () => undefined, inOrder: true });
    const drv = new MockDriver(pciDriverTransport(t, { msix: true }), mem, new GuestAllocator(0x1000, mem.limit));
    expect(drv.init({ queueSize: 16, features: acceptFeatures({ packed: true }) })).toBe(true);
    expect(drv.featuresHi & F_HI_IN_ORDER).toBe(F_HI_IN_ORDER);
    const ids: number[] = [];
    for (let i = 1; i <= 3; i++) ids.push(drv.queues[1].add([drv.buffer(12), drv.buffer(60, new Uint8Array(60).fill(i))], []));
    drv.kick(1);
    expect(sent).toEqual([1, 2, 3]);
    expect(drv.drain(1).map((u) => u.id)).toEqual(ids);
    const rx: number[] = [];
    for (let i = 0; i < 4; i++) rx.push(drv.queues[0].add([], [drv.buffer(256)]));
    drv.kick(0);
    expect(net.deliver(new Uint8Array(300).fill(5), 0, 300)).toBe(true); // spans two buffers (MRG_RXBUF)
    expect(net.deliver(new Uint8Array(60).fill(6), 0, 60)).toBe(true);
    expect(drv.drain(0).map((u) => u.id)).toEqual(rx.slice(0, 3));
  });
});
