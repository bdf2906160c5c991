/**
 * Device assignment, the VMM side (what QEMU's vfio-pci device is): a PassthroughDevice shown
 * to a VM as a PCI function. Config accesses pass through to the device's config region,
 * except the BARs, which are emulated here (sizing, placement) and decode the device's mmap-able
 * regions straight on the VM's MMIO bus; MSI-X messages from the device go to the VM's local
 * APIC (the interrupt sink of the root the function sits on); DMA goes through the VM's IOMMU
 * container (mmu-ept domain), so it reaches only what is mapped there.
 */
import type { AddressSpace } from '@ringzero/mmu-ept';
import type { MmioDevice, MmioRegistry } from '../bus/mmio';
import type { PciAttachContext, PciFunction } from '../devices/pci/function';
import type { SriovVirtioNet, VirtioNetVf } from '../sriov/virtio-net-sriov';
import { IommuContainer } from './container';
import { VfPassthroughDevice } from './vf-device';
import { VFIO_PCI_CONFIG_REGION_INDEX, VFIO_REGION_INFO_FLAG_MMAP, type PassthroughDevice } from './vfio';

interface Bar {
  index: number;
  size: number;
  is64: boolean;
  prefetchable: boolean;
  handler: MmioDevice;
  mapped: number;
}

const PCI_COMMAND = 0x04;
const CMD_MEMORY = 0x2;
const BAR0 = 0x10;
const BAR_END = 0x28;

/** Guest-visible PCI function for an assigned device. */
export class AssignedPciFunction implements PciFunction {
  private readonly barRegs = new Uint8Array(24);
  private readonly bars: Bar[] = [];
  private cmdMemory = 0;
  private mmio: MmioRegistry | null = null;
  /** BAR placements the VM's MMIO bus refused (overlap). */
  barConflicts = 0;

  constructor(readonly device: PassthroughDevice) {
    for (let i = 0; i < 6; i++) {
      const r = device.regionInfo(i);
      if (r.size === 0) continue;
      const handler = (r.flags & VFIO_REGION_INFO_FLAG_MMAP) !== 0 ? device.regionMmap(i) : null;
      const idx = i;
      this.bars.push({
        index: i,
        size: r.size,
        is64: r.is64 === true,
        prefetchable: r.prefetchable === true,
        handler: handler ?? { mmioRead: (o: number, s: number): number => device.regionRead(idx, o, s), mmioWrite: (o: number, s: number, v: number): void => device.regionWrite(idx, o, s, v) },
        mapped: -1,
      });
      this.fixBar(this.bars[this.bars.length - 1]);
      if (r.is64 === true) i++;
    }
  }

  private reg32(off: number): number {
    const b = this.barRegs;
    return (b[off] | (b[off + 1] << 8) | (b[off + 2] << 16) | (b[off + 3] << 24)) >>> 0;
  }
  private setReg32(off: number, v: number): void {
    for (let i = 0; i < 4; i++) this.barRegs[off + i] = (v >>> (8 * i)) & 0xff;
  }
  /** Applies a BAR's size mask and type bits to what the guest wrote. */
  private fixBar(b: Bar): void {
    const off = 4 * b.index;
    const flags = (b.is64 ? 4 : 0) | (b.prefetchable ? 8 : 0);
    this.setReg32(off, ((this.reg32(off) & ~(b.size - 1) & 0xfffffff0) | flags) >>> 0);
  }

  /** The guest-programmed address of BAR `index` (0 = unassigned). */
  barAddress(index: number): number {
    const b = this.bars.find((x) => x.index === index);
    if (b === undefined) return 0;
    const lo = this.reg32(4 * index) & 0xfffffff0;
    return (b.is64 ? this.reg32(4 * index + 4) * 2 ** 32 : 0) + (lo >>> 0);
  }

  /** Where BAR `index` is decoded in the VM now, or -1. */
  barMapped(index: number): number {
    return this.bars.find((x) => x.index === index)?.mapped ?? -1;
  }

  configRead(offset: number, size: number): number {
    if (size !== 1 && size !== 2 && size !== 4) size = 4;
    if (offset < 0 || offset + size > 4096) return 0;
    let v = this.device.regionRead(VFIO_PCI_CONFIG_REGION_INDEX, offset, size);
    for (let i = 0; i < size; i++) {
      const o = offset + i;
      let byte = -1;
      if (o >= BAR0 && o < BAR_END) byte = this.barRegs[o - BAR0];
      else if (o === PCI_COMMAND) byte = ((v >>> (8 * i)) & 0xfc) | this.cmdMemory;
      if (byte >= 0) v = ((v & ~(0xff << (8 * i))) | (byte << (8 * i))) >>> 0;
    }
    return v >>> 0;
  }

  configWrite(offset: number, size: number, value: number): void {
    if (size !== 1 && size !== 2 && size !== 4) size = 4;
    if (offset < 0 || offset + size > 4096) return;
    let remap = false;
    for (let i = 0; i < size; i++) {
      const o = offset + i;
      const b = (value >>> (8 * i)) & 0xff;
      if (o >= BAR0 && o < BAR_END) {
        this.barRegs[o - BAR0] = b;
        remap = true;
      } else if (o === PCI_COMMAND) {
        this.cmdMemory = b & CMD_MEMORY;
        remap = true;
      }
    }
    if (remap) {
      for (const b of this.bars) this.fixBar(b);
      // Slots of a 64-bit BAR's upper half keep what was written; slots without a BAR read 0.
      for (let i = 0; i < 6; i++) {
        const owner = this.bars.find((b) => b.index === i || (b.is64 && b.index + 1 === i));
        if (owner === undefined) this.setReg32(4 * i, 0);
        else if (owner.index + 1 === i && owner.size > 2 ** 32) this.setReg32(4 * i, this.reg32(4 * i) & ~(owner.size / 2 ** 32 - 1));
      }
    }
    if (offset < BAR0 || offset >= BAR_END) this.device.regionWrite(VFIO_PCI_CONFIG_REGION_INDEX, offset, size, value);
    if (remap) this.remap();
  }

  attach(context: PciAttachContext): void {
    this.mmio = context.mmio;
    const sink = context.interrupts;
    this.device.setMsiHandler((lo, hi, d) => sink.deliverMsi(lo, hi, d));
    this.remap();
  }

  detach(): void {
    for (const b of this.bars) this.unmap(b);
    this.device.setMsiHandler(null);
    this.mmio = null;
  }

  private remap(): void {
    const mmio = this.mmio;
    if (mmio == null) return;
    for (const b of this.bars) {
      const addr = this.barAddress(b.index);
      const want = this.cmdMemory !== 0 && addr !== 0 && addr % b.size === 0 ? addr : -1;
      if (want === b.mapped) continue;
      this.unmap(b);
      if (want < 0) continue;
      if (mmio.tryRegister(want, b.size, b.handler, `${this.device.name}-bar${b.index}`)) b.mapped = want;
      else this.barConflicts++;
    }
  }

  private unmap(b: Bar): void {
    if (b.mapped >= 0) this.mmio?.unregister(b.mapped);
    b.mapped = -1;
  }

  /** Places every BAR (largest first, naturally aligned) in [start, end) and enables decoding, as firmware would. */
  placeBars(start: number, end: number): void {
    let next = start;
    for (const b of [...this.bars].sort((x, y) => y.size - x.size)) {
      const at = Math.ceil(next / b.size) * b.size;
      if (at + b.size > end) throw new RangeError(`${this.device.name}: no room for BAR${b.index}`);
      this.configWrite(BAR0 + 4 * b.index, 4, at % 2 ** 32);
      if (b.is64) this.configWrite(BAR0 + 4 * b.index + 4, 4, Math.floor(at / 2 ** 32));
      next = at + b.size;
    }
    this.configWrite(PCI_COMMAND, 2, this.configRead(PCI_COMMAND, 2) | CMD_MEMORY);
  }
}

/** What a VM offers to an assigned device (a Machine fits: its `pci` root and its `memory`). */
export interface AssignmentTarget {
  readonly pci: { attach(fn: PciFunction, device: number, func?: number, bus?: number): void; detach(device: number, func?: number, bus?: number): PciFunction | null };
  readonly memory: AddressSpace;
}

/** Options of an assignment. */
export interface AssignmentOptions {
  /** The slot (device number on bus 0) the function takes in the target VM. */
  slot: number;
  /** Window for its BARs in the target's MMIO space (default: the top 16 MiB of the 32-bit PCI window). */
  barWindow?: readonly [start: number, end: number];
  /** IOMMU domain ID (default 1). */
  domainId?: number;
}

/** Default BAR window for assigned devices: the top 16 MiB below the end of the 32-bit PCI window (0xE000_0000). */
export const ASSIGNED_BAR_WINDOW: readonly [number, number] = [0xdf00_0000, 0xe000_0000];

/**
 * A VF of an SR-IOV NIC assigned to another VM. `attach()` takes the VF off its PF's root
 * (reset), maps the target's RAM into a fresh IOMMU domain, puts the function at `slot` of
 * the target's root with its BARs placed and decoded; `detach()` undoes it and gives the VF
 * back to its PF. Both may be repeated (detach, reattach).
 */
export class VfAssignment {
  readonly container: IommuContainer;
  private fn: AssignedPciFunction | null = null;
  private vf: VirtioNetVf | null = null;

  constructor(
    readonly nic: SriovVirtioNet,
    readonly vfIndex: number,
    readonly target: AssignmentTarget,
    readonly options: AssignmentOptions,
  ) {
    this.container = new IommuContainer(target.memory, options.domainId ?? 1);
    this.container.mapAllRam();
  }

  get attached(): boolean {
    return this.fn != null;
  }

  /** The function the target VM sees (while attached). */
  get function(): AssignedPciFunction | null {
    return this.fn;
  }

  /** Assigns the VF; throws if it does not exist or is already assigned. */
  attach(): AssignedPciFunction {
    if (this.fn != null) return this.fn;
    const vf = this.nic.takeVf(this.vfIndex, this);
    if (vf == null) throw new Error(`VF ${this.vfIndex} of ${this.nic.name} does not exist or is already assigned`);
    const dev = new VfPassthroughDevice(vf, 0x1af4, this.nic.sriov.vfDeviceId, `${this.nic.name}-vf${this.vfIndex}`);
    dev.attachDma(this.container.dmaFor(dev.requesterId));
    const fn = new AssignedPciFunction(dev);
    try {
      this.target.pci.attach(fn, this.options.slot);
    } catch (e) {
      dev.attachDma(null);
      this.container.release(dev.requesterId);
      this.nic.returnVf(vf);
      throw e;
    }
    const [start, end] = this.options.barWindow ?? ASSIGNED_BAR_WINDOW;
    fn.placeBars(start, end);
    this.fn = fn;
    this.vf = vf;
    return fn;
  }

  /** Ends the assignment: the function leaves the target VM, the VF is reset and returns to its PF. */
  detach(): void {
    const fn = this.fn;
    const vf = this.vf;
    if (fn == null || vf == null) return;
    this.teardown(fn);
    this.nic.returnVf(vf);
  }

  /** The VF disappeared under the assignment (its PF cleared VF Enable): surprise removal. */
  gone(): void {
    if (this.fn != null) this.teardown(this.fn);
  }

  private teardown(fn: AssignedPciFunction): void {
    this.target.pci.detach(this.options.slot);
    fn.device.reset();
    fn.device.attachDma(null);
    this.container.release(fn.device.requesterId);
    this.fn = null;
    this.vf = null;
  }
}
