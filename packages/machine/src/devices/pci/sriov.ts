// The SR-IOV extended capability (PCI Express Base spec, "Single Root I/O Virtualization and
// Sharing"; Linux include/uapi/linux/pci_regs.h PCI_SRIOV_*), as a register model a physical
// function places in its extended configuration space. It owns 64 bytes:
//
//   +0x00 extended capability header (ID 0x0010, version 1, next)
//   +0x04 SR-IOV Capabilities     RO  (bit 0 VF Migration Capable = 0, bit 1 ARI Capable Hierarchy Preserved)
//   +0x08 SR-IOV Control          RW  bit 0 VF Enable, bit 3 VF MSE, bit 4 ARI Capable Hierarchy
//   +0x0a SR-IOV Status           RW1C (VF Migration Status: never set here)
//   +0x0c InitialVFs  +0x0e TotalVFs   RO
//   +0x10 NumVFs                  RW  (ignored while VF Enable is set)
//   +0x12 Function Dependency Link RO (the PF's own function number)
//   +0x14 First VF Offset +0x16 VF Stride  RO, recomputed when NumVFs or ARI Capable Hierarchy change
//   +0x1a VF Device ID            RO
//   +0x1c Supported Page Sizes    RO  (bit n = 4 KiB << n)
//   +0x20 System Page Size        RW  (one supported bit; ignored while VF Enable is set)
//   +0x24..+0x38 VF BAR0-5        RW, sized like BARs: each reads back ~(per-VF size - 1) after a
//                                 write of all ones; a 64-bit BAR takes two slots
//   +0x3c VF Migration State Array Offset  RO 0
//
// VF n (0-based) has routing ID PF + First VF Offset + n x VF Stride; its BAR i is decoded at
// VF BARi + n x (per-VF size of BAR i) while VF Enable and VF MSE are set. What the spec leaves
// undefined is handled so that nothing breaks: NumVFs above TotalVFs enables TotalVFs VFs (and
// is counted), writes to read-only fields are dropped, a System Page Size with no or several
// bits falls back to the smallest supported size.

import { DeviceStateError, StateReader } from '../state';

export const PCI_EXT_CAP_ID_SRIOV = 0x10;
/** Bytes of the SR-IOV capability. */
export const PCI_SRIOV_CAP_SIZE = 0x40;
export const PCI_SRIOV_CAP = 0x04;
export const PCI_SRIOV_CTRL = 0x08;
export const PCI_SRIOV_STATUS = 0x0a;
export const PCI_SRIOV_INITIAL_VF = 0x0c;
export const PCI_SRIOV_TOTAL_VF = 0x0e;
export const PCI_SRIOV_NUM_VF = 0x10;
export const PCI_SRIOV_FUNC_LINK = 0x12;
export const PCI_SRIOV_VF_OFFSET = 0x14;
export const PCI_SRIOV_VF_STRIDE = 0x16;
export const PCI_SRIOV_VF_DID = 0x1a;
export const PCI_SRIOV_SUP_PGSIZE = 0x1c;
export const PCI_SRIOV_SYS_PGSIZE = 0x20;
export const PCI_SRIOV_BAR = 0x24;
export const PCI_SRIOV_VFM = 0x3c;
export const PCI_SRIOV_CTRL_VFE = 0x01;
export const PCI_SRIOV_CTRL_VFM = 0x02;
export const PCI_SRIOV_CTRL_MSE = 0x08;
export const PCI_SRIOV_CTRL_ARI = 0x10;
export const PCI_SRIOV_CAP_ARI_PRESERVED = 0x02;
/** Writable bits of SR-IOV Control (no VF migration). */
const CTRL_WRITABLE = PCI_SRIOV_CTRL_VFE | PCI_SRIOV_CTRL_MSE | PCI_SRIOV_CTRL_ARI;

/** One VF BAR as data: its index (0-5), type and per-VF size (a power of two, at least 4 KiB). */
export interface SriovBarSpec {
  readonly index: number;
  readonly type: 'mem32' | 'mem64';
  readonly size: number;
  readonly prefetchable?: boolean;
}

/** First VF Offset and VF Stride for a NumVFs and ARI Capable Hierarchy setting. */
export type SriovRouting = (numVfs: number, ari: boolean) => { offset: number; stride: number };

/** Options of the capability. */
export interface SriovCapabilityOptions {
  /** TotalVFs (1-65535). */
  totalVfs: number;
  /** InitialVFs (default TotalVFs, as a device without VF migration must report). */
  initialVfs?: number;
  vfDeviceId: number;
  /** The PF's function number (Function Dependency Link). */
  pfFunction?: number;
  /** Supported Page Sizes (default 0x553: 4K, 8K, 64K, 256K, 1M, 4M as most NICs report). */
  supportedPageSizes?: number;
  bars: readonly SriovBarSpec[];
  /** Offset/stride policy (default: offset 1, stride 1). Called again whenever NumVFs or ARI change. */
  routing?: SriovRouting;
  /** Called after a guest write changed what the VFs look like (enable, MSE, NumVFs, a VF BAR). */
  onChange?: () => void;
}

/** Saved state (only what the guest can change). */
export interface SriovCapabilityState {
  version: 1;
  control: number;
  numVfs: number;
  systemPageSize: number;
  bars: number[];
}

/** Thrown for an impossible capability description (a wiring error, never guest-caused). */
export class SriovConfigError extends Error {
  override readonly name = 'SriovConfigError';
}

const defaultRouting: SriovRouting = () => ({ offset: 1, stride: 1 });

/** The SR-IOV capability registers of one physical function. */
export class SriovCapability {
  readonly totalVfs: number;
  readonly initialVfs: number;
  readonly vfDeviceId: number;
  readonly supportedPageSizes: number;
  readonly bars: readonly SriovBarSpec[];
  private readonly regs = new Uint8Array(PCI_SRIOV_CAP_SIZE);
  private readonly wmask = new Uint8Array(PCI_SRIOV_CAP_SIZE);
  private readonly routing: SriovRouting;
  private readonly onChange: () => void;
  /** Guest writes the spec calls undefined or ignores (NumVFs > TotalVFs, RO fields, NumVFs while enabled...). */
  ignoredWrites = 0;

  constructor(options: SriovCapabilityOptions) {
    const { totalVfs } = options;
    if (!Number.isInteger(totalVfs) || totalVfs < 1 || totalVfs > 0xffff) throw new SriovConfigError(`TotalVFs ${totalVfs} must be 1-65535`);
    const initial = options.initialVfs ?? totalVfs;
    if (!Number.isInteger(initial) || initial < 0 || initial > totalVfs) throw new SriovConfigError(`InitialVFs ${initial} must be 0-TotalVFs`);
    this.totalVfs = totalVfs;
    this.initialVfs = initial;
    this.vfDeviceId = options.vfDeviceId & 0xffff;
    this.supportedPageSizes = (options.supportedPageSizes ?? 0x553) >>> 0;
    if (this.supportedPageSizes === 0) throw new SriovConfigError('Supported Page Sizes must have a bit set');
    this.routing = options.routing ?? defaultRouting;
    this.onChange = options.onChange ?? ((): void => undefined);
    this.bars = options.bars;
    const used = new Set<number>();
    for (const b of this.bars) {
      const wide = b.type === 'mem64';
      if (!Number.isInteger(b.index) || b.index < 0 || b.index > (wide ? 4 : 5) || used.has(b.index) || (wide && used.has(b.index + 1))) throw new SriovConfigError(`VF BAR index ${b.index} is invalid or reused`);
      if (!Number.isSafeInteger(b.size) || b.size < 4096 || b.size > (wide ? 2 ** 40 : 2 ** 31) || 2 ** Math.round(Math.log2(b.size)) !== b.size) {
        throw new SriovConfigError(`VF BAR ${b.index} size ${b.size} must be a power of two of at least 4 KiB`);
      }
      used.add(b.index);
      if (wide) used.add(b.index + 1);
    }
    this.set(0, 4, PCI_EXT_CAP_ID_SRIOV | (1 << 16));
    this.set(PCI_SRIOV_CAP, 4, PCI_SRIOV_CAP_ARI_PRESERVED);
    this.set(PCI_SRIOV_INITIAL_VF, 2, initial);
    this.set(PCI_SRIOV_TOTAL_VF, 2, totalVfs);
    this.regs[PCI_SRIOV_FUNC_LINK] = (options.pfFunction ?? 0) & 0xff;
    this.set(PCI_SRIOV_VF_DID, 2, this.vfDeviceId);
    this.set(PCI_SRIOV_SUP_PGSIZE, 4, this.supportedPageSizes);
    this.set(PCI_SRIOV_SYS_PGSIZE, 4, this.supportedPageSizes & -this.supportedPageSizes);
    this.mask(PCI_SRIOV_CTRL, 2, CTRL_WRITABLE);
    this.mask(PCI_SRIOV_NUM_VF, 2, 0xffff);
    this.updateBarMasks();
    this.updateRouting();
  }

  // ---- byte helpers ----
  private set(off: number, size: number, v: number): void {
    for (let i = 0; i < size; i++) this.regs[off + i] = (v >>> (8 * i)) & 0xff;
  }
  private mask(off: number, size: number, v: number): void {
    for (let i = 0; i < size; i++) this.wmask[off + i] = (v >>> (8 * i)) & 0xff;
  }
  private get(off: number, size: number): number {
    let v = 0;
    for (let i = 0; i < size; i++) v |= this.regs[off + i] << (8 * i);
    return v >>> 0;
  }

  /** Sets the Next Capability Offset of the header (by the function that places the capability). */
  setNext(offset: number): void {
    this.set(0, 4, (this.get(0, 4) & 0xfffff) | ((offset & 0xfff) << 20));
  }

  // ---- registers ----
  get control(): number {
    return this.get(PCI_SRIOV_CTRL, 2);
  }
  /** NumVFs as the guest wrote it (may exceed TotalVFs). */
  get numVfsRegister(): number {
    return this.get(PCI_SRIOV_NUM_VF, 2);
  }
  get vfEnable(): boolean {
    return (this.control & PCI_SRIOV_CTRL_VFE) !== 0;
  }
  get vfMse(): boolean {
    return (this.control & PCI_SRIOV_CTRL_MSE) !== 0;
  }
  get ari(): boolean {
    return (this.control & PCI_SRIOV_CTRL_ARI) !== 0;
  }
  /** VFs that exist: NumVFs (at most TotalVFs) while VF Enable is set, else 0. */
  get enabledVfs(): number {
    return this.vfEnable ? Math.min(this.numVfsRegister, this.totalVfs) : 0;
  }
  get firstVfOffset(): number {
    return this.get(PCI_SRIOV_VF_OFFSET, 2);
  }
  get vfStride(): number {
    return this.get(PCI_SRIOV_VF_STRIDE, 2);
  }
  get systemPageSize(): number {
    return this.get(PCI_SRIOV_SYS_PGSIZE, 4) * 4096;
  }

  /** Per-VF size of VF BAR `index` (at least the System Page Size, as the spec requires), or 0. */
  vfBarSize(index: number): number {
    const b = this.bars.find((x) => x.index === index);
    return b === undefined ? 0 : Math.max(b.size, this.systemPageSize);
  }

  /** Base of VF BAR `index` as programmed (VF 0's BAR), or -1 if there is no such BAR. */
  vfBarBase(index: number): number {
    const b = this.bars.find((x) => x.index === index);
    if (b === undefined) return -1;
    const off = PCI_SRIOV_BAR + 4 * index;
    const lo = (this.get(off, 4) & 0xfffffff0) >>> 0;
    return b.type === 'mem64' ? lo + this.get(off + 4, 4) * 2 ** 32 : lo;
  }

  /** Where VF `vf`'s BAR `index` is decoded, or -1 (VFs or VF MSE off, BAR unassigned, no such VF). */
  vfBarAddress(vf: number, index: number): number {
    if (!this.vfMse || vf < 0 || vf >= this.enabledVfs) return -1;
    const base = this.vfBarBase(index);
    if (base <= 0) return -1;
    return base + vf * this.vfBarSize(index);
  }

  /** Routing ID offset of VF `vf` from the PF (First VF Offset + vf x VF Stride). */
  vfRoutingOffset(vf: number): number {
    return this.firstVfOffset + vf * this.vfStride;
  }

  private updateRouting(): void {
    const numVfs = Math.min(this.numVfsRegister, this.totalVfs);
    const r = this.routing(numVfs, this.ari);
    this.set(PCI_SRIOV_VF_OFFSET, 2, r.offset);
    this.set(PCI_SRIOV_VF_STRIDE, 2, r.stride);
  }

  private updateBarMasks(): void {
    for (const b of this.bars) {
      const off = PCI_SRIOV_BAR + 4 * b.index;
      const size = this.vfBarSize(b.index);
      const flags = (b.type === 'mem64' ? 0x4 : 0) | (b.prefetchable === true ? 0x8 : 0);
      this.set(off, 4, (this.get(off, 4) & 0xfffffff0 & ~(size - 1)) | flags);
      this.mask(off, 4, size >= 2 ** 32 ? 0 : ~(size - 1) & 0xfffffff0);
      if (b.type === 'mem64') this.mask(off + 4, 4, size > 2 ** 32 ? ~(size / 2 ** 32 - 1) : 0xffffffff);
    }
  }

  // ---- config access (offsets relative to the capability) ----
  read(offset: number, size: number): number {
    if (offset < 0 || offset + size > PCI_SRIOV_CAP_SIZE) return 0;
    return this.get(offset, size);
  }

  write(offset: number, size: number, value: number): void {
    if (offset < 0 || offset + size > PCI_SRIOV_CAP_SIZE) return;
    const end = offset + size;
    const touches = (reg: number, len: number): boolean => offset < reg + len && end > reg;
    const enabled = this.vfEnable;
    const before = this.control;
    let changed = false;
    for (let i = 0; i < size; i++) {
      const o = offset + i;
      const b = (value >>> (8 * i)) & 0xff;
      if (o >= PCI_SRIOV_NUM_VF && o < PCI_SRIOV_NUM_VF + 2 && enabled) {
        this.ignoredWrites++; // NumVFs may not change while VFs exist
        continue;
      }
      if (o >= PCI_SRIOV_SYS_PGSIZE && o < PCI_SRIOV_SYS_PGSIZE + 4) continue; // handled below
      const m = this.wmask[o];
      if ((b & ~m & 0xff) !== 0 && m !== 0xff && !(o >= PCI_SRIOV_BAR && o < PCI_SRIOV_VFM)) this.ignoredWrites++;
      const nv = (this.regs[o] & ~m) | (b & m);
      if (nv !== this.regs[o]) changed = true;
      this.regs[o] = nv;
    }
    if (enabled && ((before ^ this.control) & PCI_SRIOV_CTRL_ARI) !== 0) {
      // ARI Capable Hierarchy may not change while VFs exist (their routing IDs would move).
      this.set(PCI_SRIOV_CTRL, 2, (this.control & ~PCI_SRIOV_CTRL_ARI) | (before & PCI_SRIOV_CTRL_ARI));
      this.ignoredWrites++;
    }
    if (touches(PCI_SRIOV_SYS_PGSIZE, 4)) {
      if (enabled) this.ignoredWrites++;
      else {
        let v = this.get(PCI_SRIOV_SYS_PGSIZE, 4);
        for (let i = 0; i < size; i++) {
          const o = offset + i;
          if (o >= PCI_SRIOV_SYS_PGSIZE && o < PCI_SRIOV_SYS_PGSIZE + 4) {
            const sh = 8 * (o - PCI_SRIOV_SYS_PGSIZE);
            v = ((v & ~(0xff << sh)) | (((value >>> (8 * i)) & 0xff) << sh)) >>> 0;
          }
        }
        // Exactly one supported bit, or the smallest supported size.
        if ((v & (v - 1)) !== 0 || (v & this.supportedPageSizes) === 0) {
          this.ignoredWrites++;
          v = this.supportedPageSizes & -this.supportedPageSizes;
        }
        if (v !== this.get(PCI_SRIOV_SYS_PGSIZE, 4)) changed = true;
        this.set(PCI_SRIOV_SYS_PGSIZE, 4, v);
        this.updateBarMasks();
      }
    }
    if (touches(PCI_SRIOV_NUM_VF, 2) && this.numVfsRegister > this.totalVfs) this.ignoredWrites++;
    if (touches(PCI_SRIOV_NUM_VF, 2) || ((before ^ this.control) & PCI_SRIOV_CTRL_ARI) !== 0) this.updateRouting();
    if (changed) this.onChange();
  }

  saveState(): SriovCapabilityState {
    const bars: number[] = [];
    for (let i = 0; i < 6; i++) bars.push(this.get(PCI_SRIOV_BAR + 4 * i, 4));
    return { version: 1, control: this.control, numVfs: this.numVfsRegister, systemPageSize: this.get(PCI_SRIOV_SYS_PGSIZE, 4), bars };
  }

  /** Loads a saved state (validated: throws DeviceStateError), then reports the change. */
  loadState(state: unknown): void {
    const r = new StateReader(state, 'sriov', 1);
    const control = r.int('control', 0, 0xffff);
    const numVfs = r.int('numVfs', 0, 0xffff);
    const sps = r.int('systemPageSize', 0, 0xffffffff);
    const bars = r.ints('bars', 6, 0, 0xffffffff);
    if ((sps & (sps - 1)) !== 0 || (sps & this.supportedPageSizes) === 0) throw new DeviceStateError('sriov: systemPageSize is not one supported page size');
    this.set(PCI_SRIOV_SYS_PGSIZE, 4, sps);
    this.updateBarMasks();
    this.set(PCI_SRIOV_NUM_VF, 2, numVfs);
    this.set(PCI_SRIOV_CTRL, 2, control & CTRL_WRITABLE);
    for (let i = 0; i < 6; i++) {
      const off = PCI_SRIOV_BAR + 4 * i;
      for (let k = 0; k < 4; k++) {
        const m = this.wmask[off + k];
        this.regs[off + k] = (this.regs[off + k] & ~m) | ((bars[i] >>> (8 * k)) & m);
      }
    }
    this.updateRouting();
    this.onChange();
  }
}
