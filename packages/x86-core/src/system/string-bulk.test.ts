/**
 * REP STOS / REP MOVS through MmuMemory.span (string-bulk.ts) against the element-by-element
 * loop (the same vCPU with the bulk path switched off): random sizes, counts, overlaps, page
 * crossings, an unmapped 2 MiB page (#PF in the middle of the string) and the end of RAM (an
 * EPT exit in the middle) must leave identical registers, memory and exits.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RCX, RDI, RSI } from '../constants';
import { HAVE_NASM, longModeVcpu, nasm } from './test/harness';

if (!HAVE_NASM) console.warn('SKIPPED: nasm not installed: the bulk REP MOVS/STOS tests');

const ENTRY = 0x100000;
const RAM = 16 << 20;
/** The window the strings live in: 12 MiB .. 16 MiB + 64 KiB (past the end of RAM). */
const LO = 0xc00000;
/** A 2 MiB page made not-present in some cases (#PF), and the bytes compared. */
const HOLE = 0xa00000;

interface Case {
  movs: boolean;
  size: number;
  count: number;
  dst: number;
  src: number;
  pattern: number;
  hole: boolean;
}

function run(c: Case, bulk: boolean): { exit: number; rcx: number; rsi: number; rdi: number; mem: Uint8Array } {
  const suffix = c.size === 1 ? 'b' : c.size === 2 ? 'w' : c.size === 4 ? 'd' : 'q';
  const src = `bits 64\norg ${ENTRY}\nmov rdi, ${c.dst}\nmov rsi, ${c.src}\nmov rcx, ${c.count}\nmov rax, ${c.pattern}\nrep ${c.movs ? 'movs' : 'stos'}${suffix}\nhlt\n`;
  const { vcpu, space } = longModeVcpu(nasm(src), ENTRY, {}, RAM);
  // Recognisable bytes everywhere the string may read.
  const fillBytes = new Uint8Array(RAM - LO);
  for (let i = 0; i < fillBytes.length; i++) fillBytes[i] = (i * 7 + (i >>> 9)) & 0xff;
  space.writeFrom(LO, fillBytes);
  if (c.hole) space.write64(0xb000 + (HOLE >>> 21) * 8, 0, 0);
  const mem = vcpu.mem as { span?: unknown };
  if (!bulk) mem.span = undefined;
  const exit = vcpu.run(1_000_000);
  const out = new Uint8Array(RAM - HOLE);
  space.readInto(HOLE, out);
  const cpu = vcpu.cpu;
  return { exit, rcx: cpu.lo[RCX], rsi: cpu.lo[RSI], rdi: cpu.lo[RDI], mem: out };
}

describe.skipIf(!HAVE_NASM)('bulk REP MOVS/STOS (MmuMemory.span)', () => {
  it('matches the element loop: registers, memory and exits', () => {
    const addr = fc.oneof(fc.integer({ min: LO, max: RAM + 0x8000 }), fc.integer({ min: RAM - 0x3000, max: RAM + 0x100 }), fc.integer({ min: HOLE - 0x2000, max: HOLE + 0x2000 }));
    const kase = fc.record({
      movs: fc.boolean(),
      size: fc.constantFrom(1, 2, 4, 8),
      count: fc.oneof(fc.integer({ min: 0, max: 40 }), fc.integer({ min: 0, max: 9000 })),
      dst: addr,
      src: addr,
      pattern: fc.integer({ min: 0, max: 0x7fffffff }),
      hole: fc.boolean(),
    });
    fc.assert(
      fc.property(kase, fc.integer({ min: -64, max: 64 }), (c, near) => {
        // Half the MOVS cases overlap (destination a few bytes above or below the source).
        const cc = c.movs && near % 2 === 0 ? { ...c, dst: c.src + near } : c;
        const a = run(cc, true);
        const b = run(cc, false);
        expect([a.exit, a.rcx, a.rsi, a.rdi]).toEqual([b.exit, b.rcx, b.rsi, b.rdi]);
        expect(Buffer.compare(Buffer.from(a.mem), Buffer.from(b.mem))).toBe(0);
      }),
      { numRuns: 40 },
    );
  });

  it('copies forward element by element when the destination starts inside the source', () => {
    for (const [size, near] of [[8, 2], [8, 8], [4, 12], [2, 1], [1, 1], [8, -3]]) {
      const c: Case = { movs: true, size, count: 3000, dst: 0xd00ff0 + near, src: 0xd00ff0, pattern: 0, hole: false };
      const a = run(c, true);
      const b = run(c, false);
      expect([a.rcx, a.rsi, a.rdi]).toEqual([b.rcx, b.rsi, b.rdi]);
      expect(Buffer.compare(Buffer.from(a.mem), Buffer.from(b.mem))).toBe(0);
    }
  });

  it('does clear_page-sized REP STOSQ and memcpy-sized REP MOVSB in bulk', () => {
    const c: Case = { movs: true, size: 1, count: 20000, dst: 0xd00003, src: 0xc00011, pattern: 0, hole: false };
    const a = run(c, true);
    expect(a.rcx).toBe(0);
    const expected = new Uint8Array(20000);
    for (let i = 0; i < 20000; i++) {
      const k = 0xc00011 - LO + i;
      expected[i] = (k * 7 + (k >>> 9)) & 0xff;
    }
    expect(Buffer.from(a.mem.subarray(0xd00003 - HOLE, 0xd00003 - HOLE + 20000)).equals(Buffer.from(expected))).toBe(true);
    const s = run({ movs: false, size: 8, count: 512, dst: 0xe00000, src: 0, pattern: 0x12345678, hole: false }, true);
    expect(s.rdi).toBe(0xe01000);
    expect(Array.from(s.mem.subarray(0xe00ff8 - HOLE, 0xe01008 - HOLE))).toEqual([0x78, 0x56, 0x34, 0x12, 0, 0, 0, 0, ...Array.from({ length: 8 }, (_, i) => ((0xe01000 - LO + i) * 7 + ((0xe01000 - LO + i) >>> 9)) & 0xff)]);
  });
});
