/**
 * x87 compares (FCOM/FCOMP/FCOMPP/FUCOM(P)(P)/FCOMI/FUCOMI(P)/FICOM/FTST), FXAM, FXCH, FFREE(P),
 * FINCSTP/FDECSTP, FCHS/FABS, the constants, FCMOVcc and the control instructions
 * (FLDCW/FNSTCW/FNSTSW/FNCLEX/FNINIT/FWAIT/FNOP).
 */
import type { Cpu } from '../cpu';
import type { Insn } from '../insn';
import { AF, CF, OF, PF, RAX, SF, ST_FAULT, ST_OK, ZF } from '../constants';
import {
  C_DENORMAL,
  C_INF,
  C_NORMAL,
  C_QNAN,
  C_SNAN,
  C_UNSUPPORTED,
  C_ZERO,
  classify,
  F80,
  RC_DOWN,
  RC_UP,
  RC_ZERO,
  setIndefinite,
  X_DE,
  X_IE,
  X_SF,
} from './float80';
import { M_F32, M_F64, M_I16, M_I32, lastSrcExc, rcOf, readMemSrc } from './arith';
import {
  fpEnter,
  fpEnterNoWait,
  fwaitCheck,
  imMasked,
  isEmpty,
  phys,
  pop,
  pushValue,
  raise,
  readST,
  setC1,
  setCC,
  SW_B,
  SW_ES,
  underflow,
  writeST,
} from './state';

const A = new F80();
const B = new F80();
const IND = new F80();
setIndefinite(IND);

export const CMP_GT = 0;
export const CMP_LT = 1;
export const CMP_EQ = 2;
export const CMP_UN = 3;

/** Exceptions of the last compare; cmpNaN: an operand was a NaN or unsupported (no DE then). */
let cmpExc = 0;
let cmpNaN = false;

/**
 * Compares a with b. unordered: true for FUCOM* (only SNaN/unsupported are invalid).
 * Sets cmpExc (IE, DE).
 */
function compare(a: F80, b: F80, unordered: boolean): number {
  const ca = classify(a);
  const cb = classify(b);
  cmpExc = 0;
  cmpNaN = false;
  if (ca === C_UNSUPPORTED || cb === C_UNSUPPORTED) {
    cmpExc = X_IE;
    cmpNaN = true;
    return CMP_UN;
  }
  if (ca === C_QNAN || ca === C_SNAN || cb === C_QNAN || cb === C_SNAN) {
    if (!unordered || ca === C_SNAN || cb === C_SNAN) cmpExc = X_IE;
    cmpNaN = true;
    return CMP_UN;
  }
  if (ca === C_DENORMAL || cb === C_DENORMAL) cmpExc = X_DE;
  const za = ca === C_ZERO;
  const zb = cb === C_ZERO;
  if (za && zb) return CMP_EQ;
  const sa = a.se >>> 15;
  const sb = b.se >>> 15;
  if (za) return sb ? CMP_GT : CMP_LT;
  if (zb) return sa ? CMP_LT : CMP_GT;
  if (sa !== sb) return sa ? CMP_LT : CMP_GT;
  // same sign, both nonzero finite or infinite: compare magnitudes exactly
  let mag: number;
  if (ca === C_INF || cb === C_INF) mag = ca === cb ? 0 : ca === C_INF ? 1 : -1;
  else {
    // exponents first (normalized, exact), then the exact significands
    const ea = normExp(a);
    const eb = normExp(b);
    if (ea !== eb) mag = ea > eb ? 1 : -1;
    else mag = cmpSig(a, b);
  }
  if (mag === 0) return CMP_EQ;
  if (sa) mag = -mag;
  return mag > 0 ? CMP_GT : CMP_LT;
}

/** The exponent of the top significand bit of a finite nonzero value (denormals normalized). */
function normExp(v: F80): number {
  const e = v.se & 0x7fff;
  return (e === 0 ? 1 : e) - (v.hi !== 0 ? Math.clz32(v.hi) : 32 + Math.clz32(v.lo));
}

/** Compares the normalized significands of two finite nonzero values with equal exponents. */
function cmpSig(a: F80, b: F80): number {
  const na = normSig(a);
  const nah = nh;
  const nbl = normSig(b);
  const nbh = nh;
  if (nah !== nbh) return nah > nbh ? 1 : -1;
  if (na !== nbl) return na > nbl ? 1 : -1;
  return 0;
}
let nh = 0;
function normSig(v: F80): number {
  let hi = v.hi;
  let lo = v.lo;
  const z = hi !== 0 ? Math.clz32(hi) : 32 + Math.clz32(lo);
  if (z === 0) {
    nh = hi;
    return lo;
  }
  if (z < 32) {
    hi = ((hi << z) | (lo >>> (32 - z))) >>> 0;
    lo = (lo << z) >>> 0;
  } else {
    hi = (lo << (z - 32)) >>> 0;
    lo = 0;
  }
  nh = hi;
  return lo;
}

function setCmpCC(cpu: Cpu, r: number): void {
  // C3 C2 C0: > 000, < 001, = 100, unordered 111; C1 = 0
  if (r === CMP_GT) setCC(cpu, 0, 0, 0, 0);
  else if (r === CMP_LT) setCC(cpu, 0, 0, 0, 1);
  else if (r === CMP_EQ) setCC(cpu, 1, 0, 0, 0);
  else setCC(cpu, 1, 1, 0, 1);
}

/** Commits a compare: the codes are set even when IE/DE is unmasked, but then nothing is popped. */
function finishCmp(cpu: Cpu, r: number, pops: number): number {
  const exc = cmpExc | (cmpNaN ? 0 : lastSrcExcFor);
  raise(cpu, exc);
  setCmpCC(cpu, r);
  if ((exc & ~cpu.fpCw & (X_IE | X_DE)) !== 0) return ST_OK;
  for (let k = 0; k < pops; k++) pop(cpu);
  return ST_OK;
}
let lastSrcExcFor = 0;

function cmpUnderflow(cpu: Cpu, pops: number, eflags: boolean): number {
  // The result is "unordered" whether IE is masked or not; only the pops need the mask.
  raise(cpu, X_IE | X_SF);
  if (eflags) {
    setEflags(cpu, CMP_UN);
    setC1(cpu, 0);
  } else setCmpCC(cpu, CMP_UN);
  if (!imMasked(cpu)) return ST_OK;
  for (let k = 0; k < pops; k++) pop(cpu);
  return ST_OK;
}

function fcomReg(cpu: Cpu, i: number, pops: number, unordered: boolean): number {
  if (fpEnter(cpu) !== ST_OK) return ST_FAULT;
  if (isEmpty(cpu, 0) || isEmpty(cpu, i)) return cmpUnderflow(cpu, pops, false);
  readST(cpu, 0, A);
  readST(cpu, i, B);
  lastSrcExcFor = 0;
  return finishCmp(cpu, compare(A, B, unordered), pops);
}

function fcomMem(cpu: Cpu, d: Insn, kind: number, pops: number): number {
  if (fpEnter(cpu) !== ST_OK) return ST_FAULT;
  if (readMemSrc(cpu, d, kind, B) !== ST_OK) return ST_FAULT;
  if (isEmpty(cpu, 0)) return cmpUnderflow(cpu, pops, false);
  readST(cpu, 0, A);
  const r = compare(A, B, false);
  lastSrcExcFor = lastSrcExc();
  const st = finishCmp(cpu, r, pops);
  lastSrcExcFor = 0;
  return st;
}

function setEflags(cpu: Cpu, r: number): void {
  const f = cpu.settleFlags() & ~(ZF | PF | CF | OF | SF | AF);
  cpu.flags = f | (r === CMP_LT ? CF : r === CMP_EQ ? ZF : r === CMP_UN ? ZF | PF | CF : 0);
}

function fcomi(cpu: Cpu, d: Insn, popAfter: boolean, unordered: boolean): number {
  if (fpEnter(cpu) !== ST_OK) return ST_FAULT;
  const i = d.rm & 7;
  if (isEmpty(cpu, 0) || isEmpty(cpu, i)) return cmpUnderflow(cpu, popAfter ? 1 : 0, true);
  readST(cpu, 0, A);
  readST(cpu, i, B);
  const r = compare(A, B, unordered);
  raise(cpu, cmpExc);
  setEflags(cpu, r);
  if ((cmpExc & ~cpu.fpCw & (X_IE | X_DE)) !== 0) return ST_OK;
  if (popAfter) pop(cpu);
  return ST_OK;
}

const ZERO = new F80();

function ftst(cpu: Cpu, _d: Insn): number {
  if (fpEnter(cpu) !== ST_OK) return ST_FAULT;
  if (isEmpty(cpu, 0)) return cmpUnderflow(cpu, 0, false);
  readST(cpu, 0, A);
  lastSrcExcFor = 0;
  return finishCmp(cpu, compare(A, ZERO, false), 0);
}

function fxam(cpu: Cpu, _d: Insn): number {
  if (fpEnter(cpu) !== ST_OK) return ST_FAULT;
  readST(cpu, 0, A);
  const sign = A.se >>> 15;
  if (isEmpty(cpu, 0)) {
    setCC(cpu, 1, 0, sign, 1);
    return ST_OK;
  }
  const c = classify(A);
  // C3 C2 C0: unsupported 000, NaN 001, normal 010, infinity 011, zero 100, denormal 110
  switch (c) {
    case C_UNSUPPORTED:
      setCC(cpu, 0, 0, sign, 0);
      break;
    case C_QNAN:
    case C_SNAN:
      setCC(cpu, 0, 0, sign, 1);
      break;
    case C_NORMAL:
      setCC(cpu, 0, 1, sign, 0);
      break;
    case C_INF:
      setCC(cpu, 0, 1, sign, 1);
      break;
    case C_ZERO:
      setCC(cpu, 1, 0, sign, 0);
      break;
    default:
      setCC(cpu, 1, 1, sign, 0);
  }
  return ST_OK;
}

// ------------------------------------------------------------------ stack manipulation

function fxch(cpu: Cpu, d: Insn): number {
  if (fpEnter(cpu) !== ST_OK) return ST_FAULT;
  const i = d.rm & 7;
  const e0 = isEmpty(cpu, 0);
  const ei = isEmpty(cpu, i);
  if (e0 || ei) {
    raise(cpu, X_IE | X_SF);
    setC1(cpu, 0);
    if (!imMasked(cpu)) return ST_OK;
    if (e0) writeST(cpu, 0, IND);
    if (ei) writeST(cpu, i, IND);
  }
  readST(cpu, 0, A);
  readST(cpu, i, B);
  writeST(cpu, 0, B);
  writeST(cpu, i, A);
  setC1(cpu, 0);
  return ST_OK;
}

function ffree(cpu: Cpu, d: Insn): number {
  if (fpEnter(cpu) !== ST_OK) return ST_FAULT;
  cpu.fpTag |= 3 << (2 * phys(cpu, d.rm & 7));
  setC1(cpu, 0);
  return ST_OK;
}

function ffreep(cpu: Cpu, d: Insn): number {
  if (fpEnter(cpu) !== ST_OK) return ST_FAULT;
  cpu.fpTag |= 3 << (2 * phys(cpu, d.rm & 7));
  setC1(cpu, 0);
  pop(cpu);
  return ST_OK;
}

function fincstp(cpu: Cpu, _d: Insn): number {
  if (fpEnter(cpu) !== ST_OK) return ST_FAULT;
  cpu.fpTop = (cpu.fpTop + 1) & 7;
  setC1(cpu, 0);
  return ST_OK;
}

function fdecstp(cpu: Cpu, _d: Insn): number {
  if (fpEnter(cpu) !== ST_OK) return ST_FAULT;
  cpu.fpTop = (cpu.fpTop - 1) & 7;
  setC1(cpu, 0);
  return ST_OK;
}

function signOp(cpu: Cpu, abs: boolean): number {
  if (fpEnter(cpu) !== ST_OK) return ST_FAULT;
  if (isEmpty(cpu, 0)) return underflow(cpu, 0, false);
  readST(cpu, 0, A);
  A.se = abs ? A.se & 0x7fff : A.se ^ 0x8000;
  writeST(cpu, 0, A);
  setC1(cpu, 0);
  return ST_OK;
}

const fchs = (cpu: Cpu, _d: Insn): number => signOp(cpu, false);
const fabs = (cpu: Cpu, _d: Insn): number => signOp(cpu, true);

// ------------------------------------------------------------------ constants

/*
 * The constants as the x87 holds them: 64-bit significand + whether the exact value lies above
 * it (then RC = up rounds up) or below it by more than half (RC nearest rounds up too; the
 * significands below are already the round-to-nearest ones where noted).
 *  value      significand (trunc)    next bits     exp
 *  log2(10)   D49A784B CD1B8AFE      0x49...       0x4000
 *  log2(e)    B8AA3B29 5C17F0BB      0xBE... (rn up)  0x3FFF
 *  pi         C90FDAA2 2168C234      0xC4... (rn up)  0x4000
 *  log10(2)   9A209A84 FBCFF798      0x8F... (rn up)  0x3FFD
 *  ln(2)      B17217F7 D1CF79AB      0xC9... (rn up)  0x3FFE
 */
const K_SE = [0x4000, 0x3fff, 0x4000, 0x3ffd, 0x3ffe];
const K_HI = [0xd49a784b, 0xb8aa3b29, 0xc90fdaa2, 0x9a209a84, 0xb17217f7];
const K_LO = [0xcd1b8afe, 0x5c17f0bb, 0x2168c234, 0xfbcff798, 0xd1cf79ab];
/** 1 when round-to-nearest rounds the truncated significand up. */
const K_RN_UP = [0, 1, 1, 1, 1];
const KV = new F80();

function fldConst(cpu: Cpu, k: number): number {
  if (fpEnter(cpu) !== ST_OK) return ST_FAULT;
  KV.se = K_SE[k];
  KV.hi = K_HI[k];
  let lo = K_LO[k];
  const rc = rcOf(cpu);
  if ((rc === 0 && K_RN_UP[k]) || rc === RC_UP) lo += 1;
  void RC_DOWN;
  void RC_ZERO;
  KV.lo = lo >>> 0;
  pushValue(cpu, KV);
  return ST_OK;
}

function fld1(cpu: Cpu, _d: Insn): number {
  if (fpEnter(cpu) !== ST_OK) return ST_FAULT;
  KV.se = 0x3fff;
  KV.hi = 0x80000000;
  KV.lo = 0;
  pushValue(cpu, KV);
  return ST_OK;
}

function fldz(cpu: Cpu, _d: Insn): number {
  if (fpEnter(cpu) !== ST_OK) return ST_FAULT;
  KV.se = 0;
  KV.hi = 0;
  KV.lo = 0;
  pushValue(cpu, KV);
  return ST_OK;
}

// ------------------------------------------------------------------ FCMOVcc

function fcmov(cpu: Cpu, d: Insn): number {
  if (fpEnter(cpu) !== ST_OK) return ST_FAULT;
  const i = d.rm & 7;
  // DA: B E BE U (ModRM.reg 0..3); DB: NB NE NBE NU
  const k = d.reg & 3;
  let c = k === 0 ? cpu.cf() : k === 1 ? cpu.zf() : k === 2 ? cpu.cf() | cpu.zf() : cpu.pf();
  if (d.opcode === 0xdb) c ^= 1;
  if (isEmpty(cpu, 0) || isEmpty(cpu, i)) return underflow(cpu, 0, false);
  if (c) {
    readST(cpu, i, A);
    writeST(cpu, 0, A);
  }
  return ST_OK;
}

// ------------------------------------------------------------------ control

/** The control word as loaded: bits 7 and 13-15 read as 0, bit 6 as 1. */
export function cwValue(v: number): number {
  return (v & 0x1f3f) | 0x40;
}

/** Recomputes ES and B from the flags and the masks (after FLDCW, FLDENV, FRSTOR...). */
export function updateES(cpu: Cpu): void {
  if ((cpu.fpSw & 0x3f & ~cpu.fpCw) !== 0) cpu.fpSw |= SW_ES | SW_B;
  else cpu.fpSw &= ~(SW_ES | SW_B);
}

function fldcw(cpu: Cpu, d: Insn): number {
  if (fpEnter(cpu) !== ST_OK) return ST_FAULT;
  const v = cpu.read(cpu.eaOf(d), 2);
  if (v === -1) return ST_FAULT;
  cpu.fpCw = cwValue(v);
  updateES(cpu);
  return ST_OK;
}

function fnstcw(cpu: Cpu, d: Insn): number {
  if (fpEnterNoWait(cpu) !== ST_OK) return ST_FAULT;
  return cpu.write(cpu.eaOf(d), 2, cpu.fpCw, 0);
}

/** The status word with TOP. */
export function statusWord(cpu: Cpu): number {
  return ((cpu.fpSw & ~0x3800) | ((cpu.fpTop & 7) << 11)) & 0xffff;
}

function fnstswM(cpu: Cpu, d: Insn): number {
  if (fpEnterNoWait(cpu) !== ST_OK) return ST_FAULT;
  return cpu.write(cpu.eaOf(d), 2, statusWord(cpu), 0);
}

function fnstswAx(cpu: Cpu, _d: Insn): number {
  if (fpEnterNoWait(cpu) !== ST_OK) return ST_FAULT;
  cpu.setReg(RAX, 2, statusWord(cpu), 0);
  return ST_OK;
}

function fnclex(cpu: Cpu, _d: Insn): number {
  if (fpEnterNoWait(cpu) !== ST_OK) return ST_FAULT;
  cpu.fpSw &= ~0x80ff;
  return ST_OK;
}

/** FNINIT state (also used by FNSAVE). */
export function fpInit(cpu: Cpu): void {
  cpu.fpCw = 0x037f;
  cpu.fpSw = 0;
  cpu.fpTop = 0;
  cpu.fpTag = 0xffff;
}

function fninit(cpu: Cpu, _d: Insn): number {
  if (fpEnterNoWait(cpu) !== ST_OK) return ST_FAULT;
  fpInit(cpu);
  return ST_OK;
}

function fwait(cpu: Cpu, _d: Insn): number {
  return fwaitCheck(cpu) !== ST_OK ? ST_FAULT : ST_OK;
}

function fnop(cpu: Cpu, _d: Insn): number {
  return fpEnter(cpu) !== ST_OK ? ST_FAULT : ST_OK;
}

/** FENI/FDISI/FSETPM: no-ops on the 387 and later (no wait check). */
function fnopNoWait(cpu: Cpu, _d: Insn): number {
  return fpEnterNoWait(cpu) !== ST_OK ? ST_FAULT : ST_OK;
}

export const MISC: Readonly<Record<string, (cpu: Cpu, d: Insn) => number>> = {
  fcom: (cpu: Cpu, d: Insn): number => fcomReg(cpu, d.rm & 7, 0, false),
  fcomp: (cpu: Cpu, d: Insn): number => fcomReg(cpu, d.rm & 7, 1, false),
  fcompp: (cpu: Cpu, _d: Insn): number => fcomReg(cpu, 1, 2, false),
  fucom: (cpu: Cpu, d: Insn): number => fcomReg(cpu, d.rm & 7, 0, true),
  fucomp: (cpu: Cpu, d: Insn): number => fcomReg(cpu, d.rm & 7, 1, true),
  fucompp: (cpu: Cpu, _d: Insn): number => fcomReg(cpu, 1, 2, true),
  fcomM32: (cpu: Cpu, d: Insn): number => fcomMem(cpu, d, M_F32, 0),
  fcompM32: (cpu: Cpu, d: Insn): number => fcomMem(cpu, d, M_F32, 1),
  fcomM64: (cpu: Cpu, d: Insn): number => fcomMem(cpu, d, M_F64, 0),
  fcompM64: (cpu: Cpu, d: Insn): number => fcomMem(cpu, d, M_F64, 1),
  ficomM16: (cpu: Cpu, d: Insn): number => fcomMem(cpu, d, M_I16, 0),
  ficompM16: (cpu: Cpu, d: Insn): number => fcomMem(cpu, d, M_I16, 1),
  ficomM32: (cpu: Cpu, d: Insn): number => fcomMem(cpu, d, M_I32, 0),
  ficompM32: (cpu: Cpu, d: Insn): number => fcomMem(cpu, d, M_I32, 1),
  fcomi: (cpu: Cpu, d: Insn): number => fcomi(cpu, d, false, false),
  fcomip: (cpu: Cpu, d: Insn): number => fcomi(cpu, d, true, false),
  fucomi: (cpu: Cpu, d: Insn): number => fcomi(cpu, d, false, true),
  fucomip: (cpu: Cpu, d: Insn): number => fcomi(cpu, d, true, true),
  ftst,
  fxam,
  fxch,
  ffree,
  ffreep,
  fincstp,
  fdecstp,
  fchs,
  fabs,
  fld1,
  fldz,
  fldl2t: (cpu: Cpu, _d: Insn): number => fldConst(cpu, 0),
  fldl2e: (cpu: Cpu, _d: Insn): number => fldConst(cpu, 1),
  fldpi: (cpu: Cpu, _d: Insn): number => fldConst(cpu, 2),
  fldlg2: (cpu: Cpu, _d: Insn): number => fldConst(cpu, 3),
  fldln2: (cpu: Cpu, _d: Insn): number => fldConst(cpu, 4),
  fcmov,
  fldcw,
  fnstcw,
  fnstswM,
  fnstswAx,
  fnclex,
  fninit,
  fwait,
  fnop,
  fnopNoWait,
};
