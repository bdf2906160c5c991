/**
 * Everything else of the user-level integer ISA: flag instructions, LAHF/SAHF, CPUID,
 * RDTSC/RDTSCP, NOP forms, PAUSE, fences, CLFLUSH, PREFETCH, UD0/UD1/UD2, SYSCALL (as an exit),
 * INT n/INT3/INTO/INT1 (as exits), HLT/CLI/STI/IN/OUT at CPL 3, BCD adjust, CMPXCHG8B/16B.
 */
import {
  AF,
  ARITH_FLAGS,
  CF,
  DE,
  DF,
  GP,
  IF,
  IOPL,
  OF,
  OFV,
  PF,
  R11,
  RAX,
  RBX,
  RCX,
  RDX,
  RF,
  SF,
  ST_FAULT,
  ST_HLT,
  ST_OK,
  ST_SOFTINT,
  ST_SYSCALL,
  UD,
  ZF,
  BP,
  BR,
  DB,
} from '../constants';
import { hiOf, LZ_LOGIC } from '../arith';
import type { Cpu } from '../cpu';
import type { Insn } from '../insn';
import { F_INV64, F_MEM, F_ONLY64, F_REG, F_SIZE32, F_LOCK, IMM_UB, PFX_F3, op, type OpDef } from '../table';
import { execUd } from './ud';

function nop(_cpu: Cpu, _d: Insn): number {
  return ST_OK;
}

function flagOp(cpu: Cpu, d: Insn): number {
  const f = cpu.settleFlags();
  switch (d.opcode) {
    case 0xf5: cpu.flags = f ^ CF; break;
    case 0xf8: cpu.flags = f & ~CF; break;
    case 0xf9: cpu.flags = f | CF; break;
    case 0xfc: cpu.flags = f & ~DF; break;
    default: cpu.flags = f | DF;
  }
  return ST_OK;
}

/** CLI / STI: allowed when CPL <= IOPL (user mode with IOPL 0: #GP(0)). */
function cliSti(cpu: Cpu, d: Insn): number {
  if (cpu.sys != null) return cpu.sys.cliSti(cpu, d);
  if (cpu.cpl > (cpu.flags & IOPL) >> 12) return cpu.fault(GP, 0);
  if (d.opcode === 0xfa) cpu.flags &= ~IF;
  else cpu.flags |= IF;
  return ST_OK;
}

function lahf(cpu: Cpu, _d: Insn): number {
  const f = cpu.getFlags() & (SF | ZF | AF | PF | CF);
  cpu.lo[RAX] = (cpu.lo[RAX] & ~0xff00) | ((f | 2) << 8);
  return ST_OK;
}

function sahf(cpu: Cpu, _d: Insn): number {
  const ah = (cpu.lo[RAX] >> 8) & (SF | ZF | AF | PF | CF);
  const f = cpu.settleFlags();
  cpu.flags = (f & ~(SF | ZF | AF | PF | CF)) | ah;
  return ST_OK;
}

// ------------------------------------------------------------------ CPUID

function str4(s: string, i: number): number {
  let v = 0;
  for (let k = 0; k < 4; k++) v |= (s.charCodeAt(i + k) & 0xff) << (8 * k);
  return v;
}

const VENDOR = 'RingZero x86';
const BRAND = 'RingZero x86-64 interpreter'.padEnd(48, '\0');

/** CPUID leaf/subleaf -> out[0..3] = EAX, EBX, ECX, EDX. Reports only what is implemented. */
export function cpuidLeaf(cpu: Cpu, leaf: number, _sub: number, out: Int32Array): void {
  out[0] = out[1] = out[2] = out[3] = 0;
  const f = cpu.features;
  switch (leaf >>> 0) {
    case 0:
      out[0] = 7;
      out[1] = str4(VENDOR, 0);
      out[3] = str4(VENDOR, 4);
      out[2] = str4(VENDOR, 8);
      break;
    case 1:
      out[0] = 0x00000611; // family 6, model 1, stepping 1
      out[1] = 0x00010800; // CLFLUSH line 8 * 8 bytes, 1 logical processor, APIC ID 0
      // ECX: SSE3 (0), SSSE3 (9), CX16 (13), MOVBE (22), POPCNT (23)
      out[2] = (1 << 13) | (1 << 22) | (1 << 23) | (f.sse3 ? 1 : 0) | (f.ssse3 ? 1 << 9 : 0);
      // EDX: TSC (4), CX8 (8), CMOV (15), CLFSH (19); FPU (0) with x87; MMX (23), FXSR (24) and
      // SSE (25) with SSE, SSE2 (26)
      out[3] =
        (1 << 4) | (1 << 8) | (1 << 15) | (1 << 19) | (f.fpu ? 1 : 0) | (f.mmx ? 1 << 23 : 0) | (f.sse ? (1 << 24) | (1 << 25) : 0) | (f.sse2 ? 1 << 26 : 0);
      break;
    case 0x80000000:
      out[0] = 0x80000008 | 0;
      break;
    case 0x80000001:
      out[2] = 1 | (1 << 5); // LAHF/SAHF in 64-bit mode, ABM (LZCNT)
      out[3] = (1 << 11) | (1 << 27) | (1 << 29); // SYSCALL, RDTSCP, LM
      break;
    case 0x80000002:
    case 0x80000003:
    case 0x80000004: {
      const base = (leaf - 0x80000002) * 16;
      for (let i = 0; i < 4; i++) out[i] = str4(BRAND, base + i * 4);
      break;
    }
    case 0x80000008:
      out[0] = 0x3028; // 40-bit physical, 48-bit linear addresses
      break;
  }
}

const CPUID_OUT = new Int32Array(4);
function cpuid(cpu: Cpu, _d: Insn): number {
  if (cpu.sys != null) cpu.sys.cpuid(cpu, cpu.lo[RAX], cpu.lo[RCX], CPUID_OUT);
  else cpuidLeaf(cpu, cpu.lo[RAX], cpu.lo[RCX], CPUID_OUT);
  cpu.setReg(RAX, 4, CPUID_OUT[0], 0);
  cpu.setReg(RBX, 4, CPUID_OUT[1], 0);
  cpu.setReg(RCX, 4, CPUID_OUT[2], 0);
  cpu.setReg(RDX, 4, CPUID_OUT[3], 0);
  return ST_OK;
}

/** RDTSC: the deterministic time base is the retired-instruction count. */
function rdtsc(cpu: Cpu, d: Insn): number {
  if (cpu.sys != null) return cpu.sys.rdtsc(cpu, d);
  const t = cpu.retired;
  cpu.setReg(RAX, 4, t | 0, 0);
  cpu.setReg(RDX, 4, hiOf(t), 0);
  if (d.map === 1 && d.opcode === 0x01) cpu.setReg(RCX, 4, cpu.tscAux, 0);
  return ST_OK;
}

// ------------------------------------------------------------------ traps and exits

function syscall(cpu: Cpu, _d: Insn): number {
  if (!cpu.syscallExits) return cpu.sys != null ? cpu.sys.syscall(cpu, _d) : cpu.fault(UD, 0);
  cpu.setRegNumber(RCX, cpu.nextRip);
  cpu.setReg(R11, 8, cpu.getFlags() & ~RF, 0);
  return ST_SYSCALL;
}

function softInt(cpu: Cpu, d: Insn): number {
  switch (d.opcode) {
    case 0xcc: cpu.faultVector = BP; break;
    case 0xf1: cpu.faultVector = DB; break;
    case 0xce:
      if (!cpu.of()) return ST_OK;
      cpu.faultVector = OFV;
      break;
    default: cpu.faultVector = d.imm & 0xff;
  }
  cpu.faultError = 0;
  return ST_SOFTINT;
}

function hlt(cpu: Cpu, _d: Insn): number {
  if (cpu.cpl !== 0) return cpu.fault(GP, 0);
  return ST_HLT;
}

/** IN/OUT at CPL > IOPL without an I/O bitmap: #GP(0) (the system issue makes these exits). */
function io(cpu: Cpu, d: Insn): number {
  if (cpu.sys != null) return cpu.sys.io(cpu, d);
  return cpu.fault(GP, 0);
}

// ------------------------------------------------------------------ BCD (16/32-bit modes)

function setAL(cpu: Cpu, v: number): void {
  cpu.lo[RAX] = (cpu.lo[RAX] & ~0xff) | (v & 0xff);
}

function szp(cpu: Cpu, al: number, cf: number, af: number): void {
  cpu.setLazy(LZ_LOGIC, 1, al & 0xff, 0, 0, 0, 0, 0);
  cpu.settleFlags();
  cpu.flags = (cpu.flags & ~(CF | AF | OF)) | cf | (af ? AF : 0);
}

function daa(cpu: Cpu, _d: Insn): number {
  const al = cpu.lo[RAX] & 0xff;
  const cf = cpu.cf();
  const af = cpu.af();
  let r = al;
  let ncf = 0;
  let naf = 0;
  if ((al & 0xf) > 9 || af) {
    r = (r + 6) & 0xff;
    naf = 1;
  }
  // The SDM's first step may set CF, but the second step decides it in both branches.
  if (al > 0x99 || cf) {
    r = (r + 0x60) & 0xff;
    ncf = 1;
  }
  setAL(cpu, r);
  szp(cpu, r, ncf, naf);
  return ST_OK;
}

function das(cpu: Cpu, _d: Insn): number {
  const al = cpu.lo[RAX] & 0xff;
  const cf = cpu.cf();
  const af = cpu.af();
  let r = al;
  let ncf = 0;
  let naf = 0;
  if ((al & 0xf) > 9 || af) {
    r = (r - 6) & 0xff;
    ncf = cf | (al < 6 ? 1 : 0);
    naf = 1;
  }
  if (al > 0x99 || cf) {
    r = (r - 0x60) & 0xff;
    ncf = 1;
  }
  setAL(cpu, r);
  szp(cpu, r, ncf, naf);
  return ST_OK;
}

function aaaAas(cpu: Cpu, d: Insn): number {
  const ax = cpu.lo[RAX] & 0xffff;
  const f = cpu.settleFlags();
  let r = ax;
  let adj = 0;
  if ((ax & 0xf) > 9 || f & AF) {
    // Current cores: AAA adds 0x106 to AX; AAS subtracts 6 from AX (borrowing from AH), then 1 from AH.
    r = d.opcode === 0x37 ? ax + 0x106 : (ax - 6 - 0x100) & 0xffff;
    adj = 1;
  }
  r = (r & 0xff00) | (r & 0x0f);
  cpu.lo[RAX] = (cpu.lo[RAX] & ~0xffff) | (r & 0xffff);
  cpu.flags = (f & ~(CF | AF)) | (adj ? CF | AF : 0);
  return ST_OK;
}

function aam(cpu: Cpu, d: Insn): number {
  const base = d.imm & 0xff;
  if (base === 0) return cpu.fault(DE, 0);
  const al = cpu.lo[RAX] & 0xff;
  const r = ((Math.floor(al / base) & 0xff) << 8) | al % base;
  cpu.lo[RAX] = (cpu.lo[RAX] & ~0xffff) | r;
  szp(cpu, r & 0xff, 0, 0);
  return ST_OK;
}

function aad(cpu: Cpu, d: Insn): number {
  const ax = cpu.lo[RAX];
  const r = ((ax & 0xff) + ((ax >> 8) & 0xff) * (d.imm & 0xff)) & 0xff;
  cpu.lo[RAX] = (cpu.lo[RAX] & ~0xffff) | r;
  szp(cpu, r, 0, 0);
  return ST_OK;
}

// ------------------------------------------------------------------ CMPXCHG8B / CMPXCHG16B

function cmpxchg8b16b(cpu: Cpu, d: Insn): number {
  const la = cpu.eaOf(d);
  if (d.osize === 8) {
    if (la === la && la % 16 !== 0) return cpu.fault(GP, 0);
    const lo = cpu.read(la, 8);
    if (lo < 0) return ST_FAULT;
    const loH = cpu.vh;
    const hi = cpu.read(la + 8, 8);
    if (hi < 0) return ST_FAULT;
    const hiH = cpu.vh;
    const eq = lo === cpu.lo[RAX] >>> 0 && loH === cpu.hi[RAX] && hi === cpu.lo[RDX] >>> 0 && hiH === cpu.hi[RDX];
    let st: number;
    if (eq) {
      st = cpu.write(la, 8, cpu.lo[RBX], cpu.hi[RBX]);
      if (st === ST_OK) st = cpu.write(la + 8, 8, cpu.lo[RCX], cpu.hi[RCX]);
    } else {
      st = cpu.write(la, 8, lo, loH);
      if (st === ST_OK) st = cpu.write(la + 8, 8, hi, hiH);
    }
    if (st !== ST_OK) return st;
    if (!eq) {
      cpu.setReg(RAX, 8, lo, loH);
      cpu.setReg(RDX, 8, hi, hiH);
    }
    const f = cpu.settleFlags();
    cpu.flags = (f & ~ZF) | (eq ? ZF : 0);
    return ST_OK;
  }
  const lo = cpu.read(la, 4);
  if (lo < 0) return ST_FAULT;
  const hi = cpu.read(la + 4, 4);
  if (hi < 0) return ST_FAULT;
  const eq = lo === cpu.lo[RAX] >>> 0 && hi === cpu.lo[RDX] >>> 0;
  const st = eq ? cpu.write(la, 8, cpu.lo[RBX], cpu.lo[RCX]) : cpu.write(la, 8, lo, hi);
  if (st !== ST_OK) return st;
  if (!eq) {
    cpu.setReg(RAX, 4, lo, 0);
    cpu.setReg(RDX, 4, hi, 0);
  }
  const f = cpu.settleFlags();
  cpu.flags = (f & ~ZF) | (eq ? ZF : 0);
  return ST_OK;
}

// 62 /r (16/32-bit code): BOUND Gv, Ma: #BR unless lower <= index <= upper (signed).
function bound(cpu: Cpu, d: Insn): number {
  const la = cpu.eaOf(d);
  const size = d.osize;
  const lo = cpu.read(la, size);
  if (lo < 0) return ST_FAULT;
  const hi = cpu.read(size === 2 ? (la + 2) >>> 0 : (la + 4) >>> 0, size);
  if (hi < 0) return ST_FAULT;
  const sh = 32 - size * 8;
  const idx = (cpu.lo[d.reg] << sh) >> sh;
  if (idx < (lo << sh) >> sh || idx > (hi << sh) >> sh) return cpu.fault(BR, 0);
  return ST_OK;
}

const BCD_UNDEF_OF = OF;

export const MISC_OPS: readonly OpDef[] = [
  op('nop', 1, 0x1f, 'Ev', nop), // 0F 1F /0..7: multi-byte NOP
  ...[0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e].map((b) => op('nop', 1, b, 'Ev', nop)), // hint NOPs (incl. ENDBR)
  ...[0, 1, 2, 3].map((k) => op(['prefetchnta', 'prefetcht0', 'prefetcht1', 'prefetcht2'][k], 1, 0x18, 'Mb', nop, { ext: k, flags: F_MEM })),
  ...[4, 5, 6, 7].map((k) => op('nop', 1, 0x18, 'Ev', nop, { ext: k })),
  op('pause', 0, 0x90, '', nop, { pfx: PFX_F3 }),
  op('lfence', 1, 0xae, '', nop, { ext: 5, flags: F_REG }),
  op('mfence', 1, 0xae, '', nop, { ext: 6, flags: F_REG }),
  op('sfence', 1, 0xae, '', nop, { ext: 7, flags: F_REG }),
  op('clflush', 1, 0xae, 'Mb', nop, { ext: 7, flags: F_MEM }),
  op('ud2', 1, 0x0b, '', execUd),
  op('ud1', 1, 0xb9, 'Gv,Ev', execUd),
  op('ud0', 1, 0xff, 'Gv,Ev', execUd),
  op('cmc', 0, 0xf5, '', flagOp, { def: CF }),
  op('clc', 0, 0xf8, '', flagOp, { def: CF }),
  op('stc', 0, 0xf9, '', flagOp, { def: CF }),
  op('cld', 0, 0xfc, '', flagOp, { def: DF }),
  op('std', 0, 0xfd, '', flagOp, { def: DF }),
  op('cli', 0, 0xfa, '', cliSti),
  op('sti', 0, 0xfb, '', cliSti),
  op('sahf', 0, 0x9e, '', sahf, { def: SF | ZF | AF | PF | CF }),
  op('lahf', 0, 0x9f, '', lahf),
  op('cpuid', 1, 0xa2, '', cpuid, { flags: F_SIZE32 }),
  op('rdtsc', 1, 0x31, '', rdtsc, { flags: F_SIZE32 }),
  op('rdtscp', 1, 0x01, '', rdtsc, { ext: 7, rmExt: 1, flags: F_SIZE32 }),
  op('syscall', 1, 0x05, '', syscall, { flags: F_ONLY64 }),
  op('int3', 0, 0xcc, '', softInt),
  op('int', 0, 0xcd, 'Ib', softInt, { imm: IMM_UB }),
  op('into', 0, 0xce, '', softInt, { flags: F_INV64 }),
  op('int1', 0, 0xf1, '', softInt),
  op('hlt', 0, 0xf4, '', hlt),
  ...[0xe4, 0xe5, 0xe6, 0xe7].map((b) => op(b & 2 ? 'out' : 'in', 0, b, 'Ib', io, { imm: IMM_UB })),
  ...[0xec, 0xed, 0xee, 0xef].map((b) => op(b & 2 ? 'out' : 'in', 0, b, '', io)),
  op('daa', 0, 0x27, '', daa, { flags: F_INV64, def: CF | AF | SF | ZF | PF, undef: BCD_UNDEF_OF }),
  op('das', 0, 0x2f, '', das, { flags: F_INV64, def: CF | AF | SF | ZF | PF, undef: BCD_UNDEF_OF }),
  op('aaa', 0, 0x37, '', aaaAas, { flags: F_INV64, def: CF | AF, undef: ARITH_FLAGS & ~(CF | AF) }),
  op('aas', 0, 0x3f, '', aaaAas, { flags: F_INV64, def: CF | AF, undef: ARITH_FLAGS & ~(CF | AF) }),
  op('aam', 0, 0xd4, 'Ib', aam, { imm: IMM_UB, flags: F_INV64, def: SF | ZF | PF, undef: OF | AF | CF }),
  op('aad', 0, 0xd5, 'Ib', aad, { imm: IMM_UB, flags: F_INV64, def: SF | ZF | PF, undef: OF | AF | CF }),
  op('cmpxchg8b', 1, 0xc7, 'Mq', cmpxchg8b16b, { ext: 1, flags: F_MEM | F_LOCK, def: ZF }),
  op('bound', 0, 0x62, 'Gv,M', bound, { flags: F_INV64 | F_MEM }),
];
