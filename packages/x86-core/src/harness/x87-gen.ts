/**
 * x87 case generation for the differential tests: edge-heavy 80-bit values (NaNs, infinities,
 * denormals, pseudo-denormals, unnormals, +-0, huge/tiny; random control word, stack depth,
 * TOP, sticky flags, pending exceptions) in the shared case format (case.ts).
 *
 * Data page layout used by the forms: [rbx+0] m32 real, [rbx+8] m64 real, [rbx+16] m80 real,
 * [rbx+32] m16 int, [rbx+40] m32 int, [rbx+48] m64 int, [rbx+64] m80 BCD, [rbx+128..511]
 * scratch for stores, [rbx+512] a 512-byte 16-aligned area (FXSAVE/FNSAVE images).
 */
import { RBX, RSP } from '../constants';
import { F80, toDouble } from '../x87/float80';
import { DATA_ADDR, DATA_LEN } from './case';
import type { CompareOptions, DiffCase } from './compare';
import { XorShift128 } from './rng';

/** The generator's scratch state block: regs[16] @0, rflags @128, mxcsr @136, FXSAVE image @144. */
const S_RFLAGS = 128;
const S_MXCSR = 136;
const S_FX = 144;
const STATE_LEN = 656;

/** Value mixes for the registers. */
export type Mix = 'arith' | 'mid' | 'any' | 'small' | 'tiny' | 'int' | 'trig';

/**
 * A random 80-bit value into out. The 'arith' mix keeps finite significands to 53 bits (the
 * exact domain of the double-based arithmetic, README "Precision").
 */
export function randF80(r: XorShift128, mix: Mix, out: F80): void {
  randF80Raw(r, mix === 'mid' ? 'arith' : mix, out);
  if ((mix === 'arith' || mix === 'mid' || mix === 'trig') && (out.se & 0x7fff) !== 0x7fff) out.lo = (out.lo & 0xfffff800) >>> 0;
  // mid: finite values stay within 2^+-2000 (no overflow/underflow boundary)
  const e = out.se & 0x7fff;
  if (mix === 'mid' && e !== 0x7fff && (e < 0x3fff - 2000 || e > 0x3fff + 2000) && (out.hi | out.lo) !== 0) {
    out.se = (out.se & 0x8000) | (0x3fff - 1000 + r.int(2000));
    out.hi = (out.hi | 0x80000000) >>> 0;
  }
}

function randF80Raw(r: XorShift128, mix: Mix, out: F80): void {
  randF80Any(r, mix, out);
  // trig: keep |x| < 2^12 (beyond, the x87's 66-bit pi reduction differs from the exact one)
  if (mix === 'trig' && (out.se & 0x7fff) > 0x3fff + 11 && (out.se & 0x7fff) < 0x3fff + 63) out.se = (out.se & 0x8000) | (0x3fff + r.int(12));
  // small: |x| < 1 (F2XM1's domain); tiny: |x| < 1/4 (FYL2XP1's domain)
  const lim = mix === 'small' ? 0x3ffe : mix === 'tiny' ? 0x3ffc : 0x7fff;
  if ((out.se & 0x7fff) > lim && (out.se & 0x7fff) !== 0x7fff) out.se = (out.se & 0x8000) | (lim - r.int(4));
}

function randF80Any(r: XorShift128, mix: Mix, out: F80): void {
  const s = r.chance(0.5) ? 0x8000 : 0;
  const k = r.int(20);
  if (mix === 'trig' && k < 16) {
    // |x| up to ~2^6 (and some large), 53-bit significand
    out.se = s | (0x3fff - 8 + r.int(15));
    out.hi = (0x80000000 | r.u32()) >>> 0;
    out.lo = (r.u32() & 0xfffff800) >>> 0;
    return;
  }
  if ((mix === 'small' || mix === 'tiny') && k < 16) {
    out.se = s | (0x3fff - 3 + r.int(4));
    out.hi = (0x80000000 | r.u32()) >>> 0;
    out.lo = (r.u32() & 0xfffff800) >>> 0;
    return;
  }
  if (mix === 'int' && k < 14) {
    const e = r.int(66);
    out.se = s | (0x3fff + e - 1);
    let hi = (0x80000000 | r.u32()) >>> 0;
    let lo = r.u32();
    const frac = 63 - (e - 1);
    if (r.chance(0.5) && frac > 0) {
      // integer-valued
      if (frac >= 32) {
        lo = 0;
        hi = frac >= 63 ? 0x80000000 : (hi & ~((1 << (frac - 32)) - 1)) >>> 0;
      } else lo = (lo & ~((1 << frac) - 1)) >>> 0;
    } else if (r.chance(0.3) && frac > 1) {
      // exact halves
      if (frac - 1 >= 32) {
        lo = 0;
        hi = ((hi & ~((1 << (frac - 32)) - 1)) | (1 << (frac - 33))) >>> 0;
      } else lo = ((lo & ~((1 << frac) - 1)) | (1 << (frac - 1))) >>> 0;
    }
    out.hi = hi >>> 0;
    out.lo = lo >>> 0;
    return;
  }
  if (k < 6 || mix === 'small' || mix === 'tiny' || mix === 'int' || mix === 'trig') {
    switch (r.int(16)) {
      case 0: out.se = s; out.hi = 0; out.lo = 0; return; // zero
      case 1: out.se = s | 0x7fff; out.hi = 0x80000000; out.lo = 0; return; // inf
      case 2: out.se = s | 0x7fff; out.hi = (0xc0000000 | r.u32()) >>> 0; out.lo = r.u32(); return; // QNaN
      case 3: out.se = s | 0x7fff; out.hi = (0x80000000 | (r.u32() & 0x3fffffff) | 1) >>> 0; out.lo = r.u32(); return; // SNaN
      case 4: out.se = 0xffff; out.hi = 0xc0000000; out.lo = 0; return; // indefinite
      case 5: out.se = s; out.hi = r.u32() & 0x7fffffff; out.lo = r.u32(); return; // denormal
      case 6: out.se = s; out.hi = (0x80000000 | r.u32()) >>> 0; out.lo = r.u32(); return; // pseudo-denormal
      case 7: out.se = s | (1 + r.int(0x7ffe)); out.hi = r.u32() & 0x7fffffff; out.lo = r.u32(); return; // unnormal
      case 8: out.se = s | 0x7fff; out.hi = r.u32() & 0x7fffffff; out.lo = r.u32(); return; // pseudo-NaN/inf
      case 9: out.se = s | 0x7ffe; out.hi = 0xffffffff; out.lo = r.chance(0.5) ? 0xffffffff : 0xfffff800; return; // max
      case 10: out.se = s | 1; out.hi = 0x80000000; out.lo = r.chance(0.5) ? 0 : r.u32(); return; // min normal
      case 11: out.se = s | (1 + r.int(100)); out.hi = (0x80000000 | r.u32()) >>> 0; out.lo = r.u32() & 0xfffff800; return; // tiny
      case 12: out.se = s | (0x7ffe - r.int(100)); out.hi = (0x80000000 | r.u32()) >>> 0; out.lo = r.u32() & 0xfffff800; return; // huge
      case 13: out.se = s | 0x3fff; out.hi = 0x80000000; out.lo = 0; return; // 1
      case 14: out.se = s | (0x3fff + r.int(64)); out.hi = 0x80000000; out.lo = 0; return; // power of two
      default: out.se = s | (0x3fff - 30 + r.int(60)); out.hi = (0x80000000 | r.u32()) >>> 0; out.lo = r.u32(); return; // full 64-bit
    }
  }
  if (mix === 'any' && k < 10) {
    out.se = s | (1 + r.int(0x7ffe));
    out.hi = (0x80000000 | r.u32()) >>> 0;
    out.lo = r.u32();
    return;
  }
  // double-exact operands near 1
  out.se = s | (0x3fff - 40 + r.int(80));
  out.hi = (0x80000000 | r.u32()) >>> 0;
  out.lo = r.chance(0.2) ? 0 : (r.u32() & 0xfffff800) >>> 0;
}

export interface GenOptions {
  mix: Mix;
  /** Non-empty registers from ST(0) up: fixed, or random 0..8 when undefined. */
  depth?: number;
  /** Control word distribution: 'default' 0x37f, 'pc' random PC/RC, 'any' plus unmasked exceptions. */
  cw?: 'default' | 'pc' | 'any' | 'ext' | 'dbl';
  /** Allow a pending exception (ES set) in the input. */
  pending?: boolean;
}

const F32_EDGE = [0, 0x80000000, 0x7f800000, 0xff800000, 0x7fc00000, 0x7fa00000, 0x00000001, 0x807fffff, 0x00800000, 0x7f7fffff, 0x3f800000, 0xbf800000, 0x4f000000, 0x5f000000];
const I32_EDGE = [0, 1, -1, 0x7fffffff, -0x80000000, 0x7fff, -0x8000, 0x8000, 100, -100];
const V = new F80();

function w32(dv: DataView, o: number, v: number): void {
  dv.setUint32(o, v >>> 0, true);
}

export function x87Case(r: XorShift128, asm: string, o: GenOptions): DiffCase {
  const state = new Uint8Array(STATE_LEN);
  const sv = new DataView(state.buffer);
  for (let q = 0; q < 16; q++) {
    w32(sv, q * 8, r.u32());
    w32(sv, q * 8 + 4, r.chance(0.5) ? 0 : r.u32());
  }
  w32(sv, RBX * 8, DATA_ADDR);
  w32(sv, RBX * 8 + 4, 0);
  w32(sv, RSP * 8, 0);
  w32(sv, RSP * 8 + 4, 0);
  w32(sv, S_RFLAGS, 0x202 | (r.u32() & 0x8d5));
  w32(sv, S_MXCSR, 0x1f80);
  // control word
  let cw = 0x37f;
  const mode = o.cw ?? 'pc';
  if (mode === 'pc' || mode === 'any') {
    if (r.chance(0.6)) cw = (cw & ~0xf00) | (r.pick([0, 2, 3]) << 8) | (r.int(4) << 10);
    if (mode === 'any' && r.chance(0.3)) cw &= ~(1 << r.int(6));
  } else if (mode === 'dbl') {
    cw = (cw & ~0xf00) | (r.pick([0, 2]) << 8) | (r.int(4) << 10);
    if (r.chance(0.3)) cw &= ~(1 << r.int(6));
  } else if (mode === 'ext') {
    if (r.chance(0.6)) cw = (cw & ~0xc00) | (r.int(4) << 10);
  }
  const top = r.int(8);
  const depth = o.depth ?? r.int(9);
  let sw = top << 11;
  if (r.chance(0.3)) sw |= r.u32() & 0x473f & ~0x40; // sticky flags and condition codes
  // ES only when an unmasked flag is set (and pending allowed)
  if ((sw & 0x3f & ~cw) !== 0) {
    if (o.pending) sw |= 0x8080;
    else sw &= ~(0x3f & ~cw);
  }
  const fx = S_FX;
  sv.setUint16(fx, cw, true);
  sv.setUint16(fx + 2, sw, true);
  let ftw = 0;
  for (let i = 0; i < depth; i++) ftw |= 1 << ((top + i) & 7);
  state[fx + 4] = ftw;
  w32(sv, fx + 24, 0x1f80);
  w32(sv, fx + 28, 0xffff);
  for (let i = 0; i < 8; i++) {
    randF80(r, o.mix, V);
    w32(sv, fx + 32 + 16 * i, V.lo);
    w32(sv, fx + 36 + 16 * i, V.hi);
    sv.setUint16(fx + 40 + 16 * i, V.se, true);
  }
  const data = new Uint8Array(DATA_LEN);
  const dv = new DataView(data.buffer);
  for (let i = 0; i < DATA_LEN; i += 4) w32(dv, i, r.u32());
  // typed slots
  w32(dv, 0, r.chance(0.3) ? r.pick(F32_EDGE) : r.chance(0.5) ? ((r.u32() & 0x80000000) | ((110 + r.int(40)) << 23) | (r.u32() & 0x7fffff)) : r.u32());
  randF80(r, o.mix, V);
  {
    // m64: a double near the register values
    const d = toDouble(V);
    const f = new Float64Array([Number.isNaN(d) ? (r.chance(0.5) ? NaN : 1.5) : d]);
    const u = new Uint32Array(f.buffer);
    if (Number.isNaN(d) && r.chance(0.5)) {
      u[1] = r.pick([0x7ff00000, 0x7ff40000, 0xfff80000, 0x00000000, 0x000fffff]);
      u[0] = r.u32();
    }
    w32(dv, 8, u[0]);
    w32(dv, 12, u[1]);
  }
  randF80(r, o.mix, V);
  w32(dv, 16, V.lo);
  w32(dv, 20, V.hi);
  dv.setUint16(24, V.se, true);
  dv.setInt16(32, r.chance(0.3) ? r.pick(I32_EDGE) : r.u32() & 0xffff, true);
  w32(dv, 40, r.chance(0.3) ? r.pick(I32_EDGE) : r.chance(0.5) ? r.int(2000) - 1000 : r.u32());
  w32(dv, 48, r.chance(0.3) ? r.pick(I32_EDGE) : r.u32());
  w32(dv, 52, r.chance(0.3) ? r.pick([0, 0xffffffff, 0x80000000, 0x7fffffff]) : r.u32());
  // BCD: valid digits, random sign
  for (let i = 0; i < 9; i++) data[64 + i] = r.int(10) | (r.int(10) << 4);
  data[73] = r.chance(0.5) ? 0x80 : 0;
  const regs = new Uint32Array(state.buffer, 0, 32).slice();
  return { label: asm, text: asm, mode: 64, regs, rflags: sv.getUint32(S_RFLAGS, true), data, fx: state.slice(S_FX, S_FX + 512) };
}

export interface Form extends GenOptions, CompareOptions {
  asm: string;
}

/** perForm random cases of every form (the seed is mixed with the number of forms, as before). */
export function x87Cases(forms: readonly Form[], perForm: number, seed: number): DiffCase[] {
  const r = new XorShift128(seed ^ (forms.length * 7919));
  return forms.flatMap((f) =>
    Array.from({ length: perForm }, () => {
      const c = x87Case(r, f.asm, f);
      c.cmp = { ...(f.swIgnore !== undefined ? { swIgnore: f.swIgnore } : {}), ...(f.tol !== undefined ? { tol: f.tol } : {}), ...(f.dataIgnore ? { dataIgnore: f.dataIgnore } : {}) };
      return c;
    }),
  );
}
