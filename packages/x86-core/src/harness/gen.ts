/**
 * Test-case generator for the differential tests: walks the opcode table (OPS) and turns each
 * entry's mnemonic and operand syntax into nasm text with random operands (edge values
 * weighted in), plus hand-written templates for control flow, stack and string instructions.
 * Everything is seeded, so a failure names a reproducible case.
 *
 * Flag rule: a case compares DF and the arithmetic flags the SDM defines for that instruction
 * (OpDef.defFlags plus the flags it does not touch); OpDef.undefFlags are never compared, and
 * neither are the count-dependent undefined flags of shifts (OF for counts other than 1, CF
 * for SHL/SHR/SAR counts >= the operand width).
 */
import { ARITH_FLAGS, DF } from '../constants';
import { OPS } from '../optable';
import { F_INV64, F_ONLY64, type OpDef } from '../table';
import { DATA_ADDR, HI_LEN, type CodeBits } from './case';
import { Mulberry32 as Rng } from './rng';

/** Data bytes the integer cases fill (the runner carries DATA_LEN; the rest stays zero). */
const DATA_LEN = 512;

export interface GenCase {
  /** Human-readable: which op and form. */
  name: string;
  /** OPS index this case was generated for (-1: template). */
  op: number;
  mode: CodeBits;
  text: string;
  regs: Uint32Array;
  rflags: number;
  data: Uint8Array;
  /** 16-bit code: the memory at HI_ADDR (offsets from 0xfe00 of the 16-bit data segments). */
  hi?: Uint8Array;
  /** EFLAGS bits compared. */
  flagMask: number;
}

const EDGE = [0, 1, 2, 3, 0x7f, 0x80, 0x81, 0xff, 0x100, 0x7fff, 0x8000, 0x8001, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0x80000001, 0xfffffffe, 0xffffffff];
const HI_EDGE = [0, 0, 0xffffffff, 0xffffffff, 0x7fffffff, 0x80000000, 1];

/** A random 32-bit word, one time in two an edge value. */
export function word(rng: Rng): number {
  const k = rng.int(8);
  if (k < 4) return rng.pick(EDGE);
  if (k === 4) return rng.int(16);
  return rng.u32();
}

function hiWord(rng: Rng, lo: number): number {
  const k = rng.int(6);
  if (k === 0) return (lo | 0) < 0 ? 0xffffffff : 0; // sign-extension of lo
  if (k < 3) return rng.pick(HI_EDGE);
  return rng.u32();
}

const R64 = ['rax', 'rcx', 'rdx', 'rbx', 'rsp', 'rbp', 'rsi', 'rdi', 'r8', 'r9', 'r10', 'r11', 'r12', 'r13', 'r14', 'r15'];
const R32 = ['eax', 'ecx', 'edx', 'ebx', 'esp', 'ebp', 'esi', 'edi', 'r8d', 'r9d', 'r10d', 'r11d', 'r12d', 'r13d', 'r14d', 'r15d'];
const R16 = ['ax', 'cx', 'dx', 'bx', 'sp', 'bp', 'si', 'di', 'r8w', 'r9w', 'r10w', 'r11w', 'r12w', 'r13w', 'r14w', 'r15w'];
const R8 = ['al', 'cl', 'dl', 'bl', 'spl', 'bpl', 'sil', 'dil', 'r8b', 'r9b', 'r10b', 'r11b', 'r12b', 'r13b', 'r14b', 'r15b'];
const R8H = ['al', 'cl', 'dl', 'bl', 'ah', 'ch', 'dh', 'bh'];

function regName(r: number, size: number, legacy8: boolean): string {
  if (size === 8) return R64[r];
  if (size === 4) return R32[r];
  if (size === 2) return R16[r];
  return legacy8 ? R8H[r] : R8[r];
}

const SIZE_KW: Record<number, string> = { 1: 'byte', 2: 'word', 4: 'dword', 8: 'qword' };

/**
 * The data base register: r15 in 64-bit code, ebp in 32-bit code; rSP points into data too.
 * 16-bit code addresses its data segments with the 16-bit forms instead (addr16).
 */
function dataBase(mode: CodeBits): number {
  return mode === 64 ? 15 : mode === 32 ? 5 : -1;
}

/** Registers a generated operand may use (not rSP, not the data base, not `used`). */
function freeRegs(mode: CodeBits, used: readonly number[] = []): number[] {
  const out: number[] = [];
  for (let r = 0; r < (mode === 64 ? 16 : 8); r++) if (r !== 4 && r !== dataBase(mode) && !used.includes(r)) out.push(r);
  return out;
}

/** The 16-bit addressing forms: base/index registers (BX 3, BP 5, SI 6, DI 7). */
const ADDR16: readonly (readonly number[])[] = [[3, 6], [3, 7], [5, 6], [5, 7], [6], [7], [5], [3], []];
const R16_NAMES: Record<number, string> = { 3: 'bx', 5: 'bp', 6: 'si', 7: 'di' };

/**
 * A 16-bit memory operand whose offset is t (mod 64 KiB): picks a form and a displacement and
 * solves the registers for t, so base + index + displacement wraps around 64 KiB as often as
 * not. The upper halves of the registers are random (16-bit addressing must ignore them).
 */
export function addr16(rng: Rng, regs: Uint32Array, t: number): { text: string; used: readonly number[] } {
  const form = rng.pick(ADDR16);
  const k = rng.int(3);
  const disp = form.length === 0 ? t & 0xffff : k === 0 ? 0 : k === 1 ? rng.int(256) - 128 : rng.u32() & 0xffff;
  const vals = form.length === 2 ? [word(rng) & 0xffff] : [];
  if (form.length > 0) vals.push((t - disp - (vals[0] ?? 0)) & 0xffff);
  form.forEach((r, i) => {
    regs[r * 2] = ((rng.u32() & 0xffff0000) | vals[i]) >>> 0;
  });
  const terms = form.map((r) => R16_NAMES[r]);
  const sd = ((disp & 0xffff) << 16) >> 16;
  if (sd !== 0 || terms.length === 0) terms.push(terms.length === 0 ? `${disp & 0xffff}` : `${sd}`);
  return { text: `[${terms.join('+').replace('+-', '-')}]`, used: form };
}

/** A data offset for 16-bit code: in 0xfe00-0xfff0 (the hi area) or 0-0x1f0 (the data page). */
export function target16(rng: Rng): number {
  return rng.int(2) === 0 ? -0x200 + rng.int(0x1f0) : rng.int(0x1f0);
}

/** Fresh random state: registers, flags (random status flags, IF set), data bytes. */
export function baseState(rng: Rng, mode: CodeBits): { regs: Uint32Array; rflags: number; data: Uint8Array; hi?: Uint8Array } {
  const regs = new Uint32Array(32);
  for (let r = 0; r < 16; r++) {
    regs[r * 2] = word(rng);
    regs[r * 2 + 1] = mode === 64 ? hiWord(rng, regs[r * 2]) : 0;
  }
  const db = dataBase(mode);
  if (db >= 0) {
    regs[db * 2] = DATA_ADDR;
    regs[db * 2 + 1] = 0;
  }
  regs[8] = mode === 16 ? 0x100 : DATA_ADDR + 0x1f0;
  regs[9] = 0;
  const data = new Uint8Array(DATA_LEN);
  for (let i = 0; i < DATA_LEN; i++) data[i] = rng.int(4) === 0 ? rng.pick([0, 0xff, 0x80, 0x7f]) : rng.int(256);
  const rflags = 0x202 | (rng.u32() & ARITH_FLAGS);
  if (mode !== 16) return { regs, rflags, data };
  const hi = new Uint8Array(HI_LEN);
  for (let i = 0; i < HI_LEN; i++) hi[i] = rng.int(256);
  return { regs, rflags, data, hi };
}

const SIMPLE_OPERANDS = new Set(['Eb', 'Ev', 'Ew', 'Ed', 'Gb', 'Gv', 'Ib', 'Iz', 'Iv', 'AL', 'rAX', 'Zv', 'Zb', '1', 'CL', 'M', 'Mq', 'Mv', 'Mb']);
/** Mnemonics not generated from the table (templates or host-dependent or not user-runnable natively). */
const SKIP = new Set([
  'cpuid', 'rdtsc', 'rdtscp', 'syscall', 'int', 'into', 'int1', 'hlt', 'in', 'out', 'cli', 'sti', 'ud0', 'ud1',
  'prefetchnta', 'prefetcht0', 'prefetcht1', 'prefetcht2', 'clflush', 'lea', 'nop', 'push', 'pop', '(bad)', 'jmp', 'call', 'ret', 'leave', 'popf', 'pushf',
]);

function sizesFor(o: OpDef, mode: CodeBits): number[] {
  const ops = o.operands.split(',');
  if (o.flags & 2 /* F_BYTE */) return [1];
  if (o.mnem === 'movsxd') return [8];
  if (o.mnem === 'bswap') return mode === 64 ? [4, 8] : [4];
  if (/^(movzx|movsx)$/.test(o.mnem) && ops[1] === 'Ew') return mode === 64 ? [4, 8] : [4];
  if (o.mnem === 'cmpxchg8b') return mode === 64 ? [4, 8] : [4];
  if (ops.some((x) => /v|z|rAX/.test(x)) || ['cbw', 'cwd'].includes(o.mnem)) return mode === 64 ? [2, 4, 8] : [2, 4];
  return [4];
}

const SIZED_NAMES: Record<string, Record<number, string>> = {
  cbw: { 2: 'cbw', 4: 'cwde', 8: 'cdqe' },
  cwd: { 2: 'cwd', 4: 'cdq', 8: 'cqo' },
  cmpxchg8b: { 4: 'cmpxchg8b', 8: 'cmpxchg16b' },
};

function immText(v: number): string {
  return `0x${(v >>> 0).toString(16)}`;
}

/**
 * One case for table entry o at operand size `size`, memory or register form. Returns null
 * when the entry is not generated (unsupported operand kinds, skipped mnemonics).
 */
function tableCase(rng: Rng, opIndex: number, o: OpDef, mode: CodeBits, size: number, memForm: boolean): GenCase | null {
  if (SKIP.has(o.mnem)) return null;
  if (o.flags & F_INV64 && mode === 64) return null;
  if (o.flags & F_ONLY64 && mode !== 64) return null;
  const kinds = o.operands === '' ? [] : o.operands.split(',');
  if (!kinds.every((k) => SIMPLE_OPERANDS.has(k))) return null;
  const { regs, rflags, data, hi } = baseState(rng, mode);
  const btReg = /^bt[src]?$/.test(o.mnem) && memForm && kinds[1] === 'Gv';
  const a16 = mode === 16 && memForm ? addr16(rng, regs, btReg ? 0x70 + rng.int(0x40) : target16(rng)) : null;
  const free = freeRegs(mode, a16?.used);
  // AH..BH only where no REX prefix is needed: 32/16-bit code, or all-byte register forms.
  const legacy8 = mode !== 64 || (size === 1 && !memForm && rng.int(3) === 0);
  const pool8 = legacy8 ? [0, 1, 2, 3, 4, 5, 6, 7].filter((r) => free.includes(r & 3)) : free;
  const pick = (sz: number): number => rng.pick(sz === 1 ? pool8 : legacy8 && mode === 64 ? free.filter((r) => r < 8) : free);
  const db = mode === 64 ? 'r15' : 'ebp';
  const memDisp = o.mnem === 'cmpxchg8b' && size === 8 ? 16 * rng.int(14) : rng.int(DATA_LEN / 2 - 16);
  const usesMemE = memForm && kinds.some((k) => k.startsWith('E'));
  if (memForm && !usesMemE && !kinds.some((k) => k.startsWith('M'))) return null;
  if (!memForm && kinds.some((k) => k.startsWith('M'))) return null;
  let flagMask = (ARITH_FLAGS & ~o.undefFlags) | DF;
  let count = -1;
  const parts: string[] = [];
  let text: string;
  for (const k of kinds) {
    switch (k) {
      case 'Eb': case 'Ev': case 'Ew': case 'Ed': case 'Mq': case 'Mv': case 'Mb': {
        const sz = k === 'Eb' || k === 'Mb' ? 1 : k === 'Ew' ? 2 : k === 'Ed' ? 4 : k === 'Mq' ? (size === 8 ? 16 : 8) : size;
        if (memForm) {
          const kw = sz === 16 ? 'oword' : SIZE_KW[sz];
          parts.push(`${kw} ${a16 ? a16.text : `[${db} + ${memDisp}]`}`);
        } else parts.push(regName(pick(sz), sz, legacy8));
        break;
      }
      case 'Gb': parts.push(regName(pick(1), 1, legacy8)); break;
      case 'Gv': parts.push(regName(pick(size), size, legacy8)); break;
      case 'Zb': parts.push(regName(pick(1), 1, legacy8)); break;
      case 'Zv': parts.push(regName(pick(size), size, false)); break;
      case 'AL': parts.push('al'); break;
      case 'rAX': parts.push(regName(0, size, false)); break;
      case '1': parts.push('1'); count = 1; break;
      case 'CL': parts.push('cl'); count = regs[2] & 0xff; break;
      case 'Ib': {
        const v = rng.int(3) === 0 ? rng.pick([0, 1, 2, 7, 8, 15, 16, 31, 32, 63, 0x7f, 0x80, 0xff]) : rng.int(256);
        count = v;
        // Ev,Ib arithmetic forms take a sign-extended byte: write it signed with the byte keyword.
        parts.push(kinds[0] === 'Ev' && /^(add|or|adc|sbb|and|sub|xor|cmp|imul)$/.test(o.mnem) ? `byte ${(v << 24) >> 24}` : immText(v));
        break;
      }
      case 'Iz': {
        const v = size === 2 ? word(rng) & 0xffff : word(rng);
        parts.push(size === 8 ? `${v | 0}` : `strict ${SIZE_KW[size]} ${immText(v)}`);
        break;
      }
      case 'Iv': {
        const lo = word(rng);
        const hi = hiWord(rng, lo);
        parts.push(size === 8 ? `strict qword 0x${hi.toString(16).padStart(8, '0')}${lo.toString(16).padStart(8, '0')}` : immText(size === 2 ? lo & 0xffff : lo));
        break;
      }
      default:
        return null;
    }
  }
  // Count-dependent undefined flags of shifts and rotates.
  if (/^(rol|ror|rcl|rcr|shl|sal|shr|sar|shld|shrd)$/.test(o.mnem)) {
    if (kinds.includes('CL') && /^(shld|shrd)$/.test(o.mnem)) {
      // keep 16-bit double shifts within the defined range (count <= 16)
      if (size === 2) regs[2] = (regs[2] & ~0xff) | rng.int(17);
      count = regs[2] & 0xff;
    } else if (/^(shld|shrd)$/.test(o.mnem) && size === 2 && (count & 31) > 16) return null;
    const masked = count & (size === 8 ? 63 : 31);
    if (masked !== 1) flagMask &= ~0x800;
    if (masked >= size * 8 && /^(shl|sal|shr|sar)$/.test(o.mnem)) flagMask &= ~1;
    if (masked === 0) flagMask = ARITH_FLAGS | DF;
  }
  const mnem = SIZED_NAMES[o.mnem]?.[size] ?? o.mnem;
  text = parts.length ? `${mnem} ${parts.join(', ')}` : mnem;
  // Divide: make a quotient that fits half of the time.
  if (o.mnem === 'div' || o.mnem === 'idiv') {
    if (rng.int(2) === 0) {
      if (size === 1) regs[0] = (regs[0] & ~0xff00) | (o.mnem === 'div' ? rng.int(2) << 8 : 0);
      else {
        regs[4] = o.mnem === 'div' ? rng.int(3) : (regs[0] | 0) < 0 ? 0xffffffff : 0;
        regs[5] = size === 8 ? (o.mnem === 'div' ? 0 : regs[4] ? 0xffffffff : 0) : regs[5];
        if (size === 8 && o.mnem === 'idiv') {
          regs[4] = (regs[1] | 0) < 0 ? 0xffffffff : 0;
          regs[5] = regs[4];
        }
      }
    }
  }
  // Compare-exchange: make the comparison succeed half of the time.
  if (o.mnem === 'cmpxchg' && rng.int(2) === 0 && !memForm) {
    text = `mov ${regName(0, size, false)}, ${parts[0]}\n${text}`;
  }
  // BT* with a register offset into memory: keep the offset inside the data page.
  if (btReg) {
    const r = free.find((x) => parts[1] === regName(x, size, false)) ?? 0;
    const off = rng.int(1600) - 800;
    regs[r * 2] = off >>> 0;
    regs[r * 2 + 1] = off < 0 ? 0xffffffff : 0;
    if (!a16) text = text.replace(`[${db} + ${memDisp}]`, `[${db} + 256]`);
  }
  return { name: `${o.mnem} ${o.operands} o${size * 8}${memForm ? ' mem' : ''}`, op: opIndex, mode, text, regs, rflags, data, ...(hi ? { hi } : {}), flagMask };
}

/** Table-driven cases: `perForm` per (entry, operand size, register/memory form, mode). */
export function tableCases(seed: number, perForm: number, modes: readonly CodeBits[] = [64, 32]): GenCase[] {
  const rng = new Rng(seed);
  const out: GenCase[] = [];
  OPS.forEach((o, i) => {
    for (const mode of modes) {
      for (const size of sizesFor(o, mode)) {
        if (size === 8 && mode !== 64) continue;
        for (const memForm of [false, true]) {
          for (let k = 0; k < perForm; k++) {
            const c = tableCase(rng, i, o, mode, size, memForm);
            if (c == null) break;
            out.push(c);
          }
        }
      }
    }
  });
  return out;
}

/** Hand-written templates (control flow, stack, strings, LEA, XLAT, flags) with random state. */
export function templateCases(seed: number, perTemplate: number): GenCase[] {
  const rng = new Rng(seed ^ 0x5bd1e995);
  const out: GenCase[] = [];
  const CC = ['o', 'no', 'b', 'ae', 'e', 'ne', 'be', 'a', 's', 'ns', 'p', 'np', 'l', 'ge', 'le', 'g'];
  const add = (name: string, mode: 64 | 32, make: (st: ReturnType<typeof baseState>) => string, mask = ARITH_FLAGS | DF): void => {
    for (let k = 0; k < perTemplate; k++) {
      const st = baseState(rng, mode);
      const text = make(st);
      out.push({ name, op: -1, mode, text, regs: st.regs, rflags: st.rflags, data: st.data, flagMask: mask });
    }
  };
  for (const mode of [64, 32] as const) {
    const sp = mode === 64 ? 'rsp' : 'esp';
    const ax = mode === 64 ? 'rax' : 'eax';
    const cx = mode === 64 ? 'rcx' : 'ecx';
    const db = mode === 64 ? 'r15' : 'ebp';
    for (const cc of CC) {
      add(`j${cc} short/near`, mode, () => `j${cc} .t\nmov al, 1\n.t: j${cc} near .u\nmov bl, 2\n.u: set${cc} dl\ncmov${cc} ${ax}, ${mode === 64 ? 'rbx' : 'ebx'}`);
    }
    add('loop/loope/loopne/jrcxz', mode, (st) => {
      st.regs[2] = 1 + rng.int(6); // rCX = 0 would loop 2^64 times natively
      st.regs[3] = 0;
      const v = rng.pick(['loop', 'loope', 'loopne']);
      return `.a: inc edx\ncmp dl, ${rng.int(8)}\n${v} .a\n${mode === 64 ? 'jrcxz' : 'jecxz'} .z\nmov bl, 7\n.z: nop`;
    });
    add('call/ret/ret imm', mode, () => `call .f\njmp .e\n.f: push ${ax}\npop ${mode === 64 ? 'rbx' : 'ebx'}\nret\n.e: call .g\njmp .h\n.g: ret 0\n.h: nop`);
    add('call indirect/jmp indirect', mode, () => `call .x\n.x: pop ${ax}\nadd ${ax}, .f - .x\ncall ${ax}\nadd ${ax}, .h - .f\njmp ${ax}\n.f: ret\n.h: nop`);
    add('push/pop forms', mode, () => {
      const r = rng.pick(['rbx', 'rcx', 'rdx', 'rsi']);
      const r32 = r.replace('r', 'e');
      return mode === 64
        ? `push ${r}\npush word 0x1234\npush strict dword -5\npush byte -3\npush qword [${db} + 8]\npop qword [${db} + 16]\npop ax\npop rdx\npop rcx\npop ${r}`
        : `push ${r32}\npush word 0x1234\npush dword -5\npush byte -3\npush dword [${db} + 8]\npop dword [${db} + 16]\npop ax\npop edx\npop ecx\npop ${r32}`;
    });
    add('pushf/popf', mode, (st) => {
      st.regs[2] = rng.u32() & 0xcd5;
      return mode === 64 ? `pushfq\npop rax\npush rcx\npopfq\npushfq\npop rbx` : `pushfd\npop eax\npush ecx\npopfd\npushfd\npop ebx`;
    });
    add('lahf/sahf', mode, () => `lahf\nmov bl, ah\nmov ah, cl\nsahf\nlahf`);
    add('enter/leave', mode, (st) => {
      const level = rng.int(4);
      st.regs[10] = DATA_ADDR + 0x180; // rBP: frames copied from inside the data page
      st.regs[11] = 0;
      return `enter ${rng.int(64)}, ${level}\nmov ${ax}, ${sp}\nleave`;
    });
    for (const s of ['movs', 'stos', 'lods', 'cmps', 'scas']) {
      for (const sz of mode === 64 ? ['b', 'w', 'd', 'q'] : ['b', 'w', 'd']) {
        for (const rep of ['', 'rep ', 'repe ', 'repne ']) {
          if (rep === 'rep ' && (s === 'cmps' || s === 'scas')) continue;
          if ((rep === 'repe ' || rep === 'repne ') && s !== 'cmps' && s !== 'scas') continue;
          add(`${rep}${s}${sz}`, mode, (st) => {
            const n = rng.int(12);
            const std = rng.int(4) === 0;
            st.regs[12] = DATA_ADDR + (std ? 0x100 : 0x20) + rng.int(16);
            st.regs[13] = 0;
            st.regs[14] = DATA_ADDR + (std ? 0x180 : 0xa0) + rng.int(16);
            st.regs[15] = 0;
            st.regs[2] = n;
            st.regs[3] = 0;
            // make compares run a while: copy a prefix of the source over the destination
            if (s === 'cmps') st.data.copyWithin(st.regs[14] - DATA_ADDR, st.regs[12] - DATA_ADDR, st.regs[12] - DATA_ADDR + rng.int(24));
            return `${std ? 'std\n' : ''}${rep}${s}${sz}\n${std ? 'cld\n' : ''}mov ${mode === 64 ? 'r8' : 'ebx'}, ${cx}`;
          });
        }
      }
    }
    add('lea forms', mode, () => {
      const regs = mode === 64 ? ['rax', 'rbx', 'rcx', 'rdx', 'rsi', 'rdi', 'r8', 'r9', 'r12', 'r13'] : ['eax', 'ebx', 'ecx', 'edx', 'esi', 'edi'];
      const b = rng.pick(regs);
      const i = rng.pick(regs);
      const sc = rng.pick([1, 2, 4, 8]);
      const d = (rng.u32() | 0) >> rng.int(32);
      const dst = rng.pick(mode === 64 ? ['eax', 'rax', 'ax', 'r9'] : ['eax', 'ax']);
      const addr32 = mode === 64 ? `[${b.startsWith('r') && /\d/.test(b) ? b + 'd' : b.replace('r', 'e')} + ${i.startsWith('r') && /\d/.test(i) ? i + 'd' : i.replace('r', 'e')}*${sc} + ${d}]` : '[bx + si + 0x12]';
      return `lea ${dst}, [${b} + ${i}*${sc} + ${d}]\nlea ${mode === 64 ? 'rcx' : 'ecx'}, ${addr32}`;
    });
    add('mov moffs', mode, () =>
      mode === 64
        ? `mov rax, [qword ${DATA_ADDR + 8}]\nmov [qword ${DATA_ADDR + 40}], al\nmov ax, [qword ${DATA_ADDR + 20}]\nmov [qword ${DATA_ADDR + 50}], eax\nmov al, [qword ${DATA_ADDR + 3}]`
        : `mov eax, [${DATA_ADDR + 8}]\nmov [${DATA_ADDR + 40}], al\nmov ax, [${DATA_ADDR + 20}]\nmov [${DATA_ADDR + 50}], eax\nmov al, [${DATA_ADDR + 3}]`,
    );
    add('xlat', mode, (st) => {
      st.regs[6] = DATA_ADDR + rng.int(256);
      st.regs[7] = 0;
      return 'xlatb';
    });
    add('flag ops', mode, () => rng.pick(['stc\ncmc', 'clc\ncmc', 'std\ncld', 'stc', 'clc']));
    add('cmpxchg taken', mode, () => `mov ${ax}, [${db} + 8]\ncmpxchg [${db} + 8], ${mode === 64 ? 'rbx' : 'ebx'}`);
    add('nop forms', mode, () => `nop\nnop dword [${ax} + ${ax}*1 + 0]\ndb 0x66, 0x90\npause\nlfence\nmfence\nsfence\nprefetcht0 [${db}]\nclflush [${db}]`);
    add('int3 trap', mode, () => 'int3');
    add('ud2 fault', mode, () => 'ud2');
    add('hlt #GP', mode, () => 'nop\nhlt');
  }
  for (const b of ['daa', 'das', 'aaa', 'aas']) {
    add(b, 32, () => `${b}`, ARITH_FLAGS & ~(b.startsWith('aa') ? 0x8c4 : 0x800) | DF);
  }
  add('bound', 32, (st) => {
    // [ebp + 16] holds lower/upper bounds; the index register is near them half of the time.
    const dv = new DataView(st.data.buffer);
    const lower = (rng.u32() | 0) >> rng.int(24);
    const upper = lower + rng.int(1000);
    dv.setInt32(16, lower, true);
    dv.setInt32(20, upper, true);
    dv.setInt16(24, lower, true);
    dv.setInt16(26, upper, true);
    if (rng.int(2)) st.regs[2] = (lower + rng.int(1200) - 100) >>> 0;
    return rng.int(2) ? 'bound ecx, [ebp + 16]' : 'bound cx, [ebp + 24]';
  });
  add('aam/aad', 32, () => `aam ${rng.int(4) === 0 ? 0 : rng.int(256)}\naad ${rng.int(256)}`, 0xc4 | DF);
  return out;
}
