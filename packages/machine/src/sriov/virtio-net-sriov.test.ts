import { Bridge } from '@ringzero/vswitch';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import * as S from '../devices/pci/sriov';
import { busFunction, frame, makeVm, netDriver, Rx, transmit, type Vm } from './test-rig';
import { SriovVirtioNet } from './virtio-net-sriov';

const PF_MAC = Uint8Array.from([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
const BCAST = new Uint8Array(6).fill(0xff);
const SLOT = 3;
const SR = 0x100;
const PF_BAR1 = 0xc000_0000;
const PF_BAR4 = 0xc001_0000;

/** A VM with the NIC at 00:03.0, its BARs and VF BARs placed as firmware would. */
function setup(totalVfs = 4): { vm: Vm; nic: SriovVirtioNet } {
  const vm = makeVm();
  const nic = new SriovVirtioNet({ mac: PF_MAC, totalVfs, memory: vm.memory, root: vm.pci });
  vm.pci.attach(nic.function, SLOT);
  nic.function.configWrite(0x14, 4, PF_BAR1);
  nic.function.configWrite(0x20, 4, PF_BAR4);
  nic.function.configWrite(0x24, 4, 0);
  nic.function.configWrite(0x04, 2, 0x6);
  nic.assignVfBars(0xc100_0000, 0xc200_0000);
  return { vm, nic };
}

const cr = (vm: Vm, fn: number, reg: number, size: number): number => vm.cfgRead(0, SLOT, fn, reg, size);
const cw = (vm: Vm, fn: number, reg: number, size: number, v: number): void => vm.cfgWrite(0, SLOT, fn, reg, size, v);

/** The VF BAR base of BAR i as the guest reads it from the PF's capability (64-bit aware). */
function vfBar(vm: Vm, i: number): number {
  const lo = cr(vm, 0, SR + S.PCI_SRIOV_BAR + 4 * i, 4);
  const hi = (lo & 6) === 4 ? cr(vm, 0, SR + S.PCI_SRIOV_BAR + 4 * i + 4, 4) : 0;
  return hi * 2 ** 32 + ((lo & 0xfffffff0) >>> 0);
}

/** Linux 6.1 sriov_init + sriov_enable, as config accesses through ECAM. */
function linuxEnable(vm: Vm, n: number): void {
  cw(vm, 0, SR + S.PCI_SRIOV_CTRL, 2, 0);
  const total = cr(vm, 0, SR + S.PCI_SRIOV_TOTAL_VF, 2);
  let pgsz = cr(vm, 0, SR + S.PCI_SRIOV_SUP_PGSIZE, 4);
  pgsz &= ~(pgsz - 1);
  cw(vm, 0, SR + S.PCI_SRIOV_SYS_PGSIZE, 4, pgsz);
  for (let k = total; k >= 1; k--) {
    cw(vm, 0, SR + S.PCI_SRIOV_NUM_VF, 2, k);
    expect(cr(vm, 0, SR + S.PCI_SRIOV_VF_OFFSET, 2)).not.toBe(0);
  }
  cw(vm, 0, SR + S.PCI_SRIOV_NUM_VF, 2, 0);
  cw(vm, 0, SR + S.PCI_SRIOV_NUM_VF, 2, n);
  cw(vm, 0, SR + S.PCI_SRIOV_CTRL, 2, S.PCI_SRIOV_CTRL_VFE | S.PCI_SRIOV_CTRL_MSE);
}

/** A driver on VF n (BARs at VF BARi + n x size) with its rings in its own 1 MiB of RAM. */
function vfDriver(vm: Vm, n: number) {
  const fn = busFunction(vm, [0, SLOT, 1 + n], (bar) => vfBar(vm, bar) + n * (bar === 4 ? 0x4000 : 0x1000));
  const drv = netDriver(vm, fn, 0x20_0000 + n * 0x10_0000, 0x30_0000 + n * 0x10_0000);
  return { drv, rx: new Rx(drv) };
}

function pfDriver(vm: Vm) {
  const fn = busFunction(vm, [0, SLOT, 0], (bar) => (bar === 4 ? PF_BAR4 : PF_BAR1));
  const drv = netDriver(vm, fn, 0x10_0000, 0x20_0000);
  return { drv, rx: new Rx(drv) };
}

describe('SR-IOV virtio-net PF on the PCI root (what Linux enumerates)', () => {
  it('is a PCI Express RC integrated endpoint with the SR-IOV capability at 0x100, offering VIRTIO_F_SR_IOV', () => {
    const { vm } = setup();
    expect(cr(vm, 0, 0, 4)).toBe(0x1041_1af4);
    expect(cr(vm, 0, 0x0e, 1)).toBe(0); // type 0, single function
    let p = cr(vm, 0, 0x34, 1);
    const ids: number[] = [];
    let exp = 0;
    for (let g = 0; p !== 0 && g < 48; g++) {
      ids.push(cr(vm, 0, p, 1));
      if (cr(vm, 0, p, 1) === 0x10) exp = p;
      p = cr(vm, 0, p + 1, 1);
    }
    expect(ids).toEqual([0x11, 9, 9, 9, 9, 9, 0x10]);
    expect((cr(vm, 0, exp + 2, 2) >> 4) & 0xf).toBe(9); // PCI_EXP_TYPE_RC_END
    expect(cr(vm, 0, 0x100, 4)).toBe(0x0001_0010); // SR-IOV, version 1, last
    expect(cr(vm, 0, SR + S.PCI_SRIOV_TOTAL_VF, 2)).toBe(4);
    expect(cr(vm, 0, SR + S.PCI_SRIOV_VF_DID, 2)).toBe(0x1041);
    // Extended space beyond the capability reads 0 and is not an alias of the header (pci_ext_cfg_is_aliased).
    expect(cr(vm, 0, 0x200, 4)).toBe(0);
    const { drv } = pfDriver(vm);
    expect(drv.featuresHi & 0x20).toBe(0x20);
  });

  it('creates VFs at PF + offset + stride x n that read as VFs, removes them, and decodes VF BARs only with VF MSE', () => {
    const { vm, nic } = setup();
    expect(cr(vm, 1, 0x08, 4)).toBe(0xffffffff); // nothing at 00:03.1 yet
    linuxEnable(vm, 2);
    expect(nic.vfs.length).toBe(2);
    for (const fn of [1, 2]) {
      expect(cr(vm, fn, 0, 4)).toBe(0xffffffff); // VF vendor/device ID read 0xFFFF
      expect(cr(vm, fn, 0x08, 4)).toBe(0x0200_0001); // Ethernet controller, virtio 1.0
      expect(cr(vm, fn, 0x2c, 4)).toBe(0x0001_1af4); // subsystem: virtio, net
      expect(cr(vm, fn, 0x0e, 1)).toBe(0);
      for (let b = 0x10; b < 0x28; b += 4) expect(cr(vm, fn, b, 4)).toBe(0);
      cw(vm, fn, 0x10, 4, 0xffffffff);
      expect(cr(vm, fn, 0x10, 4)).toBe(0); // sizing probe on a VF BAR: read-only zero
      expect(cr(vm, fn, 0x3d, 1)).toBe(0); // no INTx
      cw(vm, fn, 0x04, 2, 0x7);
      expect(cr(vm, fn, 0x04, 2)).toBe(0x4); // bus master only; memory enable is VF MSE's
    }
    expect(cr(vm, 3, 0x08, 4)).toBe(0xffffffff);
    expect(vm.mmio.owner(vfBar(vm, 4))).toContain('vf0-bar4');
    expect(vm.mmio.owner(vfBar(vm, 4) + 0x4000)).toContain('vf1-bar4');
    expect(vm.mmio.owner(vfBar(vm, 1) + 0x1000)).toContain('vf1-bar1');
    // VF MSE off: VFs stay, their BARs are not decoded.
    cw(vm, 0, SR + S.PCI_SRIOV_CTRL, 2, S.PCI_SRIOV_CTRL_VFE);
    expect(vm.mmio.owner(vfBar(vm, 4))).toBeUndefined();
    expect(cr(vm, 1, 0x08, 4)).toBe(0x0200_0001);
    cw(vm, 0, SR + S.PCI_SRIOV_CTRL, 2, 0);
    expect(nic.vfs.length).toBe(0);
    expect(cr(vm, 1, 0x08, 4)).toBe(0xffffffff);
    expect(vm.mmio.owner(vfBar(vm, 1))).toBeUndefined();
  });

  it('hostile: NumVFs above TotalVFs gives TotalVFs VFs; NumVFs writes while enabled are ignored', () => {
    const { vm, nic } = setup(3);
    cw(vm, 0, SR + S.PCI_SRIOV_NUM_VF, 2, 0xffff);
    cw(vm, 0, SR + S.PCI_SRIOV_CTRL, 2, S.PCI_SRIOV_CTRL_VFE | S.PCI_SRIOV_CTRL_MSE);
    expect(nic.vfs.length).toBe(3);
    expect(cr(vm, 3, 0x08, 4)).toBe(0x0200_0001);
    expect(cr(vm, 4, 0x08, 4)).toBe(0xffffffff);
    cw(vm, 0, SR + S.PCI_SRIOV_NUM_VF, 2, 1);
    expect(nic.vfs.length).toBe(3);
    expect(nic.sriov.ignoredWrites).toBeGreaterThanOrEqual(2);
  });

  it('each VF is its own virtio-net with its own queues and MSI-X table; the embedded switch forwards VF to VF', () => {
    const { vm, nic } = setup();
    linuxEnable(vm, 2);
    const pf = pfDriver(vm);
    const v0 = vfDriver(vm, 0);
    const v1 = vfDriver(vm, 1);
    for (const d of [pf, v0, v1]) d.rx.post();
    const mac0 = nic.vfs[0].mac;
    const mac1 = nic.vfs[1].mac;
    const msis = vm.sink.msis.length;
    transmit(v0.drv, frame(mac1, mac0, 0xa1));
    const got = v1.rx.take();
    expect(got.length).toBe(1);
    expect(got[0][14]).toBe(0xa1);
    expect(Array.from(got[0].subarray(0, 6))).toEqual(Array.from(mac1));
    expect(pf.rx.take()).toEqual([]);
    expect(v0.rx.take()).toEqual([]);
    expect(nic.veb.stats.local).toBe(1);
    expect(nic.veb.stats.toUplink).toBe(0);
    expect(vm.sink.msis.length).toBeGreaterThan(msis); // MSI-X from the VFs' own tables
    // Broadcast: every other function and the uplink.
    const up: Uint8Array[] = [];
    nic.setUplink({ deliver: (b, o, n) => (up.push(b.slice(o, o + n)), true) });
    transmit(v1.drv, frame(BCAST, mac1, 0xb2));
    expect(pf.rx.take().map((f) => f[14])).toEqual([0xb2]);
    expect(v0.rx.take().map((f) => f[14])).toEqual([0xb2]);
    expect(v1.rx.take()).toEqual([]);
    expect(up.map((f) => f[14])).toEqual([0xb2]);
    // Unknown unicast: uplink only. From the uplink: to the owner of the MAC.
    transmit(pf.drv, frame(Uint8Array.from([2, 0, 0, 0, 0, 9]), PF_MAC, 0xc3));
    expect(up.map((f) => f[14])).toEqual([0xb2, 0xc3]);
    nic.uplink.deliver(frame(mac0, Uint8Array.from([2, 0, 0, 0, 0, 9]), 0xd4), 0, 60);
    expect(v0.rx.take().map((f) => f[14])).toEqual([0xd4]);
    expect(v1.rx.take()).toEqual([]);
    expect(nic.veb.stats.fromUplink).toBe(1);
  });

  it('MSI-X writes to a masked VF vector: the message waits in the PBA and goes out when unmasked', () => {
    const { vm, nic } = setup();
    linuxEnable(vm, 2);
    const v0 = vfDriver(vm, 0);
    const v1 = vfDriver(vm, 1);
    v1.rx.post();
    const table = vfBar(vm, 1) + 0x1000; // VF1's MSI-X table (BAR1 offset 0)
    vm.mmio.write(table + 16 + 12, 4, 1); // mask vector 1 (rx queue)
    vm.mmio.write(table + 16 + 8, 4, 0x99); // hostile: rewrite the masked entry's data
    const before = vm.sink.msis.length;
    transmit(v0.drv, frame(nic.vfs[1].mac, nic.vfs[0].mac, 1));
    expect(v1.rx.take().length).toBe(1);
    const fromV1 = vm.sink.msis.slice(before).filter((m) => m[2] === 0x99);
    expect(fromV1).toEqual([]);
    expect(vm.mmio.read(table + 0x800, 4) & 2).toBe(2); // pending bit of vector 1
    vm.mmio.write(table + 16 + 12, 4, 0);
    expect(vm.sink.msis.at(-1)).toEqual([0xfee0_0000, 0, 0x99]);
    expect(vm.mmio.read(table + 0x800, 4) & 2).toBe(0);
  });

  it('VF-to-VF frames never reach the vswitch; VF-to-another-VM frames do', () => {
    const { vm, nic } = setup();
    const bridge = new Bridge({ name: 'br0' });
    const upPort = bridge.addPort('sriov-uplink', nic.uplink);
    nic.setUplink({ deliver: (b, o, n) => (upPort.receive(b, o, n), true) });
    const otherMac = Uint8Array.from([0x52, 0x54, 0x00, 0, 0, 0x77]);
    const otherRx: Uint8Array[] = [];
    const other = bridge.addPort('vm2', { deliver: (b, o, n) => (otherRx.push(b.slice(o, o + n)), true) });
    linuxEnable(vm, 2);
    const v0 = vfDriver(vm, 0);
    const v1 = vfDriver(vm, 1);
    v0.rx.post(8);
    v1.rx.post(8);
    const total = (): number => upPort.stats().rxPackets + upPort.stats().txPackets + other.stats().rxPackets + other.stats().txPackets;
    const t0 = total();
    for (let i = 0; i < 5; i++) transmit(v0.drv, frame(nic.vfs[1].mac, nic.vfs[0].mac, i));
    expect(v1.rx.take().length).toBe(5);
    expect(total()).toBe(t0); // no frame crossed the vswitch
    other.receive(frame(nic.vfs[0].mac, otherMac, 0x55), 0, 60);
    expect(v0.rx.take().map((f) => f[14])).toEqual([0x55]);
    transmit(v0.drv, frame(otherMac, nic.vfs[0].mac, 0x66));
    expect(otherRx.map((f) => f[14])).toEqual([0x66]);
    expect(upPort.stats().rxPackets).toBe(1);
  });

  it('fuzz: hostile config and BAR writes to the PF and VFs never throw and keep the VF set consistent (bounded)', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            fn: fc.integer({ min: 0, max: 7 }),
            reg: fc.oneof(fc.integer({ min: 0x100, max: 0x13f }), fc.integer({ min: 0, max: 0xfff })),
            size: fc.constantFrom(1, 2, 4),
            value: fc.integer({ min: 0, max: 0xffffffff }),
            mmio: fc.boolean(),
          }),
          { maxLength: 30 },
        ),
        (ops) => {
          const { vm, nic } = setup(3);
          for (const o of ops) {
            if (o.mmio) vm.mmio.write(0xc100_0000 + ((o.reg * 37) & 0xfffc), 4, o.value);
            else cw(vm, o.fn, o.reg & ~(o.size - 1), o.size, o.value);
            expect(nic.vfs.length).toBe(nic.sriov.enabledVfs);
            expect(nic.vfs.length).toBeLessThanOrEqual(3);
          }
          cw(vm, 0, SR + S.PCI_SRIOV_CTRL, 2, 0);
          expect(nic.vfs.length).toBe(0);
          for (let f = 1; f < 8; f++) expect(cr(vm, f, 0x08, 4)).toBe(0xffffffff);
        },
      ),
      { numRuns: 60 },
    );
  });
});
