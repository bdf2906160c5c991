// The PCI root: a host bridge at 00:00.0, configuration access by the type-1 mechanism
// (CONFIG_ADDRESS at 0xCF8, CONFIG_DATA at 0xCFC-0xCFF on a PC) and by ECAM/MMCONFIG (base +
// bus << 20 | device << 15 | function << 12 | register), INTx routing through a swizzle table,
// and BAR assignment for a BIOS-less boot. Functions on bus 0 form a PCI Express root complex:
// PCI Express functions there are root-complex integrated endpoints, with 4 KiB of config space
// reachable through ECAM.
//
// CONFIG_ADDRESS: [31 enable][30:24 reserved][23:16 bus][15:11 device][10:8 function][7:2 register][1:0 00]

import type { InterruptSink } from '../../bus/interrupts';
import type { InterruptLine } from '../../bus/irq';
import { NO_IRQ, SharedIrqLine } from '../../bus/irq';
import type { MmioDevice, MmioRegistry } from '../../bus/mmio';
import type { PortIoDevice, PortIoRegistry } from '../../bus/pio';
import { PciDevice, type PciFunction } from './function';
import { StateReader } from '../state';
import * as R from './regs';

/** Saved state of the PCI root's own registers (functions save their own). */
export interface PciRootState {
  version: 1;
  configAddress: number;
  resetControl: number;
}

/**
 * The standard INTx swizzle for device `device`'s pin `pin` (1-4): the PIRQ (0-3 = A-D) it lands on.
 * The ACPI _PRT must describe the same routing.
 */
export function pciSwizzle(device: number, pin: number): number {
  return (device + pin - 1) & 3;
}

/** Options of the PCI root. */
export interface PciRootOptions {
  pio: PortIoRegistry;
  mmio: MmioRegistry;
  /** Where MSI and MSI-X messages go (the local APIC). */
  interrupts: InterruptSink;
  /** The four PIRQ lines A-D (e.g. IOAPIC pins 16-19, or 8259 IRQs through the ELCR). */
  intxLines: readonly InterruptLine[];
  /** PIRQ index (0-3) per [device][pin - 1]; default `pciSwizzle`. */
  intxMap?: readonly (readonly number[])[];
  /** IRQ numbers written to each function's Interrupt Line register at attach (what firmware does), per PIRQ. */
  intxIrqNumbers?: readonly number[];
  /** Buses covered by ECAM (1-256). Default 256. */
  busCount?: number;
  /** Host bridge IDs (default Red Hat 1b36:0008, a generic PCIe host bridge Linux has no quirks for). */
  hostBridge?: { vendorId: number; deviceId: number } | false;
  /** A write of the reset bit (2) to the reset control register (0xCF9 on a PC). */
  onReset?(hard: boolean): void;
}

/** A BAR placed by `assignResources`. */
export interface PciAssignment {
  bus: number;
  device: number;
  function: number;
  bar: number;
  address: number;
  size: number;
}

/** Address windows for BAR assignment: [base, limit] inclusive. */
export interface PciWindows {
  io?: readonly [number, number];
  mem32: readonly [number, number];
  mem64?: readonly [number, number];
}

/** Thrown when a slot is taken or out of range (wiring error). */
export class PciSlotError extends Error {
  override readonly name = 'PciSlotError';
}

const NO_FUNCTION = null;

/** The PCI root complex. */
export class PciRoot {
  private readonly functions: (PciFunction | null)[] = new Array<PciFunction | null>(65536).fill(NO_FUNCTION);
  private readonly pirqs: SharedIrqLine[];
  private configAddress = 0;
  private resetControl = 0;
  readonly busCount: number;
  /** The type-1 mechanism: register at 0xCF8, 8 ports. */
  readonly configPorts: PortIoDevice;
  /** ECAM/MMCONFIG: register at the MCFG base, `ecamSize` bytes. */
  readonly ecam: MmioDevice;
  readonly hostBridge: PciDevice | null;

  constructor(private readonly options: PciRootOptions) {
    if (options.intxLines.length !== 4) throw new PciSlotError('intxLines must be the four PIRQ lines A-D');
    this.pirqs = options.intxLines.map((l) => new SharedIrqLine(l));
    const buses = options.busCount ?? 256;
    if (!Number.isInteger(buses) || buses < 1 || buses > 256) throw new PciSlotError('busCount must be 1-256');
    this.busCount = buses;
    this.configPorts = {
      portRead: (offset: number, size: number): number => this.portRead(offset, size),
      portWrite: (offset: number, size: number, value: number): void => this.portWrite(offset, size, value),
    };
    this.ecam = {
      mmioRead: (offset: number, size: number): number => this.ecamAccess(offset, size, false, 0),
      mmioWrite: (offset: number, size: number, value: number): void => {
        this.ecamAccess(offset, size, true, value);
      },
    };
    const hb = options.hostBridge ?? { vendorId: 0x1b36, deviceId: 0x0008 };
    this.hostBridge = hb === false ? null : new PciDevice({ ...hb, classCode: 0x060000, name: 'host-bridge', express: {} });
    if (this.hostBridge) this.attach(this.hostBridge, 0);
  }

  saveState(): PciRootState {
    return { version: 1, configAddress: this.configAddress, resetControl: this.resetControl };
  }

  /** Loads a saved state (validated: throws DeviceStateError). */
  loadState(state: unknown): void {
    const r = new StateReader(state, 'PciRoot', 1);
    const configAddress = r.int('configAddress', 0, 0xffffffff);
    const resetControl = r.int('resetControl', 0, 255);
    this.configAddress = (configAddress & 0x80fffffc) >>> 0;
    this.resetControl = resetControl & 0x0a;
  }

  /** Bytes of the ECAM window. */
  get ecamSize(): number {
    return this.busCount << 20;
  }

  /** Places a function at bus:device.function. */
  attach(fn: PciFunction, device: number, func = 0, bus = 0): void {
    if (!isInt(bus, 0, this.busCount - 1) || !isInt(device, 0, 31) || !isInt(func, 0, 7)) throw new PciSlotError(`no slot ${bus}:${device}.${func}`);
    const key = (bus << 8) | (device << 3) | func;
    if (this.functions[key] != null) throw new PciSlotError(`slot ${hex2(bus)}:${hex2(device)}.${func} is taken`);
    this.functions[key] = fn;
    const pin = fn.configRead(R.PCI_INTERRUPT_PIN, 1);
    let intx: InterruptLine = NO_IRQ;
    if (pin >= 1 && pin <= 4) {
      const pirq = (this.options.intxMap?.[device]?.[pin - 1] ?? pciSwizzle(device, pin)) & 3;
      intx = this.pirqs[pirq].source();
      const irqNo = this.options.intxIrqNumbers?.[pirq];
      if (irqNo !== undefined) fn.configWrite(R.PCI_INTERRUPT_LINE, 1, irqNo);
    }
    fn.attach?.({ bus, device, function: func, pio: this.options.pio, mmio: this.options.mmio, interrupts: this.options.interrupts, intx });
    if (func !== 0) this.markMultifunction(bus, device);
  }

  /** Removes the function at bus:device.function (hot-unplug); returns it. */
  detach(device: number, func = 0, bus = 0): PciFunction | null {
    if (!isInt(bus, 0, 255) || !isInt(device, 0, 31) || !isInt(func, 0, 7)) return null;
    const key = (bus << 8) | (device << 3) | func;
    const fn = this.functions[key];
    if (fn == null) return null;
    this.functions[key] = null;
    fn.detach?.();
    return fn;
  }

  get(bus: number, device: number, func: number): PciFunction | null {
    if (!isInt(bus, 0, 255) || !isInt(device, 0, 31) || !isInt(func, 0, 7)) return null;
    return this.functions[(bus << 8) | (device << 3) | func];
  }

  private markMultifunction(bus: number, device: number): void {
    const f0 = this.functions[(bus << 8) | (device << 3)];
    if (f0 instanceof PciDevice) f0.config[R.PCI_HEADER_TYPE] |= R.PCI_HEADER_TYPE_MULTIFUNCTION;
  }

  /** A config read; absent functions read as all-ones. */
  configRead(bus: number, device: number, func: number, reg: number, size: number): number {
    const fn = this.functions[((bus & 0xff) << 8) | ((device & 31) << 3) | (func & 7)];
    if (fn == null) return size === 1 ? 0xff : size === 2 ? 0xffff : 0xffffffff;
    return fn.configRead(reg, size) >>> 0;
  }

  configWrite(bus: number, device: number, func: number, reg: number, size: number, value: number): void {
    const fn = this.functions[((bus & 0xff) << 8) | ((device & 31) << 3) | (func & 7)];
    if (fn != null) fn.configWrite(reg, size, value);
  }

  private portRead(offset: number, size: number): number {
    if (offset >= 4) {
      const a = this.configAddress;
      if ((a & 0x80000000) === 0 || offset + size > 8) return allOnes(size);
      return this.configRead((a >>> 16) & 0xff, (a >>> 11) & 31, (a >>> 8) & 7, (a & 0xfc) | (offset & 3), size);
    }
    if (offset === 0 && size === 4) return this.configAddress >>> 0;
    if (offset === 1 && size === 1) return this.resetControl;
    return allOnes(size);
  }

  private portWrite(offset: number, size: number, value: number): void {
    if (offset >= 4) {
      const a = this.configAddress;
      if ((a & 0x80000000) === 0 || offset + size > 8) return;
      this.configWrite((a >>> 16) & 0xff, (a >>> 11) & 31, (a >>> 8) & 7, (a & 0xfc) | (offset & 3), size, value);
      return;
    }
    if (offset === 0 && size === 4) {
      this.configAddress = (value & 0x80fffffc) >>> 0;
    } else if (offset === 1 && size === 1) {
      // Reset control register: bit 1 hard reset, bit 2 reset CPU (acts on 0 -> 1), bit 3 full reset.
      const rising = value & 0x04 && !(this.resetControl & 0x04);
      this.resetControl = value & 0x0a;
      if (rising) this.options.onReset?.((value & 0x02) !== 0);
    }
  }

  private ecamAccess(offset: number, size: number, write: boolean, value: number): number {
    if (size !== 1 && size !== 2 && size !== 4) size = 4;
    const reg = offset & 0xfff;
    if (reg + size > 0x1000 || (reg & (size - 1)) !== 0) {
      // Unaligned or crossing into the next function: byte by byte.
      let v = 0;
      for (let i = 0; i < size; i++) {
        if (write) this.ecamAccess(offset + i, 1, true, (value >>> (8 * i)) & 0xff);
        else v |= this.ecamAccess(offset + i, 1, false, 0) << (8 * i);
      }
      return v >>> 0;
    }
    const bus = (offset >>> 20) & 0xff;
    const dev = (offset >>> 15) & 31;
    const fn = (offset >>> 12) & 7;
    if (write) {
      this.configWrite(bus, dev, fn, reg, size, value);
      return 0;
    }
    return this.configRead(bus, dev, fn, reg, size);
  }

  /**
   * Assigns every unassigned BAR of the PciDevices on the bus (largest first, naturally aligned)
   * within the windows, and turns on I/O and memory decoding, as firmware would. 64-bit BARs go
   * to `mem64` when given. Returns the assignments; throws if a window is too small.
   */
  assignResources(windows: PciWindows): PciAssignment[] {
    type Item = { dev: PciDevice; bus: number; device: number; func: number; bar: number; size: number; kind: 'io' | 'mem32' | 'mem64' };
    const items: Item[] = [];
    for (let key = 0; key < 65536; key++) {
      const fn = this.functions[key];
      if (!(fn instanceof PciDevice)) continue;
      for (const b of fn.bars) {
        if (fn.barAddress(b.index) !== 0) continue;
        items.push({ dev: fn, bus: key >> 8, device: (key >> 3) & 31, func: key & 7, bar: b.index, size: b.size, kind: b.type === 'mem64' && windows.mem64 ? 'mem64' : b.type === 'io' ? 'io' : 'mem32' });
      }
    }
    items.sort((a, b) => b.size - a.size);
    const next: Record<string, number> = { io: windows.io?.[0] ?? 0, mem32: windows.mem32[0], mem64: windows.mem64?.[0] ?? 0 };
    const limit: Record<string, number> = { io: windows.io?.[1] ?? -1, mem32: windows.mem32[1], mem64: windows.mem64?.[1] ?? -1 };
    const out: PciAssignment[] = [];
    for (const it of items) {
      const addr = Math.ceil(next[it.kind] / it.size) * it.size;
      if (addr + it.size - 1 > limit[it.kind]) {
        throw new PciSlotError(`no room for ${it.dev.name} BAR${it.bar} (${it.size} bytes) in the ${it.kind} window`);
      }
      next[it.kind] = addr + it.size;
      const off = R.PCI_BASE_ADDRESS_0 + 4 * it.bar;
      it.dev.configWrite(off, 4, addr % 2 ** 32);
      if (it.dev.bars.find((b) => b.index === it.bar)?.type === 'mem64') it.dev.configWrite(off + 4, 4, Math.floor(addr / 2 ** 32));
      out.push({ bus: it.bus, device: it.device, function: it.func, bar: it.bar, address: addr, size: it.size });
    }
    for (let key = 0; key < 65536; key++) {
      const fn = this.functions[key];
      if (!(fn instanceof PciDevice) || fn.bars.length === 0) continue;
      let cmd = fn.command;
      if (fn.bars.some((b) => b.type === 'io')) cmd |= R.PCI_COMMAND_IO;
      if (fn.bars.some((b) => b.type !== 'io')) cmd |= R.PCI_COMMAND_MEMORY;
      fn.configWrite(R.PCI_COMMAND, 2, cmd);
    }
    return out;
  }
}

function allOnes(size: number): number {
  return size === 1 ? 0xff : size === 2 ? 0xffff : 0xffffffff;
}

function isInt(v: number, lo: number, hi: number): boolean {
  return Number.isInteger(v) && v >= lo && v <= hi;
}

function hex2(n: number): string {
  return n.toString(16).padStart(2, '0');
}
