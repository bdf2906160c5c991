/**
 * The one comparison and reporting path of the differential tests (no Node built-ins):
 * compare() states every difference between the host CPU's result and RingZero's, runDiff()
 * assembles a batch of cases, runs them natively and in the emulator and collects the failures.
 */
import { F80, toDouble } from '../x87/float80';
import { DATA_LEN, emulate, ENV_FTW, FX_FCW, FX_FSW, FX_FTW, FX_MXCSR, FX_ST, FX_XMM, type CodeBits, type NativeCase, type NativeResult } from './case';

/** What is compared (everything, bit for bit, unless an option says otherwise). */
export interface CompareOptions {
  /** EFLAGS bits compared (default CF PF AF ZF SF OF DF: 0x8d5). */
  flagMask?: number;
  /** x87 status-word bits not compared (SDM-undefined condition codes, approximate PE/C1). */
  swIgnore?: number;
  /** Relative tolerance for ST0-7 (approximate instructions); 0 = bit-exact. */
  tol?: number;
  /** Data bytes not compared: [from, to). */
  dataIgnore?: readonly (readonly [number, number])[];
}

export const REG_NAMES: readonly string[] = ['rax', 'rcx', 'rdx', 'rbx', 'rsp', 'rbp', 'rsi', 'rdi', 'r8', 'r9', 'r10', 'r11', 'r12', 'r13', 'r14', 'r15'];
const h = (v: number, n = 8): string => (v >>> 0).toString(16).padStart(n, '0');
const u16 = (b: Uint8Array, o: number): number => b[o] | (b[o + 1] << 8);
const u32 = (b: Uint8Array, o: number): number => (b[o] | (b[o + 1] << 8) | (b[o + 2] << 16) | (b[o + 3] << 24)) >>> 0;

function stText(fx: Uint8Array, i: number): string {
  const o = FX_ST + 16 * i;
  return `${h(u16(fx, o + 8), 4)}:${h(u32(fx, o + 4))}${h(u32(fx, o))}`;
}

function xmmText(fx: Uint8Array, r: number): string {
  const o = FX_XMM + 16 * r;
  return `${h(u32(fx, o + 12))}_${h(u32(fx, o + 8))}_${h(u32(fx, o + 4))}_${h(u32(fx, o))}`;
}

const TA = new F80();
const TB = new F80();

function loadSt(fx: Uint8Array, i: number, v: F80): void {
  const o = FX_ST + 16 * i;
  v.lo = u32(fx, o);
  v.hi = u32(fx, o + 4);
  v.se = u16(fx, o + 8);
}

function within(a: F80, b: F80, tol: number): boolean {
  const x = toDouble(a);
  const y = toDouble(b);
  if (Number.isNaN(x) || Number.isNaN(y)) return false;
  if (x === y) return true;
  if (!Number.isFinite(x) || !Number.isFinite(y)) return false;
  return Math.abs(x - y) <= tol * Math.max(Math.abs(x), Math.abs(y)) + 1e-300;
}

/** Describes the differences between native (n) and emulated (e) results, '' when they agree. */
export function compare(mode: CodeBits, n: NativeResult, e: NativeResult, o: CompareOptions = {}): string {
  const d: string[] = [];
  if (n.signal !== e.signal) d.push(`signal native ${n.signal} emu ${e.signal}`);
  if ((n.signal !== 0 || e.signal !== 0) && n.faultOffset !== e.faultOffset) d.push(`fault offset native ${n.faultOffset} emu ${e.faultOffset}`);
  const wide = mode === 64;
  for (let r = 0; r < (wide ? 16 : 8); r++) {
    const lo = n.regs[r * 2] !== e.regs[r * 2] >>> 0;
    const hi = wide && n.regs[r * 2 + 1] !== e.regs[r * 2 + 1] >>> 0;
    if (lo || hi) d.push(`${REG_NAMES[r]} native ${wide ? h(n.regs[r * 2 + 1]) : ''}${h(n.regs[r * 2])} emu ${wide ? h(e.regs[r * 2 + 1]) : ''}${h(e.regs[r * 2])}`);
  }
  const mask = o.flagMask ?? 0x8d5;
  const fl = (n.rflags ^ e.rflags) & mask;
  if (fl) d.push(`flags native ${h(n.rflags)} emu ${h(e.rflags)} (differ ${fl.toString(16)}, compared ${mask.toString(16)})`);
  // x87
  if (u16(n.fx, FX_FCW) !== u16(e.fx, FX_FCW)) d.push(`fcw native ${h(u16(n.fx, FX_FCW), 4)} emu ${h(u16(e.fx, FX_FCW), 4)}`);
  const sw = (u16(n.fx, FX_FSW) ^ u16(e.fx, FX_FSW)) & ~(o.swIgnore ?? 0) & 0xffff;
  if (sw) d.push(`fsw native ${h(u16(n.fx, FX_FSW), 4)} emu ${h(u16(e.fx, FX_FSW), 4)}`);
  if (n.fx[FX_FTW] !== e.fx[FX_FTW]) d.push(`ftw native ${h(n.fx[FX_FTW], 2)} emu ${h(e.fx[FX_FTW], 2)}`);
  if (n.signal === 0 && e.signal === 0 && u16(n.env, ENV_FTW) !== u16(e.env, ENV_FTW)) d.push(`full tag word native ${h(u16(n.env, ENV_FTW), 4)} emu ${h(u16(e.env, ENV_FTW), 4)}`);
  const tol = o.tol ?? 0;
  for (let i = 0; i < 8; i++) {
    loadSt(n.fx, i, TA);
    loadSt(e.fx, i, TB);
    const same = TA.lo === TB.lo && TA.hi === TB.hi && TA.se === TB.se;
    if (!same && !(tol > 0 && within(TA, TB, tol))) d.push(`st${i} native ${stText(n.fx, i)} emu ${stText(e.fx, i)}`);
  }
  // SSE
  if (u32(n.fx, FX_MXCSR) !== u32(e.fx, FX_MXCSR)) d.push(`mxcsr native ${h(u32(n.fx, FX_MXCSR))} emu ${h(u32(e.fx, FX_MXCSR))}`);
  for (let r = 0; r < 16; r++) {
    const a = FX_XMM + 16 * r;
    for (let k = 0; k < 16; k += 4) {
      if (u32(n.fx, a + k) !== u32(e.fx, a + k)) {
        d.push(`xmm${r} native ${xmmText(n.fx, r)} emu ${xmmText(e.fx, r)}`);
        break;
      }
    }
  }
  for (let i = 0; i < DATA_LEN; i++) {
    if (n.data[i] !== e.data[i] && !(o.dataIgnore ?? []).some(([a, b]) => i >= a && i < b)) {
      d.push(`data[${i}] native ${h(n.data[i], 2)} emu ${h(e.data[i], 2)}`);
      break;
    }
  }
  for (let i = 0; i < n.hi.length; i++) {
    if (n.hi[i] !== e.hi[i]) {
      d.push(`hi[${i}] native ${h(n.hi[i], 2)} emu ${h(e.hi[i], 2)}`);
      break;
    }
  }
  return d.join('; ');
}

/** The input state of a case as text (for failure messages): GPRs, flags, x87/SSE state in use, data. */
export function describeInput(c: Omit<NativeCase, 'code'>): string {
  const parts: string[] = [];
  for (let r = 0; r < (c.mode === 64 ? 16 : 8); r++) parts.push(`${REG_NAMES[r]}=${h(c.regs[r * 2 + 1])}${h(c.regs[r * 2])}`);
  parts.push(`flags=${h(c.rflags)}`);
  const fx = c.fx;
  if (fx) {
    parts.push(`fcw=${h(u16(fx, FX_FCW), 4)} fsw=${h(u16(fx, FX_FSW), 4)} ftw=${h(fx[FX_FTW], 2)} mxcsr=${h(u32(fx, FX_MXCSR))}`);
    for (let i = 0; i < 8; i++) parts.push(`st${i}=${stText(fx, i)}`);
    for (let r = 0; r < 16; r++) parts.push(`xmm${r}=${xmmText(fx, r)}`);
  }
  const n = Math.min(64, c.data.length) & ~3;
  const words: string[] = [];
  for (let i = 0; i < n; i += 4) words.push(h(u32(c.data, i)));
  parts.push(`data[0..${n - 1}]=${words.join(' ')}`);
  return parts.join(' ');
}

/** A case before assembly: the snippet text and its label (failures are grouped by label). */
export interface DiffCase extends Omit<NativeCase, 'code'> {
  label: string;
  text: string;
  cmp?: CompareOptions;
}

/** What runDiff needs from the native side (NativeHarness). */
export interface NativeRunner {
  assemble(snippets: readonly string[], bits: CodeBits): Uint8Array[];
  run(cases: readonly NativeCase[]): NativeResult[];
}

export interface DiffPair {
  c: DiffCase;
  code: Uint8Array;
  native: NativeResult;
  emu: NativeResult;
  /** The same case run through the block compiler (src/jit). */
  jit: NativeResult;
}

/** Assembles (one nasm run per code size, each distinct text once), runs natively and in the emulator. */
export function runPairs(h: NativeRunner, cases: readonly DiffCase[]): DiffPair[] {
  const codeOf = new Map<string, Uint8Array>();
  for (const mode of [64, 32, 16] as const) {
    const texts = [...new Set(cases.filter((c) => c.mode === mode).map((c) => c.text))];
    if (texts.length === 0) continue;
    const codes = h.assemble(texts, mode);
    texts.forEach((t, i) => codeOf.set(`${mode}:${t}`, codes[i]));
  }
  const full = cases.map((c) => ({ mode: c.mode, code: codeOf.get(`${c.mode}:${c.text}`)!, regs: c.regs, rflags: c.rflags, data: c.data, ...(c.hi ? { hi: c.hi } : {}), ...(c.fx ? { fx: c.fx } : {}) }));
  const native = h.run(full);
  return cases.map((c, i) => ({ c, code: full[i].code, native: native[i], emu: emulate(full[i]), jit: emulate(full[i], true) }));
}

/**
 * Runs the cases natively and in the emulator and returns one message per failing case (at most
 * maxPerLabel per label, then a count), each with the snippet and its input state.
 */
export function runDiff(h: NativeRunner, cases: readonly DiffCase[], maxPerLabel = 4): { cases: number; failures: string[] } {
  const failures: string[] = [];
  const per = new Map<string, number>();
  for (const { c, native, emu, jit } of runPairs(h, cases)) {
    const e = compare(c.mode, native, emu, c.cmp);
    const j = compare(c.mode, native, jit, c.cmp);
    const diff = e || (j && `with the JIT: ${j}`);
    if (!diff) continue;
    const k = (per.get(c.label) ?? 0) + 1;
    per.set(c.label, k);
    if (k <= maxPerLabel) failures.push(`[${c.mode}-bit] ${c.label}: ${c.text.replace(/\n/g, ' ; ')}\n    ${diff}\n    input: ${describeInput(c)}`);
  }
  for (const [label, k] of per) if (k > maxPerLabel) failures.push(`${label}: ${k - maxPerLabel} more failures`);
  return { cases: cases.length, failures };
}
