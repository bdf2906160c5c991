// The reusable raw inflater (Node internals) and its inflateRawSync fallback: same bytes as
// zlib's one-shot inflate for QEMU-parameter streams with sector padding, cut at the cluster end
// like QEMU, and hostile streams refused without throwing, with the context usable afterwards.
import { constants as zc, createInflateRaw, deflateRawSync, inflateRawSync } from 'node:zlib';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { RawInflate } from './node-inflate';
import { createReusableInflater, inflateRawSyncInto } from './node-inflate';
import { pattern } from './test-util';

const CS = 65536;
const QEMU = { windowBits: 12, memLevel: 9, level: zc.Z_DEFAULT_COMPRESSION };
const text = new TextEncoder().encode('some text of a cluster, compressing well enough. '.repeat(1400)).subarray(0, CS);

function padded(d: Uint8Array, fill = 0): Uint8Array {
  const p = new Uint8Array(Math.ceil((d.length + 1) / 512) * 512).fill(fill);
  p.set(d);
  return p;
}

const reusable = createReusableInflater();
const cases: [string, RawInflate][] = [
  ['reusable', reusable ?? inflateRawSyncInto],
  ['inflateRawSync fallback', inflateRawSyncInto],
];

describe('reusable raw inflater', () => {
  it("is available on this Node (else the speed-up is lost, though decompression still works)", () => {
    expect(reusable).not.toBeNull();
  });

  it('falls back (null) when the zlib object lacks the internals, or creating it throws', () => {
    expect(createReusableInflater(() => ({}))).toBeNull();
    expect(createReusableInflater(() => ({ _handle: { writeSync: 1, reset() {} }, _writeState: new Uint32Array(2) }))).toBeNull();
    expect(createReusableInflater(() => null)).toBeNull();
    expect(
      createReusableInflater(() => {
        throw new Error('no zlib');
      }),
    ).toBeNull();
    // An object whose internals misbehave fails the self-check instead of corrupting data.
    const liar = createInflateRaw() as unknown as { _handle: { writeSync: unknown } };
    liar._handle.writeSync = (): void => {};
    expect(createReusableInflater(() => liar)).toBeNull();
  });

  for (const [name, inflate] of cases) {
    it(`${name}: inflates QEMU-parameter clusters exactly, one after another`, () => {
      const out = new Uint8Array(CS);
      for (const data of [text, pattern(CS, 5).map((b) => b & 7), new Uint8Array(CS), text.map((b) => b ^ 3)]) {
        const d = deflateRawSync(data, QEMU);
        expect(inflate(padded(d, 0xee), out)).toBe(true);
        expect(out).toEqual(data);
      }
    });

    it(`${name}: a stream longer than the cluster is cut at its end; a short one is refused`, () => {
      const out = new Uint8Array(CS);
      const twice = new Uint8Array(2 * CS);
      twice.set(text);
      twice.set(text.map((b) => b ^ 1), CS);
      expect(inflate(deflateRawSync(twice, QEMU), out)).toBe(true);
      expect(out).toEqual(text);
      if (inflate === reusable) {
        // Whatever follows (here random bytes, stored blocks), as QEMU does.
        twice.set(pattern(CS, 2), CS);
        expect(inflate(deflateRawSync(twice, QEMU), out)).toBe(true);
        expect(out).toEqual(text);
      }
      expect(inflate(deflateRawSync(text.subarray(0, CS - 1), QEMU), out)).toBe(false);
      const d = deflateRawSync(text, QEMU);
      expect(inflate(d.subarray(0, d.length >> 1), out)).toBe(false);
      expect(inflate(new Uint8Array(0), out)).toBe(false);
      // Still sound afterwards.
      expect(inflate(d, out)).toBe(true);
      expect(out).toEqual(text);
    });

    it(`${name}: hostile streams return false or the same bytes as zlib, never throw`, () => {
      const d = deflateRawSync(text, QEMU);
      const out = new Uint8Array(CS);
      fc.assert(
        fc.property(fc.oneof(fc.uint8Array({ maxLength: 600 }), fc.array(fc.tuple(fc.nat(d.length - 1), fc.nat(255)), { minLength: 1, maxLength: 4 })), (m) => {
          let src: Uint8Array;
          if (m instanceof Uint8Array) src = m;
          else {
            src = new Uint8Array(d); // (Buffer#slice would be a view of d)
            for (const [i, v] of m) src[i] = v;
          }
          out.fill(0x5a);
          const ok = inflate(src, out);
          // The oracle: zlib's one-shot inflate of the same stream (up to two clusters).
          let ref: Buffer | null;
          try {
            ref = inflateRawSync(src, { finishFlush: zc.Z_SYNC_FLUSH, maxOutputLength: 2 * CS });
          } catch {
            ref = null;
          }
          // A success is always the stream's first cluster.
          if (ok) expect(ref == null || ref.length < CS || Buffer.compare(ref.subarray(0, CS), Buffer.from(out)) === 0).toBe(true);
          // A stream that fills the cluster is accepted (the fallback only cuts some longer ones).
          if (ref != null && (ref.length === CS || (ref.length > CS && inflate === reusable))) expect(ok).toBe(true);
          // Whatever came before, the next good stream inflates exactly.
          expect(inflate(d, out)).toBe(true);
          expect(Buffer.compare(Buffer.from(out), Buffer.from(text))).toBe(0);
        }),
        { numRuns: 150 },
      );
    });
  }
});
