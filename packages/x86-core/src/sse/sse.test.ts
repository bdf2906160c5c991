/**
 * Unit and property tests of the SSE group that need no host peer: the architectural checks
 * the user-mode host cannot show (CR0/CR4 effects, #XM vs #UD, #MF), fault atomicity, and
 * fast-check properties of the IEEE lane arithmetic against JavaScript's own binary64
 * arithmetic (round to nearest) and an independent exactness test (TwoSum).
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Cpu } from '../cpu';
import { FlatMemory } from '../memory';
import { EXIT_BUDGET, EXIT_EXCEPTION, GP, MF, NM, PF_VEC, RAX, UD, XM } from '../constants';
import { cpuidLeaf } from '../exec/misc';
import { MX_PE, OP_ADD, OP_DIV, OP_MUL, OP_SQRT, OP_SUB, fpState, op32, op64 } from './fp';

const CODE = 0x1000;
const DATA = 0x2000;

function cpuWith(code: number[]): Cpu {
  const mem = new FlatMemory(0x3000);
  mem.bytes.set(code, CODE);
  const cpu = new Cpu(mem, { fpu: true, mmx: true, sse: true, sse2: true, sse3: true, ssse3: true });
  cpu.rip = CODE;
  cpu.setRegNumber(RAX, DATA);
  return cpu;
}

const ADDPS = [0x0f, 0x58, 0xc1]; // addps xmm0, xmm1
const PADDB_MM = [0x0f, 0xfc, 0xc1]; // paddb mm0, mm1
const DIVSS = [0xf3, 0x0f, 0x5e, 0xc1]; // divss xmm0, xmm1

describe('SSE availability and SIMD exceptions', () => {
  it('#UD without CR4.OSFXSR or with CR0.EM, #NM with CR0.TS; RIP stays at the instruction', () => {
    let cpu = cpuWith(ADDPS);
    cpu.cr4 &= ~0x200;
    expect(cpu.run(1)).toBe(EXIT_EXCEPTION);
    expect(cpu.faultVector).toBe(UD);
    expect(cpu.rip).toBe(CODE);
    cpu = cpuWith(ADDPS);
    cpu.cr0 |= 4;
    cpu.run(1);
    expect(cpu.faultVector).toBe(UD);
    cpu = cpuWith(ADDPS);
    cpu.cr0 |= 8;
    cpu.run(1);
    expect(cpu.faultVector).toBe(NM);
  });

  it('MMX: #UD with CR0.EM, #MF with a pending x87 exception, else TOP = 0 and all tags valid', () => {
    let cpu = cpuWith(PADDB_MM);
    cpu.cr0 |= 4;
    cpu.run(1);
    expect(cpu.faultVector).toBe(UD);
    cpu = cpuWith(PADDB_MM);
    cpu.fpSw = 0x80;
    cpu.run(1);
    expect(cpu.faultVector).toBe(MF);
    cpu = cpuWith([...PADDB_MM, 0x0f, 0x77]);
    cpu.fpTop = 5;
    cpu.mmx[0] = 0x01010101;
    cpu.mmx[2] = 0x02020202;
    expect(cpu.run(1)).toBe(EXIT_BUDGET);
    expect(cpu.fpTop).toBe(0);
    expect(cpu.fpTag).toBe(0);
    expect(cpu.mmx[0]).toBe(0x03030303);
    cpu.run(1); // emms
    expect(cpu.fpTag).toBe(0xffff);
  });

  it('an unmasked exception raises #XM (CR4.OSXMMEXCPT) or #UD, sets the flag, writes no result', () => {
    for (const osxmm of [true, false]) {
      const cpu = cpuWith(DIVSS);
      if (!osxmm) cpu.cr4 &= ~0x400;
      cpu.mxcsr = 0x1f80 & ~0x200; // ZM unmasked
      cpu.xmm[0] = 0x3f800000; // 1.0
      cpu.xmm[4] = 0; // 0.0
      expect(cpu.run(1)).toBe(EXIT_EXCEPTION);
      expect(cpu.faultVector).toBe(osxmm ? XM : UD);
      expect(cpu.mxcsr & 0x3f).toBe(0x4); // ZE
      expect(cpu.xmm[0]).toBe(0x3f800000);
      expect(cpu.rip).toBe(CODE);
    }
    const cpu = cpuWith(DIVSS);
    cpu.xmm[0] = 0x3f800000;
    cpu.run(1);
    expect(cpu.xmm[0]).toBe(0x7f800000); // masked: +inf
    expect(cpu.mxcsr).toBe(0x1f84);
  });

  it('LDMXCSR with a reserved bit is #GP(0); FXSAVE to a misaligned address is #GP(0)', () => {
    let cpu = cpuWith([0x0f, 0xae, 0x10]); // ldmxcsr [rax]
    (cpu.mem as FlatMemory).bytes.set([0x80, 0x1f, 0x01, 0x00], DATA);
    cpu.run(1);
    expect(cpu.faultVector).toBe(GP);
    expect(cpu.mxcsr).toBe(0x1f80);
    cpu = cpuWith([0x0f, 0xae, 0x40, 0x08]); // fxsave [rax+8]
    cpu.run(1);
    expect(cpu.faultVector).toBe(GP);
  });

  it('a 16-byte store that crosses into an unmapped page faults and changes nothing', () => {
    // movdqu [rax], xmm0 with rax = 0x2ff8 (the last 8 bytes of the memory)
    const cpu = cpuWith([0xf3, 0x0f, 0x7f, 0x00]);
    cpu.setRegNumber(RAX, 0x2ff8);
    cpu.xmm.set([1, 2, 3, 4], 0);
    const mem = cpu.mem as FlatMemory;
    mem.bytes.fill(0xaa, 0x2ff0);
    expect(cpu.run(1)).toBe(EXIT_EXCEPTION);
    expect(cpu.faultVector).toBe(PF_VEC);
    expect(Array.from(mem.bytes.subarray(0x2ff8, 0x3000))).toEqual(new Array(8).fill(0xaa));
  });

  it('FXSAVE/FXRSTOR round-trips MXCSR, XMM0-15, MMX registers, tags and TOP', () => {
    const cpu = cpuWith([0x0f, 0xae, 0x00, 0x0f, 0xae, 0x08]); // fxsave [rax]; fxrstor [rax]
    for (let i = 0; i < 64; i++) cpu.xmm[i] = Math.imul(i + 1, 0x9e3779b9);
    for (let i = 0; i < 16; i++) cpu.mmx[i] = Math.imul(i + 7, 0x85ebca6b);
    cpu.mxcsr = 0x9fe1;
    cpu.fpTag = 0xfff0;
    cpu.fpTop = 0;
    cpu.run(1);
    const x = Array.from(cpu.xmm);
    const m = Array.from(cpu.mmx);
    cpu.xmm.fill(0);
    cpu.mmx.fill(0);
    cpu.mxcsr = 0x1f80;
    cpu.fpTag = 0;
    cpu.run(1);
    expect(Array.from(cpu.xmm)).toEqual(x);
    expect(Array.from(cpu.mmx)).toEqual(m);
    expect(cpu.mxcsr).toBe(0x9fe1);
    expect(cpu.fpTag).toBe(0xfff0);
  });
});

describe('hostile input', () => {
  it('random 0F / 0F38 / 0F3A encodings with any prefixes, registers and MXCSR never throw; faults are restartable', () => {
    const prefix = fc.constantFrom([], [0x66], [0xf3], [0xf2], [0x66, 0xf2], [0xf0], [0x48], [0x66, 0x4d], [0xf3, 0x41]);
    const escape = fc.constantFrom([0x0f], [0x0f, 0x38], [0x0f, 0x3a]);
    fc.assert(
      fc.property(prefix, escape, fc.uint8Array({ minLength: 6, maxLength: 6 }), fc.integer({ min: 0, max: 0xffff }), fc.uint8Array({ minLength: 256, maxLength: 256 }), (p, e, rest, mx, regs) => {
        const cpu = cpuWith([...p, ...e, ...rest]);
        cpu.mxcsr = mx & 0xffff;
        new Uint8Array(cpu.xmm.buffer).set(regs);
        for (let r = 0; r < 16; r++) cpu.lo[r] = regs[r * 4] | (regs[r * 4 + 1] << 8);
        const ex = cpu.run(1);
        // A fault leaves RIP at the instruction (restartable); anything else moved past it.
        return ex === EXIT_EXCEPTION ? cpu.rip === CODE : cpu.rip !== CODE || ex !== EXIT_BUDGET;
      }),
      { numRuns: 4000 },
    );
  });
});

describe('CPUID', () => {
  it('advertises MMX, FXSR, SSE, SSE2, SSE3, SSSE3 by default and never SSE4.1/4.2 or AVX', () => {
    const out = new Int32Array(4);
    cpuidLeaf(new Cpu(new FlatMemory(16)), 1, 0, out);
    const edx = out[3];
    const ecx = out[2];
    for (const bit of [23, 24, 25, 26]) expect((edx >>> bit) & 1).toBe(1);
    expect(ecx & 1).toBe(1);
    expect((ecx >>> 9) & 1).toBe(1);
    for (const bit of [19, 20, 28, 27, 12]) expect((ecx >>> bit) & 1).toBe(0); // SSE4.1, SSE4.2, AVX, OSXSAVE, FMA
    cpuidLeaf(new Cpu(new FlatMemory(16), { sse: false, sse2: false, sse3: false, ssse3: false, mmx: false }), 1, 0, out);
    expect(out[3] & (0xf << 23)).toBe(0);
    expect(out[2] & 0x201).toBe(0);
  });
});

describe('SSE in 32-bit code', () => {
  it('decodes the same encodings with 32-bit addressing; FXSAVE stores XMM0-7 only', () => {
    // movdqa xmm1, [eax]; paddd xmm1, [eax+16]; movdqu [eax+37], xmm1; fxsave [eax+64]
    const cpu = cpuWith([0x66, 0x0f, 0x6f, 0x08, 0x66, 0x0f, 0xfe, 0x48, 0x10, 0xf3, 0x0f, 0x7f, 0x48, 0x25, 0x0f, 0xae, 0x40, 0x40]);
    cpu.csize = 4;
    cpu.ssize = 4;
    const mem = cpu.mem as FlatMemory;
    const dv = new DataView(mem.bytes.buffer);
    for (let i = 0; i < 8; i++) dv.setUint32(DATA + 4 * i, i + 1, true);
    mem.bytes.fill(0xee, DATA + 64, DATA + 64 + 512);
    cpu.xmm[8 * 4] = 0x12345678; // XMM8 exists only in 64-bit mode
    expect(cpu.run(4)).toBe(EXIT_BUDGET);
    expect(Array.from(cpu.xmm.subarray(4, 8))).toEqual([6, 8, 10, 12]);
    expect(dv.getUint32(DATA + 37, true)).toBe(6);
    expect(dv.getUint32(DATA + 64 + 160 + 16, true)).toBe(6); // XMM1 in the image
    expect(mem.bytes[DATA + 64 + 160 + 8 * 16]).toBe(0xee); // XMM8 slot untouched
  });
});

// ------------------------------------------------------------------ properties of fp.ts

const F64 = new Float64Array(1);
const U32 = new Uint32Array(F64.buffer);
const F32 = new Float32Array(1);
const U32F = new Uint32Array(F32.buffer);

/** An arbitrary double as bit pattern halves, biased towards interesting exponents. */
const double = fc.oneof(
  fc.double({ noNaN: true }),
  fc.double({ min: -1e6, max: 1e6, noNaN: true }),
  fc.constantFrom(0, -0, Infinity, -Infinity, 5e-324, -2.2250738585072014e-308, 1, -1, Number.MAX_VALUE),
);

function run64(op: number, a: number, b: number, mx: number): number {
  fpState.mx = mx;
  fpState.pre = 0;
  fpState.post = 0;
  F64[0] = a;
  const alo = U32[0];
  const ahi = U32[1];
  F64[0] = b;
  op64(op, alo, ahi, U32[0], U32[1]);
  U32[0] = fpState.lo;
  U32[1] = fpState.hi;
  return F64[0];
}

const OPS: [number, (a: number, b: number) => number][] = [
  [OP_ADD, (a, b) => a + b],
  [OP_SUB, (a, b) => a - b],
  [OP_MUL, (a, b) => a * b],
  [OP_DIV, (a, b) => a / b],
  [OP_SQRT, (_a, b) => Math.sqrt(b)],
];

describe('IEEE lane arithmetic (fp.ts) properties', () => {
  it('tininess is detected after rounding: a result that rounds up to the smallest normal is tiny only if the p-bit rounding is', () => {
    // 0x00ffffff * 0.5 = 2^-126 (1 - 2^-24): exact in 24 bits, so tiny; rounds (denormal grid) to 2^-126.
    fpState.mx = 0x1f80;
    fpState.pre = fpState.post = 0;
    op32(OP_MUL, 0x00ffffff, 0x3f000000);
    expect(fpState.lo).toBe(0x00800000);
    expect(fpState.post).toBe(0x30); // UE PE
    fpState.mx = 0x9f80; // FTZ
    fpState.post = 0;
    op32(OP_MUL, 0x00ffffff, 0x3f000000);
    expect(fpState.lo).toBe(0);
    expect(fpState.post).toBe(0x30);
    // (1 - 2^-23) * 2^-126 (1 + 2^-23) = 2^-126 (1 - 2^-46): rounds to 1 in 24 bits, not tiny.
    fpState.post = 0;
    op32(OP_MUL, 0x3f7ffffe, 0x00800001);
    expect(fpState.lo).toBe(0x00800000);
    expect(fpState.post).toBe(0x20); // PE only
  });

  it('binary64, round to nearest, DAZ/FTZ off: equals JavaScript arithmetic bit for bit (non-NaN)', () => {
    fc.assert(
      fc.property(double, double, fc.integer({ min: 0, max: 4 }), fc.boolean(), (a, b, k, pe) => {
        const [op, js] = OPS[k];
        const want = js(a, b);
        const got = run64(op, a, b, pe ? 0x1fa0 : 0x1f80);
        if (want !== want) return got !== got;
        return Object.is(got, want);
      }),
      { numRuns: 3000 },
    );
  });

  it('binary32 arithmetic equals Math.fround of the double result', () => {
    fc.assert(
      fc.property(fc.float({ noNaN: true }), fc.float({ noNaN: true }), fc.integer({ min: 0, max: 4 }), (a, b, k) => {
        const [op, js] = OPS[k];
        fpState.mx = 0x1f80;
        fpState.pre = fpState.post = 0;
        F32[0] = a;
        const ab = U32F[0];
        F32[0] = b;
        op32(op, ab, U32F[0]);
        U32F[0] = fpState.lo;
        const want = Math.fround(js(a, b));
        return want !== want ? F32[0] !== F32[0] : Object.is(F32[0], want);
      }),
      { numRuns: 3000 },
    );
  });

  it('PE on addition is set exactly when the TwoSum error term is non-zero', () => {
    fc.assert(
      fc.property(fc.double({ min: -1e300, max: 1e300, noNaN: true }), fc.double({ min: -1e300, max: 1e300, noNaN: true }), (a, b) => {
        const s = run64(OP_ADD, a, b, 0x1f80);
        const bb = s - a;
        const err = a - (s - bb) + (b - bb);
        const tiny = Math.abs(s) < 2.2250738585072014e-308;
        return tiny || ((fpState.post & MX_PE) !== 0) === (err !== 0);
      }),
      { numRuns: 3000 },
    );
  });

  it('directed rounding brackets the nearest result: RD <= RN <= RU, RU - RD <= 1 ulp, RZ towards zero', () => {
    fc.assert(
      fc.property(double, double, fc.integer({ min: 0, max: 4 }), (a, b, k) => {
        const [op] = OPS[k];
        const rn = run64(op, a, b, 0x1f80);
        const rd = run64(op, a, b, 0x1f80 | (1 << 13));
        const ru = run64(op, a, b, 0x1f80 | (2 << 13));
        const rz = run64(op, a, b, 0x1f80 | (3 << 13));
        if (rn !== rn) return rd !== rd && ru !== ru && rz !== rz;
        if (!(rd <= rn && rn <= ru)) return false;
        if (Number.isFinite(rd) && Number.isFinite(ru) && rd !== ru) {
          // adjacent doubles: nothing lies strictly between them
          const mid = rd + (ru - rd) / 2;
          if (mid !== rd && mid !== ru) return false;
        }
        return rz === (rn >= 0 ? rd : ru) || (rz === 0 && rn === 0);
      }),
      { numRuns: 2000 },
    );
  });
});
