/**
 * Shifts and rotates: ROL ROR RCL RCR SHL/SAL SHR SAR by 1, CL and imm8, and SHLD/SHRD.
 * Counts are masked to 5 bits (6 for 64-bit operands) as hardware does; RCL/RCR on 8/16-bit
 * operands then rotate modulo 9/17. A masked count of 0 changes neither operand nor flags.
 * OF is defined only for 1-bit shifts; for larger counts this code produces what current
 * Intel/AMD cores do for SHL/SHR/SAR/ROL/ROR (the tests do not compare it).
 */
import { AF, ARITH_FLAGS, CF, OF, RCX, ST_FAULT, ST_OK } from '../constants';
import type { Cpu } from '../cpu';
import type { Insn } from '../insn';
import { IMM_UB, op, type OpDef } from '../table';
import { R, sar64, shl64, shr64 } from './int64';
import { maskTo } from './alu';
import { pickShift } from './fast';

/** Most significant bit of (x, xh) at operand size (top-level: no closure per instruction). */
function msbOf(size: number, x: number, xh: number): number {
  return size === 8 ? xh >>> 31 : (x >>> (size * 8 - 1)) & 1;
}

/** Result high half of the last shift (size 8). */
let outH = 0;

/**
 * Shift/rotate kind k (ModRM.reg: 0 ROL 1 ROR 2 RCL 3 RCR 4 SHL 5 SHR 6 SAL(=SHL) 7 SAR) of
 * (v, vh) by masked count n >= 1. Returns the low result, high in outH; sets the flags.
 */
function shiftOp(cpu: Cpu, k: number, size: number, v: number, vh: number, n: number): number {
  const bits = size * 8;
  let r: number;
  let rh = 0;
  let cf: number;
  let of: number;
  switch (k) {
    case 0: // ROL
    case 1: { // ROR
      const m = n % bits;
      if (size === 8) {
        const left = k === 0 ? m : (64 - m) % 64;
        shl64(v, vh, left);
        const a0 = R[0];
        const a1 = R[1];
        shr64(v, vh, (64 - left) % 64);
        r = left === 0 ? v : (a0 | R[0]) >>> 0;
        rh = left === 0 ? vh : a1 | R[1];
      } else {
        const left = k === 0 ? m : (bits - m) % bits;
        r = left === 0 ? v : maskTo((v << left) | (v >>> (bits - left)), size);
      }
      if (k === 0) {
        cf = r & 1;
        of = msbOf(size, r, rh) ^ cf;
      } else {
        cf = msbOf(size, r, rh);
        of = cf ^ (size === 8 ? (rh >>> 30) & 1 : (r >>> (bits - 2)) & 1);
      }
      const f = cpu.settleFlags();
      cpu.flags = (f & ~(CF | OF)) | cf | (of << 11);
      outH = rh;
      return r;
    }
    case 2: // RCL
    case 3: { // RCR
      const m = size === 1 ? n % 9 : size === 2 ? n % 17 : n;
      let c = cpu.cf();
      r = v;
      rh = vh;
      const before = msbOf(size, v, vh);
      for (let i = 0; i < m; i++) {
        if (k === 2) {
          const out = msbOf(size, r, rh);
          if (size === 8) {
            rh = (rh << 1) | (r >>> 31);
            r = ((r << 1) | c) >>> 0;
          } else r = maskTo((r << 1) | c, size);
          c = out;
        } else {
          const out = r & 1;
          if (size === 8) {
            r = ((r >>> 1) | (rh << 31)) >>> 0;
            rh = (rh >>> 1) | (c << 31);
          } else r = (r >>> 1) | (c << (bits - 1));
          c = out;
        }
      }
      cf = c;
      of = k === 2 ? msbOf(size, r, rh) ^ cf : before ^ cpu.cf();
      const f = cpu.settleFlags();
      cpu.flags = (f & ~(CF | OF)) | cf | (of << 11);
      outH = rh;
      return size === 8 ? r : maskTo(r, size);
    }
    case 4:
    case 6: // SHL
      if (size === 8) {
        shl64(v, vh, n);
        r = R[0] >>> 0;
        rh = R[1];
        shl64(v, vh, n - 1);
        cf = R[1] >>> 31;
      } else {
        const s = n >= 32 ? 0 : v * 2 ** n; // exact below 2^53 for bits <= 32, n < 32
        r = n >= bits + 1 ? 0 : maskTo(s, size);
        cf = n > bits ? 0 : Math.floor(s / 2 ** bits) & 1;
        if (n >= 32) cf = 0;
      }
      of = msbOf(size, r, rh) ^ cf;
      break;
    case 5: // SHR
      if (size === 8) {
        shr64(v, vh, n);
        r = R[0] >>> 0;
        rh = R[1];
        shr64(v, vh, n - 1);
        cf = R[0] & 1;
      } else {
        r = n >= 32 ? 0 : v >>> n;
        cf = n > 32 ? 0 : (v >>> (n - 1)) & 1;
        if (n > bits) cf = 0;
      }
      of = msbOf(size, v, vh);
      break;
    default: { // SAR
      if (size === 8) {
        sar64(v, vh, n);
        r = R[0] >>> 0;
        rh = R[1];
        sar64(v, vh, n - 1);
        cf = R[0] & 1;
      } else {
        const sv = (v << (32 - bits)) >> (32 - bits);
        const nn = n > bits ? bits : n;
        r = maskTo(sv >> (nn >= 32 ? 31 : nn), size);
        cf = (sv >> (nn - 1 >= 32 ? 31 : nn - 1)) & 1;
      }
      of = 0;
    }
  }
  // SHL/SHR/SAR rewrite all six flags: CF/OF eager (AF undefined: cleared), SF/ZF/PF lazy.
  // Nothing of the old flags survives, so there is no need to evaluate them first.
  cpu.flags = (cpu.flags & ~ARITH_FLAGS) | cf | (of << 11);
  cpu.setLazyRes(size, r, size === 8 ? rh >>> 0 : 0);
  outH = rh;
  return r;
}

/** A masked count of 0 changes nothing, except that a 32-bit register is still zero-extended. */
function zeroCount(cpu: Cpu, d: Insn): number {
  if (d.osize === 4 && d.mod === 3) cpu.hi[d.rm] = 0;
  return ST_OK;
}

function countOf(cpu: Cpu, d: Insn): number {
  const c = d.opcode === 0xd0 || d.opcode === 0xd1 ? 1 : d.opcode === 0xd2 || d.opcode === 0xd3 ? cpu.lo[RCX] & 0xff : d.imm & 0xff;
  return c & (d.osize === 8 ? 63 : 31);
}

function shiftE(cpu: Cpu, d: Insn): number {
  const n = countOf(cpu, d);
  const v = cpu.readE(d);
  if (v < 0) return ST_FAULT;
  if (n === 0) return zeroCount(cpu, d);
  const k = d.reg & 7;
  const r = shiftOp(cpu, k, d.osize, v, cpu.vh, n);
  return cpu.writeBackE(d, r, outH);
}

/** SHLD (left) / SHRD: shift E by n filling from G. Counts above the size are undefined. */
function shxd(cpu: Cpu, d: Insn): number {
  const n = (d.opcode & 1 ? cpu.lo[RCX] : d.imm) & (d.osize === 8 ? 63 : 31);
  const v = cpu.readE(d);
  if (v < 0) return ST_FAULT;
  const vh = cpu.vh;
  if (n === 0) return zeroCount(cpu, d);
  const g = cpu.readG(d);
  const gh = cpu.vh;
  const left = d.opcode < 0xa8;
  const size = d.osize;
  const bits = size * 8;
  let r: number;
  let rh = 0;
  let cf: number;
  if (size === 8) {
    if (left) {
      shl64(v, vh, n);
      const a0 = R[0];
      const a1 = R[1];
      shr64(g, gh, 64 - n);
      r = (a0 | R[0]) >>> 0;
      rh = a1 | R[1];
      shl64(v, vh, n - 1);
      cf = R[1] >>> 31;
    } else {
      shr64(v, vh, n);
      const a0 = R[0];
      const a1 = R[1];
      shl64(g, gh, 64 - n);
      r = (a0 | R[0]) >>> 0;
      rh = a1 | R[1];
      shr64(v, vh, n - 1);
      cf = R[0] & 1;
    }
  } else if (size === 4) {
    if (left) {
      r = ((v << n) | (g >>> (32 - n))) >>> 0;
      cf = (v >>> (32 - n)) & 1;
    } else {
      r = ((v >>> n) | (g << (32 - n))) >>> 0;
      cf = (v >>> (n - 1)) & 1;
    }
  } else {
    // 16-bit: a 32-bit (dest:src) window; counts 17..31 are undefined (we continue into src).
    const wide = left ? ((v << 16) | g) >>> 0 : ((g << 16) | v) >>> 0;
    if (left) {
      const x = n >= 32 ? 0 : wide * 2 ** n;
      r = Math.floor(x / 65536) & 0xffff;
      cf = Math.floor(x / 2 ** 32) & 1;
    } else {
      r = (wide >>> n) & 0xffff;
      cf = (wide >>> (n - 1)) & 1;
    }
  }
  const msb = size === 8 ? rh >>> 31 : (r >>> (bits - 1)) & 1;
  const msbIn = size === 8 ? vh >>> 31 : (v >>> (bits - 1)) & 1;
  const of = msb ^ msbIn;
  const st = cpu.writeBackE(d, r, rh);
  if (st !== ST_OK) return st;
  cpu.flags = (cpu.flags & ~ARITH_FLAGS) | cf | (of << 11);
  cpu.setLazyRes(size, r, size === 8 ? rh >>> 0 : 0);
  return ST_OK;
}

const NAMES = ['rol', 'ror', 'rcl', 'rcr', 'shl', 'shr', 'sal', 'sar'];

function shiftDefs(): OpDef[] {
  const out: OpDef[] = [];
  for (let k = 0; k < 8; k++) {
    // Defined flags (count 1): rotates CF+OF only; shifts CF OF SF ZF PF (AF undefined).
    const def = k < 4 ? CF | OF : 0x08c5;
    out.push(
      op(NAMES[k], 0, 0xc0, 'Eb,Ib', shiftE, { ext: k, imm: IMM_UB, def, undef: AF }),
      op(NAMES[k], 0, 0xc1, 'Ev,Ib', shiftE, { ext: k, imm: IMM_UB, def, undef: AF, fast: pickShift }),
      op(NAMES[k], 0, 0xd0, 'Eb,1', shiftE, { ext: k, def, undef: AF }),
      op(NAMES[k], 0, 0xd1, 'Ev,1', shiftE, { ext: k, def, undef: AF, fast: pickShift }),
      op(NAMES[k], 0, 0xd2, 'Eb,CL', shiftE, { ext: k, def, undef: AF }),
      op(NAMES[k], 0, 0xd3, 'Ev,CL', shiftE, { ext: k, def, undef: AF }),
    );
  }
  return out;
}

export const SHIFT_OPS: readonly OpDef[] = [
  ...shiftDefs(),
  op('shld', 1, 0xa4, 'Ev,Gv,Ib', shxd, { imm: IMM_UB, def: 0x08c5, undef: AF }),
  op('shld', 1, 0xa5, 'Ev,Gv,CL', shxd, { def: 0x08c5, undef: AF }),
  op('shrd', 1, 0xac, 'Ev,Gv,Ib', shxd, { imm: IMM_UB, def: 0x08c5, undef: AF }),
  op('shrd', 1, 0xad, 'Ev,Gv,CL', shxd, { def: 0x08c5, undef: AF }),
];
