import type { GuestMemory } from '@ringzero/mmu-ept';
import { F_ANY_LAYOUT, NO_VECTOR } from './constants';
import type { VirtioCoreState } from './core';
import { VirtioCore } from './core';
import { stateBytes, stateFail, stateGuard, stateHeader, stateInt, stateWords, VIRTIO_STATE_VERSION } from './state';
import type { VirtioDevice } from './device';

/** One BAR of a PCI function, as data for the machine's PCI bus. */
export interface PciBar {
  /** BAR number 0..5 (a 64-bit BAR also occupies index + 1). */
  readonly index: number;
  /** Size in bytes, a power of two. */
  readonly size: number;
  readonly kind: 'mmio' | 'io';
  readonly is64: boolean;
  readonly prefetchable: boolean;
}

/** Options of a virtio-pci function. */
/** A virtio-pci function with its device, as a versioned plain object. */
export interface VirtioPciState {
  version: number;
  kind: 'virtio-pci';
  core: VirtioCoreState;
  /** The 256 bytes of configuration space (BAR addresses, command, MSI-X control...). */
  config: number[];
  isr: number;
  /** MSI-X table: per vector addr lo, addr hi, data, control. */
  msixTable: number[];
  msixPba: number[];
  legacyPfn: number[];
  device: object;
}

export interface VirtioPciOptions {
  /** Delivers an MSI-X message (the machine writes `data` to address hi:lo, i.e. to the local APIC). */
  msi: (addressLo: number, addressHi: number, data: number) => void;
  /** The INTx line (pin A), used when MSI-X is disabled. */
  intx?: (level: boolean) => void;
  /** Also expose the legacy (virtio 0.9.5) I/O BAR so legacy drivers work (default true). */
  transitional?: boolean;
  /** Offer VIRTIO_F_RING_PACKED (default true). */
  packed?: boolean;
  /** Offer VIRTIO_F_IN_ORDER when the device supports it (default false, as QEMU's in_order=off). */
  inOrder?: boolean;
  /**
   * Offer VIRTIO_F_SR_IOV (feature 37): the function is an SR-IOV physical function whose
   * SR-IOV capability the machine adds in PCI Express extended configuration space. Default false.
   */
  sriov?: boolean;
}

export const PCI_VENDOR_VIRTIO = 0x1af4;
/** Modern device ID = 0x1040 + virtio device ID. */
export const PCI_DEVICE_MODERN_BASE = 0x1040;
/** Transitional PCI device IDs by virtio device ID (net, blk, balloon, console, scsi, rng, 9p). */
const LEGACY_DEVICE_ID: Readonly<Record<number, number>> = { 1: 0x1000, 2: 0x1001, 5: 0x1002, 3: 0x1003, 8: 0x1004, 4: 0x1005, 9: 0x1009 };
/** PCI class code (class << 16 | subclass << 8 | prog-if) by virtio device ID. */
const CLASS_CODE: Readonly<Record<number, number>> = { 1: 0x020000, 2: 0x010000, 3: 0x078000, 4: 0x00ff00, 5: 0x00ff00 };

// virtio-pci vendor capability types (virtio 1.x §4.1.4).
export const PCI_CAP_COMMON_CFG = 1;
export const PCI_CAP_NOTIFY_CFG = 2;
export const PCI_CAP_ISR_CFG = 3;
export const PCI_CAP_DEVICE_CFG = 4;
export const PCI_CAP_PCI_CFG = 5;

/*
 * BAR layout (as data; QEMU uses the same BAR numbers):
 *   BAR0  I/O, legacy interface (transitional only), 64 or 128 bytes
 *   BAR1  32-bit MMIO 4 KiB: MSI-X table at 0x000 (16 bytes per vector), PBA at 0x800
 *   BAR4  64-bit prefetchable MMIO 16 KiB:
 *         0x0000 common config (56 bytes, v1.1 layout)   0x1000 ISR (1 byte, read clears)
 *         0x2000 device config                          0x3000 notify, 4 bytes per queue
 *                                                        (queue_notify_off = index, multiplier 4)
 * Config space capabilities: 0x40 MSI-X, 0x4C common, 0x5C notify, 0x70 ISR, 0x80 device,
 * 0x90 PCI config access (20 bytes).
 */
export const BAR_LEGACY = 0;
export const BAR_MSIX = 1;
export const BAR_MODERN = 4;
export const MODERN_COMMON = 0x0000;
export const MODERN_ISR = 0x1000;
export const MODERN_DEVICE = 0x2000;
export const MODERN_NOTIFY = 0x3000;
export const NOTIFY_OFF_MULTIPLIER = 4;
export const MSIX_TABLE = 0x000;
export const MSIX_PBA = 0x800;
const MODERN_BAR_SIZE = 0x4000;
const MSIX_BAR_SIZE = 0x1000;
const CAP_MSIX = 0x40;
const CAP_COMMON = 0x4c;
const CAP_NOTIFY = 0x5c;
const CAP_ISR = 0x70;
const CAP_DEVICE = 0x80;
const CAP_PCI_CFG = 0x90;

// Common configuration structure offsets (virtio 1.x §4.1.4.3).
export const COMMON_DFSELECT = 0x00;
export const COMMON_DF = 0x04;
export const COMMON_GFSELECT = 0x08;
export const COMMON_GF = 0x0c;
export const COMMON_MSIX = 0x10;
export const COMMON_NUMQ = 0x12;
export const COMMON_STATUS = 0x14;
export const COMMON_CFGGENERATION = 0x15;
export const COMMON_Q_SELECT = 0x16;
export const COMMON_Q_SIZE = 0x18;
export const COMMON_Q_MSIX = 0x1a;
export const COMMON_Q_ENABLE = 0x1c;
export const COMMON_Q_NOFF = 0x1e;
export const COMMON_Q_DESCLO = 0x20;
export const COMMON_Q_DESCHI = 0x24;
export const COMMON_Q_AVAILLO = 0x28;
export const COMMON_Q_AVAILHI = 0x2c;
export const COMMON_Q_USEDLO = 0x30;
export const COMMON_Q_USEDHI = 0x34;
const COMMON_SIZE = 0x38;

// Legacy I/O BAR registers (virtio 0.9.5 / virtio 1.x §4.1.4.10).
export const LEGACY_HOST_FEATURES = 0x00;
export const LEGACY_GUEST_FEATURES = 0x04;
export const LEGACY_QUEUE_PFN = 0x08;
export const LEGACY_QUEUE_NUM = 0x0c;
export const LEGACY_QUEUE_SEL = 0x0e;
export const LEGACY_QUEUE_NOTIFY = 0x10;
export const LEGACY_STATUS = 0x12;
export const LEGACY_ISR = 0x13;
/** With MSI-X enabled: config vector at 0x14, queue vector at 0x16, device config from 0x18. */
export const LEGACY_MSIX_CONFIG = 0x14;
export const LEGACY_MSIX_QUEUE = 0x16;
const LEGACY_PAGE = 4096;

// PCI header registers used here.
const PCI_COMMAND = 0x04;
const PCI_COMMAND_INTX_DISABLE = 0x400;
const MSIX_ENABLE = 0x8000;
const MSIX_MASKALL = 0x4000;

/**
 * A virtio-pci function (virtio 1.x §4.1): 256 bytes of PCI configuration space with the
 * vendor capabilities, the BARs as data, BAR access handlers, MSI-X with a table and pending
 * bits, INTx + ISR when MSI-X is off, and (transitional) the legacy I/O interface.
 *
 * The machine owns the PCI bus: it calls configRead/configWrite for this function's config
 * space, reads the programmed BAR addresses with barAddress(), and routes guest accesses that
 * hit a BAR to barRead/barWrite with the offset inside the BAR.
 */
export class VirtioPci {
  readonly core: VirtioCore;
  readonly bars: readonly PciBar[];
  /** Configuration space as the guest sees it. */
  readonly config: Uint8Array = new Uint8Array(256);
  /** ISR status (bit 0 queue, bit 1 config); read clears. */
  isr = 0;
  readonly msixVectors: number;
  /** MSI-X table: per vector addr lo, addr hi, data, vector control (bit 0 masked). */
  readonly msixTable: Uint32Array;
  readonly msixPba: Uint32Array;
  private readonly wmask: Uint8Array = new Uint8Array(256);
  private readonly msi: (lo: number, hi: number, data: number) => void;
  private readonly intx: (level: boolean) => void;
  private intxLevel = false;
  private readonly legacyPfn: Uint32Array;
  private readonly legacySize: number;
  private readonly view: DataView;

  constructor(device: VirtioDevice, mem: GuestMemory, opts: VirtioPciOptions) {
    this.msi = opts.msi;
    this.intx = opts.intx ?? ((): void => undefined);
    const legacyId = LEGACY_DEVICE_ID[device.deviceId];
    const transitional = (opts.transitional ?? true) && legacyId !== undefined;
    this.core = new VirtioCore(device, mem, this, { packed: opts.packed ?? true, inOrder: opts.inOrder ?? false, sriov: opts.sriov ?? false });
    this.msixVectors = device.queueCount + 1;
    this.msixTable = new Uint32Array(4 * this.msixVectors);
    this.msixPba = new Uint32Array(Math.ceil(this.msixVectors / 32));
    this.legacyPfn = new Uint32Array(device.queueCount);
    let legacySize = 32;
    while (legacySize < 0x18 + device.configSize) legacySize *= 2;
    this.legacySize = transitional ? legacySize : 0;
    const bars: PciBar[] = [];
    if (transitional) bars.push({ index: BAR_LEGACY, size: legacySize, kind: 'io', is64: false, prefetchable: false });
    bars.push({ index: BAR_MSIX, size: MSIX_BAR_SIZE, kind: 'mmio', is64: false, prefetchable: false });
    bars.push({ index: BAR_MODERN, size: MODERN_BAR_SIZE, kind: 'mmio', is64: true, prefetchable: true });
    this.bars = bars;
    this.view = new DataView(this.config.buffer);
    this.buildConfig(device, transitional ? legacyId : PCI_DEVICE_MODERN_BASE + device.deviceId, transitional);
    for (let v = 0; v < this.msixVectors; v++) this.msixTable[4 * v + 3] = 1;
  }

  private buildConfig(device: VirtioDevice, pciDeviceId: number, transitional: boolean): void {
    const v = this.view;
    const m = this.wmask;
    v.setUint16(0x00, PCI_VENDOR_VIRTIO, true);
    v.setUint16(0x02, pciDeviceId, true);
    v.setUint16(0x06, 0x0010, true); // status: capability list
    v.setUint8(0x08, transitional ? 0 : 1); // revision
    const cls = CLASS_CODE[device.deviceId] ?? 0xff0000;
    v.setUint8(0x09, cls & 0xff);
    v.setUint8(0x0a, (cls >>> 8) & 0xff);
    v.setUint8(0x0b, cls >>> 16);
    v.setUint16(0x2c, PCI_VENDOR_VIRTIO, true);
    v.setUint16(0x2e, device.deviceId, true);
    v.setUint8(0x34, CAP_MSIX);
    v.setUint8(0x3d, 1); // interrupt pin A
    m[0x3c] = 0xff; // interrupt line
    m[0x0c] = 0xff; // cache line size
    m[0x0d] = 0xff; // latency timer
    m[PCI_COMMAND] = 0x07; // I/O, memory, bus master
    m[PCI_COMMAND + 1] = 0x04; // INTx disable
    for (const bar of this.bars) {
      const reg = 0x10 + 4 * bar.index;
      const flags = bar.kind === 'io' ? 1 : (bar.is64 ? 4 : 0) | (bar.prefetchable ? 8 : 0);
      v.setUint32(reg, flags, true);
      const mask = (~(bar.size - 1) & (bar.kind === 'io' ? ~3 : ~0xf)) >>> 0;
      for (let i = 0; i < 4; i++) m[reg + i] = (mask >>> (8 * i)) & 0xff;
      if (bar.is64) for (let i = 4; i < 8; i++) m[reg + i] = 0xff;
    }
    // MSI-X capability.
    v.setUint8(CAP_MSIX, 0x11);
    v.setUint8(CAP_MSIX + 1, CAP_COMMON);
    v.setUint16(CAP_MSIX + 2, this.msixVectors - 1, true);
    m[CAP_MSIX + 3] = 0xc0; // enable, function mask
    v.setUint32(CAP_MSIX + 4, MSIX_TABLE | BAR_MSIX, true);
    v.setUint32(CAP_MSIX + 8, MSIX_PBA | BAR_MSIX, true);
    // Vendor capabilities.
    const cap = (at: number, next: number, len: number, type: number, bar: number, offset: number, length: number): void => {
      v.setUint8(at, 0x09);
      v.setUint8(at + 1, next);
      v.setUint8(at + 2, len);
      v.setUint8(at + 3, type);
      v.setUint8(at + 4, bar);
      v.setUint32(at + 8, offset, true);
      v.setUint32(at + 12, length, true);
    };
    cap(CAP_COMMON, CAP_NOTIFY, 16, PCI_CAP_COMMON_CFG, BAR_MODERN, MODERN_COMMON, COMMON_SIZE);
    cap(CAP_NOTIFY, CAP_ISR, 20, PCI_CAP_NOTIFY_CFG, BAR_MODERN, MODERN_NOTIFY, Math.max(4, NOTIFY_OFF_MULTIPLIER * device.queueCount));
    v.setUint32(CAP_NOTIFY + 16, NOTIFY_OFF_MULTIPLIER, true);
    cap(CAP_ISR, CAP_DEVICE, 16, PCI_CAP_ISR_CFG, BAR_MODERN, MODERN_ISR, 4);
    cap(CAP_DEVICE, CAP_PCI_CFG, 16, PCI_CAP_DEVICE_CFG, BAR_MODERN, MODERN_DEVICE, Math.max(4, device.configSize));
    cap(CAP_PCI_CFG, 0, 20, PCI_CAP_PCI_CFG, 0, 0, 0);
    m[CAP_PCI_CFG + 4] = 0xff; // bar
    for (let i = 8; i < 20; i++) m[CAP_PCI_CFG + i] = 0xff; // offset, length, data
  }

  // ---- state ----------------------------------------------------------------------------

  /** Everything a snapshot needs to bring this function and its device back: a versioned plain object, JSON-safe. */
  saveState(): VirtioPciState {
    return {
      version: VIRTIO_STATE_VERSION,
      kind: 'virtio-pci',
      core: this.core.saveState(),
      config: Array.from(this.config),
      isr: this.isr,
      msixTable: Array.from(this.msixTable),
      msixPba: Array.from(this.msixPba),
      legacyPfn: Array.from(this.legacyPfn),
      device: this.core.saveDeviceState(),
    };
  }

  /**
   * Restores a saveState() object into this function (same device configuration, guest memory
   * already holding the saved RAM). Read-only configuration bytes must match this function's;
   * everything is checked before anything changes (VirtioStateError otherwise). Then INTx is
   * re-driven and the device resumes serving its queues.
   */
  restoreState(v: unknown): void {
    const plan = stateGuard('virtio-pci state', () => {
      const o = stateHeader(v, 'state', 'virtio-pci');
      const core = this.core.prepareRestore(o.core, 'state.core');
      const config = stateBytes(o.config, 'state.config', 256, 256);
      for (let i = 0; i < 256; i++) {
        if (((config[i] ^ this.config[i]) & ~this.wmask[i] & 0xff) !== 0) stateFail(`state.config[0x${i.toString(16)}]`, 'changes read-only bits (another device or configuration)');
      }
      const isr = stateInt(o.isr, 'state.isr', 0, 3);
      const msixTable = stateWords(o.msixTable, 'state.msixTable', this.msixTable.length);
      const msixPba = stateWords(o.msixPba, 'state.msixPba', this.msixPba.length);
      const legacyPfn = stateWords(o.legacyPfn, 'state.legacyPfn', this.legacyPfn.length);
      const device = this.core.prepareDeviceRestore(o.device, 'state.device', core.rc);
      return { core, config, isr, msixTable, msixPba, legacyPfn, device };
    });
    plan.core.apply();
    this.config.set(plan.config);
    this.isr = plan.isr;
    this.msixTable.set(plan.msixTable);
    this.msixPba.set(plan.msixPba);
    this.legacyPfn.set(plan.legacyPfn);
    plan.device();
    this.intxLevel = false;
    this.updateIntx();
    this.core.resume();
  }

  // ---- configuration space --------------------------------------------------------------

  /** Reads `size` (1, 2 or 4) bytes of configuration space at `offset`; 0xffffffff-style garbage never, 0 outside. */
  configRead(offset: number, size: number): number {
    if (offset < 0 || offset + size > 256 || (size !== 1 && size !== 2 && size !== 4)) return 0;
    if (offset >= CAP_PCI_CFG + 16 && offset < CAP_PCI_CFG + 20) this.pciCfgAccess(false);
    let v = 0;
    for (let i = size - 1; i >= 0; i--) v = v * 256 + this.config[offset + i];
    return v >>> 0;
  }

  /** Writes configuration space; read-only bits keep their value. */
  configWrite(offset: number, size: number, value: number): void {
    if (offset < 0 || offset + size > 256 || (size !== 1 && size !== 2 && size !== 4)) return;
    const msixBefore = this.view.getUint16(CAP_MSIX + 2, true);
    for (let i = 0; i < size; i++) {
      const o = offset + i;
      const b = (value >>> (8 * i)) & 0xff;
      this.config[o] = (this.config[o] & ~this.wmask[o]) | (b & this.wmask[o]);
    }
    if (offset <= CAP_MSIX + 3 && offset + size > CAP_MSIX + 2) {
      const after = this.view.getUint16(CAP_MSIX + 2, true);
      if (after !== msixBefore) this.deliverPending();
    }
    if (offset < PCI_COMMAND + 2 && offset + size > PCI_COMMAND) this.updateIntx();
    if (offset >= CAP_PCI_CFG + 16 && offset < CAP_PCI_CFG + 20) this.pciCfgAccess(true);
  }

  /** The VIRTIO_PCI_CAP_PCI_CFG window: an access to pci_cfg_data goes to BAR `bar` at `offset`. */
  private pciCfgAccess(write: boolean): void {
    const v = this.view;
    const bar = v.getUint8(CAP_PCI_CFG + 4);
    const off = v.getUint32(CAP_PCI_CFG + 8, true);
    const len = v.getUint32(CAP_PCI_CFG + 12, true);
    if (len !== 1 && len !== 2 && len !== 4) return;
    if (write) this.barWrite(bar, off, len, v.getUint32(CAP_PCI_CFG + 16, true));
    else v.setUint32(CAP_PCI_CFG + 16, this.barRead(bar, off, len), true);
  }

  /** The guest-physical (or port) base address the guest programmed into BAR `index`; 0 if none. */
  barAddress(index: number): number {
    const bar = this.bars.find((b) => b.index === index);
    if (bar === undefined) return 0;
    const lo = this.view.getUint32(0x10 + 4 * index, true);
    const base = (lo & (bar.kind === 'io' ? ~3 : ~0xf)) >>> 0;
    return bar.is64 ? this.view.getUint32(0x14 + 4 * index, true) * 0x1_0000_0000 + base : base;
  }

  get msixEnabled(): boolean {
    return (this.view.getUint16(CAP_MSIX + 2, true) & MSIX_ENABLE) !== 0;
  }

  // ---- interrupts -------------------------------------------------------------------------

  /** InterruptSink: MSI-X message when enabled, otherwise ISR + INTx. */
  raise(isrBits: number, vector: number): void {
    if (this.msixEnabled) {
      if (vector === NO_VECTOR || vector >= this.msixVectors) return;
      this.fireVector(vector);
      return;
    }
    this.isr |= isrBits;
    this.updateIntx();
  }

  private fireVector(vector: number): void {
    const ctrl = this.view.getUint16(CAP_MSIX + 2, true);
    const t = this.msixTable;
    if ((ctrl & MSIX_MASKALL) !== 0 || (t[4 * vector + 3] & 1) !== 0) {
      this.msixPba[vector >>> 5] |= 1 << (vector & 31);
      return;
    }
    this.msi(t[4 * vector], t[4 * vector + 1], t[4 * vector + 2]);
  }

  private deliverPending(): void {
    if (!this.msixEnabled) return;
    for (let v = 0; v < this.msixVectors; v++) {
      const bit = 1 << (v & 31);
      if ((this.msixPba[v >>> 5] & bit) === 0) continue;
      const ctrl = this.view.getUint16(CAP_MSIX + 2, true);
      if ((ctrl & MSIX_MASKALL) !== 0 || (this.msixTable[4 * v + 3] & 1) !== 0) continue;
      this.msixPba[v >>> 5] &= ~bit;
      this.fireVector(v);
    }
  }

  private updateIntx(): void {
    const disabled = (this.view.getUint16(PCI_COMMAND, true) & PCI_COMMAND_INTX_DISABLE) !== 0;
    const level = this.isr !== 0 && !disabled && !this.msixEnabled;
    if (level !== this.intxLevel) {
      this.intxLevel = level;
      this.intx(level);
    }
  }

  private readIsr(): number {
    const v = this.isr;
    this.isr = 0;
    this.updateIntx();
    return v;
  }

  // ---- BARs -------------------------------------------------------------------------------

  /** A guest read of `size` bytes at `offset` inside BAR `bar`. Unmapped bytes read 0. */
  barRead(bar: number, offset: number, size: number): number {
    if (size !== 1 && size !== 2 && size !== 4) return 0;
    if (bar === BAR_MODERN) {
      if (offset < MODERN_COMMON + COMMON_SIZE) return this.commonRead(offset, size);
      if (offset >= MODERN_ISR && offset < MODERN_ISR + 4) return offset === MODERN_ISR ? this.readIsr() : 0;
      if (offset >= MODERN_DEVICE && offset < MODERN_DEVICE + 0x1000) return this.core.readConfig(offset - MODERN_DEVICE, size);
      return 0;
    }
    if (bar === BAR_MSIX) {
      if (size !== 4 || (offset & 3) !== 0) return 0;
      if (offset >= MSIX_TABLE && offset < MSIX_TABLE + 16 * this.msixVectors) return this.msixTable[(offset - MSIX_TABLE) >>> 2];
      if (offset >= MSIX_PBA && offset < MSIX_PBA + 4 * this.msixPba.length) return this.msixPba[(offset - MSIX_PBA) >>> 2];
      return 0;
    }
    if (bar === BAR_LEGACY && this.legacySize > 0) return this.legacyRead(offset, size);
    return 0;
  }

  /** A guest write of `size` bytes at `offset` inside BAR `bar`. */
  barWrite(bar: number, offset: number, size: number, value: number): void {
    if (size !== 1 && size !== 2 && size !== 4) return;
    value >>>= 0;
    if (bar === BAR_MODERN) {
      if (offset < MODERN_COMMON + COMMON_SIZE) return this.commonWrite(offset, size, value);
      if (offset >= MODERN_DEVICE && offset < MODERN_DEVICE + 0x1000) return this.core.writeConfig(offset - MODERN_DEVICE, size, value);
      if (offset >= MODERN_NOTIFY && offset < MODERN_NOTIFY + NOTIFY_OFF_MULTIPLIER * this.core.queueCount && (offset & 3) === 0) {
        this.core.notify((offset - MODERN_NOTIFY) >>> 2);
      }
      return;
    }
    if (bar === BAR_MSIX) {
      if (size !== 4 || (offset & 3) !== 0) return;
      if (offset >= MSIX_TABLE && offset < MSIX_TABLE + 16 * this.msixVectors) {
        const i = (offset - MSIX_TABLE) >>> 2;
        this.msixTable[i] = (i & 3) === 3 ? value & 1 : value;
        if ((i & 3) === 3) this.deliverPending();
      }
      return;
    }
    if (bar === BAR_LEGACY && this.legacySize > 0) this.legacyWrite(offset, size, value);
  }

  private commonRead(offset: number, size: number): number {
    const c = this.core;
    if (size === 4) {
      switch (offset) {
        case COMMON_DFSELECT:
          return c.deviceFeatureSel;
        case COMMON_DF:
          return c.deviceFeatures(c.deviceFeatureSel);
        case COMMON_GFSELECT:
          return c.driverFeatureSel;
        case COMMON_GF:
          return c.driverFeatures(c.driverFeatureSel);
        case COMMON_Q_DESCLO:
          return c.queueAddr(0, 0);
        case COMMON_Q_DESCHI:
          return c.queueAddr(0, 1);
        case COMMON_Q_AVAILLO:
          return c.queueAddr(1, 0);
        case COMMON_Q_AVAILHI:
          return c.queueAddr(1, 1);
        case COMMON_Q_USEDLO:
          return c.queueAddr(2, 0);
        case COMMON_Q_USEDHI:
          return c.queueAddr(2, 1);
      }
      return 0;
    }
    if (size === 2) {
      switch (offset) {
        case COMMON_MSIX:
          return c.configVector;
        case COMMON_NUMQ:
          return c.queueCount;
        case COMMON_Q_SELECT:
          return c.queueSel;
        case COMMON_Q_SIZE:
          return c.queueSize();
        case COMMON_Q_MSIX:
          return c.queueVector();
        case COMMON_Q_ENABLE:
          return c.queueReady();
        case COMMON_Q_NOFF:
          return c.queueSel < c.queueCount ? c.queueSel : 0;
      }
      return 0;
    }
    if (offset === COMMON_STATUS) return c.getStatus();
    if (offset === COMMON_CFGGENERATION) return c.configGeneration;
    return 0;
  }

  private vectorOrNone(v: number): number {
    return v < this.msixVectors ? v : NO_VECTOR;
  }

  private commonWrite(offset: number, size: number, value: number): void {
    const c = this.core;
    if (size === 4) {
      switch (offset) {
        case COMMON_DFSELECT:
          c.deviceFeatureSel = value;
          return;
        case COMMON_GFSELECT:
          c.driverFeatureSel = value;
          return;
        case COMMON_GF:
          return c.setDriverFeatures(c.driverFeatureSel, value);
        case COMMON_Q_DESCLO:
          return c.setQueueAddr(0, 0, value);
        case COMMON_Q_DESCHI:
          return c.setQueueAddr(0, 1, value);
        case COMMON_Q_AVAILLO:
          return c.setQueueAddr(1, 0, value);
        case COMMON_Q_AVAILHI:
          return c.setQueueAddr(1, 1, value);
        case COMMON_Q_USEDLO:
          return c.setQueueAddr(2, 0, value);
        case COMMON_Q_USEDHI:
          return c.setQueueAddr(2, 1, value);
      }
      return;
    }
    if (size === 2) {
      switch (offset) {
        case COMMON_MSIX:
          c.configVector = this.vectorOrNone(value);
          return;
        case COMMON_Q_SELECT:
          c.queueSel = value;
          return;
        case COMMON_Q_SIZE:
          return c.setQueueSize(value);
        case COMMON_Q_MSIX:
          return c.setQueueVector(this.vectorOrNone(value));
        case COMMON_Q_ENABLE:
          return c.setQueueReady(value & 1);
      }
      return;
    }
    if (offset === COMMON_STATUS) {
      c.setStatus(value);
      if ((value & 0xff) === 0) this.resetTransport();
    }
  }

  private resetTransport(): void {
    this.isr = 0;
    this.legacyPfn.fill(0);
    this.updateIntx();
  }

  // ---- legacy I/O interface -------------------------------------------------------------

  private legacyConfigBase(): number {
    return this.msixEnabled ? 0x18 : 0x14;
  }

  private legacyRead(offset: number, size: number): number {
    const c = this.core;
    const cfg = this.legacyConfigBase();
    if (offset >= cfg) return c.readConfig(offset - cfg, size);
    if (size === 4) {
      // Our devices parse any descriptor layout: say so to legacy drivers (VERSION_1 implies it).
      if (offset === LEGACY_HOST_FEATURES) return (c.deviceFeatures(0) | F_ANY_LAYOUT) >>> 0;
      if (offset === LEGACY_GUEST_FEATURES) return c.driverFeatures(0);
      if (offset === LEGACY_QUEUE_PFN) return c.queueSel < c.queueCount ? this.legacyPfn[c.queueSel] : 0;
      return 0;
    }
    if (size === 2) {
      if (offset === LEGACY_QUEUE_NUM) return c.queueMaxSize();
      if (offset === LEGACY_QUEUE_SEL) return c.queueSel;
      if (offset === LEGACY_MSIX_CONFIG && this.msixEnabled) return c.configVector;
      if (offset === LEGACY_MSIX_QUEUE && this.msixEnabled) return c.queueVector();
      return 0;
    }
    if (offset === LEGACY_STATUS) return c.getStatus();
    if (offset === LEGACY_ISR) return this.readIsr();
    return 0;
  }

  private legacyWrite(offset: number, size: number, value: number): void {
    const c = this.core;
    const cfg = this.legacyConfigBase();
    if (offset >= cfg) return c.writeConfig(offset - cfg, size, value);
    if (size === 4) {
      if (offset === LEGACY_GUEST_FEATURES) {
        c.legacy = true;
        c.setDriverFeatures(0, value & ~F_ANY_LAYOUT);
      } else if (offset === LEGACY_QUEUE_PFN) this.legacySetPfn(value);
      return;
    }
    if (size === 2) {
      if (offset === LEGACY_QUEUE_SEL) c.queueSel = value;
      else if (offset === LEGACY_QUEUE_NOTIFY) c.notify(value);
      else if (offset === LEGACY_MSIX_CONFIG && this.msixEnabled) c.configVector = this.vectorOrNone(value);
      else if (offset === LEGACY_MSIX_QUEUE && this.msixEnabled) c.setQueueVector(this.vectorOrNone(value));
      return;
    }
    if (offset === LEGACY_STATUS) {
      c.setStatus(value);
      if ((value & 0xff) === 0) this.resetTransport();
      else c.legacy = true;
    }
  }

  /** Legacy queue address: a page frame number; the ring layout follows with 4 KiB alignment. */
  private legacySetPfn(pfn: number): void {
    const c = this.core;
    const q = c.queueSel;
    if (q >= c.queueCount) return;
    c.legacy = true;
    if (pfn === 0) {
      this.legacyPfn[q] = 0;
      c.disableQueue(q);
      return;
    }
    if (c.qReady[q] !== 0) {
      c.lastError = `legacy: queue ${q} PFN rewritten while live`;
      return;
    }
    const size = c.device.maxQueueSize;
    c.qSize[q] = size;
    const desc = pfn * LEGACY_PAGE;
    const avail = desc + 16 * size;
    const used = Math.ceil((avail + 6 + 2 * size) / LEGACY_PAGE) * LEGACY_PAGE;
    if (c.enableQueue(q, desc, avail, used)) this.legacyPfn[q] = pfn;
  }
}
