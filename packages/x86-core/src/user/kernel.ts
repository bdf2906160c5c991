/**
 * The Linux system-call layer of the user-mode runner (Node only: host files through node:fs
 * sync APIs). One LinuxKernel serves one single-threaded process: it owns the file-descriptor
 * table, the program break, the mmap area, signal dispositions and the working directory, and
 * `syscall(cpu)` performs the call described by RAX/RDI/RSI/RDX/R10/R8/R9 and writes RAX.
 *
 * Guest pointers and sizes are untrusted: every access to guest memory goes through
 * UserMemory's checked copies (EFAULT), host buffers are bounded (I/O moves in chunks of at
 * most 1 MiB), and host errors come back as -errno. Calls that are not implemented return
 * -ENOSYS and are logged when debugging is on.
 */
import { randomFillSync } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import { isatty } from 'node:tty';
import { FS, GS, R8, R9, R10, RAX, RBP, RBX, RCX, RDI, RDX, RSI } from '../constants';
import type { Cpu } from '../cpu';
import { PAGE_SIZE, PROT_READ, PROT_WRITE, USER_TOP, type UserMemory } from './memory';
import { pushSignalFrame, SA_NODEFER, SA_RESETHAND, sigreturn32, sigreturn64, type SigAction, type SigInfo } from './signal';
import {
  AT_EMPTY_PATH,
  AT_FDCWD,
  AT_REMOVEDIR,
  AT_SYMLINK_NOFOLLOW,
  E2BIG,
  EAGAIN,
  EINTR,
  EBADF,
  ECHILD,
  EFAULT,
  EINVAL,
  EIO,
  EISDIR,
  EMFILE,
  ENAMETOOLONG,
  ENODEV,
  ENOMEM,
  ENOSYS,
  ENOTDIR,
  ENOTTY,
  EPERM,
  EPIPE,
  ERANGE,
  ESPIPE,
  ESRCH,
  ETIMEDOUT,
  MADV_DONTNEED,
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_FIXED_NOREPLACE,
  MAP_PRIVATE,
  MAP_SHARED,
  MREMAP_FIXED,
  MREMAP_MAYMOVE,
  O_ACCMODE,
  O_APPEND,
  O_CLOEXEC,
  O_CREAT,
  O_DIRECTORY,
  O_NONBLOCK,
  SIG_DEFAULT_IGNORED,
  SIGCHLD,
  SIGKILL,
  SIGSEGV,
  SIGPIPE,
  SIGSTOP,
  SYS,
  SYSCALL_NAMES,
  I386,
  I386_NAMES,
  I386_SAME,
} from './linux';

const CHUNK = 1 << 20;
const MAX_FDS = 1024;
const MAX_PATH = 4096;
/** Most entries one directory listing may hold (bounds host memory for a hostile directory). */
const MAX_DIR_ENTRIES = 1 << 20;
const DOT = Buffer.from('.');
const DOTDOT = Buffer.from('..');
/** Top of the mmap area (just below the stack gap, as Linux without ASLR places it). */
export const MMAP_TOP = 0x7fff_f7ff_f000;
/** Top of the mmap area of an i386 process. */
export const MMAP_TOP32 = 0xf7ff_f000;

// OpenFile kinds
// stat layouts
const ST_STAT = 0;
const ST_STATX = 1;
const ST_STAT64 = 2;

const K_HOST = 0;
const K_BYTES = 1;
const K_CAPTURE = 2;
const K_PIPE_R = 3;
const K_PIPE_W = 4;

class Pipe {
  chunks: Uint8Array[] = [];
  size = 0;
  readers = 0;
  writers = 0;
}

interface DirEntry {
  name: Buffer;
  ino: bigint;
  type: number;
}

/** One open file description (shared by dup'ed descriptors, as in Linux). */
class OpenFile {
  kind: number;
  hostFd = -1;
  /** The host fd was opened by us (closed with the last reference). */
  owned = false;
  path: Buffer | null = null;
  pos = 0;
  flags = 0;
  /** Reads/writes at `pos` with pread/pwrite (regular files we opened). */
  seekable = false;
  dir: DirEntry[] | null = null;
  data: Uint8Array | null = null;
  out: Uint8Array[] | null = null;
  pipe: Pipe | null = null;
  refs = 1;
  constructor(kind: number) {
    this.kind = kind;
  }
}

/** A system call that cannot complete yet: the scheduler runs other processes and retries it. */
export const SYS_BLOCK = -0x10001;
/** A system call that set every register itself (execve, rt_sigreturn): RAX is left alone. */
export const SYS_NORESULT = -0x10002;

/**
 * The process table the kernel consults for fork/clone, execve, wait4 and kill to other
 * processes (implemented by the scheduler, processes.ts). Without one, the process is alone:
 * fork and execve return -ENOSYS, wait4 -ECHILD, kill reaches only itself.
 */
export interface ProcessHost {
  /** fork/vfork/clone: a new process copying (or, for vfork, sharing) this one; the child's pid or -errno. */
  fork(parent: LinuxKernel, cpu: Cpu, flags: number, stack: number, ctid: number): number;
  /** execve: replaces the process image; SYS_NORESULT on success (registers set), else -errno. */
  execve(k: LinuxKernel, cpu: Cpu, path: Buffer, argv: Buffer[], envp: Buffer[]): number;
  /** wait4: a reaped child's pid (status written), 0 (WNOHANG), SYS_BLOCK, or -errno. */
  wait4(k: LinuxKernel, pid: number, statusLa: number, options: number): number;
  /** kill(pid, sig) to another process or group: 0 or -errno. */
  kill(k: LinuxKernel, pid: number, sig: number): number;
}

export interface KernelOptions {
  /** Bytes for fd 0; when absent fd 0 is the host's stdin. */
  stdin?: Uint8Array;
  /** Collect fd 1 / fd 2 output in memory instead of writing to the host's stdout / stderr. */
  captureStdout?: boolean;
  captureStderr?: boolean;
  /** Absolute host path of the program (what /proc/self/exe reads as). */
  exePath: string;
  /** Initial working directory (default: the host process's). */
  cwd?: string;
  /** An i386 process: mappings stay below 4 GiB. */
  compat32?: boolean;
  /** Log unimplemented calls (debug) or every call (strace) through `log`. */
  debug?: boolean;
  strace?: boolean;
  log?: (line: string) => void;
}

function errnoOf(e: unknown): number {
  const n = (e as { errno?: unknown }).errno;
  if (typeof n === 'number' && n < 0 && n > -4096) return -n;
  return EIO;
}

const sleepCell = new Int32Array(new SharedArrayBuffer(4));
function sleepMs(ms: number): void {
  Atomics.wait(sleepCell, 0, 0, ms);
}

function u64le(dv: DataView, o: number, v: bigint): void {
  dv.setBigUint64(o, BigInt.asUintN(64, v), true);
}

/** The fields of a stat result we translate (Node's BigIntStats has them all). */
interface StatLike {
  dev: bigint;
  ino: bigint;
  nlink: bigint;
  mode: bigint;
  uid: bigint;
  gid: bigint;
  rdev: bigint;
  size: bigint;
  blksize: bigint;
  blocks: bigint;
  atimeNs: bigint;
  mtimeNs: bigint;
  ctimeNs: bigint;
  birthtimeNs: bigint;
}

/** struct stat (x86-64, 144 bytes). */
function statBytes(st: StatLike): Uint8Array {
  const b = new Uint8Array(144);
  const dv = new DataView(b.buffer);
  u64le(dv, 0, st.dev);
  u64le(dv, 8, st.ino);
  u64le(dv, 16, st.nlink);
  dv.setUint32(24, Number(st.mode), true);
  dv.setUint32(28, Number(st.uid), true);
  dv.setUint32(32, Number(st.gid), true);
  u64le(dv, 40, st.rdev);
  u64le(dv, 48, st.size);
  u64le(dv, 56, st.blksize);
  u64le(dv, 64, st.blocks);
  const ts = (o: number, ns: bigint): void => {
    u64le(dv, o, ns / 1_000_000_000n);
    u64le(dv, o + 8, ns % 1_000_000_000n);
  };
  ts(72, st.atimeNs);
  ts(88, st.mtimeNs);
  ts(104, st.ctimeNs);
  return b;
}

/** struct stat64 of i386 (96 bytes, packed). */
function stat64Bytes(st: StatLike): Uint8Array {
  const b = new Uint8Array(96);
  const dv = new DataView(b.buffer);
  u64le(dv, 0, st.dev);
  dv.setUint32(12, Number(st.ino & 0xffffffffn), true);
  dv.setUint32(16, Number(st.mode), true);
  dv.setUint32(20, Number(st.nlink), true);
  dv.setUint32(24, Number(st.uid), true);
  dv.setUint32(28, Number(st.gid), true);
  u64le(dv, 32, st.rdev);
  u64le(dv, 44, st.size);
  dv.setUint32(52, Number(st.blksize), true);
  u64le(dv, 56, st.blocks);
  const ts = (o: number, ns: bigint): void => {
    dv.setUint32(o, Number(BigInt.asUintN(32, ns / 1_000_000_000n)), true);
    dv.setUint32(o + 4, Number(ns % 1_000_000_000n), true);
  };
  ts(64, st.atimeNs);
  ts(72, st.mtimeNs);
  ts(80, st.ctimeNs);
  u64le(dv, 88, st.ino);
  return b;
}

/** struct statx (256 bytes). */
function statxBytes(st: StatLike): Uint8Array {
  const b = new Uint8Array(256);
  const dv = new DataView(b.buffer);
  const btime = st.birthtimeNs > 0n;
  dv.setUint32(0, 0x7ff | (btime ? 0x800 : 0), true); // STATX_BASIC_STATS (+ BTIME)
  dv.setUint32(4, Number(st.blksize), true);
  dv.setUint32(16, Number(st.nlink), true);
  dv.setUint32(20, Number(st.uid), true);
  dv.setUint32(24, Number(st.gid), true);
  dv.setUint16(28, Number(st.mode), true);
  u64le(dv, 32, st.ino);
  u64le(dv, 40, st.size);
  u64le(dv, 48, st.blocks);
  const ts = (o: number, ns: bigint): void => {
    u64le(dv, o, ns / 1_000_000_000n);
    dv.setUint32(o + 8, Number(ns % 1_000_000_000n), true);
  };
  ts(64, st.atimeNs);
  if (btime) ts(80, st.birthtimeNs);
  ts(96, st.ctimeNs);
  ts(112, st.mtimeNs);
  const major = (d: bigint): number => Number(((d >> 8n) & 0xfffn) | ((d >> 32n) & ~0xfffn));
  const minor = (d: bigint): number => Number((d & 0xffn) | ((d >> 12n) & ~0xffn));
  dv.setUint32(128, major(st.rdev), true);
  dv.setUint32(132, minor(st.rdev), true);
  dv.setUint32(136, major(st.dev), true);
  dv.setUint32(140, minor(st.dev), true);
  return b;
}

function dtypeOf(d: fs.Dirent): number {
  if (d.isFile()) return 8;
  if (d.isDirectory()) return 4;
  if (d.isSymbolicLink()) return 10;
  if (d.isFIFO()) return 1;
  if (d.isCharacterDevice()) return 2;
  if (d.isBlockDevice()) return 6;
  if (d.isSocket()) return 12;
  return 0;
}

export class LinuxKernel {
  /** The process's memory (replaced by execve). */
  mem: UserMemory;
  /** The process table (fork, execve, wait4, kill), or null for a lone process. */
  procs: ProcessHost | null = null;
  /** Process id and parent's process id. */
  pid: number;
  ppid: number = process.ppid;
  /** The last system call could not complete: the scheduler switches and retries it. */
  blocked = false;
  /** Retry mode when nothing else can run: a call that would block fails with -EAGAIN instead. */
  noBlock = false;
  /** Pending signals (bit n-1 of lo/hi for signal n) and what each one carries. */
  pendLo = 0;
  pendHi = 0;
  private readonly pendInfo = new Map<number, { info: SigInfo; why: string; force: boolean }>();
  /** The mask to restore after rt_sigsuspend's handler, or -1. */
  private suspendLo = 0;
  private suspendHi = 0;
  private suspended = false;
  /** Set when the process has ended: by exit (exitSignal 0) or by a signal. */
  done = false;
  exitStatus = 0;
  exitSignal = 0;
  /** A message for the user when the process ended abnormally. */
  message = '';
  readonly stdout: Uint8Array[] = [];
  readonly stderr: Uint8Array[] = [];
  /** Initial and current program break. */
  brkStart = 0;
  brk = 0;
  /** Top of the mmap area; the next mmap placement goes below mmapLow. */
  readonly mmapTop: number;
  mmapLow: number;
  private readonly files: (OpenFile | null)[] = [];
  private readonly cloexec: boolean[] = [];
  private cwd: Buffer;
  exePath: string;
  private readonly sigactions = new Map<number, Uint8Array>();
  private sigmaskLo = 0;
  private sigmaskHi = 0;
  private umaskValue = 0o022;
  private readonly debug: boolean;
  private readonly strace: boolean;
  private readonly log: (line: string) => void;
  private readonly scratch: Buffer = Buffer.allocUnsafe(CHUNK);
  private readonly args: Float64Array = new Float64Array(6);
  private readonly options: KernelOptions;

  constructor(mem: UserMemory, options: KernelOptions) {
    this.mem = mem;
    this.exePath = options.exePath;
    this.debug = options.debug ?? false;
    this.strace = options.strace ?? false;
    this.log = options.log ?? ((line: string) => process.stderr.write(line + '\n'));
    this.cwd = Buffer.from(options.cwd ?? process.cwd());
    this.mmapTop = this.mmapLow = options.compat32 ? MMAP_TOP32 : MMAP_TOP;
    this.options = options;
    this.pid = process.pid;
    // fd 0
    if (options.stdin) {
      const f = new OpenFile(K_BYTES);
      f.data = options.stdin;
      this.files[0] = f;
    } else this.files[0] = this.inherit(0, 0);
    for (const fd of [1, 2]) {
      if (fd === 1 ? options.captureStdout : options.captureStderr) {
        const f = new OpenFile(K_CAPTURE);
        f.out = fd === 1 ? this.stdout : this.stderr;
        f.flags = 1;
        this.files[fd] = f;
      } else this.files[fd] = this.inherit(fd, 1);
    }
    this.cloexec.push(false, false, false);
  }

  /**
   * The kernel side of fork: a new kernel for a copy of this process (memory `mem`, pid) that
   * shares every open file description (as Linux's fork does), and copies the working
   * directory, umask, program break, mmap area, signal actions and mask.
   */
  forkKernel(mem: UserMemory, pid: number): LinuxKernel {
    const k = new LinuxKernel(mem, { ...this.options, exePath: this.exePath, compat32: this.mmapTop === MMAP_TOP32 });
    for (const f of k.files) if (f) k.release(f);
    k.files.length = 0;
    k.cloexec.length = 0;
    this.files.forEach((f, fd) => {
      k.files.push(f);
      k.cloexec.push(this.cloexec[fd]);
      if (f) f.refs++;
    });
    k.cwd = this.cwd;
    k.umaskValue = this.umaskValue;
    k.brkStart = this.brkStart;
    k.brk = this.brk;
    k.mmapLow = this.mmapLow;
    for (const [sig, act] of this.sigactions) k.sigactions.set(sig, act.slice());
    k.sigmaskLo = this.sigmaskLo;
    k.sigmaskHi = this.sigmaskHi;
    k.pid = pid;
    k.ppid = this.pid;
    k.procs = this.procs;
    return k;
  }

  /**
   * The kernel side of execve (after the new image is loaded into `mem`): close-on-exec
   * descriptors are closed, caught signals return to their default action (ignored ones stay
   * ignored), the program break and mmap area start afresh.
   */
  execImage(mem: UserMemory, exePath: string, brk: number, compat32: boolean): void {
    this.mem = mem;
    this.exePath = exePath;
    for (let fd = 0; fd < this.files.length; fd++) if (this.files[fd] && this.cloexec[fd]) this.fdClose(fd);
    for (const sig of [...this.sigactions.keys()]) if (this.action(sig).handler > 1) this.sigactions.delete(sig);
    (this as { mmapTop: number }).mmapTop = compat32 ? MMAP_TOP32 : MMAP_TOP;
    this.mmapLow = this.mmapTop;
    this.setBrk(brk);
  }

  /** The action for sig in the x86-64 layout. */
  action(sig: number): SigAction {
    const a = this.sigactions.get(sig);
    if (!a) return { handler: 0, flags: 0, restorer: 0, maskLo: 0, maskHi: 0 };
    const dv = new DataView(a.buffer, a.byteOffset, 32);
    const q = (o: number): number => dv.getUint32(o, true) + dv.getUint32(o + 4, true) * 4294967296;
    return { handler: q(0), flags: dv.getUint32(8, true), restorer: q(16), maskLo: dv.getInt32(24, true), maskHi: dv.getInt32(28, true) };
  }

  private isBlockedSig(sig: number): boolean {
    return sig <= 32 ? ((this.sigmaskLo >>> (sig - 1)) & 1) !== 0 : ((this.sigmaskHi >>> (sig - 33)) & 1) !== 0;
  }

  /**
   * Sends signal sig to this process: it becomes pending (delivered by deliverSignals) unless
   * it is ignored. force: a synchronous fault, whose signal cannot be ignored or blocked.
   */
  post(sig: number, info: SigInfo, why: string, force = false): void {
    if (sig < 1 || sig > 64) return;
    const h = this.action(sig).handler;
    if (!force && sig !== SIGKILL && sig !== SIGSTOP && (h === 1 || (h === 0 && SIG_DEFAULT_IGNORED.has(sig)))) return;
    if (sig <= 32) this.pendLo |= 1 << (sig - 1);
    else this.pendHi |= 1 << (sig - 33);
    this.pendInfo.set(sig, { info, why, force });
  }

  /** True when a pending signal can be delivered now (it would interrupt a blocking call). */
  hasDeliverable(): boolean {
    return (this.pendLo & ~this.sigmaskLo) !== 0 || (this.pendHi & ~this.sigmaskHi) !== 0 || this.forcedPending();
  }

  private forcedPending(): boolean {
    for (const p of this.pendInfo.values()) if (p.force) return true;
    return false;
  }

  /**
   * Delivers pending signals (between instructions): a handler gets a signal frame, a default
   * action ends the process (or is nothing, for signals ignored by default). Returns when the
   * process runs a handler, has nothing deliverable left, or has ended.
   */
  deliverSignals(cpu: Cpu): void {
    while (!this.done) {
      let sig = 0;
      for (let n = 1; n <= 64 && sig === 0; n++) {
        const bit = n <= 32 ? (this.pendLo >>> (n - 1)) & 1 : (this.pendHi >>> (n - 33)) & 1;
        if (bit && (!this.isBlockedSig(n) || this.pendInfo.get(n)?.force || n === SIGKILL || n === SIGSTOP)) sig = n;
      }
      if (sig === 0) return;
      if (sig <= 32) this.pendLo &= ~(1 << (sig - 1));
      else this.pendHi &= ~(1 << (sig - 33));
      const p = this.pendInfo.get(sig)!;
      this.pendInfo.delete(sig);
      const act = this.action(sig);
      const blocked = this.isBlockedSig(sig);
      if (sig === SIGKILL || sig === SIGSTOP || act.handler === 0 || (p.force && (blocked || act.handler === 1))) {
        if (!p.force && (SIG_DEFAULT_IGNORED.has(sig) || sig === SIGSTOP)) continue;
        this.terminate(sig, p.why);
        return;
      }
      if (act.handler === 1) continue;
      const oldLo = this.suspended ? this.suspendLo : this.sigmaskLo;
      const oldHi = this.suspended ? this.suspendHi : this.sigmaskHi;
      this.suspended = false;
      if (!pushSignalFrame(cpu, this.mem, act, p.info, oldLo, oldHi)) {
        this.terminate(SIGSEGV, `segmentation fault: could not write the frame of signal ${sig}`);
        return;
      }
      this.sigmaskLo |= act.maskLo;
      this.sigmaskHi |= act.maskHi;
      if ((act.flags & SA_NODEFER) === 0) {
        if (sig <= 32) this.sigmaskLo |= 1 << (sig - 1);
        else this.sigmaskHi |= 1 << (sig - 33);
      }
      if ((act.flags & SA_RESETHAND) !== 0) this.sigactions.delete(sig);
      this.sigmaskLo &= ~((1 << (SIGKILL - 1)) | (1 << (SIGSTOP - 1)));
      if (this.strace) this.log(`[ringzero-user] signal ${sig} delivered to its handler at 0x${act.handler.toString(16)}`);
      return;
    }
  }

  private terminate(sig: number, why: string): void {
    this.done = true;
    this.exitSignal = sig;
    this.exitStatus = 128 + sig;
    this.message = why;
  }

  /** rt_sigreturn / sigreturn: back from a handler to the interrupted state. */
  private sysSigreturn(cpu: Cpu, rt: boolean): number {
    const r = cpu.csize === 8 ? sigreturn64(cpu, this.mem) : sigreturn32(cpu, this.mem, rt);
    if (!r) {
      this.terminate(SIGSEGV, 'segmentation fault: bad signal frame in rt_sigreturn');
      return SYS_NORESULT;
    }
    this.sigmaskLo = r.maskLo & ~((1 << (SIGKILL - 1)) | (1 << (SIGSTOP - 1)));
    this.sigmaskHi = r.maskHi;
    return SYS_NORESULT;
  }

  /** rt_sigsuspend / pause: wait for a signal with a temporary mask; -EINTR after its handler. */
  private sysSigsuspend(set: number, size: number): number {
    let lo = this.sigmaskLo;
    let hi = this.sigmaskHi;
    if (set !== 0) {
      if (size !== 8) return -EINVAL;
      const b = this.mem.readBytes(set, 8);
      if (!b) return -EFAULT;
      const dv = new DataView(b.buffer);
      lo = dv.getInt32(0, true);
      hi = dv.getInt32(4, true);
    }
    if ((this.pendLo & ~lo) === 0 && (this.pendHi & ~hi) === 0) return this.noBlock ? -EINTR : SYS_BLOCK;
    this.suspendLo = this.sigmaskLo;
    this.suspendHi = this.sigmaskHi;
    this.suspended = true;
    this.sigmaskLo = lo;
    this.sigmaskHi = hi;
    return -EINTR;
  }

  /** Reads a NULL-terminated array of string pointers (argv/envp of execve). */
  private strings(la: number, compat: boolean): Buffer[] | number {
    const out: Buffer[] = [];
    if (la === 0) return out;
    const w = compat ? 4 : 8;
    let total = 0;
    for (let i = 0; ; i++) {
      if (i > 0x10000) return -E2BIG;
      const p = this.mem.readBytes(la + i * w, w);
      if (!p) return -EFAULT;
      const dv = new DataView(p.buffer);
      const ptr = compat ? dv.getUint32(0, true) : dv.getUint32(0, true) + dv.getUint32(4, true) * 4294967296;
      if (ptr === 0) return out;
      const s = this.path(ptr);
      if (typeof s === 'number') return s;
      total += s.length + 1;
      if (total > 2 << 20) return -E2BIG;
      out.push(s);
    }
  }

  private sysExecve(cpu: Cpu, dirfd: number, pathLa: number, argvLa: number, envpLa: number, compat: boolean): number {
    if (!this.procs) return -ENOSYS;
    let p = this.at(dirfd, pathLa);
    if (typeof p === 'number') return p;
    if (p.toString() === '/proc/self/exe') p = Buffer.from(this.exePath);
    const argv = this.strings(argvLa, compat);
    if (typeof argv === 'number') return argv;
    const envp = this.strings(envpLa, compat);
    if (typeof envp === 'number') return envp;
    return this.procs.execve(this, cpu, p, argv, envp);
  }

  /** Wraps one of the host's standard descriptors (never closed on the host). */
  private inherit(fd: number, flags: number): OpenFile {
    const f = new OpenFile(K_HOST);
    f.hostFd = fd;
    f.flags = flags;
    return f;
  }

  /** Sets the initial program break (page aligned, just above the program). */
  setBrk(addr: number): void {
    this.brkStart = this.brk = addr;
  }

  // ------------------------------------------------------------------ helpers

  private fdGet(fd: number): OpenFile | null {
    return fd >= 0 && fd < this.files.length ? this.files[fd] : null;
  }

  private fdAlloc(f: OpenFile, min: number, cloexec: boolean): number {
    for (let fd = min; fd < MAX_FDS; fd++) {
      if (fd >= this.files.length || this.files[fd] == null) {
        while (this.files.length <= fd) {
          this.files.push(null);
          this.cloexec.push(false);
        }
        this.files[fd] = f;
        this.cloexec[fd] = cloexec;
        return fd;
      }
    }
    return -EMFILE;
  }

  private release(f: OpenFile): void {
    if (--f.refs > 0) return;
    if (f.kind === K_HOST && f.owned) {
      try {
        fs.closeSync(f.hostFd);
      } catch {
        /* already gone */
      }
    } else if (f.pipe) {
      if (f.kind === K_PIPE_R) f.pipe.readers--;
      else f.pipe.writers--;
    }
  }

  private fdClose(fd: number): number {
    const f = this.fdGet(fd);
    if (!f) return -EBADF;
    this.files[fd] = null;
    this.cloexec[fd] = false;
    this.release(f);
    return 0;
  }

  /** Reads a path argument: a Buffer, or -errno. */
  private path(la: number): Buffer | number {
    const s = this.mem.readCString(la, MAX_PATH);
    if (!s) return this.mem.read8(la + MAX_PATH - 1) >= 0 ? -ENAMETOOLONG : -EFAULT;
    return Buffer.from(s.buffer, s.byteOffset, s.length);
  }

  /** Resolves a guest path against dirfd (AT_FDCWD or a directory fd): a host path or -errno. */
  private at(dirfd: number, la: number): Buffer | number {
    const p = this.path(la);
    if (typeof p === 'number') return p;
    if (p.length > 0 && p[0] === 0x2f) return p;
    let base: Buffer;
    if (dirfd === AT_FDCWD) base = this.cwd;
    else {
      const f = this.fdGet(dirfd);
      if (!f) return -EBADF;
      if (!f.path) return -ENOTDIR;
      base = f.path;
    }
    if (p.length === 0) return base;
    return Buffer.concat([base, Buffer.from('/'), p]);
  }

  /** Writes a stat result in layout `kind` (ST_STAT, ST_STATX, ST_STAT64). */
  private putStat(la: number, st: StatLike, kind: number): number {
    const b = kind === ST_STATX ? statxBytes(st) : kind === ST_STAT64 ? stat64Bytes(st) : statBytes(st);
    return this.mem.writeFrom(la, b) ? 0 : -EFAULT;
  }

  private fstatOf(f: OpenFile): StatLike | number {
    try {
      if (f.kind === K_HOST) return fs.fstatSync(f.hostFd, { bigint: true });
    } catch (e) {
      return -errnoOf(e);
    }
    // In-memory files: a pipe (fifo) for pipes and captured output, a regular file for bytes.
    return {
      dev: 0n,
      ino: BigInt(f.kind + 1),
      nlink: 1n,
      mode: f.kind === K_BYTES ? 0o100600n : 0o10600n,
      uid: BigInt(process.getuid?.() ?? 0),
      gid: BigInt(process.getgid?.() ?? 0),
      rdev: 0n,
      size: BigInt(f.data ? f.data.length : 0),
      blksize: 4096n,
      blocks: 0n,
      atimeNs: 0n,
      mtimeNs: 0n,
      ctimeNs: 0n,
      birthtimeNs: 0n,
    };
  }

  // ------------------------------------------------------------------ entry

  /** Performs the system call in the CPU's registers (x86-64 ABI: SYSCALL) and writes the result to RAX. */
  syscall(cpu: Cpu): void {
    const nr = cpu.hi[RAX] === 0 ? cpu.lo[RAX] : -1;
    const a = this.args;
    a[0] = cpu.regNumber(RDI);
    a[1] = cpu.regNumber(RSI);
    a[2] = cpu.regNumber(RDX);
    a[3] = cpu.regNumber(R10);
    a[4] = cpu.regNumber(R8);
    a[5] = cpu.regNumber(R9);
    let r = this.dispatch(cpu, nr, a);
    if (r === SYS_BLOCK && this.noBlock) r = -EAGAIN;
    if (this.strace && r !== SYS_BLOCK) this.trace(SYSCALL_NAMES.get(nr) ?? `syscall_${nr}`, r === SYS_NORESULT ? '?' : r);
    if (this.done || r === SYS_NORESULT) return;
    if (r === SYS_BLOCK) {
      this.blocked = true;
      cpu.rip -= 2; // SYSCALL again when resumed
      return;
    }
    cpu.setRegNumber(RAX, r);
  }

  /**
   * Performs an i386 system call (INT 0x80: EAX = number, EBX ECX EDX ESI EDI EBP = arguments)
   * and writes the result to EAX. The i386 ABI's own structure layouts (stat64, timespec,
   * iovec, sigaction, rlimit...) are translated; calls with the same layout share the x86-64 code.
   */
  syscall32(cpu: Cpu): void {
    const nr = cpu.lo[RAX];
    const a = this.args;
    a[0] = cpu.lo[RBX] >>> 0;
    a[1] = cpu.lo[RCX] >>> 0;
    a[2] = cpu.lo[RDX] >>> 0;
    a[3] = cpu.lo[RSI] >>> 0;
    a[4] = cpu.lo[RDI] >>> 0;
    a[5] = cpu.lo[RBP] >>> 0;
    let r = this.dispatch32(cpu, nr, a);
    if (r === SYS_BLOCK && this.noBlock) r = -EAGAIN;
    if (this.strace && r !== SYS_BLOCK) this.trace(`i386:${I386_NAMES.get(nr) ?? nr}`, r === SYS_NORESULT ? '?' : r);
    if (this.done || r === SYS_NORESULT) return;
    if (r === SYS_BLOCK) {
      this.blocked = true;
      cpu.rip -= 2; // INT 0x80 again when resumed
      return;
    }
    cpu.setReg(RAX, 4, r | 0, 0);
  }

  private trace(name: string, r: number | string): void {
    const hex = Array.from(this.args, (x) => '0x' + (x < 0 ? x + 2 ** 64 : x).toString(16));
    this.log(`[ringzero-user] ${name}(${hex.join(', ')}) = ${r}`);
  }

  private enosys(nr: number): number {
    if (this.debug || this.strace) this.log(`[ringzero-user] unimplemented system call ${SYSCALL_NAMES.get(nr) ?? ''} (${nr}): -ENOSYS`);
    return -ENOSYS;
  }

  /**
   * Sends the process signal `sig` from itself or the CPU (force: a synchronous fault, which
   * cannot be ignored or blocked); addr: the fault address for siginfo (-1: none). Delivered
   * by deliverSignals: to the handler, or by the default action.
   */
  raise(sig: number, why: string, force = false, addr = -1, code: number = force ? 1 : -6): void {
    this.post(sig, { signo: sig, code, pid: this.pid, uid: process.getuid?.() ?? 0, addr, status: -1 }, why, force);
  }

  /** Ends the process with an exit status (exit / exit_group). */
  exit(status: number): void {
    this.done = true;
    this.exitStatus = status & 0xff;
  }

  private dispatch(cpu: Cpu, nr: number, a: Float64Array): number {
    const a0 = a[0];
    const a1 = a[1];
    const a2 = a[2];
    const a3 = a[3];
    const a4 = a[4];
    const a5 = a[5];
    const i0 = a0 | 0;
    const i1 = a1 | 0;
    const i2 = a2 | 0;
    const i3 = a3 | 0;
    switch (nr) {
      case SYS.read: return this.sysRead(i0, a1, a2, -1);
      case SYS.write: return this.sysWrite(i0, a1, a2, -1);
      case SYS.pread64: return a3 < 0 ? -EINVAL : this.sysRead(i0, a1, a2, a3);
      case SYS.pwrite64: return a3 < 0 ? -EINVAL : this.sysWrite(i0, a1, a2, a3);
      case SYS.readv: return this.sysRw(i0, a1, a2, -1, false);
      case SYS.writev: return this.sysRw(i0, a1, a2, -1, true);
      case SYS.preadv: case SYS.preadv2: return a3 < 0 ? -EINVAL : this.sysRw(i0, a1, a2, a3, false);
      case SYS.pwritev: case SYS.pwritev2: return a3 < 0 ? -EINVAL : this.sysRw(i0, a1, a2, a3, true);
      case SYS.open: return this.sysOpen(AT_FDCWD, a0, i1, i2);
      case SYS.creat: return this.sysOpen(AT_FDCWD, a0, 0o1101, i1);
      case SYS.openat: return this.sysOpen(i0, a1, i2, i3);
      case SYS.close: return this.fdClose(i0);
      case SYS.close_range: {
        const hi = Math.min(a1 < 0 ? MAX_FDS - 1 : a1, this.files.length - 1);
        for (let fd = i0 >>> 0; fd <= hi; fd++) {
          if ((i2 & 4) !== 0) { if (this.files[fd]) this.cloexec[fd] = true; } // CLOSE_RANGE_CLOEXEC
          else this.fdClose(fd);
        }
        return 0;
      }
      case SYS.stat: return this.sysStat(AT_FDCWD, a0, a1, 0, ST_STAT);
      case SYS.lstat: return this.sysStat(AT_FDCWD, a0, a1, AT_SYMLINK_NOFOLLOW, ST_STAT);
      case SYS.fstat: return this.sysFstat(i0, a1, ST_STAT);
      case SYS.newfstatat: return this.sysStat(i0, a1, a2, i3, ST_STAT);
      case SYS.statx: return this.sysStat(i0, a1, a4, i2, ST_STATX);
      case SYS.lseek: return this.sysLseek(i0, a1, i2);
      case SYS.mmap: return this.sysMmap(a0, a1, i2, i3, a4 | 0, a5);
      case SYS.munmap: return a0 % PAGE_SIZE !== 0 || a1 <= 0 ? -EINVAL : this.mem.unmap(a0, a1) ? 0 : -EINVAL;
      case SYS.mprotect: {
        if (a0 % PAGE_SIZE !== 0 || a1 < 0) return -EINVAL;
        return this.mem.protect(a0, a1, i2 & 7) ? 0 : -ENOMEM;
      }
      case SYS.mremap: return this.sysMremap(a0, a1, a2, i3, a4);
      case SYS.madvise: {
        if (i2 === MADV_DONTNEED && a0 % PAGE_SIZE === 0 && a1 > 0 && smallRange(a0, a1)) {
          // Private anonymous memory reads back as zeros after MADV_DONTNEED.
          for (let p = a0; p < a0 + a1; p += PAGE_SIZE) {
            const prot = this.mem.protOf(p);
            if (prot >= 0) this.mem.map(p, PAGE_SIZE, prot);
          }
        }
        return 0;
      }
      case SYS.msync: case SYS.mincore: case SYS.fadvise64: return 0;
      case SYS.brk: return this.sysBrk(a0);
      case SYS.rt_sigaction: return this.sysSigaction(i0, a1, a2, a3);
      case SYS.rt_sigprocmask: return this.sysSigprocmask(i0, a1, a2, a3);
      case SYS.sigaltstack: {
        if (a1 !== 0 && !this.mem.writeFrom(a1, new Uint8Array([0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]))) return -EFAULT;
        return 0;
      }
      case SYS.rt_sigpending: return this.mem.writeFrom(a0, new Uint8Array(8)) ? 0 : -EFAULT;
      case SYS.ioctl: return this.sysIoctl(i0, a1 >>> 0, a2);
      case SYS.access: return this.sysAccess(AT_FDCWD, a0, i1);
      case SYS.faccessat: case SYS.faccessat2: return this.sysAccess(i0, a1, i2);
      case SYS.pipe: return this.sysPipe(a0, 0);
      case SYS.pipe2: return this.sysPipe(a0, i1);
      case SYS.dup: {
        const f = this.fdGet(i0);
        if (!f) return -EBADF;
        const fd = this.fdAlloc(f, 0, false);
        if (fd >= 0) f.refs++;
        return fd;
      }
      case SYS.dup2: return this.sysDup3(i0, i1, 0, true);
      case SYS.dup3: return i0 === i1 ? -EINVAL : this.sysDup3(i0, i1, i2, false);
      case SYS.fcntl: return this.sysFcntl(i0, i1, a2);
      case SYS.flock: return this.fdGet(i0) ? 0 : -EBADF;
      case SYS.getdents64: return this.sysGetdents(i0, a1, a2, true);
      case SYS.getdents: return this.sysGetdents(i0, a1, a2, false);
      case SYS.getcwd: {
        const s = this.cwd;
        if (a1 < s.length + 1) return -ERANGE;
        const b = new Uint8Array(s.length + 1);
        b.set(s);
        return this.mem.writeFrom(a0, b) ? s.length + 1 : -EFAULT;
      }
      case SYS.chdir: {
        const p = this.at(AT_FDCWD, a0);
        return typeof p === 'number' ? p : this.chdirTo(p);
      }
      case SYS.fchdir: {
        const f = this.fdGet(i0);
        if (!f) return -EBADF;
        return f.path ? this.chdirTo(f.path) : -ENOTDIR;
      }
      case SYS.uname: return this.sysUname(a0);
      case SYS.clock_gettime: return this.sysClockGettime(i0, a1);
      case SYS.clock_getres: return a1 === 0 ? 0 : this.put64s(a1, [0, i0 === 5 || i0 === 6 ? 4_000_000 : 1]);
      case SYS.gettimeofday: {
        if (a0 === 0) return 0;
        const ms = Date.now();
        return this.put64s(a0, [Math.floor(ms / 1000), (ms % 1000) * 1000]);
      }
      case SYS.time: {
        const t = Math.floor(Date.now() / 1000);
        if (a0 !== 0 && this.put64s(a0, [t]) !== 0) return -EFAULT;
        return t;
      }
      case SYS.nanosleep: return this.sysSleep(a0, a1);
      case SYS.clock_nanosleep: return (i1 & 1) !== 0 ? 0 : this.sysSleep(a2, a3); // TIMER_ABSTIME: do not sleep
      case SYS.getpid: case SYS.gettid: case SYS.getpgrp: case SYS.getsid: case SYS.setsid: return this.pid;
      case SYS.setpgid: return 0;
      case SYS.getpgid: return this.pid;
      case SYS.getuid: case SYS.geteuid: return process.getuid?.() ?? 0;
      case SYS.getgid: case SYS.getegid: return process.getgid?.() ?? 0;
      case SYS.getresuid: case SYS.getresgid: {
        const id = nr === SYS.getresuid ? (process.getuid?.() ?? 0) : (process.getgid?.() ?? 0);
        for (const p of [a0, a1, a2]) if (!this.put32(p, id)) return -EFAULT;
        return 0;
      }
      case SYS.setuid: case SYS.setgid: case SYS.setresuid: case SYS.setresgid: return -EPERM;
      case SYS.getgroups: return 0;
      case SYS.umask: {
        const old = this.umaskValue;
        this.umaskValue = i0 & 0o777;
        return old;
      }
      case SYS.getrlimit: return this.sysPrlimit(0, i0, 0, a1);
      case SYS.setrlimit: return 0;
      case SYS.prlimit64: return i0 !== 0 && i0 !== this.pid ? -ESRCH : this.sysPrlimit(0, i1, a2, a3);
      case SYS.getrusage: return this.mem.writeFrom(a1, new Uint8Array(144)) ? 0 : -EFAULT;
      case SYS.times: {
        const ticks = Math.floor(performance.now() / 10);
        if (a0 !== 0 && !this.mem.writeFrom(a0, new Uint8Array(32))) return -EFAULT;
        return ticks;
      }
      case SYS.sysinfo: return this.sysSysinfo(a0);
      case SYS.getpriority: return 20;
      case SYS.setpriority: return 0;
      case SYS.sched_yield: return 0;
      case SYS.sched_getaffinity: {
        if (a1 < 8) return -EINVAL;
        return this.mem.writeFrom(a2, new Uint8Array([1, 0, 0, 0, 0, 0, 0, 0])) ? 8 : -EFAULT;
      }
      case SYS.getcpu: {
        if (a0 !== 0 && !this.put32(a0, 0)) return -EFAULT;
        if (a1 !== 0 && !this.put32(a1, 0)) return -EFAULT;
        return 0;
      }
      case SYS.arch_prctl: return this.sysArchPrctl(cpu, i0, a1);
      case SYS.set_tid_address: return this.pid;
      case SYS.set_robust_list: return 0;
      case SYS.get_robust_list: return -ENOSYS;
      case SYS.rseq: return -ENOSYS;
      case SYS.futex: {
        const op = i1 & 0x7f;
        if (op === 1) return 0; // FUTEX_WAKE: nobody waits in a single-threaded process
        if (op === 0 || op === 9) {
          const v = this.mem.read32(a0);
          if (v < 0 && v !== (i2 >>> 0)) return -EFAULT;
          return (v >>> 0) !== (i2 >>> 0) ? -EAGAIN : -ETIMEDOUT; // nobody could ever wake us
        }
        return this.enosys(nr);
      }
      case SYS.prctl: return i0 === 15 || i0 === 16 ? 0 : -EINVAL; // PR_SET_NAME / PR_GET_NAME
      case SYS.getrandom: return this.sysGetrandom(a0, a1);
      case SYS.readlink: return this.sysReadlink(AT_FDCWD, a0, a1, a2);
      case SYS.readlinkat: return this.sysReadlink(i0, a1, a2, a3);
      case SYS.unlink: return this.pathOp(AT_FDCWD, a0, (p) => fs.unlinkSync(p));
      case SYS.unlinkat: return this.pathOp(i0, a1, (p) => ((i2 & AT_REMOVEDIR) !== 0 ? fs.rmdirSync(p) : fs.unlinkSync(p)));
      case SYS.rmdir: return this.pathOp(AT_FDCWD, a0, (p) => fs.rmdirSync(p));
      case SYS.mkdir: return this.pathOp(AT_FDCWD, a0, (p) => fs.mkdirSync(p, { mode: i1 & ~this.umaskValue & 0o7777 }));
      case SYS.mkdirat: return this.pathOp(i0, a1, (p) => fs.mkdirSync(p, { mode: i2 & ~this.umaskValue & 0o7777 }));
      case SYS.chmod: return this.pathOp(AT_FDCWD, a0, (p) => fs.chmodSync(p, i1 & 0o7777));
      case SYS.fchmodat: return this.pathOp(i0, a1, (p) => fs.chmodSync(p, i2 & 0o7777));
      case SYS.fchmod: return this.fdOp(i0, (fd) => fs.fchmodSync(fd, i1 & 0o7777));
      case SYS.chown: return this.pathOp(AT_FDCWD, a0, (p) => fs.chownSync(p, i1, i2));
      case SYS.lchown: return this.pathOp(AT_FDCWD, a0, (p) => fs.lchownSync(p, i1, i2));
      case SYS.fchownat: return this.pathOp(i0, a1, (p) => (((a4 | 0) & AT_SYMLINK_NOFOLLOW) !== 0 ? fs.lchownSync(p, i2, i3) : fs.chownSync(p, i2, i3)));
      case SYS.fchown: return this.fdOp(i0, (fd) => fs.fchownSync(fd, i1, i2));
      case SYS.truncate: return this.pathOp(AT_FDCWD, a0, (p) => fs.truncateSync(p, a1));
      case SYS.ftruncate: return this.fdOp(i0, (fd) => fs.ftruncateSync(fd, a1));
      case SYS.fsync: case SYS.fdatasync: return this.fdOp(i0, (fd) => fs.fsyncSync(fd));
      case SYS.sync: case SYS.syncfs: return 0;
      case SYS.rename: return this.twoPathOp(AT_FDCWD, a0, AT_FDCWD, a1, (p, q) => fs.renameSync(p, q));
      case SYS.renameat: case SYS.renameat2: return this.twoPathOp(i0, a1, i2, a3, (p, q) => fs.renameSync(p, q));
      case SYS.link: return this.twoPathOp(AT_FDCWD, a0, AT_FDCWD, a1, (p, q) => fs.linkSync(p, q));
      case SYS.linkat: return this.twoPathOp(i0, a1, i2, a3, (p, q) => fs.linkSync(p, q));
      case SYS.symlink: {
        const target = this.path(a0);
        return typeof target === 'number' ? target : this.pathOp(AT_FDCWD, a1, (p) => fs.symlinkSync(target, p));
      }
      case SYS.symlinkat: {
        const target = this.path(a0);
        return typeof target === 'number' ? target : this.pathOp(i1, a2, (p) => fs.symlinkSync(target, p));
      }
      case SYS.utimensat: return this.sysUtimensat(i0, a1, a2, i3);
      case SYS.poll: return this.sysPoll(a0, a1);
      case SYS.ppoll: return this.sysPoll(a0, a1);
      case SYS.kill: case SYS.tgkill: case SYS.tkill: {
        const target = nr === SYS.tgkill ? i1 : i0;
        const sig = nr === SYS.tgkill ? i2 : i1;
        if (sig < 0 || sig > 64) return -EINVAL;
        if (target !== this.pid && target !== 0 && target !== -1) return this.procs ? this.procs.kill(this, target, sig) : -ESRCH;
        if (target !== this.pid && this.procs) return this.procs.kill(this, target, sig);
        if (sig === 0) return 0;
        this.raise(sig, `killed by signal ${sig} (sent by the program itself)`, false, -1, nr === SYS.kill ? 0 : -6);
        return 0;
      }
      case SYS.wait4: return this.procs ? this.procs.wait4(this, i0, a1, i2) : -ECHILD;
      case SYS.fork: case SYS.vfork: return this.procs ? this.procs.fork(this, cpu, nr === SYS.vfork ? 0x4100 | SIGCHLD : SIGCHLD, 0, 0) : -ENOSYS;
      case SYS.clone: return this.procs ? this.procs.fork(this, cpu, i0, a1, a3) : -ENOSYS;
      case SYS.clone3: return -ENOSYS; // glibc falls back to clone
      case SYS.execve: return this.sysExecve(cpu, AT_FDCWD, a0, a1, a2, cpu.csize !== 8);
      case SYS.execveat: return this.sysExecve(cpu, i0, a1, a2, a3, false);
      case SYS.rt_sigreturn: return this.sysSigreturn(cpu, true);
      case SYS.rt_sigsuspend: return this.sysSigsuspend(a0, a1);
      case SYS.pause: return this.sysSigsuspend(0, 8);
      case SYS.getppid: return this.ppid;
      case SYS.alarm: return 0;
      case SYS.exit: case SYS.exit_group: this.exit(i0); return 0;
      default: return this.enosys(nr);
    }
  }

  /** The i386 system calls: same-meaning ones through dispatch(), the others translated here. */
  private dispatch32(cpu: Cpu, nr: number, a: Float64Array): number {
    const same = I386_SAME.get(nr);
    if (same !== undefined) {
      // Arguments that are signed in these calls arrive zero-extended: fix the ones that matter.
      if (same === SYS.fchownat) a[4] = a[4] | 0;
      if (same === SYS.prlimit64 || same === SYS.kill || same === SYS.tgkill || same === SYS.tkill) a[0] = a[0] | 0;
      return this.dispatch(cpu, same, a);
    }
    const [a0, a1, a2, a3, a4, a5] = a;
    const i0 = a0 | 0;
    switch (nr) {
      case I386.lseek: return this.sysLseek(i0, a1 | 0, a2 | 0);
      case I386.llseek: {
        const r = this.sysLseek(i0, (a1 | 0) * 4294967296 + a2, a4 | 0);
        if (r < 0) return r;
        return this.put64s(a3, [r]);
      }
      case I386.mmap2: return this.sysMmap(a0, a1, a2 | 0, a3 | 0, a4 | 0, a5 * PAGE_SIZE);
      case I386.stat64: return this.sysStat(AT_FDCWD, a0, a1, 0, ST_STAT64);
      case I386.lstat64: return this.sysStat(AT_FDCWD, a0, a1, AT_SYMLINK_NOFOLLOW, ST_STAT64);
      case I386.fstat64: return this.sysFstat(i0, a1, ST_STAT64);
      case I386.fstatat64: return this.sysStat(i0, a1, a2, a3 | 0, ST_STAT64);
      case I386.readv: return this.sysRw(i0, a1, a2, -1, false, true);
      case I386.writev: return this.sysRw(i0, a1, a2, -1, true, true);
      case I386.pread64: return this.sysRead(i0, a1, a2, (a4 | 0) * 4294967296 + a3);
      case I386.pwrite64: return this.sysWrite(i0, a1, a2, (a4 | 0) * 4294967296 + a3);
      case I386.truncate: return this.pathOp(AT_FDCWD, a0, (p) => fs.truncateSync(p, a1 | 0));
      case I386.ftruncate: return this.fdOp(i0, (fd) => fs.ftruncateSync(fd, a1 | 0));
      case I386.truncate64: return this.pathOp(AT_FDCWD, a0, (p) => fs.truncateSync(p, (a2 | 0) * 4294967296 + a1));
      case I386.ftruncate64: return this.fdOp(i0, (fd) => fs.ftruncateSync(fd, (a2 | 0) * 4294967296 + a1));
      case I386.rt_sigaction: return this.sysSigaction(i0, a1, a2, a3, true);
      case I386.sigaltstack: return a1 !== 0 && !this.mem.writeFrom(a1, new Uint8Array([0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0])) ? -EFAULT : 0;
      case I386.ugetrlimit: case I386.getrlimit: return this.sysPrlimit(0, i0, 0, a1, true);
      case I386.getrusage: return this.mem.writeFrom(a1, new Uint8Array(72)) ? 0 : -EFAULT;
      case I386.times: {
        if (a0 !== 0 && !this.mem.writeFrom(a0, new Uint8Array(16))) return -EFAULT;
        return Math.floor(performance.now() / 10) | 0;
      }
      case I386.time: {
        const t = Math.floor(Date.now() / 1000);
        if (a0 !== 0 && !this.put32(a0, t)) return -EFAULT;
        return t;
      }
      case I386.gettimeofday: {
        if (a0 === 0) return 0;
        const ms = Date.now();
        return this.put32(a0, Math.floor(ms / 1000)) && this.put32(a0 + 4, (ms % 1000) * 1000) ? 0 : -EFAULT;
      }
      case I386.clock_gettime: return this.sysClockGettime(i0, a1, true);
      case I386.clock_getres: return a1 === 0 ? 0 : this.put32(a1, 0) && this.put32(a1 + 4, 1) ? 0 : -EFAULT;
      case I386.nanosleep: return this.sysSleep(a0, a1, true);
      case I386.clock_nanosleep: return ((a1 | 0) & 1) !== 0 ? 0 : this.sysSleep(a2, a3, true);
      case I386.utimensat: return this.sysUtimensat(i0, a1, a2, a3 | 0, true);
      case I386.set_thread_area: return this.sysSetThreadArea(cpu, a0);
      case I386.rseq: return -ENOSYS;
      case I386.fork: return this.dispatch(cpu, SYS.fork, a);
      case I386.vfork: return this.dispatch(cpu, SYS.vfork, a);
      case I386.clone: return this.procs ? this.procs.fork(this, cpu, i0, a1, a4) : -ENOSYS; // flags, stack, ptid, tls, ctid
      case I386.execve: return this.sysExecve(cpu, AT_FDCWD, a0, a1, a2, true);
      case I386.waitpid: return this.procs ? this.procs.wait4(this, i0, a1, a2 | 0) : -ECHILD;
      case I386.sigreturn: return this.sysSigreturn(cpu, false);
      case I386.rt_sigreturn: return this.sysSigreturn(cpu, true);
      case I386.rt_sigsuspend: return this.sysSigsuspend(a0, a1);
      case I386.pause: return this.sysSigsuspend(0, 8);
      default:
        if (this.debug || this.strace) this.log(`[ringzero-user] unimplemented i386 system call ${nr}: -ENOSYS`);
        return -ENOSYS;
    }
  }

  /**
   * set_thread_area (i386 TLS): takes a user_desc, picks GDT entry 12 when asked for a free
   * one, and makes GS that segment (selector and base), so that glibc's following load of the
   * same selector into GS (MOV Sreg of the current selector) keeps that base.
   */
  private sysSetThreadArea(cpu: Cpu, la: number): number {
    const d = this.mem.readBytes(la, 16);
    if (!d) return -EFAULT;
    const dv = new DataView(d.buffer);
    let entry = dv.getInt32(0, true);
    if (entry === -1) entry = 12;
    if (entry < 12 || entry > 14) return -EINVAL;
    if (!this.put32(la, entry)) return -EFAULT;
    cpu.segSel[GS] = entry * 8 + 3;
    cpu.segBase[GS] = dv.getUint32(4, true);
    return 0;
  }

  // ------------------------------------------------------------------ small writers

  private put32(la: number, v: number): boolean {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setInt32(0, v | 0, true);
    return this.mem.writeFrom(la, b);
  }

  /** Writes 64-bit integers (safe integers) at la; 0 or -EFAULT. */
  private put64s(la: number, vs: readonly number[]): number {
    const b = new Uint8Array(vs.length * 8);
    const dv = new DataView(b.buffer);
    vs.forEach((v, i) => u64le(dv, i * 8, BigInt(v)));
    return this.mem.writeFrom(la, b) ? 0 : -EFAULT;
  }

  private pathOp(dirfd: number, la: number, fn: (p: Buffer) => void): number {
    const p = this.at(dirfd, la);
    if (typeof p === 'number') return p;
    try {
      fn(p);
      return 0;
    } catch (e) {
      return -errnoOf(e);
    }
  }

  private twoPathOp(d1: number, l1: number, d2: number, l2: number, fn: (p: Buffer, q: Buffer) => void): number {
    const p = this.at(d1, l1);
    if (typeof p === 'number') return p;
    const q = this.at(d2, l2);
    if (typeof q === 'number') return q;
    try {
      fn(p, q);
      return 0;
    } catch (e) {
      return -errnoOf(e);
    }
  }

  private fdOp(fd: number, fn: (hostFd: number) => void): number {
    const f = this.fdGet(fd);
    if (!f) return -EBADF;
    if (f.kind !== K_HOST) return -EINVAL;
    try {
      fn(f.hostFd);
      return 0;
    } catch (e) {
      return -errnoOf(e);
    }
  }

  private chdirTo(p: Buffer): number {
    try {
      if (!fs.statSync(p).isDirectory()) return -ENOTDIR;
      this.cwd = Buffer.from(fs.realpathSync(p, { encoding: 'buffer' }));
      return 0;
    } catch (e) {
      return -errnoOf(e);
    }
  }

  // ------------------------------------------------------------------ I/O

  /** Reads up to n bytes of f into this.scratch (n <= CHUNK): count or -errno. pos < 0: current position. */
  private readChunk(f: OpenFile, n: number, pos: number): number {
    switch (f.kind) {
      case K_BYTES: {
        const d = f.data!;
        const at = pos >= 0 ? pos : f.pos;
        const k = Math.max(0, Math.min(n, d.length - at));
        this.scratch.set(d.subarray(at, at + k), 0);
        if (pos < 0) f.pos += k;
        return k;
      }
      case K_PIPE_R: {
        const p = f.pipe!;
        if (p.size === 0) return p.writers === 0 ? 0 : (f.flags & O_NONBLOCK) !== 0 || !this.procs ? -EAGAIN : SYS_BLOCK;
        let k = 0;
        while (k < n && p.chunks.length > 0) {
          const c = p.chunks[0];
          const t = Math.min(c.length, n - k);
          this.scratch.set(c.subarray(0, t), k);
          k += t;
          if (t === c.length) p.chunks.shift();
          else p.chunks[0] = c.subarray(t);
        }
        p.size -= k;
        return k;
      }
      case K_HOST: {
        if (f.dir) return -EISDIR;
        const usePos = pos >= 0 ? pos : f.seekable ? f.pos : null;
        for (;;) {
          try {
            const k = fs.readSync(f.hostFd, this.scratch, 0, n, usePos);
            if (pos < 0 && f.seekable) f.pos += k;
            return k;
          } catch (e) {
            const er = errnoOf(e);
            if (er === EAGAIN && (f.flags & O_NONBLOCK) === 0) {
              sleepMs(5);
              continue;
            }
            return -er;
          }
        }
      }
      default:
        return -EBADF;
    }
  }

  /** Writes this.scratch[0..n) to f: count or -errno. */
  private writeChunk(f: OpenFile, n: number, pos: number): number {
    switch (f.kind) {
      case K_CAPTURE:
        f.out!.push(Uint8Array.prototype.slice.call(this.scratch, 0, n));
        return n;
      case K_PIPE_W: {
        const p = f.pipe!;
        if (p.readers === 0) {
          this.raise(SIGPIPE, 'killed by SIGPIPE (write to a pipe with no reader)');
          return -EPIPE;
        }
        if (p.size + n > 64 * CHUNK) return -EAGAIN; // nobody will drain it: a real pipe would block forever
        p.chunks.push(Uint8Array.prototype.slice.call(this.scratch, 0, n));
        p.size += n;
        return n;
      }
      case K_HOST: {
        const append = (f.flags & O_APPEND) !== 0;
        const usePos = pos >= 0 ? pos : f.seekable && !append ? f.pos : null;
        let done = 0;
        while (done < n) {
          try {
            done += fs.writeSync(f.hostFd, this.scratch, done, n - done, usePos == null ? null : usePos + done);
          } catch (e) {
            const er = errnoOf(e);
            if (er === EAGAIN && (f.flags & O_NONBLOCK) === 0) {
              sleepMs(5);
              continue;
            }
            if (er === EPIPE) this.raise(SIGPIPE, 'killed by SIGPIPE (write to a pipe with no reader)');
            return done > 0 ? done : -er;
          }
        }
        if (pos < 0 && f.seekable) {
          if (append) {
            try {
              f.pos = fs.fstatSync(f.hostFd).size;
            } catch {
              /* keep the old position */
            }
          } else f.pos += n;
        }
        return n;
      }
      default:
        return -EBADF;
    }
  }

  /** read/pread: count bytes into guest memory at buf (pos < 0: at the file position). */
  private sysRead(fd: number, buf: number, count: number, pos: number): number {
    const f = this.fdGet(fd);
    if (!f || (f.flags & O_ACCMODE) === 1 || f.kind === K_CAPTURE || f.kind === K_PIPE_W) return -EBADF;
    if (count < 0) return -EINVAL;
    if (pos >= 0 && !f.seekable && f.kind !== K_BYTES) return -ESPIPE;
    count = Math.min(count, 0x7ffff000);
    if (!this.mem.accessible(buf, count, PROT_WRITE)) return -EFAULT;
    let total = 0;
    while (total < count) {
      const n = this.readChunk(f, Math.min(CHUNK, count - total), pos >= 0 ? pos + total : -1);
      if (n < 0) return total > 0 ? total : n;
      if (n === 0) break;
      this.mem.writeFrom(buf + total, this.scratch.subarray(0, n));
      total += n;
      // Like Linux, a read from a pipe or terminal returns what is there; only files fill up.
      if (n < Math.min(CHUNK, count - total + n) || !(f.seekable || f.kind === K_BYTES)) break;
    }
    return total;
  }

  private sysWrite(fd: number, buf: number, count: number, pos: number): number {
    const f = this.fdGet(fd);
    if (!f || (f.flags & O_ACCMODE) === 0 || f.kind === K_BYTES || f.kind === K_PIPE_R) return -EBADF;
    if (count < 0) return -EINVAL;
    if (pos >= 0 && !f.seekable) return -ESPIPE;
    count = Math.min(count, 0x7ffff000);
    if (!this.mem.accessible(buf, count, PROT_READ)) return -EFAULT;
    let total = 0;
    while (total < count) {
      const n = Math.min(CHUNK, count - total);
      this.mem.readInto(buf + total, this.scratch.subarray(0, n));
      const w = this.writeChunk(f, n, pos >= 0 ? pos + total : -1);
      if (w < 0) return total > 0 ? total : w;
      total += w;
      if (w < n) break;
    }
    return total;
  }

  /** readv/writev/preadv/pwritev. */
  private sysRw(fd: number, iov: number, cnt: number, pos: number, write: boolean, compat = false): number {
    if (cnt < 0 || cnt > 1024) return -EINVAL;
    const w = compat ? 8 : 16;
    const v = this.mem.readBytes(iov, cnt * w);
    if (!v) return -EFAULT;
    const dv = new DataView(v.buffer);
    let total = 0;
    for (let i = 0; i < cnt; i++) {
      const base = compat ? dv.getUint32(i * 8, true) : dv.getUint32(i * 16, true) + dv.getUint32(i * 16 + 4, true) * 4294967296;
      const len = compat ? dv.getUint32(i * 8 + 4, true) : dv.getUint32(i * 16 + 8, true) + dv.getUint32(i * 16 + 12, true) * 4294967296;
      if (len === 0) continue;
      const p = pos >= 0 ? pos + total : -1;
      const r = write ? this.sysWrite(fd, base, len, p) : this.sysRead(fd, base, len, p);
      if (r < 0) return total > 0 ? total : r;
      total += r;
      if (r < len || this.done) break;
    }
    return total;
  }

  private sysOpen(dirfd: number, pathLa: number, flags: number, mode: number): number {
    const p = this.at(dirfd, pathLa);
    if (typeof p === 'number') return p;
    if (p.equals(Buffer.from('/proc/self/exe'))) return this.sysOpenHost(Buffer.from(this.exePath), flags & ~O_CREAT, 0);
    return this.sysOpenHost(p, flags, mode);
  }

  private sysOpenHost(p: Buffer, flags: number, mode: number): number {
    let hostFd: number;
    try {
      hostFd = fs.openSync(p, flags & ~O_CLOEXEC, (mode & 0o7777) & ~this.umaskValue);
    } catch (e) {
      return -errnoOf(e);
    }
    const f = new OpenFile(K_HOST);
    f.hostFd = hostFd;
    f.owned = true;
    f.flags = flags;
    try {
      const st = fs.fstatSync(hostFd);
      f.seekable = st.isFile() || st.isBlockDevice();
      if (st.isDirectory()) {
        f.dir = [];
        f.path = Buffer.from(p);
      } else if ((flags & O_DIRECTORY) !== 0) {
        fs.closeSync(hostFd);
        return -ENOTDIR;
      }
    } catch (e) {
      fs.closeSync(hostFd);
      return -errnoOf(e);
    }
    const fd = this.fdAlloc(f, 0, (flags & O_CLOEXEC) !== 0);
    if (fd < 0) this.release(f);
    return fd;
  }

  private sysFstat(fd: number, out: number, kind: number): number {
    const f = this.fdGet(fd);
    if (!f) return -EBADF;
    const st = this.fstatOf(f);
    return typeof st === 'number' ? st : this.putStat(out, st, kind);
  }

  private sysStat(dirfd: number, pathLa: number, out: number, flags: number, kind: number): number {
    const raw = this.path(pathLa);
    if (typeof raw === 'number') return raw;
    if (raw.length === 0) {
      if ((flags & AT_EMPTY_PATH) === 0) return -2; // ENOENT
      if (dirfd === AT_FDCWD) return this.statPath(this.cwd, out, flags, kind);
      const f = this.fdGet(dirfd);
      if (!f) return -EBADF;
      const st = this.fstatOf(f);
      return typeof st === 'number' ? st : this.putStat(out, st, kind);
    }
    const p = this.at(dirfd, pathLa);
    if (typeof p === 'number') return p;
    return this.statPath(p, out, flags, kind);
  }

  private statPath(p: Buffer, out: number, flags: number, kind: number): number {
    try {
      const st = (flags & AT_SYMLINK_NOFOLLOW) !== 0 ? fs.lstatSync(p, { bigint: true }) : fs.statSync(p, { bigint: true });
      return this.putStat(out, st, kind);
    } catch (e) {
      return -errnoOf(e);
    }
  }

  private sysLseek(fd: number, off: number, whence: number): number {
    const f = this.fdGet(fd);
    if (!f) return -EBADF;
    if (f.dir) {
      if (whence === 0 && off === 0) {
        f.pos = 0;
        f.dir = [];
        return 0;
      }
      return -EINVAL;
    }
    if (!f.seekable && f.kind !== K_BYTES) return -ESPIPE;
    let base: number;
    if (whence === 0) base = 0;
    else if (whence === 1) base = f.pos;
    else if (whence === 2) {
      if (f.kind === K_BYTES) base = f.data!.length;
      else {
        try {
          base = fs.fstatSync(f.hostFd).size;
        } catch (e) {
          return -errnoOf(e);
        }
      }
    } else return -EINVAL;
    const np = base + off;
    if (!(np >= 0 && Number.isSafeInteger(np))) return -EINVAL;
    f.pos = np;
    return np;
  }

  private sysPipe(la: number, flags: number): number {
    const p = new Pipe();
    const r = new OpenFile(K_PIPE_R);
    const w = new OpenFile(K_PIPE_W);
    r.pipe = w.pipe = p;
    r.flags = flags & O_NONBLOCK;
    w.flags = 1 | (flags & O_NONBLOCK);
    const cloexec = (flags & O_CLOEXEC) !== 0;
    const rfd = this.fdAlloc(r, 0, cloexec);
    if (rfd < 0) return rfd;
    const wfd = this.fdAlloc(w, 0, cloexec);
    if (wfd < 0) {
      this.files[rfd] = null;
      return wfd;
    }
    const b = new Uint8Array(8);
    const dv = new DataView(b.buffer);
    dv.setInt32(0, rfd, true);
    dv.setInt32(4, wfd, true);
    if (!this.mem.writeFrom(la, b)) {
      this.files[rfd] = this.files[wfd] = null;
      return -EFAULT;
    }
    p.readers = 1;
    p.writers = 1;
    return 0;
  }

  private sysDup3(oldfd: number, newfd: number, flags: number, dup2: boolean): number {
    const f = this.fdGet(oldfd);
    if (!f) return -EBADF;
    if (newfd < 0 || newfd >= MAX_FDS) return -EBADF;
    if (oldfd === newfd && dup2) return newfd;
    if ((flags & ~O_CLOEXEC) !== 0) return -EINVAL;
    if (this.fdGet(newfd)) this.fdClose(newfd);
    while (this.files.length <= newfd) {
      this.files.push(null);
      this.cloexec.push(false);
    }
    f.refs++;
    this.files[newfd] = f;
    this.cloexec[newfd] = (flags & O_CLOEXEC) !== 0;
    return newfd;
  }

  private sysFcntl(fd: number, cmd: number, arg: number): number {
    const f = this.fdGet(fd);
    if (!f) return -EBADF;
    switch (cmd) {
      case 0: // F_DUPFD
      case 1030: {
        // F_DUPFD_CLOEXEC
        if (arg < 0 || arg >= MAX_FDS) return -EINVAL;
        const n = this.fdAlloc(f, arg, cmd === 1030);
        if (n >= 0) f.refs++;
        return n;
      }
      case 1: return this.cloexec[fd] ? 1 : 0; // F_GETFD
      case 2: this.cloexec[fd] = (arg & 1) !== 0; return 0; // F_SETFD
      case 3: return f.flags & ~O_CLOEXEC; // F_GETFL
      case 4: f.flags = (f.flags & O_ACCMODE) | (arg & (O_APPEND | O_NONBLOCK)) | (f.flags & ~(O_ACCMODE | O_APPEND | O_NONBLOCK)); return 0;
      case 5: case 6: case 7: case 36: case 37: case 38: return 0; // locks: always granted (one process)
      case 1032: return 65536; // F_GETPIPE_SZ
      default: return -EINVAL;
    }
  }

  private sysGetdents(fd: number, buf: number, count: number, is64: boolean): number {
    const f = this.fdGet(fd);
    if (!f) return -EBADF;
    if (!f.dir || !f.path) return -ENOTDIR;
    if (f.dir.length === 0 && f.pos === 0) {
      try {
        const list: DirEntry[] = [];
        const self = fs.statSync(f.path, { bigint: true });
        let parentIno = self.ino;
        try {
          parentIno = fs.statSync(Buffer.concat([f.path, Buffer.from('/..')]), { bigint: true }).ino;
        } catch {
          /* keep self */
        }
        list.push({ name: Buffer.from('.'), ino: self.ino, type: 4 }, { name: Buffer.from('..'), ino: parentIno, type: 4 });
        // opendir/readdir keeps the host file system's order (what getdents gives natively);
        // readdirSync would sort the names.
        const dh = fs.opendirSync(f.path, { encoding: 'buffer' as BufferEncoding });
        try {
          for (let d = dh.readSync(); d; d = dh.readSync()) {
            const name = d.name as unknown as Buffer;
            if (list.length > MAX_DIR_ENTRIES) break;
            if (name.equals(DOT) || name.equals(DOTDOT)) continue;
            let ino = 0n;
            try {
              ino = fs.lstatSync(Buffer.concat([f.path, Buffer.from('/'), name]), { bigint: true }).ino;
            } catch {
              /* vanished */
            }
            list.push({ name, ino, type: dtypeOf(d) });
          }
        } finally {
          dh.closeSync();
        }
        f.dir = list;
      } catch (e) {
        return -errnoOf(e);
      }
    }
    const out = new Uint8Array(Math.max(0, Math.min(count, CHUNK)));
    const dv = new DataView(out.buffer);
    let used = 0;
    while (f.pos < f.dir.length) {
      const e = f.dir[f.pos];
      const head = is64 ? 19 : 18;
      const reclen = Math.ceil((head + e.name.length + 1 + (is64 ? 0 : 1)) / 8) * 8;
      if (used + reclen > out.length) {
        if (used === 0) return -EINVAL;
        break;
      }
      u64le(dv, used, e.ino);
      u64le(dv, used + 8, BigInt(f.pos + 1));
      dv.setUint16(used + 16, reclen, true);
      if (is64) {
        out[used + 18] = e.type;
        out.set(e.name, used + 19);
      } else {
        out.set(e.name, used + 18);
        out[used + reclen - 1] = e.type;
      }
      used += reclen;
      f.pos++;
    }
    return this.mem.writeFrom(buf, out.subarray(0, used)) ? used : -EFAULT;
  }

  private sysIoctl(fd: number, req: number, arg: number): number {
    const f = this.fdGet(fd);
    if (!f) return -EBADF;
    const tty = f.kind === K_HOST && isatty(f.hostFd);
    switch (req) {
      case 0x5401: { // TCGETS
        if (!tty) return -ENOTTY;
        const t = new Uint8Array(36);
        const dv = new DataView(t.buffer);
        dv.setUint32(0, 0x500, true); // ICRNL | IXON
        dv.setUint32(4, 0x5, true); // OPOST | ONLCR
        dv.setUint32(8, 0xbf, true); // B38400 | CS8 | CREAD
        dv.setUint32(12, 0x8a3b, true); // ISIG ICANON ECHO ECHOE ECHOK ECHOCTL ECHOKE IEXTEN
        t.set([3, 28, 127, 21, 4, 0, 1, 0, 17, 19, 26, 0, 18, 15, 23, 22], 17);
        return this.mem.writeFrom(arg, t) ? 0 : -EFAULT;
      }
      case 0x5402: case 0x5403: case 0x5404: // TCSETS*
        return tty ? 0 : -ENOTTY;
      case 0x5413: { // TIOCGWINSZ
        if (!tty) return -ENOTTY;
        const cols = process.stdout.columns || 80;
        const rows = process.stdout.rows || 24;
        return this.mem.writeFrom(arg, new Uint8Array([rows & 0xff, rows >> 8, cols & 0xff, cols >> 8, 0, 0, 0, 0])) ? 0 : -EFAULT;
      }
      case 0x540f: // TIOCGPGRP
        return tty ? (this.put32(arg, this.pid) ? 0 : -EFAULT) : -ENOTTY;
      case 0x5410: // TIOCSPGRP
        return tty ? 0 : -ENOTTY;
      case 0x541b: { // FIONREAD
        let n = 0;
        if (f.kind === K_PIPE_R) n = f.pipe!.size;
        else if (f.kind === K_BYTES) n = Math.max(0, f.data!.length - f.pos);
        return this.put32(arg, n) ? 0 : -EFAULT;
      }
      case 0x5421: { // FIONBIO
        const v = this.mem.read32(arg);
        if (v < 0) return -EFAULT;
        f.flags = v ? f.flags | O_NONBLOCK : f.flags & ~O_NONBLOCK;
        return 0;
      }
      case 0x5451: this.cloexec[fd] = true; return 0; // FIOCLEX
      case 0x5450: this.cloexec[fd] = false; return 0; // FIONCLEX
      default:
        if (this.debug || this.strace) this.log(`[ringzero-user] unsupported ioctl 0x${req.toString(16)} on fd ${fd}: -ENOTTY`);
        return -ENOTTY;
    }
  }

  private sysAccess(dirfd: number, la: number, mode: number): number {
    const p = this.at(dirfd, la);
    if (typeof p === 'number') return p;
    try {
      fs.accessSync(p, mode & 7);
      return 0;
    } catch (e) {
      return -errnoOf(e);
    }
  }

  private sysReadlink(dirfd: number, la: number, buf: number, size: number): number {
    if (size <= 0) return -EINVAL;
    const p = this.at(dirfd, la);
    if (typeof p === 'number') return p;
    let target: Buffer;
    if (p.equals(Buffer.from('/proc/self/exe'))) target = Buffer.from(this.exePath);
    else {
      try {
        target = fs.readlinkSync(p, { encoding: 'buffer' });
      } catch (e) {
        return -errnoOf(e);
      }
    }
    const n = Math.min(target.length, size);
    return this.mem.writeFrom(buf, target.subarray(0, n)) ? n : -EFAULT;
  }

  /** utimensat; `compat`: the i386 layout (two 32-bit timespecs). */
  private sysUtimensat(dirfd: number, la: number, times: number, flags: number, compat = false): number {
    let at = Date.now() / 1000;
    let mt = at;
    if (times !== 0) {
      const w = compat ? 8 : 16;
      const t = this.mem.readBytes(times, 2 * w);
      if (!t) return -EFAULT;
      const dv = new DataView(t.buffer);
      const nsOf = (o: number): number => dv.getUint32(o + w / 2, true);
      const get = (o: number, old: number): number => {
        const ns = nsOf(o);
        if (ns === 0x3fffffff) return Date.now() / 1000; // UTIME_NOW
        if (ns === 0x3ffffffe) return old; // UTIME_OMIT
        return (compat ? dv.getInt32(o, true) : Number(dv.getBigInt64(o, true))) + ns / 1e9;
      };
      let oldA = NaN;
      let oldM = NaN;
      if (nsOf(0) === 0x3ffffffe || nsOf(w) === 0x3ffffffe) {
        const st = la === 0 ? this.fdStatNum(dirfd) : this.pathStatNum(dirfd, la, flags);
        if (typeof st === 'number') return st;
        oldA = st.atimeMs / 1000;
        oldM = st.mtimeMs / 1000;
      }
      at = get(0, oldA);
      mt = get(w, oldM);
    }
    if (la === 0) return this.fdOp(dirfd, (fd) => fs.futimesSync(fd, at, mt));
    return this.pathOp(dirfd, la, (p) => ((flags & AT_SYMLINK_NOFOLLOW) !== 0 ? fs.lutimesSync(p, at, mt) : fs.utimesSync(p, at, mt)));
  }

  private fdStatNum(fd: number): fs.Stats | number {
    const f = this.fdGet(fd);
    if (!f || f.kind !== K_HOST) return -EBADF;
    try {
      return fs.fstatSync(f.hostFd);
    } catch (e) {
      return -errnoOf(e);
    }
  }

  private pathStatNum(dirfd: number, la: number, flags: number): fs.Stats | number {
    const p = this.at(dirfd, la);
    if (typeof p === 'number') return p;
    try {
      return (flags & AT_SYMLINK_NOFOLLOW) !== 0 ? fs.lstatSync(p) : fs.statSync(p);
    } catch (e) {
      return -errnoOf(e);
    }
  }

  private sysPoll(fds: number, n: number): number {
    if (n < 0 || n > MAX_FDS) return -EINVAL;
    const b = this.mem.readBytes(fds, n * 8);
    if (!b) return -EFAULT;
    const dv = new DataView(b.buffer);
    let ready = 0;
    for (let i = 0; i < n; i++) {
      const fd = dv.getInt32(i * 8, true);
      const events = dv.getInt16(i * 8 + 4, true);
      let rev = 0;
      if (fd >= 0) {
        rev = this.fdGet(fd) ? events & 0x5 : 0x20; // POLLIN | POLLOUT; POLLNVAL
        if (rev) ready++;
      }
      dv.setInt16(i * 8 + 6, rev, true);
    }
    return this.mem.writeFrom(fds, b) ? ready : -EFAULT;
  }

  // ------------------------------------------------------------------ memory

  private sysBrk(addr: number): number {
    if (addr < this.brkStart || addr >= this.mmapTop) return this.brk;
    const oldEnd = Math.ceil(this.brk / PAGE_SIZE) * PAGE_SIZE;
    const newEnd = Math.ceil(addr / PAGE_SIZE) * PAGE_SIZE;
    if (newEnd > oldEnd) {
      if (!this.mem.isFree(oldEnd, newEnd - oldEnd) || newEnd > this.mmapLow) return this.brk;
      if (!this.mem.map(oldEnd, newEnd - oldEnd, PROT_READ | PROT_WRITE)) return this.brk;
    } else if (newEnd < oldEnd) this.mem.unmap(newEnd, oldEnd - newEnd);
    this.brk = addr;
    return addr;
  }

  /** Finds a free page-aligned range of `len` bytes for mmap (hint first), or -1. */
  private placeMmap(hint: number, len: number): number {
    if (hint > 0 && hint % PAGE_SIZE === 0 && hint + len <= this.mmapTop && hint >= this.brk && this.mem.isFree(hint, len)) return hint;
    let at = this.mmapLow - len;
    for (let tries = 0; tries < 64 && at > this.brk + 16 * 1024 * 1024; tries++) {
      if (this.mem.isFree(at, len)) {
        this.mmapLow = at;
        return at;
      }
      at -= len + 16 * PAGE_SIZE;
    }
    return -1;
  }

  private sysMmap(addr: number, length: number, prot: number, flags: number, fd: number, off: number): number {
    if (length <= 0 || off < 0 || off % PAGE_SIZE !== 0) return -EINVAL;
    const type = flags & 3;
    if (type !== MAP_PRIVATE && type !== MAP_SHARED && type !== 3) return -EINVAL;
    const len = Math.ceil(length / PAGE_SIZE) * PAGE_SIZE;
    if (!(len < USER_TOP)) return -ENOMEM;
    const anon = (flags & MAP_ANONYMOUS) !== 0;
    let file: OpenFile | null = null;
    if (!anon) {
      file = this.fdGet(fd);
      if (!file) return -EBADF;
      if (file.kind !== K_HOST && file.kind !== K_BYTES) return -ENODEV;
      if (file.dir) return -ENODEV;
    }
    let at: number;
    if ((flags & (MAP_FIXED | MAP_FIXED_NOREPLACE)) !== 0) {
      if (addr % PAGE_SIZE !== 0 || !(addr >= PAGE_SIZE && addr + len <= (this.mmapTop === MMAP_TOP32 ? 2 ** 32 : USER_TOP))) return -EINVAL;
      if ((flags & MAP_FIXED) === 0 && !this.mem.isFree(addr, len)) return -17; // EEXIST
      at = addr;
    } else {
      at = this.placeMmap(addr, len);
      if (at < 0) return -ENOMEM;
    }
    if (!this.mem.map(at, len, prot & 7)) return -ENOMEM;
    if (file) {
      // A private copy of the file's bytes (MAP_SHARED writes are not written back).
      let done = 0;
      while (done < length) {
        const n = this.readChunk(file, Math.min(CHUNK, length - done), off + done);
        if (n <= 0) break;
        this.mem.writeFrom(at + done, this.scratch.subarray(0, n), 0);
        done += n;
      }
    }
    return at;
  }

  private sysMremap(old: number, oldSize: number, newSize: number, flags: number, newAddr: number): number {
    if (old % PAGE_SIZE !== 0 || newSize <= 0 || oldSize < 0) return -EINVAL;
    if ((flags & MREMAP_FIXED) !== 0) return -EINVAL;
    const oldLen = Math.ceil(oldSize / PAGE_SIZE) * PAGE_SIZE;
    const newLen = Math.ceil(newSize / PAGE_SIZE) * PAGE_SIZE;
    const prot = this.mem.protOf(old);
    if (prot < 0 || oldLen === 0) return -EFAULT;
    void newAddr;
    if (newLen <= oldLen) {
      if (newLen < oldLen) this.mem.unmap(old + newLen, oldLen - newLen);
      return old;
    }
    if (this.mem.isFree(old + oldLen, newLen - oldLen) && old + newLen <= this.mmapTop) {
      return this.mem.map(old + oldLen, newLen - oldLen, prot) ? old : -ENOMEM;
    }
    if ((flags & MREMAP_MAYMOVE) === 0) return -ENOMEM;
    const data = this.mem.readBytes(old, oldLen, 0);
    if (!data) return -EFAULT;
    const at = this.placeMmap(0, newLen);
    if (at < 0 || !this.mem.map(at, newLen, prot)) return -ENOMEM;
    this.mem.writeFrom(at, data, 0);
    this.mem.unmap(old, oldLen);
    return at;
  }

  // ------------------------------------------------------------------ signals

  /**
   * rt_sigaction. Actions are kept in the x86-64 layout (handler, flags, restorer, mask: 8
   * bytes each); the i386 layout (4, 4, 4, 8 bytes) is converted on the way in and out.
   */
  private sysSigaction(sig: number, act: number, oact: number, size: number, compat = false): number {
    if (size !== 8 || sig < 1 || sig > 64) return -EINVAL;
    if (act !== 0 && (sig === SIGKILL || sig === SIGSTOP)) return -EINVAL;
    const old = this.sigactions.get(sig) ?? new Uint8Array(32);
    let next: Uint8Array | null = null;
    if (act !== 0) {
      next = this.mem.readBytes(act, compat ? 20 : 32);
      if (!next) return -EFAULT;
      if (compat) {
        const n = new Uint8Array(32);
        n.set(next.subarray(0, 4), 0);
        n.set(next.subarray(4, 8), 8);
        n.set(next.subarray(8, 12), 16);
        n.set(next.subarray(12, 20), 24);
        next = n;
      }
    }
    let oldOut = old;
    if (compat) {
      oldOut = new Uint8Array(20);
      oldOut.set(old.subarray(0, 4), 0);
      oldOut.set(old.subarray(8, 12), 4);
      oldOut.set(old.subarray(16, 20), 8);
      oldOut.set(old.subarray(24, 32), 12);
    }
    if (oact !== 0 && !this.mem.writeFrom(oact, oldOut)) return -EFAULT;
    if (next) this.sigactions.set(sig, next);
    return 0;
  }

  private sysSigprocmask(how: number, set: number, oset: number, size: number): number {
    if (size !== 8) return -EINVAL;
    if (oset !== 0) {
      const b = new Uint8Array(8);
      const dv = new DataView(b.buffer);
      dv.setInt32(0, this.sigmaskLo, true);
      dv.setInt32(4, this.sigmaskHi, true);
      if (!this.mem.writeFrom(oset, b)) return -EFAULT;
    }
    if (set === 0) return 0;
    const s = this.mem.readBytes(set, 8);
    if (!s) return -EFAULT;
    const dv = new DataView(s.buffer);
    const lo = dv.getInt32(0, true);
    const hi = dv.getInt32(4, true);
    if (how === 0) {
      this.sigmaskLo |= lo;
      this.sigmaskHi |= hi;
    } else if (how === 1) {
      this.sigmaskLo &= ~lo;
      this.sigmaskHi &= ~hi;
    } else if (how === 2) {
      this.sigmaskLo = lo;
      this.sigmaskHi = hi;
    } else return -EINVAL;
    return 0;
  }

  // ------------------------------------------------------------------ misc

  private sysUname(la: number): number {
    const b = new Uint8Array(65 * 6);
    const put = (i: number, s: string): void => {
      const e = Buffer.from(s).subarray(0, 64);
      b.set(e, i * 65);
    };
    put(0, 'Linux');
    put(1, os.hostname());
    put(2, os.release());
    put(3, os.version());
    put(4, 'x86_64');
    put(5, '(none)');
    return this.mem.writeFrom(la, b) ? 0 : -EFAULT;
  }

  private sysClockGettime(clk: number, la: number, compat = false): number {
    let sec: number;
    let nsec: number;
    switch (clk) {
      case 0: case 5: case 8: case 11: { // REALTIME, REALTIME_COARSE, REALTIME_ALARM, TAI
        const ms = performance.timeOrigin + performance.now();
        sec = Math.floor(ms / 1000);
        nsec = Math.floor((ms - sec * 1000) * 1e6);
        break;
      }
      case 1: case 4: case 6: case 7: case 9: { // MONOTONIC, MONOTONIC_RAW, _COARSE, BOOTTIME, BOOTTIME_ALARM
        const t = process.hrtime();
        sec = t[0];
        nsec = t[1];
        break;
      }
      case 2: case 3: { // PROCESS/THREAD CPUTIME
        const u = process.cpuUsage();
        const us = u.user + u.system;
        sec = Math.floor(us / 1e6);
        nsec = (us % 1e6) * 1000;
        break;
      }
      default:
        return -EINVAL;
    }
    nsec = Math.min(nsec, 999_999_999);
    if (compat) return this.put32(la, sec) && this.put32(la + 4, nsec) ? 0 : -EFAULT;
    return this.put64s(la, [sec, nsec]);
  }

  private sysSleep(req: number, rem: number, compat = false): number {
    const t = this.mem.readBytes(req, compat ? 8 : 16);
    if (!t) return -EFAULT;
    const dv = new DataView(t.buffer);
    const sec = compat ? dv.getInt32(0, true) : Number(dv.getBigInt64(0, true));
    const nsec = compat ? dv.getInt32(4, true) : Number(dv.getBigInt64(8, true));
    if (sec < 0 || nsec < 0 || nsec > 999_999_999) return -EINVAL;
    let ms = sec * 1000 + nsec / 1e6;
    while (ms > 0) {
      const step = Math.min(ms, 1000);
      sleepMs(step);
      ms -= step;
    }
    if (rem !== 0) this.mem.writeFrom(rem, new Uint8Array(compat ? 8 : 16));
    return 0;
  }

  private sysPrlimit(_pid: number, res: number, newp: number, oldp: number, compat = false): number {
    if (res < 0 || res > 15) return -EINVAL;
    if (newp !== 0 && !this.mem.readBytes(newp, 16)) return -EFAULT;
    if (oldp === 0) return 0;
    const INF = -1;
    let cur = INF;
    let max = INF;
    if (res === 3) cur = 8 * 1024 * 1024; // RLIMIT_STACK
    else if (res === 7) { cur = MAX_FDS; max = MAX_FDS; } // RLIMIT_NOFILE
    else if (res === 4) cur = 0; // RLIMIT_CORE
    else if (res === 6 || res === 8) { cur = 8 * 1024 * 1024; max = 8 * 1024 * 1024; } // NPROC-ish, MEMLOCK
    if (compat) return this.put32(oldp, cur) && this.put32(oldp + 4, max) ? 0 : -EFAULT;
    return this.put64s(oldp, [cur, max]);
  }

  private sysSysinfo(la: number): number {
    const b = new Uint8Array(112);
    const dv = new DataView(b.buffer);
    u64le(dv, 0, BigInt(Math.floor(os.uptime())));
    const loads = os.loadavg();
    for (let i = 0; i < 3; i++) u64le(dv, 8 + i * 8, BigInt(Math.floor(loads[i] * 65536)));
    u64le(dv, 32, BigInt(os.totalmem()));
    u64le(dv, 40, BigInt(os.freemem()));
    dv.setUint16(80, 1, true);
    dv.setUint32(104, 1, true);
    return this.mem.writeFrom(la, b) ? 0 : -EFAULT;
  }

  private sysGetrandom(buf: number, len: number): number {
    if (len < 0) return -EINVAL;
    const n = Math.min(len, CHUNK);
    if (!this.mem.accessible(buf, n, PROT_WRITE)) return -EFAULT;
    const b = new Uint8Array(n);
    randomFillSync(b);
    this.mem.writeFrom(buf, b);
    return n;
  }

  private sysArchPrctl(cpu: Cpu, code: number, addr: number): number {
    switch (code) {
      case 0x1001: // ARCH_SET_GS
      case 0x1002: // ARCH_SET_FS
        if (!(addr >= 0 && addr < USER_TOP)) return -EPERM;
        cpu.segBase[code === 0x1002 ? FS : GS] = addr;
        return 0;
      case 0x1003: // ARCH_GET_FS
      case 0x1004: // ARCH_GET_GS
        return this.put64s(addr, [cpu.segBase[code === 0x1003 ? FS : GS]]);
      default:
        return -EINVAL;
    }
  }

  /** Closes the descriptors marked close-on-exec (for execve) and everything we own at the end. */
  closeAll(): void {
    for (let fd = 0; fd < this.files.length; fd++) if (this.files[fd]) this.fdClose(fd);
  }
}

/** madvise helper: a page-aligned user range that is small enough to walk page by page. */
function smallRange(start: number, len: number): boolean {
  return Number.isSafeInteger(start) && Number.isSafeInteger(len) && start >= 0 && start + len <= USER_TOP && len <= 1 << 30;
}
