// Compressor pools: the worker pool's output decompresses to its input with both codecs (and
// matches the inline pool's zlib bytes), errors are one clear line, closing waits for work and
// refuses more. The native zstd codec refuses hostile frames as the WebAssembly one does.
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { COMPRESSION_ZLIB, COMPRESSION_ZSTD, getZstdCodec, zlibCodec } from './compress';
import { getNodeZstdCodec, nodeZlibCodec, WorkerCompressorPool } from './node';
import { inlineCompressorPool } from './pool';
import { pattern, tempDir } from './test-util';

const CS = 65536;
const same = (a: Uint8Array, b: Uint8Array): boolean => Buffer.compare(a, b) === 0;
const text = (seed: number): Uint8Array => new TextEncoder().encode(`cluster ${seed} of text that compresses well. `.repeat(2000)).subarray(0, CS);

describe('compressor pools', () => {
  it('the worker pool compresses batches with zlib and zstd; every cluster inflates back', async () => {
    const pool = new WorkerCompressorPool({ threads: 2 });
    try {
      const clusters = [text(1), pattern(CS, 7), text(2), text(3)];
      const zstd = await getZstdCodec();
      const inline = inlineCompressorPool(() => nodeZlibCodec);
      for (const type of [COMPRESSION_ZLIB, COMPRESSION_ZSTD]) {
        // Several batches at once, more than the workers: queued, then all answered.
        const results = await Promise.all([0, 1, 2, 3, 4].map(() => pool.compress(type, clusters, CS - 1)));
        for (const r of results) {
          expect(r).toHaveLength(4);
          expect(r[1]).toBeNull(); // random bytes do not shrink
          for (const k of [0, 2, 3]) {
            const out = new Uint8Array(CS);
            expect((type === COMPRESSION_ZSTD ? zstd : zlibCodec).decompress(r[k]!, out)).toBe(true);
            expect(same(out, clusters[k])).toBe(true);
          }
        }
        if (type === COMPRESSION_ZLIB) {
          // Same parameters as QEMU and the inline codec: the same bytes.
          const ref = await inline.compress(type, clusters, CS - 1);
          expect(same(results[0][0]!, ref[0]!)).toBe(true);
          expect(same(results[0][3]!, ref[3]!)).toBe(true);
        }
      }
    } finally {
      await pool.close();
    }
  });

  it('an unknown compression type fails with one line; the pool goes on; close() waits and then refuses', async () => {
    const pool = new WorkerCompressorPool({ threads: 1 });
    await expect(pool.compress(7, [text(1)], CS - 1)).rejects.toThrow(/^compression failed: unknown compression type 7$/);
    const pending = pool.compress(COMPRESSION_ZLIB, [text(4), text(5)], CS - 1);
    const closing = pool.close();
    const r = await pending;
    expect(r[0]).not.toBeNull();
    await closing;
    await expect(pool.compress(COMPRESSION_ZLIB, [text(1)], CS - 1)).rejects.toThrow('compressor pool is closed');
    await pool.close(); // idempotent
  });

  it('a process that used the shared pool and never closed it still exits by itself', () => {
    const t = tempDir();
    try {
      const script = join(t.dir, 'exit.mts');
      const node = JSON.stringify(new URL('./node.ts', import.meta.url).pathname);
      writeFileSync(script, `import { sharedCompressorPool } from ${node};
const r = await sharedCompressorPool().compress(0, [new Uint8Array(65536)], 65535);
console.log(r[0] ? 'compressed ' + r[0].length : 'none');\n`);
      // A hang would end at the guard and fail on the status (null).
      const r = spawnSync(process.execPath, ['--import', 'tsx', '--conditions=@ringzero/source', script], { encoding: 'utf8', timeout: 120_000 });
      expect(r.stderr).toBe('');
      expect(r.stdout).toMatch(/^compressed \d+\n$/);
      expect(r.status).toBe(0);
    } finally {
      t.cleanup();
    }
  });

  it('a batch of clusters of different sizes is refused', async () => {
    const pool = new WorkerCompressorPool({ threads: 1 });
    try {
      await expect(pool.compress(COMPRESSION_ZLIB, [text(1), text(1).subarray(0, 512)], CS - 1)).rejects.toThrow(/one size/);
    } finally {
      await pool.close();
    }
  });

  it('the native zstd codec round-trips and refuses frames declaring more than a cluster or delivering more than declared', async () => {
    const z = await getNodeZstdCodec();
    const c = z.compress(text(9), CS - 1)!;
    const out = new Uint8Array(CS);
    const withTail = new Uint8Array(c.length + 100).fill(0xee);
    withTail.set(c);
    expect(z.decompress(withTail, out)).toBe(true);
    expect(same(out, text(9))).toBe(true);
    // Declares 2 GiB (single segment, 4-byte size), one raw block of 1 byte.
    expect(z.decompress(new Uint8Array([0x28, 0xb5, 0x2f, 0xfd, 0xa0, 0, 0, 0, 0x80, 0x09, 0, 0, 0x41]), new Uint8Array(CS))).toBe(false);
    // Declares exactly one cluster (2-byte size field: value - 256) but its raw block holds one
    // byte more: refused, nothing written past the cluster.
    const n = CS + 1;
    const lie = new Uint8Array(5 + 2 + 3 + n);
    lie.set([0x28, 0xb5, 0x2f, 0xfd, 0x60, (CS - 256) & 0xff, (CS - 256) >> 8]);
    const bh = (n << 3) | 1; // last block, raw
    lie.set([bh & 0xff, (bh >> 8) & 0xff, (bh >> 16) & 0xff], 7);
    lie.fill(0x41, 10);
    expect(z.decompress(lie, new Uint8Array(CS))).toBe(false);
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 300 }), (junk) => {
        const b = new Uint8Array(junk.length + 4);
        b.set([0x28, 0xb5, 0x2f, 0xfd]);
        b.set(junk, 4);
        expect(typeof z.decompress(b, new Uint8Array(CS))).toBe('boolean');
      }),
      { numRuns: 300 },
    );
  });
});
