/**
 * The host side of the differential tests (Node only, never reachable from index.ts): builds
 * the one native runner (native/runner.c + native/tramp.asm, with the installed gcc and nasm)
 * in a fresh temp dir, assembles snippets with nasm, runs cases natively and returns the host
 * CPU's results. The integer, x87 and SSE/MMX tests all use it; the case and result format is
 * in case.ts.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CODE_MAX, DATA_LEN, ENV_LEN, FX_LEN, HI_LEN, defaultFxImage, type CodeBits, type NativeCase, type NativeResult } from './case';

const CASE_BYTES = 8 + CODE_MAX + 17 * 8 + DATA_LEN + HI_LEN + FX_LEN;
const RESULT_BYTES = 16 + 17 * 8 + DATA_LEN + HI_LEN + FX_LEN + ENV_LEN;

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

/** Builds the runner into dir (which must exist); returns its path. */
export function buildRunner(dir: string): string {
  const src = fileURLToPath(new URL('./native/', import.meta.url));
  execFileSync('nasm', ['-f', 'elf64', '-o', join(dir, 'tramp.o'), join(src, 'tramp.asm')]);
  const runner = join(dir, 'runner');
  execFileSync('gcc', ['-O1', '-no-pie', '-o', runner, join(src, 'runner.c'), join(dir, 'tramp.o')]);
  return runner;
}

export class NativeHarness {
  readonly dir: string;
  private readonly runner: string;

  /** runner: a runner already built by buildRunner (the vitest global setup builds it once). */
  constructor(runner?: string) {
    this.dir = mkdtempSync(join(tmpdir(), 'rz-x86-diff-'));
    this.runner = runner ?? buildRunner(this.dir);
  }

  /**
   * Assembles snippets (nasm syntax) in one nasm run and returns their bytes, each assembled as
   * if at CODE_ADDR. Snippets must be position independent (relative branches inside the
   * snippet only). One bad line fails the batch (the error names it).
   */
  assemble(snippets: readonly string[], bits: CodeBits): Uint8Array[] {
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
      if (c.data.length > DATA_LEN || (c.hi?.length ?? 0) > HI_LEN) throw new Error('data too long');
      buf.writeUInt32LE(c.mode, o);
      buf.writeUInt32LE(c.code.length, o + 4);
      buf.set(c.code, o + 8);
      for (let r = 0; r < 32; r++) buf.writeUInt32LE(c.regs[r], o + 8 + CODE_MAX + r * 4);
      buf.writeUInt32LE(c.rflags >>> 0, o + 8 + CODE_MAX + 128);
      buf.writeUInt32LE(0, o + 8 + CODE_MAX + 132);
      buf.set(c.data, o + 8 + CODE_MAX + 136);
      if (c.hi) buf.set(c.hi, o + 8 + CODE_MAX + 136 + DATA_LEN);
      buf.set((c.fx ?? defaultFxImage()).subarray(0, FX_LEN), o + 8 + CODE_MAX + 136 + DATA_LEN + HI_LEN);
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
      const d = o + 16 + 136;
      const f = d + DATA_LEN + HI_LEN;
      res.push({
        signal: out.readUInt32LE(o),
        faultOffset: Number(out.readBigInt64LE(o + 8)),
        regs,
        rflags: out.readUInt32LE(o + 16 + 128),
        data: new Uint8Array(out.subarray(d, d + DATA_LEN)),
        hi: new Uint8Array(out.subarray(d + DATA_LEN, f)),
        fx: new Uint8Array(out.subarray(f, f + FX_LEN)),
        env: new Uint8Array(out.subarray(f + FX_LEN, f + FX_LEN + ENV_LEN)),
      });
    }
    return res;
  }

  /**
   * Why 16-bit code cannot run natively here (modify_ldt refused: some kernels and sandboxes
   * disable it), or null when it can.
   */
  unavailable16(): string | null {
    try {
      const [code] = this.assemble(['nop'], 16);
      const [r] = this.run([{ mode: 16, code, regs: new Uint32Array(32), rflags: 0x202, data: new Uint8Array(0) }]);
      return r.signal === 0 ? null : `16-bit code faulted natively (signal ${r.signal})`;
    } catch (e) {
      return `modify_ldt unavailable (${String(e).split('\n')[0]})`;
    }
  }

  dispose(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}
