import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  ACC_SR,
  ACC_SRA,
  ACC_SW,
  ACC_SWA,
  ACC_SX,
  ACC_UR,
  ACC_UW,
  ACC_UX,
  AddressSpace,
  accessKind,
  CR0_PG,
  CR0_WP,
  CR4_LA57,
  CR4_PAE,
  CR4_PCIDE,
  CR4_PGE,
  CR4_PKE,
  CR4_PSE,
  CR4_SMAP,
  CR4_SMEP,
  EFER_LME,
  EFER_NXE,
  HostMemory,
  MODE_32,
  MODE_4LEVEL,
  MODE_5LEVEL,
  MODE_NONE,
  MODE_PAE,
  Mmu,
  PF_ID,
  PF_P,
  PF_PK,
  PF_RSVD,
  PF_U,
  PF_W,
  PTE_A,
  PTE_D,
  PTE_G,
  PTE_P,
  PTE_PS,
  PTE_RW,
  PTE_US,
  QUAL_FINAL,
  QUAL_GLA_VALID,
  XLATE_EPT_MISCONFIG,
  XLATE_EPT_VIOLATION,
  XLATE_GP,
  XLATE_OK,
  XLATE_PAGE_FAULT,
} from './index';
import { GuestPageTables } from './testing';

const TWO32 = 2 ** 32;
const MiB = 2 ** 20;
const RW_US = PTE_P | PTE_RW | PTE_US;

interface Vm {
  host: HostMemory;
  space: AddressSpace;
  pt: GuestPageTables;
  mmu: Mmu;
}

function vm(mode: number, o: { eptLevels?: 4 | 5; accessDirty?: boolean; cr4?: number; efer?: number; cr0?: number } = {}): Vm {
  const host = new HostMemory();
  const space = new AddressSpace(host, { ept: { levels: o.eptLevels ?? 4, accessDirty: o.accessDirty ?? false } });
  space.addRam(0, 64 * MiB);
  space.addRam(4 * 1024 * MiB, 16 * MiB); // RAM above 4 GiB
  space.addMmio(0xfee0_0000, 4096, 1);
  const pt = new GuestPageTables(space, mode === MODE_NONE ? MODE_32 : mode, 0x10_0000);
  const mmu = new Mmu(space.ept!, space);
  const cr4 = (o.cr4 ?? 0) | (mode === MODE_PAE || mode >= MODE_4LEVEL ? CR4_PAE : 0) | (mode === MODE_5LEVEL ? CR4_LA57 : 0);
  mmu.writeCr4(cr4);
  mmu.writeEfer((o.efer ?? EFER_NXE) | (mode >= MODE_4LEVEL ? EFER_LME : 0));
  mmu.writeCr3(pt.cr3, 0);
  if (mode !== MODE_NONE) expect(mmu.writeCr0(CR0_PG | (o.cr0 ?? CR0_WP))).toBe(XLATE_OK);
  expect(mmu.mode).toBe(mode);
  return { host, space, pt, mmu };
}

/** translate() on a linear address given as a number; canonical high addresses via `neg`. */
function xl(mmu: Mmu, linear: number, acc: number, neg = false): number {
  const lo = linear >>> 0;
  let hi = Math.floor(linear / TWO32);
  if (neg) hi = (hi | 0xffff_0000) >>> 0;
  return mmu.translate(lo, hi, acc);
}

describe('stage 1: exact guest-physical addresses per paging mode', () => {
  it('paging off: linear = guest-physical, only stage 2 is walked', () => {
    const { mmu } = vm(MODE_NONE);
    expect(xl(mmu, 0x12345, ACC_SR)).toBe(XLATE_OK);
    expect(mmu.result.gpa).toBe(0x12345);
    expect(mmu.walkRefs).toBe(4);
  });

  it('32-bit paging: 4 KiB pages, 4 MiB pages with PSE-36, PS ignored without CR4.PSE', () => {
    const v = vm(MODE_32, { cr4: CR4_PSE });
    v.pt.map(0x0804_8000, 0x0030_0000);
    v.pt.map(0xc040_0000, 0x0080_0000, { size: 0x40_0000 });
    v.pt.map(0x8000_0000, TWO32, { size: 0x40_0000 }); // PDE bits 20:13 = PA 39:32
    expect(xl(v.mmu, 0x0804_8abc, ACC_UR)).toBe(XLATE_OK);
    expect(v.mmu.result.gpa).toBe(0x0030_0abc);
    expect(v.mmu.walkRefs).toBe(2 * 5 + 4);
    expect(xl(v.mmu, 0xc05f_fffc, ACC_SR)).toBe(XLATE_OK);
    expect(v.mmu.result.gpa).toBe(0x009f_fffc);
    expect(xl(v.mmu, 0x8000_1008, ACC_SW)).toBe(XLATE_OK);
    expect(v.mmu.result.gpa).toBe(TWO32 + 0x1008);
    v.space.write32(TWO32 + 0x1008, 0xfeedface);
    expect(v.mmu.read32(0x8000_1008, 0, ACC_SR)).toBe(0xfeedface);
    // Bit 21 of a 4 MiB PDE is reserved.
    v.pt.setEntry(0x4000_0000, 2, 0x0020_0000 | PTE_PS | RW_US);
    expect(xl(v.mmu, 0x4000_0000, ACC_UW)).toBe(XLATE_PAGE_FAULT);
    expect(v.mmu.result.errorCode).toBe(PF_P | PF_W | PF_U | PF_RSVD);
    expect(v.mmu.result.cr2Lo).toBe(0x4000_0000);
    // Without CR4.PSE the PS bit is ignored: the PDE points at a page table.
    const w = vm(MODE_32);
    w.pt.setEntry(0x0040_0000, 2, 0x0020_0000 | PTE_PS | RW_US);
    w.space.write32(0x0020_0000 + 5 * 4, 0x0070_0000 | RW_US);
    expect(xl(w.mmu, 0x0040_5010, ACC_SR)).toBe(XLATE_OK);
    expect(w.mmu.result.gpa).toBe(0x0070_0010);
  });

  it('PAE: PDPTE registers, 2 MiB pages, NX, reserved PDPTE bits fault on the CR3 load', () => {
    const v = vm(MODE_PAE);
    v.pt.map(0xb000_0000, 0x0060_0000, { size: 0x20_0000 });
    v.pt.map(0x0000_1000, TWO32 + 0x5000, { hiFlags: 0x8000_0000 });
    v.mmu.writeCr3(v.pt.cr3, 0); // reload PDPTEs after building the tables
    expect(xl(v.mmu, 0xb012_3456, ACC_SR)).toBe(XLATE_OK);
    expect(v.mmu.result.gpa).toBe(0x0072_3456);
    expect(v.mmu.walkRefs).toBe(1 * 5 + 4); // the PDE only: PDPTEs are registers
    expect(xl(v.mmu, 0x1ff8, ACC_UR)).toBe(XLATE_OK);
    expect(v.mmu.result.gpa).toBe(TWO32 + 0x5ff8);
    expect(xl(v.mmu, 0x1000, ACC_UX)).toBe(XLATE_PAGE_FAULT);
    expect(v.mmu.result.errorCode).toBe(PF_P | PF_U | PF_ID);
    // A PDPTE with bit 1 set is reserved: #GP when CR3 is loaded.
    const pdpt = v.pt.cr3;
    v.space.write32(pdpt + 8, (v.space.read32(pdpt + 8) | 2) >>> 0);
    v.space.write32(pdpt + 8, v.space.read32(pdpt + 8) | PTE_P);
    expect(v.mmu.writeCr3(pdpt, 0)).toBe(XLATE_GP);
    // Not-present PDPTE: #PF with P = 0.
    const w = vm(MODE_PAE);
    expect(xl(w.mmu, 0x4000_0000, ACC_SW)).toBe(XLATE_PAGE_FAULT);
    expect(w.mmu.result.errorCode).toBe(PF_W);
    // XD set while EFER.NXE = 0 is a reserved bit.
    const x = vm(MODE_PAE, { efer: 0 });
    x.pt.map(0x2000, 0x9000, { hiFlags: 0x8000_0000 });
    x.mmu.writeCr3(x.pt.cr3, 0);
    expect(xl(x.mmu, 0x2000, ACC_SX)).toBe(XLATE_PAGE_FAULT);
    expect(x.mmu.result.errorCode).toBe(PF_P | PF_RSVD); // no I/D: neither NXE nor SMEP
  });

  it('4-level: 4 KiB, 2 MiB and 1 GiB pages, high canonical addresses, 24 references cold', () => {
    const v = vm(MODE_4LEVEL);
    const kernel = 0xffff_8000_0000_0000 - 2 ** 64 + 2 ** 48; // 0x8000_0000_0000 in 48 bits
    v.pt.map(0x7fff_ffff_f000, 0x0040_0000);
    v.pt.map(kernel + 0x20_0000, 0x0060_0000, { size: 0x20_0000 });
    v.pt.map(0x40_0000_0000, 0, { size: 2 ** 30 });
    expect(xl(v.mmu, 0x7fff_ffff_fff8, ACC_UR)).toBe(XLATE_OK);
    expect(v.mmu.result.gpa).toBe(0x0040_0ff8);
    expect(v.mmu.walkRefs).toBe(24);
    expect(xl(v.mmu, kernel + 0x2f_f000, ACC_SR, true)).toBe(XLATE_OK);
    expect(v.mmu.result.gpa).toBe(0x006f_f000);
    expect(v.mmu.walkRefs).toBe(3 * 5 + 4);
    expect(xl(v.mmu, 0x40_0000_0000 + 0x0300_0123, ACC_SR)).toBe(XLATE_OK);
    expect(v.mmu.result.gpa).toBe(0x0300_0123);
    expect(v.mmu.walkRefs).toBe(2 * 5 + 4);
    // The same access again hits the TLB: no new walk.
    const walks = v.mmu.walks;
    expect(xl(v.mmu, 0x7fff_ffff_f010, ACC_UR)).toBe(XLATE_OK);
    expect(v.mmu.walks).toBe(walks);
    // PS in a PML4E is reserved; bits 29:13 of a 1 GiB PDPTE too.
    v.pt.setEntry(0x80_0000_0000, 4, 0x0000_1000 | PTE_PS | RW_US);
    expect(xl(v.mmu, 0x80_0000_0000, ACC_SR)).toBe(XLATE_PAGE_FAULT);
    expect(v.mmu.result.errorCode).toBe(PF_P | PF_RSVD);
    v.pt.setEntry(0x41_0000_0000, 3, 0x4000_2000 | PTE_PS | RW_US);
    expect(xl(v.mmu, 0x41_0000_0000, ACC_UX)).toBe(XLATE_PAGE_FAULT);
    expect(v.mmu.result.errorCode).toBe(PF_P | PF_RSVD | PF_U | PF_ID);
    // Address bits above MAXPHYADDR (46) are reserved.
    v.pt.setEntry(0x42_0000_0000, 1, 0x5000 | RW_US, 1 << 15);
    expect(xl(v.mmu, 0x42_0000_0000, ACC_SR)).toBe(XLATE_PAGE_FAULT);
    expect(v.mmu.result.errorCode).toBe(PF_P | PF_RSVD);
  });

  it('5-level paging with a 5-level EPT: 35 references for a cold 4 KiB access', () => {
    const v = vm(MODE_5LEVEL, { eptLevels: 5 });
    const lin = 0x00ab_cdef_1234_5000;
    v.pt.map(lin, 0x0050_0000);
    expect(xl(v.mmu, lin + 0x10, ACC_SR)).toBe(XLATE_OK);
    expect(v.mmu.result.gpa).toBe(0x0050_0010);
    expect(v.mmu.walkRefs).toBe(35);
    // The same address with bit 48 flipped is a different PML5 slot: not mapped.
    expect(xl(v.mmu, lin + 2 ** 48, ACC_SR)).toBe(XLATE_PAGE_FAULT);
    expect(v.mmu.result.errorCode).toBe(0);
    expect(v.mmu.result.cr2Hi).toBe(Math.floor((lin + 2 ** 48) / TWO32));
  });
});

describe('stage 1: accessed and dirty flags written back', () => {
  for (const [name, mode] of [
    ['32-bit', MODE_32],
    ['4-level', MODE_4LEVEL],
  ] as const) {
    it(`${name}: A on every level for any access, D on the leaf for writes only`, () => {
      const v = vm(mode);
      v.pt.map(0x40_1000, 0x30_0000);
      expect(xl(v.mmu, 0x40_1000, ACC_SR)).toBe(XLATE_OK);
      for (let l = v.pt.levels; l >= 1; l--) expect(v.space.read32(v.pt.entryAddress(0x40_1000, l)) & PTE_A).toBe(PTE_A);
      expect(v.space.read32(v.pt.entryAddress(0x40_1000, 1)) & PTE_D).toBe(0);
      // A TLB entry made by a read does not allow writes until D is set by a walk.
      expect(xl(v.mmu, 0x40_1000, ACC_SW)).toBe(XLATE_OK);
      expect(v.space.read32(v.pt.entryAddress(0x40_1000, 1)) & PTE_D).toBe(PTE_D);
      expect(v.space.read32(v.pt.entryAddress(0x40_1000, 2)) & PTE_D).toBe(0); // D only on the leaf
    });
  }

  it('A/D updates need stage-2 write access: a write-protected guest page table is an EPT violation', () => {
    const v = vm(MODE_4LEVEL);
    v.pt.map(0x1000, 0x2000);
    expect(xl(v.mmu, 0x1000, ACC_SR)).toBe(XLATE_OK); // sets A everywhere
    const pte = v.pt.entryAddress(0x1000, 1);
    v.space.write32(pte, 0x2000 | RW_US); // the guest clears A and D
    // The hypervisor write-protects the page-table page (as shadow paging or dirty logging would).
    v.space.ept!.protect(pte - (pte % 4096), 1 | 4);
    v.space.ept!.invept();
    const mmu = new Mmu(v.space.ept!, null); // no resolver: the exit reaches the caller
    mmu.writeCr4(CR4_PAE);
    mmu.writeEfer(EFER_LME);
    mmu.writeCr3(v.pt.cr3, 0);
    mmu.writeCr0(CR0_PG);
    expect(mmu.translate(0x1000, 0, ACC_SR)).toBe(XLATE_EPT_VIOLATION);
    expect(mmu.result.faultGpa).toBe(pte);
    expect(mmu.result.exitQual).toBe(0x3 | 0x28 | QUAL_GLA_VALID); // read+write access, R-X, paging-structure
    // With the resolver (AddressSpace) the page is made writable again and the walk completes.
    expect(v.mmu.translate(0x1000, 0, ACC_SR)).toBe(XLATE_OK);
    expect(v.space.read32(pte) & PTE_A).toBe(PTE_A);
  });
});

describe('stage 1: protection and #PF error codes', () => {
  /** Reference rules (SDM vol. 3A 4.6), written as a table of cases independent of the walker. */
  function expected(o: { us: boolean; rw: boolean; xd: boolean; kind: number; wp: boolean; smep: boolean; smap: boolean }): number {
    const user = (o.kind & (ACC_UR | ACC_UW | ACC_UX)) !== 0;
    const write = (o.kind & (ACC_SW | ACC_SWA | ACC_UW)) !== 0;
    const fetch = (o.kind & (ACC_SX | ACC_UX)) !== 0;
    let bad = false;
    if (user) {
      if (!o.us) bad = true;
      if (write && !o.rw) bad = true;
      if (fetch && o.xd) bad = true;
    } else if (fetch) {
      if (o.xd) bad = true;
      if (o.us && o.smep) bad = true;
    } else {
      if (o.us && o.smap && (o.kind === ACC_SR || o.kind === ACC_SW)) bad = true;
      if (write && !o.rw && o.wp) bad = true;
    }
    if (!bad) return -1;
    return PF_P | (write ? PF_W : 0) | (user ? PF_U : 0) | (fetch ? PF_ID : 0);
  }

  it('matches the SDM rules for U/S, R/W, XD, CR0.WP, SMEP, SMAP and EFLAGS.AC', () => {
    const kinds = [ACC_SR, ACC_SRA, ACC_SW, ACC_SWA, ACC_SX, ACC_UR, ACC_UW, ACC_UX];
    fc.assert(
      fc.property(fc.boolean(), fc.boolean(), fc.boolean(), fc.boolean(), fc.boolean(), fc.boolean(), fc.constantFrom(...kinds), fc.boolean(), (us, rw, xd, wp, smep, smap, kind, upperOnly) => {
        const v = vm(MODE_4LEVEL, { cr4: (smep ? CR4_SMEP : 0) | (smap ? CR4_SMAP : 0), cr0: wp ? CR0_WP : 0 });
        const leaf = PTE_P | (rw ? PTE_RW : 0) | (us ? PTE_US : 0);
        // The restriction sits either on the leaf or on the PML4E (rights are ANDed over levels).
        if (upperOnly) v.pt.map(0x1000, 0x8000, { flags: RW_US, upper: leaf, upperHi: xd ? 0x8000_0000 : 0 });
        else v.pt.map(0x1000, 0x8000, { flags: leaf, hiFlags: xd ? 0x8000_0000 : 0 });
        const st = v.mmu.translate(0x1234, 0, kind);
        const want = expected({ us, rw, xd, kind, wp, smep, smap });
        if (want < 0) {
          expect(st).toBe(XLATE_OK);
          expect(v.mmu.result.gpa).toBe(0x8234);
        } else {
          expect(st).toBe(XLATE_PAGE_FAULT);
          expect(v.mmu.result.errorCode).toBe(want);
        }
        // A second access of the same kind through the TLB must agree.
        expect(v.mmu.translate(0x1234, 0, kind)).toBe(st);
      }),
      { numRuns: 150 },
    );
  });

  it('not-present faults carry W/R, U/S and I/D but not P', () => {
    const v = vm(MODE_4LEVEL, { cr4: CR4_SMEP });
    expect(xl(v.mmu, 0x5000, ACC_UW)).toBe(XLATE_PAGE_FAULT);
    expect(v.mmu.result.errorCode).toBe(PF_W | PF_U);
    expect(xl(v.mmu, 0x5000, ACC_SX)).toBe(XLATE_PAGE_FAULT);
    expect(v.mmu.result.errorCode).toBe(PF_ID);
    // 32-bit paging without SMEP: I/D is never set.
    const w = vm(MODE_32);
    expect(xl(w.mmu, 0x5000, ACC_UX)).toBe(XLATE_PAGE_FAULT);
    expect(w.mmu.result.errorCode).toBe(PF_U);
  });

  it('protection keys: access-disable and write-disable from PKRU, PK bit in the error code', () => {
    const v = vm(MODE_4LEVEL, { cr4: CR4_PKE });
    v.pt.map(0x1000, 0x8000, { hiFlags: 5 << 27 }); // key 5
    v.mmu.writePkru(1 << 11); // WD for key 5
    expect(xl(v.mmu, 0x1000, ACC_UR)).toBe(XLATE_OK);
    expect(xl(v.mmu, 0x1000, ACC_UW)).toBe(XLATE_PAGE_FAULT);
    expect(v.mmu.result.errorCode).toBe(PF_P | PF_W | PF_U | PF_PK);
    expect(xl(v.mmu, 0x1000, ACC_SW)).toBe(XLATE_PAGE_FAULT); // CR0.WP = 1: supervisors obey WD
    expect(xl(v.mmu, 0x1000, ACC_UX)).toBe(XLATE_OK); // keys never apply to fetches
    v.mmu.writePkru(1 << 10); // AD for key 5
    expect(xl(v.mmu, 0x1000, ACC_UR)).toBe(XLATE_PAGE_FAULT);
    expect(v.mmu.result.errorCode).toBe(PF_P | PF_U | PF_PK);
    v.mmu.writePkru(0);
    expect(xl(v.mmu, 0x1000, ACC_UW)).toBe(XLATE_OK);
  });

  it('accessKind picks the SMAP-checked kind for implicit and AC=0 accesses', () => {
    expect(accessKind(0, 0, false)).toBe(ACC_SR);
    expect(accessKind(0, 0, true)).toBe(ACC_SRA);
    expect(accessKind(1, 3, true, true)).toBe(ACC_SW);
    expect(accessKind(1, 3, true)).toBe(ACC_UW);
    expect(accessKind(2, 1, true)).toBe(ACC_SX);
  });
});

describe('two-dimensional walk: EPT exits during stage 1', () => {
  it('reports a violation on a guest paging-structure access and on the final access', () => {
    const v = vm(MODE_4LEVEL);
    v.pt.map(0x1000, 0xfee0_0000); // the page is MMIO: the final access exits
    expect(xl(v.mmu, 0x1010, ACC_SW)).toBe(XLATE_EPT_VIOLATION);
    expect(v.mmu.result.exitQual).toBe(0x2 | QUAL_GLA_VALID | QUAL_FINAL);
    expect(v.mmu.result.faultGpa).toBe(0xfee0_0010);
    expect(v.mmu.result.linearLo).toBe(0x1010);
    // A PDE pointing into the MMIO page: the paging-structure read exits (bit 8 clear).
    v.pt.setEntry(0x40_0000, 2, 0xfee0_0000 | RW_US);
    expect(xl(v.mmu, 0x40_0000, ACC_SR)).toBe(XLATE_EPT_VIOLATION);
    expect(v.mmu.result.exitQual).toBe(0x1 | QUAL_GLA_VALID);
    expect(v.mmu.result.faultGpa).toBe(0xfee0_0000);
  });

  it('treats paging-structure accesses as writes when EPT A/D is on', () => {
    const v = vm(MODE_4LEVEL, { accessDirty: true });
    v.pt.setEntry(0x40_0000, 2, 0xfee0_0000 | RW_US);
    expect(xl(v.mmu, 0x40_0000, ACC_SR)).toBe(XLATE_EPT_VIOLATION);
    expect(v.mmu.result.exitQual).toBe(0x3 | QUAL_GLA_VALID);
  });

  it('returns an EPT misconfiguration as its own status', () => {
    const v = vm(MODE_4LEVEL);
    v.pt.map(0x1000, 0x30_0000);
    v.space.ept!.writeRawEntry(0x30_0000, 1, 0x30_0000 | 0x32, 0); // W without R
    v.space.ept!.invept();
    expect(xl(v.mmu, 0x1000, ACC_SR)).toBe(XLATE_EPT_MISCONFIG);
    expect(v.mmu.result.faultGpa).toBe(0x30_0000);
  });
});

describe('TLB', () => {
  function counts(mmu: Mmu, linear: number, acc = ACC_SR): number {
    const w = mmu.walks;
    expect(xl(mmu, linear, acc)).toBe(XLATE_OK);
    return mmu.walks - w; // 0 = TLB hit, 1 = walk
  }

  it('keeps translations until INVLPG (stale entries are architectural), including large pages', () => {
    const v = vm(MODE_4LEVEL);
    v.pt.map(0x1000, 0x8000);
    v.pt.map(0x60_0000, 0x80_0000, { size: 0x20_0000 });
    expect(counts(v.mmu, 0x1000)).toBe(1);
    v.pt.map(0x1000, 0x9000); // guest edits its PTE without flushing
    expect(counts(v.mmu, 0x1000)).toBe(0);
    expect(v.mmu.result.gpa).toBe(0x8000);
    v.mmu.invlpg(0x1000, 0);
    expect(counts(v.mmu, 0x1000)).toBe(1);
    expect(v.mmu.result.gpa).toBe(0x9000);
    expect(counts(v.mmu, 0x61_0000)).toBe(1);
    expect(counts(v.mmu, 0x62_3000)).toBe(1);
    v.mmu.invlpg(0x60_0000, 0); // one INVLPG drops every 4 KiB piece of the 2 MiB page
    expect(counts(v.mmu, 0x61_0000)).toBe(1);
    expect(counts(v.mmu, 0x62_3000)).toBe(1);
  });

  it('CR3 writes drop non-global entries and keep global ones (CR4.PGE)', () => {
    const v = vm(MODE_4LEVEL, { cr4: CR4_PGE });
    v.pt.map(0x1000, 0x8000, { flags: RW_US | PTE_G });
    v.pt.map(0x2000, 0x9000);
    counts(v.mmu, 0x1000);
    counts(v.mmu, 0x2000);
    v.mmu.writeCr3(v.pt.cr3, 0);
    expect(counts(v.mmu, 0x1000)).toBe(0);
    expect(counts(v.mmu, 0x2000)).toBe(1);
    v.mmu.writeCr4(v.mmu.cr4 & ~CR4_PGE); // toggling PGE flushes everything
    expect(counts(v.mmu, 0x1000)).toBe(1);
  });

  it('PCIDs: entries of other PCIDs survive CR3 switches; bit 63 skips the flush; INVPCID types', () => {
    const v = vm(MODE_4LEVEL, { cr4: CR4_PCIDE | CR4_PGE });
    const other = new GuestPageTables(v.space, MODE_4LEVEL, 0x20_0000);
    v.pt.map(0x1000, 0x8000);
    other.map(0x1000, 0xa000);
    v.mmu.writeCr3(v.pt.cr3 | 1, 0); // PCID 1
    expect(counts(v.mmu, 0x1000)).toBe(1);
    expect(v.mmu.result.gpa).toBe(0x8000);
    v.mmu.writeCr3(other.cr3 | 2, 0); // PCID 2: different tag, no stale hit
    expect(counts(v.mmu, 0x1000)).toBe(1);
    expect(v.mmu.result.gpa).toBe(0xa000);
    v.mmu.writeCr3(other.cr3 | 2, 0x8000_0000); // no-flush
    expect(counts(v.mmu, 0x1000)).toBe(0);
    v.mmu.writeCr3(other.cr3 | 2, 0); // flush PCID 2
    expect(counts(v.mmu, 0x1000)).toBe(1);
    v.mmu.invpcid(1, 2, 0, 0);
    expect(counts(v.mmu, 0x1000)).toBe(1);
    v.mmu.invpcid(0, 2, 0x1000, 0);
    expect(counts(v.mmu, 0x1000)).toBe(1);
    expect(v.mmu.invpcid(4, 0, 0, 0)).toBe(false);
  });

  it('separate read/write/execute rights: a read-filled entry does not serve a write', () => {
    const v = vm(MODE_4LEVEL);
    v.pt.map(0x1000, 0x8000, { flags: PTE_P | PTE_US });
    expect(counts(v.mmu, 0x1000, ACC_UR)).toBe(1);
    expect(counts(v.mmu, 0x1000, ACC_UR)).toBe(0);
    expect(xl(v.mmu, 0x1000, ACC_UW)).toBe(XLATE_PAGE_FAULT);
    expect(v.mmu.result.errorCode).toBe(PF_P | PF_W | PF_U);
    expect(counts(v.mmu, 0x1000, ACC_UX)).toBe(0); // one entry serves read and fetch
    // A writable page read first: the entry has no write right until a walk sets D.
    v.pt.map(0x3000, 0x9000);
    expect(counts(v.mmu, 0x3000, ACC_UR)).toBe(1);
    expect(counts(v.mmu, 0x3000, ACC_UW)).toBe(1);
    expect(counts(v.mmu, 0x3000, ACC_UW)).toBe(0);
    // XD page: reads hit, fetches fault.
    v.pt.map(0x4000, 0xa000, { hiFlags: 0x8000_0000 });
    expect(counts(v.mmu, 0x4000, ACC_UR)).toBe(1);
    expect(xl(v.mmu, 0x4000, ACC_UX)).toBe(XLATE_PAGE_FAULT);
    expect(v.mmu.result.errorCode).toBe(PF_P | PF_U | PF_ID);
  });

  it('virtual read/write helpers work through the TLB and split page-crossing accesses', () => {
    const v = vm(MODE_32);
    v.pt.map(0x1000, 0x8000);
    v.pt.map(0x2000, 0x3000);
    expect(v.mmu.write32(0x1ffe, 0, 0xa1b2c3d4, ACC_SW)).toBe(true);
    expect(v.space.read16(0x8ffe)).toBe(0xc3d4);
    expect(v.space.read16(0x3000)).toBe(0xa1b2);
    expect(v.mmu.read32(0x1ffe, 0, ACC_SR)).toBe(0xa1b2c3d4);
    // A split write whose second page faults writes nothing.
    expect(v.mmu.write32(0x2ffe, 0, 0x11111111, ACC_SW)).toBe(false);
    expect(v.mmu.result.cr2Lo).toBe(0x3000);
    expect(v.space.read16(0x3ffe)).toBe(0);
    expect(v.mmu.write8(0x1001, 0, 0x5a, ACC_SW)).toBe(true);
    expect(v.mmu.read8(0x1001, 0, ACC_SR)).toBe(0x5a);
  });
});
