import type { GuestMemory } from './guest-memory';

/**
 * The simplest GuestMemory: one contiguous RAM region starting at guest-physical 0, held in one
 * ArrayBuffer. Meant for tests of other packages (CPU, virtio, balloon) and for small machines.
 */
export class FlatGuestMemory implements GuestMemory {
  readonly limit: number;
  readonly bytes: Uint8Array;
  private readonly view: DataView;

  constructor(size: number) {
    if (!Number.isInteger(size) || size < 0 || size > 0x7fff_ffff) {
      throw new RangeError(`FlatGuestMemory: size must be an integer from 0 to 2 GiB - 1, got ${size}`);
    }
    this.limit = size;
    this.bytes = new Uint8Array(size);
    this.view = new DataView(this.bytes.buffer);
  }

  isRam(addr: number, length: number): boolean {
    return addr >= 0 && length >= 0 && addr + length <= this.limit && Number.isInteger(addr);
  }

  read8(addr: number): number {
    return this.isRam(addr, 1) ? this.bytes[addr] : -1;
  }

  read16(addr: number): number {
    return this.isRam(addr, 2) ? this.view.getUint16(addr, true) : -1;
  }

  read32(addr: number): number {
    return this.isRam(addr, 4) ? this.view.getUint32(addr, true) : -1;
  }

  read64(addr: number, out: Uint32Array, index: number): boolean {
    if (!this.isRam(addr, 8)) return false;
    out[index] = this.view.getUint32(addr, true);
    out[index + 1] = this.view.getUint32(addr + 4, true);
    return true;
  }

  write8(addr: number, value: number): boolean {
    if (!this.isRam(addr, 1)) return false;
    this.bytes[addr] = value;
    return true;
  }

  write16(addr: number, value: number): boolean {
    if (!this.isRam(addr, 2)) return false;
    this.view.setUint16(addr, value, true);
    return true;
  }

  write32(addr: number, value: number): boolean {
    if (!this.isRam(addr, 4)) return false;
    this.view.setUint32(addr, value >>> 0, true);
    return true;
  }

  write64(addr: number, lo: number, hi: number): boolean {
    if (!this.isRam(addr, 8)) return false;
    this.view.setUint32(addr, lo >>> 0, true);
    this.view.setUint32(addr + 4, hi >>> 0, true);
    return true;
  }

  readInto(addr: number, dst: Uint8Array): boolean {
    if (!this.isRam(addr, dst.length)) return false;
    dst.set(this.bytes.subarray(addr, addr + dst.length));
    return true;
  }

  writeFrom(addr: number, src: Uint8Array): boolean {
    if (!this.isRam(addr, src.length)) return false;
    this.bytes.set(src, addr);
    return true;
  }

  hostView(addr: number, length: number): Uint8Array | null {
    return this.isRam(addr, length) ? this.bytes.subarray(addr, addr + length) : null;
  }
}
