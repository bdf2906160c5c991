/**
 * Paged user memory for the user-mode runner: a sparse 47-bit address space of 4 KiB pages,
 * each with Linux protection bits (PROT_READ/WRITE/EXEC), implementing the CPU's CpuMemory.
 *
 * - Pages live in a Map keyed by page number; a page's bytes are allocated on the first write
 *   (until then reads see a shared zero page), so a large anonymous mmap costs one Map entry
 *   per page and no data.
 * - Three small direct-mapped TLBs (read, write, fetch; 256 entries each, keyed by page number)
 *   make the common access a tag compare and byte math, without allocation. Any change of
 *   mapping or protection flushes them.
 * - Access rules are the hardware's with NX: a read needs PROT_READ, a write PROT_WRITE, an
 *   instruction fetch PROT_EXEC. A miss is a page fault (MEM_PF_BASE - error code) with the
 *   P bit set when the page is mapped (protection violation), U always, W for writes, I for
 *   fetches; faultAddress is the first faulting byte. Negative (kernel half) and NaN
 *   addresses fault like unmapped ones. An access that crosses a page boundary is checked on
 *   both pages before anything is written.
 *
 * Isomorphic: no Node built-ins.
 */
import { MEM_PF_BASE, PFEC_I, PFEC_P, PFEC_U, PFEC_W, type CpuMemory } from '../memory';

export const PAGE_SIZE = 4096;
export const PROT_NONE = 0;
export const PROT_READ = 1;
export const PROT_WRITE = 2;
export const PROT_EXEC = 4;

/** Lowest address above user space (2^47): every user mapping ends at or below it. */
export const USER_TOP = 0x8000_0000_0000;

const TLB_SIZE = 256;
const TLB_MASK = TLB_SIZE - 1;
const ZERO_PAGE = new Uint8Array(PAGE_SIZE);
const ZERO_PAGE32 = new Int32Array(ZERO_PAGE.buffer);
/** Aligned 32/64-bit accesses use an Int32Array view of the page on little-endian hosts (all x86/Arm ones). */
const LE = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** One 4 KiB page: its bytes (null: all zero, not yet written), its protection, and whether the CPU caches decoded code from it. */
class Page {
  data: Uint8Array | null;
  /** The same bytes as little-endian int32 words (aligned accesses), with data. */
  data32: Int32Array | null;
  prot: number;
  code: boolean;
  constructor(prot: number) {
    this.data = null;
    this.data32 = null;
    this.prot = prot;
    this.code = false;
  }
}

/** Options of UserMemory. */
export interface UserMemoryOptions {
  /** Most pages that may be mapped at once (default 512 Ki pages = 2 GiB of address space). */
  maxPages?: number;
}

export class UserMemory implements CpuMemory {
  faultAddress = 0;
  /**
   * Decode-cache generation (CpuMemory.codeWrites): bumped by every write to a page marked as
   * code (markCode) and by every change of mapping or protection of such a page, so the CPU
   * drops decoded instructions that may be stale. Code pages never enter the write TLB.
   */
  codeWrites = 0;
  /** Pages mapped (reserved address space), and pages holding their own bytes. */
  mappedPages = 0;
  residentPages = 0;
  readonly maxPages: number;
  private readonly pages = new Map<number, Page>();
  private readonly rTag = new Float64Array(TLB_SIZE).fill(NaN);
  private readonly wTag = new Float64Array(TLB_SIZE).fill(NaN);
  private readonly fTag = new Float64Array(TLB_SIZE).fill(NaN);
  private readonly rData: Uint8Array[] = new Array<Uint8Array>(TLB_SIZE).fill(ZERO_PAGE);
  private readonly wData: Uint8Array[] = new Array<Uint8Array>(TLB_SIZE).fill(ZERO_PAGE);
  private readonly fData: Uint8Array[] = new Array<Uint8Array>(TLB_SIZE).fill(ZERO_PAGE);
  private readonly rData32: Int32Array[] = new Array<Int32Array>(TLB_SIZE).fill(ZERO_PAGE32);
  private readonly wData32: Int32Array[] = new Array<Int32Array>(TLB_SIZE).fill(ZERO_PAGE32);

  constructor(options: UserMemoryOptions = {}) {
    this.maxPages = options.maxPages ?? 1 << 19;
  }

  // ------------------------------------------------------------------ mapping

  /** True when [start, start + length) lies in user space and is page aligned at start. */
  static validRange(start: number, length: number): boolean {
    return (
      Number.isSafeInteger(start) && Number.isSafeInteger(length) && start >= 0 && length >= 0 && start % PAGE_SIZE === 0 && start + length <= USER_TOP
    );
  }

  /**
   * Maps [start, start + length) (rounded out to pages) with `prot`, zero-filled, replacing
   * whatever was there. Returns false (nothing changed) when the range is invalid or the page
   * limit would be exceeded.
   */
  map(start: number, length: number, prot: number): boolean {
    if (!UserMemory.validRange(start, length)) return false;
    const first = start / PAGE_SIZE;
    const end = Math.ceil((start + length) / PAGE_SIZE);
    let added = 0;
    for (let pn = first; pn < end; pn++) if (!this.pages.has(pn)) added++;
    if (this.mappedPages + added > this.maxPages) return false;
    for (let pn = first; pn < end; pn++) {
      const old = this.pages.get(pn);
      if (old?.data) this.residentPages--;
      if (old?.code) this.codeWrites++;
      this.pages.set(pn, new Page(prot & 7));
    }
    this.mappedPages += added;
    this.flush();
    return true;
  }

  /** Unmaps every page of [start, start + length) (unmapped pages are skipped). */
  unmap(start: number, length: number): boolean {
    if (!UserMemory.validRange(start, length)) return false;
    const first = start / PAGE_SIZE;
    const end = Math.ceil((start + length) / PAGE_SIZE);
    if (end - first > this.pages.size) {
      for (const [pn, p] of this.pages) if (pn >= first && pn < end) this.drop(pn, p);
    } else {
      for (let pn = first; pn < end; pn++) {
        const p = this.pages.get(pn);
        if (p) this.drop(pn, p);
      }
    }
    this.flush();
    return true;
  }

  private drop(pn: number, p: Page): void {
    if (p.data) this.residentPages--;
    if (p.code) this.codeWrites++;
    this.mappedPages--;
    this.pages.delete(pn);
  }

  /** Changes the protection of [start, start + length); false (nothing changed) if a page is unmapped. */
  protect(start: number, length: number, prot: number): boolean {
    if (!UserMemory.validRange(start, length)) return false;
    const first = start / PAGE_SIZE;
    const end = Math.ceil((start + length) / PAGE_SIZE);
    for (let pn = first; pn < end; pn++) if (!this.pages.has(pn)) return false;
    for (let pn = first; pn < end; pn++) {
      const p = this.pages.get(pn)!;
      if (p.code) this.codeWrites++;
      p.prot = prot & 7;
    }
    this.flush();
    return true;
  }

  /** True when no page of [start, start + length) is mapped. */
  isFree(start: number, length: number): boolean {
    if (!UserMemory.validRange(start, length)) return false;
    const first = start / PAGE_SIZE;
    const end = Math.ceil((start + length) / PAGE_SIZE);
    if (end - first > this.pages.size) {
      for (const pn of this.pages.keys()) if (pn >= first && pn < end) return false;
      return true;
    }
    for (let pn = first; pn < end; pn++) if (this.pages.has(pn)) return false;
    return true;
  }

  /** Protection of the page holding `la`, or -1 when unmapped. */
  protOf(la: number): number {
    const p = this.pages.get(Math.floor(la / PAGE_SIZE));
    return p ? p.prot : -1;
  }

  /**
   * A copy of the whole address space (fork): the same mappings and protections, each
   * resident page copied (pages never written stay shared zero pages).
   */
  fork(): UserMemory {
    const m = new UserMemory({ maxPages: this.maxPages });
    for (const [pn, p] of this.pages) {
      const q = new Page(p.prot);
      if (p.data) {
        q.data = p.data.slice();
        q.data32 = new Int32Array(q.data.buffer);
      }
      m.pages.set(pn, q);
    }
    m.mappedPages = this.mappedPages;
    m.residentPages = this.residentPages;
    return m;
  }

  /** Forgets every cached translation (after any change of mapping or protection). */
  flush(): void {
    this.rTag.fill(NaN);
    this.wTag.fill(NaN);
    this.fTag.fill(NaN);
  }

  /** The page's own bytes, allocated on first use (read/fetch TLB entries that showed the zero page follow). */
  private own(pn: number, p: Page): Uint8Array {
    let d = p.data;
    if (!d) {
      d = p.data = new Uint8Array(PAGE_SIZE);
      p.data32 = new Int32Array(d.buffer);
      this.residentPages++;
      const i = pn & TLB_MASK;
      if (this.rTag[i] === pn) {
        this.rData[i] = d;
        this.rData32[i] = p.data32;
      }
      if (this.fTag[i] === pn) this.fData[i] = d;
    }
    return d;
  }

  /**
   * CpuMemory.markCode: the CPU will cache decoded instructions of the page holding la. From
   * now on every write to it bumps codeWrites. False when the page is not mapped.
   */
  markCode(la: number): boolean {
    if (!(la >= 0 && la < USER_TOP)) return false;
    const pn = Math.floor(la / PAGE_SIZE);
    const p = this.pages.get(pn);
    if (!p) return false;
    if (!p.code) {
      p.code = true;
      const i = pn & TLB_MASK;
      if (this.wTag[i] === pn) this.wTag[i] = NaN;
    }
    return true;
  }

  // ------------------------------------------------------------------ bulk access (kernel, loader)

  /**
   * Copies guest memory [la, la + dst.length) into dst. The pages must be mapped and have all
   * the `need` protection bits (PROT_READ for the kernel's copy_from_user; 0 for the loader).
   * Returns false (EFAULT) otherwise; dst may then be partly filled.
   */
  readInto(la: number, dst: Uint8Array, need: number = PROT_READ): boolean {
    const n = dst.length;
    if (!(Number.isSafeInteger(la) && la >= 0 && la + n <= USER_TOP)) return n === 0;
    let done = 0;
    while (done < n) {
      const a = la + done;
      const pn = Math.floor(a / PAGE_SIZE);
      const off = a - pn * PAGE_SIZE;
      const k = Math.min(PAGE_SIZE - off, n - done);
      const p = this.pages.get(pn);
      if (!p || (p.prot & need) !== need) return false;
      if (p.data) dst.set(p.data.subarray(off, off + k), done);
      else dst.fill(0, done, done + k);
      done += k;
    }
    return true;
  }

  /** True when every page of [la, la + length) is mapped with all the `need` protection bits. */
  accessible(la: number, length: number, need: number): boolean {
    if (length === 0) return true;
    if (!(Number.isSafeInteger(la) && Number.isSafeInteger(length) && la >= 0 && length > 0 && la + length <= USER_TOP)) return false;
    const first = Math.floor(la / PAGE_SIZE);
    const last = Math.floor((la + length - 1) / PAGE_SIZE);
    if (last - first >= this.mappedPages) return false;
    for (let pn = first; pn <= last; pn++) {
      const p = this.pages.get(pn);
      if (!p || (p.prot & need) !== need) return false;
    }
    return true;
  }

  /** A fresh copy of [la, la + length), or null on EFAULT. */
  readBytes(la: number, length: number, need: number = PROT_READ): Uint8Array | null {
    if (!(length >= 0 && length <= 0x7fff_ffff)) return null;
    const out = new Uint8Array(length);
    return this.readInto(la, out, need) ? out : null;
  }

  /**
   * Copies src into guest memory at la. All pages must be mapped with the `need` bits
   * (PROT_WRITE for copy_to_user, 0 for the loader); they are checked before anything is
   * written, so a false return (EFAULT) changed nothing.
   */
  writeFrom(la: number, src: Uint8Array, need: number = PROT_WRITE): boolean {
    const n = src.length;
    if (n === 0) return true;
    if (!(Number.isSafeInteger(la) && la >= 0 && la + n <= USER_TOP)) return false;
    const first = Math.floor(la / PAGE_SIZE);
    const last = Math.floor((la + n - 1) / PAGE_SIZE);
    for (let pn = first; pn <= last; pn++) {
      const p = this.pages.get(pn);
      if (!p || (p.prot & need) !== need) return false;
    }
    let done = 0;
    while (done < n) {
      const a = la + done;
      const pn = Math.floor(a / PAGE_SIZE);
      const off = a - pn * PAGE_SIZE;
      const k = Math.min(PAGE_SIZE - off, n - done);
      const p = this.pages.get(pn)!;
      if (p.code) this.codeWrites++;
      this.own(pn, p).set(src.subarray(done, done + k), off);
      done += k;
    }
    return true;
  }

  /** Reads a NUL-terminated string of at most `max` bytes (without the NUL), or null (EFAULT / too long). */
  readCString(la: number, max = 4096): Uint8Array | null {
    const out = new Uint8Array(Math.min(max, 64));
    let buf = out;
    for (let i = 0; i < max; i++) {
      const b = this.read8(la + i);
      if (b < 0) return null;
      if (b === 0) return buf.slice(0, i);
      if (i >= buf.length) {
        const bigger = new Uint8Array(Math.min(max, buf.length * 2));
        bigger.set(buf);
        buf = bigger;
      }
      buf[i] = b;
    }
    return null;
  }

  // ------------------------------------------------------------------ CpuMemory

  private fault(la: number, write: boolean, fetch: boolean): number {
    let code = PFEC_U;
    if (write) code |= PFEC_W;
    if (fetch) code |= PFEC_I;
    if (la === la && la >= 0 && la < USER_TOP && this.pages.has(Math.floor(la / PAGE_SIZE))) code |= PFEC_P;
    this.faultAddress = la === la ? la : 0;
    return MEM_PF_BASE - code;
  }

  /** Fills a read/fetch TLB entry for the page of la; returns its bytes or null (fault). */
  private fillRead(la: number, need: number): Uint8Array | null {
    if (!(la >= 0 && la < USER_TOP)) return null;
    const pn = Math.floor(la / PAGE_SIZE);
    const p = this.pages.get(pn);
    if (!p || (p.prot & need) === 0) return null;
    const d = p.data ?? ZERO_PAGE;
    const i = pn & TLB_MASK;
    if (need === PROT_EXEC) {
      this.fTag[i] = pn;
      this.fData[i] = d;
    } else {
      this.rTag[i] = pn;
      this.rData[i] = d;
      this.rData32[i] = p.data32 ?? ZERO_PAGE32;
    }
    return d;
  }

  private fillWrite(la: number): Uint8Array | null {
    if (!(la >= 0 && la < USER_TOP)) return null;
    const pn = Math.floor(la / PAGE_SIZE);
    const p = this.pages.get(pn);
    if (!p || (p.prot & PROT_WRITE) === 0) return null;
    const d = this.own(pn, p);
    if (p.code) {
      this.codeWrites++; // not cached: every write to a code page comes back here
      return d;
    }
    const i = pn & TLB_MASK;
    this.wTag[i] = pn;
    this.wData[i] = d;
    this.wData32[i] = p.data32!;
    return d;
  }

  fetch8(la: number): number {
    const pn = Math.floor(la / PAGE_SIZE);
    const i = pn & TLB_MASK;
    if (this.fTag[i] === pn) return this.fData[i][la - pn * PAGE_SIZE];
    const d = this.fillRead(la, PROT_EXEC);
    return d ? d[la - pn * PAGE_SIZE] : this.fault(la, false, true);
  }

  /** The decoder's fast path: up to n fetchable bytes at la into dst (stops where fetch8 would fault). */
  fetchBytes(la: number, dst: Uint8Array, n: number): number {
    const pn = Math.floor(la / PAGE_SIZE);
    const i = pn & TLB_MASK;
    const d = this.fTag[i] === pn ? this.fData[i] : this.fillRead(la, PROT_EXEC);
    if (!d) return 0;
    const o = la - pn * PAGE_SIZE;
    const m = n < PAGE_SIZE - o ? n : PAGE_SIZE - o;
    for (let k = 0; k < m; k++) dst[k] = d[o + k];
    if (m === n) return n;
    // The window crosses into the next page: take what of it is executable.
    const q = pn + 1;
    const j = q & TLB_MASK;
    const e = this.fTag[j] === q ? this.fData[j] : this.fillRead(q * PAGE_SIZE, PROT_EXEC);
    if (!e) return m;
    for (let k = m; k < n; k++) dst[k] = e[k - m];
    return n;
  }

  read8(la: number): number {
    const pn = Math.floor(la / PAGE_SIZE);
    const i = pn & TLB_MASK;
    if (this.rTag[i] === pn) return this.rData[i][la - pn * PAGE_SIZE];
    const d = this.fillRead(la, PROT_READ);
    return d ? d[la - pn * PAGE_SIZE] : this.fault(la, false, false);
  }

  read16(la: number): number {
    const pn = Math.floor(la / PAGE_SIZE);
    const o = la - pn * PAGE_SIZE;
    if (o <= PAGE_SIZE - 2) {
      const i = pn & TLB_MASK;
      const d = this.rTag[i] === pn ? this.rData[i] : this.fillRead(la, PROT_READ);
      if (!d) return this.fault(la, false, false);
      return d[o] | (d[o + 1] << 8);
    }
    const a = this.read8(la);
    if (a < 0) return a;
    const b = this.read8(la + 1);
    return b < 0 ? b : a | (b << 8);
  }

  read32(la: number): number {
    const pn = Math.floor(la / PAGE_SIZE);
    const o = la - pn * PAGE_SIZE;
    const i = pn & TLB_MASK;
    if ((o & 3) === 0 && this.rTag[i] === pn && LE) return this.rData32[i][o >> 2] >>> 0;
    return this.read32Slow(la);
  }

  /** read32 for unaligned, page-crossing and TLB-miss accesses. */
  private read32Slow(la: number): number {
    const pn = Math.floor(la / PAGE_SIZE);
    const o = la - pn * PAGE_SIZE;
    if (o <= PAGE_SIZE - 4) {
      const i = pn & TLB_MASK;
      const d = this.rTag[i] === pn ? this.rData[i] : this.fillRead(la, PROT_READ);
      if (!d) return this.fault(la, false, false);
      return (d[o] | (d[o + 1] << 8) | (d[o + 2] << 16) | (d[o + 3] << 24)) >>> 0;
    }
    return this.readSplit(la, 4);
  }

  read64(la: number, out: Int32Array, index: number): number {
    const pn = Math.floor(la / PAGE_SIZE);
    const o = la - pn * PAGE_SIZE;
    const i = pn & TLB_MASK;
    if ((o & 3) === 0 && o <= PAGE_SIZE - 8 && this.rTag[i] === pn && LE) {
      const w = this.rData32[i];
      out[index] = w[o >> 2];
      out[index + 1] = w[(o >> 2) + 1];
      return 0;
    }
    return this.read64Slow(la, out, index);
  }

  /** read64 for unaligned, page-crossing and TLB-miss accesses. */
  private read64Slow(la: number, out: Int32Array, index: number): number {
    const pn = Math.floor(la / PAGE_SIZE);
    const o = la - pn * PAGE_SIZE;
    if (o <= PAGE_SIZE - 8) {
      const i = pn & TLB_MASK;
      const d = this.rTag[i] === pn ? this.rData[i] : this.fillRead(la, PROT_READ);
      if (!d) return this.fault(la, false, false);
      out[index] = d[o] | (d[o + 1] << 8) | (d[o + 2] << 16) | (d[o + 3] << 24);
      out[index + 1] = d[o + 4] | (d[o + 5] << 8) | (d[o + 6] << 16) | (d[o + 7] << 24);
      return 0;
    }
    const lo = this.readSplit(la, 4);
    if (lo < 0) return lo;
    const hi = this.readSplit(la + 4, 4);
    if (hi < 0) return hi;
    out[index] = lo | 0;
    out[index + 1] = hi | 0;
    return 0;
  }

  /** A read of n (<= 4) bytes that may cross a page boundary, byte by byte. */
  private readSplit(la: number, n: number): number {
    let v = 0;
    for (let k = 0; k < n; k++) {
      const b = this.read8(la + k);
      if (b < 0) return b;
      v += b * 2 ** (8 * k);
    }
    return v;
  }

  write8(la: number, value: number): number {
    const pn = Math.floor(la / PAGE_SIZE);
    const i = pn & TLB_MASK;
    const d = this.wTag[i] === pn ? this.wData[i] : this.fillWrite(la);
    if (!d) return this.fault(la, true, false);
    d[la - pn * PAGE_SIZE] = value;
    return 0;
  }

  write16(la: number, value: number): number {
    const pn = Math.floor(la / PAGE_SIZE);
    const o = la - pn * PAGE_SIZE;
    if (o <= PAGE_SIZE - 2) {
      const i = pn & TLB_MASK;
      const d = this.wTag[i] === pn ? this.wData[i] : this.fillWrite(la);
      if (!d) return this.fault(la, true, false);
      d[o] = value;
      d[o + 1] = value >> 8;
      return 0;
    }
    return this.writeSplit(la, 2, value, 0);
  }

  write32(la: number, value: number): number {
    const pn = Math.floor(la / PAGE_SIZE);
    const o = la - pn * PAGE_SIZE;
    const i = pn & TLB_MASK;
    if ((o & 3) === 0 && this.wTag[i] === pn && LE) {
      this.wData32[i][o >> 2] = value;
      return 0;
    }
    return this.write32Slow(la, value);
  }

  /** write32 for unaligned, page-crossing and TLB-miss accesses. */
  private write32Slow(la: number, value: number): number {
    const pn = Math.floor(la / PAGE_SIZE);
    const o = la - pn * PAGE_SIZE;
    if (o <= PAGE_SIZE - 4) {
      const i = pn & TLB_MASK;
      const d = this.wTag[i] === pn ? this.wData[i] : this.fillWrite(la);
      if (!d) return this.fault(la, true, false);
      d[o] = value;
      d[o + 1] = value >> 8;
      d[o + 2] = value >> 16;
      d[o + 3] = value >> 24;
      return 0;
    }
    return this.writeSplit(la, 4, value, 0);
  }

  write64(la: number, lo: number, hi: number): number {
    const pn = Math.floor(la / PAGE_SIZE);
    const o = la - pn * PAGE_SIZE;
    const i = pn & TLB_MASK;
    if ((o & 3) === 0 && o <= PAGE_SIZE - 8 && this.wTag[i] === pn && LE) {
      const w = this.wData32[i];
      w[o >> 2] = lo;
      w[(o >> 2) + 1] = hi;
      return 0;
    }
    return this.write64Slow(la, lo, hi);
  }

  /** write64 for unaligned, page-crossing and TLB-miss accesses. */
  private write64Slow(la: number, lo: number, hi: number): number {
    const pn = Math.floor(la / PAGE_SIZE);
    const o = la - pn * PAGE_SIZE;
    if (o <= PAGE_SIZE - 8) {
      const i = pn & TLB_MASK;
      const d = this.wTag[i] === pn ? this.wData[i] : this.fillWrite(la);
      if (!d) return this.fault(la, true, false);
      d[o] = lo;
      d[o + 1] = lo >> 8;
      d[o + 2] = lo >> 16;
      d[o + 3] = lo >> 24;
      d[o + 4] = hi;
      d[o + 5] = hi >> 8;
      d[o + 6] = hi >> 16;
      d[o + 7] = hi >> 24;
      return 0;
    }
    return this.writeSplit(la, 8, lo, hi);
  }

  /** A write that crosses a page boundary: both pages checked first, then byte by byte. */
  private writeSplit(la: number, n: number, lo: number, hi: number): number {
    if (!this.fillWrite(la)) return this.fault(la, true, false);
    if (!this.fillWrite(la + n - 1)) return this.fault(Math.ceil(la / PAGE_SIZE) * PAGE_SIZE, true, false);
    for (let k = 0; k < n; k++) {
      const v = k < 4 ? lo >> (8 * k) : hi >> (8 * (k - 4));
      this.write8(la + k, v);
    }
    return 0;
  }
}
