/**
 * The system architecture of one vCPU: modes, descriptor tables, segment loads with their
 * checks, far transfers, IRET, event delivery through the IDT (real mode, 16/32-bit gates,
 * 64-bit gates with IST), double and triple faults, control registers, MSRs, port I/O,
 * SYSCALL/SYSRET, SYSENTER/SYSEXIT and the CPUID model.
 *
 * The CPU (src/cpu.ts) calls in through SysHooks on slow paths; the system opcodes
 * (src/system/ops.ts) call the methods here; the vCPU run loop (src/system/vcpu.ts) delivers
 * events with deliver() and turns recorded exits into exit records.
 *
 * Conventions: methods that can fault return a status (ST_OK, ST_FAULT with cpu.faultVector /
 * faultError set, ST_BREAK) and change nothing before every check passed ("commit last").
 */
import {
  AC,
  ARITH_FLAGS,
  BP,
  CS,
  DB,
  DF,
  DF_VEC,
  DS,
  ES,
  FS,
  GP,
  GS,
  ID,
  IF,
  IOPL,
  NMI,
  NP,
  NT,
  OFV,
  PF_VEC,
  R11,
  RAX,
  RCX,
  RDI,
  RDX,
  RF,
  RSI,
  RSP,
  SS,
  SS_VEC,
  ST_BREAK,
  ST_FAULT,
  ST_OK,
  TF,
  TS,
  UD,
  VEC_EXIT,
  VIF,
  VIP,
  VM,
} from '../constants';
import { canon, hiOf, type Cpu, type SysHooks } from '../cpu';
import { cpuidLeaf } from '../exec/misc';
import type { Insn } from '../insn';
import { XLATE_OK } from '@ringzero/mmu-ept';
import { PEND_APIC, type MmuMemory } from './paging';
import { MEM_EXIT } from '../memory';
import {
  ATTR_DB,
  ATTR_G,
  ATTR_L,
  ATTR_P,
  ATTR_S,
  CR0_CD,
  CR0_NW,
  CR0_PE,
  CR0_PG,
  CR0_TS,
  CR0_VALID,
  CR4_PAE,
  CR4_TSD,
  CR4_VALID,
  EFER_LMA,
  EFER_LME,
  EFER_NXE,
  EFER_SCE,
  EFER_VALID,
  MSR_APIC_BASE,
  MSR_ARCH_CAPABILITIES,
  MSR_BIOS_SIGN_ID,
  MSR_CSTAR,
  MSR_EFER,
  MSR_FEATURE_CONTROL,
  MSR_FLUSH_CMD,
  MSR_FS_BASE,
  MSR_GS_BASE,
  MSR_KERNEL_GS_BASE,
  MSR_LSTAR,
  MSR_MCG_CAP,
  MSR_MCG_STATUS,
  MSR_MISC_ENABLE,
  MSR_MTRRCAP,
  MSR_MTRR_DEF_TYPE,
  MSR_MTRR_FIX16K_80000,
  MSR_MTRR_FIX16K_A0000,
  MSR_MTRR_FIX4K_C0000,
  MSR_MTRR_FIX4K_F8000,
  MSR_MTRR_FIX64K,
  MSR_MTRR_PHYSBASE0,
  MSR_MTRR_PHYSMASK7,
  MSR_PAT,
  MSR_PLATFORM_ID,
  MSR_PRED_CMD,
  MSR_SFMASK,
  MSR_SPEC_CTRL,
  MSR_STAR,
  MSR_SYSENTER_CS,
  MSR_SYSENTER_EIP,
  MSR_SYSENTER_ESP,
  MSR_TSC,
  MSR_TSC_ADJUST,
  MSR_TSC_AUX,
  MSR_X2APIC_FIRST,
  MSR_X2APIC_LAST,
  SYS_CALL,
  SYS_CALL16,
  SYS_INT,
  SYS_INT16,
  SYS_LDT,
  SYS_TASK,
  SYS_TRAP,
  SYS_TRAP16,
  SYS_TSS16_AVAIL,
  SYS_TSS16_BUSY,
  SYS_TSS_AVAIL,
  SYS_TSS_BUSY,
  TYPE_A,
  TYPE_C,
  TYPE_CODE,
  TYPE_W,
} from './regs';

const TWO32 = 4294967296;

/** Event kinds for deliver(). */
export const EV_EXC = 0; // hardware exception (fault or trap raised by the CPU)
export const EV_EXT = 1; // external interrupt (APIC, PIC)
export const EV_NMI = 2;
export const EV_SOFT = 3; // INT n
export const EV_SOFTEXC = 4; // INT3, INTO (DPL checked like INT n)
export const EV_ICEBP = 5; // INT1 (no DPL check)

/** Results of deliver(). */
export const DELIVER_OK = 0;
export const DELIVER_SHUTDOWN = 1;
/** The IDT, GDT or a stack lives outside RAM: the vCPU cannot continue. */
export const DELIVER_EXIT = 2;

/** What the I/O hook recorded for the vCPU (valid while ioPending). */
export class IoRequest {
  pending = false;
  port = 0;
  /** Element size 1, 2, 4. */
  size = 1;
  /** true: IN/INS (the machine fills data). */
  input = false;
  /** Elements (string I/O may carry several). */
  count = 1;
  /** Data, count * size bytes, little-endian. */
  readonly data: Uint8Array = new Uint8Array(4096);
  /** Internal: string op, address size, its registers to advance on completion. */
  string = false;
  rep = false;
  asize = 4;
  nextRip = 0;
  /** INS: elements already written and committed (completion resumes there). */
  done = 0;
  /** INS: the write of element `done` left as an MMIO/EPT exit; the machine is completing it. */
  memStage = false;
}

/** completeIo(): the write of an INS element left the vCPU (an MMIO or EPT exit is recorded). */
export const IO_MEM_EXIT = -2;

/** Local APIC as the system part needs it (MSR access, TPR, base). */
export interface ApicRegs {
  /** IA32_APIC_BASE as lo (the high half is 0 on this model). */
  baseMsr: number;
  writeBase(v: number): boolean;
  readMsr(index: number, out: Int32Array): boolean;
  writeMsr(index: number, lo: number, hi: number): boolean;
  getTpr(): number;
  setTpr(v: number): void;
  /** TSC-deadline MSR. */
  readDeadline(out: Int32Array): void;
  writeDeadline(lo: number, hi: number): void;
}

/** Time as the vCPU sees it (nanoseconds). */
export interface TimeSource {
  now(): number;
}

function descBase(lo: number, hi: number): number {
  return ((lo >>> 16) | ((hi & 0xff) << 16) | (hi & 0xff000000)) >>> 0;
}

function descLimit(lo: number, hi: number): number {
  const l = (lo & 0xffff) | (hi & 0xf0000);
  return hi & 0x800000 ? (l * 4096 + 0xfff) : l;
}

function descAttr(hi: number): number {
  return (hi >>> 8) & 0xf0ff;
}

const DEFAULT_PAT_LO = 0x00070406;
const DEFAULT_PAT_HI = 0x00070406;

export class System implements SysHooks {
  readonly cpu: Cpu;
  readonly mem: MmuMemory;

  gdtBase = 0;
  gdtLimit = 0xffff;
  idtBase = 0;
  idtLimit = 0x3ff;
  ldtSel = 0;
  ldtBase = 0;
  ldtLimit = 0;
  ldtAttr = 0;
  trSel = 0;
  trBase = 0;
  trLimit = 0xffff;
  trAttr: number = ATTR_P | SYS_TSS_BUSY;

  cr2 = 0;
  cr3Lo = 0;
  cr3Hi = 0;
  efer = 0;
  /** DR0-DR3 as written (lo/hi halves), as linear addresses (dr: signed canonical form), DR6, DR7. */
  readonly drLo: Int32Array = new Int32Array(4);
  readonly drHi: Int32Array = new Int32Array(4);
  readonly dr: Float64Array = new Float64Array(4);
  dr6: number = 0xffff0ff0 | 0;
  dr7 = 0x400;
  /** Enabled instruction / I/O breakpoints (bit n = DRn), from DR7 (debug.ts updateBreakpoints). */
  bpExec = 0;
  bpIo = 0;
  /** DR6 B bits of I/O breakpoints hit by the I/O instruction that just completed (a trap). */
  dbTrap = 0;
  /** The next exception pushes RF = 1 although it is a #DB (general detect is a fault). */
  pushRf = false;

  // MSRs kept as lo/hi halves or canonical numbers.
  star = 0;
  starHi = 0;
  lstar = 0;
  cstar = 0;
  sfmask = 0;
  kernelGsBase = 0;
  sysenterCs = 0;
  sysenterEsp = 0;
  sysenterEip = 0;
  patLo: number = DEFAULT_PAT_LO;
  patHi: number = DEFAULT_PAT_HI;
  /** MTRRs: def type, 8 variable pairs (base lo/hi, mask lo/hi), 11 fixed (lo/hi). */
  mtrrDefType = 0;
  readonly mtrrVar: Int32Array = new Int32Array(32);
  readonly mtrrFixed: Int32Array = new Int32Array(22);
  miscEnable = 0x1;
  specCtrl = 0;
  tscOffset = 0;

  /** Events: interrupt shadow for the next instruction (STI, MOV SS, POP SS). */
  shadow = false;
  /** cpu.retired when the shadow was set (it covers the instruction after the one that set it). */
  shadowAt = 0;
  /** NMI delivered and not yet IRETed. */
  nmiBlocked = false;

  readonly ioReq: IoRequest = new IoRequest();
  apic: ApicRegs | null = null;
  time: TimeSource;
  /** APIC ID reported by CPUID. */
  apicId = 0;
  /** When set, an unknown MSR reads as 0 and writes are dropped instead of #GP (lenient mode). */
  ignoreUnknownMsrs = false;
  /** Last unknown MSR access (for diagnostics). */
  lastUnknownMsr = -1;

  // Descriptor scratch (fetchDesc).
  private dLo = 0;
  private dHi = 0;
  private dLa = 0;
  private readonly vals: Float64Array = new Float64Array(16);
  private readonly valsHi: Int32Array = new Int32Array(16);

  constructor(cpu: Cpu, mem: MmuMemory, time: TimeSource) {
    this.cpu = cpu;
    this.mem = mem;
    this.time = time;
  }

  // ================================================================ modes

  get pe(): boolean {
    return (this.cpu.cr0 & CR0_PE) !== 0;
  }

  get longMode(): boolean {
    return (this.efer & EFER_LMA) !== 0;
  }

  /** Recomputes code/stack sizes and the memory access kind from CR0, EFER, EFLAGS.VM and CS/SS. */
  updateMode(): void {
    const cpu = this.cpu;
    if ((cpu.cr0 & CR0_PE) === 0) {
      cpu.cpl = 0;
      cpu.csize = cpu.segAttr[CS] & ATTR_DB ? 4 : 2;
    } else if ((cpu.flags & VM) !== 0) {
      cpu.cpl = 3;
      cpu.csize = 2;
    } else if ((this.efer & EFER_LMA) !== 0 && (cpu.segAttr[CS] & ATTR_L) !== 0) cpu.csize = 8;
    else cpu.csize = cpu.segAttr[CS] & ATTR_DB ? 4 : 2;
    cpu.ssize = cpu.csize === 8 ? 8 : cpu.segAttr[SS] & ATTR_DB ? 4 : 2;
    this.updateSegChk();
    const user = cpu.cpl === 3;
    if (user !== this.mem.user) {
      // Fetch permissions differ between CPL 3 and the others: cached decodes are per privilege.
      this.mem.user = user;
      this.mem.codeWrites++;
    }
  }

  setSeg(s: number, sel: number, base: number, limit: number, attr: number): void {
    const cpu = this.cpu;
    cpu.segSel[s] = sel;
    cpu.segBase[s] = base;
    cpu.segLimit[s] = limit;
    cpu.segAttr[s] = attr;
    this.updateSegChk();
  }

  /**
   * Which segments need limit checks on data accesses (cpu.segChk): in protected and V86 mode
   * outside 64-bit code, every segment that is not flat (present, expand-up, limit 4 GiB - 1).
   */
  updateSegChk(): void {
    const cpu = this.cpu;
    let m = 0;
    if ((cpu.cr0 & CR0_PE) !== 0 && cpu.csize !== 8) {
      for (let s = 0; s < 6; s++) {
        const a = cpu.segAttr[s];
        if ((a & ATTR_P) === 0 || (a & 0x1c) === 0x14 || cpu.segLimit[s] < 0xffffffff) m |= 1 << s;
      }
    }
    cpu.segChk = m;
    cpu.limitVec = GP;
  }

  /** RIP to push for the event being delivered (-1: cpu.rip). */
  private pushRip = NaN;

  /** Current RIP as a linear-style number for pushing (IP/EIP/RIP). */
  private ripOf(): number {
    return this.pushRip === this.pushRip ? this.pushRip : this.cpu.rip;
  }

  // ================================================================ descriptors

  private memErr(code: number, la: number): number {
    return this.cpu.memFault(code, la);
  }

  /**
   * Reads the 8-byte descriptor of sel into dLo/dHi (dLa = its linear address).
   * vec/err: the fault for a selector beyond the table (GP or TS with sel & 0xfffc).
   */
  private fetchDesc(sel: number, vec: number): number {
    const idx = sel & 0xfff8;
    let base: number;
    let limit: number;
    if (sel & 4) {
      if ((this.ldtAttr & ATTR_P) === 0) return this.cpu.fault(vec, sel & 0xfffc);
      base = this.ldtBase;
      limit = this.ldtLimit;
    } else {
      base = this.gdtBase;
      limit = this.gdtLimit;
    }
    if (idx + 7 > limit) return this.cpu.fault(vec, sel & 0xfffc);
    const la = base + idx;
    const lo = this.mem.sysRead(la, 4);
    if (lo < 0) return this.memErr(lo, la);
    const hi = this.mem.sysRead(la + 4, 4);
    if (hi < 0) return this.memErr(hi, la + 4);
    this.dLo = lo | 0;
    this.dHi = hi | 0;
    this.dLa = la;
    return ST_OK;
  }

  /** Upper 8 bytes of a 16-byte system descriptor (long mode) into out lo/hi; checks the limit. */
  private fetchDescHigh(sel: number, vec: number): number {
    const idx = (sel & 0xfff8) + 8;
    const base = sel & 4 ? this.ldtBase : this.gdtBase;
    const limit = sel & 4 ? this.ldtLimit : this.gdtLimit;
    if (idx + 7 > limit) return this.cpu.fault(vec, sel & 0xfffc);
    const lo = this.mem.sysRead(base + idx, 4);
    if (lo < 0) return this.memErr(lo, base + idx);
    const hi = this.mem.sysRead(base + idx + 4, 4);
    if (hi < 0) return this.memErr(hi, base + idx + 4);
    this.vals[15] = lo >>> 0;
    this.valsHi[15] = hi | 0;
    return ST_OK;
  }

  /** Sets the accessed bit of the descriptor just fetched (like the hardware's locked write). */
  private touch(): number {
    if (this.dHi & 0x100) return ST_OK;
    this.dHi |= 0x100;
    const c = this.mem.sysWrite(this.dLa + 4, 4, this.dHi);
    return c < 0 ? this.memErr(c, this.dLa + 4) : ST_OK;
  }

  // ================================================================ segment loads (SysHooks)

  /** MOV Sreg / POP Sreg / LxS: loads a data or stack segment register. */
  loadSeg(cpu: Cpu, _d: Insn | null, s: number, sel: number): number {
    const st = this.loadSegNoBreak(s, sel);
    if (st !== ST_OK) return st;
    if (s === SS) {
      this.shadow = true;
      this.shadowAt = cpu.retired;
      return ST_BREAK;
    }
    return ST_OK;
  }

  /** The checks and the load of DS/ES/FS/GS/SS (no interrupt shadow). */
  loadSegNoBreak(s: number, sel: number): number {
    const cpu = this.cpu;
    if ((cpu.cr0 & CR0_PE) === 0 || (cpu.flags & VM) !== 0) {
      cpu.segSel[s] = sel;
      cpu.segBase[s] = sel * 16;
      if ((cpu.flags & VM) !== 0) {
        cpu.segLimit[s] = 0xffff;
        cpu.segAttr[s] = ATTR_P | ATTR_S | TYPE_W | TYPE_A | (3 << 5);
        this.updateSegChk();
      }
      if (s === SS) this.updateMode();
      return ST_OK;
    }
    const rpl = sel & 3;
    if ((sel & 0xfffc) === 0) {
      if (s === SS) {
        if (!(cpu.csize === 8 && cpu.cpl < 3 && rpl === cpu.cpl)) return cpu.fault(GP, 0);
        this.setSeg(SS, sel, 0, 0xffffffff, ATTR_P | ATTR_S | TYPE_W | TYPE_A | (cpu.cpl << 5));
        this.updateMode();
        return ST_OK;
      }
      this.setSeg(s, sel, 0, 0, 0);
      return ST_OK;
    }
    let st = this.fetchDesc(sel, GP);
    if (st !== ST_OK) return st;
    const hi = this.dHi;
    const attr = descAttr(hi);
    const type = attr & 0xf;
    const dpl = (attr >> 5) & 3;
    if (s === SS) {
      if (rpl !== cpu.cpl || dpl !== cpu.cpl || (attr & ATTR_S) === 0 || (type & TYPE_CODE) !== 0 || (type & TYPE_W) === 0) return cpu.fault(GP, sel & 0xfffc);
      if ((attr & ATTR_P) === 0) return cpu.fault(SS_VEC, sel & 0xfffc);
    } else {
      if ((attr & ATTR_S) === 0 || ((type & TYPE_CODE) !== 0 && (type & 2) === 0)) return cpu.fault(GP, sel & 0xfffc);
      // Data and non-conforming code: DPL >= max(CPL, RPL).
      if (((type & TYPE_CODE) === 0 || (type & TYPE_C) === 0) && (dpl < cpu.cpl || dpl < rpl)) return cpu.fault(GP, sel & 0xfffc);
      if ((attr & ATTR_P) === 0) return cpu.fault(NP, sel & 0xfffc);
    }
    st = this.touch();
    if (st !== ST_OK) return st;
    this.setSeg(s, sel, descBase(this.dLo, this.dHi), descLimit(this.dLo, this.dHi), descAttr(this.dHi));
    if (s === SS) this.updateMode();
    return ST_OK;
  }

  // ================================================================ stack helpers for transitions

  /** Linear address of [ssBase + rsp + off] for a stack of address size ssz (rsp as lo/hi). */
  private stackLa(ssz: number, ssBase: number, rspLo: number, rspHi: number, off: number): number {
    if (ssz === 8) {
      const s = (rspLo >>> 0) + off;
      return canon(s | 0, (rspHi + Math.floor(s / TWO32)) | 0);
    }
    if (ssz === 4) return (ssBase + ((rspLo + off) >>> 0)) >>> 0;
    return (ssBase + ((rspLo + off) & 0xffff)) >>> 0;
  }

  /**
   * Writes n values (this.vals/valsHi, first = highest address) below rsp on a stack; each value
   * is `size` bytes. Nothing is committed; returns ST_OK or the fault.
   */
  private pushVals(ssz: number, ssBase: number, rspLo: number, rspHi: number, n: number, size: number): number {
    for (let k = 0; k < n; k++) {
      const la = this.stackLa(ssz, ssBase, rspLo, rspHi, -(k + 1) * size);
      if (la !== la) return this.cpu.fault(SS_VEC, 0);
      const v = this.vals[k];
      const lo = v | 0;
      const hi = size === 8 ? this.valsHi[k] : 0;
      const c = size === 8 ? this.mem.write64(la, lo, hi) : size === 4 ? this.mem.write32(la, lo) : this.mem.write16(la, lo & 0xffff);
      if (c < 0) return this.memErr(c, la);
    }
    return ST_OK;
  }

  /** Reads n values of `size` bytes from [rsp + off...] into vals/valsHi (first = lowest). */
  private popVals(n: number, size: number, off: number): number {
    const cpu = this.cpu;
    for (let k = 0; k < n; k++) {
      const la = this.stackLa(cpu.ssize, cpu.segBase[SS], cpu.lo[RSP], cpu.hi[RSP], off + k * size);
      if (la !== la) return cpu.fault(SS_VEC, 0);
      const v = cpu.read(la, size);
      if (v < 0) return ST_FAULT;
      this.vals[k] = v;
      this.valsHi[k] = size === 8 ? cpu.vh : 0;
    }
    return ST_OK;
  }

  private setVal(k: number, v: number, vHi = 0): void {
    this.vals[k] = v;
    this.valsHi[k] = vHi;
  }

  private setRsp(ssz: number, lo: number, hi: number): void {
    const cpu = this.cpu;
    if (ssz === 8) {
      cpu.lo[RSP] = lo;
      cpu.hi[RSP] = hi;
    } else if (ssz === 4) {
      cpu.lo[RSP] = lo;
      if (this.longMode) cpu.hi[RSP] = 0;
    } else cpu.lo[RSP] = (cpu.lo[RSP] & ~0xffff) | (lo & 0xffff);
  }

  /** rsp - n (lo/hi) into tmpLo/tmpHi. */
  private tmpLo = 0;
  private tmpHi = 0;
  private sub(lo: number, hi: number, n: number): void {
    const s = (lo >>> 0) - n;
    this.tmpHi = (hi + Math.floor(s / TWO32)) | 0;
    this.tmpLo = s | 0;
  }

  // ================================================================ TSS

  /** Stack pointer for privilege level dpl from the TSS (32-bit or 16-bit TSS): into tmpLo, ss in return (or -1 fault). */
  private tssStack(dpl: number, ext: number): number {
    const cpu = this.cpu;
    const type = this.trAttr & 0xf;
    if ((this.trAttr & ATTR_P) === 0) return -cpu.fault(TS, (this.trSel & 0xfffc) | ext) - 1;
    if (type === SYS_TSS_BUSY || type === SYS_TSS_AVAIL) {
      const off = 4 + dpl * 8;
      if (off + 5 > this.trLimit) return -cpu.fault(TS, (this.trSel & 0xfffc) | ext) - 1;
      const esp = this.mem.sysRead(this.trBase + off, 4);
      if (esp < 0) return -this.memErr(esp, this.trBase + off) - 1;
      const ss = this.mem.sysRead(this.trBase + off + 4, 2);
      if (ss < 0) return -this.memErr(ss, this.trBase + off + 4) - 1;
      this.tmpLo = esp | 0;
      this.tmpHi = 0;
      return ss;
    }
    const off = 2 + dpl * 4;
    if (off + 3 > this.trLimit) return -cpu.fault(TS, (this.trSel & 0xfffc) | ext) - 1;
    const sp = this.mem.sysRead(this.trBase + off, 2);
    if (sp < 0) return -this.memErr(sp, this.trBase + off) - 1;
    const ss = this.mem.sysRead(this.trBase + off + 2, 2);
    if (ss < 0) return -this.memErr(ss, this.trBase + off + 2) - 1;
    this.tmpLo = sp;
    this.tmpHi = 0;
    return ss;
  }

  /** 64-bit TSS: RSPn (ist = 0) or ISTn into tmpLo/tmpHi. ST_OK or fault. */
  private tss64Stack(dpl: number, ist: number, ext: number): number {
    const off = ist > 0 ? 0x24 + (ist - 1) * 8 : 4 + dpl * 8;
    if (off + 7 > this.trLimit) return this.cpu.fault(TS, (this.trSel & 0xfffc) | ext);
    const lo = this.mem.sysRead(this.trBase + off, 4);
    if (lo < 0) return this.memErr(lo, this.trBase + off);
    const hi = this.mem.sysRead(this.trBase + off + 4, 4);
    if (hi < 0) return this.memErr(hi, this.trBase + off + 4);
    this.tmpLo = lo | 0;
    this.tmpHi = hi | 0;
    if (canon(this.tmpLo, this.tmpHi) !== canon(this.tmpLo, this.tmpHi)) return this.cpu.fault(SS_VEC, ext);
    return ST_OK;
  }

  /** Checks a new SS for an inner-privilege transition (descriptor into dLo/dHi). */
  private checkNewSs(ss: number, dpl: number, ext: number): number {
    const cpu = this.cpu;
    if ((ss & 0xfffc) === 0) return cpu.fault(TS, ext);
    let st = this.fetchDesc(ss, TS);
    if (st !== ST_OK) {
      if (cpu.faultVector === TS) cpu.faultError |= ext;
      return st;
    }
    const attr = descAttr(this.dHi);
    const type = attr & 0xf;
    if ((ss & 3) !== dpl || ((attr >> 5) & 3) !== dpl || (attr & ATTR_S) === 0 || (type & TYPE_CODE) !== 0 || (type & TYPE_W) === 0) return cpu.fault(TS, (ss & 0xfffc) | ext);
    if ((attr & ATTR_P) === 0) return cpu.fault(SS_VEC, (ss & 0xfffc) | ext);
    st = this.touch();
    return st;
  }

  // ================================================================ event delivery

  /**
   * Delivers an event (exception, interrupt, NMI, INT n) through the IVT/IDT, with the
   * double-fault and triple-fault rules. err < 0: no error code. For page faults cpu.faultAddress
   * is loaded into CR2. Returns DELIVER_OK, DELIVER_SHUTDOWN (triple fault) or DELIVER_EXIT.
   */
  deliver(vector: number, kind: number, err: number, retRip: number = NaN): number {
    const cpu = this.cpu;
    let vec = vector;
    let k = kind;
    let e = err;
    for (let round = 0; round < 3; round++) {
      if (vec === PF_VEC && k === EV_EXC) this.cr2 = cpu.faultAddress;
      // INT n / INT3 / INTO push the address after the instruction; a fault while delivering
      // them reports the instruction itself (cpu.rip), like any fault.
      this.pushRip = round === 0 ? retRip : NaN;
      const st = this.deliverOnce(vec, k, e);
      this.pushRip = NaN;
      if (st === ST_OK) {
        if (vec === NMI && k === EV_NMI) this.nmiBlocked = true;
        return DELIVER_OK;
      }
      const nv = cpu.faultVector;
      if (nv === VEC_EXIT) return DELIVER_EXIT;
      if (vec === DF_VEC && k === EV_EXC) return DELIVER_SHUTDOWN;
      const firstContrib = k === EV_EXC && (vec === 0 || (vec >= 10 && vec <= 13));
      const firstPf = k === EV_EXC && vec === PF_VEC;
      const secondContrib = nv === 0 || (nv >= 10 && nv <= 13);
      if ((firstContrib && secondContrib) || (firstPf && (secondContrib || nv === PF_VEC))) {
        vec = DF_VEC;
        e = 0;
      } else {
        vec = nv;
        e = hasErrorCode(nv) ? cpu.faultError : -1;
      }
      k = EV_EXC;
    }
    return DELIVER_SHUTDOWN;
  }

  private deliverOnce(vec: number, kind: number, err: number): number {
    const cpu = this.cpu;
    const ext = kind === EV_SOFT || kind === EV_SOFTEXC || kind === EV_ICEBP ? 0 : 1;
    const flags = cpu.getFlags();
    // Faults push RF = 1 (SDM 17.3.1.1); traps and interrupts push the current RF.
    // An instruction-breakpoint #DB pushes the current RF (0: breakpoints only match with RF = 0).
    const isFault = (kind === EV_EXC && vec !== DB && vec !== BP && vec !== OFV) || this.pushRf;
    this.pushRf = false;
    const flagsImg = (isFault ? flags | RF : flags) >>> 0;
    // The #DB handler runs with DR7.GD clear, so that it can use the debug registers (SDM 17.2.4).
    if (vec === DB && kind === EV_EXC) this.dr7 &= ~0x2000;
    if ((cpu.cr0 & CR0_PE) === 0) {
      // Real mode: IVT entry of 4 bytes; push FLAGS, CS, IP.
      if (vec * 4 + 3 > this.idtLimit) return cpu.fault(GP, 0);
      const ent = this.mem.sysRead(this.idtBase + vec * 4, 4);
      if (ent < 0) return this.memErr(ent, this.idtBase + vec * 4);
      this.setVal(0, flagsImg & 0xffff);
      this.setVal(1, cpu.segSel[CS]);
      this.setVal(2, this.ripOf() & 0xffff);
      const st = this.pushVals(cpu.ssize, cpu.segBase[SS], cpu.lo[RSP], cpu.hi[RSP], 3, 2);
      if (st !== ST_OK) return st;
      cpu.addSp(-6);
      const sel = ent >>> 16;
      cpu.segSel[CS] = sel;
      cpu.segBase[CS] = sel * 16;
      cpu.rip = ent & 0xffff;
      cpu.setFlags(flags & ~(IF | TF | AC | RF));
      this.updateMode();
      return ST_OK;
    }
    const long = this.longMode;
    const gsize = long ? 16 : 8;
    const gerr = vec * 8 + 2 + ext;
    if (vec * gsize + gsize - 1 > this.idtLimit) return cpu.fault(GP, gerr);
    const gla = this.idtBase + vec * gsize;
    const glo = this.mem.sysRead(gla, 4);
    if (glo < 0) return this.memErr(glo, gla);
    const ghi = this.mem.sysRead(gla + 4, 4);
    if (ghi < 0) return this.memErr(ghi, gla + 4);
    const gattr = descAttr(ghi);
    const gtype = gattr & 0x1f; // includes S
    const gdpl = (gattr >> 5) & 3;
    let offLo = (glo & 0xffff) | (ghi & 0xffff0000);
    let offHi = 0;
    let is32 = true;
    if (long) {
      if (gtype !== SYS_INT && gtype !== SYS_TRAP) return cpu.fault(GP, gerr);
      const o2 = this.mem.sysRead(gla + 8, 4);
      if (o2 < 0) return this.memErr(o2, gla + 8);
      offHi = o2 | 0;
    } else {
      if (gtype === SYS_TASK) {
        if ((kind === EV_SOFT || kind === EV_SOFTEXC) && gdpl < cpu.cpl) return cpu.fault(GP, vec * 8 + 2);
        if ((gattr & ATTR_P) === 0) return cpu.fault(NP, gerr);
        return this.taskSwitch(glo >>> 16, TS_INT, this.ripOf(), err, ext);
      }
      if (gtype !== SYS_INT && gtype !== SYS_TRAP && gtype !== SYS_INT16 && gtype !== SYS_TRAP16) return cpu.fault(GP, gerr);
      is32 = gtype === SYS_INT || gtype === SYS_TRAP;
      if (!is32) offLo &= 0xffff;
    }
    if ((kind === EV_SOFT || kind === EV_SOFTEXC) && gdpl < cpu.cpl) return cpu.fault(GP, vec * 8 + 2);
    if ((gattr & ATTR_P) === 0) return cpu.fault(NP, gerr);
    const trapGate = (gtype & 1) !== 0;
    // Target code segment.
    const csSel = glo >>> 16;
    if ((csSel & 0xfffc) === 0) return cpu.fault(GP, ext);
    let st = this.fetchDesc(csSel, GP);
    if (st !== ST_OK) {
      if (cpu.faultVector === GP) cpu.faultError |= ext;
      return st;
    }
    const cLo = this.dLo;
    const cHi = this.dHi;
    const cLa = this.dLa;
    const cattr = descAttr(cHi);
    const cdpl = (cattr >> 5) & 3;
    if ((cattr & ATTR_S) === 0 || (cattr & TYPE_CODE) === 0 || cdpl > cpu.cpl) return cpu.fault(GP, (csSel & 0xfffc) | ext);
    if ((cattr & ATTR_P) === 0) return cpu.fault(NP, (csSel & 0xfffc) | ext);
    if (long && ((cattr & ATTR_L) === 0 || (cattr & ATTR_DB) !== 0)) return cpu.fault(GP, (csSel & 0xfffc) | ext);
    const conforming = (cattr & TYPE_C) !== 0;
    const v86 = (flags & VM) !== 0;
    const newCpl = conforming ? cpu.cpl : cdpl;
    const inner = newCpl < cpu.cpl;
    if (v86 && (conforming || cdpl !== 0)) return cpu.fault(GP, (csSel & 0xfffc) | ext);
    const hasErr = err >= 0;
    const oldSs = cpu.segSel[SS];
    const oldRspLo = cpu.lo[RSP];
    const oldRspHi = cpu.hi[RSP];
    const ripNow = this.ripOf();
    const memUser = this.mem.user;
    const memImplicit = this.mem.implicit;
    if (long) {
      return this.deliverLong(err, hasErr, offLo, offHi, csSel, cLa, cHi, newCpl, inner, trapGate, flagsImg, flags, oldSs, oldRspLo, oldRspHi, ripNow, memImplicit, ghi & 7);
    }
    // Protected mode (16/32-bit gates).
    const size = is32 ? 4 : 2;
    let n = 0;
    let ssz = cpu.ssize;
    let ssBase = cpu.segBase[SS];
    let rspLo = oldRspLo;
    let newSs = oldSs;
    let newSsBase = ssBase;
    let newSsLimit = cpu.segLimit[SS];
    let newSsAttr = cpu.segAttr[SS];
    if (inner) {
      const ss = this.tssStack(newCpl, ext);
      if (ss < 0) return ST_FAULT;
      rspLo = this.tmpLo;
      st = this.checkNewSs(ss, newCpl, ext);
      if (st !== ST_OK) return st;
      newSs = ss;
      newSsBase = descBase(this.dLo, this.dHi);
      newSsLimit = descLimit(this.dLo, this.dHi);
      newSsAttr = descAttr(this.dHi);
      ssz = newSsAttr & ATTR_DB ? 4 : 2;
      ssBase = newSsBase;
      if (v86) {
        this.setVal(n++, cpu.segSel[GS]);
        this.setVal(n++, cpu.segSel[FS]);
        this.setVal(n++, cpu.segSel[DS]);
        this.setVal(n++, cpu.segSel[ES]);
      }
      this.setVal(n++, oldSs);
      this.setVal(n++, oldRspLo >>> 0);
    }
    this.setVal(n++, size === 2 ? flagsImg & 0xffff : flagsImg);
    this.setVal(n++, cpu.segSel[CS]);
    this.setVal(n++, size === 2 ? ripNow & 0xffff : ripNow >>> 0);
    if (hasErr) this.setVal(n++, err);
    if (!is32 && offLo > descLimit(cLo, cHi)) return cpu.fault(GP, 0);
    if (is32 && offLo >>> 0 > descLimit(cLo, cHi)) return cpu.fault(GP, 0);
    this.mem.user = newCpl === 3;
    this.mem.implicit = newCpl !== 3;
    st = this.pushVals(ssz, ssBase, rspLo, 0, n, size);
    this.mem.user = memUser;
    this.mem.implicit = memImplicit;
    if (st !== ST_OK) return st;
    // Accessed bit of the code segment.
    this.dLo = cLo;
    this.dHi = cHi;
    this.dLa = cLa;
    st = this.touch();
    if (st !== ST_OK) return st;
    // Commit.
    if (inner) {
      this.setSeg(SS, newSs, newSsBase, newSsLimit, newSsAttr);
      if (v86) {
        this.setSeg(ES, 0, 0, 0, 0);
        this.setSeg(DS, 0, 0, 0, 0);
        this.setSeg(FS, 0, 0, 0, 0);
        this.setSeg(GS, 0, 0, 0, 0);
      }
    }
    cpu.cpl = newCpl;
    this.setSeg(CS, (csSel & 0xfffc) | newCpl, descBase(cLo, this.dHi), descLimit(cLo, this.dHi), descAttr(this.dHi));
    const newFlags = (flags & ~(TF | NT | RF | VM | (trapGate ? 0 : IF))) >>> 0;
    cpu.setFlags(newFlags);
    this.updateMode();
    this.setRsp(ssz, (rspLo - n * size) | 0, 0);
    if (ssz === 2) cpu.lo[RSP] = (inner ? 0 : cpu.lo[RSP] & ~0xffff) | ((rspLo - n * size) & 0xffff);
    cpu.rip = offLo >>> 0;
    return ST_OK;
  }

  private deliverLong(
    err: number,
    hasErr: boolean,
    offLo: number,
    offHi: number,
    csSel: number,
    cLa: number,
    cHi: number,
    newCpl: number,
    inner: boolean,
    trapGate: boolean,
    flagsImg: number,
    flags: number,
    oldSs: number,
    oldRspLo: number,
    oldRspHi: number,
    ripNow: number,
    memImplicit: boolean,
    istN: number,
  ): number {
    const cpu = this.cpu;
    const ext = 1;
    const target = canon(offLo, offHi);
    if (target !== target) return cpu.fault(GP, 0);
    let rspLo = oldRspLo;
    let rspHi = oldRspHi;
    if (cpu.csize !== 8) {
      // From compatibility (or legacy) mode: RSP is the zero-extended ESP/SP.
      rspLo = cpu.ssize === 2 ? oldRspLo & 0xffff : oldRspLo;
      rspHi = 0;
    }
    if (inner || istN > 0) {
      const st = this.tss64Stack(newCpl, istN, ext);
      if (st !== ST_OK) return st;
      rspLo = this.tmpLo;
      rspHi = this.tmpHi;
    }
    // Align to 16 bytes.
    rspLo &= ~0xf;
    this.setVal(0, oldSs);
    this.setVal(1, cpu.csize === 8 ? oldRspLo >>> 0 : cpu.ssize === 2 ? oldRspLo & 0xffff : oldRspLo >>> 0, cpu.csize === 8 ? oldRspHi : 0);
    this.setVal(2, flagsImg);
    this.setVal(3, cpu.segSel[CS]);
    this.setVal(4, ripNow >>> 0, cpu.csize === 8 ? hiOf(ripNow) : 0);
    let n = 5;
    if (hasErr) this.setVal(n++, err);
    const memSaveU = this.mem.user;
    this.mem.user = newCpl === 3;
    this.mem.implicit = newCpl !== 3;
    let st = this.pushVals(8, 0, rspLo, rspHi, n, 8);
    this.mem.user = memSaveU;
    this.mem.implicit = memImplicit;
    if (st !== ST_OK) return st;
    this.dLa = cLa;
    this.dHi = cHi;
    st = this.touch();
    if (st !== ST_OK) return st;
    if (inner) this.setSeg(SS, newCpl, 0, 0xffffffff, ATTR_P | ATTR_S | TYPE_W | TYPE_A | (newCpl << 5));
    cpu.cpl = newCpl;
    this.setSeg(CS, (csSel & 0xfffc) | newCpl, 0, 0xffffffff, descAttr(this.dHi));
    cpu.setFlags((flags & ~(TF | NT | RF | VM | (trapGate ? 0 : IF))) >>> 0);
    this.updateMode();
    this.sub(rspLo, rspHi, n * 8);
    cpu.lo[RSP] = this.tmpLo;
    cpu.hi[RSP] = this.tmpHi;
    cpu.rip = target;
    return ST_OK;
  }

  // ================================================================ task switch (32-bit TSS)

  /**
   * Switches to the task whose TSS selector is sel (JMP/CALL to a TSS or task gate, an event
   * through a task gate, IRET with NT): saves the current state into the current TSS, loads the
   * new one (CR3, LDT, EFLAGS, EIP, registers, segments), manages busy bits, the back link and
   * NT, sets CR0.TS, and pushes the error code of an exception delivered through a task gate.
   * 32-bit and 16-bit TSSs (the 16-bit layout has no CR3, FS, GS: FS and GS become null and the
   * upper halves of the registers read 0xffff, as QEMU does; the SDM leaves them undefined).
   * Not in IA-32e mode (#GP there, as the SDM says).
   */
  taskSwitch(sel: number, reason: number, retEip: number, err: number, ext: number): number {
    const cpu = this.cpu;
    const mem = this.mem;
    const iret = reason === TS_IRET;
    const errVec = iret ? TS : GP;
    if (this.longMode || (sel & 4) !== 0 || (sel & 0xfffc) === 0) return cpu.fault(errVec, (sel & 0xfffc) | ext);
    let st = this.fetchDesc(sel, errVec);
    if (st !== ST_OK) return st;
    const nLo = this.dLo;
    const nHi = this.dHi;
    const nLa = this.dLa;
    const attr = descAttr(nHi);
    const type = attr & 0x1f;
    const new16 = type === SYS_TSS16_AVAIL || type === SYS_TSS16_BUSY;
    const busy = new16 ? SYS_TSS16_BUSY : SYS_TSS_BUSY;
    if (iret ? type !== busy : type !== busy - 2) return cpu.fault(errVec, (sel & 0xfffc) | ext);
    if ((attr & ATTR_P) === 0) return cpu.fault(NP, (sel & 0xfffc) | ext);
    const nBase = descBase(nLo, nHi);
    if (descLimit(nLo, nHi) < (new16 ? 0x2b : 0x67)) return cpu.fault(TS, (sel & 0xfffc) | ext);
    const oType = this.trAttr & 0xf;
    const old16 = oType === SYS_TSS16_AVAIL || oType === SYS_TSS16_BUSY;
    if (this.trLimit < (old16 ? 0x29 : 0x5f)) return cpu.fault(TS, (this.trSel & 0xfffc) | ext);
    // Read the whole new state first (in the 32-bit order: CR3, EIP, EFLAGS, 8 registers, 6 segments).
    const nv = TASK_SCRATCH;
    let ldtSel: number;
    if (new16) {
      nv[0] = 0;
      for (let k = 0; k < 14; k++) {
        const v = mem.sysRead(nBase + 0x0e + k * 2, 2);
        if (v < 0) return this.memErr(v, nBase + 0x0e + k * 2);
        nv[k + 1] = k >= 2 && k < 10 ? (v | 0xffff0000) >>> 0 : v;
      }
      nv[15] = 0;
      nv[16] = 0;
      ldtSel = mem.sysRead(nBase + 0x2a, 2);
      if (ldtSel < 0) return this.memErr(ldtSel, nBase + 0x2a);
    } else {
      for (let k = 0; k < 18; k++) {
        const v = mem.sysRead(nBase + 0x1c + k * 4, 4);
        if (v < 0) return this.memErr(v, nBase + 0x1c + k * 4);
        nv[k] = v;
      }
      ldtSel = mem.sysRead(nBase + 0x60, 2);
      if (ldtSel < 0) return this.memErr(ldtSel, nBase + 0x60);
    }
    // Save the current state into the current TSS.
    const oBase = this.trBase;
    let flags = cpu.getFlags() >>> 0;
    if (reason === TS_JMP || iret) flags &= ~NT;
    const save = (off: number, v: number, size: number): number => {
      const c = size === 4 ? mem.sysWrite(oBase + off, 4, v) : mem.sysWrite(oBase + off, 2, v & 0xffff);
      return c < 0 ? this.memErr(c, oBase + off) : ST_OK;
    };
    if (old16) {
      if ((st = save(0x0e, retEip, 2)) !== ST_OK) return st;
      if ((st = save(0x10, flags, 2)) !== ST_OK) return st;
      for (let r = 0; r < 8; r++) if ((st = save(0x12 + r * 2, cpu.lo[r], 2)) !== ST_OK) return st;
      for (let sg = 0; sg < 4; sg++) if ((st = save(0x22 + sg * 2, cpu.segSel[sg], 2)) !== ST_OK) return st;
    } else {
      if ((st = save(0x20, retEip, 4)) !== ST_OK) return st;
      if ((st = save(0x24, flags, 4)) !== ST_OK) return st;
      for (let r = 0; r < 8; r++) if ((st = save(0x28 + r * 4, cpu.lo[r], 4)) !== ST_OK) return st;
      for (let sg = 0; sg < 6; sg++) if ((st = save(0x48 + sg * 4, cpu.segSel[sg], 2)) !== ST_OK) return st;
    }
    // Busy bits and the back link.
    if (reason === TS_JMP || iret) {
      const la = this.gdtBase + (this.trSel & 0xfff8) + 4;
      const hi = mem.sysRead(la, 4);
      if (hi < 0) return this.memErr(hi, la);
      const c = mem.sysWrite(la, 4, hi & ~0x200);
      if (c < 0) return this.memErr(c, la);
    }
    let newHi = nHi;
    if (!iret) {
      newHi = nHi | 0x200;
      const c = mem.sysWrite(nLa + 4, 4, newHi);
      if (c < 0) return this.memErr(c, nLa + 4);
    }
    let newFlags = nv[2] >>> 0;
    if (reason === TS_CALL || reason === TS_INT) {
      const c = mem.sysWrite(nBase, 2, this.trSel);
      if (c < 0) return this.memErr(c, nBase);
      newFlags |= NT;
    }
    // Load the new task.
    this.trSel = sel;
    this.trBase = nBase;
    this.trLimit = descLimit(nLo, newHi);
    this.trAttr = descAttr(newHi);
    if ((cpu.cr0 & CR0_PG) !== 0 && !new16) {
      st = this.writeCr3(nv[0] | 0, 0);
      if (st !== ST_OK) return st;
    }
    for (let r = 0; r < 8; r++) cpu.setReg(r, 4, nv[3 + r] | 0, 0);
    cpu.setFlags(newFlags);
    cpu.rip = nv[1] >>> 0;
    cpu.cr0 |= CR0_TS;
    this.mem.mmu.cr0 = cpu.cr0;
    // LDT, then the segment registers (faults now belong to the new task: #TS with the selector).
    st = this.lldt(ldtSel);
    if (st !== ST_OK) return cpu.fault(TS, ldtSel & 0xfffc);
    const segSel = (i: number): number => nv[11 + i] & 0xffff;
    if ((newFlags & VM) !== 0) {
      for (let sg = 0; sg < 6; sg++) this.setSeg(sg, segSel(sg), segSel(sg) * 16, 0xffff, ATTR_P | ATTR_S | TYPE_W | TYPE_A | (3 << 5) | (sg === CS ? TYPE_CODE : 0));
      cpu.cpl = 3;
      this.updateMode();
    } else {
      const csSel = segSel(CS);
      if ((csSel & 0xfffc) === 0) return cpu.fault(TS, 0);
      st = this.fetchDesc(csSel, TS);
      if (st !== ST_OK) return st;
      const cattr = descAttr(this.dHi);
      if ((cattr & ATTR_S) === 0 || (cattr & TYPE_CODE) === 0) return cpu.fault(TS, csSel & 0xfffc);
      if ((cattr & ATTR_P) === 0) return cpu.fault(NP, csSel & 0xfffc);
      cpu.cpl = csSel & 3;
      this.setSeg(CS, csSel, descBase(this.dLo, this.dHi), descLimit(this.dLo, this.dHi), cattr);
      this.updateMode();
      for (const sg of TASK_SEGS) {
        st = this.loadSegNoBreak(sg, segSel(sg));
        if (st !== ST_OK) {
          if (cpu.faultVector === GP) cpu.faultVector = TS;
          return st;
        }
      }
    }
    // An exception delivered through a task gate pushes its error code on the new stack.
    if (reason === TS_INT && err >= 0) {
      st = cpu.push(new16 ? 2 : 4, err, 0);
      if (st !== ST_OK) return st;
    }
    return ST_OK;
  }

  // ================================================================ far transfers

  /** JMP FAR / CALL FAR to sel:off (off as lo/hi); call pushes the return address. */
  farTransfer(call: boolean, sel: number, offLo: number, offHi: number, osize: number): number {
    const cpu = this.cpu;
    const retRip = cpu.nextRip;
    if ((cpu.cr0 & CR0_PE) === 0 || (cpu.flags & VM) !== 0) {
      const off = osize === 2 ? offLo & 0xffff : offLo >>> 0;
      if (call) {
        this.setVal(0, cpu.segSel[CS]);
        this.setVal(1, osize === 2 ? retRip & 0xffff : retRip >>> 0);
        const st = this.pushVals(cpu.ssize, cpu.segBase[SS], cpu.lo[RSP], cpu.hi[RSP], 2, osize === 2 ? 2 : 4);
        if (st !== ST_OK) return st;
        cpu.addSp(osize === 2 ? -4 : -8);
      }
      cpu.segSel[CS] = sel;
      cpu.segBase[CS] = sel * 16;
      cpu.nextRip = off;
      this.updateMode();
      return ST_OK;
    }
    if ((sel & 0xfffc) === 0) return cpu.fault(GP, 0);
    let st = this.fetchDesc(sel, GP);
    if (st !== ST_OK) return st;
    const attr = descAttr(this.dHi);
    const dpl = (attr >> 5) & 3;
    const rpl = sel & 3;
    if ((attr & ATTR_S) !== 0) {
      if ((attr & TYPE_CODE) === 0) return cpu.fault(GP, sel & 0xfffc);
      if (attr & TYPE_C) {
        if (dpl > cpu.cpl) return cpu.fault(GP, sel & 0xfffc);
      } else if (rpl > cpu.cpl || dpl !== cpu.cpl) return cpu.fault(GP, sel & 0xfffc);
      if ((attr & ATTR_P) === 0) return cpu.fault(NP, sel & 0xfffc);
      if (this.longMode && (attr & ATTR_L) !== 0 && (attr & ATTR_DB) !== 0) return cpu.fault(GP, sel & 0xfffc);
      const lim = descLimit(this.dLo, this.dHi);
      const to64 = this.longMode && (attr & ATTR_L) !== 0;
      let target: number;
      if (to64) target = osize === 8 ? canon(offLo, offHi) : osize === 4 ? offLo >>> 0 : offLo & 0xffff;
      else {
        target = osize === 2 ? offLo & 0xffff : offLo >>> 0;
        if (target > lim) return cpu.fault(GP, 0);
      }
      if (target !== target) return cpu.fault(GP, 0);
      if (call) {
        this.setVal(0, cpu.segSel[CS]);
        this.setVal(1, osize === 2 ? retRip & 0xffff : retRip >>> 0, osize === 8 ? hiOf(retRip) : 0);
        st = this.pushVals(cpu.ssize, cpu.segBase[SS], cpu.lo[RSP], cpu.hi[RSP], 2, osize);
        if (st !== ST_OK) return st;
      }
      st = this.touch();
      if (st !== ST_OK) return st;
      if (call) cpu.addSp(-2 * osize);
      this.setSeg(CS, (sel & 0xfffc) | cpu.cpl, descBase(this.dLo, this.dHi), lim, descAttr(this.dHi));
      this.updateMode();
      cpu.nextRip = target;
      return ST_OK;
    }
    // System descriptor: call gate (task gates and TSS: task switches are not implemented).
    const type = attr & 0xf;
    const long = this.longMode;
    if (!long && (type === SYS_TASK || type === SYS_TSS_AVAIL || type === SYS_TSS16_AVAIL)) {
      if (dpl < cpu.cpl || dpl < rpl) return cpu.fault(GP, sel & 0xfffc);
      if ((attr & ATTR_P) === 0) return cpu.fault(NP, sel & 0xfffc);
      const tss = type === SYS_TASK ? this.dLo >>> 16 : sel;
      if (this.taskSwitch(tss, call ? TS_CALL : TS_JMP, retRip >>> 0, -1, 0) !== ST_OK) return ST_FAULT;
      cpu.nextRip = cpu.rip; // the new task's EIP
      return ST_BREAK;
    }
    if (long ? type !== SYS_CALL : type !== SYS_CALL && type !== SYS_CALL16) return cpu.fault(GP, sel & 0xfffc);
    if (dpl < cpu.cpl || dpl < rpl) return cpu.fault(GP, sel & 0xfffc);
    if ((attr & ATTR_P) === 0) return cpu.fault(NP, sel & 0xfffc);
    const gLo = this.dLo;
    const gHi = this.dHi;
    let gOffLo = (gLo & 0xffff) | (gHi & 0xffff0000);
    let gOffHi = 0;
    const gsize = long ? 8 : type === SYS_CALL ? 4 : 2;
    if (gsize === 2) gOffLo &= 0xffff;
    if (long) {
      st = this.fetchDescHigh(sel, GP);
      if (st !== ST_OK) return st;
      if ((this.valsHi[15] & 0x1f00) !== 0) return cpu.fault(GP, sel & 0xfffc);
      gOffHi = this.vals[15] | 0;
    }
    const params = long ? 0 : gHi & 0x1f;
    const csSel = gLo >>> 16;
    if ((csSel & 0xfffc) === 0) return cpu.fault(GP, 0);
    st = this.fetchDesc(csSel, GP);
    if (st !== ST_OK) return st;
    const cattr = descAttr(this.dHi);
    const cdpl = (cattr >> 5) & 3;
    if ((cattr & ATTR_S) === 0 || (cattr & TYPE_CODE) === 0 || cdpl > cpu.cpl) return cpu.fault(GP, csSel & 0xfffc);
    if (!call && (cattr & TYPE_C) === 0 && cdpl !== cpu.cpl) return cpu.fault(GP, csSel & 0xfffc);
    if ((cattr & ATTR_P) === 0) return cpu.fault(NP, csSel & 0xfffc);
    if (long && ((cattr & ATTR_L) === 0 || (cattr & ATTR_DB) !== 0)) return cpu.fault(GP, csSel & 0xfffc);
    const cLo = this.dLo;
    const cHi = this.dHi;
    const cLa = this.dLa;
    const target = long ? canon(gOffLo, gOffHi) : gOffLo >>> 0;
    if (target !== target) return cpu.fault(GP, 0);
    if (!long && target > descLimit(cLo, cHi)) return cpu.fault(GP, 0);
    const inner = call && (cattr & TYPE_C) === 0 && cdpl < cpu.cpl;
    const newCpl = (cattr & TYPE_C) === 0 ? cdpl : cpu.cpl;
    if (!call) {
      this.dLa = cLa;
      this.dHi = cHi;
      st = this.touch();
      if (st !== ST_OK) return st;
      this.setSeg(CS, (csSel & 0xfffc) | cpu.cpl, descBase(cLo, cHi), descLimit(cLo, cHi), descAttr(cHi));
      this.updateMode();
      cpu.nextRip = target;
      return ST_OK;
    }
    const retSize = gsize;
    if (!inner) {
      this.setVal(0, cpu.segSel[CS]);
      this.setVal(1, retSize === 2 ? retRip & 0xffff : retRip >>> 0, retSize === 8 ? hiOf(retRip) : 0);
      st = this.pushVals(cpu.ssize, cpu.segBase[SS], cpu.lo[RSP], cpu.hi[RSP], 2, retSize);
      if (st !== ST_OK) return st;
      this.dLa = cLa;
      this.dHi = cHi;
      st = this.touch();
      if (st !== ST_OK) return st;
      cpu.addSp(-2 * retSize);
      this.setSeg(CS, (csSel & 0xfffc) | cpu.cpl, descBase(cLo, cHi), descLimit(cLo, cHi), descAttr(cHi));
      this.updateMode();
      cpu.nextRip = target;
      return ST_OK;
    }
    // Inner privilege: new stack from the TSS, copy parameters (legacy gates only).
    let n = 0;
    let rspLo: number;
    let rspHi = 0;
    let ssz: number;
    let ssBase = 0;
    let newSs: number;
    let ssLimit = 0xffffffff;
    let ssAttr = ATTR_P | ATTR_S | TYPE_W | TYPE_A | (newCpl << 5);
    if (long) {
      st = this.tss64Stack(newCpl, 0, 0);
      if (st !== ST_OK) return st;
      rspLo = this.tmpLo;
      rspHi = this.tmpHi;
      ssz = 8;
      newSs = newCpl;
      this.setVal(n++, cpu.segSel[SS]);
      this.setVal(n++, cpu.lo[RSP] >>> 0, cpu.csize === 8 ? cpu.hi[RSP] : 0);
    } else {
      const ss = this.tssStack(newCpl, 0);
      if (ss < 0) return ST_FAULT;
      rspLo = this.tmpLo;
      st = this.checkNewSs(ss, newCpl, 0);
      if (st !== ST_OK) return st;
      newSs = ss;
      ssBase = descBase(this.dLo, this.dHi);
      ssLimit = descLimit(this.dLo, this.dHi);
      ssAttr = descAttr(this.dHi);
      ssz = ssAttr & ATTR_DB ? 4 : 2;
      this.setVal(n++, cpu.segSel[SS]);
      this.setVal(n++, gsize === 2 ? cpu.lo[RSP] & 0xffff : cpu.lo[RSP] >>> 0);
      // Parameters, from the old stack (highest first).
      for (let p = params - 1; p >= 0; p--) {
        const la = this.stackLa(cpu.ssize, cpu.segBase[SS], cpu.lo[RSP], 0, p * gsize);
        const v = cpu.read(la, gsize);
        if (v < 0) return ST_FAULT;
        this.setVal(n++, v);
      }
    }
    this.setVal(n++, cpu.segSel[CS]);
    this.setVal(n++, retSize === 2 ? retRip & 0xffff : retRip >>> 0, retSize === 8 ? hiOf(retRip) : 0);
    const mu = this.mem.user;
    const mi = this.mem.implicit;
    this.mem.user = newCpl === 3;
    this.mem.implicit = newCpl !== 3;
    st = this.pushVals(ssz, ssBase, rspLo, rspHi, n, retSize);
    this.mem.user = mu;
    this.mem.implicit = mi;
    if (st !== ST_OK) return st;
    this.dLa = cLa;
    this.dHi = cHi;
    st = this.touch();
    if (st !== ST_OK) return st;
    this.setSeg(SS, newSs, ssBase, ssLimit, ssAttr);
    cpu.cpl = newCpl;
    this.setSeg(CS, (csSel & 0xfffc) | newCpl, descBase(cLo, cHi), descLimit(cLo, cHi), descAttr(cHi));
    this.updateMode();
    this.sub(rspLo, rspHi, n * retSize);
    this.setRsp(ssz, this.tmpLo, ssz === 8 ? this.tmpHi : 0);
    cpu.nextRip = target;
    return ST_OK;
  }

  /**
   * After a return to an outer privilege level: data segment registers whose DPL is below the
   * new CPL (data or non-conforming code) become null.
   */
  private scrubSegs(): void {
    const cpu = this.cpu;
    for (const s of SCRUB) {
      const a = cpu.segAttr[s];
      if ((a & ATTR_P) === 0) continue;
      const dpl = (a >> 5) & 3;
      const codeConf = (a & TYPE_CODE) !== 0 && (a & TYPE_C) !== 0;
      if (!codeConf && dpl < cpu.cpl) this.setSeg(s, 0, 0, 0, 0);
    }
  }

  /** Checks a code selector for RETF/IRET to privilege rpl (descriptor left in dLo/dHi). */
  private checkRetCs(sel: number): number {
    const cpu = this.cpu;
    if ((sel & 0xfffc) === 0) return cpu.fault(GP, 0);
    const st = this.fetchDesc(sel, GP);
    if (st !== ST_OK) return st;
    const attr = descAttr(this.dHi);
    const dpl = (attr >> 5) & 3;
    const rpl = sel & 3;
    if ((attr & ATTR_S) === 0 || (attr & TYPE_CODE) === 0 || rpl < cpu.cpl) return cpu.fault(GP, sel & 0xfffc);
    if (attr & TYPE_C ? dpl > rpl : dpl !== rpl) return cpu.fault(GP, sel & 0xfffc);
    if ((attr & ATTR_P) === 0) return cpu.fault(NP, sel & 0xfffc);
    if (this.longMode && (attr & ATTR_L) !== 0 && (attr & ATTR_DB) !== 0) return cpu.fault(GP, sel & 0xfffc);
    return ST_OK;
  }

  /** Checks an SS for a return to privilege rpl (descriptor into dLo/dHi); allowNull for 64-bit. */
  private checkRetSs(sel: number, rpl: number, allowNull: boolean): number {
    const cpu = this.cpu;
    if ((sel & 0xfffc) === 0) return allowNull && (sel & 3) === rpl ? ST_OK : cpu.fault(GP, 0);
    const st = this.fetchDesc(sel, GP);
    if (st !== ST_OK) return st;
    const attr = descAttr(this.dHi);
    if ((sel & 3) !== rpl || ((attr >> 5) & 3) !== rpl || (attr & ATTR_S) === 0 || (attr & TYPE_CODE) !== 0 || (attr & TYPE_W) === 0) return cpu.fault(GP, sel & 0xfffc);
    if ((attr & ATTR_P) === 0) return cpu.fault(SS_VEC, sel & 0xfffc);
    return ST_OK;
  }

  /** RETF [imm16]. */
  farReturn(osize: number, imm: number): number {
    const cpu = this.cpu;
    let st = this.popVals(2, osize, 0);
    if (st !== ST_OK) return st;
    const ripLo = this.vals[0];
    const ripHi = this.valsHi[0];
    const sel = this.vals[1] & 0xffff;
    if ((cpu.cr0 & CR0_PE) === 0 || (cpu.flags & VM) !== 0) {
      cpu.segSel[CS] = sel;
      cpu.segBase[CS] = sel * 16;
      cpu.addSp(2 * osize + imm);
      cpu.nextRip = osize === 2 ? ripLo & 0xffff : ripLo >>> 0;
      this.updateMode();
      return ST_OK;
    }
    st = this.checkRetCs(sel);
    if (st !== ST_OK) return st;
    const cLo = this.dLo;
    const cHi = this.dHi;
    const cLa = this.dLa;
    const cattr = descAttr(cHi);
    const rpl = sel & 3;
    const to64 = this.longMode && (cattr & ATTR_L) !== 0;
    const target = to64 ? (osize === 8 ? canon(ripLo | 0, ripHi) : ripLo) : osize === 2 ? ripLo & 0xffff : ripLo >>> 0;
    if (target !== target) return cpu.fault(GP, 0);
    if (!to64 && target > descLimit(cLo, cHi)) return cpu.fault(GP, 0);
    if (rpl === cpu.cpl) {
      this.dLa = cLa;
      this.dHi = cHi;
      st = this.touch();
      if (st !== ST_OK) return st;
      this.setSeg(CS, sel, descBase(cLo, cHi), descLimit(cLo, cHi), cattr);
      this.updateMode();
      cpu.addSp(2 * osize + imm);
      cpu.nextRip = target;
      return ST_OK;
    }
    // Outer privilege: SS:rSP follow the immediate.
    const off = 2 * osize + imm;
    st = this.popVals(2, osize, off);
    if (st !== ST_OK) return st;
    const newSpLo = this.vals[0] | 0;
    const newSpHi = this.valsHi[0];
    const ss = this.vals[1] & 0xffff;
    st = this.checkRetSs(ss, rpl, this.longMode && to64 && rpl !== 3);
    if (st !== ST_OK) return st;
    const sLo = this.dLo;
    const sHi = this.dHi;
    const ssNull = (ss & 0xfffc) === 0;
    this.dLa = cLa;
    this.dHi = cHi;
    st = this.touch();
    if (st !== ST_OK) return st;
    cpu.cpl = rpl;
    this.setSeg(CS, sel, descBase(cLo, cHi), descLimit(cLo, cHi), cattr);
    if (ssNull) this.setSeg(SS, ss, 0, 0xffffffff, ATTR_P | ATTR_S | TYPE_W | TYPE_A | (rpl << 5));
    else this.setSeg(SS, ss, descBase(sLo, sHi), descLimit(sLo, sHi), descAttr(sHi));
    this.updateMode();
    if (osize === 8) {
      cpu.lo[RSP] = newSpLo;
      cpu.hi[RSP] = newSpHi;
    } else this.setRsp(cpu.ssize, newSpLo, 0);
    cpu.addSp(imm);
    this.scrubSegs();
    cpu.nextRip = target;
    return ST_OK;
  }

  /** IRET / IRETD / IRETQ. Returns ST_BREAK on success (IF/TF/NMI blocking may change). */
  iret(osize: number): number {
    const cpu = this.cpu;
    const flags = cpu.getFlags();
    if ((cpu.cr0 & CR0_PE) === 0) {
      const st = this.popVals(3, osize, 0);
      if (st !== ST_OK) return st;
      const ip = osize === 2 ? this.vals[0] & 0xffff : this.vals[0] >>> 0;
      const sel = this.vals[1] & 0xffff;
      const f = this.vals[2];
      if (ip > cpu.segLimit[CS]) return cpu.fault(GP, 0);
      const mask = osize === 2 ? 0x7fd5 | 0 : ARITH_FLAGS | TF | IF | DF | IOPL | NT | AC | ID | RF;
      cpu.segSel[CS] = sel;
      cpu.segBase[CS] = sel * 16;
      cpu.addSp(3 * osize);
      cpu.setFlags((flags & ~mask) | (f & mask));
      cpu.nextRip = ip;
      this.nmiBlocked = false;
      this.updateMode();
      return ST_BREAK;
    }
    if ((flags & VM) !== 0) {
      // Virtual-8086 mode without VME: IOPL 3 gives a real-mode style IRET, else #GP(0).
      if ((flags & IOPL) !== IOPL) return cpu.fault(GP, 0);
      const st = this.popVals(3, osize, 0);
      if (st !== ST_OK) return st;
      const sel = this.vals[1] & 0xffff;
      const mask = osize === 2 ? 0xffff & (ARITH_FLAGS | TF | IF | DF | NT) : ARITH_FLAGS | TF | IF | DF | NT | AC | ID | RF;
      cpu.segSel[CS] = sel;
      cpu.segBase[CS] = sel * 16;
      cpu.addSp(3 * osize);
      cpu.setFlags(((flags & ~mask) | (this.vals[2] & mask)) >>> 0);
      cpu.nextRip = osize === 2 ? this.vals[0] & 0xffff : this.vals[0] >>> 0;
      this.nmiBlocked = false;
      return ST_BREAK;
    }
    if ((flags & NT) !== 0 && !this.longMode) {
      // Return to the previous task (the back link of the current TSS).
      const link = this.mem.sysRead(this.trBase, 2);
      if (link < 0) return this.memErr(link, this.trBase);
      if (this.taskSwitch(link, TS_IRET, cpu.nextRip >>> 0, -1, 0) !== ST_OK) return ST_FAULT;
      this.nmiBlocked = false;
      cpu.nextRip = cpu.rip;
      return ST_BREAK;
    }
    if ((flags & NT) !== 0) return cpu.fault(GP, 0);
    const csize0 = cpu.csize;
    const m64 = cpu.csize === 8;
    let st = this.popVals(m64 ? 5 : 3, osize, 0);
    if (st !== ST_OK) return st;
    const ripLo = this.vals[0];
    const ripHi = this.valsHi[0];
    const sel = this.vals[1] & 0xffff;
    const newF = this.vals[2] >>> 0;
    if (!m64 && (newF & VM) !== 0 && cpu.cpl === 0 && osize === 4) return this.iretToV86(ripLo, sel, newF);
    st = this.checkRetCs(sel);
    if (st !== ST_OK) return st;
    const cLo = this.dLo;
    const cHi = this.dHi;
    const cLa = this.dLa;
    const cattr = descAttr(cHi);
    const rpl = sel & 3;
    const to64 = this.longMode && (cattr & ATTR_L) !== 0;
    const target = to64 ? (osize === 8 ? canon(ripLo | 0, ripHi) : ripLo >>> 0) : osize === 2 ? ripLo & 0xffff : ripLo >>> 0;
    if (target !== target) return cpu.fault(GP, 0);
    if (!to64 && target > descLimit(cLo, cHi)) return cpu.fault(GP, 0);
    const outer = rpl > cpu.cpl;
    let spLo = 0;
    let spHi = 0;
    let ss = 0;
    let sLo = 0;
    let sHi = 0;
    const popSs = outer || m64;
    if (popSs) {
      if (!m64) {
        st = this.popVals(2, osize, 3 * osize);
        if (st !== ST_OK) return st;
        spLo = this.vals[0] | 0;
        ss = this.vals[1] & 0xffff;
      } else {
        spLo = this.vals[3] | 0;
        spHi = osize === 8 ? this.valsHi[3] : 0;
        ss = this.vals[4] & 0xffff;
      }
      st = this.checkRetSs(ss, rpl, this.longMode && to64 && rpl !== 3);
      if (st !== ST_OK) return st;
      sLo = this.dLo;
      sHi = this.dHi;
    }
    this.dLa = cLa;
    this.dHi = cHi;
    st = this.touch();
    if (st !== ST_OK) return st;
    // EFLAGS: which bits the IRET may change at the old CPL.
    const oldCpl = cpu.cpl;
    let mask = ARITH_FLAGS | TF | DF | NT | AC | ID;
    if (oldCpl <= (flags & IOPL) >> 12) mask |= IF;
    if (oldCpl === 0) mask |= IOPL | VIF | VIP;
    if (osize === 2) mask &= 0xffff;
    else mask |= RF;
    cpu.cpl = rpl;
    this.setSeg(CS, sel, descBase(cLo, cHi), descLimit(cLo, cHi), cattr);
    if (popSs) {
      if ((ss & 0xfffc) === 0) this.setSeg(SS, ss, 0, 0xffffffff, ATTR_P | ATTR_S | TYPE_W | TYPE_A | (rpl << 5));
      else this.setSeg(SS, ss, descBase(sLo, sHi), descLimit(sLo, sHi), descAttr(sHi));
    }
    cpu.setFlags((flags & ~mask) | (newF & mask));
    this.updateMode();
    if (popSs) {
      if (cpu.ssize === 8 || m64) {
        cpu.lo[RSP] = spLo;
        cpu.hi[RSP] = osize === 8 ? spHi : 0;
        if (osize === 2) cpu.lo[RSP] = (this.vals[3] & 0xffff) | (cpu.lo[RSP] & ~0xffff);
      } else if (cpu.ssize === 4) this.setRsp(4, spLo, 0);
      else this.setRsp(2, spLo, 0);
    } else cpu.addSp(3 * osize);
    if (outer) this.scrubSegs();
    cpu.nextRip = target;
    this.nmiBlocked = false;
    // Same privilege and code size (an interrupt or exception return inside the kernel, or
    // sync_core's IRET to self): no need to stop the slice when no event can be taken.
    return !outer && cpu.csize === csize0 ? this.breakUnlessQuiet() : ST_BREAK;
  }

  private iretToV86(ip: number, cs: number, newF: number): number {
    const cpu = this.cpu;
    const st = this.popVals(6, 4, 12);
    if (st !== ST_OK) return st;
    const esp = this.vals[0] | 0;
    const attr = ATTR_P | ATTR_S | TYPE_W | TYPE_A | (3 << 5);
    const segs = [SS, ES, DS, FS, GS];
    for (let i = 0; i < 5; i++) {
      const sel = this.vals[i + 1] & 0xffff;
      this.setSeg(segs[i], sel, sel * 16, 0xffff, attr);
    }
    this.setSeg(CS, cs & 0xffff, (cs & 0xffff) * 16, 0xffff, attr | TYPE_CODE | 2);
    cpu.setFlags(newF);
    cpu.cpl = 3;
    this.updateMode();
    cpu.lo[RSP] = esp;
    cpu.nextRip = ip & 0xffff;
    this.nmiBlocked = false;
    return ST_BREAK;
  }

  // ================================================================ SYSCALL / SYSRET / SYSENTER / SYSEXIT

  syscall(cpu: Cpu, _d: Insn): number {
    if ((this.efer & EFER_SCE) === 0 || !this.longMode) return cpu.fault(UD, 0);
    const flags = cpu.getFlags();
    const next = cpu.nextRip;
    const target = this.lstar;
    cpu.setRegNumber(RCX, next);
    cpu.setReg(R11, 8, flags & ~RF, 0);
    const sel = (this.starHi & 0xffff) & 0xfffc;
    cpu.cpl = 0;
    this.setSeg(CS, sel, 0, 0xffffffff, ATTR_P | ATTR_S | TYPE_CODE | 2 | TYPE_A | ATTR_L | ATTR_G);
    this.setSeg(SS, sel + 8, 0, 0xffffffff, ATTR_P | ATTR_S | TYPE_W | TYPE_A | ATTR_DB | ATTR_G);
    cpu.setFlags(flags & ~(this.sfmask | RF));
    this.updateMode();
    cpu.nextRip = target;
    return ST_BREAK;
  }

  sysret(d: Insn): number {
    const cpu = this.cpu;
    if ((this.efer & EFER_SCE) === 0 || !this.longMode || cpu.csize !== 8) return cpu.fault(UD, 0);
    if (cpu.cpl !== 0) return cpu.fault(GP, 0);
    const to64 = d.osize === 8;
    let target: number;
    if (to64) {
      target = canon(cpu.lo[RCX], cpu.hi[RCX]);
      if (target !== target) return cpu.fault(GP, 0);
    } else target = cpu.lo[RCX] >>> 0;
    const base = (this.starHi >>> 16) & 0xffff;
    const csSel = to64 ? (base + 16) | 3 : base | 3;
    cpu.cpl = 3;
    this.setSeg(CS, csSel, 0, 0xffffffff, ATTR_P | ATTR_S | TYPE_CODE | 2 | TYPE_A | (3 << 5) | ATTR_G | (to64 ? ATTR_L : ATTR_DB));
    this.setSeg(SS, (base + 8) | 3, 0, 0xffffffff, ATTR_P | ATTR_S | TYPE_W | TYPE_A | (3 << 5) | ATTR_DB | ATTR_G);
    cpu.setFlags((cpu.lo[R11] & 0x3c7fd7) | 2);
    this.updateMode();
    cpu.nextRip = target;
    return ST_BREAK;
  }

  sysenter(): number {
    const cpu = this.cpu;
    if ((cpu.cr0 & CR0_PE) === 0 || (this.sysenterCs & 0xfffc) === 0) return cpu.fault(GP, 0);
    const sel = this.sysenterCs & 0xfffc;
    const long = this.longMode;
    cpu.cpl = 0;
    this.setSeg(CS, sel, 0, 0xffffffff, ATTR_P | ATTR_S | TYPE_CODE | 2 | TYPE_A | ATTR_G | (long ? ATTR_L : ATTR_DB));
    this.setSeg(SS, sel + 8, 0, 0xffffffff, ATTR_P | ATTR_S | TYPE_W | TYPE_A | ATTR_DB | ATTR_G);
    cpu.setFlags(cpu.getFlags() & ~(VM | IF | RF));
    this.updateMode();
    if (long) {
      cpu.setRegNumber(RSP, this.sysenterEsp);
      cpu.nextRip = this.sysenterEip;
    } else {
      cpu.lo[RSP] = this.sysenterEsp | 0;
      cpu.nextRip = this.sysenterEip >>> 0;
    }
    return ST_BREAK;
  }

  sysexit(d: Insn): number {
    const cpu = this.cpu;
    if ((cpu.cr0 & CR0_PE) === 0 || (this.sysenterCs & 0xfffc) === 0 || cpu.cpl !== 0) return cpu.fault(GP, 0);
    const to64 = d.osize === 8;
    const base = this.sysenterCs & 0xfffc;
    const csSel = (to64 ? base + 32 : base + 16) | 3;
    const ssSel = (to64 ? base + 40 : base + 24) | 3;
    let target: number;
    if (to64) {
      target = canon(cpu.lo[RDX], cpu.hi[RDX]);
      const sp = canon(cpu.lo[RCX], cpu.hi[RCX]);
      if (target !== target || sp !== sp) return cpu.fault(GP, 0);
    } else target = cpu.lo[RDX] >>> 0;
    cpu.cpl = 3;
    this.setSeg(CS, csSel, 0, 0xffffffff, ATTR_P | ATTR_S | TYPE_CODE | 2 | TYPE_A | (3 << 5) | ATTR_G | (to64 ? ATTR_L : ATTR_DB));
    this.setSeg(SS, ssSel, 0, 0xffffffff, ATTR_P | ATTR_S | TYPE_W | TYPE_A | (3 << 5) | ATTR_DB | ATTR_G);
    this.updateMode();
    if (to64) {
      cpu.lo[RSP] = cpu.lo[RCX];
      cpu.hi[RSP] = cpu.hi[RCX];
    } else cpu.setReg(RSP, 4, cpu.lo[RCX], 0);
    cpu.nextRip = target;
    return ST_BREAK;
  }

  swapgs(): number {
    const cpu = this.cpu;
    if (cpu.csize !== 8) return cpu.fault(UD, 0);
    if (cpu.cpl !== 0) return cpu.fault(GP, 0);
    const t = cpu.segBase[GS];
    cpu.segBase[GS] = this.kernelGsBase;
    this.kernelGsBase = t;
    return ST_OK;
  }

  // ================================================================ control registers

  /** MOV CR0 (also LMSW/CLTS). value as a 32-bit number (the high half must be 0). */
  writeCr0(value: number, hi: number): number {
    const cpu = this.cpu;
    const v = (value | CR0_ET_FORCE) | 0;
    if (hi !== 0 || (v & ~CR0_VALID) !== 0) return cpu.fault(GP, 0);
    if ((v & CR0_PG) !== 0 && (v & CR0_PE) === 0) return cpu.fault(GP, 0);
    if ((v & CR0_NW) !== 0 && (v & CR0_CD) === 0) return cpu.fault(GP, 0);
    const old = cpu.cr0;
    let efer = this.efer;
    if ((v & CR0_PG) !== 0 && (old & CR0_PG) === 0 && (efer & EFER_LME) !== 0) {
      if ((cpu.cr4 & CR4_PAE) === 0) return cpu.fault(GP, 0);
      if ((cpu.segAttr[CS] & ATTR_L) !== 0) return cpu.fault(GP, 0);
      efer |= EFER_LMA;
    }
    if ((v & CR0_PG) === 0 && (old & CR0_PG) !== 0 && (efer & EFER_LMA) !== 0) {
      if (cpu.csize === 8) return cpu.fault(GP, 0);
      efer &= ~EFER_LMA;
    }
    const mmu = this.mem.mmu;
    mmu.writeEfer(efer);
    if (mmu.writeCr0(v) !== XLATE_OK) {
      mmu.writeCr0(old);
      mmu.writeEfer(this.efer);
      return cpu.fault(GP, 0);
    }
    if (((old ^ v) & (CR0_PG | CR0_PE)) !== 0) mmu.flushTlb();
    this.efer = efer;
    cpu.cr0 = v;
    this.mem.codeWrites++;
    this.updateMode();
    return ST_BREAK;
  }

  writeCr3(lo: number, hi: number): number {
    const cpu = this.cpu;
    if (this.longMode && (hi & 0xffffff00) !== 0 && (hi & 0x7fffff00) !== 0) return cpu.fault(GP, 0);
    const mmu = this.mem.mmu;
    const save = [mmu.cr3Lo, mmu.cr3Hi];
    if (mmu.writeCr3(lo, this.longMode ? hi : 0) !== XLATE_OK) {
      mmu.writeCr3(save[0], save[1]);
      return cpu.fault(GP, 0);
    }
    this.cr3Lo = lo | 0;
    this.cr3Hi = this.longMode ? hi & 0x7fffffff : 0;
    this.mem.codeWrites++;
    return ST_OK;
  }

  writeCr4(value: number, hi: number): number {
    const cpu = this.cpu;
    const v = value | 0;
    if (hi !== 0 || (v & ~CR4_VALID) !== 0) return cpu.fault(GP, 0);
    if (this.longMode && (v & CR4_PAE) === 0) return cpu.fault(GP, 0);
    const old = cpu.cr4;
    const mmu = this.mem.mmu;
    if (mmu.writeCr4(v) !== XLATE_OK) {
      mmu.writeCr4(old);
      return cpu.fault(GP, 0);
    }
    cpu.cr4 = v;
    this.mem.codeWrites++;
    return ST_OK;
  }

  writeEfer(lo: number, hi: number): number {
    const cpu = this.cpu;
    if (hi !== 0 || (lo & ~EFER_VALID) !== 0) return cpu.fault(GP, 0);
    // LMA is read-only; LME cannot change while paging is on.
    const v = (lo & ~EFER_LMA) | (this.efer & EFER_LMA);
    if ((cpu.cr0 & CR0_PG) !== 0 && ((v ^ this.efer) & EFER_LME) !== 0) return cpu.fault(GP, 0);
    this.efer = v;
    this.mem.mmu.writeEfer(v);
    this.mem.codeWrites++;
    return ST_OK;
  }

  getCr8(): number {
    return this.apic != null ? this.apic.getTpr() >>> 4 : 0;
  }

  setCr8(v: number): number {
    if ((v & ~0xf) !== 0) return this.cpu.fault(GP, 0);
    if (this.apic != null) this.apic.setTpr(v << 4);
    return ST_BREAK;
  }

  // ================================================================ descriptor-table registers

  /** LLDT. */
  lldt(sel: number): number {
    const cpu = this.cpu;
    if ((sel & 0xfffc) === 0) {
      this.ldtSel = sel;
      this.ldtBase = 0;
      this.ldtLimit = 0;
      this.ldtAttr = 0;
      return ST_OK;
    }
    if (sel & 4) return cpu.fault(GP, sel & 0xfffc);
    let st = this.fetchDesc(sel, GP);
    if (st !== ST_OK) return st;
    const attr = descAttr(this.dHi);
    if ((attr & 0x1f) !== SYS_LDT) return cpu.fault(GP, sel & 0xfffc);
    if ((attr & ATTR_P) === 0) return cpu.fault(NP, sel & 0xfffc);
    let base = descBase(this.dLo, this.dHi);
    if (this.longMode) {
      st = this.fetchDescHigh(sel, GP);
      if (st !== ST_OK) return st;
      base = canon(base | 0, this.vals[15] | 0);
      if (base !== base) return cpu.fault(GP, sel & 0xfffc);
    }
    this.ldtSel = sel;
    this.ldtBase = base;
    this.ldtLimit = descLimit(this.dLo, this.dHi);
    this.ldtAttr = attr;
    return ST_OK;
  }

  /** LTR: loads TR and marks the TSS busy. */
  ltr(sel: number): number {
    const cpu = this.cpu;
    if ((sel & 0xfffc) === 0 || (sel & 4) !== 0) return cpu.fault(GP, sel & 0xfffc);
    let st = this.fetchDesc(sel, GP);
    if (st !== ST_OK) return st;
    const attr = descAttr(this.dHi);
    const type = attr & 0x1f;
    const ok = this.longMode ? type === SYS_TSS_AVAIL : type === SYS_TSS_AVAIL || type === SYS_TSS16_AVAIL;
    if (!ok) return cpu.fault(GP, sel & 0xfffc);
    if ((attr & ATTR_P) === 0) return cpu.fault(NP, sel & 0xfffc);
    let base = descBase(this.dLo, this.dHi);
    const lo = this.dLo;
    const hi = this.dHi;
    const la = this.dLa;
    if (this.longMode) {
      st = this.fetchDescHigh(sel, GP);
      if (st !== ST_OK) return st;
      base = canon(base | 0, this.vals[15] | 0);
      if (base !== base) return cpu.fault(GP, sel & 0xfffc);
    }
    const busy = hi | 0x200;
    const c = this.mem.sysWrite(la + 4, 4, busy);
    if (c < 0) return this.memErr(c, la + 4);
    this.trSel = sel;
    this.trBase = base;
    this.trLimit = descLimit(lo, hi);
    this.trAttr = descAttr(busy);
    return ST_OK;
  }

  /** LAR / LSL / VERR / VERW: the descriptor of sel if visible (ZF), else -1. */
  inspect(sel: number, what: number): number {
    const cpu = this.cpu;
    if ((sel & 0xfffc) === 0) return -1;
    const st = this.fetchDesc(sel, GP);
    if (st !== ST_OK) {
      if (cpu.faultVector === GP) return -1; // beyond the table: ZF = 0, no fault
      return -2;
    }
    const attr = descAttr(this.dHi);
    const type = attr & 0xf;
    const dpl = (attr >> 5) & 3;
    const s = (attr & ATTR_S) !== 0;
    const conforming = s && (type & TYPE_CODE) !== 0 && (type & TYPE_C) !== 0;
    if (!conforming && (dpl < cpu.cpl || dpl < (sel & 3))) return -1;
    switch (what) {
      case 0: // LAR (the caller masks the access rights)
        if (!s) {
          const okTypes = this.longMode ? [SYS_LDT, SYS_TSS_AVAIL, SYS_TSS_BUSY, SYS_CALL] : [1, 2, 3, 4, 5, 9, 11, 12];
          if (!okTypes.includes(type)) return -1;
        }
        return this.dHi >>> 0;
      case 1: // LSL
        if (!s) {
          const okTypes = this.longMode ? [SYS_LDT, SYS_TSS_AVAIL, SYS_TSS_BUSY] : [1, 2, 3, 9, 11];
          if (!okTypes.includes(type)) return -1;
        }
        return descLimit(this.dLo, this.dHi);
      case 2: // VERR
        if (!s || ((type & TYPE_CODE) !== 0 && (type & 2) === 0)) return -1;
        return 0;
      default: // VERW
        if (!s || (type & TYPE_CODE) !== 0 || (type & TYPE_W) === 0) return -1;
        return 0;
    }
  }

  // ================================================================ I/O (SysHooks)

  /** I/O permission: CPL <= IOPL outside V86, else the TSS bitmap. ST_OK or #GP(0). */
  private ioAllowed(port: number, size: number): number {
    const cpu = this.cpu;
    if ((cpu.cr0 & CR0_PE) === 0) return ST_OK;
    if ((cpu.flags & VM) === 0 && cpu.cpl <= (cpu.flags & IOPL) >> 12) return ST_OK;
    const type = this.trAttr & 0xf;
    if ((type !== SYS_TSS_AVAIL && type !== SYS_TSS_BUSY) || this.trLimit < 0x67) return cpu.fault(GP, 0);
    const bm = this.mem.sysRead(this.trBase + 0x66, 2);
    if (bm < 0) return this.memErr(bm, this.trBase + 0x66);
    const off = bm + (port >>> 3);
    if (off + 1 > this.trLimit) return cpu.fault(GP, 0);
    const bits = this.mem.sysRead(this.trBase + off, 2);
    if (bits < 0) return this.memErr(bits, this.trBase + off);
    const mask = ((1 << size) - 1) << (port & 7);
    return (bits & mask) !== 0 ? cpu.fault(GP, 0) : ST_OK;
  }

  io(cpu: Cpu, d: Insn): number {
    const r = this.ioReq;
    const op = d.opcode;
    const isString = op >= 0x6c && op <= 0x6f;
    const size = (op & 1) === 0 ? 1 : d.osize === 2 ? 2 : 4;
    const port = op === 0xe4 || op === 0xe5 || op === 0xe6 || op === 0xe7 ? d.imm & 0xff : cpu.lo[RDX] & 0xffff;
    const input = isString ? op <= 0x6d : (op & 2) === 0;
    let st = this.ioAllowed(port, size);
    if (st !== ST_OK) return st;
    r.port = port;
    r.size = size;
    r.input = input;
    r.string = isString;
    r.rep = isString && d.rep !== 0;
    r.asize = d.asize;
    r.nextRip = cpu.nextRip;
    r.count = 1;
    if (!isString) {
      if (!input) {
        const v = cpu.lo[RAX];
        r.data[0] = v;
        r.data[1] = v >>> 8;
        r.data[2] = v >>> 16;
        r.data[3] = v >>> 24;
      }
      r.pending = true;
      return cpu.fault(VEC_EXIT, 0);
    }
    // String I/O: several elements per exit when REP and the direction is up.
    let n = 1;
    if (r.rep) {
      const cnt = strCount(cpu, d.asize);
      if (cnt === 0) return ST_OK;
      n = (cpu.flags & DF) !== 0 ? 1 : Math.min(cnt, Math.floor(r.data.length / size));
    }
    if (input) {
      const la = strAddr(cpu, d.asize, ES, RDI);
      // Only as far as the destination stays writable (checked now, so completion cannot fault).
      const pageLeft = 4096 - (((la % 4096) + 4096) % 4096);
      if (n * size > pageLeft) n = Math.max(1, Math.floor(pageLeft / size));
      const c = this.mem.probeWrite(la, size);
      // Not RAM (MMIO, unbacked): one element per exit; its write leaves on completion.
      if (c === MEM_EXIT) n = 1;
      else if (c < 0) return this.memErr(c, la);
      if (n > 1 && this.mem.probeWrite(la, n * size) < 0) n = 1;
      r.count = n;
      r.done = 0;
      r.memStage = false;
      r.pending = true;
      return cpu.fault(VEC_EXIT, 0);
    }
    const seg = d.seg;
    for (let k = 0; k < n; k++) {
      const la = strAddr(cpu, d.asize, seg, RSI) + k * size;
      const v = cpu.read(la, size);
      if (v < 0) {
        if (k === 0 || cpu.faultVector === VEC_EXIT) {
          if (k === 0) return ST_FAULT;
        }
        this.mem.clearLog();
        n = k;
        break;
      }
      for (let b = 0; b < size; b++) r.data[k * size + b] = v >>> (8 * b);
    }
    st = ST_OK;
    void st;
    r.count = n;
    r.pending = true;
    return cpu.fault(VEC_EXIT, 0);
  }

  /** Completes the pending I/O (IN data already in io.data). Returns ST_OK or a fault. */
  completeIo(): number {
    const cpu = this.cpu;
    const r = this.ioReq;
    r.pending = false;
    if (!r.string) {
      if (r.input) {
        const v = r.data[0] | (r.data[1] << 8) | (r.data[2] << 16) | (r.data[3] << 24);
        if (r.size === 1) cpu.lo[RAX] = (cpu.lo[RAX] & ~0xff) | (v & 0xff);
        else if (r.size === 2) cpu.lo[RAX] = (cpu.lo[RAX] & ~0xffff) | (v & 0xffff);
        else cpu.setReg(RAX, 4, v, 0);
      }
      cpu.rip = r.nextRip;
      cpu.retired++;
      return ST_OK;
    }
    const step = (cpu.flags & DF) !== 0 ? -r.size : r.size;
    if (!r.input) {
      for (let k = 0; k < r.count; k++) {
        strAdvance(cpu, r.asize, RSI, step);
        if (r.rep) strSetCount(cpu, r.asize, strCount(cpu, r.asize) - 1);
      }
    } else {
      for (let k = r.done; k < r.count; k++) {
        let v = 0;
        for (let b = 0; b < r.size; b++) v |= r.data[k * r.size + b] << (8 * b);
        const la = strAddr(cpu, r.asize, ES, RDI);
        this.mem.clearLog();
        const st = cpu.write(la, r.size, v, 0);
        if (st !== ST_OK) {
          if (cpu.faultVector !== VEC_EXIT) return st;
          // The destination is not RAM. An APIC-page write is already done; anything else
          // leaves as an MMIO/EPT exit and the element is committed when the machine completes it.
          if (this.mem.pendKind !== PEND_APIC) {
            r.done = k;
            r.memStage = true;
            return IO_MEM_EXIT;
          }
          this.mem.clearLog();
        }
        strAdvance(cpu, r.asize, RDI, step);
        if (r.rep) strSetCount(cpu, r.asize, strCount(cpu, r.asize) - 1);
      }
    }
    r.done = r.count;
    if (!r.rep || strCount(cpu, r.asize) === 0) {
      cpu.rip = r.nextRip;
      cpu.retired++;
    }
    return ST_OK;
  }

  /**
   * The machine completed the MMIO/EPT write of INS element `done`: commits it (RDI, rCX) and
   * finishes the remaining elements. ST_OK, a fault, or IO_MEM_EXIT again.
   */
  completeIoWrite(): number {
    const cpu = this.cpu;
    const r = this.ioReq;
    r.memStage = false;
    strAdvance(cpu, r.asize, RDI, (cpu.flags & DF) !== 0 ? -r.size : r.size);
    if (r.rep) strSetCount(cpu, r.asize, strCount(cpu, r.asize) - 1);
    r.done++;
    return this.completeIo();
  }

  // ================================================================ CLI/STI, RDTSC, CPUID (SysHooks)

  cliSti(cpu: Cpu, d: Insn): number {
    const iopl = (cpu.flags & IOPL) >> 12;
    if ((cpu.cr0 & CR0_PE) !== 0 && cpu.cpl > iopl) return cpu.fault(GP, 0);
    if (d.opcode === 0xfa) {
      cpu.flags &= ~IF;
      return ST_OK;
    }
    if ((cpu.flags & IF) !== 0) return ST_OK;
    cpu.flags |= IF;
    this.shadow = true;
    this.shadowAt = cpu.retired;
    return this.breakUnlessQuiet();
  }

  /**
   * Set by the vCPU: true when stopping the slice to look for events would find nothing to do
   * (nothing deliverable, no interrupt window wanted, no single-step or breakpoint state), so an
   * instruction that may unblock interrupts (STI, IRET) can let the slice go on.
   */
  quietBreak: (() => boolean) | null = null;

  /** ST_BREAK, or ST_OK when the vCPU says the break would find nothing to do. */
  private breakUnlessQuiet(): number {
    return this.quietBreak != null && this.quietBreak() ? ST_OK : ST_BREAK;
  }

  /** The TSC: time in ns (1 GHz) plus the guest's offset, as lo/hi into out. */
  readTsc(out: Int32Array): void {
    const t = Math.floor(this.time.now()) + this.tscOffset;
    out[0] = t | 0;
    out[1] = hiOf(t);
  }

  private readonly t2 = new Int32Array(2);

  rdtsc(cpu: Cpu, d: Insn): number {
    if ((cpu.cr4 & CR4_TSD) !== 0 && cpu.cpl !== 0 && (cpu.cr0 & CR0_PE) !== 0) return cpu.fault(GP, 0);
    this.readTsc(this.t2);
    cpu.setReg(RAX, 4, this.t2[0], 0);
    cpu.setReg(RDX, 4, this.t2[1], 0);
    if (d.map === 1 && d.opcode === 0x01) cpu.setReg(RCX, 4, cpu.tscAux, 0);
    return ST_OK;
  }

  cpuid(cpu: Cpu, leaf: number, sub: number, out: Int32Array): void {
    cpuidSystem(this, cpu, leaf >>> 0, sub >>> 0, out);
  }

  // ================================================================ MSRs

  /** RDMSR index into out (lo/hi); false = #GP. */
  readMsr(index: number, out: Int32Array): boolean {
    const cpu = this.cpu;
    out[0] = 0;
    out[1] = 0;
    const i = index | 0;
    switch (i) {
      case MSR_TSC:
        this.readTsc(out);
        return true;
      case MSR_TSC_ADJUST:
        out[0] = this.tscOffset | 0;
        out[1] = hiOf(this.tscOffset);
        return true;
      case MSR_PLATFORM_ID:
      case MSR_BIOS_SIGN_ID:
      case MSR_FEATURE_CONTROL:
      case MSR_MCG_STATUS:
        return true;
      case MSR_FEATURE_CONTROL + 0x1000: // never
        return false;
      case MSR_APIC_BASE:
        out[0] = this.apic != null ? this.apic.baseMsr : 0;
        return this.apic != null;
      case MSR_SPEC_CTRL:
        out[0] = this.specCtrl;
        return true;
      case MSR_ARCH_CAPABILITIES:
        // RDCL_NO, IBRS_ALL, SKIP_L1DFL_VMENTRY, MDS_NO: not vulnerable (nothing is speculated).
        out[0] = 0x1 | 0x2 | 0x8 | 0x20;
        return true;
      case MSR_MTRRCAP:
        out[0] = 0x508; // 8 variable ranges, fixed ranges, write-combining
        return true;
      case MSR_MTRR_DEF_TYPE:
        out[0] = this.mtrrDefType;
        return true;
      case MSR_PAT:
        out[0] = this.patLo;
        out[1] = this.patHi;
        return true;
      case MSR_SYSENTER_CS:
        out[0] = this.sysenterCs;
        return true;
      case MSR_SYSENTER_ESP:
        out[0] = this.sysenterEsp | 0;
        out[1] = hiOf(this.sysenterEsp);
        return true;
      case MSR_SYSENTER_EIP:
        out[0] = this.sysenterEip | 0;
        out[1] = hiOf(this.sysenterEip);
        return true;
      case MSR_MCG_CAP:
        return true;
      case MSR_MISC_ENABLE:
        out[0] = this.miscEnable;
        return true;
      case MSR_EFER:
        out[0] = this.efer;
        return true;
      case MSR_STAR:
        out[0] = this.star;
        out[1] = this.starHi;
        return true;
      case MSR_LSTAR:
        out[0] = this.lstar | 0;
        out[1] = hiOf(this.lstar);
        return true;
      case MSR_CSTAR:
        out[0] = this.cstar | 0;
        out[1] = hiOf(this.cstar);
        return true;
      case MSR_SFMASK:
        out[0] = this.sfmask;
        return true;
      case MSR_FS_BASE:
      case MSR_GS_BASE: {
        const b = cpu.segBase[i === MSR_FS_BASE ? FS : GS];
        out[0] = b | 0;
        out[1] = hiOf(b);
        return true;
      }
      case MSR_KERNEL_GS_BASE:
        out[0] = this.kernelGsBase | 0;
        out[1] = hiOf(this.kernelGsBase);
        return true;
      case MSR_TSC_AUX:
        out[0] = cpu.tscAux;
        return true;
    }
    if (i >= MSR_MTRR_PHYSBASE0 && i <= MSR_MTRR_PHYSMASK7) {
      const k = (i - MSR_MTRR_PHYSBASE0) * 2;
      out[0] = this.mtrrVar[k];
      out[1] = this.mtrrVar[k + 1];
      return true;
    }
    const f = fixedMtrr(i);
    if (f >= 0) {
      out[0] = this.mtrrFixed[2 * f];
      out[1] = this.mtrrFixed[2 * f + 1];
      return true;
    }
    if (i >= MSR_X2APIC_FIRST && i <= MSR_X2APIC_LAST) return this.apic != null && this.apic.readMsr(i, out);
    if (i === 0x6e0) {
      if (this.apic == null) return false;
      this.apic.readDeadline(out);
      return true;
    }
    this.lastUnknownMsr = i >>> 0;
    return this.ignoreUnknownMsrs;
  }

  /** WRMSR: ST_OK, ST_BREAK (may unblock an interrupt) or #GP. */
  writeMsr(index: number, lo: number, hi: number): number {
    const cpu = this.cpu;
    const i = index | 0;
    const gp = (): number => cpu.fault(GP, 0);
    const num = (): number => canon(lo, hi);
    switch (i) {
      case MSR_TSC: {
        const now = Math.floor(this.time.now());
        this.tscOffset = hi * TWO32 + (lo >>> 0) - now;
        return ST_OK;
      }
      case MSR_TSC_ADJUST:
        this.tscOffset = hi * TWO32 + (lo >>> 0);
        return ST_OK;
      case MSR_BIOS_SIGN_ID:
      case MSR_PRED_CMD:
      case MSR_FLUSH_CMD:
      case MSR_MCG_STATUS:
        return ST_OK;
      case MSR_SPEC_CTRL:
        if ((lo & ~7) !== 0 || hi !== 0) return gp();
        this.specCtrl = lo;
        return ST_OK;
      case MSR_APIC_BASE:
        if (this.apic == null || hi !== 0 || !this.apic.writeBase(lo)) return gp();
        return ST_BREAK;
      case MSR_MTRR_DEF_TYPE:
        if (hi !== 0 || (lo & ~0xcff) !== 0) return gp();
        this.mtrrDefType = lo;
        return ST_OK;
      case MSR_PAT:
        for (let k = 0; k < 8; k++) {
          const t = ((k < 4 ? lo : hi) >>> ((k & 3) * 8)) & 0xff;
          if (t === 2 || t === 3 || t > 7) return gp();
        }
        this.patLo = lo;
        this.patHi = hi;
        return ST_OK;
      case MSR_SYSENTER_CS:
        this.sysenterCs = lo & 0xffff;
        return ST_OK;
      case MSR_SYSENTER_ESP:
      case MSR_SYSENTER_EIP: {
        const v = num();
        if (v !== v) return gp();
        if (i === MSR_SYSENTER_ESP) this.sysenterEsp = v;
        else this.sysenterEip = v;
        return ST_OK;
      }
      case MSR_MISC_ENABLE:
        this.miscEnable = (this.miscEnable & ~0x400000) | (lo & 0x400000) | 1;
        return ST_OK;
      case MSR_EFER:
        return this.writeEfer(lo, hi);
      case MSR_STAR:
        this.star = lo;
        this.starHi = hi;
        return ST_OK;
      case MSR_LSTAR:
      case MSR_CSTAR:
      case MSR_KERNEL_GS_BASE:
      case MSR_FS_BASE:
      case MSR_GS_BASE: {
        const v = num();
        if (v !== v) return gp();
        if (i === MSR_LSTAR) this.lstar = v;
        else if (i === MSR_CSTAR) this.cstar = v;
        else if (i === MSR_KERNEL_GS_BASE) this.kernelGsBase = v;
        else cpu.segBase[i === MSR_FS_BASE ? FS : GS] = v;
        return ST_OK;
      }
      case MSR_SFMASK:
        this.sfmask = lo;
        return ST_OK;
      case MSR_TSC_AUX:
        if (hi !== 0) return gp();
        cpu.tscAux = lo;
        return ST_OK;
    }
    if (i >= MSR_MTRR_PHYSBASE0 && i <= MSR_MTRR_PHYSMASK7) {
      const k = (i - MSR_MTRR_PHYSBASE0) * 2;
      this.mtrrVar[k] = lo;
      this.mtrrVar[k + 1] = hi;
      return ST_OK;
    }
    const f = fixedMtrr(i);
    if (f >= 0) {
      this.mtrrFixed[2 * f] = lo;
      this.mtrrFixed[2 * f + 1] = hi;
      return ST_OK;
    }
    if (i >= MSR_X2APIC_FIRST && i <= MSR_X2APIC_LAST) {
      if (this.apic == null || !this.apic.writeMsr(i, lo, hi)) return gp();
      return ST_BREAK;
    }
    if (i === 0x6e0) {
      if (this.apic == null) return gp();
      this.apic.writeDeadline(lo, hi);
      return ST_BREAK;
    }
    this.lastUnknownMsr = i >>> 0;
    return this.ignoreUnknownMsrs ? ST_OK : gp();
  }

  /** CR0.TS check helper for CLTS. */
  clts(): number {
    this.cpu.cr0 &= ~CR0_TS;
    this.mem.mmu.cr0 = this.cpu.cr0;
    return ST_OK;
  }
}

/** Task-switch reasons. */
const TS_JMP = 0;
const TS_CALL = 1;
const TS_IRET = 2;
const TS_INT = 3;
const TASK_SCRATCH = new Int32Array(18);
const TASK_SEGS = [SS, DS, ES, FS, GS];

/** CR0.ET is hard-wired to 1 on every processor since the i486. */
const CR0_ET_FORCE = 0x10;
const SCRUB = [ES, DS, FS, GS];

function fixedMtrr(i: number): number {
  if (i === MSR_MTRR_FIX64K) return 0;
  if (i === MSR_MTRR_FIX16K_80000) return 1;
  if (i === MSR_MTRR_FIX16K_A0000) return 2;
  if (i >= MSR_MTRR_FIX4K_C0000 && i <= MSR_MTRR_FIX4K_F8000) return 3 + (i - MSR_MTRR_FIX4K_C0000);
  return -1;
}

/** Vectors that push an error code in protected mode. */
export function hasErrorCode(v: number): boolean {
  return v === DF_VEC || (v >= 10 && v <= 14) || v === 17 || v === 21;
}

// ---------------------------------------------------------------- string I/O helpers

function strCount(cpu: Cpu, asize: number): number {
  if (asize === 8) return cpu.hi[RCX] * TWO32 + (cpu.lo[RCX] >>> 0);
  return asize === 4 ? cpu.lo[RCX] >>> 0 : cpu.lo[RCX] & 0xffff;
}

function strSetCount(cpu: Cpu, asize: number, n: number): void {
  if (asize === 8) {
    cpu.lo[RCX] = n | 0;
    cpu.hi[RCX] = Math.floor(n / TWO32) | 0;
  } else if (asize === 4) {
    cpu.lo[RCX] = n | 0;
    if (cpu.csize === 8) cpu.hi[RCX] = 0;
  } else cpu.lo[RCX] = (cpu.lo[RCX] & ~0xffff) | (n & 0xffff);
}

function strAddr(cpu: Cpu, asize: number, seg: number, r: number): number {
  if (asize === 8) {
    const la = canon(cpu.lo[r], cpu.hi[r]);
    return seg === FS || seg === GS ? la + cpu.segBase[seg] : la;
  }
  const off = asize === 4 ? cpu.lo[r] >>> 0 : cpu.lo[r] & 0xffff;
  if (cpu.csize === 8) return seg === FS || seg === GS ? off + cpu.segBase[seg] : off;
  return (cpu.segBase[seg] + off) >>> 0;
}

function strAdvance(cpu: Cpu, asize: number, r: number, delta: number): void {
  if (asize === 8) {
    const s = (cpu.lo[r] >>> 0) + delta;
    cpu.hi[r] = (cpu.hi[r] + Math.floor(s / TWO32)) | 0;
    cpu.lo[r] = s | 0;
  } else if (asize === 4) {
    cpu.lo[r] = (cpu.lo[r] + delta) | 0;
    if (cpu.csize === 8) cpu.hi[r] = 0;
  } else cpu.lo[r] = (cpu.lo[r] & ~0xffff) | ((cpu.lo[r] + delta) & 0xffff);
}

// ---------------------------------------------------------------- CPUID model

function str4(s: string, i: number): number {
  let v = 0;
  for (let k = 0; k < 4; k++) v |= (s.charCodeAt(i + k) & 0xff) << (8 * k);
  return v;
}

/** Hypervisor signature (CPUID 0x40000000 EBX, ECX, EDX). */
export const HV_SIGNATURE = 'RingZeroVirt';

/**
 * The system CPUID model: the user-level leaves of cpuidLeaf plus what the system half
 * implements (PSE, MSR, PAE, APIC, SEP, MTRR, PGE, PAT, PSE-36, x2APIC, TSC-deadline, NX,
 * 1 GiB pages, SMEP, SMAP, the hypervisor bit) and the hypervisor leaves.
 */
export function cpuidSystem(sys: System, cpu: Cpu, leaf: number, sub: number, out: Int32Array): void {
  if (leaf >= 0x40000000 && leaf <= 0x4fffffff) {
    out[0] = out[1] = out[2] = out[3] = 0;
    if (leaf === 0x40000000) {
      out[0] = 0x40000001;
      out[1] = str4(HV_SIGNATURE, 0);
      out[2] = str4(HV_SIGNATURE, 4);
      out[3] = str4(HV_SIGNATURE, 8);
    }
    return;
  }
  if (leaf === 4 || leaf === 0xb) {
    cpuidTopology(sys, leaf, sub, out);
    return;
  }
  if (leaf === 0x80000005 || leaf === 0x80000006) {
    out[0] = out[1] = out[2] = out[3] = 0;
    // L1d/L1i 32 KiB 8-way 64-byte lines; L2 256 KiB 8-way (AMD-style leaves, read by Linux's
    // generic cache-size detection). Sizes the guest may tune for; nothing is cached really.
    if (leaf === 0x80000005) {
      out[2] = (32 << 24) | (8 << 16) | (1 << 8) | 64;
      out[3] = (32 << 24) | (8 << 16) | (1 << 8) | 64;
    } else out[2] = (256 << 16) | (6 << 12) | (1 << 8) | 64;
    return;
  }
  cpuidLeaf(cpu, leaf, sub, out);
  switch (leaf) {
    case 0:
      if ((out[0] >>> 0) < 0xb) out[0] = 0xb;
      break;
    case 0x80000000:
      if ((out[0] >>> 0) < 0x80000008) out[0] = 0x80000008 | 0;
      break;
    case 1:
      // EDX: DE 2, PSE 3, TSC 4, MSR 5, PAE 6, CX8 8, APIC 9, SEP 11, MTRR 12, PGE 13, CMOV 15, PAT 16, PSE36 17.
      out[3] |= (1 << 2) | (1 << 3) | (1 << 5) | (1 << 6) | (1 << 11) | (1 << 12) | (1 << 13) | (1 << 16) | (1 << 17);
      if (sys.apic != null && (sys.apic.baseMsr & 0x800) !== 0) out[3] |= 1 << 9;
      // ECX: x2APIC 21, TSC-deadline 24, hypervisor 31.
      out[2] |= (sys.apic != null ? (1 << 21) | (1 << 24) : 0) | (1 << 31);
      out[1] = (out[1] & 0x00ffffff) | (sys.apicId << 24);
      break;
    case 7:
      if (sub === 0) out[1] |= (1 << 7) | (1 << 20); // SMEP, SMAP
      break;
    case 0x80000001:
      out[3] |= (1 << 20) | (1 << 26); // NX, 1 GiB pages
      break;
  }
}

/** Leaf 4 (deterministic cache parameters) and leaf 0xB (x2APIC topology): one thread, one core. */
function cpuidTopology(sys: System, leaf: number, sub: number, out: Int32Array): void {
  out[0] = out[1] = out[2] = out[3] = 0;
  if (leaf === 4) {
    // type (1 data, 2 instruction, 3 unified), level, self-initialising; EBX ways-1 << 22 |
    // partitions-1 << 12 | line-1; ECX sets-1.
    const caches: readonly (readonly [number, number, number, number])[] = [
      [1, 1, 8, 64], // L1d 32 KiB: 8 ways x 64 sets x 64 B
      [2, 1, 8, 64], // L1i 32 KiB
      [3, 2, 8, 512], // L2 256 KiB
    ];
    if (sub < caches.length) {
      const [type, level, ways, sets] = caches[sub];
      out[0] = type | (level << 5) | (1 << 8);
      out[1] = ((ways - 1) << 22) | 63;
      out[2] = sets - 1;
    }
    return;
  }
  // 0xB: level 0 = SMT (1 logical processor), level 1 = core (1); x2APIC ID in EDX.
  if (sub === 0) {
    out[0] = 0;
    out[1] = 1;
    out[2] = (1 << 8) | sub;
  } else if (sub === 1) {
    out[0] = 0;
    out[1] = 1;
    out[2] = (2 << 8) | sub;
  } else out[2] = sub;
  out[3] = sys.apicId;
}

// Unused-import guards for constants kept for readability of the tables above.
void SYS_TSS16_BUSY;
void EFER_NXE;
