/**
 * Bit instructions: BT/BTS/BTR/BTC (register and immediate offsets; a register offset on a
 * memory operand reaches outside the operand, signed), BSF/BSR, TZCNT/LZCNT, POPCNT.
 */
import { AF, CF, OF, PF, SF, ST_FAULT, ST_OK, ZF } from '../constants';
import type { Cpu } from '../cpu';
import type { Insn } from '../insn';
import { F_LOCK, IMM_UB, PFX_F3, op, type OpDef } from '../table';

/** Bit operation kind from the opcode: 0 BT, 1 BTS, 2 BTR, 3 BTC. */
function btKind(d: Insn): number {
  if (d.opcode === 0xba) return (d.reg & 7) - 4;
  return (d.opcode >> 3) & 3; // A3 -> 0, AB -> 1, B3 -> 2, BB -> 3
}

function btApply(cpu: Cpu, d: Insn, v: number, vh: number, bit: number): number {
  const kind = btKind(d);
  const inHi = bit >= 32;
  const word = inHi ? vh : v;
  const mask = 1 << (bit & 31);
  const cf = (word & mask) !== 0 ? 1 : 0;
  const f = cpu.settleFlags();
  cpu.flags = (f & ~CF) | cf;
  if (kind === 0) return -2;
  let w = word;
  if (kind === 1) w |= mask;
  else if (kind === 2) w &= ~mask;
  else w ^= mask;
  if (inHi) {
    btHi = w;
    return v;
  }
  btHi = vh;
  return w >>> 0;
}
let btHi = 0;

function btE(cpu: Cpu, d: Insn): number {
  const size = d.osize;
  const bits = size * 8;
  const immForm = d.opcode === 0xba;
  if (d.mod === 3 || immForm) {
    const v = cpu.readE(d);
    if (v < 0) return ST_FAULT;
    const vh = cpu.vh;
    const off = (immForm ? d.imm : cpu.lo[d.reg]) & (bits - 1);
    const r = btApply(cpu, d, v, vh, off);
    if (r === -2) return ST_OK;
    return cpu.writeBackE(d, size < 4 ? r & (size === 1 ? 0xff : 0xffff) : r, btHi);
  }
  // Memory with a register offset: signed offset selects the operand-sized unit.
  const offLo = cpu.lo[d.reg];
  const off = size === 8 ? cpu.hi[d.reg] * 4294967296 + (offLo >>> 0) : size === 4 ? offLo : (offLo << 16) >> 16;
  const unit = Math.floor(off / bits);
  const bit = off - unit * bits;
  const base = cpu.eaOf(d);
  let la = base + unit * size;
  if (d.csize !== 8) la = la >>> 0;
  const v = cpu.read(la, size);
  if (v < 0) return ST_FAULT;
  const vh = cpu.vh;
  const saved = cpu.flags;
  const savedMask = cpu.lzMask;
  const r = btApply(cpu, d, v, vh, bit);
  if (r === -2) return ST_OK;
  const st = cpu.write(la, size, r, btHi);
  if (st !== ST_OK) {
    cpu.flags = saved;
    cpu.lzMask = savedMask;
  }
  return st;
}

function clz32(x: number): number {
  return Math.clz32(x);
}

function ctz32(x: number): number {
  return x === 0 ? 32 : 31 - Math.clz32(x & -x);
}

function popcnt32(x: number): number {
  x = x - ((x >>> 1) & 0x55555555);
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  x = (x + (x >>> 4)) & 0x0f0f0f0f;
  return Math.imul(x, 0x01010101) >>> 24;
}

/** Sets ZF (and CF) eagerly, the others from `others`. */
function setZC(cpu: Cpu, zf: boolean, cf: boolean, clearOthers: boolean): void {
  const f = cpu.settleFlags();
  let n = f & ~(ZF | CF);
  if (clearOthers) n &= ~(OF | SF | AF | PF);
  cpu.flags = n | (zf ? ZF : 0) | (cf ? CF : 0);
}

// 0F BC BSF / 0F BD BSR: source 0 -> ZF=1, destination unchanged.
function bsfr(cpu: Cpu, d: Insn): number {
  const v = cpu.readE(d);
  if (v < 0) return ST_FAULT;
  const vh = d.osize === 8 ? cpu.vh : 0;
  if (v === 0 && vh === 0) {
    setZC(cpu, true, false, false);
    return ST_OK;
  }
  let r: number;
  if (d.opcode === 0xbc) r = v !== 0 ? ctz32(v) : 32 + ctz32(vh);
  else r = vh !== 0 ? 63 - clz32(vh) : 31 - clz32(v);
  cpu.setReg(d.reg, d.osize, r, 0);
  setZC(cpu, false, false, false);
  return ST_OK;
}

// F3 0F BC TZCNT / F3 0F BD LZCNT
function tzlzcnt(cpu: Cpu, d: Insn): number {
  const v = cpu.readE(d);
  if (v < 0) return ST_FAULT;
  const size = d.osize;
  const vh = size === 8 ? cpu.vh : 0;
  const bits = size * 8;
  let r: number;
  if (d.opcode === 0xbc) {
    if (size === 8) r = v !== 0 ? ctz32(v) : 32 + ctz32(vh);
    else r = Math.min(ctz32(v), bits);
  } else if (size === 8) r = vh !== 0 ? clz32(vh) : 32 + clz32(v);
  else r = clz32(v) - (32 - bits);
  cpu.setReg(d.reg, size, r, 0);
  setZC(cpu, r === 0, r === bits, false);
  return ST_OK;
}

// F3 0F B8 POPCNT
function popcnt(cpu: Cpu, d: Insn): number {
  const v = cpu.readE(d);
  if (v < 0) return ST_FAULT;
  const vh = d.osize === 8 ? cpu.vh : 0;
  const r = popcnt32(v) + popcnt32(vh);
  cpu.setReg(d.reg, d.osize, r, 0);
  setZC(cpu, r === 0, false, true);
  return ST_OK;
}

const BT_NAMES = ['bt', 'bts', 'btr', 'btc'];
const BT_UNDEF = OF | SF | AF | PF;

export const BIT_OPS: readonly OpDef[] = [
  ...BT_NAMES.map((m, k) => op(m, 1, 0xa3 + k * 8, 'Ev,Gv', btE, { flags: k ? F_LOCK : 0, def: CF, undef: BT_UNDEF })),
  ...BT_NAMES.map((m, k) => op(m, 1, 0xba, 'Ev,Ib', btE, { ext: 4 + k, imm: IMM_UB, flags: k ? F_LOCK : 0, def: CF, undef: BT_UNDEF })),
  op('bsf', 1, 0xbc, 'Gv,Ev', bsfr, { def: ZF, undef: CF | OF | SF | AF | PF }),
  op('bsr', 1, 0xbd, 'Gv,Ev', bsfr, { def: ZF, undef: CF | OF | SF | AF | PF }),
  op('tzcnt', 1, 0xbc, 'Gv,Ev', tzlzcnt, { pfx: PFX_F3, def: ZF | CF, undef: OF | SF | AF | PF }),
  op('lzcnt', 1, 0xbd, 'Gv,Ev', tzlzcnt, { pfx: PFX_F3, def: ZF | CF, undef: OF | SF | AF | PF }),
  op('popcnt', 1, 0xb8, 'Gv,Ev', popcnt, { pfx: PFX_F3, def: 0x08d5 }),
];
