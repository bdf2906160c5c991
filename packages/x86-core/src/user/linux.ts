/**
 * A Linux process for user mode: loads a static x86-64 ELF into a PagedMemory, builds the
 * initial stack (argv, envp, auxv), runs the CPU and services its SYSCALL exits against a
 * LinuxHost (files and stdio; src/node.ts provides one for Node). Isomorphic: no Node imports.
 *
 * Status: the syscalls listed in SYSCALLS below; everything else returns -ENOSYS and is
 * counted in `unknownSyscalls`. Programs need only what the CPU implements (no x87/SSE yet).
 */
import { Cpu } from '../cpu';
import { EXIT_BUDGET, EXIT_EXCEPTION, EXIT_HLT, EXIT_SOFTINT, EXIT_SYSCALL, FS, GS, RAX, RDI, RDX, RSI, RSP, R8, R9, R10, DE, UD, PF_VEC } from '../constants';
import { loadElf, type LoadedElf } from './elf';
import { PAGE, PagedMemory, PROT_EXEC, PROT_READ, PROT_WRITE } from './paged-memory';

/** File metadata as the host reports it. */
export interface HostStat {
  dev: number;
  ino: number;
  mode: number;
  nlink: number;
  uid: number;
  gid: number;
  rdev: number;
  size: number;
  blksize: number;
  blocks: number;
  atimeMs: number;
  mtimeMs: number;
  ctimeMs: number;
}

/** What the process needs from its host. Errors are negative errno values. */
export interface LinuxHost {
  read(fd: number, buf: Uint8Array, position: number | null): number;
  write(fd: number, data: Uint8Array): number;
  open(path: string, flags: number, mode: number): number;
  close(fd: number): number;
  fstat(fd: number): HostStat | number;
  stat(path: string, follow: boolean): HostStat | number;
  /** New offset or -errno. */
  lseek(fd: number, offset: number, whence: number): number;
  /** Directory entries of an open directory fd, or -errno (called once per fd; the process pages them). */
  readdir(fd: number): { name: string; ino: number; type: number }[] | number;
  isatty(fd: number): boolean;
  cwd(): string;
  /** Wall-clock time in milliseconds (fractional allowed). */
  now(): number;
  /** Monotonic time in milliseconds. */
  monotonic(): number;
  randomBytes(buf: Uint8Array): void;
}

export const ENOENT = 2;
export const EBADF = 9;
export const ENOMEM = 12;
export const EFAULT = 14;
export const EINVAL = 22;
export const ENOTTY = 25;
export const ENOSYS = 38;

const STACK_TOP = 0x7ffffffff000;
const STACK_SIZE = 8 << 20;
const MMAP_BASE = 0x7ffff7000000;

/** Signal number a fault maps to (for the 128 + n exit status). */
function signalOf(vector: number): number {
  if (vector === DE) return 8;
  if (vector === UD) return 4;
  if (vector === PF_VEC) return 11;
  return 11;
}

export interface RunResult {
  /** Exit status (as a shell reports it: 128 + signal for a fatal fault). */
  status: number;
  /** Human-readable reason when the program died of a fault. */
  fault: string | null;
  instructions: number;
}

const te = new TextEncoder();
const td = new TextDecoder();

export class LinuxProcess {
  readonly mem: PagedMemory;
  readonly cpu: Cpu;
  readonly host: LinuxHost;
  elf: LoadedElf | null = null;
  brkStart = 0;
  brk = 0;
  private mmapNext = MMAP_BASE;
  exited = false;
  exitStatus = 0;
  readonly unknownSyscalls: Map<number, number> = new Map();
  private readonly dirs = new Map<number, { entries: { name: string; ino: number; type: number }[]; pos: number }>();
  /** Optional syscall trace hook (debugging). */
  trace: ((nr: number, ret: number) => void) | null = null;

  constructor(host: LinuxHost, memLimit: number = 1 << 30) {
    this.host = host;
    this.mem = new PagedMemory(memLimit);
    this.cpu = new Cpu(this.mem);
    this.cpu.csize = 8;
    this.cpu.ssize = 8;
    this.cpu.cpl = 3;
  }

  /** Loads the program and builds its stack; throws ElfError for a bad file. */
  load(file: Uint8Array, argv: readonly string[], envp: readonly string[]): void {
    const elf = loadElf(file, this.mem);
    this.elf = elf;
    this.brkStart = this.brk = elf.brk;
    if (!this.mem.map(STACK_TOP - STACK_SIZE, STACK_SIZE, PROT_READ | PROT_WRITE)) throw new Error('cannot map the stack');
    // Strings at the top of the stack, then 16 random bytes, then the pointer block.
    let sp = STACK_TOP;
    const put = (bytes: Uint8Array): number => {
      sp -= bytes.length;
      this.mem.poke(sp, bytes);
      return sp;
    };
    const cstr = (s: string): number => put(te.encode(s + '\0'));
    const execfn = cstr(argv[0] ?? '');
    const platform = cstr('x86_64');
    const argvPtrs = argv.map(cstr);
    const envPtrs = envp.map(cstr);
    const rnd = new Uint8Array(16);
    this.host.randomBytes(rnd);
    const random = put(rnd);
    sp = Math.floor(sp / 16) * 16;
    const auxv: [number, number][] = [
      [3, elf.phdrAddr], // AT_PHDR
      [4, elf.phent], // AT_PHENT
      [5, elf.phnum], // AT_PHNUM
      [6, PAGE], // AT_PAGESZ
      [7, 0], // AT_BASE
      [8, 0], // AT_FLAGS
      [9, elf.entry], // AT_ENTRY
      [11, 0], [12, 0], [13, 0], [14, 0], // AT_UID AT_EUID AT_GID AT_EGID
      [16, 0], // AT_HWCAP
      [17, 100], // AT_CLKTCK
      [15, platform], // AT_PLATFORM
      [23, 0], // AT_SECURE
      [25, random], // AT_RANDOM
      [31, execfn], // AT_EXECFN
      [0, 0],
    ];
    const words: number[] = [argv.length, ...argvPtrs, 0, ...envPtrs, 0];
    for (const [k, v] of auxv) words.push(k, v);
    if (words.length % 2) words.push(0);
    sp -= words.length * 8;
    const block = new Uint8Array(words.length * 8);
    const dv = new DataView(block.buffer);
    words.forEach((w, i) => {
      dv.setUint32(i * 8, w >>> 0, true);
      dv.setUint32(i * 8 + 4, Math.floor(w / 4294967296), true);
    });
    this.mem.poke(sp, block);
    this.cpu.setRegNumber(RSP, sp);
    this.cpu.rip = elf.entry;
  }

  /** Runs until exit (or a fatal fault); `maxInstructions` bounds the run (then status 124). */
  run(maxInstructions: number = Number.MAX_SAFE_INTEGER): RunResult {
    const cpu = this.cpu;
    const start = cpu.retired;
    while (!this.exited) {
      const left = maxInstructions - (cpu.retired - start);
      if (left <= 0) return { status: 124, fault: 'instruction budget exhausted', instructions: cpu.retired - start };
      const exit = cpu.run(Math.min(left, 1 << 20));
      if (exit === EXIT_SYSCALL) this.syscall();
      else if (exit === EXIT_BUDGET) continue;
      else if (exit === EXIT_EXCEPTION || exit === EXIT_SOFTINT || exit === EXIT_HLT) {
        const what = exit === EXIT_SOFTINT ? `software interrupt ${cpu.faultVector}` : `exception ${cpu.faultVector} (error ${cpu.faultError}) at rip 0x${cpu.rip.toString(16)}${cpu.faultVector === PF_VEC ? `, address 0x${cpu.faultAddress.toString(16)}` : ''}`;
        return { status: 128 + signalOf(exit === EXIT_SOFTINT ? -1 : cpu.faultVector), fault: what, instructions: cpu.retired - start };
      }
    }
    return { status: this.exitStatus, fault: null, instructions: cpu.retired - start };
  }

  private arg(i: number): number {
    const r = [RDI, RSI, RDX, R10, R8, R9][i];
    return this.cpu.regNumber(r);
  }

  private syscall(): void {
    const cpu = this.cpu;
    const nr = cpu.lo[RAX];
    let ret: number;
    try {
      ret = this.dispatch(nr);
    } catch (e) {
      if (e instanceof RangeError) ret = -ENOMEM;
      else throw e;
    }
    if (this.trace) this.trace(nr, ret);
    cpu.setRegNumber(RAX, ret);
  }

  private readString(addr: number): string | null {
    const b = this.mem.peekCString(addr);
    return b == null ? null : td.decode(b);
  }

  private writeStat(addr: number, st: HostStat): number {
    const b = new Uint8Array(144);
    const dv = new DataView(b.buffer);
    const w64 = (o: number, v: number): void => {
      dv.setUint32(o, v >>> 0, true);
      dv.setUint32(o + 4, Math.floor(v / 4294967296) >>> 0, true);
    };
    w64(0, st.dev);
    w64(8, st.ino);
    w64(16, st.nlink);
    dv.setUint32(24, st.mode, true);
    dv.setUint32(28, st.uid, true);
    dv.setUint32(32, st.gid, true);
    w64(40, st.rdev);
    w64(48, st.size);
    w64(56, st.blksize);
    w64(64, st.blocks);
    const ts = (o: number, ms: number): void => {
      w64(o, Math.floor(ms / 1000));
      w64(o + 8, Math.floor((ms % 1000) * 1e6));
    };
    ts(72, st.atimeMs);
    ts(88, st.mtimeMs);
    ts(104, st.ctimeMs);
    return this.mem.poke(addr, b) ? 0 : -EFAULT;
  }

  private dispatch(nr: number): number {
    const a0 = this.arg(0);
    const a1 = this.arg(1);
    const a2 = this.arg(2);
    switch (nr) {
      case 0: { // read
        const len = Math.min(a2, 1 << 20);
        const buf = new Uint8Array(len);
        const n = this.host.read(a0, buf, null);
        if (n < 0) return n;
        return this.mem.poke(a1, buf.subarray(0, n)) ? n : -EFAULT;
      }
      case 17: { // pread64
        const len = Math.min(a2, 1 << 20);
        const buf = new Uint8Array(len);
        const n = this.host.read(a0, buf, this.arg(3));
        if (n < 0) return n;
        return this.mem.poke(a1, buf.subarray(0, n)) ? n : -EFAULT;
      }
      case 1: { // write
        const data = this.mem.peek(a1, Math.min(a2, 1 << 24));
        return data == null ? -EFAULT : this.host.write(a0, data);
      }
      case 19: // readv
      case 20: { // writev
        let total = 0;
        for (let i = 0; i < Math.min(a2, 1024); i++) {
          const iov = this.mem.peek(a1 + i * 16, 16);
          if (iov == null) return -EFAULT;
          const dv = new DataView(iov.buffer);
          const base = dv.getUint32(0, true) + dv.getUint32(4, true) * 4294967296;
          const len = Math.min(dv.getUint32(8, true), 1 << 24);
          if (len === 0) continue;
          if (nr === 20) {
            const data = this.mem.peek(base, len);
            if (data == null) return -EFAULT;
            const n = this.host.write(a0, data);
            if (n < 0) return total || n;
            total += n;
          } else {
            const buf = new Uint8Array(len);
            const n = this.host.read(a0, buf, null);
            if (n < 0) return total || n;
            if (!this.mem.poke(base, buf.subarray(0, n))) return -EFAULT;
            total += n;
            if (n < len) break;
          }
        }
        return total;
      }
      case 2: // open
      case 257: { // openat (relative paths against the host cwd)
        const path = this.readString(nr === 2 ? a0 : a1);
        if (path == null) return -EFAULT;
        return this.host.open(path, nr === 2 ? a1 : a2, nr === 2 ? a2 : this.arg(3));
      }
      case 3: // close
        this.dirs.delete(a0);
        return this.host.close(a0);
      case 5: { // fstat
        const st = this.host.fstat(a0);
        return typeof st === 'number' ? st : this.writeStat(a1, st);
      }
      case 4: // stat
      case 6: { // lstat
        const path = this.readString(a0);
        if (path == null) return -EFAULT;
        const st = this.host.stat(path, nr === 4);
        return typeof st === 'number' ? st : this.writeStat(a1, st);
      }
      case 262: { // newfstatat(dirfd, path, buf, flags)
        const path = this.readString(a1);
        if (path == null) return -EFAULT;
        const flags = this.arg(3);
        const st = path === '' && flags & 0x1000 ? this.host.fstat(a0) : this.host.stat(path, (flags & 0x100) === 0);
        return typeof st === 'number' ? st : this.writeStat(a2, st);
      }
      case 8: // lseek
        return this.host.lseek(a0, a1, a2);
      case 217: { // getdents64
        let d = this.dirs.get(a0);
        if (!d) {
          const list = this.host.readdir(a0);
          if (typeof list === 'number') return list;
          d = { entries: list, pos: 0 };
          this.dirs.set(a0, d);
        }
        const out: number[] = [];
        while (d.pos < d.entries.length) {
          const e = d.entries[d.pos];
          const name = te.encode(e.name);
          const reclen = Math.ceil((19 + name.length + 1) / 8) * 8;
          if (out.length + reclen > a2) break;
          const rec = new Uint8Array(reclen);
          const dv = new DataView(rec.buffer);
          dv.setUint32(0, e.ino >>> 0, true);
          dv.setUint32(8, d.pos + 1, true);
          dv.setUint16(16, reclen, true);
          rec[18] = e.type;
          rec.set(name, 19);
          out.push(...rec);
          d.pos++;
        }
        if (out.length === 0 && d.pos < d.entries.length) return -EINVAL;
        return this.mem.poke(a1, Uint8Array.from(out)) ? out.length : -EFAULT;
      }
      case 9: { // mmap(addr, len, prot, flags, fd, off): anonymous and private file mappings
        const len = Math.ceil(a1 / PAGE) * PAGE;
        const flags = this.arg(3);
        const fd = this.cpu.lo[R8];
        if (len === 0 || len > 1 << 30) return -EINVAL;
        let addr: number;
        if (flags & 0x10) addr = a0; // MAP_FIXED
        else {
          this.mmapNext -= len;
          addr = this.mmapNext;
        }
        if (flags & 0x10) this.mem.unmap(addr, len);
        if (!this.mem.map(addr, len, PROT_READ | PROT_WRITE)) return -ENOMEM;
        if ((flags & 0x20) === 0 && fd >= 0) {
          const buf = new Uint8Array(len);
          const n = this.host.read(fd, buf, this.arg(5));
          if (n < 0) return n;
          this.mem.poke(addr, buf.subarray(0, n));
        }
        this.mem.protect(addr, len, this.prot(a2));
        return addr;
      }
      case 10: // mprotect
        return this.mem.protect(a0, Math.ceil(a1 / PAGE) * PAGE, this.prot(a2)) ? 0 : -ENOMEM;
      case 11: // munmap
        this.mem.unmap(a0, Math.ceil(a1 / PAGE) * PAGE);
        return 0;
      case 25: // mremap: not supported (glibc falls back)
        return -ENOMEM;
      case 12: { // brk
        if (a0 === 0 || a0 < this.brkStart) return this.brk;
        const want = Math.ceil(a0 / PAGE) * PAGE;
        const have = Math.ceil(this.brk / PAGE) * PAGE;
        if (want > have && !this.mem.map(have, want - have, PROT_READ | PROT_WRITE)) return this.brk;
        if (want < have) this.mem.unmap(want, have - want);
        this.brk = a0;
        return this.brk;
      }
      case 13: // rt_sigaction
      case 14: // rt_sigprocmask
      case 131: // sigaltstack
      case 273: // set_robust_list
      case 202: // futex (single thread: nothing to wait for)
        return 0;
      case 16: { // ioctl
        if (a1 === 0x5401 || a1 === 0x5413) { // TCGETS / TIOCGWINSZ
          if (!this.host.isatty(a0)) return -ENOTTY;
          return this.mem.poke(a2, new Uint8Array(a1 === 0x5401 ? 60 : 8)) ? 0 : -EFAULT;
        }
        return -ENOTTY;
      }
      case 21: // access
      case 269: { // faccessat
        const path = this.readString(nr === 21 ? a0 : a1);
        if (path == null) return -EFAULT;
        const st = this.host.stat(path, true);
        return typeof st === 'number' ? st : 0;
      }
      case 72: // fcntl
        return a1 === 1 || a1 === 3 ? 0 : a1 === 2 || a1 === 4 ? 0 : -EINVAL;
      case 79: { // getcwd
        const cwd = te.encode(this.host.cwd() + '\0');
        if (cwd.length > a1) return -34; // ERANGE
        return this.mem.poke(a0, cwd) ? cwd.length : -EFAULT;
      }
      case 89: // readlink
      case 267: // readlinkat
        return -ENOENT;
      case 39: return 4242; // getpid
      case 110: return 1; // getppid
      case 186: return 4242; // gettid
      case 102: case 104: case 107: case 108: return 0; // getuid getgid geteuid getegid
      case 63: { // uname
        const b = new Uint8Array(65 * 6);
        ['Linux', 'ringzero', '6.1.0-ringzero', '#1 RingZero x86-core', 'x86_64', '(none)'].forEach((s, i) => b.set(te.encode(s), i * 65));
        return this.mem.poke(a0, b) ? 0 : -EFAULT;
      }
      case 158: // arch_prctl
        if (a0 === 0x1002) { this.cpu.segBase[FS] = a1; return 0; } // ARCH_SET_FS
        if (a0 === 0x1001) { this.cpu.segBase[GS] = a1; return 0; } // ARCH_SET_GS
        return -EINVAL;
      case 218: return 4242; // set_tid_address
      case 228: { // clock_gettime
        const ms = a0 === 1 || a0 === 4 || a0 === 7 ? this.host.monotonic() : this.host.now();
        const b = new Uint8Array(16);
        const dv = new DataView(b.buffer);
        dv.setUint32(0, Math.floor(ms / 1000) >>> 0, true);
        dv.setUint32(8, Math.floor((ms % 1000) * 1e6) >>> 0, true);
        return this.mem.poke(a1, b) ? 0 : -EFAULT;
      }
      case 96: { // gettimeofday
        const ms = this.host.now();
        const b = new Uint8Array(16);
        const dv = new DataView(b.buffer);
        dv.setUint32(0, Math.floor(ms / 1000) >>> 0, true);
        dv.setUint32(8, Math.floor((ms % 1000) * 1000) >>> 0, true);
        return a0 === 0 || this.mem.poke(a0, b) ? 0 : -EFAULT;
      }
      case 201: return Math.floor(this.host.now() / 1000); // time
      case 318: { // getrandom
        const b = new Uint8Array(Math.min(a1, 1 << 16));
        this.host.randomBytes(b);
        return this.mem.poke(a0, b) ? b.length : -EFAULT;
      }
      case 302: { // prlimit64: report "unlimited"
        if (this.arg(3) !== 0) {
          const b = new Uint8Array(16).fill(0xff);
          if (!this.mem.poke(this.arg(3), b)) return -EFAULT;
        }
        return 0;
      }
      case 60: // exit
      case 231: // exit_group
        this.exited = true;
        this.exitStatus = a0 & 0xff;
        return 0;
      default:
        this.unknownSyscalls.set(nr, (this.unknownSyscalls.get(nr) ?? 0) + 1);
        return -ENOSYS;
    }
  }

  private prot(p: number): number {
    return (p & 1 ? PROT_READ : 0) | (p & 2 ? PROT_WRITE : 0) | (p & 4 ? PROT_EXEC : 0);
  }
}
