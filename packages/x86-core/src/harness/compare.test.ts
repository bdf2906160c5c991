import { describe, expect, it } from 'vitest';
import { defaultFxImage, emulate, FX_ST, FX_XMM, type NativeCase } from './case';
import { compare, describeInput } from './compare';

// mov eax, 7 ; fld1 (64-bit code)
const CASE: NativeCase = { mode: 64, code: new Uint8Array([0xb8, 7, 0, 0, 0, 0xd9, 0xe8]), regs: new Uint32Array(32), rflags: 0x202, data: new Uint8Array(8) };

describe('the shared comparison path', () => {
  it('agrees with itself and names every kind of difference', () => {
    const a = emulate(CASE);
    expect(a.signal).toBe(0);
    expect(a.regs[0]).toBe(7);
    expect(compare(64, a, emulate(CASE))).toBe('');
    const b = emulate(CASE);
    b.regs[1] = 1; // RAX high half
    b.fx[FX_ST + 9] ^= 0x80; // ST0 sign
    b.fx[FX_XMM + 20] = 1; // XMM1
    b.data[3] = 9;
    b.rflags ^= 1;
    const d = compare(64, a, b);
    for (const what of ['rax', 'st0', 'xmm1', 'data[3]', 'flags']) expect(d).toContain(what);
    expect(compare(32, a, b)).not.toContain('rax'); // 32-bit code: low halves only
    expect(compare(64, a, b, { flagMask: 0x800 })).not.toContain('flags');
  });
  it('compares ST registers within a stated tolerance only when asked', () => {
    const a = emulate(CASE);
    const b = emulate(CASE);
    b.fx[FX_ST] ^= 1; // last bit of 1.0's significand
    expect(compare(64, a, b)).toContain('st0');
    expect(compare(64, a, b, { tol: 1e-15 })).toBe('');
  });
  it('describes an input', () => {
    expect(describeInput({ ...CASE, fx: defaultFxImage() })).toContain('fcw=037f');
  });
});
