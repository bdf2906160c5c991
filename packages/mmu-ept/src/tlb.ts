import type { WriteCache } from './host-memory';

/*
 * A direct-mapped TLB of combined translations (guest linear page -> host frame), in typed
 * arrays so a hit costs a handful of loads and compares.
 *
 * Entry i (i = (linearLo >>> 12) & mask):
 *   tagLo[i]  (linearLo >>> 12) | (pcid << 20)     as int32
 *   tagHi[i]  linearHi | 0 (0 in 32-bit modes)
 *   perm[i]   which access kinds may use the entry (ACC_* bits; 0 = invalid entry)
 *   chunk[i]  index of the host chunk (HostMemory.u8 / dv / u32)
 *   base[i]   byte index of the frame's first byte in that chunk
 *   frame[i]  host frame
 *   gpa[i]    guest-physical address of the page
 *   info[i]   TLB_GLOBAL | page-size code (TLB_2M / TLB_4M / TLB_1G)
 *
 * Access kinds, one bit each, so a permission check is one AND:
 *   ACC_SR  supervisor data read, SMAP enforced (EFLAGS.AC = 0, or an implicit access)
 *   ACC_SRA supervisor data read with EFLAGS.AC = 1 (SMAP not enforced)
 *   ACC_SW, ACC_SWA  the same for writes
 *   ACC_SX  supervisor instruction fetch
 *   ACC_UR, ACC_UW, ACC_UX  user-mode (CPL 3) read, write, fetch
 */

export const ACC_SR = 1;
export const ACC_SRA = 2;
export const ACC_SW = 4;
export const ACC_SWA = 8;
export const ACC_SX = 16;
export const ACC_UR = 32;
export const ACC_UW = 64;
export const ACC_UX = 128;
export const ACC_WRITES: number = ACC_SW | ACC_SWA | ACC_UW;
export const ACC_FETCHES: number = ACC_SX | ACC_UX;
export const ACC_USER: number = ACC_UR | ACC_UW | ACC_UX;
export const ACC_ALL = 255;

export const TLB_GLOBAL = 1;
export const TLB_2M = 2;
export const TLB_4M = 4;
export const TLB_1G = 8;
const TLB_LARGE = TLB_2M | TLB_4M | TLB_1G;
/** Buckets of the large-page bitmaps (power of two). */
const LARGE_HASH = 1024;

function largeHash(pageNumber: number, hi: number): number {
  return (pageNumber ^ Math.imul(hi | 0, 0x9e3779b1) ^ ((hi | 0) >>> 22)) & (LARGE_HASH - 1);
}

/** A tagHi no canonical address produces (entries are also invalidated by perm = 0). */
const INVALID_HI = 0x4000_0000;

/**
 * The access kind for an ordinary data or fetch access.
 * op: 0 read, 1 write, 2 fetch; cpl 0..3; ac = EFLAGS.AC; implicit = a supervisor-mode access
 * made by the CPU itself (GDT/IDT/TSS), which SMAP always checks.
 */
export function accessKind(op: number, cpl: number, ac: boolean, implicit = false): number {
  if (cpl === 3 && !implicit) return op === 0 ? ACC_UR : op === 1 ? ACC_UW : ACC_UX;
  if (op === 2) return ACC_SX;
  const bypass = ac && !implicit;
  return op === 0 ? (bypass ? ACC_SRA : ACC_SR) : bypass ? ACC_SWA : ACC_SW;
}

export class Tlb implements WriteCache {
  readonly size: number;
  readonly mask: number;
  readonly tagLo: Int32Array;
  readonly tagHi: Int32Array;
  readonly perm: Uint8Array;
  readonly chunk: Int32Array;
  readonly base: Int32Array;
  readonly frame: Int32Array;
  readonly gpa: Float64Array;
  readonly info: Uint8Array;
  private hasLarge = false;
  /**
   * Which large pages may sit in the TLB, as hashed bitmaps of their large-page numbers (2 MiB,
   * 4 MiB, 1 GiB; set on fill, cleared by flushAll): INVLPG of a page no large entry can cover
   * touches one slot, otherwise it scans only the slots that page's large page can occupy.
   */
  private readonly large2M = new Uint8Array(LARGE_HASH);
  private readonly large4M = new Uint8Array(LARGE_HASH);
  private readonly large1G = new Uint8Array(LARGE_HASH);
  /** Counters (for tests and benchmarks). */
  flushes = 0;

  constructor(size = 2048) {
    if (!Number.isInteger(size) || size < 16 || size > 1 << 16 || (size & (size - 1)) !== 0) throw new RangeError('Tlb: size must be a power of two from 16 to 65536');
    this.size = size;
    this.mask = size - 1;
    this.tagLo = new Int32Array(size);
    this.tagHi = new Int32Array(size).fill(INVALID_HI);
    this.perm = new Uint8Array(size);
    this.chunk = new Int32Array(size);
    this.base = new Int32Array(size);
    this.frame = new Int32Array(size).fill(-1);
    this.gpa = new Float64Array(size);
    this.info = new Uint8Array(size);
  }

  /** Slot index of a hit for (lo, hi, pcidTag) allowing `acc`, or -1. */
  lookup(lo: number, hi: number, pcidTag: number, acc: number): number {
    const i = (lo >>> 12) & this.mask;
    return this.tagLo[i] === ((lo >>> 12) | pcidTag) && this.tagHi[i] === (hi | 0) && (this.perm[i] & acc) !== 0 ? i : -1;
  }

  fill(lo: number, hi: number, pcidTag: number, perm: number, chunk: number, base: number, frame: number, gpa: number, info: number): number {
    const i = (lo >>> 12) & this.mask;
    this.tagLo[i] = (lo >>> 12) | pcidTag;
    this.tagHi[i] = hi | 0;
    this.perm[i] = perm;
    this.chunk[i] = chunk;
    this.base[i] = base;
    this.frame[i] = frame;
    this.gpa[i] = gpa;
    this.info[i] = info;
    if ((info & TLB_LARGE) !== 0) {
      this.hasLarge = true;
      const page = lo >>> 12;
      if ((info & TLB_2M) !== 0) this.large2M[largeHash(page >>> 9, hi)] = 1;
      else if ((info & TLB_4M) !== 0) this.large4M[largeHash(page >>> 10, hi)] = 1;
      else this.large1G[largeHash(page >>> 18, hi)] = 1;
    }
    return i;
  }

  invalidate(i: number): void {
    this.perm[i] = 0;
    this.tagHi[i] = INVALID_HI;
    this.frame[i] = -1;
  }

  flushAll(): void {
    this.perm.fill(0);
    this.tagHi.fill(INVALID_HI);
    this.frame.fill(-1);
    if (this.hasLarge) {
      this.large2M.fill(0);
      this.large4M.fill(0);
      this.large1G.fill(0);
    }
    this.hasLarge = false;
    this.flushes++;
  }

  /** Drops every entry that is not global (for any PCID when pcid < 0, else that PCID only). */
  flushNonGlobal(pcid: number): void {
    for (let i = 0; i < this.size; i++) {
      if (this.perm[i] === 0 || (this.info[i] & TLB_GLOBAL) !== 0) continue;
      if (pcid < 0 || this.tagLo[i] >>> 20 === pcid) this.invalidate(i);
    }
    this.flushes++;
  }

  /** INVLPG: drops the translation of one linear page (every PCID, global or not, large pages too). */
  flushPage(lo: number, hi: number): void {
    const page = lo >>> 12;
    const i = page & this.mask;
    if ((this.tagLo[i] & 0xfffff) === page && this.tagHi[i] === (hi | 0)) this.invalidate(i);
    if (!this.hasLarge) return;
    // A large entry covering the page sits in a slot indexed by one of its own 4 KiB pages.
    if (this.large2M[largeHash(page >>> 9, hi)] !== 0) this.flushLarge(page, hi, TLB_2M, 9);
    if (this.large4M[largeHash(page >>> 10, hi)] !== 0) this.flushLarge(page, hi, TLB_4M, 10);
    if (this.large1G[largeHash(page >>> 18, hi)] !== 0) this.flushLarge(page, hi, TLB_1G, 18);
  }

  /** Drops the entries of kind `kind` (2^shift 4 KiB pages each) that cover `page`. */
  private flushLarge(page: number, hi: number, kind: number, shift: number): void {
    const span = 1 << shift;
    const n = span < this.size ? span : this.size;
    const first = (page >>> shift) << shift;
    for (let k = 0; k < n; k++) {
      const j = (first + k) & this.mask;
      if ((this.info[j] & kind) === 0 || this.perm[j] === 0 || this.tagHi[j] !== (hi | 0)) continue;
      if ((this.tagLo[j] & 0xfffff) >>> shift === page >>> shift) this.invalidate(j);
    }
  }

  /** WriteCache: a frame became watched, so no entry may keep a right to write it. */
  dropWrite(frame: number): void {
    for (let i = 0; i < this.size; i++) if (this.frame[i] === frame) this.perm[i] &= ~ACC_WRITES;
  }
}
