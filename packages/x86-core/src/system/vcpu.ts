/**
 * The vCPU, modelled on KVM's: created over a guest memory (an @ringzero/mmu-ept AddressSpace),
 * run() executes guest code at any privilege level until something needs the machine and
 * returns an exit reason; the machine completes the exit (fills the data of an IN or an MMIO
 * read) and calls run() again. Registers, special registers, FPU/SSE state, MSRs and the local
 * APIC are read and written as plain, versioned objects.
 *
 *   const vcpu = new Vcpu(space);
 *   vcpu.setSregs(...); vcpu.setRegs(...);        // or vcpu.loadBootState(loaderState)
 *   for (;;) {
 *     const reason = vcpu.run();
 *     if (reason === EXIT_IO) { const io = vcpu.exit.io; if (io.input) io.data[0] = dev.read(io.port); else dev.write(io.port, io.data[0]); }
 *     else if (reason === EXIT_MMIO) { ... vcpu.exit.mmio ... }
 *     else if (reason === EXIT_HLT) { wait for an interrupt; vcpu.apic.accept(vector) }
 *     else if (reason === EXIT_SHUTDOWN) break;
 *   }
 */
import type { AddressSpace } from '@ringzero/mmu-ept';
import { Mmu } from '@ringzero/mmu-ept';
import {
  CS,
  DB,
  DS,
  ES,
  EXIT_BREAK,
  EXIT_BUDGET,
  EXIT_EXCEPTION,
  EXIT_HLT,
  EXIT_SOFTINT,
  EXIT_SYSCALL,
  FS,
  GS,
  IF,
  NMI,
  RF,
  SS,
  TF,
  VEC_EXIT,
  VM,
} from '../constants';
import { Cpu, type CpuFeatures } from '../cpu';
import { LocalApic, type LapicState } from './apic';
import { DR6_BS, DR6_FIXED_1, DR7_FIXED_1, execBreak, ioBreak, updateBreakpoints } from './debug';
import { MmuMemory, PEND_APIC, PEND_EPT, PEND_FETCH, PEND_MMIO, PEND_NONE } from './paging';
import {
  ATTR_DB,
  ATTR_G,
  ATTR_L,
  ATTR_P,
  ATTR_S,
  CR0_ET,
  CR0_PE,
  CR0_PG,
  CR4_PAE,
  EFER_LMA,
  EFER_LME,
  EXIT_DEBUG,
  EXIT_EPT_VIOLATION,
  EXIT_INTERNAL_ERROR,
  EXIT_INTR,
  EXIT_IO,
  EXIT_IRQ_WINDOW,
  EXIT_MMIO,
  EXIT_SHUTDOWN,
  MSR_CSTAR,
  MSR_EFER,
  MSR_FS_BASE,
  MSR_GS_BASE,
  MSR_KERNEL_GS_BASE,
  MSR_LSTAR,
  MSR_MISC_ENABLE,
  MSR_PAT,
  MSR_SFMASK,
  MSR_SPEC_CTRL,
  MSR_STAR,
  MSR_SYSENTER_CS,
  MSR_SYSENTER_EIP,
  MSR_SYSENTER_ESP,
  MSR_TSC,
  MSR_TSC_AUX,
  MSR_MTRR_DEF_TYPE,
} from './regs';
import { DELIVER_EXIT, DELIVER_SHUTDOWN, EV_EXC, EV_EXT, EV_ICEBP, EV_NMI, EV_SOFT, EV_SOFTEXC, IO_MEM_EXIT, System, hasErrorCode, type TimeSource } from './system';

const TWO32 = 4294967296;
const TWO53 = 9007199254740992;

/** A 64-bit value in a state object: a number when exact (|v| <= 2^53), else a "0x..." string. */
export type U64 = number | string;

/** General registers, shaped like kvm_regs (64-bit values as U64). */
export interface VcpuRegs {
  readonly version?: 1;
  readonly rax: U64;
  readonly rbx: U64;
  readonly rcx: U64;
  readonly rdx: U64;
  readonly rsi: U64;
  readonly rdi: U64;
  readonly rsp: U64;
  readonly rbp: U64;
  readonly r8?: U64;
  readonly r9?: U64;
  readonly r10?: U64;
  readonly r11?: U64;
  readonly r12?: U64;
  readonly r13?: U64;
  readonly r14?: U64;
  readonly r15?: U64;
  readonly rip: U64;
  readonly rflags: number;
}

/** One segment register, shaped like kvm_segment. */
export interface VcpuSegment {
  readonly selector: number;
  readonly base: U64;
  readonly limit: number;
  readonly type: number;
  readonly present: number;
  readonly dpl: number;
  readonly db: number;
  readonly s: number;
  readonly l: number;
  readonly g: number;
  readonly avl: number;
  readonly unusable: number;
}

export interface VcpuDtable {
  readonly base: U64;
  readonly limit: number;
}

/** Special registers, shaped like kvm_sregs (the machine's boot loader produces this). */
export interface VcpuSregs {
  readonly version?: 1;
  readonly cs: VcpuSegment;
  readonly ds: VcpuSegment;
  readonly es: VcpuSegment;
  readonly fs: VcpuSegment;
  readonly gs: VcpuSegment;
  readonly ss: VcpuSegment;
  readonly tr: VcpuSegment;
  readonly ldt: VcpuSegment;
  readonly gdt: VcpuDtable;
  readonly idt: VcpuDtable;
  readonly cr0: number;
  readonly cr2: U64;
  readonly cr3: U64;
  readonly cr4: number;
  readonly cr8?: number;
  readonly efer: number;
  readonly apicBase: number;
}

/** x87/MMX/SSE state. */
export interface VcpuFpu {
  readonly version: 1;
  /** Physical x87 registers R0..R7 as doubles, plus their extra precision words. */
  readonly fpr: readonly number[];
  readonly fprExt: readonly number[];
  readonly fcw: number;
  readonly fsw: number;
  readonly ftw: number;
  readonly top: number;
  /** MM0-7 as lo/hi int32 pairs (16 numbers). */
  readonly mmx: readonly number[];
  /** XMM0-15 as 64 uint32 (xmm[r * 4 + i]). */
  readonly xmm: readonly number[];
  readonly mxcsr: number;
}

export interface VcpuMsr {
  readonly index: number;
  readonly value: U64;
}

/** Event state (pending injections, NMI blocking, interrupt shadow, halt). */
/** Debug registers (like kvm_debugregs): DR0-DR3, DR6, DR7. */
export interface VcpuDebugRegs {
  readonly version?: 1;
  db: readonly U64[];
  dr6: number;
  dr7: number;
}

export interface VcpuEvents {
  readonly version: 1;
  readonly halted: boolean;
  readonly nmiPending: boolean;
  readonly nmiBlocked: boolean;
  readonly shadow: boolean;
  /** External (PIC) interrupt vector waiting for injection, or -1. */
  readonly extInt: number;
  /** INIT received, waiting for a startup IPI (absent in older objects: false). */
  readonly waitingForSipi?: boolean;
}

/** The loader state shape of @ringzero/machine (bootCpuState): KVM_SET_REGS + KVM_SET_SREGS. */
export interface BootState {
  readonly version: 1;
  readonly mode?: string;
  readonly regs: VcpuRegs;
  readonly sregs: VcpuSregs;
}

export class IoExit {
  port = 0;
  /** Bytes per element: 1, 2, 4. */
  size = 1;
  /** true: IN/INS, fill data (count * size bytes) before the next run(). */
  input = false;
  /** Elements; string I/O (INS/OUTS with REP) can carry several. */
  count = 1;
  /** The element bytes (little-endian), a view of count * size bytes. */
  data: Uint8Array = new Uint8Array(0);
}

export class MmioExit {
  /** Guest-physical address. */
  address = 0;
  size = 0;
  write = false;
  /** Data bytes (little-endian): written data, or where the machine puts the read result. */
  readonly data: Uint8Array = new Uint8Array(8);
}

export class EptExit {
  gpa = 0;
  /** Exit qualification (mmu-ept QUAL_* bits). */
  qualification = 0;
  linear = 0;
  size = 0;
  write = false;
}

/** The last exit's details (one object, reused: read it before the next run()). */
export class VcpuExit {
  reason = 0;
  readonly io: IoExit = new IoExit();
  readonly mmio: MmioExit = new MmioExit();
  readonly ept: EptExit = new EptExit();
  /** EXIT_INTERNAL_ERROR / EXIT_SHUTDOWN: what happened. */
  message = '';
  /** EXIT_DEBUG: the vector (1 single-step, 3 breakpoint). */
  debugVector = 0;
}

/** Deterministic time: nanoseconds derived from retired instructions (replayable). */
export class InstructionClock implements TimeSource {
  private readonly cpu: Cpu;
  readonly nsPerInstruction: number;
  /** Instructions' worth of time skipped while halted. */
  skipped = 0;
  constructor(cpu: Cpu, nsPerInstruction = 1) {
    this.cpu = cpu;
    this.nsPerInstruction = nsPerInstruction;
  }
  now(): number {
    return (this.cpu.retired + this.skipped) * this.nsPerInstruction;
  }
  /** Jumps forward to ns (HLT with a timer armed). */
  advanceTo(ns: number): void {
    const t = this.now();
    if (ns > t) this.skipped += Math.ceil((ns - t) / this.nsPerInstruction);
  }
}

/** Wall-clock time (performance.now), for interactive machines. */
export class WallClock implements TimeSource {
  private readonly origin: number = globalThis.performance.now();
  now(): number {
    return Math.floor((globalThis.performance.now() - this.origin) * 1e6);
  }
}

export interface VcpuOptions {
  /** 'deterministic' (default: time from retired instructions), 'wall', or your own source. */
  time?: 'deterministic' | 'wall' | TimeSource;
  /** Deterministic time: nanoseconds per retired instruction (default 1). */
  nsPerInstruction?: number;
  /** CPU features (CPUID): defaults to everything the x86-core groups have completed. */
  features?: Partial<CpuFeatures>;
  apicId?: number;
  /** TLB entries (power of two). */
  tlbSize?: number;
}

const P_NONE = 0;
const P_IO = 1;
const P_MEM = 2;

/** Registers in kvm_regs order and their numbers. */
const GPR_NAMES = ['rax', 'rcx', 'rdx', 'rbx', 'rsp', 'rbp', 'rsi', 'rdi', 'r8', 'r9', 'r10', 'r11', 'r12', 'r13', 'r14', 'r15'] as const;
const SEG_NAMES = ['es', 'cs', 'ss', 'ds', 'fs', 'gs'] as const;

/** MSRs that getMsrs() saves by default (what a migration needs). */
export const MSR_SAVE_LIST: readonly number[] = [
  MSR_EFER, MSR_STAR, MSR_LSTAR, MSR_CSTAR, MSR_SFMASK, MSR_KERNEL_GS_BASE, MSR_FS_BASE, MSR_GS_BASE, MSR_TSC, MSR_TSC_AUX,
  MSR_SYSENTER_CS, MSR_SYSENTER_ESP, MSR_SYSENTER_EIP, MSR_PAT, MSR_MISC_ENABLE, MSR_SPEC_CTRL, MSR_MTRR_DEF_TYPE,
  0x200, 0x201, 0x202, 0x203, 0x204, 0x205, 0x206, 0x207, 0x208, 0x209, 0x20a, 0x20b, 0x20c, 0x20d, 0x20e, 0x20f,
  0x250, 0x258, 0x259, 0x268, 0x269, 0x26a, 0x26b, 0x26c, 0x26d, 0x26e, 0x26f,
];

export function u64ToParts(v: U64 | bigint, what: string, out: Int32Array): void {
  let b: bigint;
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v)) throw new TypeError(`${what}: ${v} is not a safe integer (use a hex string)`);
    b = BigInt(v);
  } else if (typeof v === 'string') {
    if (!/^-?(0x[0-9a-fA-F]{1,16}|[0-9]{1,20})$/.test(v)) throw new TypeError(`${what}: bad 64-bit value ${JSON.stringify(v)}`);
    b = v.startsWith('-') ? -BigInt(v.slice(1)) : BigInt(v);
  } else if (typeof v === 'bigint') b = v;
  else throw new TypeError(`${what}: expected a number or string`);
  b = BigInt.asUintN(64, b);
  out[0] = Number(b & 0xffffffffn) | 0;
  out[1] = Number(b >> 32n) | 0;
}

export function partsToU64(lo: number, hi: number): U64 {
  const v = (hi | 0) * TWO32 + (lo >>> 0);
  if (v >= -TWO53 && v <= TWO53) return v;
  return '0x' + ((BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0)).toString(16);
}

const PARTS = new Int32Array(2);

function num(v: U64, what: string): number {
  u64ToParts(v, what, PARTS);
  return (PARTS[1] | 0) * TWO32 + (PARTS[0] >>> 0);
}

export class Vcpu {
  readonly cpu: Cpu;
  readonly sys: System;
  readonly mem: MmuMemory;
  readonly apic: LocalApic;
  readonly space: AddressSpace;
  readonly time: TimeSource;
  readonly exit: VcpuExit = new VcpuExit();
  /** Ask for EXIT_IRQ_WINDOW as soon as an external interrupt can be injected. */
  requestInterruptWindow = false;
  /** Guest debugging (KVM_SET_GUEST_DEBUG): singleStep exits after every instruction. */
  /**
   * Guest debugging (KVM_SET_GUEST_DEBUG): singleStep exits after every instruction; int3 makes
   * INT3 (CC) an EXIT_DEBUG with RIP at the breakpoint instead of a guest #BP.
   */
  readonly debug: { singleStep: boolean; int3: boolean } = { singleStep: false, int3: false };
  halted = false;
  nmiPending = false;
  /** External interrupt (PIC ExtINT) waiting for injection, or -1. */
  extInt = -1;
  private excVector = -1;
  private excError = -1;
  private pending = P_NONE;
  private replay = false;
  private kicked = false;
  /** Retired count when RF was last consumed (a re-run of that instruction skips the breakpoint check). */
  private rfRetired = -1;
  /**
   * INIT received (an application processor before its startup IPI, KVM's
   * KVM_MP_STATE_INIT_RECEIVED): run() executes nothing and returns EXIT_HLT until a SIPI.
   */
  waitingForSipi = false;
  private initPending = false;
  private sipiPending = -1;
  /** An INIT or SIPI is waiting to be applied (one test per run-loop iteration). */
  private initSipiPending = false;
  /** Statistics. */
  exits = 0;
  interruptsDelivered = 0;

  constructor(space: AddressSpace, options: VcpuOptions = {}) {
    if (space.ept == null) throw new TypeError('Vcpu: the address space needs an EPT');
    this.space = space;
    const mmu = new Mmu(space.ept, space, { maxPhysAddr: 40, ...(options.tlbSize !== undefined ? { tlbSize: options.tlbSize } : {}) });
    this.mem = new MmuMemory(space, mmu);
    // Features: the CPU's defaults (what the instruction groups have completed), as overridden.
    this.cpu = new Cpu(this.mem, options.features ?? {});
    this.mem.cpu = this.cpu;
    const t = options.time ?? 'deterministic';
    this.time = t === 'deterministic' ? new InstructionClock(this.cpu, options.nsPerInstruction ?? 1) : t === 'wall' ? new WallClock() : t;
    this.sys = new System(this.cpu, this.mem, this.time);
    this.apic = new LocalApic(this.time, options.apicId ?? 0);
    this.apic.tscOffset = () => this.sys.tscOffset;
    this.apic.onNmi = () => {
      this.nmiPending = true;
    };
    this.apic.onInit = (sipi: boolean, vector: number) => {
      if (sipi) this.sipi(vector);
      else this.init();
    };
    this.sys.apic = this.apic;
    this.sys.apicId = options.apicId ?? 0;
    this.mem.apic = this.apic;
    this.cpu.sys = this.sys;
    this.cpu.syscallExits = false;
    this.sys.quietBreak = (): boolean => this.quiet();
    this.reset();
  }

  /**
   * Nothing for run()'s event check to do after an STI or IRET: no event to deliver, no
   * interrupt window wanted, no kick, no single-step or breakpoint state. The slice goes on.
   */
  private quiet(): boolean {
    return (
      !this.kicked && !this.nmiPending && this.extInt < 0 && this.excVector < 0 && !this.requestInterruptWindow && !this.initSipiPending &&
      (this.cpu.flags & (TF | RF)) === 0 && this.sys.bpExec === 0 && this.mem.watchMask === 0 && !this.debug.singleStep && this.apic.pending() < 0
    );
  }

  // ================================================================ reset and boot state

  /** The architectural reset state: real mode, CS:IP = F000:FFF0 with CS.base = FFFF0000. */
  reset(): void {
    const cpu = this.cpu;
    const sys = this.sys;
    cpu.lo.fill(0);
    cpu.hi.fill(0);
    cpu.lo[2] = 0x600; // EDX: family/model/stepping signature
    cpu.setFlags(2);
    cpu.cr0 = CR0_ET | 0x60000000;
    cpu.cr4 = 0;
    sys.efer = 0;
    sys.cr2 = 0;
    sys.cr3Lo = 0;
    sys.cr3Hi = 0;
    const data = ATTR_P | ATTR_S | 3;
    for (let s = 0; s < 6; s++) sys.setSeg(s, 0, 0, 0xffff, data);
    sys.setSeg(CS, 0xf000, 0xffff0000, 0xffff, ATTR_P | ATTR_S | 0xb);
    cpu.rip = 0xfff0;
    sys.gdtBase = 0;
    sys.gdtLimit = 0xffff;
    sys.idtBase = 0;
    sys.idtLimit = 0xffff;
    sys.ldtSel = 0;
    sys.ldtBase = 0;
    sys.ldtLimit = 0xffff;
    sys.ldtAttr = ATTR_P | 2;
    sys.trSel = 0;
    sys.trBase = 0;
    sys.trLimit = 0xffff;
    sys.trAttr = ATTR_P | 0xb;
    sys.shadow = false;
    sys.drLo.fill(0);
    sys.drHi.fill(0);
    sys.dr6 = DR6_FIXED_1;
    sys.dr7 = DR7_FIXED_1;
    updateBreakpoints(sys);
    sys.nmiBlocked = false;
    this.halted = false;
    this.nmiPending = false;
    this.extInt = -1;
    this.excVector = -1;
    this.pending = P_NONE;
    this.replay = false;
    this.mem.clearLog();
    this.syncMmu();
    sys.updateMode();
  }

  /** Pushes CR0/CR3/CR4/EFER into the MMU (after state changes that bypass the instructions). */
  private syncMmu(): void {
    this.mem.codeWrites++;
    const mmu = this.mem.mmu;
    mmu.writeEfer(this.sys.efer);
    mmu.writeCr4(this.cpu.cr4);
    mmu.writeCr3(this.sys.cr3Lo, this.sys.cr3Hi);
    mmu.writeCr0(this.cpu.cr0);
    mmu.flushTlb();
  }

  /**
   * INIT (an INIT IPI, or the machine's INIT line): at the next run() the vCPU takes the reset
   * state, its local APIC resets (ID and base kept) and it waits for a startup IPI.
   */
  init(): void {
    this.initPending = true;
    this.sipiPending = -1;
    this.initSipiPending = true;
  }

  /** Startup IPI: a vCPU waiting for one starts in real mode at vector:0000 (SDM 10.4.4); else ignored. */
  sipi(vector: number): void {
    if (!Number.isInteger(vector) || vector < 0 || vector > 255) throw new RangeError('sipi: vector must be 0..255');
    this.sipiPending = vector;
    this.initSipiPending = true;
  }

  /** Applies a pending INIT and SIPI (between instructions). */
  private initSipi(): void {
    this.initSipiPending = false;
    if (this.initPending) {
      this.initPending = false;
      this.reset();
      this.apic.reset();
      this.waitingForSipi = true;
    }
    const v = this.sipiPending;
    this.sipiPending = -1;
    if (v >= 0 && this.waitingForSipi) {
      this.waitingForSipi = false;
      this.sys.setSeg(CS, v << 8, v << 12, 0xffff, ATTR_P | ATTR_S | 0xb);
      this.cpu.rip = 0;
      this.sys.updateMode();
    }
  }

  /** Loads the machine's boot-loader state ({ version: 1, mode, regs, sregs }). */
  loadBootState(state: BootState): void {
    if (state == null || state.version !== 1) throw new TypeError('boot state: unsupported version');
    this.setSregs(state.sregs);
    this.setRegs(state.regs);
  }

  // ================================================================ events

  /** Queues an external interrupt (PIC-style ExtINT, KVM_INTERRUPT); false if one is already queued. */
  injectInterrupt(vector: number): boolean {
    if (!Number.isInteger(vector) || vector < 0 || vector > 255) throw new RangeError('injectInterrupt: vector must be 0..255');
    if (this.extInt >= 0) return false;
    this.extInt = vector;
    return true;
  }

  injectNmi(): void {
    this.nmiPending = true;
  }

  /** Queues an exception to deliver before the next instruction (error < 0: none). */
  injectException(vector: number, error = -1): void {
    if (!Number.isInteger(vector) || vector < 0 || vector > 31) throw new RangeError('injectException: vector must be 0..31');
    this.excVector = vector;
    this.excError = hasErrorCode(vector) && (this.cpu.cr0 & CR0_PE) !== 0 ? (error < 0 ? 0 : error) : -1;
  }

  /** True when an external interrupt would be accepted now (IF = 1, no shadow, nothing queued). */
  canInjectInterrupt(): boolean {
    return (this.cpu.flags & IF) !== 0 && !this.shadowActive() && this.extInt < 0 && this.pending === P_NONE && !this.replay;
  }

  /** Makes the current or next run() return EXIT_INTR (KVM's immediate_exit). */
  kick(): void {
    this.kicked = true;
  }

  private shadowActive(): boolean {
    return this.sys.shadow && this.cpu.retired === this.sys.shadowAt + 1;
  }

  // ================================================================ run

  private setExit(reason: number): number {
    this.exit.reason = reason;
    this.exits++;
    return reason;
  }

  private internal(message: string): number {
    this.exit.message = message;
    return this.setExit(EXIT_INTERNAL_ERROR);
  }

  private shutdown(message: string): number {
    this.exit.message = message;
    this.halted = false;
    return this.setExit(EXIT_SHUTDOWN);
  }

  /** Delivers an event; returns 0 or an exit reason. */
  private raise(vector: number, kind: number, err: number): number {
    const r = this.sys.deliver(vector, kind, err);
    if (r === DELIVER_SHUTDOWN) return this.shutdown(`triple fault (vector ${vector})`);
    if (r === DELIVER_EXIT) return this.internal(`event ${vector} could not be delivered (IDT, GDT, TSS or stack outside RAM, or a task gate)`);
    return 0;
  }

  private raiseSoft(vector: number, kind: number, next: number): number {
    const r = this.sys.deliver(vector, kind, -1, next);
    if (r === DELIVER_SHUTDOWN) return this.shutdown(`triple fault (vector ${vector})`);
    if (r === DELIVER_EXIT) return this.internal(`event ${vector} could not be delivered`);
    return 0;
  }

  /** Completes the exit the machine just handled. Returns 0 or an exit reason. */
  private completePending(): number {
    const p = this.pending;
    this.pending = P_NONE;
    const before = this.cpu.retired;
    if (p === P_IO) {
      const st = this.sys.completeIo();
      if (st === IO_MEM_EXIT) return this.leave();
      if (st !== 0) return this.raiseFault();
      return (this.sys.bpIo | this.mem.watchHits | (this.cpu.flags & TF)) !== 0 ? this.ioTraps(before) : 0;
    }
    if (p === P_MEM && this.sys.ioReq.memStage) {
      // The machine wrote an INS element to its device: commit it and finish the INS.
      this.mem.clearLog();
      const st = this.sys.completeIoWrite();
      if (st === IO_MEM_EXIT) return this.leave();
      if (st !== 0) return this.raiseFault();
      return this.ioTraps(before);
    }
    if (p === P_MEM) {
      const m = this.exit.mmio;
      const d = m.data;
      const lo = d[0] | (d[1] << 8) | (d[2] << 16) | (d[3] << 24);
      const hi = d[4] | (d[5] << 8) | (d[6] << 16) | (d[7] << 24);
      this.mem.complete(lo, hi);
      this.replay = true;
    }
    return 0;
  }

  /**
   * Debug traps after an I/O instruction retired in completePending: I/O breakpoints, data
   * breakpoints hit by its memory side, TF single-step. 0 or an exit reason.
   */
  private ioTraps(before: number): number {
    const cpu = this.cpu;
    const sys = this.sys;
    if (cpu.retired === before) return 0;
    const r = sys.ioReq;
    const hits = ioBreak(sys, r.port, r.size) | this.mem.watchHits;
    this.mem.watchHits = 0;
    const bs = (cpu.flags & TF) !== 0 ? DR6_BS : 0;
    if (hits === 0 && bs === 0) return 0;
    if (hits !== 0) sys.dr6 = (sys.dr6 & ~0xf) | hits;
    sys.dr6 |= bs;
    return this.raise(DB, EV_EXC, -1);
  }

  /** Delivers cpu.faultVector as a hardware exception. */
  private raiseFault(): number {
    const cpu = this.cpu;
    const v = cpu.faultVector;
    const err = hasErrorCode(v) && (cpu.cr0 & CR0_PE) !== 0 ? cpu.faultError : -1;
    return this.raise(v, EV_EXC, err);
  }

  /** Turns a VEC_EXIT recorded by the I/O hook or the memory adapter into an exit. */
  private leave(): number {
    const sys = this.sys;
    const mem = this.mem;
    if (sys.ioReq.pending) {
      const r = sys.ioReq;
      const io = this.exit.io;
      io.port = r.port;
      io.size = r.size;
      io.input = r.input;
      io.count = r.count;
      io.data = this.ioView(r.count * r.size);
      this.pending = P_IO;
      return this.setExit(EXIT_IO);
    }
    switch (mem.pendKind) {
      case PEND_MMIO: {
        const m = this.exit.mmio;
        m.address = mem.pendGpa;
        m.size = mem.pendSize;
        m.write = mem.pendWrite;
        const lo = mem.pendWrite ? mem.pendLo : 0;
        const hi = mem.pendWrite ? mem.pendHi : 0;
        for (let i = 0; i < 4; i++) {
          m.data[i] = lo >>> (8 * i);
          m.data[i + 4] = hi >>> (8 * i);
        }
        this.pending = P_MEM;
        return this.setExit(EXIT_MMIO);
      }
      case PEND_EPT: {
        const e = this.exit.ept;
        e.gpa = mem.pendGpa;
        e.qualification = mem.pendQual;
        e.linear = mem.pendLa;
        e.size = mem.pendSize;
        e.write = mem.pendWrite;
        // Completed like an MMIO access unless the machine fixes the mapping and calls retryAccess().
        const m = this.exit.mmio;
        m.address = mem.pendGpa;
        m.size = mem.pendSize;
        m.write = mem.pendWrite;
        m.data.fill(0xff);
        if (mem.pendWrite) for (let i = 0; i < 4; i++) {
          m.data[i] = mem.pendLo >>> (8 * i);
          m.data[i + 4] = mem.pendHi >>> (8 * i);
        }
        this.pending = P_MEM;
        return this.setExit(EXIT_EPT_VIOLATION);
      }
      case PEND_APIC:
        mem.complete(0, 0);
        this.replay = true;
        return 0;
      case PEND_FETCH:
        mem.clearLog();
        return this.internal(`instruction fetch or access at guest-physical 0x${mem.pendGpa.toString(16)} that is not RAM`);
    }
    return this.internal('an access left the vCPU without an exit to report');
  }

  /** Views of the I/O data buffer by length, made once (no allocation per exit). */
  private readonly ioViews: (Uint8Array | undefined)[] = [];
  private ioView(n: number): Uint8Array {
    let v = this.ioViews[n];
    if (v === undefined) {
      v = this.sys.ioReq.data.subarray(0, n);
      this.ioViews[n] = v;
    }
    return v;
  }

  /** After an EPT-violation exit: the machine changed the mapping; the access is retried for real. */
  retryAccess(): void {
    if (this.pending === P_MEM) {
      this.pending = P_NONE;
      this.mem.retry();
      // An INS element's write: redo the write itself, not the whole INS (the port was read).
      if (this.sys.ioReq.memStage) {
        this.sys.ioReq.memStage = false;
        this.pending = P_IO;
      }
    }
  }

  /**
   * Runs guest code until an exit; at most maxInstructions instructions (then EXIT_BUDGET).
   * Returns the exit reason (also in this.exit.reason).
   */
  run(maxInstructions = 10_000_000): number {
    const cpu = this.cpu;
    const sys = this.sys;
    const apic = this.apic;
    let r: number;
    if (this.pending !== P_NONE) {
      r = this.completePending();
      if (r !== 0) return r;
    }
    let left = maxInstructions;
    const clock = this.time instanceof InstructionClock ? this.time : null;
    for (;;) {
      if (this.initSipiPending) this.initSipi();
      if (this.waitingForSipi) return this.setExit(EXIT_HLT);
      // A kick waits for a replayed instruction to finish, so that no access is half done.
      if (this.kicked && !this.replay) {
        this.kicked = false;
        return this.setExit(EXIT_INTR);
      }
      if (left <= 0) return this.setExit(EXIT_BUDGET);
      if (!this.replay) {
        const now = this.time.now();
        apic.poll(now);
        // Events, highest priority first.
        if (this.excVector >= 0) {
          const v = this.excVector;
          this.excVector = -1;
          r = this.raise(v, EV_EXC, this.excError);
          if (r !== 0) return r;
          this.halted = false;
        } else if (!this.shadowActive()) {
          if (this.nmiPending && !sys.nmiBlocked) {
            this.nmiPending = false;
            r = this.raise(NMI, EV_NMI, -1);
            if (r !== 0) return r;
            this.halted = false;
            this.interruptsDelivered++;
          } else if ((cpu.flags & IF) !== 0) {
            let v: number;
            if (this.extInt >= 0) {
              v = this.extInt;
              this.extInt = -1;
            } else {
              v = apic.pending();
              if (v >= 0) apic.ack(v);
            }
            if (v >= 0) {
              r = this.raise(v, EV_EXT, -1);
              if (r !== 0) return r;
              this.halted = false;
              this.interruptsDelivered++;
            } else if (this.requestInterruptWindow) return this.setExit(EXIT_IRQ_WINDOW);
          }
        }
        if (this.halted) {
          const dl = apic.nextDeadlineNs();
          // Leap to the timer only when its interrupt can wake the CPU (IF = 1): with IF = 0
          // only an NMI, INIT or the machine can, so the machine gets the HLT exit.
          if (clock != null && dl >= 0 && (cpu.flags & IF) !== 0) {
            clock.advanceTo(dl);
            continue;
          }
          return this.setExit(EXIT_HLT);
        }
      }
      // How many instructions before the next check.
      let slice = left;
      const tf = (cpu.flags & TF) !== 0;
      const watching = sys.bpExec !== 0 || this.mem.watchMask !== 0 || (cpu.flags & RF) !== 0;
      if (this.replay || tf || watching || this.debug.singleStep || this.shadowActive()) slice = 1;
      else {
        if (this.nmiPending || this.extInt >= 0 || apic.hasIrr()) slice = Math.min(slice, 64);
        const dl = apic.nextDeadlineNs();
        if (dl >= 0) {
          if (clock != null) slice = Math.min(slice, Math.max(1, Math.ceil((dl - clock.now()) / clock.nsPerInstruction)));
          else slice = Math.min(slice, 4096);
        }
      }
      if (watching && !this.replay) {
        // Instruction breakpoints (faults, before the instruction; RF = 1 suppresses them and
        // is cleared as the instruction starts, SDM 17.3.1.1). Data hits are counted afresh.
        this.mem.watchHits = 0;
        if ((cpu.flags & RF) !== 0) {
          cpu.flags &= ~RF;
          this.rfRetired = cpu.retired;
        } else if (sys.bpExec !== 0 && cpu.retired !== this.rfRetired) {
          const hit = execBreak(sys, cpu.csize === 8 ? cpu.rip : (cpu.segBase[CS] + cpu.rip) >>> 0);
          if (hit !== 0) {
            sys.dr6 = (sys.dr6 & ~0xf) | hit;
            left--;
            r = this.raise(DB, EV_EXC, -1);
            if (r !== 0) return r;
            continue;
          }
        }
      }
      const before = cpu.retired;
      const wasReplay = this.replay;
      this.replay = false;
      const x = cpu.run(slice);
      const done = cpu.retired - before;
      left -= done > 0 ? done : 1;
      switch (x) {
        case EXIT_BUDGET:
        case EXIT_BREAK:
          break;
        case EXIT_HLT:
          this.halted = true;
          break;
        case EXIT_SOFTINT: {
          // run() moved RIP past the instruction; faults in the delivery report the instruction.
          // Which form it was (CD ib, CC, CE, F1) is read back from the code bytes, since the
          // decode cache may have served the record.
          const next = cpu.rip;
          const vec = cpu.faultVector;
          const base = cpu.csize === 8 ? 0 : cpu.segBase[CS];
          const b1 = this.mem.peek8(base + next - 1);
          const isIntN = b1 === vec && this.mem.peek8(base + next - 2) === 0xcd;
          const kind = isIntN ? EV_SOFT : b1 === 0xf1 ? EV_ICEBP : EV_SOFTEXC;
          const len = isIntN ? 2 : 1;
          cpu.rip = cpu.csize === 8 ? next - len : cpu.csize === 4 ? (next - len) >>> 0 : (next - len) & 0xffff;
          if (this.debug.int3 && !isIntN && b1 === 0xcc) {
            cpu.retired--;
            this.exit.debugVector = 3;
            return this.setExit(EXIT_DEBUG);
          }
          if ((cpu.flags & VM) !== 0 && kind === EV_SOFT && (cpu.flags & 0x3000) !== 0x3000) {
            // INT n in virtual-8086 mode with IOPL < 3: #GP(0) at the INT instruction.
            cpu.retired--;
            r = this.raise(13, EV_EXC, 0);
          } else r = this.raiseSoft(cpu.faultVector, kind, next);
          if (r !== 0) return r;
          continue;
        }
        case EXIT_SYSCALL:
          return this.internal('SYSCALL exit in system mode');
        case EXIT_EXCEPTION:
          if (cpu.faultVector === VEC_EXIT) {
            r = this.leave();
            if (r !== 0) return r;
            continue;
          }
          if (wasReplay) this.mem.clearLog();
          r = this.raiseFault();
          if (r !== 0) return r;
          continue;
      }
      // Single-step: a trap after an instruction that started with TF = 1.
      if (done > 0 && slice === 1) {
        // Debug traps of the instruction: TF single-step (BS), data breakpoints (B0-B3).
        const hits = this.mem.watchHits;
        if ((tf && x !== EXIT_HLT) || hits !== 0) {
          this.mem.watchHits = 0;
          if (hits !== 0) sys.dr6 = (sys.dr6 & ~0xf) | hits;
          if (tf && x !== EXIT_HLT) sys.dr6 |= DR6_BS;
          r = this.raise(DB, EV_EXC, -1);
          if (r !== 0) return r;
        }
        if (this.debug.singleStep) {
          this.exit.debugVector = DB;
          return this.setExit(EXIT_DEBUG);
        }
      }
    }
  }

  // ================================================================ registers

  getRegs(): VcpuRegs & { readonly version: 1 } {
    const cpu = this.cpu;
    const o: Record<string, U64> = {};
    for (let r = 0; r < 16; r++) o[GPR_NAMES[r]] = partsToU64(cpu.lo[r], cpu.hi[r]);
    const rip = cpu.rip;
    return {
      version: 1,
      rax: o.rax, rbx: o.rbx, rcx: o.rcx, rdx: o.rdx, rsi: o.rsi, rdi: o.rdi, rsp: o.rsp, rbp: o.rbp,
      r8: o.r8, r9: o.r9, r10: o.r10, r11: o.r11, r12: o.r12, r13: o.r13, r14: o.r14, r15: o.r15,
      rip: partsToU64(rip | 0, Math.floor(rip / TWO32)),
      rflags: cpu.getFlags() >>> 0,
    };
  }

  setRegs(regs: VcpuRegs): void {
    if (regs == null || typeof regs !== 'object') throw new TypeError('setRegs: expected an object');
    if (regs.version !== undefined && regs.version !== 1) throw new TypeError('setRegs: unsupported version');
    const cpu = this.cpu;
    const lo = new Int32Array(16);
    const hi = new Int32Array(16);
    const rec = regs as unknown as Record<string, U64 | undefined>;
    for (let r = 0; r < 16; r++) {
      const v = rec[GPR_NAMES[r]];
      if (v === undefined) {
        if (r < 8) throw new TypeError(`setRegs: ${GPR_NAMES[r]} is missing`);
        lo[r] = cpu.lo[r];
        hi[r] = cpu.hi[r];
        continue;
      }
      u64ToParts(v, `setRegs.${GPR_NAMES[r]}`, PARTS);
      lo[r] = PARTS[0];
      hi[r] = PARTS[1];
    }
    u64ToParts(regs.rip, 'setRegs.rip', PARTS);
    const ripHi = PARTS[1];
    const ripLo = PARTS[0];
    if (typeof regs.rflags !== 'number' || !Number.isInteger(regs.rflags) || regs.rflags < 0 || regs.rflags > 0xffffffff) throw new TypeError('setRegs: rflags must be a 32-bit unsigned integer');
    cpu.lo.set(lo);
    cpu.hi.set(hi);
    const flags = (regs.rflags & 0x3f7fd7) | 2;
    cpu.setFlags(flags);
    // RIP: signed-canonical in 64-bit mode, a 32-bit offset otherwise.
    cpu.rip = cpu.csize === 8 ? (ripHi << 16 >> 16) * TWO32 + (ripLo >>> 0) : ripLo >>> 0;
    this.sys.updateMode();
    this.mem.clearLog();
  }

  private getSeg(s: number): VcpuSegment {
    const cpu = this.cpu;
    return segOut(cpu.segSel[s], cpu.segBase[s], cpu.segLimit[s], cpu.segAttr[s]);
  }

  getSregs(): VcpuSregs & { readonly version: 1 } {
    const cpu = this.cpu;
    const sys = this.sys;
    return {
      version: 1,
      cs: this.getSeg(CS), ds: this.getSeg(DS), es: this.getSeg(ES), fs: this.getSeg(FS), gs: this.getSeg(GS), ss: this.getSeg(SS),
      tr: segOut(sys.trSel, sys.trBase, sys.trLimit, sys.trAttr),
      ldt: segOut(sys.ldtSel, sys.ldtBase, sys.ldtLimit, sys.ldtAttr),
      gdt: { base: sys.gdtBase, limit: sys.gdtLimit },
      idt: { base: sys.idtBase, limit: sys.idtLimit },
      cr0: cpu.cr0 >>> 0,
      cr2: sys.cr2,
      cr3: partsToU64(sys.cr3Lo, sys.cr3Hi),
      cr4: cpu.cr4 >>> 0,
      cr8: sys.getCr8(),
      efer: sys.efer >>> 0,
      apicBase: this.apic.baseMsr >>> 0,
    };
  }

  setSregs(s: VcpuSregs): void {
    if (s == null || typeof s !== 'object') throw new TypeError('setSregs: expected an object');
    if (s.version !== undefined && s.version !== 1) throw new TypeError('setSregs: unsupported version');
    const segs = SEG_NAMES.map((n) => segIn(s[n], n));
    const tr = segIn(s.tr, 'tr');
    const ldt = segIn(s.ldt, 'ldt');
    const gdt = dtIn(s.gdt, 'gdt');
    const idt = dtIn(s.idt, 'idt');
    const u32 = (v: unknown, what: string): number => {
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new TypeError(`setSregs: ${what} must be a 32-bit unsigned integer`);
      return v;
    };
    const cr0 = u32(s.cr0, 'cr0');
    const cr4 = u32(s.cr4, 'cr4');
    const efer = u32(s.efer, 'efer');
    const apicBase = u32(s.apicBase, 'apicBase');
    const cr2 = num(s.cr2, 'setSregs.cr2');
    u64ToParts(s.cr3, 'setSregs.cr3', PARTS);
    const cr3Lo = PARTS[0];
    const cr3Hi = PARTS[1];
    if ((cr0 & CR0_PG) !== 0 && (cr0 & CR0_PE) === 0) throw new TypeError('setSregs: CR0.PG without CR0.PE');
    if ((efer & EFER_LMA) !== 0 && ((cr0 & CR0_PG) === 0 || (cr4 & CR4_PAE) === 0 || (efer & EFER_LME) === 0)) throw new TypeError('setSregs: EFER.LMA needs CR0.PG, CR4.PAE and EFER.LME');
    const cpu = this.cpu;
    const sys = this.sys;
    for (let i = 0; i < 6; i++) {
      const g = segs[i];
      sys.setSeg(i, g.sel, g.base, g.limit, g.attr);
    }
    sys.trSel = tr.sel;
    sys.trBase = tr.base;
    sys.trLimit = tr.limit;
    sys.trAttr = tr.attr;
    sys.ldtSel = ldt.sel;
    sys.ldtBase = ldt.base;
    sys.ldtLimit = ldt.limit;
    sys.ldtAttr = ldt.attr;
    sys.gdtBase = gdt.base;
    sys.gdtLimit = gdt.limit;
    sys.idtBase = idt.base;
    sys.idtLimit = idt.limit;
    cpu.cr0 = cr0 | 0;
    cpu.cr4 = cr4 | 0;
    sys.efer = efer | 0;
    sys.cr2 = cr2;
    sys.cr3Lo = cr3Lo;
    sys.cr3Hi = cr3Hi;
    if (s.cr8 !== undefined) this.apic.setTpr((u32(s.cr8, 'cr8') & 15) << 4);
    if (!this.apic.writeBase(apicBase)) this.apic.baseMsr = apicBase;
    // CPL: SS.DPL in protected mode (as VMX defines it), 0 in real mode, 3 in V86.
    cpu.cpl = (cr0 & CR0_PE) === 0 ? 0 : (segs[SS].attr >> 5) & 3;
    this.syncMmu();
    sys.updateMode();
    this.mem.clearLog();
  }

  getFpu(): VcpuFpu {
    const cpu = this.cpu;
    return {
      version: 1,
      fpr: Array.from(cpu.fpr),
      fprExt: Array.from(cpu.fprExt),
      fcw: cpu.fpCw,
      fsw: cpu.fpSw,
      ftw: cpu.fpTag,
      top: cpu.fpTop,
      mmx: Array.from(cpu.mmx),
      xmm: Array.from(cpu.xmm),
      mxcsr: cpu.mxcsr >>> 0,
    };
  }

  setFpu(f: VcpuFpu): void {
    if (f == null || f.version !== 1) throw new TypeError('setFpu: unsupported version');
    const arr = (a: unknown, n: number, what: string, check: (x: number) => boolean): number[] => {
      if (!Array.isArray(a) || a.length !== n || !a.every((x) => typeof x === 'number' && check(x))) throw new TypeError(`setFpu: ${what} must be ${n} numbers`);
      return a as number[];
    };
    const u32 = (x: number): boolean => Number.isInteger(x) && x >= 0 && x <= 0xffffffff;
    const i32 = (x: number): boolean => Number.isInteger(x) && x >= -0x80000000 && x <= 0x7fffffff;
    const fpr = arr(f.fpr, 8, 'fpr', () => true);
    const ext = arr(f.fprExt, 8, 'fprExt', u32);
    const mmx = arr(f.mmx, 16, 'mmx', i32);
    const xmm = arr(f.xmm, 64, 'xmm', u32);
    for (const [k, v] of [['fcw', f.fcw], ['fsw', f.fsw], ['ftw', f.ftw]] as const) if (!Number.isInteger(v) || v < 0 || v > 0xffff) throw new TypeError(`setFpu: ${k} must be 16-bit`);
    if (!Number.isInteger(f.top) || f.top < 0 || f.top > 7) throw new TypeError('setFpu: top must be 0..7');
    if (!u32(f.mxcsr) || (f.mxcsr & 0xffff0000) !== 0) throw new TypeError('setFpu: bad mxcsr');
    const cpu = this.cpu;
    cpu.fpr.set(fpr);
    cpu.fprExt.set(ext);
    cpu.mmx.set(mmx);
    cpu.xmm.set(xmm);
    cpu.fpCw = f.fcw;
    cpu.fpSw = f.fsw;
    cpu.fpTag = f.ftw;
    cpu.fpTop = f.top;
    cpu.mxcsr = f.mxcsr;
  }

  /** Reads MSRs (default: MSR_SAVE_LIST); unknown indexes are left out. */
  getMsrs(indexes: readonly number[] = MSR_SAVE_LIST): VcpuMsr[] {
    const out: VcpuMsr[] = [];
    for (const i of indexes) if (this.sys.readMsr(i, PARTS)) out.push({ index: i >>> 0, value: partsToU64(PARTS[0], PARTS[1]) });
    return out;
  }

  /** Writes MSRs as WRMSR would (without the CPL check); returns how many were accepted. */
  setMsrs(msrs: readonly VcpuMsr[]): number {
    if (typeof msrs !== 'object' || msrs == null || typeof msrs.length !== 'number') throw new TypeError('setMsrs: expected an array');
    let n = 0;
    for (const m of msrs) {
      if (m == null || !Number.isInteger(m.index) || m.index < 0 || m.index > 0xffffffff) throw new TypeError('setMsrs: bad index');
      u64ToParts(m.value, `setMsrs[0x${m.index.toString(16)}]`, PARTS);
      const save = this.cpu.faultVector;
      if (m.index === MSR_EFER) {
        this.sys.efer = PARTS[0];
        this.mem.mmu.writeEfer(PARTS[0]);
        this.sys.updateMode();
        n++;
        continue;
      }
      if (this.sys.writeMsr(m.index, PARTS[0], PARTS[1]) !== 1) n++;
      this.cpu.faultVector = save;
    }
    return n;
  }

  getLapic(): LapicState {
    return this.apic.getState();
  }

  setLapic(s: LapicState): void {
    this.apic.setState(s);
  }

  getDebugRegs(): VcpuDebugRegs & { readonly version: 1 } {
    const sys = this.sys;
    const db: U64[] = [];
    for (let n = 0; n < 4; n++) db.push(partsToU64(sys.drLo[n], sys.drHi[n]));
    return { version: 1, db, dr6: sys.dr6 >>> 0, dr7: sys.dr7 >>> 0 };
  }

  setDebugRegs(d: VcpuDebugRegs): void {
    if (d == null || typeof d !== 'object' || (d.version !== undefined && d.version !== 1)) throw new TypeError('setDebugRegs: unsupported version');
    if (!Array.isArray(d.db) || d.db.length !== 4) throw new TypeError('setDebugRegs: db must hold DR0-DR3');
    if (!Number.isInteger(d.dr6) || d.dr6 < 0 || d.dr6 > 0xffffffff) throw new TypeError('setDebugRegs: dr6 must be a 32-bit value');
    if (!Number.isInteger(d.dr7) || d.dr7 < 0 || d.dr7 > 0xffffffff) throw new TypeError('setDebugRegs: dr7 must be a 32-bit value');
    const lo = new Int32Array(4);
    const hi = new Int32Array(4);
    for (let n = 0; n < 4; n++) {
      u64ToParts(d.db[n] as U64, `setDebugRegs: db[${n}]`, PARTS);
      lo[n] = PARTS[0];
      hi[n] = PARTS[1];
    }
    const sys = this.sys;
    sys.drLo.set(lo);
    sys.drHi.set(hi);
    sys.dr6 = (d.dr6 | DR6_FIXED_1) & ~0x1000;
    sys.dr7 = (d.dr7 | DR7_FIXED_1) & ~0xd800;
    updateBreakpoints(sys);
  }

  getEvents(): VcpuEvents {
    return { version: 1, halted: this.halted, nmiPending: this.nmiPending, nmiBlocked: this.sys.nmiBlocked, shadow: this.shadowActive(), extInt: this.extInt, waitingForSipi: this.waitingForSipi };
  }

  setEvents(e: VcpuEvents): void {
    if (e == null || e.version !== 1) throw new TypeError('setEvents: unsupported version');
    if (!Number.isInteger(e.extInt) || e.extInt < -1 || e.extInt > 255) throw new TypeError('setEvents: extInt must be -1..255');
    this.halted = e.halted === true;
    this.nmiPending = e.nmiPending === true;
    this.sys.nmiBlocked = e.nmiBlocked === true;
    this.sys.shadow = e.shadow === true;
    this.sys.shadowAt = this.cpu.retired - 1;
    this.extInt = e.extInt;
    this.waitingForSipi = e.waitingForSipi === true;
  }
}

interface SegIn {
  sel: number;
  base: number;
  limit: number;
  attr: number;
}

function segOut(sel: number, base: number, limit: number, attr: number): VcpuSegment {
  const present = (attr & ATTR_P) !== 0 ? 1 : 0;
  return {
    selector: sel,
    base: partsToU64(base | 0, Math.floor(base / TWO32)),
    limit: limit >>> 0,
    type: attr & 0xf,
    present,
    dpl: (attr >> 5) & 3,
    db: (attr & ATTR_DB) !== 0 ? 1 : 0,
    s: (attr & ATTR_S) !== 0 ? 1 : 0,
    l: (attr & ATTR_L) !== 0 ? 1 : 0,
    g: (attr & ATTR_G) !== 0 ? 1 : 0,
    avl: (attr & 0x1000) !== 0 ? 1 : 0,
    unusable: present ? 0 : 1,
  };
}

function segIn(g: VcpuSegment, what: string): SegIn {
  if (g == null || typeof g !== 'object') throw new TypeError(`setSregs: ${what} is missing`);
  const bit = (v: unknown, k: string): number => {
    if (v !== 0 && v !== 1) throw new TypeError(`setSregs: ${what}.${k} must be 0 or 1`);
    return v;
  };
  if (!Number.isInteger(g.selector) || g.selector < 0 || g.selector > 0xffff) throw new TypeError(`setSregs: ${what}.selector must be 16-bit`);
  if (!Number.isInteger(g.limit) || g.limit < 0 || g.limit > 0xffffffff) throw new TypeError(`setSregs: ${what}.limit must be 32-bit`);
  if (!Number.isInteger(g.type) || g.type < 0 || g.type > 15) throw new TypeError(`setSregs: ${what}.type must be 0..15`);
  if (!Number.isInteger(g.dpl) || g.dpl < 0 || g.dpl > 3) throw new TypeError(`setSregs: ${what}.dpl must be 0..3`);
  const base = num(g.base, `setSregs.${what}.base`);
  const present = bit(g.present, 'present') === 1 && bit(g.unusable, 'unusable') === 0;
  const attr = g.type | (bit(g.s, 's') << 4) | (g.dpl << 5) | (present ? ATTR_P : 0) | (bit(g.avl, 'avl') << 12) | (bit(g.l, 'l') << 13) | (bit(g.db, 'db') << 14) | (bit(g.g, 'g') << 15);
  return { sel: g.selector, base, limit: g.limit, attr };
}

function dtIn(t: VcpuDtable, what: string): { base: number; limit: number } {
  if (t == null || typeof t !== 'object') throw new TypeError(`setSregs: ${what} is missing`);
  if (!Number.isInteger(t.limit) || t.limit < 0 || t.limit > 0xffff) throw new TypeError(`setSregs: ${what}.limit must be 16-bit`);
  return { base: num(t.base, `setSregs.${what}.base`), limit: t.limit };
}

void EV_ICEBP;
void EXIT_EXCEPTION;
void PEND_NONE;
