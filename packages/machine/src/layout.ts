/**
 * The PC that RingZero builds, as data: the guest-physical memory map, the I/O ports and the
 * interrupt numbers, in one file (the idea of Firecracker's `arch/x86_64/layout.rs`). Devices
 * take these as constructor parameters; the firmware tables (e820, ACPI) and the boot loaders
 * read them from here, so a change to the board is a change to this file only.
 *
 * Guest-physical memory map (addresses are plain numbers; all stay below 2^53):
 *
 *   0x0000_0000  real-mode IVT and BIOS data area (RAM, left zero)
 *   0x0000_0500  boot GDT (flat code/data, TSS placeholder), then the boot IDT (empty)
 *   0x0000_7000  boot_params ("zero page") for the Linux boot protocol
 *   0x0000_8ff0  initial stack pointer (grows down; 0x8000..0x8fff is stack)
 *   0x0000_9000  identity page tables for a 64-bit entry: PML4, PDPT, then 4 PDs (4 GiB in 2 MiB pages)
 *   0x0001_0000  multiboot information structure and its strings, mmap and module list (64 KiB)
 *   0x0002_0000  kernel command line (up to 64 KiB, less if the kernel says so)
 *   0x0009_fc00  EBDA (reserved, 1 KiB): end of low RAM
 *   0x000a_0000  VGA window (hole; nothing there yet)
 *   0x000c_0000  option ROM area (hole)
 *   0x000e_0000  ACPI tables: RSDP first (Linux scans 0xE0000-0xFFFFF for it), then the rest (reserved)
 *   0x0010_0000  high memory: the kernel (protected-mode part) is loaded here
 *   ...          RAM up to min(RAM size, 3 GiB); the initrd goes at its top
 *   0xc000_0000  PCI hole begins: 32-bit PCI MMIO window (512 MiB)
 *   0xe000_0000  PCIe ECAM (MMCONFIG), 256 buses x 1 MiB (reserved in e820 and in ACPI)
 *   0xfec0_0000  IOAPIC
 *   0xfed0_0000  HPET (optional)
 *   0xfee0_0000  local APIC (per vCPU)
 *   0x1_0000_0000  RAM above 4 GiB: the part of RAM that did not fit below the hole
 *   then, 1 GiB aligned after the end of RAM: the 64-bit PCI MMIO window (32 GiB)
 */

/** 1 KiB, 1 MiB, 1 GiB, 4 GiB as plain numbers. */
export const KiB = 0x400;
export const MiB = 0x10_0000;
export const GiB = 0x4000_0000;
export const FOUR_GiB = 0x1_0000_0000;
export const PAGE_SIZE = 0x1000;

// --- Low memory: what the boot loaders place -------------------------------------------------

/**
 * Boot GDT, as the Linux boot protocol wants it: null, null, flat code at selector 0x10
 * (__BOOT_CS; 64-bit or 32-bit by entry mode), flat data at 0x18 (__BOOT_DS), a TSS at 0x20.
 */
export const BOOT_GDT_START = 0x500;
/** Room for the boot GDT (8 descriptors). */
export const BOOT_GDT_MAX = 0x40;
/** Boot IDT (limit 0, the kernel installs its own). */
export const BOOT_IDT_START = 0x540;
/** The Linux boot_params structure (4 KiB). */
export const ZERO_PAGE_START = 0x7000;
/** Initial stack pointer handed to kernels (16-byte aligned, below the page tables). */
export const BOOT_STACK_POINTER = 0x8ff0;
/** Identity page tables for a 64-bit entry: PML4 here, PDPT at +4 KiB, PDs after it. */
export const PML4_START = 0x9000;
export const PDPT_START = 0xa000;
export const PD_START = 0xb000;
/** How many page directories (each maps 1 GiB with 2 MiB pages); 4 map the first 4 GiB. */
export const PD_COUNT = 4;
/** Multiboot information structure, its mmap, module list and strings. */
export const MULTIBOOT_INFO_START = 0x1_0000;
export const MULTIBOOT_INFO_MAX = 0x1_0000;
/** Kernel command line (NUL-terminated). */
export const CMDLINE_START = 0x2_0000;
export const CMDLINE_MAX_SIZE = 0x1_0000;
/** The extended BIOS data area, reserved: low RAM ends here. */
export const EBDA_START = 0x9_fc00;
export const EBDA_SIZE = 0x400;
/** End of conventional (low) RAM. */
export const LOW_RAM_END = 0xa_0000;
/** VGA window and option ROMs: not RAM. */
export const VGA_START = 0xa_0000;
export const VGA_SIZE = 0x2_0000;
export const OPTION_ROM_START = 0xc_0000;
export const OPTION_ROM_SIZE = 0x2_0000;
/** The BIOS area: here it holds the ACPI tables, RSDP first (on a 16-byte boundary). */
export const BIOS_AREA_START = 0xe_0000;
export const BIOS_AREA_SIZE = 0x2_0000;
export const ACPI_TABLES_START = 0xe_0000;
export const ACPI_TABLES_MAX = 0x2_0000;
/** Where high memory starts and where bzImage/multiboot kernels are loaded by default. */
export const HIMEM_START = 0x10_0000;
export const KERNEL_LOAD_ADDR = 0x10_0000;

// --- The hole below 4 GiB ---------------------------------------------------------------------

/** RAM below 4 GiB ends here at the latest; RAM beyond goes above 4 GiB. */
export const PCI_HOLE_START = 0xc000_0000;
/** 32-bit PCI memory window (BARs), handed to Linux in the PCI root's _CRS. */
export const PCI_MMIO32_START = 0xc000_0000;
export const PCI_MMIO32_SIZE = 0x2000_0000;
/** PCIe enhanced configuration access (ECAM/MMCONFIG): bus << 20 | dev << 15 | fn << 12 | reg. */
export const ECAM_START = 0xe000_0000;
export const ECAM_SIZE = 0x1000_0000;
export const ECAM_BUS_START = 0;
export const ECAM_BUS_END = 255;
/** Platform MMIO between the ECAM window and 4 GiB. */
export const IOAPIC_START = 0xfec0_0000;
export const IOAPIC_SIZE = 0x1000;
export const HPET_START = 0xfed0_0000;
export const HPET_SIZE = 0x400;
export const LAPIC_START = 0xfee0_0000;
export const LAPIC_SIZE = 0x1000;
/** RAM above 4 GiB starts here. */
export const HIGH_RAM_START = 0x1_0000_0000;
/** Size of the 64-bit PCI memory window placed after the end of RAM (see pciMmio64Window). */
export const PCI_MMIO64_SIZE = 0x8_0000_0000;

// --- I/O ports ---------------------------------------------------------------------------------

/** 8259A master and slave (2 ports each) and their edge/level control registers (ELCR1, ELCR2). */
export const PIC_MASTER_PORT = 0x20;
export const PIC_SLAVE_PORT = 0xa0;
export const ELCR_PORT = 0x4d0;
/** 8254 PIT: counters 0-2 at 0x40-0x42, mode/command at 0x43. */
export const PIT_PORT = 0x40;
export const PIT_PORT_COUNT = 4;
/** System control port B: PIT channel 2 gate (bit 0), speaker (bit 1), channel 2 output (bit 5). */
export const SYSTEM_CONTROL_B_PORT = 0x61;
/** i8042 keyboard controller: data and status/command. Command 0xFE pulses reset. */
export const I8042_DATA_PORT = 0x60;
export const I8042_COMMAND_PORT = 0x64;
export const I8042_RESET_VALUE = 0xfe;
/** RTC/CMOS: index (bit 7 = NMI mask) and data. */
export const RTC_PORT = 0x70;
export const RTC_PORT_COUNT = 2;
/** CMOS index of the century byte (BCD), as the FADT's CENTURY field tells Linux. */
export const RTC_CMOS_CENTURY_INDEX = 0x32;
/** POST code port; Linux also writes it for I/O delays. */
export const POST_PORT = 0x80;
/** System control port A (fast A20, bit 0 = reset). */
export const SYSTEM_CONTROL_A_PORT = 0x92;
/** QEMU's isa-debug-exit (iobase=0xf4, iosize=4): a write of v exits with status (v << 1) | 1. */
export const DEBUG_EXIT_PORT = 0xf4;
export const DEBUG_EXIT_PORT_COUNT = 4;
/** 16550A UARTs (8 ports each). */
export const COM1_PORT = 0x3f8;
export const COM2_PORT = 0x2f8;
export const COM3_PORT = 0x3e8;
export const COM4_PORT = 0x2e8;
export const UART_PORT_COUNT = 8;
/** PCI type-1 configuration: address at 0xCF8 (bit 31 enable), data at 0xCFC-0xCFF. */
export const PCI_CONFIG_ADDRESS_PORT = 0xcf8;
export const PCI_CONFIG_DATA_PORT = 0xcfc;
/** Reset control register (PIIX/ICH): writing 0x06 resets the machine; also the FADT reset register. */
export const RESET_CONTROL_PORT = 0xcf9;
export const RESET_CONTROL_VALUE = 0x06;
/**
 * ACPI PM I/O block (the layout of QEMU's ICH9 PM device):
 *   +0x00 PM1a_EVT_BLK, 4 bytes: PM1 status (2) then PM1 enable (2)
 *   +0x04 PM1a_CNT_BLK, 2 bytes: SCI_EN bit 0, SLP_TYP bits 12:10, SLP_EN bit 13
 *   +0x08 PM_TMR_BLK,   4 bytes: 24-bit free-running counter at 3.579545 MHz
 *   +0x20 GPE0_BLK,     8 bytes: GPE0 status (4) then GPE0 enable (4); only if the FADT lists it
 * There is no SMI command port: the machine starts in ACPI mode, so PM1_CNT.SCI_EN must read 1.
 */
export const ACPI_PM_BASE = 0x600;
export const ACPI_PM1A_EVT_PORT = 0x600;
export const ACPI_PM1_EVT_LEN = 4;
export const ACPI_PM1A_CNT_PORT = 0x604;
export const ACPI_PM1_CNT_LEN = 2;
export const ACPI_PM_TMR_PORT = 0x608;
export const ACPI_PM_TMR_LEN = 4;
export const ACPI_GPE0_PORT = 0x620;
export const ACPI_GPE0_LEN = 8;
/** PM timer frequency in Hz. */
export const ACPI_PM_TIMER_HZ = 3_579_545;
/** The SLP_TYP value our \_S5 package names (written to PM1_CNT bits 12:10 with SLP_EN for soft-off). */
export const ACPI_S5_SLP_TYP = 0;
/** PM1 status/enable: power button is bit 8 (PWRBTN_STS / PWRBTN_EN), timer overflow bit 0. */
export const ACPI_PM1_PWRBTN = 0x100;
/** PM1 control: SCI_EN (bit 0), SLP_TYP shift (10), SLP_EN (bit 13). */
export const ACPI_PM1_CNT_SCI_EN = 0x1;
export const ACPI_PM1_CNT_SLP_TYP_SHIFT = 10;
export const ACPI_PM1_CNT_SLP_EN = 0x2000;

// --- Interrupts --------------------------------------------------------------------------------

/** ISA IRQs (8259 inputs; IOAPIC pins equal them except IRQ0, which is overridden to GSI 2). */
export const IRQ_PIT = 0;
export const IRQ_KEYBOARD = 1;
export const IRQ_CASCADE = 2;
export const IRQ_COM2 = 3;
export const IRQ_COM4 = 3;
export const IRQ_COM1 = 4;
export const IRQ_COM3 = 4;
export const IRQ_RTC = 8;
/** ACPI system control interrupt: level-triggered, active high (an interrupt source override says so). */
export const IRQ_SCI = 9;
export const IRQ_MOUSE = 12;
/** HPET timers route to these in legacy-replacement mode (timer 0 -> IRQ0/GSI2, timer 1 -> IRQ8). */
export const IRQ_HPET_TIMER1 = 8;
/** IOAPIC: one, with 24 pins, GSIs 0-23, ID 0 (the BSP's APIC ID is 0, the IOAPIC's is one past the vCPUs). */
export const IOAPIC_PINS = 24;
export const IOAPIC_GSI_BASE = 0;
/** GSI of the PIT: the override IRQ0 -> GSI2, as every PC since the IOAPIC. */
export const GSI_PIT = 2;
export const GSI_SCI = 9;
/**
 * PCI INTx: the four lines of bus 0 go to IOAPIC pins 16-19, level-triggered, active low.
 * Device `slot`'s pin INTA..INTD (0..3) reaches GSI 16 + ((slot + pin) & 3), the usual swizzle,
 * and the DSDT's _PRT says the same thing (see pciIntxGsi).
 */
export const PCI_INTX_GSI_BASE = 16;
export const PCI_INTX_LINES = 4;
/** Legacy vector the local APIC's LINT1 takes as NMI (MADT local APIC NMI structure). */
export const LAPIC_NMI_LINT = 1;

/** The GSI a PCI function on bus 0 raises on `pin` (0 = INTA ... 3 = INTD). */
export function pciIntxGsi(slot: number, pin: number): number {
  return PCI_INTX_GSI_BASE + ((slot + pin) & 3);
}

/** The GSI an ISA IRQ arrives on through the IOAPIC (identity except the PIT's override). */
export function isaIrqToGsi(irq: number): number {
  return irq === IRQ_PIT ? GSI_PIT : irq;
}

// --- RAM placement and the e820 map -----------------------------------------------------------

/** One guest RAM region. */
export interface RamRegion {
  readonly start: number;
  readonly size: number;
}

/** The largest RAM size the layout accepts (1 TiB). */
export const MAX_RAM_SIZE = 0x100_0000_0000;
/** The smallest (enough for the low tables and a kernel at 1 MiB). */
export const MIN_RAM_SIZE = 0x20_0000;

/** Checks a machine's RAM size: an integer number of 4 KiB pages, 2 MiB to 1 TiB. Throws RangeError. */
export function checkRamSize(ramSize: number): void {
  if (!Number.isSafeInteger(ramSize) || ramSize < MIN_RAM_SIZE || ramSize > MAX_RAM_SIZE || ramSize % PAGE_SIZE !== 0) {
    throw new RangeError(
      `RAM size must be a whole number of 4 KiB pages from ${MIN_RAM_SIZE / MiB} MiB to ${MAX_RAM_SIZE / GiB} GiB, got ${String(ramSize)}`,
    );
  }
}

/**
 * Where `ramSize` bytes of RAM live: one region from 0 up to the PCI hole, and the rest above
 * 4 GiB. (The VGA/ROM/BIOS range 0xA0000-0xFFFFF is RAM in the backing store but the e820 map
 * hides it; the ACPI tables are written there.)
 */
export function ramRegions(ramSize: number): RamRegion[] {
  checkRamSize(ramSize);
  const low = Math.min(ramSize, PCI_HOLE_START);
  const regions: RamRegion[] = [{ start: 0, size: low }];
  if (ramSize > low) regions.push({ start: HIGH_RAM_START, size: ramSize - low });
  return regions;
}

/** The first byte after the top of RAM below the PCI hole. */
export function lowRamEnd(ramSize: number): number {
  return Math.min(ramSize, PCI_HOLE_START);
}

/** The end of all RAM (one past its highest address). */
export function ramEnd(ramSize: number): number {
  return ramSize > PCI_HOLE_START ? HIGH_RAM_START + (ramSize - PCI_HOLE_START) : ramSize;
}

/** The 64-bit PCI memory window: 1 GiB aligned after the end of RAM (and at least at 4 GiB). */
export function pciMmio64Window(ramSize: number): RamRegion {
  const end = Math.max(ramEnd(ramSize), FOUR_GiB);
  const start = Math.ceil(end / GiB) * GiB;
  return { start, size: PCI_MMIO64_SIZE };
}

/** e820 entry types. */
export const E820_RAM = 1;
export const E820_RESERVED = 2;
export const E820_ACPI = 3;
export const E820_NVS = 4;
export const E820_UNUSABLE = 5;

export interface E820Entry {
  readonly addr: number;
  readonly size: number;
  readonly type: number;
}

/** The maximum number of entries boot_params.e820_table holds. */
export const E820_MAX_ENTRIES_ZEROPAGE = 128;

/**
 * The e820 map of a machine with `ramSize` bytes of RAM, sorted and non-overlapping:
 * low RAM to the EBDA, the EBDA and BIOS area reserved, RAM from 1 MiB to the PCI hole, the ECAM
 * window reserved (Linux wants MMCONFIG reserved before it trusts it), RAM above 4 GiB.
 */
export function buildE820(ramSize: number): E820Entry[] {
  checkRamSize(ramSize);
  const low = lowRamEnd(ramSize);
  const map: E820Entry[] = [
    { addr: 0, size: EBDA_START, type: E820_RAM },
    { addr: EBDA_START, size: EBDA_SIZE, type: E820_RESERVED },
    { addr: BIOS_AREA_START, size: BIOS_AREA_SIZE, type: E820_RESERVED },
    { addr: HIMEM_START, size: low - HIMEM_START, type: E820_RAM },
    { addr: ECAM_START, size: ECAM_SIZE, type: E820_RESERVED },
  ];
  if (ramSize > low) map.push({ addr: HIGH_RAM_START, size: ramSize - low, type: E820_RAM });
  return map;
}
