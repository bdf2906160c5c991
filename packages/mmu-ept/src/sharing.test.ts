// Copy-on-write sharing across guests, write watches, dirty logging.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  ACC_SR,
  ACC_SW,
  AddressSpace,
  CR0_PG,
  CR4_PAE,
  EFER_LME,
  FRAME_CODE,
  FRAME_WP,
  HostMemory,
  MODE_4LEVEL,
  Mmu,
  XLATE_OK,
  ZERO_FRAME,
} from './index';
import { GuestPageTables } from './testing';

const MiB = 2 ** 20;

function guest(host: HostMemory, accessDirty = false) {
  const space = new AddressSpace(host, { ept: { accessDirty } });
  const slot = space.addRam(0, 8 * MiB);
  const pt = new GuestPageTables(space, MODE_4LEVEL, 0x10_0000);
  // Identity-map the first 4 MiB with 4 KiB pages.
  for (let a = 0; a < 4 * MiB; a += 4096) pt.map(a, a);
  const mmu = new Mmu(space.ept!, space);
  mmu.writeCr4(CR4_PAE);
  mmu.writeEfer(EFER_LME);
  mmu.writeCr3(pt.cr3, 0);
  mmu.writeCr0(CR0_PG);
  return { space, slot, pt, mmu };
}

describe('copy-on-write sharing (KSM merge)', () => {
  it('two guests share one frame read-only; a CPU write breaks sharing and neither sees the other', () => {
    const host = new HostMemory();
    const a = guest(host);
    const b = guest(host);
    a.space.writeFrom(0x20_0000, new Uint8Array(4096).fill(0x42));
    b.space.writeFrom(0x30_0000, new Uint8Array(4096).fill(0x42));
    expect(a.mmu.read8(0x20_0010, 0, ACC_SR)).toBe(0x42); // warm A's TLB with the old frame
    const used = host.framesInUse;
    expect(a.space.mergeWith(0x20_0000, b.space, 0x30_0000)).toBe(true);
    const shared = a.space.frameAt(0x20_0000);
    expect(b.space.frameAt(0x30_0000)).toBe(shared);
    expect(host.refCount(shared)).toBe(2);
    expect(host.framesInUse).toBe(used - 1);
    // B's CPU writes: EPT violation (read-only mapping) -> copy -> private frame.
    expect(b.mmu.write8(0x30_0010, 0, 0x99, ACC_SW)).toBe(true);
    expect(b.space.frameAt(0x30_0000)).not.toBe(shared);
    expect(host.refCount(shared)).toBe(1);
    expect(a.mmu.read8(0x20_0010, 0, ACC_SR)).toBe(0x42);
    expect(b.mmu.read8(0x30_0010, 0, ACC_SR)).toBe(0x99);
    expect(b.mmu.read8(0x30_0011, 0, ACC_SR)).toBe(0x42); // the copy kept the rest
    // A is now the only owner: its write needs no copy.
    expect(a.mmu.write8(0x20_0010, 0, 0x11, ACC_SW)).toBe(true);
    expect(a.space.frameAt(0x20_0000)).toBe(shared);
  });

  it('refuses to merge different pages and breaks sharing on device (GuestMemory) writes too', () => {
    const host = new HostMemory();
    const a = guest(host);
    const b = guest(host);
    a.space.write8(0x5000, 1);
    b.space.write8(0x5000, 2);
    expect(a.space.mergeWith(0x5000, b.space, 0x5000)).toBe(false);
    b.space.write8(0x5000, 1);
    expect(a.space.mergeWith(0x5000, b.space, 0x5000)).toBe(true);
    expect(a.space.write32(0x5004, 0xabcdef01)).toBe(true);
    expect(b.space.read32(0x5004)).toBe(0);
    expect(a.space.read32(0x5004)).toBe(0xabcdef01);
  });

  it('zero pages: reads map the shared zero frame, discard returns a page to it', () => {
    const host = new HostMemory();
    const a = guest(host);
    expect(a.mmu.read8(0x3f_f000, 0, ACC_SR)).toBe(0);
    expect(a.space.frameAt(0x3f_f000)).toBe(ZERO_FRAME);
    expect(a.mmu.write8(0x3f_f000, 0, 7, ACC_SW)).toBe(true);
    expect(a.space.frameAt(0x3f_f000)).not.toBe(ZERO_FRAME);
    expect(a.mmu.read8(0x3f_f000, 0, ACC_SR)).toBe(7);
    const used = host.framesInUse;
    a.space.discard(0x3f_f000, 4096);
    expect(host.framesInUse).toBe(used - 1);
    expect(a.mmu.read8(0x3f_f000, 0, ACC_SR)).toBe(0); // the TLB did not keep the freed frame
  });

  it('isolation holds for random merges and writes by CPUs and devices (reference model)', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            op: fc.constantFrom('cpu', 'dev', 'merge', 'discard'),
            who: fc.integer({ min: 0, max: 1 }),
            page: fc.integer({ min: 0, max: 5 }),
            page2: fc.integer({ min: 0, max: 5 }),
            off: fc.integer({ min: 0, max: 4095 }),
            v: fc.integer({ min: 0, max: 255 }),
          }),
          { maxLength: 40 },
        ),
        (ops) => {
          const host = new HostMemory();
          const g = [guest(host), guest(host)];
          const model = [new Map<number, number>(), new Map<number, number>()];
          const base = 0x20_0000;
          for (const o of ops) {
            const addr = base + o.page * 4096 + o.off;
            if (o.op === 'cpu') {
              expect(g[o.who].mmu.write8(addr, 0, o.v, ACC_SW)).toBe(true);
              model[o.who].set(addr, o.v);
            } else if (o.op === 'dev') {
              expect(g[o.who].space.write8(addr, o.v)).toBe(true);
              model[o.who].set(addr, o.v);
            } else if (o.op === 'merge') {
              // Only merges identical pages, so the models stay valid either way.
              g[o.who].space.mergeWith(base + o.page * 4096, g[1 - o.who].space, base + o.page2 * 4096);
            } else {
              g[o.who].space.discard(base + o.page * 4096, 4096);
              for (let k = 0; k < 4096; k++) model[o.who].delete(base + o.page * 4096 + k);
            }
          }
          for (let w = 0; w < 2; w++) {
            for (let p = 0; p < 6; p++) {
              const buf = new Uint8Array(4096);
              g[w].space.readInto(base + p * 4096, buf);
              for (let k = 0; k < 4096; k += 1) {
                const want = model[w].get(base + p * 4096 + k) ?? 0;
                if (buf[k] !== want) expect([w, p, k, buf[k]]).toEqual([w, p, k, want]);
              }
              // The CPU view agrees with the device view.
              expect(g[w].mmu.read8(base + p * 4096 + 7, 0, ACC_SR)).toBe(buf[7]);
            }
          }
        },
      ),
      { numRuns: 40 },
    );
  });
});

describe('write watches for the JIT (code pages) and KSM (write protect)', () => {
  it('a watched frame loses its TLB write right; every write calls the hook before landing', () => {
    const host = new HostMemory();
    const a = guest(host);
    expect(a.mmu.write8(0x8000, 0, 1, ACC_SW)).toBe(true);
    const frame = a.space.frameAt(0x8000);
    const seen: [number, number, number][] = [];
    host.onWatchedWrite = (f, flags) => seen.push([f, flags, a.space.read8(0x8000)]);
    expect(a.mmu.write8(0x8000, 0, 2, ACC_SW)).toBe(true); // TLB hit, not watched yet
    host.setWatch(frame, FRAME_CODE, true);
    const walks = a.mmu.walks;
    expect(a.mmu.read8(0x8000, 0, ACC_SR)).toBe(2); // reads still hit
    expect(a.mmu.walks).toBe(walks);
    expect(a.mmu.write8(0x8000, 0, 3, ACC_SW)).toBe(true);
    expect(a.mmu.write8(0x8001, 0, 4, ACC_SW)).toBe(true);
    expect(seen).toEqual([
      [frame, FRAME_CODE, 2], // the hook ran before the byte changed
      [frame, FRAME_CODE, 3],
    ]);
    a.space.write8(0x8002, 5); // device DMA
    expect(seen.length).toBe(3);
    host.setWatch(frame, FRAME_CODE, false);
    host.setWatch(frame, FRAME_WP, true);
    expect(a.mmu.write8(0x8003, 0, 6, ACC_SW)).toBe(true);
    expect(seen[3]).toEqual([frame, FRAME_WP, 3]);
    host.setWatch(frame, FRAME_WP, false);
    expect(a.mmu.write8(0x8004, 0, 7, ACC_SW)).toBe(true);
    expect(a.mmu.write8(0x8005, 0, 7, ACC_SW)).toBe(true);
    expect(seen.length).toBe(4);
  });
});

describe('a code frame freed by a KSM merge', () => {
  it('tells the code watcher, which may clear its watch while the frame is being freed', () => {
    // Two guests on one HostMemory run the same code: KSM merges the pages and frees one frame.
    // The watcher (x86-core's decode cache) is told before the frame is reused and drops its
    // watch from inside the callback; that must not throw on the frame being freed.
    const host = new HostMemory();
    const a = guest(host);
    const b = guest(host);
    a.space.write8(0x9000, 0x90);
    b.space.write8(0x9000, 0x90);
    const fb = b.space.frameAt(0x9000);
    host.setWatch(fb, FRAME_CODE, true);
    const told: number[] = [];
    host.onWatchedWrite = (f, flags) => {
      told.push(f);
      host.setWatch(f, flags & FRAME_CODE, false);
    };
    expect(a.space.mergeWith(0x9000, b.space, 0x9000)).toBe(true);
    expect(told).toEqual([fb]);
    expect(host.refCount(fb)).toBe(0);
    expect(b.space.frameAt(0x9000)).toBe(a.space.frameAt(0x9000));
    // A frame never allocated is still refused.
    expect(() => host.setWatch(1e9, FRAME_CODE, true)).toThrow(RangeError);
  });
});

describe('dirty logging (KVM_GET_DIRTY_LOG semantics)', () => {
  for (const accessDirty of [true, false]) {
    it(`${accessDirty ? 'PML' : 'write-protection'}: logs CPU and device writes, get-and-clear re-arms`, () => {
      const host = new HostMemory();
      const a = guest(host, accessDirty);
      // Pages written before logging starts are not reported.
      a.mmu.write8(0x1000, 0, 1, ACC_SW);
      a.space.enableDirtyLog(a.slot);
      const out = new Uint32Array(8 * 256 / 32);
      expect(a.space.getDirtyLog(a.slot, out)).toBe(0);
      a.mmu.write8(0x1000, 0, 2, ACC_SW); // page 1: TLB had a write right before logging began
      a.mmu.write8(0x2_3000, 0, 2, ACC_SW); // page 0x23
      a.mmu.read8(0x3_0000, 0, ACC_SR); // reads are not dirt
      a.space.write32(0x7f_f000, 5); // device write, page 0x7ff
      const n = a.space.getDirtyLog(a.slot, out);
      const pages: number[] = [];
      out.forEach((w, i) => {
        for (let b = 0; b < 32; b++) if ((w >>> b) & 1) pages.push(i * 32 + b);
      });
      // Page-table pages may be dirtied by A/D updates; data pages must be exactly these.
      expect(pages.filter((p) => p < 0x100 || p >= 0x200)).toEqual([1, 0x23, 0x7ff]);
      expect(n).toBe(pages.length);
      expect(a.space.getDirtyLog(a.slot, out)).toBe(0);
      a.mmu.write8(0x2_3004, 0, 3, ACC_SW); // re-armed: logged again
      a.space.getDirtyLog(a.slot, out);
      expect(out[1]).toBe(1 << 3);
      expect(out[0]).toBe(0);
      // With EPT A/D, the walk's paging-structure accesses count as writes, so the guest's table
      // pages (0x100..) are logged too, as on hardware with PML.
      expect(out[0x100 >>> 5] & 1).toBe(accessDirty ? 1 : 0);
    });
  }

  it('more than 512 dirty pages overflow the PML page into the bitmap', () => {
    const host = new HostMemory();
    const a = guest(host, true);
    a.space.enableDirtyLog(a.slot);
    for (let p = 0x110; p < 0x110 + 700; p++) expect(a.mmu.write8(p * 4096, 0, 1, ACC_SW)).toBe(true);
    const out = new Uint32Array(64);
    a.space.getDirtyLog(a.slot, out);
    let count = 0;
    for (let p = 0x110; p < 0x110 + 700; p++) count += (out[p >>> 5] >>> (p & 31)) & 1;
    expect(count).toBe(700);
    expect(a.mmu.translate(0x200 * 4096, 0, ACC_SR)).toBe(XLATE_OK);
  });
});
