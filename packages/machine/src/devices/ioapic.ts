// Intel 82093AA I/O APIC (datasheet 290566): indirect registers through IOREGSEL (offset 0x00)
// and IOWIN (0x10); 24 redirection entries whose interrupts leave as x86 interrupt messages
// through the InterruptSink (as the APIC bus message would reach the local APICs).
//
// Redirection entry (64 bits): [63:56 destination] ... [16 mask][15 trigger (1 = level)]
// [14 remote IRR][13 polarity][12 delivery status][11 dest mode][10:8 delivery mode][7:0 vector]

import type { EoiTarget, InterruptSink } from '../bus/interrupts';
import type { IrqChip } from '../bus/irq';
import type { MmioDevice } from '../bus/mmio';
import { StateReader } from './state';

/** Saved state of an IOAPIC. */
export interface IoApicState {
  version: 1;
  id: number;
  ioregsel: number;
  lo: number[];
  hi: number[];
  levels: number[];
  latched: number[];
}

export const IOAPIC_REG_ID = 0x00;
export const IOAPIC_REG_VERSION = 0x01;
export const IOAPIC_REG_ARBITRATION = 0x02;
export const IOAPIC_REG_REDIRECTION = 0x10;
/** Size of the IOAPIC's MMIO window (the registers repeat across it). */
export const IOAPIC_MMIO_SIZE = 0x1000;

const RTE_MASK = 1 << 16;
const RTE_LEVEL = 1 << 15;
const RTE_REMOTE_IRR = 1 << 14;
const RTE_DELIVERY_STATUS = 1 << 12;
/** Bits software may write in the low dword (not delivery status or remote IRR). */
const RTE_LO_WRITABLE = 0x1afff;

/** Options of an IOAPIC. */
export interface IoApicOptions {
  /** APIC ID (bits 27:24 of the ID register). Default 0. */
  id?: number;
  /** Number of pins (redirection entries). Default 24. */
  pins?: number;
  /** Version register value: 0x11 for the 82093AA (default), 0x20 adds the EOI register at 0x40. */
  version?: number;
}

/** An IOAPIC. Register it as an MMIO device at the board's base (0xFEC00000 on a PC). */
export class IoApic implements IrqChip, EoiTarget, MmioDevice {
  readonly pins: number;
  readonly version: number;
  id: number;
  ioregsel = 0;
  readonly lo: Uint32Array;
  readonly hi: Uint32Array;
  /** Pin levels, and edge requests latched while masked. */
  private readonly levels: Uint8Array;
  private readonly latched: Uint8Array;

  constructor(
    private readonly sink: InterruptSink,
    options: IoApicOptions = {},
  ) {
    this.pins = Math.max(1, Math.min(240, options.pins ?? 24));
    this.version = options.version ?? 0x11;
    this.id = (options.id ?? 0) & 0xf;
    this.lo = new Uint32Array(this.pins).fill(RTE_MASK);
    this.hi = new Uint32Array(this.pins);
    this.levels = new Uint8Array(this.pins);
    this.latched = new Uint8Array(this.pins);
  }

  reset(): void {
    this.lo.fill(RTE_MASK);
    this.hi.fill(0);
    this.latched.fill(0);
    this.ioregsel = 0;
  }

  saveState(): IoApicState {
    return { version: 1, id: this.id, ioregsel: this.ioregsel, lo: Array.from(this.lo), hi: Array.from(this.hi), levels: Array.from(this.levels), latched: Array.from(this.latched) };
  }

  /** Loads a saved state (validated: throws DeviceStateError); delivers nothing by itself. */
  loadState(state: unknown): void {
    const r = new StateReader(state, 'IoApic', 1);
    const n = this.pins;
    const s = {
      id: r.int('id', 0, 15),
      ioregsel: r.int('ioregsel', 0, 255),
      lo: r.ints('lo', n, 0, 0xffffffff),
      hi: r.ints('hi', n, 0, 0xffffffff),
      levels: r.ints('levels', n, 0, 1),
      latched: r.ints('latched', n, 0, 1),
    };
    this.id = s.id;
    this.ioregsel = s.ioregsel;
    for (let k = 0; k < n; k++) this.lo[k] = s.lo[k] & ~RTE_DELIVERY_STATUS;
    this.hi.set(s.hi);
    this.levels.set(s.levels);
    this.latched.set(s.latched);
  }

  setIrq(pin: number, level: boolean): void {
    if (pin < 0 || pin >= this.pins) return;
    const was = this.levels[pin] !== 0;
    this.levels[pin] = level ? 1 : 0;
    if (this.lo[pin] & RTE_LEVEL) {
      if (level) this.service(pin);
    } else if (level && !was) {
      this.latched[pin] = 1;
      this.service(pin);
    }
  }

  /** Delivers `pin` if it is requesting, unmasked and (for level) not awaiting EOI. */
  private service(pin: number): void {
    const lo = this.lo[pin];
    if (lo & RTE_MASK) return;
    if (lo & RTE_LEVEL) {
      if (this.levels[pin] === 0 || lo & RTE_REMOTE_IRR) return;
      this.lo[pin] = lo | RTE_REMOTE_IRR;
    } else {
      if (this.latched[pin] === 0) return;
      this.latched[pin] = 0;
    }
    const dest = this.hi[pin] >>> 24;
    const address = (0xfee00000 | (dest << 12) | (lo & (1 << 11) ? 1 << 2 : 0)) >>> 0;
    const data = (lo & 0x7ff) | (lo & RTE_LEVEL ? 0xc000 : 0);
    this.sink.deliverMsi(address, 0, data);
  }

  /** The local APIC's EOI broadcast for a level-triggered vector. */
  endOfInterrupt(vector: number): void {
    for (let pin = 0; pin < this.pins; pin++) {
      const lo = this.lo[pin];
      if ((lo & 0xff) === (vector & 0xff) && lo & RTE_REMOTE_IRR) {
        this.lo[pin] = lo & ~RTE_REMOTE_IRR;
        this.service(pin);
      }
    }
  }

  readRegister(index: number): number {
    index &= 0xff;
    if (index === IOAPIC_REG_ID) return this.id << 24;
    if (index === IOAPIC_REG_VERSION) return ((this.pins - 1) << 16) | this.version;
    if (index === IOAPIC_REG_ARBITRATION) return this.id << 24;
    const n = (index - IOAPIC_REG_REDIRECTION) >> 1;
    if (index >= IOAPIC_REG_REDIRECTION && n < this.pins) return index & 1 ? this.hi[n] : this.lo[n] & ~RTE_DELIVERY_STATUS;
    return 0;
  }

  writeRegister(index: number, value: number): void {
    index &= 0xff;
    value >>>= 0;
    if (index === IOAPIC_REG_ID) {
      this.id = (value >>> 24) & 0xf;
      return;
    }
    const n = (index - IOAPIC_REG_REDIRECTION) >> 1;
    if (index < IOAPIC_REG_REDIRECTION || n >= this.pins) return;
    if (index & 1) {
      this.hi[n] = value & 0xff000000;
      return;
    }
    const old = this.lo[n];
    let lo = (old & ~RTE_LO_WRITABLE) | (value & RTE_LO_WRITABLE);
    if (!(lo & RTE_LEVEL)) lo &= ~RTE_REMOTE_IRR; // remote IRR is meaningless for edge
    this.lo[n] = lo >>> 0;
    // Unmasking (or switching to level) delivers what is pending.
    if (lo & RTE_LEVEL) this.service(n);
    else if (this.latched[n]) this.service(n);
  }

  mmioRead(offset: number, size: number): number {
    const reg = offset & 0xff;
    const shift = (offset & 3) * 8;
    let v: number;
    if (reg < 4) v = this.ioregsel;
    else if (reg >= 0x10 && reg < 0x14) v = this.readRegister(this.ioregsel);
    else return 0;
    v = v >>> shift;
    return size === 4 ? v >>> 0 : v & (size === 2 ? 0xffff : 0xff);
  }

  mmioWrite(offset: number, size: number, value: number): void {
    const reg = offset & 0xff;
    if (reg < 4) {
      if ((offset & 3) === 0) this.ioregsel = value & 0xff;
    } else if (reg >= 0x10 && reg < 0x14) {
      if (size === 4 && (offset & 3) === 0) this.writeRegister(this.ioregsel, value);
    } else if (reg === 0x40 && this.version >= 0x20) {
      this.endOfInterrupt(value & 0xff);
    }
  }
}
