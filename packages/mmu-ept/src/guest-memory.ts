/**
 * Guest-physical memory as its consumers (the CPU, virtio devices, the balloon, KSM) see it.
 *
 * This is the narrow, consumer-side interface of RingZero: packages that only need to touch
 * guest memory import it with `import type` and never depend on how it is implemented.
 *
 * Rules:
 * - Addresses are guest-physical byte addresses, plain numbers below 2^53.
 * - Little-endian, as x86 and virtio are.
 * - 64-bit values travel as lo/hi unsigned 32-bit halves (no BigInt).
 * - An access to an address that is not backed by RAM (an MMIO hole, past the end) does not
 *   throw: scalar reads return -1, writes and bulk copies return false and change nothing.
 */
export interface GuestMemory {
  /** One past the highest guest-physical address that any RAM region covers. */
  readonly limit: number;
  /** True when every byte of [addr, addr + length) is RAM. */
  isRam(addr: number, length: number): boolean;
  /** Unsigned 8-bit read, or -1 when the byte is not RAM. */
  read8(addr: number): number;
  /** Unsigned 16-bit read, or -1 when not RAM. */
  read16(addr: number): number;
  /** Unsigned 32-bit read (0..2^32-1), or -1 when not RAM. */
  read32(addr: number): number;
  /** 64-bit read into out[index] (low half) and out[index + 1] (high half); false when not RAM. */
  read64(addr: number, out: Uint32Array, index: number): boolean;
  write8(addr: number, value: number): boolean;
  write16(addr: number, value: number): boolean;
  write32(addr: number, value: number): boolean;
  write64(addr: number, lo: number, hi: number): boolean;
  /** Copies guest memory at addr into dst (dst.length bytes); false, and dst untouched, when not all RAM. */
  readInto(addr: number, dst: Uint8Array): boolean;
  /** Copies src into guest memory at addr; false, and memory untouched, when not all RAM. */
  writeFrom(addr: number, src: Uint8Array): boolean;
  /**
   * A host view of [addr, addr + length) when that range is contiguous in host memory, so a
   * device can read or write it without a copy; null otherwise (fall back to readInto/writeFrom).
   * The view aliases guest RAM: writes through it are guest-visible and bypass dirty logging, so
   * callers that write must report the range with markDirty when the memory tracks dirt.
   */
  hostView(addr: number, length: number): Uint8Array | null;
  /**
   * Optional: tells a memory that tracks dirty pages (and write-watched code pages) that
   * [addr, addr + length) was written through a host view. Call it as `mem.markDirty?.(a, n)`.
   */
  markDirty?(addr: number, length: number): void;
}
