import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Cpu } from './cpu';
import { decode, DecodeFault } from './decoder';
import { Insn } from './insn';
import { FlatMemory } from './memory';
import { OPS } from './optable';
import { EXIT_BUDGET, EXIT_EXCEPTION, EXIT_HLT, EXIT_SOFTINT, EXIT_SYSCALL, GP } from './constants';

function dec(bytes: number[], csize = 8): Insn {
  const mem = new FlatMemory(64);
  mem.bytes.set(bytes);
  const d = new Insn();
  expect(decode(mem, 0, csize, d, new DecodeFault())).toBe(0);
  return d;
}

describe('decoder', () => {
  it('decodes prefixes, REX, SIB and RIP-relative operands', () => {
    // lock add qword [rip + 0x10], r9  (F0 4C 01 0D 10 00 00 00)
    let d = dec([0xf0, 0x4c, 0x01, 0x0d, 0x10, 0, 0, 0]);
    expect(OPS[d.op].mnem).toBe('add');
    expect([d.len, d.osize, d.ripRel, d.reg, d.disp, d.lock]).toEqual([8, 8, 1, 9, 0x10, 1]);
    // mov eax, [r12 + r13*4 - 8] (43 8B 44 AC F8)
    d = dec([0x43, 0x8b, 0x44, 0xac, 0xf8]);
    expect([d.base, d.index, d.scale, d.disp, d.osize]).toEqual([12, 13, 2, -8, 4]);
    // 16-bit code: mov ax, [bp + si + 4] (8B 42 04) uses SS
    d = dec([0x8b, 0x42, 0x04], 2);
    expect([d.base, d.index, d.seg, d.osize, d.asize]).toEqual([5, 6, 2, 2, 2]);
    // 32-bit code: 66 67 prefixes swap sizes
    d = dec([0x66, 0x67, 0x8b, 0x07], 4);
    expect([d.osize, d.asize, d.base, d.index]).toEqual([2, 2, 3, -1]);
    // mov rax, imm64
    d = dec([0x48, 0xb8, 1, 2, 3, 4, 5, 6, 7, 8]);
    expect([d.len, d.imm >>> 0, d.immHi >>> 0]).toEqual([10, 0x04030201, 0x08070605]);
    // push in 64-bit mode defaults to 64 bits, 66 selects 16
    expect(dec([0x50]).osize).toBe(8);
    expect(dec([0x66, 0x50]).osize).toBe(2);
    // a REX followed by a legacy prefix is ignored
    expect(dec([0x48, 0x66, 0x01, 0xc0]).osize).toBe(2);
    // F3 0F B8 is POPCNT, 0F BC is BSF, F3 0F BC TZCNT
    expect(OPS[dec([0xf3, 0x0f, 0xb8, 0xc0]).op].mnem).toBe('popcnt');
    expect(OPS[dec([0x0f, 0xbc, 0xc0]).op].mnem).toBe('bsf');
    expect(OPS[dec([0xf3, 0x0f, 0xbc, 0xc0]).op].mnem).toBe('tzcnt');
    // 40-4F are INC/DEC in 32-bit code
    expect(OPS[dec([0x40], 4).op].mnem).toBe('inc');
  });

  it('marks invalid encodings #UD (op 0) with their length', () => {
    expect(dec([0x06]).op).toBe(0); // push es in 64-bit mode
    expect(dec([0x8d, 0xc0]).op).toBe(0); // lea with a register operand
    expect(dec([0xf0, 0x01, 0xc0]).op).toBe(0); // lock with a register destination
    expect(dec([0xf0, 0x89, 0x00]).op).toBe(0); // lock mov
    expect(dec([0x62, 0xf1, 0x7c, 0x48, 0x58, 0xc0]).op).toBe(0); // EVEX
    expect(OPS[dec([0x62, 0x00], 4).op].mnem).toBe('bound'); // 62 with a memory operand in 32-bit code
    expect(dec([0x62, 0xc0, 0, 0, 0, 0], 4).op).toBe(0); // mod = 3: EVEX, #UD
  });

  it('every table entry decodes back to itself from its canonical bytes', () => {
    let checked = 0;
    OPS.forEach((o, i) => {
      if (i === 0 || o.count !== 1) return;
      const bytes: number[] = [];
      if (o.pfx === 1) bytes.push(0x66);
      if (o.pfx === 2) bytes.push(0xf3);
      if (o.pfx === 3) bytes.push(0xf2);
      if (o.map === 1) bytes.push(0x0f);
      if (o.map === 2) bytes.push(0x0f, 0x38);
      if (o.map === 3) bytes.push(0x0f, 0x3a);
      bytes.push(o.byte);
      const mod = o.flags & (1 << 7) ? 0 : o.flags & (1 << 8) || o.rmExt >= 0 ? 3 : 0;
      if (o.flags & 1) bytes.push((mod << 6) | ((o.ext < 0 ? 0 : o.ext) << 3) | (o.rmExt < 0 ? (mod === 3 ? 0 : 1) : o.rmExt));
      bytes.push(0, 0, 0, 0, 0, 0, 0, 0);
      const csize = o.flags & (1 << 4) ? 4 : 8;
      const d = dec(bytes, csize);
      expect(d.op, `${o.mnem} ${o.operands}`).toBe(i);
      checked++;
    });
    expect(checked).toBeGreaterThan(200);
  });

  it('never throws or reads past 15 bytes on random bytes (fuzz)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.constantFrom(2, 4, 8), (bytes, csize) => {
        const mem = new FlatMemory(16);
        mem.bytes.set(bytes);
        const d = new Insn();
        const f = new DecodeFault();
        const st = decode(mem, 0, csize, d, f);
        if (st === 0) expect(d.len).toBeLessThanOrEqual(15);
        else expect(f.vector === GP || f.memCode < 0).toBe(true);
      }),
      { numRuns: 3000 },
    );
  });

  it('executes random code without host exceptions (fuzz)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 64, maxLength: 64 }), fc.constantFrom(4, 8), (bytes, csize) => {
        const mem = new FlatMemory(0x2000);
        mem.bytes.set(bytes, 0x1000);
        const cpu = new Cpu(mem);
        cpu.csize = csize;
        cpu.ssize = csize;
        cpu.rip = 0x1000;
        cpu.setRegNumber(4, 0x1800);
        for (let r = 0; r < 16; r++) if (r !== 4) cpu.setRegNumber(r, (r * 0x111) & 0x7ff);
        const exit = cpu.run(200);
        expect([EXIT_BUDGET, EXIT_EXCEPTION, EXIT_HLT, EXIT_SOFTINT, EXIT_SYSCALL]).toContain(exit);
      }),
      { numRuns: 500 },
    );
  });
});
