/**
 * The decode-time specialised handlers (fast.ts) against the generic handlers they replace
 * (OP_EXEC[d.op], themselves proven against the host CPU by src/harness): on random
 * instructions of every specialised opcode, random registers, lazy flags and memory, both
 * must leave the same registers, flags, memory, next RIP, status and fault. And Cpu.eaFast
 * against Cpu.eaOf on random 64-bit addressing forms, near the limits where its double
 * arithmetic hands over to eaOf.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Cpu } from '../cpu';
import { decode, DecodeFault } from '../decoder';
import { Insn } from '../insn';
import { FlatMemory } from '../memory';
import { OP_EXEC } from '../optable';
import { RSP, ST_OK } from '../constants';

const MEM = 0x10000;

/** Opcode byte sequences with a specialised form (0F-prefixed ones as two bytes). */
const OPCODES: number[][] = [
  ...Array.from({ length: 0x40 }, (_v, i) => [i]).filter(([b]) => (b & 7) < 6 && ((b & 7) !== 2 || b === 0x3a)),
  ...[0x80, 0x81, 0x83, 0x84, 0x85, 0x88, 0x89, 0x8a, 0x8b, 0x8d, 0xc6, 0xc7, 0xc1, 0xd1, 0xf6, 0xf7, 0xff, 0x63, 0xa8, 0xa9].map((b) => [b]),
  ...Array.from({ length: 8 }, (_v, i) => [0xb8 + i]),
  ...Array.from({ length: 16 }, (_v, i) => [0x50 + i]),
  ...[0xc3, 0xc2, 0xe8, 0xe9, 0xeb].map((b) => [b]),
  ...Array.from({ length: 16 }, (_v, i) => [0x70 + i]),
  ...Array.from({ length: 16 }, (_v, i) => [0x0f, 0x80 + i]),
  ...Array.from({ length: 16 }, (_v, i) => [0x0f, 0x40 + i]),
  [0x0f, 0xb6],
  [0x0f, 0xb7],
  [0x0f, 0xbe],
  ...[0x74, 0xda, 0xdb, 0xeb, 0xef].map((b) => [0x66, 0x0f, b]),
];

function machine(bytes: Uint8Array, csize: number, regs: number[], flags: number, lazy: number[], rip: number): Cpu {
  const mem = new FlatMemory(MEM);
  mem.bytes.set(bytes);
  const cpu = new Cpu(mem);
  cpu.csize = csize;
  cpu.ssize = csize === 8 ? 8 : 4;
  for (let r = 0; r < 16; r++) {
    cpu.lo[r] = regs[2 * r];
    cpu.hi[r] = csize === 8 ? regs[2 * r + 1] : 0;
  }
  cpu.setFlags(flags & 0xcd5);
  if (lazy[0] !== 0) cpu.setLazy(lazy[0], lazy[1], lazy[2] >>> 0, lazy[3] >>> 0, lazy[4] >>> 0, lazy[5] >>> 0, lazy[6] >>> 0, lazy[7] >>> 0);
  cpu.rip = rip;
  return cpu;
}

describe('specialised handlers agree with the generic ones', () => {
  it.each(OPCODES.map((o) => [o.map((b) => b.toString(16)).join(' '), o] as const))('%s: same registers, flags, memory, next RIP, status and fault on random instances', (_name, opc) => {
    let specialised = 0;
    fc.assert(
      fc.property(
        fc.record({
          mod: fc.constantFrom(3, 3, 0, 1, 2),
          prefix: fc.constantFrom([], [0x48], [0x40], [0x41], [0x44], [0x4c], [0x49], [0x66], [0x67], [0xf0]),
          tail: fc.uint8Array({ minLength: 12, maxLength: 12 }),
          csize: fc.constantFrom(8, 8, 4),
          regs: fc.array(fc.oneof(fc.integer(), fc.integer({ min: -2, max: 2 }), fc.constantFrom(0x7fffffff, -0x80000000, 0x7fff, -0x8000)), { minLength: 32, maxLength: 32 }),
          small: fc.array(fc.integer({ min: 0x1000, max: MEM - 0x1000 }), { minLength: 16, maxLength: 16 }),
          useSmall: fc.array(fc.boolean(), { minLength: 16, maxLength: 16 }),
          flags: fc.nat(0xfff),
          lazy: fc.tuple(fc.constantFrom(0, 1, 2, 3, 4, 5, 6), fc.constantFrom(1, 2, 4, 8), fc.integer(), fc.integer(), fc.integer(), fc.integer(), fc.integer(), fc.integer()),
          data: fc.uint8Array({ minLength: 64, maxLength: 64 }),
          xmm: fc.array(fc.oneof(fc.integer(), fc.constantFrom(0, -1, 0xff00ff00, 0x00ff00ff, 0x80808080)), { minLength: 64, maxLength: 64 }),
        }),
        ({ mod, prefix, tail, csize, regs, small, useSmall, flags, lazy, data, xmm }) => {
          tail[0] = (mod << 6) | (tail[0] & 0x3f);
          const code = 0x100;
          const bytes = new Uint8Array(MEM);
          for (let i = 0; i < MEM; i += 64) bytes.set(data, i);
          const insn = [...(csize === 8 ? prefix : prefix.filter((b) => b < 0x40 || b > 0x4f)), ...opc, ...tail];
          bytes.set(insn, code);
          // Registers: random, or (for addresses and the stack) small values inside the memory.
          const rv = regs.slice();
          for (let r = 0; r < 16; r++) {
            if (useSmall[r] || r === RSP) {
              rv[2 * r] = small[r];
              rv[2 * r + 1] = 0;
            }
          }
          const d = new Insn();
          const probe = machine(bytes, csize, rv, flags, lazy, code);
          if (decode(probe.mem, code, csize, d, new DecodeFault()) !== ST_OK) return;
          if (d.exec === OP_EXEC[d.op]) return;
          specialised++;
          const a = machine(bytes, csize, rv, flags, lazy, code);
          const b = machine(bytes, csize, rv, flags, lazy, code);
          a.nextRip = b.nextRip = code + d.len;
          a.xmm.set(xmm);
          b.xmm.set(xmm);
          const sa = d.exec(a, d);
          const sb = OP_EXEC[d.op](b, d);
          const what = `${Array.from(insn.slice(0, d.len), (x) => x.toString(16).padStart(2, '0')).join(' ')} (${d.exec.name}, csize ${csize})`;
          expect(sa, what).toBe(sb);
          expect(Array.from(a.lo), what).toEqual(Array.from(b.lo));
          expect(Array.from(a.hi), what).toEqual(Array.from(b.hi));
          expect(Array.from(a.xmm), what).toEqual(Array.from(b.xmm));
          if (sa === ST_OK) {
            expect(a.getFlags(), what).toBe(b.getFlags());
            expect(a.nextRip, what).toBe(b.nextRip);
          } else {
            expect(a.faultVector, what).toBe(b.faultVector);
            expect(a.faultError, what).toBe(b.faultError);
          }
          expect(Buffer.compare((a.mem as FlatMemory).bytes, (b.mem as FlatMemory).bytes), what).toBe(0);
        },
      ),
      { numRuns: 60, seed: 20261121 },
    );
    expect(specialised).toBeGreaterThan(5);
  });

  it('eaFast equals eaOf on random 64-bit addressing forms', () => {
    const hiArb = fc.oneof(fc.integer(), fc.integer({ min: -0x100000 - 2, max: -0x100000 + 2 }), fc.integer({ min: 0xfffff - 2, max: 0xfffff + 2 }), fc.integer({ min: -0x8001, max: 0x8000 }), fc.constantFrom(0, -1));
    fc.assert(
      fc.property(
        fc.record({
          rex: fc.nat(15),
          modrm: fc.nat(255),
          sib: fc.nat(255),
          disp: fc.integer(),
          seg: fc.constantFrom([], [0x64], [0x65], [0x2e], [0x67]),
          lo: fc.array(fc.integer(), { minLength: 16, maxLength: 16 }),
          hi: fc.array(hiArb, { minLength: 16, maxLength: 16 }),
          rip: fc.oneof(fc.integer({ min: -(2 ** 47), max: 2 ** 47 - 1 }), fc.constantFrom(2 ** 47 - 16, -(2 ** 47))),
          fsBase: fc.oneof(fc.integer({ min: 0, max: 2 ** 40 }), fc.constantFrom(2 ** 47 - 4096, -(2 ** 47), 2 ** 47 - 1)),
        }),
        ({ rex, modrm, sib, disp, seg, lo, hi, rip, fsBase }) => {
          if (modrm >> 6 === 3) return;
          const mem = new FlatMemory(64);
          const bytes = [...seg, 0x40 | rex, 0x8b, modrm, sib, disp & 0xff, (disp >> 8) & 0xff, (disp >> 16) & 0xff, disp >>> 24];
          mem.bytes.set(bytes);
          const d = new Insn();
          if (decode(mem, 0, 8, d, new DecodeFault()) !== ST_OK) return;
          const cpu = new Cpu(mem);
          for (let r = 0; r < 16; r++) {
            cpu.lo[r] = lo[r];
            cpu.hi[r] = hi[r];
          }
          cpu.segBase[4] = fsBase;
          cpu.segBase[5] = fsBase;
          cpu.nextRip = rip;
          const f = cpu.eaFast(d);
          const ea1 = cpu.ea;
          const g = cpu.eaOf(d);
          expect(Object.is(f, g), `eaFast ${f} eaOf ${g} (kind ${d.eaKind})`).toBe(true);
          expect(Object.is(ea1, cpu.ea)).toBe(true);
        },
      ),
      { numRuns: 5000, seed: 7 },
    );
  });
});
