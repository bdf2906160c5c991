/**
 * Floating-point SSE/SSE2/SSE3: packed and scalar arithmetic, MIN/MAX, compares, COMIS/UCOMIS,
 * conversions, logic and shuffles on float vectors, horizontal and ADDSUB ops, RCP/RSQRT.
 * Lane arithmetic and MXCSR semantics are in fp.ts; this file maps encodings to lanes.
 */
import type { Cpu } from '../cpu';
import type { Insn } from '../insn';
import { ST_FAULT, ST_OK } from '../constants';
import { F_PFXSEL, IMM_UB, PFX_66, PFX_F2, PFX_F3, op, type Exec, type OpDef } from '../table';
import { A, B, R, fpBegin, fpCommit, getX, loadQ, loadW, loadWs, mmxEnter, setM, setX, sseOk } from './common';
import {
  MX_DAZ,
  MX_DE,
  MX_IE,
  OP_ADD,
  OP_DIV,
  OP_MUL,
  OP_SQRT,
  OP_SUB,
  cvt32to64,
  cvt64to32,
  cvtInt,
  cvtToInt,
  f32,
  f64,
  fpState,
  isDen32,
  isDen64,
  isNaN32,
  isNaN64,
  isSNaN32,
  isSNaN64,
  op32,
  op64,
} from './fp';
import { xmmBin } from './int';

// ------------------------------------------------------------------ lane helpers for MIN/MAX/CMP

/** Reads a binary32 lane with DAZ / DE handling; NaN for NaNs (flags by caller). */
function in32(b: number, de: boolean): number {
  if (isNaN32(b)) return NaN;
  if (isDen32(b)) {
    if (fpState.mx & MX_DAZ) return b >>> 31 ? -0 : 0;
    if (de) fpState.pre |= MX_DE;
  }
  return f32(b);
}

function in64(lo: number, hi: number, de: boolean): number {
  if (isNaN64(lo, hi)) return NaN;
  if (isDen64(lo, hi)) {
    if (fpState.mx & MX_DAZ) return hi >>> 31 ? -0 : 0;
    if (de) fpState.pre |= MX_DE;
  }
  return f64(lo, hi);
}

/**
 * MIN/MAX lane: NaN in either operand or both zero (any signs) -> the second operand; any NaN
 * raises IE (QNaN too). Result: 0 first, 1 second (bits copied by the caller, DAZ applied).
 */
function minmaxPick(x: number, y: number, max: boolean): number {
  if (x !== x || y !== y) {
    fpState.pre |= MX_IE;
    return 1;
  }
  if (max) return x > y ? 0 : 1;
  return x < y ? 0 : 1;
}

/** Compare predicate p (0..7) of CMPPS & co: true / false; flags IE as the SDM says. */
function cmpPred(x: number, y: number, p: number, snan: boolean): boolean {
  const un = x !== x || y !== y;
  if (un && (snan || p === 1 || p === 2 || p === 5 || p === 6)) fpState.pre |= MX_IE;
  switch (p & 7) {
    case 0: return !un && x === y;
    case 1: return !un && x < y;
    case 2: return !un && x <= y;
    case 3: return un;
    case 4: return un || x !== y;
    case 5: return un || !(x < y);
    case 6: return un || !(x <= y);
    default: return !un;
  }
}

// ------------------------------------------------------------------ lane loops

const K_ARITH = 0;
const K_MIN = 1;
const K_MAX = 2;
const K_CMP = 3;

/** Drops the DE a lane raised when the lane has a NaN or raised IE (the host reports no DE then). */
function dropDe(before: number, nan: boolean): void {
  const added = fpState.pre & ~before;
  if (nan || added & MX_IE) fpState.pre = before | (added & ~MX_DE);
}

function lane32(kind: number, opn: number, i: number): void {
  const a = A.u32[i];
  const b = B.u32[i];
  if (kind === K_ARITH) {
    op32(opn, a, b);
    R.u32[i] = fpState.lo;
    return;
  }
  const before = fpState.pre;
  lane32cmp(kind, opn, i, a, b);
  dropDe(before, isNaN32(a) || isNaN32(b));
}

function lane32cmp(kind: number, opn: number, i: number, a: number, b: number): void {
  const x = in32(a, true);
  const y = in32(b, true);
  if (kind === K_CMP) {
    R.u32[i] = cmpPred(x, y, opn, isSNaN32(a) || isSNaN32(b)) ? 0xffffffff : 0;
    return;
  }
  const second = minmaxPick(x, y, kind === K_MAX);
  const v = second ? b : a;
  R.u32[i] = isDen32(v) && fpState.mx & MX_DAZ ? v & 0x80000000 : v;
}

function lane64(kind: number, opn: number, i: number): void {
  const alo = A.u32[i];
  const ahi = A.u32[i + 1];
  const blo = B.u32[i];
  const bhi = B.u32[i + 1];
  if (kind === K_ARITH) {
    op64(opn, alo, ahi, blo, bhi);
    R.u32[i] = fpState.lo;
    R.u32[i + 1] = fpState.hi;
    return;
  }
  const before = fpState.pre;
  lane64cmp(kind, opn, i, alo, ahi, blo, bhi);
  dropDe(before, isNaN64(alo, ahi) || isNaN64(blo, bhi));
}

function lane64cmp(kind: number, opn: number, i: number, alo: number, ahi: number, blo: number, bhi: number): void {
  const x = in64(alo, ahi, true);
  const y = in64(blo, bhi, true);
  if (kind === K_CMP) {
    const t = cmpPred(x, y, opn, isSNaN64(alo, ahi) || isSNaN64(blo, bhi)) ? 0xffffffff : 0;
    R.u32[i] = R.u32[i + 1] = t;
    return;
  }
  const second = minmaxPick(x, y, kind === K_MAX);
  let lo = second ? blo : alo;
  let hi = second ? bhi : ahi;
  if (isDen64(lo, hi) && fpState.mx & MX_DAZ) {
    lo = 0;
    hi &= 0x80000000;
  }
  R.u32[i] = lo;
  R.u32[i + 1] = hi;
}

/**
 * A float instruction over lanes: fmt 0 (binary32) / 1 (binary64); scalar: only lane 0,
 * the rest of the destination kept. kind/opn select the lane operation (opn = predicate for
 * compares, taken from the immediate when opn < 0).
 */
function fpInsn(kind: number, opn: number, fmt: number, scalar: boolean): Exec {
  return (cpu: Cpu, d: Insn): number => {
    if (sseOk(cpu) !== ST_OK) return ST_FAULT;
    const st = scalar ? loadWs(cpu, d, B, fmt === 0 ? 4 : 8) : loadW(cpu, d, B, true);
    if (st !== ST_OK) return ST_FAULT;
    getX(cpu, d.reg, A);
    const o = opn < 0 ? d.imm & 7 : opn;
    fpBegin(cpu);
    R.u32[0] = A.u32[0];
    R.u32[1] = A.u32[1];
    R.u32[2] = A.u32[2];
    R.u32[3] = A.u32[3];
    const n = scalar ? 1 : fmt === 0 ? 4 : 2;
    for (let k = 0; k < n; k++) {
      if (fmt === 0) lane32(kind, o, k);
      else lane64(kind, o, k * 2);
    }
    if (fpCommit(cpu) !== ST_OK) return ST_FAULT;
    setX(cpu, d.reg, R);
    return ST_OK;
  };
}

/** HADD/HSUB (SSE3): pairs within A, then within B. */
function horiz(sub: boolean, fmt: number): Exec {
  return (cpu: Cpu, d: Insn): number => {
    if (sseOk(cpu) !== ST_OK) return ST_FAULT;
    if (loadW(cpu, d, B, true) !== ST_OK) return ST_FAULT;
    getX(cpu, d.reg, A);
    fpBegin(cpu);
    const opn = sub ? OP_SUB : OP_ADD;
    if (fmt === 0) {
      op32(opn, A.u32[0], A.u32[1]);
      R.u32[0] = fpState.lo;
      op32(opn, A.u32[2], A.u32[3]);
      R.u32[1] = fpState.lo;
      op32(opn, B.u32[0], B.u32[1]);
      R.u32[2] = fpState.lo;
      op32(opn, B.u32[2], B.u32[3]);
      R.u32[3] = fpState.lo;
    } else {
      op64(opn, A.u32[0], A.u32[1], A.u32[2], A.u32[3]);
      R.u32[0] = fpState.lo;
      R.u32[1] = fpState.hi;
      op64(opn, B.u32[0], B.u32[1], B.u32[2], B.u32[3]);
      R.u32[2] = fpState.lo;
      R.u32[3] = fpState.hi;
    }
    if (fpCommit(cpu) !== ST_OK) return ST_FAULT;
    setX(cpu, d.reg, R);
    return ST_OK;
  };
}

/** ADDSUBPS/PD (SSE3): even lanes subtract, odd lanes add. */
function addsub(fmt: number): Exec {
  return (cpu: Cpu, d: Insn): number => {
    if (sseOk(cpu) !== ST_OK) return ST_FAULT;
    if (loadW(cpu, d, B, true) !== ST_OK) return ST_FAULT;
    getX(cpu, d.reg, A);
    fpBegin(cpu);
    if (fmt === 0) {
      for (let i = 0; i < 4; i++) {
        op32(i & 1 ? OP_ADD : OP_SUB, A.u32[i], B.u32[i]);
        R.u32[i] = fpState.lo;
      }
    } else {
      for (let i = 0; i < 4; i += 2) {
        op64(i & 2 ? OP_ADD : OP_SUB, A.u32[i], A.u32[i + 1], B.u32[i], B.u32[i + 1]);
        R.u32[i] = fpState.lo;
        R.u32[i + 1] = fpState.hi;
      }
    }
    if (fpCommit(cpu) !== ST_OK) return ST_FAULT;
    setX(cpu, d.reg, R);
    return ST_OK;
  };
}

/** COMISS/UCOMISS/COMISD/UCOMISD: ZF PF CF from the compare, OF SF AF cleared. */
function comis(fmt: number, signalQnan: boolean): Exec {
  return (cpu: Cpu, d: Insn): number => {
    if (sseOk(cpu) !== ST_OK) return ST_FAULT;
    if (loadWs(cpu, d, B, fmt === 0 ? 4 : 8) !== ST_OK) return ST_FAULT;
    getX(cpu, d.reg, A);
    fpBegin(cpu);
    let x: number;
    let y: number;
    let snan: boolean;
    if (fmt === 0) {
      x = in32(A.u32[0], true);
      y = in32(B.u32[0], true);
      snan = isSNaN32(A.u32[0]) || isSNaN32(B.u32[0]);
    } else {
      x = in64(A.u32[0], A.u32[1], true);
      y = in64(B.u32[0], B.u32[1], true);
      snan = isSNaN64(A.u32[0], A.u32[1]) || isSNaN64(B.u32[0], B.u32[1]);
    }
    let f: number;
    if (x !== x || y !== y) {
      f = 0x45; // ZF PF CF
      fpState.pre &= ~MX_DE;
      if (snan || signalQnan) fpState.pre |= MX_IE;
    } else f = x < y ? 0x01 : x > y ? 0 : 0x40;
    if (fpCommit(cpu) !== ST_OK) return ST_FAULT;
    const fl = cpu.settleFlags();
    cpu.flags = (fl & ~0x8d5) | f;
    return ST_OK;
  };
}

// ------------------------------------------------------------------ conversions

/** CVTPS2PD (Wq) / CVTSS2SD (scalar). */
function cvtps2pd(scalar: boolean): Exec {
  return (cpu: Cpu, d: Insn): number => {
    if (sseOk(cpu) !== ST_OK) return ST_FAULT;
    if (loadWs(cpu, d, B, scalar ? 4 : 8) !== ST_OK) return ST_FAULT;
    getX(cpu, d.reg, R);
    fpBegin(cpu);
    for (let i = 0; i < (scalar ? 1 : 2); i++) {
      cvt32to64(B.u32[i]);
      R.u32[2 * i] = fpState.lo;
      R.u32[2 * i + 1] = fpState.hi;
    }
    if (fpCommit(cpu) !== ST_OK) return ST_FAULT;
    setX(cpu, d.reg, R);
    return ST_OK;
  };
}

/** CVTPD2PS (upper half zeroed) / CVTSD2SS (scalar). */
function cvtpd2ps(scalar: boolean): Exec {
  return (cpu: Cpu, d: Insn): number => {
    if (sseOk(cpu) !== ST_OK) return ST_FAULT;
    const st = scalar ? loadWs(cpu, d, B, 8) : loadW(cpu, d, B, true);
    if (st !== ST_OK) return ST_FAULT;
    getX(cpu, d.reg, R);
    fpBegin(cpu);
    for (let i = 0; i < (scalar ? 1 : 2); i++) {
      cvt64to32(B.u32[2 * i], B.u32[2 * i + 1]);
      R.u32[i] = fpState.lo;
    }
    if (!scalar) R.u32[2] = R.u32[3] = 0;
    if (fpCommit(cpu) !== ST_OK) return ST_FAULT;
    setX(cpu, d.reg, R);
    return ST_OK;
  };
}

/** CVTDQ2PS (4 lanes) / CVTDQ2PD (2 lanes from Wq). */
function cvtdq2(fmt: number): Exec {
  return (cpu: Cpu, d: Insn): number => {
    if (sseOk(cpu) !== ST_OK) return ST_FAULT;
    const st = fmt === 0 ? loadW(cpu, d, B, true) : loadWs(cpu, d, B, 8);
    if (st !== ST_OK) return ST_FAULT;
    fpBegin(cpu);
    if (fmt === 0) {
      for (let i = 0; i < 4; i++) {
        cvtInt(B.u32[i], 0, false, 0);
        R.u32[i] = fpState.lo;
      }
    } else {
      const b1 = B.u32[1];
      cvtInt(B.u32[0], 0, false, 1);
      R.u32[0] = fpState.lo;
      R.u32[1] = fpState.hi;
      cvtInt(b1, 0, false, 1);
      R.u32[2] = fpState.lo;
      R.u32[3] = fpState.hi;
    }
    if (fpCommit(cpu) !== ST_OK) return ST_FAULT;
    setX(cpu, d.reg, R);
    return ST_OK;
  };
}

/** Float lane i of B (fmt) as a double for conversion to an integer; NaN for NaNs. */
function laneValue(fmt: number, i: number): number {
  if (fmt === 0) {
    const b = B.u32[i];
    if (isNaN32(b)) return NaN;
    if (isDen32(b) && fpState.mx & MX_DAZ) return 0;
    return f32(b);
  }
  const lo = B.u32[2 * i];
  const hi = B.u32[2 * i + 1];
  if (isNaN64(lo, hi)) return NaN;
  if (isDen64(lo, hi) && fpState.mx & MX_DAZ) return 0;
  return f64(lo, hi);
}

/**
 * Packed float -> int32: CVT(T)PS2DQ (4 lanes), CVT(T)PD2DQ (2 lanes, upper half zeroed),
 * and the MMX forms CVT(T)PS2PI / CVT(T)PD2PI (mmx = true: result to MMn).
 */
function cvt2dq(fmt: number, truncate: boolean, mmx: boolean): Exec {
  return (cpu: Cpu, d: Insn): number => {
    if (sseOk(cpu) !== ST_OK) return ST_FAULT;
    if (mmx && mmxEnter(cpu) !== ST_OK) return ST_FAULT;
    const st = fmt === 0 && mmx ? loadWs(cpu, d, B, 8) : loadW(cpu, d, B, true);
    if (st !== ST_OK) return ST_FAULT;
    fpBegin(cpu);
    const n = fmt === 0 && !mmx ? 4 : 2;
    R.u32[2] = R.u32[3] = 0;
    for (let i = 0; i < n; i++) {
      cvtToInt(laneValue(fmt, i), 32, truncate);
      R.u32[i] = fpState.lo;
    }
    if (fpCommit(cpu) !== ST_OK) return ST_FAULT;
    if (mmx) setM(cpu, d.reg & 7, R);
    else setX(cpu, d.reg, R);
    return ST_OK;
  };
}

/** CVT(T)SS2SI / CVT(T)SD2SI r32/r64, xmm/m. */
function cvt2si(fmt: number, truncate: boolean): Exec {
  return (cpu: Cpu, d: Insn): number => {
    if (sseOk(cpu) !== ST_OK) return ST_FAULT;
    if (loadWs(cpu, d, B, fmt === 0 ? 4 : 8) !== ST_OK) return ST_FAULT;
    fpBegin(cpu);
    const bits = d.osize === 8 ? 64 : 32;
    cvtToInt(laneValue(fmt, 0), bits, truncate);
    if (fpCommit(cpu) !== ST_OK) return ST_FAULT;
    cpu.setReg(d.reg, bits === 64 ? 8 : 4, fpState.lo, fpState.hi);
    return ST_OK;
  };
}

/** CVTSI2SS / CVTSI2SD xmm, r/m32/64. */
function cvtsi2(fmt: number): Exec {
  return (cpu: Cpu, d: Insn): number => {
    if (sseOk(cpu) !== ST_OK) return ST_FAULT;
    const is64 = d.osize === 8;
    const lo = cpu.readESized(d, is64 ? 8 : 4);
    if (lo === -1 && d.mod !== 3) return ST_FAULT;
    const hi = is64 ? cpu.vh : 0;
    fpBegin(cpu);
    cvtInt(lo, hi, is64, fmt);
    if (fpCommit(cpu) !== ST_OK) return ST_FAULT;
    const o = d.reg * 4;
    cpu.xmm[o] = fpState.lo;
    if (fmt === 1) cpu.xmm[o + 1] = fpState.hi;
    return ST_OK;
  };
}

/** CVTPI2PS xmm, mm/m64 (low two lanes; the upper half kept) / CVTPI2PD xmm, mm/m64. */
function cvtpi2(fmt: number): Exec {
  return (cpu: Cpu, d: Insn): number => {
    if (sseOk(cpu) !== ST_OK) return ST_FAULT;
    // A register source switches the x87 unit to MMX mode; a memory source does not.
    if (d.mod === 3 && mmxEnter(cpu) !== ST_OK) return ST_FAULT;
    if (loadQ(cpu, d, B) !== ST_OK) return ST_FAULT;
    getX(cpu, d.reg, R);
    fpBegin(cpu);
    const b0 = B.u32[0];
    const b1 = B.u32[1];
    if (fmt === 0) {
      cvtInt(b0, 0, false, 0);
      R.u32[0] = fpState.lo;
      cvtInt(b1, 0, false, 0);
      R.u32[1] = fpState.lo;
    } else {
      cvtInt(b0, 0, false, 1);
      R.u32[0] = fpState.lo;
      R.u32[1] = fpState.hi;
      cvtInt(b1, 0, false, 1);
      R.u32[2] = fpState.lo;
      R.u32[3] = fpState.hi;
    }
    if (fpCommit(cpu) !== ST_OK) return ST_FAULT;
    setX(cpu, d.reg, R);
    return ST_OK;
  };
}

// ------------------------------------------------------------------ RCP / RSQRT (approximations)

/**
 * RCPPS/RCPSS/RSQRTPS/RSQRTSS. The hardware's table lookups are model-specific; this returns
 * the correctly rounded binary32 value, which is within the SDM's bound (|rel err| <= 1.5 *
 * 2^-12). No MXCSR flags; denormal inputs act as zero and tiny results flush to zero, as the
 * SDM states. Tests compare with a tolerance.
 */
function approx(cpu: Cpu, d: Insn, sqrt: boolean, scalar: boolean): number {
  if (sseOk(cpu) !== ST_OK) return ST_FAULT;
  const st = scalar ? loadWs(cpu, d, B, 4) : loadW(cpu, d, B, true);
  if (st !== ST_OK) return ST_FAULT;
  getX(cpu, d.reg, R);
  for (let i = 0; i < (scalar ? 1 : 4); i++) {
    const b = B.u32[i];
    if (isNaN32(b)) {
      R.u32[i] = (b | 0x400000) >>> 0;
      continue;
    }
    const x = isDen32(b) ? (b >>> 31 ? -0 : 0) : f32(b);
    let r: number;
    if (sqrt) r = x < 0 ? NaN : 1 / Math.sqrt(x);
    else r = 1 / x;
    if (r !== r) {
      R.u32[i] = 0xffc00000;
      continue;
    }
    let f = Math.fround(r);
    if (Math.abs(f) < 1.1754943508222875e-38) f = f < 0 || Object.is(f, -0) ? -0 : 0;
    R.f32[i] = f;
  }
  setX(cpu, d.reg, R);
  return ST_OK;
}

// ------------------------------------------------------------------ logic and shuffles

const andK = (n: number): void => { for (let i = 0; i < n >> 2; i++) R.u32[i] = A.u32[i] & B.u32[i]; };
const andnK = (n: number): void => { for (let i = 0; i < n >> 2; i++) R.u32[i] = ~A.u32[i] & B.u32[i]; };
const orK = (n: number): void => { for (let i = 0; i < n >> 2; i++) R.u32[i] = A.u32[i] | B.u32[i]; };
const xorK = (n: number): void => { for (let i = 0; i < n >> 2; i++) R.u32[i] = A.u32[i] ^ B.u32[i]; };
let SHUF = 0;
const shufpsK = (): void => {
  R.u32[0] = A.u32[SHUF & 3];
  R.u32[1] = A.u32[(SHUF >> 2) & 3];
  R.u32[2] = B.u32[(SHUF >> 4) & 3];
  R.u32[3] = B.u32[(SHUF >> 6) & 3];
};
const shufpdK = (): void => {
  const a = (SHUF & 1) * 2;
  const b = (SHUF & 2);
  R.u32[0] = A.u32[a];
  R.u32[1] = A.u32[a + 1];
  R.u32[2] = B.u32[b];
  R.u32[3] = B.u32[b + 1];
};
function withImm(k: () => void): Exec {
  const inner = xmmBin(k);
  return (cpu: Cpu, d: Insn): number => {
    SHUF = d.imm & 0xff;
    return inner(cpu, d);
  };
}
const unpackK = (size: number, hi: number) => (): void => {
  const base = hi * 8;
  for (let i = 0, o = 0; i < 8; i += size, o += 2 * size) {
    for (let b = 0; b < size; b++) {
      R.u8[o + b] = A.u8[base + i + b];
      R.u8[o + size + b] = B.u8[base + i + b];
    }
  }
};

const NONE = { flags: F_PFXSEL };
const P66 = { pfx: PFX_66, flags: F_PFXSEL };
const PF3 = { pfx: PFX_F3, flags: F_PFXSEL };
const PF2 = { pfx: PFX_F2, flags: F_PFXSEL };

/** The four forms of an arithmetic op: PS, PD (66), SS (F3), SD (F2). */
function arith4(name: string, byte: number, kind: number, opn: number): OpDef[] {
  return [
    op(`${name}ps`, 1, byte, 'Vps,Wps', fpInsn(kind, opn, 0, false), NONE),
    op(`${name}pd`, 1, byte, 'Vpd,Wpd', fpInsn(kind, opn, 1, false), P66),
    op(`${name}ss`, 1, byte, 'Vss,Wss', fpInsn(kind, opn, 0, true), PF3),
    op(`${name}sd`, 1, byte, 'Vsd,Wsd', fpInsn(kind, opn, 1, true), PF2),
  ];
}

export const FLOAT_OPS: readonly OpDef[] = [
  op('unpcklps', 1, 0x14, 'Vps,Wps', xmmBin(unpackK(4, 0)), NONE),
  op('unpcklpd', 1, 0x14, 'Vpd,Wpd', xmmBin(unpackK(8, 0)), P66),
  op('unpckhps', 1, 0x15, 'Vps,Wps', xmmBin(unpackK(4, 1)), NONE),
  op('unpckhpd', 1, 0x15, 'Vpd,Wpd', xmmBin(unpackK(8, 1)), P66),
  op('cvtpi2ps', 1, 0x2a, 'Vps,Qq', cvtpi2(0), NONE),
  op('cvtpi2pd', 1, 0x2a, 'Vpd,Qq', cvtpi2(1), P66),
  op('cvtsi2ss', 1, 0x2a, 'Vss,Ey', cvtsi2(0), PF3),
  op('cvtsi2sd', 1, 0x2a, 'Vsd,Ey', cvtsi2(1), PF2),
  op('cvttps2pi', 1, 0x2c, 'Pq,Wq', cvt2dq(0, true, true), NONE),
  op('cvttpd2pi', 1, 0x2c, 'Pq,Wpd', cvt2dq(1, true, true), P66),
  op('cvttss2si', 1, 0x2c, 'Gy,Wss', cvt2si(0, true), PF3),
  op('cvttsd2si', 1, 0x2c, 'Gy,Wsd', cvt2si(1, true), PF2),
  op('cvtps2pi', 1, 0x2d, 'Pq,Wq', cvt2dq(0, false, true), NONE),
  op('cvtpd2pi', 1, 0x2d, 'Pq,Wpd', cvt2dq(1, false, true), P66),
  op('cvtss2si', 1, 0x2d, 'Gy,Wss', cvt2si(0, false), PF3),
  op('cvtsd2si', 1, 0x2d, 'Gy,Wsd', cvt2si(1, false), PF2),
  op('ucomiss', 1, 0x2e, 'Vss,Wss', comis(0, false), NONE),
  op('ucomisd', 1, 0x2e, 'Vsd,Wsd', comis(1, false), P66),
  op('comiss', 1, 0x2f, 'Vss,Wss', comis(0, true), NONE),
  op('comisd', 1, 0x2f, 'Vsd,Wsd', comis(1, true), P66),
  op('sqrtps', 1, 0x51, 'Vps,Wps', fpInsn(K_ARITH, OP_SQRT, 0, false), NONE),
  op('sqrtpd', 1, 0x51, 'Vpd,Wpd', fpInsn(K_ARITH, OP_SQRT, 1, false), P66),
  op('sqrtss', 1, 0x51, 'Vss,Wss', fpInsn(K_ARITH, OP_SQRT, 0, true), PF3),
  op('sqrtsd', 1, 0x51, 'Vsd,Wsd', fpInsn(K_ARITH, OP_SQRT, 1, true), PF2),
  op('rsqrtps', 1, 0x52, 'Vps,Wps', (c, d) => approx(c, d, true, false), NONE),
  op('rsqrtss', 1, 0x52, 'Vss,Wss', (c, d) => approx(c, d, true, true), PF3),
  op('rcpps', 1, 0x53, 'Vps,Wps', (c, d) => approx(c, d, false, false), NONE),
  op('rcpss', 1, 0x53, 'Vss,Wss', (c, d) => approx(c, d, false, true), PF3),
  op('andps', 1, 0x54, 'Vps,Wps', xmmBin(andK), NONE),
  op('andpd', 1, 0x54, 'Vpd,Wpd', xmmBin(andK), P66),
  op('andnps', 1, 0x55, 'Vps,Wps', xmmBin(andnK), NONE),
  op('andnpd', 1, 0x55, 'Vpd,Wpd', xmmBin(andnK), P66),
  op('orps', 1, 0x56, 'Vps,Wps', xmmBin(orK), NONE),
  op('orpd', 1, 0x56, 'Vpd,Wpd', xmmBin(orK), P66),
  op('xorps', 1, 0x57, 'Vps,Wps', xmmBin(xorK), NONE),
  op('xorpd', 1, 0x57, 'Vpd,Wpd', xmmBin(xorK), P66),
  ...arith4('add', 0x58, K_ARITH, OP_ADD),
  ...arith4('mul', 0x59, K_ARITH, OP_MUL),
  op('cvtps2pd', 1, 0x5a, 'Vpd,Wq', cvtps2pd(false), NONE),
  op('cvtpd2ps', 1, 0x5a, 'Vps,Wpd', cvtpd2ps(false), P66),
  op('cvtss2sd', 1, 0x5a, 'Vsd,Wss', cvtps2pd(true), PF3),
  op('cvtsd2ss', 1, 0x5a, 'Vss,Wsd', cvtpd2ps(true), PF2),
  op('cvtdq2ps', 1, 0x5b, 'Vps,Wdq', cvtdq2(0), NONE),
  op('cvtps2dq', 1, 0x5b, 'Vdq,Wps', cvt2dq(0, false, false), P66),
  op('cvttps2dq', 1, 0x5b, 'Vdq,Wps', cvt2dq(0, true, false), PF3),
  ...arith4('sub', 0x5c, K_ARITH, OP_SUB),
  ...arith4('min', 0x5d, K_MIN, 0),
  ...arith4('div', 0x5e, K_ARITH, OP_DIV),
  ...arith4('max', 0x5f, K_MAX, 0),
  op('haddpd', 1, 0x7c, 'Vpd,Wpd', horiz(false, 1), P66),
  op('haddps', 1, 0x7c, 'Vps,Wps', horiz(false, 0), PF2),
  op('hsubpd', 1, 0x7d, 'Vpd,Wpd', horiz(true, 1), P66),
  op('hsubps', 1, 0x7d, 'Vps,Wps', horiz(true, 0), PF2),
  ...arith4('cmp', 0xc2, K_CMP, -1).map((o) => ({ ...o, imm: IMM_UB, operands: `${o.operands},Ib` })),
  op('shufps', 1, 0xc6, 'Vps,Wps,Ib', withImm(shufpsK), { flags: F_PFXSEL, imm: IMM_UB }),
  op('shufpd', 1, 0xc6, 'Vpd,Wpd,Ib', withImm(shufpdK), { pfx: PFX_66, flags: F_PFXSEL, imm: IMM_UB }),
  op('addsubpd', 1, 0xd0, 'Vpd,Wpd', addsub(1), P66),
  op('addsubps', 1, 0xd0, 'Vps,Wps', addsub(0), PF2),
  op('cvttpd2dq', 1, 0xe6, 'Vdq,Wpd', cvt2dq(1, true, false), P66),
  op('cvtdq2pd', 1, 0xe6, 'Vpd,Wq', cvtdq2(1), PF3),
  op('cvtpd2dq', 1, 0xe6, 'Vdq,Wpd', cvt2dq(1, false, false), PF2),
];
