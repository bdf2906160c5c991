/**
 * Emulator side of the x87 differential tests: random cases (edge-heavy 80-bit values: NaNs,
 * infinities, denormals, pseudo-denormals, unnormals, +-0, huge/tiny; random control word,
 * stack depth, TOP, sticky flags, pending exceptions), running a case in the emulator, and
 * comparing with the host. No Node built-ins here; the native side is native.ts.
 *
 * Data page layout used by the forms: [rbx+0] m32 real, [rbx+8] m64 real, [rbx+16] m80 real,
 * [rbx+32] m16 int, [rbx+40] m32 int, [rbx+48] m64 int, [rbx+64] m80 BCD, [rbx+128..511]
 * scratch for stores, [rbx+512] a 512-byte 16-aligned area (FXSAVE/FNSAVE images).
 */
import { Cpu } from '../../cpu';
import { FlatMemory } from '../../memory';
import { AC_VEC, EXIT_BUDGET, EXIT_EXCEPTION, GP, MF, NM, PF_VEC, RBX, RSP, SS_VEC, UD, XM } from '../../constants';
import { F80, toDouble } from '../float80';
import { fullTagWord } from '../env';
import { statusWord } from '../misc';
import { CODE_ADDR, DATA_ADDR, DATA_LEN, S_ENV, S_FX, S_MXCSR, S_REGS, S_RFLAGS, STATE_LEN, type X87Case, type X87Result } from './native';

const SIG_OF_VECTOR: Record<number, number> = { [UD]: 4, [GP]: 11, [PF_VEC]: 11, [SS_VEC]: 7, [AC_VEC]: 7, [XM]: 8, [MF]: 8, [NM]: 11 };

/** xorshift128 on 32-bit words: deterministic, seeded. */
export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;
  constructor(seed: number) {
    this.a = seed | 0 || 1;
    this.b = 0x9e3779b9;
    this.c = 0x243f6a88;
    this.d = 0xb7e15162;
    for (let i = 0; i < 16; i++) this.u32();
  }
  u32(): number {
    let t = this.d;
    const s = this.a;
    this.d = this.c;
    this.c = this.b;
    this.b = s;
    t ^= t << 11;
    t ^= t >>> 8;
    this.a = t ^ s ^ (s >>> 19);
    return this.a >>> 0;
  }
  int(n: number): number {
    return this.u32() % n;
  }
  chance(p: number): boolean {
    return this.u32() / 4294967296 < p;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)];
  }
}

/** Value mixes for the registers. */
export type Mix = 'arith' | 'mid' | 'any' | 'small' | 'tiny' | 'int' | 'trig';

/**
 * A random 80-bit value into out. The 'arith' mix keeps finite significands to 53 bits (the
 * exact domain of the double-based arithmetic, README "Precision").
 */
export function randF80(r: Rng, mix: Mix, out: F80): void {
  randF80Raw(r, mix === 'mid' ? 'arith' : mix, out);
  if ((mix === 'arith' || mix === 'mid' || mix === 'trig') && (out.se & 0x7fff) !== 0x7fff) out.lo = (out.lo & 0xfffff800) >>> 0;
  // mid: finite values stay within 2^+-2000 (no overflow/underflow boundary)
  const e = out.se & 0x7fff;
  if (mix === 'mid' && e !== 0x7fff && (e < 0x3fff - 2000 || e > 0x3fff + 2000) && (out.hi | out.lo) !== 0) {
    out.se = (out.se & 0x8000) | (0x3fff - 1000 + r.int(2000));
    out.hi = (out.hi | 0x80000000) >>> 0;
  }
}

function randF80Raw(r: Rng, mix: Mix, out: F80): void {
  randF80Any(r, mix, out);
  // trig: keep |x| < 2^12 (beyond, the x87's 66-bit pi reduction differs from the exact one)
  if (mix === 'trig' && (out.se & 0x7fff) > 0x3fff + 11 && (out.se & 0x7fff) < 0x3fff + 63) out.se = (out.se & 0x8000) | (0x3fff + r.int(12));
  // small: |x| < 1 (F2XM1's domain); tiny: |x| < 1/4 (FYL2XP1's domain)
  const lim = mix === 'small' ? 0x3ffe : mix === 'tiny' ? 0x3ffc : 0x7fff;
  if ((out.se & 0x7fff) > lim && (out.se & 0x7fff) !== 0x7fff) out.se = (out.se & 0x8000) | (lim - r.int(4));
}

function randF80Any(r: Rng, mix: Mix, out: F80): void {
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

export function makeCase(r: Rng, asm: string, code: Uint8Array, o: GenOptions): X87Case {
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
  return { asm, code, state, data };
}

/** Loads the FXSAVE-image x87 state (as FXRSTOR does) into cpu. */
function loadFx(cpu: Cpu, s: Uint8Array): void {
  const dv = new DataView(s.buffer, s.byteOffset);
  const fx = S_FX;
  cpu.fpCw = dv.getUint16(fx, true);
  const fsw = dv.getUint16(fx + 2, true);
  cpu.fpTop = (fsw >> 11) & 7;
  cpu.fpSw = fsw & ~0x3800;
  const ftw = s[fx + 4];
  for (let i = 0; i < 8; i++) {
    const p = (cpu.fpTop + i) & 7;
    cpu.mmx[2 * p] = dv.getUint32(fx + 32 + 16 * i, true) | 0;
    cpu.mmx[2 * p + 1] = dv.getUint32(fx + 36 + 16 * i, true) | 0;
    cpu.fprExt[p] = dv.getUint16(fx + 40 + 16 * i, true);
  }
  let tag = 0;
  for (let p = 0; p < 8; p++) if ((ftw & (1 << p)) === 0) tag |= 3 << (2 * p);
  cpu.fpTag = tag;
  cpu.fpTag = fullTagWord(cpu);
}

/** Runs a case in the emulator (64-bit mode, flat memory with the code and data pages). */
export function emulate(c: X87Case): X87Result {
  const mem = new FlatMemory(0x2000, CODE_ADDR);
  mem.bytes.set(c.code, 0);
  mem.bytes.set(c.data, DATA_ADDR - CODE_ADDR);
  const cpu = new Cpu(mem, { fpu: true, mmx: true, sse: true, sse2: true, sse3: true, ssse3: true });
  const sv = new DataView(c.state.buffer, c.state.byteOffset);
  for (let r = 0; r < 16; r++) {
    cpu.lo[r] = sv.getUint32(r * 8, true) | 0;
    cpu.hi[r] = sv.getUint32(r * 8 + 4, true) | 0;
  }
  cpu.setFlags(sv.getUint32(S_RFLAGS, true));
  cpu.mxcsr = sv.getUint32(S_MXCSR, true);
  loadFx(cpu, c.state);
  cpu.rip = CODE_ADDR;
  const end = CODE_ADDR + c.code.length;
  let signal = 0;
  let faultOffset = 0;
  for (let steps = 0; steps < 100 && cpu.rip !== end; steps++) {
    const ex = cpu.run(1);
    if (ex === EXIT_EXCEPTION) {
      signal = SIG_OF_VECTOR[cpu.faultVector] ?? 100 + cpu.faultVector;
      faultOffset = cpu.rip - CODE_ADDR;
      break;
    }
    if (ex !== EXIT_BUDGET) {
      signal = 200 + ex;
      break;
    }
  }
  const state = new Uint8Array(STATE_LEN);
  const ov = new DataView(state.buffer);
  for (let r = 0; r < 16; r++) {
    ov.setUint32(S_REGS + r * 8, cpu.lo[r] >>> 0, true);
    ov.setUint32(S_REGS + r * 8 + 4, cpu.hi[r] >>> 0, true);
  }
  ov.setUint32(S_RFLAGS, cpu.getFlags(), true);
  ov.setUint32(S_MXCSR, cpu.mxcsr, true);
  const fx = S_FX;
  ov.setUint16(fx, cpu.fpCw, true);
  ov.setUint16(fx + 2, statusWord(cpu), true);
  let ftw = 0;
  for (let p = 0; p < 8; p++) if (((cpu.fpTag >> (2 * p)) & 3) !== 3) ftw |= 1 << p;
  state[fx + 4] = ftw;
  for (let i = 0; i < 8; i++) {
    const p = (cpu.fpTop + i) & 7;
    ov.setUint32(fx + 32 + 16 * i, cpu.mmx[2 * p] >>> 0, true);
    ov.setUint32(fx + 36 + 16 * i, cpu.mmx[2 * p + 1] >>> 0, true);
    ov.setUint16(fx + 40 + 16 * i, cpu.fprExt[p], true);
  }
  if (signal === 0) {
    ov.setUint16(S_ENV, cpu.fpCw, true);
    ov.setUint16(S_ENV + 4, statusWord(cpu), true);
    ov.setUint16(S_ENV + 8, fullTagWord(cpu), true);
  }
  return { signal, faultOffset, state, data: mem.bytes.slice(DATA_ADDR - CODE_ADDR, DATA_ADDR - CODE_ADDR + DATA_LEN) };
}

const REG_NAMES = ['rax', 'rcx', 'rdx', 'rbx', 'rsp', 'rbp', 'rsi', 'rdi', 'r8', 'r9', 'r10', 'r11', 'r12', 'r13', 'r14', 'r15'];
const h = (v: number, n = 8): string => (v >>> 0).toString(16).padStart(n, '0');

function stText(dv: DataView, i: number): string {
  const o = S_FX + 32 + 16 * i;
  return `${h(dv.getUint16(o + 8, true), 4)}:${h(dv.getUint32(o + 4, true))}${h(dv.getUint32(o, true))}`;
}

export interface CompareOptions {
  /** Status-word bits not compared (undefined condition codes, approximate PE/C1). */
  swIgnore?: number;
  /** Relative tolerance for register values (approximate instructions); 0 = bit-exact. */
  tol?: number;
  /** Data bytes not compared: [from, to). */
  dataIgnore?: readonly (readonly [number, number])[];
}

function within(a: F80, b: F80, tol: number): boolean {
  if (a.se === b.se && a.hi === b.hi && a.lo === b.lo) return true;
  const x = toDouble(a);
  const y = toDouble(b);
  if (Number.isNaN(x) || Number.isNaN(y)) return false;
  if (x === y) return true;
  if (!Number.isFinite(x) || !Number.isFinite(y)) return false;
  return Math.abs(x - y) <= tol * Math.max(Math.abs(x), Math.abs(y)) + 1e-300;
}

const TA = new F80();
const TB = new F80();

/** Describes the differences between native (n) and emulated (e) results, '' when they agree. */
export function compare(n: X87Result, e: X87Result, o: CompareOptions = {}): string {
  const d: string[] = [];
  const nv = new DataView(n.state.buffer, n.state.byteOffset);
  const ev = new DataView(e.state.buffer, e.state.byteOffset);
  if (n.signal !== e.signal) d.push(`signal native ${n.signal} emu ${e.signal}`);
  else if (n.signal !== 0 && n.faultOffset !== e.faultOffset) d.push(`fault offset native ${n.faultOffset} emu ${e.faultOffset}`);
  for (let r = 0; r < 16; r++) {
    if (r === RSP) continue;
    const a = nv.getUint32(r * 8, true);
    const b = ev.getUint32(r * 8, true);
    const ah = nv.getUint32(r * 8 + 4, true);
    const bh = ev.getUint32(r * 8 + 4, true);
    if (a !== b || ah !== bh) d.push(`${REG_NAMES[r]} native ${h(ah)}${h(a)} emu ${h(bh)}${h(b)}`);
  }
  if ((nv.getUint32(S_RFLAGS, true) ^ ev.getUint32(S_RFLAGS, true)) & 0x8d5) d.push(`rflags native ${h(nv.getUint32(S_RFLAGS, true))} emu ${h(ev.getUint32(S_RFLAGS, true))}`);
  const fx = S_FX;
  const ncw = nv.getUint16(fx, true);
  const ecw = ev.getUint16(fx, true);
  if (ncw !== ecw) d.push(`fcw native ${h(ncw, 4)} emu ${h(ecw, 4)}`);
  const ign = o.swIgnore ?? 0;
  const nsw = nv.getUint16(fx + 2, true);
  const esw = ev.getUint16(fx + 2, true);
  if ((nsw ^ esw) & ~ign & 0xffff) d.push(`fsw native ${h(nsw, 4)} emu ${h(esw, 4)}`);
  if (n.state[fx + 4] !== e.state[fx + 4]) d.push(`ftw native ${h(n.state[fx + 4], 2)} emu ${h(e.state[fx + 4], 2)}`);
  if (n.signal === 0) {
    const nt = nv.getUint16(S_ENV + 8, true);
    const et = ev.getUint16(S_ENV + 8, true);
    if (nt !== et) d.push(`full tag word native ${h(nt, 4)} emu ${h(et, 4)}`);
  }
  const tol = o.tol ?? 0;
  for (let i = 0; i < 8; i++) {
    const off = fx + 32 + 16 * i;
    TA.lo = nv.getUint32(off, true);
    TA.hi = nv.getUint32(off + 4, true);
    TA.se = nv.getUint16(off + 8, true);
    TB.lo = ev.getUint32(off, true);
    TB.hi = ev.getUint32(off + 4, true);
    TB.se = ev.getUint16(off + 8, true);
    const same = TA.lo === TB.lo && TA.hi === TB.hi && TA.se === TB.se;
    if (!same && !(tol > 0 && within(TA, TB, tol))) d.push(`st${i} native ${stText(nv, i)} emu ${stText(ev, i)}`);
  }
  for (let i = 0; i < DATA_LEN; i++) {
    if (n.data[i] !== e.data[i] && !(o.dataIgnore ?? []).some(([a, b]) => i >= a && i < b)) {
      d.push(`data[${i}] native ${h(n.data[i], 2)} emu ${h(e.data[i], 2)}`);
      break;
    }
  }
  return d.join('; ');
}

/** The input x87 state of a case as text (for failure messages). */
export function describeInput(c: X87Case): string {
  const sv = new DataView(c.state.buffer, c.state.byteOffset);
  const fx = S_FX;
  const parts = [`fcw=${h(sv.getUint16(fx, true), 4)} fsw=${h(sv.getUint16(fx + 2, true), 4)} ftw=${h(c.state[fx + 4], 2)}`];
  for (let i = 0; i < 8; i++) parts.push(`st${i}=${stText(sv, i)}`);
  const dv = new DataView(c.data.buffer, c.data.byteOffset);
  parts.push(`m32=${h(dv.getUint32(0, true))} m64=${h(dv.getUint32(12, true))}${h(dv.getUint32(8, true))} m80=${h(dv.getUint16(24, true), 4)}:${h(dv.getUint32(20, true))}${h(dv.getUint32(16, true))}`);
  parts.push(`i16=${h(dv.getUint16(32, true), 4)} i32=${h(dv.getUint32(40, true))} i64=${h(dv.getUint32(52, true))}${h(dv.getUint32(48, true))}`);
  parts.push(`rflags=${h(sv.getUint32(S_RFLAGS, true))}`);
  return parts.join(' ');
}

export interface Form extends GenOptions, CompareOptions {
  asm: string;
}

/** Runs every form perForm times; returns the failures (at most 4 per form reported). */
export function runForms(
  native: { assemble(s: readonly string[]): Uint8Array[]; run(c: readonly X87Case[]): X87Result[] },
  forms: readonly Form[],
  perForm: number,
  seed: number,
): { cases: number; failures: string[] } {
  const codes = native.assemble(forms.map((f) => f.asm));
  const r = new Rng(seed ^ (forms.length * 7919));
  const cases: X87Case[] = [];
  const formOf: number[] = [];
  forms.forEach((f, i) => {
    for (let k = 0; k < perForm; k++) {
      cases.push(makeCase(r, f.asm, codes[i], f));
      formOf.push(i);
    }
  });
  const res = native.run(cases);
  const failures: string[] = [];
  const perFormFail = new Array<number>(forms.length).fill(0);
  cases.forEach((c, i) => {
    const f = forms[formOf[i]];
    const e = emulate(c);
    const diff = compare(res[i], e, f);
    if (diff && perFormFail[formOf[i]]++ < 4) failures.push(`${f.asm}: ${diff}\n    input: ${describeInput(c)}`);
  });
  return { cases: cases.length, failures };
}
