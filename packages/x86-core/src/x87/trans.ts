/**
 * x87 transcendental and "exact" special instructions.
 *
 * Exact (bit-for-bit with the hardware): FPREM, FPREM1 (bitwise long division of the 64-bit
 * significands), FRNDINT, FSCALE, FXTRACT.
 * Approximate: F2XM1, FYL2X, FYL2XP1, FPTAN, FPATAN, FSIN, FCOS, FSINCOS compute with Math.* on
 * doubles (logarithms keep the full exponent range through the working form) and then round to
 * the precision control; they are within a few ulps of double precision of the hardware's
 * results (README "Precision" gives the tested bound). PE is set for every inexact result; C1
 * (the round-up indicator) is the rounding of the double to the precision control only.
 */
import type { Cpu } from '../cpu';
import type { Insn } from '../insn';
import { ST_FAULT, ST_OK } from '../constants';
import {
  C_DENORMAL,
  C_INF,
  C_NORMAL,
  C_QNAN,
  C_SNAN,
  C_UNSUPPORTED,
  C_ZERO,
  classify,
  clz64,
  copyF,
  F80,
  FMT_EXT,
  fromDouble,
  fromInt,
  mulWork,
  norm,
  normalize,
  packWork,
  pow2,
  roundF80,
  roundPack,
  rp,
  setIndefinite,
  shl64,
  ti,
  toDouble,
  toInt,
  toWork,
  w,
  X_DE,
  X_IE,
  X_OE,
  X_PE,
  X_UE,
  X_ZE,
} from './float80';
import { A, B, R, commit, nanResult, pcBits, rcOf, res } from './arith';
import { divExact, nudgeDownExact, packExact, setNudged } from './exact';
import { fpEnter, imMasked, isEmpty, pushValue, raise, readST, setC1, setCC, SW_C2, underflow, writeST } from './state';

const R2 = new F80();
const ONE = new F80();
ONE.se = 0x3fff;
ONE.hi = 0x80000000;
const wa = { s: 0, m: 1, e: 0 };

/** A double result rounded to the precision control into out (inexact unless exact). */
function fromMath(cpu: Cpu, x: number, out: F80, exact: boolean): void {
  fromDouble(x, out);
  if (x === 0 || !Number.isFinite(x)) return;
  roundF80(out, pcBits(cpu), rcOf(cpu), FMT_EXT, (cpu.fpCw & X_OE) === 0, (cpu.fpCw & X_UE) === 0);
  out.se = rp.se;
  out.hi = rp.hi;
  out.lo = rp.lo;
  res.exc |= rp.exc | (exact ? 0 : X_PE);
  res.c1 = rp.exc & X_PE ? rp.up : 0;
}

/**
 * The result for a tiny argument t (|t| < 2^-40): t itself, with the exact result just below
 * (err = -1: sin, atan) or above (err = 1: tan) in magnitude, rounded to the precision control
 * (denormal results, UE, PE and C1 as the rounding gives them).
 */
function tinyResult(cpu: Cpu, t: F80, err: number, out: F80): void {
  let e = t.se & 0x7fff;
  if (e === 0) e = 1;
  const z = clz64(t.hi, t.lo);
  shl64(t.hi, t.lo, z);
  setNudged(t.se >>> 15, e - 16383 - z, norm.hi, norm.lo, err);
  packExact(pcBits(cpu), rcOf(cpu), FMT_EXT, (cpu.fpCw & X_OE) === 0, (cpu.fpCw & X_UE) === 0);
  out.se = rp.se;
  out.hi = rp.hi;
  out.lo = rp.lo;
  res.exc |= rp.exc;
  res.c1 = rp.exc & X_PE ? rp.up : 0;
}

/**
 * Common prologue of one-operand instructions on ST(0): returns the class of ST(0) in A, or -1
 * when the instruction is finished (underflow, NaN, unsupported handled: R is set and
 * committed).
 */
function unary(cpu: Cpu): number {
  res.exc = 0;
  res.c1 = 0;
  if (isEmpty(cpu, 0)) {
    underflow(cpu, 0, false);
    return -1;
  }
  readST(cpu, 0, A);
  const c = classify(A);
  if (c === C_UNSUPPORTED) {
    res.exc = X_IE;
    setIndefinite(R);
    commit(cpu, 0, false);
    return -1;
  }
  if (c === C_QNAN || c === C_SNAN) {
    if (c === C_SNAN) res.exc = X_IE;
    nanResult(A, c, A, c, R);
    commit(cpu, 0, false);
    return -1;
  }
  if (c === C_DENORMAL) res.exc = X_DE;
  return c;
}

const TWO63 = 9223372036854775808;

function trig(cpu: Cpu, kind: number): number {
  if (fpEnter(cpu) !== ST_OK) return ST_FAULT;
  const pushes = kind >= 2; // 2 FPTAN, 3 FSINCOS
  if (pushes && !isEmpty(cpu, 0) && !isEmpty(cpu, 7)) {
    // stack overflow: FPTAN/FSINCOS push a second result
    raise(cpu, X_IE | 0x40);
    setC1(cpu, 1);
    cpu.fpSw &= ~SW_C2;
    if (imMasked(cpu)) {
      setIndefinite(R);
      writeST(cpu, 0, R);
      pushValue(cpu, R);
      cpu.fpSw |= 0x200;
    }
    return ST_OK;
  }
  const c = unary(cpu);
  if (c < 0) {
    if (pushes && imMasked(cpu) && (cpu.fpSw & 1) !== 0 && !isEmpty(cpu, 0)) {
      // NaN/underflow: both results are the NaN
      readST(cpu, 0, R2);
      if ((R2.se & 0x7fff) === 0x7fff) pushValue(cpu, R2);
    } else if (pushes && !isEmpty(cpu, 0)) {
      readST(cpu, 0, R2);
      if ((R2.se & 0x7fff) === 0x7fff && (R2.hi & 0x40000000) !== 0) pushValue(cpu, R2);
    }
    cpu.fpSw &= ~SW_C2;
    return ST_OK;
  }
  if (c === C_INF) {
    res.exc |= X_IE;
    setIndefinite(R);
    commit(cpu, 0, false);
    if (pushes && imMasked(cpu)) pushValue(cpu, R);
    cpu.fpSw &= ~SW_C2;
    return ST_OK;
  }
  if (c !== C_ZERO && (A.se & 0x7fff) - 16383 >= 63) {
    // |x| >= 2^63: out of range, C2 = 1, nothing changes
    cpu.fpSw |= SW_C2;
    return ST_OK;
  }
  const x = toDouble(A);
  let r1: number;
  let r2 = 1;
  if (kind === 0) r1 = Math.sin(x);
  else if (kind === 1) r1 = Math.cos(x);
  else if (kind === 2) r1 = Math.tan(x);
  else {
    r1 = Math.sin(x);
    r2 = Math.cos(x);
  }
  const exact = c === C_ZERO;
  const tiny = c !== C_ZERO && (A.se & 0x7fff) < 16383 - 40;
  if (c === C_ZERO && kind !== 1) copyF(R, A);
  else if (tiny && kind !== 1) tinyResult(cpu, A, kind === 2 ? 1 : -1, R);
  else fromMath(cpu, c === C_ZERO || tiny ? 1 : r1, R, exact);
  const exc = res.exc;
  if ((exc & (X_IE | X_DE | X_ZE) & ~cpu.fpCw) !== 0) {
    raise(cpu, exc);
    return ST_OK;
  }
  writeST(cpu, 0, R);
  if (kind === 3) {
    res.c1 = 0;
    if (c === C_ZERO) copyF(R2, ONE);
    else fromMath(cpu, tiny ? 1 : r2, R2, false);
    pushValue(cpu, R2);
  } else if (kind === 2) pushValue(cpu, ONE);
  raise(cpu, res.exc);
  setC1(cpu, res.c1);
  cpu.fpSw &= ~SW_C2;
  return ST_OK;
}

/** Two-operand prologue (ST(0) = x, ST(1) = y): -1 when finished (underflow/NaN into ST(1), popped). */
function binary(cpu: Cpu): number {
  res.exc = 0;
  res.c1 = 0;
  if (isEmpty(cpu, 0) || isEmpty(cpu, 1)) {
    underflow(cpu, 1, true);
    return -1;
  }
  readST(cpu, 0, A);
  readST(cpu, 1, B);
  const ca = classify(A);
  const cb = classify(B);
  if (ca === C_UNSUPPORTED || cb === C_UNSUPPORTED) {
    res.exc = X_IE;
    setIndefinite(R);
    commit(cpu, 1, true);
    return -1;
  }
  if (ca === C_QNAN || ca === C_SNAN || cb === C_QNAN || cb === C_SNAN) {
    if (ca === C_SNAN || cb === C_SNAN) res.exc = X_IE;
    nanResult(A, ca, B, cb, R);
    commit(cpu, 1, true);
    return -1;
  }
  if (ca === C_DENORMAL || cb === C_DENORMAL) res.exc = X_DE;
  return 0;
}

function fpatan(cpu: Cpu, _d: Insn): number {
  if (fpEnter(cpu) !== ST_OK) return ST_FAULT;
  if (binary(cpu) < 0) return ST_OK;
  const cx = classify(A);
  const cy = classify(B);
  const sx = A.se >>> 15;
  const sy = B.se >>> 15;
  if (cx === C_ZERO || cx === C_INF || cy === C_ZERO || cy === C_INF) {
    // class surrogates give the special results (+-0, +-pi/4, +-pi/2, +-3pi/4, +-pi)
    const yd = (sy ? -1 : 1) * (cy === C_ZERO ? 0 : cy === C_INF ? Infinity : 1);
    const xd = (sx ? -1 : 1) * (cx === C_ZERO ? 0 : cx === C_INF ? Infinity : 1);
    const r = Math.atan2(yd, xd);
    if (r === 0) {
      R.se = sy << 15;
      R.hi = 0;
      R.lo = 0;
    } else fromMath(cpu, r, R, false);
    return commit(cpu, 1, true);
  }
  toWork(A, wa);
  const xm = wa.m;
  const xe = wa.e;
  toWork(B, wa);
  const d = wa.e - xe;
  if (d < -40 && sx === 0) {
    // atan(y / x) for a tiny quotient: the exact quotient, just below in magnitude
    let ey = B.se & 0x7fff;
    if (ey === 0) ey = 1;
    const zy = clz64(B.hi, B.lo);
    shl64(B.hi, B.lo, zy);
    const yh = norm.hi;
    const yl = norm.lo;
    let ex = A.se & 0x7fff;
    if (ex === 0) ex = 1;
    const zx = clz64(A.hi, A.lo);
    shl64(A.hi, A.lo, zx);
    divExact(sy, ey - 16383 - zy, yh, yl, ex - 16383 - zx, norm.hi, norm.lo);
    nudgeDownExact();
    packExact(pcBits(cpu), rcOf(cpu), FMT_EXT, (cpu.fpCw & X_OE) === 0, (cpu.fpCw & X_UE) === 0);
    R.se = rp.se;
    R.hi = rp.hi;
    R.lo = rp.lo;
    res.exc |= rp.exc;
    res.c1 = rp.exc & X_PE ? rp.up : 0;
    return commit(cpu, 1, true);
  }
  const k = d > 1000 ? 1000 : d < -1000 ? -1000 : d;
  fromMath(cpu, Math.atan2((sy ? -1 : 1) * wa.m * pow2(k), (sx ? -1 : 1) * xm), R, false);
  return commit(cpu, 1, true);
}

function f2xm1(cpu: Cpu, _d: Insn): number {
  if (fpEnter(cpu) !== ST_OK) return ST_FAULT;
  const c = unary(cpu);
  if (c < 0) return ST_OK;
  if (c === C_ZERO) copyF(R, A);
  else if (c === C_INF) {
    if (A.se & 0x8000) {
      R.se = 0xbfff;
      R.hi = 0x80000000;
      R.lo = 0;
    } else copyF(R, A);
  } else if ((A.se & 0x7fff) < 16383 - 40) mulY(cpu, A, Math.LN2, false); // 2^x - 1 = x ln 2 for tiny x
  else fromMath(cpu, Math.expm1(toDouble(A) * Math.LN2), R, false);
  return commit(cpu, 0, false);
}

/** log2 of a positive finite nonzero 80-bit value as a double. */
function log2Of(v: F80): number {
  toWork(v, wa);
  // near 1 (x in [0.5, 2)), x - 1 is exact and log1p keeps the relative precision
  if (wa.e === -1 || wa.e === 0) return Math.log1p(wa.m * pow2(wa.e) - 1) / Math.LN2;
  return wa.e + Math.log2(wa.m);
}

/** R = y * l (l a finite double), y finite nonzero: through the working form, rounded to PC. */
function mulY(cpu: Cpu, y: F80, l: number, exact: boolean): void {
  if (l === 0) {
    R.se = (y.se & 0x8000) ^ (l < 0 || Object.is(l, -0) ? 0x8000 : 0);
    R.hi = 0;
    R.lo = 0;
    return;
  }
  toWork(y, wa);
  normalize(Math.abs(l), 0);
  const lm = w.m;
  const le = w.e;
  mulWork(wa.m, wa.e, lm, le);
  w.s = (y.se >>> 15) ^ (l < 0 ? 1 : 0);
  if (!exact) w.err = w.err === 0 ? 1 : w.err;
  packWork(pcBits(cpu), rcOf(cpu), (cpu.fpCw & X_OE) === 0, (cpu.fpCw & X_UE) === 0);
  R.se = rp.se;
  R.hi = rp.hi;
  R.lo = rp.lo;
  res.exc |= rp.exc;
  res.c1 = rp.exc & X_PE ? rp.up : 0;
}

function setInf(v: F80, s: number): void {
  v.se = (s << 15) | 0x7fff;
  v.hi = 0x80000000;
  v.lo = 0;
}

function fyl2x(cpu: Cpu, _d: Insn): number {
  if (fpEnter(cpu) !== ST_OK) return ST_FAULT;
  if (binary(cpu) < 0) return ST_OK;
  const cx = classify(A);
  const cy = classify(B);
  const sx = A.se >>> 15;
  const sy = B.se >>> 15;
  if (sx && cx !== C_ZERO) {
    res.exc |= X_IE;
    setIndefinite(R);
  } else if (cx === C_ZERO) {
    if (cy === C_ZERO) {
      res.exc |= X_IE;
      setIndefinite(R);
    } else {
      if (cy !== C_INF) res.exc |= X_ZE;
      setInf(R, sy ^ 1);
    }
  } else if (cx === C_INF) {
    if (cy === C_ZERO) {
      res.exc |= X_IE;
      setIndefinite(R);
    } else setInf(R, sy);
  } else {
    // x finite positive
    const l = log2Of(A);
    const isOne = (A.se & 0x7fff) === 0x3fff && A.hi === 0x80000000 && A.lo === 0;
    if (cy === C_INF) {
      if (isOne) {
        res.exc |= X_IE;
        setIndefinite(R);
      } else setInf(R, sy ^ (l < 0 ? 1 : 0));
    } else if (cy === C_ZERO) {
      R.se = (sy ^ (l < 0 ? 1 : 0)) << 15;
      R.hi = 0;
      R.lo = 0;
    } else mulY(cpu, B, l, isOne);
  }
  return commit(cpu, 1, true);
}

function fyl2xp1(cpu: Cpu, _d: Insn): number {
  if (fpEnter(cpu) !== ST_OK) return ST_FAULT;
  if (binary(cpu) < 0) return ST_OK;
  const cx = classify(A);
  const cy = classify(B);
  const sy = B.se >>> 15;
  if (cx === C_INF || cy === C_INF) {
    // log2(1 + x) is +inf for x = +inf, invalid for x = -inf; y = 0 times infinity is invalid
    if (cx === C_ZERO || cy === C_ZERO || (cx === C_INF && (A.se & 0x8000) !== 0)) {
      res.exc |= X_IE;
      setIndefinite(R);
    } else setInf(R, sy ^ (cx === C_INF ? 0 : A.se >>> 15));
  } else if (cx === C_ZERO || cy === C_ZERO) {
    R.se = ((A.se ^ B.se) & 0x8000);
    R.hi = 0;
    R.lo = 0;
  } else if ((A.se & 0x7fff) < 16383 - 40) {
    // log2(1 + x) = x / ln 2 for tiny x
    toWork(A, wa);
    mulWork(wa.m, wa.e, Math.LOG2E / 2, 1);
    const tm = w.m;
    const te = w.e;
    toWork(B, wa);
    mulWork(tm, te, wa.m, wa.e);
    w.s = (A.se ^ B.se) >>> 15;
    w.err = w.err === 0 ? -1 : w.err;
    packWork(pcBits(cpu), rcOf(cpu), (cpu.fpCw & X_OE) === 0, (cpu.fpCw & X_UE) === 0);
    R.se = rp.se;
    R.hi = rp.hi;
    R.lo = rp.lo;
    res.exc |= rp.exc;
    res.c1 = rp.exc & X_PE ? rp.up : 0;
  } else mulY(cpu, B, Math.log1p(toDouble(A)) / Math.LN2, false);
  return commit(cpu, 1, true);
}

// ------------------------------------------------------------------ exact ones

function frndint(cpu: Cpu, _d: Insn): number {
  if (fpEnter(cpu) !== ST_OK) return ST_FAULT;
  const c = unary(cpu);
  if (c < 0) return ST_OK;
  if (c === C_ZERO || c === C_INF) copyF(R, A);
  else if ((A.se & 0x7fff) - 16383 >= 63) copyF(R, A);
  else {
    toInt(A, rcOf(cpu));
    fromInt(A.se >>> 15, ti.hi, ti.lo, R);
    if (ti.inexact) {
      res.exc |= X_PE;
      res.c1 = ti.up ? 1 : 0;
    }
  }
  return commit(cpu, 0, false);
}

function fscale(cpu: Cpu, _d: Insn): number {
  if (fpEnter(cpu) !== ST_OK) return ST_FAULT;
  res.exc = 0;
  res.c1 = 0;
  if (isEmpty(cpu, 0) || isEmpty(cpu, 1)) return underflow(cpu, 0, false);
  readST(cpu, 0, A);
  readST(cpu, 1, B);
  const ca = classify(A);
  const cb = classify(B);
  if (ca === C_UNSUPPORTED || cb === C_UNSUPPORTED) {
    res.exc = X_IE;
    setIndefinite(R);
    return commit(cpu, 0, false);
  }
  if (ca === C_QNAN || ca === C_SNAN || cb === C_QNAN || cb === C_SNAN) {
    if (ca === C_SNAN || cb === C_SNAN) res.exc = X_IE;
    nanResult(A, ca, B, cb, R);
    return commit(cpu, 0, false);
  }
  if (ca === C_DENORMAL || cb === C_DENORMAL) res.exc = X_DE;
  const sb = B.se >>> 15;
  if (cb === C_INF) {
    if ((ca === C_ZERO && !sb) || (ca === C_INF && sb)) {
      res.exc |= X_IE;
      setIndefinite(R);
    } else if (ca === C_ZERO || ca === C_INF) copyF(R, A);
    else if (sb) {
      R.se = A.se & 0x8000;
      R.hi = 0;
      R.lo = 0;
    } else setInf(R, A.se >>> 15);
    return commit(cpu, 0, false);
  }
  if (ca === C_ZERO || ca === C_INF) {
    copyF(R, A);
    return commit(cpu, 0, false);
  }
  // n = trunc(ST(1)), clamped (beyond +-2^16 the result over/underflows anyway)
  let n: number;
  const eb = (B.se & 0x7fff) - 16383;
  if (cb === C_ZERO || eb < 0) n = 0;
  else if (eb > 20) n = sb ? -100000 : 100000;
  else {
    toInt(B, 3);
    n = sb ? -ti.lo : ti.lo;
  }
  let e = A.se & 0x7fff;
  if (e === 0) e = 1;
  const z = clz64(A.hi, A.lo);
  shl64(A.hi, A.lo, z);
  roundPack(A.se >>> 15, e - 16383 - z + n, norm.hi, norm.lo, false, 64, rcOf(cpu), FMT_EXT, (cpu.fpCw & X_OE) === 0, (cpu.fpCw & X_UE) === 0);
  R.se = rp.se;
  R.hi = rp.hi;
  R.lo = rp.lo;
  res.exc |= rp.exc;
  res.c1 = rp.exc & X_PE ? rp.up : 0;
  return commit(cpu, 0, false);
}

function fxtract(cpu: Cpu, _d: Insn): number {
  if (fpEnter(cpu) !== ST_OK) return ST_FAULT;
  if (!isEmpty(cpu, 0) && !isEmpty(cpu, 7)) {
    raise(cpu, X_IE | 0x40);
    setC1(cpu, 1);
    if (imMasked(cpu)) {
      setIndefinite(R);
      writeST(cpu, 0, R);
      pushValue(cpu, R);
      cpu.fpSw |= 0x200;
    }
    return ST_OK;
  }
  setC1(cpu, 0);
  const c = unary(cpu);
  if (c < 0) {
    // a NaN result (no unmasked exception) goes to both ST(1) and ST(0)
    if (!isEmpty(cpu, 0) && (res.exc & ~cpu.fpCw & 0x3f) === 0) {
      readST(cpu, 0, R2);
      if ((R2.se & 0x7fff) === 0x7fff && (R2.hi & 0x40000000) !== 0) pushValue(cpu, R2);
    }
    return ST_OK;
  }
  if (c === C_ZERO) {
    res.exc |= X_ZE;
    if ((X_ZE & ~cpu.fpCw) !== 0) {
      raise(cpu, res.exc);
      return ST_OK;
    }
    setInf(R, 1);
    writeST(cpu, 0, R);
    pushValue(cpu, A);
    raise(cpu, res.exc);
    return ST_OK;
  }
  if (c === C_INF) {
    setInf(R, 0);
    writeST(cpu, 0, R);
    pushValue(cpu, A);
    return ST_OK;
  }
  if ((res.exc & ~cpu.fpCw & X_DE) !== 0) {
    raise(cpu, res.exc);
    return ST_OK;
  }
  let e = A.se & 0x7fff;
  if (e === 0) e = 1;
  const z = clz64(A.hi, A.lo);
  shl64(A.hi, A.lo, z);
  const ex = e - 16383 - z;
  R2.se = (A.se & 0x8000) | 0x3fff;
  R2.hi = norm.hi;
  R2.lo = norm.lo;
  fromInt(ex < 0 ? 1 : 0, 0, Math.abs(ex), R);
  writeST(cpu, 0, R);
  pushValue(cpu, R2);
  raise(cpu, res.exc);
  return ST_OK;
}

/**
 * FPREM (trunc) / FPREM1 (IEEE, nearest): exact partial remainder of ST(0) by ST(1) by long
 * division of the significands. C2 = 1 when the reduction is partial (exponent difference
 * >= 64); otherwise C0, C3, C1 = quotient bits 2, 1, 0.
 */
function fpremX(cpu: Cpu, ieee: boolean): number {
  if (fpEnter(cpu) !== ST_OK) return ST_FAULT;
  res.exc = 0;
  res.c1 = 0;
  if (isEmpty(cpu, 0) || isEmpty(cpu, 1)) {
    cpu.fpSw &= ~SW_C2;
    return underflow(cpu, 0, false);
  }
  readST(cpu, 0, A);
  readST(cpu, 1, B);
  const ca = classify(A);
  const cb = classify(B);
  if (ca === C_UNSUPPORTED || cb === C_UNSUPPORTED || ca === C_INF || cb === C_ZERO) {
    if (!(ca === C_QNAN || ca === C_SNAN || cb === C_QNAN || cb === C_SNAN) || ca === C_UNSUPPORTED || cb === C_UNSUPPORTED) {
      res.exc = X_IE | (ca === C_DENORMAL || cb === C_DENORMAL ? X_DE : 0);
      setIndefinite(R);
      cpu.fpSw &= ~SW_C2;
      return commit(cpu, 0, false);
    }
  }
  if (ca === C_QNAN || ca === C_SNAN || cb === C_QNAN || cb === C_SNAN) {
    if (ca === C_SNAN || cb === C_SNAN) res.exc = X_IE;
    nanResult(A, ca, B, cb, R);
    cpu.fpSw &= ~SW_C2;
    return commit(cpu, 0, false);
  }
  if (ca === C_DENORMAL || cb === C_DENORMAL) res.exc = X_DE;
  if (ca === C_ZERO || cb === C_INF) {
    copyF(R, A);
    if ((R.se & 0x7fff) === 0 && (R.hi & 0x80000000) !== 0) R.se |= 1; // pseudo-denormal: normalized
    setCC(cpu, 0, 0, 0, 0);
    return commit(cpu, 0, false);
  }
  // normalized significands and exponents
  let ea = A.se & 0x7fff;
  if (ea === 0) ea = 1;
  const za = clz64(A.hi, A.lo);
  shl64(A.hi, A.lo, za);
  const ah = norm.hi;
  const al = norm.lo;
  ea -= za;
  let eb = B.se & 0x7fff;
  if (eb === 0) eb = 1;
  const zb = clz64(B.hi, B.lo);
  shl64(B.hi, B.lo, zb);
  const bh = norm.hi;
  const bl = norm.lo;
  eb -= zb;
  let D = ea - eb;
  let partial = false;
  if (D >= 64) {
    partial = true;
    // reduce by 32..63 bits at a time (the hardware's choice, measured: N = 32 + D mod 32)
    const N = 32 + (D % 32);
    eb = ea - N;
    D = N;
  }
  let sign = A.se >>> 15;
  let q0: number;
  let q1 = 0;
  let q2 = 0;
  let rh = ah;
  let rl = al;
  let rExp: number; // the remainder (rh:rl) is scaled by 2^(rExp - 63)
  if (D < 0) {
    // |a| < |b|: quotient 0 (FPREM1: maybe 1 when |a| > |b| / 2)
    if (ieee && D === -1 && (ah > bh || (ah === bh && al > bl))) {
      // r = b - a (a has exponent eb - 1): b*2 - a at exponent eb-1 scale
      let dl = bl * 2;
      const dh = bh * 2 + (dl >= 4294967296 ? 1 : 0);
      dl = dl >= 4294967296 ? dl - 4294967296 : dl;
      // (dh:dl) - (ah:al), dh may exceed 32 bits
      let sl = dl - al;
      let sh = dh - ah;
      if (sl < 0) {
        sl += 4294967296;
        sh -= 1;
      }
      rh = sh;
      rl = sl;
      rExp = eb - 1;
      sign ^= 1;
      q0 = 1;
    } else {
      // quotient 0: the result is ST(0) itself, normalized (pseudo-denormals get exponent 1)
      rExp = ea;
      q0 = 0;
    }
  } else {
    // long division, D + 1 quotient bits
    let q = 0;
    let carry = 0;
    for (let k = 0; k <= D; k++) {
      if (k > 0) {
        carry = rh >>> 31;
        rh = ((rh << 1) | (rl >>> 31)) >>> 0;
        rl = (rl << 1) >>> 0;
      }
      q = (q << 1) & 7;
      if (carry || rh > bh || (rh === bh && rl >= bl)) {
        let sl = rl - bl;
        let sh = rh - bh;
        if (sl < 0) {
          sl += 4294967296;
          sh -= 1;
        }
        rh = sh >>> 0;
        rl = sl >>> 0;
        q |= 1;
      }
      carry = 0;
    }
    rExp = eb;
    if (ieee && !partial) {
      // compare 2r with b
      const th = rh >>> 31;
      const r2h = ((rh << 1) | (rl >>> 31)) >>> 0;
      const r2l = (rl << 1) >>> 0;
      const gt = th !== 0 || r2h > bh || (r2h === bh && r2l > bl);
      const eq = th === 0 && r2h === bh && r2l === bl;
      if (gt || (eq && (q & 1) !== 0)) {
        let sl = bl - rl;
        let sh = bh - rh;
        if (sl < 0) {
          sl += 4294967296;
          sh -= 1;
        }
        rh = sh >>> 0;
        rl = sl >>> 0;
        sign ^= 1;
        q = (q + 1) & 7;
      }
    }
    q0 = q & 1;
    q1 = (q >> 1) & 1;
    q2 = (q >> 2) & 1;
  }
  if (rh === 0 && rl === 0) {
    R.se = sign << 15;
    R.hi = 0;
    R.lo = 0;
  } else {
    // value = (rh:rl) * 2^(rExp - 63), rh may be >= 2^32 only in the FPREM1 D = -1 path
    if (rh >= 4294967296) {
      rl = (rl >>> 1) | ((rh & 1) << 31);
      rh = Math.floor(rh / 2);
      rExp += 1;
    }
    const z = clz64(rh >>> 0, rl >>> 0);
    shl64(rh >>> 0, rl >>> 0, z);
    roundPack(sign, rExp - 16383 - z, norm.hi, norm.lo, false, 64, 0, FMT_EXT, true, (cpu.fpCw & X_UE) === 0);
    R.se = rp.se;
    R.hi = rp.hi;
    R.lo = rp.lo;
    res.exc |= rp.exc & X_UE;
  }
  const exc = res.exc;
  if ((exc & (X_IE | X_DE) & ~cpu.fpCw) !== 0) {
    raise(cpu, exc);
    cpu.fpSw &= ~(SW_C2 | 0x200);
    return ST_OK;
  }
  writeST(cpu, 0, R);
  raise(cpu, exc);
  if (partial) cpu.fpSw = (cpu.fpSw & ~0x4700) | SW_C2;
  else setCC(cpu, q1, 0, q0, q2);
  return ST_OK;
}

export const TRANS: Readonly<Record<string, (cpu: Cpu, d: Insn) => number>> = {
  fsin: (cpu: Cpu, _d: Insn): number => trig(cpu, 0),
  fcos: (cpu: Cpu, _d: Insn): number => trig(cpu, 1),
  fptan: (cpu: Cpu, _d: Insn): number => trig(cpu, 2),
  fsincos: (cpu: Cpu, _d: Insn): number => trig(cpu, 3),
  fpatan,
  f2xm1,
  fyl2x,
  fyl2xp1,
  frndint,
  fscale,
  fxtract,
  fprem: (cpu: Cpu, _d: Insn): number => fpremX(cpu, false),
  fprem1: (cpu: Cpu, _d: Insn): number => fpremX(cpu, true),
};

export { C_NORMAL, TWO63 };
