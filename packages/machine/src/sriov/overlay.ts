// A configuration-space overlay that turns a conventional 256-byte function (a virtio-pci
// transport) into a PCI Express function: it splices a PCI Express capability into the
// function's capability list, owns the extended space (0x100-0xFFF), and can hide or clear
// header fields (what a virtual function must read as: vendor/device ID 0xFFFF, BARs zero,
// no INTx pin, I/O and memory enable hard-wired to 0).
//
// Reads compose byte by byte: a byte the overlay owns comes from the overlay, the rest from the
// inner function (with `clear` bits forced to 0). Writes go to the overlay's own bytes through
// its write mask, and to the inner function with the `clear` bits removed.

/** The inner function's configuration access (VirtioPci fits). */
export interface ConfigSpace {
  configRead(offset: number, size: number): number;
  configWrite(offset: number, size: number, value: number): void;
}

export const PCI_EXP_TYPE_ENDPOINT = 0x0;
export const PCI_EXP_TYPE_RC_END = 0x9;
const CAP_ID_EXP = 0x10;
const EXP_CAP_SIZE = 0x3c;

/** Options of an overlay. */
export interface ExpressOverlayOptions {
  /** Where the PCI Express capability goes (a free, dword-aligned area of the inner header). Default 0xc0. */
  at?: number;
  /** Device/port type in the PCI Express Capabilities register (default RC integrated endpoint). */
  type?: number;
  /** DevCap Function Level Reset capable (bit 28). */
  flr?: boolean;
}

/** The overlay. */
export class ExpressOverlay {
  readonly bytes: Uint8Array = new Uint8Array(4096);
  readonly owned: Uint8Array = new Uint8Array(4096);
  readonly clear: Uint8Array = new Uint8Array(4096);
  readonly wmask: Uint8Array = new Uint8Array(4096);
  /** Offset of the PCI Express capability. */
  readonly expressCap: number;

  constructor(
    private readonly inner: ConfigSpace,
    options: ExpressOverlayOptions = {},
  ) {
    const at = options.at ?? 0xc0;
    this.expressCap = at;
    // Find the last capability of the inner list and link ours after it.
    let last = 0;
    let p = inner.configRead(0x34, 1);
    for (let guard = 0; p !== 0 && guard < 48; guard++) {
      last = p;
      p = inner.configRead(p + 1, 1);
    }
    for (let i = 0; i < EXP_CAP_SIZE; i++) {
      if (inner.configRead(at + i, 1) !== 0) throw new Error(`ExpressOverlay: inner config byte 0x${(at + i).toString(16)} is in use`);
    }
    this.own(last === 0 ? 0x34 : last + 1, 1, at);
    this.own(at, EXP_CAP_SIZE, 0);
    this.bytes[at] = CAP_ID_EXP;
    this.put(at + 2, 2, 2 | (((options.type ?? PCI_EXP_TYPE_RC_END) & 0xf) << 4)); // version 2
    this.put(at + 4, 4, 0x00008000 | (options.flr === true ? 0x10000000 : 0)); // DevCap: role-based error reporting, 128-byte payload
    this.put(at + 8, 2, 0x2810); // DevCtl
    this.wmask[at + 8] = 0xff;
    this.wmask[at + 9] = 0x7f; // bit 15 = initiate FLR reads as 0 (handled by the owner's hook)
    this.put(at + 0x24, 4, 0x00000000); // DevCap2
    this.wmask[at + 0x28] = 0x3f;
    this.wmask[at + 0x29] = 0x04;
    // Extended space: owned, reads zero (no extended capabilities) unless the owner adds some.
    this.own(0x100, 0xf00, 0);
  }

  /** Takes `length` bytes at `offset` from the inner function, with an initial value. */
  own(offset: number, length: number, value: number): void {
    for (let i = 0; i < length; i++) {
      this.owned[offset + i] = 1;
      this.bytes[offset + i] = i < 4 ? (value >>> (8 * i)) & 0xff : 0;
    }
  }

  /** Writes `size` bytes of the overlay's own storage (no masks). */
  put(offset: number, size: number, value: number): void {
    for (let i = 0; i < size; i++) this.bytes[offset + i] = (value >>> (8 * i)) & 0xff;
  }

  read(offset: number, size: number): number {
    if (size !== 1 && size !== 2 && size !== 4) size = 4;
    if (offset < 0 || offset + size > 4096) return 0;
    const inner = offset < 256 && offset + size <= 256 ? this.inner.configRead(offset, size) : 0;
    let v = 0;
    for (let i = 0; i < size; i++) {
      const o = offset + i;
      const b = this.owned[o] !== 0 ? this.bytes[o] : ((inner >>> (8 * i)) & 0xff & ~this.clear[o]);
      v |= b << (8 * i);
    }
    return v >>> 0;
  }

  write(offset: number, size: number, value: number): void {
    if (size !== 1 && size !== 2 && size !== 4) size = 4;
    if (offset < 0 || offset + size > 4096) return;
    let toInner = false;
    let innerValue = 0;
    for (let i = 0; i < size; i++) {
      const o = offset + i;
      const b = (value >>> (8 * i)) & 0xff;
      if (this.owned[o] !== 0) {
        const m = this.wmask[o];
        this.bytes[o] = (this.bytes[o] & ~m) | (b & m);
      } else {
        toInner = true;
        innerValue |= (b & ~this.clear[o]) << (8 * i);
      }
    }
    if (toInner && offset + size <= 256) this.inner.configWrite(offset, size, innerValue >>> 0);
  }
}
