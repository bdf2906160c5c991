import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ACC_SR, TLB_1G, TLB_2M, TLB_4M, Tlb } from './tlb';

/** The architected INVLPG: every entry whose (large) page covers the flushed page goes. */
function covers(tlb: Tlb, j: number, page: number, hi: number): boolean {
  if (tlb.perm[j] === 0 || tlb.tagHi[j] !== hi) return false;
  const inf = tlb.info[j];
  const s = (inf & TLB_2M) !== 0 ? 9 : (inf & TLB_4M) !== 0 ? 10 : (inf & TLB_1G) !== 0 ? 18 : 0;
  return (tlb.tagLo[j] & 0xfffff) >>> s === page >>> s;
}

describe('Tlb.flushPage', () => {
  it('drops exactly the entries covering the page (4K, 2M, 4M, 1G entries, random fills)', () => {
    const kinds = [0, TLB_2M, TLB_4M, TLB_1G];
    const fill = fc.record({ page: fc.integer({ min: 0, max: 0xfffff }), hi: fc.constantFrom(0, -1, 0x7fff), kind: fc.integer({ min: 0, max: 3 }) });
    fc.assert(
      fc.property(fc.array(fill, { maxLength: 200 }), fc.array(fc.record({ page: fc.integer({ min: 0, max: 0xfffff }), hi: fc.constantFrom(0, -1, 0x7fff) }), { maxLength: 20 }), (fills, flushes) => {
        const tlb = new Tlb(64);
        for (const f of fills) tlb.fill(f.page * 4096, f.hi, 0, ACC_SR, 0, 0, 1, 0, kinds[f.kind]);
        for (const f of flushes) {
          const expected = [...Array(64).keys()].map((j) => tlb.perm[j] !== 0 && !covers(tlb, j, f.page, f.hi));
          // Flushing a page inside a filled large page must find it (the bitmaps do not lose it).
          tlb.flushPage(f.page * 4096, f.hi);
          expect([...Array(64).keys()].map((j) => tlb.perm[j] !== 0)).toEqual(expected);
        }
        // And a flush inside each remaining large entry removes it.
        for (let j = 0; j < 64; j++) {
          if (tlb.perm[j] === 0 || tlb.info[j] === 0) continue;
          tlb.flushPage((tlb.tagLo[j] & 0xfffff) * 4096, tlb.tagHi[j]);
          expect(tlb.perm[j]).toBe(0);
        }
      }),
      { numRuns: 300 },
    );
  });
});
