/**
 * SSE/MMX case generation for the differential tests: edge-heavy operands (NaNs, infinities,
 * denormals, +-0, integer limits) by lane kind, random MXCSR (rounding, DAZ, FTZ, sticky flags,
 * unmasked exceptions), optionally the x87 in MMX state, in the shared case format (case.ts).
 * A form is one instruction text (nasm; rbx points at the data page) and its operand kind.
 */
import { RBX, RSP } from '../constants';
import { DATA_ADDR, FX_FTW, FX_MXCSR, FX_ST, FX_XMM, defaultFxImage } from './case';
import type { DiffCase } from './compare';
import { XorShift128 } from './rng';

/** Bytes of the data page the SSE cases fill. */
const SSE_DATA_LEN = 256;

/** Lane kinds for random operand values. */
export type Kind = 'f32' | 'f64' | 'i8' | 'i16' | 'i32' | 'i64' | 'any';

const F32_SPECIAL = [0x00000000, 0x80000000, 0x7f800000, 0xff800000, 0x7fc00000, 0xffc00000, 0x7fa00000, 0x7f800001, 0xff812345, 0x00000001, 0x807fffff, 0x00400000, 0x00800000, 0x80800000, 0x7f7fffff, 0xff7fffff, 0x3f800000, 0xbf800000, 0x4f000000, 0xcf000000, 0x5f000000, 0xdf000000, 0x4effffff, 0x3f000000, 0x3fc00000, 0x40200000, 0xc0200000, 0x0c000000, 0x1f800000, 0x00ffffff];
const F64_SPECIAL_HI = [0x00000000, 0x80000000, 0x7ff00000, 0xfff00000, 0x7ff80000, 0xfff80000, 0x7ff40000, 0x00000001, 0x800fffff, 0x00080000, 0x00100000, 0x80100000, 0x7fefffff, 0xffefffff, 0x3ff00000, 0xbff00000, 0x41e00000, 0xc1e00000, 0x43e00000, 0xc3e00000, 0x41dfffff, 0x3fe00000, 0x3ff80000, 0x40040000, 0xc0040000, 0x36a00000, 0x38100000, 0x47efffff, 0x380fffff, 0x43400000];

function f32Lane(r: XorShift128): number {
  const k = r.int(10);
  if (k < 3) return F32_SPECIAL[r.int(F32_SPECIAL.length)] >>> 0;
  if (k < 4) return (r.u32() & 0x807fffff) >>> 0; // denormal
  if (k < 8) return (((r.u32() & 0x80000000) | ((118 + r.int(20)) << 23) | (r.u32() & 0x7fffff)) >>> 0); // near 1
  if (k < 9) return (((r.u32() & 0x80000000) | ((150 + r.int(10)) << 23) | (r.int(4) === 0 ? 0 : r.u32() & 0x7fffff)) >>> 0); // near 2^24..2^33 (integers)
  return r.u32();
}

/** Fills lo, hi of one f64 lane. */
function f64Lane(r: XorShift128, out: Uint32Array, i: number): void {
  const k = r.int(10);
  if (k < 3) {
    const hi = F64_SPECIAL_HI[r.int(F64_SPECIAL_HI.length)];
    out[i + 1] = hi;
    out[i] = r.chance(0.5) ? 0 : r.chance(0.5) ? r.u32() : 0xffffffff;
    if (hi === 0x00000001) {
      out[i + 1] = 0; // tiniest denormal
      out[i] = 1;
    }
    return;
  }
  if (k < 4) { out[i + 1] = r.u32() & 0x800fffff; out[i] = r.u32(); return; } // denormal
  if (k < 8) { out[i + 1] = ((r.u32() & 0x80000000) | ((1013 + r.int(20)) << 20) | (r.u32() & 0xfffff)) >>> 0; out[i] = r.chance(0.3) ? 0 : r.u32(); return; }
  if (k < 9) { out[i + 1] = ((r.u32() & 0x80000000) | ((1045 + r.int(20)) << 20) | (r.u32() & 0xfffff)) >>> 0; out[i] = r.chance(0.5) ? 0 : r.u32(); return; } // integers near 2^22..2^42 and 2^63
  out[i] = r.u32();
  out[i + 1] = r.u32();
}

const I_EDGE = [0, 0xffffffff, 0x80000000, 0x7fffffff, 0x80008000, 0x7fff7fff, 0x80808080, 0x7f7f7f7f, 0x01010101, 0x00ff00ff, 0xff00ff00, 0x00010001, 0xfffefffe];

/** Fills n dwords of out from index i with random values of the kind. */
export function fillKind(r: XorShift128, kind: Kind, out: Uint32Array, i: number, n: number): void {
  const k = kind === 'any' ? r.pick(['f32', 'f64', 'i32'] as const) : kind;
  for (let j = 0; j < n; j += k === 'f64' || k === 'i64' ? 2 : 1) {
    if (k === 'f32') out[i + j] = f32Lane(r);
    else if (k === 'f64') f64Lane(r, out, i + j);
    else if (r.chance(0.25)) out[i + j] = r.pick(I_EDGE);
    else if (k === 'i8' && r.chance(0.3)) out[i + j] = (r.u32() & 0x81818181) >>> 0;
    else out[i + j] = r.u32();
  }
}

export interface GenOptions {
  kind: Kind;
  /** Load MM0-7 (x87 in MMX state) before the snippet. */
  mmx?: boolean;
  /**
   * MXCSR distribution: 'float' (random RC/DAZ/FTZ, sometimes one exception unmasked), 'plain'
   * (0x1f80, random sticky flags) or 'unmasked' (each exception unmasked with probability 1/2).
   */
  mxcsr?: 'float' | 'plain' | 'unmasked';
}

export function randomMxcsr(r: XorShift128, float: boolean, unmasked = false): number {
  let m = 0x1f80;
  if (r.chance(0.2)) m |= r.u32() & 0x3f;
  if (unmasked) m &= ~(r.u32() & 0x1f80);
  if (!float) return m;
  if (r.chance(0.4)) m |= r.int(4) << 13;
  if (r.chance(0.2)) m |= 0x40; // DAZ
  if (r.chance(0.2)) m |= 0x8000; // FTZ
  if (r.chance(0.12)) m &= ~((1 << (7 + r.int(6))) >>> 0);
  return m;
}

/** A random case for the instruction text asm (rbx points at the data page). */
export function sseCase(r: XorShift128, asm: string, o: GenOptions): DiffCase {
  const regs = new Uint32Array(32);
  for (let q = 0; q < 16; q++) {
    const e = r.int(8);
    regs[q * 2] = e === 0 ? 0 : e === 1 ? 0xffffffff : e === 2 ? 0x80000000 : e === 3 ? 0x7fffffff : r.u32();
    regs[q * 2 + 1] = e === 0 ? 0 : e === 1 ? 0xffffffff : e === 2 ? (r.chance(0.5) ? 0xffffffff : 0) : e === 3 ? (r.chance(0.5) ? 0x7fffffff : 0) : r.u32();
  }
  regs[RBX * 2] = DATA_ADDR;
  regs[RBX * 2 + 1] = 0;
  regs[RSP * 2] = regs[RSP * 2 + 1] = 0;
  const rflags = (0x202 | (r.u32() & 0x8d5)) >>> 0;
  const mxcsr = randomMxcsr(r, o.mxcsr !== 'plain', o.mxcsr === 'unmasked');
  const vec = new Uint32Array(64 + 16);
  fillKind(r, o.kind, vec, 0, 64);
  fillKind(r, o.kind, vec, 64, 16);
  const data = new Uint8Array(SSE_DATA_LEN);
  fillKind(r, o.kind, new Uint32Array(data.buffer), 0, SSE_DATA_LEN / 4);
  // The x87 state as after FNINIT and MOVQ MM0-7 (exponents all ones, TOP 0), then EMMS unless
  // the case wants the x87 in MMX state (all tags valid).
  const fx = defaultFxImage();
  const fv = new DataView(fx.buffer);
  fv.setUint32(FX_MXCSR, mxcsr, true);
  fx[FX_FTW] = o.mmx ? 0xff : 0;
  for (let i = 0; i < 8; i++) {
    fv.setUint32(FX_ST + 16 * i, vec[64 + 2 * i], true);
    fv.setUint32(FX_ST + 4 + 16 * i, vec[64 + 2 * i + 1], true);
    fv.setUint16(FX_ST + 8 + 16 * i, 0xffff, true);
  }
  for (let i = 0; i < 64; i++) fv.setUint32(FX_XMM + 4 * i, vec[i], true);
  return { label: asm, text: asm, mode: 64, regs, rflags, data, fx };
}

export interface Form extends GenOptions {
  asm: string;
}

/** Cases per form: RZ_SSE_CASES (default 60). Seed: RZ_SSE_SEED. */
export const PER_FORM: number = Number(process.env.RZ_SSE_CASES ?? 60);
export const SEED: number = Number(process.env.RZ_SSE_SEED ?? 20261121);

/** perForm random cases of every form (the seed is mixed with the number of forms, as before). */
export function sseCases(forms: readonly Form[], perForm: number = PER_FORM, seed: number = SEED, r: XorShift128 = new XorShift128(seed ^ forms.length)): DiffCase[] {
  return forms.flatMap((f) => Array.from({ length: perForm }, () => sseCase(r, f.asm, f)));
}

/** XMM register/memory forms of `mnem` (rbx = data page; memory operands aligned). */
export function vw(mnem: string, o: GenOptions, extra = '', memSize = ''): Form[] {
  const m = memSize ? `${memSize} ` : '';
  return [
    `${mnem} xmm1, xmm2${extra}`,
    `${mnem} xmm9, xmm14${extra}`,
    `${mnem} xmm5, xmm5${extra}`,
    `${mnem} xmm3, ${m}[rbx+32]${extra}`,
    `${mnem} xmm12, ${m}[rbx+48]${extra}`,
  ].map((asm) => ({ asm, ...o }));
}

/** MMX forms of `mnem`. */
export function pq(mnem: string, o: GenOptions, extra = ''): Form[] {
  return [`${mnem} mm1, mm2${extra}`, `${mnem} mm3, mm3${extra}`, `${mnem} mm0, [rbx+8]${extra}`, `${mnem} mm7, [rbx+64]${extra}`].map((asm) => ({
    asm,
    ...o,
    mmx: true,
  }));
}

