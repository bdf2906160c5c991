// A reusable synchronous raw inflater for the Node adapter. Node 20 has no public API to inflate
// synchronously without a fresh zlib context per call (inflateRawSync allocates and initialises
// one, ~75-140 us of CPU per 64 KiB cluster here); one long-lived InflateRaw's native handle,
// driven with writeSync straight into the caller's cluster buffer and reset between clusters,
// costs ~31 us (bench/inflate.ts). `_handle`, `_writeState` and the handle's
// writeSync/reset/onerror are Node internals: they are feature-checked (and a known stream is
// inflated once) at first use, and `nodeZlibCodec` falls back to inflateRawSync without them.
import { constants as zc, createInflateRaw, deflateRawSync, inflateRawSync } from 'node:zlib';
import { zlibCodec } from './compress';

/** Inflates `src` into all of `out`; false when the stream is bad or ends short. Never throws. */
export type RawInflate = (src: Uint8Array, out: Uint8Array) => boolean;

interface ZlibHandle {
  writeSync(flush: number, input: Uint8Array, inOff: number, inLen: number, out: Uint8Array, outOff: number, outLen: number): void;
  reset(): void;
  close?(): void;
  onerror: unknown;
}

interface ZlibInternals {
  _handle?: ZlibHandle | null;
  _writeState?: unknown;
}

/** The handle and its [availOut, availIn] result array, or null when Node lacks them. */
function internals(z: ZlibInternals): [ZlibHandle, Uint32Array] | null {
  const h = z._handle;
  const ws = z._writeState;
  if (h == null || typeof h.writeSync !== 'function' || typeof h.reset !== 'function') return null;
  if (!(ws instanceof Uint32Array) || ws.length < 2) return null;
  return [h, ws];
}

/**
 * A raw inflater reusing one zlib context, or null where Node's internals differ (then the
 * caller falls back). `make` creates the zlib object (a test passes one without internals).
 * Output is bounded by `out`: a stream that inflates further is cut at its end, as QEMU does
 * (it accepts a full output buffer whether or not the stream ended there).
 */
export function createReusableInflater(make: () => unknown = () => createInflateRaw()): RawInflate | null {
  let h: ZlibHandle;
  let ws: Uint32Array;
  let failed = false;
  const onerror = (): void => {
    failed = true;
  };
  const open = (): boolean => {
    let z: unknown;
    try {
      z = make();
    } catch {
      return false;
    }
    const i = z != null && typeof z === 'object' ? internals(z) : null;
    if (i == null) return false;
    [h, ws] = i;
    // Errors arrive synchronously through onerror; the stream object never sees them.
    h.onerror = onerror;
    return true;
  };
  const inflate: RawInflate = (src, out) => {
    failed = false;
    // writeSync leaves the result array as it was on an error: no stale success.
    ws[0] = 1;
    try {
      h.writeSync(zc.Z_SYNC_FLUSH, src, 0, src.length, out, 0, out.length);
      const ok = !failed && ws[0] === 0;
      if (failed) {
        // A zlib error leaves the context in an error state: start a fresh one.
        try {
          h.close?.();
        } catch {
          // Nothing to release then.
        }
        if (!open()) return false;
      } else h.reset();
      return ok;
    } catch {
      return false;
    }
  };
  if (!open()) return null;
  // Self-check once: a known stream (with trailing sector padding) must come out exactly.
  const probe = new Uint8Array(4096);
  for (let i = 0; i < probe.length; i++) probe[i] = (i * 7) & 0x3f;
  const d = deflateRawSync(probe);
  const padded = new Uint8Array(d.length + 17).fill(0xa5);
  padded.set(d);
  const back = new Uint8Array(probe.length);
  if (!inflate(padded, back) || back.some((b, i) => b !== probe[i])) return null;
  if (inflate(new Uint8Array([0xff, 0xff, 0xff]), back)) return null;
  return inflate;
}

/**
 * Inflates through a fresh zlib context per call (the fallback where Node's internals differ);
 * a stream that inflates past `out` goes to the isomorphic codec, which cuts it at the end.
 */
export function inflateRawSyncInto(src: Uint8Array, out: Uint8Array): boolean {
  try {
    const r = inflateRawSync(src, { finishFlush: zc.Z_SYNC_FLUSH, maxOutputLength: out.length });
    if (r.length !== out.length) return false;
    out.set(r);
    return true;
  } catch {
    return zlibCodec.decompress(src, out);
  }
}
