/**
 * System instructions: MOV CRn/DRn, LGDT/LIDT/SGDT/SIDT/LLDT/LTR/SLDT/STR, LAR/LSL/VERR/VERW,
 * SMSW/LMSW/CLTS, INVLPG, INVD/WBINVD, RDMSR/WRMSR, SYSENTER/SYSEXIT/SYSRET, SWAPGS,
 * STAC/CLAC, far JMP/CALL/RET, IRET, LSS/LFS/LGS/LES/LDS. Each handler forwards to the
 * System of the vCPU (cpu.sys); without one (user mode) they raise #UD or #GP as hardware
 * does at CPL 3.
 */
import { AC, CS, DB, DS, ES, FS, GP, GS, RAX, RCX, RDX, SS, ST_BREAK, ST_FAULT, ST_OK, UD, VM, ZF } from '../constants';
import { canon, type Cpu } from '../cpu';
import type { Insn } from '../insn';
import { F_FORCE64, F_INV64, F_MEM, F_ONLY64, F_REG, F_SIZE16, IMM_AP, IMM_W, op, type OpDef } from '../table';
import { CR0_PE, CR0_TS, CR4_DE, CR4_SMAP } from './regs';
import { DR6_BD, DR6_FIXED_1, DR7_FIXED_1, DR7_GD, updateBreakpoints } from './debug';
import type { System } from './system';

const TWO32 = 4294967296;

function sysOf(cpu: Cpu): System | null {
  return cpu.sys as System | null;
}

/** #UD in real mode and V86 (protected-mode-only instructions). */
function pmOnly(cpu: Cpu): boolean {
  return (cpu.cr0 & CR0_PE) !== 0 && (cpu.flags & VM) === 0;
}

/** CPL 0 required: returns a status to return, or -1 when allowed. */
function needCpl0(cpu: Cpu): number {
  if (cpu.sys == null) return cpu.fault(GP, 0);
  if (cpu.cpl !== 0 || (cpu.flags & VM) !== 0) return cpu.fault(GP, 0);
  return -1;
}

// ------------------------------------------------------------------ control and debug registers

function movRC(cpu: Cpu, d: Insn): number {
  const c = needCpl0(cpu);
  if (c >= 0) return c;
  const sys = sysOf(cpu)!;
  let lo: number;
  let hi = 0;
  switch (d.reg) {
    case 0: lo = cpu.cr0; break;
    case 2: lo = sys.cr2 | 0; hi = Math.floor(sys.cr2 / TWO32) | 0; break;
    case 3: lo = sys.cr3Lo; hi = sys.cr3Hi; break;
    case 4: lo = cpu.cr4; break;
    case 8: lo = sys.getCr8(); break;
    default: return cpu.fault(UD, 0);
  }
  cpu.setReg(d.rm, d.osize === 8 ? 8 : 4, lo, hi);
  return ST_OK;
}

function movCR(cpu: Cpu, d: Insn): number {
  const c = needCpl0(cpu);
  if (c >= 0) return c;
  const sys = sysOf(cpu)!;
  const lo = cpu.lo[d.rm];
  const hi = d.osize === 8 ? cpu.hi[d.rm] : 0;
  switch (d.reg) {
    case 0: return sys.writeCr0(lo, hi);
    case 2: sys.cr2 = d.osize === 8 ? hi * TWO32 + (lo >>> 0) : lo >>> 0; return ST_OK;
    case 3: return sys.writeCr3(lo, hi);
    case 4: {
      const st = sys.writeCr4(lo, hi);
      return st === ST_OK ? ST_BREAK : st;
    }
    case 8: return hi !== 0 ? cpu.fault(GP, 0) : sys.setCr8(lo);
    default: return cpu.fault(UD, 0);
  }
}

function drIndex(cpu: Cpu, r: number): number {
  if (r === 4 || r === 5) return cpu.cr4 & CR4_DE ? -1 : r + 2;
  return r > 7 ? -1 : r;
}

function movRD(cpu: Cpu, d: Insn): number {
  const c = needCpl0(cpu);
  if (c >= 0) return c;
  const sys = sysOf(cpu)!;
  const r = drIndex(cpu, d.reg);
  if (r < 0) return cpu.fault(UD, 0);
  if ((sys.dr7 & DR7_GD) !== 0) return generalDetect(cpu, sys);
  if (r < 4) cpu.setReg(d.rm, d.osize === 8 ? 8 : 4, sys.drLo[r], sys.drHi[r]);
  else cpu.setReg(d.rm, d.osize === 8 ? 8 : 4, r === 6 ? sys.dr6 : sys.dr7, 0);
  return ST_OK;
}

function movDR(cpu: Cpu, d: Insn): number {
  const c = needCpl0(cpu);
  if (c >= 0) return c;
  const sys = sysOf(cpu)!;
  const r = drIndex(cpu, d.reg);
  if (r < 0) return cpu.fault(UD, 0);
  if ((sys.dr7 & DR7_GD) !== 0) return generalDetect(cpu, sys);
  const lo = cpu.lo[d.rm];
  const hi = d.osize === 8 ? cpu.hi[d.rm] : 0;
  if (r >= 6 && hi !== 0) return cpu.fault(GP, 0);
  if (r < 4) {
    sys.drLo[r] = lo;
    sys.drHi[r] = hi;
  } else if (r === 6) sys.dr6 = (lo | DR6_FIXED_1) & ~0x1000;
  else sys.dr7 = (lo | DR7_FIXED_1) & ~0xd800;
  updateBreakpoints(sys);
  // Ends the run slice: the vCPU steps singly while breakpoints are armed.
  return ST_BREAK;
}

/** MOV DR with DR7.GD set: a #DB fault with DR6.BD (the delivery clears GD; RF = 1 is pushed). */
function generalDetect(cpu: Cpu, sys: System): number {
  sys.dr6 |= DR6_BD;
  sys.pushRf = true;
  return cpu.fault(DB, 0);
}

// ------------------------------------------------------------------ descriptor-table registers

function lgdtLidt(cpu: Cpu, d: Insn): number {
  const c = needCpl0(cpu);
  if (c >= 0) return c;
  const sys = sysOf(cpu)!;
  const la = cpu.eaOf(d);
  const limit = cpu.read(la, 2);
  if (limit < 0) return ST_FAULT;
  let base: number;
  if (d.csize === 8) {
    const lo = cpu.read(la + 2, 8);
    if (lo < 0) return ST_FAULT;
    base = canon(lo, cpu.vh);
    if (base !== base) return cpu.fault(GP, 0);
  } else {
    base = cpu.read(la + 2, 4);
    if (base < 0) return ST_FAULT;
    if (d.osize === 2) base &= 0xffffff;
  }
  if (d.reg === 2) {
    sys.gdtBase = base;
    sys.gdtLimit = limit;
  } else {
    sys.idtBase = base;
    sys.idtLimit = limit;
  }
  return ST_OK;
}

function sgdtSidt(cpu: Cpu, d: Insn): number {
  const sys = sysOf(cpu);
  if (sys == null) return cpu.fault(UD, 0);
  const base = d.reg === 0 ? sys.gdtBase : sys.idtBase;
  const limit = d.reg === 0 ? sys.gdtLimit : sys.idtLimit;
  const la = cpu.eaOf(d);
  let st = cpu.write(la, 2, limit, 0);
  if (st !== ST_OK) return st;
  if (d.csize === 8) st = cpu.write(la + 2, 8, base | 0, Math.floor(base / TWO32) | 0);
  else st = cpu.write(la + 2, 4, base | 0, 0);
  return st;
}

function sldtStr(cpu: Cpu, d: Insn): number {
  const sys = sysOf(cpu);
  if (sys == null || !pmOnly(cpu)) return cpu.fault(UD, 0);
  const v = d.reg === 0 ? sys.ldtSel : sys.trSel;
  if (d.mod === 3) {
    cpu.setReg(d.rm, d.osize === 1 ? 2 : d.osize, v, 0);
    return ST_OK;
  }
  return cpu.write(cpu.eaOf(d), 2, v, 0);
}

function lldtLtr(cpu: Cpu, d: Insn): number {
  const sys = sysOf(cpu);
  if (sys == null || !pmOnly(cpu)) return cpu.fault(UD, 0);
  if (cpu.cpl !== 0) return cpu.fault(GP, 0);
  const v = cpu.readESized(d, 2);
  if (v < 0) return ST_FAULT;
  return d.reg === 2 ? sys.lldt(v) : sys.ltr(v);
}

function verrVerw(cpu: Cpu, d: Insn): number {
  const sys = sysOf(cpu);
  if (sys == null || !pmOnly(cpu)) return cpu.fault(UD, 0);
  const v = cpu.readESized(d, 2);
  if (v < 0) return ST_FAULT;
  const r = sys.inspect(v, d.reg === 4 ? 2 : 3);
  if (r === -2) return ST_FAULT;
  const f = cpu.settleFlags();
  cpu.flags = r >= 0 ? f | ZF : f & ~ZF;
  return ST_OK;
}

function larLsl(cpu: Cpu, d: Insn): number {
  const sys = sysOf(cpu);
  if (sys == null || !pmOnly(cpu)) return cpu.fault(UD, 0);
  const v = cpu.readESized(d, 2);
  if (v < 0) return ST_FAULT;
  const r = sys.inspect(v, d.opcode === 0x02 ? 0 : 1);
  if (r === -2) return ST_FAULT;
  const f = cpu.settleFlags();
  if (r < 0) {
    cpu.flags = f & ~ZF;
    return ST_OK;
  }
  cpu.flags = f | ZF;
  const val = d.opcode === 0x02 ? r & 0x00f0ff00 : r;
  cpu.setReg(d.reg, d.osize, d.osize === 2 ? val & 0xffff : val | 0, 0);
  return ST_OK;
}

function smsw(cpu: Cpu, d: Insn): number {
  if (cpu.sys == null) return cpu.fault(UD, 0);
  if (d.mod === 3) {
    cpu.setReg(d.rm, d.osize, d.osize === 2 ? cpu.cr0 & 0xffff : cpu.cr0, 0);
    return ST_OK;
  }
  return cpu.write(cpu.eaOf(d), 2, cpu.cr0 & 0xffff, 0);
}

function lmsw(cpu: Cpu, d: Insn): number {
  const c = needCpl0(cpu);
  if (c >= 0) return c;
  const v = cpu.readESized(d, 2);
  if (v < 0) return ST_FAULT;
  // Bits 0..3 only; PE can be set but not cleared.
  const nv = (cpu.cr0 & ~0xe) | (v & 0xf) | (cpu.cr0 & CR0_PE);
  return sysOf(cpu)!.writeCr0(nv, 0);
}

function clts(cpu: Cpu, _d: Insn): number {
  const c = needCpl0(cpu);
  if (c >= 0) return c;
  cpu.cr0 &= ~CR0_TS;
  return sysOf(cpu)!.clts();
}

function invlpg(cpu: Cpu, d: Insn): number {
  const c = needCpl0(cpu);
  if (c >= 0) return c;
  const la = cpu.eaOf(d);
  const mem = sysOf(cpu)!.mem;
  if (la === la) mem.mmu.invlpg(la >>> 0, la >= 0 && la < TWO32 ? 0 : Math.floor(la / TWO32) | 0);
  mem.codeWrites++;
  return ST_OK;
}

function invd(cpu: Cpu, _d: Insn): number {
  const c = needCpl0(cpu);
  return c >= 0 ? c : ST_OK;
}

function stacClac(cpu: Cpu, d: Insn): number {
  if (cpu.sys == null || (cpu.cr4 & CR4_SMAP) === 0) return cpu.fault(UD, 0);
  if (cpu.cpl !== 0) return cpu.fault(UD, 0);
  if (d.rm === 3) cpu.flags |= AC;
  else cpu.flags &= ~AC;
  return ST_OK;
}

// ------------------------------------------------------------------ MSRs and fast system calls

const MSR_OUT = new Int32Array(2);

function rdmsr(cpu: Cpu, _d: Insn): number {
  const c = needCpl0(cpu);
  if (c >= 0) return c;
  if (!sysOf(cpu)!.readMsr(cpu.lo[RCX], MSR_OUT)) return cpu.fault(GP, 0);
  cpu.setReg(RAX, 4, MSR_OUT[0], 0);
  cpu.setReg(RDX, 4, MSR_OUT[1], 0);
  return ST_OK;
}

function wrmsr(cpu: Cpu, _d: Insn): number {
  const c = needCpl0(cpu);
  if (c >= 0) return c;
  return sysOf(cpu)!.writeMsr(cpu.lo[RCX], cpu.lo[RAX], cpu.lo[RDX]);
}

function sysenter(cpu: Cpu, _d: Insn): number {
  const sys = sysOf(cpu);
  return sys == null ? cpu.fault(GP, 0) : sys.sysenter();
}

function sysexit(cpu: Cpu, d: Insn): number {
  const sys = sysOf(cpu);
  return sys == null ? cpu.fault(GP, 0) : sys.sysexit(d);
}

function sysret(cpu: Cpu, d: Insn): number {
  const sys = sysOf(cpu);
  return sys == null ? cpu.fault(UD, 0) : sys.sysret(d);
}

function swapgs(cpu: Cpu, _d: Insn): number {
  const sys = sysOf(cpu);
  return sys == null ? cpu.fault(UD, 0) : sys.swapgs();
}

// ------------------------------------------------------------------ far transfers

function farPtr(cpu: Cpu, d: Insn): number {
  const sys = sysOf(cpu);
  if (sys == null) return cpu.fault(GP, 0);
  const off = d.osize === 2 ? d.imm & 0xffff : d.imm >>> 0;
  return sys.farTransfer(d.opcode === 0x9a, d.imm2 & 0xffff, off, 0, d.osize);
}

function farMem(cpu: Cpu, d: Insn): number {
  const sys = sysOf(cpu);
  if (sys == null) return cpu.fault(GP, 0);
  const la = cpu.eaOf(d);
  const off = cpu.read(la, d.osize);
  if (off < 0) return ST_FAULT;
  const offHi = d.osize === 8 ? cpu.vh : 0;
  const sel = cpu.read(la + d.osize, 2);
  if (sel < 0) return ST_FAULT;
  return sys.farTransfer(d.reg === 3, sel, off, offHi, d.osize);
}

function retf(cpu: Cpu, d: Insn): number {
  const sys = sysOf(cpu);
  if (sys == null) return cpu.fault(GP, 0);
  return sys.farReturn(d.osize, d.opcode === 0xca ? d.imm & 0xffff : 0);
}

function iret(cpu: Cpu, d: Insn): number {
  const sys = sysOf(cpu);
  if (sys == null) return cpu.fault(GP, 0);
  return sys.iret(d.osize);
}

/** LSS/LFS/LGS/LES/LDS Gv, Mp: offset then selector; the segment load is checked first. */
function loadFar(cpu: Cpu, d: Insn): number {
  const sys = sysOf(cpu);
  if (sys == null) return cpu.fault(GP, 0);
  const la = cpu.eaOf(d);
  const off = cpu.read(la, d.osize);
  if (off < 0) return ST_FAULT;
  const offHi = cpu.vh;
  const sel = cpu.read(la + d.osize, 2);
  if (sel < 0) return ST_FAULT;
  const s = d.map === 0 ? (d.opcode === 0xc4 ? ES : DS) : d.opcode === 0xb2 ? SS : d.opcode === 0xb4 ? FS : GS;
  const st = sys.loadSegNoBreak(s, sel);
  if (st !== ST_OK) return st;
  cpu.setReg(d.reg, d.osize, off, offHi);
  if (s === SS) {
    sys.shadow = true;
    sys.shadowAt = cpu.retired;
    return ST_BREAK;
  }
  return ST_OK;
}

const RAW_OPS: readonly OpDef[] = [
  op('mov', 1, 0x20, 'Rd,Cd', movRC, { flags: F_REG | F_FORCE64 }),
  op('mov', 1, 0x21, 'Rd,Dd', movRD, { flags: F_REG | F_FORCE64 }),
  op('mov', 1, 0x22, 'Cd,Rd', movCR, { flags: F_REG | F_FORCE64 }),
  op('mov', 1, 0x23, 'Dd,Rd', movDR, { flags: F_REG | F_FORCE64 }),
  op('sldt', 1, 0x00, 'Ew', sldtStr, { ext: 0 }),
  op('str', 1, 0x00, 'Ew', sldtStr, { ext: 1 }),
  op('lldt', 1, 0x00, 'Ew', lldtLtr, { ext: 2, flags: F_SIZE16 }),
  op('ltr', 1, 0x00, 'Ew', lldtLtr, { ext: 3, flags: F_SIZE16 }),
  op('verr', 1, 0x00, 'Ew', verrVerw, { ext: 4, flags: F_SIZE16 }),
  op('verw', 1, 0x00, 'Ew', verrVerw, { ext: 5, flags: F_SIZE16 }),
  op('sgdt', 1, 0x01, 'M', sgdtSidt, { ext: 0, flags: F_MEM }),
  op('sidt', 1, 0x01, 'M', sgdtSidt, { ext: 1, flags: F_MEM }),
  op('lgdt', 1, 0x01, 'M', lgdtLidt, { ext: 2, flags: F_MEM }),
  op('lidt', 1, 0x01, 'M', lgdtLidt, { ext: 3, flags: F_MEM }),
  op('smsw', 1, 0x01, 'Ew', smsw, { ext: 4 }),
  op('lmsw', 1, 0x01, 'Ew', lmsw, { ext: 6, flags: F_SIZE16 }),
  op('invlpg', 1, 0x01, 'M', invlpg, { ext: 7, flags: F_MEM }),
  op('swapgs', 1, 0x01, '', swapgs, { ext: 7, rmExt: 0 }),
  op('clac', 1, 0x01, '', stacClac, { ext: 1, rmExt: 2 }),
  op('stac', 1, 0x01, '', stacClac, { ext: 1, rmExt: 3 }),
  op('lar', 1, 0x02, 'Gv,Ew', larLsl),
  op('lsl', 1, 0x03, 'Gv,Ew', larLsl),
  op('clts', 1, 0x06, '', clts),
  op('sysret', 1, 0x07, '', sysret),
  op('invd', 1, 0x08, '', invd),
  op('wbinvd', 1, 0x09, '', invd),
  op('wrmsr', 1, 0x30, '', wrmsr),
  op('rdmsr', 1, 0x32, '', rdmsr),
  op('sysenter', 1, 0x34, '', sysenter),
  op('sysexit', 1, 0x35, '', sysexit),
  op('jmp', 0, 0xea, 'Ap', farPtr, { imm: IMM_AP, flags: F_INV64 }),
  op('call', 0, 0x9a, 'Ap', farPtr, { imm: IMM_AP, flags: F_INV64 }),
  op('call', 0, 0xff, 'Mp', farMem, { ext: 3, flags: F_MEM }),
  op('jmp', 0, 0xff, 'Mp', farMem, { ext: 5, flags: F_MEM }),
  op('retf', 0, 0xcb, '', retf),
  op('retf', 0, 0xca, 'Iw', retf, { imm: IMM_W }),
  op('iret', 0, 0xcf, '', iret),
  op('lss', 1, 0xb2, 'Gv,Mp', loadFar, { flags: F_MEM }),
  op('lfs', 1, 0xb4, 'Gv,Mp', loadFar, { flags: F_MEM }),
  op('lgs', 1, 0xb5, 'Gv,Mp', loadFar, { flags: F_MEM }),
  op('les', 0, 0xc4, 'Gv,Mp', loadFar, { flags: F_MEM | F_INV64 }),
  op('lds', 0, 0xc5, 'Gv,Mp', loadFar, { flags: F_MEM | F_INV64 }),
];

/**
 * The system ops. Their operand text ends in `!sys`: not an operand kind, it keeps the
 * user-level test generator (src/harness/gen.ts, which only takes entries whose operands are
 * all simple kinds) from producing privileged instructions it cannot run on the host.
 */
export const SYSTEM_OPS: readonly OpDef[] = RAW_OPS.map((o) => ({ ...o, operands: o.operands === '' ? '!sys' : `${o.operands},!sys` }));

void F_ONLY64;
void CS;
