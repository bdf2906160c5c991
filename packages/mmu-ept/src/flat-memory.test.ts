import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { FlatGuestMemory } from './index';

describe('FlatGuestMemory', () => {
  it('stores values little-endian, as x86 reads them', () => {
    const m = new FlatGuestMemory(64);
    expect(m.write32(4, 0x11223344)).toBe(true);
    expect([m.read8(4), m.read8(5), m.read8(6), m.read8(7)]).toEqual([0x44, 0x33, 0x22, 0x11]);
    expect(m.read16(5)).toBe(0x2233);
    m.write64(8, 0xdeadbeef, 0x80000001);
    const out = new Uint32Array(2);
    expect(m.read64(8, out, 0)).toBe(true);
    expect([out[0], out[1]]).toEqual([0xdeadbeef, 0x80000001]);
    expect(m.read32(12)).toBe(0x80000001);
  });

  it('refuses accesses outside RAM without throwing or writing', () => {
    const m = new FlatGuestMemory(16);
    expect(m.read32(13)).toBe(-1);
    expect(m.read8(-1)).toBe(-1);
    expect(m.write64(12, 1, 2)).toBe(false);
    expect(m.writeFrom(10, new Uint8Array(7).fill(9))).toBe(false);
    expect(Array.from(m.bytes)).toEqual(new Array(16).fill(0));
    expect(m.hostView(8, 9)).toBeNull();
  });

  it('agrees with a byte-array model for random writes', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 0, max: 60 }), fc.integer({ min: 0, max: 0xffffffff })), { maxLength: 50 }),
        (ops) => {
          const m = new FlatGuestMemory(64);
          const model = new Uint8Array(64);
          for (const [addr, v] of ops) {
            m.write32(addr, v);
            for (let i = 0; i < 4; i++) model[addr + i] = (v >>> (8 * i)) & 0xff;
          }
          const got = new Uint8Array(64);
          expect(m.readInto(0, got)).toBe(true);
          expect(got).toEqual(model);
        },
      ),
    );
  });
});
