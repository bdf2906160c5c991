/**
 * A BIOS-less boot in one call: the ACPI tables at 0xE0000, then the kernel with its command
 * line and initrd, boot_params pointing at the RSDP. What QEMU's board does before the first
 * instruction when given -kernel.
 */
import type { GuestMemory } from '@ringzero/mmu-ept';
import { buildAcpiTables, writeAcpiTables, type AcpiOptions, type AcpiTables } from '../acpi/tables';
import { buildE820, type E820Entry } from '../layout';
import { loadKernel, type BootOptions, type LoadedKernel } from './loader';

export interface DirectBootOptions extends Omit<BootOptions, 'acpiRsdp'> {
  /** ACPI table options (ramSize comes from the boot options), or false for no ACPI tables. */
  readonly acpi?: Omit<AcpiOptions, 'ramSize'> | false;
}

export interface DirectBoot {
  readonly kernel: LoadedKernel;
  readonly acpi: AcpiTables | null;
  readonly e820: readonly E820Entry[];
}

/** Writes the firmware tables and loads the kernel; throws KernelLoadError, AcpiConfigError or RangeError. */
export function prepareDirectBoot(mem: GuestMemory, image: Uint8Array, options: DirectBootOptions): DirectBoot {
  const e820 = options.e820 ?? buildE820(options.ramSize);
  let acpi: AcpiTables | null = null;
  if (options.acpi !== false) {
    acpi = buildAcpiTables({ ...options.acpi, ramSize: options.ramSize });
    writeAcpiTables(mem, acpi);
  }
  const kernel = loadKernel(mem, image, { ...options, e820, acpiRsdp: acpi ? acpi.rsdpAddress : 0 });
  return { kernel, acpi, e820 };
}
