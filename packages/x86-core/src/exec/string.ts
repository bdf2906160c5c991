/**
 * String instructions MOVS CMPS STOS LODS SCAS with REP/REPE/REPNE in every address size.
 * Source DS:rSI (segment overridable), destination ES:rDI (not overridable; ES base ignored in
 * 64-bit mode). Registers are committed after every element, so a fault in the middle of a
 * REP leaves a state from which the instruction restarts where it stopped. A long REP yields
 * (ST_AGAIN) every CHUNK elements so run()'s budget stays meaningful.
 * INS/OUTS are I/O: with no I/O permission in user mode they raise #GP(0) (the system issue
 * turns them into I/O exits).
 */
import { DF, ES, FS, GP, GS, RAX, RCX, RDI, RSI, ST_AGAIN, ST_FAULT, ST_OK } from '../constants';
import { canon } from '../arith';
import type { Cpu } from '../cpu';
import type { Insn } from '../insn';
import { op, type OpDef } from '../table';
import { alu } from './alu';
import { repBulk } from '../string-bulk';

const CHUNK = 4096;

function count(cpu: Cpu, asize: number): number {
  if (asize === 8) return cpu.hi[RCX] * 4294967296 + (cpu.lo[RCX] >>> 0);
  return asize === 4 ? cpu.lo[RCX] >>> 0 : cpu.lo[RCX] & 0xffff;
}

function setCount(cpu: Cpu, asize: number, n: number): void {
  if (asize === 8) {
    cpu.lo[RCX] = n | 0;
    cpu.hi[RCX] = Math.floor(n / 4294967296) | 0;
  } else if (asize === 4) {
    cpu.lo[RCX] = n | 0;
    if (cpu.csize === 8) cpu.hi[RCX] = 0;
  } else cpu.lo[RCX] = (cpu.lo[RCX] & ~0xffff) | (n & 0xffff);
}

/** Linear address of seg:rR at address size. */
function strAddr(cpu: Cpu, d: Insn, seg: number, r: number): number {
  if (d.asize === 8) {
    const la = canon(cpu.lo[r], cpu.hi[r]);
    return seg === FS || seg === GS ? la + cpu.segBase[seg] : la;
  }
  const off = d.asize === 4 ? cpu.lo[r] >>> 0 : cpu.lo[r] & 0xffff;
  if (d.csize === 8) return seg === FS || seg === GS ? off + cpu.segBase[seg] : off;
  const la = (cpu.segBase[seg] + off) >>> 0;
  return cpu.segChk !== 0 && ((cpu.segChk >> seg) & 1) !== 0 ? cpu.segCheck(seg, off, d.osize, la) : la;
}

/** rR += delta at address size. */
function advance(cpu: Cpu, asize: number, r: number, delta: number): void {
  if (asize === 8) {
    const s = (cpu.lo[r] >>> 0) + delta;
    cpu.hi[r] = (cpu.hi[r] + Math.floor(s / 4294967296)) | 0;
    cpu.lo[r] = s | 0;
  } else if (asize === 4) {
    cpu.lo[r] = (cpu.lo[r] + delta) | 0;
    if (cpu.csize === 8) cpu.hi[r] = 0;
  } else cpu.lo[r] = (cpu.lo[r] & ~0xffff) | ((cpu.lo[r] + delta) & 0xffff);
}

function strOp(cpu: Cpu, d: Insn): number {
  const size = d.osize;
  const step = cpu.flags & DF ? -size : size;
  const o = d.opcode & 0xfe;
  const rep = d.rep !== 0;
  let n = rep ? count(cpu, d.asize) : 1;
  if (n === 0) return ST_OK;
  let budget = CHUNK;
  if (rep && cpu.mem.span !== undefined && (o === 0xaa || o === 0xa4)) {
    // Whole in-page runs straight in host memory (string-bulk.ts); the loop below does the rest.
    const done = repBulk(cpu, d, n, CHUNK);
    if (done === n) return ST_OK;
    n -= done;
    budget -= done;
  }
  while (n > 0) {
    if (budget-- === 0) return ST_AGAIN;
    switch (o) {
      case 0xa4: { // MOVS
        const v = cpu.read(strAddr(cpu, d, d.seg, RSI), size);
        if (v < 0) return ST_FAULT;
        const st = cpu.write(strAddr(cpu, d, ES, RDI), size, v, cpu.vh);
        if (st !== ST_OK) return st;
        advance(cpu, d.asize, RSI, step);
        advance(cpu, d.asize, RDI, step);
        break;
      }
      case 0xaa: { // STOS
        const v = size === 1 ? cpu.lo[RAX] & 0xff : cpu.getReg(RAX, size);
        const st = cpu.write(strAddr(cpu, d, ES, RDI), size, v, cpu.vh);
        if (st !== ST_OK) return st;
        advance(cpu, d.asize, RDI, step);
        break;
      }
      case 0xac: { // LODS
        const v = cpu.read(strAddr(cpu, d, d.seg, RSI), size);
        if (v < 0) return ST_FAULT;
        if (size === 1) cpu.lo[RAX] = (cpu.lo[RAX] & ~0xff) | v;
        else cpu.setReg(RAX, size, v, cpu.vh);
        advance(cpu, d.asize, RSI, step);
        break;
      }
      case 0xa6: { // CMPS: compares [rSI] - [rDI]
        const a = cpu.read(strAddr(cpu, d, d.seg, RSI), size);
        if (a < 0) return ST_FAULT;
        const aH = cpu.vh;
        const b = cpu.read(strAddr(cpu, d, ES, RDI), size);
        if (b < 0) return ST_FAULT;
        alu(cpu, 7, size, a, aH, b, cpu.vh);
        advance(cpu, d.asize, RSI, step);
        advance(cpu, d.asize, RDI, step);
        break;
      }
      default: { // SCAS: rAX - [rDI]
        const b = cpu.read(strAddr(cpu, d, ES, RDI), size);
        if (b < 0) return ST_FAULT;
        const bH = cpu.vh;
        const a = size === 1 ? cpu.lo[RAX] & 0xff : cpu.getReg(RAX, size);
        alu(cpu, 7, size, a, cpu.vh, b, bH);
        advance(cpu, d.asize, RDI, step);
      }
    }
    if (!rep) return ST_OK;
    n--;
    setCount(cpu, d.asize, n);
    if (o === 0xa6 || o === 0xae) {
      const zf = cpu.zf();
      if ((d.rep === 3 && zf === 0) || (d.rep === 2 && zf === 1)) return ST_OK;
    }
  }
  return ST_OK;
}

function ioString(cpu: Cpu, d: Insn): number {
  if (cpu.sys != null) return cpu.sys.io(cpu, d);
  return cpu.fault(GP, 0);
}

const CMP_DEF = 0x08d5;

export const STRING_OPS: readonly OpDef[] = [
  op('movsb', 0, 0xa4, 'Yb,Xb', strOp),
  op('movs', 0, 0xa5, 'Yv,Xv', strOp),
  op('cmpsb', 0, 0xa6, 'Xb,Yb', strOp, { def: CMP_DEF }),
  op('cmps', 0, 0xa7, 'Xv,Yv', strOp, { def: CMP_DEF }),
  op('stosb', 0, 0xaa, 'Yb,AL', strOp),
  op('stos', 0, 0xab, 'Yv,rAX', strOp),
  op('lodsb', 0, 0xac, 'AL,Xb', strOp),
  op('lods', 0, 0xad, 'rAX,Xv', strOp),
  op('scasb', 0, 0xae, 'AL,Yb', strOp, { def: CMP_DEF }),
  op('scas', 0, 0xaf, 'rAX,Yv', strOp, { def: CMP_DEF }),
  op('insb', 0, 0x6c, 'Yb,DX', ioString),
  op('ins', 0, 0x6d, 'Yz,DX', ioString),
  op('outsb', 0, 0x6e, 'DX,Xb', ioString),
  op('outs', 0, 0x6f, 'DX,Xz', ioString),
];
