/** Stack: PUSH/POP of every kind, PUSHA/POPA, PUSHF/POPF, ENTER/LEAVE. */
import {
  AC,
  ARITH_FLAGS,
  CS,
  DF,
  DS,
  ES,
  FS,
  GP,
  GS,
  ID,
  IF,
  IOPL,
  NT,
  RBP,
  RF,
  RSP,
  SS,
  ST_BREAK,
  ST_FAULT,
  ST_OK,
  TF,
  VIF,
  VIP,
  VM,
} from '../constants';
import type { Cpu } from '../cpu';
import type { Insn } from '../insn';
import { F_DEF64, F_INV64, IMM_B, IMM_WB, IMM_Z, op, type OpDef } from '../table';
import { pickPopR, pickPushR } from './fast';

function pushR(cpu: Cpu, d: Insn): number {
  const v = cpu.getReg(d.rm, d.osize);
  return cpu.push(d.osize, v, cpu.vh);
}

function popR(cpu: Cpu, d: Insn): number {
  const v = cpu.pop(d.osize);
  if (v < 0) return ST_FAULT;
  cpu.setReg(d.rm, d.osize, v, cpu.vh);
  return ST_OK;
}

function pushI(cpu: Cpu, d: Insn): number {
  return cpu.push(d.osize, d.imm, d.immHi);
}

function pushE(cpu: Cpu, d: Insn): number {
  const v = cpu.readE(d);
  if (v < 0) return ST_FAULT;
  return cpu.push(d.osize, v, cpu.vh);
}

// 8F /0: POP Ev. rSP is incremented before the destination address is computed (SDM).
function popE(cpu: Cpu, d: Insn): number {
  const saveLo = cpu.lo[RSP];
  const saveHi = cpu.hi[RSP];
  const v = cpu.pop(d.osize);
  if (v < 0) return ST_FAULT;
  const st = cpu.writeE(d, v, cpu.vh);
  if (st !== ST_OK) {
    cpu.lo[RSP] = saveLo;
    cpu.hi[RSP] = saveHi;
  }
  return st;
}

// Segment pushes/pops (06 07 0E 16 17 1E 1F, 0F A0 A1 A8 A9).
const SEG_OF: Record<number, number> = { 0x06: ES, 0x07: ES, 0x0e: CS, 0x16: SS, 0x17: SS, 0x1e: DS, 0x1f: DS, 0xa0: FS, 0xa1: FS, 0xa8: GS, 0xa9: GS };
const SEG_TABLE = new Int8Array(256).fill(-1);
for (const [k, v] of Object.entries(SEG_OF)) SEG_TABLE[Number(k)] = v;

function pushS(cpu: Cpu, d: Insn): number {
  return cpu.push(d.osize, cpu.segSel[SEG_TABLE[d.opcode]], 0);
}

/** POP Sreg: real-mode load, or a reload of the current (or, in 64-bit mode, null) selector. */
function popS(cpu: Cpu, d: Insn): number {
  const s = SEG_TABLE[d.opcode];
  const v = cpu.read(cpu.stackAddr(0), d.osize);
  if (v < 0) return ST_FAULT;
  const sel = v & 0xffff;
  if (cpu.sys != null) {
    const st = cpu.sys.loadSeg(cpu, d, s, sel);
    if (st !== ST_FAULT) cpu.addSp(d.osize);
    return st;
  }
  if (d.csize === 2 && cpu.cpl === 0) {
    cpu.segSel[s] = sel;
    cpu.segBase[s] = sel * 16;
  } else if (sel === cpu.segSel[s] || (d.csize === 8 && (sel & 0xfffc) === 0 && s !== SS)) cpu.segSel[s] = sel;
  else return cpu.fault(GP, sel & 0xfffc);
  cpu.addSp(d.osize);
  return ST_OK;
}

// 60 / 61: PUSHA(D) / POPA(D)
function pusha(cpu: Cpu, d: Insn): number {
  const size = d.osize;
  const sp = cpu.lo[RSP];
  for (let r = 0; r < 8; r++) {
    const v = r === RSP ? sp : cpu.lo[r];
    const st = cpu.write(cpu.stackAddr(-(r + 1) * size), size, v, 0);
    if (st !== ST_OK) return st;
  }
  cpu.addSp(-8 * size);
  return ST_OK;
}

const POPA_TMP = new Int32Array(8);
function popa(cpu: Cpu, d: Insn): number {
  const size = d.osize;
  for (let r = 7; r >= 0; r--) {
    const v = cpu.read(cpu.stackAddr((7 - r) * size), size);
    if (v < 0) return ST_FAULT;
    POPA_TMP[r] = v;
  }
  for (let r = 0; r < 8; r++) if (r !== RSP) cpu.setReg(r, size, POPA_TMP[r], 0);
  cpu.addSp(8 * size);
  return ST_OK;
}

// 9C PUSHF: VM and RF read as 0 in the image.
function pushf(cpu: Cpu, d: Insn): number {
  // Virtual-8086 mode without VME: IOPL-sensitive.
  if ((cpu.flags & VM) !== 0 && (cpu.flags & IOPL) !== IOPL) return cpu.fault(GP, 0);
  const f = cpu.getFlags() & ~(VM | RF);
  return cpu.push(d.osize, d.osize === 2 ? f & 0xffff : f, 0);
}

/** EFLAGS bits POPF may change at the current privilege level (protected/long mode). */
export function popfMask(cpu: Cpu): number {
  let m = ARITH_FLAGS | TF | DF | NT | AC | ID;
  const iopl = (cpu.flags & IOPL) >> 12;
  if (cpu.cpl === 0) m |= IOPL | IF;
  else if (cpu.cpl <= iopl) m |= IF;
  return m;
}

function popf(cpu: Cpu, d: Insn): number {
  if ((cpu.flags & VM) !== 0 && (cpu.flags & IOPL) !== IOPL) return cpu.fault(GP, 0);
  const v = cpu.pop(d.osize);
  if (v < 0) return ST_FAULT;
  let m = popfMask(cpu);
  if (d.osize === 2) m &= 0xffff;
  const cur = cpu.getFlags();
  cpu.setFlags(((cur & ~m) | (v & m)) & ~(RF | VIP | VIF) | (cur & (VIP | VIF | VM)));
  // System mode: a change of IF or TF may unblock an interrupt or start single-stepping.
  return cpu.sys != null && ((cur ^ cpu.flags) & (IF | TF)) !== 0 ? ST_BREAK : ST_OK;
}

// C8: ENTER Iw, Ib
function enter(cpu: Cpu, d: Insn): number {
  const size = d.osize;
  const level = d.imm2 & 31;
  const saveLo = cpu.lo[RSP];
  const saveHi = cpu.hi[RSP];
  const bpLo = cpu.lo[RBP];
  const bpHi = cpu.hi[RBP];
  let st = cpu.push(size, bpLo, bpHi);
  if (st !== ST_OK) return st;
  const frameLo = cpu.lo[RSP];
  const frameHi = cpu.hi[RSP];
  if (level > 0) {
    // Copy level-1 frame pointers from the old frame, then push the new frame pointer.
    for (let i = 1; i < level; i++) {
      const off = -i * size;
      let la: number;
      if (cpu.ssize === 8) la = cpu.regNumber(RBP) + off;
      else if (cpu.ssize === 4) la = (cpu.segBase[SS] + ((bpLo + off) >>> 0)) >>> 0;
      else la = (cpu.segBase[SS] + ((bpLo + off) & 0xffff)) >>> 0;
      const v = cpu.read(la, size);
      if (v >= 0) st = cpu.push(size, v, cpu.vh);
      if (v < 0 || st !== ST_OK) {
        cpu.lo[RSP] = saveLo;
        cpu.hi[RSP] = saveHi;
        return ST_FAULT;
      }
    }
    st = cpu.push(size, frameLo, frameHi);
    if (st !== ST_OK) {
      cpu.lo[RSP] = saveLo;
      cpu.hi[RSP] = saveHi;
      return st;
    }
  }
  // The last write must land inside the stack: probe rSP - size (the SDM's check).
  cpu.addSp(-d.imm);
  if (d.imm > 0) {
    const probe = cpu.read(cpu.stackAddr(0), 1);
    if (probe < 0) {
      cpu.lo[RSP] = saveLo;
      cpu.hi[RSP] = saveHi;
      return ST_FAULT;
    }
  }
  if (size === 8 || cpu.ssize === 8) {
    cpu.setReg(RBP, size, frameLo, frameHi);
  } else if (cpu.ssize === 4) cpu.setReg(RBP, size, frameLo, 0);
  else cpu.setReg(RBP, size, frameLo & 0xffff, 0);
  return ST_OK;
}

// C9: LEAVE: rSP = rBP; pop rBP
function leave(cpu: Cpu, d: Insn): number {
  const saveLo = cpu.lo[RSP];
  const saveHi = cpu.hi[RSP];
  if (cpu.ssize === 8) {
    cpu.lo[RSP] = cpu.lo[RBP];
    cpu.hi[RSP] = cpu.hi[RBP];
  } else if (cpu.ssize === 4) cpu.lo[RSP] = cpu.lo[RBP];
  else cpu.lo[RSP] = (cpu.lo[RSP] & ~0xffff) | (cpu.lo[RBP] & 0xffff);
  const v = cpu.pop(d.osize);
  if (v < 0) {
    cpu.lo[RSP] = saveLo;
    cpu.hi[RSP] = saveHi;
    return ST_FAULT;
  }
  cpu.setReg(RBP, d.osize, v, cpu.vh);
  return ST_OK;
}

export const STACK_OPS: readonly OpDef[] = [
  op('push', 0, 0x50, 'Zv', pushR, { count: 8, flags: F_DEF64, fast: pickPushR }),
  op('pop', 0, 0x58, 'Zv', popR, { count: 8, flags: F_DEF64, fast: pickPopR }),
  op('push', 0, 0x68, 'Iz', pushI, { imm: IMM_Z, flags: F_DEF64 }),
  op('push', 0, 0x6a, 'Ib', pushI, { imm: IMM_B, flags: F_DEF64 }),
  op('push', 0, 0xff, 'Ev', pushE, { ext: 6, flags: F_DEF64 }),
  op('pop', 0, 0x8f, 'Ev', popE, { ext: 0, flags: F_DEF64 }),
  op('push', 0, 0x06, 'ES', pushS, { flags: F_INV64 }),
  op('pop', 0, 0x07, 'ES', popS, { flags: F_INV64 }),
  op('push', 0, 0x0e, 'CS', pushS, { flags: F_INV64 }),
  op('push', 0, 0x16, 'SS', pushS, { flags: F_INV64 }),
  op('pop', 0, 0x17, 'SS', popS, { flags: F_INV64 }),
  op('push', 0, 0x1e, 'DS', pushS, { flags: F_INV64 }),
  op('pop', 0, 0x1f, 'DS', popS, { flags: F_INV64 }),
  op('push', 1, 0xa0, 'FS', pushS, { flags: F_DEF64 }),
  op('pop', 1, 0xa1, 'FS', popS, { flags: F_DEF64 }),
  op('push', 1, 0xa8, 'GS', pushS, { flags: F_DEF64 }),
  op('pop', 1, 0xa9, 'GS', popS, { flags: F_DEF64 }),
  op('pusha', 0, 0x60, '', pusha, { flags: F_INV64 }),
  op('popa', 0, 0x61, '', popa, { flags: F_INV64 }),
  op('pushf', 0, 0x9c, '', pushf, { flags: F_DEF64 }),
  op('popf', 0, 0x9d, '', popf, { flags: F_DEF64, def: ARITH_FLAGS | DF }),
  op('enter', 0, 0xc8, 'Iw,Ib', enter, { imm: IMM_WB, flags: F_DEF64 }),
  op('leave', 0, 0xc9, '', leave, { flags: F_DEF64 }),
];
