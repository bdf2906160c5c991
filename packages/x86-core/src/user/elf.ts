/**
 * ELF loading for the user-mode runner: parse and validate the header and program headers of
 * a statically linked x86-64 (ELF64) or i386 (ELF32) Linux executable (ET_EXEC, or ET_DYN
 * without PT_INTERP, i.e. static-pie), map its PT_LOAD segments into a UserMemory, and build the initial stack
 * (argc, argv, envp, auxv) the way Linux's binfmt_elf does.
 *
 * The file is untrusted: every offset and size is checked, and a bad file ends in an
 * ElfError with a clear message, never a host exception or an unbounded allocation.
 *
 * Isomorphic: no Node built-ins.
 */
import { PAGE_SIZE, PROT_EXEC, PROT_READ, PROT_WRITE, type UserMemory } from './memory';

export class ElfError extends Error {
  override readonly name = 'ElfError';
}

const PT_LOAD = 1;
const PT_INTERP = 3;
const PT_PHDR = 6;
const PT_GNU_STACK = 0x6474e551;
const ET_EXEC = 2;
const ET_DYN = 3;
const EM_X86_64 = 62;
const EM_386 = 3;

/** Load address of a position-independent (ET_DYN) program, as Linux without ASLR picks it. */
export const PIE_BASE = 0x5555_5555_4000;
/** The same for an i386 program. */
export const PIE_BASE32 = 0x5655_5000;
/** Top of the initial stack (Linux x86-64 without ASLR). */
export const STACK_TOP = 0x7fff_ffff_f000;
/** Top of the initial stack of an i386 process. */
export const STACK_TOP32 = 0xfffd_d000;
/** Size of the stack mapping (RLIMIT_STACK's usual 8 MiB). */
export const STACK_SIZE = 0x80_0000; // 8 MiB
/** Most memory one PT_LOAD segment may span (bounds what a hostile file can reserve). */
const MAX_SEGMENT = 1 << 30;

// auxv keys (include/uapi/linux/auxvec.h)
export const AT_NULL = 0;
export const AT_PHDR = 3;
export const AT_PHENT = 4;
export const AT_PHNUM = 5;
export const AT_PAGESZ = 6;
export const AT_BASE = 7;
export const AT_FLAGS = 8;
export const AT_ENTRY = 9;
export const AT_UID = 11;
export const AT_EUID = 12;
export const AT_GID = 13;
export const AT_EGID = 14;
export const AT_PLATFORM = 15;
export const AT_HWCAP = 16;
export const AT_CLKTCK = 17;
export const AT_SECURE = 23;
export const AT_RANDOM = 25;
export const AT_HWCAP2 = 26;
export const AT_EXECFN = 31;

export interface ElfSegment {
  vaddr: number;
  memsz: number;
  offset: number;
  filesz: number;
  /** PROT_* bits. */
  prot: number;
}

/** What the loader needs from an ELF file, validated. */
export interface ElfInfo {
  /** 64 (x86-64) or 32 (i386). */
  bits: number;
  /** ET_EXEC (2) or ET_DYN (3). */
  type: number;
  /** Load bias (0 for ET_EXEC, PIE_BASE for ET_DYN). */
  bias: number;
  /** Entry point (bias applied). */
  entry: number;
  /** Address of the program headers in memory (bias applied), 0 if not loaded. */
  phdr: number;
  phent: number;
  phnum: number;
  segments: ElfSegment[];
  /** First page-aligned address above every segment: the initial program break. */
  brk: number;
  /** PT_GNU_STACK asks for an executable stack. */
  execStack: boolean;
}

function u64(dv: DataView, o: number): number {
  const lo = dv.getUint32(o, true);
  const hi = dv.getUint32(o + 4, true);
  if (hi >= 0x200000) return Infinity; // beyond 2^53: invalid for any field we use
  return hi * 4294967296 + lo;
}

/**
 * Parses and validates a static x86-64 (ELF64) or i386 (ELF32) executable. Throws ElfError on
 * anything unsupported or malformed.
 */
export function parseElf(file: Uint8Array): ElfInfo {
  if (file.length < 52 || file[0] !== 0x7f || file[1] !== 0x45 || file[2] !== 0x4c || file[3] !== 0x46) throw new ElfError('not an ELF file');
  const dv = new DataView(file.buffer, file.byteOffset, file.byteLength);
  if (file[5] !== 1) throw new ElfError('not a little-endian ELF file');
  const cls = file[4];
  if (cls !== 1 && cls !== 2) throw new ElfError('bad ELF class');
  const is64 = cls === 2;
  if (is64 && file.length < 64) throw new ElfError('truncated ELF header');
  const machine = dv.getUint16(18, true);
  if (is64 && machine !== EM_X86_64) throw new ElfError(`not an x86-64 ELF file (e_machine ${machine})`);
  if (!is64 && machine !== EM_386) throw new ElfError(`not an i386 ELF file (e_machine ${machine})`);
  const type = dv.getUint16(16, true);
  if (type !== ET_EXEC && type !== ET_DYN) throw new ElfError(`not an executable (e_type ${type})`);
  const entry0 = is64 ? u64(dv, 24) : dv.getUint32(24, true);
  const phoff = is64 ? u64(dv, 32) : dv.getUint32(28, true);
  const phent = dv.getUint16(is64 ? 54 : 42, true);
  const phnum = dv.getUint16(is64 ? 56 : 44, true);
  if (phent !== (is64 ? 56 : 32)) throw new ElfError(`bad program header size ${phent}`);
  if (phnum === 0 || phnum > 256) throw new ElfError(`bad program header count ${phnum}`);
  if (!(phoff + phnum * phent <= file.length)) throw new ElfError('program headers outside the file');
  const bias = type === ET_DYN ? (is64 ? PIE_BASE : PIE_BASE32) : 0;
  const limit = (is64 ? STACK_TOP : STACK_TOP32) - STACK_SIZE;
  const segments: ElfSegment[] = [];
  let phdr = 0;
  let execStack = false;
  let top = 0;
  for (let k = 0; k < phnum; k++) {
    const o = phoff + k * phent;
    const ptype = dv.getUint32(o, true);
    const flags = dv.getUint32(o + (is64 ? 4 : 24), true);
    const offset = is64 ? u64(dv, o + 8) : dv.getUint32(o + 4, true);
    const vaddr = is64 ? u64(dv, o + 16) : dv.getUint32(o + 8, true);
    const filesz = is64 ? u64(dv, o + 32) : dv.getUint32(o + 16, true);
    const memsz = is64 ? u64(dv, o + 40) : dv.getUint32(o + 20, true);
    if (ptype === PT_INTERP) throw new ElfError('dynamically linked programs are not supported (PT_INTERP): use a static build');
    if (ptype === PT_PHDR) phdr = vaddr + bias;
    if (ptype === PT_GNU_STACK) execStack = (flags & 1) !== 0;
    if (ptype !== PT_LOAD) continue;
    if (!(offset + filesz <= file.length)) throw new ElfError(`segment ${k} lies outside the file`);
    if (!(filesz <= memsz)) throw new ElfError(`segment ${k}: file size larger than memory size`);
    if (!(memsz <= MAX_SEGMENT)) throw new ElfError(`segment ${k} is too large (${memsz} bytes)`);
    const start = vaddr + bias;
    if (!(start >= PAGE_SIZE && start + memsz <= limit)) throw new ElfError(`segment ${k} at a bad address 0x${start.toString(16)}`);
    if (vaddr % PAGE_SIZE !== offset % PAGE_SIZE) throw new ElfError(`segment ${k}: address and file offset disagree modulo the page size`);
    const prot = (flags & 4 ? PROT_READ : 0) | (flags & 2 ? PROT_WRITE : 0) | (flags & 1 ? PROT_EXEC : 0);
    segments.push({ vaddr: start, memsz, offset, filesz, prot });
    top = Math.max(top, start + memsz);
    // The program headers are visible in memory when a segment maps their file range.
    if (phdr === 0 && phoff >= offset && phoff + phnum * phent <= offset + filesz) phdr = start + (phoff - offset);
  }
  if (segments.length === 0) throw new ElfError('no loadable segment');
  const entry = entry0 + bias;
  if (!segments.some((s) => entry >= s.vaddr && entry < s.vaddr + s.memsz && (s.prot & PROT_EXEC) !== 0)) {
    throw new ElfError(`entry point 0x${entry.toString(16)} is not in an executable segment`);
  }
  return { bits: is64 ? 64 : 32, type, bias, entry, phdr, phent, phnum, segments, brk: Math.ceil(top / PAGE_SIZE) * PAGE_SIZE, execStack };
}

/** Maps every PT_LOAD segment of `info` (from `file`) into `mem`. Throws ElfError if memory runs out. */
export function loadElf(mem: UserMemory, file: Uint8Array, info: ElfInfo): void {
  // Pages shared by two segments get the union of their protections (as the kernel's
  // successive mappings would leave the last one; the union is the permissive choice).
  const protByPage = new Map<number, number>();
  for (const s of info.segments) {
    const first = Math.floor(s.vaddr / PAGE_SIZE);
    const end = Math.ceil((s.vaddr + s.memsz) / PAGE_SIZE);
    for (let pn = first; pn < end; pn++) protByPage.set(pn, (protByPage.get(pn) ?? 0) | s.prot);
  }
  for (const [pn, prot] of protByPage) {
    if (!mem.map(pn * PAGE_SIZE, PAGE_SIZE, prot)) throw new ElfError('out of memory while loading the program');
  }
  for (const s of info.segments) {
    if (s.filesz > 0) mem.writeFrom(s.vaddr, file.subarray(s.offset, s.offset + s.filesz), 0);
  }
}

/** What goes on the initial stack. */
export interface StackSetup {
  argv: readonly Uint8Array[];
  envp: readonly Uint8Array[];
  /** AT_EXECFN string (the path the program was started by). */
  execfn: Uint8Array;
  /** 16 bytes for AT_RANDOM. */
  random: Uint8Array;
  /** AT_HWCAP (CPUID.1:EDX of the emulated CPU). */
  hwcap: number;
  uid: number;
  gid: number;
}

/**
 * Maps the stack below STACK_TOP and writes argc, argv, envp and auxv the way Linux does
 * (strings at the top, then AT_RANDOM bytes and the platform string, then the 16-byte aligned
 * vectors). Returns the initial RSP (pointing at argc).
 */
export function setupStack(mem: UserMemory, info: ElfInfo, s: StackSetup): number {
  const top = info.bits === 64 ? STACK_TOP : STACK_TOP32;
  const w = info.bits === 64 ? 8 : 4;
  if (!mem.map(top - STACK_SIZE, STACK_SIZE, PROT_READ | PROT_WRITE | (info.execStack ? PROT_EXEC : 0))) {
    throw new ElfError('out of memory while mapping the stack');
  }
  const enc = (str: string): Uint8Array => Uint8Array.from(str, (c) => c.charCodeAt(0) & 0xff);
  let sp = top - w; // Linux leaves a NULL word at the very top
  let total = 0;
  for (const a of [s.execfn, ...s.argv, ...s.envp]) total += a.length + 1;
  if (total > STACK_SIZE / 4) throw new ElfError('argument list too long');
  const pushBytes = (b: Uint8Array, nul: boolean): number => {
    sp -= b.length + (nul ? 1 : 0);
    const c = new Uint8Array(b.length + (nul ? 1 : 0));
    c.set(b);
    mem.writeFrom(sp, c, 0);
    return sp;
  };
  const execfnAt = pushBytes(s.execfn, true);
  const envAt = new Array<number>(s.envp.length);
  for (let i = s.envp.length - 1; i >= 0; i--) envAt[i] = pushBytes(s.envp[i], true);
  const argAt = new Array<number>(s.argv.length);
  for (let i = s.argv.length - 1; i >= 0; i--) argAt[i] = pushBytes(s.argv[i], true);
  const platformAt = pushBytes(enc(info.bits === 64 ? 'x86_64' : 'i686'), true);
  sp = Math.floor((platformAt - 16) / 16) * 16; // 16 random bytes, 16-byte aligned
  const randomAt = sp;
  mem.writeFrom(randomAt, s.random.subarray(0, 16), 0);
  const aux: number[] = [
    AT_HWCAP, s.hwcap >>> 0,
    AT_PAGESZ, PAGE_SIZE,
    AT_CLKTCK, 100,
    AT_PHDR, info.phdr,
    AT_PHENT, info.phent,
    AT_PHNUM, info.phnum,
    AT_BASE, 0,
    AT_FLAGS, 0,
    AT_ENTRY, info.entry,
    AT_UID, s.uid,
    AT_EUID, s.uid,
    AT_GID, s.gid,
    AT_EGID, s.gid,
    AT_SECURE, 0,
    AT_RANDOM, randomAt,
    AT_HWCAP2, 0,
    AT_EXECFN, execfnAt,
    AT_PLATFORM, platformAt,
    AT_NULL, 0,
  ];
  const words: number[] = [s.argv.length, ...argAt, 0, ...envAt, 0, ...aux];
  sp -= words.length * w;
  sp = Math.floor(sp / 16) * 16; // the stack pointer is 16-byte aligned at argc
  const block = new Uint8Array(words.length * w);
  const dv = new DataView(block.buffer);
  words.forEach((x, i) => {
    dv.setUint32(i * w, x % 4294967296, true);
    if (w === 8) dv.setUint32(i * 8 + 4, Math.floor(x / 4294967296), true);
  });
  mem.writeFrom(sp, block, 0);
  return sp;
}
