import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { AddressSpace, HostMemory, ZERO_FRAME } from './index';
import type { GuestMemory } from './guest-memory';
import { guestMemoryConformance } from './guest-memory.conformance';

const GiB = 2 ** 30;

describe('HostMemory', () => {
  it('creates chunks lazily, recycles frames zero-filled, refuses past maxFrames', () => {
    const h = new HostMemory({ chunkShift: 2, maxFrames: 10 });
    expect(h.u8.length).toBe(1);
    expect(h.refCount(ZERO_FRAME)).toBe(2);
    const a = h.alloc();
    const b = h.alloc();
    const c = h.alloc();
    expect([a, b, c]).toEqual([1, 2, 3]);
    const d = h.alloc();
    expect(d).toBe(4);
    expect(h.u8.length).toBe(2); // frame 4 opened the second chunk
    h.frameBytes(b).fill(0xaa);
    h.ref(b);
    expect(h.unref(b)).toBe(1);
    expect(h.unref(b)).toBe(0);
    expect(h.framesInUse).toBe(4);
    const e = h.alloc();
    expect(e).toBe(b); // recycled...
    expect(h.frameBytes(e).every((x) => x === 0)).toBe(true); // ...and zeroed
    for (let i = 0; i < 5; i++) expect(h.alloc()).toBeGreaterThan(0);
    expect(h.alloc()).toBe(-1);
    expect(() => h.unref(12345)).toThrow(RangeError);
  });

  it('allocRun gives frames consecutive in one chunk', () => {
    const h = new HostMemory({ chunkShift: 3 });
    h.alloc();
    const f = h.allocRun(8);
    expect(f % 8).toBe(0);
    expect(h.chunkOf(f)).toBe(h.chunkOf(f + 7));
    expect(h.allocRun(9)).toBe(-1);
  });
});

describe('AddressSpace as GuestMemory', () => {
  guestMemoryConformance('AddressSpace (lazy)', (size) => {
    const s = new AddressSpace(new HostMemory({ chunkShift: 4 }));
    s.addRam(0, size);
    return s;
  });
  guestMemoryConformance('AddressSpace (populated, two slots)', (size) => {
    const s = new AddressSpace(new HostMemory({ chunkShift: 4 }));
    const half = Math.floor(size / 8192) * 4096;
    if (half > 0) s.addRam(0, half, { populate: true });
    s.addRam(half, size - half, { populate: true });
    return s;
  });

  it('backs a 6 GiB guest with frames only where it was written', () => {
    const h = new HostMemory();
    const s = new AddressSpace(h);
    s.addRam(0, 3 * GiB);
    s.addMmio(3 * GiB, GiB, 7);
    s.addRam(4 * GiB, 3 * GiB);
    expect(s.limit).toBe(7 * GiB);
    const before = h.framesInUse;
    const hiAddr = 5 * GiB + 0x1234;
    expect(s.write32(hiAddr, 0xcafef00d)).toBe(true);
    expect(s.write64(4 * GiB - 4096 - 4, 1, 2)).toBe(false); // runs into the MMIO hole
    expect(s.write32(3 * GiB - 4, 0x01020304)).toBe(true);
    expect(s.read32(hiAddr)).toBe(0xcafef00d);
    expect(s.read32(hiAddr - 4 * GiB)).toBe(0); // not aliased below 4 GiB
    expect(s.read8(3 * GiB + 5)).toBe(-1);
    expect(s.mmioAt(3 * GiB + 5)).toBe(7);
    expect(s.isRam(3 * GiB - 4, 8)).toBe(false);
    expect(h.framesInUse - before).toBe(2);
    expect(h.bytesReserved).toBeLessThanOrEqual(64 * 1024 * 1024);
    expect(s.frameAt(6 * GiB)).toBe(ZERO_FRAME);
  });

  it('a slot crossing 4 GiB handles accesses that straddle the boundary', () => {
    const s = new AddressSpace(new HostMemory());
    s.addRam(4 * GiB - 8192, 16384);
    expect(s.write64(4 * GiB - 4, 0x11223344, 0x55667788)).toBe(true);
    expect(s.read32(4 * GiB)).toBe(0x55667788);
    expect(s.read16(4 * GiB - 1)).toBe(0x8811);
  });

  it('adds and removes RAM and MMIO at run time, releasing frames', () => {
    const h = new HostMemory();
    const s = new AddressSpace(h);
    const a = s.addRam(0, 0x10000);
    const b = s.addRam(0x10000, 0x10000);
    expect(() => s.addRam(0x8000, 0x1000)).toThrow(/overlaps/);
    expect(() => s.addMmio(0x1_0000, 0x1000, 1)).toThrow(/overlaps/);
    for (let p = 0; p < 16; p++) s.write8(0x10000 + p * 4096, p + 1);
    const used = h.framesInUse;
    s.removeRam(b);
    expect(h.framesInUse).toBe(used - 16);
    expect(s.read8(0x10000)).toBe(-1);
    expect(s.limit).toBe(0x10000);
    s.addMmio(0x10000, 0x1000, 42);
    expect(s.mmioAt(0x10fff)).toBe(42);
    expect(s.removeMmio(0x10000)).toBe(true);
    s.addRam(0x10000, 0x1000);
    expect(s.read8(0x10000)).toBe(0); // fresh RAM is zero, not the old contents
    expect(s.regions().map((r) => r.kind)).toEqual(['ram', 'ram']);
    s.removeRam(a);
    expect(() => s.removeRam(a)).toThrow(RangeError);
  });

  it('gives a host view only over consecutive private frames', () => {
    const s = new AddressSpace(new HostMemory({ chunkShift: 4 }));
    s.addRam(0, 8 * 4096, { populate: true });
    s.addRam(8 * 4096, 4 * 4096);
    const v = s.hostView(100, 3 * 4096)!;
    expect(v.length).toBe(3 * 4096);
    v[5000] = 0x77;
    expect(s.read8(5100)).toBe(0x77);
    expect(s.hostView(8 * 4096, 16)).toBeNull(); // never written: zero frame
    // Writes through the view are reported with the optional GuestMemory.markDirty.
    const slot = s.slotAt(0);
    s.enableDirtyLog(slot);
    const mem: GuestMemory = s;
    s.hostView(2 * 4096, 8)![0] = 1;
    mem.markDirty?.(2 * 4096, 8);
    const bits = new Uint32Array(1);
    expect(s.getDirtyLog(slot, bits)).toBe(1);
    expect(bits[0]).toBe(1 << 2);
    expect(s.hostView(7 * 4096, 8192)).toBeNull(); // spans two slots
  });

  it('survives hostile addresses and lengths', () => {
    const s = new AddressSpace(new HostMemory());
    s.addRam(0, 8192);
    fc.assert(
      fc.property(fc.oneof(fc.double(), fc.integer(), fc.constantFrom(2 ** 53, -0, Infinity, 8191.5)), fc.integer({ min: -5, max: 10000 }), (addr, len) => {
        expect(() => {
          s.read8(addr);
          s.read32(addr);
          s.write16(addr, 1);
          s.isRam(addr, len);
          s.hostView(addr, len);
          if (len >= 0) s.readInto(addr, new Uint8Array(Math.min(len, 64)));
        }).not.toThrow();
      }),
      { numRuns: 300 },
    );
  });
});
