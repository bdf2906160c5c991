/**
 * Small pure helpers shared by the CPU and the instruction groups (no imports of the opcode
 * table, so group files can use them without an import cycle).
 */
import { PF } from './constants';

/*
 * Lazy flags. After an arithmetic instruction the CPU records the operation, its size and its
 * operands/result (normalised: unsigned, masked to the size, hi halves 0 below 64 bits) and
 * computes a flag only when something reads it. lzMask says which of the six arithmetic flags
 * are lazy; the others are valid in `flags`. INC/DEC use this to keep CF: lzMask = ARITH & ~CF.
 */
export const LZ_ADD = 1;
/** ADC with carry-in 1 (ADC with carry-in 0 is recorded as LZ_ADD). */
export const LZ_ADC1 = 2;
export const LZ_SUB = 3;
/** SBB with borrow-in 1. */
export const LZ_SBB1 = 4;
/** AND/OR/XOR/TEST: CF = OF = AF = 0. */
export const LZ_LOGIC = 5;
/** Only SF/ZF/PF are lazy (from the result); shifts and multiplies set the rest eagerly. */
export const LZ_RES = 6;

/** PARITY[b] = PF for a result whose low byte is b. */
export const PARITY: Uint8Array = /*#__PURE__*/ (() => {
  const t = new Uint8Array(256);
  for (let i = 0; i < 256; i++) {
    let p = 1;
    for (let b = i; b; b >>= 1) p ^= b & 1;
    t[i] = p ? PF : 0;
  }
  return t;
})();

const TWO32 = 4294967296;

/** Splits the high half out of a signed-canonical number (the low half is x | 0). */
export function hiOf(x: number): number {
  return Math.floor(x / TWO32) | 0;
}

/** lo/hi halves -> the signed-canonical number, or NaN when not canonical. */
export function canon(lo: number, hi: number): number {
  return (hi << 16) >> 16 === hi ? hi * TWO32 + (lo >>> 0) : NaN;
}

