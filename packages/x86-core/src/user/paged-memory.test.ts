import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { PagedMemory, PROT_EXEC, PROT_READ, PROT_WRITE } from './paged-memory';
import { MEM_PF_BASE, PFEC_I, PFEC_P, PFEC_U, PFEC_W } from '../memory';
import { Cpu } from '../cpu';
import { EXIT_EXCEPTION, PF_VEC } from '../constants';

describe('PagedMemory', () => {
  it('faults with the architectural error code and leaves memory unchanged', () => {
    const m = new PagedMemory();
    m.map(0x1000, 0x1000, PROT_READ | PROT_WRITE);
    m.map(0x2000, 0x1000, PROT_READ);
    expect(m.write32(0x1ffe, 0x11223344)).toBe(MEM_PF_BASE - (PFEC_P | PFEC_W | PFEC_U)); // crosses into read-only
    expect(m.faultAddress).toBe(0x2000);
    expect(m.read16(0x1ffe)).toBe(0);
    expect(m.read8(0x5000)).toBe(MEM_PF_BASE - PFEC_U);
    expect(m.fetch8(0x1000)).toBe(MEM_PF_BASE - (PFEC_P | PFEC_U | PFEC_I));
    expect(m.read32(NaN)).toBeLessThan(0);
  });

  it('agrees with a byte-array model for random accesses across pages', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 0x0ff0, max: 0x3010 }), fc.constantFrom(1, 2, 4, 8), fc.integer({ min: 0, max: 0xffffffff })), { maxLength: 60 }),
        (ops) => {
          const m = new PagedMemory();
          m.map(0x1000, 0x2000, PROT_READ | PROT_WRITE);
          const model = new Uint8Array(0x5000);
          const mapped = (a: number): boolean => a >= 0x1000 && a < 0x3000;
          for (const [addr, size, v] of ops) {
            const ok = mapped(addr) && mapped(addr + size - 1);
            const st = size === 1 ? m.write8(addr, v & 0xff) : size === 2 ? m.write16(addr, v & 0xffff) : size === 4 ? m.write32(addr, v) : m.write64(addr, v, ~v);
            expect(st === 0).toBe(ok);
            if (ok) for (let i = 0; i < size; i++) model[addr + i] = i < 4 ? (v >>> (8 * i)) & 0xff : (~v >>> (8 * (i - 4))) & 0xff;
          }
          // Buffer.equals: toEqual on 8 KiB typed arrays is slow
          expect(Buffer.from(m.peek(0x1000, 0x2000)!).equals(Buffer.from(model.subarray(0x1000, 0x3000)))).toBe(true);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('lets an instruction end exactly at the last executable byte, then faults on the next fetch', () => {
    const m = new PagedMemory();
    m.map(0x1000, 0x1000, PROT_READ | PROT_EXEC);
    m.poke(0x1ffe, Uint8Array.of(0x90, 0x90)); // two NOPs at the end of the page
    const cpu = new Cpu(m);
    cpu.rip = 0x1ffe;
    expect(cpu.run(10)).toBe(EXIT_EXCEPTION);
    expect(cpu.rip).toBe(0x2000);
    expect(cpu.faultVector).toBe(PF_VEC);
    expect(cpu.faultAddress).toBe(0x2000);
    expect(cpu.faultError & PFEC_I).toBe(PFEC_I);
    m.poke(0x1fff, Uint8Array.of(0xb0)); // mov al, imm8 whose immediate is on the unmapped page
    cpu.rip = 0x1fff;
    expect(cpu.run(10)).toBe(EXIT_EXCEPTION);
    expect(cpu.rip).toBe(0x1fff);
    expect(cpu.faultAddress).toBe(0x2000);
  });
});

describe('decode cache', () => {
  it('sees self-modifying code on the same page (cache on and off agree)', () => {
    // 1000: mov al, 0x11 ; cmp al, 0x42 ; je 100f ; mov byte [rip - 12], 0x42 (patches 1001) ;
    // jmp 1000 ; 100f: ud2. The first pass caches "mov al, 0x11"; the store must invalidate it.
    const code = Uint8Array.of(0xb0, 0x11, 0x3c, 0x42, 0x74, 0x09, 0xc6, 0x05, 0xf4, 0xff, 0xff, 0xff, 0x42, 0xeb, 0xf1, 0x0f, 0x0b);
    for (const cache of [true, false]) {
      const m = new PagedMemory();
      m.map(0x1000, 0x1000, PROT_READ | PROT_WRITE | PROT_EXEC);
      m.poke(0x1000, code);
      const cpu = new Cpu(m);
      cpu.decodeCache = cache;
      cpu.rip = 0x1000;
      expect(cpu.run(100)).toBe(EXIT_EXCEPTION);
      expect(cpu.rip).toBe(0x100f);
      expect(cpu.lo[0] & 0xff).toBe(0x42);
      expect(cpu.retired).toBe(8);
      m.poke(0x1001, Uint8Array.of(0x42 ^ 0xff)); // a host-side patch (loader) invalidates too
      cpu.rip = 0x1000;
      cpu.run(1);
      expect(cpu.lo[0] & 0xff).toBe(0xbd);
    }
  });
});
