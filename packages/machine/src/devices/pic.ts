// Intel 8259A programmable interrupt controller, as the PC's master/slave pair (slave cascaded
// on master IR2), with the PIIX/ICH edge/level control registers (ELCR). Datasheet: Intel 8259A
// (231468); ELCR: Intel 82371AB PIIX4 datasheet 4.1.
//
// Registers per chip (A0 = port offset): write A0=0 with D4=1 is ICW1, D4=0 D3=0 is OCW2,
// D4=0 D3=1 is OCW3; write A0=1 is ICW2..4 during initialization, else OCW1 (IMR).
// Read A0=0 returns IRR or ISR (OCW3 RR/RIS) or the poll word; read A0=1 returns IMR.

import type { ExtIntController, InterruptSink } from '../bus/interrupts';
import type { IrqChip } from '../bus/irq';
import type { PortIoDevice } from '../bus/pio';
import { StateReader } from './state';

/** Saved state of one 8259A. */
export interface Pic8259State {
  irr: number;
  isr: number;
  imr: number;
  lines: number;
  elcr: number;
  vectorBase: number;
  priorityAdd: number;
  initState: number;
  icw1: number;
  icw3: number;
  icw4: number;
  readIsr: boolean;
  pollPending: boolean;
  specialMask: boolean;
  autoEoi: boolean;
  rotateOnAutoEoi: boolean;
  specialFullyNested: boolean;
  ltimLevel: boolean;
}

/** Saved state of the 8259 pair. */
export interface DualPicState {
  version: 1;
  master: Pic8259State;
  slave: Pic8259State;
}

// ICW1
const ICW1_IC4 = 0x01;
const ICW1_SNGL = 0x02;
const ICW1_LTIM = 0x08;
const ICW1_INIT = 0x10;
// ICW4
const ICW4_AEOI = 0x02;
const ICW4_SFNM = 0x10;
// OCW3
const OCW3_RIS = 0x01;
const OCW3_RR = 0x02;
const OCW3_POLL = 0x04;
const OCW3_SMM = 0x20;
const OCW3_ESMM = 0x40;

/** One 8259A. Use `DualPic` for the PC pair. */
export class Pic8259 implements IrqChip, PortIoDevice {
  irr = 0;
  isr = 0;
  imr = 0;
  /** Line levels as last driven (for edge detection and level mode). */
  lines = 0;
  /** Edge/level control (1 = level), as set through the ELCR. */
  elcr = 0;
  vectorBase = 0;
  /** Priority rotation: the IR with the highest priority is `lowestPriority + 1`. */
  priorityAdd = 0;
  /** 0 = operational, 1..3 = expecting ICW2..ICW4. */
  initState = 0;
  icw1 = 0;
  icw3 = 0;
  icw4 = 0;
  readIsr = false;
  pollPending = false;
  specialMask = false;
  autoEoi = false;
  rotateOnAutoEoi = false;
  specialFullyNested = false;
  /** Levels the ICW1 LTIM bit forces to level mode (all or none). */
  private ltimLevel = false;

  constructor(
    readonly isMaster: boolean,
    private readonly changed: () => void,
    /** Bits of the ELCR the guest may set (PIIX: 0xF8 master, 0xDE slave). */
    readonly elcrMask: number,
  ) {
    this.levelFixed = isMaster ? 1 << 2 : 0;
  }

  /** Inputs that are always level-sensitive: the master's cascade input follows the slave's INT. */
  private readonly levelFixed: number;

  private isLevel(mask: number): boolean {
    return this.ltimLevel || ((this.elcr | this.levelFixed) & mask) !== 0;
  }

  setIrq(pin: number, level: boolean): void {
    if (pin < 0 || pin > 7) return;
    const mask = 1 << pin;
    const was = (this.lines & mask) !== 0;
    if (level) this.lines |= mask;
    else this.lines &= ~mask;
    if (this.isLevel(mask)) {
      if (level) this.irr |= mask;
      else this.irr &= ~mask;
    } else if (level && !was) {
      this.irr |= mask;
    }
    this.changed();
  }

  /** Priority (0 = highest) of the highest-priority bit in `mask`, or 8. */
  private priorityOf(mask: number): number {
    if (mask === 0) return 8;
    let p = 0;
    while ((mask & (1 << ((p + this.priorityAdd) & 7))) === 0) p++;
    return p;
  }

  /** The IR that would be serviced now, or -1. */
  pending(): number {
    const req = this.irr & ~this.imr;
    const pri = this.priorityOf(req);
    if (pri === 8) return -1;
    let inService = this.isr;
    if (this.specialMask) inService &= ~this.imr;
    if (this.specialFullyNested && this.isMaster) inService &= ~(1 << 2);
    return pri < this.priorityOf(inService) ? (pri + this.priorityAdd) & 7 : -1;
  }

  /** The INTA (or poll) bookkeeping for `irq`. */
  ack(irq: number): void {
    const mask = 1 << irq;
    if (this.autoEoi) {
      if (this.rotateOnAutoEoi) this.priorityAdd = (irq + 1) & 7;
    } else {
      this.isr |= mask;
    }
    if (!this.isLevel(mask)) this.irr &= ~mask;
  }

  saveState(): Pic8259State {
    return {
      irr: this.irr,
      isr: this.isr,
      imr: this.imr,
      lines: this.lines,
      elcr: this.elcr,
      vectorBase: this.vectorBase,
      priorityAdd: this.priorityAdd,
      initState: this.initState,
      icw1: this.icw1,
      icw3: this.icw3,
      icw4: this.icw4,
      readIsr: this.readIsr,
      pollPending: this.pollPending,
      specialMask: this.specialMask,
      autoEoi: this.autoEoi,
      rotateOnAutoEoi: this.rotateOnAutoEoi,
      specialFullyNested: this.specialFullyNested,
      ltimLevel: this.ltimLevel,
    };
  }

  /** Validates a saved chip state (throws DeviceStateError). */
  static parseState(r: StateReader): Pic8259State {
    return {
      irr: r.int('irr', 0, 255),
      isr: r.int('isr', 0, 255),
      imr: r.int('imr', 0, 255),
      lines: r.int('lines', 0, 255),
      elcr: r.int('elcr', 0, 255),
      vectorBase: r.int('vectorBase', 0, 255) & 0xf8,
      priorityAdd: r.int('priorityAdd', 0, 7),
      initState: r.int('initState', 0, 3),
      icw1: r.int('icw1', 0, 255),
      icw3: r.int('icw3', 0, 255),
      icw4: r.int('icw4', 0, 255),
      readIsr: r.bool('readIsr'),
      pollPending: r.bool('pollPending'),
      specialMask: r.bool('specialMask'),
      autoEoi: r.bool('autoEoi'),
      rotateOnAutoEoi: r.bool('rotateOnAutoEoi'),
      specialFullyNested: r.bool('specialFullyNested'),
      ltimLevel: r.bool('ltimLevel'),
    };
  }

  applyState(s: Pic8259State): void {
    this.irr = s.irr;
    this.isr = s.isr;
    this.imr = s.imr;
    this.lines = s.lines;
    this.elcr = s.elcr & this.elcrMask;
    this.vectorBase = s.vectorBase;
    this.priorityAdd = s.priorityAdd;
    this.initState = s.initState;
    this.icw1 = s.icw1;
    this.icw3 = s.icw3;
    this.icw4 = s.icw4;
    this.readIsr = s.readIsr;
    this.pollPending = s.pollPending;
    this.specialMask = s.specialMask;
    this.autoEoi = s.autoEoi;
    this.rotateOnAutoEoi = s.rotateOnAutoEoi;
    this.specialFullyNested = s.specialFullyNested;
    this.ltimLevel = s.ltimLevel;
  }

  reset(): void {
    this.irr = this.isr = this.imr = this.lines = this.priorityAdd = this.initState = 0;
    this.icw1 = this.icw3 = this.icw4 = this.vectorBase = 0;
    this.readIsr = this.pollPending = this.specialMask = this.autoEoi = this.rotateOnAutoEoi = false;
    this.specialFullyNested = this.ltimLevel = false;
  }

  portRead(offset: number, _size: number): number {
    if (this.pollPending) {
      this.pollPending = false;
      const irq = this.pending();
      if (irq < 0) return 0;
      this.ack(irq);
      this.changed();
      return 0x80 | irq;
    }
    if ((offset & 1) === 0) return this.readIsr ? this.isr : this.irr;
    return this.imr;
  }

  portWrite(offset: number, _size: number, value: number): void {
    value &= 0xff;
    if ((offset & 1) === 0) {
      if (value & ICW1_INIT) {
        // ICW1: IMR cleared, IR7 lowest priority, special mask off, read IRR, edge latches reset.
        this.icw1 = value;
        this.imr = 0;
        this.isr = 0;
        this.priorityAdd = 0;
        this.specialMask = false;
        this.readIsr = false;
        this.pollPending = false;
        this.autoEoi = false;
        this.rotateOnAutoEoi = false;
        this.specialFullyNested = false;
        this.ltimLevel = (value & ICW1_LTIM) !== 0;
        this.irr &= this.elcr | this.levelFixed | (this.ltimLevel ? 0xff : 0);
        this.irr &= this.lines;
        this.initState = 1;
        if ((value & ICW1_IC4) === 0) this.icw4 = 0;
      } else if (value & 0x08) {
        // OCW3
        if (value & OCW3_POLL) this.pollPending = true;
        if (value & OCW3_RR) this.readIsr = (value & OCW3_RIS) !== 0;
        if (value & OCW3_ESMM) this.specialMask = (value & OCW3_SMM) !== 0;
      } else {
        this.ocw2(value);
      }
    } else {
      switch (this.initState) {
        case 1:
          this.vectorBase = value & 0xf8;
          this.initState = this.icw1 & ICW1_SNGL ? (this.icw1 & ICW1_IC4 ? 3 : 0) : 2;
          break;
        case 2:
          this.icw3 = value;
          this.initState = this.icw1 & ICW1_IC4 ? 3 : 0;
          break;
        case 3:
          this.icw4 = value;
          this.autoEoi = (value & ICW4_AEOI) !== 0;
          this.specialFullyNested = (value & ICW4_SFNM) !== 0;
          this.initState = 0;
          break;
        default:
          this.imr = value;
      }
    }
    this.changed();
  }

  private ocw2(value: number): void {
    const cmd = value >> 5;
    switch (cmd) {
      case 0: // rotate in automatic EOI mode (clear)
        this.rotateOnAutoEoi = false;
        break;
      case 4: // rotate in automatic EOI mode (set)
        this.rotateOnAutoEoi = true;
        break;
      case 1: // non-specific EOI
      case 5: {
        // rotate on non-specific EOI
        const pri = this.priorityOf(this.isr);
        if (pri !== 8) {
          const irq = (pri + this.priorityAdd) & 7;
          this.isr &= ~(1 << irq);
          if (cmd === 5) this.priorityAdd = (irq + 1) & 7;
        }
        break;
      }
      case 3: // specific EOI
        this.isr &= ~(1 << (value & 7));
        break;
      case 7: // rotate on specific EOI
        this.isr &= ~(1 << (value & 7));
        this.priorityAdd = ((value & 7) + 1) & 7;
        break;
      case 6: // set priority: IR(value&7) becomes lowest
        this.priorityAdd = ((value & 7) + 1) & 7;
        break;
      default: // 2: no operation
    }
  }
}

/** Options of the PC 8259 pair. */
export interface DualPicOptions {
  /** Where INTR goes (the local APIC's LINT0 in ExtINT mode, or the CPU). */
  sink?: InterruptSink;
  /** Writable ELCR bits, master then slave (PIIX: 0xF8, 0xDE: IRQ 0, 1, 2, 8, 13 are edge only). */
  elcrMask?: readonly [number, number];
}

/**
 * The PC's two cascaded 8259As. IRQ 0-7 go to the master, 8-15 to the slave, whose output drives
 * master IR2. Register `master` (2 ports), `slave` (2 ports) and `elcr` (2 ports: master, slave)
 * on the port bus at the board's addresses (0x20, 0xA0, 0x4D0 on a PC).
 */
export class DualPic implements IrqChip, ExtIntController {
  readonly master: Pic8259;
  readonly slave: Pic8259;
  /** The two ELCR bytes as a port block (offset 0 master, 1 slave). */
  readonly elcr: PortIoDevice;
  private sink: InterruptSink | null;
  private output = false;
  private updating = false;

  constructor(options: DualPicOptions = {}) {
    const [mm, sm] = options.elcrMask ?? [0xf8, 0xde];
    this.sink = options.sink ?? null;
    const update = (): void => this.update();
    this.master = new Pic8259(true, update, mm);
    this.slave = new Pic8259(false, update, sm);
    this.elcr = {
      portRead: (offset: number): number => ((offset & 1) === 0 ? this.master.elcr : this.slave.elcr),
      portWrite: (offset: number, size: number, value: number): void => {
        const write = (chip: Pic8259, v: number): void => {
          chip.elcr = v & chip.elcrMask;
          // Inputs switched to level follow their line; those switched to edge keep what is latched.
          chip.irr = (chip.irr & ~chip.elcr) | (chip.lines & chip.elcr);
        };
        if ((offset & 1) === 0) {
          write(this.master, value & 0xff);
          if (size >= 2) write(this.slave, (value >>> 8) & 0xff);
        } else {
          write(this.slave, value & 0xff);
        }
        this.update();
      },
    };
  }

  /** Connects INTR (if not given to the constructor). */
  connect(sink: InterruptSink): void {
    this.sink = sink;
    sink.setExtInt(this.output);
  }

  /** ISA IRQ 0-15. */
  setIrq(irq: number, level: boolean): void {
    if (irq >= 0 && irq < 8) this.master.setIrq(irq, level);
    else if (irq >= 8 && irq < 16) this.slave.setIrq(irq - 8, level);
  }

  get intr(): boolean {
    return this.output;
  }

  /** The INTA cycle: returns the vector and moves the request into service. */
  acknowledge(): number {
    const irq = this.master.pending();
    let vector: number;
    if (irq < 0) {
      vector = this.master.vectorBase + 7; // spurious IRQ7: ISR untouched
    } else {
      this.master.ack(irq);
      if (irq === 2) {
        const irq2 = this.slave.pending();
        if (irq2 < 0) {
          vector = this.slave.vectorBase + 7; // spurious IRQ15
        } else {
          this.slave.ack(irq2);
          vector = this.slave.vectorBase + irq2;
        }
      } else {
        vector = this.master.vectorBase + irq;
      }
    }
    this.update();
    return vector;
  }

  saveState(): DualPicState {
    return { version: 1, master: this.master.saveState(), slave: this.slave.saveState() };
  }

  /** Loads a saved state (validated: throws DeviceStateError) and re-drives INTR. */
  loadState(state: unknown): void {
    const r = new StateReader(state, 'DualPic', 1);
    const m = Pic8259.parseState(r.sub('master'));
    const s = Pic8259.parseState(r.sub('slave'));
    this.master.applyState(m);
    this.slave.applyState(s);
    this.output = false;
    this.sink?.setExtInt(false);
    this.update();
  }

  reset(): void {
    this.master.reset();
    this.slave.reset();
    this.update();
  }

  private update(): void {
    if (this.updating) return;
    this.updating = true;
    this.master.setIrq(2, this.slave.pending() >= 0);
    this.updating = false;
    const out = this.master.pending() >= 0;
    if (out !== this.output) {
      this.output = out;
      this.sink?.setExtInt(out);
    }
  }
}
