/**
 * Numbers of the system architecture: control-register and EFER bits, segment attribute layout,
 * MSR indexes, and the vCPU's exit reasons.
 */

/*
 * CR0: PE 0, MP 1, EM 2, TS 3, ET 4, NE 5, WP 16, AM 18, NW 29, CD 30, PG 31.
 */
export const CR0_PE = 0x1;
export const CR0_MP = 0x2;
export const CR0_EM = 0x4;
export const CR0_TS = 0x8;
export const CR0_ET = 0x10;
export const CR0_NE = 0x20;
export const CR0_WP = 0x10000;
export const CR0_AM = 0x40000;
export const CR0_NW = 0x20000000;
export const CR0_CD = 0x40000000;
export const CR0_PG: number = 0x80000000 | 0;
/** CR0 bits that exist (the others are reserved: #GP on a write that sets them). */
export const CR0_VALID: number = CR0_PE | CR0_MP | CR0_EM | CR0_TS | CR0_ET | CR0_NE | CR0_WP | CR0_AM | CR0_NW | CR0_CD | CR0_PG;

/*
 * CR4: VME 0, PVI 1, TSD 2, DE 3, PSE 4, PAE 5, MCE 6, PGE 7, PCE 8, OSFXSR 9, OSXMMEXCPT 10,
 * UMIP 11, LA57 12, FSGSBASE 16, PCIDE 17, OSXSAVE 18, SMEP 20, SMAP 21, PKE 22.
 */
export const CR4_VME = 0x1;
export const CR4_PVI = 0x2;
export const CR4_TSD = 0x4;
export const CR4_DE = 0x8;
export const CR4_PSE = 0x10;
export const CR4_PAE = 0x20;
export const CR4_MCE = 0x40;
export const CR4_PGE = 0x80;
export const CR4_PCE = 0x100;
export const CR4_OSFXSR = 0x200;
export const CR4_OSXMMEXCPT = 0x400;
export const CR4_UMIP = 0x800;
export const CR4_LA57 = 0x1000;
export const CR4_FSGSBASE = 0x10000;
export const CR4_PCIDE = 0x20000;
export const CR4_OSXSAVE = 0x40000;
export const CR4_SMEP = 0x100000;
export const CR4_SMAP = 0x200000;
export const CR4_PKE = 0x400000;
/** CR4 bits this CPU model accepts (what CPUID advertises). */
export const CR4_VALID: number = CR4_TSD | CR4_DE | CR4_PSE | CR4_PAE | CR4_MCE | CR4_PGE | CR4_PCE | CR4_OSFXSR | CR4_OSXMMEXCPT | CR4_SMEP | CR4_SMAP;

/* EFER: SCE 0, LME 8, LMA 10, NXE 11. */
export const EFER_SCE = 0x1;
export const EFER_LME = 0x100;
export const EFER_LMA = 0x400;
export const EFER_NXE = 0x800;
export const EFER_VALID: number = EFER_SCE | EFER_LME | EFER_LMA | EFER_NXE;

/*
 * Segment attributes (cpu.segAttr and the hidden parts of LDTR/TR) use VMX's access-rights
 * layout, which is the descriptor's bits 40..55 with the limit nibble removed:
 *   bits 0-3 type, 4 S (code/data), 5-6 DPL, 7 P, 12 AVL, 13 L (64-bit code), 14 D/B, 15 G.
 * A segment register that holds a null selector (unusable) has P = 0.
 */
export const ATTR_TYPE = 0xf;
export const ATTR_S = 0x10;
export const ATTR_DPL_SHIFT = 5;
export const ATTR_P = 0x80;
export const ATTR_AVL = 0x1000;
export const ATTR_L = 0x2000;
export const ATTR_DB = 0x4000;
export const ATTR_G = 0x8000;
/** Type bits: accessed 1, writable (data) / readable (code) 2, expand-down / conforming 4, code 8. */
export const TYPE_A = 1;
export const TYPE_W = 2;
export const TYPE_R = 2;
export const TYPE_E = 4;
export const TYPE_C = 4;
export const TYPE_CODE = 8;

/* System descriptor types (S = 0). */
export const SYS_TSS16_AVAIL = 1;
export const SYS_LDT = 2;
export const SYS_TSS16_BUSY = 3;
export const SYS_CALL16 = 4;
export const SYS_TASK = 5;
export const SYS_INT16 = 6;
export const SYS_TRAP16 = 7;
export const SYS_TSS_AVAIL = 9;
export const SYS_TSS_BUSY = 11;
export const SYS_CALL = 12;
export const SYS_INT = 14;
export const SYS_TRAP = 15;

/* MSR indexes. */
export const MSR_TSC = 0x10;
export const MSR_PLATFORM_ID = 0x17;
export const MSR_APIC_BASE = 0x1b;
export const MSR_FEATURE_CONTROL = 0x3a;
export const MSR_TSC_ADJUST = 0x3b;
export const MSR_SPEC_CTRL = 0x48;
export const MSR_PRED_CMD = 0x49;
export const MSR_BIOS_SIGN_ID = 0x8b;
export const MSR_MTRRCAP = 0xfe;
export const MSR_ARCH_CAPABILITIES = 0x10a;
export const MSR_FLUSH_CMD = 0x10b;
export const MSR_SYSENTER_CS = 0x174;
export const MSR_SYSENTER_ESP = 0x175;
export const MSR_SYSENTER_EIP = 0x176;
export const MSR_MCG_CAP = 0x179;
export const MSR_MCG_STATUS = 0x17a;
export const MSR_MISC_ENABLE = 0x1a0;
export const MSR_MTRR_PHYSBASE0 = 0x200;
export const MSR_MTRR_PHYSMASK7 = 0x20f;
export const MSR_MTRR_FIX64K = 0x250;
export const MSR_MTRR_FIX16K_80000 = 0x258;
export const MSR_MTRR_FIX16K_A0000 = 0x259;
export const MSR_MTRR_FIX4K_C0000 = 0x268;
export const MSR_MTRR_FIX4K_F8000 = 0x26f;
export const MSR_PAT = 0x277;
export const MSR_MTRR_DEF_TYPE = 0x2ff;
export const MSR_X2APIC_FIRST = 0x800;
export const MSR_X2APIC_LAST = 0x8ff;
export const MSR_EFER: number = 0xc0000080 | 0;
export const MSR_STAR: number = 0xc0000081 | 0;
export const MSR_LSTAR: number = 0xc0000082 | 0;
export const MSR_CSTAR: number = 0xc0000083 | 0;
export const MSR_SFMASK: number = 0xc0000084 | 0;
export const MSR_FS_BASE: number = 0xc0000100 | 0;
export const MSR_GS_BASE: number = 0xc0000101 | 0;
export const MSR_KERNEL_GS_BASE: number = 0xc0000102 | 0;
export const MSR_TSC_AUX: number = 0xc0000103 | 0;

/*
 * vCPU exit reasons (Vcpu.run()). EXIT_BUDGET (1) and EXIT_HLT (4) are shared with the CPU's
 * run() (src/constants.ts); the others start at 16.
 */
export { EXIT_BUDGET, EXIT_HLT } from '../constants';
/** Port I/O: exit.io describes it (in: fill exit.io.data before the next run()). */
export const EXIT_IO = 16;
/** MMIO read/write: exit.mmio (read: fill exit.mmio.data). */
export const EXIT_MMIO = 17;
/** Triple fault (or another shutdown condition): the machine resets or stops. */
export const EXIT_SHUTDOWN = 18;
/** The interrupt window the machine asked for (requestInterruptWindow) is open. */
export const EXIT_IRQ_WINDOW = 19;
/** A debug event the machine asked to see (single-step with debug.singleStep, INT3 with debug.int3). */
export const EXIT_DEBUG = 20;
/** A guest-physical access the EPT does not map and that is no MMIO hole: exit.ept. */
export const EXIT_EPT_VIOLATION = 21;
/** Something the vCPU cannot do (exit.error says what); the state is left as it was. */
export const EXIT_INTERNAL_ERROR = 22;
/** kick() was called. */
export const EXIT_INTR = 23;

/** Exit reason names, for messages and tests. */
export const EXIT_NAMES: Readonly<Record<number, string>> = {
  1: 'budget',
  4: 'hlt',
  16: 'io',
  17: 'mmio',
  18: 'shutdown',
  19: 'irq-window',
  20: 'debug',
  21: 'ept-violation',
  22: 'internal-error',
  23: 'intr',
};
