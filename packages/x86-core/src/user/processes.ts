/**
 * Processes of the user-mode runner (Node only): fork/vfork/clone (a process copy: its own
 * UserMemory copy and CPU; vfork shares the memory and suspends the parent until the child
 * execs or exits), execve (a new ELF image, `#!` scripts included), wait4 with exit statuses,
 * kill between processes, and the scheduler that runs every process interleaved in this one
 * runner: each runs a slice of instructions in turn; a system call that cannot complete yet
 * (wait4 for a running child, read of an empty pipe with writers, sigsuspend) blocks its
 * process and is retried later. When every process is blocked, the calls are retried once in
 * a mode where they fail with -EAGAIN instead (a lone process reading its own empty pipe).
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
  RAX,
  RDX,
  RSP,
  SS,
  SS_VEC,
  UD,
  XM,
} from '../constants';
import { Cpu, cpuidLeaf, PFEC_I, PFEC_P, PFEC_W, type CpuFeatures } from '../index';
import { ElfError, loadElf, parseElf, setupStack, type ElfInfo } from './elf';
import { SYS_BLOCK, SYS_NORESULT, type LinuxKernel, type ProcessHost } from './kernel';
import { EACCES, ECHILD, EINVAL, ENOENT, ENOEXEC, ENOSYS, ESRCH, SIGBUS, SIGCHLD, SIGFPE, SIGILL, SIGSEGV, SIGTRAP } from './linux';
import { UserMemory } from './memory';

const CLONE_VM = 0x100;
const CLONE_VFORK = 0x4000;
const CLONE_THREAD = 0x10000;
const CLONE_CHILD_SETTID = 0x01000000;
const WNOHANG = 1;
/** Largest program file execve reads. */
const MAX_EXEC_BYTES = 512 << 20;
/** Instructions a process runs before the next one gets the CPU (when there are several). */
const SLICE = 1 << 18;

/** A loaded program image: memory, CPU at the entry point, its program break. */
export interface Image {
  mem: UserMemory;
  cpu: Cpu;
  info: ElfInfo;
}

export interface ImageOptions {
  maxMemoryMiB?: number;
  features?: Partial<CpuFeatures>;
}

/**
 * Loads a static ELF (bytes already read) into a fresh memory, builds its stack (argv, envp,
 * auxv) and a CPU at its entry, in 64-bit or 32-bit (compatibility mode) code as the ELF says.
 * Throws ElfError for a file it cannot load.
 */
export function loadImage(file: Uint8Array, execfn: Uint8Array, argv: readonly Uint8Array[], envp: readonly Uint8Array[], o: ImageOptions): Image {
  const info = parseElf(file);
  const mem = new UserMemory(o.maxMemoryMiB ? { maxPages: Math.max(1, Math.floor(o.maxMemoryMiB * 256)) } : {});
  loadElf(mem, file, info);
  const cpu = new Cpu(mem, o.features ?? {});
  const id = new Int32Array(4);
  cpuidLeaf(cpu, 1, 0, id);
  const random = new Uint8Array(16);
  randomFillSync(random);
  const sp = setupStack(mem, info, { argv, envp, execfn, random, hwcap: id[3], uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 });
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
  return { mem, cpu, info };
}

/** Copies the whole architectural state of one CPU into another (fork). */
function copyCpu(from: Cpu, to: Cpu): void {
  to.lo.set(from.lo);
  to.hi.set(from.hi);
  to.rip = from.rip;
  to.setFlags(from.getFlags());
  to.segSel.set(from.segSel);
  to.segBase.set(from.segBase);
  to.segLimit.set(from.segLimit);
  to.segAttr.set(from.segAttr);
  to.csize = from.csize;
  to.ssize = from.ssize;
  to.cpl = from.cpl;
  to.xmm.set(from.xmm);
  to.mxcsr = from.mxcsr;
  to.fpr.set(from.fpr);
  to.fprExt.set(from.fprExt);
  to.mmx.set(from.mmx);
  to.fpTag = from.fpTag;
  to.fpCw = from.fpCw;
  to.fpSw = from.fpSw;
  to.fpTop = from.fpTop;
  to.tscAux = from.tscAux;
  to.retired = from.retired;
}

function hex(n: number): string {
  return '0x' + (n < 0 ? n + 2 ** 64 : n).toString(16);
}

/** The bytes at RIP as hex (at most `max`, fewer when a fetch faults). */
export function bytesAt(mem: UserMemory, la: number, max: number): string {
  const out: string[] = [];
  for (let i = 0; i < max; i++) {
    const b = mem.fetch8(la + i);
    if (b < 0) break;
    out.push(b.toString(16).padStart(2, '0'));
  }
  return out.join(' ');
}

/** Maps a CPU exception to the signal Linux would send, with a description and si_addr; null: unimplemented instruction. */
function exceptionSignal(cpu: Cpu, mem: UserMemory): { sig: number; why: string; addr: number; code: number } | null {
  const at = `at RIP ${hex(cpu.rip)}`;
  switch (cpu.faultVector) {
    case DE: return { sig: SIGFPE, why: `divide error ${at}`, addr: cpu.rip, code: 1 /* FPE_INTDIV */ };
    case MF: case XM: return { sig: SIGFPE, why: `floating-point exception (vector ${cpu.faultVector}) ${at}`, addr: cpu.rip, code: 0 };
    case PF_VEC: {
      const e = cpu.faultError;
      const kind = e & PFEC_I ? 'instruction fetch' : e & PFEC_W ? 'write' : 'read';
      const why = e & PFEC_P ? 'protection violation' : 'unmapped address';
      return { sig: SIGSEGV, why: `segmentation fault: ${kind} at ${hex(cpu.faultAddress)} (${why}) ${at}`, addr: cpu.faultAddress, code: e & PFEC_P ? 2 : 1 };
    }
    case GP: case SS_VEC: case NP: return { sig: SIGSEGV, why: `general protection fault (vector ${cpu.faultVector}) ${at}`, addr: 0, code: 0x80 /* SI_KERNEL */ };
    case AC_VEC: return { sig: SIGBUS, why: `alignment check ${at}`, addr: cpu.rip, code: 1 };
    case BP: case DB: return { sig: SIGTRAP, why: `trace/breakpoint trap ${at}`, addr: cpu.rip, code: 1 };
    case UD: {
      const bytes = bytesAt(mem, cpu.rip, 15);
      const deliberate = /^(0f 0b|0f b9|0f ff)/.test(bytes.replace(/^((66|f2|f3|2e|3e|26|64|65|36|4[0-9a-f]) )+/, ''));
      if (deliberate) return { sig: SIGILL, why: `illegal instruction (UD0/UD1/UD2) ${at}: ${bytes}`, addr: cpu.rip, code: 2 /* ILL_ILLOPN */ };
      return null;
    }
    default: return { sig: SIGILL, why: `CPU exception vector ${cpu.faultVector} ${at}`, addr: cpu.rip, code: 0 };
  }
}

/** One process: its CPU, memory and kernel state, and its place in the family. */
export class Proc {
  cpu: Cpu;
  mem: UserMemory;
  readonly kernel: LinuxKernel;
  readonly pid: number;
  ppid: number;
  /** Exited (a zombie until its parent reaps it). */
  zombie = false;
  /** wait4 status word (exit code << 8, or the signal). */
  waitStatus = 0;
  /** The signal sent to the parent when this process exits (clone's low byte; SIGCHLD). */
  exitSignal: number;
  /** A vfork parent waits for this child to exec or exit. */
  vforkParent: Proc | null = null;
  /** Suspended by vfork until its child execs or exits. */
  vforkWaiting = false;
  /** The process ended by an unimplemented instruction (125) or an exit of the runner. */
  unimplemented = '';
  constructor(cpu: Cpu, mem: UserMemory, kernel: LinuxKernel, pid: number, ppid: number, exitSignal: number) {
    this.cpu = cpu;
    this.mem = mem;
    this.kernel = kernel;
    this.pid = pid;
    this.ppid = ppid;
    this.exitSignal = exitSignal;
  }
}

/** Why run() stopped. */
export interface TableResult {
  /** 'exit' (the first process ended: see its kernel), 'unimplemented', 'limit'. */
  reason: 'exit' | 'unimplemented' | 'limit';
  message: string;
  /** Instructions retired by every process. */
  retired: number;
}

/** The process table and scheduler (ProcessHost for every process's kernel). */
export class ProcessTable implements ProcessHost {
  readonly root: Proc;
  private readonly procs = new Map<number, Proc>();
  private nextPid: number;
  private readonly image: ImageOptions;
  /** Instructions retired by processes that are gone. */
  private retiredGone = 0;

  constructor(cpu: Cpu, mem: UserMemory, kernel: LinuxKernel, image: ImageOptions = {}) {
    this.root = new Proc(cpu, mem, kernel, kernel.pid, kernel.ppid, SIGCHLD);
    this.procs.set(kernel.pid, this.root);
    kernel.procs = this;
    this.nextPid = kernel.pid + 1;
    this.image = image;
  }

  /** Live processes (including zombies not yet reaped). */
  get count(): number {
    return this.procs.size;
  }

  private allocPid(): number {
    while (this.procs.has(this.nextPid) || this.nextPid === process.pid) this.nextPid = this.nextPid >= 4194304 ? 2 : this.nextPid + 1;
    return this.nextPid++;
  }

  private procOf(k: LinuxKernel): Proc {
    return this.procs.get(k.pid)!;
  }

  fork(parentK: LinuxKernel, cpu: Cpu, flags: number, stack: number, ctid: number): number {
    if ((flags & CLONE_THREAD) !== 0 || ((flags & CLONE_VM) !== 0 && (flags & CLONE_VFORK) === 0)) return -ENOSYS; // threads
    if (this.procs.size >= 256) return -11; // EAGAIN: bounded
    const parent = this.procOf(parentK);
    const vfork = (flags & CLONE_VFORK) !== 0;
    const mem = (flags & CLONE_VM) !== 0 ? parent.mem : parent.mem.fork();
    const child = new Cpu(mem, cpu.features);
    copyCpu(cpu, child);
    child.retired = 0;
    child.setRegNumber(RAX, 0);
    if (stack !== 0) child.setRegNumber(RSP, stack);
    const pid = this.allocPid();
    const k = parentK.forkKernel(mem, pid);
    const p = new Proc(child, mem, k, pid, parent.pid, flags & 0xff);
    if ((flags & CLONE_CHILD_SETTID) !== 0 && ctid !== 0) {
      const b = new Uint8Array(4);
      new DataView(b.buffer).setInt32(0, pid, true);
      mem.writeFrom(ctid, b);
    }
    this.procs.set(pid, p);
    if (vfork) {
      p.vforkParent = parent;
      parent.vforkWaiting = true;
    }
    return pid;
  }

  execve(k: LinuxKernel, _cpu: Cpu, file: Buffer, argv: Buffer[], envp: Buffer[]): number {
    const p = this.procOf(k);
    let prog = file.toString();
    let args: Uint8Array[] = argv;
    let bytes: Uint8Array;
    for (let depth = 0; ; depth++) {
      try {
        // only regular files of a bounded size (not /dev/zero, not a FIFO)
        const st = fs.statSync(prog);
        if (!st.isFile()) return -EACCES;
        if (st.size > MAX_EXEC_BYTES) return -ENOEXEC;
        bytes = new Uint8Array(fs.readFileSync(prog));
      } catch (e) {
        const c = (e as { code?: string }).code;
        return c === 'ENOENT' || c === 'ENOTDIR' ? -ENOENT : -EACCES;
      }
      // #! interpreter [one argument]: run the interpreter with the script's path
      if (bytes.length > 2 && bytes[0] === 0x23 && bytes[1] === 0x21 && depth < 4) {
        const nl = bytes.indexOf(10);
        const line = Buffer.from(bytes.subarray(2, nl < 0 ? Math.min(bytes.length, 256) : Math.min(nl, 256))).toString().trim();
        const sp = line.search(/\s/);
        const interp = sp < 0 ? line : line.slice(0, sp);
        const arg = sp < 0 ? '' : line.slice(sp).trim();
        if (!interp) return -ENOEXEC;
        args = [Buffer.from(interp), ...(arg ? [Buffer.from(arg)] : []), Buffer.from(prog), ...args.slice(1)];
        prog = interp;
        continue;
      }
      break;
    }
    let img: Image;
    try {
      img = loadImage(bytes, Buffer.from(prog), args, envp, this.image);
    } catch (e) {
      if (e instanceof ElfError) return -ENOEXEC;
      throw e;
    }
    this.retiredGone += p.cpu.retired;
    p.cpu = img.cpu;
    p.mem = img.mem;
    k.execImage(img.mem, path.resolve(prog), img.info.brk, img.info.bits === 32);
    this.releaseVfork(p);
    return SYS_NORESULT;
  }

  wait4(k: LinuxKernel, pid: number, statusLa: number, options: number): number {
    if ((options & ~(WNOHANG | 2 | 8 | 0x40000000 | 0x80000000 | 0x20000000)) !== 0) return -EINVAL;
    let any = false;
    for (const c of this.procs.values()) {
      if (c.ppid !== k.pid || c === this.root) continue;
      if (pid > 0 && c.pid !== pid) continue;
      any = true;
      if (!c.zombie) continue;
      if (statusLa !== 0) {
        const b = new Uint8Array(4);
        new DataView(b.buffer).setInt32(0, c.waitStatus, true);
        if (!k.mem.writeFrom(statusLa, b)) return -14; // EFAULT
      }
      this.procs.delete(c.pid);
      return c.pid;
    }
    if (!any) return -ECHILD;
    return (options & WNOHANG) !== 0 ? 0 : SYS_BLOCK;
  }

  kill(k: LinuxKernel, pid: number, sig: number): number {
    const targets = pid > 0 ? [this.procs.get(pid)].filter((p): p is Proc => p !== undefined && !p.zombie) : [...this.procs.values()].filter((p) => !p.zombie && (pid !== -1 || p.pid !== k.pid));
    if (targets.length === 0) return -ESRCH;
    if (sig === 0) return 0;
    for (const t of targets) t.kernel.post(sig, { signo: sig, code: 0, pid: k.pid, uid: process.getuid?.() ?? 0, addr: -1, status: -1 }, `killed by signal ${sig} (sent by process ${k.pid})`);
    return 0;
  }

  private releaseVfork(p: Proc): void {
    if (p.vforkParent) {
      p.vforkParent.vforkWaiting = false;
      p.vforkParent = null;
    }
  }

  /** A process has ended: it becomes a zombie; its descriptors close; its parent hears of it. */
  private ended(p: Proc): void {
    const k = p.kernel;
    p.zombie = true;
    p.waitStatus = k.exitSignal !== 0 ? k.exitSignal & 0x7f : (k.exitStatus & 0xff) << 8;
    this.retiredGone += p.cpu.retired;
    if (p !== this.root) k.closeAll();
    this.releaseVfork(p);
    const parent = this.procs.get(p.ppid);
    if (parent && !parent.zombie && p.exitSignal > 0) {
      const exited = k.exitSignal === 0;
      parent.kernel.post(p.exitSignal, { signo: p.exitSignal, code: exited ? 1 : 2, pid: p.pid, uid: process.getuid?.() ?? 0, addr: -1, status: exited ? k.exitStatus & 0xff : k.exitSignal }, 'child exited');
    }
    // orphans are adopted by the first process
    for (const c of this.procs.values()) if (c.ppid === p.pid && c !== this.root) c.ppid = this.root.pid;
  }

  /**
   * Runs process p for up to `budget` instructions: until its slice ends, it blocks, it ends or
   * the runner must stop. Returns a stop reason for the whole run, or null.
   */
  private runSlice(p: Proc, budget: number, wasBlocked: boolean): { reason: 'unimplemented'; message: string } | null {
    const k = p.kernel;
    // signals sent by other processes since this one last ran (a blocked call is retried first:
    // sigsuspend must see them and return -EINTR)
    if (!wasBlocked) {
      k.deliverSignals(p.cpu);
      if (k.done) return null;
    }
    let left = budget;
    const n = this.procs.size;
    while (left > 0) {
      const cpu = p.cpu;
      const before = cpu.retired;
      const exit = cpu.run(Math.min(left, 1 << 22));
      left -= cpu.retired - before + 1;
      switch (exit) {
        case EXIT_BUDGET:
          break;
        case EXIT_SYSCALL:
          k.syscall(cpu);
          break;
        case EXIT_SOFTINT:
          if (cpu.faultVector === 3 || cpu.faultVector === 1) k.raise(SIGTRAP, `trace/breakpoint trap (INT${cpu.faultVector === 3 ? '3' : '1'}) before RIP ${hex(cpu.rip)}`, true, cpu.rip, 0x80);
          else if (cpu.faultVector === 0x80) k.syscall32(cpu); // the i386 ABI (also from 64-bit code, as in Linux)
          else k.raise(SIGSEGV, `general protection fault (INT 0x${cpu.faultVector.toString(16)}) before RIP ${hex(cpu.rip)}`, true, 0, 0x80);
          break;
        case EXIT_HLT:
          k.raise(SIGSEGV, `general protection fault (HLT) before RIP ${hex(cpu.rip)}`, true, 0, 0x80);
          break;
        case EXIT_EXCEPTION: {
          const s = exceptionSignal(cpu, p.mem);
          if (!s) return { reason: 'unimplemented', message: `unimplemented instruction at RIP ${hex(cpu.rip)}: ${bytesAt(p.mem, cpu.rip, 12)} (#UD)` };
          k.raise(s.sig, s.why, true, s.addr, s.code); // a synchronous fault cannot be ignored or blocked
          break;
        }
        default:
          k.raise(SIGILL, `unexpected CPU exit ${exit}`, true);
      }
      k.deliverSignals(p.cpu);
      // a new process (fork) ends an unbounded slice: from now on everyone gets slices
      if (k.done || k.blocked || p.vforkWaiting || p.cpu !== cpu || this.procs.size !== n) return null;
    }
    return null;
  }

  /** Runs every process until the first one ends (or a stop: unimplemented instruction, instruction limit). */
  run(maxInstructions: number = Infinity): TableResult {
    const retired = (): number => {
      let n = this.retiredGone;
      for (const p of this.procs.values()) if (!p.zombie) n += p.cpu.retired;
      return n;
    };
    let stalled = false;
    for (;;) {
      let progressed = false;
      for (const p of [...this.procs.values()]) {
        if (p.zombie || p.vforkWaiting || !this.procs.has(p.pid)) continue;
        const left = maxInstructions - retired();
        if (left <= 0) return { reason: 'limit', message: `instruction limit reached (${maxInstructions}) at RIP ${hex(p.cpu.rip)}`, retired: retired() };
        const k = p.kernel;
        const wasBlocked = k.blocked;
        k.blocked = false;
        k.noBlock = stalled;
        const before = p.cpu.retired;
        const alone = this.procs.size === 1;
        const stop = this.runSlice(p, Math.min(left, alone ? Infinity : SLICE), wasBlocked);
        k.noBlock = false;
        if (stop) return { ...stop, retired: retired() };
        if (!k.blocked || !wasBlocked || p.cpu.retired - before > 1 || k.done) progressed = true;
        if (k.done) {
          if (p === this.root) {
            const r = retired();
            for (const q of this.procs.values()) if (q !== p && !q.zombie) q.kernel.closeAll();
            return { reason: 'exit', message: '', retired: r };
          }
          this.ended(p);
        }
      }
      stalled = !progressed;
    }
  }
}
