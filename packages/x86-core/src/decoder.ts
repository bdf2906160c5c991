/**
 * The decoder: instruction bytes -> an Insn record, driven by the packed tables of optable.ts.
 * It reads bytes through CpuMemory.fetch8 and never looks at register values, so its output
 * can be cached per code page (see DESIGN.md, "decode cache").
 */
import { CS, DS, ES, FS, GP, GS, RBP, RSP, SS, ST_FAULT, ST_OK } from './constants';
import type { Insn } from './insn';
import { MEM_PF_BASE, type CpuMemory } from './memory';
import { GROUP, OP_EXEC, OP_FAST, OP_FLAGS, OP_IMM, RMSUB, SLOT, SLOT_MODRM } from './optable';
import {
  F_BYTE,
  F_DEF64,
  F_FORCE64,
  F_INV64,
  F_LOCK,
  F_MODRM,
  F_NO66FB,
  F_NOREPFB,
  F_ONLY64,
  F_SIZE16,
  F_SIZE32,
  IMM_B,
  IMM_MOFFS,
  IMM_UB,
  IMM_V,
  IMM_W,
  IMM_WB,
  IMM_Z,
  PFX_66,
  PFX_F2,
  PFX_F3,
  PFX_NONE,
} from './table';

/** Where decode() reports a fetch fault: the memory's fault code (negative) or a vector. */
export class DecodeFault {
  /** Vector when the decoder itself faults (#GP for > 15 bytes, #UD), or -1. */
  vector = -1;
  /** The memory's fault code when a fetch faulted (< 0), else 0. */
  memCode = 0;
}

// 16-bit ModRM addressing: base and index register of rm 0..7 (-1 none).
const BASE16 = new Int8Array([3, 3, 5, 5, 6, 7, 5, 3]);
const INDEX16 = new Int8Array([6, 7, 6, 7, -1, -1, -1, -1]);

/**
 * Decodes the instruction at linear address `la` for code size `csize` (2, 4 or 8) into d.
 * Returns ST_OK, or ST_FAULT with `f` saying why (fetch fault, > 15 bytes). Encodings that
 * are not valid decode to op 0 (#UD) with the right length where it is known.
 */
export function decode(mem: CpuMemory, la: number, csize: number, d: Insn, f: DecodeFault): number {
  // Fetch up to 15 bytes once; a byte past `avail` is a fetch fault only if it is needed.
  if (mem.fetchBytes !== undefined) avail = mem.fetchBytes(la, BUF, 15);
  else {
    avail = 0;
    while (avail < 15) {
      const b = mem.fetch8(la + avail);
      if (b < 0) break;
      BUF[avail++] = b;
    }
  }
  if (avail < 15) {
    missCode = mem.fetch8(la + avail);
    if (missCode >= 0) missCode = MEM_PF_BASE; // the memory changed its mind: treat as not present
  }
  const m64 = csize === 8;
  let n = 0;
  let p66 = 0;
  let p67 = 0;
  let rep = 0;
  let lock = 0;
  let seg = -1;
  let rex = 0;
  let b: number;
  // Prefixes. REX counts only when it is the last prefix before the opcode.
  for (;;) {
    if (n >= 15) return tooLong(f);
    b = fb(n);
    if (b < 0) return fetchFault(f, b);
    n++;
    switch (b) {
      case 0x66: p66 = 1; rex = 0; continue;
      case 0x67: p67 = 1; rex = 0; continue;
      case 0xf0: lock = 1; rex = 0; continue;
      case 0xf2: rep = 2; rex = 0; continue;
      case 0xf3: rep = 3; rex = 0; continue;
      case 0x26: if (!m64) seg = ES; rex = 0; continue;
      case 0x2e: if (!m64) seg = CS; rex = 0; continue;
      case 0x36: if (!m64) seg = SS; rex = 0; continue;
      case 0x3e: if (!m64) seg = DS; rex = 0; continue;
      case 0x64: seg = FS; rex = 0; continue;
      case 0x65: seg = GS; rex = 0; continue;
    }
    if (m64 && (b & 0xf0) === 0x40) { rex = b; continue; }
    break;
  }
  let map = 0;
  if (b === 0x0f) {
    if (n >= 15) return tooLong(f);
    b = fb(n);
    if (b < 0) return fetchFault(f, b);
    n++;
    map = 1;
    if (b === 0x38 || b === 0x3a) {
      map = b === 0x38 ? 2 : 3;
      if (n >= 15) return tooLong(f);
      b = fb(n);
      if (b < 0) return fetchFault(f, b);
      n++;
    }
  } else if (b === 0xc4 || b === 0xc5 || b === 0x62) {
    // VEX (C4/C5) and EVEX (62): always in 64-bit mode; in 16/32-bit mode only when the next
    // byte has mod = 3 (otherwise it is LES/LDS/BOUND). No AVX is advertised: #UD.
    const nb = fb(n);
    if (nb < 0) return fetchFault(f, nb);
    if (m64 || (nb & 0xc0) === 0xc0) {
      d.op = 0; d.len = n + 1; d.map = 0; d.opcode = b; d.exec = OP_EXEC[0];
      return ST_OK;
    }
  }
  // Mandatory prefix selection: F2/F3 (last one) first, then 66, then none.
  const base = (map * 256 + b) * 4;
  let pfx = rep === 3 ? PFX_F3 : rep === 2 ? PFX_F2 : p66 ? PFX_66 : PFX_NONE;
  let e = SLOT[base + pfx];
  if (e === 0 && pfx !== PFX_NONE) {
    if (pfx !== PFX_66 && p66) { pfx = PFX_66; e = SLOT[base + pfx]; }
    if (e === 0) { pfx = PFX_NONE; e = SLOT[base]; }
  }
  // Fallback rules: a prefix that did not select this entry must not be one it forbids.
  const fbMask = (rep !== 0 && pfx < PFX_F3 ? F_NOREPFB : 0) | (p66 && pfx === PFX_NONE ? F_NO66FB : 0);
  if (pfx === PFX_66) p66 = 0; // consumed as opcode, not an operand-size override
  let mod = 3;
  let reg = 0;
  let rm = 0;
  let modrm = -1;
  if (SLOT_MODRM[base + pfx]) {
    if (n >= 15) return tooLong(f);
    modrm = fb(n);
    if (modrm < 0) return fetchFault(f, modrm);
    n++;
    mod = modrm >> 6;
    reg = (modrm >> 3) & 7;
    rm = modrm & 7;
    if (e < 0) {
      e = GROUP[(-e - 1) * 16 + (mod === 3 ? 8 : 0) + reg];
      if (e < 0) e = RMSUB[(-e - 1) * 8 + rm];
    }
  }
  if ((OP_FLAGS[e] & fbMask) !== 0) e = 0;
  const fl = OP_FLAGS[e];
  d.map = map;
  d.opcode = b;
  d.csize = csize;
  d.rex = rex;
  d.rep = rep;
  d.lock = lock;
  d.p66 = p66;
  d.segOverride = seg >= 0 ? 1 : 0;
  d.ripRel = 0;
  d.eaKind = 0;
  d.base = -1;
  d.index = -1;
  d.scale = 0;
  d.disp = 0;
  d.dispHi = 0;
  d.imm = 0;
  d.immHi = 0;
  d.imm2 = 0;
  // Sizes.
  const asize = m64 ? (p67 ? 4 : 8) : csize === 4 ? (p67 ? 2 : 4) : p67 ? 4 : 2;
  let osize: number;
  if (fl & F_BYTE) osize = 1;
  else if (fl & F_SIZE16) osize = 2;
  else if (fl & F_SIZE32) osize = 4;
  else if (m64) {
    if (fl & F_FORCE64) osize = 8;
    else if (rex & 8) osize = 8;
    else if (fl & F_DEF64) osize = p66 ? 2 : 8;
    else osize = p66 ? 2 : 4;
  } else osize = (csize === 4) !== (p66 === 1) ? 4 : 2;
  d.osize = osize;
  d.asize = asize;
  // Mode validity and LOCK.
  let bad = (m64 && (fl & F_INV64) !== 0) || (!m64 && (fl & F_ONLY64) !== 0);
  if (lock && ((fl & F_LOCK) === 0 || mod === 3)) bad = true;
  // ModRM operand.
  if (fl & F_MODRM || modrm >= 0) {
    d.mod = mod;
    d.reg = reg | ((rex & 4) << 1);
    d.rm = rm | ((rex & 1) << 3);
    if (mod !== 3) {
      if (asize === 2) {
        d.base = BASE16[rm];
        d.index = INDEX16[rm];
        d.seg = seg >= 0 ? seg : d.base === RBP ? SS : DS;
        if (mod === 0 && rm === 6) { d.base = -1; d.seg = seg >= 0 ? seg : DS; }
        if (mod === 1) {
          const v = fb(n); if (v < 0) return fetchFault(f, v); n++;
          d.disp = (v << 24) >> 24;
        } else if (mod === 2 || (mod === 0 && rm === 6)) {
          const v0 = fb(n); if (v0 < 0) return fetchFault(f, v0);
          const v1 = fb(n + 1); if (v1 < 0) return fetchFault(f, v1);
          n += 2;
          d.disp = (((v1 << 8) | v0) << 16) >> 16;
        }
      } else {
        let bse = rm;
        let hasSib = false;
        if (rm === 4) {
          if (n >= 15) return tooLong(f);
          const sib = fb(n);
          if (sib < 0) return fetchFault(f, sib);
          n++;
          hasSib = true;
          d.scale = sib >> 6;
          const idx = ((sib >> 3) & 7) | ((rex & 2) << 2);
          d.index = idx === 4 ? -1 : idx;
          bse = sib & 7;
        }
        if (mod === 0 && bse === 5) {
          d.base = -1;
          if (!hasSib && m64) d.ripRel = 1;
        } else d.base = bse | ((rex & 1) << 3);
        d.seg = seg >= 0 ? seg : d.base === RSP || d.base === RBP ? SS : DS;
        if (mod === 1) {
          const v = fb(n); if (v < 0) return fetchFault(f, v); n++;
          d.disp = (v << 24) >> 24;
        } else if (mod === 2 || (mod === 0 && bse === 5)) {
          let v = 0;
          for (let i = 0; i < 4; i++) {
            if (n >= 15) return tooLong(f);
            const x = fb(n);
            if (x < 0) return fetchFault(f, x);
            v |= x << (8 * i);
            n++;
          }
          d.disp = v;
        }
      }
      d.dispHi = d.disp >> 31;
      if (asize === 8) d.eaKind = d.seg === FS || d.seg === GS ? (d.ripRel !== 0 ? 0 : 3) : d.ripRel !== 0 ? 2 : 1;
    } else d.seg = seg >= 0 ? seg : DS;
  } else {
    d.mod = 3;
    d.seg = seg >= 0 ? seg : DS;
    // Register-in-opcode forms (50+r, B8+r, 91+r, C8+r BSWAP): rm = low 3 bits + REX.B.
    d.rm = (b & 7) | ((rex & 1) << 3);
    d.reg = d.rm;
  }
  // Immediates.
  const ik = OP_IMM[e];
  if (ik !== 0) {
    let size: number;
    switch (ik) {
      case IMM_B: case IMM_UB: size = 1; break;
      case IMM_W: size = 2; break;
      case IMM_Z: size = osize === 2 ? 2 : 4; break;
      case IMM_V: size = osize; break;
      case IMM_MOFFS: size = asize; break;
      case IMM_WB: size = 3; break;
      default: size = osize === 2 ? 4 : 6; // IMM_AP: offset16/32 + selector
    }
    if (n + size > 15) return tooLong(f);
    let lo = 0;
    let hi = 0;
    for (let i = 0; i < size; i++) {
      const x = fb(n + i);
      if (x < 0) return fetchFault(f, x);
      if (i < 4) lo |= x << (8 * i);
      else hi |= x << (8 * (i - 4));
    }
    n += size;
    switch (ik) {
      case IMM_B: d.imm = (lo << 24) >> 24; d.immHi = d.imm >> 31; break;
      case IMM_UB: d.imm = lo; break;
      case IMM_W: d.imm = lo; break;
      case IMM_Z:
        d.imm = size === 2 ? (lo << 16) >> 16 : lo | 0;
        d.immHi = d.imm >> 31;
        break;
      case IMM_V: d.imm = lo | 0; d.immHi = hi | 0; break;
      case IMM_MOFFS: d.disp = lo | 0; d.dispHi = hi | 0; d.base = -1; d.index = -1; d.eaKind = 0; break;
      case IMM_WB: d.imm = lo & 0xffff; d.imm2 = lo >>> 16; break;
      default:
        if (size === 4) { d.imm = lo & 0xffff; d.imm2 = lo >>> 16; } else { d.imm = lo | 0; d.imm2 = hi & 0xffff; }
    }
  }
  if (n > 15) return tooLong(f);
  d.len = n;
  if (bad) e = 0;
  d.op = e;
  const pick = OP_FAST[e];
  d.exec = (pick == null ? null : pick(d)) ?? OP_EXEC[e];
  return ST_OK;
}

/** Instruction bytes of the current decode, how many are fetchable, and the fault past them. */
const BUF = new Uint8Array(16);
let avail = 0;
let missCode = 0;

/** Byte n of the instruction, or the (negative) fetch fault code when it is not fetchable. */
function fb(n: number): number {
  return n < avail ? BUF[n] : missCode;
}

function tooLong(f: DecodeFault): number {
  f.vector = GP;
  f.memCode = 0;
  return ST_FAULT;
}

function fetchFault(f: DecodeFault, code: number): number {
  f.vector = -1;
  f.memCode = code;
  return ST_FAULT;
}

