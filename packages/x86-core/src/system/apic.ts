/**
 * The local APIC of one vCPU (like KVM's in-kernel LAPIC): xAPIC registers at the APIC base
 * (MMIO, handled inside the vCPU), x2APIC MSRs, TPR/PPR/APR, EOI, ISR/IRR/TMR, LVT entries,
 * the timer (one-shot, periodic, TSC-deadline), spurious vector, ICR (fixed/NMI/INIT/SIPI to
 * self; others go to the machine through onIpi, which keeps the door open for SMP).
 *
 * Time comes from the vCPU's TimeSource in nanoseconds; the timer's input clock is 1 GHz (one
 * tick per ns) before the divide configuration, and the TSC also counts nanoseconds.
 */
import type { ApicMmio } from './paging';
import type { ApicRegs, TimeSource } from './system';

const LVT_MASKED = 0x10000;
const APIC_BASE_DEFAULT = 0xfee00000;
const BASE_BSP = 0x100;
const BASE_EXTD = 0x400;
const BASE_EN = 0x800;

// Register offsets (xAPIC MMIO; x2APIC MSR = 0x800 + offset / 16).
const R_ID = 0x20;
const R_VER = 0x30;
const R_TPR = 0x80;
const R_APR = 0x90;
const R_PPR = 0xa0;
const R_EOI = 0xb0;
const R_LDR = 0xd0;
const R_DFR = 0xe0;
const R_SVR = 0xf0;
const R_ISR = 0x100;
const R_TMR = 0x180;
const R_IRR = 0x200;
const R_ESR = 0x280;
const R_LVT_CMCI = 0x2f0;
const R_ICR_LO = 0x300;
const R_ICR_HI = 0x310;
const R_LVT_TIMER = 0x320;
const R_LVT_LINT1 = 0x360;
const R_LVT_ERROR = 0x370;
const R_TIMER_INIT = 0x380;
const R_TIMER_CUR = 0x390;
const R_TIMER_DIV = 0x3e0;
const R_SELF_IPI = 0x3f0;

/** LVT index of each LVT register: timer 0, thermal 1, perf 2, LINT0 3, LINT1 4, error 5, CMCI 6. */
function lvtIndex(off: number): number {
  if (off === R_LVT_CMCI) return 6;
  if (off >= R_LVT_TIMER && off <= R_LVT_ERROR) return (off - R_LVT_TIMER) >> 4;
  return -1;
}

const TIMER_ONESHOT = 0; // (documentation: mode 0)
const TIMER_PERIODIC = 1;
const TIMER_DEADLINE = 2;

/** The plain, versioned state of a local APIC (snapshots, migration). */
export interface LapicState {
  readonly version: 1;
  readonly base: number;
  readonly id: number;
  readonly tpr: number;
  readonly ldr: number;
  readonly dfr: number;
  readonly svr: number;
  readonly esr: number;
  readonly icrLo: number;
  readonly icrHi: number;
  readonly lvt: readonly number[];
  readonly isr: readonly number[];
  readonly irr: readonly number[];
  readonly tmr: readonly number[];
  readonly timerInit: number;
  readonly timerDiv: number;
  /** Absolute deadline in ns (one-shot/periodic) or TSC value (deadline mode); -1 when not armed. */
  readonly deadline: number;
}

export class LocalApic implements ApicMmio, ApicRegs {
  baseMsr: number = APIC_BASE_DEFAULT | BASE_BSP | BASE_EN;
  id = 0;
  tpr = 0;
  ldr = 0;
  dfr: number = 0xffffffff | 0;
  svr = 0xff;
  esr = 0;
  icrLo = 0;
  icrHi = 0;
  readonly lvt: Int32Array = new Int32Array(7).fill(LVT_MASKED);
  readonly isr: Uint32Array = new Uint32Array(8);
  readonly irr: Uint32Array = new Uint32Array(8);
  readonly tmr: Uint32Array = new Uint32Array(8);
  timerInit = 0;
  timerDiv = 0;
  /** Next timer expiry in ns (-1: not armed). In TSC-deadline mode: the TSC value. */
  deadline = -1;
  /** When the current one-shot/periodic count started (ns). */
  private timerStart = 0;
  private readonly time: TimeSource;
  /** TSC offset source (the TSC is time + offset): set by the vCPU. */
  tscOffset: () => number = () => 0;
  /** EOI of a level-triggered vector (for the IOAPIC's remote IRR). */
  onEoi: ((vector: number) => void) | null = null;
  /** IPIs this APIC cannot deliver itself (other destinations): raw ICR. */
  onIpi: ((icrLo: number, icrHi: number) => void) | null = null;
  /** NMI delivered to this CPU (LVT or ICR): the vCPU sets it. */
  onNmi: (() => void) | null = null;
  /** INIT / SIPI to self (the vCPU decides what they mean). */
  onInit: ((sipi: boolean, vector: number) => void) | null = null;
  /** Timer interrupts raised (statistics). */
  timerFired = 0;

  constructor(time: TimeSource, id = 0) {
    this.time = time;
    this.id = id;
  }

  // ------------------------------------------------------------------ state

  get enabled(): boolean {
    return (this.baseMsr & BASE_EN) !== 0;
  }

  get x2apic(): boolean {
    return (this.baseMsr & BASE_EXTD) !== 0;
  }

  get softEnabled(): boolean {
    return (this.svr & 0x100) !== 0;
  }

  mmioBase(): number {
    return this.enabled && !this.x2apic ? (this.baseMsr & 0xfffff000) >>> 0 : -1;
  }

  writeBase(v: number): boolean {
    if ((v & 0x2ff) !== 0) return false;
    const en = (v & BASE_EN) !== 0;
    const ext = (v & BASE_EXTD) !== 0;
    if (ext && !en) return false;
    // x2APIC -> xAPIC directly is illegal (must disable first).
    if (this.x2apic && en && !ext) return false;
    if (!en) this.resetRegs();
    this.baseMsr = v >>> 0;
    if (ext) this.ldr = ((this.id >>> 4) << 16) | (1 << (this.id & 15));
    return true;
  }

  private resetRegs(): void {
    this.tpr = 0;
    this.svr = 0xff;
    this.lvt.fill(LVT_MASKED);
    this.isr.fill(0);
    this.irr.fill(0);
    this.tmr.fill(0);
    this.timerInit = 0;
    this.deadline = -1;
  }

  /** INIT reset of the APIC (keeps the base and ID). */
  reset(): void {
    this.resetRegs();
    this.ldr = 0;
    this.dfr = -1;
    this.esr = 0;
    this.icrLo = 0;
    this.icrHi = 0;
    this.timerDiv = 0;
  }

  // ------------------------------------------------------------------ interrupts

  /** An interrupt arrives (IOAPIC, MSI, IPI): sets IRR (and TMR for level). */
  accept(vector: number, level = false): void {
    if (!this.enabled || vector < 16 || vector > 255) return;
    const w = vector >>> 5;
    const b = 1 << (vector & 31);
    this.irr[w] |= b;
    if (level) this.tmr[w] |= b;
    else this.tmr[w] &= ~b;
  }

  private static highest(a: Uint32Array): number {
    for (let w = 7; w >= 0; w--) if (a[w] !== 0) return w * 32 + 31 - Math.clz32(a[w]);
    return -1;
  }

  ppr(): number {
    const isrv = LocalApic.highest(this.isr);
    const isrc = isrv < 0 ? 0 : isrv & 0xf0;
    return (this.tpr & 0xf0) >= isrc ? this.tpr & 0xff : isrc;
  }

  /** True when IRR has any vector (deliverable or not). */
  hasIrr(): boolean {
    for (let w = 0; w < 8; w++) if (this.irr[w] !== 0) return true;
    return false;
  }

  /** The vector the CPU would take now (IRR above PPR), or -1. */
  pending(): number {
    if (!this.enabled || !this.softEnabled) return -1;
    const v = LocalApic.highest(this.irr);
    if (v < 0) return -1;
    return (v & 0xf0) > (this.ppr() & 0xf0) ? v : -1;
  }

  /** The CPU takes vector v (INTA): IRR -> ISR. */
  ack(v: number): void {
    const w = v >>> 5;
    const b = 1 << (v & 31);
    this.irr[w] &= ~b;
    this.isr[w] |= b;
  }

  eoi(): void {
    const v = LocalApic.highest(this.isr);
    if (v < 0) return;
    const w = v >>> 5;
    const b = 1 << (v & 31);
    this.isr[w] &= ~b;
    if ((this.tmr[w] & b) !== 0 && this.onEoi != null) this.onEoi(v);
  }

  getTpr(): number {
    return this.tpr;
  }

  setTpr(v: number): void {
    this.tpr = v & 0xff;
  }

  // ------------------------------------------------------------------ timer

  private divisor(): number {
    const d = (this.timerDiv & 3) | ((this.timerDiv >> 1) & 4);
    return d === 7 ? 1 : 2 << d;
  }

  private timerMode(): number {
    return (this.lvt[0] >>> 17) & 3;
  }

  /** Absolute time (ns) of the next timer event, or -1. */
  nextDeadlineNs(): number {
    if (this.deadline < 0) return -1;
    if (this.timerMode() === TIMER_DEADLINE) return this.deadline - this.tscOffset();
    return this.deadline;
  }

  /** Fires the timer if its deadline has passed (called by the vCPU with the current time). */
  poll(now: number): void {
    if (this.deadline < 0) return;
    const mode = this.timerMode();
    const due = mode === TIMER_DEADLINE ? this.deadline - this.tscOffset() : this.deadline;
    if (now < due) return;
    this.timerFired++;
    if ((this.lvt[0] & LVT_MASKED) === 0) this.accept(this.lvt[0] & 0xff, false);
    if (mode === TIMER_PERIODIC && this.timerInit > 0) {
      const period = this.timerInit * this.divisor();
      // Catch up without a burst: the next period after now.
      const n = Math.floor((now - this.deadline) / period) + 1;
      this.timerStart = this.deadline + (n - 1) * period;
      this.deadline += n * period;
    } else this.deadline = -1;
  }

  private startTimer(): void {
    const mode = this.timerMode();
    if (mode === TIMER_DEADLINE) return;
    if (this.timerInit === 0) {
      this.deadline = -1;
      return;
    }
    this.timerStart = this.time.now();
    this.deadline = this.timerStart + this.timerInit * this.divisor();
  }

  private currentCount(): number {
    if (this.timerMode() === TIMER_DEADLINE || this.deadline < 0) return 0;
    const left = this.deadline - this.time.now();
    if (left <= 0) return 0;
    return Math.min(this.timerInit, Math.ceil(left / this.divisor())) >>> 0;
  }

  readDeadline(out: Int32Array): void {
    const d = this.timerMode() === TIMER_DEADLINE && this.deadline >= 0 ? this.deadline : 0;
    out[0] = d | 0;
    out[1] = Math.floor(d / 4294967296) | 0;
  }

  writeDeadline(lo: number, hi: number): void {
    if (this.timerMode() !== TIMER_DEADLINE) return;
    const v = (hi >>> 0) * 4294967296 + (lo >>> 0);
    this.deadline = v === 0 ? -1 : v;
  }

  // ------------------------------------------------------------------ registers

  /** Register read by offset (xAPIC layout); 32-bit value. */
  readReg(off: number): number {
    switch (off) {
      case R_ID: return this.x2apic ? this.id : this.id << 24;
      case R_VER: return 0x00060014; // version 0x14, 7 LVT entries
      case R_TPR: return this.tpr;
      case R_APR: return 0;
      case R_PPR: return this.ppr();
      case R_LDR: return this.ldr;
      case R_DFR: return this.x2apic ? 0 : this.dfr;
      case R_SVR: return this.svr;
      case R_ESR: return this.esr;
      case R_ICR_LO: return this.icrLo & ~0x1000; // delivery status: always idle
      case R_ICR_HI: return this.icrHi;
      case R_TIMER_INIT: return this.timerInit;
      case R_TIMER_CUR: return this.currentCount();
      case R_TIMER_DIV: return this.timerDiv;
    }
    if (off >= R_ISR && off < R_ISR + 0x80) return this.isr[(off - R_ISR) >> 4];
    if (off >= R_TMR && off < R_TMR + 0x80) return this.tmr[(off - R_TMR) >> 4];
    if (off >= R_IRR && off < R_IRR + 0x80) return this.irr[(off - R_IRR) >> 4];
    const l = lvtIndex(off);
    if (l >= 0) return this.lvt[l];
    return 0;
  }

  /** Register write by offset; false for a read-only or reserved register (x2APIC: #GP). */
  writeReg(off: number, v: number): boolean {
    switch (off) {
      case R_ID:
        if (!this.x2apic) this.id = v >>> 24;
        return !this.x2apic;
      case R_TPR:
        this.tpr = v & 0xff;
        return true;
      case R_EOI:
        this.eoi();
        return true;
      case R_LDR:
        if (this.x2apic) return false;
        this.ldr = v & 0xff000000;
        return true;
      case R_DFR:
        if (this.x2apic) return false;
        this.dfr = v | 0x0fffffff;
        return true;
      case R_SVR:
        this.svr = v & 0x13ff;
        if ((v & 0x100) === 0) for (let i = 0; i < 7; i++) this.lvt[i] |= LVT_MASKED;
        return true;
      case R_ESR:
        this.esr = 0;
        return true;
      case R_ICR_LO:
        this.icrLo = v & 0xfffff;
        this.sendIpi();
        return true;
      case R_ICR_HI:
        if (this.x2apic) return false;
        this.icrHi = v & 0xff000000;
        return true;
      case R_TIMER_INIT:
        if (this.timerMode() === TIMER_DEADLINE) return true;
        this.timerInit = v >>> 0;
        this.startTimer();
        return true;
      case R_TIMER_DIV:
        this.timerDiv = v & 0xb;
        return true;
      case R_SELF_IPI:
        if (!this.x2apic) return false;
        this.accept(v & 0xff, false);
        return true;
    }
    const l = lvtIndex(off);
    if (l >= 0) {
      let val = v;
      if (!this.softEnabled) val |= LVT_MASKED;
      const masks = [0x710ff, 0x107ff, 0x107ff, 0x1a7ff, 0x1a7ff, 0x100ff, 0x107ff];
      if (l === 0) {
        const oldMode = this.timerMode();
        this.lvt[0] = val & masks[0];
        if (this.timerMode() !== oldMode) {
          this.deadline = -1;
          this.timerInit = 0;
        }
      } else this.lvt[l] = val & masks[l];
      return true;
    }
    return false;
  }

  private sendIpi(): void {
    const lo = this.icrLo;
    const mode = (lo >>> 8) & 7;
    const short = (lo >>> 18) & 3;
    const vector = lo & 0xff;
    const dest = this.x2apic ? this.icrHi : this.icrHi >>> 24;
    const toSelf = short === 1 || short === 2 || (short === 0 && (this.x2apic ? dest === this.id : dest === this.id || dest === 0xff));
    const toOthers = short === 2 || short === 3 || (short === 0 && dest !== this.id);
    if (toSelf) {
      if (mode === 0) this.accept(vector, false);
      else if (mode === 4 && this.onNmi != null) this.onNmi();
      else if ((mode === 5 || mode === 6) && this.onInit != null) this.onInit(mode === 6, vector);
    }
    if (toOthers && this.onIpi != null) this.onIpi(lo, this.icrHi);
  }

  // ------------------------------------------------------------------ MMIO and MSR access

  mmioRead(offset: number, size: number): number {
    const v = this.readReg(offset & 0xff0);
    const sh = (offset & 3) * 8;
    if (size >= 4) return v >>> 0;
    return (v >>> sh) & (size === 1 ? 0xff : 0xffff);
  }

  mmioWrite(offset: number, size: number, value: number): void {
    if (size < 4 || (offset & 0xf) !== 0) return; // partial writes are ignored
    this.writeReg(offset, value | 0);
  }

  readMsr(index: number, out: Int32Array): boolean {
    if (!this.x2apic) return false;
    const off = (index - 0x800) << 4;
    if (off === R_ICR_LO) {
      out[0] = this.icrLo;
      out[1] = this.icrHi;
      return true;
    }
    if (off === R_EOI || off === R_SELF_IPI || off === R_DFR || off === R_ICR_HI) return false;
    if (off === R_ID || off === R_VER || off === R_TPR || off === R_PPR || off === R_LDR || off === R_SVR || off === R_ESR || off === R_TIMER_INIT || off === R_TIMER_CUR || off === R_TIMER_DIV || (off >= R_ISR && off < R_IRR + 0x80) || lvtIndex(off) >= 0) {
      out[0] = this.readReg(off);
      out[1] = 0;
      return true;
    }
    return false;
  }

  writeMsr(index: number, lo: number, hi: number): boolean {
    if (!this.x2apic) return false;
    const off = (index - 0x800) << 4;
    if (off === R_ICR_LO) {
      this.icrHi = hi;
      this.icrLo = lo & 0xfffff;
      this.sendIpi();
      return true;
    }
    if (hi !== 0) return false;
    if (off === R_ID || off === R_VER || off === R_PPR || off === R_LDR || off === R_TIMER_CUR || (off >= R_ISR && off < R_IRR + 0x80)) return false;
    if (off === R_EOI && lo !== 0) return false;
    return this.writeReg(off, lo);
  }

  // ------------------------------------------------------------------ snapshots

  getState(): LapicState {
    return {
      version: 1,
      base: this.baseMsr >>> 0,
      id: this.id,
      tpr: this.tpr,
      ldr: this.ldr >>> 0,
      dfr: this.dfr >>> 0,
      svr: this.svr,
      esr: this.esr,
      icrLo: this.icrLo >>> 0,
      icrHi: this.icrHi >>> 0,
      lvt: Array.from(this.lvt, (x) => x >>> 0),
      isr: Array.from(this.isr),
      irr: Array.from(this.irr),
      tmr: Array.from(this.tmr),
      timerInit: this.timerInit >>> 0,
      timerDiv: this.timerDiv,
      deadline: this.deadline,
    };
  }

  setState(s: LapicState): void {
    const u32 = (x: unknown, what: string): number => {
      if (typeof x !== 'number' || !Number.isInteger(x) || x < 0 || x > 0xffffffff) throw new TypeError(`lapic state: ${what} must be a 32-bit unsigned integer`);
      return x;
    };
    const arr = (a: unknown, n: number, what: string): number[] => {
      if (!Array.isArray(a) || a.length !== n) throw new TypeError(`lapic state: ${what} must be an array of ${n}`);
      return a.map((x, i) => u32(x, `${what}[${i}]`));
    };
    if (s == null || s.version !== 1) throw new TypeError('lapic state: unsupported version');
    const lvt = arr(s.lvt, 7, 'lvt');
    const isr = arr(s.isr, 8, 'isr');
    const irr = arr(s.irr, 8, 'irr');
    const tmr = arr(s.tmr, 8, 'tmr');
    if (typeof s.deadline !== 'number' || !(s.deadline === -1 || (s.deadline >= 0 && Number.isSafeInteger(s.deadline)))) throw new TypeError('lapic state: bad deadline');
    this.baseMsr = u32(s.base, 'base');
    this.id = u32(s.id, 'id');
    this.tpr = u32(s.tpr, 'tpr') & 0xff;
    this.ldr = u32(s.ldr, 'ldr') | 0;
    this.dfr = u32(s.dfr, 'dfr') | 0;
    this.svr = u32(s.svr, 'svr') & 0x13ff;
    this.esr = u32(s.esr, 'esr');
    this.icrLo = u32(s.icrLo, 'icrLo');
    this.icrHi = u32(s.icrHi, 'icrHi');
    this.lvt.set(lvt.map((x) => x | 0));
    this.isr.set(isr);
    this.irr.set(irr);
    this.tmr.set(tmr);
    this.timerInit = u32(s.timerInit, 'timerInit');
    this.timerDiv = u32(s.timerDiv, 'timerDiv') & 0xb;
    this.deadline = s.deadline;
    this.timerStart = this.deadline >= 0 ? this.deadline - this.timerInit * this.divisor() : 0;
  }
}

void R_LVT_LINT1;
void TIMER_ONESHOT;
