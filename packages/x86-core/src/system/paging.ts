/**
 * MmuMemory: the CPU's memory interface (CpuMemory, linear addresses) over @ringzero/mmu-ept's
 * Mmu (paging + EPT + TLB) and AddressSpace (RAM slots, MMIO holes).
 *
 * - Hot path: one direct-mapped TLB probe (tag, tag-hi, permission bit for the access kind), then
 *   a typed-array access in host memory. Misses go to Mmu.translate (2-D walk, A/D bits, fill).
 * - The access kind follows CPL (user), EFLAGS.AC (SMAP bypass) and `implicit` (descriptor tables,
 *   TSS, IDT: supervisor accesses that SMAP always checks).
 * - An access that reaches no RAM leaves the vCPU: MMIO holes become MMIO exits, anything else an
 *   EPT-violation exit. The access returns MEM_EXIT, the instruction is abandoned (RIP unchanged,
 *   nothing committed), the machine completes the access (fills the data of a read) and the vCPU
 *   re-executes the instruction, which replays completed accesses from a small log instead of
 *   repeating them (KVM re-executes the emulated instruction the same way). The log is tagged with
 *   the retired-instruction count and rCX/rSI/rDI, so a REP string instruction that committed
 *   elements in between starts a fresh log.
 * - The local APIC page is handled inside the vCPU: reads synchronously, writes through the same
 *   log (performed once, then the instruction is replayed, so the vCPU re-checks interrupts right
 *   after it, which is what EOI and TPR writes need).
 */
import {
  ACC_SR,
  ACC_SRA,
  ACC_SW,
  ACC_SWA,
  ACC_SX,
  ACC_UR,
  ACC_UW,
  ACC_UX,
  Mmu,
  QUAL_FINAL,
  XLATE_OK,
  XLATE_PAGE_FAULT,
  type AddressSpace,
  type HostMemory,
  type Tlb,
} from '@ringzero/mmu-ept';
import { FRAME_CODE } from '@ringzero/mmu-ept';
import { AC, RCX, RDI, RSI } from '../constants';
import type { Cpu } from '../cpu';
import { MEM_EXIT, MEM_PF_BASE, type CpuMemory } from '../memory';

const TWO32 = 4294967296;
/** 2^-32: la * INV_TWO32 is exact (a power-of-two scale), cheaper than a division. */
const INV_TWO32 = 1 / 4294967296;

/** Kinds of a pending access that left the CPU. */
export const PEND_NONE = 0;
export const PEND_MMIO = 1;
export const PEND_EPT = 2;
/** A write to the local APIC page, already performed: only the replay remains. */
export const PEND_APIC = 3;
/** An instruction fetch from a page that is not RAM (no instruction can be fetched from MMIO). */
export const PEND_FETCH = 4;

/** Handles the local APIC page (xAPIC MMIO) inside the vCPU. */
export interface ApicMmio {
  /** Page-aligned guest-physical base of the APIC page, or -1 when xAPIC MMIO is off. */
  mmioBase(): number;
  mmioRead(offset: number, size: number): number;
  mmioWrite(offset: number, size: number, value: number): void;
}

const LOG_MAX = 16;

export class MmuMemory implements CpuMemory {
  faultAddress = 0;
  /** CPL 3: user-mode access kinds. */
  user = false;
  /** Supervisor implicit accesses (GDT/LDT/IDT/TSS, stacks during delivery at CPL 0..2). */
  implicit = false;
  readonly mmu: Mmu;
  readonly space: AddressSpace;
  readonly host: HostMemory;
  readonly tlb: Tlb;
  // The TLB's arrays, held directly: a hit is then loads from this object and the arrays only.
  private readonly tTagLo: Int32Array;
  private readonly tTagHi: Int32Array;
  private readonly tPerm: Uint8Array;
  private readonly tChunk: Int32Array;
  private readonly tBase: Int32Array;
  private readonly tMask: number;
  cpu: Cpu | null = null;
  apic: ApicMmio | null = null;

  // The access that left the CPU (valid when pendKind !== PEND_NONE).
  pendKind: number = PEND_NONE;
  pendGpa = 0;
  pendLa = 0;
  pendSize = 0;
  pendWrite = false;
  pendLo = 0;
  pendHi = 0;
  pendQual = 0;

  // Replay log of completed accesses of the current instruction.
  private readonly logLa = new Float64Array(LOG_MAX);
  private readonly logSize = new Uint8Array(LOG_MAX);
  private readonly logWrite = new Uint8Array(LOG_MAX);
  private readonly logLo = new Int32Array(LOG_MAX);
  private readonly logHi = new Int32Array(LOG_MAX);
  logLen = 0;
  logPos = 0;
  private logRetired = -1;
  private logRcx = 0;
  private logRsi = 0;
  private logRdi = 0;
  // Data breakpoints (debug.ts): watched ranges; their pages never stay in the TLB, so every
  // access to them takes the slow path, which records hits in watchHits (DR6 B bits).
  watchMask = 0;
  watchHits = 0;
  private readonly watchLa = new Float64Array(4);
  private readonly watchPage = new Float64Array(4);
  private readonly watchLen = new Uint8Array(4);
  private readonly watchWriteOnly = new Uint8Array(4);

  /** High half of the last 8-byte value produced by the slow path. */
  private vHi = 0;
  private readonly out2 = new Int32Array(2);

  constructor(space: AddressSpace, mmu?: Mmu) {
    if (space.ept == null) throw new Error('MmuMemory: the address space needs an EPT');
    this.space = space;
    this.mmu = mmu ?? new Mmu(space.ept, space);
    this.host = this.mmu.host;
    this.tlb = this.mmu.tlb;
    this.tTagLo = this.tlb.tagLo;
    this.tTagHi = this.tlb.tagHi;
    this.tPerm = this.tlb.perm;
    this.tChunk = this.tlb.chunk;
    this.tBase = this.tlb.base;
    this.tMask = this.tlb.mask;
    // Writes to frames that hold decoded code (FRAME_CODE) invalidate the decode cache; the
    // watch is dropped at the first write so pages reused as data stay fast.
    const prev = this.host.onWatchedWrite;
    this.host.onWatchedWrite = (frame: number, flags: number): void => {
      if ((flags & FRAME_CODE) !== 0) {
        // Per-frame invalidation when the CPU keys its decode cache by frame (codePage), else a
        // generation bump that drops the whole cache.
        if (this.onCodeWrite != null) this.onCodeWrite(frame);
        else this.codeWrites++;
        this.host.setWatch(frame, FRAME_CODE, false);
      }
      if (prev != null) prev(frame, flags);
    };
    // Remaps below the guest (INVEPT, frames freed or shared) change what a linear code address
    // reaches without a guest TLB operation: count them as mapping changes too.
    const remap = { flushAll: (): void => void this.codeWrites++, dropWrite: (): void => {} };
    space.ept.attach(remap);
    this.host.addWriteCache(remap);
  }

  // ------------------------------------------------------------------ decode-cache support

  /**
   * Bumped by every write to a frame holding decoded instructions and by every event that can
   * change what a linear code address means or may do (CR3/CR0/CR4/EFER writes, INVLPG, CPL
   * changes, state loads): the CPU drops its decode cache when it changes.
   */
  codeWrites = 0;

  /**
   * Set by the CPU when it keys decoded instructions by host frame (see codePage): called with
   * the frame before a write lands in a frame holding decoded code.
   */
  onCodeWrite: ((frame: number) => void) | null = null;

  /**
   * Translates la for an instruction fetch now and watches its frame for writes: returns the host
   * frame (the decode cache's key), or -1 when the page cannot be cached (not RAM, a fault).
   */
  codePage(la: number): number {
    const c = this.xlate(la, this.user ? ACC_UX : ACC_SX);
    if (c !== 0) return -1;
    const f = this.mmu.result.frame;
    if (f <= 0) return -1;
    if ((this.host.flags[f] & FRAME_CODE) === 0) this.host.setWatch(f, FRAME_CODE, true);
    return f;
  }

  /** The page holding la (translated for fetch now) may be cached: its frame is watched. */
  markCode(la: number): boolean {
    const c = this.xlate(la, this.user ? ACC_UX : ACC_SX);
    if (c !== 0) return false;
    const f = this.mmu.result.frame;
    if (f <= 0) return false;
    if ((this.host.flags[f] & FRAME_CODE) === 0) this.host.setWatch(f, FRAME_CODE, true);
    return true;
  }

  /** Decoder fast path: up to n instruction bytes at la (stops at a page that is not fetchable RAM). */
  fetchBytes(la: number, dst: Uint8Array, n: number): number {
    let i = 0;
    const acc = this.user ? ACC_UX : ACC_SX;
    while (i < n) {
      const a = la + i;
      if (this.xlate(a, acc) !== 0) return i;
      const u8 = this.host.u8[this.rChunk];
      let idx = this.rIndex;
      let o = ((a % 4096) + 4096) % 4096;
      while (i < n && o < 4096) {
        dst[i++] = u8[idx++];
        o++;
      }
    }
    return i;
  }

  // ------------------------------------------------------------------ access kinds

  private accR(): number {
    if (this.implicit) return ACC_SR;
    if (this.user) return ACC_UR;
    return this.cpu != null && (this.cpu.flags & AC) !== 0 ? ACC_SRA : ACC_SR;
  }

  private accW(): number {
    if (this.implicit) return ACC_SW;
    if (this.user) return ACC_UW;
    return this.cpu != null && (this.cpu.flags & AC) !== 0 ? ACC_SWA : ACC_SW;
  }

  // ------------------------------------------------------------------ CpuMemory

  fetch8(la: number): number {
    if (la === la) {
      const hi = la >= 0 && la < TWO32 ? 0 : Math.floor(la * INV_TWO32) | 0;
      const i = (la >>> 12) & this.tMask;
      if (this.tTagLo[i] === ((la >>> 12) | this.mmu.pcidTag) && this.tTagHi[i] === hi && (this.tPerm[i] & (this.user ? ACC_UX : ACC_SX)) !== 0) {
        return this.host.u8[this.tChunk[i]][this.tBase[i] + (la & 4095)];
      }
    }
    return this.slowRead(la, 1, this.user ? ACC_UX : ACC_SX);
  }

  read8(la: number): number {
    if (la === la) {
      const hi = la >= 0 && la < TWO32 ? 0 : Math.floor(la * INV_TWO32) | 0;
      const i = (la >>> 12) & this.tMask;
      if (this.tTagLo[i] === ((la >>> 12) | this.mmu.pcidTag) && this.tTagHi[i] === hi && (this.tPerm[i] & this.accR()) !== 0) {
        return this.host.u8[this.tChunk[i]][this.tBase[i] + (la & 4095)];
      }
    }
    return this.slowRead(la, 1, this.accR());
  }

  read16(la: number): number {
    if ((la & 4095) <= 4094 && la === la) {
      const hi = la >= 0 && la < TWO32 ? 0 : Math.floor(la * INV_TWO32) | 0;
      const i = (la >>> 12) & this.tMask;
      if (this.tTagLo[i] === ((la >>> 12) | this.mmu.pcidTag) && this.tTagHi[i] === hi && (this.tPerm[i] & this.accR()) !== 0) {
        return this.host.dv[this.tChunk[i]].getUint16(this.tBase[i] + (la & 4095), true);
      }
    }
    return this.slowRead(la, 2, this.accR());
  }

  read32(la: number): number {
    if ((la & 4095) <= 4092 && la === la) {
      const hi = la >= 0 && la < TWO32 ? 0 : Math.floor(la * INV_TWO32) | 0;
      const i = (la >>> 12) & this.tMask;
      if (this.tTagLo[i] === ((la >>> 12) | this.mmu.pcidTag) && this.tTagHi[i] === hi && (this.tPerm[i] & this.accR()) !== 0) {
        return this.host.dv[this.tChunk[i]].getUint32(this.tBase[i] + (la & 4095), true);
      }
    }
    return this.slowRead(la, 4, this.accR());
  }

  read64(la: number, out: Int32Array, index: number): number {
    const hi = la >= 0 && la < TWO32 ? 0 : Math.floor(la * INV_TWO32) | 0;
    if ((la & 4095) <= 4088 && la === la) {
      const i = (la >>> 12) & this.tMask;
      if (this.tTagLo[i] === ((la >>> 12) | this.mmu.pcidTag) && this.tTagHi[i] === hi && (this.tPerm[i] & this.accR()) !== 0) {
        const dv = this.host.dv[this.tChunk[i]];
        const o = this.tBase[i] + (la & 4095);
        out[index] = dv.getInt32(o, true);
        out[index + 1] = dv.getInt32(o + 4, true);
        return 0;
      }
    }
    const v = this.slowRead(la, 8, this.accR());
    if (v < 0) return v;
    out[index] = v | 0;
    out[index + 1] = this.vHi;
    return 0;
  }

  write8(la: number, value: number): number {
    const hi = la >= 0 && la < TWO32 ? 0 : Math.floor(la * INV_TWO32) | 0;
    if (la === la) {
      const i = (la >>> 12) & this.tMask;
      if (this.tTagLo[i] === ((la >>> 12) | this.mmu.pcidTag) && this.tTagHi[i] === hi && (this.tPerm[i] & this.accW()) !== 0) {
        this.host.u8[this.tChunk[i]][this.tBase[i] + (la & 4095)] = value;
        return 0;
      }
    }
    return this.slowWrite(la, 1, value, 0, this.accW());
  }

  write16(la: number, value: number): number {
    const hi = la >= 0 && la < TWO32 ? 0 : Math.floor(la * INV_TWO32) | 0;
    if ((la & 4095) <= 4094 && la === la) {
      const i = (la >>> 12) & this.tMask;
      if (this.tTagLo[i] === ((la >>> 12) | this.mmu.pcidTag) && this.tTagHi[i] === hi && (this.tPerm[i] & this.accW()) !== 0) {
        this.host.dv[this.tChunk[i]].setUint16(this.tBase[i] + (la & 4095), value & 0xffff, true);
        return 0;
      }
    }
    return this.slowWrite(la, 2, value, 0, this.accW());
  }

  write32(la: number, value: number): number {
    if ((la & 4095) <= 4092 && la === la) {
      const hi = la >= 0 && la < TWO32 ? 0 : Math.floor(la * INV_TWO32) | 0;
      const i = (la >>> 12) & this.tMask;
      if (this.tTagLo[i] === ((la >>> 12) | this.mmu.pcidTag) && this.tTagHi[i] === hi && (this.tPerm[i] & this.accW()) !== 0) {
        this.host.dv[this.tChunk[i]].setInt32(this.tBase[i] + (la & 4095), value | 0, true);
        return 0;
      }
    }
    return this.slowWrite(la, 4, value, 0, this.accW());
  }

  write64(la: number, lo: number, hi: number): number {
    const h = la >= 0 && la < TWO32 ? 0 : Math.floor(la * INV_TWO32) | 0;
    if ((la & 4095) <= 4088 && la === la) {
      const i = (la >>> 12) & this.tMask;
      if (this.tTagLo[i] === ((la >>> 12) | this.mmu.pcidTag) && this.tTagHi[i] === h && (this.tPerm[i] & this.accW()) !== 0) {
        const dv = this.host.dv[this.tChunk[i]];
        const o = this.tBase[i] + (la & 4095);
        dv.setInt32(o, lo | 0, true);
        dv.setInt32(o + 4, hi | 0, true);
        return 0;
      }
    }
    return this.slowWrite(la, 8, lo, hi, this.accW());
  }

  /** Byte index of la in the array the last successful span() returned. */
  spanIndex = 0;

  /**
   * Bulk path (CpuMemory.span): the host bytes of la's page when the TLB allows the data access
   * kind outright (a write permission in the TLB means: RAM, dirty already set, frame not watched,
   * dirty logging armed). A miss translates (and fills) once; faults, exits, watched pages and
   * data breakpoints give null and are left to the ordinary accesses.
   */
  span(la: number, write: boolean): Uint8Array | null {
    if (la !== la || this.watchMask !== 0) return null;
    const acc = write ? this.accW() : this.accR();
    const hi = la >= 0 && la < TWO32 ? 0 : Math.floor(la * INV_TWO32) | 0;
    const i = (la >>> 12) & this.tMask;
    const tag = (la >>> 12) | this.mmu.pcidTag;
    if (this.tTagLo[i] !== tag || this.tTagHi[i] !== hi || (this.tPerm[i] & acc) === 0) {
      if (this.xlate(la, acc) !== 0) return null;
      if (this.tTagLo[i] !== tag || this.tTagHi[i] !== hi || (this.tPerm[i] & acc) === 0) return null;
    }
    this.spanIndex = this.tBase[i] + (la & 4095);
    return this.host.u8[this.tChunk[i]];
  }

  // ------------------------------------------------------------------ system accesses

  /** Implicit supervisor read (descriptor tables, TSS, IDT): value, or a negative code. */
  sysRead(la: number, size: number): number {
    const save = this.implicit;
    this.implicit = true;
    const v = this.slowRead(la, size, ACC_SR);
    this.implicit = save;
    return v;
  }

  /** Implicit supervisor write (accessed/busy bits): 0 or a negative code. */
  sysWrite(la: number, size: number, lo: number): number {
    const save = this.implicit;
    this.implicit = true;
    const c = this.slowWrite(la, size, lo, 0, ACC_SW);
    this.implicit = save;
    return c;
  }

  /** Stops watching every data breakpoint. */
  clearWatch(): void {
    if (this.watchMask !== 0) this.mmu.flushTlb();
    this.watchMask = 0;
  }

  /** Watches [la, la + len) for data breakpoint n (writes only, or reads and writes). */
  setWatch(n: number, la: number, len: number, writeOnly: boolean): void {
    this.watchLa[n] = la;
    this.watchPage[n] = Math.floor(la / 4096);
    this.watchLen[n] = len;
    this.watchWriteOnly[n] = writeOnly ? 1 : 0;
    this.watchMask |= 1 << n;
    this.mmu.flushTlb();
  }

  /** Records the data breakpoints an explicit access to [la, la + size) hits. */
  private watchAccess(la: number, size: number, write: boolean): void {
    for (let n = 0; n < 4; n++) {
      if ((this.watchMask & (1 << n)) === 0 || (!write && this.watchWriteOnly[n] !== 0)) continue;
      const a = this.watchLa[n];
      if (la < a + this.watchLen[n] && la + size > a) this.watchHits |= 1 << n;
    }
  }

  /** After a translation filled the TLB: a watched page's entry is dropped again. */
  private watchUnmap(la: number, lo: number): void {
    const page = Math.floor(la / 4096);
    for (let n = 0; n < 4; n++) {
      if ((this.watchMask & (1 << n)) !== 0 && this.watchPage[n] === page) {
        this.tlb.perm[(lo >>> 12) & this.tlb.mask] = 0;
        return;
      }
    }
  }

  /** Checks that [la, la + size) is writable with the current kind, without writing. 0 or a code. */
  probeWrite(la: number, size: number): number {
    const acc = this.accW();
    for (let p = la; ; ) {
      const c = this.xlate(p, acc);
      if (c !== 0) return c;
      const next = p - (((p % 4096) + 4096) % 4096) + 4096;
      if (next >= la + size) return 0;
      p = next;
    }
  }

  /** Host location of the last successful translation (after xlate returned 0). */
  private rChunk = 0;
  private rIndex = 0;

  /** Translates la for acc: 0 (rChunk/rIndex set), a #PF code, or MEM_EXIT-style codes (-2: not RAM). */
  private xlate(la: number, acc: number): number {
    if (la !== la) return MEM_PF_BASE;
    const lo = la >>> 0;
    const hi = la >= 0 && la < TWO32 ? 0 : Math.floor(la / TWO32) | 0;
    const mmu = this.mmu;
    const st = mmu.translate(lo, hi, acc);
    const r = mmu.result;
    if (st === XLATE_OK) {
      this.rChunk = r.chunk;
      this.rIndex = r.index;
      if (this.watchMask !== 0) this.watchUnmap(la, lo);
      return 0;
    }
    if (st === XLATE_PAGE_FAULT) {
      this.faultAddress = (r.cr2Hi | 0) * TWO32 + (r.cr2Lo >>> 0);
      return MEM_PF_BASE - r.errorCode;
    }
    return MEM_EXIT;
  }

  private slowRead(la: number, size: number, acc: number): number {
    if (la !== la) return MEM_PF_BASE;
    if (this.watchMask !== 0 && !this.implicit && (acc & (ACC_SX | ACC_UX)) === 0) this.watchAccess(la, size, false);
    const off = ((la % 4096) + 4096) % 4096;
    if (off + size > 4096) {
      // Page-crossing: byte by byte (reads have no side effects on RAM; a fault aborts).
      let lo = 0;
      let hi = 0;
      for (let k = 0; k < size; k++) {
        const b = this.slowRead(la + k, 1, acc);
        if (b < 0) return b;
        if (k < 4) lo |= b << (8 * k);
        else hi |= b << (8 * (k - 4));
      }
      this.vHi = hi;
      return lo >>> 0;
    }
    const c = this.xlate(la, acc);
    if (c === 0) {
      const dv = this.host.dv[this.rChunk];
      const idx = this.rIndex;
      if (size === 1) return this.host.u8[this.rChunk][idx];
      if (size === 2) return dv.getUint16(idx, true);
      if (size === 4) return dv.getUint32(idx, true);
      this.vHi = dv.getInt32(idx + 4, true);
      return dv.getUint32(idx, true);
    }
    if (c !== MEM_EXIT) return c;
    return this.leave(la, size, false, 0, 0, acc);
  }

  private slowWrite(la: number, size: number, lo: number, hi: number, acc: number): number {
    if (la !== la) return MEM_PF_BASE;
    if (this.watchMask !== 0 && !this.implicit) this.watchAccess(la, size, true);
    const off = ((la % 4096) + 4096) % 4096;
    if (off + size > 4096) {
      // Page-crossing: both pages must allow the write before any byte is written.
      const second = la - off + 4096;
      let c = this.xlate(la, acc);
      if (c !== 0 && c !== MEM_EXIT) return c;
      c = this.xlate(second, acc);
      if (c !== 0 && c !== MEM_EXIT) return c;
      for (let k = 0; k < size; k++) {
        const b = k < 4 ? (lo >>> (8 * k)) & 0xff : (hi >>> (8 * (k - 4))) & 0xff;
        const r = this.slowWrite(la + k, 1, b, 0, acc);
        if (r < 0) return r;
      }
      return 0;
    }
    const c = this.xlate(la, acc);
    if (c === 0) {
      const dv = this.host.dv[this.rChunk];
      const idx = this.rIndex;
      if (size === 1) this.host.u8[this.rChunk][idx] = lo;
      else if (size === 2) dv.setUint16(idx, lo & 0xffff, true);
      else if (size === 4) dv.setInt32(idx, lo | 0, true);
      else {
        dv.setInt32(idx, lo | 0, true);
        dv.setInt32(idx + 4, hi | 0, true);
      }
      return 0;
    }
    if (c !== MEM_EXIT) return c;
    return this.leave(la, size, true, lo, hi, acc);
  }

  // ------------------------------------------------------------------ exits and replay

  /** An access to something that is not RAM: replay it from the log, or record it and exit. */
  private leave(la: number, size: number, write: boolean, lo: number, hi: number, acc: number): number {
    const r = this.mmu.result;
    const gpa = r.faultGpa;
    const cpu = this.cpu;
    if ((acc & (ACC_SX | ACC_UX)) !== 0) {
      this.record(PEND_FETCH, la, gpa, size, false, 0, 0, r.exitQual);
      return MEM_EXIT;
    }
    // APIC reads are synchronous.
    const apic = this.apic;
    if (apic != null && !write) {
      const base = apic.mmioBase();
      if (base >= 0 && gpa >= base && gpa < base + 4096) {
        this.vHi = 0;
        return apic.mmioRead(gpa - base, size) >>> 0;
      }
    }
    if (this.logLen > 0 && cpu != null) {
      if (this.logRetired !== cpu.retired || this.logRcx !== cpu.lo[RCX] || this.logRsi !== cpu.lo[RSI] || this.logRdi !== cpu.lo[RDI]) {
        this.logLen = 0;
        this.logPos = 0;
      } else if (this.logPos < this.logLen) {
        const p = this.logPos;
        if (this.logLa[p] === la && this.logSize[p] === size && (this.logWrite[p] !== 0) === write) {
          this.logPos++;
          if (write) return 0;
          this.vHi = this.logHi[p];
          return this.logLo[p] >>> 0;
        }
        this.logLen = 0;
        this.logPos = 0;
      }
    }
    if (this.logLen >= LOG_MAX) {
      // More device accesses in one instruction than the log holds: cannot happen with real
      // instructions; report it as an exit the machine cannot complete.
      this.record(PEND_FETCH, la, gpa, size, write, lo, hi, 0);
      return MEM_EXIT;
    }
    if (apic != null && write) {
      const base = apic.mmioBase();
      if (base >= 0 && gpa >= base && gpa < base + 4096) {
        apic.mmioWrite(gpa - base, size, lo);
        this.record(PEND_APIC, la, gpa, size, true, lo, hi, 0);
        return MEM_EXIT;
      }
    }
    const kind = this.space.mmioAt(gpa) >= 0 && (r.exitQual & QUAL_FINAL) !== 0 ? PEND_MMIO : PEND_EPT;
    this.record(kind, la, gpa, size, write, lo, hi, r.exitQual);
    return MEM_EXIT;
  }

  private record(kind: number, la: number, gpa: number, size: number, write: boolean, lo: number, hi: number, qual: number): void {
    this.pendKind = kind;
    this.pendLa = la;
    this.pendGpa = gpa;
    this.pendSize = size;
    this.pendWrite = write;
    this.pendLo = lo | 0;
    this.pendHi = hi | 0;
    this.pendQual = qual;
  }

  /**
   * Completes the pending access (the data of a read in lo/hi) and arms the replay of the
   * instruction: the next attempt gets the logged results in order.
   */
  complete(lo: number, hi: number): void {
    const cpu = this.cpu;
    if (this.pendKind === PEND_NONE || cpu == null) return;
    if (this.logLen === 0 || this.logRetired !== cpu.retired || this.logRcx !== cpu.lo[RCX] || this.logRsi !== cpu.lo[RSI] || this.logRdi !== cpu.lo[RDI]) {
      this.logLen = 0;
      this.logRetired = cpu.retired;
      this.logRcx = cpu.lo[RCX];
      this.logRsi = cpu.lo[RSI];
      this.logRdi = cpu.lo[RDI];
    }
    const p = this.logLen++;
    this.logLa[p] = this.pendLa;
    this.logSize[p] = this.pendSize;
    this.logWrite[p] = this.pendWrite ? 1 : 0;
    const sz = this.pendSize;
    this.logLo[p] = this.pendWrite ? this.pendLo : sz >= 4 ? lo | 0 : lo & ((1 << (8 * sz)) - 1);
    this.logHi[p] = this.pendWrite ? this.pendHi : sz === 8 ? hi | 0 : 0;
    this.logPos = 0;
    this.pendKind = PEND_NONE;
  }

  /** Drops the pending access without logging it (the machine fixed the mapping: retry for real). */
  retry(): void {
    this.pendKind = PEND_NONE;
    this.logPos = 0;
  }

  /** Forgets the replay log (state import, reset). */
  clearLog(): void {
    this.logLen = 0;
    this.logPos = 0;
    this.pendKind = PEND_NONE;
  }

  /** Reads guest-linear memory for debuggers/tests (no exits: non-RAM reads as -1). */
  peek8(la: number): number {
    const c = this.xlate(la, ACC_SR);
    return c === 0 ? this.host.u8[this.rChunk][this.rIndex] : -1;
  }

  /** Scratch for 64-bit helpers. */
  get scratch(): Int32Array {
    return this.out2;
  }
}
