/**
 * The 80-bit extended format without BigInt: a value is (se, hi, lo) = sign and 15-bit biased
 * exponent, then the 64-bit significand as two uint32 halves (explicit integer bit = hi bit 31).
 *
 * Two kinds of helpers live here:
 *  - exact ones on the raw format: classification, rounding a 64-bit significand (plus guard
 *    and sticky bits) to 24/53/64 bits in any rounding mode into the extended, double or
 *    single format (denormals, overflow, the x87's biased results for unmasked OE/UE), integer
 *    conversions; the exact arithmetic itself is in exact.ts;
 *  - the "working form" used by the transcendentals: a finite nonzero value as sign, a double
 *    m in [1, 2) and an integer exponent E (value = m * 2^E), so the full 15-bit exponent range
 *    is kept while the significand is a double (53 bits). Results carry the sign of their
 *    rounding error and are rounded to min(precision control, 53) bits.
 *
 * Everything returns through module-level scratch fields; nothing allocates.
 */

/** One 80-bit value. hi/lo are kept unsigned (>>> 0). */
export class F80 {
  se = 0;
  hi = 0;
  lo = 0;
}

export function copyF(dst: F80, src: F80): void {
  dst.se = src.se;
  dst.hi = src.hi;
  dst.lo = src.lo;
}

export function setF(dst: F80, se: number, hi: number, lo: number): void {
  dst.se = se & 0xffff;
  dst.hi = hi >>> 0;
  dst.lo = lo >>> 0;
}

// Classes (FXAM order is separate, see fxamCode).
export const C_ZERO = 0;
export const C_NORMAL = 1;
export const C_DENORMAL = 2; // exponent 0, significand != 0 (incl. pseudo-denormals)
export const C_INF = 3;
export const C_QNAN = 4;
export const C_SNAN = 5;
export const C_UNSUPPORTED = 6; // unnormals, pseudo-NaN, pseudo-infinity

export function classify(v: F80): number {
  const e = v.se & 0x7fff;
  if (e === 0) return v.hi === 0 && v.lo === 0 ? C_ZERO : C_DENORMAL;
  if ((v.hi & 0x80000000) === 0) return C_UNSUPPORTED;
  if (e === 0x7fff) {
    if ((v.hi & 0x7fffffff) === 0 && v.lo === 0) return C_INF;
    return v.hi & 0x40000000 ? C_QNAN : C_SNAN;
  }
  return C_NORMAL;
}

/** Tag of a value in a register: 0 valid, 1 zero, 2 special. */
export function tagOf(v: F80): number {
  const c = classify(v);
  return c === C_NORMAL ? 0 : c === C_ZERO ? 1 : 2;
}

export function isNaNClass(c: number): boolean {
  return c === C_QNAN || c === C_SNAN;
}

/** The x87 "real indefinite" QNaN. */
export const IND_SE = 0xffff;
export const IND_HI = 0xc0000000;

export function setIndefinite(v: F80): void {
  v.se = IND_SE;
  v.hi = IND_HI;
  v.lo = 0;
}

// ------------------------------------------------------------------ powers of two

const POW2 = /*#__PURE__*/ (() => {
  const t = new Float64Array(2200);
  let x = 1;
  for (let k = 0; k <= 1023; k++, x *= 2) t[1100 + k] = x;
  x = 1;
  for (let k = 0; k <= 1074; k++, x /= 2) t[1100 - k] = x;
  return t;
})();

/** 2^k for integer k in [-1074, 1023]. */
export function pow2(k: number): number {
  return POW2[1100 + k];
}

// ------------------------------------------------------------------ rounding (exact)

/** Rounding control values (FCW bits 10-11). */
export const RC_NEAREST = 0;
export const RC_DOWN = 1;
export const RC_UP = 2;
export const RC_ZERO = 3;

/** Target formats for roundPack. */
export const FMT_EXT = 0;
export const FMT_DBL = 1;
export const FMT_SGL = 2;
const EMIN = [-16382, -1022, -126];
const EMAX = [16383, 1023, 127];
const BIAS = [16383, 1023, 127];

/** Outputs of roundPack and friends. */
export const rp = {
  /** Result: for FMT_EXT se/hi/lo of the 80-bit value; for DBL hi/lo of the binary64; SGL in lo. */
  se: 0,
  hi: 0,
  lo: 0,
  /** Exception bits raised: PE 0x20, UE 0x10, OE 0x08. */
  exc: 0,
  /** 1 when the magnitude was rounded up (C1). */
  up: 0,
};

export const X_IE = 0x01;
export const X_DE = 0x02;
export const X_ZE = 0x04;
export const X_OE = 0x08;
export const X_UE = 0x10;
export const X_PE = 0x20;
export const X_SF = 0x40;

/** Input of roundPack: the guard bit below lo (the bit after the 64-bit significand); reset by each call. */
export const rin = { guard: 0 };

/** The x87's exponent bias adjustment for unmasked overflow/underflow results (extended). */
const WRAP = 24576;

/**
 * Rounds the value (-1)^sign * (hi:lo) * 2^(E - 63) (+ a nonzero tail below lo when sticky)
 * to p significand bits (24, 53, 64) in rounding mode rc and encodes it in fmt. hi bit 31 must
 * be set. wrapUnmasked: when the overflow/underflow exception is unmasked, produce the x87's
 * wrapped result (exponent -/+ 24576, extended format only) and flag OE/UE; otherwise the masked
 * response (infinity/largest finite, denormals). Sets rp.
 */
export function roundPack(sign: number, E: number, hi: number, lo: number, sticky: boolean, p: number, rc: number, fmt: number, oeUnmasked: boolean, ueUnmasked: boolean): void {
  const emin = EMIN[fmt];
  const emax = EMAX[fmt];
  let exc = 0;
  let tiny = false;
  let wrapped = 0;
  let guard = rin.guard;
  rin.guard = 0;
  if (E < emin) {
    // Tininess after rounding: a value just below 2^emin that rounds up to it is not tiny.
    tiny = !(E === emin - 1 && carriesOut(sign, hi, lo, sticky, guard, p, rc));
    if (ueUnmasked && fmt === FMT_EXT && E + WRAP < emin) {
      // too small even for the wrapped exponent: a signed zero, UE and PE
      rp.exc = X_UE | X_PE;
      rp.up = 0;
      encode(sign, 0, 0, 0, fmt);
      return;
    }
    if (ueUnmasked && fmt === FMT_EXT) {
      E += WRAP;
      wrapped = 1;
    } else {
      // Denormalize to emin: guard = the highest bit shifted out, sticky = the rest.
      const d = emin - E;
      sticky = sticky || guard !== 0;
      guard = 0;
      if (d >= 65) {
        sticky = sticky || hi !== 0 || lo !== 0;
        hi = 0;
        lo = 0;
      } else if (d === 64) {
        guard = hi >>> 31;
        sticky = sticky || (hi & 0x7fffffff) !== 0 || lo !== 0;
        hi = 0;
        lo = 0;
      } else if (d > 32) {
        guard = (hi >>> (d - 33)) & 1;
        sticky = sticky || lo !== 0 || (d > 33 && (hi & ((1 << (d - 33)) - 1)) !== 0);
        lo = hi >>> (d - 32);
        hi = 0;
      } else if (d === 32) {
        guard = lo >>> 31;
        sticky = sticky || (lo & 0x7fffffff) !== 0;
        lo = hi;
        hi = 0;
      } else if (d > 0) {
        guard = (lo >>> (d - 1)) & 1;
        sticky = sticky || (d > 1 && (lo & ((1 << (d - 1)) - 1)) !== 0);
        lo = ((lo >>> d) | (hi << (32 - d))) >>> 0;
        hi = hi >>> d;
      }
      E = emin;
    }
  }
  // Round at bit r = 64 - p (for r > 0 the bits shifted out by denormalization are all sticky).
  const r = 64 - p;
  if (r > 0 && guard) sticky = true;
  let rem = 0;
  let lsb: number;
  if (r === 0) lsb = lo & 1;
  else if (r < 32) {
    rem = lo & ((1 << r) - 1);
    lsb = (lo >>> r) & 1;
    lo = (lo & ~((1 << r) - 1)) >>> 0;
  } else {
    const mh = r === 32 ? 0 : (1 << (r - 32)) - 1;
    rem = (hi & mh) * 4294967296 + lo;
    lsb = r === 32 ? hi & 1 : (hi >>> (r - 32)) & 1;
    hi = (hi & ~mh) >>> 0;
    lo = 0;
  }
  const inexact = rem !== 0 || sticky || (r === 0 && guard !== 0);
  let up = false;
  if (inexact) {
    if (rc === RC_NEAREST) {
      if (r === 0) up = guard !== 0 && (sticky || lsb === 1);
      else {
        const half = pow2(r - 1);
        up = rem > half || (rem === half && (sticky || lsb === 1));
      }
    } else if (rc === RC_UP) up = sign === 0;
    else if (rc === RC_DOWN) up = sign !== 0;
    exc |= X_PE;
  }
  if (up) {
    if (r < 32) {
      const s = lo + (r === 0 ? 1 : 1 << r) * 1;
      if (s >= 4294967296) {
        lo = s - 4294967296;
        hi = hi + 1;
      } else lo = s;
    } else hi = hi + pow2(r - 32);
    if (hi >= 4294967296) {
      hi = 0x80000000;
      lo = 0;
      E++;
    }
    hi >>>= 0;
    lo >>>= 0;
  }
  // Tininess: the x87 detects it before rounding (E below emin); masked UE only when inexact.
  if (tiny) {
    if (wrapped) exc |= X_UE;
    else if (inexact) exc |= X_UE;
  }
  let expField: number;
  if ((hi & 0x80000000) === 0) expField = 0; // denormal or zero
  else expField = E + BIAS[fmt];
  if (E > emax) {
    exc |= X_OE;
    if (oeUnmasked && fmt === FMT_EXT && E - WRAP > emax) {
      // too large even for the wrapped exponent: infinity, OE, PE, C1
      rp.exc = X_OE | X_PE;
      rp.up = 1;
      encode(sign, 2 * BIAS[fmt] + 1, 0x80000000, 0, fmt);
      return;
    }
    if (oeUnmasked && fmt === FMT_EXT) {
      expField = E - WRAP + BIAS[fmt];
    } else {
      exc |= X_PE;
      // Masked overflow: infinity or the largest finite value by rounding direction.
      const toInf = rc === RC_NEAREST || (rc === RC_UP && sign === 0) || (rc === RC_DOWN && sign !== 0);
      up = toInf;
      if (toInf) {
        expField = 2 * BIAS[fmt] + 1;
        hi = 0x80000000;
        lo = 0;
      } else {
        expField = 2 * BIAS[fmt];
        if (p === 64) {
          hi = 0xffffffff;
          lo = 0xffffffff;
        } else if (p > 32) {
          hi = 0xffffffff;
          lo = (0xffffffff << (64 - p)) >>> 0;
        } else {
          hi = (0xffffffff << (32 - p)) >>> 0;
          lo = 0;
        }
      }
    }
  }
  rp.exc = exc;
  rp.up = up ? 1 : 0;
  encode(sign, expField, hi, lo, fmt);
}

/** Whether rounding the normalized significand (hi:lo, sticky) to p bits carries out of bit 63. */
function carriesOut(sign: number, hi: number, lo: number, sticky: boolean, guard: number, p: number, rc: number): boolean {
  const r = 64 - p;
  if (r > 0 && guard) sticky = true;
  // the kept bits must be all ones
  if (r >= 32) {
    const kh = r === 32 ? hi : hi >>> (r - 32);
    if (kh !== (r === 32 ? 0xffffffff : 0xffffffff >>> (r - 32))) return false;
  } else {
    if (hi !== 0xffffffff) return false;
    if (r > 0 && lo >>> r !== 0xffffffff >>> r) return false;
    if (r === 0 && lo !== 0xffffffff) return false;
  }
  let rem = 0;
  if (r > 0 && r < 32) rem = lo & ((1 << r) - 1);
  else if (r >= 32) rem = (r === 32 ? 0 : (hi & ((1 << (r - 32)) - 1)) * 4294967296) + lo;
  const inexact = rem !== 0 || sticky || (r === 0 && guard !== 0);
  if (!inexact) return false;
  if (rc === RC_NEAREST) return r > 0 ? rem >= pow2(r - 1) : guard !== 0;
  if (rc === RC_UP) return sign === 0;
  if (rc === RC_DOWN) return sign !== 0;
  return false;
}

function encode(sign: number, expField: number, hi: number, lo: number, fmt: number): void {
  if (fmt === FMT_EXT) {
    rp.se = (sign << 15) | expField;
    rp.hi = hi >>> 0;
    rp.lo = lo >>> 0;
  } else if (fmt === FMT_DBL) {
    rp.hi = ((sign << 31) | (expField << 20) | ((hi >>> 11) & 0xfffff)) >>> 0;
    rp.lo = ((hi << 21) | (lo >>> 11)) >>> 0;
    rp.se = 0;
  } else {
    rp.lo = ((sign << 31) | (expField << 23) | ((hi >>> 8) & 0x7fffff)) >>> 0;
    rp.hi = 0;
    rp.se = 0;
  }
}

/** Leading-zero count of a 64-bit significand (64 for zero). */
export function clz64(hi: number, lo: number): number {
  return hi !== 0 ? Math.clz32(hi) : 32 + Math.clz32(lo);
}

/** Shifts (hi:lo) left by n (0..63) into norm.hi/lo. */
export const norm = { hi: 0, lo: 0 };
export function shl64(hi: number, lo: number, n: number): void {
  if (n === 0) {
    norm.hi = hi >>> 0;
    norm.lo = lo >>> 0;
  } else if (n < 32) {
    norm.hi = ((hi << n) | (lo >>> (32 - n))) >>> 0;
    norm.lo = (lo << n) >>> 0;
  } else {
    norm.hi = (lo << (n - 32)) >>> 0;
    norm.lo = 0;
  }
}

/**
 * Rounds an 80-bit finite value (any class: normal, denormal, pseudo-denormal) to fmt with
 * precision p; zero stays zero. Used by FST m32/m64 and by the precision control on loads of
 * extended operands. Sets rp. The caller handles NaN/Inf/unsupported.
 */
export function roundF80(v: F80, p: number, rc: number, fmt: number, oeUnmasked: boolean, ueUnmasked: boolean): void {
  const sign = v.se >>> 15;
  let e = v.se & 0x7fff;
  if (v.hi === 0 && v.lo === 0) {
    rp.exc = 0;
    rp.up = 0;
    encode(sign, 0, 0, 0, fmt);
    return;
  }
  if (e === 0) e = 1; // denormals and pseudo-denormals have the exponent of 1
  const z = clz64(v.hi, v.lo);
  shl64(v.hi, v.lo, z);
  roundPack(sign, e - 16383 - z, norm.hi, norm.lo, false, p, rc, fmt, oeUnmasked, ueUnmasked);
}

// ------------------------------------------------------------------ working form

/** A finite nonzero value in working form: (-1)^s * m * 2^e, m in [1, 2); err: sign of (exact - m * 2^e) in magnitude (-1, 0, 1). */
export const w = { s: 0, m: 1, e: 0, err: 0 };

/**
 * Loads a finite nonzero 80-bit value (normal, denormal, pseudo-denormal) into working form
 * into the given slot (the significand is rounded to 53 bits, to nearest).
 */
export function toWork(v: F80, out: { s: number; m: number; e: number }): void {
  let e = v.se & 0x7fff;
  if (e === 0) e = 1;
  out.s = v.se >>> 15;
  const z = clz64(v.hi, v.lo);
  shl64(v.hi, v.lo, z);
  let m = norm.hi * 4294967296 + norm.lo; // rounded to 53 bits, ties to even
  e = e - 16383 - z;
  m *= 1.0842021724855044e-19; // 2^-63, exact
  if (m >= 2) {
    m = 1;
    e++;
  }
  out.m = m;
  out.e = e;
}

const f64 = new Float64Array(1);
const u32 = new Uint32Array(f64.buffer);

/**
 * Normalizes a positive finite double x (not zero) times 2^e into w.m in [1, 2) and w.e.
 */
export function normalize(x: number, e: number): void {
  f64[0] = x;
  const be = (u32[1] >>> 20) & 0x7ff;
  if (be === 0) {
    // subnormal double: scale up first (only reached with tiny intermediate values)
    f64[0] = x * 18446744073709551616; // 2^64
    const b2 = (u32[1] >>> 20) & 0x7ff;
    u32[1] = (u32[1] & 0x800fffff) | (1023 << 20);
    w.m = f64[0];
    w.e = e + b2 - 1023 - 64;
    return;
  }
  u32[1] = (u32[1] & 0x800fffff) | (1023 << 20);
  w.m = f64[0];
  w.e = e + be - 1023;
}

/** Writes the working result w (sign w.s) as an 80-bit value rounded to p bits (<= 53 used). Sets rp. */
export function packWork(p: number, rc: number, oeUnmasked: boolean, ueUnmasked: boolean): void {
  // m * 2^63 as a 64-bit integer: m has 53 significant bits, so the low 11 bits are 0.
  const t = w.m * 2147483648; // m * 2^31
  let hi = Math.floor(t);
  let lo = (t - hi) * 4294967296;
  let sticky = false;
  if (w.err !== 0) {
    sticky = true;
    if (w.err < 0) {
      // exact value is slightly below: (sig - 1) + tail
      if (lo === 0) {
        lo = 0xffffffff;
        hi -= 1;
      } else lo -= 1;
    }
  }
  // hi may now lack bit 31 only if m was exactly 1 and err < 0.
  let E = w.e;
  if (hi < 0x80000000) {
    hi = ((hi << 1) | (lo >>> 31)) >>> 0;
    lo = ((lo << 1) | 1) >>> 0;
    E--;
  }
  roundPack(w.s, E, hi, lo, sticky, p > 53 ? 53 : p, rc, FMT_EXT, oeUnmasked, ueUnmasked);
}

// Dekker's exact product helpers.
const SPLIT = 134217729; // 2^27 + 1

/** Returns the rounding error of a * b (exact: a * b = fl(a * b) + err), for |a|, |b| < 2^500. */
export function mulErr(a: number, b: number, p: number): number {
  let t = SPLIT * a;
  const ah = t - (t - a);
  const al = a - ah;
  t = SPLIT * b;
  const bh = t - (t - b);
  const bl = b - bh;
  return ((ah * bh - p) + ah * bl + al * bh) + al * bl;
}

function sgn(x: number): number {
  return x > 0 ? 1 : x < 0 ? -1 : 0;
}

/** w = a * b (magnitudes and exponents; sign set by the caller). */
export function mulWork(am: number, ae: number, bm: number, be: number): void {
  const p = am * bm;
  const err = mulErr(am, bm, p);
  normalize(p, ae + be);
  w.err = sgn(err);
}

/** The 80-bit value of a finite double x into out (exact). */
export function fromDouble(x: number, out: F80): void {
  f64[0] = x;
  const sign = u32[1] >>> 31;
  const be = (u32[1] >>> 20) & 0x7ff;
  const fh = u32[1] & 0xfffff;
  const fl = u32[0];
  if (be === 0x7ff) {
    out.se = (sign << 15) | 0x7fff;
    out.hi = (0x80000000 | (fh << 11) | (fl >>> 21)) >>> 0;
    out.lo = (fl << 11) >>> 0;
    return;
  }
  if (be === 0) {
    if (fh === 0 && fl === 0) {
      out.se = sign << 15;
      out.hi = 0;
      out.lo = 0;
      return;
    }
    // double denormal: normalize into the extended range
    const hi = ((fh << 11) | (fl >>> 21)) >>> 0;
    const lo = (fl << 11) >>> 0;
    const z = clz64(hi, lo);
    shl64(hi, lo, z);
    out.se = (sign << 15) | (16383 - 1022 - z);
    out.hi = norm.hi;
    out.lo = norm.lo;
    return;
  }
  out.se = (sign << 15) | (be - 1023 + 16383);
  out.hi = (0x80000000 | (fh << 11) | (fl >>> 21)) >>> 0;
  out.lo = (fl << 11) >>> 0;
}

/** The 80-bit value of binary64 bits (hi, lo) into out (exact, NaN payloads kept). */
export function fromF64Bits(hi: number, lo: number, out: F80): void {
  u32[1] = hi;
  u32[0] = lo;
  const be = (hi >>> 20) & 0x7ff;
  if (be === 0x7ff) {
    out.se = ((hi >>> 31) << 15) | 0x7fff;
    out.hi = (0x80000000 | ((hi & 0xfffff) << 11) | (lo >>> 21)) >>> 0;
    out.lo = (lo << 11) >>> 0;
    return;
  }
  fromDouble(f64[0], out);
}

/** The 80-bit value of binary32 bits into out (exact, NaN payloads kept). */
export function fromF32Bits(b: number, out: F80): void {
  const sign = b >>> 31;
  const be = (b >>> 23) & 0xff;
  const f = b & 0x7fffff;
  if (be === 0xff) {
    out.se = (sign << 15) | 0x7fff;
    out.hi = (0x80000000 | (f << 8)) >>> 0;
    out.lo = 0;
  } else if (be === 0) {
    if (f === 0) {
      out.se = sign << 15;
      out.hi = 0;
      out.lo = 0;
    } else {
      const z = Math.clz32(f);
      // f * 2^-149: msb at bit (31 - z)
      out.se = (sign << 15) | (31 - z - 149 + 16383);
      out.hi = (f << z) >>> 0;
      out.lo = 0;
    }
  } else {
    out.se = (sign << 15) | (be - 127 + 16383);
    out.hi = (0x80000000 | (f << 8)) >>> 0;
    out.lo = 0;
  }
}

/** The value of a finite 80-bit number as a double (rounded to nearest; may be 0 or infinite). */
export function toDouble(v: F80): number {
  const c = classify(v);
  const neg = v.se >>> 15 ? -1 : 1;
  if (c === C_ZERO) return neg * 0;
  if (c === C_INF) return neg * Infinity;
  if (c === C_QNAN || c === C_SNAN || c === C_UNSUPPORTED) return NaN;
  toWork(v, ws);
  if (ws.e > 1023) return neg * Infinity;
  if (ws.e >= -1022) return neg * ws.m * pow2(ws.e);
  if (ws.e < -1080) return neg * 0;
  return neg * ws.m * pow2(ws.e + 60) * pow2(-60);
}
const ws = { s: 0, m: 1, e: 0 };

/** An integer value |x| < 2^64 given as sign + 64-bit magnitude (hi:lo) into out (exact). */
export function fromInt(neg: number, hi: number, lo: number, out: F80): void {
  if (hi === 0 && lo === 0) {
    out.se = neg << 15;
    out.hi = 0;
    out.lo = 0;
    return;
  }
  const z = clz64(hi, lo);
  shl64(hi, lo, z);
  out.se = (neg << 15) | (16383 + 63 - z);
  out.hi = norm.hi;
  out.lo = norm.lo;
}

/** Output of toInt: the rounded integer magnitude (hi:lo), sign, inexact, rounded up, and whether it needs more than 64 bits. */
export const ti = { hi: 0, lo: 0, neg: 0, inexact: false, up: false, big: false };

/**
 * Rounds a finite 80-bit value (normal/denormal/zero) to an integer in mode rc (RC_ZERO for
 * truncation). Sets ti (ti.big when |result| >= 2^64).
 */
export function toInt(v: F80, rc: number): void {
  const neg = v.se >>> 15;
  let e = v.se & 0x7fff;
  ti.neg = neg;
  ti.big = false;
  ti.inexact = false;
  ti.up = false;
  if (v.hi === 0 && v.lo === 0) {
    ti.hi = 0;
    ti.lo = 0;
    return;
  }
  if (e === 0) e = 1;
  const E = e - 16383; // value = sig * 2^(E - 63)
  if (E >= 64) {
    ti.big = true;
    return;
  }
  let hi = v.hi;
  let lo = v.lo;
  const r = 63 - E; // bits below the binary point
  let rem = 0; // as a fraction of one, compare with 0.5
  let sticky = false;
  let half = false;
  let above = false;
  if (r <= 0) {
    // already an integer (E = 63)
  } else if (r >= 65) {
    sticky = true; // |v| < 0.5
    hi = 0;
    lo = 0;
  } else {
    // split off the r low bits
    if (r === 64) {
      half = (hi & 0x80000000) !== 0;
      sticky = (hi & 0x7fffffff) !== 0 || lo !== 0;
      hi = 0;
      lo = 0;
    } else if (r > 32) {
      const k = r - 32; // bits of hi below the point
      const hb = (hi >>> (k - 1)) & 1;
      half = hb === 1;
      sticky = (hi & ((1 << (k - 1)) - 1)) !== 0 || lo !== 0;
      lo = k === 32 ? 0 : hi >>> k;
      hi = 0;
    } else if (r === 32) {
      half = (lo & 0x80000000) !== 0;
      sticky = (lo & 0x7fffffff) !== 0;
      lo = hi;
      hi = 0;
    } else {
      half = ((lo >>> (r - 1)) & 1) === 1;
      sticky = r > 1 && (lo & ((1 << (r - 1)) - 1)) !== 0;
      lo = ((lo >>> r) | (hi << (32 - r))) >>> 0;
      hi = hi >>> r;
    }
    rem = half || sticky ? 1 : 0;
    above = half && sticky;
  }
  ti.inexact = rem !== 0 || sticky;
  let up = false;
  if (ti.inexact) {
    if (rc === RC_NEAREST) up = above || (half && !sticky && (lo & 1) === 1);
    else if (rc === RC_UP) up = neg === 0;
    else if (rc === RC_DOWN) up = neg !== 0;
  }
  if (up) {
    lo = lo + 1;
    if (lo >= 4294967296) {
      lo = 0;
      hi = hi + 1;
      if (hi >= 4294967296) {
        ti.big = true;
        return;
      }
    }
  }
  ti.up = up;
  ti.hi = hi >>> 0;
  ti.lo = lo >>> 0;
}
