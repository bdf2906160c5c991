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
  compress(data: Uint8Array, level?: number): Uint8Array;
  decompress(data: Uint8Array): Uint8Array;
}

let zstdPromise: Promise<ZstdLib> | null = null;

async function loadZstd(): Promise<ZstdLib> {
  const mod = await import('@hpcc-js/wasm-zstd');
  return mod.Zstd.load();
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

/** The zstd codec (WebAssembly build of the reference library, loaded on first use). */
export async function getZstdCodec(): Promise<ClusterCodec> {
  zstdPromise ??= loadZstd();
  const z = await zstdPromise;
  return {
    compress(src: Uint8Array, limit: number): Uint8Array | null {
      const c = z.compress(src, 3);
      return c.length < limit ? c : null;
    },
    decompress(src: Uint8Array, out: Uint8Array): boolean {
      const len = zstdFrameLength(src);
      if (len < 0) return false;
      try {
        const r = z.decompress(src.subarray(0, len));
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
