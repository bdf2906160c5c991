/**
 * Inline templates (tier 2): JavaScript source for the hottest instruction forms, specialised
 * per operand size, register and constant (immediates, displacements and next RIPs folded into
 * the source), doing exactly what their handler in src/exec does: same results, same lazy-flag
 * record (the fields setLazy writes), same fault order. Memory goes through cpu.read/cpu.write
 * (paging, MMIO exits and faults unchanged). null = the block calls the handler instead.
 *
 * Conventions of the generated code (see compile.ts): `c` the Cpu, `L`/`H` its lo/hi register
 * arrays; a template returns 1 (ST_FAULT) after the helper recorded a fault, before any state
 * of the instruction was committed, so the interpreter's restartable state is kept.
 */
import { ARITH_FLAGS, CF, FS, GS, OF, PF, SF, ZF } from '../constants';
import { LZ_ADC1, LZ_ADD, LZ_LOGIC, LZ_RES, LZ_SBB1, LZ_SUB, canon, hiOf } from '../arith';
import type { Insn } from '../insn';
import { OPS } from '../optable';

/** An inline template: its source and whether it may write memory (then the block re-checks). */
export interface Inline {
  code: string;
  writes: boolean;
}

const TWO32 = 4294967296;
const MAX_CANON = 140737488355328;

// Forms (per op index, built on first use).
const NONE = 0;
const ALU_EG = 1;
const ALU_GE = 2;
const ALU_AI = 3;
const ALU_EI = 4;
const TEST_EG = 5;
const TEST_AI = 6;
const TEST_EI = 7;
const INC_E = 8;
const DEC_E = 9;
const INC_R = 10;
const MOV_EG = 11;
const MOV_GE = 12;
const MOV_RI = 13;
const MOV_EI = 14;
const ZX_B = 15;
const ZX_W = 16;
const SX_B = 17;
const SX_W = 18;
const LEA = 19;
const PUSH_R = 20;
const POP_R = 21;
const JCC = 22;
const JMP = 23;
const SHIFT = 24;

const ALU_KIND: Record<string, number> = { add: 0, or: 1, adc: 2, sbb: 3, and: 4, sub: 5, xor: 6, cmp: 7 };
const JCC_NAMES = new Set(['jo', 'jno', 'jb', 'jae', 'je', 'jne', 'jbe', 'ja', 'js', 'jns', 'jp', 'jnp', 'jl', 'jge', 'jle', 'jg']);

let forms: Uint8Array | null = null;

function formTable(): Uint8Array {
  if (forms != null) return forms;
  const t = new Uint8Array(OPS.length);
  for (let i = 1; i < OPS.length; i++) {
    const { mnem, operands: o } = OPS[i];
    let f = NONE;
    if (ALU_KIND[mnem] !== undefined) {
      if (o === 'Eb,Gb' || o === 'Ev,Gv') f = ALU_EG;
      else if (o === 'Gb,Eb' || o === 'Gv,Ev') f = ALU_GE;
      else if (o === 'AL,Ib' || o === 'rAX,Iz') f = ALU_AI;
      else if (o === 'Eb,Ib' || o === 'Ev,Iz' || o === 'Ev,Ib') f = ALU_EI;
    } else if (mnem === 'test') {
      if (o === 'Eb,Gb' || o === 'Ev,Gv') f = TEST_EG;
      else if (o === 'AL,Ib' || o === 'rAX,Iz') f = TEST_AI;
      else if (o === 'Eb,Ib' || o === 'Ev,Iz') f = TEST_EI;
    } else if (mnem === 'inc' || mnem === 'dec') {
      if (o === 'Eb' || o === 'Ev') f = mnem === 'inc' ? INC_E : DEC_E;
      else if (o === 'Zv') f = INC_R;
    } else if (mnem === 'mov') {
      if (o === 'Eb,Gb' || o === 'Ev,Gv') f = MOV_EG;
      else if (o === 'Gb,Eb' || o === 'Gv,Ev') f = MOV_GE;
      else if (o === 'Zb,Ib' || o === 'Zv,Iv') f = MOV_RI;
      else if (o === 'Eb,Ib' || o === 'Ev,Iz') f = MOV_EI;
    } else if (mnem === 'movzx') f = o === 'Gv,Eb' ? ZX_B : o === 'Gv,Ew' ? ZX_W : NONE;
    else if (mnem === 'movsx') f = o === 'Gv,Eb' ? SX_B : o === 'Gv,Ew' ? SX_W : NONE;
    else if (mnem === 'lea' && o === 'Gv,M') f = LEA;
    else if (mnem === 'push' && o === 'Zv') f = PUSH_R;
    else if (mnem === 'pop' && o === 'Zv') f = POP_R;
    else if (JCC_NAMES.has(mnem) && (o === 'Jb' || o === 'Jz')) f = JCC;
    else if (mnem === 'jmp' && (o === 'Jb' || o === 'Jz')) f = JMP;
    else if ((mnem === 'shl' || mnem === 'sal' || mnem === 'shr' || mnem === 'sar' || mnem === 'rol' || mnem === 'ror') && (o === 'Ev,Ib' || o === 'Ev,1')) f = SHIFT;
    t[i] = f;
  }
  forms = t;
  return t;
}

/** The inline form of op (0: none); for the op-frequency statistics and tests. */
export function inlineForm(op: number): number {
  return formTable()[op];
}

function mask(e: string, size: number): string {
  return size >= 4 ? `((${e}) >>> 0)` : size === 2 ? `((${e}) & 65535)` : `((${e}) & 255)`;
}

/** Register r at size: [lo unsigned, hi unsigned] expressions (getReg / getReg8). */
function regGet(d: Insn, r: number, size: number): [string, string] {
  if (size === 8) return [`(L[${r}] >>> 0)`, `(H[${r}] >>> 0)`];
  if (size === 4) return [`(L[${r}] >>> 0)`, '0'];
  if (size === 2) return [`(L[${r}] & 65535)`, '0'];
  if (d.rex === 0 && r >= 4 && r < 8) return [`((L[${r - 4}] >> 8) & 255)`, '0'];
  return [`(L[${r}] & 255)`, '0'];
}

/** Statements writing register r at size (setReg / setReg8 merge rules). */
function regSet(d: Insn, r: number, size: number, lo: string, hi: string): string {
  if (size === 8) return `L[${r}] = ${lo}; H[${r}] = ${hi};`;
  if (size === 4) return `L[${r}] = ${lo}; H[${r}] = 0;`;
  if (size === 2) return `L[${r}] = (L[${r}] & -65536) | ((${lo}) & 65535);`;
  if (d.rex === 0 && r >= 4 && r < 8) return `L[${r - 4}] = (L[${r - 4}] & -65281) | (((${lo}) & 255) << 8);`;
  return `L[${r}] = (L[${r}] & -256) | ((${lo}) & 255);`;
}

/**
 * Statements computing the memory operand's linear address into `la` (eaOf). 64-bit code with
 * a plain base/index/disp is computed inline; anything else calls cpu.eaOf on the record.
 */
function eaCode(d: Insn, next: number, k: (v: unknown) => string, size: number): string {
  if (d.csize !== 8) return `c.nextRip = ${next}; const la = c.eaOf(${k(d)}, ${size});`;
  let s: string;
  if (d.asize === 8) {
    if (d.ripRel) {
      // Constant: offsetOf's arithmetic with nextRip folded in.
      const t = (d.disp >>> 0) + ((next | 0) >>> 0);
      const hi = (d.dispHi + hiOf(next) + (t >= TWO32 ? 1 : 0)) | 0;
      const la = canon(t | 0, hi);
      s = `let la = ${la === la ? String(la) : 'NaN'};`;
    } else {
      s = `let ol = ${d.disp | 0}, oh = ${d.dispHi | 0}, u = 0;`;
      if (d.base >= 0) s += ` u = (ol >>> 0) + (L[${d.base}] >>> 0); oh = (oh + H[${d.base}] + (u >= 4294967296 ? 1 : 0)) | 0; ol = u | 0;`;
      if (d.index >= 0) {
        const sc = d.scale;
        const ih = sc === 0 ? `H[${d.index}]` : `((H[${d.index}] << ${sc}) | (L[${d.index}] >>> ${32 - sc}))`;
        s += ` u = (ol >>> 0) + ((L[${d.index}] << ${sc}) >>> 0); oh = (oh + ${ih} + (u >= 4294967296 ? 1 : 0)) | 0; ol = u | 0;`;
      }
      s += ' let la = (oh << 16) >> 16 === oh ? oh * 4294967296 + (ol >>> 0) : NaN;';
    }
  } else if (d.asize === 4) {
    let e = `${d.disp | 0}`;
    if (d.ripRel) e += ` + ${next | 0}`;
    if (d.base >= 0) e += ` + L[${d.base}]`;
    if (d.index >= 0) e += ` + (L[${d.index}] << ${d.scale})`;
    s = `let la = (${e}) >>> 0;`;
  } else return `c.nextRip = ${next}; const la = c.eaOf(${k(d)}, ${size});`;
  if (d.seg === FS || d.seg === GS) s += ` la += c.segBase[${d.seg}]; if (!(la >= -${MAX_CANON} && la < ${MAX_CANON})) la = NaN;`;
  return s;
}

/** Reads the E operand at size into a, aH (readE / readESized); returns on a fault. */
function readE(d: Insn, next: number, k: (v: unknown) => string, size: number, a: string, aH: string): string {
  if (d.mod === 3) {
    const [lo, hi] = regGet(d, d.rm, size);
    return `const ${a} = ${lo}, ${aH} = ${hi};`;
  }
  return `${eaCode(d, next, k, size)} const ${a} = c.read(la, ${size}); if (${a} < 0) return 1; const ${aH} = ${size === 8 ? 'c.vh >>> 0' : '0'};`;
}

/** Writes r, rh to the E operand (la from readE or eaCode for memory); returns on a fault. */
function writeE(d: Insn, size: number, r: string, rh: string): string {
  if (d.mod === 3) return regSet(d, d.rm, size, r, rh);
  return `s = c.write(la, ${size}, ${r}, ${rh}); if (s !== 0) return s;`;
}

/** alu(): r, rh and the lazy record for kind on a/aH and b/bH (unsigned, hi halves 0 below 8). */
function aluCode(kind: number, size: number): string {
  const s8 = size === 8;
  let s = '';
  let op: string;
  switch (kind) {
    case 0:
    case 2:
      s += kind === 2 ? 'const cy = c.cf(); const t = a + b + cy;' : 'const t = a + b;';
      s += s8 ? ' const r = t >>> 0, rh = (aH + bH + (t >= 4294967296 ? 1 : 0)) >>> 0;' : ` const r = ${mask('t', size)}, rh = 0;`;
      op = kind === 2 ? `(cy ? ${LZ_ADC1} : ${LZ_ADD})` : String(LZ_ADD);
      break;
    case 3:
    case 5:
    case 7:
      s += kind === 3 ? 'const cy = c.cf(); const t = a - b - cy;' : 'const t = a - b;';
      s += s8 ? ' const r = t >>> 0, rh = (aH - bH - (t < 0 ? 1 : 0)) >>> 0;' : ` const r = ${mask('t', size)}, rh = 0;`;
      op = kind === 3 ? `(cy ? ${LZ_SBB1} : ${LZ_SUB})` : String(LZ_SUB);
      break;
    default: {
      const o = kind === 1 ? '|' : kind === 4 ? '&' : '^';
      s += `const r = (a ${o} b) >>> 0, rh = ${s8 ? `(aH ${o} bH) >>> 0` : '0'};`;
      op = String(LZ_LOGIC);
    }
  }
  s += ` c.lzOp = ${op}; c.lzSize = ${size}; c.lzRes = r; c.lzResH = rh; c.lzA = a; c.lzAH = aH; c.lzB = b; c.lzBH = bH; c.lzMask = ${ARITH_FLAGS};`;
  return s;
}

/** Unsigned immediate at size (immOf) as [lo, hi] literals. */
function imm(d: Insn, size: number): [string, string] {
  const lo = size >= 4 ? d.imm >>> 0 : size === 2 ? d.imm & 0xffff : d.imm & 0xff;
  return [String(lo), size === 8 ? String(d.immHi >>> 0) : '0'];
}

/**
 * The inline source of instruction d (next: its next RIP), or null. For JCC/JMP (only as a
 * block's last instruction) the code leaves the new RIP in c.nextRip.
 */
export function inlineInsn(d: Insn, next: number, k: (v: unknown) => string): Inline | null {
  const f = formTable()[d.op];
  if (f === NONE) return null;
  const size = d.osize;
  const mem = d.mod !== 3;
  switch (f) {
    case ALU_EG:
    case ALU_GE:
    case ALU_AI:
    case ALU_EI:
    case TEST_EG:
    case TEST_AI:
    case TEST_EI: {
      const kind = f >= TEST_EG ? 4 : ALU_KIND[OPS[d.op].mnem];
      const noWrite = kind === 7 || f >= TEST_EG;
      let code = '{ ';
      if (f === ALU_AI || f === TEST_AI) {
        const [lo, hi] = regGet(d, 0, size);
        const [il, ih] = imm(d, size);
        code += `const a = ${lo}, aH = ${hi}, b = ${il}, bH = ${ih}; ${aluCode(kind, size)}`;
        if (!noWrite) code += ' ' + regSet(d, 0, size, 'r', 'rh | 0');
        return { code: code + ' }', writes: false };
      }
      if (f === ALU_GE) {
        const [gl, gh] = regGet(d, d.reg, size);
        code += `${readE(d, next, k, size, 'b', 'bH')} const a = ${gl}, aH = ${gh}; ${aluCode(kind, size)}`;
        if (!noWrite) code += ' ' + regSet(d, d.reg, size, 'r', 'rh | 0');
        return { code: code + ' }', writes: false };
      }
      code += readE(d, next, k, size, 'a', 'aH');
      if (f === ALU_EG || f === TEST_EG) {
        const [gl, gh] = regGet(d, d.reg, size);
        code += ` const b = ${gl}, bH = ${gh};`;
      } else {
        const [il, ih] = imm(d, size);
        code += ` const b = ${il}, bH = ${ih};`;
      }
      code += ' ' + aluCode(kind, size);
      if (!noWrite) code += ' ' + writeE(d, size, 'r', 'rh | 0');
      return { code: code + ' }', writes: mem && !noWrite };
    }
    case INC_E:
    case DEC_E:
    case INC_R: {
      const dir = f === INC_E || (f === INC_R && (d.opcode & 8) === 0) ? 0 : 5;
      let code = '{ ';
      if (f === INC_R) {
        const [lo, hi] = regGet(d, d.rm, size);
        code += `const a = ${lo}, aH = ${hi};`;
      } else code += readE(d, next, k, size, 'a', 'aH');
      code += ` const cf = c.cf(), b = 1, bH = 0; ${aluCode(dir, size)} c.flags = (c.flags & ${~CF}) | cf; c.lzMask = ${ARITH_FLAGS & ~CF};`;
      code += ' ' + (f === INC_R ? regSet(d, d.rm, size, 'r', 'rh | 0') : writeE(d, size, 'r', 'rh | 0'));
      return { code: code + ' }', writes: mem && f !== INC_R };
    }
    case MOV_EG: {
      const [gl, gh] = regGet(d, d.reg, size);
      if (!mem) return { code: `{ const v = ${gl}, vh = ${gh}; ${regSet(d, d.rm, size, 'v', 'vh')} }`, writes: false };
      return { code: `{ const v = ${gl}, vh = ${size === 8 ? `H[${d.reg}]` : '0'}; ${eaCode(d, next, k, size)} ${writeE(d, size, 'v', 'vh')} }`, writes: true };
    }
    case MOV_GE:
      return { code: `{ ${readE(d, next, k, size, 'v', 'vh')} ${regSet(d, d.reg, size, 'v', 'vh | 0')} }`, writes: false };
    case MOV_RI:
      return { code: `{ ${regSet(d, d.rm, size, String(d.imm | 0), String(d.immHi | 0))} }`, writes: false };
    case MOV_EI:
      if (!mem) return { code: `{ ${regSet(d, d.rm, size, String(d.imm | 0), String(d.immHi | 0))} }`, writes: false };
      return { code: `{ ${eaCode(d, next, k, size)} ${writeE(d, size, String(d.imm | 0), String(d.immHi | 0))} }`, writes: true };
    case ZX_B:
    case ZX_W:
    case SX_B:
    case SX_W: {
      const src = f === ZX_B || f === SX_B ? 1 : 2;
      let code = `{ ${readE(d, next, k, src, 'v', 'vh')}`;
      if (f === ZX_B || f === ZX_W) code += ' ' + regSet(d, d.reg, size, 'v', '0');
      else code += ` const x = (v << ${32 - src * 8}) >> ${32 - src * 8}; ${regSet(d, d.reg, size, 'x', 'x >> 31')}`;
      return { code: code + ' }', writes: false };
    }
    case LEA: {
      if (d.ripRel || d.asize === 2) return null;
      if (d.asize === 8) {
        let s = `{ let ol = ${d.disp | 0}, oh = ${d.dispHi | 0}, u = 0;`;
        if (d.base >= 0) s += ` u = (ol >>> 0) + (L[${d.base}] >>> 0); oh = (oh + H[${d.base}] + (u >= 4294967296 ? 1 : 0)) | 0; ol = u | 0;`;
        if (d.index >= 0) {
          const sc = d.scale;
          const ih = sc === 0 ? `H[${d.index}]` : `((H[${d.index}] << ${sc}) | (L[${d.index}] >>> ${32 - sc}))`;
          s += ` u = (ol >>> 0) + ((L[${d.index}] << ${sc}) >>> 0); oh = (oh + ${ih} + (u >= 4294967296 ? 1 : 0)) | 0; ol = u | 0;`;
        }
        return { code: `${s} ${regSet(d, d.reg, size, 'ol >>> 0', 'oh')} }`, writes: false };
      }
      let e = `${d.disp | 0}`;
      if (d.base >= 0) e += ` + L[${d.base}]`;
      if (d.index >= 0) e += ` + (L[${d.index}] << ${d.scale})`;
      return { code: `{ const o = (${e}) >>> 0; ${regSet(d, d.reg, size, 'o', '0')} }`, writes: false };
    }
    case PUSH_R: {
      const [lo] = regGet(d, d.rm, size);
      return { code: `s = c.push(${size}, ${lo}, ${size === 8 ? `H[${d.rm}]` : '0'}); if (s !== 0) return s;`, writes: true };
    }
    case POP_R:
      return { code: `{ const v = c.pop(${size}); if (v < 0) return 1; ${regSet(d, d.rm, size, 'v', 'c.vh')} }`, writes: false };
    case JCC:
    case JMP: {
      const br = `s = c.branch(${next + d.imm}, ${size}); if (s !== 0) return s;`;
      if (f === JMP) return { code: `c.nextRip = ${next}; ${br}`, writes: false };
      return { code: `c.nextRip = ${next}; if (c.cond(${d.opcode & 15})) { ${br} }`, writes: false };
    }
    case SHIFT:
      return shiftCode(d, next, k);
    default:
      return null;
  }
}

/** ROL/ROR by a constant count n >= 1: flags settled, then CF/OF eager (shiftOp's rotate case). */
function rotateCode(d: Insn, next: number, k: (v: unknown) => string, n: number): Inline {
  const size = d.osize;
  const rol = (d.reg & 7) === 0;
  let c: string;
  if (size === 4) {
    const left = rol ? n : 32 - n;
    c = left === 32 || left === 0 ? 'const r = v, rh = 0;' : `const r = ((v << ${left}) | (v >>> ${32 - left})) >>> 0, rh = 0;`;
    c += rol ? ' const cf = r & 1, of = (r >>> 31) ^ cf;' : ' const cf = r >>> 31, of = cf ^ ((r >>> 30) & 1);';
  } else {
    const left = rol ? n : 64 - n;
    if (left < 32) c = `const r = ((v << ${left}) | (vh >>> ${32 - left})) >>> 0, rh = (vh << ${left}) | (v >>> ${32 - left});`;
    else if (left === 32) c = 'const r = vh >>> 0, rh = v | 0;';
    else c = `const r = ((vh << ${left - 32}) | (v >>> ${64 - left})) >>> 0, rh = (v << ${left - 32}) | (vh >>> ${64 - left});`;
    c += rol ? ' const cf = r & 1, of = (rh >>> 31) ^ cf;' : ' const cf = rh >>> 31, of = cf ^ ((rh >>> 30) & 1);';
  }
  const code = `{ ${readE(d, next, k, size, 'v', 'vh')} ${c} const f = c.settleFlags(); c.flags = (f & ${~(CF | OF)}) | cf | (of << 11); ${writeE(d, size, 'r', 'rh')} }`;
  return { code, writes: d.mod !== 3 };
}

/**
 * SHL/SHR/SAR of a 32/64-bit operand by a constant count (shiftOp in src/exec/shift.ts):
 * CF/OF eager, AF cleared, SF/ZF/PF lazy from the result (setLazyRes). Count 0: the handler.
 */
function shiftCode(d: Insn, next: number, k: (v: unknown) => string): Inline | null {
  const size = d.osize;
  if (size !== 4 && size !== 8) return null;
  const n = (d.opcode === 0xd1 ? 1 : d.imm & 0xff) & (size === 8 ? 63 : 31);
  if (n === 0) return null;
  const kind = d.reg & 7;
  if (kind === 0 || kind === 1) return rotateCode(d, next, k, n);
  let c: string;
  if (size === 4) {
    if (kind === 4 || kind === 6) c = `const r = (v << ${n}) >>> 0, rh = 0, cf = (v >>> ${32 - n}) & 1, of = (r >>> 31) ^ cf;`;
    else if (kind === 5) c = `const r = v >>> ${n}, rh = 0, cf = (v >>> ${n - 1}) & 1, of = v >>> 31;`;
    else c = `const r = ((v | 0) >> ${n}) >>> 0, rh = 0, cf = ((v | 0) >> ${n - 1}) & 1, of = 0;`;
  } else if (kind === 4 || kind === 6) {
    if (n < 32) c = `const r = (v << ${n}) >>> 0, rh = (vh << ${n}) | (v >>> ${32 - n}), cf = (vh >>> ${32 - n}) & 1;`;
    else if (n === 32) c = 'const r = 0, rh = v | 0, cf = vh & 1;';
    else c = `const r = 0, rh = v << ${n - 32}, cf = (v >>> ${64 - n}) & 1;`;
    c += ' const of = (rh >>> 31) ^ cf;';
  } else if (kind === 5) {
    if (n < 32) c = `const r = ((v >>> ${n}) | (vh << ${32 - n})) >>> 0, rh = vh >>> ${n}, cf = (v >>> ${n - 1}) & 1;`;
    else if (n === 32) c = 'const r = vh >>> 0, rh = 0, cf = v >>> 31;';
    else c = `const r = vh >>> ${n - 32}, rh = 0, cf = (vh >>> ${n - 33}) & 1;`;
    c += ' const of = vh >>> 31;';
  } else {
    if (n < 32) c = `const r = ((v >>> ${n}) | (vh << ${32 - n})) >>> 0, rh = (vh | 0) >> ${n}, cf = (v >>> ${n - 1}) & 1;`;
    else if (n === 32) c = 'const r = vh >>> 0, rh = (vh | 0) >> 31, cf = v >>> 31;';
    else c = `const r = ((vh | 0) >> ${n - 32}) >>> 0, rh = (vh | 0) >> 31, cf = ((vh | 0) >> ${n - 33}) & 1;`;
    c += ' const of = 0;';
  }
  let code = `{ ${readE(d, next, k, size, 'v', 'vh')} ${c}`;
  code += ` c.flags = (c.flags & ${~ARITH_FLAGS}) | cf | (of << 11); c.lzOp = ${LZ_RES}; c.lzSize = ${size}; c.lzRes = r; c.lzResH = ${size === 8 ? 'rh >>> 0' : '0'}; c.lzMask = ${SF | ZF | PF};`;
  code += ` ${writeE(d, size, 'r', 'rh')} }`;
  return { code, writes: d.mod !== 3 };
}
