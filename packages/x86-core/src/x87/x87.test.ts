/**
 * x87 unit and property tests that need no host tools: #NM / #MF / FWAIT rules, fault
 * atomicity, the exact FLD m80 -> FSTP m80 round trip of any bit pattern, the documented
 * precision difference (README "Precision"), and a bounded fuzz of every D8-DF encoding on
 * random state (never a host exception, the state stays well formed).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Cpu } from '../cpu';
import { FlatMemory } from '../memory';
import { EXIT_BUDGET, EXIT_EXCEPTION, MF, NM, PF_VEC, RAX, RBX } from '../constants';
import { F80, toDouble } from './float80';

const CODE = 0x1000;
const DATA = 0x2000;

function machine(code: number[]): { cpu: Cpu; mem: FlatMemory } {
  const mem = new FlatMemory(0x2000, CODE); // code page + data page; 0x3000 is unmapped
  mem.bytes.set(code, 0);
  const cpu = new Cpu(mem, { fpu: true, sse: true, sse2: true, mmx: true });
  cpu.rip = CODE;
  cpu.lo[RBX] = DATA;
  return { cpu, mem };
}

/** Runs until RIP reaches the end of the code or an exit other than the budget. */
function runAll(cpu: Cpu, len: number): number {
  for (let i = 0; i < 64 && cpu.rip !== CODE + len; i++) {
    const ex = cpu.run(1);
    if (ex !== EXIT_BUDGET) return ex;
  }
  return EXIT_BUDGET;
}

const FLD1 = [0xd9, 0xe8];
const FLDZ = [0xd9, 0xee];
const FWAIT = [0x9b];
const FNSTSW_AX = [0xdf, 0xe0];
const FNCLEX = [0xdb, 0xe2];
const FDIVP = [0xde, 0xf9]; // fdivp st1, st0: ST(1) = ST(1) / ST(0), pop
const FLD_M80 = [0xdb, 0x2b]; // fld tword [rbx]
const FSTP_M80_16 = [0xdb, 0x7b, 0x10]; // fstp tword [rbx+16]
const FLDCW = [0xd9, 0x6b, 0x20]; // fldcw [rbx+32]

describe('x87 exceptions and faults', () => {
  it('#NM with CR0.TS or CR0.EM; FWAIT only with CR0.MP and CR0.TS', () => {
    let { cpu } = machine(FLD1);
    cpu.cr0 |= 8; // TS
    expect(cpu.run(1)).toBe(EXIT_EXCEPTION);
    expect(cpu.faultVector).toBe(NM);
    expect(cpu.rip).toBe(CODE);
    ({ cpu } = machine(FWAIT));
    cpu.cr0 = (cpu.cr0 | 8) & ~2; // TS without MP: FWAIT runs
    expect(cpu.run(1)).toBe(EXIT_BUDGET);
    ({ cpu } = machine(FWAIT));
    cpu.cr0 |= 8 | 2;
    expect(cpu.run(1)).toBe(EXIT_EXCEPTION);
    expect(cpu.faultVector).toBe(NM);
  });

  it('an unmasked exception is delivered as #MF by the next waiting instruction, not by FNSTSW/FNCLEX', () => {
    const code = [...FLDCW, ...FLD1, ...FLDZ, ...FDIVP, ...FNSTSW_AX, ...FLD1, ...FNCLEX, ...FLD1];
    const { cpu, mem } = machine(code);
    mem.bytes[DATA - CODE + 0x20] = 0x7b; // FCW 0x037b: ZE unmasked
    mem.bytes[DATA - CODE + 0x21] = 0x03;
    // FLDCW, FLD1, FLDZ, FDIVP (1 / 0: ZE flagged, ES set, destination unchanged), FNSTSW AX
    expect(cpu.run(5)).toBe(EXIT_BUDGET);
    expect(cpu.lo[RAX] & 0x84).toBe(0x84); // ES and ZE
    expect(cpu.fpTop).toBe(6); // no pop on an unmasked pre-computation exception
    const at = cpu.rip;
    expect(cpu.run(1)).toBe(EXIT_EXCEPTION); // FLD1 waits: #MF
    expect(cpu.faultVector).toBe(MF);
    expect(cpu.rip).toBe(at);
    cpu.rip += 2; // the handler skips it (a signal handler would FNCLEX)
    expect(cpu.run(2)).toBe(EXIT_BUDGET); // FNCLEX, FLD1
    expect(cpu.fpSw & 0x80ff).toBe(0);
    expect(cpu.fpTop).toBe(5);
  });

  it('a faulting FSTP m80 across a page boundary changes neither memory nor the stack', () => {
    const code = [...FLD1, 0xdb, 0xbb, 0xfa, 0x0f, 0x00, 0x00]; // fstp tword [rbx+0xffa]: 6 bytes then the unmapped page
    const { cpu, mem } = machine(code);
    mem.bytes.fill(0x55, DATA - CODE + 0xffa, DATA - CODE + 0x1000);
    expect(runAll(cpu, code.length)).toBe(EXIT_EXCEPTION);
    expect(cpu.faultVector).toBe(PF_VEC);
    expect(cpu.fpTop).toBe(7);
    expect(Array.from(mem.bytes.subarray(DATA - CODE + 0xffa, DATA - CODE + 0x1000))).toEqual([0x55, 0x55, 0x55, 0x55, 0x55, 0x55]);
  });

  it('a faulting FNSAVE whose first page is unmapped writes nothing on the second page', () => {
    const code = [...FLD1, 0xdd, 0x33]; // fnsave [rbx] with rbx 16 bytes below the mapped memory
    const { cpu, mem } = machine(code);
    cpu.lo[RBX] = CODE - 16;
    expect(runAll(cpu, code.length)).toBe(EXIT_EXCEPTION);
    expect(cpu.faultVector).toBe(PF_VEC);
    expect(cpu.fpTop).toBe(7);
    expect(cpu.fpTag).not.toBe(0xffff);
    expect(mem.bytes.subarray(code.length, 108).every((b) => b === 0)).toBe(true);
  });
});

describe('x87 exact 80-bit storage', () => {
  it('FLD m80 -> FSTP m80 round-trips every bit pattern (NaNs, denormals, pseudo-denormals, unnormals) without flags', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 10, maxLength: 10 }), (bytes) => {
        const code = [...FLD_M80, ...FSTP_M80_16];
        const { cpu, mem } = machine(code);
        mem.bytes.set(bytes, DATA - CODE);
        expect(runAll(cpu, code.length)).toBe(EXIT_BUDGET);
        expect(Array.from(mem.bytes.subarray(DATA - CODE + 16, DATA - CODE + 26))).toEqual(Array.from(bytes));
        expect(cpu.fpSw & 0x7f).toBe(0);
        expect(cpu.fpTop).toBe(0);
      }),
      { numRuns: 300 },
    );
  });
});

function loadF80(mem: FlatMemory, off: number, se: number, hi: number, lo: number): void {
  const dv = new DataView(mem.bytes.buffer);
  dv.setUint32(DATA - CODE + off, lo >>> 0, true);
  dv.setUint32(DATA - CODE + off + 4, hi >>> 0, true);
  dv.setUint16(DATA - CODE + off + 8, se, true);
}

function st0(cpu: Cpu): F80 {
  const p = cpu.fpTop & 7;
  const v = new F80();
  v.se = cpu.fprExt[p];
  v.hi = cpu.mmx[2 * p + 1] >>> 0;
  v.lo = cpu.mmx[2 * p] >>> 0;
  return v;
}

describe('x87 precision: 64-bit significands, exactly rounded', () => {
  it('(1 + 2^-59) - 1 is exactly 2^-59 (no pre-rounding of 64-bit operands)', () => {
    const code = [...FLD_M80, ...FLD1, 0xde, 0xe9]; // fld tword [rbx]; fld1; fsubp st1, st0
    const { cpu, mem } = machine(code);
    loadF80(mem, 0, 0x3fff, 0x80000000, 0x10); // 1 + 16 * 2^-63
    expect(runAll(cpu, code.length)).toBe(EXIT_BUDGET);
    const v = st0(cpu);
    expect([v.se, v.hi, v.lo]).toEqual([0x3fff - 59, 0x80000000, 0]);
    expect(cpu.fpSw & 0x20).toBe(0);
  });

  it('1 / 3 with PC = extended has the 64-bit significand AAAAAAAAAAAAAAAB (rounded up: PE, C1)', () => {
    const code3 = [...FLD1, ...FLD1, ...FLD1, 0xde, 0xc1, 0xd8, 0xc1, 0xde, 0xf9]; // 1 1 1 -> 2 1 -> 3 1 -> 1 / 3
    const m = machine(code3);
    expect(runAll(m.cpu, code3.length)).toBe(EXIT_BUDGET);
    const v = st0(m.cpu);
    expect([v.se, v.hi, v.lo]).toEqual([0x3ffd, 0xaaaaaaaa, 0xaaaaaaab]);
    expect(m.cpu.fpSw & 0x220).toBe(0x220);
    expect(toDouble(v)).toBe(1 / 3);
  });
});

describe('x87 compares', () => {
  it('compare values whose 53-bit roundings are equal: (2 - 2^-63) < 2', () => {
    const code = [...FLD_M80, 0xdb, 0x6b, 0x10, 0xd8, 0xd1]; // fld tword [rbx]; fld tword [rbx+16]; fcom st1
    const { cpu, mem } = machine(code);
    loadF80(mem, 0, 0x4000, 0x80000000, 0); // 2
    loadF80(mem, 16, 0x3fff, 0xffffffff, 0xffffffff); // 2 - 2^-63
    expect(runAll(cpu, code.length)).toBe(EXIT_BUDGET);
    expect(cpu.fpSw & 0x4500).toBe(0x0100); // C0: ST(0) < ST(1)
  });
});

describe('x87 in 32-bit and 16-bit code', () => {
  it('FNSTENV writes 28 bytes by default in 32-bit code and 14 with 66, 14 by default in 16-bit code', () => {
    const sizes: number[] = [];
    for (const [csize, pfx] of [[4, []], [4, [0x66]], [2, []], [2, [0x66]]] as const) {
      const code = [...FLD1, ...pfx, 0xd9, 0x37]; // fnstenv [bx] / [edi]
      const { cpu, mem } = machine(code);
      cpu.csize = csize;
      cpu.ssize = csize;
      cpu.rip = 0x1000; // CS.base = 0
      cpu.lo[7] = DATA; // edi (32-bit ModRM 37 = [edi]); in 16-bit code 37 = [bx]
      cpu.lo[RBX] = DATA;
      mem.bytes.fill(0xee, DATA - CODE, DATA - CODE + 64);
      expect(runAll(cpu, code.length)).toBe(EXIT_BUDGET);
      let n = 0;
      while (n < 64 && mem.bytes[DATA - CODE + n] !== 0xee) n++;
      sizes.push(n);
      const dv = new DataView(mem.bytes.buffer, DATA - CODE);
      expect(dv.getUint16(0, true)).toBe(0x037f); // FCW (FNSTENV masks afterwards)
      expect(dv.getUint16(n === 28 ? 4 : 2, true)).toBe(0x3800); // FSW: TOP = 7
      expect(dv.getUint16(n === 28 ? 8 : 4, true)).toBe(0x3fff); // FTW: R7 valid, others empty
    }
    expect(sizes).toEqual([28, 14, 14, 28]);
  });
});

describe('x87 README example', () => {
  it('computes sqrt(2) with PC = double and stores it as a binary64', () => {
    const mem = new FlatMemory(0x3000);
    mem.bytes.set([0xd9, 0xe8, 0xd9, 0xe8, 0xde, 0xc1, 0xd9, 0xfa, 0xdd, 0x1c, 0x25, 0x00, 0x20, 0x00, 0x00], 0x1000);
    const cpu = new Cpu(mem);
    cpu.rip = 0x1000;
    cpu.fpCw = 0x027f;
    expect(cpu.run(5)).toBe(EXIT_BUDGET);
    expect(new DataView(mem.bytes.buffer).getFloat64(0x2000, true)).toBe(Math.SQRT2);
    expect(cpu.fpSw & 0x20).toBe(0x20);
    expect(cpu.features.fpu).toBe(true);
  });
});

describe('x87 hostile input', () => {
  it('random D8-DF encodings on random state never throw and keep the state well formed', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0xd8, max: 0xdf }),
        fc.integer({ min: 0, max: 255 }),
        fc.uint8Array({ minLength: 80, maxLength: 80 }),
        fc.integer({ min: 0, max: 0xffff }),
        fc.integer({ min: 0, max: 0xffff }),
        fc.integer({ min: 0, max: 0xffff }),
        fc.boolean(),
        (opc, modrm, regs, cw, sw, tag, o16) => {
          const code = [...(o16 ? [0x66] : []), opc, modrm, 0x10, 0, 0, 0];
          const { cpu, mem } = machine(code);
          mem.bytes.set(regs, DATA - CODE + 16);
          const dv = new DataView(regs.buffer);
          for (let p = 0; p < 8; p++) {
            cpu.mmx[2 * p] = dv.getInt32(p * 10, true);
            cpu.mmx[2 * p + 1] = dv.getInt32(p * 10 + 4, true);
            cpu.fprExt[p] = dv.getUint16(p * 10 + 8, true);
          }
          cpu.fpCw = cw;
          cpu.fpSw = sw & ~0x3880;
          cpu.fpTop = (sw >> 11) & 7;
          cpu.fpTag = tag;
          cpu.lo[RBX] = DATA;
          const ex = cpu.run(1);
          expect([EXIT_BUDGET, EXIT_EXCEPTION]).toContain(ex);
          expect(cpu.fpTop >= 0 && cpu.fpTop <= 7).toBe(true);
          expect(cpu.fpTag >= 0 && cpu.fpTag <= 0xffff).toBe(true);
          expect(cpu.fpSw & 0x3800).toBe(0);
          for (let p = 0; p < 8; p++) expect(cpu.fprExt[p] <= 0xffff).toBe(true);
        },
      ),
      { numRuns: 3000 },
    );
  });
});
