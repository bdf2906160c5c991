/**
 * x87 arithmetic: FADD/FSUB/FSUBR/FMUL/FDIV/FDIVR in every form (ST(0),ST(i) / ST(i),ST(0) /
 * P / m32real / m64real / m16int / m32int), FSQRT, and the shared operand machinery.
 *
 * Precision: exact. The 64-bit significands are added, multiplied, divided and square-rooted
 * exactly (exact.ts) and rounded once to the precision control in the rounding mode RC, with
 * the hardware's denormal, overflow and underflow responses (float80.ts roundPack).
 */
import type { Cpu } from '../cpu';
import type { Insn } from '../insn';
import { ST_FAULT, ST_OK } from '../constants';
import {
  C_DENORMAL,
  C_INF,
  C_QNAN,
  C_SNAN,
  C_UNSUPPORTED,
  C_ZERO,
  classify,
  clz64,
  copyF,
  F80,
  FMT_EXT,
  fromF32Bits,
  fromF64Bits,
  fromInt,
  norm,
  RC_DOWN,
  roundF80,
  rp,
  setIndefinite,
  shl64,
  X_DE,
  X_IE,
  X_OE,
  X_PE,
  X_UE,
  X_ZE,
} from './float80';
import { addExact, divExact, mulExact, packExact, sqrtExact } from './exact';
import { fpEnter, isEmpty, pop, raise, readST, setC1, underflow, writeST } from './state';

/** Scratch operands and result. */
export const A: F80 = new F80();
export const B: F80 = new F80();
export const R: F80 = new F80();

/** Result of an operation: exception bits and C1. */
export const res = { exc: 0, c1: 0 };

/** Precision in bits from the precision-control field. */
export function pcBits(cpu: Cpu): number {
  const pc = (cpu.fpCw >> 8) & 3;
  return pc === 0 ? 24 : pc === 2 ? 53 : 64;
}

export function rcOf(cpu: Cpu): number {
  return (cpu.fpCw >> 10) & 3;
}

/** Quiets a NaN in place. */
function quiet(v: F80): void {
  v.hi = (v.hi | 0x40000000) >>> 0;
}

/**
 * The x87's NaN result for operands a, b (at least one a NaN): a QNaN wins over an SNaN; of two
 * NaNs of the same kind the one with the larger significand (on a tie, the positive one);
 * quieted.
 */
export function nanResult(a: F80, ca: number, b: F80, cb: number, out: F80): void {
  const an = ca === C_QNAN || ca === C_SNAN;
  const bn = cb === C_QNAN || cb === C_SNAN;
  if (an && bn && ca !== cb) copyF(out, ca === C_QNAN ? a : b);
  else if (an && bn) {
    const ah = a.hi & 0x3fffffff;
    const bh = b.hi & 0x3fffffff;
    if (bh > ah || (bh === ah && (b.lo > a.lo || (b.lo === a.lo && b.se < a.se)))) copyF(out, b);
    else copyF(out, a);
  } else copyF(out, an ? a : b);
  quiet(out);
}

export const OP_ADD = 0;
export const OP_MUL = 1;
export const OP_SUB = 4;
export const OP_SUBR = 5;
export const OP_DIV = 6;
export const OP_DIVR = 7;

/** Extra exception bits from the source conversion (a denormal m32/m64 operand: DE). */
let srcExc = 0;

function rounded(cpu: Cpu, v: F80, out: F80): void {
  // An exact value (x + 0, x * 1...) rounded to the precision control.
  roundF80(v, pcBits(cpu), rcOf(cpu), FMT_EXT, (cpu.fpCw & X_OE) === 0, (cpu.fpCw & X_UE) === 0);
  out.se = rp.se;
  out.hi = rp.hi;
  out.lo = rp.lo;
  res.exc |= rp.exc;
  res.c1 = rp.exc & X_PE ? rp.up : 0;
}


/** Normalized significand of a finite nonzero value: value = (hi:lo) * 2^(e - 63). */
const na = { e: 0, hi: 0, lo: 0 };
const nb = { e: 0, hi: 0, lo: 0 };
function sigOf(v: F80, out: { e: number; hi: number; lo: number }): void {
  let e = v.se & 0x7fff;
  if (e === 0) e = 1;
  const z = clz64(v.hi, v.lo);
  shl64(v.hi, v.lo, z);
  out.e = e - 16383 - z;
  out.hi = norm.hi;
  out.lo = norm.lo;
}

function fromExact(cpu: Cpu, out: F80): void {
  packExact(pcBits(cpu), rcOf(cpu), FMT_EXT, (cpu.fpCw & X_OE) === 0, (cpu.fpCw & X_UE) === 0);
  out.se = rp.se;
  out.hi = rp.hi;
  out.lo = rp.lo;
  res.exc |= rp.exc;
  res.c1 = rp.exc & X_PE ? rp.up : 0;
}

function signedZero(out: F80, s: number): void {
  out.se = s << 15;
  out.hi = 0;
  out.lo = 0;
}

function signedInf(out: F80, s: number): void {
  out.se = (s << 15) | 0x7fff;
  out.hi = 0x80000000;
  out.lo = 0;
}

/**
 * R = a op b (op: OP_ADD, OP_MUL, OP_SUB = a - b, OP_DIV = a / b; the reversed forms swap the
 * operands before calling). Sets res.exc / res.c1.
 */
export function binop(cpu: Cpu, op: number, a: F80, b: F80, out: F80): void {
  res.exc = srcExc;
  res.c1 = 0;
  const ca = classify(a);
  const cb = classify(b);
  if (ca === C_UNSUPPORTED || cb === C_UNSUPPORTED) {
    res.exc = X_IE; // no DE alongside an invalid operand
    setIndefinite(out);
    return;
  }
  if (ca === C_QNAN || ca === C_SNAN || cb === C_QNAN || cb === C_SNAN) {
    res.exc = ca === C_SNAN || cb === C_SNAN ? X_IE : 0;
    nanResult(a, ca, b, cb, out);
    return;
  }
  if (ca === C_DENORMAL || cb === C_DENORMAL) res.exc |= X_DE;
  const sa = a.se >>> 15;
  let sb = b.se >>> 15;
  if (op === OP_SUB) {
    sb ^= 1;
    op = OP_ADD;
  }
  if (op === OP_ADD) {
    if (ca === C_INF || cb === C_INF) {
      if (ca === C_INF && cb === C_INF && sa !== sb) {
        res.exc |= X_IE;
        setIndefinite(out);
      } else signedInf(out, ca === C_INF ? sa : sb);
      return;
    }
    if (ca === C_ZERO && cb === C_ZERO) {
      signedZero(out, sa === sb ? sa : rcOf(cpu) === RC_DOWN ? 1 : 0);
      return;
    }
    if (cb === C_ZERO) return rounded(cpu, a, out);
    if (ca === C_ZERO) {
      copyF(out, b);
      out.se = (sb << 15) | (b.se & 0x7fff);
      rounded(cpu, out, out);
      return;
    }
    sigOf(a, na);
    sigOf(b, nb);
    if (!addExact(sa, na.e, na.hi, na.lo, sb, nb.e, nb.hi, nb.lo)) {
      signedZero(out, rcOf(cpu) === RC_DOWN ? 1 : 0);
      return;
    }
    fromExact(cpu, out);
    return;
  }
  const s = sa ^ sb;
  if (op === OP_MUL) {
    if (ca === C_INF || cb === C_INF) {
      if (ca === C_ZERO || cb === C_ZERO) {
        res.exc |= X_IE;
        setIndefinite(out);
      } else signedInf(out, s);
      return;
    }
    if (ca === C_ZERO || cb === C_ZERO) {
      signedZero(out, s);
      return;
    }
    sigOf(a, na);
    sigOf(b, nb);
    mulExact(s, na.e, na.hi, na.lo, nb.e, nb.hi, nb.lo);
    fromExact(cpu, out);
    return;
  }
  // OP_DIV
  if (ca === C_INF) {
    if (cb === C_INF) {
      res.exc |= X_IE;
      setIndefinite(out);
    } else signedInf(out, s);
    return;
  }
  if (cb === C_INF) {
    signedZero(out, s);
    return;
  }
  if (cb === C_ZERO) {
    if (ca === C_ZERO) {
      res.exc |= X_IE;
      setIndefinite(out);
    } else {
      res.exc |= X_ZE;
      signedInf(out, s);
    }
    return;
  }
  if (ca === C_ZERO) {
    signedZero(out, s);
    return;
  }
  sigOf(a, na);
  sigOf(b, nb);
  divExact(s, na.e, na.hi, na.lo, nb.e, nb.hi, nb.lo);
  fromExact(cpu, out);
}

/**
 * Commits an arithmetic result R to ST(dst) (then pops when asked): an unmasked IE/DE/ZE
 * leaves the destination and the stack unchanged; other exceptions are flagged after the write.
 */
export function commit(cpu: Cpu, dst: number, popAfter: boolean): number {
  // A denormal operand is not reported when the operation is invalid or divides by zero.
  const exc = res.exc & (X_IE | X_ZE) ? res.exc & ~X_DE : res.exc;
  if ((exc & (X_IE | X_DE | X_ZE) & ~cpu.fpCw) !== 0) {
    raise(cpu, exc & (X_IE | X_DE | X_ZE));
    setC1(cpu, 0);
    return ST_OK;
  }
  writeST(cpu, dst, R);
  raise(cpu, exc);
  setC1(cpu, res.c1);
  if (popAfter) pop(cpu);
  return ST_OK;
}

/** Runs op on (ST(x), ST(y)) into ST(dst) with the operand order of the op (reversed forms swap). */
function regForm(cpu: Cpu, op: number, dst: number, other: number, popAfter: boolean): number {
  if (fpEnter(cpu) !== ST_OK) return ST_FAULT;
  if (isEmpty(cpu, dst) || isEmpty(cpu, other)) return underflow(cpu, dst, popAfter);
  readST(cpu, dst, A);
  readST(cpu, other, B);
  srcExc = 0;
  arith(cpu, op, A, B);
  return commit(cpu, dst, popAfter);
}

function arith(cpu: Cpu, op: number, dstVal: F80, srcVal: F80): void {
  switch (op) {
    case OP_SUBR:
      binop(cpu, OP_SUB, srcVal, dstVal, R);
      break;
    case OP_DIVR:
      binop(cpu, OP_DIV, srcVal, dstVal, R);
      break;
    default:
      binop(cpu, op, dstVal, srcVal, R);
  }
}

/** Memory source kinds. */
export const M_F32 = 0;
export const M_F64 = 1;
export const M_I16 = 2;
export const M_I32 = 3;

/**
 * Reads a memory source operand of the kind into out (exact), setting srcExc to DE for a
 * denormal m32/m64 real. Returns ST_OK or ST_FAULT.
 */
export function readMemSrc(cpu: Cpu, d: Insn, kind: number, out: F80): number {
  const la = cpu.eaOf(d);
  srcExc = 0;
  if (kind === M_F64) {
    const lo = cpu.read(la, 8);
    if (lo === -1) return ST_FAULT;
    const hi = cpu.vh >>> 0;
    if ((hi & 0x7ff00000) === 0 && ((hi & 0xfffff) | lo) !== 0) srcExc = X_DE;
    fromF64Bits(hi, lo, out);
  } else if (kind === M_F32) {
    const v = cpu.read(la, 4);
    if (v === -1) return ST_FAULT;
    if ((v & 0x7f800000) === 0 && (v & 0x7fffff) !== 0) srcExc = X_DE;
    fromF32Bits(v >>> 0, out);
  } else if (kind === M_I16) {
    const v = cpu.read(la, 2);
    if (v === -1) return ST_FAULT;
    const x = (v << 16) >> 16;
    fromInt(x < 0 ? 1 : 0, 0, Math.abs(x), out);
  } else {
    const v = cpu.read(la, 4);
    if (v === -1) return ST_FAULT;
    const x = v | 0;
    fromInt(x < 0 ? 1 : 0, 0, Math.abs(x), out);
  }
  return ST_OK;
}

/** The srcExc of the last readMemSrc (for compare instructions). */
export function lastSrcExc(): number {
  return srcExc;
}

function memForm(cpu: Cpu, d: Insn, op: number, kind: number): number {
  if (fpEnter(cpu) !== ST_OK) return ST_FAULT;
  if (readMemSrc(cpu, d, kind, B) !== ST_OK) return ST_FAULT;
  if (isEmpty(cpu, 0)) return underflow(cpu, 0, false);
  readST(cpu, 0, A);
  arith(cpu, op, A, B);
  srcExc = 0;
  return commit(cpu, 0, false);
}

function memHandler(op: number, kind: number): (cpu: Cpu, d: Insn) => number {
  return (cpu, d) => memForm(cpu, d, op, kind);
}

/** D8 reg: ST(0) = ST(0) op ST(i). */
function st0Handler(op: number): (cpu: Cpu, d: Insn) => number {
  return (cpu, d) => regForm(cpu, op, 0, d.rm & 7, false);
}

/** DC reg / DE reg: ST(i) = ST(i) op ST(0) (the DC/DE encodings name the reversed op). */
function stiHandler(op: number, popAfter: boolean): (cpu: Cpu, d: Insn) => number {
  return (cpu, d) => regForm(cpu, op, d.rm & 7, 0, popAfter);
}

export const ARITH_MEM: readonly ((cpu: Cpu, d: Insn) => number)[][] = [M_F32, M_F64, M_I16, M_I32].map((k) =>
  [OP_ADD, OP_MUL, -1, -1, OP_SUB, OP_SUBR, OP_DIV, OP_DIVR].map((op) => (op < 0 ? () => ST_OK : memHandler(op, k))),
);
export const ARITH_ST0: readonly ((cpu: Cpu, d: Insn) => number)[] = [OP_ADD, OP_MUL, -1, -1, OP_SUB, OP_SUBR, OP_DIV, OP_DIVR].map((op) =>
  op < 0 ? () => ST_OK : st0Handler(op),
);
/** DC /4../7 register forms are FSUBR, FSUB, FDIVR, FDIV of ST(i) by ST(0). */
const DC_OPS = [OP_ADD, OP_MUL, -1, -1, OP_SUBR, OP_SUB, OP_DIVR, OP_DIV];
export const ARITH_STI: readonly ((cpu: Cpu, d: Insn) => number)[] = DC_OPS.map((op) => (op < 0 ? () => ST_OK : stiHandler(op, false)));
export const ARITH_STIP: readonly ((cpu: Cpu, d: Insn) => number)[] = DC_OPS.map((op) => (op < 0 ? () => ST_OK : stiHandler(op, true)));

/** FSQRT. */
export function fsqrt(cpu: Cpu, _d: Insn): number {
  if (fpEnter(cpu) !== ST_OK) return ST_FAULT;
  if (isEmpty(cpu, 0)) return underflow(cpu, 0, false);
  readST(cpu, 0, A);
  res.exc = 0;
  res.c1 = 0;
  const c = classify(A);
  const s = A.se >>> 15;
  if (c === C_UNSUPPORTED) {
    res.exc = X_IE;
    setIndefinite(R);
  } else if (c === C_QNAN || c === C_SNAN) {
    if (c === C_SNAN) res.exc = X_IE;
    copyF(R, A);
    quiet(R);
  } else if (c === C_ZERO) copyF(R, A);
  else if (s !== 0) {
    res.exc = X_IE; // sqrt of a negative number (no DE even for a denormal)
    setIndefinite(R);
  } else if (c === C_INF) copyF(R, A);
  else {
    if (c === C_DENORMAL) res.exc |= X_DE;
    sigOf(A, na);
    sqrtExact(na.e, na.hi, na.lo);
    fromExact(cpu, R);
  }
  return commit(cpu, 0, false);
}
