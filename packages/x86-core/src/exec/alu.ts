/**
 * Integer ALU: ADD OR ADC SBB AND SUB XOR CMP in every form, TEST, INC/DEC, NEG/NOT, XADD,
 * CMPXCHG. Values flow as unsigned numbers masked to the operand size; 64-bit operands as
 * lo/hi pairs (cpu.vh carries the high half out of a read).
 */
import { ARITH_FLAGS, CF, RAX, ST_FAULT, ST_OK } from '../constants';
import { LZ_ADC1, LZ_ADD, LZ_LOGIC, LZ_SBB1, LZ_SUB } from '../arith';
import type { Cpu } from '../cpu';
import type { Insn } from '../insn';
import { F_INV64, F_LOCK, IMM_B, IMM_Z, op, type OpDef } from '../table';
import { pickAluEG, pickAluEI, pickAluI8, pickAluI8MI, pickIncDec, pickTestEI } from './fast';

const TWO32 = 4294967296;
const ARITH_DEF = ARITH_FLAGS;

/** Masks v to size bytes, unsigned. */
export function maskTo(v: number, size: number): number {
  return size >= 4 ? v >>> 0 : size === 2 ? v & 0xffff : v & 0xff;
}

/** The immediate of d as an unsigned value of the operand size (high half in cpu.vh). */
export function immOf(cpu: Cpu, d: Insn): number {
  cpu.vh = d.immHi;
  return maskTo(d.imm, d.osize);
}

/**
 * Runs ALU operation kind (0 ADD, 1 OR, 2 ADC, 3 SBB, 4 AND, 5 SUB, 6 XOR, 7 CMP) on a and b
 * (unsigned; aH/bH high halves for size 8), records the flags and returns the result (its
 * high half in cpu.vh).
 */
export function alu(cpu: Cpu, kind: number, size: number, a: number, aH: number, b: number, bH: number): number {
  let r: number;
  let rh = 0;
  if (size === 8) {
    aH >>>= 0;
    bH >>>= 0;
  } else {
    aH = 0;
    bH = 0;
  }
  switch (kind) {
    case 0:
    case 2: {
      const c = kind === 2 ? cpu.cf() : 0;
      const s = a + b + c;
      if (size === 8) {
        r = s >>> 0;
        rh = (aH + bH + (s >= TWO32 ? 1 : 0)) >>> 0;
      } else r = maskTo(s, size);
      cpu.setLazy(c ? LZ_ADC1 : LZ_ADD, size, r, rh, a, aH, b, bH);
      break;
    }
    case 3:
    case 5:
    case 7: {
      const c = kind === 3 ? cpu.cf() : 0;
      const s = a - b - c;
      if (size === 8) {
        r = s >>> 0;
        rh = (aH - bH - (s < 0 ? 1 : 0)) >>> 0;
      } else r = maskTo(s, size);
      cpu.setLazy(c ? LZ_SBB1 : LZ_SUB, size, r, rh, a, aH, b, bH);
      break;
    }
    case 1:
      r = (a | b) >>> 0;
      rh = (aH | bH) >>> 0;
      cpu.setLazy(LZ_LOGIC, size, r, rh, a, aH, b, bH);
      break;
    case 4:
      r = (a & b) >>> 0;
      rh = (aH & bH) >>> 0;
      cpu.setLazy(LZ_LOGIC, size, r, rh, a, aH, b, bH);
      break;
    default:
      r = (a ^ b) >>> 0;
      rh = (aH ^ bH) >>> 0;
      cpu.setLazy(LZ_LOGIC, size, r, rh, a, aH, b, bH);
  }
  cpu.vh = rh | 0;
  return r;
}

// 00-3D: op Eb,Gb / Ev,Gv / Gb,Eb / Gv,Ev / AL,Ib / rAX,Iz
function aluEG(cpu: Cpu, d: Insn): number {
  const a = cpu.readE(d);
  if (a < 0) return ST_FAULT;
  const aH = cpu.vh;
  const b = cpu.readG(d);
  const r = alu(cpu, (d.opcode >> 3) & 7, d.osize, a, aH, b, cpu.vh);
  if (((d.opcode >> 3) & 7) === 7) return ST_OK;
  return cpu.writeBackE(d, r, cpu.vh);
}

function aluGE(cpu: Cpu, d: Insn): number {
  const b = cpu.readE(d);
  if (b < 0) return ST_FAULT;
  const bH = cpu.vh;
  const a = cpu.readG(d);
  const r = alu(cpu, (d.opcode >> 3) & 7, d.osize, a, cpu.vh, b, bH);
  if (((d.opcode >> 3) & 7) !== 7) cpu.writeG(d, r, cpu.vh);
  return ST_OK;
}

function aluAI(cpu: Cpu, d: Insn): number {
  const a = d.osize === 1 ? cpu.lo[RAX] & 0xff : cpu.getReg(RAX, d.osize);
  const aH = cpu.vh;
  const b = immOf(cpu, d);
  const r = alu(cpu, (d.opcode >> 3) & 7, d.osize, a, aH, b, cpu.vh);
  if (((d.opcode >> 3) & 7) !== 7) cpu.setReg(RAX, d.osize, r, cpu.vh);
  return ST_OK;
}

// 80/81/82/83 /n: op Eb,Ib / Ev,Iz / Ev,Ib
function aluEI(cpu: Cpu, d: Insn): number {
  const a = cpu.readE(d);
  if (a < 0) return ST_FAULT;
  const aH = cpu.vh;
  const b = immOf(cpu, d);
  const kind = d.reg & 7;
  const r = alu(cpu, kind, d.osize, a, aH, b, cpu.vh);
  if (kind === 7) return ST_OK;
  return cpu.writeBackE(d, r, cpu.vh);
}

// TEST
function testEG(cpu: Cpu, d: Insn): number {
  const a = cpu.readE(d);
  if (a < 0) return ST_FAULT;
  const aH = cpu.vh;
  const b = cpu.readG(d);
  alu(cpu, 4, d.osize, a, aH, b, cpu.vh);
  return ST_OK;
}

function testAI(cpu: Cpu, d: Insn): number {
  const a = d.osize === 1 ? cpu.lo[RAX] & 0xff : cpu.getReg(RAX, d.osize);
  const aH = cpu.vh;
  const b = immOf(cpu, d);
  alu(cpu, 4, d.osize, a, aH, b, cpu.vh);
  return ST_OK;
}

function testEI(cpu: Cpu, d: Insn): number {
  const a = cpu.readE(d);
  if (a < 0) return ST_FAULT;
  const aH = cpu.vh;
  const b = immOf(cpu, d);
  alu(cpu, 4, d.osize, a, aH, b, cpu.vh);
  return ST_OK;
}

/** INC (dir 1) / DEC (dir -1) of a: like ADD/SUB 1, but CF is kept. */
function incdec(cpu: Cpu, size: number, a: number, aH: number, dir: number): number {
  const cf = cpu.cf();
  const r = alu(cpu, dir > 0 ? 0 : 5, size, a, aH, 1, 0);
  cpu.flags = (cpu.flags & ~CF) | cf;
  cpu.lzMask = ARITH_FLAGS & ~CF;
  return r;
}

function incE(cpu: Cpu, d: Insn): number {
  const a = cpu.readE(d);
  if (a < 0) return ST_FAULT;
  const r = incdec(cpu, d.osize, a, cpu.vh, 1);
  return cpu.writeBackE(d, r, cpu.vh);
}

function decE(cpu: Cpu, d: Insn): number {
  const a = cpu.readE(d);
  if (a < 0) return ST_FAULT;
  const r = incdec(cpu, d.osize, a, cpu.vh, -1);
  return cpu.writeBackE(d, r, cpu.vh);
}

// 40+r / 48+r (16/32-bit modes only; REX in 64-bit mode)
function incR(cpu: Cpu, d: Insn): number {
  const a = cpu.getReg(d.rm, d.osize);
  const r = incdec(cpu, d.osize, a, cpu.vh, (d.opcode & 8) === 0 ? 1 : -1);
  cpu.setReg(d.rm, d.osize, r, cpu.vh);
  return ST_OK;
}

function negE(cpu: Cpu, d: Insn): number {
  const a = cpu.readE(d);
  if (a < 0) return ST_FAULT;
  const r = alu(cpu, 5, d.osize, 0, 0, a, cpu.vh);
  return cpu.writeBackE(d, r, cpu.vh);
}

function notE(cpu: Cpu, d: Insn): number {
  const a = cpu.readE(d);
  if (a < 0) return ST_FAULT;
  return cpu.writeBackE(d, maskTo(~a, d.osize), ~cpu.vh);
}

// XADD Eb,Gb / Ev,Gv: tmp = E + G; G = E; E = tmp
function xadd(cpu: Cpu, d: Insn): number {
  const a = cpu.readE(d);
  if (a < 0) return ST_FAULT;
  const aH = cpu.vh;
  const b = cpu.readG(d);
  const bH = cpu.vh;
  const lz = saveLazy(cpu);
  const r = alu(cpu, 0, d.osize, a, aH, b, bH);
  const rH = cpu.vh;
  if (d.mod === 3) {
    // G gets the old E first, so XADD r, r (same register) leaves the sum, as hardware does.
    cpu.writeG(d, a, aH);
    return cpu.writeBackE(d, r, rH);
  }
  const st = cpu.writeBackE(d, r, rH);
  if (st !== ST_OK) {
    restoreLazy(cpu, lz);
    return st;
  }
  cpu.writeG(d, a, aH);
  return ST_OK;
}

// CMPXCHG Eb,Gb / Ev,Gv: compare accumulator with E; equal: E = G, else accumulator = E.
function cmpxchg(cpu: Cpu, d: Insn): number {
  const size = d.osize;
  const e = cpu.readE(d);
  if (e < 0) return ST_FAULT;
  const eH = cpu.vh;
  const acc = size === 1 ? cpu.lo[RAX] & 0xff : cpu.getReg(RAX, size);
  const accH = cpu.vh;
  const lz = saveLazy(cpu);
  alu(cpu, 7, size, acc, accH, e, eH);
  if (cpu.zf()) {
    const g = cpu.readG(d);
    const st = cpu.writeBackE(d, g, cpu.vh);
    if (st !== ST_OK) {
      restoreLazy(cpu, lz);
      return st;
    }
  } else {
    // The destination is written back with its own value (a locked RMW always writes).
    if (d.mod !== 3) {
      const st = cpu.writeBackE(d, e, eH);
      if (st !== ST_OK) {
        restoreLazy(cpu, lz);
        return st;
      }
    }
    if (size === 1) cpu.lo[RAX] = (cpu.lo[RAX] & ~0xff) | e;
    else cpu.setReg(RAX, size, e, eH);
  }
  return ST_OK;
}

/** Flags snapshot so a handler can undo its flag update when a later write faults. */
const LZ_SAVE = new Float64Array(10);
function saveLazy(cpu: Cpu): Float64Array {
  LZ_SAVE[0] = cpu.flags;
  LZ_SAVE[1] = cpu.lzMask;
  LZ_SAVE[2] = cpu.lzOp;
  LZ_SAVE[3] = cpu.lzSize;
  LZ_SAVE[4] = cpu.lzRes;
  LZ_SAVE[5] = cpu.lzResH;
  LZ_SAVE[6] = cpu.lzA;
  LZ_SAVE[7] = cpu.lzAH;
  LZ_SAVE[8] = cpu.lzB;
  LZ_SAVE[9] = cpu.lzBH;
  return LZ_SAVE;
}
function restoreLazy(cpu: Cpu, s: Float64Array): void {
  cpu.flags = s[0];
  cpu.lzMask = s[1];
  cpu.lzOp = s[2];
  cpu.lzSize = s[3];
  cpu.lzRes = s[4];
  cpu.lzResH = s[5];
  cpu.lzA = s[6];
  cpu.lzAH = s[7];
  cpu.lzB = s[8];
  cpu.lzBH = s[9];
}
export { saveLazy, restoreLazy };

const NAMES = ['add', 'or', 'adc', 'sbb', 'and', 'sub', 'xor', 'cmp'];
const LOGIC_DEF = ARITH_FLAGS & ~0x10; // AF undefined after logic ops

function aluDefs(): OpDef[] {
  const out: OpDef[] = [];
  for (let k = 0; k < 8; k++) {
    const m = NAMES[k];
    const base = k << 3;
    const lock = k === 7 ? 0 : F_LOCK;
    const def = k === 1 || k === 4 || k === 6 ? LOGIC_DEF : ARITH_DEF;
    const undef = ARITH_FLAGS & ~def;
    out.push(
      op(m, 0, base + 0, 'Eb,Gb', aluEG, { flags: lock, def, undef, fast: pickAluEG }),
      op(m, 0, base + 1, 'Ev,Gv', aluEG, { flags: lock, def, undef, fast: pickAluEG }),
      op(m, 0, base + 2, 'Gb,Eb', aluGE, { def, undef, fast: pickAluEG }),
      op(m, 0, base + 3, 'Gv,Ev', aluGE, { def, undef, fast: pickAluEG }),
      op(m, 0, base + 4, 'AL,Ib', aluAI, { imm: IMM_B, def, undef, fast: pickAluI8 }),
      op(m, 0, base + 5, 'rAX,Iz', aluAI, { imm: IMM_Z, def, undef, fast: pickAluEI }),
      op(m, 0, 0x80, 'Eb,Ib', aluEI, { ext: k, imm: IMM_B, flags: lock, def, undef, fast: pickAluI8MI }),
      op(m, 0, 0x81, 'Ev,Iz', aluEI, { ext: k, imm: IMM_Z, flags: lock, def, undef, fast: pickAluEI }),
      op(m, 0, 0x82, 'Eb,Ib', aluEI, { ext: k, imm: IMM_B, flags: lock | F_INV64, def, undef }),
      op(m, 0, 0x83, 'Ev,Ib', aluEI, { ext: k, imm: IMM_B, flags: lock, def, undef, fast: pickAluEI }),
    );
  }
  return out;
}

const INCDEC_DEF = ARITH_FLAGS & ~CF;

export const ALU_OPS: readonly OpDef[] = [
  ...aluDefs(),
  op('test', 0, 0x84, 'Eb,Gb', testEG, { def: LOGIC_DEF, undef: 0x10, fast: pickAluEG }),
  op('test', 0, 0x85, 'Ev,Gv', testEG, { def: LOGIC_DEF, undef: 0x10, fast: pickAluEG }),
  op('test', 0, 0xa8, 'AL,Ib', testAI, { imm: IMM_B, def: LOGIC_DEF, undef: 0x10, fast: pickAluI8 }),
  op('test', 0, 0xa9, 'rAX,Iz', testAI, { imm: IMM_Z, def: LOGIC_DEF, undef: 0x10, fast: pickAluEI }),
  op('test', 0, 0xf6, 'Eb,Ib', testEI, { ext: 0, imm: IMM_B, def: LOGIC_DEF, undef: 0x10, fast: pickTestEI }),
  op('test', 0, 0xf6, 'Eb,Ib', testEI, { ext: 1, imm: IMM_B, def: LOGIC_DEF, undef: 0x10 }),
  op('test', 0, 0xf7, 'Ev,Iz', testEI, { ext: 0, imm: IMM_Z, def: LOGIC_DEF, undef: 0x10, fast: pickTestEI }),
  op('test', 0, 0xf7, 'Ev,Iz', testEI, { ext: 1, imm: IMM_Z, def: LOGIC_DEF, undef: 0x10 }),
  op('not', 0, 0xf6, 'Eb', notE, { ext: 2, flags: F_LOCK }),
  op('not', 0, 0xf7, 'Ev', notE, { ext: 2, flags: F_LOCK }),
  op('neg', 0, 0xf6, 'Eb', negE, { ext: 3, flags: F_LOCK, def: ARITH_FLAGS }),
  op('neg', 0, 0xf7, 'Ev', negE, { ext: 3, flags: F_LOCK, def: ARITH_FLAGS }),
  op('inc', 0, 0xfe, 'Eb', incE, { ext: 0, flags: F_LOCK, def: INCDEC_DEF }),
  op('dec', 0, 0xfe, 'Eb', decE, { ext: 1, flags: F_LOCK, def: INCDEC_DEF }),
  op('inc', 0, 0xff, 'Ev', incE, { ext: 0, flags: F_LOCK, def: INCDEC_DEF, fast: pickIncDec }),
  op('dec', 0, 0xff, 'Ev', decE, { ext: 1, flags: F_LOCK, def: INCDEC_DEF, fast: pickIncDec }),
  op('inc', 0, 0x40, 'Zv', incR, { count: 8, flags: F_INV64, def: INCDEC_DEF }),
  op('dec', 0, 0x48, 'Zv', incR, { count: 8, flags: F_INV64, def: INCDEC_DEF }),
  op('xadd', 1, 0xc0, 'Eb,Gb', xadd, { flags: F_LOCK, def: ARITH_FLAGS }),
  op('xadd', 1, 0xc1, 'Ev,Gv', xadd, { flags: F_LOCK, def: ARITH_FLAGS }),
  op('cmpxchg', 1, 0xb0, 'Eb,Gb', cmpxchg, { flags: F_LOCK, def: ARITH_FLAGS }),
  op('cmpxchg', 1, 0xb1, 'Ev,Gv', cmpxchg, { flags: F_LOCK, def: ARITH_FLAGS }),
];
