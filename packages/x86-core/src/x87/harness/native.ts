/**
 * Host side of the x87 differential tests (Node only; imported by tests, never by index.ts):
 * builds runner.c + tramp.asm with the installed gcc and nasm in a fresh temp dir, assembles
 * snippets with nasm and runs cases natively. A case's x87 state goes in as an FXSAVE image
 * (loaded with FXRSTOR); out come the FXSAVE image (80-bit registers, FCW, FSW, abridged tags,
 * MXCSR), the FNSTENV block (full tag word), GPRs, RFLAGS, the data page and any signal.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const CODE_ADDR = 0x60000000;
export const DATA_ADDR = 0x60001000;
export const CODE_MAX = 60;
export const STATE_LEN = 688;
export const DATA_LEN = 1024;
/** State block offsets (tramp.asm). */
export const S_REGS = 0;
export const S_RFLAGS = 128;
export const S_MXCSR = 136;
/** FXSAVE image: FCW @+0, FSW @+2, abridged FTW @+4, MXCSR @+24, ST(i) @+32+16i. */
export const S_FX = 144;
/** FNSTENV block (32-bit layout): FCW @+0, FSW @+4, FTW @+8. */
export const S_ENV = 656;
const CASE_BYTES = 4 + CODE_MAX + STATE_LEN + DATA_LEN;
const RESULT_BYTES = 8 + STATE_LEN + DATA_LEN;

export interface X87Case {
  /** Instruction text (for messages). */
  asm: string;
  code: Uint8Array;
  state: Uint8Array;
  data: Uint8Array;
}

export interface X87Result {
  /** POSIX signal (0 none; SIGILL 4, SIGFPE 8, SIGSEGV 11, SIGBUS 7). */
  signal: number;
  faultOffset: number;
  state: Uint8Array;
  data: Uint8Array;
}

function which(tool: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Why the native runner cannot run here, or null when it can. */
export function nativeUnavailable(): string | null {
  if (process.arch !== 'x64' || process.platform !== 'linux') return 'host is not x86-64 Linux';
  for (const t of ['nasm', 'gcc']) if (!which(t)) return `${t} not installed`;
  return null;
}

export class X87Native {
  readonly dir: string;
  private readonly runner: string;

  constructor() {
    this.dir = mkdtempSync(join(tmpdir(), 'rz-x87-diff-'));
    const src = fileURLToPath(new URL('./', import.meta.url));
    execFileSync('nasm', ['-f', 'elf64', '-o', join(this.dir, 'tramp.o'), join(src, 'tramp.asm')]);
    this.runner = join(this.dir, 'runner');
    execFileSync('gcc', ['-O1', '-no-pie', '-o', this.runner, join(src, 'runner.c'), join(this.dir, 'tramp.o')]);
  }

  /** Assembles 64-bit snippets (nasm syntax) in one nasm run and returns their bytes. */
  assemble(snippets: readonly string[]): Uint8Array[] {
    const lines: string[] = ['bits 64', 'section .text'];
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

  run(cases: readonly X87Case[]): X87Result[] {
    const buf = Buffer.alloc(CASE_BYTES * cases.length);
    cases.forEach((c, i) => {
      const o = i * CASE_BYTES;
      if (c.code.length > CODE_MAX) throw new Error(`snippet too long: ${c.asm}`);
      buf.writeUInt32LE(c.code.length, o);
      buf.set(c.code, o + 4);
      buf.set(c.state, o + 4 + CODE_MAX);
      buf.set(c.data, o + 4 + CODE_MAX + STATE_LEN);
    });
    const inFile = join(this.dir, 'cases.bin');
    const outFile = join(this.dir, 'results.bin');
    writeFileSync(inFile, buf);
    execFileSync(this.runner, [inFile, outFile]);
    const out = readFileSync(outFile);
    if (out.length !== RESULT_BYTES * cases.length) throw new Error(`runner returned ${out.length} bytes for ${cases.length} cases`);
    const res: X87Result[] = [];
    for (let i = 0; i < cases.length; i++) {
      const o = i * RESULT_BYTES;
      res.push({
        signal: out.readUInt32LE(o),
        faultOffset: out.readUInt32LE(o + 4),
        state: new Uint8Array(out.subarray(o + 8, o + 8 + STATE_LEN)),
        data: new Uint8Array(out.subarray(o + 8 + STATE_LEN, o + 8 + STATE_LEN + DATA_LEN)),
      });
    }
    return res;
  }

  dispose(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}
