/**
 * ELF64 loading for user mode: validates the header (x86-64, little-endian, static), maps the
 * PT_LOAD segments into a PagedMemory with their permissions, and reports what the process
 * setup needs (entry, program headers, brk start). Hostile files end in ElfError, never in a
 * host exception or an unbounded allocation.
 */
import { PAGE, PROT_EXEC, PROT_READ, PROT_WRITE, type PagedMemory } from './paged-memory';

export class ElfError extends Error {}

export interface LoadedElf {
  entry: number;
  /** Load bias added to every address (non-zero for static-pie). */
  bias: number;
  phdrAddr: number;
  phent: number;
  phnum: number;
  /** First page after the highest segment: the initial program break. */
  brk: number;
}

/** Base used for ET_DYN (static-pie) executables, as Linux picks for PIE without ASLR. */
export const PIE_BASE = 0x555555554000;

function u16(b: Uint8Array, o: number): number {
  return b[o] | (b[o + 1] << 8);
}
function u32(b: Uint8Array, o: number): number {
  return (b[o] | (b[o + 1] << 8) | (b[o + 2] << 16) | (b[o + 3] << 24)) >>> 0;
}
function u64(b: Uint8Array, o: number): number {
  const v = u32(b, o) + u32(b, o + 4) * 4294967296;
  if (!Number.isSafeInteger(v)) throw new ElfError('ELF: 64-bit field out of range');
  return v;
}

export function loadElf(file: Uint8Array, mem: PagedMemory): LoadedElf {
  if (file.length < 64 || u32(file, 0) !== 0x464c457f) throw new ElfError('not an ELF file');
  if (file[4] !== 2 || file[5] !== 1) throw new ElfError('not a little-endian 64-bit ELF file');
  const type = u16(file, 16);
  if (u16(file, 18) !== 62) throw new ElfError('not an x86-64 ELF file');
  if (type !== 2 && type !== 3) throw new ElfError('not an executable ELF file');
  const entry = u64(file, 24);
  const phoff = u64(file, 32);
  const phent = u16(file, 54);
  const phnum = u16(file, 56);
  if (phent < 56 || phnum === 0 || phnum > 256 || phoff + phent * phnum > file.length) throw new ElfError('bad program header table');
  const bias = type === 3 ? PIE_BASE : 0;
  let brk = 0;
  let phdrAddr = 0;
  let firstLoad = -1;
  for (let i = 0; i < phnum; i++) {
    const o = phoff + i * phent;
    const pt = u32(file, o);
    if (pt === 3) throw new ElfError('dynamically linked programs (PT_INTERP) are not supported: use a static binary');
    if (pt === 6) phdrAddr = u64(file, o + 16) + bias;
    if (pt !== 1) continue;
    const flags = u32(file, o + 4);
    const off = u64(file, o + 8);
    const vaddr = u64(file, o + 16) + bias;
    const filesz = u64(file, o + 32);
    const memsz = u64(file, o + 40);
    if (filesz > memsz || off + filesz > file.length || vaddr + memsz > 2 ** 47 || memsz > 1 << 30) throw new ElfError('bad PT_LOAD segment');
    if (firstLoad < 0) firstLoad = vaddr - off;
    const prot = (flags & 4 ? PROT_READ : 0) | (flags & 2 ? PROT_WRITE : 0) | (flags & 1 ? PROT_EXEC : 0);
    const start = Math.floor(vaddr / PAGE) * PAGE;
    // Map writable first so that the copy works, then apply the real permissions.
    if (!mem.map(start, vaddr + memsz - start, PROT_READ | PROT_WRITE)) throw new ElfError('segment exceeds the memory limit');
    mem.poke(vaddr, file.subarray(off, off + filesz));
    mem.protect(start, vaddr + memsz - start, prot);
    brk = Math.max(brk, Math.ceil((vaddr + memsz) / PAGE) * PAGE);
  }
  if (brk === 0) throw new ElfError('no PT_LOAD segment');
  if (phdrAddr === 0 && firstLoad >= 0) phdrAddr = firstLoad + phoff;
  return { entry: entry + bias, bias, phdrAddr, phent, phnum, brk };
}
