/**
 * The CPU: architectural state as typed arrays and plain numeric fields (one stable shape), the
 * operand/memory/stack helpers that instruction handlers use, lazy flags, and the run loop.
 *
 * 64-bit values are lo/hi int32 halves (lo[r], hi[r]); linear addresses and RIP are numbers
 * (canonical addresses in signed form, see memory.ts). Nothing here allocates per instruction.
 */
import {
  AF,
  ARITH_FLAGS,
  CF,
  CS,
  EXIT_BREAK,
  EXIT_BUDGET,
  EXIT_EXCEPTION,
  EXIT_HLT,
  EXIT_SOFTINT,
  EXIT_SYSCALL,
  FS,
  GP,
  GS,
  OF,
  PF,
  PF_VEC,
  RSP,
  SF,
  SS,
  SS_VEC,
  VEC_EXIT,
  ST_AGAIN,
  ST_BREAK,
  ST_FAULT,
  ST_HLT,
  ST_OK,
  ST_SOFTINT,
  ST_SYSCALL,
  ZF,
} from './constants';
import { decode, DecodeFault } from './decoder';
import { Insn } from './insn';
import { MEM_EXIT, MEM_PF_BASE, type CpuMemory } from './memory';
import { Jit, jitDefault } from './jit/jit';
import { LZ_ADC1, LZ_ADD, LZ_RES, LZ_SBB1, LZ_SUB, PARITY, canon, hiOf } from './arith';

export { LZ_ADD, LZ_ADC1, LZ_SUB, LZ_SBB1, LZ_LOGIC, LZ_RES, hiOf, canon } from './arith';

const TWO32 = 4294967296;
/** Linear-page shortcuts of the frame-keyed decode cache (power of two). */
const IC_LIN = 64;
/** Decoded pages kept before the frame-keyed cache starts over (bounds host memory). */
const IC_MAX_FRAMES = 2048;
const MAX_CANON = 140737488355328; // 2^47
/** 1 << scale as a double (index * 8 may exceed int32). */
const SCALE = new Float64Array([1, 2, 4, 8]);

/** Feature switches of the CPU model; CPUID reports exactly these (src/exec/misc.ts). */
export interface CpuFeatures {
  /** x87 FPU implemented and advertised (CPUID.1:EDX.FPU); on by default (src/x87, proven against the host). */
  fpu: boolean;
  /** SSE2 (CPUID.1:EDX.SSE2). Default on: implemented and proven against the host (src/sse). */
  sse2: boolean;
  /** MMX (CPUID.1:EDX.MMX). Default on (src/sse). */
  mmx: boolean;
  /** SSE and FXSR (CPUID.1:EDX.SSE/FXSR). Default on (src/sse). */
  sse: boolean;
  /** SSE3 (CPUID.1:ECX.SSE3). Default on (src/sse). */
  sse3: boolean;
  /** SSSE3 (CPUID.1:ECX.SSSE3). Default on (src/sse). */
  ssse3: boolean;
}

/**
 * Hooks of the system half (src/system, the vCPU): present when the CPU runs a whole machine,
 * null for user mode. Handlers call them only on their slow paths (I/O, segment loads, CLI/STI,
 * SYSCALL, RDTSC, CPUID); each returns a status like a handler.
 */
export interface SysHooks {
  /** IN/OUT/INS/OUTS (all encodings). */
  io(cpu: Cpu, d: Insn): number;
  /** MOV Sreg / POP Sreg: loads segment register s with selector sel (all checks). */
  loadSeg(cpu: Cpu, d: Insn, s: number, sel: number): number;
  /** CLI (FA) / STI (FB). */
  cliSti(cpu: Cpu, d: Insn): number;
  /** SYSCALL when syscallExits is false. */
  syscall(cpu: Cpu, d: Insn): number;
  /** RDTSC / RDTSCP. */
  rdtsc(cpu: Cpu, d: Insn): number;
  /** CPUID leaf/subleaf into out[0..3]. */
  cpuid(cpu: Cpu, leaf: number, sub: number, out: Int32Array): void;
}

export class Cpu {
  readonly mem: CpuMemory;
  /** General registers: lo[r] is bits 0..31, hi[r] bits 32..63 (two views of one buffer). */
  readonly lo: Int32Array;
  readonly hi: Int32Array;
  /** RIP (EIP/IP below 64-bit code): an offset from CS.base, signed-canonical in 64-bit mode. */
  rip = 0;
  /** RIP of the next instruction while one executes; branches write it. */
  nextRip = 0;
  /** EFLAGS; the bits named in lzMask are stale and come from the lazy record. */
  flags = 0x2;
  lzMask = 0;
  lzOp = 0;
  lzSize = 4;
  lzRes = 0;
  lzResH = 0;
  lzA = 0;
  lzAH = 0;
  lzB = 0;
  lzBH = 0;

  /** Segment registers ES, CS, SS, DS, FS, GS: selector, base, limit, attributes (system issue). */
  readonly segSel: Uint16Array = new Uint16Array(6);
  readonly segBase: Float64Array = new Float64Array(6);
  readonly segLimit: Float64Array = new Float64Array(6).fill(0xffffffff);
  readonly segAttr: Uint16Array = new Uint16Array(6);
  /**
   * Segments whose limit, expand-down type or null-ness must be checked on each data access
   * (bit n = segment n). Kept by the system half (0 in user mode, 64-bit mode and when every
   * segment is flat), so flat code pays one test of this field per access.
   */
  segChk = 0;
  /** Vector of the fault for a NaN linear address: #GP, or #SS after a stack-limit violation. */
  limitVec: number = GP;
  /** Code size (2, 4, 8 bytes): from CS.D/CS.L and EFER.LMA once the system issue exists. */
  csize = 8;
  /** Stack address size (2, 4, 8): SS.B, or 8 in 64-bit mode. */
  ssize = 8;
  /** Current privilege level (user-mode runner: 3). */
  cpl = 3;

  /** SSE: XMM0-15 as 4 x uint32 each (xmm[r * 4 + i]); MXCSR. Owned by src/sse. */
  readonly xmm: Uint32Array = new Uint32Array(16 * 4);
  mxcsr = 0x1f80;
  /**
   * CR0 and CR4 as the SSE/MMX/x87 groups read them (CR0.EM/TS/MP/NE, CR4.OSFXSR/OSXMMEXCPT);
   * the system issue owns writes. Defaults: what Linux sets for user mode (PE MP ET NE WP AM PG;
   * PAE PGE OSFXSR OSXMMEXCPT).
   */
  cr0 = 0x80050033;
  cr4 = 0x6a0;
  /** x87: physical registers R0-R7 as doubles, tag word, control/status words, TOP. Owned by src/x87. */
  readonly fpr: Float64Array = new Float64Array(8);
  /** Extra precision slot per register (x87 group decides: e.g. low mantissa bits). */
  readonly fprExt: Uint32Array = new Uint32Array(8);
  fpTag = 0xffff;
  fpCw = 0x037f;
  fpSw = 0;
  fpTop = 0;
  /** MMX aliases the x87 registers: the SSE/MMX group stores MMn as lo/hi here. */
  readonly mmx: Int32Array = new Int32Array(16);

  /** The fault raised by the last instruction (valid after EXIT_EXCEPTION). */
  faultVector = -1;
  faultError = 0;
  /** CR2 for a page fault. */
  faultAddress = 0;
  /** When true SYSCALL leaves run() with EXIT_SYSCALL (user-mode runner); the system issue clears it. */
  syscallExits = true;
  /** Instructions retired (also the deterministic time base of RDTSC). */
  retired = 0;
  /** IA32_TSC_AUX (RDTSCP's ECX). */
  tscAux = 0;
  readonly features: CpuFeatures;
  /** The system half (vCPU) when running a machine; null in user mode. */
  sys: SysHooks | null = null;

  /** Scratch: high half of the last 64-bit operand read by a helper. */
  vh = 0;
  /** Scratch: linear address of the current memory operand (set by readE / eaOf). */
  ea = 0;
  readonly insn: Insn = new Insn();
  /** @internal Decode cache: per 4 KiB code page, the decoded Insn at each offset (see DESIGN.md). */
  readonly icPages: Map<number, (Insn | undefined)[]> = new Map();
  /** @internal Linear address of the current cached page (NaN when none). */
  icBase: number = NaN;
  /** @internal */
  icArr: (Insn | undefined)[] | null = null;
  /** @internal */
  icWrites: number = -1;
  /** @internal */
  icCsize: number = 0;
  /**
   * Frame-keyed decode cache (when the memory has codePage): decoded pages by host frame, kept
   * across mapping changes; a small direct-mapped table maps linear pages to them and is dropped
   * on every mapping change (CR3, INVLPG, CPL, remaps), a frame's page on a write to it.
   */
  /** @internal */
  readonly icFramed: boolean;
  private readonly icFrames: Map<number, (Insn | undefined)[]> = new Map();
  private readonly icLinTag: Float64Array = new Float64Array(IC_LIN).fill(NaN);
  private readonly icLinArr: ((Insn | undefined)[] | null)[] = new Array<(Insn | undefined)[] | null>(IC_LIN).fill(null);
  /** Statistics: decoded pages kept (frame-keyed cache) and times the cache started over full. */
  get decodedPages(): number {
    return this.icFrames.size;
  }
  decodeCacheResets = 0;
  /** Set false to decode every instruction afresh (tests, debugging). */
  decodeCache = true;
  readonly decodeFault: DecodeFault = new DecodeFault();
  readonly tmp: Int32Array = new Int32Array(4);
  /**
   * The block-compiler tier (src/jit): run() hands over to it when set and the budget is above
   * 1. On by default (jitDefault.enabled); `cpu.jit = null` (or enableJit(cpu, false)) turns it off.
   */
  jit: Jit | null = null;

  constructor(mem: CpuMemory, features: Partial<CpuFeatures> = {}) {
    this.mem = mem;
    const buf = new ArrayBuffer(16 * 8);
    this.lo = new Int32Array(buf, 0, 16);
    this.hi = new Int32Array(buf, 64, 16);
    this.icFramed = mem.codePage !== undefined;
    if (this.icFramed) mem.onCodeWrite = (key: number): void => this.icDrop(key);
    this.features = {
      fpu: features.fpu ?? true,
      sse2: features.sse2 ?? true,
      mmx: features.mmx ?? true,
      sse: features.sse ?? true,
      sse3: features.sse3 ?? true,
      ssse3: features.ssse3 ?? true,
    };
    if (jitDefault.enabled) this.jit = new Jit(this);
  }

  // ---------------------------------------------------------------- faults

  /** Records a CPU exception and returns ST_FAULT (handlers: `return cpu.fault(GP, 0)`). */
  fault(vector: number, error: number): number {
    this.faultVector = vector;
    this.faultError = error;
    return ST_FAULT;
  }

  /** Turns a negative memory code for linear address la into a CPU fault. */
  memFault(code: number, la: number): number {
    if (la !== la) {
      // Non-canonical (#GP), or a segment-limit violation (segCheck chose #GP or #SS).
      const v = this.limitVec;
      this.limitVec = GP;
      return this.fault(v, 0);
    }
    if (code > MEM_EXIT) {
      this.faultAddress = this.mem.faultAddress;
      return this.fault(PF_VEC, MEM_PF_BASE - code);
    }
    // MMIO / EPT exits: the system's memory adapter recorded the access; without one, #GP(0).
    return this.fault(this.sys == null ? GP : VEC_EXIT, 0);
  }

  // ---------------------------------------------------------------- registers

  /** Unsigned value of the low `size` bytes (2, 4, 8) of register r; for 8, hi in this.vh. */
  getReg(r: number, size: number): number {
    if (size === 4) return this.lo[r] >>> 0;
    if (size === 8) {
      this.vh = this.hi[r];
      return this.lo[r] >>> 0;
    }
    if (size === 2) return this.lo[r] & 0xffff;
    return this.lo[r] & 0xff;
  }

  /** Writes register r with x86 merge rules: 32-bit writes zero bits 32..63, 8/16 merge. */
  setReg(r: number, size: number, lo: number, hi: number): void {
    if (size === 4) {
      this.lo[r] = lo;
      this.hi[r] = 0;
    } else if (size === 8) {
      this.lo[r] = lo;
      this.hi[r] = hi;
    } else if (size === 2) this.lo[r] = (this.lo[r] & ~0xffff) | (lo & 0xffff);
    else this.lo[r] = (this.lo[r] & ~0xff) | (lo & 0xff);
  }

  /** 8-bit register by encoding: without REX, 4..7 are AH, CH, DH, BH. */
  getReg8(d: Insn, r: number): number {
    if (d.rex === 0 && r >= 4 && r < 8) return (this.lo[r - 4] >> 8) & 0xff;
    return this.lo[r] & 0xff;
  }

  setReg8(d: Insn, r: number, v: number): void {
    if (d.rex === 0 && r >= 4 && r < 8) this.lo[r - 4] = (this.lo[r - 4] & ~0xff00) | ((v & 0xff) << 8);
    else this.lo[r] = (this.lo[r] & ~0xff) | (v & 0xff);
  }

  /** The G operand (ModRM.reg) at the instruction's operand size. */
  readG(d: Insn): number {
    return d.osize === 1 ? this.getReg8(d, d.reg) : this.getReg(d.reg, d.osize);
  }

  writeG(d: Insn, lo: number, hi: number): void {
    if (d.osize === 1) this.setReg8(d, d.reg, lo);
    else this.setReg(d.reg, d.osize, lo, hi);
  }

  // ---------------------------------------------------------------- addressing

  /**
   * The offset part of the memory operand (before the segment base), at address size: int32
   * in this.lo-style for 2/4 (masked), and lo with this.vh = hi for 8. Used by LEA and eaOf.
   */
  offsetOf(d: Insn): number {
    if (d.asize === 8) {
      let lo = d.disp;
      let hi = d.dispHi;
      if (d.ripRel) {
        const s = (lo >>> 0) + ((this.nextRip | 0) >>> 0);
        hi = (hi + hiOf(this.nextRip) + (s >= TWO32 ? 1 : 0)) | 0;
        lo = s | 0;
      }
      if (d.base >= 0) {
        const s = (lo >>> 0) + (this.lo[d.base] >>> 0);
        hi = (hi + this.hi[d.base] + (s >= TWO32 ? 1 : 0)) | 0;
        lo = s | 0;
      }
      if (d.index >= 0) {
        const sc = d.scale;
        const il = this.lo[d.index];
        const ih = sc === 0 ? this.hi[d.index] : (this.hi[d.index] << sc) | (il >>> (32 - sc));
        const s = (lo >>> 0) + ((il << sc) >>> 0);
        hi = (hi + ih + (s >= TWO32 ? 1 : 0)) | 0;
        lo = s | 0;
      }
      this.vh = hi;
      return lo >>> 0;
    }
    let off = d.disp;
    if (d.ripRel) off += this.nextRip | 0;
    if (d.base >= 0) off += this.lo[d.base];
    if (d.index >= 0) off += this.lo[d.index] << d.scale;
    this.vh = 0;
    return d.asize === 4 ? off >>> 0 : off & 0xffff;
  }

  /**
   * Linear address of the memory operand (NaN when non-canonical or beyond the segment limit;
   * `size`: the access size for the limit check). Also stored in this.ea.
   */
  eaOf(d: Insn, size?: number): number {
    const off = this.offsetOf(d);
    let la: number;
    if (d.csize === 8) {
      la = d.asize === 8 ? canon(off, this.vh) : off;
      if (d.seg === FS || d.seg === GS) {
        la += this.segBase[d.seg];
        if (!(la >= -MAX_CANON && la < MAX_CANON)) la = NaN;
      }
    } else {
      la = (this.segBase[d.seg] + off) >>> 0;
      if (this.segChk !== 0) la = this.segCheckEa(d, off, size, la);
    }
    this.ea = la;
    return la;
  }

  /**
   * eaOf for the common 64-bit forms (Insn.eaKind): [base + index*scale + disp] (also with an
   * FS/GS base) and [rip + disp] with a flat segment, in double arithmetic, exact while the registers' high
   * halves are below 2^20 in magnitude (then no 64-bit wrap-around can reach a canonical
   * address). Anything else, and every non-canonical result, takes eaOf. Small, so it inlines.
   */
  eaFast(d: Insn, size?: number): number {
    const k = d.eaKind;
    if (k === 1 || k === 3) {
      let la = d.disp;
      let ok = true;
      const b = d.base;
      if (b >= 0) {
        const h = this.hi[b];
        la += h * TWO32 + (this.lo[b] >>> 0);
        ok = (h << 11) >> 11 === h;
      }
      const x = d.index;
      if (x >= 0) {
        const hx = this.hi[x];
        la += (hx * TWO32 + (this.lo[x] >>> 0)) * SCALE[d.scale];
        ok = ok && (hx << 11) >> 11 === hx;
      }
      // The offset must be canonical by itself, then again with the FS/GS base (as eaOf).
      if (ok && la >= -MAX_CANON && la < MAX_CANON) {
        if (k === 3) la += this.segBase[d.seg];
        if (la >= -MAX_CANON && la < MAX_CANON) {
          this.ea = la;
          return la;
        }
      }
    } else if (k === 2) {
      const la = this.nextRip + d.disp;
      if (la >= -MAX_CANON && la < MAX_CANON) {
        this.ea = la;
        return la;
      }
    }
    return this.eaOf(d, size);
  }

  /** eaOf's slow path when some segment needs limit checks (kept out of eaOf to keep it small). */
  private segCheckEa(d: Insn, off: number, size: number | undefined, la: number): number {
    return ((this.segChk >> d.seg) & 1) !== 0 ? this.segCheck(d.seg, off, size ?? d.osize, la) : la;
  }

  /**
   * The protected-mode limit check of an access of `size` bytes at offset `off` in segment seg
   * (only for segments in segChk): la, or NaN with limitVec = #SS (SS) or #GP (others). A null
   * segment fails; an expand-down data segment allows (limit, 0xffff or 0xffffffff by its B bit].
   */
  segCheck(seg: number, off: number, size: number, la: number): number {
    const attr = this.segAttr[seg];
    const last = off + size - 1;
    let ok: boolean;
    if ((attr & 0x80) === 0) ok = false;
    else if ((attr & 0x1c) === 0x14) ok = off > this.segLimit[seg] && last <= ((attr & 0x4000) !== 0 ? 0xffffffff : 0xffff);
    else ok = last <= this.segLimit[seg];
    if (ok) return la;
    this.limitVec = seg === SS ? SS_VEC : GP;
    return NaN;
  }

  // ---------------------------------------------------------------- memory

  /** Reads size bytes at la: unsigned value (8: lo, hi in this.vh) or -1 after recording a fault. */
  read(la: number, size: number): number {
    let v: number;
    if (size === 4) v = this.mem.read32(la);
    else if (size === 1) v = this.mem.read8(la);
    else if (size === 2) v = this.mem.read16(la);
    else {
      v = this.mem.read64(la, this.tmp, 0);
      if (v === 0) {
        this.vh = this.tmp[1];
        return this.tmp[0] >>> 0;
      }
    }
    if (v < 0) {
      this.memFault(v, la);
      return -1;
    }
    return v;
  }

  /** Writes size bytes at la; returns ST_OK or ST_FAULT. */
  write(la: number, size: number, lo: number, hi: number): number {
    let c: number;
    if (size === 4) c = this.mem.write32(la, lo);
    else if (size === 1) c = this.mem.write8(la, lo & 0xff);
    else if (size === 2) c = this.mem.write16(la, lo & 0xffff);
    else c = this.mem.write64(la, lo, hi);
    return c === 0 ? ST_OK : this.memFault(c, la);
  }

  /** Reads the E operand (ModRM.rm) at operand size; -1 on fault. Sets this.ea for memory. */
  readE(d: Insn): number {
    if (d.mod === 3) return d.osize === 1 ? this.getReg8(d, d.rm) : this.getReg(d.rm, d.osize);
    return this.read(this.eaOf(d), d.osize);
  }

  /** Reads the E operand at an explicit size (MOVZX/MOVSX sources, ...). */
  readESized(d: Insn, size: number): number {
    if (d.mod === 3) return size === 1 ? this.getReg8(d, d.rm) : this.getReg(d.rm, size);
    return this.read(this.eaOf(d, size), size);
  }

  /** Writes the E operand at operand size, computing the address. */
  writeE(d: Insn, lo: number, hi: number): number {
    if (d.mod === 3) {
      if (d.osize === 1) this.setReg8(d, d.rm, lo);
      else this.setReg(d.rm, d.osize, lo, hi);
      return ST_OK;
    }
    return this.write(this.eaOf(d), d.osize, lo, hi);
  }

  /** Writes back the E operand of a read-modify-write (address from the readE before). */
  writeBackE(d: Insn, lo: number, hi: number): number {
    if (d.mod === 3) {
      if (d.osize === 1) this.setReg8(d, d.rm, lo);
      else this.setReg(d.rm, d.osize, lo, hi);
      return ST_OK;
    }
    return this.write(this.ea, d.osize, lo, hi);
  }

  // ---------------------------------------------------------------- stack

  /** Linear address of [rSP + off] for `size` bytes; NaN when non-canonical or beyond SS's limit. */
  stackAddr(off: number, size: number = 1): number {
    if (this.ssize === 8) {
      const s = (this.lo[RSP] >>> 0) + off;
      const hi = (this.hi[RSP] + Math.floor(s / TWO32)) | 0;
      return canon(s | 0, hi);
    }
    if (this.segChk !== 0) return this.stackChecked(off, size);
    if (this.ssize === 4) return (this.segBase[SS] + ((this.lo[RSP] + off) >>> 0)) >>> 0;
    return (this.segBase[SS] + ((this.lo[RSP] + off) & 0xffff)) >>> 0;
  }

  /** stackAddr's slow path when some segment needs limit checks. */
  private stackChecked(off: number, size: number): number {
    const o = this.ssize === 4 ? (this.lo[RSP] + off) >>> 0 : (this.lo[RSP] + off) & 0xffff;
    const la = (this.segBase[SS] + o) >>> 0;
    return (this.segChk & (1 << SS)) !== 0 ? this.segCheck(SS, o, size, la) : la;
  }

  /** rSP += delta at stack address size. */
  addSp(delta: number): void {
    if (this.ssize === 8) {
      const s = (this.lo[RSP] >>> 0) + delta;
      this.hi[RSP] = (this.hi[RSP] + Math.floor(s / TWO32)) | 0;
      this.lo[RSP] = s | 0;
    } else if (this.ssize === 4) this.lo[RSP] = (this.lo[RSP] + delta) | 0;
    else this.lo[RSP] = (this.lo[RSP] & ~0xffff) | ((this.lo[RSP] + delta) & 0xffff);
  }

  /** Pushes size bytes; commits rSP only after the write succeeded. */
  push(size: number, lo: number, hi: number): number {
    const la = this.stackAddr(-size, size);
    const st = this.write(la, size, lo, hi);
    if (st !== ST_OK) return st;
    this.addSp(-size);
    return ST_OK;
  }

  /** Pops size bytes: the value (8: hi in this.vh) or -1 on fault (rSP unchanged then). */
  pop(size: number): number {
    const v = this.read(this.stackAddr(0, size), size);
    if (v < 0) return -1;
    this.addSp(size);
    return v;
  }

  // ---------------------------------------------------------------- flags

  /** Records a lazily evaluated arithmetic result (values unsigned, masked to size). */
  setLazy(opKind: number, size: number, res: number, resH: number, a: number, aH: number, b: number, bH: number): void {
    this.lzOp = opKind;
    this.lzSize = size;
    this.lzRes = res;
    this.lzResH = resH;
    this.lzA = a;
    this.lzAH = aH;
    this.lzB = b;
    this.lzBH = bH;
    this.lzMask = ARITH_FLAGS;
  }

  /** Only SF/ZF/PF lazy from `res`; the caller has put CF/OF/AF into flags. */
  setLazyRes(size: number, res: number, resH: number): void {
    this.lzOp = LZ_RES;
    this.lzSize = size;
    this.lzRes = res;
    this.lzResH = resH;
    this.lzMask = SF | ZF | PF;
  }

  private lzSign(x: number, xh: number): number {
    return this.lzSize === 8 ? xh >>> 31 : (x >>> (this.lzSize * 8 - 1)) & 1;
  }

  /** CF as 0/1. */
  cf(): number {
    if ((this.lzMask & CF) === 0) return this.flags & CF;
    switch (this.lzOp) {
      case LZ_ADD:
        return this.lzResH < this.lzAH || (this.lzResH === this.lzAH && this.lzRes < this.lzA) ? 1 : 0;
      case LZ_ADC1:
        return this.lzResH < this.lzAH || (this.lzResH === this.lzAH && this.lzRes <= this.lzA) ? 1 : 0;
      case LZ_SUB:
        return this.lzAH < this.lzBH || (this.lzAH === this.lzBH && this.lzA < this.lzB) ? 1 : 0;
      case LZ_SBB1:
        return this.lzAH < this.lzBH || (this.lzAH === this.lzBH && this.lzA <= this.lzB) ? 1 : 0;
      default:
        return 0;
    }
  }

  zf(): number {
    if ((this.lzMask & ZF) === 0) return (this.flags >> 6) & 1;
    return this.lzRes === 0 && this.lzResH === 0 ? 1 : 0;
  }

  sf(): number {
    if ((this.lzMask & SF) === 0) return (this.flags >> 7) & 1;
    return this.lzSign(this.lzRes, this.lzResH);
  }

  pf(): number {
    if ((this.lzMask & PF) === 0) return (this.flags >> 2) & 1;
    return PARITY[this.lzRes & 0xff] >> 2;
  }

  af(): number {
    if ((this.lzMask & AF) === 0) return (this.flags >> 4) & 1;
    return this.lzOp <= LZ_SBB1 ? ((this.lzA ^ this.lzB ^ this.lzRes) >>> 4) & 1 : 0;
  }

  of(): number {
    if ((this.lzMask & OF) === 0) return (this.flags >> 11) & 1;
    switch (this.lzOp) {
      case LZ_ADD:
      case LZ_ADC1:
        return this.lzSign((this.lzA ^ this.lzRes) & (this.lzB ^ this.lzRes), (this.lzAH ^ this.lzResH) & (this.lzBH ^ this.lzResH));
      case LZ_SUB:
      case LZ_SBB1:
        return this.lzSign((this.lzA ^ this.lzB) & (this.lzA ^ this.lzRes), (this.lzAH ^ this.lzBH) & (this.lzAH ^ this.lzResH));
      default:
        return 0;
    }
  }

  /** The full EFLAGS value (lazy flags evaluated; nothing cached is changed). */
  getFlags(): number {
    if (this.lzMask === 0) return this.flags;
    const m = this.lzMask;
    let f = this.flags & ~m;
    if (m & CF) f |= this.cf();
    if (m & PF) f |= this.pf() << 2;
    if (m & AF) f |= this.af() << 4;
    if (m & ZF) f |= this.zf() << 6;
    if (m & SF) f |= this.sf() << 7;
    if (m & OF) f |= this.of() << 11;
    return f;
  }

  /** Sets EFLAGS outright (bit 1 forced to 1); lazy state dropped. */
  setFlags(v: number): void {
    this.flags = (v | 2) >>> 0;
    this.lzMask = 0;
  }

  /** Evaluates the lazy flags into `flags` and returns them (before changing some flags eagerly). */
  settleFlags(): number {
    const f = this.getFlags();
    this.flags = f;
    this.lzMask = 0;
    return f;
  }

  /** Condition code cc (0..15, the low nibble of Jcc/SETcc/CMOVcc) as a boolean. */
  cond(cc: number): boolean {
    let r: number;
    switch (cc >> 1) {
      case 0: r = this.of(); break;
      case 1: r = this.cf(); break;
      case 2: r = this.zf(); break;
      case 3: r = this.cf() | this.zf(); break;
      case 4: r = this.sf(); break;
      case 5: r = this.pf(); break;
      case 6: r = this.sf() ^ this.of(); break;
      default: r = this.zf() | (this.sf() ^ this.of());
    }
    return (r ^ (cc & 1)) !== 0;
  }

  // ---------------------------------------------------------------- control transfer

  /** Sets nextRip to a branch target, truncated to the operand size; #GP if non-canonical. */
  branch(target: number, osize: number): number {
    if (osize === 8 || this.csize === 8) {
      if (osize === 2) target = ((target % 65536) + 65536) % 65536;
      else if (osize === 4) target = target >>> 0;
      if (!(target >= -MAX_CANON && target < MAX_CANON)) return this.fault(GP, 0);
      this.nextRip = target;
      return ST_OK;
    }
    target = osize === 2 ? target & 0xffff : target >>> 0;
    if (target > this.segLimit[CS]) return this.fault(GP, 0);
    this.nextRip = target;
    return ST_OK;
  }

  // ---------------------------------------------------------------- run loop

  /**
   * Executes up to `budget` instructions and returns an exit reason (EXIT_*). On
   * EXIT_EXCEPTION the state is that before the faulting instruction, with faultVector,
   * faultError and faultAddress set. On EXIT_SYSCALL / EXIT_HLT RIP points past the instruction.
   */
  run(budget: number): number {
    if (this.jit != null && budget > 1) return this.jit.run(budget);
    const scratch = this.insn;
    const mem = this.mem;
    const df = this.decodeFault;
    const cached = this.decodeCache && (this.icFramed || mem.markCode !== undefined);
    while (budget > 0) {
      const rip = this.rip;
      const csize = this.csize;
      const la = csize === 8 ? rip : (this.segBase[CS] + rip) >>> 0;
      let arr: (Insn | undefined)[] | null = null;
      let off = 0;
      let d: Insn | undefined;
      if (cached) {
        if (mem.codeWrites !== this.icWrites || csize !== this.icCsize) this.icFlush(csize);
        off = la - this.icBase;
        if (off >= 0 && off < 4096) arr = this.icArr;
        else {
          const pn = Math.floor(la / 4096);
          arr = this.icFramed ? this.icFramePage(pn, la) : this.icPage(pn, la);
          off = la - pn * 4096;
        }
        if (arr != null) d = arr[off];
      }
      if (d === undefined) {
        d = arr != null ? new Insn() : scratch;
        if (decode(mem, la, csize, d, df) !== ST_OK) {
          if (df.vector >= 0) this.fault(df.vector, 0);
          else this.memFault(df.memCode, la);
          return EXIT_EXCEPTION;
        }
        if (arr != null && off + d.len <= 4096 && mem.codeWrites === this.icWrites) arr[off] = d;
      }
      // Execute d, then, while the next instruction is a cached one on the same page (and no
      // code write, mapping change or code-size change intervened), the next without going
      // back through the page lookup.
      let r = rip;
      let st: number;
      for (;;) {
        const n = r + d.len;
        this.nextRip = csize === 8 ? n : csize === 4 ? n >>> 0 : n & 0xffff;
        st = d.exec(this, d);
        if (st !== ST_OK) break;
        r = this.nextRip;
        this.rip = r;
        this.retired++;
        if (--budget <= 0 || arr == null || this.icArr !== arr || mem.codeWrites !== this.icWrites || this.csize !== csize) break;
        const nla = csize === 8 ? r : (this.segBase[CS] + r) >>> 0;
        let o = nla - this.icBase;
        if (!(o >= 0 && o < 4096)) {
          // Another page (a call, return or jump): stay here when the linear table has it.
          const pn = Math.floor(nla / 4096);
          const slot = pn & (IC_LIN - 1);
          const other = this.icLinTag[slot] === pn ? this.icLinArr[slot] : null;
          if (other == null) break;
          this.icBase = pn * 4096;
          this.icArr = other;
          arr = other;
          o = nla - this.icBase;
        }
        const next = arr[o];
        if (next === undefined) break;
        d = next;
      }
      if (st === ST_OK) continue;
      if (st === ST_AGAIN) {
        budget--;
        continue;
      }
      return this.exitFor(st);
    }
    return EXIT_BUDGET;
  }

  /**
   * The run() exit for a handler status other than ST_OK/ST_AGAIN: SYSCALL, HLT, software
   * interrupts and breaks retire the instruction (RIP past it); anything else is a fault, with
   * the state before the instruction. Shared by the interpreter and the JIT tier.
   * @internal
   */
  exitFor(st: number): number {
    let exit: number;
    if (st === ST_SYSCALL) exit = EXIT_SYSCALL;
    else if (st === ST_HLT) exit = EXIT_HLT;
    else if (st === ST_SOFTINT) exit = EXIT_SOFTINT;
    else if (st === ST_BREAK) exit = EXIT_BREAK;
    else return EXIT_EXCEPTION;
    this.rip = this.nextRip;
    this.retired++;
    return exit;
  }

  /** @internal */
  icFlush(csize: number): void {
    // Frame-keyed: a mapping change only drops the linear table; decoded pages stay unless the
    // code size changed (decodes depend on it).
    if (!this.icFramed || csize !== this.icCsize || this.icFrames.size > IC_MAX_FRAMES) this.icFrames.clear();
    this.icPages.clear();
    this.icLinTag.fill(NaN);
    this.icBase = NaN;
    this.icArr = null;
    this.icCsize = csize;
    this.icWrites = this.mem.codeWrites ?? 0;
  }

  /** A write is about to change frame `key`: forget its decodes (and every linear shortcut). */
  /** @internal */
  icDrop(key: number): void {
    if (this.icFrames.delete(key)) {
      this.icLinTag.fill(NaN);
      this.icBase = NaN;
      this.icArr = null;
    }
  }

  /** @internal */
  icFramePage(pn: number, la: number): (Insn | undefined)[] | null {
    const slot = pn & (IC_LIN - 1);
    let arr: (Insn | undefined)[] | null | undefined;
    if (this.icLinTag[slot] === pn) arr = this.icLinArr[slot];
    else {
      const key = this.mem.codePage!(la);
      if (key < 0) {
        this.icBase = NaN;
        this.icArr = null;
        return null;
      }
      arr = this.icFrames.get(key);
      if (arr === undefined) {
        if (this.icFrames.size >= IC_MAX_FRAMES) {
          this.decodeCacheResets++;
          this.icFrames.clear();
          this.icLinTag.fill(NaN);
        }
        arr = new Array<Insn | undefined>(4096);
        this.icFrames.set(key, arr);
      }
      this.icLinTag[slot] = pn;
      this.icLinArr[slot] = arr;
    }
    this.icBase = pn * 4096;
    this.icArr = arr;
    return arr;
  }

  /** @internal */
  icPage(pn: number, la: number): (Insn | undefined)[] | null {
    // The linear table (flushed with the cache) saves the Map lookup on most page changes.
    const slot = pn & (IC_LIN - 1);
    let arr: (Insn | undefined)[] | null | undefined = this.icLinTag[slot] === pn ? this.icLinArr[slot] : this.icPages.get(pn);
    if (arr == null) {
      if (this.mem.markCode?.(la) !== true) return null;
      this.icWrites = this.mem.codeWrites ?? 0; // marking may re-fill the TLB, not a write
      arr = new Array<Insn | undefined>(4096);
      this.icPages.set(pn, arr);
    }
    this.icLinTag[slot] = pn;
    this.icLinArr[slot] = arr;
    this.icBase = pn * 4096;
    this.icArr = arr;
    return arr;
  }

  /** Executes one instruction (run(1)). */
  step(): number {
    return this.run(1);
  }

  /** RIP etc. helpers for embedders: register r as a number (exact below 2^53). */
  regNumber(r: number): number {
    return this.hi[r] * TWO32 + (this.lo[r] >>> 0);
  }

  /** Sets register r from a safe integer (negative values sign-extend). */
  setRegNumber(r: number, v: number): void {
    this.lo[r] = v | 0;
    this.hi[r] = hiOf(v);
  }
}
