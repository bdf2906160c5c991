// xxHash32 (Yann Collet's XXH32), the checksum Linux's KSM computes per page
// (calc_checksum: xxhash(addr, PAGE_SIZE, 0), a 32-bit value on the kernels that use xxh32).

const P1 = 0x9e3779b1 | 0;
const P2 = 0x85ebca77 | 0;
const P3 = 0xc2b2ae3d | 0;
const P4 = 0x27d4eb2f | 0;
const P5 = 0x165667b1 | 0;

function rotl(x: number, r: number): number {
  return (x << r) | (x >>> (32 - r));
}

function avalanche(h: number): number {
  h ^= h >>> 15;
  h = Math.imul(h, P2);
  h ^= h >>> 13;
  h = Math.imul(h, P3);
  h ^= h >>> 16;
  return h >>> 0;
}

/** XXH32 of any byte string (reference path, used by tests and off hot paths). */
export function xxh32(data: Uint8Array, seed = 0): number {
  const len = data.length;
  const u32 = (i: number): number => data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24);
  let i = 0;
  let h: number;
  if (len >= 16) {
    let v1 = (seed + P1 + P2) | 0;
    let v2 = (seed + P2) | 0;
    let v3 = seed | 0;
    let v4 = (seed - P1) | 0;
    for (; i + 16 <= len; i += 16) {
      v1 = Math.imul(rotl((v1 + Math.imul(u32(i), P2)) | 0, 13), P1);
      v2 = Math.imul(rotl((v2 + Math.imul(u32(i + 4), P2)) | 0, 13), P1);
      v3 = Math.imul(rotl((v3 + Math.imul(u32(i + 8), P2)) | 0, 13), P1);
      v4 = Math.imul(rotl((v4 + Math.imul(u32(i + 12), P2)) | 0, 13), P1);
    }
    h = (rotl(v1, 1) + rotl(v2, 7) + rotl(v3, 12) + rotl(v4, 18)) | 0;
  } else {
    h = (seed + P5) | 0;
  }
  h = (h + len) | 0;
  for (; i + 4 <= len; i += 4) h = Math.imul(rotl((h + Math.imul(u32(i), P3)) | 0, 17), P4);
  for (; i < len; i++) h = Math.imul(rotl((h + Math.imul(data[i], P5)) | 0, 11), P1);
  return avalanche(h);
}

/**
 * XXH32 (seed 0) of one 4 KiB page given as 1024 little-endian 32-bit words starting at
 * words[at]: the scanner's hot path, no allocation. (On a little-endian host a Uint32Array over
 * the page's bytes is exactly the little-endian word sequence XXH32 reads.)
 */
export function xxh32Page(words: Uint32Array, at: number): number {
  let v1 = (P1 + P2) | 0;
  let v2 = P2;
  let v3 = 0;
  let v4 = -P1 | 0;
  const end = at + 1024;
  for (let i = at; i < end; i += 4) {
    v1 = (v1 + Math.imul(words[i], P2)) | 0;
    v1 = Math.imul((v1 << 13) | (v1 >>> 19), P1);
    v2 = (v2 + Math.imul(words[i + 1], P2)) | 0;
    v2 = Math.imul((v2 << 13) | (v2 >>> 19), P1);
    v3 = (v3 + Math.imul(words[i + 2], P2)) | 0;
    v3 = Math.imul((v3 << 13) | (v3 >>> 19), P1);
    v4 = (v4 + Math.imul(words[i + 3], P2)) | 0;
    v4 = Math.imul((v4 << 13) | (v4 >>> 19), P1);
  }
  const h = (rotl(v1, 1) + rotl(v2, 7) + rotl(v3, 12) + rotl(v4, 18) + 4096) | 0;
  return avalanche(h);
}
