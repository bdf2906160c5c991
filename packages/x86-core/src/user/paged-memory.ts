/**
 * A sparse, paged CpuMemory for user-mode programs: 4 KiB pages allocated on map(), with
 * read/write/execute permissions, a small direct-mapped TLB in typed arrays, and page faults
 * (with the architectural error code) for unmapped or forbidden accesses. Linear address ==
 * guest address; there is no page-table walk here (that is mmu-ept's job for system mode).
 */
import { MEM_PF_BASE, PFEC_I, PFEC_P, PFEC_U, PFEC_W, type CpuMemory } from '../memory';

export const PROT_READ = 1;
export const PROT_WRITE = 2;
export const PROT_EXEC = 4;
export const PAGE = 4096;
const TLB = 256;

/** One mapped page: its bytes and permissions. */
interface Page {
  data: Uint8Array;
  prot: number;
  /** The CPU caches decoded instructions from this page: writes bump codeWrites. */
  code: boolean;
}

export class PagedMemory implements CpuMemory {
  faultAddress = 0;
  private readonly pages = new Map<number, Page>();
  private readonly tlbTag = new Float64Array(TLB).fill(-1);
  private readonly tlbData: Uint8Array[] = new Array<Uint8Array>(TLB).fill(new Uint8Array(PAGE));
  private readonly tlbProt = new Uint8Array(TLB);
  /** Upper bound on mapped bytes (hostile programs cannot exhaust the host). */
  readonly limit: number;
  private mapped = 0;

  constructor(limitBytes: number = 1 << 30) {
    this.limit = limitBytes;
  }

  /** Bytes currently mapped. */
  get mappedBytes(): number {
    return this.mapped;
  }

  /** Maps [addr, addr + len) (page-rounded) with prot; existing pages keep data, get prot. False over the limit. */
  map(addr: number, len: number, prot: number): boolean {
    const first = Math.floor(addr / PAGE);
    const last = Math.floor((addr + len - 1) / PAGE);
    if (len <= 0) return true;
    let fresh = 0;
    for (let p = first; p <= last; p++) if (!this.pages.has(p)) fresh++;
    if (this.mapped + fresh * PAGE > this.limit) return false;
    for (let p = first; p <= last; p++) {
      const pg = this.pages.get(p);
      if (pg) pg.prot = prot;
      else {
        this.pages.set(p, { data: new Uint8Array(PAGE), prot, code: false });
        this.mapped += PAGE;
      }
    }
    this.flush();
    return true;
  }

  unmap(addr: number, len: number): void {
    const first = Math.floor(addr / PAGE);
    const last = Math.floor((addr + len - 1) / PAGE);
    for (let p = first; p <= last; p++) if (this.pages.delete(p)) this.mapped -= PAGE;
    this.flush();
  }

  protect(addr: number, len: number, prot: number): boolean {
    const first = Math.floor(addr / PAGE);
    const last = Math.floor((addr + len - 1) / PAGE);
    for (let p = first; p <= last; p++) if (!this.pages.has(p)) return false;
    for (let p = first; p <= last; p++) this.pages.get(p)!.prot = prot;
    this.flush();
    return true;
  }

  isMapped(addr: number): boolean {
    return this.pages.has(Math.floor(addr / PAGE));
  }

  private flush(): void {
    this.tlbTag.fill(-1);
    this.codeWrites++;
  }

  /** Incremented by every write to a page marked as code and by every mapping change. */
  codeWrites = 0;

  markCode(la: number): boolean {
    const pn = Math.floor(la / PAGE);
    const pg = pn === pn ? this.pages.get(pn) : undefined;
    if (pg === undefined) return false;
    if (!pg.code) {
      pg.code = true;
      const i = pn & (TLB - 1);
      if (this.tlbTag[i] === pn) this.tlbTag[i] = -1; // re-fill without the write shortcut
    }
    return true;
  }

  /** The page array for la with access `need` (PROT_*), or null after recording the fault. */
  private page(la: number, need: number): Uint8Array | null {
    const pn = Math.floor(la / PAGE);
    const i = pn & (TLB - 1);
    if (this.tlbTag[i] === pn && (this.tlbProt[i] & need) === need) return this.tlbData[i];
    const pg = pn === pn ? this.pages.get(pn) : undefined;
    if (pg === undefined || (pg.prot & need) !== need) {
      this.faultAddress = la === la ? la : 0;
      this.lastError = (pg ? PFEC_P : 0) | PFEC_U | (need & PROT_WRITE ? PFEC_W : 0) | (need & PROT_EXEC ? PFEC_I : 0);
      return null;
    }
    if (pg.code && need & PROT_WRITE) this.codeWrites++;
    this.tlbTag[i] = pn;
    this.tlbData[i] = pg.data;
    // Code pages are cached without write permission so every write comes back here.
    this.tlbProt[i] = pg.code ? pg.prot & ~PROT_WRITE : pg.prot;
    return pg.data;
  }
  private lastError = 0;

  private fault(): number {
    return MEM_PF_BASE - this.lastError;
  }

  fetch8(la: number): number {
    const d = this.page(la, PROT_EXEC);
    return d == null ? this.fault() : d[la & (PAGE - 1)];
  }

  fetchBytes(la: number, dst: Uint8Array, n: number): number {
    let i = 0;
    while (i < n) {
      const d = this.page(la + i, PROT_EXEC);
      if (d == null) return i;
      let o = (la + i) & (PAGE - 1);
      while (i < n && o < PAGE) dst[i++] = d[o++];
    }
    return i;
  }

  read8(la: number): number {
    const d = this.page(la, PROT_READ);
    return d == null ? this.fault() : d[la & (PAGE - 1)];
  }

  read16(la: number): number {
    const o = la & (PAGE - 1);
    if (o <= PAGE - 2) {
      const d = this.page(la, PROT_READ);
      return d == null ? this.fault() : d[o] | (d[o + 1] << 8);
    }
    const a = this.read8(la);
    if (a < 0) return a;
    const b = this.read8(la + 1);
    return b < 0 ? b : a | (b << 8);
  }

  read32(la: number): number {
    const o = la & (PAGE - 1);
    if (o <= PAGE - 4) {
      const d = this.page(la, PROT_READ);
      return d == null ? this.fault() : (d[o] | (d[o + 1] << 8) | (d[o + 2] << 16) | (d[o + 3] << 24)) >>> 0;
    }
    let v = 0;
    for (let i = 0; i < 4; i++) {
      const b = this.read8(la + i);
      if (b < 0) return b;
      v += b * 2 ** (8 * i);
    }
    return v;
  }

  read64(la: number, out: Int32Array, index: number): number {
    const lo = this.read32(la);
    if (lo < 0) return lo;
    const hi = this.read32(la + 4);
    if (hi < 0) return hi;
    out[index] = lo | 0;
    out[index + 1] = hi | 0;
    return 0;
  }

  write8(la: number, v: number): number {
    const d = this.page(la, PROT_WRITE);
    if (d == null) return this.fault();
    d[la & (PAGE - 1)] = v;
    return 0;
  }

  write16(la: number, v: number): number {
    const o = la & (PAGE - 1);
    if (o <= PAGE - 2) {
      const d = this.page(la, PROT_WRITE);
      if (d == null) return this.fault();
      d[o] = v;
      d[o + 1] = v >> 8;
      return 0;
    }
    return this.writeSplit(la, v, 0, 2);
  }

  write32(la: number, v: number): number {
    const o = la & (PAGE - 1);
    if (o <= PAGE - 4) {
      const d = this.page(la, PROT_WRITE);
      if (d == null) return this.fault();
      d[o] = v;
      d[o + 1] = v >> 8;
      d[o + 2] = v >> 16;
      d[o + 3] = v >> 24;
      return 0;
    }
    return this.writeSplit(la, v, 0, 4);
  }

  write64(la: number, lo: number, hi: number): number {
    const o = la & (PAGE - 1);
    if (o <= PAGE - 8) {
      const d = this.page(la, PROT_WRITE);
      if (d == null) return this.fault();
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
    return this.writeSplit(la, lo, hi, 8);
  }

  /** A write crossing a page: both pages are checked before any byte is written. */
  private writeSplit(la: number, lo: number, hi: number, n: number): number {
    // CR2 is the first faulting byte: la itself, or the start of the second page.
    const second = Math.floor((la + n - 1) / PAGE) * PAGE;
    if (this.page(la, PROT_WRITE) == null || this.page(second, PROT_WRITE) == null) return this.fault();
    for (let i = 0; i < n; i++) {
      const b = i < 4 ? lo >>> (8 * i) : hi >>> (8 * (i - 4));
      this.write8(la + i, b & 0xff);
    }
    return 0;
  }

  /** Copies bytes in, ignoring permissions (loader/kernel side); false if a page is unmapped. */
  poke(addr: number, src: Uint8Array): boolean {
    this.codeWrites++;
    for (let i = 0; i < src.length; ) {
      const pg = this.pages.get(Math.floor((addr + i) / PAGE));
      if (!pg) return false;
      const o = (addr + i) & (PAGE - 1);
      const n = Math.min(PAGE - o, src.length - i);
      pg.data.set(src.subarray(i, i + n), o);
      i += n;
    }
    return true;
  }

  /** Copies bytes out, ignoring permissions; null if a page is unmapped. */
  peek(addr: number, len: number): Uint8Array | null {
    const out = new Uint8Array(len);
    for (let i = 0; i < len; ) {
      const pg = this.pages.get(Math.floor((addr + i) / PAGE));
      if (!pg) return null;
      const o = (addr + i) & (PAGE - 1);
      const n = Math.min(PAGE - o, len - i);
      out.set(pg.data.subarray(o, o + n), i);
      i += n;
    }
    return out;
  }

  /** A NUL-terminated string of at most max bytes (null when unmapped or unterminated). */
  peekCString(addr: number, max: number = 4096): Uint8Array | null {
    const out: number[] = [];
    for (let i = 0; i < max; i++) {
      const pg = this.pages.get(Math.floor((addr + i) / PAGE));
      if (!pg) return null;
      const b = pg.data[(addr + i) & (PAGE - 1)];
      if (b === 0) return Uint8Array.from(out);
      out.push(b);
    }
    return null;
  }
}
