// NodeFileStore's write path: big writes queue and run one at a time in submission order, small
// ones run at once; close waits for the queue. The file itself is the oracle (read back with
// readFileSync, not through the store).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { NodeFileStore } from './node';
import { tempDir } from './test-util';

const t = tempDir();
afterAll(() => t.cleanup());
let n = 0;
const file = (): string => join(t.dir, `store-${n++}.bin`);

describe('NodeFileStore writes', () => {
  it('writes issued together, overlapping or not, land as if done in submission order', async () => {
    const SIZE = 1 << 16;
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ off: fc.nat(SIZE - 1), len: fc.integer({ min: 1, max: 9000 }), fill: fc.integer({ min: 1, max: 255 }) }), { minLength: 1, maxLength: 24 }),
        fc.constantFrom(0, 4096),
        async (writes, syncMax) => {
          const f = file();
          // syncMax 0: every write takes the queued (thread-pool) path; 4096: a mix of both.
          const s = await NodeFileStore.open(f, { create: true, syncMax });
          const model = new Uint8Array(SIZE + 9000);
          let end = 0;
          const all: Promise<void>[] = [];
          for (const w of writes) {
            all.push(s.pwrite(w.off, new Uint8Array(w.len).fill(w.fill)));
            model.fill(w.fill, w.off, w.off + w.len);
            end = Math.max(end, w.off + w.len);
          }
          await Promise.all(all);
          await s.close();
          const got = new Uint8Array(readFileSync(f));
          expect(got.length).toBe(end);
          expect(Buffer.compare(got, model.subarray(0, end))).toBe(0);
        },
      ),
      { numRuns: 40 },
    );
  });

  it('close waits for queued writes; a write after close fails with one clear error', async () => {
    const f = file();
    const s = await NodeFileStore.open(f, { create: true, syncMax: 0 });
    const big = new Uint8Array(3 << 20).fill(7);
    const pending = [s.pwrite(0, big), s.pwrite(3 << 20, big), s.pwrite(6 << 20, big)];
    const closed = s.close();
    await Promise.all(pending);
    await closed;
    const got = readFileSync(f);
    expect(got.length).toBe(9 << 20);
    expect(got.every((b) => b === 7)).toBe(true);
    await expect(s.pwrite(0, big)).rejects.toThrow(/closed image file/);
  });
});
