/**
 * The differential tests' case format and the emulator side (no Node built-ins): a case is a
 * code snippet, the 16 GPRs, RFLAGS, the data page and the x87/SSE state as a 512-byte FXSAVE
 * image; a result adds the signal (0: none) and faulting offset, and the FNSTENV block (the
 * full tag word). native.ts runs a case on the host CPU, emulate() in RingZero, and
 * compare.ts compares the two. The integer (gen.ts), SSE/MMX (sse-gen.ts) and x87
 * (x87-gen.ts) generators all produce this one format.
 */
import { Cpu } from '../cpu';
import { Jit } from '../jit/jit';
import { PROT_EXEC, PROT_READ, PROT_WRITE, UserMemory } from '../user/memory';
import { AC_VEC, BP, BR, CS, DB, DE, DS, ES, SS, EXIT_BUDGET, EXIT_EXCEPTION, EXIT_SOFTINT, GP, MF, NM, NP, PF_VEC, SS_VEC, UD, XM } from '../constants';
import { fullTagWord } from '../x87/env';
import { statusWord } from '../x87/misc';

export const CODE_ADDR = 0x70000000;
export const DATA_ADDR = 0x70001000;
export const CODE_MAX = 256;
const UD2 = new Uint8Array([0x0f, 0x0b]);
/** Bytes of the data page carried in and out (the page itself is 4 KiB; the rest is zero). */
export const DATA_LEN = 1024;
/** Where offsets 0xfe00-0xffff of the 16-bit data segments land (DS; ES + 0x100; SS + 0x200). */
export const HI_ADDR: number = DATA_ADDR + 0xfe00;
export const HI_LEN = 1024;
export const FX_LEN = 512;
export const ENV_LEN = 32;
/** FXSAVE image offsets. */
export const FX_FCW = 0;
export const FX_FSW = 2;
export const FX_FTW = 4;
export const FX_MXCSR = 24;
export const FX_ST = 32;
export const FX_XMM = 160;
/** FNSTENV (32-bit layout) offsets. */
export const ENV_FCW = 0;
export const ENV_FSW = 4;
export const ENV_FTW = 8;

export type CodeBits = 64 | 32 | 16;

/**
 * 16-bit code: the LDT segments the native runner installs (and the emulator mirrors). CS has
 * base CODE_ADDR; the data segments have limit 0xffff and bases DATA_ADDR (DS), + 0x100 (ES),
 * + 0x200 (SS): low offsets land in the data page and offsets from 0xfe00 in the hi area, so
 * 16-bit address and SP wrap-around are observable.
 */
export const SEG16_BASE: number = DATA_ADDR;
export const SEL16_CS = 0x07;
export const SEL16_DS = 0x0f;
export const SEL16_ES = 0x17;
export const SEL16_SS = 0x1f;

/** One test case. */
export interface NativeCase {
  mode: CodeBits;
  code: Uint8Array;
  /** regs[r * 2] = low half, regs[r * 2 + 1] = high half (uint32). */
  regs: Uint32Array;
  rflags: number;
  /** The start of the data page (at most DATA_LEN bytes; the rest is zero). */
  data: Uint8Array;
  /** The memory at HI_ADDR (at most HI_LEN bytes; zero when omitted). */
  hi?: Uint8Array;
  /** x87/SSE state as an FXSAVE image, loaded with FXRSTOR; defaultFxImage() when omitted. */
  fx?: Uint8Array;
}

export interface NativeResult {
  /** POSIX signal number (0: none; SIGFPE 8, SIGILL 4, SIGSEGV 11, SIGTRAP 5, SIGBUS 7; SIGVTALRM 26: timeout). */
  signal: number;
  /** Offset of the faulting instruction from CODE_ADDR when signal != 0. */
  faultOffset: number;
  regs: Uint32Array;
  rflags: number;
  /** DATA_LEN bytes. */
  data: Uint8Array;
  /** HI_LEN bytes at HI_ADDR. */
  hi: Uint8Array;
  /** FXSAVE image after the snippet (or at the fault). */
  fx: Uint8Array;
  /** FNSTENV block after the snippet (zero after a fault). */
  env: Uint8Array;
}

/** The FXSAVE image of a freshly initialised FPU (FNINIT + MXCSR 0x1f80), XMM registers zero. */
export function defaultFxImage(): Uint8Array {
  const fx = new Uint8Array(FX_LEN);
  fx[0] = 0x7f; // FCW 0x037f
  fx[1] = 0x03;
  fx[24] = 0x80; // MXCSR 0x1f80
  fx[25] = 0x1f;
  fx[28] = 0xff; // MXCSR_MASK 0xffff (ignored by FXRSTOR)
  fx[29] = 0xff;
  return fx;
}

/** The signal Linux delivers for an exception vector (user mode). */
export const SIG_OF_VECTOR: Readonly<Record<number, number>> = {
  [DE]: 8,
  [UD]: 4,
  [GP]: 11,
  [PF_VEC]: 11,
  [SS_VEC]: 7,
  [NP]: 11,
  [BP]: 5,
  [DB]: 5,
  [BR]: 11,
  [AC_VEC]: 7,
  [XM]: 8,
  [MF]: 8,
  [NM]: 11,
};

/** Loads an FXSAVE image into cpu as FXRSTOR does (x87 registers by TOP, tags, MXCSR, XMM). */
export function loadFxImage(cpu: Cpu, fx: Uint8Array): void {
  const dv = new DataView(fx.buffer, fx.byteOffset, FX_LEN);
  cpu.fpCw = dv.getUint16(FX_FCW, true);
  const fsw = dv.getUint16(FX_FSW, true);
  cpu.fpTop = (fsw >> 11) & 7;
  cpu.fpSw = fsw & ~0x3800;
  const ftw = fx[FX_FTW];
  for (let i = 0; i < 8; i++) {
    const p = (cpu.fpTop + i) & 7;
    cpu.mmx[2 * p] = dv.getUint32(FX_ST + 16 * i, true) | 0;
    cpu.mmx[2 * p + 1] = dv.getUint32(FX_ST + 4 + 16 * i, true) | 0;
    cpu.fprExt[p] = dv.getUint16(FX_ST + 8 + 16 * i, true);
  }
  let tag = 0;
  for (let p = 0; p < 8; p++) if ((ftw & (1 << p)) === 0) tag |= 3 << (2 * p);
  cpu.fpTag = tag;
  cpu.fpTag = fullTagWord(cpu);
  cpu.mxcsr = dv.getUint32(FX_MXCSR, true);
  for (let i = 0; i < 64; i++) cpu.xmm[i] = dv.getUint32(FX_XMM + 4 * i, true);
}

/** The FXSAVE image of cpu's x87/SSE state (FIP/FDP are not tracked: zero). */
export function saveFxImage(cpu: Cpu): Uint8Array {
  const fx = new Uint8Array(FX_LEN);
  const dv = new DataView(fx.buffer);
  dv.setUint16(FX_FCW, cpu.fpCw, true);
  dv.setUint16(FX_FSW, statusWord(cpu), true);
  let ftw = 0;
  for (let p = 0; p < 8; p++) if (((cpu.fpTag >> (2 * p)) & 3) !== 3) ftw |= 1 << p;
  fx[FX_FTW] = ftw;
  dv.setUint32(FX_MXCSR, cpu.mxcsr, true);
  dv.setUint32(FX_MXCSR + 4, 0xffff, true);
  for (let i = 0; i < 8; i++) {
    const p = (cpu.fpTop + i) & 7;
    dv.setUint32(FX_ST + 16 * i, cpu.mmx[2 * p] >>> 0, true);
    dv.setUint32(FX_ST + 4 + 16 * i, cpu.mmx[2 * p + 1] >>> 0, true);
    dv.setUint16(FX_ST + 8 + 16 * i, cpu.fprExt[p], true);
  }
  for (let i = 0; i < 64; i++) dv.setUint32(FX_XMM + 4 * i, cpu.xmm[i], true);
  return fx;
}

/**
 * Runs a case in the emulator: the same code and data pages as the native runner (paged user
 * memory, as ringzero-user uses, so the decode cache is exercised too), all features on.
 * jit: run through the block compiler instead (every block compiled on its first run; a UD2
 * after the code stops the run where the single-step loop stops).
 */
export function emulate(c: NativeCase, jit = false): NativeResult {
  const mem = new UserMemory();
  mem.map(CODE_ADDR, 0x1000, PROT_READ | PROT_WRITE | PROT_EXEC);
  mem.map(DATA_ADDR, 0x1000, PROT_READ | PROT_WRITE);
  mem.map(DATA_ADDR + 0xf000, 0x2000, PROT_READ | PROT_WRITE);
  mem.writeFrom(CODE_ADDR, c.code, 0);
  mem.writeFrom(DATA_ADDR, c.data, 0);
  if (c.hi) mem.writeFrom(HI_ADDR, c.hi, 0);
  if (jit) mem.writeFrom(CODE_ADDR + c.code.length, UD2, 0);
  const cpu = new Cpu(mem);
  if (jit) {
    cpu.jit = new Jit(cpu);
    cpu.jit.hot = 1;
  } else cpu.jit = null;
  cpu.csize = c.mode / 8;
  cpu.ssize = cpu.csize;
  // 16-bit code runs at IP 0 of its code segment; 64/32-bit code in flat segments.
  const base = c.mode === 16 ? CODE_ADDR : 0;
  if (c.mode === 16) {
    const segs: readonly (readonly [number, number, number])[] = [
      [CS, SEL16_CS, CODE_ADDR],
      [DS, SEL16_DS, SEG16_BASE],
      [ES, SEL16_ES, SEG16_BASE + 0x100],
      [SS, SEL16_SS, SEG16_BASE + 0x200],
    ];
    for (const [s, sel, b] of segs) {
      cpu.segSel[s] = sel;
      cpu.segBase[s] = b;
      cpu.segLimit[s] = 0xffff;
    }
  }
  for (let r = 0; r < 16; r++) {
    cpu.lo[r] = c.regs[r * 2];
    cpu.hi[r] = c.regs[r * 2 + 1];
  }
  cpu.setFlags(c.rflags);
  loadFxImage(cpu, c.fx ?? defaultFxImage());
  cpu.rip = CODE_ADDR - base;
  const end = cpu.rip + c.code.length;
  let signal = 0;
  let faultOffset = 0;
  for (let steps = 0; steps < 10000 && cpu.rip !== end; steps++) {
    const ex = cpu.run(jit ? 10000 : 1);
    if (jit && ex === EXIT_EXCEPTION && cpu.rip === end && cpu.faultVector === UD) break;
    if (jit) steps = 10000;
    if (ex === EXIT_EXCEPTION || ex === EXIT_SOFTINT) {
      signal = SIG_OF_VECTOR[cpu.faultVector] ?? 100 + cpu.faultVector;
      faultOffset = cpu.rip - (CODE_ADDR - base);
      break;
    }
    if (ex !== EXIT_BUDGET) {
      signal = 200 + ex;
      break;
    }
  }
  const regs = new Uint32Array(32);
  for (let r = 0; r < 16; r++) {
    regs[r * 2] = cpu.lo[r];
    regs[r * 2 + 1] = cpu.hi[r];
  }
  const env = new Uint8Array(ENV_LEN);
  if (signal === 0) {
    const ev = new DataView(env.buffer);
    ev.setUint16(ENV_FCW, cpu.fpCw, true);
    ev.setUint16(ENV_FSW, statusWord(cpu), true);
    ev.setUint16(ENV_FTW, fullTagWord(cpu), true);
  }
  return { signal, faultOffset, regs, rflags: cpu.getFlags(), data: mem.readBytes(DATA_ADDR, DATA_LEN, 0)!, hi: mem.readBytes(HI_ADDR, HI_LEN, 0)!, fx: saveFxImage(cpu), env };
}
