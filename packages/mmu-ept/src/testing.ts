/**
 * Test doubles and fixture builders (the "./testing" subpath).
 *
 * - FlatGuestMemory: one contiguous RAM region, for other packages' tests.
 * - GuestPageTables: writes x86 guest page tables (32-bit, PAE, 4-level, 5-level) into any
 *   GuestMemory, for hand-built paging fixtures.
 */
import type { GuestMemory } from './guest-memory';
import { MODE_32, MODE_4LEVEL, MODE_5LEVEL, MODE_PAE, PTE_P, PTE_PS, PTE_RW, PTE_US } from './mmu';

export { FlatGuestMemory } from './flat-memory';

const TWO32 = 0x1_0000_0000;

export interface MapOptions {
  /** Page size in bytes: 4 KiB (default), 2 MiB (PAE/long), 4 MiB (32-bit), 1 GiB (long). */
  size?: number;
  /** Low-word flags of the leaf (default P | R/W | U/S). PS is added for large pages. */
  flags?: number;
  /** High-word flags of the leaf (bit 31 = XD, bits 30:27 = protection key). */
  hiFlags?: number;
  /** Low-word flags of every entry created above the leaf (default P | R/W | U/S). */
  upper?: number;
  /** High-word flags of the upper entries. */
  upperHi?: number;
}

/**
 * Builds guest page tables in guest-physical memory. Tables are taken from a bump allocator
 * starting at `tableBase` (page-aligned guest-physical address). `cr3` is the value to load.
 */
export class GuestPageTables {
  readonly mem: GuestMemory;
  readonly mode: number;
  readonly cr3: number;
  private next: number;

  constructor(mem: GuestMemory, mode: number, tableBase: number) {
    if (mode !== MODE_32 && mode !== MODE_PAE && mode !== MODE_4LEVEL && mode !== MODE_5LEVEL) throw new RangeError('GuestPageTables: unknown mode');
    this.mem = mem;
    this.mode = mode;
    this.next = tableBase;
    this.cr3 = this.newTable();
  }

  /** Number of levels walked from CR3 (PAE: 3, the PDPT being the top). */
  get levels(): number {
    return this.mode === MODE_32 ? 2 : this.mode === MODE_PAE ? 3 : this.mode === MODE_4LEVEL ? 4 : 5;
  }

  /** One past the last table page allocated so far. */
  get used(): number {
    return this.next;
  }

  /** Allocates a zeroed table page and returns its guest-physical address. */
  newTable(): number {
    const t = this.next;
    this.next += 4096;
    if (!this.mem.writeFrom(t, new Uint8Array(4096))) throw new RangeError(`GuestPageTables: no RAM at ${t}`);
    return t;
  }

  /** Maps the page holding `linear` (a number below 2^57) to `gpa`. */
  map(linear: number, gpa: number, o: MapOptions = {}): void {
    const size = o.size ?? 4096;
    const leafLevel = size === 4096 ? 1 : size === 0x20_0000 || size === 0x40_0000 ? 2 : 3;
    const flags = (o.flags ?? PTE_P | PTE_RW | PTE_US) | (leafLevel > 1 ? PTE_PS : 0);
    let lo: number;
    let hi = o.hiFlags ?? 0;
    if (this.mode === MODE_32 && size === 0x40_0000) {
      // PSE-36: PA bits 39:32 go in PDE bits 20:13.
      lo = (gpa % TWO32) + Math.floor(gpa / TWO32) * 0x2000 + flags;
    } else {
      lo = (gpa % TWO32) + flags;
      hi = (hi | Math.floor(gpa / TWO32)) >>> 0;
    }
    const t = this.tableFor(linear, leafLevel, o.upper ?? PTE_P | PTE_RW | PTE_US, o.upperHi ?? 0);
    this.write(t + this.index(linear, leafLevel) * this.esize(), lo >>> 0, hi >>> 0);
  }

  /** Writes a raw entry at `level` on the walk of `linear`, creating the tables above it. */
  setEntry(linear: number, level: number, lo: number, hi = 0, upper: number = PTE_P | PTE_RW | PTE_US): void {
    const t = this.tableFor(linear, level, upper, 0);
    this.write(t + this.index(linear, level) * this.esize(), lo >>> 0, hi >>> 0);
  }

  /** Guest-physical address of the entry at `level` on the walk of `linear` (-1 if absent). */
  entryAddress(linear: number, level: number): number {
    let t = this.cr3;
    for (let l = this.levels; l > level; l--) {
      const a = t + this.index(linear, l) * this.esize();
      const e = this.mem.read32(a);
      if ((e & 1) === 0) return -1;
      const ehi = this.esize() === 8 ? this.mem.read32(a + 4) : 0;
      t = ((e & 0xffff_f000) >>> 0) + (ehi & 0xfffff) * TWO32;
    }
    return t + this.index(linear, level) * this.esize();
  }

  private esize(): number {
    return this.mode === MODE_32 ? 4 : 8;
  }

  private index(linear: number, level: number): number {
    if (this.mode === MODE_32) return level === 2 ? Math.floor(linear / 0x40_0000) % 1024 : Math.floor(linear / 4096) % 1024;
    if (this.mode === MODE_PAE && level === 3) return Math.floor(linear / 0x4000_0000) % 4;
    return Math.floor(linear / 2 ** (12 + 9 * (level - 1))) % 512;
  }

  private tableFor(linear: number, level: number, upper: number, upperHi: number): number {
    let t = this.cr3;
    for (let l = this.levels; l > level; l--) {
      const a = t + this.index(linear, l) * this.esize();
      const e = this.mem.read32(a);
      const ehi = this.esize() === 8 ? this.mem.read32(a + 4) : 0;
      if ((e & 1) === 0) {
        const n = this.newTable();
        // PAE PDPTEs have no R/W, U/S (those bits are reserved there).
        const fl = this.mode === MODE_PAE && l === 3 ? PTE_P : upper;
        this.write(a, (n % TWO32) + fl, (this.mode === MODE_PAE && l === 3 ? 0 : upperHi) | Math.floor(n / TWO32));
        t = n;
      } else {
        t = ((e & 0xffff_f000) >>> 0) + (ehi & 0xfffff) * TWO32;
      }
    }
    return t;
  }

  private write(addr: number, lo: number, hi: number): void {
    const ok = this.esize() === 8 ? this.mem.write64(addr, lo >>> 0, hi >>> 0) : this.mem.write32(addr, lo >>> 0);
    if (!ok) throw new RangeError(`GuestPageTables: cannot write at ${addr}`);
  }
}
