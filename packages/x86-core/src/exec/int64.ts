/**
 * 64- and 128-bit integer helpers on 32-bit halves (no BigInt). Results go to the module
 * scratch arrays R (two words) and W (four words), least significant first; nothing allocates.
 */

/** Result words of the 64-bit helpers: R[0] low, R[1] high (int32). */
export const R: Int32Array = new Int32Array(2);
/** Result words of the 128-bit helpers, W[0] lowest. */
export const W: Int32Array = new Int32Array(4);
/** Remainder words of the division helpers. */
export const REM: Int32Array = new Int32Array(2);

/** (lo,hi) << n for n in 0..63. */
export function shl64(lo: number, hi: number, n: number): void {
  if (n === 0) {
    R[0] = lo;
    R[1] = hi;
  } else if (n < 32) {
    R[1] = (hi << n) | (lo >>> (32 - n));
    R[0] = lo << n;
  } else {
    R[1] = lo << (n - 32);
    R[0] = 0;
  }
}

/** (lo,hi) >>> n (logical) for n in 0..63. */
export function shr64(lo: number, hi: number, n: number): void {
  if (n === 0) {
    R[0] = lo;
    R[1] = hi;
  } else if (n < 32) {
    R[0] = (lo >>> n) | (hi << (32 - n));
    R[1] = hi >>> n;
  } else {
    R[0] = hi >>> (n - 32);
    R[1] = 0;
  }
}

/** (lo,hi) >> n (arithmetic) for n in 0..63. */
export function sar64(lo: number, hi: number, n: number): void {
  if (n === 0) {
    R[0] = lo;
    R[1] = hi;
  } else if (n < 32) {
    R[0] = (lo >>> n) | (hi << (32 - n));
    R[1] = hi >> n;
  } else {
    R[0] = hi >> (n - 32);
    R[1] = hi >> 31;
  }
}

/** Unsigned 32 x 32 -> 64: R = a * b (16-bit limbs, integer operations only). */
export function mulu32(a: number, b: number): void {
  const al = a & 0xffff;
  const ah = a >>> 16;
  const bl = b & 0xffff;
  const bh = b >>> 16;
  const lh = al * bh; // each partial product < 2^32
  const hl = ah * bl;
  const mid = ((al * bl) >>> 16) + (lh & 0xffff) + (hl & 0xffff); // < 3 * 2^16
  R[0] = Math.imul(a, b);
  R[1] = (ah * bh + (lh >>> 16) + (hl >>> 16) + (mid >>> 16)) | 0;
}

const TWO32 = 4294967296;

/** Unsigned 64 x 64 -> 128: W = (aLo,aHi) * (bLo,bHi). */
export function mulu64(aLo: number, aHi: number, bLo: number, bHi: number): void {
  mulu32(aLo, bLo);
  const w0 = R[0];
  let w1 = R[1] >>> 0;
  mulu32(aLo, bHi);
  let t = w1 + (R[0] >>> 0); // < 2^33
  w1 = t >>> 0;
  let w2 = (R[1] >>> 0) + (t >= TWO32 ? 1 : 0);
  mulu32(aHi, bLo);
  t = w1 + (R[0] >>> 0);
  w1 = t >>> 0;
  w2 += (R[1] >>> 0) + (t >= TWO32 ? 1 : 0);
  mulu32(aHi, bHi);
  w2 += R[0] >>> 0; // < 3 * 2^32
  const w3 = (R[1] >>> 0) + (w2 >= 2 * TWO32 ? 2 : w2 >= TWO32 ? 1 : 0);
  W[0] = w0;
  W[1] = w1 | 0;
  W[2] = w2 | 0;
  W[3] = w3 | 0;
}

/** Signed 64 x 64 -> 128 (two's complement): W = a * b. */
export function muls64(aLo: number, aHi: number, bLo: number, bHi: number): void {
  mulu64(aLo, aHi, bLo, bHi);
  // Correct the high half: subtract b << 64 when a < 0, a << 64 when b < 0.
  let h0 = W[2] >>> 0;
  let h1 = W[3] >>> 0;
  if (aHi < 0) {
    const s = h0 - (bLo >>> 0);
    h0 = s >>> 0;
    h1 = (h1 - (bHi >>> 0) - (s < 0 ? 1 : 0)) >>> 0;
  }
  if (bHi < 0) {
    const s = h0 - (aLo >>> 0);
    h0 = s >>> 0;
    h1 = (h1 - (aHi >>> 0) - (s < 0 ? 1 : 0)) >>> 0;
  }
  W[2] = h0 | 0;
  W[3] = h1 | 0;
}

/**
 * Unsigned 128 / 64: (n3,n2,n1,n0) / (d1,d0). Returns false when the quotient does not fit
 * in 64 bits or the divisor is 0 (#DE); otherwise R = quotient, REM = remainder.
 */
export function divu128(n3: number, n2: number, n1: number, n0: number, d1: number, d0: number): boolean {
  d1 >>>= 0;
  d0 >>>= 0;
  if (d1 === 0 && d0 === 0) return false;
  let r1 = n3 >>> 0;
  let r0 = n2 >>> 0;
  // The quotient fits iff the high 64 bits of the dividend are below the divisor.
  if (r1 > d1 || (r1 === d1 && r0 >= d0)) return false;
  let q1 = 0;
  let q0 = 0;
  let lo1 = n1 >>> 0;
  let lo0 = n0 >>> 0;
  for (let i = 0; i < 64; i++) {
    // (r, lo) <<= 1
    const top = r1 >>> 31;
    r1 = ((r1 << 1) | (r0 >>> 31)) >>> 0;
    r0 = ((r0 << 1) | (lo1 >>> 31)) >>> 0;
    lo1 = ((lo1 << 1) | (lo0 >>> 31)) >>> 0;
    lo0 = (lo0 << 1) >>> 0;
    q1 = ((q1 << 1) | (q0 >>> 31)) >>> 0;
    q0 = (q0 << 1) >>> 0;
    if (top || r1 > d1 || (r1 === d1 && r0 >= d0)) {
      const s = r0 - d0;
      r0 = s >>> 0;
      r1 = (r1 - d1 - (s < 0 ? 1 : 0)) >>> 0;
      q0 = (q0 | 1) >>> 0;
    }
  }
  R[0] = q0 | 0;
  R[1] = q1 | 0;
  REM[0] = r0 | 0;
  REM[1] = r1 | 0;
  return true;
}

/** Two's complement negation of a 128-bit value in place in W-style words. */
export function neg128(w: Int32Array): void {
  let carry = 1;
  for (let i = 0; i < 4; i++) {
    const s = ((~w[i]) >>> 0) + carry;
    w[i] = s | 0;
    carry = s > 0xffffffff ? 1 : 0;
  }
}
