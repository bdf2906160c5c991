/**
 * Shared driver of the SSE/MMX differential tests: a form is one instruction text (nasm) and
 * the kind of random operands it wants; each form runs `perForm` random cases natively and in
 * the emulator, and every difference is reported with the input state.
 */
import { compare, describeInput, emulate, makeCase, Rng, type GenOptions } from './diff';
import type { SseCase, SseNative, SseResult } from './native';

export interface Form extends GenOptions {
  asm: string;
}

/** Cases per form: RZ_SSE_CASES (default 60). Seed: RZ_SSE_SEED. */
export const PER_FORM: number = Number(process.env.RZ_SSE_CASES ?? 60);
export const SEED: number = Number(process.env.RZ_SSE_SEED ?? 20261121);

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

export interface Failure {
  c: SseCase;
  n: SseResult;
  e: SseResult;
  diff: string;
}

/** Runs every form perForm times; returns the failures (at most 8 per form reported). */
export function runForms(native: SseNative, forms: readonly Form[], perForm: number = PER_FORM, seed: number = SEED): { cases: number; failures: string[] } {
  const codes = native.assemble(forms.map((f) => f.asm));
  const r = new Rng(seed ^ forms.length);
  const cases: SseCase[] = [];
  forms.forEach((f, i) => {
    for (let k = 0; k < perForm; k++) cases.push(makeCase(r, f.asm, codes[i], f));
  });
  const res = native.run(cases);
  const failures: string[] = [];
  const perAsm = new Map<string, number>();
  for (let i = 0; i < cases.length; i++) {
    const c = cases[i];
    const e = emulate(c);
    const diff = compare(c, res[i], e);
    if (diff) {
      const k = (perAsm.get(c.asm) ?? 0) + 1;
      perAsm.set(c.asm, k);
      if (k <= 3) failures.push(`${c.asm}: ${diff}\n    input: ${describeInput(c)}`);
    }
  }
  for (const [asm, k] of perAsm) if (k > 3) failures.push(`${asm}: ${k - 3} more failures`);
  return { cases: cases.length, failures };
}
