/** Near control transfer: Jcc, JMP, CALL, RET, LOOP/LOOPE/LOOPNE, JCXZ/JECXZ/JRCXZ. */
import { RCX, ST_FAULT, ST_OK } from '../constants';
import { hiOf } from '../arith';
import type { Cpu } from '../cpu';
import type { Insn } from '../insn';
import { F_FORCE64, IMM_B, IMM_W, IMM_Z, op, type OpDef } from '../table';
import { pickCallRel, pickJcc, pickJmpRel, pickRet } from './fast';

/** Relative target: nextRip + sign-extended displacement (the immediate). */
function jrel(cpu: Cpu, d: Insn): number {
  return cpu.branch(cpu.nextRip + d.imm, d.osize);
}

function jcc(cpu: Cpu, d: Insn): number {
  return cpu.cond(d.opcode & 15) ? jrel(cpu, d) : ST_OK;
}

/** The value just read (lo unsigned, hi in cpu.vh) as a branch target for operand size. */
function targetOf(cpu: Cpu, v: number, size: number): number {
  return size === 8 ? cpu.vh * 4294967296 + v : v;
}

function jmpE(cpu: Cpu, d: Insn): number {
  const v = cpu.readE(d);
  if (v < 0) return ST_FAULT;
  return cpu.branch(targetOf(cpu, v, d.osize), d.osize);
}

function pushRet(cpu: Cpu, d: Insn, ret: number): number {
  return cpu.push(d.osize, ret | 0, hiOf(ret));
}

function callRel(cpu: Cpu, d: Insn): number {
  const ret = cpu.nextRip;
  const st = jrel(cpu, d);
  if (st !== ST_OK) return st;
  return pushRet(cpu, d, ret);
}

function callE(cpu: Cpu, d: Insn): number {
  const v = cpu.readE(d);
  if (v < 0) return ST_FAULT;
  const ret = cpu.nextRip;
  const st = cpu.branch(targetOf(cpu, v, d.osize), d.osize);
  if (st !== ST_OK) return st;
  return pushRet(cpu, d, ret);
}

function ret(cpu: Cpu, d: Insn): number {
  const v = cpu.read(cpu.stackAddr(0), d.osize);
  if (v < 0) return ST_FAULT;
  const st = cpu.branch(targetOf(cpu, v, d.osize), d.osize);
  if (st !== ST_OK) return st;
  cpu.addSp(d.osize + (d.opcode === 0xc2 ? d.imm : 0));
  return ST_OK;
}

/** rCX at address size: decremented value (LOOP) or test (JCXZ). */
function decCount(cpu: Cpu, asize: number): boolean {
  if (asize === 8) {
    const lo = cpu.lo[RCX];
    if (lo === 0) cpu.hi[RCX] = (cpu.hi[RCX] - 1) | 0;
    cpu.lo[RCX] = (lo - 1) | 0;
    return cpu.lo[RCX] !== 0 || cpu.hi[RCX] !== 0;
  }
  if (asize === 4) {
    cpu.lo[RCX] = (cpu.lo[RCX] - 1) | 0;
    cpu.hi[RCX] = 0;
    return cpu.lo[RCX] !== 0;
  }
  cpu.lo[RCX] = (cpu.lo[RCX] & ~0xffff) | ((cpu.lo[RCX] - 1) & 0xffff);
  return (cpu.lo[RCX] & 0xffff) !== 0;
}

function loop(cpu: Cpu, d: Insn): number {
  // E0 LOOPNE, E1 LOOPE, E2 LOOP; the branch is checked before rCX changes (restartable).
  const save = cpu.lo[RCX];
  const saveH = cpu.hi[RCX];
  const nz = decCount(cpu, d.asize);
  let take = nz;
  if (d.opcode === 0xe0) take = nz && cpu.zf() === 0;
  else if (d.opcode === 0xe1) take = nz && cpu.zf() === 1;
  if (!take) return ST_OK;
  const st = jrel(cpu, d);
  if (st !== ST_OK) {
    cpu.lo[RCX] = save;
    cpu.hi[RCX] = saveH;
  }
  return st;
}

function jcxz(cpu: Cpu, d: Insn): number {
  const zero = d.asize === 8 ? cpu.lo[RCX] === 0 && cpu.hi[RCX] === 0 : d.asize === 4 ? cpu.lo[RCX] === 0 : (cpu.lo[RCX] & 0xffff) === 0;
  return zero ? jrel(cpu, d) : ST_OK;
}

const CC = ['o', 'no', 'b', 'ae', 'e', 'ne', 'be', 'a', 's', 'ns', 'p', 'np', 'l', 'ge', 'le', 'g'];

export const CONTROL_OPS: readonly OpDef[] = [
  ...CC.map((c, i) => op(`j${c}`, 0, 0x70 + i, 'Jb', jcc, { imm: IMM_B, flags: F_FORCE64, fast: pickJcc })),
  ...CC.map((c, i) => op(`j${c}`, 1, 0x80 + i, 'Jz', jcc, { imm: IMM_Z, flags: F_FORCE64, fast: pickJcc })),
  op('jmp', 0, 0xeb, 'Jb', jrel, { imm: IMM_B, flags: F_FORCE64, fast: pickJmpRel }),
  op('jmp', 0, 0xe9, 'Jz', jrel, { imm: IMM_Z, flags: F_FORCE64, fast: pickJmpRel }),
  op('jmp', 0, 0xff, 'Ev', jmpE, { ext: 4, flags: F_FORCE64 }),
  op('call', 0, 0xe8, 'Jz', callRel, { imm: IMM_Z, flags: F_FORCE64, fast: pickCallRel }),
  op('call', 0, 0xff, 'Ev', callE, { ext: 2, flags: F_FORCE64 }),
  op('ret', 0, 0xc3, '', ret, { flags: F_FORCE64, fast: pickRet }),
  op('ret', 0, 0xc2, 'Iw', ret, { imm: IMM_W, flags: F_FORCE64, fast: pickRet }),
  op('loopne', 0, 0xe0, 'Jb', loop, { imm: IMM_B, flags: F_FORCE64 }),
  op('loope', 0, 0xe1, 'Jb', loop, { imm: IMM_B, flags: F_FORCE64 }),
  op('loop', 0, 0xe2, 'Jb', loop, { imm: IMM_B, flags: F_FORCE64 }),
  op('jrcxz', 0, 0xe3, 'Jb', jcxz, { imm: IMM_B, flags: F_FORCE64 }),
];
