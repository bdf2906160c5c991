/**
 * The host side of the differential tests (Node only, never reachable from index.ts): builds
 * the native runner (runner.c + tramp.asm, with the installed gcc and nasm) in a fresh temp
 * dir, assembles snippets with nasm, runs cases natively and returns the host CPU's results.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const CODE_ADDR = 0x70000000;
export const DATA_ADDR = 0x70001000;
export const CODE_MAX = 256;
export const DATA_LEN = 512;
const CASE_BYTES = 8 + CODE_MAX + 17 * 8 + DATA_LEN + 512;
const RESULT_BYTES = 16 + 17 * 8 + DATA_LEN + 512;

/** One test case: 64- or 32-bit code, initial registers (lo/hi), RFLAGS, data page bytes. */
export interface NativeCase {
  mode: 64 | 32;
  code: Uint8Array;
  /** regs[r * 2] = low half, regs[r * 2 + 1] = high half (uint32). */
  regs: Uint32Array;
  rflags: number;
  data: Uint8Array;
  /**
   * x87/SSE state as a 512-byte FXSAVE image (FCW, FSW, FTW, ST0-7, MXCSR, XMM0-15), loaded
   * with FXRSTOR before the snippet; defaultFxImage() when omitted.
   */
  fx?: Uint8Array;
}

/** The FXSAVE image of a freshly initialised FPU (FNINIT + MXCSR 0x1f80), XMM registers zero. */
export function defaultFxImage(): Uint8Array {
  const fx = new Uint8Array(512);
  fx[0] = 0x7f; // FCW 0x037f
  fx[1] = 0x03;
  fx[24] = 0x80; // MXCSR 0x1f80
  fx[25] = 0x1f;
  fx[28] = 0xff; // MXCSR_MASK 0xffff (ignored by FXRSTOR)
  fx[29] = 0xff;
  return fx;
}

export interface NativeResult {
  /** POSIX signal number (0: none; SIGFPE 8, SIGILL 4, SIGSEGV 11, SIGTRAP 5, SIGBUS 7). */
  signal: number;
  /** Offset of the faulting instruction from CODE_ADDR when signal != 0. */
  faultOffset: number;
  regs: Uint32Array;
  rflags: number;
  data: Uint8Array;
  /** FXSAVE image after the snippet (or at the fault). */
  fx: Uint8Array;
}

function which(tool: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Why the native harness cannot run here, or null when it can. */
export function nativeUnavailable(): string | null {
  if (process.arch !== 'x64' || process.platform !== 'linux') return 'host is not x86-64 Linux';
  for (const t of ['nasm', 'gcc']) if (!which(t)) return `${t} not installed`;
  return null;
}

export class NativeHarness {
  readonly dir: string;
  private readonly runner: string;

  constructor() {
    this.dir = mkdtempSync(join(tmpdir(), 'rz-x86-diff-'));
    const src = fileURLToPath(new URL('./native/', import.meta.url));
    execFileSync('nasm', ['-f', 'elf64', '-o', join(this.dir, 'tramp.o'), join(src, 'tramp.asm')]);
    this.runner = join(this.dir, 'runner');
    execFileSync('gcc', ['-O1', '-no-pie', '-o', this.runner, join(src, 'runner.c'), join(this.dir, 'tramp.o')]);
  }

  /**
   * Assembles snippets (nasm syntax, `bits` 64 or 32) in one nasm run; returns their bytes.
   * Each snippet is assembled as if at CODE_ADDR.
   */
  /**
   * Assembles snippets (nasm syntax, `bits` 64 or 32) in one nasm run and returns their bytes.
   * Snippets must be position independent (relative branches inside the snippet only).
   * Returns null for a snippet nasm rejects is not possible: one bad line fails the batch.
   */
  assemble(snippets: readonly string[], bits: 64 | 32): Uint8Array[] {
    const lines: string[] = [`bits ${bits}`, 'section .text'];
    snippets.forEach((s, i) => lines.push(`s${i}_start:`, s, `s${i}_end:`));
    snippets.forEach((_s, i) => lines.push(`dd s${i}_end - s${i}_start`));
    const asm = join(this.dir, 'snip.asm');
    const bin = join(this.dir, 'snip.bin');
    writeFileSync(asm, lines.join('\n') + '\n');
    try {
      execFileSync('nasm', ['-f', 'bin', '-o', bin, asm], { stdio: ['ignore', 'ignore', 'pipe'] });
    } catch (e) {
      const msg = String((e as { stderr?: Buffer }).stderr ?? e);
      const shown = msg
        .split('\n')
        .slice(0, 8)
        .map((l) => {
          const m = /:(\d+): error/.exec(l);
          return m ? `${l}  <<  ${lines[Number(m[1]) - 1]}` : l;
        });
      throw new Error(`nasm failed:\n${shown.join('\n')}`, { cause: e });
    }
    const out = readFileSync(bin);
    const n = snippets.length;
    const tblOff = out.length - 4 * n;
    const res: Uint8Array[] = [];
    let off = 0;
    for (let i = 0; i < n; i++) {
      const len = out.readUInt32LE(tblOff + 4 * i);
      res.push(new Uint8Array(out.subarray(off, off + len)));
      off += len;
    }
    if (off !== tblOff) throw new Error(`nasm layout mismatch: ${off} != ${tblOff}`);
    return res;
  }

  run(cases: readonly NativeCase[]): NativeResult[] {
    const buf = Buffer.alloc(CASE_BYTES * cases.length);
    cases.forEach((c, i) => {
      const o = i * CASE_BYTES;
      if (c.code.length > CODE_MAX - 8) throw new Error('snippet too long');
      buf.writeUInt32LE(c.mode, o);
      buf.writeUInt32LE(c.code.length, o + 4);
      buf.set(c.code, o + 8);
      for (let r = 0; r < 32; r++) buf.writeUInt32LE(c.regs[r], o + 8 + CODE_MAX + r * 4);
      buf.writeUInt32LE(c.rflags >>> 0, o + 8 + CODE_MAX + 128);
      buf.writeUInt32LE(0, o + 8 + CODE_MAX + 132);
      buf.set(c.data.subarray(0, DATA_LEN), o + 8 + CODE_MAX + 136);
      buf.set((c.fx ?? defaultFxImage()).subarray(0, 512), o + 8 + CODE_MAX + 136 + DATA_LEN);
    });
    const inFile = join(this.dir, 'cases.bin');
    const outFile = join(this.dir, 'results.bin');
    writeFileSync(inFile, buf);
    execFileSync(this.runner, [inFile, outFile]);
    const out = readFileSync(outFile);
    if (out.length !== RESULT_BYTES * cases.length) throw new Error(`runner returned ${out.length} bytes for ${cases.length} cases`);
    const res: NativeResult[] = [];
    for (let i = 0; i < cases.length; i++) {
      const o = i * RESULT_BYTES;
      const regs = new Uint32Array(32);
      for (let r = 0; r < 32; r++) regs[r] = out.readUInt32LE(o + 16 + r * 4);
      res.push({
        signal: out.readUInt32LE(o),
        faultOffset: Number(out.readBigInt64LE(o + 8)),
        regs,
        rflags: out.readUInt32LE(o + 16 + 128),
        data: new Uint8Array(out.subarray(o + 16 + 136, o + 16 + 136 + DATA_LEN)),
        fx: new Uint8Array(out.subarray(o + 16 + 136 + DATA_LEN, o + 16 + 136 + DATA_LEN + 512)),
      });
    }
    return res;
  }

  dispose(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}
