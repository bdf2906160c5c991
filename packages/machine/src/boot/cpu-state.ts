/**
 * The initial CPU state a boot loader hands to the vCPU, as plain data shaped like KVM's
 * kvm_regs / kvm_sregs (what a VMM passes to KVM_SET_REGS / KVM_SET_SREGS after a direct
 * kernel boot), plus the boot GDT and identity page tables the state refers to, written into
 * guest memory.
 *
 * GDT at BOOT_GDT_START (8-byte descriptors; selectors are index * 8):
 *   0x00 null   0x08 null
 *   0x10 code   flat 4 GiB, execute/read: 64-bit (L=1) for a long-mode entry, 32-bit (D=1) otherwise
 *   0x18 data   flat 4 GiB, read/write
 *   0x20 TSS    busy TSS, base 0, limit 0x67 (16 bytes in long mode), so TR is valid
 * Identity page tables at PML4_START: PML4[0] -> PDPT, PDPT[0..3] -> PD0..PD3, each PD maps
 * 1 GiB in 2 MiB pages (present | writable | page size = 0x83): the first 4 GiB, which holds
 * the kernel, the zero page, the command line and the initrd.
 */
import type { GuestMemory } from '@ringzero/mmu-ept';
import {
  BOOT_GDT_START, BOOT_IDT_START, BOOT_STACK_POINTER, LAPIC_START, PD_COUNT, PD_START, PDPT_START, PML4_START,
} from '../layout';
import { KernelLoadError } from './errors';

/** One segment register, as kvm_segment. `type` is the 4-bit descriptor type. */
export interface BootSegment {
  readonly selector: number;
  readonly base: number;
  readonly limit: number;
  readonly type: number;
  readonly present: number;
  readonly dpl: number;
  readonly db: number;
  readonly s: number;
  readonly l: number;
  readonly g: number;
  readonly avl: number;
  readonly unusable: number;
}

export interface BootDescriptorTable {
  readonly base: number;
  readonly limit: number;
}

/** General registers (64-bit values as plain numbers; they are all small at boot). */
export interface BootRegisters {
  readonly rax: number;
  readonly rbx: number;
  readonly rcx: number;
  readonly rdx: number;
  readonly rsi: number;
  readonly rdi: number;
  readonly rsp: number;
  readonly rbp: number;
  readonly rip: number;
  readonly rflags: number;
}

export interface BootSpecialRegisters {
  readonly cs: BootSegment;
  readonly ds: BootSegment;
  readonly es: BootSegment;
  readonly fs: BootSegment;
  readonly gs: BootSegment;
  readonly ss: BootSegment;
  readonly tr: BootSegment;
  readonly ldt: BootSegment;
  readonly gdt: BootDescriptorTable;
  readonly idt: BootDescriptorTable;
  readonly cr0: number;
  readonly cr2: number;
  readonly cr3: number;
  readonly cr4: number;
  readonly efer: number;
  readonly apicBase: number;
}

/** 'long64': IA-32e 64-bit mode with paging; 'protected32': flat 32-bit protected mode, paging off. */
export type BootMode = 'long64' | 'protected32';

export interface BootCpuState {
  readonly version: 1;
  readonly mode: BootMode;
  readonly regs: BootRegisters;
  readonly sregs: BootSpecialRegisters;
}

export const BOOT_CS = 0x10;
export const BOOT_DS = 0x18;
export const BOOT_TSS = 0x20;

export const CR0_PE = 0x1;
export const CR0_ET = 0x10;
export const CR0_PG = 0x8000_0000;
export const CR4_PAE = 0x20;
export const EFER_LME = 0x100;
export const EFER_LMA = 0x400;
/** IA32_APIC_BASE: the default base, BSP (bit 8) and global enable (bit 11). */
export const APIC_BASE_BSP_ENABLED: number = (LAPIC_START | 0x900) >>> 0;
export const RFLAGS_RESERVED = 0x2;

// Descriptor words as lo/hi halves (no BigInt): base 0, limit 0xFFFFF pages.
const CODE64: readonly [number, number] = [0x0000ffff, 0x00af9b00];
const CODE32: readonly [number, number] = [0x0000ffff, 0x00cf9b00];
const DATA: readonly [number, number] = [0x0000ffff, 0x00cf9300];
const TSS_LIMIT = 0x67;
const TSS64: readonly [number, number] = [TSS_LIMIT, 0x00008b00];

function seg(selector: number, type: number, s: number, l: number, db: number, g: number, limit: number): BootSegment {
  return { selector, base: 0, limit, type, present: 1, dpl: 0, db, s, l, g, avl: 0, unusable: 0 };
}

const unusableLdt: BootSegment = { selector: 0, base: 0, limit: 0, type: 2, present: 0, dpl: 0, db: 0, s: 0, l: 0, g: 0, avl: 0, unusable: 1 };

function write(mem: GuestMemory, addr: number, lo: number, hi: number): void {
  if (!mem.write64(addr, lo, hi)) throw new KernelLoadError(`guest memory has no RAM at 0x${addr.toString(16)} for the boot tables`);
}

/** Writes the boot GDT for `mode` and an empty IDT descriptor area; returns the GDT limit. */
export function writeBootGdt(mem: GuestMemory, mode: BootMode): number {
  const code = mode === 'long64' ? CODE64 : CODE32;
  const entries: readonly (readonly [number, number])[] = [[0, 0], [0, 0], code, DATA, TSS64, [0, 0]];
  entries.forEach(([lo, hi], i) => write(mem, BOOT_GDT_START + i * 8, lo, hi));
  write(mem, BOOT_IDT_START, 0, 0);
  return entries.length * 8 - 1;
}

/** Writes identity page tables for the first PD_COUNT GiB at PML4_START; returns CR3. */
export function writeIdentityPageTables(mem: GuestMemory): number {
  for (let i = 0; i < 512; i++) {
    write(mem, PML4_START + i * 8, i === 0 ? PDPT_START | 0x3 : 0, 0);
    write(mem, PDPT_START + i * 8, i < PD_COUNT ? (PD_START + i * 0x1000) | 0x3 : 0, 0);
  }
  for (let d = 0; d < PD_COUNT; d++) {
    for (let i = 0; i < 512; i++) {
      const page = d * 512 + i; // 2 MiB page number
      write(mem, PD_START + d * 0x1000 + i * 8, ((page << 21) | 0x83) >>> 0, page >>> 11);
    }
  }
  return PML4_START;
}

function flatSregs(mode: BootMode, gdtLimit: number, cr3: number): BootSpecialRegisters {
  const long = mode === 'long64';
  const data = seg(BOOT_DS, 0x3, 1, 0, 1, 1, 0xffff_ffff);
  return {
    cs: long ? seg(BOOT_CS, 0xb, 1, 1, 0, 1, 0xffff_ffff) : seg(BOOT_CS, 0xb, 1, 0, 1, 1, 0xffff_ffff),
    ds: data,
    es: data,
    fs: data,
    gs: data,
    ss: data,
    tr: seg(BOOT_TSS, 0xb, 0, 0, 0, 0, TSS_LIMIT),
    ldt: unusableLdt,
    gdt: { base: BOOT_GDT_START, limit: gdtLimit },
    idt: { base: BOOT_IDT_START, limit: 0 },
    cr0: (long ? CR0_PE | CR0_ET | CR0_PG : CR0_PE | CR0_ET) >>> 0,
    cr2: 0,
    cr3: long ? cr3 : 0,
    cr4: long ? CR4_PAE : 0,
    efer: long ? EFER_LME | EFER_LMA : 0,
    apicBase: APIC_BASE_BSP_ENABLED,
  };
}

export interface EntryRegisters {
  readonly rax?: number;
  readonly rbx?: number;
  readonly rsi?: number;
}

/**
 * Writes the GDT (and, for long mode, the page tables) and returns the state that enters the
 * kernel at `entry` with interrupts off and the given registers (others zero).
 */
export function bootCpuState(mem: GuestMemory, mode: BootMode, entry: number, regs: EntryRegisters): BootCpuState {
  const gdtLimit = writeBootGdt(mem, mode);
  const cr3 = mode === 'long64' ? writeIdentityPageTables(mem) : 0;
  return {
    version: 1,
    mode,
    regs: {
      rax: regs.rax ?? 0, rbx: regs.rbx ?? 0, rcx: 0, rdx: 0, rsi: regs.rsi ?? 0, rdi: 0,
      rsp: BOOT_STACK_POINTER, rbp: 0, rip: entry, rflags: RFLAGS_RESERVED,
    },
    sregs: flatSregs(mode, gdtLimit, cr3),
  };
}
