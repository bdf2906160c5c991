/**
 * A virtio-pci transport (@ringzero/virtio's VirtioPci, which keeps its own 256-byte config
 * space, MSI-X table and BARs as data) placed on our PCI root: config accesses go straight to
 * the transport, and whenever the guest changes the command register or a BAR, the BARs are
 * (re)decoded on the port and MMIO buses, as a PCI function's address decoders would.
 */
import { NO_IRQ, type InterruptLine } from '../bus/irq';
import type { MmioDevice, MmioRegistry } from '../bus/mmio';
import type { PortIoDevice, PortIoRegistry } from '../bus/pio';
import type { PciAttachContext, PciFunction } from '../devices/pci/function';

/** The transport as this adapter consumes it (VirtioPci fits). */
export interface VirtioPciLike {
  readonly bars: readonly { readonly index: number; readonly size: number; readonly kind: 'mmio' | 'io'; readonly is64: boolean }[];
  configRead(offset: number, size: number): number;
  configWrite(offset: number, size: number, value: number): void;
  barRead(bar: number, offset: number, size: number): number;
  barWrite(bar: number, offset: number, size: number, value: number): void;
  barAddress(index: number): number;
}

const PCI_COMMAND = 0x04;
const CMD_IO = 0x1;
const CMD_MEM = 0x2;
const BAR0 = 0x10;
const BAR_END = 0x28;

class BarWindow implements MmioDevice, PortIoDevice {
  mapped = -1;
  constructor(
    private readonly t: VirtioPciLike,
    readonly index: number,
    readonly size: number,
    readonly io: boolean,
  ) {}
  mmioRead(offset: number, size: number): number {
    return this.t.barRead(this.index, offset, size);
  }
  mmioWrite(offset: number, size: number, value: number): void {
    this.t.barWrite(this.index, offset, size, value);
  }
  portRead(offset: number, size: number): number {
    return this.t.barRead(this.index, offset, size);
  }
  portWrite(offset: number, size: number, value: number): void {
    this.t.barWrite(this.index, offset, size, value);
  }
}

/** A VirtioPci on the machine's PCI root. */
export class VirtioPciFunction implements PciFunction {
  private readonly windows: BarWindow[];
  private pio: PortIoRegistry | null = null;
  private mmio: MmioRegistry | null = null;
  private intx: InterruptLine = NO_IRQ;
  /** BAR placements the buses refused (overlap, out of range): the BAR stays undecoded. */
  barConflicts = 0;

  constructor(
    readonly transport: VirtioPciLike,
    readonly name: string,
  ) {
    this.windows = transport.bars.map((b) => new BarWindow(transport, b.index, b.size, b.kind === 'io'));
  }

  configRead(offset: number, size: number): number {
    // Extended (PCIe) config space of a conventional function reads as zero.
    if (offset >= 256) return 0;
    return this.transport.configRead(offset, size);
  }

  configWrite(offset: number, size: number, value: number): void {
    if (offset >= 256) return;
    this.transport.configWrite(offset, size, value);
    const end = offset + size;
    if ((offset < PCI_COMMAND + 2 && end > PCI_COMMAND) || (offset < BAR_END && end > BAR0)) this.remap();
  }

  attach(context: PciAttachContext): void {
    this.pio = context.pio;
    this.mmio = context.mmio;
    this.intx = context.intx;
    this.remap();
  }

  detach(): void {
    for (const w of this.windows) this.unmap(w);
    this.intx.setLevel(false);
    this.intx = NO_IRQ;
    this.pio = null;
    this.mmio = null;
  }

  /** The transport's INTx output (pin A, routed by the root). */
  setIntx(level: boolean): void {
    this.intx.setLevel(level);
  }

  /** The address BAR `index` is decoded at, or -1. */
  decodedAt(index: number): number {
    return this.windows.find((w) => w.index === index)?.mapped ?? -1;
  }

  /** Puts every BAR where the guest programmed it, if its decoder is enabled. */
  remap(): void {
    if (this.pio == null || this.mmio == null) return;
    const cmd = this.transport.configRead(PCI_COMMAND, 2);
    for (const w of this.windows) {
      const enabled = (cmd & (w.io ? CMD_IO : CMD_MEM)) !== 0;
      const addr = this.transport.barAddress(w.index);
      // An address of 0 is "not assigned"; an all-ones pattern is a sizing probe in progress.
      const valid = enabled && addr !== 0 && addr % w.size === 0 && (w.io ? addr + w.size <= 0x10000 : true);
      const want = valid ? addr : -1;
      if (want === w.mapped) continue;
      this.unmap(w);
      if (want < 0) continue;
      const ok = w.io
        ? this.pio.tryRegister(want, w.size, w, `${this.name}-bar${w.index}`, 4)
        : this.mmio.tryRegister(want, w.size, w, `${this.name}-bar${w.index}`);
      if (ok) w.mapped = want;
      else this.barConflicts++;
    }
  }

  private unmap(w: BarWindow): void {
    if (w.mapped < 0) return;
    if (w.io) this.pio?.unregister(w.mapped);
    else this.mmio?.unregister(w.mapped);
    w.mapped = -1;
  }
}
