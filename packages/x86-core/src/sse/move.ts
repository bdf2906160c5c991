/**
 * Data movement: MOVAPS/MOVUPS/MOVDQA/MOVDQU/MOVSS/MOVSD, the 64-bit half moves
 * (MOVLPS/MOVHPS/MOVHLPS/MOVLHPS/MOVLPD/MOVHPD), MOVD/MOVQ in every direction (GPR, MMX, XMM,
 * memory), MOVQ2DQ/MOVDQ2Q, the non-temporal stores, LDDQU, SSE3 duplicates
 * (MOVSLDUP/MOVSHDUP/MOVDDUP), MOVMSKPS/PD, EMMS.
 */
import type { Cpu } from '../cpu';
import type { Insn } from '../insn';
import { GP, ST_FAULT, ST_OK } from '../constants';
import { F_MEM, F_PFXSEL, F_REG, PFX_66, PFX_F2, PFX_F3, op, type OpDef } from '../table';
import { B, getM, getX, loadQ, loadW, loadWs, mmxEnter, readSmall, setM, setX, sseOk, write128 } from './common';

/** V <- W, 128 bits (MOVAPS/MOVAPD/MOVDQA aligned; MOVUPS/MOVUPD/MOVDQU/LDDQU not). */
function movLoad(align: boolean) {
  return (cpu: Cpu, d: Insn): number => {
    if (sseOk(cpu) !== ST_OK) return ST_FAULT;
    if (loadW(cpu, d, B, align) !== ST_OK) return ST_FAULT;
    setX(cpu, d.reg, B);
    return ST_OK;
  };
}

/** W <- V, 128 bits. */
function movStore(align: boolean) {
  return (cpu: Cpu, d: Insn): number => {
    if (sseOk(cpu) !== ST_OK) return ST_FAULT;
    getX(cpu, d.reg, B);
    if (d.mod === 3) {
      setX(cpu, d.rm, B);
      return ST_OK;
    }
    const la = cpu.eaOf(d);
    if (align && (la & 15) !== 0) return cpu.fault(GP, 0);
    return write128(cpu, la, B);
  };
}

/** MOVSS/MOVSD load: reg-reg merges the low element, memory zero-extends. */
function movsLoad(size: number) {
  return (cpu: Cpu, d: Insn): number => {
    if (sseOk(cpu) !== ST_OK) return ST_FAULT;
    const o = d.reg * 4;
    if (d.mod === 3) {
      const s = d.rm * 4;
      cpu.xmm[o] = cpu.xmm[s];
      if (size === 8) cpu.xmm[o + 1] = cpu.xmm[s + 1];
      return ST_OK;
    }
    if (readSmall(cpu, cpu.eaOf(d), size, B) !== ST_OK) return ST_FAULT;
    cpu.xmm[o] = B.u32[0];
    cpu.xmm[o + 1] = B.u32[1];
    cpu.xmm[o + 2] = 0;
    cpu.xmm[o + 3] = 0;
    return ST_OK;
  };
}

/** MOVSS/MOVSD store (and reg-reg merge into the rm register). */
function movsStore(size: number) {
  return (cpu: Cpu, d: Insn): number => {
    if (sseOk(cpu) !== ST_OK) return ST_FAULT;
    const s = d.reg * 4;
    if (d.mod === 3) {
      const o = d.rm * 4;
      cpu.xmm[o] = cpu.xmm[s];
      if (size === 8) cpu.xmm[o + 1] = cpu.xmm[s + 1];
      return ST_OK;
    }
    return cpu.write(cpu.eaOf(d), size, cpu.xmm[s], cpu.xmm[s + 1]);
  };
}

/** Loads a qword into V's low (half 0) or high (half 1) 64 bits; mod = 3 takes U's other half. */
function movHalfLoad(half: number) {
  return (cpu: Cpu, d: Insn): number => {
    if (sseOk(cpu) !== ST_OK) return ST_FAULT;
    const o = d.reg * 4 + half * 2;
    if (d.mod === 3) {
      // MOVHLPS (half 0): V.lo = U.hi; MOVLHPS (half 1): V.hi = U.lo.
      const s = d.rm * 4 + (1 - half) * 2;
      cpu.xmm[o] = cpu.xmm[s];
      cpu.xmm[o + 1] = cpu.xmm[s + 1];
      return ST_OK;
    }
    if (readSmall(cpu, cpu.eaOf(d), 8, B) !== ST_OK) return ST_FAULT;
    cpu.xmm[o] = B.u32[0];
    cpu.xmm[o + 1] = B.u32[1];
    return ST_OK;
  };
}

function movHalfStore(half: number) {
  return (cpu: Cpu, d: Insn): number => {
    if (sseOk(cpu) !== ST_OK) return ST_FAULT;
    const s = d.reg * 4 + half * 2;
    return cpu.write(cpu.eaOf(d), 8, cpu.xmm[s], cpu.xmm[s + 1]);
  };
}

/** MOVSLDUP (odd = 0) / MOVSHDUP (odd = 1). */
function movDup32(odd: number) {
  return (cpu: Cpu, d: Insn): number => {
    if (sseOk(cpu) !== ST_OK) return ST_FAULT;
    if (loadW(cpu, d, B, true) !== ST_OK) return ST_FAULT;
    const o = d.reg * 4;
    cpu.xmm[o] = cpu.xmm[o + 1] = B.u32[odd];
    cpu.xmm[o + 2] = cpu.xmm[o + 3] = B.u32[2 + odd];
    return ST_OK;
  };
}

function movddup(cpu: Cpu, d: Insn): number {
  if (sseOk(cpu) !== ST_OK) return ST_FAULT;
  if (loadWs(cpu, d, B, 8) !== ST_OK) return ST_FAULT;
  const o = d.reg * 4;
  cpu.xmm[o] = cpu.xmm[o + 2] = B.u32[0];
  cpu.xmm[o + 1] = cpu.xmm[o + 3] = B.u32[1];
  return ST_OK;
}

/** MOVD/MOVQ xmm, r/m32/64 (66 0F 6E): zero-extends into the whole register. */
function movdToX(cpu: Cpu, d: Insn): number {
  if (sseOk(cpu) !== ST_OK) return ST_FAULT;
  const size = d.osize === 8 ? 8 : 4;
  const lo = cpu.readESized(d, size);
  if (lo === -1 && d.mod !== 3) return ST_FAULT;
  const o = d.reg * 4;
  cpu.xmm[o] = lo;
  cpu.xmm[o + 1] = size === 8 ? cpu.vh : 0;
  cpu.xmm[o + 2] = 0;
  cpu.xmm[o + 3] = 0;
  return ST_OK;
}

/** MOVD/MOVQ r/m32/64, xmm (66 0F 7E). */
function movdFromX(cpu: Cpu, d: Insn): number {
  if (sseOk(cpu) !== ST_OK) return ST_FAULT;
  const size = d.osize === 8 ? 8 : 4;
  const o = d.reg * 4;
  if (d.mod === 3) {
    cpu.setReg(d.rm, size, cpu.xmm[o], cpu.xmm[o + 1]);
    return ST_OK;
  }
  return cpu.write(cpu.eaOf(d), size, cpu.xmm[o], cpu.xmm[o + 1]);
}

/** MOVD/MOVQ mm, r/m32/64 (0F 6E). */
function movdToM(cpu: Cpu, d: Insn): number {
  if (mmxEnter(cpu) !== ST_OK) return ST_FAULT;
  const size = d.osize === 8 ? 8 : 4;
  const lo = cpu.readESized(d, size);
  if (lo === -1 && d.mod !== 3) return ST_FAULT;
  const r = (d.reg & 7) * 2;
  cpu.mmx[r] = lo;
  cpu.mmx[r + 1] = size === 8 ? cpu.vh : 0;
  cpu.fprExt[r >> 1] = 0xffff;
  return ST_OK;
}

/** MOVD/MOVQ r/m32/64, mm (0F 7E). */
function movdFromM(cpu: Cpu, d: Insn): number {
  if (mmxEnter(cpu) !== ST_OK) return ST_FAULT;
  const size = d.osize === 8 ? 8 : 4;
  const r = (d.reg & 7) * 2;
  if (d.mod === 3) {
    cpu.setReg(d.rm, size, cpu.mmx[r], cpu.mmx[r + 1]);
    return ST_OK;
  }
  return cpu.write(cpu.eaOf(d), size, cpu.mmx[r], cpu.mmx[r + 1]);
}

/** MOVQ mm, mm/m64 (0F 6F). */
function movqToM(cpu: Cpu, d: Insn): number {
  if (mmxEnter(cpu) !== ST_OK) return ST_FAULT;
  if (loadQ(cpu, d, B) !== ST_OK) return ST_FAULT;
  setM(cpu, d.reg & 7, B);
  return ST_OK;
}

/** MOVQ mm/m64, mm (0F 7F) and MOVNTQ m64, mm (0F E7). */
function movqFromM(cpu: Cpu, d: Insn): number {
  if (mmxEnter(cpu) !== ST_OK) return ST_FAULT;
  getM(cpu, d.reg & 7, B);
  if (d.mod === 3) {
    setM(cpu, d.rm & 7, B);
    return ST_OK;
  }
  return cpu.write(cpu.eaOf(d), 8, B.u32[0], B.u32[1]);
}

/** MOVQ xmm, xmm/m64 (F3 0F 7E): zero-extends. */
function movqToX(cpu: Cpu, d: Insn): number {
  if (sseOk(cpu) !== ST_OK) return ST_FAULT;
  if (loadWs(cpu, d, B, 8) !== ST_OK) return ST_FAULT;
  const o = d.reg * 4;
  cpu.xmm[o] = B.u32[0];
  cpu.xmm[o + 1] = B.u32[1];
  cpu.xmm[o + 2] = 0;
  cpu.xmm[o + 3] = 0;
  return ST_OK;
}

/** MOVQ xmm/m64, xmm (66 0F D6): the register form zero-extends the destination. */
function movqFromX(cpu: Cpu, d: Insn): number {
  if (sseOk(cpu) !== ST_OK) return ST_FAULT;
  const s = d.reg * 4;
  if (d.mod === 3) {
    const o = d.rm * 4;
    cpu.xmm[o] = cpu.xmm[s];
    cpu.xmm[o + 1] = cpu.xmm[s + 1];
    cpu.xmm[o + 2] = 0;
    cpu.xmm[o + 3] = 0;
    return ST_OK;
  }
  return cpu.write(cpu.eaOf(d), 8, cpu.xmm[s], cpu.xmm[s + 1]);
}

function movq2dq(cpu: Cpu, d: Insn): number {
  if (sseOk(cpu) !== ST_OK || mmxEnter(cpu) !== ST_OK) return ST_FAULT;
  const o = d.reg * 4;
  const s = (d.rm & 7) * 2;
  cpu.xmm[o] = cpu.mmx[s];
  cpu.xmm[o + 1] = cpu.mmx[s + 1];
  cpu.xmm[o + 2] = 0;
  cpu.xmm[o + 3] = 0;
  return ST_OK;
}

function movdq2q(cpu: Cpu, d: Insn): number {
  if (sseOk(cpu) !== ST_OK || mmxEnter(cpu) !== ST_OK) return ST_FAULT;
  const o = (d.reg & 7) * 2;
  const s = d.rm * 4;
  cpu.mmx[o] = cpu.xmm[s];
  cpu.mmx[o + 1] = cpu.xmm[s + 1];
  cpu.fprExt[o >> 1] = 0xffff;
  return ST_OK;
}

/** MOVNTI m32/64, r32/64 (0F C3). */
function movnti(cpu: Cpu, d: Insn): number {
  const size = d.osize === 8 ? 8 : 4;
  return cpu.write(cpu.eaOf(d), size, cpu.lo[d.reg], cpu.hi[d.reg]);
}

/** MOVMSKPS (size 4) / MOVMSKPD (size 8): sign bits into a GPR. */
function movmsk(size: number) {
  return (cpu: Cpu, d: Insn): number => {
    if (sseOk(cpu) !== ST_OK) return ST_FAULT;
    const s = d.rm * 4;
    const x = cpu.xmm;
    const m = size === 4 ? (x[s] >>> 31) | ((x[s + 1] >>> 31) << 1) | ((x[s + 2] >>> 31) << 2) | ((x[s + 3] >>> 31) << 3) : (x[s + 1] >>> 31) | ((x[s + 3] >>> 31) << 1);
    cpu.setReg(d.reg, 4, m, 0);
    return ST_OK;
  };
}

function emms(cpu: Cpu, _d: Insn): number {
  if (mmxEnter(cpu) !== ST_OK) return ST_FAULT;
  cpu.fpTag = 0xffff;
  return ST_OK;
}

const NONE = { flags: F_PFXSEL };
const P66 = { pfx: PFX_66, flags: F_PFXSEL };
const PF3 = { pfx: PFX_F3, flags: F_PFXSEL };
const PF2 = { pfx: PFX_F2, flags: F_PFXSEL };
const MEM = { flags: F_PFXSEL | F_MEM };
const MEM66 = { pfx: PFX_66, flags: F_PFXSEL | F_MEM };

export const MOVE_OPS: readonly OpDef[] = [
  op('movups', 1, 0x10, 'Vps,Wps', movLoad(false), NONE),
  op('movupd', 1, 0x10, 'Vpd,Wpd', movLoad(false), P66),
  op('movss', 1, 0x10, 'Vss,Wss', movsLoad(4), PF3),
  op('movsd', 1, 0x10, 'Vsd,Wsd', movsLoad(8), PF2),
  op('movups', 1, 0x11, 'Wps,Vps', movStore(false), NONE),
  op('movupd', 1, 0x11, 'Wpd,Vpd', movStore(false), P66),
  op('movss', 1, 0x11, 'Wss,Vss', movsStore(4), PF3),
  op('movsd', 1, 0x11, 'Wsd,Vsd', movsStore(8), PF2),
  op('movlps', 1, 0x12, 'Vq,Mq', movHalfLoad(0), NONE), // mod = 3: MOVHLPS
  op('movlpd', 1, 0x12, 'Vq,Mq', movHalfLoad(0), MEM66),
  op('movsldup', 1, 0x12, 'Vx,Wx', movDup32(0), PF3),
  op('movddup', 1, 0x12, 'Vx,Wq', movddup, PF2),
  op('movlps', 1, 0x13, 'Mq,Vq', movHalfStore(0), MEM),
  op('movlpd', 1, 0x13, 'Mq,Vq', movHalfStore(0), MEM66),
  op('movhps', 1, 0x16, 'Vq,Mq', movHalfLoad(1), NONE), // mod = 3: MOVLHPS
  op('movhpd', 1, 0x16, 'Vq,Mq', movHalfLoad(1), MEM66),
  op('movshdup', 1, 0x16, 'Vx,Wx', movDup32(1), PF3),
  op('movhps', 1, 0x17, 'Mq,Vq', movHalfStore(1), MEM),
  op('movhpd', 1, 0x17, 'Mq,Vq', movHalfStore(1), MEM66),
  op('movaps', 1, 0x28, 'Vps,Wps', movLoad(true), NONE),
  op('movapd', 1, 0x28, 'Vpd,Wpd', movLoad(true), P66),
  op('movaps', 1, 0x29, 'Wps,Vps', movStore(true), NONE),
  op('movapd', 1, 0x29, 'Wpd,Vpd', movStore(true), P66),
  op('movntps', 1, 0x2b, 'Mps,Vps', movStore(true), MEM),
  op('movntpd', 1, 0x2b, 'Mpd,Vpd', movStore(true), MEM66),
  op('movmskps', 1, 0x50, 'Gd,Ups', movmsk(4), { flags: F_PFXSEL | F_REG }),
  op('movmskpd', 1, 0x50, 'Gd,Upd', movmsk(8), { pfx: PFX_66, flags: F_PFXSEL | F_REG }),
  op('movd', 1, 0x6e, 'Pq,Ey', movdToM, NONE),
  op('movd', 1, 0x6e, 'Vx,Ey', movdToX, P66),
  op('movq', 1, 0x6f, 'Pq,Qq', movqToM, NONE),
  op('movdqa', 1, 0x6f, 'Vx,Wx', movLoad(true), P66),
  op('movdqu', 1, 0x6f, 'Vx,Wx', movLoad(false), PF3),
  op('emms', 1, 0x77, '', emms, NONE),
  op('movd', 1, 0x7e, 'Ey,Pq', movdFromM, NONE),
  op('movd', 1, 0x7e, 'Ey,Vx', movdFromX, P66),
  op('movq', 1, 0x7e, 'Vx,Wq', movqToX, PF3),
  op('movq', 1, 0x7f, 'Qq,Pq', movqFromM, NONE),
  op('movdqa', 1, 0x7f, 'Wx,Vx', movStore(true), P66),
  op('movdqu', 1, 0x7f, 'Wx,Vx', movStore(false), PF3),
  op('movnti', 1, 0xc3, 'My,Gy', movnti, MEM),
  op('movq', 1, 0xd6, 'Wq,Vq', movqFromX, P66),
  op('movq2dq', 1, 0xd6, 'Vx,Nq', movq2dq, { pfx: PFX_F3, flags: F_PFXSEL | F_REG }),
  op('movdq2q', 1, 0xd6, 'Pq,Ux', movdq2q, { pfx: PFX_F2, flags: F_PFXSEL | F_REG }),
  op('movntq', 1, 0xe7, 'Mq,Pq', movqFromM, MEM),
  op('movntdq', 1, 0xe7, 'Mx,Vx', movStore(true), MEM66),
  op('lddqu', 1, 0xf0, 'Vx,Mx', movLoad(false), { pfx: PFX_F2, flags: F_PFXSEL | F_MEM }),
];
