/**
 * Multiboot v1 (the GNU Multiboot Specification 0.6.96), as QEMU's -kernel loads it.
 *
 * Header: 32-bit aligned in the first 8 KiB: magic 0x1BADB002, flags, checksum (the three sum
 * to 0 mod 2^32); with flag 16 the a.out kludge fields follow: header_addr, load_addr,
 * load_end_addr, bss_end_addr, entry_addr (+12..+28). Without flag 16 the file must be ELF.
 * Flags 0-15 are requirements: 0 = page-align modules, 1 = memory info, 2 = video mode
 * (ignored, as QEMU does); any other bit below 16 makes the load fail.
 *
 * Info structure (at MULTIBOOT_INFO_START): flags +0, mem_lower +4, mem_upper +8, cmdline +16,
 * mods_count +20, mods_addr +24, mmap_length +44, mmap_addr +48, boot_loader_name +64.
 * mmap entries are {size = 20, base u64, length u64, type u32}; mmap_addr points at a size field.
 * Module entries are {mod_start, mod_end, string, reserved}.
 */
import type { GuestMemory } from '@ringzero/mmu-ept';
import { E820_RAM, EBDA_START, HIMEM_START, MULTIBOOT_INFO_MAX, MULTIBOOT_INFO_START, PAGE_SIZE, type E820Entry } from '../layout';
import { ByteReader, KernelLoadError } from './errors';
import { isElf, loadElfSegments, parseElf, zeroGuest } from './elf';

export const MULTIBOOT_HEADER_MAGIC = 0x1bad_b002;
export const MULTIBOOT_BOOTLOADER_MAGIC = 0x2bad_b002;
export const MULTIBOOT_SEARCH = 8192;
export const MB_PAGE_ALIGN: number = 1 << 0;
export const MB_MEMORY_INFO: number = 1 << 1;
export const MB_VIDEO_MODE: number = 1 << 2;
export const MB_AOUT_KLUDGE: number = 1 << 16;
/** Info flags. */
export const MBI_MEMORY: number = 1 << 0;
export const MBI_CMDLINE: number = 1 << 2;
export const MBI_MODS: number = 1 << 3;
export const MBI_MMAP: number = 1 << 6;
export const MBI_LOADER_NAME: number = 1 << 9;
export const MULTIBOOT_LOADER_NAME = 'RingZero';

export interface MultibootHeader {
  /** Offset of the header in the file. */
  readonly offset: number;
  readonly flags: number;
  readonly headerAddr: number;
  readonly loadAddr: number;
  readonly loadEndAddr: number;
  readonly bssEndAddr: number;
  readonly entryAddr: number;
}

/** Finds a valid multiboot v1 header in the first 8 KiB, or returns null. */
export function findMultibootHeader(image: Uint8Array): MultibootHeader | null {
  const r = new ByteReader(image, 'multiboot kernel');
  const limit = Math.min(MULTIBOOT_SEARCH, image.length) - 12;
  for (let off = 0; off <= limit; off += 4) {
    if (r.u32(off) !== MULTIBOOT_HEADER_MAGIC) continue;
    const flags = r.u32(off + 4);
    if (((MULTIBOOT_HEADER_MAGIC + flags + r.u32(off + 8)) >>> 0) !== 0) continue;
    const aout = (flags & MB_AOUT_KLUDGE) !== 0 && r.has(off + 12, 20);
    return {
      offset: off,
      flags,
      headerAddr: aout ? r.u32(off + 12) : 0,
      loadAddr: aout ? r.u32(off + 16) : 0,
      loadEndAddr: aout ? r.u32(off + 20) : 0,
      bssEndAddr: aout ? r.u32(off + 24) : 0,
      entryAddr: aout ? r.u32(off + 28) : 0,
    };
  }
  return null;
}

export interface MultibootModule {
  readonly data: Uint8Array;
  readonly cmdline?: string;
}

export interface MultibootLoad {
  readonly entry: number;
  readonly infoAddr: number;
  readonly kernel: { readonly start: number; readonly end: number };
  readonly modules: readonly { readonly start: number; readonly end: number }[];
  readonly cmdlineAddr: number;
}

const encoder = new TextEncoder();

/** Loads a multiboot kernel, its modules and the info structure; throws KernelLoadError. */
export function loadMultiboot(
  mem: GuestMemory,
  image: Uint8Array,
  header: MultibootHeader,
  opts: { readonly cmdline: string; readonly modules: readonly MultibootModule[]; readonly e820: readonly E820Entry[] },
): MultibootLoad {
  const unknown = header.flags & 0xfff8;
  if (unknown) throw new KernelLoadError(`multiboot kernel requires features this loader lacks (header flags 0x${unknown.toString(16)})`);
  let entry: number;
  let start: number;
  let end: number;
  if (header.flags & MB_AOUT_KLUDGE) {
    const h = header;
    if (!new ByteReader(image, 'multiboot kernel').has(h.offset + 12, 20)) throw new KernelLoadError('multiboot kernel is truncated: the a.out kludge fields are missing');
    if (h.headerAddr < h.loadAddr) throw new KernelLoadError('multiboot header_addr is below load_addr');
    const fileStart = h.offset - (h.headerAddr - h.loadAddr);
    if (fileStart < 0) throw new KernelLoadError('multiboot load_addr is before the start of the file');
    const loadEnd = h.loadEndAddr === 0 ? h.loadAddr + (image.length - fileStart) : h.loadEndAddr;
    if (loadEnd < h.loadAddr) throw new KernelLoadError('multiboot load_end_addr is below load_addr');
    const size = loadEnd - h.loadAddr;
    if (fileStart + size > image.length) throw new KernelLoadError(`multiboot kernel is truncated: ${size} bytes to load, ${image.length - fileStart} in the file`);
    const bssEnd = h.bssEndAddr === 0 ? loadEnd : h.bssEndAddr;
    if (bssEnd < loadEnd) throw new KernelLoadError('multiboot bss_end_addr is below load_end_addr');
    if (!mem.isRam(h.loadAddr, bssEnd - h.loadAddr)) {
      throw new KernelLoadError(`multiboot kernel at 0x${h.loadAddr.toString(16)}-0x${bssEnd.toString(16)} is not in guest RAM`);
    }
    mem.writeFrom(h.loadAddr, image.subarray(fileStart, fileStart + size));
    zeroGuest(mem, loadEnd, bssEnd - loadEnd);
    entry = h.entryAddr;
    start = h.loadAddr;
    end = bssEnd;
  } else {
    if (!isElf(image)) throw new KernelLoadError('multiboot kernel without the a.out kludge (flag 16) must be an ELF file');
    const elf = parseElf(image, 'multiboot ELF kernel');
    if (elf.class !== 32) throw new KernelLoadError('a multiboot ELF kernel must be ELF32 (load 64-bit kernels with the Linux boot protocol)');
    ({ start, end } = loadElfSegments(mem, image, elf, 'multiboot ELF kernel'));
    entry = elf.entry;
    // A virtual entry point inside a segment is translated to its physical address, as QEMU does.
    for (const s of elf.segments) {
      if (entry >= s.vaddr && entry < s.vaddr + s.memsz && s.vaddr !== s.paddr) entry = entry - s.vaddr + s.paddr;
    }
  }
  if (entry < start || entry >= end) throw new KernelLoadError(`multiboot entry 0x${entry.toString(16)} is outside the loaded kernel`);

  // Modules go after the kernel, page-aligned.
  const modules: { start: number; end: number }[] = [];
  let at = Math.ceil(end / PAGE_SIZE) * PAGE_SIZE;
  for (const [i, m] of opts.modules.entries()) {
    if (!mem.isRam(at, m.data.length)) throw new KernelLoadError(`multiboot module ${i} (${m.data.length} bytes) does not fit in guest RAM at 0x${at.toString(16)}`);
    mem.writeFrom(at, m.data);
    modules.push({ start: at, end: at + m.data.length });
    at = Math.ceil((at + m.data.length) / PAGE_SIZE) * PAGE_SIZE;
  }

  // Info structure, then mmap, module list and strings, all inside the info area.
  const info = new Uint8Array(MULTIBOOT_INFO_MAX);
  const v = new DataView(info.buffer);
  let p = 128;
  const alloc = (n: number): number => {
    const off = p;
    p = Math.ceil((p + n) / 4) * 4;
    if (p > MULTIBOOT_INFO_MAX) throw new KernelLoadError(`multiboot information (command lines, modules) exceeds ${MULTIBOOT_INFO_MAX} bytes`);
    return off;
  };
  const str = (s: string): number => {
    const b = encoder.encode(s);
    const off = alloc(b.length + 1);
    info.set(b, off);
    return MULTIBOOT_INFO_START + off;
  };
  let flags = MBI_MEMORY | MBI_CMDLINE | MBI_MMAP | MBI_LOADER_NAME;
  const ramAt1M = opts.e820.find((e) => e.type === E820_RAM && e.addr <= HIMEM_START && e.addr + e.size > HIMEM_START);
  v.setUint32(4, Math.floor(EBDA_START / 1024), true);
  v.setUint32(8, ramAt1M ? Math.floor((ramAt1M.addr + ramAt1M.size - HIMEM_START) / 1024) : 0, true);
  const cmdlineAddr = str(opts.cmdline);
  v.setUint32(16, cmdlineAddr, true);
  if (modules.length > 0) {
    flags |= MBI_MODS;
    const list = alloc(16 * modules.length);
    modules.forEach((m, i) => {
      v.setUint32(list + i * 16, m.start, true);
      v.setUint32(list + i * 16 + 4, m.end, true);
      v.setUint32(list + i * 16 + 8, str(opts.modules[i].cmdline ?? ''), true);
    });
    v.setUint32(20, modules.length, true);
    v.setUint32(24, MULTIBOOT_INFO_START + list, true);
  }
  const mmap = alloc(24 * opts.e820.length);
  opts.e820.forEach((e, i) => {
    const o = mmap + i * 24;
    v.setUint32(o, 20, true);
    v.setUint32(o + 4, e.addr >>> 0, true);
    v.setUint32(o + 8, Math.floor(e.addr / 2 ** 32), true);
    v.setUint32(o + 12, e.size >>> 0, true);
    v.setUint32(o + 16, Math.floor(e.size / 2 ** 32), true);
    v.setUint32(o + 20, e.type, true);
  });
  v.setUint32(44, 24 * opts.e820.length, true);
  v.setUint32(48, MULTIBOOT_INFO_START + mmap, true);
  v.setUint32(64, str(MULTIBOOT_LOADER_NAME), true);
  v.setUint32(0, flags, true);
  if (!mem.writeFrom(MULTIBOOT_INFO_START, info.subarray(0, p))) throw new KernelLoadError('guest memory has no RAM for the multiboot information');
  return { entry, infoAddr: MULTIBOOT_INFO_START, kernel: { start, end }, modules, cmdlineAddr };
}
