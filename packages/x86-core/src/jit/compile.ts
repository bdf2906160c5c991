/**
 * Block code generation: turns a block's Insn records into one JavaScript function. Each
 * instruction either calls its handler (the Insn bound as a constant) or, for the hottest forms,
 * an inline template (src/jit/inline.ts) that does exactly what the handler does. The function
 * returns the status of the instruction that stopped it (ST_OK when the block ran to its end or
 * a code write ended it early); rip, nextRip and retired are left as the interpreter leaves them.
 */
import type { Cpu } from '../cpu';
import type { Insn } from '../insn';
import { OPS } from '../optable';
import { SYSTEM_OPS } from '../system/ops';
import { inlineInsn } from './inline';

/** A compiled block: runs it on cpu and returns the stopping status. */
export type BlockFn = (cpu: Cpu) => number;

/** Mnemonics that end a block (control transfers, exits, mode/segment changes, REP-able ops). */
const ENDERS = new Set<string>([
  'jo', 'jno', 'jb', 'jae', 'je', 'jne', 'jbe', 'ja', 'js', 'jns', 'jp', 'jnp', 'jl', 'jge', 'jle', 'jg',
  'jmp', 'call', 'ret', 'retf', 'iret', 'loop', 'loope', 'loopne', 'jrcxz',
  'int', 'int1', 'int3', 'into', 'syscall', 'sysenter', 'sysexit', 'sysret', 'hlt', 'ud0', 'ud1', 'ud2', '(bad)',
  'in', 'out', 'insb', 'ins', 'outsb', 'outs',
  'movsb', 'movs', 'cmpsb', 'cmps', 'stosb', 'stos', 'lodsb', 'lods', 'scasb', 'scas',
  'cli', 'sti', 'popf', 'pushf', 'cpuid', 'rdtsc', 'rdtscp', 'pause',
  'lss', 'lfs', 'lgs', 'les', 'lds', 'enter', 'bound',
]);

const SEG_OPERAND = /\bS[wW]\b|^(ES|CS|SS|DS|FS|GS)$/;

let blockEnd: Uint8Array | null = null;

/**
 * Per op: 1 when the op ends a block (it still runs as the block's last instruction). Built on
 * first use: the op tables and this module import each other through cpu.ts.
 */
export function blockEnds(): Uint8Array {
  if (blockEnd != null) return blockEnd;
  const sys = new Set(SYSTEM_OPS);
  const t = new Uint8Array(OPS.length);
  for (let i = 0; i < OPS.length; i++) {
    const o = OPS[i];
    if (i === 0 || sys.has(o) || ENDERS.has(o.mnem) || SEG_OPERAND.test(o.operands)) t[i] = 1;
  }
  blockEnd = t;
  return t;
}

/** Near branches: they end a block but cannot change CS or the code size. */
const NEAR = new Set<string>([
  'jo', 'jno', 'jb', 'jae', 'je', 'jne', 'jbe', 'ja', 'js', 'jns', 'jp', 'jnp', 'jl', 'jge', 'jle', 'jg',
  'jmp', 'call', 'ret', 'loop', 'loope', 'loopne', 'jrcxz',
]);

let blockChain: Uint8Array | null = null;

/** Per op: 1 when a block ending with it may chain to its successor (not an ender, or a near branch). */
export function blockChains(): Uint8Array {
  if (blockChain != null) return blockChain;
  const ends = blockEnds();
  const sys = new Set(SYSTEM_OPS);
  const t = new Uint8Array(OPS.length);
  for (let i = 1; i < OPS.length; i++) t[i] = ends[i] === 0 || (NEAR.has(OPS[i].mnem) && !sys.has(OPS[i])) ? 1 : 0;
  blockChain = t;
  return t;
}

/** Builds the block's function (tier 1: handler calls; tier 2: inline templates where known). */
export function compileBlock(insns: readonly Insn[], nexts: readonly number[]): BlockFn {
  const consts: unknown[] = [];
  const names: string[] = [];
  const k = (v: unknown): string => {
    let i = consts.indexOf(v);
    if (i < 0) {
      i = consts.length;
      consts.push(v);
    }
    return `k${i}`;
  };
  const last = insns.length - 1;
  let body = '';
  // rip/retired are committed lazily: an inline template that cannot leave the block (no
  // `return` in its source: register-only forms) only bumps the pending count; everything else
  // (memory accesses, handler calls, code-write checks, the block's end) sees them committed.
  let pend = 0;
  let pendRip = 0;
  const commit = (): string => {
    if (pend === 0) return '';
    const c = `c.rip = ${pendRip}; c.retired += ${pend};\n`;
    pend = 0;
    return c;
  };
  for (let i = 0; i <= last; i++) {
    const d = insns[i];
    const n = nexts[i];
    const inl = inlineInsn(d, n, k);
    if (inl != null) {
      const leaves = inl.code.includes('return');
      if (i === last) body += `${commit()}c.nextRip = ${n};\n${inl.code}\nc.rip = c.nextRip; c.retired++;\n`;
      else {
        if (leaves) body += commit();
        body += `${inl.code}\n`;
        pend++;
        pendRip = n;
        if (inl.writes) body += `${commit()}if (m.codeWrites !== W || c.icArr !== A) return 0;\n`;
      }
      continue;
    }
    body += `${commit()}c.nextRip = ${n}; s = ${k(d.exec)}(c, ${k(d)}); if (s !== 0) return s;\nc.rip = ${i === last ? 'c.nextRip' : n}; c.retired++;\n`;
    if (i !== last) body += 'if (m.codeWrites !== W || c.icArr !== A) return 0;\n';
  }
  body += commit();
  for (let i = 0; i < consts.length; i++) names.push(`k${i}`);
  const src = `"use strict";\nreturn function blk(c) {\nconst m = c.mem; const L = c.lo; const H = c.hi; const W = m.codeWrites; const A = c.icArr; let s = 0;\n${body}return 0;\n};`;
  // The point of this tier: generated code (JIT_CODEGEN is false where a CSP forbids it).
  // eslint-disable-next-line @typescript-eslint/no-implied-eval
  const factory = new Function(...names, src) as (...a: unknown[]) => BlockFn;
  return factory(...consts);
}
