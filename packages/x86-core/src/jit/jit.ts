/**
 * The block-compiler tier (DESIGN.md, "JIT tier"). Cpu.run() hands over here when cpu.jit is
 * set and the budget is above 1. From an entry RIP a block is discovered on the decode cache's
 * page (the same Insn records the interpreter uses): straight-line instructions up to one that
 * ends a block (control transfer, system op, segment load, I/O, string op, ...), the page end or
 * MAX_LEN. A block runs in a generic loop until it is hot, then as a JavaScript function built
 * with `new Function` (per instruction: set nextRip, call the handler with the Insn bound as a
 * constant or an inline template, check the status, commit rip/retired).
 *
 * Exactness: a block runs only when the budget covers its whole length, otherwise the
 * interpreter runs the rest of the budget; on a non-OK status the block returns at once, leaving
 * exactly the interpreter's state (the run loop below then does what Cpu.run() does). Blocks
 * hang off the decode cache's page arrays (a WeakMap keyed by the array), so every way the
 * decode cache drops a page (frame writes, codeWrites, csize changes, the frame cap) drops the
 * page's blocks too; a write that drops any decoded page, or a codeWrites change, ends the
 * running block after the writing instruction.
 */
import { CS, EXIT_BUDGET, ST_AGAIN, ST_OK } from '../constants';
import type { Cpu } from '../cpu';
import { decode, DecodeFault } from '../decoder';
import { Insn } from '../insn';
import { OPS } from '../optable';
import { blockChains, blockEnds, compileBlock, type BlockFn } from './compile';

/**
 * Runs of a block in the generic loop before it is compiled (Jit.hot's default). High on
 * purpose: every generated function costs V8 a parse and, once hot, an optimising compile
 * (host CPU time); the Debian boot's first 300 M instructions took 32.6 s of host CPU with 100,
 * 19.6 s with 2,000, 14.6 s with 50,000 and 15.1 s with 200,000 (interpreter: 19.2 s), since
 * most kernel blocks run only thousands of times. The generic loop is as fast as the
 * interpreter, so a block waiting to be compiled loses nothing.
 */
const HOT = 50000;
/** Longest block (instructions). */
const MAX_LEN = 64;
/** Compiled blocks kept before every block is dropped (bounds host memory). */
const MAX_COMPILED = 16384;

/** Whether this host lets us build functions (a strict CSP forbids `new Function`). */
export const JIT_CODEGEN: boolean = ((): boolean => {
  try {
    // eslint-disable-next-line @typescript-eslint/no-implied-eval
    return (new Function('return 1') as () => number)() === 1;
  } catch {
    return false;
  }
})();

/** A discovered block: its instructions, the RIP after each, and its compiled form once hot. */
export class Block {
  readonly rip0: number;
  readonly csize: number;
  readonly insns: readonly Insn[];
  readonly nexts: readonly number[];
  hits = 0;
  fn: BlockFn | null = null;
  /** The last instruction leaves CS and the code size alone (near branch or none): may chain. */
  readonly chains: boolean;
  /** The last two successors on the same page (chaining). */
  succA: Block | null = null;
  succB: Block | null = null;

  constructor(rip0: number, csize: number, insns: readonly Insn[], nexts: readonly number[], chains: boolean) {
    this.chains = chains;
    this.rip0 = rip0;
    this.csize = csize;
    this.insns = insns;
    this.nexts = nexts;
  }
}

type Page = (Insn | undefined)[];

/** The per-CPU block compiler (create with enableJit). */
export class Jit {
  readonly cpu: Cpu;
  /** Blocks by decode-cache page array (dropped with it), indexed by page offset. */
  private pages: WeakMap<Page, (Block | undefined)[]> = new WeakMap();
  private lastPage: Page | null = null;
  private lastBlocks: (Block | undefined)[] = [];
  private readonly df: DecodeFault = new DecodeFault();
  /** Compile to functions (false: generic loop only, e.g. when JIT_CODEGEN is false). */
  codegen: boolean = JIT_CODEGEN;
  /** Runs of a block in the generic loop before it is compiled (tests use 1). */
  hot: number = HOT;
  /** Statistics: blocks compiled (since the last reset), blocks run, times the cap dropped all. */
  compiled = 0;
  blocksRun = 0;
  resets = 0;

  constructor(cpu: Cpu) {
    this.cpu = cpu;
  }

  /** Runs the interpreter alone for up to n instructions (its exit code). */
  private interp(n: number): number {
    const cpu = this.cpu;
    cpu.jit = null;
    try {
      return cpu.run(n);
    } finally {
      cpu.jit = this;
    }
  }

  /** Cpu.run() with blocks: same contract, same results. */
  run(budget: number): number {
    const cpu = this.cpu;
    const mem = cpu.mem;
    if (!cpu.decodeCache || !(cpu.icFramed || mem.markCode !== undefined)) return this.interp(budget);
    // Chaining: the block that just ran to its end (when its last instruction cannot change CS
    // or the code size) remembers its last two successors on the same decoded page; while that
    // page is still the current, valid one, the next block comes from there without a lookup.
    let prev: Block | null = null;
    let prevArr: Page | null = null;
    while (budget > 0) {
      const rip = cpu.rip;
      const csize = cpu.csize;
      let b: Block | undefined;
      let arr: Page;
      if (prev != null && prevArr === cpu.icArr && mem.codeWrites === cpu.icWrites && csize === cpu.icCsize) {
        const sa: Block | null = prev.succA;
        if (sa != null && sa.rip0 === rip && sa.csize === csize) b = sa;
        else {
          const sb: Block | null = prev.succB;
          if (sb != null && sb.rip0 === rip && sb.csize === csize) b = sb;
        }
      }
      if (b !== undefined) arr = prevArr!;
      else {
        const la: number = csize === 8 ? rip : (cpu.segBase[CS] + rip) >>> 0;
        if (mem.codeWrites !== cpu.icWrites || csize !== cpu.icCsize) cpu.icFlush(csize);
        let off: number = la - cpu.icBase;
        let page: Page | null;
        if (off >= 0 && off < 4096) page = cpu.icArr;
        else {
          const pn = Math.floor(la / 4096);
          page = cpu.icFramed ? cpu.icFramePage(pn, la) : cpu.icPage(pn, la);
          off = la - pn * 4096;
        }
        if (page == null) {
          // Code the decode cache does not hold (an unmarkable page): interpreter, a short run.
          const x = this.interp(budget < 64 ? budget : 64);
          if (x !== EXIT_BUDGET) return x;
          budget -= budget < 64 ? budget : 64;
          continue;
        }
        arr = page;
        let blocks: (Block | undefined)[];
        if (arr === this.lastPage) blocks = this.lastBlocks;
        else {
          let bl = this.pages.get(arr);
          if (bl === undefined) {
            bl = new Array<Block | undefined>(4096);
            this.pages.set(arr, bl);
          }
          this.lastPage = arr;
          this.lastBlocks = bl;
          blocks = bl;
        }
        b = blocks[off];
        if (b === undefined || b.rip0 !== rip || b.csize !== csize) {
          const nb = this.discover(arr, la, off, rip, csize);
          if (nb == null) {
            // The first instruction faults to decode or crosses the page end: interpreter.
            const x = this.interp(1);
            if (x !== EXIT_BUDGET) return x;
            budget--;
            continue;
          }
          blocks[off] = b = nb;
        }
        if (prev != null && prevArr === arr) {
          if (prev.succA == null) prev.succA = b;
          else prev.succB = b;
        }
      }
      if (b.insns.length > budget) return this.interp(budget);
      const r0 = cpu.retired;
      this.blocksRun++;
      if (b.fn == null && ++b.hits >= this.hot && this.codegen) this.compile(b);
      const fn = b.fn;
      const st = fn != null ? fn(cpu) : this.generic(b, arr);
      budget -= cpu.retired - r0;
      if (st === ST_OK) {
        prev = b.chains ? b : null;
        prevArr = arr;
        continue;
      }
      prev = null;
      if (st === ST_AGAIN) {
        budget--;
        continue;
      }
      return cpu.exitFor(st);
    }
    return EXIT_BUDGET;
  }

  /** Runs a block with the handlers (what the interpreter does, without the per-insn lookup). */
  private generic(b: Block, arr: Page): number {
    const cpu = this.cpu;
    const mem = cpu.mem;
    const w = mem.codeWrites;
    const insns = b.insns;
    const nexts = b.nexts;
    const last = insns.length - 1;
    for (let i = 0; ; i++) {
      const d = insns[i];
      const n = nexts[i];
      cpu.nextRip = n;
      const st = d.exec(cpu, d);
      if (st !== ST_OK) return st;
      cpu.rip = cpu.nextRip;
      cpu.retired++;
      if (i === last || mem.codeWrites !== w || cpu.icArr !== arr) return ST_OK;
    }
  }

  private compile(b: Block): void {
    if (this.compiled >= MAX_COMPILED) {
      this.pages = new WeakMap();
      this.lastPage = null;
      this.lastBlocks = [];
      this.compiled = 0;
      this.resets++;
    }
    b.fn = compileBlock(b.insns, b.nexts);
    this.compiled++;
  }

  /** Decodes a block at page offset off (linear la, RIP rip); null when not even one insn fits. */
  private discover(arr: Page, la: number, off: number, rip: number, csize: number): Block | null {
    const cpu = this.cpu;
    const mem = cpu.mem;
    const insns: Insn[] = [];
    const nexts: number[] = [];
    const pageLa = la - off;
    const ends = blockEnds();
    let o = off;
    let r = rip;
    while (insns.length < MAX_LEN && o < 4096) {
      let d = arr[o];
      if (d === undefined) {
        d = new Insn();
        if (decode(mem, pageLa + o, csize, d, this.df) !== ST_OK) break;
        if (o + d.len > 4096) break;
        if (mem.codeWrites === cpu.icWrites) arr[o] = d;
      }
      const n = r + d.len;
      const nx = csize === 8 ? n : csize === 4 ? n >>> 0 : n & 0xffff;
      insns.push(d);
      nexts.push(nx);
      if (ends[d.op] !== 0 || nx !== n) break;
      o += d.len;
      r = nx;
    }
    if (insns.length === 0) return null;
    return new Block(rip, csize, insns, nexts, blockChains()[insns[insns.length - 1].op] !== 0);
  }
}

/** Turns the block compiler on (a new Jit) or off (null) for one CPU. */
export function enableJit(cpu: Cpu, on: boolean = true): void {
  cpu.jit = on ? new Jit(cpu) : null;
}

/**
 * The default for new CPUs (Cpu's constructor reads it): on, unless the environment variable
 * RINGZERO_JIT is "0" where a process environment exists (Node; read without importing it).
 */
export const jitDefault: { enabled: boolean } = {
  enabled: (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env?.RINGZERO_JIT !== '0',
};

/** Ops by name, for tests and the op-frequency counter (bench). */
export function opName(op: number): string {
  return OPS[op].mnem;
}
