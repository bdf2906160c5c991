// A PCI function as the host bridge sees it (config space reads and writes), and PciDevice: a
// generic type-0 function that keeps a config space with write masks, decodes its BARs onto the
// port and MMIO buses, and implements the capabilities devices share (PCI Express, MSI, MSI-X).
// A device model (for example a virtio-pci transport) supplies its IDs, BARs as data with their
// register handlers, optional vendor capabilities and hooks; PciDevice does the rest.

import type { InterruptSink } from '../../bus/interrupts';
import type { InterruptLine } from '../../bus/irq';
import type { MmioDevice, MmioRegistry } from '../../bus/mmio';
import { MMIO_ADDRESS_LIMIT } from '../../bus/mmio';
import type { PortIoDevice, PortIoRegistry } from '../../bus/pio';
import { DeviceStateError, StateReader } from '../state';
import * as R from './regs';

/** Saved state of a PciDevice (the guest-writable config space, MSI-X table and PBA, INTx). */
export interface PciDeviceState {
  version: 1;
  vendorId: number;
  deviceId: number;
  config: number[];
  msixTable: number[];
  msixPba: number[];
  intxLevel: boolean;
}

/** What a function on the PCI bus must answer: configuration space accesses (1, 2 or 4 bytes). */
export interface PciFunction {
  configRead(offset: number, size: number): number;
  configWrite(offset: number, size: number, value: number): void;
  /** Placed on the bus: the resources it may use. */
  attach?(context: PciAttachContext): void;
  /** Removed from the bus: release mappings and interrupts. */
  detach?(): void;
}

/** What the root gives a function when it is attached. */
export interface PciAttachContext {
  readonly bus: number;
  readonly device: number;
  readonly function: number;
  readonly pio: PortIoRegistry;
  readonly mmio: MmioRegistry;
  /** MSI and MSI-X messages go here (the local APIC). */
  readonly interrupts: InterruptSink;
  /** This function's INTx pin after routing (a source on a shared line). */
  readonly intx: InterruptLine;
}

/** A BAR as data. I/O BARs are decoded on the port bus, memory BARs on the MMIO bus. */
export type PciBarSpec =
  | { readonly index: number; readonly type: 'io'; readonly size: number; readonly handler: PortIoDevice }
  | {
      readonly index: number;
      readonly type: 'mem32' | 'mem64';
      readonly size: number;
      readonly prefetchable?: boolean;
      /** May be omitted for a BAR that holds only the MSI-X table and PBA. */
      readonly handler?: MmioDevice;
    };

/** A capability supplied as bytes (everything after the ID and next-pointer bytes). */
export interface PciCapabilitySpec {
  readonly id: number;
  readonly body: Uint8Array;
  /** Per-byte write masks for `body` (default: read-only). */
  readonly writable?: Uint8Array;
}

/** Options of a PciDevice. */
export interface PciDeviceOptions {
  vendorId: number;
  deviceId: number;
  /** Base class << 16 | subclass << 8 | programming interface. */
  classCode: number;
  revision?: number;
  subsystemVendorId?: number;
  subsystemId?: number;
  /** INTx pin: 0 none, 1-4 INTA#-INTD#. */
  interruptPin?: number;
  bars?: readonly PciBarSpec[];
  /** Adds a PCI Express capability (and 4 KiB config space); `type` defaults to RC integrated endpoint. */
  express?: { readonly type?: number } | undefined;
  msi?: { readonly vectors: number; readonly perVectorMask?: boolean } | undefined;
  msix?: { readonly vectors: number; readonly bar: number; readonly tableOffset: number; readonly pbaOffset: number } | undefined;
  /** Vendor-specific (or other) capabilities, linked after the standard ones. */
  capabilities?: readonly PciCapabilitySpec[];
  /** Called after a guest write has been applied to config space. */
  onConfigWrite?(offset: number, size: number, value: number): void;
  /** May replace the value of a config read (e.g. a virtio PCI_CFG window). */
  onConfigRead?(offset: number, size: number, value: number): number;
  /** Name used for bus registrations. */
  name?: string;
}

/** Thrown for an impossible device description (a wiring error, never guest-caused). */
export class PciConfigError extends Error {
  override readonly name = 'PciConfigError';
}

interface BarState {
  spec: PciBarSpec;
  /** Address the BAR is decoded at on its bus, or -1. */
  mapped: number;
  device: PortIoDevice | MmioDevice;
}

/** A generic PCI type-0 function. */
export class PciDevice implements PciFunction {
  readonly config: Uint8Array;
  readonly wmask: Uint8Array;
  readonly w1cmask: Uint8Array;
  readonly name: string;
  readonly bars: readonly PciBarSpec[];
  private readonly barState: BarState[] = [];
  private context: PciAttachContext | null = null;
  private nextCap = 0x40;
  private lastCapPtr = R.PCI_CAPABILITY_LIST;
  private lastExtCap = -1;
  private nextExtCap = 0x100;
  /** Capability offsets (0 if absent). */
  readonly msiCap: number = 0;
  readonly msixCap: number = 0;
  readonly expressCap: number = 0;
  private readonly msiVectors: number = 0;
  private readonly msiMask: boolean = false;
  private readonly msixVectors: number = 0;
  private readonly msixTable: Uint8Array;
  private readonly msixPba: Uint8Array;
  private readonly msixTableOffset: number = 0;
  private readonly msixPbaOffset: number = 0;
  private intxLevel = false;
  /** Guest BAR programming that could not be decoded (overlap, out of range). */
  barConflicts = 0;
  /** Interrupt messages dropped (bus mastering off, vector out of range). */
  droppedMessages = 0;

  constructor(private readonly options: PciDeviceOptions) {
    const express = options.express !== undefined;
    const size = express ? R.PCI_CFG_SPACE_EXP_SIZE : R.PCI_CFG_SPACE_SIZE;
    this.config = new Uint8Array(size);
    this.wmask = new Uint8Array(size);
    this.w1cmask = new Uint8Array(size);
    this.name = options.name ?? `pci-${hex4(options.vendorId)}:${hex4(options.deviceId)}`;
    this.bars = options.bars ?? [];
    this.set16(R.PCI_VENDOR_ID, options.vendorId);
    this.set16(R.PCI_DEVICE_ID, options.deviceId);
    this.config[R.PCI_REVISION_ID] = options.revision ?? 0;
    this.set16(R.PCI_CLASS_PROG, options.classCode & 0xff);
    this.config[0x0a] = (options.classCode >> 8) & 0xff;
    this.config[0x0b] = (options.classCode >> 16) & 0xff;
    this.set16(R.PCI_SUBSYSTEM_VENDOR_ID, options.subsystemVendorId ?? 0);
    this.set16(R.PCI_SUBSYSTEM_ID, options.subsystemId ?? 0);
    const pin = options.interruptPin ?? 0;
    if (pin < 0 || pin > 4) throw new PciConfigError(`${this.name}: interrupt pin ${pin} is not 0-4`);
    this.config[R.PCI_INTERRUPT_PIN] = pin;
    this.setMask16(R.PCI_COMMAND, R.PCI_COMMAND_IO | R.PCI_COMMAND_MEMORY | R.PCI_COMMAND_MASTER | R.PCI_COMMAND_PARITY | R.PCI_COMMAND_SERR | R.PCI_COMMAND_INTX_DISABLE);
    this.w1cmask[R.PCI_STATUS + 1] = 0xf9; // error bits 8, 11-15
    this.wmask[R.PCI_CACHE_LINE_SIZE] = 0xff;
    if (!express) this.wmask[R.PCI_LATENCY_TIMER] = 0xff;
    this.wmask[R.PCI_INTERRUPT_LINE] = 0xff;

    // BARs
    const used = new Set<number>();
    for (const bar of this.bars) {
      const i = bar.index;
      const wide = bar.type === 'mem64';
      if (!Number.isInteger(i) || i < 0 || i > (wide ? 4 : 5) || used.has(i) || (wide && used.has(i + 1))) {
        throw new PciConfigError(`${this.name}: BAR index ${i} is invalid or reused`);
      }
      const min = bar.type === 'io' ? 4 : 16;
      const max = bar.type === 'io' ? 256 : bar.type === 'mem32' ? 2 ** 31 : 2 ** 51;
      if (!Number.isSafeInteger(bar.size) || bar.size < min || bar.size > max || !isPow2(bar.size)) {
        throw new PciConfigError(`${this.name}: BAR ${i} size ${bar.size} must be a power of two in ${min}..${max}`);
      }
      used.add(i);
      if (wide) used.add(i + 1);
      const off = R.PCI_BASE_ADDRESS_0 + 4 * i;
      if (bar.type === 'io') {
        this.set32(off, R.PCI_BASE_ADDRESS_SPACE_IO);
        this.setMask32(off, ~(bar.size - 1) & 0xfffffffc);
      } else {
        this.set32(off, (wide ? R.PCI_BASE_ADDRESS_MEM_TYPE_64 : 0) | (bar.prefetchable ? R.PCI_BASE_ADDRESS_MEM_PREFETCH : 0));
        const lowMask = bar.size >= 2 ** 32 ? 0 : ~(bar.size - 1) & 0xfffffff0;
        this.setMask32(off, lowMask);
        if (wide) this.setMask32(off + 4, bar.size > 2 ** 32 ? ~(bar.size / 2 ** 32 - 1) : 0xffffffff);
      }
    }

    // Capabilities: PCI Express, MSI-X, MSI, then the supplied ones.
    if (express) {
      const type = options.express?.type ?? R.PCI_EXP_TYPE_RC_END;
      const c = this.addCapability(R.PCI_CAP_ID_EXP, R.PCI_EXP_CAP_SIZE);
      this.expressCap = c;
      this.set16(c + 2, 2 | ((type & 0xf) << 4)); // capability version 2
      this.set32(c + 4, 0x00008000); // DevCap: role-based error reporting, 128-byte payload
      this.set16(c + 8, 0x2810); // DevCtl: relaxed ordering, no snoop, 512-byte read requests
      this.setMask16(c + 8, 0x7fff);
      this.w1cmask[c + 0x0a] = 0x0f; // DevSta error bits
      if (type !== R.PCI_EXP_TYPE_RC_END) {
        this.set32(c + 0x0c, 0x00000011); // LinkCap: 2.5 GT/s, x1
        this.set16(c + 0x12, 0x0011); // LinkSta: 2.5 GT/s, x1
        this.setMask16(c + 0x10, 0x01c3);
      }
      this.setMask16(c + 0x28, 0x043f); // DevCtl2
    }
    if (options.msix !== undefined) {
      const { vectors, bar, tableOffset, pbaOffset } = options.msix;
      const spec = this.bars.find((b) => b.index === bar);
      const tableEnd = tableOffset + vectors * R.PCI_MSIX_ENTRY_SIZE;
      const pbaEnd = pbaOffset + Math.ceil(vectors / 64) * 8;
      if (!Number.isInteger(vectors) || vectors < 1 || vectors > 2048 || spec === undefined || spec.type === 'io' || tableOffset % 8 !== 0 || pbaOffset % 8 !== 0 || tableEnd > spec.size || pbaEnd > spec.size || (tableOffset < pbaEnd && pbaOffset < tableEnd)) {
        throw new PciConfigError(`${this.name}: MSI-X table/PBA do not fit memory BAR ${bar}`);
      }
      const c = this.addCapability(R.PCI_CAP_ID_MSIX, 12);
      this.msixCap = c;
      this.msixVectors = vectors;
      this.msixTableOffset = tableOffset;
      this.msixPbaOffset = pbaOffset;
      this.set16(c + 2, vectors - 1);
      this.wmask[c + 3] = 0xc0; // enable, function mask
      this.set32(c + 4, tableOffset | bar);
      this.set32(c + 8, pbaOffset | bar);
    }
    this.msixTable = new Uint8Array(this.msixVectors * R.PCI_MSIX_ENTRY_SIZE);
    for (let v = 0; v < this.msixVectors; v++) this.msixTable[v * 16 + 12] = 1; // masked at reset
    this.msixPba = new Uint8Array(Math.ceil(this.msixVectors / 64) * 8);
    if (options.msi !== undefined) {
      const { vectors, perVectorMask = false } = options.msi;
      if (![1, 2, 4, 8, 16, 32].includes(vectors)) throw new PciConfigError(`${this.name}: MSI vectors must be a power of two up to 32`);
      const c = this.addCapability(R.PCI_CAP_ID_MSI, perVectorMask ? 24 : 16);
      this.msiCap = c;
      this.msiVectors = vectors;
      this.msiMask = perVectorMask;
      this.set16(c + 2, (Math.log2(vectors) << 1) | R.PCI_MSI_FLAGS_64BIT | (perVectorMask ? R.PCI_MSI_FLAGS_MASKBIT : 0));
      this.wmask[c + 2] = 0x71; // enable, multiple message enable
      this.setMask32(c + 4, 0xfffffffc);
      this.setMask32(c + 8, 0xffffffff);
      this.setMask16(c + 12, 0xffff);
      if (perVectorMask) this.setMask32(c + 16, vectors === 32 ? 0xffffffff : (1 << vectors) - 1);
    }
    for (const cap of options.capabilities ?? []) {
      const c = this.addCapability(cap.id, cap.body.length + 2);
      this.config.set(cap.body, c + 2);
      if (cap.writable) this.wmask.set(cap.writable.subarray(0, cap.body.length), c + 2);
    }

    for (const spec of this.bars) {
      let device: PortIoDevice | MmioDevice;
      if (spec.type === 'io') device = spec.handler;
      else if (options.msix !== undefined && spec.index === options.msix.bar) device = this.msixRouter(spec.handler);
      else device = spec.handler ?? ZERO_MMIO;
      this.barState.push({ spec, mapped: -1, device });
    }
  }

  // ---- config space helpers ----
  private set16(off: number, v: number): void {
    this.config[off] = v & 0xff;
    this.config[off + 1] = (v >> 8) & 0xff;
  }
  private set32(off: number, v: number): void {
    for (let i = 0; i < 4; i++) this.config[off + i] = (v >>> (8 * i)) & 0xff;
  }
  private setMask16(off: number, v: number): void {
    this.wmask[off] = v & 0xff;
    this.wmask[off + 1] = (v >> 8) & 0xff;
  }
  private setMask32(off: number, v: number): void {
    for (let i = 0; i < 4; i++) this.wmask[off + i] = (v >>> (8 * i)) & 0xff;
  }
  /** Little-endian read of `size` bytes of config space (no hooks). */
  get(off: number, size: number): number {
    let v = 0;
    for (let i = 0; i < size; i++) v |= this.config[off + i] << (8 * i);
    return v >>> 0;
  }

  /** Adds a capability of `length` bytes to the list; returns its offset. */
  addCapability(id: number, length: number): number {
    const off = this.nextCap;
    if (off + length > 0x100) throw new PciConfigError(`${this.name}: capabilities overflow the 256-byte header`);
    this.config[off] = id;
    this.config[off + 1] = 0;
    this.config[this.lastCapPtr === R.PCI_CAPABILITY_LIST ? R.PCI_CAPABILITY_LIST : this.lastCapPtr + 1] = off;
    this.lastCapPtr = off;
    this.nextCap = (off + length + 3) & ~3;
    this.config[R.PCI_STATUS] |= R.PCI_STATUS_CAP_LIST;
    return off;
  }

  /** Adds a PCIe extended capability (at 0x100 and up); returns its offset. */
  addExtendedCapability(id: number, version: number, length: number): number {
    if (this.config.length < R.PCI_CFG_SPACE_EXP_SIZE) throw new PciConfigError(`${this.name}: extended capabilities need a PCI Express function`);
    const off = this.nextExtCap;
    if (off + length > R.PCI_CFG_SPACE_EXP_SIZE) throw new PciConfigError(`${this.name}: extended capabilities overflow 4 KiB`);
    this.set32(off, (id & 0xffff) | ((version & 0xf) << 16));
    if (this.lastExtCap >= 0) this.set32(this.lastExtCap, (this.get(this.lastExtCap, 4) & 0x000fffff) | (off << 20));
    this.lastExtCap = off;
    this.nextExtCap = (off + length + 3) & ~3;
    return off;
  }

  /** Offset of the first capability with `id`, or 0. */
  findCapability(id: number): number {
    let p = this.config[R.PCI_CAPABILITY_LIST];
    for (let guard = 0; p !== 0 && guard < 48; guard++) {
      if (this.config[p] === id) return p;
      p = this.config[p + 1];
    }
    return 0;
  }

  /** Makes bytes of config space writable (for device-specific registers). */
  setWritable(offset: number, mask: Uint8Array): void {
    this.wmask.set(mask, offset);
  }

  // ---- PciFunction ----
  attach(context: PciAttachContext): void {
    this.context = context;
    this.updateBars();
    this.updateIntx();
  }

  detach(): void {
    for (const bar of this.barState) this.unmap(bar);
    this.context?.intx.setLevel(false);
    this.context = null;
  }

  configRead(offset: number, size: number): number {
    if (size !== 1 && size !== 2 && size !== 4) size = 4;
    let v = 0;
    if (offset >= 0 && offset + size <= this.config.length) v = this.get(offset, size);
    return this.options.onConfigRead ? this.options.onConfigRead(offset, size, v) >>> 0 : v;
  }

  configWrite(offset: number, size: number, value: number): void {
    if (size !== 1 && size !== 2 && size !== 4) size = 4;
    if (!(offset >= 0 && offset + size <= this.config.length)) return;
    const msiEnabledBefore = this.msiEnabled;
    const msixCtlBefore = this.msixCap ? this.config[this.msixCap + 3] : 0;
    for (let i = 0; i < size; i++) {
      const off = offset + i;
      const b = (value >>> (8 * i)) & 0xff;
      const m = this.wmask[off];
      this.config[off] = ((this.config[off] & ~m) | (b & m)) & ~(b & this.w1cmask[off]);
    }
    const end = offset + size;
    if (offset < 0x28 && end > R.PCI_COMMAND) this.updateBars();
    if (offset <= R.PCI_COMMAND + 1 && end > R.PCI_COMMAND) this.updateIntx();
    if (this.msiCap && offset < this.msiCap + 24 && end > this.msiCap) {
      if (msiEnabledBefore !== this.msiEnabled) this.updateIntx();
      this.msiUnmasked();
    }
    if (this.msixCap && offset < this.msixCap + 4 && end > this.msixCap + 2) {
      if (msixCtlBefore !== this.config[this.msixCap + 3]) this.updateIntx();
      this.msixUnmasked();
    }
    this.options.onConfigWrite?.(offset, size, value);
  }

  // ---- state ----
  saveState(): PciDeviceState {
    return {
      version: 1,
      vendorId: this.get(R.PCI_VENDOR_ID, 2),
      deviceId: this.get(R.PCI_DEVICE_ID, 2),
      config: Array.from(this.config),
      msixTable: Array.from(this.msixTable),
      msixPba: Array.from(this.msixPba),
      intxLevel: this.intxLevel,
    };
  }

  /**
   * Loads a saved state (validated: throws DeviceStateError). Only what the guest can change is
   * taken from it (writable and write-1-to-clear bits, MSI pending bits); IDs, BAR types and the
   * capability list stay this device's. BAR decoding and INTx are re-applied.
   */
  loadState(state: unknown): void {
    const r = new StateReader(state, this.name, 1);
    if (r.int('vendorId', 0, 0xffff) !== this.get(R.PCI_VENDOR_ID, 2) || r.int('deviceId', 0, 0xffff) !== this.get(R.PCI_DEVICE_ID, 2)) {
      throw new DeviceStateError(`${this.name}: saved state is for another device`);
    }
    const config = r.ints('config', this.config.length, 0, 255);
    const table = r.ints('msixTable', this.msixTable.length, 0, 255);
    const pba = r.ints('msixPba', this.msixPba.length, 0, 255);
    const intx = r.bool('intxLevel');
    for (let off = 0; off < this.config.length; off++) {
      let m = this.wmask[off] | this.w1cmask[off];
      if (this.msiCap && this.msiMask && off >= this.msiCap + 20 && off < this.msiCap + 24) m = 0xff;
      this.config[off] = (this.config[off] & ~m) | (config[off] & m);
    }
    for (let k = 0; k < table.length; k++) this.msixTable[k] = (k & 15) === 12 ? table[k] & 1 : (k & 15) > 12 ? 0 : table[k];
    this.msixPba.set(pba);
    this.intxLevel = intx;
    for (const bar of this.barState) this.unmap(bar);
    this.updateBars();
    this.updateIntx();
  }

  // ---- BAR decoding ----
  /** Current bus address of BAR `index` as programmed (whether or not decoding is on). */
  barAddress(index: number): number {
    const spec = this.bars.find((b) => b.index === index);
    if (spec === undefined) return -1;
    const off = R.PCI_BASE_ADDRESS_0 + 4 * index;
    const lo = this.get(off, 4);
    if (spec.type === 'io') return lo & 0xfffffffc;
    const base = (lo & 0xfffffff0) >>> 0;
    return spec.type === 'mem64' ? base + this.get(off + 4, 4) * 2 ** 32 : base;
  }

  /** Where BAR `index` is decoded now, or -1. */
  barMapped(index: number): number {
    const s = this.barState.find((b) => b.spec.index === index);
    return s ? s.mapped : -1;
  }

  get command(): number {
    return this.get(R.PCI_COMMAND, 2);
  }

  private updateBars(): void {
    const ctx = this.context;
    if (ctx == null) return;
    const cmd = this.command;
    for (const bar of this.barState) {
      const io = bar.spec.type === 'io';
      const addr = this.barAddress(bar.spec.index);
      const size = bar.spec.size;
      const on = (cmd & (io ? R.PCI_COMMAND_IO : R.PCI_COMMAND_MEMORY)) !== 0;
      const fits = io ? addr + size <= 0x10000 : addr + size <= MMIO_ADDRESS_LIMIT;
      const target = on && addr !== 0 && fits ? addr : -1;
      if (target === bar.mapped) continue;
      this.unmap(bar);
      if (target < 0) continue;
      const ok = io ? ctx.pio.tryRegister(target, size, bar.device as PortIoDevice, `${this.name} BAR${bar.spec.index}`) : ctx.mmio.tryRegister(target, size, bar.device as MmioDevice, `${this.name} BAR${bar.spec.index}`);
      if (ok) bar.mapped = target;
      else this.barConflicts++;
    }
  }

  private unmap(bar: BarState): void {
    if (bar.mapped < 0 || this.context == null) return;
    if (bar.spec.type === 'io') this.context.pio.unregister(bar.mapped);
    else this.context.mmio.unregister(bar.mapped);
    bar.mapped = -1;
  }

  // ---- INTx ----
  /** Drives this function's INTx pin (suppressed by INTX_DISABLE and while MSI/MSI-X is on). */
  setIntx(level: boolean): void {
    this.intxLevel = level;
    this.updateIntx();
  }

  private updateIntx(): void {
    if (this.intxLevel) this.config[R.PCI_STATUS] |= R.PCI_STATUS_INTERRUPT;
    else this.config[R.PCI_STATUS] &= ~R.PCI_STATUS_INTERRUPT;
    const on = this.intxLevel && (this.command & R.PCI_COMMAND_INTX_DISABLE) === 0 && !this.msiEnabled && !this.msixEnabled;
    this.context?.intx.setLevel(on);
  }

  // ---- MSI ----
  get msiEnabled(): boolean {
    return this.msiCap !== 0 && (this.config[this.msiCap + 2] & R.PCI_MSI_FLAGS_ENABLE) !== 0;
  }

  get msixEnabled(): boolean {
    return this.msixCap !== 0 && (this.config[this.msixCap + 3] & 0x80) !== 0;
  }

  private get busMaster(): boolean {
    return (this.config[R.PCI_COMMAND] & R.PCI_COMMAND_MASTER) !== 0;
  }

  /**
   * Signals interrupt `vector` by MSI-X if enabled, else MSI if enabled. Returns false when
   * neither is enabled (the device should use INTx). A masked vector becomes pending.
   */
  notify(vector: number): boolean {
    if (this.msixEnabled) {
      this.msixNotify(vector);
      return true;
    }
    if (this.msiEnabled) {
      this.msiNotify(vector);
      return true;
    }
    return false;
  }

  private msiEnabledCount(): number {
    const mme = (this.config[this.msiCap + 2] >> 4) & 7;
    return Math.min(1 << mme, this.msiVectors);
  }

  private msiNotify(vector: number): void {
    const c = this.msiCap;
    if (vector < 0 || vector >= this.msiEnabledCount()) {
      this.droppedMessages++;
      return;
    }
    if (this.msiMask && (this.get(c + 16, 4) >>> vector) & 1) {
      this.set32(c + 20, this.get(c + 20, 4) | (1 << vector));
      return;
    }
    this.msiSend(vector);
  }

  private msiSend(vector: number): void {
    const c = this.msiCap;
    if (!this.busMaster || this.context == null) {
      this.droppedMessages++;
      return;
    }
    const n = this.msiEnabledCount();
    const data = (this.get(c + 12, 2) & ~(n - 1)) | vector;
    this.context.interrupts.deliverMsi(this.get(c + 4, 4), this.get(c + 8, 4), data);
  }

  private msiUnmasked(): void {
    if (!this.msiMask || !this.msiEnabled) return;
    const c = this.msiCap;
    let pending = this.get(c + 20, 4);
    const mask = this.get(c + 16, 4);
    const deliver = pending & ~mask;
    if (deliver === 0) return;
    pending &= ~deliver;
    this.set32(c + 20, pending);
    for (let v = 0; v < 32; v++) if ((deliver >>> v) & 1) this.msiSend(v);
  }

  // ---- MSI-X ----
  private entry32(vector: number, word: number): number {
    const o = vector * 16 + word * 4;
    const t = this.msixTable;
    return (t[o] | (t[o + 1] << 8) | (t[o + 2] << 16) | (t[o + 3] << 24)) >>> 0;
  }

  private get msixFunctionMasked(): boolean {
    return (this.config[this.msixCap + 3] & 0x40) !== 0;
  }

  private msixNotify(vector: number): void {
    if (vector < 0 || vector >= this.msixVectors) {
      this.droppedMessages++;
      return;
    }
    if (this.msixFunctionMasked || this.entry32(vector, 3) & 1) {
      this.msixPba[vector >> 3] |= 1 << (vector & 7);
      return;
    }
    this.msixSend(vector);
  }

  private msixSend(vector: number): void {
    if (!this.busMaster || this.context == null) {
      this.droppedMessages++;
      return;
    }
    this.context.interrupts.deliverMsi(this.entry32(vector, 0), this.entry32(vector, 1), this.entry32(vector, 2));
  }

  private msixUnmasked(): void {
    if (!this.msixEnabled || this.msixFunctionMasked) return;
    for (let v = 0; v < this.msixVectors; v++) {
      const bit = 1 << (v & 7);
      if (this.msixPba[v >> 3] & bit && (this.entry32(v, 3) & 1) === 0) {
        this.msixPba[v >> 3] &= ~bit;
        this.msixSend(v);
      }
    }
  }

  /** Whether MSI-X vector `vector` is pending (PBA bit). */
  msixPending(vector: number): boolean {
    return vector >= 0 && vector < this.msixVectors && (this.msixPba[vector >> 3] & (1 << (vector & 7))) !== 0;
  }

  /** The BAR handler for the MSI-X BAR: table and PBA intercepted, the rest passed on. */
  private msixRouter(inner: MmioDevice | undefined): MmioDevice {
    const tableStart = this.msixTableOffset;
    const tableEnd = tableStart + this.msixTable.length;
    const pbaStart = this.msixPbaOffset;
    const pbaEnd = pbaStart + this.msixPba.length;
    return {
      mmioRead: (offset: number, size: number): number => {
        if (offset >= tableStart && offset + size <= tableEnd) return readLe(this.msixTable, offset - tableStart, size);
        if (offset >= pbaStart && offset + size <= pbaEnd) return readLe(this.msixPba, offset - pbaStart, size);
        if ((offset >= tableStart && offset < tableEnd) || (offset >= pbaStart && offset < pbaEnd)) return 0;
        return inner ? inner.mmioRead(offset, size) : 0;
      },
      mmioWrite: (offset: number, size: number, value: number): void => {
        if (offset >= tableStart && offset + size <= tableEnd) {
          const rel = offset - tableStart;
          for (let i = 0; i < size; i++) {
            const o = rel + i;
            let b = (value >>> (8 * i)) & 0xff;
            if ((o & 15) === 12) b &= 1; // vector control: only the mask bit
            else if ((o & 15) > 12) b = 0;
            this.msixTable[o] = b;
          }
          this.msixUnmasked();
          return;
        }
        if ((offset >= tableStart && offset < tableEnd) || (offset >= pbaStart && offset < pbaEnd)) return; // PBA is read-only
        inner?.mmioWrite(offset, size, value);
      },
    };
  }
}

const ZERO_MMIO: MmioDevice = { mmioRead: (): number => 0, mmioWrite: (): void => {} };

function readLe(a: Uint8Array, off: number, size: number): number {
  let v = 0;
  for (let i = 0; i < size; i++) v |= a[off + i] << (8 * i);
  return v >>> 0;
}

function isPow2(n: number): boolean {
  return n > 0 && 2 ** Math.round(Math.log2(n)) === n;
}

function hex4(n: number): string {
  return n.toString(16).padStart(4, '0');
}
