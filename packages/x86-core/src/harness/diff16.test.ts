/**
 * 16-bit code against the host CPU: the native runner installs a 16-bit code segment (D = 0)
 * and 16-bit data/stack segments in the LDT with modify_ldt and enters them by IRETQ, so the
 * host CPU runs real 16-bit operand- and address-size code; the same bytes run in RingZero's
 * 16-bit mode. Table-generated cases (every entry at 16- and 32-bit operand size, register
 * forms and memory forms with the 16-bit addressing modes) and templates (gen16.ts). Registers
 * (low 32 bits), flags (the SDM-defined ones), the data page, x87/SSE state and faults (signal
 * and IP) must agree. RZ_DIFF_CASES / RZ_DIFF_SEED as in diff.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runDiff, runPairs, type DiffCase } from './compare';
import { tableCases, type GenCase } from './gen';
import { templateCases16 } from './gen16';
import { openHarness } from './harness';
import { nativeUnavailable, type NativeHarness } from './native';

const SEED = Number(process.env.RZ_DIFF_SEED ?? 20261121);
const PER_FORM = Number(process.env.RZ_DIFF_CASES ?? 6);

function diffCase(c: GenCase): DiffCase {
  return { label: c.name, text: c.text, mode: c.mode, regs: c.regs, rflags: c.rflags, data: c.data, ...(c.hi ? { hi: c.hi } : {}), cmp: { flagMask: c.flagMask } };
}

const why = nativeUnavailable();
if (why) console.warn(`SKIPPED: ${why}: 16-bit differential tests against the host CPU not run`);

describe.skipIf(why != null)('differential: 16-bit code, emulator vs host CPU', () => {
  let h: NativeHarness;
  let why16: string | null = null;
  beforeAll(() => {
    h = openHarness();
    why16 = h.unavailable16();
    if (why16) console.warn(`SKIPPED: ${why16}: 16-bit code is not compared with the host CPU`);
  });
  afterAll(() => h?.dispose());

  it(`table-generated 16-bit cases (${PER_FORM} per form, seed ${SEED}) agree with the host`, ({ skip }) => {
    if (why16) skip();
    const cases = tableCases(SEED, PER_FORM, [16]);
    expect(cases.length).toBeGreaterThan(1000);
    console.log(`differential 16-bit: ${cases.length} table cases, ${cases.filter((c) => /\[/.test(c.text)).length} with 16-bit memory operands`);
    expect(cases.some((c) => /\[b[xp]\+[sd]i/.test(c.text))).toBe(true);
    const { failures } = runDiff(h, cases.map(diffCase), 3);
    expect(failures.slice(0, 25).join('\n'), `${failures.length} mismatches (seed ${SEED})`).toBe('');
  });

  it('16-bit templates (strings, stack and IP wrap-around, branches, LEA, overrides) agree with the host', ({ skip }) => {
    if (why16) skip();
    const cases = templateCases16(SEED, Math.max(3, PER_FORM));
    const { failures } = runDiff(h, cases.map(diffCase), 3);
    expect(failures.slice(0, 25).join('\n'), `${failures.length} mismatches of ${cases.length} (seed ${SEED})`).toBe('');
  });

  it('the 16-bit cases really run 16-bit code natively: wrap-around lands in the hi area, IP faults are offsets', ({ skip }) => {
    if (why16) skip();
    const pairs = runPairs(h, templateCases16(SEED, 3).map(diffCase));
    const clean = pairs.filter((p) => p.native.signal === 0);
    expect(clean.length).toBeGreaterThan(pairs.length * 0.8);
    // pushes below SP 0 and string walks below offset 0 wrote the hi area (offsets 0xfe00-0xffff)
    const wrapped = pairs.filter((p) => p.native.hi.some((b, i) => b !== p.c.hi![i]));
    expect(wrapped.length).toBeGreaterThan(10);
    // IP wrap: a near jump below offset 0 faults at IP 0xffxx (an offset, not a linear address)
    const ip = pairs.filter((p) => p.c.label.startsWith('IP wraps'));
    expect(ip.every((p) => p.native.signal === 11 && p.native.faultOffset > 0xfe00 && p.native.faultOffset <= 0xffff)).toBe(true);
  });
});
