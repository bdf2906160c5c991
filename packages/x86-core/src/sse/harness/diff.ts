/**
 * Emulator side of the SSE/MMX differential tests: random case generation (edge-heavy
 * operands, random MXCSR), running a case in the emulator, and comparing with the host.
 * No Node built-ins here; the native side is native.ts.
 */
import { Cpu } from '../../cpu';
import { FlatMemory } from '../../memory';
import { AC_VEC, EXIT_BUDGET, EXIT_EXCEPTION, GP, MF, NM, PF_VEC, RBX, RSP, SS_VEC, UD, XM } from '../../constants';
import { CODE_ADDR, DATA_ADDR, DATA_LEN, S_CTL, S_FSW, S_FTW, S_MM, S_MXCSR, S_REGS, S_RFLAGS, S_XMM, STATE_LEN, type SseCase, type SseResult } from './native';

const SIG_OF_VECTOR: Record<number, number> = { [UD]: 4, [GP]: 11, [PF_VEC]: 11, [SS_VEC]: 7, [AC_VEC]: 7, [XM]: 8, [MF]: 8, [NM]: 11 };

/** xorshift128+ on 32-bit halves: deterministic, seeded. */
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
  /** Integer in [0, n). */
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

/** Lane kinds for random operand values. */
export type Kind = 'f32' | 'f64' | 'i8' | 'i16' | 'i32' | 'i64' | 'any';

const F32_SPECIAL = [0x00000000, 0x80000000, 0x7f800000, 0xff800000, 0x7fc00000, 0xffc00000, 0x7fa00000, 0x7f800001, 0xff812345, 0x00000001, 0x807fffff, 0x00400000, 0x00800000, 0x80800000, 0x7f7fffff, 0xff7fffff, 0x3f800000, 0xbf800000, 0x4f000000, 0xcf000000, 0x5f000000, 0xdf000000, 0x4effffff, 0x3f000000, 0x3fc00000, 0x40200000, 0xc0200000, 0x0c000000, 0x1f800000, 0x00ffffff];
const F64_SPECIAL_HI = [0x00000000, 0x80000000, 0x7ff00000, 0xfff00000, 0x7ff80000, 0xfff80000, 0x7ff40000, 0x00000001, 0x800fffff, 0x00080000, 0x00100000, 0x80100000, 0x7fefffff, 0xffefffff, 0x3ff00000, 0xbff00000, 0x41e00000, 0xc1e00000, 0x43e00000, 0xc3e00000, 0x41dfffff, 0x3fe00000, 0x3ff80000, 0x40040000, 0xc0040000, 0x36a00000, 0x38100000, 0x47efffff, 0x380fffff, 0x43400000];

function f32Lane(r: Rng): number {
  const k = r.int(10);
  if (k < 3) return F32_SPECIAL[r.int(F32_SPECIAL.length)] >>> 0;
  if (k < 4) return (r.u32() & 0x807fffff) >>> 0; // denormal
  if (k < 8) return (((r.u32() & 0x80000000) | ((118 + r.int(20)) << 23) | (r.u32() & 0x7fffff)) >>> 0); // near 1
  if (k < 9) return (((r.u32() & 0x80000000) | ((150 + r.int(10)) << 23) | (r.int(4) === 0 ? 0 : r.u32() & 0x7fffff)) >>> 0); // near 2^24..2^33 (integers)
  return r.u32();
}

/** Fills lo, hi of one f64 lane. */
function f64Lane(r: Rng, out: Uint32Array, i: number): void {
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
export function fillKind(r: Rng, kind: Kind, out: Uint32Array, i: number, n: number): void {
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

export function randomMxcsr(r: Rng, float: boolean, unmasked = false): number {
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
export function makeCase(r: Rng, asm: string, code: Uint8Array, o: GenOptions): SseCase {
  const state = new Uint8Array(STATE_LEN);
  const s32 = new Uint32Array(state.buffer);
  for (let q = 0; q < 16; q++) {
    const e = r.int(8);
    s32[q * 2] = e === 0 ? 0 : e === 1 ? 0xffffffff : e === 2 ? 0x80000000 : e === 3 ? 0x7fffffff : r.u32();
    s32[q * 2 + 1] = e === 0 ? 0 : e === 1 ? 0xffffffff : e === 2 ? (r.chance(0.5) ? 0xffffffff : 0) : e === 3 ? (r.chance(0.5) ? 0x7fffffff : 0) : r.u32();
  }
  s32[RBX * 2] = DATA_ADDR;
  s32[RBX * 2 + 1] = 0;
  s32[RSP * 2] = s32[RSP * 2 + 1] = 0;
  s32[S_RFLAGS / 4] = (0x202 | (r.u32() & 0x8d5)) >>> 0;
  s32[S_MXCSR / 4] = randomMxcsr(r, o.mxcsr !== 'plain', o.mxcsr === 'unmasked');
  s32[S_CTL / 4] = o.mmx ? 1 : 0;
  fillKind(r, o.kind, s32, S_XMM / 4, 64);
  fillKind(r, o.kind, s32, S_MM / 4, 16);
  const data = new Uint8Array(DATA_LEN);
  fillKind(r, o.kind, new Uint32Array(data.buffer), 0, DATA_LEN / 4);
  return { asm, code, state, data };
}

/** Runs a case in the emulator (64-bit mode, flat memory with the code and data pages). */
export function emulate(c: SseCase): SseResult {
  const mem = new FlatMemory(0x2000, CODE_ADDR);
  mem.bytes.set(c.code, 0);
  mem.bytes.set(c.data, DATA_ADDR - CODE_ADDR);
  const cpu = new Cpu(mem, { fpu: true, mmx: true, sse: true, sse2: true, sse3: true, ssse3: true });
  const s32 = new Uint32Array(c.state.buffer.slice(0));
  for (let r = 0; r < 16; r++) {
    cpu.lo[r] = s32[r * 2];
    cpu.hi[r] = s32[r * 2 + 1];
  }
  cpu.setFlags(s32[S_RFLAGS / 4]);
  cpu.mxcsr = s32[S_MXCSR / 4];
  for (let i = 0; i < 64; i++) cpu.xmm[i] = s32[S_XMM / 4 + i];
  cpu.fpTop = 0;
  cpu.fpSw = 0;
  cpu.fpCw = 0x37f;
  for (let i = 0; i < 16; i++) cpu.mmx[i] = s32[S_MM / 4 + i];
  cpu.fpTag = s32[S_CTL / 4] & 1 ? 0 : 0xffff;
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
  const out = new Uint32Array(STATE_LEN / 4);
  for (let r = 0; r < 16; r++) {
    out[(S_REGS >> 2) + r * 2] = cpu.lo[r];
    out[(S_REGS >> 2) + r * 2 + 1] = cpu.hi[r];
  }
  out[S_RFLAGS / 4] = cpu.getFlags();
  out[S_MXCSR / 4] = cpu.mxcsr;
  for (let i = 0; i < 64; i++) out[S_XMM / 4 + i] = cpu.xmm[i];
  for (let i = 0; i < 16; i++) out[S_MM / 4 + i] = cpu.mmx[i];
  const state = new Uint8Array(out.buffer);
  state[S_FSW] = 0;
  state[S_FSW + 1] = (cpu.fpTop & 7) << 3;
  let ftw = 0;
  for (let i = 0; i < 8; i++) if (((cpu.fpTag >> (2 * i)) & 3) !== 3) ftw |= 1 << i;
  state[S_FTW] = ftw;
  return { signal, faultOffset, state, data: mem.bytes.slice(DATA_ADDR - CODE_ADDR, DATA_ADDR - CODE_ADDR + DATA_LEN) };
}

const REG_NAMES = ['rax', 'rcx', 'rdx', 'rbx', 'rsp', 'rbp', 'rsi', 'rdi', 'r8', 'r9', 'r10', 'r11', 'r12', 'r13', 'r14', 'r15'];
const h32 = (v: number): string => (v >>> 0).toString(16).padStart(8, '0');

function xmmText(s: Uint32Array, r: number): string {
  const b = S_XMM / 4 + r * 4;
  return `${h32(s[b + 3])}_${h32(s[b + 2])}_${h32(s[b + 1])}_${h32(s[b])}`;
}

/** Describes the differences between native (n) and emulated (e) results, '' when they agree. */
export function compare(c: SseCase, n: SseResult, e: SseResult): string {
  const d: string[] = [];
  const ns = new Uint32Array(n.state.buffer.slice(n.state.byteOffset, n.state.byteOffset + STATE_LEN));
  const es = new Uint32Array(e.state.buffer.slice(e.state.byteOffset, e.state.byteOffset + STATE_LEN));
  if (n.signal !== e.signal) d.push(`signal native ${n.signal} emu ${e.signal}`);
  else if (n.signal !== 0 && n.faultOffset !== e.faultOffset) d.push(`fault offset native ${n.faultOffset} emu ${e.faultOffset}`);
  for (let r = 0; r < 16; r++) {
    if (r === RSP) continue;
    if (ns[r * 2] !== es[r * 2] || ns[r * 2 + 1] !== es[r * 2 + 1]) d.push(`${REG_NAMES[r]} native ${h32(ns[r * 2 + 1])}${h32(ns[r * 2])} emu ${h32(es[r * 2 + 1])}${h32(es[r * 2])}`);
  }
  const fx = (ns[S_RFLAGS / 4] ^ es[S_RFLAGS / 4]) & 0x8d5;
  if (fx) d.push(`rflags native ${h32(ns[S_RFLAGS / 4])} emu ${h32(es[S_RFLAGS / 4])}`);
  if (ns[S_MXCSR / 4] !== es[S_MXCSR / 4]) d.push(`mxcsr native ${h32(ns[S_MXCSR / 4])} emu ${h32(es[S_MXCSR / 4])}`);
  for (let r = 0; r < 16; r++) {
    const b = S_XMM / 4 + r * 4;
    if (ns[b] !== es[b] || ns[b + 1] !== es[b + 1] || ns[b + 2] !== es[b + 2] || ns[b + 3] !== es[b + 3]) d.push(`xmm${r} native ${xmmText(ns, r)} emu ${xmmText(es, r)}`);
  }
  const inMmx = (c.state[S_CTL] & 1) !== 0 || n.state[S_FTW] !== 0 || e.state[S_FTW] !== 0;
  if (inMmx && n.signal === 0) {
    if (n.state[S_FTW] !== e.state[S_FTW]) d.push(`ftw native ${n.state[S_FTW].toString(16)} emu ${e.state[S_FTW].toString(16)}`);
    if ((n.state[S_FSW + 1] & 0x38) !== (e.state[S_FSW + 1] & 0x38)) d.push(`x87 TOP native ${(n.state[S_FSW + 1] >> 3) & 7} emu ${(e.state[S_FSW + 1] >> 3) & 7}`);
    for (let r = 0; r < 8; r++) {
      const b = S_MM / 4 + r * 2;
      if (ns[b] !== es[b] || ns[b + 1] !== es[b + 1]) d.push(`mm${r} native ${h32(ns[b + 1])}${h32(ns[b])} emu ${h32(es[b + 1])}${h32(es[b])}`);
    }
  }
  for (let i = 0; i < DATA_LEN; i++) {
    if (n.data[i] !== e.data[i]) {
      d.push(`data[${i}] native ${n.data[i].toString(16)} emu ${e.data[i].toString(16)}`);
      break;
    }
  }
  return d.join('; ');
}

/** The input state of a case as text (for failure messages). */
export function describeInput(c: SseCase): string {
  const s = new Uint32Array(c.state.buffer.slice(c.state.byteOffset, c.state.byteOffset + STATE_LEN));
  const parts = [`mxcsr=${h32(s[S_MXCSR / 4])}`];
  for (let r = 0; r < 16; r++) parts.push(`xmm${r}=${xmmText(s, r)}`);
  if (s[S_CTL / 4] & 1) for (let r = 0; r < 8; r++) parts.push(`mm${r}=${h32(s[S_MM / 4 + r * 2 + 1])}${h32(s[S_MM / 4 + r * 2])}`);
  for (const r of [0, 1, 2, 6, 7, 8]) parts.push(`${REG_NAMES[r]}=${h32(s[r * 2 + 1])}${h32(s[r * 2])}`);
  const dv = new Uint32Array(c.data.buffer.slice(c.data.byteOffset, c.data.byteOffset + 64));
  parts.push(`data[0..63]=${Array.from(dv, h32).join(' ')}`);
  return parts.join(' ');
}
