/**
 * `-kernel` for the RingZero PC: tells a bzImage, a multiboot v1 kernel and an ELF vmlinux apart
 * the way QEMU's x86 loader does ("HdrS" first, then a multiboot header in the first 8 KiB, then
 * ELF), loads it with its command line and initrd into guest memory, writes the zero page or
 * the multiboot information, and returns the vCPU state that enters it.
 */
import type { GuestMemory } from '@ringzero/mmu-ept';
import {
  BOOT_GDT_START, CMDLINE_MAX_SIZE, CMDLINE_START, KERNEL_LOAD_ADDR, PAGE_SIZE, ZERO_PAGE_START, buildE820, lowRamEnd,
  type E820Entry,
} from '../layout';
import {
  HDR_CODE32_START, XLF_KERNEL_64, buildZeroPage, isBzImage, parseSetupHeader, type SetupHeader,
} from './bzimage';
import { bootCpuState, type BootCpuState } from './cpu-state';
import { isElf, loadElfSegments, parseElf, type ElfImage } from './elf';
import { KernelLoadError } from './errors';
import { MULTIBOOT_BOOTLOADER_MAGIC, findMultibootHeader, loadMultiboot, type MultibootModule } from './multiboot';

export type KernelFormat = 'bzimage' | 'multiboot' | 'elf';

/** Which loader QEMU would pick for this file, or null if none would take it. */
export function detectKernelFormat(image: Uint8Array): KernelFormat | null {
  if (isBzImage(image)) return 'bzimage';
  if (findMultibootHeader(image)) return 'multiboot';
  if (isElf(image)) return 'elf';
  return null;
}

export interface BootOptions {
  /** The machine's RAM size in bytes (for the e820 map and for placing the initrd). */
  readonly ramSize: number;
  /** Kernel command line. Default "". */
  readonly cmdline?: string;
  /** Initial ramdisk; for a multiboot kernel it becomes the first module (as QEMU's -initrd). */
  readonly initrd?: Uint8Array;
  /** Extra multiboot modules (after the initrd). */
  readonly modules?: readonly MultibootModule[];
  /** Guest-physical address of the ACPI RSDP, given to Linux in boot_params (0 or absent: none). */
  readonly acpiRsdp?: number;
  /** The e820 map. Default buildE820(ramSize). */
  readonly e820?: readonly E820Entry[];
  /** Where a bzImage's protected-mode kernel is loaded. Default KERNEL_LOAD_ADDR (1 MiB). */
  readonly loadAddress?: number;
  /** Enter a 64-bit bzImage in 32-bit protected mode at code32_start instead of at +0x200 in long mode. */
  readonly force32BitEntry?: boolean;
}

export interface LoadedKernel {
  readonly format: KernelFormat;
  /** Where the vCPU starts. */
  readonly cpu: BootCpuState;
  /** Guest-physical range of the loaded kernel image (what the loader copied, plus BSS for ELF). */
  readonly kernel: { readonly start: number; readonly end: number };
  readonly initrd: { readonly start: number; readonly size: number } | null;
  readonly cmdline: { readonly addr: number; readonly size: number };
  /** boot_params address (Linux formats) or the multiboot information address. */
  readonly bootInfo: number;
  /** The bzImage setup header, when the format is bzimage. */
  readonly setupHeader: SetupHeader | null;
  readonly elf: ElfImage | null;
}

/** The low boot structures (GDT .. end of the command line area): no kernel byte may land there. */
const LOW_AREA_START = BOOT_GDT_START;
const LOW_AREA_END = CMDLINE_START + CMDLINE_MAX_SIZE;

function checkClearOfLowArea(start: number, end: number, what: string): void {
  if (start < LOW_AREA_END && end > LOW_AREA_START) {
    throw new KernelLoadError(`${what} at 0x${start.toString(16)}-0x${end.toString(16)} overlaps the loader's boot structures (0x${LOW_AREA_START.toString(16)}-0x${LOW_AREA_END.toString(16)})`);
  }
}

const encoder = new TextEncoder();

function writeCmdline(mem: GuestMemory, cmdline: string, max: number): { addr: number; size: number } {
  const bytes = encoder.encode(cmdline);
  if (bytes.includes(0)) throw new KernelLoadError('the kernel command line contains a NUL byte');
  const limit = Math.min(max, CMDLINE_MAX_SIZE - 1);
  if (bytes.length > limit) throw new KernelLoadError(`the kernel command line is ${bytes.length} bytes; this kernel accepts at most ${limit}`);
  const buf = new Uint8Array(bytes.length + 1);
  buf.set(bytes);
  if (!mem.writeFrom(CMDLINE_START, buf)) throw new KernelLoadError('guest memory has no RAM for the command line');
  return { addr: CMDLINE_START, size: bytes.length };
}

/**
 * Places the initrd at the top of RAM below the PCI hole and below `maxAddr` (inclusive end),
 * page aligned, above `floor`. QEMU does the same.
 */
export function placeInitrd(mem: GuestMemory, initrd: Uint8Array, ramSize: number, maxAddr: number, floor: number): { start: number; size: number } {
  const top = Math.min(lowRamEnd(ramSize), maxAddr + 1, mem.limit);
  const start = Math.floor((top - initrd.length) / PAGE_SIZE) * PAGE_SIZE;
  if (start < floor) {
    throw new KernelLoadError(
      `the initrd (${initrd.length} bytes) does not fit between the kernel's end (0x${floor.toString(16)}) and 0x${top.toString(16)}: give the machine more RAM`,
    );
  }
  if (!mem.writeFrom(start, initrd)) throw new KernelLoadError(`guest memory has no RAM at 0x${start.toString(16)} for the initrd`);
  return { start, size: initrd.length };
}

function loadBzImage(mem: GuestMemory, image: Uint8Array, o: BootOptions, e820: readonly E820Entry[]): LoadedKernel {
  const h = parseSetupHeader(image);
  const load = o.loadAddress ?? KERNEL_LOAD_ADDR;
  const kernelBytes = image.subarray(h.setupSize);
  checkClearOfLowArea(load, load + kernelBytes.length, 'the kernel');
  if (!mem.writeFrom(load, kernelBytes)) {
    throw new KernelLoadError(`the kernel (${kernelBytes.length} bytes) does not fit in guest RAM at 0x${load.toString(16)}`);
  }
  // The kernel decompresses itself into [runtime start, + init_size): keep the initrd above that.
  const runtimeStart = h.relocatable ? Math.max(load, h.prefAddress) : Math.max(load, h.prefAddress || load);
  const kernelEnd = Math.max(load + kernelBytes.length, runtimeStart + h.initSize);
  const cmdline = writeCmdline(mem, o.cmdline ?? '', h.cmdlineSize);
  const initrd = o.initrd ? placeInitrd(mem, o.initrd, o.ramSize, h.initrdAddrMax, Math.ceil(kernelEnd / PAGE_SIZE) * PAGE_SIZE) : null;
  const zp = buildZeroPage(image, h, {
    e820, cmdlinePtr: cmdline.addr, cmdlineSize: cmdline.size, ramdiskImage: initrd?.start ?? 0, ramdiskSize: initrd?.size ?? 0, acpiRsdp: o.acpiRsdp ?? 0,
  });
  new DataView(zp.buffer).setUint32(HDR_CODE32_START, load, true);
  if (!mem.writeFrom(ZERO_PAGE_START, zp)) throw new KernelLoadError('guest memory has no RAM for the zero page');
  const long = !o.force32BitEntry && h.version >= 0x020c && (h.xloadflags & XLF_KERNEL_64) !== 0;
  const cpu = long
    ? bootCpuState(mem, 'long64', load + 0x200, { rsi: ZERO_PAGE_START })
    : bootCpuState(mem, 'protected32', load, { rsi: ZERO_PAGE_START });
  return { format: 'bzimage', cpu, kernel: { start: load, end: load + kernelBytes.length }, initrd, cmdline, bootInfo: ZERO_PAGE_START, setupHeader: h, elf: null };
}

function loadElfKernel(mem: GuestMemory, image: Uint8Array, o: BootOptions, e820: readonly E820Entry[]): LoadedKernel {
  const elf = parseElf(image, 'ELF kernel');
  for (const s of elf.segments) checkClearOfLowArea(s.paddr, s.paddr + s.memsz, 'an ELF kernel segment');
  const range = loadElfSegments(mem, image, elf);
  if (elf.entry < range.start || elf.entry >= range.end) {
    throw new KernelLoadError(`ELF entry point 0x${elf.entry.toString(16)} is not a physical address inside the kernel (is this a relocated vmlinux?)`);
  }
  const cmdline = writeCmdline(mem, o.cmdline ?? '', CMDLINE_MAX_SIZE - 1);
  const initrd = o.initrd ? placeInitrd(mem, o.initrd, o.ramSize, 0xffff_ffff, Math.ceil(range.end / PAGE_SIZE) * PAGE_SIZE) : null;
  const zp = buildZeroPage(null, null, {
    e820, cmdlinePtr: cmdline.addr, cmdlineSize: CMDLINE_MAX_SIZE - 1, ramdiskImage: initrd?.start ?? 0, ramdiskSize: initrd?.size ?? 0, acpiRsdp: o.acpiRsdp ?? 0,
  });
  if (!mem.writeFrom(ZERO_PAGE_START, zp)) throw new KernelLoadError('guest memory has no RAM for the zero page');
  const cpu = bootCpuState(mem, elf.class === 64 ? 'long64' : 'protected32', elf.entry, { rsi: ZERO_PAGE_START });
  return { format: 'elf', cpu, kernel: range, initrd, cmdline, bootInfo: ZERO_PAGE_START, setupHeader: null, elf };
}

/**
 * Loads a kernel file of any supported format into guest memory and returns how to enter it.
 * Every problem with the file or the options ends in one KernelLoadError (RangeError for an
 * impossible RAM size).
 */
export function loadKernel(mem: GuestMemory, image: Uint8Array, options: BootOptions): LoadedKernel {
  const e820 = options.e820 ?? buildE820(options.ramSize);
  if (image.length === 0) throw new KernelLoadError('the kernel file is empty');
  if (isBzImage(image)) return loadBzImage(mem, image, options, e820);
  const mb = findMultibootHeader(image);
  if (mb) {
    const modules = [...(options.initrd ? [{ data: options.initrd, cmdline: 'initrd' }] : []), ...(options.modules ?? [])];
    const cmdline = options.cmdline ?? '';
    const r = loadMultiboot(mem, image, mb, { cmdline, modules, e820 });
    checkClearOfLowArea(r.kernel.start, r.kernel.end, 'the multiboot kernel');
    const cpu = bootCpuState(mem, 'protected32', r.entry, { rax: MULTIBOOT_BOOTLOADER_MAGIC, rbx: r.infoAddr });
    const first = r.modules[0];
    return {
      format: 'multiboot', cpu, kernel: r.kernel, initrd: options.initrd && first ? { start: first.start, size: first.end - first.start } : null,
      cmdline: { addr: r.cmdlineAddr, size: encoder.encode(cmdline).length }, bootInfo: r.infoAddr, setupHeader: null, elf: null,
    };
  }
  if (isElf(image)) return loadElfKernel(mem, image, options, e820);
  throw new KernelLoadError('the kernel file is neither a Linux bzImage, a multiboot v1 kernel nor an ELF executable');
}
