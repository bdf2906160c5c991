// Several requests in flight on one image: random batches of overlapping and disjoint reads,
// writes, zero-writes, discards, compressed writes and flushes are issued at once over a store
// that delays every operation by a random number of ticks, so they interleave. The outcome must
// be that of running them one after the other in submission order (the sequential model), the
// image must check clean (ours and qemu-img's), and power loss in the middle of a batch must
// keep every write acknowledged before the last completed flush.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { checkImage } from './check';
import { createQcow2 } from './create';
import { PowerLossStore } from './powerloss';
import { Qcow2Image } from './qcow2';
import { createSnapshot } from './snapshot';
import type { ByteStore } from './store';
import { MemoryByteStore } from './store';
import { haveQemu, pattern, runStatus, tempDir } from './test-util';

const Q = haveQemu('qemu-img check of images written by concurrent requests');
const t = tempDir();
afterAll(() => t.cleanup());
let fileNo = 0;

/** Delays each operation by a seeded random number of ticks (0-5), so requests interleave. */
class JitterStore implements ByteStore {
  private x: number;
  inFlight = 0;
  maxInFlight = 0;
  constructor(
    private readonly inner: ByteStore,
    seed: number,
  ) {
    this.x = seed >>> 0 || 1;
  }
  private async delay<T>(fn: () => Promise<T>): Promise<T> {
    this.inFlight++;
    if (this.inFlight > this.maxInFlight) this.maxInFlight = this.inFlight;
    try {
      this.x = (this.x * 1103515245 + 12345) >>> 0;
      const k = (this.x >>> 16) % 6;
      for (let i = 0; i < k; i++) await new Promise<void>((r) => setImmediate(r));
      return await fn();
    } finally {
      this.inFlight--;
    }
  }
  pread(offset: number, length: number): Promise<Uint8Array> {
    return this.delay(() => this.inner.pread(offset, length));
  }
  pwrite(offset: number, data: Uint8Array): Promise<void> {
    return this.delay(() => this.inner.pwrite(offset, data));
  }
  flush(): Promise<void> {
    return this.delay(() => this.inner.flush());
  }
  truncate(size: number): Promise<void> {
    return this.delay(() => this.inner.truncate(size));
  }
  size(): Promise<number> {
    return this.inner.size();
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

const SIZE = 512 * 1024;
const opArb = fc.oneof(
  { weight: 5, arbitrary: fc.record({ k: fc.constant('w' as const), off: fc.nat(SIZE - 1), len: fc.integer({ min: 1, max: 70_000 }), seed: fc.nat() }) },
  { weight: 3, arbitrary: fc.record({ k: fc.constant('r' as const), off: fc.nat(SIZE - 1), len: fc.integer({ min: 1, max: 100_000 }) }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constantFrom('z' as const, 'd' as const), off: fc.nat(SIZE - 1), len: fc.integer({ min: 1, max: 150_000 }) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('f' as const) }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('c' as const), cl: fc.nat(), seed: fc.nat(), text: fc.boolean() }) },
);
type Op = typeof opArb extends fc.Arbitrary<infer T> ? T : never;
const batchArb = fc.array(opArb, { minLength: 1, maxLength: 10 });

/**
 * Issue one batch at once. The model is advanced at submission, in order, which is what the
 * image promises (overlapping requests in submission order); each read is compared with the
 * model as it stood when the read was issued.
 */
async function runBatch(img: Qcow2Image, model: Uint8Array, ops: Op[], cs: number, onSubmit?: (op: Op, range: [number, number]) => void): Promise<void> {
  const pending: Promise<void>[] = [];
  for (const op of ops) {
    if (op.k === 'f') {
      onSubmit?.(op, [0, 0]);
      pending.push(img.flush());
    } else if (op.k === 'r') {
      const len = Math.min(op.len, SIZE - op.off);
      const expected = model.slice(op.off, op.off + len);
      pending.push(
        img.read(op.off, len).then((got) => {
          if (Buffer.compare(Buffer.from(got), Buffer.from(expected)) !== 0) throw new Error(`read at ${op.off}+${len} saw another state than at its submission`);
        }),
      );
    } else if (op.k === 'w') {
      const len = Math.min(op.len, SIZE - op.off);
      const d = pattern(len, op.seed);
      onSubmit?.(op, [op.off, op.off + len]);
      pending.push(img.write(op.off, d));
      model.set(d, op.off);
    } else if (op.k === 'c') {
      const off = (op.cl % (SIZE / cs)) * cs;
      const d = op.text ? new TextEncoder().encode(`cluster ${op.seed} `.repeat(cs / 8)).subarray(0, cs) : pattern(cs, op.seed);
      onSubmit?.(op, [off, off + cs]);
      pending.push(img.writeCompressed(off, d));
      model.set(d, off);
    } else {
      const len = Math.min(op.len, SIZE - op.off);
      onSubmit?.(op, [op.off, op.off + len]);
      if (op.k === 'z') {
        pending.push(img.writeZeroes(op.off, len));
        model.fill(0, op.off, op.off + len);
      } else {
        pending.push(img.discard(op.off, len));
        // Discarded whole clusters read as zeros; partial clusters keep their data.
        const first = Math.ceil(op.off / cs) * cs;
        const last = Math.floor((op.off + len) / cs) * cs;
        if (last > first) model.fill(0, first, last);
      }
    }
  }
  // Every request settles (none hangs); the first failure is reported.
  const results = await Promise.allSettled(pending);
  for (const r of results) if (r.status === 'rejected') throw r.reason;
}

async function memImage(cs: number, v2: boolean): Promise<MemoryByteStore> {
  const s = new MemoryByteStore();
  await createQcow2(s, { size: SIZE, clusterSize: cs, ...(v2 ? { compat: '0.10' } : {}) });
  return s;
}

describe('concurrent requests', () => {
  it('random interleavings of concurrent batches give the sequential result; ours and qemu-img check clean', async () => {
    let maxInFlight = 0;
    let qemuChecked = 0;
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(512, 4096, 65536), fc.boolean(), fc.array(batchArb, { minLength: 1, maxLength: 5 }), fc.nat(), fc.boolean(), async (cs, v2, batches, seed, snapshotBetween) => {
        const mem = await memImage(cs, v2);
        const js = new JitterStore(mem, seed);
        let img = await Qcow2Image.open(js);
        const model = new Uint8Array(SIZE);
        for (let b = 0; b < batches.length; b++) {
          await runBatch(img, model, batches[b], cs);
          if (b === 1) {
            // Between batches: a reopen, or an internal snapshot (shared clusters, COW).
            if (snapshotBetween) await createSnapshot(img, `s${b}`);
            else {
              await img.close();
              img = await Qcow2Image.open(js);
            }
          }
        }
        maxInFlight = Math.max(maxInFlight, js.maxInFlight);
        const got = await img.read(0, SIZE);
        expect(Buffer.compare(Buffer.from(got), Buffer.from(model))).toBe(0);
        // readIntoBuffer fills only what it reads as zeros: a dirty buffer must not show through.
        const dirtyBuf = new Uint8Array(SIZE + 100).fill(0xaa);
        await img.readIntoBuffer(0, dirtyBuf, 50, SIZE);
        expect(Buffer.compare(Buffer.from(dirtyBuf.subarray(50, 50 + SIZE)), Buffer.from(model))).toBe(0);
        expect(dirtyBuf[49] === 0xaa && dirtyBuf[50 + SIZE] === 0xaa).toBe(true);
        const r = await checkImage(img);
        expect(r.messages.filter((m) => m.startsWith('ERROR') || m.startsWith('Leaked'))).toEqual([]);
        expect(r.corruptions + r.leaks).toBe(0);
        await img.close();
        if (Q && qemuChecked < 15) {
          qemuChecked++;
          const f = join(t.dir, `c${fileNo++}.qcow2`);
          writeFileSync(f, mem.bytes());
          const q = runStatus('qemu-img', ['check', f]);
          expect(q.stdout + q.stderr).toContain('No errors were found');
          expect(q.status).toBe(0);
          const rawF = `${f}.raw`;
          writeFileSync(rawF, model);
          expect(runStatus('qemu-img', ['compare', '-f', 'qcow2', '-F', 'raw', f, rawF]).status).toBe(0);
        }
      }),
      { numRuns: 40 },
    );
    // The store really saw several operations at once (otherwise nothing was tested).
    expect(maxInFlight).toBeGreaterThan(1);
  });

  it('power loss in the middle of concurrent batches: the image opens clean and keeps every flushed write', async () => {
    let sampled = 0;
    for (let iter = 0; iter < 150; iter++) {
      const rnd = fc.sample(
        fc.record({ failAfter: fc.integer({ min: 1, max: 80 }), batches: fc.array(batchArb, { minLength: 1, maxLength: 4 }), keepSeed: fc.nat(), seed: fc.nat(), cs: fc.constantFrom(512, 4096) }),
        { numRuns: 1, seed: 1000 + iter },
      )[0];
      const initial = (await memImage(rnd.cs, false)).bytes();
      const store = new PowerLossStore(initial, rnd.failAfter);
      const model = new Uint8Array(SIZE);
      const durable = new Uint8Array(SIZE);
      const dirty = new Uint8Array(SIZE);
      try {
        const img = await Qcow2Image.open(new JitterStore(store, rnd.seed));
        for (const batch of rnd.batches) {
          // Flushes inside a batch are barriers but are not counted as durability points here
          // (later requests of the batch may already be marked dirty); the batch-ending one is.
          await runBatch(img, model, batch, rnd.cs, (op, [a, b]) => {
            if (op.k !== 'f') dirty.fill(1, a, b);
          });
          await img.flush();
          durable.set(model);
          dirty.fill(0);
        }
      } catch (e) {
        if (!store.dead) throw e;
      }
      let x = rnd.keepSeed >>> 0;
      const disk = await store.crash(() => {
        x = (x * 1103515245 + 12345) >>> 0;
        return (x >>> 16) % 2 === 0;
      });
      const after = await Qcow2Image.open(new MemoryByteStore(disk));
      const r = await checkImage(after);
      if (r.corruptions) throw new Error(`iteration ${iter}: ${r.messages.filter((m) => m.startsWith('ERROR')).slice(0, 5).join('; ')}`);
      const got = await after.read(0, SIZE);
      for (let i = 0; i < SIZE; i++) {
        if (!dirty[i] && got[i] !== durable[i]) throw new Error(`iteration ${iter}: flushed byte ${i} lost`);
      }
      await after.close();
      if (Q && sampled < 3 && iter % 41 === 3) {
        sampled++;
        const f = join(t.dir, `crash${fileNo++}.qcow2`);
        writeFileSync(f, disk);
        expect([0, 3]).toContain(runStatus('qemu-img', ['check', f]).status);
      }
    }
  });

  it('readIntoBuffer over a dirty buffer: zero clusters, holes and the part past a shorter backing file read as zeros', async () => {
    const base = new MemoryByteStore();
    await createQcow2(base, { size: 200_000, clusterSize: 4096 });
    const b = await Qcow2Image.open(base);
    await b.write(0, pattern(200_000, 9));
    await b.close();
    const top = new MemoryByteStore();
    await createQcow2(top, { size: SIZE, clusterSize: 4096, backingFile: 'base' });
    const img = await Qcow2Image.open(top, { openBacking: () => Qcow2Image.open(base, { readOnly: true }) });
    await img.write(8192, pattern(5000, 3));
    await img.writeZeroes(16_384, 8192);
    await img.write(300_000, pattern(10_000, 4));
    const want = await img.read(0, SIZE);
    expect(want.some((x) => x !== 0)).toBe(true);
    const buf = new Uint8Array(SIZE).fill(0x5c);
    await img.readIntoBuffer(0, buf, 0, SIZE);
    expect(Buffer.compare(Buffer.from(buf), Buffer.from(want))).toBe(0);
    expect(buf[250_000]).toBe(0); // past the backing file's end
    expect(buf[20_000]).toBe(0); // zero clusters
    await img.close();
  });

  it('a flush waits for the writes issued before it and later requests wait for the flush', async () => {
    const mem = await memImage(4096, false);
    const js = new JitterStore(mem, 7);
    const img = await Qcow2Image.open(js);
    const order: string[] = [];
    const a = img.write(0, pattern(20_000, 1)).then(() => order.push('w1'));
    const b = img.write(100_000, pattern(30_000, 2)).then(() => order.push('w2'));
    const f = img.flush().then(() => order.push('flush'));
    const c = img.write(200_000, pattern(10_000, 3)).then(() => order.push('w3'));
    await Promise.all([a, b, f, c]);
    expect(order.indexOf('flush')).toBeGreaterThan(order.indexOf('w1'));
    expect(order.indexOf('flush')).toBeGreaterThan(order.indexOf('w2'));
    expect(order.indexOf('w3')).toBeGreaterThan(order.indexOf('flush'));
    await img.close();
  });
});
