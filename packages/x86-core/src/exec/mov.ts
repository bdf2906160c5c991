/**
 * Data movement: MOV (all integer forms), MOVZX/MOVSX/MOVSXD, LEA, XCHG, CMOVcc, SETcc,
 * BSWAP, MOVBE, CBW/CWDE/CDQE, CWD/CDQ/CQO, XLAT, MOV from/to segment registers.
 */
import { FS, GP, GS, RAX, RBX, RDX, ST_FAULT, ST_OK, SS, UD } from '../constants';
import { canon } from '../arith';
import type { Cpu } from '../cpu';
import type { Insn } from '../insn';
import { F_LOCK, F_MEM, F_NOREPFB, F_ONLY64, F_SIZE16, IMM_B, IMM_MOFFS, IMM_V, IMM_Z, op, type OpDef } from '../table';
import { pickCmov, pickLea, pickMovEG, pickMovEI, pickMovsx, pickMovsxd, pickMovzx } from './fast';

function movEG(cpu: Cpu, d: Insn): number {
  const v = cpu.readG(d);
  return cpu.writeE(d, v, cpu.vh);
}

function movGE(cpu: Cpu, d: Insn): number {
  const v = cpu.readE(d);
  if (v < 0) return ST_FAULT;
  cpu.writeG(d, v, cpu.vh);
  return ST_OK;
}

function movEI(cpu: Cpu, d: Insn): number {
  return cpu.writeE(d, d.imm, d.immHi);
}

// B0+r (byte) / B8+r (imm16/32/64)
function movRI(cpu: Cpu, d: Insn): number {
  if (d.osize === 1) cpu.setReg8(d, d.rm, d.imm);
  else cpu.setReg(d.rm, d.osize, d.imm, d.immHi);
  return ST_OK;
}

/** Linear address of a moffs operand. */
function moffsAddr(cpu: Cpu, d: Insn): number {
  if (d.asize === 8) {
    const la = canon(d.disp, d.dispHi);
    if (d.seg === FS || d.seg === GS) return la + cpu.segBase[d.seg];
    return la;
  }
  const off = d.asize === 4 ? d.disp >>> 0 : d.disp & 0xffff;
  if (d.csize === 8) return off + (d.seg === FS || d.seg === GS ? cpu.segBase[d.seg] : 0);
  const la = (cpu.segBase[d.seg] + off) >>> 0;
  return cpu.segChk !== 0 && ((cpu.segChk >> d.seg) & 1) !== 0 ? cpu.segCheck(d.seg, off, d.osize, la) : la;
}

function movAO(cpu: Cpu, d: Insn): number {
  const v = cpu.read(moffsAddr(cpu, d), d.osize);
  if (v < 0) return ST_FAULT;
  if (d.osize === 1) cpu.lo[RAX] = (cpu.lo[RAX] & ~0xff) | v;
  else cpu.setReg(RAX, d.osize, v, cpu.vh);
  return ST_OK;
}

function movOA(cpu: Cpu, d: Insn): number {
  const v = d.osize === 1 ? cpu.lo[RAX] & 0xff : cpu.getReg(RAX, d.osize);
  return cpu.write(moffsAddr(cpu, d), d.osize, v, cpu.vh);
}

function movzxB(cpu: Cpu, d: Insn): number {
  const v = cpu.readESized(d, 1);
  if (v < 0) return ST_FAULT;
  cpu.setReg(d.reg, d.osize, v, 0);
  return ST_OK;
}

function movzxW(cpu: Cpu, d: Insn): number {
  const v = cpu.readESized(d, 2);
  if (v < 0) return ST_FAULT;
  cpu.setReg(d.reg, d.osize, v, 0);
  return ST_OK;
}

function movsxB(cpu: Cpu, d: Insn): number {
  const v = cpu.readESized(d, 1);
  if (v < 0) return ST_FAULT;
  const s = (v << 24) >> 24;
  cpu.setReg(d.reg, d.osize, s, s >> 31);
  return ST_OK;
}

function movsxW(cpu: Cpu, d: Insn): number {
  const v = cpu.readESized(d, 2);
  if (v < 0) return ST_FAULT;
  const s = (v << 16) >> 16;
  cpu.setReg(d.reg, d.osize, s, s >> 31);
  return ST_OK;
}

// 63 /r MOVSXD Gv,Ed (64-bit mode)
function movsxd(cpu: Cpu, d: Insn): number {
  const v = cpu.readESized(d, d.osize === 8 ? 4 : d.osize);
  if (v < 0) return ST_FAULT;
  cpu.setReg(d.reg, d.osize, v | 0, (v | 0) >> 31);
  return ST_OK;
}

function lea(cpu: Cpu, d: Insn): number {
  const off = cpu.offsetOf(d);
  cpu.setReg(d.reg, d.osize, off, cpu.vh);
  return ST_OK;
}

function xchgEG(cpu: Cpu, d: Insn): number {
  const a = cpu.readE(d);
  if (a < 0) return ST_FAULT;
  const aH = cpu.vh;
  const b = cpu.readG(d);
  const st = cpu.writeBackE(d, b, cpu.vh);
  if (st !== ST_OK) return st;
  cpu.writeG(d, a, aH);
  return ST_OK;
}

// 90+r: XCHG rAX, r (90 without REX.B is NOP: no zero-extension of EAX in 64-bit mode)
function xchgAR(cpu: Cpu, d: Insn): number {
  if (d.rm === 0) return ST_OK;
  const a = cpu.getReg(RAX, d.osize);
  const aH = cpu.vh;
  const b = cpu.getReg(d.rm, d.osize);
  cpu.setReg(RAX, d.osize, b, cpu.vh);
  cpu.setReg(d.rm, d.osize, a, aH);
  return ST_OK;
}

function cmov(cpu: Cpu, d: Insn): number {
  const v = cpu.readE(d);
  if (v < 0) return ST_FAULT;
  if (cpu.cond(d.opcode & 15)) cpu.setReg(d.reg, d.osize, v, cpu.vh);
  else if (d.osize === 4) cpu.hi[d.reg] = 0; // a 32-bit destination is zero-extended regardless
  return ST_OK;
}

function setcc(cpu: Cpu, d: Insn): number {
  return cpu.writeE(d, cpu.cond(d.opcode & 15) ? 1 : 0, 0);
}

function bswap32(v: number): number {
  return ((v >>> 24) | ((v >> 8) & 0xff00) | ((v & 0xff00) << 8) | (v << 24)) | 0;
}

// 0F C8+r
function bswap(cpu: Cpu, d: Insn): number {
  const r = d.rm;
  if (d.osize === 8) {
    const lo = cpu.lo[r];
    cpu.lo[r] = bswap32(cpu.hi[r]);
    cpu.hi[r] = bswap32(lo);
  } else if (d.osize === 4) {
    cpu.lo[r] = bswap32(cpu.lo[r]);
    cpu.hi[r] = 0;
  } else cpu.lo[r] &= ~0xffff; // BSWAP r16 is undefined; hardware clears the low word
  return ST_OK;
}

// 0F 38 F0 / F1: MOVBE
function movbeLoad(cpu: Cpu, d: Insn): number {
  const v = cpu.readE(d);
  if (v < 0) return ST_FAULT;
  if (d.osize === 8) cpu.setReg(d.reg, 8, bswap32(cpu.vh), bswap32(v));
  else if (d.osize === 4) cpu.setReg(d.reg, 4, bswap32(v), 0);
  else cpu.setReg(d.reg, 2, ((v & 0xff) << 8) | (v >>> 8), 0);
  return ST_OK;
}

function movbeStore(cpu: Cpu, d: Insn): number {
  const v = cpu.readG(d);
  if (d.osize === 8) return cpu.writeE(d, bswap32(cpu.vh), bswap32(v));
  if (d.osize === 4) return cpu.writeE(d, bswap32(v), 0);
  return cpu.writeE(d, ((v & 0xff) << 8) | (v >>> 8), 0);
}

// 98: CBW / CWDE / CDQE
function cbw(cpu: Cpu, d: Insn): number {
  const a = cpu.lo[RAX];
  if (d.osize === 2) cpu.setReg(RAX, 2, (a << 24) >> 24, 0);
  else if (d.osize === 4) cpu.setReg(RAX, 4, (a << 16) >> 16, 0);
  else cpu.hi[RAX] = a >> 31;
  return ST_OK;
}

// 99: CWD / CDQ / CQO
function cwd(cpu: Cpu, d: Insn): number {
  if (d.osize === 2) cpu.setReg(RDX, 2, (cpu.lo[RAX] << 16) >> 31, 0);
  else if (d.osize === 4) cpu.setReg(RDX, 4, cpu.lo[RAX] >> 31, 0);
  else cpu.setReg(RDX, 8, cpu.hi[RAX] >> 31, cpu.hi[RAX] >> 31);
  return ST_OK;
}

// D7: XLAT: AL = [seg: rBX + AL]
function xlat(cpu: Cpu, d: Insn): number {
  const al = cpu.lo[RAX] & 0xff;
  let la: number;
  if (d.asize === 8) {
    const s = (cpu.lo[RBX] >>> 0) + al;
    la = canon(s | 0, (cpu.hi[RBX] + (s > 0xffffffff ? 1 : 0)) | 0);
    if (d.seg === FS || d.seg === GS) la += cpu.segBase[d.seg];
  } else {
    const off = d.asize === 4 ? (cpu.lo[RBX] + al) >>> 0 : (cpu.lo[RBX] + al) & 0xffff;
    la = d.csize === 8 ? off + (d.seg === FS || d.seg === GS ? cpu.segBase[d.seg] : 0) : (cpu.segBase[d.seg] + off) >>> 0;
  }
  const v = cpu.read(la, 1);
  if (v < 0) return ST_FAULT;
  cpu.lo[RAX] = (cpu.lo[RAX] & ~0xff) | v;
  return ST_OK;
}

// 8C: MOV Ev, Sreg (a register destination gets the zero-extended selector)
function movESreg(cpu: Cpu, d: Insn): number {
  const s = d.reg & 7;
  if (s > 5) return cpu.fault(UD, 0);
  const v = cpu.segSel[s];
  if (d.mod === 3) {
    cpu.setReg(d.rm, d.osize === 2 ? 2 : d.osize, v, 0);
    return ST_OK;
  }
  return cpu.write(cpu.eaOf(d), 2, v, 0);
}

/**
 * 8E: MOV Sreg, Ew. Real-mode semantics (base = selector * 16) when the code size is 16 and
 * CPL is 0; in 64-bit mode a null selector into DS/ES/SS/FS/GS is accepted (bases unchanged).
 * Descriptor-table loads are the system issue's; until then anything else is #GP(selector).
 */
function movSregE(cpu: Cpu, d: Insn): number {
  const s = d.reg & 7;
  if (s > 5 || s === 1) return cpu.fault(UD, 0);
  const v = cpu.readESized(d, 2);
  if (v < 0) return ST_FAULT;
  if (cpu.sys != null) return cpu.sys.loadSeg(cpu, d, s, v);
  if (d.csize === 2 && cpu.cpl === 0) {
    cpu.segSel[s] = v;
    cpu.segBase[s] = v * 16;
    return ST_OK;
  }
  if (d.csize === 8 && (v & 0xfffc) === 0 && s !== SS) {
    cpu.segSel[s] = v;
    return ST_OK;
  }
  if (v === cpu.segSel[s]) return ST_OK; // reloading the current selector changes nothing here
  return cpu.fault(GP, v & 0xfffc);
}

const CC = ['o', 'no', 'b', 'ae', 'e', 'ne', 'be', 'a', 's', 'ns', 'p', 'np', 'l', 'ge', 'le', 'g'];

export const MOV_OPS: readonly OpDef[] = [
  op('mov', 0, 0x88, 'Eb,Gb', movEG, { fast: pickMovEG }),
  op('mov', 0, 0x89, 'Ev,Gv', movEG, { fast: pickMovEG }),
  op('mov', 0, 0x8a, 'Gb,Eb', movGE, { fast: pickMovEG }),
  op('mov', 0, 0x8b, 'Gv,Ev', movGE, { fast: pickMovEG }),
  op('mov', 0, 0xc6, 'Eb,Ib', movEI, { ext: 0, imm: IMM_B, fast: pickMovEI }),
  op('mov', 0, 0xc7, 'Ev,Iz', movEI, { ext: 0, imm: IMM_Z, fast: pickMovEI }),
  op('mov', 0, 0xb0, 'Zb,Ib', movRI, { count: 8, imm: IMM_B }),
  op('mov', 0, 0xb8, 'Zv,Iv', movRI, { count: 8, imm: IMM_V, fast: pickMovEI }),
  op('mov', 0, 0xa0, 'AL,Ob', movAO, { imm: IMM_MOFFS }),
  op('mov', 0, 0xa1, 'rAX,Ov', movAO, { imm: IMM_MOFFS }),
  op('mov', 0, 0xa2, 'Ob,AL', movOA, { imm: IMM_MOFFS }),
  op('mov', 0, 0xa3, 'Ov,rAX', movOA, { imm: IMM_MOFFS }),
  op('mov', 0, 0x8c, 'Ev,Sw', movESreg),
  op('mov', 0, 0x8e, 'Sw,Ew', movSregE, { flags: F_SIZE16 }),
  op('movzx', 1, 0xb6, 'Gv,Eb', movzxB, { fast: pickMovzx }),
  op('movzx', 1, 0xb7, 'Gv,Ew', movzxW, { fast: pickMovzx }),
  op('movsx', 1, 0xbe, 'Gv,Eb', movsxB, { fast: pickMovsx }),
  op('movsx', 1, 0xbf, 'Gv,Ew', movsxW),
  op('movsxd', 0, 0x63, 'Gv,Ed', movsxd, { flags: F_ONLY64, fast: pickMovsxd }),
  op('lea', 0, 0x8d, 'Gv,M', lea, { flags: F_MEM, fast: pickLea }),
  op('xchg', 0, 0x86, 'Eb,Gb', xchgEG, { flags: F_LOCK }),
  op('xchg', 0, 0x87, 'Ev,Gv', xchgEG, { flags: F_LOCK }),
  op('xchg', 0, 0x90, 'Zv,rAX', xchgAR, { count: 8 }),
  ...CC.map((c, i) => op(`cmov${c}`, 1, 0x40 + i, 'Gv,Ev', cmov, { fast: pickCmov })),
  ...CC.map((c, i) => op(`set${c}`, 1, 0x90 + i, 'Eb', setcc)),
  op('bswap', 1, 0xc8, 'Zv', bswap, { count: 8 }),
  op('movbe', 2, 0xf0, 'Gv,Mv', movbeLoad, { flags: F_MEM | F_NOREPFB }),
  op('movbe', 2, 0xf1, 'Mv,Gv', movbeStore, { flags: F_MEM | F_NOREPFB }),
  op('cbw', 0, 0x98, '', cbw),
  op('cwd', 0, 0x99, '', cwd),
  op('xlatb', 0, 0xd7, '', xlat),
];
