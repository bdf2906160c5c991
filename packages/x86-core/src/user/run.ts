/**
 * The user-mode runner: load a static x86-64 Linux ELF into a UserMemory, build its stack,
 * run the CPU, serve its system calls through LinuxKernel, and turn CPU exceptions into the
 * signal a Linux process would get. Node only (host files through node:fs).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
// The CPU comes in through the package entry so that a bundle orders the CPU's modules (which
// import each other) exactly as the entry does.
import type { Cpu, CpuFeatures } from '../index';
import { LinuxKernel } from './kernel';
import { SIGNAL_NAMES } from './linux';
import type { UserMemory } from './memory';
import { loadImage, ProcessTable, type ImageOptions } from './processes';

/** Exit status of the runner when the program hit an instruction the CPU does not implement. */
export const UNIMPLEMENTED_STATUS = 125;
/** Exit status when the instruction limit (maxInstructions) ran out. */
export const LIMIT_STATUS = 124;

export interface UserRunOptions {
  /** Host path of the static x86-64 ELF program. */
  program: string;
  /** The program's argv (argv[0] included); default [program]. */
  argv?: readonly string[];
  /** The environment as "NAME=value" strings; default: the host's environment. */
  env?: readonly string[];
  /** Initial working directory (default: the host process's). */
  cwd?: string;
  /** Bytes for fd 0; default: the host's stdin. */
  stdin?: Uint8Array;
  /** Collect fd 1 / fd 2 in the result instead of writing to the host's. */
  captureStdout?: boolean;
  captureStderr?: boolean;
  /** Log unimplemented system calls and ioctls (debug) or every system call (strace). */
  debug?: boolean;
  strace?: boolean;
  log?: (line: string) => void;
  /** Stop with reason "limit" after this many instructions (default: no limit). */
  maxInstructions?: number;
  /** Most guest memory that may be mapped, in MiB (default 2048): mmap/brk fail with ENOMEM beyond. */
  maxMemoryMiB?: number;
  /** CPU feature switches (default: the CPU's defaults, i.e. what is implemented). */
  features?: Partial<CpuFeatures>;
}

export type UserRunReason = 'exit' | 'signal' | 'unimplemented' | 'limit';

export interface UserRunResult {
  /** Exit status as a shell reports it: the program's status, 128 + signal, UNIMPLEMENTED_STATUS or LIMIT_STATUS. */
  status: number;
  reason: UserRunReason;
  /** The signal that ended the program (reason "signal"), else 0. */
  signal: number;
  /** What went wrong (empty for a normal exit). */
  message: string;
  /** Guest instructions retired. */
  retired: number;
  /** Captured output (empty when not captured). */
  stdout: Uint8Array;
  stderr: Uint8Array;
}

function concat(chunks: readonly Uint8Array[]): Uint8Array {
  let n = 0;
  for (const c of chunks) n += c.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const c of chunks) {
    out.set(c, o);
    o += c.length;
  }
  return out;
}

/** Prepares a process (memory, CPU, kernel) without running it. */
export function createProcess(opts: UserRunOptions): { cpu: Cpu; mem: UserMemory; kernel: LinuxKernel } {
  const file = new Uint8Array(fs.readFileSync(opts.program));
  const enc = (s: string): Uint8Array => new Uint8Array(Buffer.from(s));
  const env = opts.env ?? Object.entries(process.env).map(([k, v]) => `${k}=${v ?? ''}`);
  const { cpu, mem, info } = loadImage(file, enc(opts.program), (opts.argv ?? [opts.program]).map(enc), env.map(enc), imageOptions(opts));
  const kernel = new LinuxKernel(mem, {
    exePath: path.resolve(opts.program),
    compat32: info.bits === 32,
    ...(opts.cwd ? { cwd: path.resolve(opts.cwd) } : {}),
    ...(opts.stdin ? { stdin: opts.stdin } : {}),
    captureStdout: opts.captureStdout ?? false,
    captureStderr: opts.captureStderr ?? false,
    debug: opts.debug ?? false,
    strace: opts.strace ?? false,
    ...(opts.log ? { log: opts.log } : {}),
  });
  kernel.setBrk(info.brk);
  return { cpu, mem, kernel };
}

function imageOptions(opts: { maxMemoryMiB?: number; features?: Partial<CpuFeatures> }): ImageOptions {
  return { ...(opts.maxMemoryMiB ? { maxMemoryMiB: opts.maxMemoryMiB } : {}), ...(opts.features ? { features: opts.features } : {}) };
}

/**
 * Runs a prepared process to its end, with every process it forks interleaved in this runner;
 * the result is the first process's.
 */
export function runProcess(cpu: Cpu, mem: UserMemory, kernel: LinuxKernel, maxInstructions: number = Infinity, image: ImageOptions = {}): UserRunResult {
  const table = new ProcessTable(cpu, mem, kernel, image);
  const r = table.run(maxInstructions);
  const k = table.root.kernel;
  const result = (reason: UserRunReason, status: number, signal: number, message: string): UserRunResult => {
    k.closeAll();
    return { status, reason, signal, message, retired: r.retired, stdout: concat(k.stdout), stderr: concat(k.stderr) };
  };
  if (r.reason === 'limit') return result('limit', LIMIT_STATUS, 0, r.message);
  if (r.reason === 'unimplemented') return result('unimplemented', UNIMPLEMENTED_STATUS, 0, r.message);
  if (k.exitSignal === 0) return result('exit', k.exitStatus, 0, '');
  const name = SIGNAL_NAMES[k.exitSignal] || `signal ${k.exitSignal}`;
  return result('signal', k.exitStatus, k.exitSignal, `${name}: ${k.message}`);
}

/** Loads and runs a static x86-64 or i386 Linux program; throws ElfError for a file it cannot load. */
export function runProgram(opts: UserRunOptions): UserRunResult {
  const { cpu, mem, kernel } = createProcess(opts);
  return runProcess(cpu, mem, kernel, opts.maxInstructions ?? Infinity, imageOptions(opts));
}
