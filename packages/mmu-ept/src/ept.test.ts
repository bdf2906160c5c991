import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  ACC_SW,
  AddressSpace,
  CR0_PG,
  CR4_PAE,
  EFER_LME,
  MODE_4LEVEL,
  Mmu,
  Ept,
  EPT_A,
  EPT_D,
  EPT_MISCONFIG,
  EPT_OK,
  EPT_R,
  EPT_RWX,
  EPT_VIOLATION,
  EPT_W,
  EPT_X,
  HostMemory,
  INVEPT_ALL,
  MT_UC,
  MT_WB,
  PAGE_1G,
  PAGE_2M,
  PAGE_4K,
  QUAL_FETCH,
  QUAL_FINAL,
  QUAL_GLA_VALID,
  QUAL_READ,
  QUAL_WRITE,
} from './index';
import { GuestPageTables } from './testing';

const GiB = 2 ** 30;

function setup(opts: ConstructorParameters<typeof Ept>[1] = {}) {
  // 512 frames per chunk: allocRun(512) then yields a 2 MiB-aligned run.
  const host = new HostMemory({ chunkShift: 9 });
  const ept = new Ept(host, opts);
  const data = host.alloc();
  return { host, ept, data };
}

describe('EPTP and entry layout (SDM / KVM vmx.h bit positions)', () => {
  it('encodes memory type, walk length - 1, A/D enable and the root address', () => {
    const { ept } = setup({ accessDirty: true });
    expect(ept.eptpLo).toBe(((ept.rootFrame * 4096) | (3 << 3) | 0x40 | 6) >>> 0);
    expect(ept.eptpLo & 0x3f).toBe(0x1e); // WB, 4-level
    const host = new HostMemory({ chunkShift: 8 });
    const e5 = new Ept(host, { levels: 5, memoryType: MT_UC });
    expect(e5.eptpLo & 0x7f).toBe(0x20); // UC, 5-level, no A/D
    expect(e5.eptpHi).toBe(0);
  });

  it('writes leaves and tables bit for bit', () => {
    const { host, ept } = setup();
    const out = new Uint32Array(2);
    const f4 = host.alloc();
    expect(ept.map(0x5000, f4, PAGE_4K, EPT_RWX, MT_WB)).toBe(true);
    ept.readEntry(0x5000, 1, out);
    expect(out[0]).toBe(((f4 << 12) | (6 << 3) | 7) >>> 0);
    expect(out[1]).toBe(0);
    ept.readEntry(0x5000, 2, out); // the PDE pointing at the page table: address | RWX, bits 7:3 zero
    expect(out[0] & 0xfff).toBe(7);
    const f2 = host.allocRun(512);
    expect(f2 % 512).toBe(0);
    expect(ept.map(PAGE_2M * 3, f2, PAGE_2M, EPT_R | EPT_X, MT_UC, true)).toBe(true);
    ept.readEntry(PAGE_2M * 3, 2, out);
    expect(out[0]).toBe(((f2 << 12) | 0x80 | 0x40 | (0 << 3) | 5) >>> 0);
    // A frame above 4 GiB of host-physical space lands in the high word (bits 51:32).
    expect(ept.writeRawEntry(8 * GiB, 1, 0x1000_0037, 0x3)).toBe(true);
    ept.readEntry(8 * GiB, 1, out);
    expect([out[0], out[1]]).toEqual([0x1000_0037, 3]);
  });
});

describe('EPT translation', () => {
  it('translates 4 KiB, 2 MiB and 1 GiB leaves with the right memory references', () => {
    const { host, ept, data } = setup();
    ept.map(0x7000, data, PAGE_4K, EPT_RWX, MT_WB);
    expect(ept.translate(0x7abc, QUAL_READ, 0)).toBe(EPT_OK);
    expect([ept.frame, ept.refs, ept.pageSize, ept.memType, ept.perms]).toEqual([data, 4, PAGE_4K, MT_WB, 7]);
    const run = host.allocRun(512);
    expect(ept.map(0x40_0000, run, PAGE_2M, EPT_RWX)).toBe(true);
    expect(ept.translate(0x40_0000 + 17 * 4096 + 5, QUAL_WRITE, 0)).toBe(EPT_OK);
    expect([ept.frame, ept.refs, ept.pageSize]).toEqual([run + 17, 3, PAGE_2M]);
    // 1 GiB leaf at GPA 5 GiB -> host frames from 0 (frame 0..: only allocated ones are usable).
    ept.writeRawEntry(5 * GiB, 3, (0x80 | 0x30 | 7) >>> 0, 0);
    expect(ept.translate(5 * GiB + data * 4096 + 1, QUAL_FETCH, 0)).toBe(EPT_OK);
    expect([ept.frame, ept.refs, ept.pageSize]).toEqual([data, 2, PAGE_1G]);
  });

  it('reports violations with the SDM exit qualification', () => {
    const { ept, data } = setup();
    // Nothing mapped: read of a GPA whose PML4E is not present.
    expect(ept.translate(0x1234, QUAL_READ, QUAL_GLA_VALID | QUAL_FINAL)).toBe(EPT_VIOLATION);
    expect(ept.qual).toBe(0x181); // read | GLA valid | final; bits 5:3 = 0 (nothing readable)
    expect(ept.faultLevel).toBe(4);
    ept.map(0x2000, data, PAGE_4K, EPT_R | EPT_X);
    expect(ept.translate(0x2008, QUAL_WRITE, QUAL_GLA_VALID)).toBe(EPT_VIOLATION);
    expect(ept.qual).toBe(0x2 | 0x28 | 0x80); // write; readable+executable; GLA valid; paging-structure access
    ept.protect(0x2000, EPT_R | EPT_W);
    expect(ept.translate(0x2008, QUAL_FETCH, 0)).toBe(EPT_VIOLATION);
    expect(ept.qual).toBe(0x4 | 0x18);
    // Bits 5:3 are the AND over every level: a read-only PDE hides W and X of the leaf.
    ept.protect(0x2000, EPT_RWX);
    const out = new Uint32Array(2);
    ept.readEntry(0x2000, 2, out);
    ept.writeRawEntry(0x2000, 2, ((out[0] & ~7) | EPT_R) >>> 0, out[1]);
    expect(ept.translate(0x2000, QUAL_WRITE, 0)).toBe(EPT_VIOLATION);
    expect(ept.qual).toBe(0x2 | 0x8);
    expect(ept.translate(0x2000, QUAL_READ, 0)).toBe(EPT_OK);
    // GPAs beyond the 48-bit reach of a 4-level EPT.
    expect(ept.translate(2 ** 48, QUAL_READ, 0)).toBe(EPT_VIOLATION);
  });

  it('reports misconfigurations for the SDM cases and never for absent entries', () => {
    const cases: [string, number, number, number][] = [
      // [what, level, lo, hi]
      ['write-only leaf (XWR 010)', 1, 0x32, 0],
      ['write+execute leaf (XWR 110)', 1, 0x36, 0],
      ['memory type 2', 1, (2 << 3) | 7, 0],
      ['memory type 3', 1, (3 << 3) | 7, 0],
      ['memory type 7', 1, (7 << 3) | 7, 0],
      ['address bit above MAXPHYADDR (46)', 1, 0x37, 1 << 14],
      ['page-size bit in a PML4E', 4, 0x87, 0],
      ['bit 3 in a PML4E', 4, 0x0f, 0],
      ['bit 6 in a non-leaf PDE', 2, 0x47, 0],
      ['bits 20:12 in a 2 MiB leaf', 2, 0x1000 | 0xb7, 0],
      ['bits 29:12 in a 1 GiB leaf', 3, 0x20_0000 | 0xb7, 0],
    ];
    for (const [what, level, lo, hi] of cases) {
      const { ept } = setup();
      ept.writeRawEntry(0x40_0000, level, lo >>> 0, hi);
      expect(ept.translate(0x40_0000, QUAL_READ, 0), what).toBe(EPT_MISCONFIG);
      expect(ept.faultLevel, what).toBe(level);
    }
    // Execute-only is a misconfiguration only without the capability.
    const a = setup({ executeOnly: false });
    a.ept.map(0x1000, a.data, PAGE_4K, EPT_X);
    expect(a.ept.translate(0x1000, QUAL_FETCH, 0)).toBe(EPT_MISCONFIG);
    const b = setup();
    b.ept.map(0x1000, b.data, PAGE_4K, EPT_X);
    expect(b.ept.translate(0x1000, QUAL_FETCH, 0)).toBe(EPT_OK);
    expect(b.ept.translate(0x1000, QUAL_READ, 0)).toBe(EPT_VIOLATION);
    expect(b.ept.qual).toBe(0x1 | 0x20);
    // An absent entry full of reserved garbage is a violation, not a misconfiguration.
    const c = setup();
    c.ept.writeRawEntry(0x1000, 1, 0xfffff0f8, 0xffff_ffff);
    expect(c.ept.translate(0x1000, QUAL_READ, 0)).toBe(EPT_VIOLATION);
  });

  it('sets accessed and dirty flags and logs newly dirty pages to the PML page', () => {
    const { host, ept, data } = setup({ accessDirty: true });
    const logged: number[] = [];
    ept.enablePml(() => ept.drainPml((g) => logged.push(g)));
    ept.map(0x3000, data, PAGE_4K, EPT_RWX);
    const out = new Uint32Array(2);
    expect(ept.translate(0x3010, QUAL_READ, 0)).toBe(EPT_OK);
    for (let l = 4; l >= 1; l--) {
      ept.readEntry(0x3000, l, out);
      expect(out[0] & EPT_A).toBe(EPT_A);
    }
    ept.readEntry(0x3000, 1, out);
    expect(out[0] & EPT_D).toBe(0);
    expect(ept.dirty).toBe(false);
    expect(ept.pmlIndex).toBe(511);
    expect(ept.translate(0x3010, QUAL_WRITE, 0)).toBe(EPT_OK);
    ept.readEntry(0x3000, 1, out);
    expect(out[0] & EPT_D).toBe(EPT_D);
    expect(ept.pmlIndex).toBe(510);
    // The PML page holds the 64-bit GPA at entry 511, page-aligned.
    expect(host.readU32(ept.pmlFrame, 511 * 8)).toBe(0x3000);
    expect(ept.translate(0x3010, QUAL_WRITE, 0)).toBe(EPT_OK);
    expect(ept.pmlIndex).toBe(510); // already dirty: no second log
    // Fill the log: 512 entries then a "PML full" drain.
    for (let i = 0; i < 600; i++) {
      ept.map(0x100_0000 + i * 4096, data, PAGE_4K, EPT_RWX);
      ept.translate(0x100_0000 + i * 4096, QUAL_WRITE, 0);
    }
    expect(logged.length).toBe(512);
    expect(logged[0]).toBe(0x3000);
    expect(logged[1]).toBe(0x100_0000);
    const rest: number[] = [];
    ept.drainPml((g) => rest.push(g));
    expect(rest.length).toBe(601 - 512);
    expect(rest[rest.length - 1]).toBe(0x100_0000 + 599 * 4096);
  });

  it('leaves A/D alone when EPTP bit 6 is clear', () => {
    const { ept, data } = setup();
    ept.map(0x3000, data, PAGE_4K, EPT_RWX);
    ept.translate(0x3000, QUAL_WRITE, 0);
    const out = new Uint32Array(2);
    ept.readEntry(0x3000, 1, out);
    expect(out[0] & (EPT_A | EPT_D)).toBe(0);
  });

  it('INVEPT single-context flushes this EPT\'s TLBs, all-context every TLB on the host', () => {
    const { host, ept } = setup();
    const other = new Ept(host);
    let mine = 0;
    let theirs = 0;
    const c1 = { flushAll: () => mine++, dropWrite: () => {} };
    const c2 = { flushAll: () => theirs++, dropWrite: () => {} };
    ept.attach(c1);
    other.attach(c2);
    host.addWriteCache(c1);
    host.addWriteCache(c2);
    ept.invept();
    expect([mine, theirs]).toEqual([1, 0]);
    ept.invept(INVEPT_ALL);
    expect(theirs).toBe(1);
  });

  it('agrees with a page-map model for random 4 KiB mappings and accesses', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 0, max: 63 }), fc.integer({ min: 0, max: 7 }), fc.integer({ min: 0, max: 3 })), { maxLength: 40 }),
        fc.array(fc.tuple(fc.integer({ min: 0, max: 63 }), fc.constantFrom(QUAL_READ, QUAL_WRITE, QUAL_FETCH)), { maxLength: 40 }),
        (maps, accesses) => {
          const host = new HostMemory({ chunkShift: 8 });
          const ept = new Ept(host);
          const frames = [host.alloc(), host.alloc(), host.alloc(), host.alloc()];
          const model = new Map<number, [number, number]>();
          // Spread pages over distant GPAs so several tables are involved.
          const gpaOf = (p: number) => (p % 8) * 4096 + Math.floor(p / 8) * 2 ** 39 / 64;
          for (const [p, perms, f] of maps) {
            if (perms === 2 || perms === 6) continue; // misconfigurations are tested above
            if (perms === 0) ept.unmap(gpaOf(p));
            else ept.map(gpaOf(p), frames[f], PAGE_4K, perms);
            if (perms === 0) model.delete(p);
            else model.set(p, [perms, frames[f]]);
          }
          for (const [p, acc] of accesses) {
            const st = ept.translate(gpaOf(p) + 12, acc, 0);
            const m = model.get(p);
            if (m !== undefined && (m[0] & acc) === acc) {
              expect(st).toBe(EPT_OK);
              expect(ept.frame).toBe(m[1]);
            } else {
              expect(st).toBe(EPT_VIOLATION);
              expect(ept.qual & 7).toBe(acc);
              expect((ept.qual >>> 3) & 7).toBe(m === undefined ? 0 : m[0]);
            }
          }
        },
      ),
      { numRuns: 60 },
    );
  });
});

describe('host-physical addresses above 4 GiB', () => {
  it('encodes frames >= 2^20 in the entry high word and translates through them', () => {
    // 1 GiB chunks: the buffers below frame 2^20 are reserved virtually, not touched.
    const host = new HostMemory({ chunkShift: 18, maxFrames: 2 ** 21 });
    const space = new AddressSpace(host);
    for (let i = 0; i < 4; i++) host.allocRun(2 ** 18 - (i === 0 ? 4 : 0));
    space.addRam(0, 2 * 2 ** 20, { populate: true });
    const f = space.frameAt(0x1000);
    expect(f).toBeGreaterThanOrEqual(2 ** 20);
    const pt = new GuestPageTables(space, MODE_4LEVEL, 0x10_0000);
    pt.map(0x1000, 0x1000);
    const mmu = new Mmu(space.ept!, space);
    mmu.writeCr4(CR4_PAE);
    mmu.writeEfer(EFER_LME);
    mmu.writeCr3(pt.cr3, 0);
    mmu.writeCr0(CR0_PG);
    expect(mmu.write32(0x1010, 0, 0x600dcafe, ACC_SW)).toBe(true);
    expect(mmu.result.frame).toBe(f);
    expect(space.read32(0x1010)).toBe(0x600dcafe);
    const out = new Uint32Array(2);
    space.ept!.readEntry(0x1000, 1, out);
    expect(out[1]).toBe(Math.floor(f / 2 ** 20)); // HPA bits 51:32
    expect(out[0] >>> 12).toBe(f % 2 ** 20);
    expect(space.ept!.translate(0x1ff8, QUAL_WRITE, 0)).toBe(EPT_OK);
    expect(space.ept!.frame).toBe(f);
  });
});
