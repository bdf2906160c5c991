import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import corpus from './fuzz-corpus.json';
import type { FuzzCase, FuzzOp } from './fuzz-harness';
import { FUZZ_SPAN, runFuzzCase } from './fuzz-harness';

// Bounded: about 2 x 6 x 2 x RUNS cases of up to 40 ops. FUZZ_RUNS=2000 for a longer hunt.
const RUNS = Number(process.env.FUZZ_RUNS ?? 40);

const interesting32 = fc.constantFrom(0, 1, 2, 3, 4, 7, 15, 16, 17, 0xff, 0x100, 0x7fff, 0x8000, 0xffff, 0x1_0000, 0xff_ffff, 0x7fff_ffff, 0x8000_0000, 0xffff_fff0, 0xffff_ffff);
const value = fc.oneof(interesting32, fc.nat({ max: 0xffff_ffff }));
const op: fc.Arbitrary<FuzzOp> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ k: fc.constant('mem' as const), at: fc.nat({ max: FUZZ_SPAN - 1 }), bytes: fc.array(fc.nat({ max: 255 }), { minLength: 1, maxLength: 16 }) }) },
  { weight: 4, arbitrary: fc.record({ k: fc.constant('mem32' as const), at: fc.nat({ max: FUZZ_SPAN - 1 }), value }) },
  { weight: 3, arbitrary: fc.record({ k: fc.constant('w' as const), space: fc.nat({ max: 3 }), off: fc.oneof(fc.nat({ max: 0x120 }).map((x) => x & ~3), fc.nat({ max: 0x3040 })), size: fc.constantFrom(1, 2, 4, 3, 8), value }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('r' as const), space: fc.nat({ max: 3 }), off: fc.nat({ max: 0x3040 }), size: fc.constantFrom(1, 2, 4) }) },
  { weight: 3, arbitrary: fc.record({ k: fc.constant('kick' as const), q: fc.nat({ max: 5 }) }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('rx' as const), len: fc.oneof(fc.nat({ max: 2000 }), fc.constant(70000)) }) },
  { weight: 1, arbitrary: fc.constant({ k: 'settle' as const }) },
  {
    weight: 6,
    arbitrary: fc.record({
      k: fc.constant('desc' as const),
      q: fc.nat({ max: 4 }),
      i: fc.nat({ max: 31 }),
      addr: fc.oneof({ weight: 5, arbitrary: fc.nat({ max: 8 }) }, { weight: 1, arbitrary: fc.nat({ max: 0xffff_ffff }) }),
      len: fc.oneof(fc.constantFrom(0, 1, 16, 17, 32, 512, 4096, 0xffff_fff0, 0xffff_ffff), fc.nat({ max: 8192 })),
      // NEXT 1, WRITE 2, INDIRECT 4, packed AVAIL 0x80 / USED 0x8000
      flags: fc.oneof(fc.nat({ max: 7 }).map((f) => f | 0x80), fc.nat({ max: 7 }), fc.nat({ max: 0xffff })),
      next: fc.oneof(fc.nat({ max: 17 }), fc.nat({ max: 0xffff })),
    }),
  },
  { weight: 4, arbitrary: fc.record({ k: fc.constant('avail' as const), q: fc.nat({ max: 4 }), head: fc.oneof(fc.nat({ max: 17 }), fc.nat({ max: 0xffff })) }) },
  {
    weight: 2,
    arbitrary: fc.record({
      k: fc.constant('ctrl' as const),
      cls: fc.oneof(fc.nat({ max: 6 }), fc.nat({ max: 255 })),
      cmd: fc.oneof(fc.nat({ max: 6 }), fc.nat({ max: 255 })),
      data: fc.oneof(fc.array(fc.nat({ max: 255 }), { maxLength: 40 }), fc.constantFrom<number[]>([1], [0], [2, 0], [0xff, 0xff], [1, 0, 0, 0, 2, 0, 0, 0, 0, 1, 0, 0, 0], [0xff, 0xff, 0xff, 0xff])),
    }),
  },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('rxf' as const), bytes: fc.array(fc.oneof(fc.nat({ max: 255 }), fc.constantFrom(0xff, 0x81, 0x08, 0x86, 0xdd, 0x33, 1)), { maxLength: 80 }) }) },
);

describe('fuzz corpus (kept regression cases)', () => {
  for (const c of corpus as (FuzzCase & { expectError?: string })[]) {
    it(c.name ?? `${c.device}/${c.transport}`, async () => {
      const r = await runFuzzCase(c);
      expect(r.status & ~0xcf).toBe(0); // only defined status bits
      // Generated cases are named after the error they reached (numbers as N); hand cases say it.
      const want = c.expectError ?? (c.name ?? '').replace(/^\S+ (split|packed) /, '').replace(/ \((mmio|pci)\)$/, '');
      expect(r.lastError.replace(/0x[0-9a-f]+|\d+/g, 'N')).toContain(want.replace(/0x[0-9a-f]+|\d+/g, 'N'));
      // Errors found walking a ring or framing a request end in NEEDS_RESET (64).
      if (/^queue (\d+|N): (?!queue size|disable)|^virtio-/.test(want)) expect(r.status & 0x40).toBe(0x40);
    });
  }
});

describe('fuzz: queue memory and transport registers', () => {
  for (const device of ['blk', 'net', 'net-mq', 'console', 'console-mp', 'rng'] as const) {
    for (const transport of ['mmio', 'pci'] as const) {
      it(`${device} over ${transport} never throws or hangs`, async () => {
        await fc.assert(
          fc.asyncProperty(fc.boolean(), fc.boolean(), fc.array(op, { minLength: 1, maxLength: 40 }), async (packed, inOrder, ops) => {
            const r = await runFuzzCase({ device, transport, packed, inOrder, ops });
            expect(r.status & ~0xcf).toBe(0);
          }),
          { numRuns: RUNS },
        );
      });
    }
  }
});
