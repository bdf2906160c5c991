/**
 * x87 environment and state images: FLDENV/FNSTENV (14/28 bytes), FNSAVE/FRSTOR (94/108
 * bytes), in the 16-bit (66 prefix in 32/64-bit code) and 32-bit layouts, and the converters of
 * the x87 register slots of FXSAVE/FXRSTOR (installed into src/sse/state.ts's fxX87Hooks).
 *
 *  32-bit layout: +0 FCW, +4 FSW, +8 FTW, +12 FIP, +16 FCS | FOP << 16, +20 FDP, +24 FDS
 *  16-bit layout: +0 FCW, +2 FSW, +4 FTW, +6 FIP, +8 FCS, +10 FDP, +12 FDS
 *  (reserved upper halves of the 32-bit layout are stored as 0xffff)
 * FIP/FCS/FOP/FDP/FDS (the last instruction and operand pointers) are not tracked: they are
 * stored as 0 and ignored on load. FNSTENV/FNSAVE write the full tag word computed from the
 * register contents; FLDENV/FRSTOR/FXRSTOR keep only empty / not empty from the loaded tags.
 */
import type { Cpu } from '../cpu';
import type { Insn } from '../insn';
import { ST_FAULT, ST_OK } from '../constants';
import { fxX87Hooks } from '../sse/state';
import { F80, tagOf } from './float80';
import { fpEnterNoWait, readST, writePhys } from './state';
import { cwValue, fpInit, statusWord, updateES } from './misc';
import { read80, write80 } from './ldst';

const V = new F80();

/** The full tag word, recomputed from the contents of the non-empty registers. */
export function fullTagWord(cpu: Cpu): number {
  let t = 0;
  for (let p = 0; p < 8; p++) {
    let tag = (cpu.fpTag >> (2 * p)) & 3;
    if (tag !== 3) {
      V.se = cpu.fprExt[p] & 0xffff;
      V.hi = cpu.mmx[2 * p + 1] >>> 0;
      V.lo = cpu.mmx[2 * p] >>> 0;
      tag = tagOf(V);
    }
    t |= tag << (2 * p);
  }
  return t;
}

/** Recomputes the tag of every non-empty register from its contents (after a state load). */
function retag(cpu: Cpu, loaded: number): void {
  let t = 0;
  for (let p = 0; p < 8; p++) {
    let tag = 3;
    if (((loaded >> (2 * p)) & 3) !== 3) {
      V.se = cpu.fprExt[p] & 0xffff;
      V.hi = cpu.mmx[2 * p + 1] >>> 0;
      V.lo = cpu.mmx[2 * p] >>> 0;
      tag = tagOf(V);
    }
    t |= tag << (2 * p);
  }
  cpu.fpTag = t;
}

/**
 * Checks that the len bytes at la are writable without changing them (an image spans at most
 * two pages: its first and last bytes are rewritten with their own values), so that a faulting
 * FNSTENV/FNSAVE changes no memory and no state.
 */
function probeWrite(cpu: Cpu, la: number, len: number): number {
  for (const a of [la, la + len - 1]) {
    const v = cpu.read(a, 1);
    if (v === -1) return ST_FAULT;
    if (cpu.write(a, 1, v, 0) !== ST_OK) return ST_FAULT;
  }
  return ST_OK;
}

function envSize(d: Insn): number {
  return d.osize === 2 ? 14 : 28;
}

/** Writes the environment at la (the last-page-first order keeps a faulting store atomic). */
function storeEnv(cpu: Cpu, la: number, d: Insn): number {
  const sw = statusWord(cpu);
  const tw = fullTagWord(cpu);
  if (envSize(d) === 14) {
    if (cpu.write(la + 12, 2, 0, 0) !== ST_OK) return ST_FAULT;
    if (cpu.write(la + 8, 4, 0, 0) !== ST_OK) return ST_FAULT;
    if (cpu.write(la + 4, 4, tw, 0) !== ST_OK) return ST_FAULT;
    if (cpu.write(la, 4, cpu.fpCw | (sw << 16), 0) !== ST_OK) return ST_FAULT;
    return ST_OK;
  }
  if (cpu.write(la + 24, 4, 0xffff0000, 0) !== ST_OK) return ST_FAULT;
  if (cpu.write(la + 16, 8, 0, 0) !== ST_OK) return ST_FAULT;
  if (cpu.write(la + 8, 8, tw | 0xffff0000, 0) !== ST_OK) return ST_FAULT;
  if (cpu.write(la, 8, cpu.fpCw | 0xffff0000, sw | 0xffff0000) !== ST_OK) return ST_FAULT;
  return ST_OK;
}

/** Reads control, status and tag words of an environment at la into ENVIN. */
const ENVIN = { cw: 0, sw: 0, tw: 0 };
function loadEnv(cpu: Cpu, la: number, d: Insn): number {
  if (envSize(d) === 14) {
    const cw = cpu.read(la, 2);
    if (cw === -1) return ST_FAULT;
    const sw = cpu.read(la + 2, 2);
    if (sw === -1) return ST_FAULT;
    const tw = cpu.read(la + 4, 2);
    if (tw === -1) return ST_FAULT;
    if (cpu.read(la + 12, 2) === -1) return ST_FAULT;
    ENVIN.cw = cw;
    ENVIN.sw = sw;
    ENVIN.tw = tw;
    return ST_OK;
  }
  const cw = cpu.read(la, 2);
  if (cw === -1) return ST_FAULT;
  const sw = cpu.read(la + 4, 2);
  if (sw === -1) return ST_FAULT;
  const tw = cpu.read(la + 8, 2);
  if (tw === -1) return ST_FAULT;
  if (cpu.read(la + 24, 4) === -1) return ST_FAULT;
  ENVIN.cw = cw;
  ENVIN.sw = sw;
  ENVIN.tw = tw;
  return ST_OK;
}

function applyEnv(cpu: Cpu): void {
  cpu.fpCw = cwValue(ENVIN.cw);
  cpu.fpTop = (ENVIN.sw >> 11) & 7;
  cpu.fpSw = ENVIN.sw & ~0x3800;
  retag(cpu, ENVIN.tw);
}

function fnstenv(cpu: Cpu, d: Insn): number {
  if (fpEnterNoWait(cpu) !== ST_OK) return ST_FAULT;
  const la = cpu.eaOf(d);
  if (probeWrite(cpu, la, envSize(d)) !== ST_OK) return ST_FAULT;
  if (storeEnv(cpu, la, d) !== ST_OK) return ST_FAULT;
  cpu.fpCw |= 0x3f; // FNSTENV masks every exception afterwards (so ES/B clear)
  updateES(cpu);
  return ST_OK;
}

function fldenv(cpu: Cpu, d: Insn): number {
  if (fpEnterNoWait(cpu) !== ST_OK) return ST_FAULT;
  if (loadEnv(cpu, cpu.eaOf(d), d) !== ST_OK) return ST_FAULT;
  applyEnv(cpu);
  return ST_OK;
}

function fnsave(cpu: Cpu, d: Insn): number {
  if (fpEnterNoWait(cpu) !== ST_OK) return ST_FAULT;
  const la = cpu.eaOf(d);
  const n = envSize(d);
  if (probeWrite(cpu, la, n + 80) !== ST_OK) return ST_FAULT;
  // registers first (highest addresses), then the environment
  for (let i = 7; i >= 0; i--) {
    readST(cpu, i, V);
    if (write80(cpu, la + n + 10 * i, V) !== ST_OK) return ST_FAULT;
  }
  if (storeEnv(cpu, la, d) !== ST_OK) return ST_FAULT;
  fpInit(cpu);
  return ST_OK;
}

const REGS = [new F80(), new F80(), new F80(), new F80(), new F80(), new F80(), new F80(), new F80()];

function frstor(cpu: Cpu, d: Insn): number {
  if (fpEnterNoWait(cpu) !== ST_OK) return ST_FAULT;
  const la = cpu.eaOf(d);
  const n = envSize(d);
  if (loadEnv(cpu, la, d) !== ST_OK) return ST_FAULT;
  for (let i = 0; i < 8; i++) if (read80(cpu, la + n + 10 * i, REGS[i]) !== ST_OK) return ST_FAULT;
  const top = (ENVIN.sw >> 11) & 7;
  for (let i = 0; i < 8; i++) writePhys(cpu, (top + i) & 7, REGS[i]);
  applyEnv(cpu);
  return ST_OK;
}

// FXSAVE / FXRSTOR register slots: ST(i) as 10 bytes.
fxX87Hooks.save = (cpu: Cpu, i: number, out: Uint8Array): void => {
  readST(cpu, i, V);
  for (let k = 0; k < 4; k++) {
    out[k] = V.lo >>> (8 * k);
    out[4 + k] = V.hi >>> (8 * k);
  }
  out[8] = V.se;
  out[9] = V.se >>> 8;
};

fxX87Hooks.restore = (cpu: Cpu, i: number, src: Uint8Array): void => {
  V.lo = (src[0] | (src[1] << 8) | (src[2] << 16) | (src[3] << 24)) >>> 0;
  V.hi = (src[4] | (src[5] << 8) | (src[6] << 16) | (src[7] << 24)) >>> 0;
  V.se = src[8] | (src[9] << 8);
  // Contents only: FXRSTOR has set the tags (empty / valid) from the abridged tag word, and the
  // full tag word is recomputed from the contents whenever it is stored (FNSTENV, FNSAVE).
  const p = (cpu.fpTop + i) & 7;
  if (i === 0) cpu.fpCw = cwValue(cpu.fpCw); // FXRSTOR loaded FCW as is: apply the reserved bits
  cpu.fprExt[p] = V.se;
  cpu.mmx[2 * p + 1] = V.hi | 0;
  cpu.mmx[2 * p] = V.lo | 0;
};

export const ENV: Readonly<Record<string, (cpu: Cpu, d: Insn) => number>> = { fnstenv, fldenv, fnsave, frstor };
