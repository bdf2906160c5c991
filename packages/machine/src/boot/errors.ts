/**
 * The one error the boot loaders throw for a kernel, initrd or command line they cannot load
 * (truncated or garbage files, unsupported formats, things that do not fit in RAM). Its message
 * says what is wrong in words a CLI can print as is.
 */
export class KernelLoadError extends Error {
  override readonly name = 'KernelLoadError';
}

/** Little-endian readers over a byte array, bounds-checked: out of range reads throw KernelLoadError. */
export class ByteReader {
  constructor(
    readonly bytes: Uint8Array,
    readonly what: string,
  ) {}

  get length(): number {
    return this.bytes.length;
  }

  has(offset: number, size: number): boolean {
    return Number.isSafeInteger(offset) && offset >= 0 && size >= 0 && offset + size <= this.bytes.length;
  }

  need(offset: number, size: number, field: string): void {
    if (!this.has(offset, size)) {
      throw new KernelLoadError(`${this.what} is truncated: ${field} at byte ${offset} (+${size}) is past its end (${this.bytes.length} bytes)`);
    }
  }

  u8(offset: number, field = 'a byte'): number {
    this.need(offset, 1, field);
    return this.bytes[offset];
  }

  u16(offset: number, field = 'a 16-bit field'): number {
    this.need(offset, 2, field);
    return this.bytes[offset] | (this.bytes[offset + 1] << 8);
  }

  u32(offset: number, field = 'a 32-bit field'): number {
    this.need(offset, 4, field);
    const b = this.bytes;
    return (b[offset] | (b[offset + 1] << 8) | (b[offset + 2] << 16) | (b[offset + 3] << 24)) >>> 0;
  }

  /** A 64-bit field as a number; throws if it does not fit in 2^53. */
  u64(offset: number, field = 'a 64-bit field'): number {
    const lo = this.u32(offset, field);
    const hi = this.u32(offset + 4, field);
    if (hi > 0x1f_ffff) throw new KernelLoadError(`${this.what}: ${field} (0x${hi.toString(16)}${lo.toString(16).padStart(8, '0')}) is beyond 2^53`);
    return hi * 2 ** 32 + lo;
  }

  ascii(offset: number, length: number): string {
    this.need(offset, length, 'a string');
    return String.fromCharCode(...this.bytes.subarray(offset, offset + length));
  }
}
