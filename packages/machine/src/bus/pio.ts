// Port-I/O bus: the 65536 x86 I/O ports, dispatched through a Uint16Array port -> slot table so
// that an IN/OUT exit costs one typed-array load and one call, with no allocation.

/**
 * A device (or one register block of a device) on the port-I/O bus. `offset` is the port minus
 * the base the block was registered at; `size` is 1, 2 or 4. Reads return the value in the low
 * `size * 8` bits (higher bits are ignored).
 */
export interface PortIoDevice {
  portRead(offset: number, size: number): number;
  portWrite(offset: number, size: number, value: number): void;
}

/** The registration side of a port-I/O bus, as PCI BAR mapping consumes it. */
export interface PortIoRegistry {
  /** Registers `[base, base + length)`; returns false (and changes nothing) on overlap or bad range. */
  tryRegister(base: number, length: number, device: PortIoDevice, name?: string, maxAccess?: number): boolean;
  /** Removes the block registered at exactly `base`; returns false if there is none. */
  unregister(base: number): boolean;
}

/** A registered block, as `PortIoBus.ranges()` lists it. */
export interface PortIoRange {
  readonly base: number;
  readonly length: number;
  readonly name: string;
}

/** Thrown by `PortIoBus.register` (a board wiring mistake, never a guest action). */
export class PortIoConflictError extends Error {
  override readonly name = 'PortIoConflictError';
}

const SIZE_MASK = [0, 0xff, 0xffff, 0xffffff, 0xffffffff];

/** All-ones of an access size (1, 2 or 4 bytes; anything else counts as 4). */
export function allOnes(size: number): number {
  return size === 1 ? 0xff : size === 2 ? 0xffff : 0xffffffff;
}

const NULL_DEVICE: PortIoDevice = {
  portRead: (_o: number, size: number): number => allOnes(size),
  portWrite: (): void => {},
};

/**
 * The I/O port space. Unclaimed ports read as all-ones of the access size and ignore writes.
 * An access that runs past the end of a block, or is wider than the block accepts (`maxAccess`),
 * is split into byte accesses, as the ISA bus splits a word access to 8-bit devices.
 */
export class PortIoBus implements PortIoRegistry {
  private readonly slotOf = new Uint16Array(65536);
  private readonly devices: PortIoDevice[] = [NULL_DEVICE];
  private readonly bases: number[] = [0];
  private readonly ends: number[] = [0];
  private readonly widths: number[] = [0];
  private readonly names: string[] = [''];
  /** Accesses that hit no device (reads and writes), for diagnostics. */
  unclaimed = 0;

  /** Registers a block; throws PortIoConflictError on overlap or an invalid range. */
  register(base: number, length: number, device: PortIoDevice, name = 'device', maxAccess = 4): void {
    const why = this.check(base, length, maxAccess);
    if (why !== '') throw new PortIoConflictError(`cannot register ${name} at port 0x${hex(base)}+${length}: ${why}`);
    this.insert(base, length, device, name, maxAccess);
  }

  tryRegister(base: number, length: number, device: PortIoDevice, name = 'device', maxAccess = 4): boolean {
    if (this.check(base, length, maxAccess) !== '') return false;
    this.insert(base, length, device, name, maxAccess);
    return true;
  }

  unregister(base: number): boolean {
    if (!Number.isInteger(base) || base < 0 || base > 0xffff) return false;
    const slot = this.slotOf[base];
    if (slot === 0 || this.bases[slot] !== base) return false;
    this.slotOf.fill(0, base, this.ends[slot]);
    this.devices[slot] = NULL_DEVICE;
    this.bases[slot] = 0;
    this.ends[slot] = 0;
    this.widths[slot] = 0;
    this.names[slot] = '';
    return true;
  }

  /** The registered blocks, sorted by base. */
  ranges(): PortIoRange[] {
    const out: PortIoRange[] = [];
    for (let s = 1; s < this.devices.length; s++) {
      if (this.ends[s] !== 0) out.push({ base: this.bases[s], length: this.ends[s] - this.bases[s], name: this.names[s] });
    }
    return out.sort((a, b) => a.base - b.base);
  }

  /** Name of the block claiming `port`, or undefined. */
  owner(port: number): string | undefined {
    const slot = this.slotOf[port & 0xffff];
    return slot === 0 ? undefined : this.names[slot];
  }

  /** IN of `size` bytes (1, 2, 4) at `port`; returns the zero-extended value. */
  read(port: number, size: number): number {
    port &= 0xffff;
    const slot = this.slotOf[port];
    if (slot !== 0 && port + size <= this.ends[slot] && size <= this.widths[slot] && (size === 1 || size === 2 || size === 4)) {
      return (this.devices[slot].portRead(port - this.bases[slot], size) & SIZE_MASK[size]) >>> 0;
    }
    return this.readSplit(port, size);
  }

  /** OUT of `size` bytes (1, 2, 4) of `value` at `port`. */
  write(port: number, size: number, value: number): void {
    port &= 0xffff;
    const slot = this.slotOf[port];
    if (slot !== 0 && port + size <= this.ends[slot] && size <= this.widths[slot] && (size === 1 || size === 2 || size === 4)) {
      this.devices[slot].portWrite(port - this.bases[slot], size, (value & SIZE_MASK[size]) >>> 0);
      return;
    }
    this.writeSplit(port, size, value);
  }

  private readSplit(port: number, size: number): number {
    if (size !== 1 && size !== 2 && size !== 4) size = 4;
    let v = 0;
    for (let i = 0; i < size; i++) {
      const p = (port + i) & 0xffff;
      const slot = this.slotOf[p];
      let b = 0xff;
      if (slot !== 0) b = this.devices[slot].portRead(p - this.bases[slot], 1) & 0xff;
      else this.unclaimed++;
      v |= b << (8 * i);
    }
    return v >>> 0;
  }

  private writeSplit(port: number, size: number, value: number): void {
    if (size !== 1 && size !== 2 && size !== 4) size = 4;
    for (let i = 0; i < size; i++) {
      const p = (port + i) & 0xffff;
      const slot = this.slotOf[p];
      if (slot !== 0) this.devices[slot].portWrite(p - this.bases[slot], 1, (value >>> (8 * i)) & 0xff);
      else this.unclaimed++;
    }
  }

  private check(base: number, length: number, maxAccess: number): string {
    if (!Number.isInteger(base) || !Number.isInteger(length) || base < 0 || length < 1 || base + length > 0x10000) {
      return 'range outside 0..0xffff';
    }
    if (maxAccess !== 1 && maxAccess !== 2 && maxAccess !== 4) return 'maxAccess must be 1, 2 or 4';
    for (let p = base; p < base + length; p++) {
      const s = this.slotOf[p];
      if (s !== 0) return `overlaps ${this.names[s]} at 0x${hex(this.bases[s])}`;
    }
    return '';
  }

  private insert(base: number, length: number, device: PortIoDevice, name: string, maxAccess: number): void {
    let slot = this.ends.indexOf(0, 1);
    if (slot === -1) {
      slot = this.devices.length;
      this.devices.push(device);
      this.bases.push(base);
      this.ends.push(base + length);
      this.widths.push(maxAccess);
      this.names.push(name);
    } else {
      this.devices[slot] = device;
      this.bases[slot] = base;
      this.ends[slot] = base + length;
      this.widths[slot] = maxAccess;
      this.names[slot] = name;
    }
    this.slotOf.fill(slot, base, base + length);
  }
}

function hex(n: number): string {
  return n.toString(16);
}
