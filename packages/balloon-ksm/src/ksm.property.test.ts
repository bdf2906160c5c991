// Correctness before speed: random guest writes (by vCPUs through the EPT and by devices
// through GuestMemory), balloon discards and knob changes interleaved with KSM scans on several
// VMs. Every page must always read what was last written to it (so no VM ever observes another
// VM's write), the counters must stay consistent, and unregistering must leave no reference
// behind.
import { ACC_SR, ACC_SW, AddressSpace, HostMemory, Mmu } from '@ringzero/mmu-ept';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Ksm, ManualScheduler } from './index';

const PAGE = 4096;
const VMS = 3;
const PAGES = 6;
const OFFSETS = [0, 1, 2048, 4095];

const opArb = fc.oneof(
  { weight: 6, arbitrary: fc.record({ op: fc.constant('write' as const), vm: fc.nat(VMS - 1), page: fc.nat(PAGES - 1), off: fc.constantFrom(...OFFSETS), val: fc.nat(2), cpu: fc.boolean() }) },
  { weight: 4, arbitrary: fc.record({ op: fc.constant('scan' as const), n: fc.integer({ min: 1, max: 40 }) }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('full' as const) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('discard' as const), vm: fc.nat(VMS - 1), page: fc.nat(PAGES - 1) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('zero' as const), on: fc.nat(1) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('read' as const), vm: fc.nat(VMS - 1), page: fc.nat(PAGES - 1), off: fc.constantFrom(...OFFSETS) }) },
);

describe('KSM isolation property', () => {
  it('every page reads its last write, whatever the interleaving of writes, discards and scans', () => {
    let runs = 0;
    let mergedRuns = 0;
    let brokenRuns = 0;
    fc.assert(
      fc.property(fc.array(opArb, { minLength: 20, maxLength: 60 }), fc.constantFrom(2, 3, 256), fc.nat(1), (ops, maxSharing, smart) => {
        const host = new HostMemory({ chunkShift: 8 });
        const spaces: AddressSpace[] = [];
        const cpus: Mmu[] = [];
        const model: Uint8Array[] = [];
        const ksm = new Ksm({ scheduler: new ManualScheduler(), knobs: { max_page_sharing: maxSharing, smart_scan: smart, pages_to_scan: 7 } });
        for (let v = 0; v < VMS; v++) {
          const s = new AddressSpace(host);
          s.addRam(0, PAGES * PAGE);
          spaces.push(s);
          cpus.push(new Mmu(s.ept!, s)); // paging off: linear = guest-physical, through the EPT
          model.push(new Uint8Array(PAGES * PAGE));
          ksm.register(s, 0, PAGES * PAGE, `vm${v}`);
        }
        const buf = new Uint8Array(PAGES * PAGE);
        let merged = false;
        const check = (): void => {
          for (let v = 0; v < VMS; v++) {
            expect(spaces[v].readInto(0, buf)).toBe(true);
            for (let i = 0; i < buf.length; i++) if (buf[i] !== model[v][i]) expect([v, i, buf[i]]).toEqual([v, i, model[v][i]]);
          }
          const c = ksm.counters();
          expect(c.pages_volatile).toBeGreaterThanOrEqual(0);
          expect(c.pages_unshared).toBeGreaterThanOrEqual(0);
          expect(c.pages_sharing).toBeGreaterThanOrEqual(0);
          let merging = 0;
          let zero = 0;
          for (let v = 0; v < VMS; v++) {
            const s = ksm.vmStat(`vm${v}`);
            merging += s.ksm_merging_pages;
            zero += s.ksm_zero_pages;
          }
          expect(merging).toBe(c.pages_shared + c.pages_sharing);
          if (c.pages_sharing > 0) merged = true;
          expect(zero).toBe(c.ksm_zero_pages);
        };
        for (const o of ops) {
          switch (o.op) {
            case 'write': {
              const a = o.page * PAGE + o.off;
              if (o.cpu) expect(cpus[o.vm].write8(a, 0, o.val, ACC_SW)).toBe(true);
              else expect(spaces[o.vm].write8(a, o.val)).toBe(true);
              model[o.vm][a] = o.val;
              break;
            }
            case 'read': {
              const a = o.page * PAGE + o.off;
              expect(cpus[o.vm].read8(a, 0, ACC_SR)).toBe(model[o.vm][a]);
              break;
            }
            case 'scan':
              ksm.scanBatch(o.n);
              break;
            case 'full':
              ksm.scanFull(1);
              break;
            case 'discard':
              spaces[o.vm].discard(o.page * PAGE, PAGE);
              model[o.vm].fill(0, o.page * PAGE, (o.page + 1) * PAGE);
              break;
            case 'zero':
              ksm.set('use_zero_pages', o.on);
              break;
          }
          check();
        }
        runs++;
        if (merged) mergedRuns++;
        if (ksm.staleMappings > 0) brokenRuns++;
        // Unregistering leaves no reference behind.
        for (const r of ksm.list()) expect(ksm.unregister(r.id)).toBe(0);
        check();
        const mappers = new Map<number, number>();
        for (const s of spaces) {
          for (let p = 0; p < PAGES; p++) {
            const f = s.frameAt(p * PAGE);
            if (f !== 0) mappers.set(f, (mappers.get(f) ?? 0) + 1);
          }
        }
        for (const [f, n] of mappers) expect(host.refCount(f)).toBe(n);
      }),
      { numRuns: 150 },
    );
    // The property is not vacuous: many runs merged pages, and some then broke the sharing by writes.
    expect(mergedRuns).toBeGreaterThan(runs / 4);
    expect(brokenRuns).toBeGreaterThan(runs / 20);
    console.log(`KSM property: ${runs} runs, ${mergedRuns} merged, ${brokenRuns} broke sharing`);
  });

  it('merges do happen under the property workload (the property is not vacuous)', () => {
    const host = new HostMemory({ chunkShift: 8 });
    const ksm = new Ksm({ scheduler: new ManualScheduler() });
    const spaces: AddressSpace[] = [];
    for (let v = 0; v < VMS; v++) {
      const s = new AddressSpace(host);
      s.addRam(0, PAGES * PAGE);
      for (let p = 0; p < PAGES; p++) s.write8(p * PAGE, 1);
      ksm.register(s, 0, PAGES * PAGE, `vm${v}`);
      spaces.push(s);
    }
    ksm.scanFull(2);
    expect(ksm.counters()).toMatchObject({ pages_shared: 1, pages_sharing: VMS * PAGES - 1 });
  });
});
