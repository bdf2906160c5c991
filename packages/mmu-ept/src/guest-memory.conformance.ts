// One conformance suite for every GuestMemory implementation (run by flat-memory.test.ts and
// address-space.test.ts). `make(size)` returns a memory whose RAM is exactly [0, size).
import { expect, it } from 'vitest';
import fc from 'fast-check';
import type { GuestMemory } from './guest-memory';

export function guestMemoryConformance(name: string, make: (size: number) => GuestMemory): void {
  it(`${name}: little-endian scalars of every width, lo/hi 64-bit halves`, () => {
    const m = make(8192);
    expect(m.write32(4, 0x11223344)).toBe(true);
    expect([m.read8(4), m.read8(5), m.read8(6), m.read8(7)]).toEqual([0x44, 0x33, 0x22, 0x11]);
    expect(m.read16(5)).toBe(0x2233);
    expect(m.write64(4094, 0xdeadbeef, 0x80000001)).toBe(true); // crosses a page boundary
    const out = new Uint32Array(3);
    expect(m.read64(4094, out, 1)).toBe(true);
    expect([out[1], out[2]]).toEqual([0xdeadbeef, 0x80000001]);
    expect(m.read32(4098)).toBe(0x80000001);
    expect(m.write16(4095, 0xabcd)).toBe(true);
    expect(m.read16(4095)).toBe(0xabcd);
    expect(m.write8(8191, 0x1ff)).toBe(true);
    expect(m.read8(8191)).toBe(0xff);
  });

  it(`${name}: refuses accesses outside RAM without throwing or writing`, () => {
    const m = make(4096);
    expect(m.read32(4093)).toBe(-1);
    expect(m.read8(-1)).toBe(-1);
    expect(m.read8(Number.NaN)).toBe(-1);
    expect(m.read16(4095)).toBe(-1);
    expect(m.write64(4092, 1, 2)).toBe(false);
    expect(m.write32(4094, 7)).toBe(false);
    expect(m.writeFrom(4090, new Uint8Array(7).fill(9))).toBe(false);
    expect(m.isRam(0, 4096)).toBe(true);
    expect(m.isRam(1, 4096)).toBe(false);
    const all = new Uint8Array(4096);
    expect(m.readInto(0, all)).toBe(true);
    expect(all.every((b) => b === 0)).toBe(true);
    expect(m.hostView(4000, 97)).toBeNull();
    expect(m.limit).toBe(4096);
  });

  it(`${name}: agrees with a byte-array model for random mixed-width writes`, () => {
    const size = 3 * 4096;
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            w: fc.constantFrom(1, 2, 4, 8, 0),
            addr: fc.integer({ min: -8, max: size + 8 }),
            v: fc.integer({ min: 0, max: 0xffffffff }),
            v2: fc.integer({ min: 0, max: 0xffffffff }),
            len: fc.integer({ min: 0, max: 40 }),
          }),
          { maxLength: 60 },
        ),
        (ops) => {
          const m = make(size);
          const model = new Uint8Array(size);
          for (const { w, addr, v, v2, len } of ops) {
            const n = w === 0 ? len : w;
            const fits = addr >= 0 && addr + n <= size;
            let ok: boolean;
            if (w === 1) ok = m.write8(addr, v);
            else if (w === 2) ok = m.write16(addr, v);
            else if (w === 4) ok = m.write32(addr, v);
            else if (w === 8) ok = m.write64(addr, v, v2);
            else ok = m.writeFrom(addr, new Uint8Array(len).fill(v & 0xff));
            expect(ok).toBe(fits);
            if (!fits) continue;
            for (let i = 0; i < n; i++) {
              model[addr + i] = w === 0 ? v & 0xff : i < 4 ? (v >>> (8 * i)) & 0xff : (v2 >>> (8 * (i - 4))) & 0xff;
            }
            // Read back with every width at the same address.
            if (n >= 4) expect(m.read32(addr)).toBe((model[addr] | (model[addr + 1] << 8) | (model[addr + 2] << 16) | (model[addr + 3] << 24)) >>> 0);
            if (n >= 2) expect(m.read16(addr)).toBe(model[addr] | (model[addr + 1] << 8));
          }
          const got = new Uint8Array(size);
          expect(m.readInto(0, got)).toBe(true);
          expect(got.findIndex((b, i) => b !== model[i])).toBe(-1);
        },
      ),
      { numRuns: 60 },
    );
  });
}
