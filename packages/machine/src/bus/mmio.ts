// MMIO bus: guest-physical ranges claimed by devices, kept sorted for a binary search, with a
// one-entry cache for the common case of repeated accesses to one device. Addresses are plain
// numbers (guest-physical addresses stay below 2^52); 64-bit data travels as lo/hi halves.

import { allOnes } from './pio';

/**
 * A device (or a register block of one) on the MMIO bus. `offset` is the address minus the
 * block's base; `size` is 1, 2 or 4 (an 8-byte access arrives as two 4-byte accesses, low half
 * first, as a 32-bit bridge splits it).
 */
export interface MmioDevice {
  mmioRead(offset: number, size: number): number;
  mmioWrite(offset: number, size: number, value: number): void;
}

/** The registration side of an MMIO bus, as PCI BAR mapping consumes it. */
export interface MmioRegistry {
  tryRegister(base: number, length: number, device: MmioDevice, name?: string): boolean;
  unregister(base: number): boolean;
}

/** A registered block, as `MmioBus.ranges()` lists it. */
export interface MmioRange {
  readonly base: number;
  readonly length: number;
  readonly name: string;
}

/** Thrown by `MmioBus.register` (a board wiring mistake, never a guest action). */
export class MmioConflictError extends Error {
  override readonly name = 'MmioConflictError';
}

/** Highest address (exclusive) a block may reach: 2^52, the x86 physical-address limit. */
export const MMIO_ADDRESS_LIMIT: number = 2 ** 52;

const SIZE_MASK = [0, 0xff, 0xffff, 0xffffff, 0xffffffff];

/**
 * The MMIO address space. Unclaimed addresses read as all-ones and ignore writes. Accesses that
 * straddle the end of a block are split into bytes.
 */
export class MmioBus implements MmioRegistry {
  private starts: number[] = [];
  private ends: number[] = [];
  private devices: MmioDevice[] = [];
  private names: string[] = [];
  private lastStart = -1;
  private lastEnd = -1;
  private lastDevice: MmioDevice | null = null;
  /** High 32 bits of the last 8-byte read (`read(addr, 8)` returns the low half). */
  readHi = 0;
  /** Accesses that hit no device, for diagnostics. */
  unclaimed = 0;

  register(base: number, length: number, device: MmioDevice, name = 'device'): void {
    const why = this.check(base, length);
    if (why !== '') throw new MmioConflictError(`cannot register ${name} at 0x${base.toString(16)}+0x${length.toString(16)}: ${why}`);
    this.insert(base, length, device, name);
  }

  tryRegister(base: number, length: number, device: MmioDevice, name = 'device'): boolean {
    if (this.check(base, length) !== '') return false;
    this.insert(base, length, device, name);
    return true;
  }

  unregister(base: number): boolean {
    const i = this.starts.indexOf(base);
    if (i < 0) return false;
    this.starts.splice(i, 1);
    this.ends.splice(i, 1);
    this.devices.splice(i, 1);
    this.names.splice(i, 1);
    this.lastStart = this.lastEnd = -1;
    this.lastDevice = null;
    return true;
  }

  ranges(): MmioRange[] {
    return this.starts.map((s, i) => ({ base: s, length: this.ends[i] - s, name: this.names[i] }));
  }

  /** Index of the block containing `addr`, or -1. */
  find(addr: number): number {
    const s = this.starts;
    let lo = 0;
    let hi = s.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (s[mid] <= addr) lo = mid + 1;
      else hi = mid - 1;
    }
    return hi >= 0 && addr < this.ends[hi] ? hi : -1;
  }

  /** Name of the block claiming `addr`, or undefined. */
  owner(addr: number): string | undefined {
    const i = this.find(addr);
    return i < 0 ? undefined : this.names[i];
  }

  /**
   * Reads `size` bytes (1, 2, 4 or 8) at `addr`. For 8 the low 32 bits are returned and the high
   * 32 bits left in `readHi`.
   */
  read(addr: number, size: number): number {
    if (size === 8) {
      const lo = this.read4(addr);
      this.readHi = this.read4(addr + 4);
      return lo;
    }
    if (size !== 1 && size !== 2 && size !== 4) size = 4;
    if (addr >= this.lastStart && addr + size <= this.lastEnd) {
      return (this.lastDevice!.mmioRead(addr - this.lastStart, size) & SIZE_MASK[size]) >>> 0;
    }
    return this.readSlow(addr, size);
  }

  /** Writes `size` bytes (1, 2, 4 or 8); for 8, `value` is the low half and `hi` the high half. */
  write(addr: number, size: number, value: number, hi = 0): void {
    if (size === 8) {
      this.write4(addr, value);
      this.write4(addr + 4, hi);
      return;
    }
    if (size !== 1 && size !== 2 && size !== 4) size = 4;
    if (addr >= this.lastStart && addr + size <= this.lastEnd) {
      this.lastDevice!.mmioWrite(addr - this.lastStart, size, (value & SIZE_MASK[size]) >>> 0);
      return;
    }
    this.writeSlow(addr, size, value);
  }

  private read4(addr: number): number {
    if (addr >= this.lastStart && addr + 4 <= this.lastEnd) return this.lastDevice!.mmioRead(addr - this.lastStart, 4) >>> 0;
    return this.readSlow(addr, 4);
  }

  private write4(addr: number, value: number): void {
    if (addr >= this.lastStart && addr + 4 <= this.lastEnd) {
      this.lastDevice!.mmioWrite(addr - this.lastStart, 4, value >>> 0);
      return;
    }
    this.writeSlow(addr, 4, value);
  }

  private readSlow(addr: number, size: number): number {
    const i = this.find(addr);
    if (i >= 0 && addr + size <= this.ends[i]) {
      this.cache(i);
      return (this.devices[i].mmioRead(addr - this.starts[i], size) & SIZE_MASK[size]) >>> 0;
    }
    if (i < 0 && this.find(addr + size - 1) < 0) {
      this.unclaimed++;
      return allOnes(size);
    }
    let v = 0;
    for (let k = 0; k < size; k++) {
      const j = this.find(addr + k);
      const b = j < 0 ? 0xff : this.devices[j].mmioRead(addr + k - this.starts[j], 1) & 0xff;
      v |= b << (8 * k);
    }
    return v >>> 0;
  }

  private writeSlow(addr: number, size: number, value: number): void {
    const i = this.find(addr);
    if (i >= 0 && addr + size <= this.ends[i]) {
      this.cache(i);
      this.devices[i].mmioWrite(addr - this.starts[i], size, (value & SIZE_MASK[size]) >>> 0);
      return;
    }
    if (i < 0 && this.find(addr + size - 1) < 0) {
      this.unclaimed++;
      return;
    }
    for (let k = 0; k < size; k++) {
      const j = this.find(addr + k);
      if (j >= 0) this.devices[j].mmioWrite(addr + k - this.starts[j], 1, (value >>> (8 * k)) & 0xff);
    }
  }

  private cache(i: number): void {
    this.lastStart = this.starts[i];
    this.lastEnd = this.ends[i];
    this.lastDevice = this.devices[i];
  }

  private check(base: number, length: number): string {
    if (!Number.isSafeInteger(base) || !Number.isSafeInteger(length) || base < 0 || length < 1 || base + length > MMIO_ADDRESS_LIMIT) {
      return 'range outside 0..2^52';
    }
    for (let i = 0; i < this.starts.length; i++) {
      if (base < this.ends[i] && this.starts[i] < base + length) {
        return `overlaps ${this.names[i]} at 0x${this.starts[i].toString(16)}`;
      }
    }
    return '';
  }

  private insert(base: number, length: number, device: MmioDevice, name: string): void {
    let i = 0;
    while (i < this.starts.length && this.starts[i] < base) i++;
    this.starts.splice(i, 0, base);
    this.ends.splice(i, 0, base + length);
    this.devices.splice(i, 0, device);
    this.names.splice(i, 0, name);
    this.lastStart = this.lastEnd = -1;
    this.lastDevice = null;
  }
}
