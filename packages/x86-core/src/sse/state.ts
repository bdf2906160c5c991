/**
 * LDMXCSR / STMXCSR and FXSAVE / FXRSTOR.
 *
 * FXSAVE image (512 bytes, 16-byte aligned, #GP(0) otherwise):
 *   0 FCW, 2 FSW (TOP in bits 11-13), 4 abridged FTW (1 bit per register, 1 = not empty),
 *   6 FOP, 8 FIP, 16 FDP (zero: instruction/data pointers are not tracked), 24 MXCSR,
 *   28 MXCSR_MASK, 32 + 16 * i ST(i)/MM(i) (80 bits each), 160 + 16 * i XMMi (XMM0-15 in 64-bit
 *   mode, XMM0-7 otherwise), 416..511 untouched.
 * The x87 register slots are owned by the x87 group: it can install its own converters through
 * `fxX87Hooks`. Until then the slots hold the MMX view (MMn in the significand, exponent
 * 0xffff as after an MMX write) and FXRSTOR reloads MMn from the significands.
 */
import type { Cpu } from '../cpu';
import type { Insn } from '../insn';
import { GP, NM, ST_FAULT, ST_OK } from '../constants';
import { F_MEM, F_PFXSEL, op, type OpDef } from '../table';
import { sseOk } from './common';
import { MXCSR_MASK } from './fp';

/** Converters for the x87 register slots of the FXSAVE image (the x87 group may replace them). */
export const fxX87Hooks: {
  /** Writes the 80-bit value of ST(i) (8 significand bytes, then 2 sign/exponent bytes) into out. */
  save: (cpu: Cpu, i: number, out: Uint8Array) => void;
  /** Loads ST(i) from the 10 bytes in src. */
  restore: (cpu: Cpu, i: number, src: Uint8Array) => void;
} = {
  save(cpu: Cpu, i: number, out: Uint8Array): void {
    const p = (cpu.fpTop + i) & 7;
    const lo = cpu.mmx[p * 2];
    const hi = cpu.mmx[p * 2 + 1];
    for (let k = 0; k < 4; k++) {
      out[k] = lo >>> (8 * k);
      out[4 + k] = hi >>> (8 * k);
    }
    out[8] = 0xff;
    out[9] = 0xff;
  },
  restore(cpu: Cpu, i: number, src: Uint8Array): void {
    const p = (cpu.fpTop + i) & 7;
    cpu.mmx[p * 2] = src[0] | (src[1] << 8) | (src[2] << 16) | (src[3] << 24);
    cpu.mmx[p * 2 + 1] = src[4] | (src[5] << 8) | (src[6] << 16) | (src[7] << 24);
  },
};

function ldmxcsr(cpu: Cpu, d: Insn): number {
  if (sseOk(cpu) !== ST_OK) return ST_FAULT;
  const v = cpu.read(cpu.eaOf(d), 4);
  if (v === -1) return ST_FAULT;
  if ((v & ~MXCSR_MASK) !== 0) return cpu.fault(GP, 0);
  cpu.mxcsr = v;
  return ST_OK;
}

function stmxcsr(cpu: Cpu, d: Insn): number {
  if (sseOk(cpu) !== ST_OK) return ST_FAULT;
  return cpu.write(cpu.eaOf(d), 4, cpu.mxcsr, 0);
}

const IMG = new Uint8Array(512);
const SLOT = new Uint8Array(10);

function fxsave(cpu: Cpu, d: Insn): number {
  if ((cpu.cr0 & 0xc) !== 0) return cpu.fault(NM, 0); // CR0.EM or CR0.TS
  const la = cpu.eaOf(d);
  if ((la & 15) !== 0) return cpu.fault(GP, 0);
  IMG.fill(0, 0, 416);
  IMG[0] = cpu.fpCw;
  IMG[1] = cpu.fpCw >>> 8;
  const fsw = (cpu.fpSw & ~0x3800) | ((cpu.fpTop & 7) << 11);
  IMG[2] = fsw;
  IMG[3] = fsw >>> 8;
  let ftw = 0;
  for (let i = 0; i < 8; i++) if (((cpu.fpTag >> (2 * i)) & 3) !== 3) ftw |= 1 << i;
  IMG[4] = ftw;
  const mx = cpu.mxcsr;
  for (let k = 0; k < 4; k++) {
    IMG[24 + k] = mx >>> (8 * k);
    IMG[28 + k] = MXCSR_MASK >>> (8 * k);
  }
  for (let i = 0; i < 8; i++) {
    fxX87Hooks.save(cpu, i, SLOT);
    IMG.set(SLOT, 32 + 16 * i);
  }
  const nx = d.csize === 8 ? 16 : 8;
  for (let r = 0; r < nx; r++) {
    for (let k = 0; k < 4; k++) {
      const w = cpu.xmm[r * 4 + k];
      const o = 160 + r * 16 + k * 4;
      IMG[o] = w;
      IMG[o + 1] = w >>> 8;
      IMG[o + 2] = w >>> 16;
      IMG[o + 3] = w >>> 24;
    }
  }
  // Highest page first, so that a fault on the second page leaves the first untouched.
  const end = 160 + nx * 16;
  for (let o = end - 8; o >= 0; o -= 8) {
    const lo = IMG[o] | (IMG[o + 1] << 8) | (IMG[o + 2] << 16) | (IMG[o + 3] << 24);
    const hi = IMG[o + 4] | (IMG[o + 5] << 8) | (IMG[o + 6] << 16) | (IMG[o + 7] << 24);
    if (cpu.write(la + o, 8, lo, hi) !== ST_OK) return ST_FAULT;
  }
  return ST_OK;
}

function fxrstor(cpu: Cpu, d: Insn): number {
  if ((cpu.cr0 & 0xc) !== 0) return cpu.fault(NM, 0); // CR0.EM or CR0.TS
  const la = cpu.eaOf(d);
  if ((la & 15) !== 0) return cpu.fault(GP, 0);
  const nx = d.csize === 8 ? 16 : 8;
  const end = 160 + nx * 16;
  for (let o = 0; o < end; o += 8) {
    const lo = cpu.read(la + o, 8);
    if (lo === -1) return ST_FAULT;
    const hi = cpu.vh;
    for (let k = 0; k < 4; k++) {
      IMG[o + k] = lo >>> (8 * k);
      IMG[o + 4 + k] = hi >>> (8 * k);
    }
  }
  const mx = (IMG[24] | (IMG[25] << 8) | (IMG[26] << 16) | (IMG[27] << 24)) >>> 0;
  if ((mx & ~MXCSR_MASK) !== 0) return cpu.fault(GP, 0);
  cpu.mxcsr = mx;
  cpu.fpCw = IMG[0] | (IMG[1] << 8);
  const fsw = IMG[2] | (IMG[3] << 8);
  cpu.fpTop = (fsw >> 11) & 7;
  cpu.fpSw = fsw & ~0x3800;
  const ftw = IMG[4];
  let tag = 0;
  for (let i = 0; i < 8; i++) if ((ftw & (1 << i)) === 0) tag |= 3 << (2 * i);
  cpu.fpTag = tag;
  for (let i = 0; i < 8; i++) fxX87Hooks.restore(cpu, i, IMG.subarray(32 + 16 * i, 42 + 16 * i));
  for (let r = 0; r < nx; r++) {
    for (let k = 0; k < 4; k++) {
      const o = 160 + r * 16 + k * 4;
      cpu.xmm[r * 4 + k] = IMG[o] | (IMG[o + 1] << 8) | (IMG[o + 2] << 16) | (IMG[o + 3] << 24);
    }
  }
  return ST_OK;
}

export const STATE_OPS: readonly OpDef[] = [
  op('fxsave', 1, 0xae, 'M', fxsave, { ext: 0, flags: F_MEM | F_PFXSEL }),
  op('fxrstor', 1, 0xae, 'M', fxrstor, { ext: 1, flags: F_MEM | F_PFXSEL }),
  op('ldmxcsr', 1, 0xae, 'Md', ldmxcsr, { ext: 2, flags: F_MEM | F_PFXSEL }),
  op('stmxcsr', 1, 0xae, 'Md', stmxcsr, { ext: 3, flags: F_MEM | F_PFXSEL }),
];
