/**
 * The ACPI tables of the RingZero PC, generated in code: RSDP (v2), RSDT, XSDT, FADT (+FACS),
 * MADT, DSDT (AML from ./aml), MCFG and optionally HPET. All addresses and numbers come from
 * ../layout. The tables form one blob placed at ACPI_TABLES_START (0xE0000), RSDP first, so
 * Linux finds the RSDP by its BIOS-area scan as well as through boot_params.acpi_rsdp_addr.
 */
import type { GuestMemory } from '@ringzero/mmu-ept';
import {
  ACPI_GPE0_LEN, ACPI_GPE0_PORT, ACPI_PM1A_CNT_PORT, ACPI_PM1A_EVT_PORT, ACPI_PM1_CNT_LEN, ACPI_PM1_EVT_LEN, ACPI_PM_BASE,
  ACPI_PM_TMR_LEN, ACPI_PM_TMR_PORT, ACPI_S5_SLP_TYP, ACPI_TABLES_MAX, ACPI_TABLES_START, COM1_PORT, COM2_PORT, COM3_PORT,
  COM4_PORT, ECAM_BUS_END, ECAM_BUS_START, ECAM_SIZE, ECAM_START, GSI_PIT, HPET_SIZE, HPET_START, I8042_COMMAND_PORT,
  I8042_DATA_PORT, IOAPIC_GSI_BASE, IOAPIC_START, IRQ_COM1, IRQ_COM2, IRQ_COM3, IRQ_COM4, IRQ_KEYBOARD, IRQ_PIT, IRQ_RTC,
  IRQ_SCI, LAPIC_NMI_LINT, LAPIC_START, PCI_CONFIG_ADDRESS_PORT, PCI_MMIO32_SIZE, PCI_MMIO32_START, RESET_CONTROL_PORT,
  RESET_CONTROL_VALUE, RTC_CMOS_CENTURY_INDEX, RTC_PORT, RTC_PORT_COUNT, UART_PORT_COUNT, checkRamSize, pciIntxGsi, pciMmio64Window,
} from '../layout';
import {
  ADDRESS_BUS, ADDRESS_IO, ADDRESS_MEMORY, IO_ENTIRE_RANGE, MEM_CACHEABLE, MEM_NONCACHEABLE, MEM_RW, concat, device,
  eisaId, integer, method, name, pkg, resDWordAddress, resIo, resIrqNoFlags, resMemory32Fixed, resQWordAddress,
  resWordAddress, resourceTemplate, ret, arg, scope, string, type Aml,
} from './aml';

/** What the tables describe. Everything but the RAM size has a default. */
export interface AcpiOptions {
  /** The machine's RAM size (decides where the 64-bit PCI window goes). */
  readonly ramSize: number;
  /** vCPUs (APIC IDs 0..cpus-1); the IOAPIC takes APIC ID `cpus`. Default 1, at most 254. */
  readonly cpus?: number;
  /** Give the PCI root a 64-bit memory window after the end of RAM. Default true. */
  readonly pci64?: boolean;
  /** An HPET table and device. Default false. */
  readonly hpet?: boolean;
  /** Which COM ports exist (1-4), each described as a PNP0501 device. Default [1]. */
  readonly serialPorts?: readonly number[];
  /** An i8042 (PNP0303 keyboard) device and the FADT 8042 flag. Default true. */
  readonly i8042?: boolean;
  /** An RTC (PNP0B00) device. Default true. */
  readonly rtc?: boolean;
  /** List the GPE0 block in the FADT (the PM device must then implement it). Default false. */
  readonly gpe0?: boolean;
  /** CMOS index of the century byte, 0 for none. Default RTC_CMOS_CENTURY_INDEX (0x32, as the PC BIOS and QEMU). */
  readonly rtcCenturyIndex?: number;
  /** Guest-physical address of the blob. Default ACPI_TABLES_START. */
  readonly base?: number;
}

export interface AcpiTableInfo {
  readonly signature: string;
  readonly address: number;
  readonly length: number;
}

export interface AcpiTables {
  /** Guest-physical address of bytes[0] (the RSDP). */
  readonly base: number;
  readonly rsdpAddress: number;
  readonly bytes: Uint8Array;
  /** Each table's signature, address and length, in blob order (RSDP first). */
  readonly tables: readonly AcpiTableInfo[];
}

export const ACPI_OEM_ID = 'RINGZR';
export const ACPI_OEM_TABLE_ID = 'RINGZERO';
export const ACPI_CREATOR_ID = 'RZAM';
export const ACPI_CREATOR_REVISION = 1;

/** Sum of bytes mod 256 (a table is valid when the sum over it is 0). */
export function acpiChecksum(bytes: Uint8Array, start = 0, end: number = bytes.length): number {
  let s = 0;
  for (let i = start; i < end; i++) s = (s + bytes[i]) & 0xff;
  return s;
}

function ascii(dst: Uint8Array, at: number, text: string, width: number): void {
  for (let i = 0; i < width; i++) dst[at + i] = i < text.length ? text.charCodeAt(i) : 0x20;
}

/** A table with the standard 36-byte header; `body` is everything after the header. */
export function sdt(signature: string, revision: number, body: Uint8Array): Uint8Array {
  const t = new Uint8Array(36 + body.length);
  const v = new DataView(t.buffer);
  ascii(t, 0, signature, 4);
  v.setUint32(4, t.length, true);
  t[8] = revision;
  ascii(t, 10, ACPI_OEM_ID, 6);
  ascii(t, 16, ACPI_OEM_TABLE_ID, 8);
  v.setUint32(24, 1, true);
  ascii(t, 28, ACPI_CREATOR_ID, 4);
  v.setUint32(32, ACPI_CREATOR_REVISION, true);
  t.set(body, 36);
  t[9] = (0x100 - acpiChecksum(t)) & 0xff;
  return t;
}

/** Generic Address Structure address spaces. */
const GAS_MEMORY = 0;
const GAS_IO = 1;
/** GAS access sizes. */
const ACCESS_UNDEFINED = 0;
const ACCESS_BYTE = 1;
const ACCESS_DWORD = 3;

function gas(v: DataView, at: number, space: number, bitWidth: number, accessSize: number, address: number): void {
  v.setUint8(at, space);
  v.setUint8(at + 1, bitWidth);
  v.setUint8(at + 2, 0);
  v.setUint8(at + 3, accessSize);
  v.setUint32(at + 4, address >>> 0, true);
  v.setUint32(at + 8, Math.floor(address / 2 ** 32), true);
}

/** FACS: 64 bytes, no header checksum; required when the platform is not hardware-reduced. */
export function buildFacs(): Uint8Array {
  const t = new Uint8Array(64);
  const v = new DataView(t.buffer);
  ascii(t, 0, 'FACS', 4);
  v.setUint32(4, 64, true);
  t[32] = 2; // version
  return t;
}

/** FADT flags (ACPI 6.3 Table 5-35). */
export const FADT_WBINVD: number = 1 << 0;
export const FADT_PROC_C1: number = 1 << 2;
export const FADT_PWR_BUTTON: number = 1 << 4; // set = control-method power button; clear = fixed feature
export const FADT_SLP_BUTTON: number = 1 << 5; // set = no fixed-feature sleep button
export const FADT_FIX_RTC: number = 1 << 6;
export const FADT_RESET_REG_SUP: number = 1 << 10;
export const FADT_HW_REDUCED_ACPI: number = 1 << 20;
/** IA-PC boot architecture flags. */
export const BOOT_ARCH_LEGACY_DEVICES: number = 1 << 0;
export const BOOT_ARCH_8042: number = 1 << 1;
export const BOOT_ARCH_VGA_NOT_PRESENT: number = 1 << 2;

export const FADT_LENGTH = 276;

/** FADT revision 6.3 (276 bytes): PM1a event/control and PM timer blocks, SCI, reset via 0xCF9. */
export function buildFadt(dsdt: number, facs: number, opts: { i8042: boolean; gpe0: boolean; rtcCenturyIndex: number }): Uint8Array {
  const body = new Uint8Array(FADT_LENGTH - 36);
  const v = new DataView(body.buffer);
  const o = (abs: number): number => abs - 36; // offsets below are the spec's, from the table start
  v.setUint32(o(36), facs, true);
  v.setUint32(o(40), dsdt, true);
  v.setUint8(o(45), 0); // preferred PM profile: unspecified
  v.setUint16(o(46), IRQ_SCI, true);
  v.setUint32(o(48), 0, true); // SMI_CMD: none, the machine is always in ACPI mode
  v.setUint32(o(56), ACPI_PM1A_EVT_PORT, true);
  v.setUint32(o(64), ACPI_PM1A_CNT_PORT, true);
  v.setUint32(o(76), ACPI_PM_TMR_PORT, true);
  if (opts.gpe0) v.setUint32(o(80), ACPI_GPE0_PORT, true);
  v.setUint8(o(88), ACPI_PM1_EVT_LEN);
  v.setUint8(o(89), ACPI_PM1_CNT_LEN);
  v.setUint8(o(91), ACPI_PM_TMR_LEN);
  v.setUint8(o(92), opts.gpe0 ? ACPI_GPE0_LEN : 0);
  v.setUint16(o(96), 0x0fff, true); // P_LVL2_LAT > 100: no C2
  v.setUint16(o(98), 0x0fff, true); // P_LVL3_LAT > 1000: no C3
  v.setUint8(o(108), opts.rtcCenturyIndex);
  v.setUint16(o(109), BOOT_ARCH_LEGACY_DEVICES | (opts.i8042 ? BOOT_ARCH_8042 : 0) | BOOT_ARCH_VGA_NOT_PRESENT, true);
  v.setUint32(o(112), FADT_WBINVD | FADT_PROC_C1 | FADT_SLP_BUTTON | FADT_FIX_RTC | FADT_RESET_REG_SUP, true);
  gas(v, o(116), GAS_IO, 8, ACCESS_BYTE, RESET_CONTROL_PORT);
  v.setUint8(o(128), RESET_CONTROL_VALUE);
  v.setUint8(o(131), 3); // FADT minor version: ACPI 6.3
  v.setUint32(o(132), facs, true); // X_FIRMWARE_CTRL (low half)
  v.setUint32(o(140), dsdt, true); // X_DSDT (low half)
  gas(v, o(148), GAS_IO, ACPI_PM1_EVT_LEN * 8, ACCESS_UNDEFINED, ACPI_PM1A_EVT_PORT);
  gas(v, o(172), GAS_IO, ACPI_PM1_CNT_LEN * 8, ACCESS_UNDEFINED, ACPI_PM1A_CNT_PORT);
  gas(v, o(208), GAS_IO, ACPI_PM_TMR_LEN * 8, ACCESS_DWORD, ACPI_PM_TMR_PORT);
  if (opts.gpe0) gas(v, o(220), GAS_IO, ACPI_GPE0_LEN * 8, ACCESS_UNDEFINED, ACPI_GPE0_PORT);
  ascii(body, o(268), 'RINGZERO', 8); // hypervisor vendor identity
  return sdt('FACP', 6, body);
}

/** MADT interrupt-source-override flags: polarity bits 1:0, trigger bits 3:2. */
export const MPS_ACTIVE_HIGH = 0x1;
export const MPS_ACTIVE_LOW = 0x3;
export const MPS_EDGE = 0x4;
export const MPS_LEVEL = 0xc;
/** MADT flags: PCAT_COMPAT (a dual 8259 is present). */
export const MADT_PCAT_COMPAT = 1;

/** MADT: local APICs, the IOAPIC, overrides IRQ0 -> GSI2 and SCI level/high, LINT1 NMI. */
export function buildMadt(cpus: number): Uint8Array {
  const parts: number[] = [];
  const u16 = (x: number): void => void parts.push(x & 0xff, (x >>> 8) & 0xff);
  const u32 = (x: number): void => void parts.push(x & 0xff, (x >>> 8) & 0xff, (x >>> 16) & 0xff, x >>> 24);
  u32(LAPIC_START);
  u32(MADT_PCAT_COMPAT);
  for (let i = 0; i < cpus; i++) {
    parts.push(0, 8, i, i); // processor local APIC: UID, APIC ID
    u32(1); // enabled
  }
  parts.push(1, 12, cpus, 0); // IOAPIC: ID, reserved
  u32(IOAPIC_START);
  u32(IOAPIC_GSI_BASE);
  parts.push(2, 10, 0, IRQ_PIT); // interrupt source override: ISA bus, IRQ0
  u32(GSI_PIT);
  u16(0); // conforms to the bus (edge, high)
  parts.push(2, 10, 0, IRQ_SCI);
  u32(IRQ_SCI);
  u16(MPS_ACTIVE_HIGH | MPS_LEVEL);
  parts.push(4, 6, 0xff); // local APIC NMI, all processors
  u16(0); // conforms (edge, high)
  parts.push(LAPIC_NMI_LINT);
  return sdt('APIC', 5, Uint8Array.from(parts));
}

/** MCFG: one ECAM allocation for segment 0, buses 0-255. */
export function buildMcfg(): Uint8Array {
  const body = new Uint8Array(8 + 16);
  const v = new DataView(body.buffer);
  v.setUint32(8, ECAM_START, true);
  v.setUint16(16, 0, true);
  v.setUint8(18, ECAM_BUS_START);
  v.setUint8(19, ECAM_BUS_END);
  return sdt('MCFG', 1, body);
}

/** The HPET event timer block ID QEMU's HPET reports: vendor 8086, legacy-capable, 64-bit, 3 timers, rev 1. */
export const HPET_EVENT_TIMER_BLOCK_ID = 0x8086_a201;

/** HPET: the event timer block at HPET_START. */
export function buildHpet(eventTimerBlockId: number = HPET_EVENT_TIMER_BLOCK_ID): Uint8Array {
  const body = new Uint8Array(20);
  const v = new DataView(body.buffer);
  v.setUint32(0, eventTimerBlockId >>> 0, true);
  gas(v, 4, GAS_MEMORY, 0, 0, HPET_START);
  v.setUint8(16, 0); // HPET number
  v.setUint16(17, 0x80, true); // minimum clock tick in periodic mode
  v.setUint8(19, 0); // no page protection
  return sdt('HPET', 1, body);
}

/** XSDT (64-bit pointers) or RSDT (32-bit pointers). */
export function buildXsdt(pointers: readonly number[]): Uint8Array {
  const body = new Uint8Array(pointers.length * 8);
  const v = new DataView(body.buffer);
  pointers.forEach((p, i) => {
    v.setUint32(i * 8, p >>> 0, true);
    v.setUint32(i * 8 + 4, Math.floor(p / 2 ** 32), true);
  });
  return sdt('XSDT', 1, body);
}

export function buildRsdt(pointers: readonly number[]): Uint8Array {
  const body = new Uint8Array(pointers.length * 4);
  const v = new DataView(body.buffer);
  pointers.forEach((p, i) => v.setUint32(i * 4, p, true));
  return sdt('RSDT', 1, body);
}

/** RSDP revision 2 (36 bytes) with both checksums. */
export function buildRsdp(rsdt: number, xsdt: number): Uint8Array {
  const t = new Uint8Array(36);
  const v = new DataView(t.buffer);
  ascii(t, 0, 'RSD PTR ', 8);
  ascii(t, 9, ACPI_OEM_ID, 6);
  t[15] = 2;
  v.setUint32(16, rsdt, true);
  v.setUint32(20, 36, true);
  v.setUint32(24, xsdt >>> 0, true);
  v.setUint32(28, Math.floor(xsdt / 2 ** 32), true);
  t[8] = (0x100 - acpiChecksum(t, 0, 20)) & 0xff;
  t[32] = (0x100 - acpiChecksum(t, 0, 36)) & 0xff;
  return t;
}

const COM_PORTS: readonly (readonly [number, number])[] = [
  [COM1_PORT, IRQ_COM1], [COM2_PORT, IRQ_COM2], [COM3_PORT, IRQ_COM3], [COM4_PORT, IRQ_COM4],
];

/** The DSDT's AML: \_S5, the PCI root (PNP0A08) with _CRS, _PRT and _OSC, CPUs, motherboard resources, ISA devices. */
export function buildDsdtAml(o: Required<Omit<AcpiOptions, 'base' | 'gpe0' | 'rtcCenturyIndex'>>): Aml {
  const prt: Aml[] = [];
  for (let slot = 0; slot < 32; slot++) {
    for (let pin = 0; pin < 4; pin++) {
      prt.push(pkg([integer(((slot << 16) | 0xffff) >>> 0), integer(pin), integer(0), integer(pciIntxGsi(slot, pin))]));
    }
  }
  const crs: Aml[] = [
    resWordAddress(ADDRESS_BUS, 0, ECAM_BUS_START, ECAM_BUS_END),
    resIo(PCI_CONFIG_ADDRESS_PORT, PCI_CONFIG_ADDRESS_PORT, 1, 8),
    resWordAddress(ADDRESS_IO, IO_ENTIRE_RANGE, 0x0000, PCI_CONFIG_ADDRESS_PORT - 1),
    resWordAddress(ADDRESS_IO, IO_ENTIRE_RANGE, PCI_CONFIG_ADDRESS_PORT + 8, 0xffff),
    resDWordAddress(ADDRESS_MEMORY, MEM_RW | MEM_CACHEABLE, 0xa_0000, 0xb_ffff),
    resDWordAddress(ADDRESS_MEMORY, MEM_RW | MEM_NONCACHEABLE, PCI_MMIO32_START, PCI_MMIO32_START + PCI_MMIO32_SIZE - 1),
  ];
  if (o.pci64) {
    const w = pciMmio64Window(o.ramSize);
    crs.push(resQWordAddress(ADDRESS_MEMORY, MEM_RW | MEM_NONCACHEABLE, w.start, w.start + w.size - 1));
  }
  const pci0 = device('PCI0', [
    name('_HID', eisaId('PNP0A08')),
    name('_CID', eisaId('PNP0A03')),
    name('_SEG', integer(0)),
    name('_UID', integer(0)),
    name('_BBN', integer(0)),
    name('_CRS', resourceTemplate(crs)),
    name('_PRT', pkg(prt)),
    // _OSC: grant the OS every control it asks for (the buffer comes back with no error bits).
    method('_OSC', 4, [ret(arg(3))]),
  ]);
  const sb: Aml[] = [pci0];
  for (let i = 0; i < o.cpus; i++) {
    sb.push(device(`C${i.toString(16).toUpperCase().padStart(3, '0')}`, [name('_HID', string('ACPI0007')), name('_UID', integer(i))]));
  }
  // Motherboard resources: Linux trusts MMCONFIG only if it is reserved here (or in e820).
  const mres: Aml[] = [
    resMemory32Fixed(ECAM_START, ECAM_SIZE),
    resIo(ACPI_PM_BASE, ACPI_PM_BASE, 1, 0x40),
    resIo(RESET_CONTROL_PORT, RESET_CONTROL_PORT, 1, 1),
  ];
  sb.push(device('MRES', [name('_HID', eisaId('PNP0C02')), name('_UID', integer(0)), name('_CRS', resourceTemplate(mres))]));
  const isa: Aml[] = [];
  if (o.i8042) {
    isa.push(device('KBD', [
      name('_HID', eisaId('PNP0303')),
      name('_CRS', resourceTemplate([resIo(I8042_DATA_PORT, I8042_DATA_PORT, 1, 1), resIo(I8042_COMMAND_PORT, I8042_COMMAND_PORT, 1, 1), resIrqNoFlags([IRQ_KEYBOARD])])),
    ]));
  }
  if (o.rtc) {
    isa.push(device('RTC', [
      name('_HID', eisaId('PNP0B00')),
      name('_CRS', resourceTemplate([resIo(RTC_PORT, RTC_PORT, 1, RTC_PORT_COUNT), resIrqNoFlags([IRQ_RTC])])),
    ]));
  }
  for (const n of o.serialPorts) {
    const [port, irq] = COM_PORTS[n - 1];
    isa.push(device(`COM${n}`, [
      name('_HID', eisaId('PNP0501')),
      name('_UID', integer(n)),
      name('_CRS', resourceTemplate([resIo(port, port, 1, UART_PORT_COUNT), resIrqNoFlags([irq])])),
    ]));
  }
  if (o.hpet) {
    isa.push(device('HPET', [
      name('_HID', eisaId('PNP0103')),
      name('_UID', integer(0)),
      name('_CRS', resourceTemplate([resMemory32Fixed(HPET_START, HPET_SIZE, false)])),
    ]));
  }
  sb.push(...isa);
  return concat([
    name('\\_S5', pkg([integer(ACPI_S5_SLP_TYP), integer(ACPI_S5_SLP_TYP), integer(0), integer(0)])),
    scope('\\_SB', sb),
  ]);
}

/** An error in the machine description given to the table builder. */
export class AcpiConfigError extends Error {
  override readonly name = 'AcpiConfigError';
}

/** Builds every table into one blob at options.base (default 0xE0000). */
export function buildAcpiTables(options: AcpiOptions): AcpiTables {
  checkRamSize(options.ramSize);
  const cpus = options.cpus ?? 1;
  if (!Number.isInteger(cpus) || cpus < 1 || cpus > 254) throw new AcpiConfigError(`cpus must be 1-254, got ${String(cpus)}`);
  const serialPorts = options.serialPorts ?? [1];
  for (const n of serialPorts) {
    if (![1, 2, 3, 4].includes(n)) throw new AcpiConfigError(`serial ports are COM1-COM4 (1-4), got ${String(n)}`);
  }
  if (new Set(serialPorts).size !== serialPorts.length) throw new AcpiConfigError('a serial port is listed twice');
  const century = options.rtcCenturyIndex ?? RTC_CMOS_CENTURY_INDEX;
  if (!Number.isInteger(century) || century < 0 || century > 0x7f) throw new AcpiConfigError(`rtcCenturyIndex must be a CMOS index 0-127`);
  const base = options.base ?? ACPI_TABLES_START;
  if (!Number.isInteger(base) || base < 0 || base % 16 !== 0 || base + 0x1000 > 0x1_0000_0000) {
    throw new AcpiConfigError(`ACPI base must be 16-byte aligned below 4 GiB, got ${String(base)}`);
  }
  const hpet = options.hpet ?? false;
  const i8042 = options.i8042 ?? true;
  const dsdt = sdt('DSDT', 2, buildDsdtAml({ ramSize: options.ramSize, cpus, pci64: options.pci64 ?? true, hpet, serialPorts, i8042, rtc: options.rtc ?? true }));

  // Lay out: RSDP, FACS (64-aligned), DSDT, FADT, MADT, MCFG, [HPET], XSDT, RSDT; each 16-aligned.
  const align = (x: number, a: number): number => Math.ceil(x / a) * a;
  const facs = buildFacs();
  const madt = buildMadt(cpus);
  const mcfg = buildMcfg();
  const hpetT = hpet ? buildHpet() : null;
  let at = base + 36;
  const place = (len: number, a = 16): number => {
    const p = align(at, a);
    at = p + len;
    return p;
  };
  const facsAt = place(facs.length, 64);
  const dsdtAt = place(dsdt.length);
  const fadt = buildFadt(dsdtAt, facsAt, { i8042, gpe0: options.gpe0 ?? false, rtcCenturyIndex: century });
  const fadtAt = place(fadt.length);
  const madtAt = place(madt.length);
  const mcfgAt = place(mcfg.length);
  const hpetAt = hpetT ? place(hpetT.length) : 0;
  const pointers = [fadtAt, madtAt, mcfgAt, ...(hpetT ? [hpetAt] : [])];
  const xsdt = buildXsdt(pointers);
  const xsdtAt = place(xsdt.length);
  const rsdt = buildRsdt(pointers);
  const rsdtAt = place(rsdt.length);
  const rsdp = buildRsdp(rsdtAt, xsdtAt);
  const size = at - base;
  if (size > ACPI_TABLES_MAX) throw new AcpiConfigError(`ACPI tables need ${size} bytes, more than the ${ACPI_TABLES_MAX} reserved for them`);

  const bytes = new Uint8Array(size);
  const tables: AcpiTableInfo[] = [];
  const put = (signature: string, t: Uint8Array, addr: number): void => {
    bytes.set(t, addr - base);
    tables.push({ signature, address: addr, length: t.length });
  };
  put('RSD PTR ', rsdp, base);
  put('FACS', facs, facsAt);
  put('DSDT', dsdt, dsdtAt);
  put('FACP', fadt, fadtAt);
  put('APIC', madt, madtAt);
  put('MCFG', mcfg, mcfgAt);
  if (hpetT) put('HPET', hpetT, hpetAt);
  put('XSDT', xsdt, xsdtAt);
  put('RSDT', rsdt, rsdtAt);
  return { base, rsdpAddress: base, bytes, tables };
}

/** Copies the tables into guest memory; throws if their range is not RAM. */
export function writeAcpiTables(memory: GuestMemory, tables: AcpiTables): void {
  if (!memory.writeFrom(tables.base, tables.bytes)) {
    throw new AcpiConfigError(`guest memory has no RAM at 0x${tables.base.toString(16)}-0x${(tables.base + tables.bytes.length).toString(16)} for the ACPI tables`);
  }
}
