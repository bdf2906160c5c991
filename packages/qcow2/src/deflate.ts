// A small raw-deflate (RFC 1951) compressor with a 4 KiB window. QEMU inflates qcow2 clusters
// with windowBits -12, so a stream whose matches reach further back than 4096 bytes (as
// general-purpose deflaters produce) cannot be read by QEMU. This one uses LZ77 with hash
// chains bounded to 4096 bytes and the fixed Huffman code (block type 1); it trades a little
// ratio for simplicity. Decompression uses fflate.

const WINDOW = 4096;
const MIN_MATCH = 3;
const MAX_MATCH = 258;
const HASH_BITS = 14;
const HASH_SIZE = 1 << HASH_BITS;
const MAX_CHAIN = 32;

const LBASE = [3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258];
const LEXT = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0];
const DBASE = [1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073];
const DEXT = [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10];

function reverse(code: number, len: number): number {
  let r = 0;
  for (let i = 0; i < len; i++) {
    r = (r << 1) | (code & 1);
    code >>>= 1;
  }
  return r;
}

// Fixed literal/length code, already bit-reversed for LSB-first output.
const LIT_CODE = /*#__PURE__*/ new Uint16Array(288);
const LIT_LEN = /*#__PURE__*/ new Uint8Array(288);
// Length (3..258) -> symbol index (0..28); distance (1..4096) -> distance code.
const LEN_SYM = /*#__PURE__*/ new Uint8Array(259);
const DIST_SYM = /*#__PURE__*/ new Uint8Array(WINDOW + 1);
const DIST_CODE = /*#__PURE__*/ new Uint8Array(30);

(function buildTables(): void {
  for (let s = 0; s < 288; s++) {
    let code: number;
    let len: number;
    if (s < 144) {
      code = 0x30 + s;
      len = 8;
    } else if (s < 256) {
      code = 0x190 + s - 144;
      len = 9;
    } else if (s < 280) {
      code = s - 256;
      len = 7;
    } else {
      code = 0xc0 + s - 280;
      len = 8;
    }
    LIT_CODE[s] = reverse(code, len);
    LIT_LEN[s] = len;
  }
  for (let i = 0; i < 29; i++) {
    const end = i === 28 ? 259 : LBASE[i + 1];
    for (let l = LBASE[i]; l < end; l++) LEN_SYM[l] = i;
  }
  LEN_SYM[258] = 28;
  for (let i = 0; i < 24; i++) {
    const end = i === 23 ? WINDOW + 1 : DBASE[i + 1];
    for (let d = DBASE[i]; d < end; d++) DIST_SYM[d] = i;
  }
  for (let i = 0; i < 30; i++) DIST_CODE[i] = reverse(i, 5);
})();

let head = new Int32Array(HASH_SIZE);
let prev = new Int32Array(0);

/**
 * Raw-deflate `src` with a 4 KiB window. Returns null when the output would not be smaller
 * than `limit` bytes (the caller then stores the data uncompressed).
 */
export function deflateRaw4k(src: Uint8Array, limit: number = src.length): Uint8Array | null {
  const n = src.length;
  // Worst case with fixed codes: 9 bits per literal plus header/end symbol.
  const out = new Uint8Array(Math.min(limit, Math.ceil((n * 9) / 8) + 16) + 8);
  const cap = Math.min(limit, out.length - 8);
  let bitBuf = 0;
  let bitCnt = 0;
  let op = 0;
  const put = (value: number, bits: number): void => {
    bitBuf |= value << bitCnt;
    bitCnt += bits;
    while (bitCnt >= 8) {
      out[op++] = bitBuf & 0xff;
      bitBuf >>>= 8;
      bitCnt -= 8;
    }
  };
  put(1, 1); // BFINAL
  put(1, 2); // BTYPE=01 fixed Huffman
  if (prev.length < n) prev = new Int32Array(Math.max(n, 65536));
  head.fill(-1);
  let i = 0;
  const hashAt = (p: number): number => ((src[p] << 10) ^ (src[p + 1] << 5) ^ src[p + 2]) & (HASH_SIZE - 1);
  while (i < n) {
    if (op >= cap) return null;
    let bestLen = 0;
    let bestDist = 0;
    if (i + MIN_MATCH <= n) {
      const h = hashAt(i);
      let cand = head[h];
      prev[i] = cand;
      head[h] = i;
      const maxLen = Math.min(MAX_MATCH, n - i);
      let chain = MAX_CHAIN;
      while (cand >= 0 && i - cand <= WINDOW && chain-- > 0) {
        if (src[cand + bestLen] === src[i + bestLen] && src[cand] === src[i]) {
          let l = 0;
          while (l < maxLen && src[cand + l] === src[i + l]) l++;
          if (l > bestLen) {
            bestLen = l;
            bestDist = i - cand;
            if (l === maxLen) break;
          }
        }
        cand = prev[cand];
      }
    }
    if (bestLen >= MIN_MATCH) {
      const ls = LEN_SYM[bestLen];
      put(LIT_CODE[257 + ls], LIT_LEN[257 + ls]);
      if (LEXT[ls]) put(bestLen - LBASE[ls], LEXT[ls]);
      const ds = DIST_SYM[bestDist];
      put(DIST_CODE[ds], 5);
      if (DEXT[ds]) put(bestDist - DBASE[ds], DEXT[ds]);
      // Insert the skipped positions into the hash chains.
      const end = i + bestLen;
      for (let p = i + 1; p < end && p + MIN_MATCH <= n; p++) {
        const h = hashAt(p);
        prev[p] = head[h];
        head[h] = p;
      }
      i = end;
    } else {
      const b = src[i];
      put(LIT_CODE[b], LIT_LEN[b]);
      i++;
    }
  }
  put(LIT_CODE[256], LIT_LEN[256]);
  if (bitCnt > 0) out[op++] = bitBuf & 0xff;
  if (op >= limit) return null;
  return out.slice(0, op);
}

/** Drop the scratch tables (they are rebuilt on the next call). */
export function releaseDeflateScratch(): void {
  prev = new Int32Array(0);
  head = new Int32Array(HASH_SIZE);
}
