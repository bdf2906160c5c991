/**
 * Shared machinery of the MMX/SSE group: availability checks (#UD/#NM/#MF), the x87->MMX
 * transition, module-level scratch operands (no allocation per instruction) with typed views,
 * operand loads/stores for XMM, MMX and memory (alignment #GP(0)), and the SIMD exception
 * commit (#XM, or #UD when CR4.OSXMMEXCPT is clear).
 */
import type { Cpu } from '../cpu';
import type { Insn } from '../insn';
import { GP, MF, NM, ST_FAULT, ST_OK, UD, XM } from '../constants';
import { fpState } from './fp';

const CR0_EM = 4;
const CR0_TS = 8;
const CR4_OSFXSR = 0x200;
const CR4_OSXMMEXCPT = 0x400;

/** #UD/#NM checks of an SSE instruction; ST_OK when it may run. */
export function sseOk(cpu: Cpu): number {
  if ((cpu.cr0 & CR0_EM) !== 0 || (cpu.cr4 & CR4_OSFXSR) === 0) return cpu.fault(UD, 0);
  if (cpu.cr0 & CR0_TS) return cpu.fault(NM, 0);
  return ST_OK;
}

/**
 * #UD/#NM/#MF checks of an MMX instruction, then the x87 -> MMX transition (x87 TOP = 0, every
 * tag valid). MMn are kept in cpu.mmx (lo/hi), apart from the x87 registers (DESIGN.md).
 */
export function mmxEnter(cpu: Cpu): number {
  if (cpu.cr0 & CR0_EM) return cpu.fault(UD, 0);
  if (cpu.cr0 & CR0_TS) return cpu.fault(NM, 0);
  if (cpu.fpSw & 0x80) return cpu.fault(MF, 0);
  cpu.fpTop = 0;
  cpu.fpSw &= ~0x3800;
  cpu.fpTag = 0;
  return ST_OK;
}

/** A scratch 128-bit operand with every view the handlers need. */
export class Vec {
  readonly u32: Uint32Array = new Uint32Array(4);
  readonly i32: Int32Array = new Int32Array(this.u32.buffer);
  readonly u16: Uint16Array = new Uint16Array(this.u32.buffer);
  readonly i16: Int16Array = new Int16Array(this.u32.buffer);
  readonly u8: Uint8Array = new Uint8Array(this.u32.buffer);
  readonly i8: Int8Array = new Int8Array(this.u32.buffer);
  readonly f32: Float32Array = new Float32Array(this.u32.buffer);
  readonly f64: Float64Array = new Float64Array(this.u32.buffer);
}

/** Destination/first operand, source operand, result. */
export const A: Vec = new Vec();
export const B: Vec = new Vec();
export const R: Vec = new Vec();

/** Copies XMM register r into v. */
export function getX(cpu: Cpu, r: number, v: Vec): void {
  const x = cpu.xmm;
  const o = r * 4;
  const u = v.u32;
  u[0] = x[o];
  u[1] = x[o + 1];
  u[2] = x[o + 2];
  u[3] = x[o + 3];
}

export function setX(cpu: Cpu, r: number, v: Vec): void {
  const x = cpu.xmm;
  const o = r * 4;
  const u = v.u32;
  x[o] = u[0];
  x[o + 1] = u[1];
  x[o + 2] = u[2];
  x[o + 3] = u[3];
}

/** Copies MMX register r (0..7) into the low 8 bytes of v. */
export function getM(cpu: Cpu, r: number, v: Vec): void {
  v.u32[0] = cpu.mmx[r * 2];
  v.u32[1] = cpu.mmx[r * 2 + 1];
}

export function setM(cpu: Cpu, r: number, v: Vec): void {
  cpu.mmx[r * 2] = v.u32[0];
  cpu.mmx[r * 2 + 1] = v.u32[1];
  cpu.fprExt[r] = 0xffff; // an MMX write sets bits 64-79 of the x87 register to ones
}

/** Reads 16 bytes at la into v (alignment checked by the caller). */
export function read128(cpu: Cpu, la: number, v: Vec): number {
  let x = cpu.read(la, 8);
  if (x === -1) return ST_FAULT;
  v.u32[0] = x;
  v.u32[1] = cpu.vh;
  x = cpu.read(la + 8, 8);
  if (x === -1) return ST_FAULT;
  v.u32[2] = x;
  v.u32[3] = cpu.vh;
  return ST_OK;
}

/**
 * Writes 16 bytes from v at la. When the store crosses a page, the high half goes first and is
 * restored if the low half then faults, so a faulting store changes nothing.
 */
export function write128(cpu: Cpu, la: number, v: Vec): number {
  const u = v.u32;
  if ((la & 0xfff) <= 0xff0) {
    if (cpu.write(la, 8, u[0], u[1]) !== ST_OK) return ST_FAULT;
    return cpu.write(la + 8, 8, u[2], u[3]);
  }
  const oldLo = cpu.read(la + 8, 8);
  if (oldLo === -1) return ST_FAULT;
  const oldHi = cpu.vh;
  if (cpu.write(la + 8, 8, u[2], u[3]) !== ST_OK) return ST_FAULT;
  if (cpu.write(la, 8, u[0], u[1]) !== ST_OK) {
    const vec = cpu.faultVector;
    const err = cpu.faultError;
    const fa = cpu.faultAddress;
    cpu.write(la + 8, 8, oldLo, oldHi);
    cpu.faultVector = vec;
    cpu.faultError = err;
    cpu.faultAddress = fa;
    return ST_FAULT;
  }
  return ST_OK;
}

/** Reads `size` (4 or 8) bytes at la into v.u32[0..] (hi zero for 4); ST_OK or ST_FAULT. */
export function readSmall(cpu: Cpu, la: number, size: number, v: Vec): number {
  const x = cpu.read(la, size);
  if (x === -1) return ST_FAULT;
  v.u32[0] = x;
  v.u32[1] = size === 8 ? cpu.vh : 0;
  return ST_OK;
}

/**
 * Loads the W operand (XMM register or m128) into v. align: #GP(0) unless 16-byte aligned.
 */
export function loadW(cpu: Cpu, d: Insn, v: Vec, align: boolean): number {
  if (d.mod === 3) {
    getX(cpu, d.rm, v);
    return ST_OK;
  }
  const la = cpu.eaOf(d);
  if (align && (la & 15) !== 0) return cpu.fault(GP, 0);
  return read128(cpu, la, v);
}

/**
 * Loads a scalar/partial W operand: the low `size` bytes (4 or 8) of an XMM register or memory
 * (whole register copied for mod = 3; memory fills only the low size bytes, the rest is 0).
 */
export function loadWs(cpu: Cpu, d: Insn, v: Vec, size: number): number {
  if (d.mod === 3) {
    getX(cpu, d.rm, v);
    return ST_OK;
  }
  v.u32[2] = v.u32[3] = 0;
  return readSmall(cpu, cpu.eaOf(d), size, v);
}

/** Loads the Q operand (MMX register or m64) into v's low 8 bytes. */
export function loadQ(cpu: Cpu, d: Insn, v: Vec): number {
  if (d.mod === 3) {
    getM(cpu, d.rm & 7, v);
    return ST_OK;
  }
  return readSmall(cpu, cpu.eaOf(d), 8, v);
}

/**
 * Ends a floating-point instruction: merges the flags raised (fpState.pre/post) into MXCSR and
 * says whether the result may be written (ST_OK) or an unmasked exception faults (#XM, or #UD
 * when CR4.OSXMMEXCPT is clear). Pre-computation exceptions (IE, DE, ZE) that are unmasked
 * suppress the post-computation flags, as on hardware.
 */
export function fpCommit(cpu: Cpu): number {
  const mx = fpState.mx;
  const masks = (mx >>> 7) & 0x3f;
  const pre = fpState.pre;
  if ((pre & ~masks) !== 0) {
    cpu.mxcsr = mx | pre;
    return cpu.fault((cpu.cr4 & CR4_OSXMMEXCPT) !== 0 ? XM : UD, 0);
  }
  const all = pre | fpState.post;
  if ((all & ~masks) !== 0) {
    cpu.mxcsr = mx | all;
    return cpu.fault((cpu.cr4 & CR4_OSXMMEXCPT) !== 0 ? XM : UD, 0);
  }
  cpu.mxcsr = mx | all;
  return ST_OK;
}

/** Starts a floating-point instruction: snapshot MXCSR, clear the raised flags. */
export function fpBegin(cpu: Cpu): void {
  fpState.mx = cpu.mxcsr;
  fpState.pre = 0;
  fpState.post = 0;
}
