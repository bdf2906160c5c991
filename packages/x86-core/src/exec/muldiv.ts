/**
 * MUL, IMUL (one, two and three operands), DIV, IDIV at 8/16/32/64 bits, with #DE for a zero
 * divisor or a quotient that does not fit. 64-bit products and quotients go through the lo/hi
 * helpers of int64.ts (no BigInt). After MUL/IMUL, CF = OF = "the high half is significant";
 * SF ZF AF PF are undefined: this code sets SF/ZF/PF from the low result and clears AF.
 * After DIV/IDIV all six flags are undefined and left unchanged here.
 */
import { ARITH_FLAGS, CF, DE, OF, RAX, RDX, ST_FAULT, ST_OK } from '../constants';
import type { Cpu } from '../cpu';
import type { Insn } from '../insn';
import { IMM_B, IMM_Z, op, type OpDef } from '../table';
import { divu128, mulu32, mulu64, muls64, neg128, R, REM, W } from './int64';
import { maskTo } from './alu';

function mulFlags(cpu: Cpu, size: number, lo: number, loH: number, overflow: boolean): void {
  // All six flags are rewritten (SF/ZF/PF lazy from the low result, AF cleared).
  cpu.flags = (cpu.flags & ~ARITH_FLAGS) | (overflow ? CF | OF : 0);
  cpu.setLazyRes(size, lo, size === 8 ? loH >>> 0 : 0);
}

/** F6/F7 /4 MUL and /5 IMUL: rDX:rAX = rAX * E (AX = AL * Eb for bytes). */
function mul1(cpu: Cpu, d: Insn): number {
  const size = d.osize;
  const v = cpu.readE(d);
  if (v < 0) return ST_FAULT;
  const vh = cpu.vh;
  const signed = (d.reg & 7) === 5;
  if (size === 1) {
    const a = cpu.lo[RAX] & 0xff;
    const p = signed ? ((a << 24) >> 24) * ((v << 24) >> 24) : a * v;
    cpu.lo[RAX] = (cpu.lo[RAX] & ~0xffff) | (p & 0xffff);
    mulFlags(cpu, 1, p & 0xff, 0, signed ? p !== (p << 24) >> 24 : p > 0xff);
  } else if (size === 2) {
    const a = cpu.lo[RAX] & 0xffff;
    const p = signed ? ((a << 16) >> 16) * ((v << 16) >> 16) : a * v;
    cpu.setReg(RAX, 2, p & 0xffff, 0);
    cpu.setReg(RDX, 2, (p >> 16) & 0xffff, 0);
    mulFlags(cpu, 2, p & 0xffff, 0, signed ? p !== (p << 16) >> 16 : p > 0xffff);
  } else if (size === 4) {
    const a = cpu.lo[RAX];
    let lo: number;
    let hi: number;
    if (signed) {
      muls64(a, a >> 31, v | 0, (v | 0) >> 31);
      lo = W[0];
      hi = W[1];
    } else {
      mulu32(a, v);
      lo = R[0];
      hi = R[1];
    }
    cpu.setReg(RAX, 4, lo, 0);
    cpu.setReg(RDX, 4, hi, 0);
    mulFlags(cpu, 4, lo >>> 0, 0, signed ? hi !== lo >> 31 : hi !== 0);
  } else {
    if (signed) muls64(cpu.lo[RAX], cpu.hi[RAX], v, vh);
    else mulu64(cpu.lo[RAX], cpu.hi[RAX], v, vh);
    const w0 = W[0];
    const w1 = W[1];
    const w2 = W[2];
    const w3 = W[3];
    cpu.setReg(RAX, 8, w0, w1);
    cpu.setReg(RDX, 8, w2, w3);
    mulFlags(cpu, 8, w0 >>> 0, w1, signed ? w2 !== w1 >> 31 || w3 !== w1 >> 31 : w2 !== 0 || w3 !== 0);
  }
  return ST_OK;
}

/** Signed product of a and b at size (a, b unsigned masked); returns low, overflow in ovf. */
let ovf = false;
let prodH = 0;
function imulN(size: number, a: number, aH: number, b: number, bH: number): number {
  if (size === 2) {
    const p = ((a << 16) >> 16) * ((b << 16) >> 16);
    ovf = p !== (p << 16) >> 16;
    prodH = 0;
    return p & 0xffff;
  }
  if (size === 4) {
    muls64(a | 0, (a | 0) >> 31, b | 0, (b | 0) >> 31);
    ovf = W[1] !== W[0] >> 31;
    prodH = 0;
    return W[0] >>> 0;
  }
  muls64(a, aH, b, bH);
  ovf = W[2] !== W[1] >> 31 || W[3] !== W[1] >> 31;
  prodH = W[1];
  return W[0] >>> 0;
}

// 0F AF: IMUL Gv, Ev
function imul2(cpu: Cpu, d: Insn): number {
  const b = cpu.readE(d);
  if (b < 0) return ST_FAULT;
  const bH = cpu.vh;
  const a = cpu.readG(d);
  const r = imulN(d.osize, a, cpu.vh, b, bH);
  cpu.setReg(d.reg, d.osize, r, prodH);
  mulFlags(cpu, d.osize, r, prodH, ovf);
  return ST_OK;
}

// 69 / 6B: IMUL Gv, Ev, Iz/Ib
function imul3(cpu: Cpu, d: Insn): number {
  const a = cpu.readE(d);
  if (a < 0) return ST_FAULT;
  const r = imulN(d.osize, a, cpu.vh, maskTo(d.imm, d.osize), d.immHi);
  cpu.setReg(d.reg, d.osize, r, prodH);
  mulFlags(cpu, d.osize, r, prodH, ovf);
  return ST_OK;
}

/** F6/F7 /6 DIV and /7 IDIV. */
function div(cpu: Cpu, d: Insn): number {
  const size = d.osize;
  const v = cpu.readE(d);
  if (v < 0) return ST_FAULT;
  const vh = cpu.vh;
  const signed = (d.reg & 7) === 7;
  if (size <= 2) {
    const bits = size * 8;
    const n = size === 1 ? cpu.lo[RAX] & 0xffff : ((cpu.lo[RDX] & 0xffff) << 16) | (cpu.lo[RAX] & 0xffff);
    let q: number;
    let r: number;
    if (signed) {
      const dv = (v << (32 - bits)) >> (32 - bits);
      const nn = size === 1 ? (n << 16) >> 16 : n | 0;
      if (dv === 0) return cpu.fault(DE, 0);
      q = Math.trunc(nn / dv);
      r = nn - q * dv;
      if (q > 2 ** (bits - 1) - 1 || q < -(2 ** (bits - 1))) return cpu.fault(DE, 0);
    } else {
      if (v === 0) return cpu.fault(DE, 0);
      const nu = n >>> 0;
      q = Math.floor(nu / v);
      r = nu - q * v;
      if (q > 2 ** bits - 1) return cpu.fault(DE, 0);
    }
    if (size === 1) cpu.lo[RAX] = (cpu.lo[RAX] & ~0xffff) | ((r & 0xff) << 8) | (q & 0xff);
    else {
      cpu.setReg(RAX, 2, q & 0xffff, 0);
      cpu.setReg(RDX, 2, r & 0xffff, 0);
    }
    return ST_OK;
  }
  // 32: EDX:EAX / r/m32; 64: RDX:RAX / r/m64, through the 128/64 routine.
  let n3: number, n2: number, n1: number, n0: number, d1: number, d0: number;
  if (size === 4) {
    n3 = 0;
    n2 = 0;
    n1 = cpu.lo[RDX];
    n0 = cpu.lo[RAX];
    d1 = 0;
    d0 = v;
    if (signed) {
      n3 = n2 = n1 >> 31;
      d1 = (v | 0) >> 31;
    }
  } else {
    n3 = cpu.hi[RDX];
    n2 = cpu.lo[RDX];
    n1 = cpu.hi[RAX];
    n0 = cpu.lo[RAX];
    d1 = vh;
    d0 = v;
  }
  if (d0 === 0 && d1 === 0) return cpu.fault(DE, 0);
  let qlo: number, qhi: number, rlo: number, rhi: number;
  if (!signed) {
    if (!divu128(n3, n2, n1, n0, d1, d0)) return cpu.fault(DE, 0);
    qlo = R[0];
    qhi = R[1];
    rlo = REM[0];
    rhi = REM[1];
    if (size === 4 && qhi !== 0) return cpu.fault(DE, 0);
  } else {
    // |n| / |d| unsigned, then signs: quotient negative when signs differ, remainder has n's sign.
    const nNeg = n3 < 0;
    const dNeg = d1 < 0;
    const NW = SCRATCH;
    NW[0] = n0; NW[1] = n1; NW[2] = n2; NW[3] = n3;
    if (nNeg) neg128(NW);
    let a0 = d0 | 0;
    let a1 = d1 | 0;
    if (dNeg) {
      const s = ((~a0) >>> 0) + 1;
      a0 = s | 0;
      a1 = (~a1 + (s > 0xffffffff ? 1 : 0)) | 0;
    }
    if (size === 4) {
      // divisor fits 32 bits after abs (d1 is 0, or -1 with |d| = 2^31 -> a1 = 0)
      a1 = 0;
    }
    if (!divu128(NW[3], NW[2], NW[1], NW[0], a1, a0)) return cpu.fault(DE, 0);
    qlo = R[0];
    qhi = R[1];
    rlo = REM[0];
    rhi = REM[1];
    const qNeg = nNeg !== dNeg;
    // Range: the magnitude must be <= 2^(bits-1) - 1, or == 2^(bits-1) for a negative quotient.
    if (size === 4) {
      if (qhi !== 0) return cpu.fault(DE, 0);
      const lim = qNeg ? 0x80000000 : 0x7fffffff;
      if (qlo >>> 0 > lim) return cpu.fault(DE, 0);
    } else {
      const uh = qhi >>> 0;
      if (uh > 0x80000000 || (uh === 0x80000000 && (!qNeg || qlo !== 0))) return cpu.fault(DE, 0);
    }
    if (qNeg) {
      const s = ((~qlo) >>> 0) + 1;
      qlo = s | 0;
      qhi = (~qhi + (s > 0xffffffff ? 1 : 0)) | 0;
    }
    if (nNeg) {
      const s = ((~rlo) >>> 0) + 1;
      rlo = s | 0;
      rhi = (~rhi + (s > 0xffffffff ? 1 : 0)) | 0;
    }
  }
  cpu.setReg(RAX, size, qlo, qhi);
  cpu.setReg(RDX, size, rlo, rhi);
  return ST_OK;
}
const SCRATCH = new Int32Array(4);

const MUL_DEF = CF | OF;
const MUL_UNDEF = 0x00d4; // SF ZF AF PF

export const MULDIV_OPS: readonly OpDef[] = [
  op('mul', 0, 0xf6, 'Eb', mul1, { ext: 4, def: MUL_DEF, undef: MUL_UNDEF }),
  op('mul', 0, 0xf7, 'Ev', mul1, { ext: 4, def: MUL_DEF, undef: MUL_UNDEF }),
  op('imul', 0, 0xf6, 'Eb', mul1, { ext: 5, def: MUL_DEF, undef: MUL_UNDEF }),
  op('imul', 0, 0xf7, 'Ev', mul1, { ext: 5, def: MUL_DEF, undef: MUL_UNDEF }),
  op('div', 0, 0xf6, 'Eb', div, { ext: 6, undef: 0x08d5 }),
  op('div', 0, 0xf7, 'Ev', div, { ext: 6, undef: 0x08d5 }),
  op('idiv', 0, 0xf6, 'Eb', div, { ext: 7, undef: 0x08d5 }),
  op('idiv', 0, 0xf7, 'Ev', div, { ext: 7, undef: 0x08d5 }),
  op('imul', 1, 0xaf, 'Gv,Ev', imul2, { def: MUL_DEF, undef: MUL_UNDEF }),
  op('imul', 0, 0x69, 'Gv,Ev,Iz', imul3, { imm: IMM_Z, def: MUL_DEF, undef: MUL_UNDEF }),
  op('imul', 0, 0x6b, 'Gv,Ev,Ib', imul3, { imm: IMM_B, def: MUL_DEF, undef: MUL_UNDEF }),
];
