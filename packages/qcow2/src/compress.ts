import { inflateSync } from 'fflate';
import { deflateRaw4k } from './deflate';

/** Compression types of the qcow2 header byte 104. */
export const COMPRESSION_ZLIB = 0;
export const COMPRESSION_ZSTD = 1;

/**
 * A cluster codec. `compress` returns null when the result would not be smaller than
 * `limit`; `decompress` fills `out` completely or returns false.
 */
export interface ClusterCodec {
  compress(src: Uint8Array, limit: number): Uint8Array | null;
  decompress(src: Uint8Array, out: Uint8Array): boolean;
  /** Optional off-thread compression (several may run at once). */
  compressAsync?(src: Uint8Array, limit: number): Promise<Uint8Array | null>;
  /** Optional off-thread decompression into `out` (several may run at once). */
  decompressAsync?(src: Uint8Array, out: Uint8Array): Promise<boolean>;
}

/** zlib (raw deflate) codec: fflate inflates, a 4 KiB-window deflater compresses. */
export const zlibCodec: ClusterCodec = {
  compress(src: Uint8Array, limit: number): Uint8Array | null {
    return deflateRaw4k(src, limit);
  },
  decompress(src: Uint8Array, out: Uint8Array): boolean {
    try {
      const r = inflateSync(src, { out });
      return r.length === out.length && r.buffer === out.buffer;
    } catch {
      return false;
    }
  },
};

interface ZstdLib {
  init(): Promise<void>;
  createCCtx(): number;
  createDCtx(): number;
  compressUsingDict(cctx: number, buf: Uint8Array, dict: Uint8Array, level?: number): Uint8Array;
  decompressUsingDict(dctx: number, buf: Uint8Array, dict: Uint8Array, opts?: { defaultHeapSize: number }): Uint8Array;
}

let zstdPromise: Promise<ZstdLib> | null = null;

async function loadZstd(): Promise<ZstdLib> {
  const mod = (await import('@bokuweb/zstd-wasm')) as unknown as ZstdLib;
  await mod.init();
  return mod;
}

/**
 * Content size a zstd frame header declares: -1 when absent, -2 when the header is malformed
 * or larger than 2^53.
 */
export function zstdContentSize(src: Uint8Array): number {
  if (src.length < 6 || src[0] !== 0x28 || src[1] !== 0xb5 || src[2] !== 0x2f || src[3] !== 0xfd) return -2;
  const fhd = src[4];
  const fcsFlag = fhd >> 6;
  const single = (fhd >> 5) & 1;
  const p = 5 + (single ? 0 : 1) + [0, 1, 2, 4][fhd & 3];
  const n = [single ? 1 : 0, 2, 4, 8][fcsFlag];
  if (n === 0) return -1;
  if (p + n > src.length) return -2;
  let v = 0;
  for (let i = n - 1; i >= 0; i--) v = v * 256 + src[p + i];
  if (n === 2) v += 256;
  return v > Number.MAX_SAFE_INTEGER ? -2 : v;
}

/**
 * Length of the zstd frame at the start of `src` (QEMU stores one frame per cluster followed by
 * padding or the next cluster's data), or -1 when the frame is malformed or truncated.
 */
export function zstdFrameLength(src: Uint8Array): number {
  if (src.length < 6) return -1;
  if (src[0] !== 0x28 || src[1] !== 0xb5 || src[2] !== 0x2f || src[3] !== 0xfd) return -1;
  const fhd = src[4];
  const fcsFlag = fhd >> 6;
  const single = (fhd >> 5) & 1;
  const checksum = (fhd >> 2) & 1;
  const dictFlag = fhd & 3;
  let p = 5 + (single ? 0 : 1) + [0, 1, 2, 4][dictFlag] + [single ? 1 : 0, 2, 4, 8][fcsFlag];
  for (;;) {
    if (p + 3 > src.length) return -1;
    const bh = src[p] | (src[p + 1] << 8) | (src[p + 2] << 16);
    p += 3;
    const last = bh & 1;
    const type = (bh >> 1) & 3;
    const size = bh >>> 3;
    if (type === 3) return -1;
    p += type === 1 ? 1 : size;
    if (p > src.length) return -1;
    if (last) break;
  }
  if (checksum) p += 4;
  return p > src.length ? -1 : p;
}

const NO_DICT = new Uint8Array(0);

/**
 * The zstd codec: the reference library built to WebAssembly (@bokuweb/zstd-wasm), loaded on
 * first use, with one compression and one decompression context reused for every cluster (a
 * fresh context per call costs more than compressing 64 KiB). A frame is only decompressed
 * after its header is checked to declare at most one cluster, so hostile input cannot make the
 * library allocate more than that.
 */
export function getZstdCodec(): Promise<ClusterCodec> {
  zstdCodec ??= makeZstdCodec();
  return zstdCodec;
}

// One codec for the whole process: its calls are synchronous, so sharing the contexts is safe.
let zstdCodec: Promise<ClusterCodec> | null = null;

async function makeZstdCodec(): Promise<ClusterCodec> {
  zstdPromise ??= loadZstd();
  const z = await zstdPromise;
  const cctx = z.createCCtx();
  const dctx = z.createDCtx();
  return {
    compress(src: Uint8Array, limit: number): Uint8Array | null {
      const c = z.compressUsingDict(cctx, src, NO_DICT, 3);
      return c.length < limit ? c : null;
    },
    decompress(src: Uint8Array, out: Uint8Array): boolean {
      const len = zstdFrameLength(src);
      if (len < 0) return false;
      const size = zstdContentSize(src);
      if (size === -2 || size > out.length) return false;
      try {
        const r = z.decompressUsingDict(dctx, src.subarray(0, len), NO_DICT, { defaultHeapSize: out.length });
        if (r.length < out.length) return false;
        out.set(r.subarray(0, out.length));
        return true;
      } catch {
        return false;
      }
    },
  };
}

export async function getCodec(type: number): Promise<ClusterCodec> {
  return type === COMPRESSION_ZSTD ? getZstdCodec() : zlibCodec;
}
