/**
 * Differential tests against the host CPU: every generated case runs natively (through the
 * runner built from src/harness/native) and in the emulator; registers, the compared flags,
 * the data page and faults must agree. RZ_DIFF_CASES sets cases per form (default 6: a few
 * hundred per mnemonic); RZ_DIFF_SEED picks the random seed (default fixed, printed on failure).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cpu } from '../cpu';
import { PagedMemory, PROT_EXEC, PROT_READ, PROT_WRITE } from '../user/paged-memory';
import { BP, BR, DB, DE, EXIT_EXCEPTION, EXIT_SOFTINT, GP, PF_VEC, SS_VEC, UD, NP } from '../constants';
import { OPS } from '../optable';
import { CODE_ADDR, DATA_ADDR, DATA_LEN, NativeHarness, nativeUnavailable, type NativeResult } from './native';
import { tableCases, templateCases, type GenCase } from './gen';

const SEED = Number(process.env.RZ_DIFF_SEED ?? 20261121);
const PER_FORM = Number(process.env.RZ_DIFF_CASES ?? 6);

const SIG_OF_VECTOR: Record<number, number> = { [DE]: 8, [UD]: 4, [GP]: 11, [PF_VEC]: 11, [SS_VEC]: 7, [NP]: 11, [BP]: 5, [DB]: 5, [BR]: 11 };

interface EmuResult {
  signal: number;
  faultOffset: number;
  regs: Uint32Array;
  rflags: number;
  data: Uint8Array;
}

export function emulate(c: GenCase, code: Uint8Array): EmuResult {
  // Paged memory (as ringzero-user uses), so the decode cache is exercised by every case too.
  const mem = new PagedMemory();
  mem.map(CODE_ADDR, 0x1000, PROT_READ | PROT_WRITE | PROT_EXEC);
  mem.map(DATA_ADDR, 0x1000, PROT_READ | PROT_WRITE);
  mem.poke(CODE_ADDR, code);
  mem.poke(DATA_ADDR, c.data);
  const cpu = new Cpu(mem);
  cpu.csize = c.mode === 64 ? 8 : 4;
  cpu.ssize = cpu.csize;
  for (let r = 0; r < 16; r++) {
    cpu.lo[r] = c.regs[r * 2];
    cpu.hi[r] = c.regs[r * 2 + 1];
  }
  cpu.setFlags(c.rflags);
  cpu.rip = CODE_ADDR;
  const end = CODE_ADDR + code.length;
  let signal = 0;
  let faultOffset = 0;
  for (let steps = 0; steps < 10000 && cpu.rip !== end; steps++) {
    const ex = cpu.run(1);
    if (ex === EXIT_EXCEPTION || ex === EXIT_SOFTINT) {
      signal = SIG_OF_VECTOR[cpu.faultVector] ?? 100 + cpu.faultVector;
      faultOffset = cpu.rip - CODE_ADDR;
      break;
    }
  }
  const regs = new Uint32Array(32);
  for (let r = 0; r < 16; r++) {
    regs[r * 2] = cpu.lo[r];
    regs[r * 2 + 1] = cpu.hi[r];
  }
  return { signal, faultOffset, regs, rflags: cpu.getFlags(), data: mem.peek(DATA_ADDR, DATA_LEN)! };
}

const NAMES = ['rax', 'rcx', 'rdx', 'rbx', 'rsp', 'rbp', 'rsi', 'rdi', 'r8', 'r9', 'r10', 'r11', 'r12', 'r13', 'r14', 'r15'];
const hex = (lo: number, hi: number): string => `0x${(hi >>> 0).toString(16).padStart(8, '0')}${(lo >>> 0).toString(16).padStart(8, '0')}`;

/** Describes the differences between native and emulated results, or '' when they agree. */
export function compare(c: GenCase, n: NativeResult, e: EmuResult): string {
  const diffs: string[] = [];
  if (n.signal !== e.signal) diffs.push(`signal native ${n.signal} emu ${e.signal}`);
  if (n.signal !== 0 || e.signal !== 0) {
    if (n.faultOffset !== e.faultOffset) diffs.push(`fault offset native ${n.faultOffset} emu ${e.faultOffset}`);
    return diffs.join('; ');
  }
  const nr = c.mode === 64 ? 16 : 8;
  for (let r = 0; r < nr; r++) {
    const lo = n.regs[r * 2] !== e.regs[r * 2] >>> 0;
    const hi = c.mode === 64 && n.regs[r * 2 + 1] !== e.regs[r * 2 + 1] >>> 0;
    if (lo || hi) diffs.push(`${NAMES[r]} native ${hex(n.regs[r * 2], c.mode === 64 ? n.regs[r * 2 + 1] : 0)} emu ${hex(e.regs[r * 2], c.mode === 64 ? e.regs[r * 2 + 1] : 0)}`);
  }
  const fx = (n.rflags ^ e.rflags) & c.flagMask;
  if (fx) diffs.push(`flags native ${n.rflags.toString(16)} emu ${e.rflags.toString(16)} (differ ${fx.toString(16)}, compared ${c.flagMask.toString(16)})`);
  for (let i = 0; i < DATA_LEN; i++) {
    if (n.data[i] !== e.data[i]) {
      diffs.push(`data[${i}] native ${n.data[i]} emu ${e.data[i]}`);
      break;
    }
  }
  return diffs.join('; ');
}

const why = nativeUnavailable();
if (why) console.warn(`SKIPPED: ${why}: differential tests against the host CPU not run`);

describe.skipIf(why != null)('differential: emulator vs host CPU', () => {
  let h: NativeHarness;
  beforeAll(() => {
    h = new NativeHarness();
  });
  afterAll(() => h?.dispose());

  function runAll(cases: GenCase[]): { failures: string[]; covered: Set<number> } {
    const failures: string[] = [];
    const covered = new Set<number>();
    for (const mode of [64, 32] as const) {
      const sub = cases.filter((c) => c.mode === mode);
      if (sub.length === 0) continue;
      const codes = h.assemble(sub.map((c) => c.text), mode);
      const native = h.run(sub.map((c, i) => ({ mode, code: codes[i], regs: c.regs, rflags: c.rflags, data: c.data })));
      sub.forEach((c, i) => {
        const e = emulate(c, codes[i]);
        const d = compare(c, native[i], e);
        if (c.op >= 0) covered.add(c.op);
        if (d) failures.push(`[${mode}-bit] ${c.name}: ${c.text.replace(/\n/g, ' ; ')}\n    regs in: ${Array.from({ length: mode === 64 ? 16 : 8 }, (_, r) => `${NAMES[r]}=${hex(c.regs[r * 2], c.regs[r * 2 + 1])}`).join(' ')} flags=${c.rflags.toString(16)}\n    ${d}`);
      });
    }
    return { failures, covered };
  }

  it(`table-generated cases (${PER_FORM} per form, seed ${SEED}) agree with the host`, () => {
    const cases = tableCases(SEED, PER_FORM);
    const { failures, covered } = runAll(cases);
    const missing = OPS.filter((_o, i) => i > 0 && !covered.has(i)).map((o) => `${o.mnem} ${o.operands}`);
    console.log(`differential: ${cases.length} table cases, ${covered.size} of ${OPS.length - 1} table entries generated; not generated from the table: ${[...new Set(missing)].join(', ')}`);
    expect(failures.slice(0, 25).join('\n'), `${failures.length} mismatches (seed ${SEED})`).toBe('');
  });

  it('captures x87/SSE state (FXSAVE image) for the x87 and SSE groups', () => {
    const [code] = h.assemble(['pcmpeqd xmm1, xmm1\nfld1\nfldpi'], 64);
    const regs = new Uint32Array(32);
    regs[8] = DATA_ADDR + 0x1f0;
    const [r] = h.run([{ mode: 64, code, regs, rflags: 0x202, data: new Uint8Array(DATA_LEN) }]);
    expect(r.signal).toBe(0);
    expect(Array.from(r.fx.subarray(160 + 16, 160 + 32))).toEqual(new Array(16).fill(0xff)); // XMM1
    expect(r.fx[0] | (r.fx[1] << 8)).toBe(0x037f); // FCW
    expect(((r.fx[2] | (r.fx[3] << 8)) >> 11) & 7).toBe(6); // TOP after two loads
    // ST0 = pi as an 80-bit extended: mantissa 0xc90fdaa22168c235, exponent 0x4000
    expect(Buffer.from(r.fx.subarray(32, 42)).toString('hex')).toBe('35c26821a2da0fc90040');
  });

  it(`templates (control flow, stack, strings, LEA, BCD...) agree with the host`, () => {
    const cases = templateCases(SEED, Math.max(2, Math.ceil(PER_FORM / 2)));
    const { failures } = runAll(cases);
    expect(failures.slice(0, 25).join('\n'), `${failures.length} mismatches of ${cases.length} (seed ${SEED})`).toBe('');
  });
});
