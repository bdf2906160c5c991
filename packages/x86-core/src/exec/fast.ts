/**
 * Decode-time specialised handlers for the hottest integer forms.
 *
 * The decoder calls an op's picker (OpDef.fast) once per decode; the picker looks at the record
 * (register or memory operand, operand size, code size, count) and returns a handler that skips
 * the generic helpers' run-time tests (readE's mod/size switches, alu's size paths, setReg's
 * merge rules, the stack's address-size paths), or null to keep the op's generic handler. A
 * specialised handler computes exactly what the generic one does (same result, same flags,
 * same lazy-flag record, same faults): the differential harness runs both forms of every op,
 * and `decodeCache = false` tests compare them against the host CPU too.
 *
 * Memory forms write before they commit flags or registers, so a faulting write leaves the
 * state of the instruction's start (restartable, also for ADC/SBB whose carry-in is a flag).
 */
import { ARITH_FLAGS, CF, GP, OF, RAX, RSP, ST_OK } from '../constants';
import { LZ_ADC1, LZ_ADD, LZ_LOGIC, LZ_RES, LZ_SBB1, LZ_SUB, hiOf } from '../arith';
import type { Cpu } from '../cpu';
import type { Insn } from '../insn';
import type { Exec, Pick } from '../table';

const TWO32 = 4294967296;
const MAX_CANON = 140737488355328; // 2^47

// ---------------------------------------------------------------- ALU core

/** Result of ALU kind (0 ADD 1 OR 2 ADC 3 SBB 4 AND 5 SUB 6 XOR 7 CMP) on 32-bit a, b with carry-in c. */
function res32(kind: number, a: number, b: number, c: number): number {
  switch (kind) {
    case 0:
    case 2:
      return (a + b + c) >>> 0;
    case 1:
      return (a | b) >>> 0;
    case 4:
      return (a & b) >>> 0;
    case 6:
      return (a ^ b) >>> 0;
    default:
      return (a - b - c) >>> 0;
  }
}

/** The lazy-flag record of res32 (what alu() in alu.ts records for size 4). */
function lazy32(cpu: Cpu, kind: number, r: number, a: number, b: number, c: number): void {
  cpu.lzOp = kind === 0 || kind === 2 ? (c !== 0 ? LZ_ADC1 : LZ_ADD) : kind === 1 || kind === 4 || kind === 6 ? LZ_LOGIC : c !== 0 ? LZ_SBB1 : LZ_SUB;
  cpu.lzSize = 4;
  cpu.lzRes = r;
  cpu.lzResH = 0;
  cpu.lzA = a;
  cpu.lzAH = 0;
  cpu.lzB = b;
  cpu.lzBH = 0;
  cpu.lzMask = ARITH_FLAGS;
}

/** Carry-in of kind: CF for ADC/SBB, else 0. */
function carryIn(cpu: Cpu, kind: number): number {
  return kind === 2 || kind === 3 ? cpu.cf() : 0;
}

/**
 * High half of the last res64 (unsigned). A typed-array slot, not a module `let`: a number
 * above 2^30 stored in a module variable would allocate a heap number each time.
 */
const RH = new Float64Array(1);

/** res32 at 64 bits: a/b lo unsigned, aH/bH unsigned; returns lo (unsigned), hi in RH[0]. */
function res64(kind: number, a: number, aH: number, b: number, bH: number, c: number): number {
  switch (kind) {
    case 0:
    case 2: {
      const s = a + b + c;
      RH[0] = (aH + bH + (s >= TWO32 ? 1 : 0)) >>> 0;
      return s >>> 0;
    }
    case 1:
      RH[0] = (aH | bH) >>> 0;
      return (a | b) >>> 0;
    case 4:
      RH[0] = (aH & bH) >>> 0;
      return (a & b) >>> 0;
    case 6:
      RH[0] = (aH ^ bH) >>> 0;
      return (a ^ b) >>> 0;
    default: {
      const s = a - b - c;
      RH[0] = (aH - bH - (s < 0 ? 1 : 0)) >>> 0;
      return s >>> 0;
    }
  }
}

function lazy64(cpu: Cpu, kind: number, r: number, rh: number, a: number, aH: number, b: number, bH: number, c: number): void {
  cpu.lzOp = kind === 0 || kind === 2 ? (c !== 0 ? LZ_ADC1 : LZ_ADD) : kind === 1 || kind === 4 || kind === 6 ? LZ_LOGIC : c !== 0 ? LZ_SBB1 : LZ_SUB;
  cpu.lzSize = 8;
  cpu.lzRes = r;
  cpu.lzResH = rh;
  cpu.lzA = a;
  cpu.lzAH = aH;
  cpu.lzB = b;
  cpu.lzBH = bH;
  cpu.lzMask = ARITH_FLAGS;
}

// ---------------------------------------------------------------- ALU forms
// kind: (opcode >> 3) & 7 for 00-3F, ModRM.reg for 80-83, 4 (AND) for TEST.

function aluKind(d: Insn): number {
  const o = d.opcode;
  return o === 0x85 || o === 0xa9 ? 4 : o >= 0x80 ? d.reg & 7 : (o >> 3) & 7;
}

/** op r32, r32 (E = rm destination; dir 0) */
function aluRR32(cpu: Cpu, d: Insn): number {
  const kind = (d.opcode >> 3) & 7;
  const lo = cpu.lo;
  const a = lo[d.rm] >>> 0;
  const b = lo[d.reg] >>> 0;
  const c = carryIn(cpu, kind);
  const r = res32(kind, a, b, c);
  lazy32(cpu, kind, r, a, b, c);
  if (kind !== 7) {
    lo[d.rm] = r;
    cpu.hi[d.rm] = 0;
  }
  return ST_OK;
}

/** op r32, r32 with G the destination (02-3B odd forms, mod = 3). */
function aluGR32(cpu: Cpu, d: Insn): number {
  const kind = (d.opcode >> 3) & 7;
  const lo = cpu.lo;
  const a = lo[d.reg] >>> 0;
  const b = lo[d.rm] >>> 0;
  const c = carryIn(cpu, kind);
  const r = res32(kind, a, b, c);
  lazy32(cpu, kind, r, a, b, c);
  if (kind !== 7) {
    lo[d.reg] = r;
    cpu.hi[d.reg] = 0;
  }
  return ST_OK;
}

function aluRR64(cpu: Cpu, d: Insn): number {
  const kind = (d.opcode >> 3) & 7;
  const lo = cpu.lo;
  const hi = cpu.hi;
  const a = lo[d.rm] >>> 0;
  const aH = hi[d.rm] >>> 0;
  const b = lo[d.reg] >>> 0;
  const bH = hi[d.reg] >>> 0;
  const c = carryIn(cpu, kind);
  const r = res64(kind, a, aH, b, bH, c);
  const rh = RH[0];
  lazy64(cpu, kind, r, rh, a, aH, b, bH, c);
  if (kind !== 7) {
    lo[d.rm] = r;
    hi[d.rm] = rh;
  }
  return ST_OK;
}

function aluGR64(cpu: Cpu, d: Insn): number {
  const kind = (d.opcode >> 3) & 7;
  const lo = cpu.lo;
  const hi = cpu.hi;
  const a = lo[d.reg] >>> 0;
  const aH = hi[d.reg] >>> 0;
  const b = lo[d.rm] >>> 0;
  const bH = hi[d.rm] >>> 0;
  const c = carryIn(cpu, kind);
  const r = res64(kind, a, aH, b, bH, c);
  const rh = RH[0];
  lazy64(cpu, kind, r, rh, a, aH, b, bH, c);
  if (kind !== 7) {
    lo[d.reg] = r;
    hi[d.reg] = rh;
  }
  return ST_OK;
}

/** op [mem], r32 / TEST [mem], r32 (read-modify-write; CMP/TEST only read). */
function aluMR32(cpu: Cpu, d: Insn): number {
  const kind = aluKind(d);
  const la = cpu.eaFast(d);
  const a = cpu.mem.read32(la);
  if (a < 0) return cpu.memFault(a, la);
  const b = cpu.lo[d.reg] >>> 0;
  const c = carryIn(cpu, kind);
  const r = res32(kind, a, b, c);
  if (kind !== 7 && d.opcode !== 0x85) {
    const st = cpu.mem.write32(la, r);
    if (st !== 0) return cpu.memFault(st, la);
  }
  lazy32(cpu, kind, r, a, b, c);
  return ST_OK;
}

function aluMR64(cpu: Cpu, d: Insn): number {
  const kind = aluKind(d);
  const la = cpu.eaFast(d);
  const t = cpu.tmp;
  const code = cpu.mem.read64(la, t, 0);
  if (code < 0) return cpu.memFault(code, la);
  const a = t[0] >>> 0;
  const aH = t[1] >>> 0;
  const b = cpu.lo[d.reg] >>> 0;
  const bH = cpu.hi[d.reg] >>> 0;
  const c = carryIn(cpu, kind);
  const r = res64(kind, a, aH, b, bH, c);
  const rh = RH[0];
  if (kind !== 7 && d.opcode !== 0x85) {
    const st = cpu.mem.write64(la, r | 0, rh | 0);
    if (st !== 0) return cpu.memFault(st, la);
  }
  lazy64(cpu, kind, r, rh, a, aH, b, bH, c);
  return ST_OK;
}

/** op r32, [mem] (G destination). */
function aluRM32(cpu: Cpu, d: Insn): number {
  const kind = (d.opcode >> 3) & 7;
  const la = cpu.eaFast(d);
  const b = cpu.mem.read32(la);
  if (b < 0) return cpu.memFault(b, la);
  const lo = cpu.lo;
  const a = lo[d.reg] >>> 0;
  const c = carryIn(cpu, kind);
  const r = res32(kind, a, b, c);
  lazy32(cpu, kind, r, a, b, c);
  if (kind !== 7) {
    lo[d.reg] = r;
    cpu.hi[d.reg] = 0;
  }
  return ST_OK;
}

function aluRM64(cpu: Cpu, d: Insn): number {
  const kind = (d.opcode >> 3) & 7;
  const la = cpu.eaFast(d);
  const t = cpu.tmp;
  const code = cpu.mem.read64(la, t, 0);
  if (code < 0) return cpu.memFault(code, la);
  const lo = cpu.lo;
  const hi = cpu.hi;
  const a = lo[d.reg] >>> 0;
  const aH = hi[d.reg] >>> 0;
  const b = t[0] >>> 0;
  const bH = t[1] >>> 0;
  const c = carryIn(cpu, kind);
  const r = res64(kind, a, aH, b, bH, c);
  const rh = RH[0];
  lazy64(cpu, kind, r, rh, a, aH, b, bH, c);
  if (kind !== 7) {
    lo[d.reg] = r;
    hi[d.reg] = rh;
  }
  return ST_OK;
}

/** TEST r32, r32 (85, mod = 3). */
function testRR32(cpu: Cpu, d: Insn): number {
  const a = cpu.lo[d.rm] >>> 0;
  const b = cpu.lo[d.reg] >>> 0;
  lazy32(cpu, 4, (a & b) >>> 0, a, b, 0);
  return ST_OK;
}

function testRR64(cpu: Cpu, d: Insn): number {
  const lo = cpu.lo;
  const hi = cpu.hi;
  const a = lo[d.rm] >>> 0;
  const aH = hi[d.rm] >>> 0;
  const b = lo[d.reg] >>> 0;
  const bH = hi[d.reg] >>> 0;
  lazy64(cpu, 4, (a & b) >>> 0, (aH & bH) >>> 0, a, aH, b, bH, 0);
  return ST_OK;
}

/** op r32, imm (81 / 83 with mod = 3; 05..3D rAX forms: rm = RAX). */
function aluRI32(cpu: Cpu, d: Insn): number {
  const kind = aluKind(d);
  const r0 = d.opcode < 0x80 || d.opcode === 0xa9 ? RAX : d.rm;
  const lo = cpu.lo;
  const a = lo[r0] >>> 0;
  const b = d.imm >>> 0;
  const c = carryIn(cpu, kind);
  const r = res32(kind, a, b, c);
  lazy32(cpu, kind, r, a, b, c);
  if (kind !== 7 && d.opcode !== 0xa9) {
    lo[r0] = r;
    cpu.hi[r0] = 0;
  }
  return ST_OK;
}

function aluRI64(cpu: Cpu, d: Insn): number {
  const kind = aluKind(d);
  const r0 = d.opcode < 0x80 || d.opcode === 0xa9 ? RAX : d.rm;
  const lo = cpu.lo;
  const hi = cpu.hi;
  const a = lo[r0] >>> 0;
  const aH = hi[r0] >>> 0;
  const b = d.imm >>> 0;
  const bH = d.immHi >>> 0;
  const c = carryIn(cpu, kind);
  const r = res64(kind, a, aH, b, bH, c);
  const rh = RH[0];
  lazy64(cpu, kind, r, rh, a, aH, b, bH, c);
  if (kind !== 7 && d.opcode !== 0xa9) {
    lo[r0] = r;
    hi[r0] = rh;
  }
  return ST_OK;
}

/** op [mem], imm (81 / 83, memory). */
function aluMI32(cpu: Cpu, d: Insn): number {
  const kind = d.reg & 7;
  const la = cpu.eaFast(d);
  const a = cpu.mem.read32(la);
  if (a < 0) return cpu.memFault(a, la);
  const b = d.imm >>> 0;
  const c = carryIn(cpu, kind);
  const r = res32(kind, a, b, c);
  if (kind !== 7) {
    const st = cpu.mem.write32(la, r);
    if (st !== 0) return cpu.memFault(st, la);
  }
  lazy32(cpu, kind, r, a, b, c);
  return ST_OK;
}

function aluMI64(cpu: Cpu, d: Insn): number {
  const kind = d.reg & 7;
  const la = cpu.eaFast(d);
  const t = cpu.tmp;
  const code = cpu.mem.read64(la, t, 0);
  if (code < 0) return cpu.memFault(code, la);
  const a = t[0] >>> 0;
  const aH = t[1] >>> 0;
  const b = d.imm >>> 0;
  const bH = d.immHi >>> 0;
  const c = carryIn(cpu, kind);
  const r = res64(kind, a, aH, b, bH, c);
  const rh = RH[0];
  if (kind !== 7) {
    const st = cpu.mem.write64(la, r | 0, rh | 0);
    if (st !== 0) return cpu.memFault(st, la);
  }
  lazy64(cpu, kind, r, rh, a, aH, b, bH, c);
  return ST_OK;
}

/** 8-bit: op [mem], imm8 (80 /n) and CMP/op with a low-byte register (no AH..BH). */
function aluMI8(cpu: Cpu, d: Insn): number {
  const kind = d.reg & 7;
  const la = cpu.eaFast(d);
  const a = cpu.mem.read8(la);
  if (a < 0) return cpu.memFault(a, la);
  const b = d.imm & 0xff;
  const c = carryIn(cpu, kind);
  const r = res32(kind, a, b, c) & 0xff;
  if (kind !== 7) {
    const st = cpu.mem.write8(la, r);
    if (st !== 0) return cpu.memFault(st, la);
  }
  lazy32(cpu, kind, r, a, b, c);
  cpu.lzSize = 1;
  return ST_OK;
}

/** op r8, r8 (00-38 even forms, 84 TEST; both registers low bytes: REX present or number < 4). */
function aluRR8(cpu: Cpu, d: Insn): number {
  const kind = d.opcode === 0x84 ? 4 : (d.opcode >> 3) & 7;
  const lo = cpu.lo;
  const a = lo[d.rm] & 0xff;
  const b = lo[d.reg] & 0xff;
  const c = carryIn(cpu, kind);
  const r = res32(kind, a, b, c) & 0xff;
  lazy32(cpu, kind, r, a, b, c);
  cpu.lzSize = 1;
  if (kind !== 7 && d.opcode !== 0x84) lo[d.rm] = (lo[d.rm] & ~0xff) | r;
  return ST_OK;
}

/** CMP r8, [mem] / CMP [mem], r8 (38 / 3A, memory, low-byte register). */
function cmpM8(cpu: Cpu, d: Insn): number {
  const la = cpu.eaFast(d);
  const m = cpu.mem.read8(la);
  if (m < 0) return cpu.memFault(m, la);
  const g = cpu.lo[d.reg] & 0xff;
  const a = d.opcode === 0x38 ? m : g;
  const b = d.opcode === 0x38 ? g : m;
  lazy32(cpu, 7, (a - b) & 0xff, a, b, 0);
  cpu.lzSize = 1;
  return ST_OK;
}

/** True when 8-bit register r is the low byte of r (REX present or r < 4), not AH..BH. */
function lowByte(d: Insn, r: number): boolean {
  return d.rex !== 0 || r < 4;
}

/** Picker of ALU Ev,Gv / Gv,Ev / Eb,Gb / Gb,Eb (00-3B) and TEST Ev,Gv / Eb,Gb (84/85). */
export const pickAluEG: Pick = (d) => {
  if (d.lock !== 0) return null;
  const o = d.opcode;
  const g = o < 0x40 && (o & 2) !== 0; // G is the destination
  if (d.osize === 1) {
    if (d.mod === 3) return lowByte(d, d.rm) && lowByte(d, d.reg) && !g ? aluRR8 : null;
    return (o === 0x38 || o === 0x3a) && lowByte(d, d.reg) ? cmpM8 : null;
  }
  if (d.osize === 4) {
    if (d.mod === 3) return o === 0x85 ? testRR32 : g ? aluGR32 : aluRR32;
    return g ? aluRM32 : aluMR32;
  }
  if (d.osize === 8) {
    if (d.mod === 3) return o === 0x85 ? testRR64 : g ? aluGR64 : aluRR64;
    return g ? aluRM64 : aluMR64;
  }
  return null;
};

/** Picker of ALU Ev,Iz / Ev,Ib / Eb,Ib (80/81/83) and rAX,Iz (05-3D, A9). */
export const pickAluEI: Pick = (d) => {
  if (d.lock !== 0) return null;
  const reg = d.opcode < 0x80 || d.opcode === 0xa9 || d.mod === 3;
  if (d.osize === 4) return reg ? aluRI32 : aluMI32;
  if (d.osize === 8) return reg ? aluRI64 : aluMI64;
  if (d.osize === 1 && d.opcode === 0x80 && d.mod !== 3) return aluMI8;
  return null;
};

// ---------------------------------------------------------------- MOV

function movRR32(cpu: Cpu, d: Insn): number {
  const dst = d.opcode === 0x89 ? d.rm : d.reg;
  cpu.lo[dst] = cpu.lo[d.opcode === 0x89 ? d.reg : d.rm];
  cpu.hi[dst] = 0;
  return ST_OK;
}

function movRR64(cpu: Cpu, d: Insn): number {
  const dst = d.opcode === 0x89 ? d.rm : d.reg;
  const src = d.opcode === 0x89 ? d.reg : d.rm;
  cpu.lo[dst] = cpu.lo[src];
  cpu.hi[dst] = cpu.hi[src];
  return ST_OK;
}

/** MOV [mem], r32 (89). */
function movMR32(cpu: Cpu, d: Insn): number {
  const la = cpu.eaFast(d);
  const st = cpu.mem.write32(la, cpu.lo[d.reg]);
  return st === 0 ? ST_OK : cpu.memFault(st, la);
}

function movMR64(cpu: Cpu, d: Insn): number {
  const la = cpu.eaFast(d);
  const st = cpu.mem.write64(la, cpu.lo[d.reg], cpu.hi[d.reg]);
  return st === 0 ? ST_OK : cpu.memFault(st, la);
}

/** MOV [mem], r8 (88, low-byte register). */
function movMR8(cpu: Cpu, d: Insn): number {
  const la = cpu.eaFast(d);
  const st = cpu.mem.write8(la, cpu.lo[d.reg] & 0xff);
  return st === 0 ? ST_OK : cpu.memFault(st, la);
}

/** MOV r32, [mem] (8B). */
function movRM32(cpu: Cpu, d: Insn): number {
  const la = cpu.eaFast(d);
  const v = cpu.mem.read32(la);
  if (v < 0) return cpu.memFault(v, la);
  cpu.lo[d.reg] = v;
  cpu.hi[d.reg] = 0;
  return ST_OK;
}

function movRM64(cpu: Cpu, d: Insn): number {
  const la = cpu.eaFast(d);
  const t = cpu.tmp;
  const code = cpu.mem.read64(la, t, 0);
  if (code < 0) return cpu.memFault(code, la);
  cpu.lo[d.reg] = t[0];
  cpu.hi[d.reg] = t[1];
  return ST_OK;
}

/** MOV r8, [mem] (8A, low-byte register). */
function movRM8(cpu: Cpu, d: Insn): number {
  const la = cpu.eaFast(d);
  const v = cpu.mem.read8(la);
  if (v < 0) return cpu.memFault(v, la);
  cpu.lo[d.reg] = (cpu.lo[d.reg] & ~0xff) | v;
  return ST_OK;
}

export const pickMovEG: Pick = (d) => {
  if (d.osize === 4) return d.mod === 3 ? movRR32 : d.opcode === 0x89 ? movMR32 : movRM32;
  if (d.osize === 8) return d.mod === 3 ? movRR64 : d.opcode === 0x89 ? movMR64 : movRM64;
  if (d.osize === 1 && d.mod !== 3 && lowByte(d, d.reg)) return d.opcode === 0x88 ? movMR8 : movRM8;
  return null;
};

/** MOV r/m, imm (C7 /0, C6 /0) and B8+r. */
function movRI32(cpu: Cpu, d: Insn): number {
  cpu.lo[d.rm] = d.imm;
  cpu.hi[d.rm] = 0;
  return ST_OK;
}

function movRI64(cpu: Cpu, d: Insn): number {
  cpu.lo[d.rm] = d.imm;
  cpu.hi[d.rm] = d.immHi;
  return ST_OK;
}

function movMI32(cpu: Cpu, d: Insn): number {
  const la = cpu.eaFast(d);
  const st = cpu.mem.write32(la, d.imm);
  return st === 0 ? ST_OK : cpu.memFault(st, la);
}

function movMI64(cpu: Cpu, d: Insn): number {
  const la = cpu.eaFast(d);
  const st = cpu.mem.write64(la, d.imm, d.immHi);
  return st === 0 ? ST_OK : cpu.memFault(st, la);
}

function movMI8(cpu: Cpu, d: Insn): number {
  const la = cpu.eaFast(d);
  const st = cpu.mem.write8(la, d.imm & 0xff);
  return st === 0 ? ST_OK : cpu.memFault(st, la);
}

export const pickMovEI: Pick = (d) => {
  if (d.osize === 4) return d.mod === 3 ? movRI32 : movMI32;
  if (d.osize === 8) return d.mod === 3 ? movRI64 : movMI64;
  if (d.osize === 1 && d.mod !== 3) return movMI8;
  return null;
};

/** MOVZX r32/r64, r/m8 or r/m16 (0F B6 / B7): the register's upper bits are zeroed at both sizes. */
function movzxM8(cpu: Cpu, d: Insn): number {
  const la = cpu.eaFast(d, 1);
  const v = cpu.mem.read8(la);
  if (v < 0) return cpu.memFault(v, la);
  cpu.lo[d.reg] = v;
  cpu.hi[d.reg] = 0;
  return ST_OK;
}

function movzxM16(cpu: Cpu, d: Insn): number {
  const la = cpu.eaFast(d, 2);
  const v = cpu.mem.read16(la);
  if (v < 0) return cpu.memFault(v, la);
  cpu.lo[d.reg] = v;
  cpu.hi[d.reg] = 0;
  return ST_OK;
}

function movzxR8(cpu: Cpu, d: Insn): number {
  cpu.lo[d.reg] = cpu.lo[d.rm] & (d.opcode === 0xb6 ? 0xff : 0xffff);
  cpu.hi[d.reg] = 0;
  return ST_OK;
}

export const pickMovzx: Pick = (d) => {
  if (d.osize !== 4 && d.osize !== 8) return null;
  if (d.mod === 3) return d.opcode === 0xb7 || lowByte(d, d.rm) ? movzxR8 : null;
  return d.opcode === 0xb6 ? movzxM8 : movzxM16;
};

/** MOVSX r32/r64, m8 (0F BE) and MOVSXD r64, r/m32 (63). */
function movsxM8(cpu: Cpu, d: Insn): number {
  const la = cpu.eaFast(d, 1);
  const v = cpu.mem.read8(la);
  if (v < 0) return cpu.memFault(v, la);
  const s = (v << 24) >> 24;
  cpu.lo[d.reg] = s;
  cpu.hi[d.reg] = d.osize === 8 ? s >> 31 : 0;
  return ST_OK;
}

export const pickMovsx: Pick = (d) => (d.mod !== 3 && d.opcode === 0xbe && (d.osize === 4 || d.osize === 8) ? movsxM8 : null);

function movsxdR(cpu: Cpu, d: Insn): number {
  const v = cpu.lo[d.rm];
  cpu.lo[d.reg] = v;
  cpu.hi[d.reg] = v >> 31;
  return ST_OK;
}

function movsxdM(cpu: Cpu, d: Insn): number {
  const la = cpu.eaFast(d, 4);
  const v = cpu.mem.read32(la);
  if (v < 0) return cpu.memFault(v, la);
  cpu.lo[d.reg] = v | 0;
  cpu.hi[d.reg] = (v | 0) >> 31;
  return ST_OK;
}

export const pickMovsxd: Pick = (d) => (d.osize === 8 ? (d.mod === 3 ? movsxdR : movsxdM) : null);

/** LEA r32, m (any address size but 16: the low 32 bits of the sum). */
function lea32(cpu: Cpu, d: Insn): number {
  const lo = cpu.lo;
  let off = d.disp;
  if (d.ripRel !== 0) off += cpu.nextRip | 0;
  if (d.base >= 0) off += lo[d.base];
  if (d.index >= 0) off += lo[d.index] << d.scale;
  lo[d.reg] = off;
  cpu.hi[d.reg] = 0;
  return ST_OK;
}

function lea64(cpu: Cpu, d: Insn): number {
  const off = cpu.offsetOf(d);
  cpu.lo[d.reg] = off;
  cpu.hi[d.reg] = cpu.vh;
  return ST_OK;
}

export const pickLea: Pick = (d) => (d.osize === 4 && d.asize !== 2 ? lea32 : d.osize === 8 && d.asize === 8 ? lea64 : null);

// ---------------------------------------------------------------- shifts by a constant count

/** The count of a C1 (imm8) or D1 (1) shift. */
function countC(d: Insn): number {
  return d.opcode === 0xd1 ? 1 : d.imm & (d.osize === 8 ? 63 : 31);
}

/** SHL/SHR/SAR: all six flags rewritten (AF cleared), SF/ZF/PF lazy (shiftOp in shift.ts). */
function shiftFlags(cpu: Cpu, size: number, r: number, rh: number, cf: number, of: number): void {
  cpu.flags = (cpu.flags & ~ARITH_FLAGS) | cf | (of << 11);
  cpu.lzOp = LZ_RES;
  cpu.lzSize = size;
  cpu.lzRes = r;
  cpu.lzResH = rh;
  cpu.lzMask = 0xc4; // SF | ZF | PF
}

/** ROL/ROR: CF and OF eager, the other flags keep what they were (still lazy if they were). */
function rotFlags(cpu: Cpu, cf: number, of: number): void {
  cpu.flags = (cpu.flags & ~(CF | OF)) | cf | (of << 11);
  cpu.lzMask &= ~(CF | OF);
}

function rol32(cpu: Cpu, d: Insn): number {
  const n = countC(d);
  const v = cpu.lo[d.rm] >>> 0;
  const r = ((v << n) | (v >>> (32 - n))) >>> 0;
  const cf = r & 1;
  rotFlags(cpu, cf, (r >>> 31) ^ cf);
  cpu.lo[d.rm] = r;
  cpu.hi[d.rm] = 0;
  return ST_OK;
}

function ror32(cpu: Cpu, d: Insn): number {
  const n = countC(d);
  const v = cpu.lo[d.rm] >>> 0;
  const r = ((v >>> n) | (v << (32 - n))) >>> 0;
  const cf = r >>> 31;
  rotFlags(cpu, cf, cf ^ ((r >>> 30) & 1));
  cpu.lo[d.rm] = r;
  cpu.hi[d.rm] = 0;
  return ST_OK;
}

function shl32(cpu: Cpu, d: Insn): number {
  const n = countC(d);
  const v = cpu.lo[d.rm] >>> 0;
  const r = (v << n) >>> 0;
  const cf = (v >>> (32 - n)) & 1;
  shiftFlags(cpu, 4, r, 0, cf, (r >>> 31) ^ cf);
  cpu.lo[d.rm] = r;
  cpu.hi[d.rm] = 0;
  return ST_OK;
}

function shr32(cpu: Cpu, d: Insn): number {
  const n = countC(d);
  const v = cpu.lo[d.rm] >>> 0;
  const r = v >>> n;
  shiftFlags(cpu, 4, r, 0, (v >>> (n - 1)) & 1, v >>> 31);
  cpu.lo[d.rm] = r;
  cpu.hi[d.rm] = 0;
  return ST_OK;
}

function sar32(cpu: Cpu, d: Insn): number {
  const n = countC(d);
  const v = cpu.lo[d.rm];
  const r = (v >> n) >>> 0;
  shiftFlags(cpu, 4, r, 0, (v >> (n - 1)) & 1, 0);
  cpu.lo[d.rm] = r;
  cpu.hi[d.rm] = 0;
  return ST_OK;
}

function shl64(cpu: Cpu, d: Insn): number {
  const n = countC(d);
  const lo = cpu.lo[d.rm];
  const hi = cpu.hi[d.rm];
  let rl: number;
  let rh: number;
  let cf: number;
  if (n < 32) {
    rl = lo << n;
    rh = (hi << n) | (lo >>> (32 - n));
    cf = (hi >>> (32 - n)) & 1;
  } else {
    rl = 0;
    rh = lo << (n - 32);
    cf = n === 32 ? hi & 1 : (lo >>> (64 - n)) & 1;
  }
  shiftFlags(cpu, 8, rl >>> 0, rh >>> 0, cf, (rh >>> 31) ^ cf);
  cpu.lo[d.rm] = rl;
  cpu.hi[d.rm] = rh;
  return ST_OK;
}

function shr64(cpu: Cpu, d: Insn): number {
  const n = countC(d);
  const lo = cpu.lo[d.rm];
  const hi = cpu.hi[d.rm];
  let rl: number;
  let rh: number;
  let cf: number;
  if (n < 32) {
    rl = (lo >>> n) | (hi << (32 - n));
    rh = hi >>> n;
    cf = (lo >>> (n - 1)) & 1;
  } else {
    rl = hi >>> (n - 32);
    rh = 0;
    cf = n === 32 ? lo >>> 31 : (hi >>> (n - 33)) & 1;
  }
  shiftFlags(cpu, 8, rl >>> 0, rh >>> 0, cf, hi >>> 31);
  cpu.lo[d.rm] = rl;
  cpu.hi[d.rm] = rh;
  return ST_OK;
}

function sar64(cpu: Cpu, d: Insn): number {
  const n = countC(d);
  const lo = cpu.lo[d.rm];
  const hi = cpu.hi[d.rm];
  let rl: number;
  let rh: number;
  let cf: number;
  if (n < 32) {
    rl = (lo >>> n) | (hi << (32 - n));
    rh = hi >> n;
    cf = (lo >>> (n - 1)) & 1;
  } else {
    rl = hi >> (n - 32);
    rh = hi >> 31;
    cf = n === 32 ? lo >>> 31 : (hi >> (n - 33)) & 1;
  }
  shiftFlags(cpu, 8, rl >>> 0, rh >>> 0, cf, 0);
  cpu.lo[d.rm] = rl;
  cpu.hi[d.rm] = rh;
  return ST_OK;
}

const SHIFT32: (Exec | null)[] = [rol32, ror32, null, null, shl32, shr32, shl32, sar32];
const SHIFT64: (Exec | null)[] = [null, null, null, null, shl64, shr64, shl64, sar64];

/** Picker of C1 /k (imm8) and D1 /k (by 1) on a 32/64-bit register with a non-zero count. */
export const pickShift: Pick = (d) => {
  if (d.mod !== 3 || (d.opcode !== 0xc1 && d.opcode !== 0xd1) || countC(d) === 0) return null;
  if (d.osize === 4) return SHIFT32[d.reg & 7];
  if (d.osize === 8) return SHIFT64[d.reg & 7];
  return null;
};

// ---------------------------------------------------------------- 64-bit stack and branches
// In 64-bit code the stack address size is 64 and segments are flat (FS/GS aside), so these
// compute [rSP - 8] / [rSP] directly.

/** PUSH of a 64-bit value in 64-bit code: write, then commit rSP. */
function push64(cpu: Cpu, vlo: number, vhi: number): number {
  let nl = (cpu.lo[RSP] >>> 0) - 8;
  let nh = cpu.hi[RSP];
  if (nl < 0) {
    nl += TWO32;
    nh = (nh - 1) | 0;
  }
  const la = (nh << 16) >> 16 === nh ? nh * TWO32 + nl : NaN;
  const st = cpu.mem.write64(la, vlo, vhi);
  if (st !== 0) return cpu.memFault(st, la);
  cpu.lo[RSP] = nl | 0;
  cpu.hi[RSP] = nh;
  return ST_OK;
}

/** Reads [rSP] (8 bytes) into cpu.tmp and pops it; ST_OK or the fault (rSP unchanged). */
function pop64(cpu: Cpu): number {
  const sl = cpu.lo[RSP] >>> 0;
  const sh = cpu.hi[RSP];
  const la = (sh << 16) >> 16 === sh ? sh * TWO32 + sl : NaN;
  const code = cpu.mem.read64(la, cpu.tmp, 0);
  if (code < 0) return cpu.memFault(code, la);
  const nl = sl + 8;
  cpu.lo[RSP] = nl | 0;
  cpu.hi[RSP] = nl >= TWO32 ? (sh + 1) | 0 : sh;
  return ST_OK;
}

function pushR64(cpu: Cpu, d: Insn): number {
  return push64(cpu, cpu.lo[d.rm], cpu.hi[d.rm]);
}

function popR64(cpu: Cpu, d: Insn): number {
  const st = pop64(cpu);
  if (st !== ST_OK) return st;
  cpu.lo[d.rm] = cpu.tmp[0];
  cpu.hi[d.rm] = cpu.tmp[1];
  return ST_OK;
}

export const pickPushR: Pick = (d) => (d.csize === 8 && d.osize === 8 ? pushR64 : null);
export const pickPopR: Pick = (d) => (d.csize === 8 && d.osize === 8 ? popR64 : null);

/** A 64-bit branch target: nextRip, or #GP(0) when not canonical. */
function go64(cpu: Cpu, t: number): number {
  if (!(t >= -MAX_CANON && t < MAX_CANON)) return cpu.fault(GP, 0);
  cpu.nextRip = t;
  return ST_OK;
}

function callRel64(cpu: Cpu, d: Insn): number {
  const ret = cpu.nextRip;
  const st = go64(cpu, ret + d.imm);
  if (st !== ST_OK) return st;
  return push64(cpu, ret | 0, hiOf(ret));
}

function ret64(cpu: Cpu, d: Insn): number {
  const sl = cpu.lo[RSP] >>> 0;
  const sh = cpu.hi[RSP];
  const la = (sh << 16) >> 16 === sh ? sh * TWO32 + sl : NaN;
  const t = cpu.tmp;
  const code = cpu.mem.read64(la, t, 0);
  if (code < 0) return cpu.memFault(code, la);
  const st = go64(cpu, t[1] * TWO32 + (t[0] >>> 0));
  if (st !== ST_OK) return st;
  const nl = sl + 8 + (d.opcode === 0xc2 ? d.imm : 0);
  cpu.lo[RSP] = nl | 0;
  cpu.hi[RSP] = (sh + Math.floor(nl / TWO32)) | 0;
  return ST_OK;
}

function jmp64(cpu: Cpu, d: Insn): number {
  return go64(cpu, cpu.nextRip + d.imm);
}

function jcc64(cpu: Cpu, d: Insn): number {
  return cpu.cond(d.opcode & 15) ? go64(cpu, cpu.nextRip + d.imm) : ST_OK;
}

function jz64(cpu: Cpu, d: Insn): number {
  return cpu.zf() !== 0 ? go64(cpu, cpu.nextRip + d.imm) : ST_OK;
}

function jnz64(cpu: Cpu, d: Insn): number {
  return cpu.zf() === 0 ? go64(cpu, cpu.nextRip + d.imm) : ST_OK;
}

export const pickCallRel: Pick = (d) => (d.csize === 8 ? callRel64 : null);
export const pickRet: Pick = (d) => (d.csize === 8 && d.osize === 8 ? ret64 : null);
export const pickJmpRel: Pick = (d) => (d.csize === 8 ? jmp64 : null);
function jb64(cpu: Cpu, d: Insn): number {
  return cpu.cf() !== 0 ? go64(cpu, cpu.nextRip + d.imm) : ST_OK;
}

function jae64(cpu: Cpu, d: Insn): number {
  return cpu.cf() === 0 ? go64(cpu, cpu.nextRip + d.imm) : ST_OK;
}

function jbe64(cpu: Cpu, d: Insn): number {
  return (cpu.cf() | cpu.zf()) !== 0 ? go64(cpu, cpu.nextRip + d.imm) : ST_OK;
}

function ja64(cpu: Cpu, d: Insn): number {
  return (cpu.cf() | cpu.zf()) === 0 ? go64(cpu, cpu.nextRip + d.imm) : ST_OK;
}

function js64(cpu: Cpu, d: Insn): number {
  return cpu.sf() !== 0 ? go64(cpu, cpu.nextRip + d.imm) : ST_OK;
}

function jns64(cpu: Cpu, d: Insn): number {
  return cpu.sf() === 0 ? go64(cpu, cpu.nextRip + d.imm) : ST_OK;
}

function jl64(cpu: Cpu, d: Insn): number {
  return (cpu.sf() ^ cpu.of()) !== 0 ? go64(cpu, cpu.nextRip + d.imm) : ST_OK;
}

function jge64(cpu: Cpu, d: Insn): number {
  return (cpu.sf() ^ cpu.of()) === 0 ? go64(cpu, cpu.nextRip + d.imm) : ST_OK;
}

function jle64(cpu: Cpu, d: Insn): number {
  return (cpu.zf() | (cpu.sf() ^ cpu.of())) !== 0 ? go64(cpu, cpu.nextRip + d.imm) : ST_OK;
}

function jg64(cpu: Cpu, d: Insn): number {
  return (cpu.zf() | (cpu.sf() ^ cpu.of())) === 0 ? go64(cpu, cpu.nextRip + d.imm) : ST_OK;
}

/** Jcc in 64-bit code, one handler per condition (cond()'s switch resolved at decode time). */
const JCC64: Exec[] = [jcc64, jcc64, jb64, jae64, jz64, jnz64, jbe64, ja64, js64, jns64, jcc64, jcc64, jl64, jge64, jle64, jg64];

export const pickJcc: Pick = (d) => (d.csize === 8 ? JCC64[d.opcode & 15] : null);

// ---------------------------------------------------------------- more ALU forms

/** op r8, imm8 (80 /n, mod = 3, low-byte register) and op AL, imm8 (04..3C, A8 TEST). */
function aluRI8(cpu: Cpu, d: Insn): number {
  const o = d.opcode;
  const kind = o === 0xa8 ? 4 : o === 0x80 ? d.reg & 7 : (o >> 3) & 7;
  const r0 = o === 0x80 ? d.rm : RAX;
  const lo = cpu.lo;
  const a = lo[r0] & 0xff;
  const b = d.imm & 0xff;
  const c = carryIn(cpu, kind);
  const r = res32(kind, a, b, c) & 0xff;
  lazy32(cpu, kind, r, a, b, c);
  cpu.lzSize = 1;
  if (kind !== 7 && o !== 0xa8) lo[r0] = (lo[r0] & ~0xff) | r;
  return ST_OK;
}

export const pickAluI8: Pick = (d) => {
  if (d.lock !== 0 || d.osize !== 1) return null;
  if (d.opcode === 0x80) return d.mod === 3 && lowByte(d, d.rm) ? aluRI8 : null;
  return d.opcode === 0xa8 || (d.opcode < 0x40 && (d.opcode & 7) === 4) ? aluRI8 : null;
};

/** TEST r/m, imm (F6 /0-1, F7 /0-1): 32/64-bit register or memory, 8-bit memory. */
function testRI32(cpu: Cpu, d: Insn): number {
  const a = cpu.lo[d.rm] >>> 0;
  const b = d.imm >>> 0;
  lazy32(cpu, 4, (a & b) >>> 0, a, b, 0);
  return ST_OK;
}

function testRI64(cpu: Cpu, d: Insn): number {
  const a = cpu.lo[d.rm] >>> 0;
  const aH = cpu.hi[d.rm] >>> 0;
  const b = d.imm >>> 0;
  const bH = d.immHi >>> 0;
  lazy64(cpu, 4, (a & b) >>> 0, (aH & bH) >>> 0, a, aH, b, bH, 0);
  return ST_OK;
}

function testMI32(cpu: Cpu, d: Insn): number {
  const la = cpu.eaFast(d);
  const a = cpu.mem.read32(la);
  if (a < 0) return cpu.memFault(a, la);
  const b = d.imm >>> 0;
  lazy32(cpu, 4, (a & b) >>> 0, a, b, 0);
  return ST_OK;
}

function testMI8(cpu: Cpu, d: Insn): number {
  const la = cpu.eaFast(d);
  const a = cpu.mem.read8(la);
  if (a < 0) return cpu.memFault(a, la);
  const b = d.imm & 0xff;
  lazy32(cpu, 4, a & b, a, b, 0);
  cpu.lzSize = 1;
  return ST_OK;
}

export const pickTestEI: Pick = (d) => {
  if (d.osize === 4) return d.mod === 3 ? testRI32 : testMI32;
  if (d.osize === 8) return d.mod === 3 ? testRI64 : null;
  if (d.osize === 1 && d.mod !== 3) return testMI8;
  return null;
};

/** INC/DEC (FF /0-1): like ADD/SUB 1 with CF kept (incdec in alu.ts). */
function incFlags(cpu: Cpu, cf: number): void {
  cpu.flags = (cpu.flags & ~CF) | cf;
  cpu.lzMask = ARITH_FLAGS & ~CF;
}

function incR32(cpu: Cpu, d: Insn): number {
  const kind = (d.reg & 7) === 0 ? 0 : 5;
  const cf = cpu.cf();
  const a = cpu.lo[d.rm] >>> 0;
  const r = res32(kind, a, 1, 0);
  lazy32(cpu, kind, r, a, 1, 0);
  incFlags(cpu, cf);
  cpu.lo[d.rm] = r;
  cpu.hi[d.rm] = 0;
  return ST_OK;
}

function incR64(cpu: Cpu, d: Insn): number {
  const kind = (d.reg & 7) === 0 ? 0 : 5;
  const cf = cpu.cf();
  const a = cpu.lo[d.rm] >>> 0;
  const aH = cpu.hi[d.rm] >>> 0;
  const r = res64(kind, a, aH, 1, 0, 0);
  const rh = RH[0];
  lazy64(cpu, kind, r, rh, a, aH, 1, 0, 0);
  incFlags(cpu, cf);
  cpu.lo[d.rm] = r;
  cpu.hi[d.rm] = rh;
  return ST_OK;
}

function incM32(cpu: Cpu, d: Insn): number {
  const kind = (d.reg & 7) === 0 ? 0 : 5;
  const la = cpu.eaFast(d);
  const a = cpu.mem.read32(la);
  if (a < 0) return cpu.memFault(a, la);
  const r = res32(kind, a, 1, 0);
  const st = cpu.mem.write32(la, r);
  if (st !== 0) return cpu.memFault(st, la);
  const cf = cpu.cf();
  lazy32(cpu, kind, r, a, 1, 0);
  incFlags(cpu, cf);
  return ST_OK;
}

export const pickIncDec: Pick = (d) => {
  if (d.lock !== 0 || d.opcode !== 0xff) return null;
  if (d.osize === 4) return d.mod === 3 ? incR32 : incM32;
  if (d.osize === 8 && d.mod === 3) return incR64;
  return null;
};

/** CMOVcc r32/r64, r/m (0F 40-4F). */
function cmovR(cpu: Cpu, d: Insn): number {
  if (cpu.cond(d.opcode & 15)) {
    cpu.lo[d.reg] = cpu.lo[d.rm];
    cpu.hi[d.reg] = d.osize === 8 ? cpu.hi[d.rm] : 0;
  } else if (d.osize === 4) cpu.hi[d.reg] = 0;
  return ST_OK;
}

export const pickCmov: Pick = (d) => (d.mod === 3 && (d.osize === 4 || d.osize === 8) ? cmovR : null);

/** Picker of 80 /n: register form (aluRI8) or memory form (aluMI8). */
export const pickAluI8MI: Pick = (d) => (d.mod === 3 ? pickAluI8(d) : pickAluEI(d));
