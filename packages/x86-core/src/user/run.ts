/**
 * The user-mode runner: load a static x86-64 Linux ELF into a UserMemory, build its stack,
 * run the CPU, serve its system calls through LinuxKernel, and turn CPU exceptions into the
 * signal a Linux process would get. Node only (host files through node:fs).
 */
import { randomFillSync } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  AC_VEC,
  BP,
  CS,
  DB,
  DE,
  DS,
  ES,
  EXIT_BUDGET,
  EXIT_EXCEPTION,
  EXIT_HLT,
  EXIT_SOFTINT,
  EXIT_SYSCALL,
  GP,
  MF,
  NP,
  PF_VEC,
  RDX,
  RSP,
  SS,
  SS_VEC,
  UD,
  XM,
} from '../constants';
// The CPU comes in through the package entry so that a bundle orders the CPU's modules (which
// import each other) exactly as the entry does.
import { Cpu, cpuidLeaf, PFEC_I, PFEC_P, PFEC_W, type CpuFeatures } from '../index';
import { loadElf, parseElf, setupStack } from './elf';
import { LinuxKernel } from './kernel';
import { SIGBUS, SIGFPE, SIGILL, SIGNAL_NAMES, SIGSEGV, SIGTRAP } from './linux';
import { UserMemory } from './memory';

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

function hex(n: number): string {
  return '0x' + (n < 0 ? n + 2 ** 64 : n).toString(16);
}

/** The bytes at RIP as hex (at most `max`, fewer when a fetch faults). */
function bytesAt(mem: UserMemory, la: number, max: number): string {
  const out: string[] = [];
  for (let i = 0; i < max; i++) {
    const b = mem.fetch8(la + i);
    if (b < 0) break;
    out.push(b.toString(16).padStart(2, '0'));
  }
  return out.join(' ');
}

/** Prepares a process (memory, CPU, kernel) without running it. */
export function createProcess(opts: UserRunOptions): { cpu: Cpu; mem: UserMemory; kernel: LinuxKernel } {
  const file = new Uint8Array(fs.readFileSync(opts.program));
  const info = parseElf(file);
  const mem = new UserMemory(opts.maxMemoryMiB ? { maxPages: Math.max(1, Math.floor(opts.maxMemoryMiB * 256)) } : {});
  loadElf(mem, file, info);
  const cpu = new Cpu(mem, opts.features ?? {});
  const id = new Int32Array(4);
  cpuidLeaf(cpu, 1, 0, id);
  const enc = (s: string): Uint8Array => new Uint8Array(Buffer.from(s));
  const env = opts.env ?? Object.entries(process.env).map(([k, v]) => `${k}=${v ?? ''}`);
  const random = new Uint8Array(16);
  randomFillSync(random);
  const sp = setupStack(mem, info, {
    argv: (opts.argv ?? [opts.program]).map(enc),
    envp: env.map(enc),
    execfn: enc(opts.program),
    random,
    hwcap: id[3],
    uid: process.getuid?.() ?? 0,
    gid: process.getgid?.() ?? 0,
  });
  cpu.rip = info.entry;
  cpu.setRegNumber(RSP, sp);
  cpu.setRegNumber(RDX, 0); // no rtld_fini
  cpu.setFlags(0x202);
  if (info.bits === 32) {
    // A compatibility-mode (32-bit) code segment with flat 4 GiB segments, as Linux gives an i386 process.
    cpu.csize = 4;
    cpu.ssize = 4;
    cpu.segSel[CS] = 0x23;
    for (const s of [SS, DS, ES]) cpu.segSel[s] = 0x2b;
  } else {
    cpu.segSel[CS] = 0x33;
    cpu.segSel[SS] = 0x2b;
  }
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

/** Maps a CPU exception to the signal Linux would send, with a description. */
function exceptionSignal(cpu: Cpu, mem: UserMemory): { sig: number; why: string } | null {
  const at = `at RIP ${hex(cpu.rip)}`;
  switch (cpu.faultVector) {
    case DE: return { sig: SIGFPE, why: `divide error ${at}` };
    case MF: case XM: return { sig: SIGFPE, why: `floating-point exception (vector ${cpu.faultVector}) ${at}` };
    case PF_VEC: {
      const e = cpu.faultError;
      const kind = e & PFEC_I ? 'instruction fetch' : e & PFEC_W ? 'write' : 'read';
      const why = e & PFEC_P ? 'protection violation' : 'unmapped address';
      return { sig: SIGSEGV, why: `segmentation fault: ${kind} at ${hex(cpu.faultAddress)} (${why}) ${at}` };
    }
    case GP: case SS_VEC: case NP: return { sig: SIGSEGV, why: `general protection fault (vector ${cpu.faultVector}) ${at}` };
    case AC_VEC: return { sig: SIGBUS, why: `alignment check ${at}` };
    case BP: case DB: return { sig: SIGTRAP, why: `trace/breakpoint trap ${at}` };
    case UD: {
      const bytes = bytesAt(mem, cpu.rip, 15);
      const deliberate = /^(0f 0b|0f b9|0f ff)/.test(bytes.replace(/^((66|f2|f3|2e|3e|26|64|65|36|4[0-9a-f]) )+/, ''));
      if (deliberate) return { sig: SIGILL, why: `illegal instruction (UD0/UD1/UD2) ${at}: ${bytes}` };
      return null;
    }
    default: return { sig: SIGILL, why: `CPU exception vector ${cpu.faultVector} ${at}` };
  }
}

/** Runs a prepared process to its end. */
export function runProcess(cpu: Cpu, mem: UserMemory, kernel: LinuxKernel, maxInstructions: number = Infinity): UserRunResult {
  const result = (reason: UserRunReason, status: number, signal: number, message: string): UserRunResult => {
    kernel.closeAll();
    return { status, reason, signal, message, retired: cpu.retired, stdout: concat(kernel.stdout), stderr: concat(kernel.stderr) };
  };
  for (;;) {
    const left = maxInstructions - cpu.retired;
    if (left <= 0) return result('limit', LIMIT_STATUS, 0, `instruction limit reached (${maxInstructions}) at RIP ${hex(cpu.rip)}`);
    const exit = cpu.run(Math.min(left, 1 << 22));
    switch (exit) {
      case EXIT_BUDGET:
        continue;
      case EXIT_SYSCALL:
        kernel.syscall(cpu);
        break;
      case EXIT_SOFTINT:
        if (cpu.faultVector === 3 || cpu.faultVector === 1) kernel.raise(SIGTRAP, `trace/breakpoint trap (INT${cpu.faultVector === 3 ? '3' : '1'}) before RIP ${hex(cpu.rip)}`);
        else if (cpu.faultVector === 0x80) kernel.syscall32(cpu); // the i386 ABI (also from 64-bit code, as in Linux)
        else kernel.raise(SIGSEGV, `general protection fault (INT 0x${cpu.faultVector.toString(16)}) before RIP ${hex(cpu.rip)}`);
        break;
      case EXIT_HLT:
        kernel.raise(SIGSEGV, `general protection fault (HLT) before RIP ${hex(cpu.rip)}`);
        break;
      case EXIT_EXCEPTION: {
        const s = exceptionSignal(cpu, mem);
        if (!s) {
          const len = 12;
          return result('unimplemented', UNIMPLEMENTED_STATUS, 0, `unimplemented instruction at RIP ${hex(cpu.rip)}: ${bytesAt(mem, cpu.rip, len)} (#UD)`);
        }
        kernel.raise(s.sig, s.why, true); // a synchronous fault cannot be ignored
        break;
      }
      default:
        return result('signal', 128 + SIGILL, SIGILL, `unexpected CPU exit ${exit}`);
    }
    if (kernel.done) {
      if (kernel.exitSignal === 0) return result('exit', kernel.exitStatus, 0, '');
      const name = SIGNAL_NAMES[kernel.exitSignal] || `signal ${kernel.exitSignal}`;
      return result('signal', kernel.exitStatus, kernel.exitSignal, `${name}: ${kernel.message}`);
    }
  }
}

/** Loads and runs a static x86-64 Linux program; throws ElfError for a file it cannot load. */
export function runProgram(opts: UserRunOptions): UserRunResult {
  const { cpu, mem, kernel } = createProcess(opts);
  return runProcess(cpu, mem, kernel, opts.maxInstructions ?? Infinity);
}
