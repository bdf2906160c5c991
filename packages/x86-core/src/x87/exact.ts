/**
 * Exact x87 addition, subtraction, multiplication and division on the 64-bit significands
 * (no BigInt: 32-bit words, 16-bit limbs for products). The result goes to roundPack with its
 * guard bit and sticky bit, so it is rounded once, exactly as the hardware rounds, for every
 * precision control (24/53/64 bits) and rounding mode.
 *
 * Operands: sign, unbiased exponent E of the top bit, and (hi, lo) with hi bit 31 set.
 */
import { rin, roundPack } from './float80';

/** Unrounded result: value = (hi:lo . guard sticky) * 2^(e - 63). */
const xr = { s: 0, e: 0, hi: 0, lo: 0, guard: 0, sticky: false };

const TWO32 = 4294967296;
const L = new Float64Array(8);
const C = new Float64Array(8);

/** Rounds the unrounded result into rp (float80.ts). */
export function packExact(p: number, rc: number, fmt: number, oeUnmasked: boolean, ueUnmasked: boolean): void {
  rin.guard = xr.guard;
  roundPack(xr.s, xr.e, xr.hi, xr.lo, xr.sticky, p, rc, fmt, oeUnmasked, ueUnmasked);
}

/** a * b (signs combined by the caller into s). */
export function mulExact(s: number, ae: number, ah: number, al: number, be: number, bh: number, bl: number): void {
  const a0 = al & 0xffff;
  const a1 = al >>> 16;
  const a2 = ah & 0xffff;
  const a3 = ah >>> 16;
  const b0 = bl & 0xffff;
  const b1 = bl >>> 16;
  const b2 = bh & 0xffff;
  const b3 = bh >>> 16;
  C[0] = a0 * b0;
  C[1] = a0 * b1 + a1 * b0;
  C[2] = a0 * b2 + a1 * b1 + a2 * b0;
  C[3] = a0 * b3 + a1 * b2 + a2 * b1 + a3 * b0;
  C[4] = a1 * b3 + a2 * b2 + a3 * b1;
  C[5] = a2 * b3 + a3 * b2;
  C[6] = a3 * b3;
  C[7] = 0;
  let carry = 0;
  for (let k = 0; k < 8; k++) {
    const t = C[k] + carry;
    carry = Math.floor(t / 65536);
    L[k] = t - carry * 65536;
  }
  let e = ae + be;
  if (L[7] >= 0x8000) e += 1;
  else {
    // shift the 128-bit product left by one
    let c = 0;
    for (let k = 0; k < 8; k++) {
      const t = L[k] * 2 + c;
      c = t >= 65536 ? 1 : 0;
      L[k] = t - c * 65536;
    }
  }
  xr.s = s;
  xr.e = e;
  xr.hi = (L[7] * 65536 + L[6]) >>> 0;
  xr.lo = (L[5] * 65536 + L[4]) >>> 0;
  xr.guard = L[3] >= 0x8000 ? 1 : 0;
  xr.sticky = (L[3] & 0x7fff) !== 0 || L[2] !== 0 || L[1] !== 0 || L[0] !== 0;
}

/** b shifted right by d into three words (w2 w1 w0) + sticky. */
let w2 = 0;
let w1 = 0;
let w0 = 0;
let wst = false;
function shr96(hi: number, lo: number, d: number): void {
  wst = false;
  if (d === 0) {
    w2 = hi;
    w1 = lo;
    w0 = 0;
  } else if (d < 32) {
    w0 = (lo << (32 - d)) >>> 0;
    w1 = ((lo >>> d) | (hi << (32 - d))) >>> 0;
    w2 = hi >>> d;
  } else if (d === 32) {
    w0 = lo;
    w1 = hi;
    w2 = 0;
  } else if (d < 64) {
    const k = d - 32;
    wst = (lo << (32 - k)) !== 0;
    w0 = ((lo >>> k) | (hi << (32 - k))) >>> 0;
    w1 = hi >>> k;
    w2 = 0;
  } else if (d === 64) {
    wst = lo !== 0;
    w0 = hi;
    w1 = 0;
    w2 = 0;
  } else if (d < 96) {
    const k = d - 64;
    wst = lo !== 0 || (hi << (32 - k)) !== 0;
    w0 = hi >>> k;
    w1 = 0;
    w2 = 0;
  } else {
    wst = true;
    w0 = w1 = w2 = 0;
  }
}

/**
 * a + b with signs (as, bs). Returns false when the exact result is zero (the caller chooses
 * the zero's sign).
 */
export function addExact(as: number, ae: number, ah: number, al: number, bs: number, be: number, bh: number, bl: number): boolean {
  // order by magnitude: a >= b
  if (be > ae || (be === ae && (bh > ah || (bh === ah && bl > al)))) {
    let t = as;
    as = bs;
    bs = t;
    t = ae;
    ae = be;
    be = t;
    t = ah;
    ah = bh;
    bh = t;
    t = al;
    al = bl;
    bl = t;
  }
  shr96(bh, bl, ae - be);
  let x0: number;
  let x1: number;
  let x2: number;
  let sticky = wst;
  let e = ae;
  if (as === bs) {
    x0 = w0;
    x1 = al + w1;
    const c = x1 >= TWO32 ? 1 : 0;
    x1 -= c * TWO32;
    x2 = ah + w2 + c;
    if (x2 >= TWO32) {
      x2 -= TWO32;
      // carry out: shift right by one, the top bit becomes 1
      sticky = sticky || (x0 & 1) !== 0;
      x0 = ((x0 >>> 1) | ((x1 & 1) << 31)) >>> 0;
      x1 = ((x1 >>> 1) | ((x2 & 1) << 31)) >>> 0;
      x2 = ((x2 >>> 1) | 0x80000000) >>> 0;
      e += 1;
    }
  } else {
    // a - b - (sticky ? one unit below w0 : 0)
    x0 = 0 - w0 - (sticky ? 1 : 0);
    let br = 0;
    if (x0 < 0) {
      x0 += TWO32;
      br = 1;
    }
    x1 = al - w1 - br;
    br = 0;
    if (x1 < 0) {
      x1 += TWO32;
      br = 1;
    }
    x2 = ah - w2 - br;
    if (x2 === 0 && x1 === 0 && x0 === 0 && !sticky) return false;
    // normalize left
    let z: number;
    if (x2 !== 0) z = Math.clz32(x2);
    else if (x1 !== 0) z = 32 + Math.clz32(x1);
    else z = 64 + Math.clz32(x0);
    while (z >= 32) {
      x2 = x1;
      x1 = x0;
      x0 = 0;
      z -= 32;
      e -= 32;
    }
    if (z > 0) {
      x2 = ((x2 << z) | (x1 >>> (32 - z))) >>> 0;
      x1 = ((x1 << z) | (x0 >>> (32 - z))) >>> 0;
      x0 = (x0 << z) >>> 0;
      e -= z;
    }
  }
  xr.s = as;
  xr.e = e;
  xr.hi = x2 >>> 0;
  xr.lo = x1 >>> 0;
  xr.guard = x0 >>> 31;
  xr.sticky = sticky || (x0 & 0x7fffffff) !== 0;
  return true;
}

/** a / b (signs combined by the caller into s): restoring division, 64 bits + guard + sticky. */
export function divExact(s: number, ae: number, ah: number, al: number, be: number, bh: number, bl: number): void {
  // r = a (65-bit with rc), quotient bits
  let rc = 0;
  let rh = ah;
  let rl = al;
  let e = ae - be;
  if (ah < bh || (ah === bh && al < bl)) {
    // a < b: start from 2a
    rc = rh >>> 31;
    rh = ((rh << 1) | (rl >>> 31)) >>> 0;
    rl = (rl << 1) >>> 0;
    e -= 1;
  }
  let qh = 0;
  let ql = 0;
  let guard = 0;
  for (let i = 0; i < 65; i++) {
    let bit = 0;
    if (rc !== 0 || rh > bh || (rh === bh && rl >= bl)) {
      let nl = rl - bl;
      let nh = rh - bh;
      if (nl < 0) {
        nl += TWO32;
        nh -= 1;
      }
      if (nh < 0) nh += TWO32; // the carry bit absorbs the borrow
      rh = nh >>> 0;
      rl = nl >>> 0;
      bit = 1;
    }
    if (i < 64) {
      qh = ((qh << 1) | (ql >>> 31)) >>> 0;
      ql = ((ql << 1) | bit) >>> 0;
    } else guard = bit;
    rc = rh >>> 31;
    rh = ((rh << 1) | (rl >>> 31)) >>> 0;
    rl = (rl << 1) >>> 0;
  }
  xr.s = s;
  xr.e = e;
  xr.hi = qh;
  xr.lo = ql;
  xr.guard = guard;
  xr.sticky = rc !== 0 || rh !== 0 || rl !== 0;
}

/** 3-word (96-bit) helpers for the square root: words [2] high .. [0] low. */
const REM = new Float64Array(3);
const ROOT = new Float64Array(3);
const TRIAL = new Float64Array(3);

/** v = v * 2^k + add (k = 1 or 2), modulo 2^96. */
function shl3(v: Float64Array, k: number, add: number): void {
  const m = k === 1 ? 2 : 4;
  let c = add;
  for (let i = 0; i < 3; i++) {
    const t = v[i] * m + c;
    c = Math.floor(t / TWO32);
    v[i] = t - c * TWO32;
  }
}

/**
 * sqrt(a) for a positive finite nonzero a: digit-by-digit square root of sig * 2^j giving 65
 * root bits (64 + guard) and the remainder as sticky.
 */
export function sqrtExact(ae: number, ah: number, al: number): void {
  const k = ae - 63; // value = sig * 2^k
  const j = (k & 1) === 0 ? 66 : 65; // k - j even
  REM.fill(0);
  ROOT.fill(0);
  for (let i = 64; i >= 0; i--) {
    // the pair of radicand bits (2i + 1, 2i) of N = sig * 2^j
    let pair = 0;
    for (let b = 2 * i + 1; b >= 2 * i; b--) {
      const s = b - j;
      const bit = s >= 0 && s < 64 ? (s >= 32 ? (ah >>> (s - 32)) & 1 : (al >>> s) & 1) : 0;
      pair = pair * 2 + bit;
    }
    shl3(REM, 2, pair);
    TRIAL[0] = ROOT[0];
    TRIAL[1] = ROOT[1];
    TRIAL[2] = ROOT[2];
    shl3(TRIAL, 2, 1);
    const ge = REM[2] > TRIAL[2] || (REM[2] === TRIAL[2] && (REM[1] > TRIAL[1] || (REM[1] === TRIAL[1] && REM[0] >= TRIAL[0])));
    if (ge) {
      let br = 0;
      for (let w = 0; w < 3; w++) {
        let t = REM[w] - TRIAL[w] - br;
        br = 0;
        if (t < 0) {
          t += TWO32;
          br = 1;
        }
        REM[w] = t;
      }
    }
    shl3(ROOT, 1, ge ? 1 : 0);
  }
  // ROOT = Q in [2^64, 2^65): significand Q >> 1, guard Q & 1; value = Q * 2^((k - j) / 2)
  xr.s = 0;
  xr.e = 64 + (k - j) / 2;
  xr.hi = (((ROOT[2] & 1) << 31) | (ROOT[1] >>> 1)) >>> 0;
  xr.lo = (((ROOT[1] & 1) << 31) | (ROOT[0] >>> 1)) >>> 0;
  xr.guard = ROOT[0] & 1;
  xr.sticky = REM[0] !== 0 || REM[1] !== 0 || REM[2] !== 0;
}

/**
 * Loads an exact value (sign s, exponent e, normalized hi:lo) that is then moved by a tiny
 * amount in the direction err (-1: just below in magnitude, +1: just above), as for sin(t) or
 * tan(t) of a tiny t. Only the rounding needs the direction.
 */
export function setNudged(s: number, e: number, hi: number, lo: number, err: number): void {
  xr.s = s;
  xr.e = e;
  xr.hi = hi;
  xr.lo = lo;
  xr.guard = 0;
  xr.sticky = err !== 0;
  if (err < 0) nudgeDown();
}

/** The unrounded result minus a tiny amount (when it is exact; otherwise it only stays inexact). */
export function nudgeDownExact(): void {
  if (xr.guard === 0 && !xr.sticky) nudgeDown();
  xr.sticky = true;
}

function nudgeDown(): void {
  // (hi:lo) - one unit, with all ones below: guard 1, sticky
  if (xr.lo === 0) {
    xr.lo = 0xffffffff;
    xr.hi = (xr.hi - 1) >>> 0;
  } else xr.lo = (xr.lo - 1) >>> 0;
  xr.guard = 1;
  xr.sticky = true;
  if (xr.hi < 0x80000000) {
    // 2^63 - 1 ulp: renormalize (shift left by one, the guard moves in)
    xr.hi = ((xr.hi << 1) | (xr.lo >>> 31)) >>> 0;
    xr.lo = ((xr.lo << 1) | 1) >>> 0;
    xr.e -= 1;
  }
}
