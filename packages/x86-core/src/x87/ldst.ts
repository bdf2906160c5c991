/**
 * x87 loads and stores: FLD/FST/FSTP of m32/m64/m80 reals and ST(i), FILD/FIST/FISTP/FISTTP of
 * m16/m32/m64 integers, FBLD/FBSTP of m80 packed BCD. Everything here is exact: the 80-bit
 * format is kept bit for bit (FLD m80 -> FSTP m80 round-trips any pattern), conversions to
 * m32/m64/integers/BCD round once in the rounding mode RC.
 */
import type { Cpu } from '../cpu';
import type { Insn } from '../insn';
import { ST_FAULT, ST_OK } from '../constants';
import {
  C_INF,
  C_QNAN,
  C_SNAN,
  C_UNSUPPORTED,
  C_ZERO,
  classify,
  F80,
  FMT_DBL,
  FMT_SGL,
  fromInt,
  RC_ZERO,
  roundF80,
  rp,
  setIndefinite,
  ti,
  toInt,
  X_IE,
  X_OE,
  X_PE,
  X_UE,
} from './float80';
import { M_F32, M_F64, readMemSrc, lastSrcExc, rcOf } from './arith';
import { fpEnter, imMasked, isEmpty, pop, pushValue, raise, readST, setC1, underflow, writeST } from './state';

const V = new F80();
const IND = new F80();
setIndefinite(IND);

// ------------------------------------------------------------------ loads

function fldReal(cpu: Cpu, d: Insn, kind: number): number {
  if (fpEnter(cpu) !== ST_OK) return ST_FAULT;
  if (readMemSrc(cpu, d, kind, V) !== ST_OK) return ST_FAULT;
  let exc = lastSrcExc();
  if (classify(V) === C_SNAN) {
    exc |= X_IE;
    V.hi = (V.hi | 0x40000000) >>> 0;
  }
  if (!isEmpty(cpu, 7)) {
    pushValue(cpu, V); // stack overflow response
    return ST_OK;
  }
  if ((exc & ~cpu.fpCw & X_IE) !== 0) {
    raise(cpu, exc); // an unmasked IE loads nothing (an unmasked DE still loads)
    return ST_OK;
  }
  raise(cpu, exc);
  pushValue(cpu, V);
  return ST_OK;
}

function fldM32(cpu: Cpu, d: Insn): number {
  return fldReal(cpu, d, M_F32);
}

function fldM64(cpu: Cpu, d: Insn): number {
  return fldReal(cpu, d, M_F64);
}

/** Reads 10 bytes at la into v (little-endian: significand then sign/exponent). */
export function read80(cpu: Cpu, la: number, v: F80): number {
  const lo = cpu.read(la, 8);
  if (lo === -1) return ST_FAULT;
  const hi = cpu.vh;
  const se = cpu.read(la + 8, 2);
  if (se === -1) return ST_FAULT;
  v.lo = lo >>> 0;
  v.hi = hi >>> 0;
  v.se = se;
  return ST_OK;
}

/** Writes v as 10 bytes at la; the last 2 bytes first so that a fault changes nothing. */
export function write80(cpu: Cpu, la: number, v: F80): number {
  const old = cpu.read(la + 8, 2);
  if (old === -1) return ST_FAULT;
  if (cpu.write(la + 8, 2, v.se, 0) !== ST_OK) return ST_FAULT;
  if (cpu.write(la, 8, v.lo | 0, v.hi | 0) !== ST_OK) {
    const vec = cpu.faultVector;
    const err = cpu.faultError;
    const fa = cpu.faultAddress;
    cpu.write(la + 8, 2, old, 0);
    cpu.faultVector = vec;
    cpu.faultError = err;
    cpu.faultAddress = fa;
    return ST_FAULT;
  }
  return ST_OK;
}

function fldM80(cpu: Cpu, d: Insn): number {
  if (fpEnter(cpu) !== ST_OK) return ST_FAULT;
  if (read80(cpu, cpu.eaOf(d), V) !== ST_OK) return ST_FAULT;
  pushValue(cpu, V);
  return ST_OK;
}

function fldSt(cpu: Cpu, d: Insn): number {
  if (fpEnter(cpu) !== ST_OK) return ST_FAULT;
  const i = d.rm & 7;
  if (isEmpty(cpu, i)) {
    // Underflow: the masked response pushes the indefinite QNaN; stack overflow wins if ST(7) is full.
    if (!isEmpty(cpu, 7)) {
      pushValue(cpu, V);
      return ST_OK;
    }
    raise(cpu, X_IE | 0x40);
    setC1(cpu, 0);
    if (imMasked(cpu)) pushValue(cpu, IND);
    return ST_OK;
  }
  readST(cpu, i, V);
  pushValue(cpu, V);
  return ST_OK;
}

function fildKind(cpu: Cpu, d: Insn, size: number): number {
  if (fpEnter(cpu) !== ST_OK) return ST_FAULT;
  const la = cpu.eaOf(d);
  const v = cpu.read(la, size);
  if (v === -1) return ST_FAULT;
  if (size === 2) {
    const x = (v << 16) >> 16;
    fromInt(x < 0 ? 1 : 0, 0, Math.abs(x), V);
  } else if (size === 4) {
    const x = v | 0;
    fromInt(x < 0 ? 1 : 0, 0, Math.abs(x), V);
  } else {
    let hi = cpu.vh | 0;
    let lo = v >>> 0;
    const neg = hi < 0 ? 1 : 0;
    if (neg) {
      // two's complement negate
      lo = (~lo + 1) >>> 0;
      hi = (~hi + (lo === 0 ? 1 : 0)) >>> 0;
    }
    fromInt(neg, hi >>> 0, lo, V);
  }
  pushValue(cpu, V);
  return ST_OK;
}

const fildM16 = (cpu: Cpu, d: Insn): number => fildKind(cpu, d, 2);
const fildM32 = (cpu: Cpu, d: Insn): number => fildKind(cpu, d, 4);
const fildM64 = (cpu: Cpu, d: Insn): number => fildKind(cpu, d, 8);

// ------------------------------------------------------------------ real stores

/**
 * FST/FSTP m32/m64: rounds ST(0) to the format in mode RC (the precision control does not
 * apply). Unmasked IE/OE/UE store nothing and do not pop.
 */
function fstReal(cpu: Cpu, d: Insn, fmt: number, popAfter: boolean): number {
  if (fpEnter(cpu) !== ST_OK) return ST_FAULT;
  const la = cpu.eaOf(d);
  const size = fmt === FMT_DBL ? 8 : 4;
  let hi = 0;
  let lo = 0;
  let exc = 0;
  let c1 = 0;
  if (isEmpty(cpu, 0)) {
    exc = X_IE | 0x40;
    setIndefinite(V);
  } else readST(cpu, 0, V);
  const c = exc ? C_QNAN : classify(V);
  if (c === C_UNSUPPORTED || c === C_QNAN || c === C_SNAN) {
    if (c === C_UNSUPPORTED) {
      exc |= X_IE;
      setIndefinite(V);
    } else if (c === C_SNAN) exc |= X_IE;
    const s = V.se >>> 15;
    if (fmt === FMT_DBL) {
      hi = ((s << 31) | 0x7ff80000 | ((V.hi >>> 11) & 0x7ffff)) >>> 0;
      lo = ((V.hi << 21) | (V.lo >>> 11)) >>> 0;
    } else lo = ((s << 31) | 0x7fc00000 | ((V.hi >>> 8) & 0x3fffff)) >>> 0;
  } else if (c === C_INF) {
    const s = V.se >>> 15;
    if (fmt === FMT_DBL) hi = ((s << 31) | 0x7ff00000) >>> 0;
    else lo = ((s << 31) | 0x7f800000) >>> 0;
  } else {
    roundF80(V, fmt === FMT_DBL ? 53 : 24, rcOf(cpu), fmt, false, false);
    hi = rp.hi;
    lo = rp.lo;
    exc |= rp.exc;
    c1 = rp.exc & X_PE ? rp.up : 0;
    if (c === C_ZERO) c1 = 0;
  }
  if ((exc & ~cpu.fpCw & (X_IE | X_OE | X_UE)) !== 0) {
    // Nothing stored; only IE/OE/UE (and SF) are reported, C1 = 0.
    raise(cpu, exc & (X_IE | X_OE | X_UE | 0x40));
    setC1(cpu, 0);
    return ST_OK;
  }
  if (exc & 0x40 && !imMasked(cpu)) return ST_OK;
  const st = cpu.write(la, size, lo | 0, hi | 0);
  if (st !== ST_OK) return ST_FAULT;
  raise(cpu, exc);
  setC1(cpu, exc & 0x40 ? 0 : c1);
  if (popAfter) pop(cpu);
  return ST_OK;
}

const fstM32 = (cpu: Cpu, d: Insn): number => fstReal(cpu, d, FMT_SGL, false);
const fstpM32 = (cpu: Cpu, d: Insn): number => fstReal(cpu, d, FMT_SGL, true);
const fstM64 = (cpu: Cpu, d: Insn): number => fstReal(cpu, d, FMT_DBL, false);
const fstpM64 = (cpu: Cpu, d: Insn): number => fstReal(cpu, d, FMT_DBL, true);

function fstpM80(cpu: Cpu, d: Insn): number {
  if (fpEnter(cpu) !== ST_OK) return ST_FAULT;
  const la = cpu.eaOf(d);
  if (isEmpty(cpu, 0)) {
    raise(cpu, X_IE | 0x40);
    setC1(cpu, 0);
    if (!imMasked(cpu)) return ST_OK;
    if (write80(cpu, la, IND) !== ST_OK) return ST_FAULT;
    pop(cpu);
    return ST_OK;
  }
  readST(cpu, 0, V);
  if (write80(cpu, la, V) !== ST_OK) return ST_FAULT;
  setC1(cpu, 0);
  pop(cpu);
  return ST_OK;
}

function fstSt(cpu: Cpu, d: Insn, popAfter: boolean): number {
  if (fpEnter(cpu) !== ST_OK) return ST_FAULT;
  const i = d.rm & 7;
  if (isEmpty(cpu, 0)) return underflow(cpu, i, popAfter);
  readST(cpu, 0, V);
  writeST(cpu, i, V);
  setC1(cpu, 0);
  if (popAfter) pop(cpu);
  return ST_OK;
}

const fstStI = (cpu: Cpu, d: Insn): number => fstSt(cpu, d, false);
const fstpStI = (cpu: Cpu, d: Insn): number => fstSt(cpu, d, true);

// ------------------------------------------------------------------ integer stores

/**
 * FIST/FISTP/FISTTP: size 2, 4, 8; trunc: FISTTP (round toward zero). Out of range, NaN,
 * infinity, unsupported: IE, masked: the integer indefinite (the most negative integer).
 */
function fistKind(cpu: Cpu, d: Insn, size: number, popAfter: boolean, trunc: boolean): number {
  if (fpEnter(cpu) !== ST_OK) return ST_FAULT;
  const la = cpu.eaOf(d);
  let exc = 0;
  let c1 = 0;
  let lo = 0;
  let hi = 0;
  let invalid = false;
  if (isEmpty(cpu, 0)) {
    exc = X_IE | 0x40;
    invalid = true;
  } else {
    readST(cpu, 0, V);
    const c = classify(V);
    if (c === C_QNAN || c === C_SNAN || c === C_INF || c === C_UNSUPPORTED) invalid = true;
    else {
        toInt(V, trunc ? RC_ZERO : rcOf(cpu));
      if (ti.big) invalid = true;
      else {
        // range check on the magnitude
        const neg = ti.neg !== 0 && (ti.hi !== 0 || ti.lo !== 0);
        if (size === 8) {
          if (ti.hi > 0x80000000 || (ti.hi === 0x80000000 && (ti.lo !== 0 || !neg))) invalid = true;
        } else if (size === 4) {
          if (ti.hi !== 0 || ti.lo > 0x80000000 || (ti.lo === 0x80000000 && !neg)) invalid = true;
        } else if (ti.hi !== 0 || ti.lo > 0x8000 || (ti.lo === 0x8000 && !neg)) invalid = true;
        if (!invalid) {
          lo = ti.lo;
          hi = ti.hi;
          if (neg) {
            lo = (~lo + 1) >>> 0;
            hi = (~hi + (lo === 0 ? 1 : 0)) >>> 0;
          }
          if (ti.inexact) {
            exc |= X_PE;
            c1 = ti.up ? 1 : 0;
          }
        }
      }
    }
  }
  if (invalid) {
    exc |= X_IE;
    exc &= ~X_PE;
    c1 = 0;
    lo = size === 8 ? 0 : size === 4 ? 0x80000000 : 0x8000;
    hi = size === 8 ? 0x80000000 : 0;
  }
  if ((exc & X_IE) !== 0 && !imMasked(cpu)) {
    raise(cpu, exc);
    setC1(cpu, 0);
    return ST_OK;
  }
  if (cpu.write(la, size, lo | 0, hi | 0) !== ST_OK) return ST_FAULT;
  raise(cpu, exc);
  setC1(cpu, c1);
  if (popAfter) pop(cpu);
  return ST_OK;
}

// ------------------------------------------------------------------ BCD

const LIMB = new Float64Array(4);

/** FBLD: 18 packed BCD digits and a sign byte -> exact 80-bit integer. Invalid digits are used as is. */
function fbld(cpu: Cpu, d: Insn): number {
  if (fpEnter(cpu) !== ST_OK) return ST_FAULT;
  const la = cpu.eaOf(d);
  const lo = cpu.read(la, 8);
  if (lo === -1) return ST_FAULT;
  const hi = cpu.vh;
  const top = cpu.read(la + 8, 2);
  if (top === -1) return ST_FAULT;
  // digits: bytes 0..8, two digits per byte (low nibble first)
  let low9 = 0;
  let high9 = 0;
  let scale = 1;
  for (let n = 0; n < 18; n++) {
    const b = n >> 1;
    const byte = b < 4 ? (lo >>> (8 * b)) & 0xff : b < 8 ? (hi >>> (8 * (b - 4))) & 0xff : top & 0xff;
    const dig = n & 1 ? byte >>> 4 : byte & 15;
    if (n < 9) low9 += dig * scale;
    else high9 += dig * scale;
    scale = n === 8 ? 1 : scale * 10;
  }
  // value = high9 * 1e9 + low9, exactly, into 64 bits
  const ah = Math.floor(high9 / 65536);
  const al = high9 - ah * 65536;
  const t = ah * 1e9 * 65536;
  const tHi = Math.floor(t / 4294967296);
  const tLo = t - tHi * 4294967296;
  const s = tLo + al * 1e9 + low9;
  const carry = Math.floor(s / 4294967296);
  fromInt((top >>> 15) & 1, tHi + carry, s - carry * 4294967296, V);
  pushValue(cpu, V);
  return ST_OK;
}

/** Divides the 64-bit magnitude in LIMB[0..3] (16-bit limbs, most significant first) by dv; returns the remainder. */
function divLimbs(dv: number): number {
  let r = 0;
  for (let k = 0; k < 4; k++) {
    const x = r * 65536 + LIMB[k];
    const q = Math.floor(x / dv);
    LIMB[k] = q;
    r = x - q * dv;
  }
  return r;
}

const BCD = new Uint8Array(10);

function fbstp(cpu: Cpu, d: Insn): number {
  if (fpEnter(cpu) !== ST_OK) return ST_FAULT;
  const la = cpu.eaOf(d);
  let exc = 0;
  let c1 = 0;
  let invalid = false;
  BCD.fill(0);
  if (isEmpty(cpu, 0)) {
    exc = X_IE | 0x40;
    invalid = true;
  } else {
    readST(cpu, 0, V);
    const c = classify(V);
    if (c === C_QNAN || c === C_SNAN || c === C_INF || c === C_UNSUPPORTED) invalid = true;
    else {
      toInt(V, rcOf(cpu));
      // |x| must be < 10^18 = 0x0DE0B6B3_A7640000
      if (ti.big || ti.hi > 0x0de0b6b3 || (ti.hi === 0x0de0b6b3 && ti.lo >= 0xa7640000)) invalid = true;
      else {
        if (ti.inexact) {
          exc |= X_PE;
          c1 = ti.up ? 1 : 0;
        }
        LIMB[0] = ti.hi >>> 16;
        LIMB[1] = ti.hi & 0xffff;
        LIMB[2] = ti.lo >>> 16;
        LIMB[3] = ti.lo & 0xffff;
        const low9 = divLimbs(1e9);
        const high9 = LIMB[2] * 65536 + LIMB[3] + LIMB[1] * 4294967296;
        let a = low9;
        let b = high9;
        for (let n = 0; n < 18; n++) {
          let dig: number;
          if (n < 9) {
            dig = a % 10;
            a = (a - dig) / 10;
          } else {
            dig = b % 10;
            b = (b - dig) / 10;
          }
          BCD[n >> 1] |= n & 1 ? dig << 4 : dig;
        }
        BCD[9] = ti.neg ? 0x80 : 0;
      }
    }
  }
  if (invalid) {
    exc |= X_IE;
    exc &= ~X_PE;
    c1 = 0;
    BCD.fill(0);
    BCD[7] = 0xc0;
    BCD[8] = 0xff;
    BCD[9] = 0xff;
  }
  if ((exc & X_IE) !== 0 && !imMasked(cpu)) {
    raise(cpu, exc);
    setC1(cpu, 0);
    return ST_OK;
  }
  const lo = BCD[0] | (BCD[1] << 8) | (BCD[2] << 16) | (BCD[3] << 24);
  const hi = BCD[4] | (BCD[5] << 8) | (BCD[6] << 16) | (BCD[7] << 24);
  const top = BCD[8] | (BCD[9] << 8);
  T80.lo = lo >>> 0;
  T80.hi = hi >>> 0;
  T80.se = top;
  if (write80(cpu, la, T80) !== ST_OK) return ST_FAULT;
  raise(cpu, exc);
  setC1(cpu, c1);
  pop(cpu);
  return ST_OK;
}
const T80 = new F80();

export const LDST: Readonly<Record<string, (cpu: Cpu, d: Insn) => number>> = {
  fldM32,
  fldM64,
  fldM80,
  fldSt,
  fildM16,
  fildM32,
  fildM64,
  fstM32,
  fstpM32,
  fstM64,
  fstpM64,
  fstpM80,
  fstStI,
  fstpStI,
  fistM16: (cpu: Cpu, d: Insn): number => fistKind(cpu, d, 2, false, false),
  fistpM16: (cpu: Cpu, d: Insn): number => fistKind(cpu, d, 2, true, false),
  fistM32: (cpu: Cpu, d: Insn): number => fistKind(cpu, d, 4, false, false),
  fistpM32: (cpu: Cpu, d: Insn): number => fistKind(cpu, d, 4, true, false),
  fistpM64: (cpu: Cpu, d: Insn): number => fistKind(cpu, d, 8, true, false),
  fisttpM16: (cpu: Cpu, d: Insn): number => fistKind(cpu, d, 2, true, true),
  fisttpM32: (cpu: Cpu, d: Insn): number => fistKind(cpu, d, 4, true, true),
  fisttpM64: (cpu: Cpu, d: Insn): number => fistKind(cpu, d, 8, true, true),
  fbld,
  fbstp,
};

