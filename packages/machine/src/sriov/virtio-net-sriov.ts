/**
 * An SR-IOV virtio-net NIC: the physical function is a modern virtio-net-pci function offering
 * VIRTIO_F_SR_IOV, made a PCI Express root-complex integrated endpoint (the capability spliced
 * into its list by ExpressOverlay) with the SR-IOV extended capability at 0x100. When the
 * guest sets VF Enable, VF n appears on the PCI root at routing ID PF + First VF Offset +
 * n x VF Stride, as its own virtio-net function (own queues, own MSI-X table), reading as a VF
 * must (vendor/device ID 0xFFFF, BARs zero, no INTx, memory enable hard-wired to 0); its BARs
 * are decoded at VF BARi + n x size while VF MSE is set. Frames of the PF and of every VF
 * are switched by the device's embedded switch (Veb); the uplink may attach to a vswitch port.
 *
 * Why a root-complex integrated endpoint on bus 0: Linux's SR-IOV code (drivers/pci/iov.c)
 * wants a PCI Express endpoint or RCiEP; on the root bus with offset 1 and stride 1 the VFs are
 * functions 1..TotalVFs of the PF's own device, on bus 0, which Linux reaches without any
 * bridge. Hence TotalVFs is at most 7 (no ARI on a root bus).
 */
import type { GuestMemory } from '@ringzero/mmu-ept';
import { VirtioNet, VirtioPci, type VirtioNetOptions } from '@ringzero/virtio';
import type { InterruptSink } from '../bus/interrupts';
import type { MmioDevice, MmioRegistry } from '../bus/mmio';
import type { PciAttachContext, PciFunction } from '../devices/pci/function';
import { PCI_EXT_CAP_ID_SRIOV, PCI_SRIOV_CAP_SIZE, SriovCapability, SriovConfigError, type SriovBarSpec } from '../devices/pci/sriov';
import { VirtioPciFunction } from '../machine/virtio-function';
import { ExpressOverlay, PCI_EXP_TYPE_RC_END } from './overlay';
import { RetargetableMemory } from './memory';
import { Veb, VEB_UPLINK, type VebSink } from './veb';

/** Where VFs are placed (PciRoot fits). */
export interface PciSlots {
  attach(fn: PciFunction, device: number, func?: number, bus?: number): void;
  detach(device: number, func?: number, bus?: number): PciFunction | null;
}

/** Options of the NIC. */
export interface SriovVirtioNetOptions {
  /** The PF's MAC. */
  mac: Uint8Array;
  /** TotalVFs (1-7). */
  totalVfs: number;
  /** The PF's DMA memory (the owning VM's RAM). */
  memory: GuestMemory;
  /** The PCI root the VFs appear on (the PF's own root). */
  root: PciSlots;
  /** MAC of VF n (default 52:54:00:5f:<PF MAC byte 5>:<n + 1>... locally unique per PF). */
  vfMac?: (n: number) => Uint8Array;
  /** Queue size of every function (default 256). */
  queueSize?: number;
  name?: string;
}

const SRIOV_AT = 0x100;
/** Where a machine places VF BARs (as firmware): 16 MiB below the assigned-device window, inside the 32-bit PCI window. */
export const SRIOV_VF_BAR_WINDOW: readonly [number, number] = [0xde00_0000, 0xdf00_0000];
/** The PF's and each VF's PCI device ID (modern virtio-net). */
export const VIRTIO_NET_PCI_DEVICE_ID = 0x1041;
const VIRTIO_VENDOR = 0x1af4;

/** A VF BAR window on the MMIO bus: forwards to the VF's transport. */
class VfBarWindow implements MmioDevice {
  mapped = -1;
  constructor(
    readonly vf: VirtioNetVf,
    readonly index: number,
  ) {}
  mmioRead(offset: number, size: number): number {
    return this.vf.transport.barRead(this.index, offset, size);
  }
  mmioWrite(offset: number, size: number, value: number): void {
    this.vf.transport.barWrite(this.index, offset, size, value);
  }
}

/** The config-space face of a VF on the PF's root. */
class VfFunction implements PciFunction {
  constructor(readonly vf: VirtioNetVf) {}
  configRead(offset: number, size: number): number {
    return this.vf.overlay.read(offset, size);
  }
  configWrite(offset: number, size: number, value: number): void {
    this.vf.overlay.write(offset, size, value);
  }
}

/** One virtual function: a virtio-net device behind its own virtio-pci transport. */
export class VirtioNetVf {
  net!: VirtioNet;
  transport!: VirtioPci;
  overlay!: ExpressOverlay;
  readonly function: PciFunction;
  readonly windows: VfBarWindow[];
  readonly mac: Uint8Array;
  /** Where its MSI-X messages go (the PF's VM, or the VM it is assigned to). */
  msi: InterruptSink['deliverMsi'] | null = null;
  /** Bus << 8 | devfn on the PF's root (its requester ID). */
  routingId = -1;
  /** Set while the VF is assigned to another VM (it is then off the PF's root). */
  assigned: unknown = null;
  vebPort = 0;

  constructor(
    readonly index: number,
    mac: Uint8Array,
    memory: GuestMemory,
    private readonly veb: Veb,
    private readonly queueSize: number,
  ) {
    this.mac = mac;
    this.setDma(memory);
    this.function = new VfFunction(this);
    this.windows = this.transport.bars.map((b) => new VfBarWindow(this, b.index));
  }

  /**
   * Function-level reset with a new DMA target (the owning VM's RAM, an IOMMU view, or nothing):
   * the virtio-net device and its transport are made afresh around it, so the data path calls
   * the memory directly (no indirection per access). Queues, MSI-X table and config state start
   * over, as after an FLR.
   */
  setDma(memory: GuestMemory | null): void {
    if (this.transport !== undefined) {
      this.transport.core.reset();
      this.veb.removePort(this.vebPort);
    }
    const opts: VirtioNetOptions = { mac: this.mac, send: (b, o, n) => this.veb.input(this.vebPort, b, o, n), queueSize: this.queueSize };
    this.net = new VirtioNet(opts);
    this.transport = new VirtioPci(this.net, memory ?? NO_MEMORY, { msi: (lo, hi, d) => this.msi?.(lo, hi, d), transitional: false });
    this.vebPort = this.veb.addPort(this.net, this.mac);
    const ov = new ExpressOverlay(this.transport, { type: PCI_EXP_TYPE_RC_END, flr: false });
    ov.own(0x00, 4, 0xffffffff); // vendor and device ID read as 0xFFFF in a VF
    ov.own(0x10, 24, 0); // BARs: read-only zero (the PF's VF BARs place them)
    ov.own(0x3d, 1, 0); // no INTx
    ov.clear[0x04] = 0x03; // I/O and memory space enable: hard-wired to 0 (VF MSE rules)
    this.overlay = ov;
  }
}

/** DMA with nowhere to go: every access fails. */
const NO_MEMORY: GuestMemory = new RetargetableMemory(null);

/** The PF as a PCI function: the virtio-pci transport, made PCI Express, plus SR-IOV. */
class SriovPfFunction extends VirtioPciFunction {
  constructor(
    transport: VirtioPci,
    name: string,
    private readonly nic: SriovVirtioNet,
  ) {
    super(transport, name);
  }
  /** The transport as the overlay sees it (header writes still remap the PF's BARs). */
  innerRead(offset: number, size: number): number {
    return super.configRead(offset, size);
  }
  innerWrite(offset: number, size: number, value: number): void {
    super.configWrite(offset, size, value);
  }
  override configRead(offset: number, size: number): number {
    if (offset >= SRIOV_AT && offset < SRIOV_AT + PCI_SRIOV_CAP_SIZE) return this.nic.sriov.read(offset - SRIOV_AT, size);
    return this.nic.overlay.read(offset, size);
  }
  override configWrite(offset: number, size: number, value: number): void {
    if (offset >= SRIOV_AT && offset < SRIOV_AT + PCI_SRIOV_CAP_SIZE) this.nic.sriov.write(offset - SRIOV_AT, size, value);
    else this.nic.overlay.write(offset, size, value);
  }
  override attach(context: PciAttachContext): void {
    super.attach(context);
    this.nic.attached(context);
  }
  override detach(): void {
    this.nic.attached(null);
    super.detach();
  }
}

/** The SR-IOV virtio-net NIC (PF, VFs, embedded switch). */
export class SriovVirtioNet {
  readonly name: string;
  readonly pf: VirtioNet;
  readonly transport: VirtioPci;
  readonly function: VirtioPciFunction;
  readonly sriov: SriovCapability;
  readonly overlay: ExpressOverlay;
  readonly veb: Veb = new Veb();
  /** The VFs that exist now (index = VF number). */
  readonly vfs: VirtioNetVf[] = [];
  /** VFs whose routing ID was taken by another function (they stay absent). */
  vfSlotConflicts = 0;
  /** VF BAR placements the MMIO bus refused (overlap). */
  vfBarConflicts = 0;
  private readonly memory: GuestMemory;
  private readonly root: PciSlots;
  private readonly vfMac: (n: number) => Uint8Array;
  private readonly queueSize: number;
  private context: PciAttachContext | null = null;
  private readonly pfPort: number;

  constructor(options: SriovVirtioNetOptions) {
    const { totalVfs } = options;
    if (!Number.isInteger(totalVfs) || totalVfs < 1 || totalVfs > 7) throw new SriovConfigError(`sriovTotalVfs ${totalVfs} must be 1-7 (VFs are functions 1-7 of the PF's device)`);
    this.name = options.name ?? 'virtio-net-sriov';
    this.memory = options.memory;
    this.root = options.root;
    this.queueSize = options.queueSize ?? 256;
    const pfMac = options.mac;
    this.vfMac = options.vfMac ?? ((n: number): Uint8Array => Uint8Array.from([0x52, 0x54, 0x00, 0x5f, pfMac[5], n + 1]));
    this.pf = new VirtioNet({ mac: pfMac, send: (b, o, n) => this.veb.input(this.pfPort, b, o, n), queueSize: this.queueSize });
    this.pfPort = this.veb.addPort(this.pf, pfMac);
    let fn: SriovPfFunction | null = null;
    this.transport = new VirtioPci(this.pf, options.memory, {
      msi: (lo, hi, d) => this.context?.interrupts.deliverMsi(lo, hi, d),
      intx: (level) => fn?.setIntx(level),
      transitional: false,
      sriov: true,
    });
    // VF BARs: the same layout as the PF's (virtio-pci BAR1 MSI-X, BAR4 64-bit modern registers).
    const bars: SriovBarSpec[] = this.transport.bars.map((b) => ({ index: b.index, type: b.is64 ? 'mem64' : 'mem32', size: Math.max(4096, b.size), prefetchable: b.prefetchable }));
    this.sriov = new SriovCapability({ totalVfs, vfDeviceId: VIRTIO_NET_PCI_DEVICE_ID, bars, onChange: () => this.reconcile() });
    fn = new SriovPfFunction(this.transport, this.name, this);
    this.function = fn;
    const f = fn;
    this.overlay = new ExpressOverlay({ configRead: (o, s) => f.innerRead(o, s), configWrite: (o, s, v) => f.innerWrite(o, s, v) }, { type: PCI_EXP_TYPE_RC_END, flr: false });
  }

  /** Frames from the outside world (the vswitch port) come in here. */
  readonly uplink: VebSink = { deliver: (b: Uint8Array, o: number, n: number): boolean => this.veb.input(VEB_UPLINK, b, o, n) };

  /** Where frames for the outside world go (a vswitch port), or null. */
  setUplink(sink: VebSink | null): void {
    this.veb.setUplink(sink);
  }

  /** Called by the PF function when it is placed on (or removed from) a root. */
  attached(context: PciAttachContext | null): void {
    this.context = context;
    this.reconcile();
  }

  /** The PF's routing ID (bus << 8 | devfn), or -1 when not on a bus. */
  get routingId(): number {
    const c = this.context;
    return c == null ? -1 : (c.bus << 8) | (c.device << 3) | c.function;
  }

  /** Brings the VFs in line with the SR-IOV registers: creates, removes and (re)maps them. */
  private reconcile(): void {
    const want = this.context == null ? 0 : this.sriov.enabledVfs;
    while (this.vfs.length > want) this.destroyVf(this.vfs.pop()!);
    const ctx = this.context;
    if (ctx == null) return;
    while (this.vfs.length < want) {
      const n = this.vfs.length;
      const vf = new VirtioNetVf(n, this.vfMac(n), this.memory, this.veb, this.queueSize);
      vf.msi = (lo, hi, d): void => this.context?.interrupts.deliverMsi(lo, hi, d);
      const rid = this.routingId + this.sriov.vfRoutingOffset(n);
      vf.routingId = rid;
      try {
        if (rid > 0xffff) throw new Error('routing ID out of range');
        this.root.attach(vf.function, (rid >> 3) & 31, rid & 7, rid >> 8);
      } catch {
        this.vfSlotConflicts++;
        vf.routingId = -1;
      }
      this.vfs.push(vf);
    }
    for (const vf of this.vfs) this.mapVf(vf, ctx.mmio);
  }

  private mapVf(vf: VirtioNetVf, mmio: MmioRegistry): void {
    for (const w of vf.windows) {
      const want = vf.assigned != null || vf.routingId < 0 ? -1 : this.sriov.vfBarAddress(vf.index, w.index);
      if (want === w.mapped) continue;
      if (w.mapped >= 0) mmio.unregister(w.mapped);
      w.mapped = -1;
      if (want < 0) continue;
      if (mmio.tryRegister(want, this.sriov.vfBarSize(w.index), w, `${this.name}-vf${vf.index}-bar${w.index}`)) w.mapped = want;
      else this.vfBarConflicts++;
    }
  }

  private destroyVf(vf: VirtioNetVf): void {
    const mmio = this.context?.mmio;
    for (const w of vf.windows) {
      if (w.mapped >= 0) mmio?.unregister(w.mapped);
      w.mapped = -1;
    }
    if (vf.assigned != null) (vf.assigned as { gone?: () => void }).gone?.(); // surprise removal from the VM it was assigned to
    else if (vf.routingId >= 0) this.root.detach((vf.routingId >> 3) & 31, vf.routingId & 7, vf.routingId >> 8);
    vf.transport.core.reset();
    vf.msi = null;
    this.veb.removePort(vf.vebPort);
  }

  /** Takes VF `n` off the PF's root (for assignment to another VM): unmapped, reset. Returns it, or null. */
  takeVf(n: number, owner: unknown): VirtioNetVf | null {
    const vf = this.vfs[n];
    if (vf === undefined || vf.assigned != null || vf.routingId < 0) return null;
    vf.assigned = owner;
    if (this.context != null) this.mapVf(vf, this.context.mmio);
    this.root.detach((vf.routingId >> 3) & 31, vf.routingId & 7, vf.routingId >> 8);
    vf.setDma(null);
    return vf;
  }

  /** Gives an assigned VF back to the PF's root (after its assignment ended). */
  returnVf(vf: VirtioNetVf): void {
    if (this.vfs[vf.index] !== vf || vf.assigned == null) return;
    vf.assigned = null;
    vf.setDma(this.memory);
    vf.msi = (lo, hi, d): void => this.context?.interrupts.deliverMsi(lo, hi, d);
    try {
      this.root.attach(vf.function, (vf.routingId >> 3) & 31, vf.routingId & 7, vf.routingId >> 8);
    } catch {
      this.vfSlotConflicts++;
    }
    if (this.context != null) this.mapVf(vf, this.context.mmio);
  }

  /**
   * Places the VF BARs as firmware would (VF 0's BAR i at a naturally aligned address in
   * [start, end), TotalVFs copies after it), unless the guest or a state load already did.
   * Returns the first free address after them.
   */
  assignVfBars(start: number, end: number): number {
    let next = start;
    const bars = [...this.sriov.bars].sort((a, b) => b.size - a.size);
    for (const b of bars) {
      if (this.sriov.vfBarBase(b.index) > 0) continue;
      const size = this.sriov.vfBarSize(b.index);
      const span = size * this.sriov.totalVfs;
      const at = Math.ceil(next / size) * size;
      if (at + span > end) throw new SriovConfigError(`${this.name}: no room for VF BAR${b.index} (${span} bytes)`);
      const off = SRIOV_AT + 0x24 + 4 * b.index;
      this.function.configWrite(off, 4, at % 2 ** 32);
      if (b.type === 'mem64') this.function.configWrite(off + 4, 4, Math.floor(at / 2 ** 32));
      next = at + span;
    }
    return next;
  }

  /** The capability's config-space offset. */
  static readonly SRIOV_OFFSET: number = SRIOV_AT;
  static readonly EXT_CAP_ID: number = PCI_EXT_CAP_ID_SRIOV;
  static readonly VENDOR: number = VIRTIO_VENDOR;
}
