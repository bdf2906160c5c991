/**
 * Test support for the runner's tests (not part of the package API): locating the host tools,
 * assembling tiny static ELFs with nasm + ld, and running a program natively (the oracle) and
 * in ringzero-user with the same argv, environment and stdin.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runProgram, type UserRunResult } from './run';

/** True when `tool` is on PATH. */
export function hasTool(tool: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' }).status === 0;
}

/** The project's cache of Debian packages (scripts fetch busybox-static for both architectures there). */
const CACHE = [path.resolve(__dirname, '../../../../.cache/ringzero'), '/work/main/.cache/ringzero'];

/** A static executable of the wanted class (2: x86-64, 1: i386) among the candidates. */
function findBusybox(candidates: string[], cls: number): string | null {
  for (const p of candidates) {
    try {
      const b = fs.readFileSync(p).subarray(0, 20);
      if (b[0] === 0x7f && b[4] === cls && b[16] === 2 && b[18] === (cls === 2 ? 62 : 3)) return p;
    } catch {
      /* next */
    }
  }
  return null;
}

/** Debian's busybox-static for amd64 (/bin/busybox or the cache), or null. */
export function findBusybox64(): string | null {
  return findBusybox(['/bin/busybox', ...CACHE.map((c) => path.join(c, 'amd64/busybox'))], 2);
}

/** Debian's busybox-static for i386 (the cache), or null. */
export function findBusybox32(): string | null {
  return findBusybox(CACHE.map((c) => path.join(c, 'i386/busybox')), 1);
}

/** A fresh temporary directory; remove it with removeTempDir. */
export function makeTempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export function removeTempDir(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
}

/** Assembles nasm source into a static x86-64 ELF at dir/name; returns its path. */
export function assemble(dir: string, name: string, source: string): string {
  const asm = path.join(dir, `${name}.asm`);
  const obj = path.join(dir, `${name}.o`);
  const exe = path.join(dir, name);
  fs.writeFileSync(asm, source);
  const a = spawnSync('nasm', ['-f', 'elf64', '-o', obj, asm], { encoding: 'utf8' });
  if (a.status !== 0) throw new Error(`nasm failed for ${name}: ${a.stderr}`);
  const l = spawnSync('ld', ['-static', '-o', exe, obj], { encoding: 'utf8' });
  if (l.status !== 0) throw new Error(`ld failed for ${name}: ${l.stderr}`);
  return exe;
}

/** What both runs are compared on. */
export interface Outcome {
  stdout: string;
  stderr: string;
  /** Exit status, or null when a signal ended the program. */
  status: number | null;
  /** Signal number that ended the program, or 0. */
  signal: number;
}

export interface RunSpec {
  program: string;
  /** argv including argv[0]. */
  argv: readonly string[];
  env: readonly string[];
  stdin?: Uint8Array;
  cwd?: string;
}

const SIGNALS: Record<string, number> = os.constants.signals;

export function runNative(spec: RunSpec): Outcome & { stdoutBytes: Uint8Array } {
  const env: Record<string, string> = {};
  for (const kv of spec.env) {
    const i = kv.indexOf('=');
    env[kv.slice(0, i)] = kv.slice(i + 1);
  }
  const r = spawnSync(spec.program, spec.argv.slice(1), {
    argv0: spec.argv[0],
    env,
    input: spec.stdin ?? new Uint8Array(0),
    cwd: spec.cwd ?? process.cwd(),
    maxBuffer: 64 * 1024 * 1024,
  });
  // EPIPE: the program exited without reading all its stdin, which is its right.
  if (r.error && (r.error as NodeJS.ErrnoException).code !== 'EPIPE') throw r.error;
  return {
    stdout: r.stdout.toString('latin1'),
    stderr: r.stderr.toString('latin1'),
    status: r.signal ? null : r.status,
    signal: r.signal ? SIGNALS[r.signal] : 0,
    stdoutBytes: new Uint8Array(r.stdout),
  };
}

export function runEmulated(spec: RunSpec, maxInstructions = 2e9): Outcome & { result: UserRunResult } {
  const result = runProgram({
    program: spec.program,
    argv: spec.argv,
    env: spec.env,
    stdin: spec.stdin ?? new Uint8Array(0),
    captureStdout: true,
    captureStderr: true,
    maxInstructions,
    ...(spec.cwd ? { cwd: spec.cwd } : {}),
  });
  return {
    stdout: Buffer.from(result.stdout).toString('latin1'),
    stderr: Buffer.from(result.stderr).toString('latin1'),
    status: result.reason === 'exit' ? result.status : null,
    signal: result.signal,
    result,
  };
}
