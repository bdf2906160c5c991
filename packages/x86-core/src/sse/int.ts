/**
 * Integer SIMD: MMX (0F xx, MMn operands), SSE2 (66 0F xx, XMM operands) and SSSE3 (0F38 /
 * 0F3A, both widths). One kernel per operation works on the scratch operands A (destination),
 * B (source) into R, over n = 8 (MMX) or 16 (XMM) bytes; the wrappers load, check and commit.
 */
import type { Insn } from '../insn';
import { FS, GS, ST_FAULT, ST_OK } from '../constants';
import type { Cpu } from '../cpu';
import { F_PFXSEL, F_REG, IMM_UB, PFX_66, op, type Exec, type OpDef } from '../table';
import { A, B, R, getM, getX, loadQ, loadW, mmxEnter, setM, setX, sseOk } from './common';

type Kernel = (n: number) => void;

/** The immediate byte of the current instruction (shuffles, PALIGNR, shifts by imm). */
let IMM = 0;

// ------------------------------------------------------------------ wrappers

/** MMX form: mm, mm/m64. */
export function mmxBin(k: Kernel): Exec {
  return (cpu: Cpu, d: Insn): number => {
    if (mmxEnter(cpu) !== ST_OK) return ST_FAULT;
    if (loadQ(cpu, d, B) !== ST_OK) return ST_FAULT;
    getM(cpu, d.reg & 7, A);
    IMM = d.imm & 0xff;
    k(8);
    setM(cpu, d.reg & 7, R);
    return ST_OK;
  };
}

/** SSE form: xmm, xmm/m128 (aligned unless align is false). */
export function xmmBin(k: Kernel, align = true): Exec {
  return (cpu: Cpu, d: Insn): number => {
    if (sseOk(cpu) !== ST_OK) return ST_FAULT;
    if (loadW(cpu, d, B, align) !== ST_OK) return ST_FAULT;
    getX(cpu, d.reg, A);
    IMM = d.imm & 0xff;
    k(16);
    setX(cpu, d.reg, R);
    return ST_OK;
  };
}

/** Shift-by-immediate groups (0F 71/72/73 /n ib): the register is ModRM.rm, the count B = imm. */
function mmxImm(k: Kernel): Exec {
  return (cpu: Cpu, d: Insn): number => {
    if (mmxEnter(cpu) !== ST_OK) return ST_FAULT;
    getM(cpu, d.rm & 7, A);
    B.u32[0] = d.imm & 0xff;
    B.u32[1] = 0;
    IMM = d.imm & 0xff;
    k(8);
    setM(cpu, d.rm & 7, R);
    return ST_OK;
  };
}

function xmmImm(k: Kernel): Exec {
  return (cpu: Cpu, d: Insn): number => {
    if (sseOk(cpu) !== ST_OK) return ST_FAULT;
    getX(cpu, d.rm, A);
    B.u32[0] = d.imm & 0xff;
    B.u32[1] = B.u32[2] = B.u32[3] = 0;
    IMM = d.imm & 0xff;
    k(16);
    setX(cpu, d.rm, R);
    return ST_OK;
  };
}

// ------------------------------------------------------------------ kernels

const sat8 = (x: number): number => (x > 127 ? 127 : x < -128 ? -128 : x);
const satU8 = (x: number): number => (x > 255 ? 255 : x < 0 ? 0 : x);
const sat16 = (x: number): number => (x > 32767 ? 32767 : x < -32768 ? -32768 : x);
const satU16 = (x: number): number => (x > 65535 ? 65535 : x < 0 ? 0 : x);

const paddb: Kernel = (n) => { for (let i = 0; i < n; i++) R.u8[i] = A.u8[i] + B.u8[i]; };
const paddw: Kernel = (n) => { for (let i = 0; i < n >> 1; i++) R.u16[i] = A.u16[i] + B.u16[i]; };
const paddd: Kernel = (n) => { for (let i = 0; i < n >> 2; i++) R.u32[i] = A.u32[i] + B.u32[i]; };
const paddq: Kernel = (n) => {
  for (let i = 0; i < n >> 2; i += 2) {
    const lo = A.u32[i] + B.u32[i];
    R.u32[i] = lo;
    R.u32[i + 1] = A.u32[i + 1] + B.u32[i + 1] + (lo > 0xffffffff ? 1 : 0);
  }
};
const psubb: Kernel = (n) => { for (let i = 0; i < n; i++) R.u8[i] = A.u8[i] - B.u8[i]; };
const psubw: Kernel = (n) => { for (let i = 0; i < n >> 1; i++) R.u16[i] = A.u16[i] - B.u16[i]; };
const psubd: Kernel = (n) => { for (let i = 0; i < n >> 2; i++) R.u32[i] = A.u32[i] - B.u32[i]; };
const psubq: Kernel = (n) => {
  for (let i = 0; i < n >> 2; i += 2) {
    const lo = A.u32[i] - B.u32[i];
    R.u32[i] = lo;
    R.u32[i + 1] = A.u32[i + 1] - B.u32[i + 1] - (lo < 0 ? 1 : 0);
  }
};
const paddsb: Kernel = (n) => { for (let i = 0; i < n; i++) R.i8[i] = sat8(A.i8[i] + B.i8[i]); };
const paddsw: Kernel = (n) => { for (let i = 0; i < n >> 1; i++) R.i16[i] = sat16(A.i16[i] + B.i16[i]); };
const paddusb: Kernel = (n) => { for (let i = 0; i < n; i++) R.u8[i] = satU8(A.u8[i] + B.u8[i]); };
const paddusw: Kernel = (n) => { for (let i = 0; i < n >> 1; i++) R.u16[i] = satU16(A.u16[i] + B.u16[i]); };
const psubsb: Kernel = (n) => { for (let i = 0; i < n; i++) R.i8[i] = sat8(A.i8[i] - B.i8[i]); };
const psubsw: Kernel = (n) => { for (let i = 0; i < n >> 1; i++) R.i16[i] = sat16(A.i16[i] - B.i16[i]); };
const psubusb: Kernel = (n) => { for (let i = 0; i < n; i++) R.u8[i] = satU8(A.u8[i] - B.u8[i]); };
const psubusw: Kernel = (n) => { for (let i = 0; i < n >> 1; i++) R.u16[i] = satU16(A.u16[i] - B.u16[i]); };
const pmullw: Kernel = (n) => { for (let i = 0; i < n >> 1; i++) R.u16[i] = Math.imul(A.i16[i], B.i16[i]); };
const pmulhw: Kernel = (n) => { for (let i = 0; i < n >> 1; i++) R.u16[i] = (A.i16[i] * B.i16[i]) >> 16; };
const pmulhuw: Kernel = (n) => { for (let i = 0; i < n >> 1; i++) R.u16[i] = (A.u16[i] * B.u16[i]) >>> 16; };
const pmuludq: Kernel = (n) => {
  for (let i = 0; i < n >> 2; i += 2) {
    const a = A.u32[i];
    const b = B.u32[i];
    // 32x32 -> 64 without BigInt: split b into 16-bit halves.
    const lo = a * (b & 0xffff);
    const mid = a * (b >>> 16);
    const lo32 = (lo % 4294967296) + (mid % 65536) * 65536;
    R.u32[i] = lo32;
    R.u32[i + 1] = Math.floor(lo / 4294967296) + Math.floor(mid / 65536) + Math.floor(lo32 / 4294967296);
  }
};
const pmaddwd: Kernel = (n) => {
  for (let i = 0; i < n >> 2; i++) R.u32[i] = A.i16[2 * i] * B.i16[2 * i] + A.i16[2 * i + 1] * B.i16[2 * i + 1];
};
const pavgb: Kernel = (n) => { for (let i = 0; i < n; i++) R.u8[i] = (A.u8[i] + B.u8[i] + 1) >> 1; };
const pavgw: Kernel = (n) => { for (let i = 0; i < n >> 1; i++) R.u16[i] = (A.u16[i] + B.u16[i] + 1) >> 1; };
const pminub: Kernel = (n) => { for (let i = 0; i < n; i++) R.u8[i] = Math.min(A.u8[i], B.u8[i]); };
const pmaxub: Kernel = (n) => { for (let i = 0; i < n; i++) R.u8[i] = Math.max(A.u8[i], B.u8[i]); };
const pminsw: Kernel = (n) => { for (let i = 0; i < n >> 1; i++) R.i16[i] = Math.min(A.i16[i], B.i16[i]); };
const pmaxsw: Kernel = (n) => { for (let i = 0; i < n >> 1; i++) R.i16[i] = Math.max(A.i16[i], B.i16[i]); };
const psadbw: Kernel = (n) => {
  for (let q = 0; q < n; q += 8) {
    let s = 0;
    for (let i = q; i < q + 8; i++) s += Math.abs(A.u8[i] - B.u8[i]);
    R.u32[q >> 2] = s;
    R.u32[(q >> 2) + 1] = 0;
  }
};
const pand: Kernel = (n) => { for (let i = 0; i < n >> 2; i++) R.u32[i] = A.u32[i] & B.u32[i]; };
const pandn: Kernel = (n) => { for (let i = 0; i < n >> 2; i++) R.u32[i] = ~A.u32[i] & B.u32[i]; };
const por: Kernel = (n) => { for (let i = 0; i < n >> 2; i++) R.u32[i] = A.u32[i] | B.u32[i]; };
const pxor: Kernel = (n) => { for (let i = 0; i < n >> 2; i++) R.u32[i] = A.u32[i] ^ B.u32[i]; };
const pcmpeqb: Kernel = (n) => { for (let i = 0; i < n; i++) R.u8[i] = A.u8[i] === B.u8[i] ? 0xff : 0; };
const pcmpeqw: Kernel = (n) => { for (let i = 0; i < n >> 1; i++) R.u16[i] = A.u16[i] === B.u16[i] ? 0xffff : 0; };
const pcmpeqd: Kernel = (n) => { for (let i = 0; i < n >> 2; i++) R.u32[i] = A.u32[i] === B.u32[i] ? 0xffffffff : 0; };
const pcmpgtb: Kernel = (n) => { for (let i = 0; i < n; i++) R.u8[i] = A.i8[i] > B.i8[i] ? 0xff : 0; };
const pcmpgtw: Kernel = (n) => { for (let i = 0; i < n >> 1; i++) R.u16[i] = A.i16[i] > B.i16[i] ? 0xffff : 0; };
const pcmpgtd: Kernel = (n) => { for (let i = 0; i < n >> 2; i++) R.u32[i] = A.i32[i] > B.i32[i] ? 0xffffffff : 0; };
const packsswb: Kernel = (n) => {
  const h = n >> 1;
  for (let i = 0; i < h; i++) {
    R.i8[i] = sat8(A.i16[i]);
    R.i8[i + h] = sat8(B.i16[i]);
  }
};
const packuswb: Kernel = (n) => {
  const h = n >> 1;
  for (let i = 0; i < h; i++) {
    R.u8[i] = satU8(A.i16[i]);
    R.u8[i + h] = satU8(B.i16[i]);
  }
};
const packssdw: Kernel = (n) => {
  const h = n >> 2;
  for (let i = 0; i < h; i++) {
    R.i16[i] = sat16(A.i32[i]);
    R.i16[i + h] = sat16(B.i32[i]);
  }
};
/** Interleaves elements of `size` bytes from the low (hi = 0) or high half of A and B. */
function unpack(size: number, hi: number): Kernel {
  return (n) => {
    const half = n >> 1;
    const base = hi ? half : 0;
    for (let i = 0, o = 0; i < half; i += size, o += 2 * size) {
      for (let b = 0; b < size; b++) {
        R.u8[o + b] = A.u8[base + i + b];
        R.u8[o + size + b] = B.u8[base + i + b];
      }
    }
  };
}

/** Shift count from B (the low 64 bits): >= lim means "all out". */
function count(): number {
  return B.u32[1] !== 0 ? 0xffff : B.u32[0] > 0xffff ? 0xffff : B.u32[0];
}
const psrlw: Kernel = (n) => { const c = count(); for (let i = 0; i < n >> 1; i++) R.u16[i] = c > 15 ? 0 : A.u16[i] >>> c; };
const psrld: Kernel = (n) => { const c = count(); for (let i = 0; i < n >> 2; i++) R.u32[i] = c > 31 ? 0 : A.u32[i] >>> c; };
const psraw: Kernel = (n) => { const c = Math.min(count(), 15); for (let i = 0; i < n >> 1; i++) R.i16[i] = A.i16[i] >> c; };
const psrad: Kernel = (n) => { const c = Math.min(count(), 31); for (let i = 0; i < n >> 2; i++) R.i32[i] = A.i32[i] >> c; };
const psllw: Kernel = (n) => { const c = count(); for (let i = 0; i < n >> 1; i++) R.u16[i] = c > 15 ? 0 : A.u16[i] << c; };
const pslld: Kernel = (n) => { const c = count(); for (let i = 0; i < n >> 2; i++) R.u32[i] = c > 31 ? 0 : A.u32[i] << c; };
const psrlq: Kernel = (n) => {
  const c = count();
  for (let i = 0; i < n >> 2; i += 2) {
    const lo = A.u32[i];
    const hi = A.u32[i + 1];
    if (c > 63) R.u32[i] = R.u32[i + 1] = 0;
    else if (c >= 32) {
      R.u32[i] = hi >>> (c - 32);
      R.u32[i + 1] = 0;
    } else if (c === 0) {
      R.u32[i] = lo;
      R.u32[i + 1] = hi;
    } else {
      R.u32[i] = (lo >>> c) | (hi << (32 - c));
      R.u32[i + 1] = hi >>> c;
    }
  }
};
const psllq: Kernel = (n) => {
  const c = count();
  for (let i = 0; i < n >> 2; i += 2) {
    const lo = A.u32[i];
    const hi = A.u32[i + 1];
    if (c > 63) R.u32[i] = R.u32[i + 1] = 0;
    else if (c >= 32) {
      R.u32[i + 1] = lo << (c - 32);
      R.u32[i] = 0;
    } else if (c === 0) {
      R.u32[i] = lo;
      R.u32[i + 1] = hi;
    } else {
      R.u32[i + 1] = (hi << c) | (lo >>> (32 - c));
      R.u32[i] = lo << c;
    }
  }
};
const psrldq: Kernel = () => {
  const c = IMM > 16 ? 16 : IMM;
  for (let i = 0; i < 16; i++) R.u8[i] = i + c < 16 ? A.u8[i + c] : 0;
};
const pslldq: Kernel = () => {
  const c = IMM > 16 ? 16 : IMM;
  for (let i = 0; i < 16; i++) R.u8[i] = i >= c ? A.u8[i - c] : 0;
};

// Shuffles (unary on B, with IMM).
const pshufw: Kernel = () => { for (let i = 0; i < 4; i++) R.u16[i] = B.u16[(IMM >> (2 * i)) & 3]; };
const pshufd: Kernel = () => { for (let i = 0; i < 4; i++) R.u32[i] = B.u32[(IMM >> (2 * i)) & 3]; };
const pshuflw: Kernel = () => {
  for (let i = 0; i < 4; i++) R.u16[i] = B.u16[(IMM >> (2 * i)) & 3];
  R.u32[2] = B.u32[2];
  R.u32[3] = B.u32[3];
};
const pshufhw: Kernel = () => {
  R.u32[0] = B.u32[0];
  R.u32[1] = B.u32[1];
  for (let i = 0; i < 4; i++) R.u16[4 + i] = B.u16[4 + ((IMM >> (2 * i)) & 3)];
};

// SSSE3.
const pshufb: Kernel = (n) => {
  const m = n - 1;
  for (let i = 0; i < n; i++) {
    const s = B.u8[i];
    R.u8[i] = s & 0x80 ? 0 : A.u8[s & m];
  }
};
/** Horizontal add/sub of adjacent 16/32-bit pairs: A's pairs fill the low half, B's the high. */
function hop(size: number, sub: boolean, sat: boolean): Kernel {
  return (n) => {
    const cnt = n / size; // elements per operand
    const half = cnt >> 1;
    for (let i = 0; i < half; i++) {
      if (size === 2) {
        let x = sub ? A.i16[2 * i] - A.i16[2 * i + 1] : A.i16[2 * i] + A.i16[2 * i + 1];
        let y = sub ? B.i16[2 * i] - B.i16[2 * i + 1] : B.i16[2 * i] + B.i16[2 * i + 1];
        if (sat) {
          x = sat16(x);
          y = sat16(y);
        }
        R.u16[i] = x;
        R.u16[i + half] = y;
      } else {
        R.u32[i] = sub ? A.u32[2 * i] - A.u32[2 * i + 1] : A.u32[2 * i] + A.u32[2 * i + 1];
        R.u32[i + half] = sub ? B.u32[2 * i] - B.u32[2 * i + 1] : B.u32[2 * i] + B.u32[2 * i + 1];
      }
    }
  };
}
const pmaddubsw: Kernel = (n) => {
  for (let i = 0; i < n >> 1; i++) R.i16[i] = sat16(A.u8[2 * i] * B.i8[2 * i] + A.u8[2 * i + 1] * B.i8[2 * i + 1]);
};
const pmulhrsw: Kernel = (n) => {
  for (let i = 0; i < n >> 1; i++) R.u16[i] = (((A.i16[i] * B.i16[i]) >> 14) + 1) >> 1;
};
const psignb: Kernel = (n) => { for (let i = 0; i < n; i++) R.i8[i] = B.i8[i] < 0 ? -A.i8[i] : B.i8[i] === 0 ? 0 : A.i8[i]; };
const psignw: Kernel = (n) => { for (let i = 0; i < n >> 1; i++) R.i16[i] = B.i16[i] < 0 ? -A.i16[i] : B.i16[i] === 0 ? 0 : A.i16[i]; };
const psignd: Kernel = (n) => { for (let i = 0; i < n >> 2; i++) R.i32[i] = B.i32[i] < 0 ? -A.i32[i] : B.i32[i] === 0 ? 0 : A.i32[i]; };
const pabsb: Kernel = (n) => { for (let i = 0; i < n; i++) R.u8[i] = Math.abs(B.i8[i]); };
const pabsw: Kernel = (n) => { for (let i = 0; i < n >> 1; i++) R.u16[i] = Math.abs(B.i16[i]); };
const pabsd: Kernel = (n) => { for (let i = 0; i < n >> 2; i++) R.u32[i] = Math.abs(B.i32[i]); };
const palignr: Kernel = (n) => {
  // Concatenate A:B (A high), shift right by IMM bytes, keep n bytes.
  for (let i = 0; i < n; i++) {
    const k = i + IMM;
    R.u8[i] = k < n ? B.u8[k] : k < 2 * n ? A.u8[k - n] : 0;
  }
};

// ------------------------------------------------------------------ PINSRW / PEXTRW / PMOVMSKB

function pinsrwM(cpu: Cpu, d: Insn): number {
  if (mmxEnter(cpu) !== ST_OK) return ST_FAULT;
  const v = d.mod === 3 ? cpu.lo[d.rm] & 0xffff : cpu.read(cpu.eaOf(d), 2);
  if (v === -1) return ST_FAULT;
  const r = d.reg & 7;
  const k = d.imm & 3;
  const w = r * 2 + (k >> 1);
  cpu.mmx[w] = k & 1 ? (cpu.mmx[w] & 0xffff) | (v << 16) : (cpu.mmx[w] & ~0xffff) | v;
  cpu.fprExt[r] = 0xffff;
  return ST_OK;
}

function pinsrwX(cpu: Cpu, d: Insn): number {
  if (sseOk(cpu) !== ST_OK) return ST_FAULT;
  const v = d.mod === 3 ? cpu.lo[d.rm] & 0xffff : cpu.read(cpu.eaOf(d), 2);
  if (v === -1) return ST_FAULT;
  const k = d.imm & 7;
  const w = d.reg * 4 + (k >> 1);
  cpu.xmm[w] = k & 1 ? (cpu.xmm[w] & 0xffff) | (v << 16) : (cpu.xmm[w] & ~0xffff) | v;
  return ST_OK;
}

function pextrwM(cpu: Cpu, d: Insn): number {
  if (mmxEnter(cpu) !== ST_OK) return ST_FAULT;
  const k = d.imm & 3;
  const v = (cpu.mmx[(d.rm & 7) * 2 + (k >> 1)] >>> ((k & 1) * 16)) & 0xffff;
  cpu.setReg(d.reg, d.osize === 8 ? 8 : 4, v, 0);
  return ST_OK;
}

function pextrwX(cpu: Cpu, d: Insn): number {
  if (sseOk(cpu) !== ST_OK) return ST_FAULT;
  const k = d.imm & 7;
  const v = (cpu.xmm[d.rm * 4 + (k >> 1)] >>> ((k & 1) * 16)) & 0xffff;
  cpu.setReg(d.reg, d.osize === 8 ? 8 : 4, v, 0);
  return ST_OK;
}

function pmovmskbM(cpu: Cpu, d: Insn): number {
  if (mmxEnter(cpu) !== ST_OK) return ST_FAULT;
  getM(cpu, d.rm & 7, B);
  let m = 0;
  for (let i = 0; i < 8; i++) m |= (B.u8[i] >> 7) << i;
  cpu.setReg(d.reg, d.osize === 8 ? 8 : 4, m, 0);
  return ST_OK;
}

function pmovmskbX(cpu: Cpu, d: Insn): number {
  if (sseOk(cpu) !== ST_OK) return ST_FAULT;
  const x = cpu.xmm;
  const o = d.rm * 4;
  let m = 0;
  for (let i = 0; i < 4; i++) {
    const w = x[o + i];
    m |= (((w >>> 7) & 1) | ((w >>> 14) & 2) | ((w >>> 21) & 4) | ((w >>> 28) & 8)) << (4 * i);
  }
  cpu.setReg(d.reg, d.osize === 8 ? 8 : 4, m, 0);
  return ST_OK;
}

/** MASKMOVQ / MASKMOVDQU: byte-masked store to [rDI] (DS or override), no alignment rule. */
function maskmov(n: number): Exec {
  return (cpu: Cpu, d: Insn): number => {
    if ((n === 16 ? sseOk(cpu) : mmxEnter(cpu)) !== ST_OK) return ST_FAULT;
    if (n === 16) {
      getX(cpu, d.reg, A);
      getX(cpu, d.rm, B);
    } else {
      getM(cpu, d.reg & 7, A);
      getM(cpu, d.rm & 7, B);
    }
    const off = d.asize === 2 ? cpu.lo[7] & 0xffff : cpu.lo[7] >>> 0;
    const hi = d.asize === 8 ? cpu.hi[7] : 0;
    // Probe every selected byte first so that a fault writes nothing.
    for (let pass = 0; pass < 2; pass++) {
      for (let i = 0; i < n; i++) {
        if ((B.u8[i] & 0x80) === 0) continue;
        let la: number;
        if (d.csize === 8) {
          if (d.asize === 8) {
            const h = (hi + (off + i > 0xffffffff ? 1 : 0)) | 0;
            la = (h << 16) >> 16 === h ? h * 4294967296 + ((off + i) >>> 0) : NaN;
          } else la = (off + i) >>> 0;
          if (d.seg === FS || d.seg === GS) la += cpu.segBase[d.seg];
        } else la = (cpu.segBase[d.seg] + (d.asize === 4 ? (off + i) >>> 0 : (off + i) & 0xffff)) >>> 0;
        if (pass === 0) {
          if (cpu.read(la, 1) === -1) return ST_FAULT;
        } else if (cpu.write(la, 1, A.u8[i], 0) !== ST_OK) return ST_FAULT;
      }
    }
    return ST_OK;
  };
}

// ------------------------------------------------------------------ the table

/** An op present as MMX (0F xx mm, mm/m64) and SSE2 (66 0F xx xmm, xmm/m128). */
function both(mnem: string, map: number, byte: number, k: Kernel, imm = false, fastXX?: Exec): OpDef[] {
  const o = imm ? { imm: IMM_UB } : {};
  const f = fastXX === undefined ? {} : { fast: (d: Insn): Exec | null => (d.mod === 3 ? fastXX : null) };
  return [
    op(mnem, map, byte, imm ? 'Pq,Qq,Ib' : 'Pq,Qq', mmxBin(k), { flags: F_PFXSEL, ...o }),
    op(mnem, map, byte, imm ? 'Vx,Wx,Ib' : 'Vx,Wx', xmmBin(k), { pfx: PFX_66, flags: F_PFXSEL, ...o, ...f }),
  ];
}

// XMM register forms of the ops in libc's string loops (strlen, memchr, strcmp...), specialised
// at decode time (OpDef.fast): no kernel indirection, no scratch copies.

function pandXX(cpu: Cpu, d: Insn): number {
  if (sseOk(cpu) !== ST_OK) return ST_FAULT;
  const x = cpu.xmm;
  const a = d.reg * 4;
  const b = d.rm * 4;
  x[a] &= x[b];
  x[a + 1] &= x[b + 1];
  x[a + 2] &= x[b + 2];
  x[a + 3] &= x[b + 3];
  return ST_OK;
}

function porXX(cpu: Cpu, d: Insn): number {
  if (sseOk(cpu) !== ST_OK) return ST_FAULT;
  const x = cpu.xmm;
  const a = d.reg * 4;
  const b = d.rm * 4;
  x[a] |= x[b];
  x[a + 1] |= x[b + 1];
  x[a + 2] |= x[b + 2];
  x[a + 3] |= x[b + 3];
  return ST_OK;
}

function pxorXX(cpu: Cpu, d: Insn): number {
  if (sseOk(cpu) !== ST_OK) return ST_FAULT;
  const x = cpu.xmm;
  const a = d.reg * 4;
  const b = d.rm * 4;
  x[a] ^= x[b];
  x[a + 1] ^= x[b + 1];
  x[a + 2] ^= x[b + 2];
  x[a + 3] ^= x[b + 3];
  return ST_OK;
}

/** Bytes of the 32-bit word w that are zero become 0xff, the others 0. */
function zeroBytes(w: number): number {
  return ((w & 0xff) === 0 ? 0xff : 0) | ((w & 0xff00) === 0 ? 0xff00 : 0) | ((w & 0xff0000) === 0 ? 0xff0000 : 0) | ((w & 0xff000000) === 0 ? 0xff000000 : 0);
}

function pcmpeqbXX(cpu: Cpu, d: Insn): number {
  if (sseOk(cpu) !== ST_OK) return ST_FAULT;
  const x = cpu.xmm;
  const a = d.reg * 4;
  const b = d.rm * 4;
  x[a] = zeroBytes(x[a] ^ x[b]);
  x[a + 1] = zeroBytes(x[a + 1] ^ x[b + 1]);
  x[a + 2] = zeroBytes(x[a + 2] ^ x[b + 2]);
  x[a + 3] = zeroBytes(x[a + 3] ^ x[b + 3]);
  return ST_OK;
}

/** Per-byte unsigned minimum of two 32-bit words. */
function minBytes(p: number, q: number): number {
  let r = 0;
  for (let s = 0; s < 32; s += 8) {
    const u = (p >>> s) & 0xff;
    const v = (q >>> s) & 0xff;
    r |= (u < v ? u : v) << s;
  }
  return r;
}

function pminubXX(cpu: Cpu, d: Insn): number {
  if (sseOk(cpu) !== ST_OK) return ST_FAULT;
  const x = cpu.xmm;
  const a = d.reg * 4;
  const b = d.rm * 4;
  x[a] = minBytes(x[a], x[b]);
  x[a + 1] = minBytes(x[a + 1], x[b + 1]);
  x[a + 2] = minBytes(x[a + 2], x[b + 2]);
  x[a + 3] = minBytes(x[a + 3], x[b + 3]);
  return ST_OK;
}

export const INT_OPS: readonly OpDef[] = [
  ...both('punpcklbw', 1, 0x60, unpack(1, 0)),
  ...both('punpcklwd', 1, 0x61, unpack(2, 0)),
  ...both('punpckldq', 1, 0x62, unpack(4, 0)),
  ...both('packsswb', 1, 0x63, packsswb),
  ...both('pcmpgtb', 1, 0x64, pcmpgtb),
  ...both('pcmpgtw', 1, 0x65, pcmpgtw),
  ...both('pcmpgtd', 1, 0x66, pcmpgtd),
  ...both('packuswb', 1, 0x67, packuswb),
  ...both('punpckhbw', 1, 0x68, unpack(1, 1)),
  ...both('punpckhwd', 1, 0x69, unpack(2, 1)),
  ...both('punpckhdq', 1, 0x6a, unpack(4, 1)),
  ...both('packssdw', 1, 0x6b, packssdw),
  op('punpcklqdq', 1, 0x6c, 'Vx,Wx', xmmBin(unpack(8, 0)), { pfx: PFX_66, flags: F_PFXSEL }),
  op('punpckhqdq', 1, 0x6d, 'Vx,Wx', xmmBin(unpack(8, 1)), { pfx: PFX_66, flags: F_PFXSEL }),
  op('pshufw', 1, 0x70, 'Pq,Qq,Ib', mmxBin(pshufw), { flags: F_PFXSEL, imm: IMM_UB }),
  op('pshufd', 1, 0x70, 'Vx,Wx,Ib', xmmBin(pshufd), { pfx: PFX_66, flags: F_PFXSEL, imm: IMM_UB }),
  op('pshufhw', 1, 0x70, 'Vx,Wx,Ib', xmmBin(pshufhw), { pfx: 2, flags: F_PFXSEL, imm: IMM_UB }),
  op('pshuflw', 1, 0x70, 'Vx,Wx,Ib', xmmBin(pshuflw), { pfx: 3, flags: F_PFXSEL, imm: IMM_UB }),
  op('psrlw', 1, 0x71, 'Nq,Ib', mmxImm(psrlw), { ext: 2, flags: F_REG | F_PFXSEL, imm: IMM_UB }),
  op('psraw', 1, 0x71, 'Nq,Ib', mmxImm(psraw), { ext: 4, flags: F_REG | F_PFXSEL, imm: IMM_UB }),
  op('psllw', 1, 0x71, 'Nq,Ib', mmxImm(psllw), { ext: 6, flags: F_REG | F_PFXSEL, imm: IMM_UB }),
  op('psrlw', 1, 0x71, 'Ux,Ib', xmmImm(psrlw), { ext: 2, pfx: PFX_66, flags: F_REG | F_PFXSEL, imm: IMM_UB }),
  op('psraw', 1, 0x71, 'Ux,Ib', xmmImm(psraw), { ext: 4, pfx: PFX_66, flags: F_REG | F_PFXSEL, imm: IMM_UB }),
  op('psllw', 1, 0x71, 'Ux,Ib', xmmImm(psllw), { ext: 6, pfx: PFX_66, flags: F_REG | F_PFXSEL, imm: IMM_UB }),
  op('psrld', 1, 0x72, 'Nq,Ib', mmxImm(psrld), { ext: 2, flags: F_REG | F_PFXSEL, imm: IMM_UB }),
  op('psrad', 1, 0x72, 'Nq,Ib', mmxImm(psrad), { ext: 4, flags: F_REG | F_PFXSEL, imm: IMM_UB }),
  op('pslld', 1, 0x72, 'Nq,Ib', mmxImm(pslld), { ext: 6, flags: F_REG | F_PFXSEL, imm: IMM_UB }),
  op('psrld', 1, 0x72, 'Ux,Ib', xmmImm(psrld), { ext: 2, pfx: PFX_66, flags: F_REG | F_PFXSEL, imm: IMM_UB }),
  op('psrad', 1, 0x72, 'Ux,Ib', xmmImm(psrad), { ext: 4, pfx: PFX_66, flags: F_REG | F_PFXSEL, imm: IMM_UB }),
  op('pslld', 1, 0x72, 'Ux,Ib', xmmImm(pslld), { ext: 6, pfx: PFX_66, flags: F_REG | F_PFXSEL, imm: IMM_UB }),
  op('psrlq', 1, 0x73, 'Nq,Ib', mmxImm(psrlq), { ext: 2, flags: F_REG | F_PFXSEL, imm: IMM_UB }),
  op('psllq', 1, 0x73, 'Nq,Ib', mmxImm(psllq), { ext: 6, flags: F_REG | F_PFXSEL, imm: IMM_UB }),
  op('psrlq', 1, 0x73, 'Ux,Ib', xmmImm(psrlq), { ext: 2, pfx: PFX_66, flags: F_REG | F_PFXSEL, imm: IMM_UB }),
  op('psrldq', 1, 0x73, 'Ux,Ib', xmmImm(psrldq), { ext: 3, pfx: PFX_66, flags: F_REG | F_PFXSEL, imm: IMM_UB }),
  op('psllq', 1, 0x73, 'Ux,Ib', xmmImm(psllq), { ext: 6, pfx: PFX_66, flags: F_REG | F_PFXSEL, imm: IMM_UB }),
  op('pslldq', 1, 0x73, 'Ux,Ib', xmmImm(pslldq), { ext: 7, pfx: PFX_66, flags: F_REG | F_PFXSEL, imm: IMM_UB }),
  ...both('pcmpeqb', 1, 0x74, pcmpeqb, false, pcmpeqbXX),
  ...both('pcmpeqw', 1, 0x75, pcmpeqw),
  ...both('pcmpeqd', 1, 0x76, pcmpeqd),
  op('pinsrw', 1, 0xc4, 'Pq,Ew,Ib', pinsrwM, { flags: F_PFXSEL, imm: IMM_UB }),
  op('pinsrw', 1, 0xc4, 'Vx,Ew,Ib', pinsrwX, { pfx: PFX_66, flags: F_PFXSEL, imm: IMM_UB }),
  op('pextrw', 1, 0xc5, 'Gd,Nq,Ib', pextrwM, { flags: F_REG | F_PFXSEL, imm: IMM_UB }),
  op('pextrw', 1, 0xc5, 'Gd,Ux,Ib', pextrwX, { pfx: PFX_66, flags: F_REG | F_PFXSEL, imm: IMM_UB }),
  ...both('psrlw', 1, 0xd1, psrlw),
  ...both('psrld', 1, 0xd2, psrld),
  ...both('psrlq', 1, 0xd3, psrlq),
  ...both('paddq', 1, 0xd4, paddq),
  ...both('pmullw', 1, 0xd5, pmullw),
  op('pmovmskb', 1, 0xd7, 'Gd,Nq', pmovmskbM, { flags: F_REG | F_PFXSEL }),
  op('pmovmskb', 1, 0xd7, 'Gd,Ux', pmovmskbX, { pfx: PFX_66, flags: F_REG | F_PFXSEL }),
  ...both('psubusb', 1, 0xd8, psubusb),
  ...both('psubusw', 1, 0xd9, psubusw),
  ...both('pminub', 1, 0xda, pminub, false, pminubXX),
  ...both('pand', 1, 0xdb, pand, false, pandXX),
  ...both('paddusb', 1, 0xdc, paddusb),
  ...both('paddusw', 1, 0xdd, paddusw),
  ...both('pmaxub', 1, 0xde, pmaxub),
  ...both('pandn', 1, 0xdf, pandn),
  ...both('pavgb', 1, 0xe0, pavgb),
  ...both('psraw', 1, 0xe1, psraw),
  ...both('psrad', 1, 0xe2, psrad),
  ...both('pavgw', 1, 0xe3, pavgw),
  ...both('pmulhuw', 1, 0xe4, pmulhuw),
  ...both('pmulhw', 1, 0xe5, pmulhw),
  ...both('psubsb', 1, 0xe8, psubsb),
  ...both('psubsw', 1, 0xe9, psubsw),
  ...both('pminsw', 1, 0xea, pminsw),
  ...both('por', 1, 0xeb, por, false, porXX),
  ...both('paddsb', 1, 0xec, paddsb),
  ...both('paddsw', 1, 0xed, paddsw),
  ...both('pmaxsw', 1, 0xee, pmaxsw),
  ...both('pxor', 1, 0xef, pxor, false, pxorXX),
  ...both('psllw', 1, 0xf1, psllw),
  ...both('pslld', 1, 0xf2, pslld),
  ...both('psllq', 1, 0xf3, psllq),
  ...both('pmuludq', 1, 0xf4, pmuludq),
  ...both('pmaddwd', 1, 0xf5, pmaddwd),
  ...both('psadbw', 1, 0xf6, psadbw),
  op('maskmovq', 1, 0xf7, 'Pq,Nq', maskmov(8), { flags: F_REG | F_PFXSEL }),
  op('maskmovdqu', 1, 0xf7, 'Vx,Ux', maskmov(16), { pfx: PFX_66, flags: F_REG | F_PFXSEL }),
  ...both('psubb', 1, 0xf8, psubb),
  ...both('psubw', 1, 0xf9, psubw),
  ...both('psubd', 1, 0xfa, psubd),
  ...both('psubq', 1, 0xfb, psubq),
  ...both('paddb', 1, 0xfc, paddb),
  ...both('paddw', 1, 0xfd, paddw),
  ...both('paddd', 1, 0xfe, paddd),
  // SSSE3 (0F 38 / 0F 3A).
  ...both('pshufb', 2, 0x00, pshufb),
  ...both('phaddw', 2, 0x01, hop(2, false, false)),
  ...both('phaddd', 2, 0x02, hop(4, false, false)),
  ...both('phaddsw', 2, 0x03, hop(2, false, true)),
  ...both('pmaddubsw', 2, 0x04, pmaddubsw),
  ...both('phsubw', 2, 0x05, hop(2, true, false)),
  ...both('phsubd', 2, 0x06, hop(4, true, false)),
  ...both('phsubsw', 2, 0x07, hop(2, true, true)),
  ...both('psignb', 2, 0x08, psignb),
  ...both('psignw', 2, 0x09, psignw),
  ...both('psignd', 2, 0x0a, psignd),
  ...both('pmulhrsw', 2, 0x0b, pmulhrsw),
  ...both('pabsb', 2, 0x1c, pabsb),
  ...both('pabsw', 2, 0x1d, pabsw),
  ...both('pabsd', 2, 0x1e, pabsd),
  ...both('palignr', 3, 0x0f, palignr, true),
];
