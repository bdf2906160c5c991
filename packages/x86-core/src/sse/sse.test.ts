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
