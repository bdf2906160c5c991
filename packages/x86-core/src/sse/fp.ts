/**
 * IEEE-754 arithmetic with x86 MXCSR semantics for the SSE group: rounding control, DAZ, FTZ,
 * the six exception flags, QNaN propagation (first source NaN wins, SNaN -> QNaN), the default
 * NaN (negative QNaN) and the integer indefinite value.
 *
 * How results are made exact:
 * - Fast path: JavaScript doubles are IEEE binary64 with round-to-nearest-even, so add, sub,
 *   mul, div and sqrt on doubles are exact IEEE results; for binary32 operands the double result
 *   rounded with Math.fround is the correctly rounded binary32 result (double has more than
 *   2p + 2 bits, so double rounding is innocuous for these five operations). The fast path is
 *   taken when the rounding mode is nearest, the precision flag PE is already set (and masked),
 *   and the result is a finite normal number of the target format: then no flag can change.
 * - Error-term path (PE not yet set, or directed rounding, results in the normal range): the
 *   exact error of the nearest result is computed without BigInt (TwoSum for add/sub, Dekker's
 *   product for mul, the exact remainder for div and sqrt); its sign gives PE and the directed
 *   result (the nearest result or its neighbour). For binary32 the double-to-float rounding
 *   error (exact) is combined with it.
 * - Exact path (everything else: tiny, huge or out-of-range operands/results): the
 *   operation is done exactly on BigInt mantissas (division and square root with a sticky bit)
 *   and rounded once to the target format in the current mode, which gives the exact result
 *   and the exact PE / UE (tininess after rounding, as x86 detects it) / OE flags. BigInt is
 *   only on this slow path; programs set PE early, after which the fast path applies.
 *
 * Lanes travel as bit patterns (lo, hi for binary64; lo for binary32): NaN payloads never go
 * through a JavaScript number.
 */

// MXCSR bits.
export const MX_IE = 0x1;
export const MX_DE = 0x2;
export const MX_ZE = 0x4;
export const MX_OE = 0x8;
export const MX_UE = 0x10;
export const MX_PE = 0x20;
export const MX_DAZ = 0x40;
export const MX_IM = 0x80;
export const MX_PM = 0x1000;
export const MX_FZ = 0x8000;
/** Bits of MXCSR that software may set (LDMXCSR #GP(0) on others); MXCSR_MASK. */
export const MXCSR_MASK = 0xffff;

export const RC_NEAR = 0;
export const RC_DOWN = 1;
export const RC_UP = 2;
export const RC_ZERO = 3;

// Binary ops.
export const OP_ADD = 0;
export const OP_SUB = 1;
export const OP_MUL = 2;
export const OP_DIV = 3;
export const OP_SQRT = 4;

/** Per-instruction state: MXCSR at the start, and the flags raised so far (pre/post computation). */
export const fpState = { mx: 0x1f80, pre: 0, post: 0, lo: 0, hi: 0 };

const CV = new Float64Array(1);
const CVU = new Uint32Array(CV.buffer);
const CF32 = new Float32Array(1);
const CF32U = new Uint32Array(CF32.buffer);

export function f64(lo: number, hi: number): number {
  CVU[0] = lo;
  CVU[1] = hi;
  return CV[0];
}

export function f32(b: number): number {
  CF32U[0] = b;
  return CF32[0];
}

/** Writes a non-NaN double into fpState.lo/hi. */
function out64(x: number): void {
  CV[0] = x;
  fpState.lo = CVU[0];
  fpState.hi = CVU[1];
}

/** Writes a non-NaN number (already a binary32 value) into fpState.lo as binary32 bits. */
function out32(x: number): void {
  CF32[0] = x;
  fpState.lo = CF32U[0];
  fpState.hi = 0;
}

export function isNaN32(b: number): boolean {
  return (b & 0x7fffffff) >>> 0 > 0x7f800000;
}
export function isSNaN32(b: number): boolean {
  return isNaN32(b) && (b & 0x00400000) === 0;
}
export function isDen32(b: number): boolean {
  return (b & 0x7f800000) === 0 && (b & 0x7fffff) !== 0;
}
export function isNaN64(lo: number, hi: number): boolean {
  const h = (hi & 0x7fffffff) >>> 0;
  return h > 0x7ff00000 || (h === 0x7ff00000 && lo !== 0);
}
export function isSNaN64(lo: number, hi: number): boolean {
  return isNaN64(lo, hi) && (hi & 0x00080000) === 0;
}
export function isDen64(lo: number, hi: number): boolean {
  return (hi & 0x7ff00000) === 0 && ((hi & 0xfffff) !== 0 || lo !== 0);
}

// ------------------------------------------------------------------ exact slow path

const FMT_P = [24, 53];
const FMT_EMIN = [-126, -1022];
const FMT_EMAX = [127, 1023];
const FMT_MAX = [3.4028234663852886e38, Number.MAX_VALUE];

let dNeg = false;
let dM = 0n;
let dE = 0;

/** Decomposes a finite non-zero double into dNeg, dM (BigInt mantissa), dE. */
function decomp(x: number): void {
  CV[0] = x;
  const lo = CVU[0];
  const hi = CVU[1];
  dNeg = hi >>> 31 === 1;
  const ef = (hi >>> 20) & 0x7ff;
  const mh = hi & 0xfffff;
  if (ef === 0) {
    dM = BigInt(mh * 4294967296 + lo);
    dE = -1074;
  } else {
    dM = BigInt((mh | 0x100000) * 4294967296 + lo);
    dE = ef - 1075;
  }
}

function bitLen(m: bigint): number {
  return m.toString(2).length;
}

function isqrt(n: bigint): bigint {
  if (n < 2n) return n;
  let x = BigInt(Math.floor(Math.sqrt(Number(n))));
  for (let i = 0; i < 8; i++) {
    const y = (x + n / x) >> 1n;
    if (y === x) break;
    x = y;
  }
  while (x * x > n) x--;
  while ((x + 1n) * (x + 1n) <= n) x++;
  return x;
}

function pow2(e: number): number {
  // 2^e for e in [-1074, 1023] exactly (two factors avoid the subnormal pow edge).
  if (e < -1000) return 2 ** (e + 1000) * 2 ** -1000;
  return 2 ** e;
}

/**
 * Rounds (-1)^neg * m * 2^e (m > 0, exact, with a sticky bit already folded in when needed) to
 * format fmt (0 binary32, 1 binary64) in mode rc; sets post-computation flags in fpState and
 * returns the result as a number (binary32 values as exact doubles), or +-Infinity / +-MAX.
 */
function roundExact(neg: boolean, m: bigint, e: number, fmt: number, rc: number): number {
  const p = FMT_P[fmt];
  const emin = FMT_EMIN[fmt];
  const L = bitLen(m);
  // Rounding to p bits with an unbounded exponent range: decides tininess (after rounding) and,
  // for unmasked OE/UE, PE (the host reports the inexactness of that significand).
  const su = L - p;
  const inexactU = su > 0 && (m & ((1n << BigInt(su)) - 1n)) !== 0n;
  let tiny = false;
  if (e + L - 1 < emin + 1) {
    let qu = m;
    let eu = e;
    if (su > 0) {
      qu = roundShift(neg, m, su, rc);
      eu = e + su;
    }
    tiny = eu + bitLen(qu) - 1 < emin;
  }
  const shift = Math.max(L - p, emin - p + 1 - e);
  let q = m;
  let inexact = false;
  let ex = e;
  if (shift > 0) {
    const rem = m & ((1n << BigInt(shift)) - 1n);
    inexact = rem !== 0n;
    q = roundShift(neg, m, shift, rc);
    ex = e + shift;
  }
  const mx = fpState.mx;
  if (q !== 0n && ex + bitLen(q) - 1 > FMT_EMAX[fmt]) {
    // Unmasked OE: PE only when the significand was inexact (the result is not stored anyway).
    fpState.post |= mx & 0x400 ? MX_OE | MX_PE : inexactU ? MX_OE | MX_PE : MX_OE;
    const toInf = rc === RC_NEAR || (rc === RC_UP && !neg) || (rc === RC_DOWN && neg);
    const v = toInf ? Infinity : FMT_MAX[fmt];
    return neg ? -v : v;
  }
  if (tiny) {
    if ((mx & 0x800) === 0) {
      fpState.post |= inexactU ? MX_UE | MX_PE : MX_UE; // UM unmasked: tiny alone signals
      return neg ? -0 : 0;
    } else if (mx & MX_FZ) {
      fpState.post |= MX_UE | MX_PE;
      return neg ? -0 : 0;
    } else if (inexact) fpState.post |= MX_UE;
  }
  if (inexact) fpState.post |= MX_PE;
  const v = Number(q) * pow2(ex);
  return neg ? -v : v;
}

/** m >> s rounded in mode rc (sign neg), as BigInt. */
function roundShift(neg: boolean, m: bigint, s: number, rc: number): bigint {
  const bs = BigInt(s);
  const q = m >> bs;
  const rem = m & ((1n << bs) - 1n);
  if (rem === 0n) return q;
  let up: boolean;
  if (rc === RC_NEAR) {
    const half = 1n << (bs - 1n);
    up = rem > half || (rem === half && (q & 1n) === 1n);
  } else up = rc === RC_UP ? !neg : rc === RC_DOWN ? neg : false;
  return up ? q + 1n : q;
}

/** Exact a op b for finite doubles (b ignored for sqrt), rounded to fmt in mode rc. */
function exactOp(op: number, a: number, b: number, fmt: number, rc: number): number {
  let neg: boolean;
  let m: bigint;
  let e: number;
  if (op === OP_ADD || op === OP_SUB) {
    if (op === OP_SUB) b = -b;
    if (a === 0 || b === 0) {
      if (a === 0 && b === 0) {
        // Exact zero: same signs keep it; opposite signs give +0 (-0 rounding down).
        const na = Object.is(a, -0);
        const nb = Object.is(b, -0);
        return na === nb ? a : rc === RC_DOWN ? -0 : 0;
      }
      return roundNum(a === 0 ? b : a, fmt, rc);
    }
    decomp(a);
    const na = dNeg;
    const ma = dM;
    const ea = dE;
    decomp(b);
    const e0 = Math.min(ea, dE);
    let s = (na ? -ma : ma) << BigInt(ea - e0);
    s += (dNeg ? -dM : dM) << BigInt(dE - e0);
    if (s === 0n) return rc === RC_DOWN ? -0 : 0;
    neg = s < 0n;
    m = neg ? -s : s;
    e = e0;
  } else if (op === OP_MUL) {
    if (a === 0 || b === 0) return (a < 0 || Object.is(a, -0)) !== (b < 0 || Object.is(b, -0)) ? -0 : 0;
    decomp(a);
    const na = dNeg;
    const ma = dM;
    const ea = dE;
    decomp(b);
    neg = na !== dNeg;
    m = ma * dM;
    e = ea + dE;
  } else if (op === OP_DIV) {
    if (a === 0) return (Object.is(a, -0) !== (b < 0)) ? -0 : 0;
    decomp(a);
    const na = dNeg;
    const ma = dM;
    const ea = dE;
    decomp(b);
    neg = na !== dNeg;
    const k = Math.max(0, 66 + bitLen(dM) - bitLen(ma));
    const num = ma << BigInt(k);
    const q = num / dM;
    const sticky = num - q * dM !== 0n ? 1n : 0n;
    m = (q << 1n) | sticky;
    e = ea - dE - k - 1;
  } else {
    if (a === 0) return a;
    decomp(a);
    neg = false;
    let mm = dM;
    let ee = dE;
    if (ee & 1) {
      mm <<= 1n;
      ee -= 1;
    }
    const k = Math.max(0, Math.ceil((140 - bitLen(mm)) / 2));
    const n = mm << BigInt(2 * k);
    const s = isqrt(n);
    m = (s << 1n) | (n - s * s !== 0n ? 1n : 0n);
    e = (ee - 2 * k) / 2 - 1;
  }
  return roundExact(neg, m, e, fmt, rc);
}

/** Rounds a finite double to fmt in mode rc with flags (conversions, and add with a zero). */
function roundNum(x: number, fmt: number, rc: number): number {
  if (x === 0) return x;
  if (fmt === 1) {
    // A double is exact in binary64; only FTZ/underflow rules can apply (tiny exact: no UE
    // when masked, but FTZ flushes tiny results).
    if (Math.abs(x) < 2.2250738585072014e-308) {
      decomp(x);
      return roundExact(dNeg, dM, dE, fmt, rc);
    }
    return x;
  }
  decomp(x);
  return roundExact(dNeg, dM, dE, fmt, rc);
}

/** Integer (given exactly as neg and magnitude m) rounded to fmt in mode rc with flags. */
export function roundInt(neg: boolean, m: bigint, fmt: number, rc: number): number {
  if (m === 0n) return 0;
  return roundExact(neg, m, 0, fmt, rc);
}


// ------------------------------------------------------------------ exact error terms (no BigInt)

const SPLIT = 134217729; // 2^27 + 1 (Veltkamp split)
const LOW = 2 ** -900;
const HIGH = 2 ** 995;

/** a * b - p exactly (Dekker), for |a|, |b| in [2^-900, 2^995] and p = fl(a * b). */
function twoProdErr(a: number, b: number, p: number): number {
  let t = SPLIT * a;
  const ah = t - (t - a);
  const al = a - ah;
  t = SPLIT * b;
  const bh = t - (t - b);
  const bl = b - bh;
  return ah * bh - p + ah * bl + al * bh + al * bl;
}

const inRange = (v: number): boolean => {
  const a = Math.abs(v);
  return a >= LOW && a <= HIGH;
};

/**
 * Sign of (exact x op y) - r for r = the double nearest to the exact result (0 when exact), or
 * NaN when the operands are outside the range where the error term is computable exactly.
 */
function errSign(op: number, x: number, y: number, r: number): number {
  switch (op) {
    case OP_ADD:
    case OP_SUB: {
      const b = op === OP_SUB ? -y : y;
      const bb = r - x;
      return Math.sign(x - (r - bb) + (b - bb));
    }
    case OP_MUL:
      if (!inRange(x) || !inRange(y)) return NaN;
      return Math.sign(twoProdErr(x, y, r));
    case OP_DIV: {
      if (!inRange(x) || !inRange(y) || !inRange(r)) return NaN;
      const p = r * y;
      const rem = x - p - twoProdErr(r, y, p);
      return Math.sign(rem) * Math.sign(y);
    }
    default: {
      if (!inRange(x)) return NaN;
      const p = r * r;
      return Math.sign(x - p - twoProdErr(r, r, p));
    }
  }
}

const NX = new Float64Array(1);
const NXU = new Uint32Array(NX.buffer);

/** The double next to x (finite, non-zero) towards +inf (dir > 0) or -inf. */
function nextDouble(x: number, dir: number): number {
  NX[0] = x;
  const away = x > 0 === dir > 0;
  let lo = NXU[0];
  let hi = NXU[1];
  if (away) {
    lo = (lo + 1) >>> 0;
    if (lo === 0) hi++;
  } else {
    if (lo === 0) hi--;
    lo = (lo - 1) >>> 0;
  }
  NXU[0] = lo;
  NXU[1] = hi;
  return NX[0];
}

function nextFloat(x: number, dir: number): number {
  CF32[0] = x;
  const away = x > 0 === dir > 0;
  CF32U[0] = away ? CF32U[0] + 1 : CF32U[0] - 1;
  return CF32[0];
}

/** Rounds the nearest result r with error sign e (exact - r) in mode rc. */
function directed(r: number, e: number, rc: number, next: (x: number, d: number) => number): number {
  if (e === 0 || rc === RC_NEAR) return r;
  if (rc === RC_DOWN) return e < 0 ? next(r, -1) : r;
  if (rc === RC_UP) return e > 0 ? next(r, 1) : r;
  return r > 0 ? (e < 0 ? next(r, -1) : r) : e > 0 ? next(r, 1) : r;
}

// ------------------------------------------------------------------ lane operations

/** Rounding control of the current instruction. */
function rcOf(): number {
  return (fpState.mx >>> 13) & 3;
}

/** The fast path applies: round to nearest and PE already set with PM masked. */
function fastOk(): boolean {
  return (fpState.mx & 0x7020) === 0x1020;
}

/**
 * Two-operand binary32 lane: a op b (sqrt: op(b), the SDM's source operand). Result bits in
 * fpState.lo; flags accumulated in fpState.pre/post.
 */
export function op32(op: number, a: number, b: number): void {
  const mx = fpState.mx;
  const unary = op === OP_SQRT;
  if (unary) a = b;
  const an = isNaN32(a);
  const bn = !unary && isNaN32(b);
  if (an || bn) {
    if ((an && isSNaN32(a)) || (bn && isSNaN32(b))) fpState.pre |= MX_IE;
    fpState.lo = ((an ? a : b) | 0x00400000) >>> 0;
    return;
  }
  // DE is reported only when the lane raises no IE/ZE (as the hardware does).
  let de = 0;
  if (isDen32(a)) {
    if (mx & MX_DAZ) a &= 0x80000000;
    else de = MX_DE;
  }
  if (!unary && isDen32(b)) {
    if (mx & MX_DAZ) b &= 0x80000000;
    else de = MX_DE;
  }
  const x = f32(a);
  const y = f32(b);
  let r: number;
  switch (op) {
    case OP_ADD: r = x + y; break;
    case OP_SUB: r = x - y; break;
    case OP_MUL: r = x * y; break;
    case OP_DIV: r = x / y; break;
    default: r = Math.sqrt(x);
  }
  if (r !== r) {
    fpState.pre |= MX_IE;
    fpState.lo = 0xffc00000;
    return;
  }
  if (op === OP_DIV && y === 0 && Math.abs(x) !== Infinity) {
    fpState.pre |= MX_ZE;
    de = 0;
  }
  fpState.pre |= de;
  if (Math.abs(x) === Infinity || Math.abs(y) === Infinity || (op === OP_DIV && y === 0)) {
    out32(r);
    return;
  }
  const fr = Math.fround(r);
  const af = Math.abs(fr);
  if (af > 1.1754943508222875e-38 && af < 3.4028234663852886e38) {
    if (fastOk()) {
      out32(fr);
      return;
    }
    // Error of the float result: the double rounding step (exact) dominates when non-zero.
    const e1 = errSign(op, x, y, r);
    if (e1 === e1) {
      const e = r !== fr ? Math.sign(r - fr) : e1;
      const d = directed(fr, e, rcOf(), nextFloat);
      // A directed step below the smallest normal is an underflow: the exact path decides.
      if (Math.abs(d) > 1.1754943508222875e-38) {
        if (e !== 0) fpState.post |= MX_PE;
        out32(d);
        return;
      }
    }
  }
  out32(exactOp(op, x, y, 0, rcOf()));
}

/** Two-operand binary64 lane (a = alo/ahi, b = blo/bhi); result in fpState.lo/hi. */
export function op64(op: number, alo: number, ahi: number, blo: number, bhi: number): void {
  const mx = fpState.mx;
  const unary = op === OP_SQRT;
  if (unary) {
    alo = blo;
    ahi = bhi;
  }
  const an = isNaN64(alo, ahi);
  const bn = !unary && isNaN64(blo, bhi);
  if (an || bn) {
    if ((an && isSNaN64(alo, ahi)) || (bn && isSNaN64(blo, bhi))) fpState.pre |= MX_IE;
    fpState.lo = an ? alo : blo;
    fpState.hi = ((an ? ahi : bhi) | 0x00080000) >>> 0;
    return;
  }
  let de = 0;
  if (isDen64(alo, ahi)) {
    if (mx & MX_DAZ) {
      alo = 0;
      ahi &= 0x80000000;
    } else de = MX_DE;
  }
  if (!unary && isDen64(blo, bhi)) {
    if (mx & MX_DAZ) {
      blo = 0;
      bhi &= 0x80000000;
    } else de = MX_DE;
  }
  const x = f64(alo, ahi);
  const y = f64(blo, bhi);
  let r: number;
  switch (op) {
    case OP_ADD: r = x + y; break;
    case OP_SUB: r = x - y; break;
    case OP_MUL: r = x * y; break;
    case OP_DIV: r = x / y; break;
    default: r = Math.sqrt(x);
  }
  if (r !== r) {
    fpState.pre |= MX_IE;
    fpState.lo = 0;
    fpState.hi = 0xfff80000;
    return;
  }
  if (op === OP_DIV && y === 0 && Math.abs(x) !== Infinity) {
    fpState.pre |= MX_ZE;
    de = 0;
  }
  fpState.pre |= de;
  if (Math.abs(x) === Infinity || Math.abs(y) === Infinity || (op === OP_DIV && y === 0)) {
    out64(r);
    return;
  }
  const ar = Math.abs(r);
  if (ar > 2.2250738585072014e-308 && ar !== Infinity) {
    if (fastOk()) {
      out64(r);
      return;
    }
    if (ar >= LOW && ar <= HIGH) {
      const e = errSign(op, x, y, r);
      if (e === e) {
        if (e !== 0) fpState.post |= MX_PE;
        out64(directed(r, e, rcOf(), nextDouble));
        return;
      }
    }
  }
  out64(exactOp(op, x, y, 1, rcOf()));
}

/** binary64 -> binary32 (CVTSD2SS/CVTPD2PS) lane: result bits in fpState.lo. */
export function cvt64to32(lo: number, hi: number): void {
  if (isNaN64(lo, hi)) {
    if (isSNaN64(lo, hi)) fpState.pre |= MX_IE;
    fpState.lo = ((hi & 0x80000000) | 0x7fc00000 | ((hi & 0x7ffff) << 3) | (lo >>> 29)) >>> 0;
    return;
  }
  if (isDen64(lo, hi)) {
    if (fpState.mx & MX_DAZ) {
      lo = 0;
      hi &= 0x80000000;
    } else fpState.pre |= MX_DE;
  }
  const x = f64(lo, hi);
  const fr = Math.fround(x);
  const af = Math.abs(fr);
  if (x === 0 || Math.abs(x) === Infinity || (fr === x && af >= 1.1754943508222875e-38 && af !== Infinity)) {
    out32(fr);
    return;
  }
  if (fastOk() && af > 1.1754943508222875e-38 && af <= 3.4028234663852886e38) {
    out32(fr);
    return;
  }
  out32(roundNum(x, 0, rcOf()));
}

/** binary32 -> binary64 (CVTSS2SD/CVTPS2PD) lane: result in fpState.lo/hi (always exact). */
export function cvt32to64(b: number): void {
  if (isNaN32(b)) {
    if (isSNaN32(b)) fpState.pre |= MX_IE;
    fpState.hi = ((b & 0x80000000) | 0x7ff80000 | ((b & 0x3fffff) >>> 3)) >>> 0;
    fpState.lo = (b << 29) >>> 0;
    return;
  }
  if (isDen32(b)) {
    if (fpState.mx & MX_DAZ) b &= 0x80000000;
    else fpState.pre |= MX_DE;
  }
  out64(f32(b));
}

/** Integer (lo, hi: int64 halves; hi ignored when !is64 and lo is int32) -> fmt lane. */
export function cvtInt(lo: number, hi: number, is64: boolean, fmt: number): void {
  const v = is64 ? (hi | 0) * 4294967296 + (lo >>> 0) : lo | 0;
  if (Number.isSafeInteger(v) && (fmt === 1 || Math.fround(v) === v)) {
    if (fmt === 1) out64(v);
    else out32(v);
    return;
  }
  let m: bigint;
  let neg: boolean;
  if (is64) {
    const big = (BigInt(hi | 0) << 32n) | BigInt(lo >>> 0);
    neg = big < 0n;
    m = neg ? -big : big;
  } else {
    neg = v < 0;
    m = BigInt(Math.abs(v));
  }
  const r = roundInt(neg, m, fmt, rcOf());
  if (fmt === 1) out64(r);
  else out32(r);
}

/** Rounds a finite double to an integer-valued double in mode rc (nearest: ties to even). */
export function rintMode(x: number, rc: number): number {
  const t = Math.trunc(x);
  if (t === x) return x;
  switch (rc) {
    case RC_ZERO: return t;
    case RC_DOWN: return Math.floor(x);
    case RC_UP: return Math.ceil(x);
    default: {
      const f = Math.abs(x - t);
      if (f > 0.5 || (f === 0.5 && t % 2 !== 0)) return t + (x < 0 ? -1 : 1);
      return t;
    }
  }
}

/**
 * Float lane -> integer (CVT(T)SS2SI, CVT(T)SD2SI, packed forms): x given as a double (the
 * caller decoded it; NaN for NaNs); bits 32 or 64; truncate for CVTT*. Writes lo/hi; raises IE
 * (result indefinite) or PE.
 */
export function cvtToInt(x: number, bits: number, truncate: boolean): void {
  const r = x !== x ? NaN : truncate ? Math.trunc(x) : rintMode(x, rcOf());
  const lim = bits === 32 ? 2147483648 : 9223372036854775808;
  if (!(r >= -lim && r < lim)) {
    fpState.pre |= MX_IE;
    fpState.lo = bits === 32 ? 0x80000000 : 0;
    fpState.hi = 0x80000000;
    return;
  }
  if (r !== x) fpState.post |= MX_PE;
  if (bits === 32) {
    fpState.lo = r >>> 0;
    fpState.hi = 0;
  } else {
    const h = Math.floor(r / 4294967296);
    fpState.hi = h >>> 0;
    fpState.lo = (r - h * 4294967296) >>> 0;
  }
}
