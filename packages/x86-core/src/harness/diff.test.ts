/**
 * Differential tests of the integer instructions against the host CPU: every generated case
 * runs natively (the one runner of src/harness/native) and in the emulator; registers, the
 * compared flags, the data page, the x87/SSE state and faults must agree. RZ_DIFF_CASES sets
 * cases per form (default 6: a few hundred per mnemonic); RZ_DIFF_SEED picks the random seed
 * (default fixed, printed on failure).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OPS } from '../optable';
import { DATA_ADDR, FX_FCW, FX_FSW, FX_ST, FX_XMM } from './case';
import { runDiff, type DiffCase } from './compare';
import { tableCases, templateCases, type GenCase } from './gen';
import { openHarness } from './harness';
import { nativeUnavailable, type NativeHarness } from './native';

const SEED = Number(process.env.RZ_DIFF_SEED ?? 20261121);
const PER_FORM = Number(process.env.RZ_DIFF_CASES ?? 6);

/** Integer cases compare their own flag mask (the SDM-defined flags), everything else in full. */
function diffCase(c: GenCase): DiffCase {
  return { label: c.name, text: c.text, mode: c.mode, regs: c.regs, rflags: c.rflags, data: c.data, ...(c.hi ? { hi: c.hi } : {}), cmp: { flagMask: c.flagMask } };
}

const why = nativeUnavailable();
if (why) console.warn(`SKIPPED: ${why}: differential tests against the host CPU not run`);

describe.skipIf(why != null)('differential: emulator vs host CPU', () => {
  let h: NativeHarness;
  beforeAll(() => {
    h = openHarness();
  });
  afterAll(() => h?.dispose());

  it(`table-generated cases (${PER_FORM} per form, seed ${SEED}) agree with the host`, () => {
    const cases = tableCases(SEED, PER_FORM);
    const { failures } = runDiff(h, cases.map(diffCase), 25);
    const covered = new Set(cases.map((c) => c.op));
    const missing = OPS.filter((_o, i) => i > 0 && !covered.has(i)).map((o) => `${o.mnem} ${o.operands}`);
    console.log(`differential: ${cases.length} table cases, ${covered.size} of ${OPS.length - 1} table entries generated; not generated from the table: ${[...new Set(missing)].join(', ')}`);
    expect(failures.slice(0, 25).join('\n'), `${failures.length} mismatches (seed ${SEED})`).toBe('');
  });

  it('captures x87/SSE state (FXSAVE image) for the x87 and SSE groups', () => {
    const [code] = h.assemble(['pcmpeqd xmm1, xmm1\nfld1\nfldpi'], 64);
    const regs = new Uint32Array(32);
    regs[8] = DATA_ADDR + 0x1f0;
    const [r] = h.run([{ mode: 64, code, regs, rflags: 0x202, data: new Uint8Array(16) }]);
    expect(r.signal).toBe(0);
    expect(Array.from(r.fx.subarray(FX_XMM + 16, FX_XMM + 32))).toEqual(new Array(16).fill(0xff)); // XMM1
    expect(r.fx[FX_FCW] | (r.fx[FX_FCW + 1] << 8)).toBe(0x037f);
    expect(((r.fx[FX_FSW] | (r.fx[FX_FSW + 1] << 8)) >> 11) & 7).toBe(6); // TOP after two loads
    // ST0 = pi as an 80-bit extended: mantissa 0xc90fdaa22168c235, exponent 0x4000
    expect(Buffer.from(r.fx.subarray(FX_ST, FX_ST + 10)).toString('hex')).toBe('35c26821a2da0fc90040');
  });

  it(`templates (control flow, stack, strings, LEA, BCD...) agree with the host`, () => {
    const cases = templateCases(SEED, Math.max(2, Math.ceil(PER_FORM / 2)));
    const { failures } = runDiff(h, cases.map(diffCase), 25);
    expect(failures.slice(0, 25).join('\n'), `${failures.length} mismatches of ${cases.length} (seed ${SEED})`).toBe('');
  });
});
