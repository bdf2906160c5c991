import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  buildE820, checkRamSize, E820_RAM, E820_RESERVED, ECAM_START, ECAM_SIZE, GiB, HIGH_RAM_START, IOAPIC_START, LAPIC_START,
  MiB, PCI_HOLE_START, PCI_MMIO32_START, PCI_MMIO32_SIZE, pciIntxGsi, pciMmio64Window, ramEnd, ramRegions, isaIrqToGsi,
  HPET_START, ACPI_TABLES_START, ACPI_TABLES_MAX, CMDLINE_START, CMDLINE_MAX_SIZE, ZERO_PAGE_START, PML4_START, PD_START, PD_COUNT,
  EBDA_START, MULTIBOOT_INFO_START, MULTIBOOT_INFO_MAX, BOOT_STACK_POINTER, BOOT_GDT_START, BOOT_GDT_MAX, BOOT_IDT_START,
} from './layout';

describe('layout', () => {
  it('keeps the low boot structures apart and inside low RAM', () => {
    const areas: [string, number, number][] = [
      ['gdt', BOOT_GDT_START, BOOT_GDT_MAX],
      ['idt', BOOT_IDT_START, 8],
      ['zero page', ZERO_PAGE_START, 0x1000],
      ['stack', 0x8000, BOOT_STACK_POINTER + 0x10 - 0x8000],
      ['page tables', PML4_START, PD_START + PD_COUNT * 0x1000 - PML4_START],
      ['multiboot info', MULTIBOOT_INFO_START, MULTIBOOT_INFO_MAX],
      ['cmdline', CMDLINE_START, CMDLINE_MAX_SIZE],
    ];
    areas.sort((a, b) => a[1] - b[1]);
    for (let i = 0; i < areas.length; i++) {
      const [name, start, size] = areas[i];
      expect(start + size, name).toBeLessThanOrEqual(i + 1 < areas.length ? areas[i + 1][1] : EBDA_START);
    }
  });

  it('keeps the MMIO windows inside the hole, apart, and in order', () => {
    const w: [number, number][] = [
      [PCI_MMIO32_START, PCI_MMIO32_SIZE], [ECAM_START, ECAM_SIZE], [IOAPIC_START, 0x1000], [HPET_START, 0x400], [LAPIC_START, 0x1000],
    ];
    expect(w[0][0]).toBeGreaterThanOrEqual(PCI_HOLE_START);
    for (let i = 1; i < w.length; i++) expect(w[i - 1][0] + w[i - 1][1]).toBeLessThanOrEqual(w[i][0]);
    expect(ECAM_SIZE).toBe(256 * MiB);
    expect(ACPI_TABLES_START + ACPI_TABLES_MAX).toBe(0x10_0000);
  });

  it('splits RAM around the PCI hole', () => {
    expect(ramRegions(128 * MiB)).toEqual([{ start: 0, size: 128 * MiB }]);
    expect(ramRegions(4 * GiB)).toEqual([{ start: 0, size: 3 * GiB }, { start: HIGH_RAM_START, size: GiB }]);
    expect(ramEnd(4 * GiB)).toBe(5 * GiB);
    expect(pciMmio64Window(128 * MiB).start).toBe(4 * GiB);
    expect(pciMmio64Window(4 * GiB + 0x1000).start).toBe(6 * GiB);
  });

  it('builds the e820 map of a small machine', () => {
    expect(buildE820(256 * MiB)).toEqual([
      { addr: 0, size: 0x9fc00, type: E820_RAM },
      { addr: 0x9fc00, size: 0x400, type: E820_RESERVED },
      { addr: 0xe0000, size: 0x20000, type: E820_RESERVED },
      { addr: 0x100000, size: 255 * MiB, type: E820_RAM },
      { addr: ECAM_START, size: ECAM_SIZE, type: E820_RESERVED },
    ]);
  });

  it('builds the e820 map of a machine with RAM above 4 GiB', () => {
    const map = buildE820(6 * GiB);
    expect(map[3]).toEqual({ addr: 0x100000, size: 3 * GiB - MiB, type: E820_RAM });
    expect(map[map.length - 1]).toEqual({ addr: 4 * GiB, size: 3 * GiB, type: E820_RAM });
  });

  it('e820: sorted, disjoint, RAM adds up to the RAM size minus the hidden BIOS hole (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 512, max: 256 * 1024 * 1024 }), (pages) => {
        const ram = pages * 4096;
        const map = buildE820(ram);
        for (let i = 1; i < map.length; i++) expect(map[i - 1].addr + map[i - 1].size).toBeLessThanOrEqual(map[i].addr);
        const ramBytes = map.filter((e) => e.type === E820_RAM).reduce((a, e) => a + e.size, 0);
        expect(ramBytes).toBe(ram - (0x100000 - 0x9fc00));
        for (const e of map) if (e.type === E820_RAM) for (const r of ramRegions(ram)) {
          // every RAM entry lies inside one backing region
          if (e.addr >= r.start && e.addr < r.start + r.size) expect(e.addr + e.size).toBeLessThanOrEqual(r.start + r.size);
        }
      }),
      { numRuns: 200 },
    );
  });

  it('rejects impossible RAM sizes with a RangeError', () => {
    for (const bad of [0, 1 * MiB, 2 * MiB + 1, -4096, Number.NaN, 2 ** 60, 1.5]) expect(() => checkRamSize(bad)).toThrow(RangeError);
  });

  it('routes PCI INTx with the swizzle and ISA IRQ0 to GSI 2', () => {
    expect([0, 1, 2, 3].map((p) => pciIntxGsi(1, p))).toEqual([17, 18, 19, 16]);
    expect(isaIrqToGsi(0)).toBe(2);
    expect(isaIrqToGsi(4)).toBe(4);
  });
});
