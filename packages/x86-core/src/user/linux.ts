/**
 * Linux x86-64 ABI numbers used by the user-mode runner: errno values, system call numbers
 * (arch/x86/entry/syscalls/syscall_64.tbl), open/mmap/fcntl flags and signal numbers.
 * Isomorphic: numbers only.
 */

// errno (include/uapi/asm-generic/errno-base.h, errno.h)
export const EPERM = 1;
export const ENOENT = 2;
export const ESRCH = 3;
export const EINTR = 4;
export const E2BIG = 7;
export const ENOEXEC = 8;
export const EIO = 5;
export const EBADF = 9;
export const ECHILD = 10;
export const EAGAIN = 11;
export const ENOMEM = 12;
export const EACCES = 13;
export const EFAULT = 14;
export const EEXIST = 17;
export const ENODEV = 19;
export const ENOTDIR = 20;
export const EISDIR = 21;
export const EINVAL = 22;
export const EMFILE = 24;
export const ENOTTY = 25;
export const ESPIPE = 29;
export const EPIPE = 32;
export const ERANGE = 34;
export const ENAMETOOLONG = 36;
export const ENOSYS = 38;
export const ETIMEDOUT = 110;

// open flags
export const O_ACCMODE = 3;
export const O_WRONLY = 1;
export const O_RDWR = 2;
export const O_CREAT = 0o100;
export const O_TRUNC = 0o1000;
export const O_APPEND = 0o2000;
export const O_NONBLOCK = 0o4000;
export const O_DIRECTORY = 0o200000;
export const O_CLOEXEC = 0o2000000;

export const AT_FDCWD = -100;
export const AT_SYMLINK_NOFOLLOW = 0x100;
export const AT_REMOVEDIR = 0x200;
export const AT_EMPTY_PATH = 0x1000;

// mmap
export const MAP_SHARED = 0x01;
export const MAP_PRIVATE = 0x02;
export const MAP_FIXED = 0x10;
export const MAP_ANONYMOUS = 0x20;
export const MAP_FIXED_NOREPLACE = 0x100000;
export const MREMAP_MAYMOVE = 1;
export const MREMAP_FIXED = 2;
export const MADV_DONTNEED = 4;

// signals
export const SIGHUP = 1;
export const SIGINT = 2;
export const SIGQUIT = 3;
export const SIGILL = 4;
export const SIGTRAP = 5;
export const SIGABRT = 6;
export const SIGBUS = 7;
export const SIGFPE = 8;
export const SIGKILL = 9;
export const SIGSEGV = 11;
export const SIGPIPE = 13;
export const SIGALRM = 14;
export const SIGTERM = 15;
export const SIGCHLD = 17;
export const SIGSTOP = 19;

export const SIGNAL_NAMES: readonly string[] = [
  '', 'SIGHUP', 'SIGINT', 'SIGQUIT', 'SIGILL', 'SIGTRAP', 'SIGABRT', 'SIGBUS', 'SIGFPE', 'SIGKILL', 'SIGUSR1', 'SIGSEGV', 'SIGUSR2', 'SIGPIPE',
  'SIGALRM', 'SIGTERM', 'SIGSTKFLT', 'SIGCHLD', 'SIGCONT', 'SIGSTOP', 'SIGTSTP', 'SIGTTIN', 'SIGTTOU', 'SIGURG', 'SIGXCPU', 'SIGXFSZ',
  'SIGVTALRM', 'SIGPROF', 'SIGWINCH', 'SIGIO', 'SIGPWR', 'SIGSYS',
];

/** Signals whose default action is to be ignored (or to stop/continue, which a lone process cannot observe). */
export const SIG_DEFAULT_IGNORED: ReadonlySet<number> = new Set([17, 18, 19, 20, 21, 22, 23, 28]);

// system call numbers
export const SYS = {
  read: 0, write: 1, open: 2, close: 3, stat: 4, fstat: 5, lstat: 6, poll: 7, lseek: 8, mmap: 9, mprotect: 10, munmap: 11,
  brk: 12, rt_sigaction: 13, rt_sigprocmask: 14, rt_sigreturn: 15, ioctl: 16, pread64: 17, pwrite64: 18, readv: 19, writev: 20,
  access: 21, pipe: 22, select: 23, sched_yield: 24, mremap: 25, msync: 26, mincore: 27, madvise: 28, dup: 32, dup2: 33, pause: 34,
  nanosleep: 35, getitimer: 36, alarm: 37, setitimer: 38, getpid: 39, sendfile: 40, socket: 41, connect: 42, clone: 56, fork: 57, vfork: 58, execve: 59,
  exit: 60, wait4: 61, kill: 62, uname: 63, fcntl: 72, flock: 73, fsync: 74, fdatasync: 75, truncate: 76, ftruncate: 77, getdents: 78,
  getcwd: 79, chdir: 80, fchdir: 81, rename: 82, mkdir: 83, rmdir: 84, creat: 85, link: 86, unlink: 87, symlink: 88, readlink: 89,
  chmod: 90, fchmod: 91, chown: 92, fchown: 93, lchown: 94, umask: 95, gettimeofday: 96, getrlimit: 97, getrusage: 98, sysinfo: 99,
  times: 100, getuid: 102, getgid: 104, setuid: 105, setgid: 106, geteuid: 107, getegid: 108, setpgid: 109, getppid: 110, getpgrp: 111,
  setsid: 112, getgroups: 115, setresuid: 117, getresuid: 118, setresgid: 119, getresgid: 120, getpgid: 121, getsid: 124,
  rt_sigpending: 127, rt_sigsuspend: 130, sigaltstack: 131, statfs: 137, fstatfs: 138, getpriority: 140, setpriority: 141,
  prctl: 157, arch_prctl: 158, setrlimit: 160, sync: 162, gettid: 186, tkill: 200, time: 201, futex: 202, sched_getaffinity: 204,
  getdents64: 217, set_tid_address: 218, fadvise64: 221, clock_gettime: 228, clock_getres: 229, clock_nanosleep: 230, exit_group: 231,
  tgkill: 234, utimes: 235, openat: 257, mkdirat: 258, fchownat: 260, newfstatat: 262, unlinkat: 263, renameat: 264, linkat: 265,
  symlinkat: 266, readlinkat: 267, fchmodat: 268, faccessat: 269, pselect6: 270, ppoll: 271, set_robust_list: 273, get_robust_list: 274,
  utimensat: 280, fallocate: 285, dup3: 292, pipe2: 293, preadv: 295, pwritev: 296, prlimit64: 302, syncfs: 306, getcpu: 309,
  renameat2: 316, getrandom: 318, execveat: 322, copy_file_range: 326, preadv2: 327, pwritev2: 328, statx: 332, rseq: 334,
  clone3: 435, close_range: 436, faccessat2: 439,
} as const;

/** Name of a system call number, for the debug log. */
export const SYSCALL_NAMES: ReadonlyMap<number, string> = new Map(Object.entries(SYS).map(([k, v]) => [v, k]));

/**
 * i386 system calls whose arguments and structures have the same meaning as an x86-64 call
 * (arch/x86/entry/syscalls/syscall_32.tbl -> the x86-64 number). The runner serves them with
 * the x86-64 code; calls with i386-specific layouts are translated one by one in the kernel.
 */
export const I386_SAME: ReadonlyMap<number, number> = new Map([
  [1, SYS.exit], [3, SYS.read], [4, SYS.write], [5, SYS.open], [6, SYS.close], [8, SYS.creat], [9, SYS.link],
  [10, SYS.unlink], [12, SYS.chdir], [15, SYS.chmod], [20, SYS.getpid], [24, SYS.getuid], [27, SYS.alarm],
  [33, SYS.access], [36, SYS.sync], [37, SYS.kill], [38, SYS.rename], [39, SYS.mkdir], [40, SYS.rmdir], [41, SYS.dup],
  [42, SYS.pipe], [45, SYS.brk], [47, SYS.getgid], [49, SYS.geteuid], [50, SYS.getegid], [54, SYS.ioctl],
  [55, SYS.fcntl], [57, SYS.setpgid], [60, SYS.umask], [63, SYS.dup2], [64, SYS.getppid], [65, SYS.getpgrp],
  [66, SYS.setsid], [75, SYS.setrlimit], [83, SYS.symlink], [85, SYS.readlink], [91, SYS.munmap], [94, SYS.fchmod],
  [96, SYS.getpriority], [97, SYS.setpriority], [114, SYS.wait4], [118, SYS.fsync], [122, SYS.uname],
  [125, SYS.mprotect], [132, SYS.getpgid], [133, SYS.fchdir], [143, SYS.flock], [147, SYS.getsid],
  [148, SYS.fdatasync], [158, SYS.sched_yield], [163, SYS.mremap], [168, SYS.poll], [172, SYS.prctl],
  [175, SYS.rt_sigprocmask], [176, SYS.rt_sigpending], [183, SYS.getcwd], [198, SYS.lchown], [199, SYS.getuid],
  [200, SYS.getgid], [201, SYS.geteuid], [202, SYS.getegid], [205, SYS.getgroups], [207, SYS.fchown],
  [209, SYS.getresuid], [211, SYS.getresgid], [212, SYS.chown], [219, SYS.madvise], [220, SYS.getdents64],
  [221, SYS.fcntl], [224, SYS.gettid], [238, SYS.tkill], [240, SYS.futex], [242, SYS.sched_getaffinity],
  [252, SYS.exit_group], [258, SYS.set_tid_address], [270, SYS.tgkill], [272, SYS.fadvise64], [295, SYS.openat],
  [296, SYS.mkdirat], [298, SYS.fchownat], [301, SYS.unlinkat], [302, SYS.renameat], [303, SYS.linkat],
  [304, SYS.symlinkat], [305, SYS.readlinkat], [306, SYS.fchmodat], [307, SYS.faccessat], [309, SYS.ppoll],
  [311, SYS.set_robust_list], [318, SYS.getcpu], [330, SYS.dup3], [331, SYS.pipe2], [340, SYS.prlimit64],
  [353, SYS.renameat2], [355, SYS.getrandom], [383, SYS.statx], [403, SYS.clock_gettime], [406, SYS.clock_getres],
  [407, SYS.clock_nanosleep], [412, SYS.utimensat], [414, SYS.ppoll], [422, SYS.futex], [436, SYS.close_range],
  [439, SYS.faccessat2],
]);

/** i386 numbers of the calls translated by the kernel (for the debug log). */
export const I386 = {
  time: 13, lseek: 19, times: 43, getrlimit: 76, getrusage: 77, gettimeofday: 78, truncate: 92, ftruncate: 93,
  llseek: 140, readv: 145, writev: 146, nanosleep: 162, rt_sigaction: 174, pread64: 180, pwrite64: 181,
  sigaltstack: 186, ugetrlimit: 191, mmap2: 192, truncate64: 193, ftruncate64: 194, stat64: 195, lstat64: 196,
  fstat64: 197, set_thread_area: 243, utimensat: 320, clock_gettime: 265, clock_getres: 266, clock_nanosleep: 267, fstatat64: 300,
  rseq: 386, fork: 2, vfork: 190, clone: 120, execve: 11, waitpid: 7, sigreturn: 119, rt_sigreturn: 173, rt_sigsuspend: 179, pause: 29,
} as const;

const i386Names = new Map<number, string>(Object.entries(I386).map(([k, v]) => [v, k]));
for (const [n32, n64] of I386_SAME) i386Names.set(n32, SYSCALL_NAMES.get(n64) ?? String(n64));
/** Name of an i386 system call number, for the debug log. */
export const I386_NAMES: ReadonlyMap<number, string> = i386Names;
