// Boot loaders of the RingZero PC: bzImage (Linux boot protocol), ELF vmlinux, multiboot v1.
export { KernelLoadError } from './errors';
export {
  detectKernelFormat, loadKernel, placeInitrd, type BootOptions, type KernelFormat, type LoadedKernel,
} from './loader';
export { buildZeroPage, isBzImage, parseSetupHeader, type SetupHeader, type ZeroPageFields } from './bzimage';
export { isElf, parseElf, type ElfImage, type ElfSegment } from './elf';
export {
  MULTIBOOT_BOOTLOADER_MAGIC, MULTIBOOT_HEADER_MAGIC, findMultibootHeader, type MultibootHeader, type MultibootModule,
} from './multiboot';
export {
  BOOT_CS, BOOT_DS, BOOT_TSS, bootCpuState, writeBootGdt, writeIdentityPageTables, type BootCpuState, type BootDescriptorTable,
  type BootMode, type BootRegisters, type BootSegment, type BootSpecialRegisters,
} from './cpu-state';
export { bzImagePayload, detectCompressor, type BzImagePayload, type KernelCompressor } from './payload';
export { prepareDirectBoot, type DirectBoot, type DirectBootOptions } from './direct';
