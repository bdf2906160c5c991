import { FlatGuestMemory } from '@ringzero/mmu-ept';
import { describe, expect, it } from 'vitest';
import { MemoryBlockBackend } from './block-backend';
import { BLK_S_OK, BLK_T_GET_ID, BLK_T_IN, VirtioBlk } from './blk';
import { NO_VECTOR, STATUS_ACKNOWLEDGE, STATUS_DRIVER, STATUS_DRIVER_OK } from './constants';
import * as P from './pci';
import { GuestAllocator } from './testing/alloc';
import { blkData, blkStatus, submitBlk } from './testing/blk-helpers';
import { MockDriver } from './testing/driver';
import { findPciCaps, pciDriverTransport } from './testing/pci-transport';
import { DriverSplitQueue } from './testing/split-driver';

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

function setup(opts: { transitional?: boolean; sriov?: boolean } = {}) {
  const mem = new FlatGuestMemory(4 << 20);
  const alloc = new GuestAllocator(0x10000, mem.limit);
  const backend = new MemoryBlockBackend(1 << 20);
  const blk = new VirtioBlk(backend, { queueSize: 64, serial: 'pci-disk' });
  const msis: [number, number, number][] = [];
  const intx: boolean[] = [];
  const fn = new P.VirtioPci(blk, mem, { msi: (lo, hi, d) => msis.push([lo, hi, d]), intx: (l) => intx.push(l), ...opts });
  return { mem, alloc, backend, blk, fn, msis, intx };
}

describe('virtio-pci configuration space', () => {
  it('identifies a transitional and a modern-only virtio-blk', () => {
    const t = setup().fn;
    expect(t.configRead(0, 2)).toBe(0x1af4);
    expect(t.configRead(2, 2)).toBe(0x1001);
    expect(t.configRead(8, 1)).toBe(0);
    expect(t.configRead(0x2c, 4)).toBe(0x0002_1af4); // subsystem vendor + subsystem id = virtio id
    expect(t.configRead(0x08, 4) >>> 8).toBe(0x010000); // mass storage, SCSI
    expect(t.bars.map((b) => [b.index, b.kind, b.size, b.is64])).toEqual([
      [0, 'io', 128, false],
      [1, 'mmio', 4096, false],
      [4, 'mmio', 16384, true],
    ]);
    const m = setup({ transitional: false }).fn;
    expect(m.configRead(2, 2)).toBe(0x1042);
    expect(m.configRead(8, 1)).toBe(1);
    expect(m.bars.some((b) => b.kind === 'io')).toBe(false);
  });

  it('sizes BARs the standard way and reports the programmed addresses', () => {
    const { fn } = setup();
    fn.configWrite(0x10, 4, 0xffff_ffff);
    expect(fn.configRead(0x10, 4)).toBe((~127 | 1) >>> 0);
    fn.configWrite(0x14, 4, 0xffff_ffff);
    expect(fn.configRead(0x14, 4)).toBe((~4095 & ~0xf) >>> 0);
    fn.configWrite(0x20, 4, 0xffff_ffff);
    fn.configWrite(0x24, 4, 0xffff_ffff);
    expect(fn.configRead(0x20, 4)).toBe(((~16383 >>> 0) & ~0xf | 0xc) >>> 0);
    expect(fn.configRead(0x24, 4)).toBe(0xffff_ffff);
    fn.configWrite(0x18, 4, 0xffff_ffff); // BAR2 is not implemented: reads 0
    expect(fn.configRead(0x18, 4)).toBe(0);
    fn.configWrite(0x10, 4, 0xc081); // low bits are read-only
    fn.configWrite(0x20, 4, 0xfe00_4000);
    fn.configWrite(0x24, 4, 0x1);
    expect(fn.barAddress(0)).toBe(0xc080);
    expect(fn.barAddress(4)).toBe(0x1_fe00_4000);
    // read-only registers stay
    fn.configWrite(0, 4, 0);
    expect(fn.configRead(0, 2)).toBe(0x1af4);
  });

  it('has the virtio vendor capabilities where a driver looks for them', () => {
    const { fn } = setup();
    const caps = findPciCaps(fn);
    expect(caps.common).toMatchObject({ bar: 4, offset: P.MODERN_COMMON, length: 0x38 });
    expect(caps.notify).toMatchObject({ bar: 4, offset: P.MODERN_NOTIFY, multiplier: 4 });
    expect(caps.isr).toMatchObject({ bar: 4, offset: P.MODERN_ISR });
    expect(caps.device).toMatchObject({ bar: 4, offset: P.MODERN_DEVICE, length: 60 });
    expect(caps.msix).toMatchObject({ vectors: 2, tableBar: 1, tableOffset: 0 });
  });

  it('the PCI configuration access capability reaches the BARs', () => {
    const { fn } = setup();
    // VIRTIO_PCI_CAP_PCI_CFG at 0x90: bar at +4, offset at +8, length at +12, data at +16.
    fn.configWrite(0x94, 1, 4);
    fn.configWrite(0x98, 4, P.COMMON_NUMQ);
    fn.configWrite(0x9c, 4, 2);
    expect(fn.configRead(0xa0, 4)).toBe(1);
    fn.configWrite(0x98, 4, P.COMMON_STATUS);
    fn.configWrite(0x9c, 4, 1);
    fn.configWrite(0xa0, 4, STATUS_ACKNOWLEDGE);
    expect(fn.core.getStatus()).toBe(STATUS_ACKNOWLEDGE);
  });
});

describe('virtio-pci modern interface', () => {
  it('runs virtio-blk with MSI-X: one message per completion with the programmed data', async () => {
    const { fn, mem, alloc, msis } = setup();
    const drv = new MockDriver(pciDriverTransport(fn, { msix: true }), mem, alloc);
    expect(drv.init({ queueSize: 64 })).toBe(true);
    expect(fn.msixEnabled).toBe(true);
    const r = submitBlk(drv, BLK_T_GET_ID, 0, { inLen: 20 });
    drv.kick(0);
    await tick();
    expect(blkStatus(drv, r)).toBe(BLK_S_OK);
    expect(new TextDecoder().decode(blkData(drv, r)).replace(/\0+$/, '')).toBe('pci-disk');
    expect(msis).toEqual([[0xfee0_0000, 0, 0x41]]); // queue 0 → vector 1
    expect(fn.isr).toBe(0);
  });

  it('a masked vector sets its pending bit and fires when unmasked', async () => {
    const { fn, mem, alloc, msis } = setup();
    const drv = new MockDriver(pciDriverTransport(fn, { msix: true }), mem, alloc);
    drv.init({ queueSize: 64 });
    fn.barWrite(1, 16 + 12, 4, 1); // mask vector 1
    submitBlk(drv, BLK_T_IN, 0, { inLen: 512 });
    drv.kick(0);
    await tick();
    expect(msis).toEqual([]);
    expect(fn.barRead(1, P.MSIX_PBA, 4)).toBe(2);
    fn.barWrite(1, 16 + 12, 4, 0);
    expect(msis).toEqual([[0xfee0_0000, 0, 0x41]]);
    expect(fn.barRead(1, P.MSIX_PBA, 4)).toBe(0);
    // function mask works the same way
    drv.drain(0); // the driver reaps, which moves used_event on (EVENT_IDX)
    fn.configWrite(0x42, 2, 0xc000);
    submitBlk(drv, BLK_T_IN, 0, { inLen: 512 });
    drv.kick(0);
    await tick();
    expect(msis).toHaveLength(1);
    fn.configWrite(0x42, 2, 0x8000);
    expect(msis).toHaveLength(2);
  });

  it('vectors beyond the table read back as NO_VECTOR', () => {
    const { fn } = setup();
    fn.barWrite(4, P.COMMON_MSIX, 2, 7);
    expect(fn.barRead(4, P.COMMON_MSIX, 2)).toBe(NO_VECTOR);
    fn.barWrite(4, P.COMMON_Q_MSIX, 2, 1);
    expect(fn.barRead(4, P.COMMON_Q_MSIX, 2)).toBe(1);
  });

  it('without MSI-X, interrupts go to ISR and INTx; reading ISR clears both', async () => {
    const { fn, mem, alloc, intx } = setup();
    const t = pciDriverTransport(fn);
    const drv = new MockDriver(t, mem, alloc);
    drv.init({ queueSize: 64 });
    submitBlk(drv, BLK_T_IN, 0, { inLen: 512 });
    drv.kick(0);
    await tick();
    expect(intx).toEqual([true]);
    expect(t.ackInterrupt()).toBe(1);
    expect(intx).toEqual([true, false]);
    expect(t.ackInterrupt()).toBe(0);
    // INTx disable in the command register keeps the line low
    drv.drain(0);
    fn.configWrite(4, 2, 0x0406);
    submitBlk(drv, BLK_T_IN, 0, { inLen: 512 });
    drv.kick(0);
    await tick();
    expect(intx).toEqual([true, false]);
    expect(fn.isr).toBe(1);
  });

  it('ignores odd access sizes, unaligned notifies and notifies past the last queue', () => {
    const { fn, mem, alloc } = setup();
    const drv = new MockDriver(pciDriverTransport(fn), mem, alloc);
    drv.init({ queueSize: 64 });
    expect(fn.barRead(4, P.COMMON_NUMQ, 3)).toBe(0);
    expect(fn.barRead(4, P.COMMON_NUMQ, 4)).toBe(0);
    fn.barWrite(4, P.MODERN_NOTIFY + 2, 2, 0);
    fn.barWrite(4, P.MODERN_NOTIFY + 4, 2, 1);
    expect(fn.barRead(9, 0, 4)).toBe(0);
    fn.barWrite(9, 0, 4, 1);
    expect(fn.core.ignoredNotifies).toBe(0); // never reached the core
  });
});

describe('virtio-pci legacy I/O interface', () => {
  it('serves a legacy driver: 32-bit features, queue PFN with 4 KiB-aligned layout, no FEATURES_OK', async () => {
    const { fn, mem, alloc, intx } = setup();
    const io = (o: number, s: number): number => fn.barRead(0, o, s);
    const out = (o: number, s: number, v: number): void => fn.barWrite(0, o, s, v);
    out(P.LEGACY_STATUS, 1, 0);
    out(P.LEGACY_STATUS, 1, STATUS_ACKNOWLEDGE);
    out(P.LEGACY_STATUS, 1, STATUS_ACKNOWLEDGE | STATUS_DRIVER);
    const host = io(P.LEGACY_HOST_FEATURES, 4);
    expect(host).toBe((fn.core.offeredLo | (1 << 27)) >>> 0); // + ANY_LAYOUT for legacy drivers
    out(P.LEGACY_GUEST_FEATURES, 4, host & ~(1 << 29)); // no EVENT_IDX, ANY_LAYOUT accepted
    out(P.LEGACY_QUEUE_SEL, 2, 0);
    const size = io(P.LEGACY_QUEUE_NUM, 2);
    expect(size).toBe(64);
    const base = Math.ceil(alloc.alloc(3 * 4096 + 16 * size, 4096) / 4096) * 4096;
    const avail = base + 16 * size;
    const used = Math.ceil((avail + 6 + 2 * size) / 4096) * 4096;
    const q = new DriverSplitQueue(mem, alloc, size, { desc: base, avail, used });
    out(P.LEGACY_QUEUE_PFN, 4, base / 4096);
    expect(io(P.LEGACY_QUEUE_PFN, 4)).toBe(base / 4096);
    out(P.LEGACY_STATUS, 1, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_DRIVER_OK);
    expect(io(P.LEGACY_STATUS, 1)).toBe(STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_DRIVER_OK);
    expect(io(0x14, 4)).toBe(2048); // device config (capacity) right after the ISR when MSI-X is off
    const hdr = alloc.alloc(16);
    mem.write32(hdr, BLK_T_GET_ID);
    const data = alloc.alloc(20);
    const st = alloc.alloc(1);
    const id = q.add([{ addr: hdr, len: 16 }], [{ addr: data, len: 20 }, { addr: st, len: 1 }]);
    out(P.LEGACY_QUEUE_NOTIFY, 2, 0);
    await tick();
    expect(q.getUsed()).toEqual({ id, len: 21 });
    expect(mem.read8(st)).toBe(BLK_S_OK);
    expect(intx).toEqual([true]);
    expect(io(P.LEGACY_ISR, 1)).toBe(1);
    expect(intx).toEqual([true, false]);
    out(P.LEGACY_STATUS, 1, 0);
    expect(io(P.LEGACY_QUEUE_PFN, 4)).toBe(0);
    expect(fn.core.legacy).toBe(false);
  });
});

describe('VIRTIO_F_SR_IOV', () => {
  it('is offered (feature 37) only when asked, and a driver may accept it', () => {
    const plain = pciDriverTransport(setup().fn);
    expect(plain.readDeviceFeatures(1) & 0x20).toBe(0);
    const { fn } = setup({ sriov: true });
    const t = pciDriverTransport(fn);
    expect(t.readDeviceFeatures(1) & 0x20).toBe(0x20);
    t.setStatus(STATUS_ACKNOWLEDGE | STATUS_DRIVER);
    t.writeDriverFeatures(1, 0x21); // VERSION_1 | SR_IOV
    t.setStatus(STATUS_ACKNOWLEDGE | STATUS_DRIVER | 8);
    expect(t.getStatus() & 8).toBe(8); // FEATURES_OK kept
    expect(fn.core.featuresHi & 0x20).toBe(0x20);
  });
});
