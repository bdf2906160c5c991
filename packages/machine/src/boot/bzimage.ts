/**
 * The Linux/x86 boot protocol (Documentation/arch/x86/boot.rst): the bzImage setup header and
 * the boot_params "zero page".
 *
 * bzImage file: [boot sector + real-mode setup: (setup_sects || 4) + 1 sectors of 512 bytes]
 *               [protected-mode kernel: loaded at the load address (code32_start, 1 MiB)]
 * The setup header sits at 0x1F1 in the file and in boot_params; it ends at 0x202 + byte[0x201].
 */
import { ByteReader, KernelLoadError } from './errors';
import type { E820Entry } from '../layout';

// Setup header offsets (from the start of the file / of boot_params).
export const HDR_SETUP_SECTS = 0x1f1;
export const HDR_SYSSIZE = 0x1f4;
export const HDR_VID_MODE = 0x1fa;
export const HDR_BOOT_FLAG = 0x1fe;
export const HDR_JUMP = 0x200;
export const HDR_HEADER = 0x202;
export const HDR_VERSION = 0x206;
export const HDR_KERNEL_VERSION = 0x20e;
export const HDR_TYPE_OF_LOADER = 0x210;
export const HDR_LOADFLAGS = 0x211;
export const HDR_CODE32_START = 0x214;
export const HDR_RAMDISK_IMAGE = 0x218;
export const HDR_RAMDISK_SIZE = 0x21c;
export const HDR_HEAP_END_PTR = 0x224;
export const HDR_EXT_LOADER_VER = 0x226;
export const HDR_CMD_LINE_PTR = 0x228;
export const HDR_INITRD_ADDR_MAX = 0x22c;
export const HDR_KERNEL_ALIGNMENT = 0x230;
export const HDR_RELOCATABLE_KERNEL = 0x234;
export const HDR_MIN_ALIGNMENT = 0x235;
export const HDR_XLOADFLAGS = 0x236;
export const HDR_CMDLINE_SIZE = 0x238;
export const HDR_HARDWARE_SUBARCH = 0x23c;
export const HDR_PAYLOAD_OFFSET = 0x248;
export const HDR_PAYLOAD_LENGTH = 0x24c;
export const HDR_SETUP_DATA = 0x250;
export const HDR_PREF_ADDRESS = 0x258;
export const HDR_INIT_SIZE = 0x260;
export const HDR_HANDOVER_OFFSET = 0x264;
export const HDR_KERNEL_INFO_OFFSET = 0x268;
/** boot_params fields outside the setup header. */
export const BP_ACPI_RSDP_ADDR = 0x070;
export const BP_EXT_RAMDISK_IMAGE = 0x0c0;
export const BP_EXT_RAMDISK_SIZE = 0x0c4;
export const BP_EXT_CMD_LINE_PTR = 0x0c8;
export const BP_E820_ENTRIES = 0x1e8;
export const BP_SENTINEL = 0x1ef;
export const BP_E820_TABLE = 0x2d0;
export const BP_E820_MAX = 128;
export const BOOT_PARAMS_SIZE = 0x1000;

export const BOOT_FLAG_MAGIC = 0xaa55;
/** "HdrS" read as a little-endian u32. */
export const HDRS_MAGIC = 0x5372_6448;
/** loadflags */
export const LOADED_HIGH = 0x01;
export const KASLR_FLAG = 0x02;
export const QUIET_FLAG = 0x20;
export const KEEP_SEGMENTS = 0x40;
export const CAN_USE_HEAP = 0x80;
/** xloadflags */
export const XLF_KERNEL_64 = 0x01;
export const XLF_CAN_BE_LOADED_ABOVE_4G = 0x02;
export const XLF_EFI_HANDOVER_32 = 0x04;
export const XLF_EFI_HANDOVER_64 = 0x08;
export const XLF_EFI_KEXEC = 0x10;
/** type_of_loader: "undefined" boot loader (ours has no assigned ID). */
export const LOADER_TYPE_UNDEFINED = 0xff;
/** vid_mode: "normal" (80x25). */
export const VID_MODE_NORMAL = 0xffff;

/** The parsed setup header (only fields of the kernel's protocol version are meaningful). */
export interface SetupHeader {
  /** Protocol version as major << 8 | minor (0x020f = 2.15). */
  readonly version: number;
  readonly setupSects: number;
  /** Bytes of boot sector + real-mode setup: the protected-mode kernel starts here in the file. */
  readonly setupSize: number;
  readonly syssize: number;
  readonly loadflags: number;
  readonly code32Start: number;
  readonly initrdAddrMax: number;
  readonly kernelAlignment: number;
  readonly relocatable: boolean;
  readonly minAlignment: number;
  readonly xloadflags: number;
  readonly cmdlineSize: number;
  readonly payloadOffset: number;
  readonly payloadLength: number;
  readonly prefAddress: number;
  readonly initSize: number;
  readonly handoverOffset: number;
  /** The kernel version string the header points at ("6.1.0-13-amd64 (debian-kernel@...) #1 SMP ..."), or "". */
  readonly kernelVersion: string;
  /** End of the setup header (exclusive), 0x202 + byte[0x201], bounded by the boot_params layout. */
  readonly headerEnd: number;
}

/** True when the image carries a Linux setup header ("HdrS" at 0x202). */
export function isBzImage(image: Uint8Array): boolean {
  return image.length >= 0x206 && new ByteReader(image, 'kernel').u32(HDR_HEADER) === HDRS_MAGIC;
}

/** Parses and checks a bzImage's setup header; throws KernelLoadError with the reason. */
export function parseSetupHeader(image: Uint8Array): SetupHeader {
  const r = new ByteReader(image, 'bzImage');
  r.need(0, 0x264, 'the setup header');
  if (r.u32(HDR_HEADER) !== HDRS_MAGIC) throw new KernelLoadError('not a Linux bzImage: no "HdrS" magic at 0x202');
  if (r.u16(HDR_BOOT_FLAG) !== BOOT_FLAG_MAGIC) throw new KernelLoadError('bzImage boot flag at 0x1FE is not 0xAA55');
  const version = r.u16(HDR_VERSION);
  if (version < 0x0202) {
    throw new KernelLoadError(`Linux boot protocol ${version >>> 8}.${version & 0xff} is too old (2.02 or later is needed for a direct boot)`);
  }
  const loadflags = r.u8(HDR_LOADFLAGS);
  if (!(loadflags & LOADED_HIGH)) throw new KernelLoadError('a zImage (loaded low) is not supported: only bzImage kernels (LOADED_HIGH)');
  const setupSects = r.u8(HDR_SETUP_SECTS) || 4;
  const setupSize = (setupSects + 1) * 512;
  if (setupSize >= image.length) throw new KernelLoadError(`bzImage is truncated: its ${setupSize}-byte setup leaves no kernel`);
  const syssize = r.u32(HDR_SYSSIZE);
  if (version >= 0x0204 && syssize * 16 > image.length - setupSize) {
    throw new KernelLoadError(`bzImage is truncated: the header says ${syssize * 16} bytes of kernel, the file has ${image.length - setupSize}`);
  }
  const v = (min: number, read: () => number, dflt: number): number => (version >= min ? read() : dflt);
  const headerEnd = Math.min(HDR_HEADER + r.u8(0x201), 0x290);
  const kvOff = r.u16(HDR_KERNEL_VERSION);
  let kernelVersion = '';
  if (kvOff !== 0 && r.has(kvOff + 0x200, 1)) {
    const start = kvOff + 0x200;
    let end = start;
    while (end < image.length && end < start + 256 && image[end] !== 0) end++;
    kernelVersion = String.fromCharCode(...image.subarray(start, end));
  }
  const version2 = (min: number, off: number): number => v(min, () => r.u32(off), 0);
  const initSize = version2(0x020a, HDR_INIT_SIZE);
  return {
    version,
    setupSects,
    setupSize,
    syssize,
    loadflags,
    code32Start: r.u32(HDR_CODE32_START),
    initrdAddrMax: v(0x0203, () => r.u32(HDR_INITRD_ADDR_MAX), 0x37ff_ffff),
    kernelAlignment: version2(0x0205, HDR_KERNEL_ALIGNMENT),
    relocatable: version >= 0x0205 && r.u8(HDR_RELOCATABLE_KERNEL) !== 0,
    minAlignment: v(0x020a, () => r.u8(HDR_MIN_ALIGNMENT), 0),
    xloadflags: v(0x020c, () => r.u16(HDR_XLOADFLAGS), 0),
    cmdlineSize: v(0x0206, () => r.u32(HDR_CMDLINE_SIZE), 255),
    payloadOffset: version2(0x0208, HDR_PAYLOAD_OFFSET),
    payloadLength: version2(0x0208, HDR_PAYLOAD_LENGTH),
    prefAddress: v(0x020a, () => r.u64(HDR_PREF_ADDRESS, 'pref_address'), 0),
    initSize,
    handoverOffset: version2(0x020b, HDR_HANDOVER_OFFSET),
    kernelVersion,
    headerEnd,
  };
}

/** What goes into boot_params besides the kernel's own setup header. */
export interface ZeroPageFields {
  readonly e820: readonly E820Entry[];
  readonly cmdlinePtr: number;
  readonly cmdlineSize: number;
  readonly ramdiskImage: number;
  readonly ramdiskSize: number;
  /** Guest-physical address of the RSDP (0 to leave the kernel to scan for it). */
  readonly acpiRsdp: number;
}

const hi32 = (x: number): number => Math.floor(x / 2 ** 32) >>> 0;

/**
 * Builds boot_params: the kernel's setup header copied in (when `image` is a bzImage) or a
 * synthesized one (ELF vmlinux), then the loader's fields.
 */
export function buildZeroPage(image: Uint8Array | null, header: SetupHeader | null, f: ZeroPageFields): Uint8Array {
  const zp = new Uint8Array(BOOT_PARAMS_SIZE);
  const v = new DataView(zp.buffer);
  if (image && header) {
    zp.set(image.subarray(HDR_SETUP_SECTS, header.headerEnd), HDR_SETUP_SECTS);
  } else {
    v.setUint16(HDR_BOOT_FLAG, BOOT_FLAG_MAGIC, true);
    v.setUint32(HDR_HEADER, HDRS_MAGIC, true);
    v.setUint16(HDR_VERSION, 0x020f, true);
    v.setUint8(HDR_LOADFLAGS, LOADED_HIGH);
    v.setUint32(HDR_KERNEL_ALIGNMENT, 0x100_0000, true);
  }
  if (f.e820.length > BP_E820_MAX) throw new KernelLoadError(`the e820 map has ${f.e820.length} entries; boot_params holds ${BP_E820_MAX}`);
  v.setUint16(HDR_VID_MODE, VID_MODE_NORMAL, true);
  v.setUint8(HDR_TYPE_OF_LOADER, LOADER_TYPE_UNDEFINED);
  v.setUint8(HDR_EXT_LOADER_VER, 0);
  v.setUint32(HDR_CMD_LINE_PTR, f.cmdlinePtr >>> 0, true);
  v.setUint32(BP_EXT_CMD_LINE_PTR, hi32(f.cmdlinePtr), true);
  if (!header) v.setUint32(HDR_CMDLINE_SIZE, f.cmdlineSize, true); // read-only for a real bzImage
  v.setUint32(HDR_RAMDISK_IMAGE, f.ramdiskImage >>> 0, true);
  v.setUint32(HDR_RAMDISK_SIZE, f.ramdiskSize >>> 0, true);
  v.setUint32(BP_EXT_RAMDISK_IMAGE, hi32(f.ramdiskImage), true);
  v.setUint32(BP_EXT_RAMDISK_SIZE, hi32(f.ramdiskSize), true);
  v.setUint32(BP_ACPI_RSDP_ADDR, f.acpiRsdp >>> 0, true);
  v.setUint32(BP_ACPI_RSDP_ADDR + 4, hi32(f.acpiRsdp), true);
  v.setUint8(BP_E820_ENTRIES, f.e820.length);
  f.e820.forEach((e, i) => {
    const at = BP_E820_TABLE + i * 20;
    v.setUint32(at, e.addr >>> 0, true);
    v.setUint32(at + 4, hi32(e.addr), true);
    v.setUint32(at + 8, e.size >>> 0, true);
    v.setUint32(at + 12, hi32(e.size), true);
    v.setUint32(at + 16, e.type, true);
  });
  return zp;
}
