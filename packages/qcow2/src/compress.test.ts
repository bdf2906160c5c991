// Codecs: round trips, QEMU-compatible zlib parameters, and hostile zstd frames that declare
// more than a cluster (refused before the library could allocate for them).
import { inflateRawSync } from 'node:zlib';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { getZstdCodec, zlibCodec, zstdContentSize } from './compress';
import { createQcow2 } from './create';
import { nodeZlibCodec } from './node';
import { Qcow2Image } from './qcow2';
import { MemoryByteStore } from './store';
import { pattern } from './test-util';

const CS = 65536;
const text = new TextEncoder().encode('a cluster of text that compresses well. '.repeat(2000)).subarray(0, CS);

describe('codecs', () => {
  it('zstd round-trips and its frame declares the cluster size', async () => {
    const z = await getZstdCodec();
    const c = z.compress(text, CS - 1)!;
    expect(zstdContentSize(c)).toBe(CS);
    const out = new Uint8Array(CS);
    // Trailing bytes (the next compressed cluster) are ignored, as QEMU does.
    const withTail = new Uint8Array(c.length + 100).fill(0xee);
    withTail.set(c);
    expect(z.decompress(withTail, out)).toBe(true);
    expect(out).toEqual(text);
    expect(z.compress(pattern(CS, 1), CS - 1)).toBeNull();
  });

  it('zstd refuses frames that declare more than one cluster, or garbage, without throwing', async () => {
    const z = await getZstdCodec();
    const c = z.compress(text, CS - 1)!;
    // A valid frame: single segment, 4-byte content size of 2 GiB, one raw block of 1 byte.
    const big = new Uint8Array([0x28, 0xb5, 0x2f, 0xfd, 0xa0, 0, 0, 0, 0x80, 0x09, 0, 0, 0x41]);
    expect(zstdContentSize(big)).toBe(0x80000000);
    expect(z.decompress(big, new Uint8Array(CS))).toBe(false);
    expect(z.decompress(c, new Uint8Array(CS))).toBe(true);
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 300 }), (junk) => {
        const b = new Uint8Array(junk.length + 4);
        b.set([0x28, 0xb5, 0x2f, 0xfd]);
        b.set(junk, 4);
        // Never throws; garbage never passes as a full cluster.
        return z.decompress(b, new Uint8Array(CS)) === false;
      }),
      { numRuns: 300 },
    );
  });

  it("Node's zlib compresses with a 4 KiB window (QEMU inflates with one) and both codecs inflate it", () => {
    const c = nodeZlibCodec.compress(text, CS - 1)!;
    expect(Buffer.compare(inflateRawSync(c, { windowBits: 12 }), Buffer.from(text))).toBe(0);
    const a = new Uint8Array(CS);
    const b = new Uint8Array(CS);
    expect(nodeZlibCodec.decompress(c, a)).toBe(true);
    expect(zlibCodec.decompress(c, b)).toBe(true);
    expect(a).toEqual(text);
    expect(b).toEqual(text);
    // A stream that inflates past one cluster is cut at the cluster end (fallback codec).
    const twice = nodeZlibCodec.compress(new Uint8Array([...text, ...text]), 2 * CS)!;
    expect(nodeZlibCodec.decompress(twice, a)).toBe(true);
    expect(a).toEqual(text);
  });

  for (const ct of ['zlib', 'zstd'] as const) {
    it(`${ct}: compressed clusters gathered for one write read back before and after a flush`, async () => {
      const store = new MemoryByteStore();
      await createQcow2(store, { size: 4 << 20, compressionType: ct });
      const img = await Qcow2Image.open(store);
      const data = [text, pattern(CS, 3), text.map((x) => x ^ 1), new Uint8Array(CS)];
      for (let i = 0; i < 12; i++) await img.writeCompressed(i * CS, data[i % 4]);
      // Overwrite one compressed cluster with plain data and another partly.
      await img.write(5 * CS, text);
      await img.write(6 * CS + 100, pattern(1000, 9));
      const expected = new Uint8Array(12 * CS);
      for (let i = 0; i < 12; i++) expected.set(data[i % 4], i * CS);
      expected.set(text, 5 * CS);
      expected.set(pattern(1000, 9), 6 * CS + 100);
      expect(await img.read(0, 12 * CS)).toEqual(expected);
      await img.close();
      const again = await Qcow2Image.open(new MemoryByteStore(store.bytes()), { readOnly: true });
      expect(await again.read(0, 12 * CS)).toEqual(expected);
      await again.close();
    });
  }
});
