/**
 * ELF executables for x86 (ELF32/i386 and ELF64/x86-64, little-endian): the program headers a
 * boot loader needs (PT_LOAD at their physical addresses) and the Xen PVH entry note
 * (XEN_ELFNOTE_PHYS32_ENTRY), all bounds-checked against the file.
 *
 *   e_ident[4] class (1 = 32, 2 = 64), [5] data (1 = LE); e_machine 3 (i386) or 62 (x86-64)
 *   ELF32: e_entry 0x18, e_phoff 0x1C, e_phentsize 0x2A, e_phnum 0x2C; phdr 32 bytes
 *          {type, offset, vaddr, paddr, filesz, memsz, flags, align}
 *   ELF64: e_entry 0x18, e_phoff 0x20, e_phentsize 0x36, e_phnum 0x38; phdr 56 bytes
 *          {type, flags, offset, vaddr, paddr, filesz, memsz, align}
 */
import type { GuestMemory } from '@ringzero/mmu-ept';
import { ByteReader, KernelLoadError } from './errors';

export const PT_LOAD = 1;
export const PT_NOTE = 4;
export const EM_386 = 3;
export const EM_X86_64 = 62;
/** Xen ELF note type whose descriptor is the 32-bit PVH entry point. */
export const XEN_ELFNOTE_PHYS32_ENTRY = 18;
/** At most this many program headers are read (Linux kernels have about 5). */
export const ELF_MAX_PHDRS = 256;

export interface ElfSegment {
  readonly offset: number;
  readonly paddr: number;
  /** Virtual address, low 32 bits only (used to turn a virtual ELF32 entry into a physical one). */
  readonly vaddr: number;
  readonly filesz: number;
  readonly memsz: number;
}

export interface ElfImage {
  readonly class: 32 | 64;
  readonly machine: number;
  readonly entry: number;
  readonly segments: readonly ElfSegment[];
  /** The PVH 32-bit entry from a Xen note, or null. */
  readonly pvhEntry: number | null;
}

/** True when the image starts with the ELF magic. */
export function isElf(image: Uint8Array): boolean {
  return image.length >= 4 && image[0] === 0x7f && image[1] === 0x45 && image[2] === 0x4c && image[3] === 0x46;
}

/** Parses an x86 ELF executable's load segments and PVH note; throws KernelLoadError. */
export function parseElf(image: Uint8Array, what = 'ELF kernel'): ElfImage {
  const r = new ByteReader(image, what);
  if (!isElf(image)) throw new KernelLoadError(`${what}: no ELF magic`);
  const cls = r.u8(4, 'e_ident class');
  if (cls !== 1 && cls !== 2) throw new KernelLoadError(`${what}: ELF class ${cls} is neither 32- nor 64-bit`);
  if (r.u8(5, 'e_ident data') !== 1) throw new KernelLoadError(`${what}: big-endian ELF is not an x86 kernel`);
  const is64 = cls === 2;
  const machine = r.u16(0x12, 'e_machine');
  if (machine !== EM_386 && machine !== EM_X86_64) throw new KernelLoadError(`${what}: ELF machine ${machine} is not x86 (3) or x86-64 (62)`);
  const entry = is64 ? r.u64(0x18, 'e_entry') : r.u32(0x18, 'e_entry');
  const phoff = is64 ? r.u64(0x20, 'e_phoff') : r.u32(0x1c, 'e_phoff');
  const phentsize = r.u16(is64 ? 0x36 : 0x2a, 'e_phentsize');
  const phnum = r.u16(is64 ? 0x38 : 0x2c, 'e_phnum');
  const minPh = is64 ? 56 : 32;
  if (phnum === 0) throw new KernelLoadError(`${what}: no program headers`);
  if (phnum > ELF_MAX_PHDRS) throw new KernelLoadError(`${what}: ${phnum} program headers (at most ${ELF_MAX_PHDRS} are accepted)`);
  if (phentsize < minPh) throw new KernelLoadError(`${what}: program header size ${phentsize} is below ${minPh}`);
  r.need(phoff, phentsize * phnum, 'the program header table');
  const segments: ElfSegment[] = [];
  let pvhEntry: number | null = null;
  for (let i = 0; i < phnum; i++) {
    const p = phoff + i * phentsize;
    const type = r.u32(p, 'p_type');
    const offset = is64 ? r.u64(p + 8, 'p_offset') : r.u32(p + 4, 'p_offset');
    const vaddr = r.u32(p + (is64 ? 16 : 8), 'p_vaddr'); // low 32 bits (a 64-bit kernel's is 0xffffffff8...)
    const paddr = is64 ? r.u64(p + 24, 'p_paddr') : r.u32(p + 12, 'p_paddr');
    const filesz = is64 ? r.u64(p + 32, 'p_filesz') : r.u32(p + 16, 'p_filesz');
    const memsz = is64 ? r.u64(p + 40, 'p_memsz') : r.u32(p + 20, 'p_memsz');
    if (type === PT_LOAD) {
      if (filesz > memsz) throw new KernelLoadError(`${what}: segment ${i} has more file bytes (${filesz}) than memory bytes (${memsz})`);
      r.need(offset, filesz, `segment ${i}'s data`);
      if (memsz > 0) segments.push({ offset, paddr, vaddr, filesz, memsz });
    } else if (type === PT_NOTE && pvhEntry == null) {
      r.need(offset, filesz, `note segment ${i}`);
      pvhEntry = findPvhEntry(r, offset, offset + filesz);
    }
  }
  if (segments.length === 0) throw new KernelLoadError(`${what}: no loadable segment`);
  return { class: is64 ? 64 : 32, machine, entry, segments, pvhEntry };
}

/** Walks ELF notes in [start, end) for Xen's PHYS32_ENTRY. */
function findPvhEntry(r: ByteReader, start: number, end: number): number | null {
  let p = start;
  while (p + 12 <= end) {
    const namesz = r.u32(p);
    const descsz = r.u32(p + 4);
    const type = r.u32(p + 8);
    const nameAt = p + 12;
    const descAt = nameAt + Math.ceil(namesz / 4) * 4;
    const next = descAt + Math.ceil(descsz / 4) * 4;
    if (next > end || next <= p) return null;
    if (type === XEN_ELFNOTE_PHYS32_ENTRY && namesz === 4 && r.ascii(nameAt, 3) === 'Xen' && (descsz === 4 || descsz === 8)) {
      return r.u32(descAt);
    }
    p = next;
  }
  return null;
}

const ZERO_CHUNK = new Uint8Array(0x1_0000);

/** Zeroes [addr, addr + length) of guest RAM; false if not all of it is RAM. */
export function zeroGuest(mem: GuestMemory, addr: number, length: number): boolean {
  if (!mem.isRam(addr, length)) return false;
  const view = mem.hostView(addr, length);
  if (view) {
    view.fill(0);
    return true;
  }
  for (let o = 0; o < length; o += ZERO_CHUNK.length) {
    const n = Math.min(ZERO_CHUNK.length, length - o);
    if (!mem.writeFrom(addr + o, n === ZERO_CHUNK.length ? ZERO_CHUNK : ZERO_CHUNK.subarray(0, n))) return false;
  }
  return true;
}

/** Copies the PT_LOAD segments to their physical addresses and zeroes their BSS; returns [lowest, end). */
export function loadElfSegments(mem: GuestMemory, image: Uint8Array, elf: ElfImage, what = 'ELF kernel'): { start: number; end: number } {
  let start = Number.MAX_SAFE_INTEGER;
  let end = 0;
  for (const s of elf.segments) {
    if (!mem.isRam(s.paddr, s.memsz)) {
      throw new KernelLoadError(
        `${what}: segment at 0x${s.paddr.toString(16)}-0x${(s.paddr + s.memsz).toString(16)} is not in guest RAM (too little memory?)`,
      );
    }
    mem.writeFrom(s.paddr, image.subarray(s.offset, s.offset + s.filesz));
    zeroGuest(mem, s.paddr + s.filesz, s.memsz - s.filesz);
    start = Math.min(start, s.paddr);
    end = Math.max(end, s.paddr + s.memsz);
  }
  return { start, end };
}
