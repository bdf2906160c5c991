import { Bridge } from '@ringzero/vswitch';
import { VTD_FR_READ, VTD_FR_WRITE } from '@ringzero/mmu-ept';
import { describe, expect, it } from 'vitest';
import * as S from '../devices/pci/sriov';
import { busFunction, frame, makeVm, netDriver, Rx, transmit, type Vm } from '../sriov/test-rig';
import { SriovVirtioNet } from '../sriov/virtio-net-sriov';
import { AssignedPciFunction, VfAssignment, ASSIGNED_BAR_WINDOW } from './assigned';
import { IommuContainer } from './container';
import { FakePassthroughDevice } from './testing';

const SR = 0x100;

describe('AssignedPciFunction over the VFIO-shaped back end (test double)', () => {
  it('emulates BARs (sizing, placement), maps the mmap-able regions, routes MSI-X to the VM, and confines DMA to the domain', () => {
    const vm = makeVm();
    const dev = new FakePassthroughDevice({ bars: [{ index: 0, size: 0x2000 }, { index: 2, size: 0x4000, is64: true }] });
    const fn = new AssignedPciFunction(dev);
    vm.pci.attach(fn, 5);
    expect(vm.cfgRead(0, 5, 0, 0, 4)).toBe(0x10ed_8086);
    // Linux __pci_read_base sizing probe.
    vm.cfgWrite(0, 5, 0, 0x10, 4, 0xffffffff);
    expect(vm.cfgRead(0, 5, 0, 0x10, 4)).toBe(0xffffe000);
    vm.cfgWrite(0, 5, 0, 0x18, 4, 0xffffffff);
    expect(vm.cfgRead(0, 5, 0, 0x18, 4)).toBe(0xffffc004); // 64-bit
    vm.cfgWrite(0, 5, 0, 0x14, 4, 0xffffffff);
    expect(vm.cfgRead(0, 5, 0, 0x14, 4)).toBe(0); // no BAR1
    fn.placeBars(ASSIGNED_BAR_WINDOW[0], ASSIGNED_BAR_WINDOW[1]);
    const bar2 = fn.barAddress(2);
    expect(bar2 % 0x4000).toBe(0);
    expect(fn.barMapped(2)).toBe(bar2);
    vm.mmio.write(bar2 + 0x10, 4, 0xdeadbeef);
    expect(dev.regionRead(2, 0x10, 4)).toBe(0xdeadbeef); // straight to the device region
    vm.cfgWrite(0, 5, 0, 0x04, 2, 0); // memory decode off
    expect(fn.barMapped(2)).toBe(-1);
    // MSI-X: the device's message reaches this VM's local APIC.
    expect(dev.signal(0xfee0_0000, 0, 0x45)).toBe(true);
    expect(vm.sink.msis.at(-1)).toEqual([0xfee0_0000, 0, 0x45]);
    // DMA through the container: mapped pages pass, others fault and are dropped.
    const c = new IommuContainer(vm.memory);
    c.mapDma(0x10_0000, 0x2000);
    dev.attachDma(c.dmaFor(dev.requesterId));
    expect(dev.dmaWrite(0x10_0010, Uint8Array.of(1, 2, 3))).toBe(true);
    expect(vm.memory.read8(0x10_0011)).toBe(2);
    expect(dev.dmaWrite(0x20_0000, Uint8Array.of(9))).toBe(false);
    expect(vm.memory.read8(0x20_0000)).toBe(0);
    expect(c.takeFaults()).toEqual([{ sid: 0x0108, addr: 0x20_0000, reason: VTD_FR_WRITE, write: true }]);
    c.unmapDma(0x10_0000, 0x1000);
    expect(dev.dma?.read8(0x10_0010)).toBe(-1);
    expect(c.takeFaults()[0].reason).toBe(VTD_FR_READ);
    vm.pci.detach(5);
    expect(dev.signal(0xfee0_0000, 0, 0x46)).toBe(false); // no handler after detach
  });
});

/** VM A with the SR-IOV NIC at 00:03.0 and two VFs enabled (Linux's sequence), its uplink on a vswitch. */
function hostWithVfs(): { a: Vm; nic: SriovVirtioNet; bridge: Bridge } {
  const a = makeVm();
  const nic = new SriovVirtioNet({ mac: Uint8Array.of(0x52, 0x54, 0, 0x12, 0x34, 0x56), totalVfs: 2, memory: a.memory, root: a.pci });
  a.pci.attach(nic.function, 3);
  nic.function.configWrite(0x14, 4, 0xc000_0000);
  nic.function.configWrite(0x20, 4, 0xc001_0000);
  nic.function.configWrite(0x04, 2, 0x6);
  nic.assignVfBars(0xc100_0000, 0xc200_0000);
  const bridge = new Bridge({ name: 'br0' });
  const up = bridge.addPort('uplink', nic.uplink);
  nic.setUplink({ deliver: (b, o, n) => (up.receive(b, o, n), true) });
  a.cfgWrite(0, 3, 0, SR + S.PCI_SRIOV_NUM_VF, 2, 2);
  a.cfgWrite(0, 3, 0, SR + S.PCI_SRIOV_CTRL, 2, S.PCI_SRIOV_CTRL_VFE | S.PCI_SRIOV_CTRL_MSE);
  return { a, nic, bridge };
}

function vfBarInA(a: Vm, i: number): number {
  const lo = a.cfgRead(0, 3, 0, SR + S.PCI_SRIOV_BAR + 4 * i, 4);
  return (lo & 0xfffffff0) >>> 0;
}

describe('a VF assigned to another VM', () => {
  it('appears in that VM, works there (frames to a VF of the first VM through the embedded switch, not the vswitch), MSI-X to its APIC', () => {
    const { a, nic, bridge } = hostWithVfs();
    const b = makeVm();
    const asg = new VfAssignment(nic, 1, b, { slot: 4 });
    const fn = asg.attach();
    // In B: a normal function at 00:04.0 with the VF's real IDs; gone from A's 00:03.2.
    expect(b.cfgRead(0, 4, 0, 0, 4)).toBe(0x1041_1af4);
    expect(b.cfgRead(0, 4, 0, 0x08, 4)).toBe(0x0200_0001);
    expect(a.cfgRead(0, 3, 2, 0x08, 4)).toBe(0xffffffff);
    expect(a.mmio.owner(vfBarInA(a, 4) + 0x4000)).toBeUndefined();
    // B's driver: BARs where B's "firmware" placed them; rings in B's RAM.
    const vfB = busFunction(b, [0, 4, 0], (bar) => fn.barAddress(bar));
    const drvB = netDriver(b, vfB, 0x10_0000, 0x20_0000);
    const rxB = new Rx(drvB);
    rxB.post();
    // VF0 stays in A.
    const vf0 = busFunction(a, [0, 3, 1], (bar) => vfBarInA(a, bar));
    const drvA = netDriver(a, vf0, 0x20_0000, 0x30_0000);
    const rxA = new Rx(drvA);
    rxA.post();
    const upStats = (): number => { const s = bridge.port('uplink')!.stats(); return s.rxPackets + s.txPackets; };
    const before = upStats();
    const aMsis = a.sink.msis.length;
    const bMsis = b.sink.msis.length;
    transmit(drvB, frame(nic.vfs[0].mac, nic.vfs[1].mac, 0x42)); // "ping" from B to A's VF0
    expect(rxA.take().map((f) => f[14])).toEqual([0x42]);
    transmit(drvA, frame(nic.vfs[1].mac, nic.vfs[0].mac, 0x43)); // the reply
    expect(rxB.take().map((f) => f[14])).toEqual([0x43]);
    expect(upStats()).toBe(before); // nothing went through the vswitch
    expect(nic.veb.stats.local).toBe(2);
    expect(b.sink.msis.length).toBeGreaterThan(bMsis); // B's VF interrupts B
    const aNew = a.sink.msis.slice(aMsis).length;
    transmit(drvA, frame(nic.vfs[1].mac, nic.vfs[0].mac, 0x44));
    expect(rxB.take().length).toBe(1);
    expect(a.sink.msis.length - aMsis).toBeLessThanOrEqual(aNew + 1); // at most A's own tx completion
    // DMA outside B's domain: a receive buffer the domain does not map is refused and recorded.
    asg.container.unmapDma(0x1f_0000, 0x1000);
    drvB.queues[0].add([], [{ addr: 0x1f_0000, len: 2048 }]);
    drvB.kick(0);
    rxB.take();
    for (let i = 0; i < 3; i++) transmit(drvA, frame(nic.vfs[1].mac, nic.vfs[0].mac, 0x45)); // 2 good buffers left, then the bad one
    expect(rxB.take().length).toBe(2);
    const faults = asg.container.takeFaults();
    expect(faults.some((f) => f.addr === 0x1f_0000 && f.sid === nic.vfs[1].routingId)).toBe(true);
    expect(b.memory.read8(0x1f_0000 + 12 + 14)).not.toBe(0x45); // nothing written there
  });

  it('detaches back to the PF, reattaches, and is surprise-removed when the PF disables its VFs', () => {
    const { a, nic } = hostWithVfs();
    const b = makeVm();
    const asg = new VfAssignment(nic, 0, b, { slot: 6 });
    asg.attach();
    expect(b.cfgRead(0, 6, 0, 0, 2)).toBe(0x1af4);
    expect(() => new VfAssignment(nic, 0, makeVm(), { slot: 6 }).attach()).toThrow(/already assigned/);
    asg.detach();
    expect(b.cfgRead(0, 6, 0, 0, 4)).toBe(0xffffffff);
    expect(a.cfgRead(0, 3, 1, 0x08, 4)).toBe(0x0200_0001); // back in A
    expect(a.mmio.owner(vfBarInA(a, 4))).toContain('vf0-bar4');
    asg.attach();
    expect(b.cfgRead(0, 6, 0, 0, 2)).toBe(0x1af4);
    const vfB = busFunction(b, [0, 6, 0], (bar) => asg.function!.barAddress(bar));
    const drv = netDriver(b, vfB, 0x10_0000, 0x20_0000); // works after reattach
    expect(drv.queues.length).toBe(2);
    a.cfgWrite(0, 3, 0, SR + S.PCI_SRIOV_CTRL, 2, 0);
    expect(asg.attached).toBe(false);
    expect(b.cfgRead(0, 6, 0, 0, 4)).toBe(0xffffffff);
    expect(nic.vfs.length).toBe(0);
  });
});
