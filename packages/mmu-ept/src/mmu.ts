import { type Ept, EPT_OK, EPT_VIOLATION, QUAL_FETCH, QUAL_FINAL, QUAL_GLA_VALID, QUAL_READ, QUAL_WRITE } from './ept';
import { FRAME_CODE, FRAME_WP, FRAME_WRITE_SLOW, type HostMemory } from './host-memory';
import { ACC_ALL, ACC_FETCHES, ACC_SR, ACC_SRA, ACC_SW, ACC_SWA, ACC_SX, ACC_UR, ACC_USER, ACC_UW, ACC_UX, ACC_WRITES, TLB_1G, TLB_2M, TLB_4M, TLB_GLOBAL, Tlb } from './tlb';

/*
 * The vCPU's MMU: stage 1 (the guest's own page tables: 32-bit, PAE, 4-level, 5-level) on top of
 * stage 2 (EPT), with a TLB of combined translations.
 *
 * Control-register bits used:
 *   CR0: PG (31), WP (16)
 *   CR4: PSE (4), PAE (5), PGE (7), LA57 (12), PCIDE (17), SMEP (20), SMAP (21), PKE (22)
 *   EFER: LME (8), NXE (11)   (LMA is derived: LME && PG && PAE)
 * Guest paging-structure entry bits (low word): P 0, R/W 1, U/S 2, PWT 3, PCD 4, A 5, D 6,
 *   PS 7, G 8; high word: bits 62:59 protection key (hi 30:27), bit 63 XD (hi 31).
 * #PF error code: P 0 (protection, not absence), W/R 1, U/S 2, RSVD 3, I/D 4, PK 5.
 *   I/D is set for fetches only when CR4.SMEP = 1 or (PAE paging modes and EFER.NXE = 1).
 *
 * Every guest paging-structure read is a guest-physical access translated through the EPT
 * (the 2-D walk); refs counts them: (n+1)(m+1)-1 = 24 for 4-level guest + 4-level EPT.
 */

export const CR0_WP: number = 1 << 16;
export const CR0_PG: number = 1 << 31;
export const CR4_PSE: number = 1 << 4;
export const CR4_PAE: number = 1 << 5;
export const CR4_PGE: number = 1 << 7;
export const CR4_LA57: number = 1 << 12;
export const CR4_PCIDE: number = 1 << 17;
export const CR4_SMEP: number = 1 << 20;
export const CR4_SMAP: number = 1 << 21;
export const CR4_PKE: number = 1 << 22;
export const EFER_LME: number = 1 << 8;
export const EFER_NXE: number = 1 << 11;

export const PTE_P = 1;
export const PTE_RW = 2;
export const PTE_US = 4;
export const PTE_A = 0x20;
export const PTE_D = 0x40;
export const PTE_PS = 0x80;
export const PTE_G = 0x100;
/** Bit 63 (execute disable) in the high word. */
export const PTE_HI_XD: number = 0x8000_0000;

export const PF_P = 1;
export const PF_W = 2;
export const PF_U = 4;
export const PF_RSVD = 8;
export const PF_ID = 16;
export const PF_PK = 32;

export const MODE_NONE = 0;
export const MODE_32 = 1;
export const MODE_PAE = 2;
export const MODE_4LEVEL = 3;
export const MODE_5LEVEL = 4;

/** translate() outcomes. */
export const XLATE_OK = 0;
/** #PF: result.errorCode, result.cr2Lo/cr2Hi. */
export const XLATE_PAGE_FAULT = 1;
/** EPT violation exit: result.exitQual, result.faultGpa, result.linearLo/linearHi. */
export const XLATE_EPT_VIOLATION = 2;
/** EPT misconfiguration exit: result.faultGpa. */
export const XLATE_EPT_MISCONFIG = 3;
/** #GP(0): reserved bits in a PAE PDPTE when CR3/CR0/CR4 is loaded. */
export const XLATE_GP = 4;

const TWO32 = 0x1_0000_0000;

/** Resolves EPT violations on RAM in place (AddressSpace does); false = a real exit. */
export interface EptResolver {
  handleEptViolation(gpa: number, qual: number): boolean;
}

/** Preallocated result of a translation (one per MMU; read it right after the call). */
export class TranslateResult {
  status = 0;
  /** Host frame, chunk and byte index (in HostMemory.u8[chunk]) of the accessed byte. */
  frame = -1;
  chunk = 0;
  index = 0;
  /** Guest-physical address of the accessed byte. */
  gpa = 0;
  /** TLB slot filled by the translation, or -1. */
  slot = -1;
  /** #PF error code and faulting linear address. */
  errorCode = 0;
  cr2Lo = 0;
  cr2Hi = 0;
  /** EPT exit information. */
  exitQual = 0;
  faultGpa = 0;
  linearLo = 0;
  linearHi = 0;
}

export interface MmuOptions {
  /** Guest MAXPHYADDR (default 46): paging-structure bits 51:MAXPHYADDR are reserved. */
  maxPhysAddr?: number;
  /** TLB entries (power of two, default 2048). */
  tlbSize?: number;
}

export class Mmu {
  readonly host: HostMemory;
  readonly ept: Ept;
  readonly resolver: EptResolver | null;
  readonly tlb: Tlb;
  readonly result: TranslateResult = new TranslateResult();
  readonly maxPhysAddr: number;

  cr0 = 0;
  cr3Lo = 0;
  cr3Hi = 0;
  cr4 = 0;
  efer = 0;
  pkru = 0;
  mode: number = MODE_NONE;
  /** (pcid << 20) when CR4.PCIDE, else 0: OR it into the TLB tag on lookups. */
  pcidTag = 0;
  /** PAE PDPTE registers (lo/hi pairs), loaded with CR3. */
  readonly pdpte: Uint32Array = new Uint32Array(8);

  /** Memory references of the last full walk (stage-1 entries + stage-2 entries). */
  walkRefs = 0;
  /** Totals since creation. */
  totalRefs = 0;
  walks = 0;
  hits = 0;

  private readonly hiRsvd: number;
  private readonly pse36Rsvd: number;
  private readonly wFrame = new Int32Array(6);
  private readonly wByte = new Int32Array(6);
  private readonly wGpa = new Float64Array(6);

  constructor(ept: Ept, resolver: EptResolver | null = null, options: MmuOptions = {}) {
    this.host = ept.host;
    this.ept = ept;
    this.resolver = resolver;
    this.tlb = new Tlb(options.tlbSize ?? 2048);
    this.maxPhysAddr = options.maxPhysAddr ?? 46;
    if (!Number.isInteger(this.maxPhysAddr) || this.maxPhysAddr < 36 || this.maxPhysAddr > 52) throw new RangeError('Mmu: maxPhysAddr must be 36..52');
    this.hiRsvd = (0xfffff & ~((1 << (this.maxPhysAddr - 32)) - 1)) >>> 0;
    // 4 MiB PDE: bit 21 reserved; bits 20:13 hold PA 39:32, of which those >= MAXPHYADDR are reserved.
    const paBits = Math.min(this.maxPhysAddr, 40) - 32;
    this.pse36Rsvd = (0x20_0000 | (0x1f_e000 & ~(((1 << paBits) - 1) << 13))) >>> 0;
    ept.attach(this.tlb);
    this.host.addWriteCache(this.tlb);
  }

  /** Stops using this MMU (unregisters its TLB). */
  dispose(): void {
    this.ept.detach(this.tlb);
    this.host.removeWriteCache(this.tlb);
  }

  // ------------------------------------------------------------------ control registers

  /** MOV to CR0. Returns XLATE_OK, or a fault from loading PAE PDPTEs. */
  writeCr0(value: number): number {
    const old = this.cr0;
    this.cr0 = value | 0;
    if (((old ^ value) & (CR0_PG | CR0_WP)) !== 0) {
      this.updateMode();
      this.tlb.flushAll();
      if (this.mode === MODE_PAE && ((old ^ value) & CR0_PG) !== 0) return this.loadPdptes();
    }
    return XLATE_OK;
  }

  /** MOV to CR4 (flushes everything when a paging-related bit changes). */
  writeCr4(value: number): number {
    const old = this.cr4;
    this.cr4 = value | 0;
    const changed = old ^ value;
    if ((changed & (CR4_PSE | CR4_PAE | CR4_PGE | CR4_LA57 | CR4_PCIDE | CR4_SMEP | CR4_SMAP | CR4_PKE)) !== 0) {
      this.updateMode();
      this.tlb.flushAll();
      if (this.mode === MODE_PAE && (changed & (CR4_PAE | CR4_PGE | CR4_PSE | CR4_SMEP)) !== 0) return this.loadPdptes();
    }
    return XLATE_OK;
  }

  /** WRMSR IA32_EFER. */
  writeEfer(value: number): void {
    const old = this.efer;
    this.efer = value | 0;
    if (((old ^ value) & (EFER_LME | EFER_NXE)) !== 0) {
      this.updateMode();
      this.tlb.flushAll();
    }
  }

  /** WRPKRU. */
  writePkru(value: number): void {
    if ((value | 0) !== this.pkru) {
      this.pkru = value | 0;
      if ((this.cr4 & CR4_PKE) !== 0) this.tlb.flushAll();
    }
  }

  /**
   * MOV to CR3 (hi = bits 63:32 of the source). Without PCIDs: drops non-global entries. With
   * CR4.PCIDE: drops the new PCID's non-global entries unless bit 63 is set. In PAE mode, loads
   * the PDPTEs (may return XLATE_GP or an EPT exit).
   */
  writeCr3(lo: number, hi: number): number {
    const noFlush = (hi & 0x8000_0000) !== 0;
    this.cr3Lo = lo | 0;
    this.cr3Hi = hi & 0x7fff_ffff;
    if ((this.cr4 & CR4_PCIDE) !== 0 && this.mode >= MODE_4LEVEL) {
      const pcid = lo & 0xfff;
      this.pcidTag = pcid << 20;
      if (!noFlush) this.tlb.flushNonGlobal(pcid);
    } else {
      this.pcidTag = 0;
      this.tlb.flushNonGlobal(-1);
    }
    if (this.mode === MODE_PAE) return this.loadPdptes();
    return XLATE_OK;
  }

  /** INVLPG: invalidates the page's translations (global ones too, every PCID). */
  invlpg(lo: number, hi: number): void {
    this.tlb.flushPage(lo, hi);
  }

  /**
   * INVPCID. type 0: one address in one PCID; 1: one PCID's non-global entries; 2: everything
   * including globals; 3: everything except globals. Returns false for an invalid type (#GP).
   */
  invpcid(type: number, pcid: number, lo: number, hi: number): boolean {
    switch (type) {
      case 0:
        this.tlb.flushPage(lo, hi);
        return true;
      case 1:
        this.tlb.flushNonGlobal(pcid & 0xfff);
        return true;
      case 2:
        this.tlb.flushAll();
        return true;
      case 3:
        this.tlb.flushNonGlobal(-1);
        return true;
      default:
        return false;
    }
  }

  flushTlb(): void {
    this.tlb.flushAll();
  }

  private updateMode(): void {
    if ((this.cr0 & CR0_PG) === 0) this.mode = MODE_NONE;
    else if ((this.cr4 & CR4_PAE) === 0) this.mode = MODE_32;
    else if ((this.efer & EFER_LME) === 0) this.mode = MODE_PAE;
    else this.mode = (this.cr4 & CR4_LA57) !== 0 ? MODE_5LEVEL : MODE_4LEVEL;
    this.pcidTag = (this.cr4 & CR4_PCIDE) !== 0 && this.mode >= MODE_4LEVEL ? (this.cr3Lo & 0xfff) << 20 : 0;
  }

  /** Loads the four PAE PDPTEs from CR3 (guest-physical, through the EPT). */
  loadPdptes(): number {
    const base = (this.cr3Lo & 0xffff_ffe0) >>> 0;
    const host = this.host;
    for (let k = 0; k < 4; k++) {
      const gpa = base + k * 8;
      const frame = this.stage2(gpa, QUAL_READ, 0, 0, 0);
      if (frame < 0) return this.result.status;
      const arr = host.u32[frame >>> host.chunkShift];
      const p = ((frame & host.chunkMask) << 10) + ((gpa & 0xfff) >>> 2);
      const lo = arr[p];
      const hi = arr[p + 1];
      if ((lo & PTE_P) !== 0 && ((lo & 0x1e6) !== 0 || (hi & (this.hiRsvd | 0xfff0_0000)) !== 0)) {
        this.result.status = XLATE_GP;
        return XLATE_GP;
      }
      this.pdpte[2 * k] = lo;
      this.pdpte[2 * k + 1] = hi;
    }
    this.tlb.flushAll();
    return XLATE_OK;
  }

  // ------------------------------------------------------------------ translation

  /**
   * Translates a linear address (lo/hi halves; hi = 0 outside long mode) for one access kind
   * (an ACC_* bit). XLATE_OK: result.chunk/index locate the byte in host memory. Otherwise the
   * fault or exit is described in result. No allocation; faults are returned, not thrown.
   * Writes to watched frames (FRAME_CODE, FRAME_WP) call the host's onWatchedWrite first.
   */
  translate(lo: number, hi: number, acc: number): number {
    const t = this.tlb;
    const i = (lo >>> 12) & t.mask;
    const res = this.result;
    if (t.tagLo[i] === ((lo >>> 12) | this.pcidTag) && t.tagHi[i] === (hi | 0) && (t.perm[i] & acc) !== 0) {
      this.hits++;
      res.status = XLATE_OK;
      res.frame = t.frame[i];
      res.chunk = t.chunk[i];
      res.index = t.base[i] + (lo & 4095);
      res.gpa = t.gpa[i] + (lo & 4095);
      res.slot = i;
      return XLATE_OK;
    }
    return this.walk(lo, hi, acc);
  }

  /** Fast-path byte read; -1 on a fault (see result). */
  read8(lo: number, hi: number, acc: number): number {
    const t = this.tlb;
    const i = (lo >>> 12) & t.mask;
    if (t.tagLo[i] === ((lo >>> 12) | this.pcidTag) && t.tagHi[i] === (hi | 0) && (t.perm[i] & acc) !== 0) {
      return this.host.u8[t.chunk[i]][t.base[i] + (lo & 4095)];
    }
    if (this.walk(lo, hi, acc) !== XLATE_OK) return -1;
    return this.host.u8[this.result.chunk][this.result.index];
  }

  /** Fast-path 32-bit read (page-crossing reads are split); -1 on a fault. */
  read32(lo: number, hi: number, acc: number): number {
    const off = lo & 4095;
    if (off > 4092) return this.readSplit(lo, hi, acc, 4);
    const t = this.tlb;
    const i = (lo >>> 12) & t.mask;
    if (t.tagLo[i] === ((lo >>> 12) | this.pcidTag) && t.tagHi[i] === (hi | 0) && (t.perm[i] & acc) !== 0) {
      return this.host.dv[t.chunk[i]].getUint32(t.base[i] + off, true);
    }
    if (this.walk(lo, hi, acc) !== XLATE_OK) return -1;
    return this.host.dv[this.result.chunk].getUint32(this.result.index, true);
  }

  /** Fast-path byte write; false on a fault. */
  write8(lo: number, hi: number, value: number, acc: number): boolean {
    const t = this.tlb;
    const i = (lo >>> 12) & t.mask;
    if (t.tagLo[i] === ((lo >>> 12) | this.pcidTag) && t.tagHi[i] === (hi | 0) && (t.perm[i] & acc) !== 0) {
      this.host.u8[t.chunk[i]][t.base[i] + (lo & 4095)] = value;
      return true;
    }
    if (this.walk(lo, hi, acc) !== XLATE_OK) return false;
    this.host.u8[this.result.chunk][this.result.index] = value;
    return true;
  }

  /** Fast-path 32-bit write (page-crossing writes check both pages first); false on a fault. */
  write32(lo: number, hi: number, value: number, acc: number): boolean {
    const off = lo & 4095;
    const t = this.tlb;
    if (off <= 4092) {
      const i = (lo >>> 12) & t.mask;
      if (t.tagLo[i] === ((lo >>> 12) | this.pcidTag) && t.tagHi[i] === (hi | 0) && (t.perm[i] & acc) !== 0) {
        this.host.dv[t.chunk[i]].setUint32(t.base[i] + off, value >>> 0, true);
        return true;
      }
      if (this.walk(lo, hi, acc) !== XLATE_OK) return false;
      this.host.dv[this.result.chunk].setUint32(this.result.index, value >>> 0, true);
      return true;
    }
    // Split across two pages: both must translate before any byte is written.
    const lo2 = (lo - off + 4096) >>> 0;
    const hi2 = lo2 === 0 ? (hi + 1) | 0 : hi;
    if (this.walk(lo2, hi2, acc) !== XLATE_OK) return false;
    if (this.walk(lo, hi, acc) !== XLATE_OK) return false;
    for (let k = 0; k < 4; k++) {
      const a = (lo + k) >>> 0;
      const h = a < lo >>> 0 ? (hi + 1) | 0 : hi;
      this.write8(a, h, value >>> (8 * k), acc);
    }
    return true;
  }

  private readSplit(lo: number, hi: number, acc: number, n: number): number {
    let v = 0;
    for (let k = 0; k < n; k++) {
      const a = (lo + k) >>> 0;
      const h = a < lo >>> 0 ? (hi + 1) | 0 : hi;
      const b = this.read8(a, h, acc);
      if (b < 0) return -1;
      v |= b << (8 * k);
    }
    return v >>> 0;
  }

  /** Stage-2 translation of a guest-physical address, resolving RAM faults in place. Frame or -1. */
  private stage2(gpa: number, access: number, qualExtra: number, lo: number, hi: number): number {
    const ept = this.ept;
    for (let tries = 0; ; tries++) {
      const st = ept.translate(gpa, access, qualExtra);
      // Only the attempt that produced the result counts: faults the resolver fixed are the
      // hypervisor's work, not references of the walk.
      if (st === EPT_OK) {
        this.walkRefs += ept.refs;
        return ept.frame;
      }
      if (st === EPT_VIOLATION && tries < 3 && this.resolver != null && this.resolver.handleEptViolation(gpa, ept.qual)) continue;
      this.walkRefs += ept.refs;
      const res = this.result;
      res.status = st === EPT_VIOLATION ? XLATE_EPT_VIOLATION : XLATE_EPT_MISCONFIG;
      res.exitQual = ept.qual;
      res.faultGpa = gpa;
      res.linearLo = lo >>> 0;
      res.linearHi = hi >>> 0;
      return -1;
    }
  }

  private pageFault(code: number, lo: number, hi: number): number {
    const res = this.result;
    res.status = XLATE_PAGE_FAULT;
    res.errorCode = code;
    res.cr2Lo = lo >>> 0;
    res.cr2Hi = this.mode >= MODE_4LEVEL ? hi >>> 0 : 0;
    return XLATE_PAGE_FAULT;
  }

  /** Full 2-D walk, A/D update and TLB fill. */
  private walk(lo: number, hi: number, acc: number): number {
    this.walks++;
    this.walkRefs = 0;
    const host = this.host;
    const ept = this.ept;
    const mode = this.mode;
    const isWrite = (acc & ACC_WRITES) !== 0;
    const isFetch = (acc & ACC_FETCHES) !== 0;
    const isUser = (acc & ACC_USER) !== 0;
    const cr4 = this.cr4;
    const nxe = (this.efer & EFER_NXE) !== 0 && mode >= MODE_PAE;
    const smep = (cr4 & CR4_SMEP) !== 0;
    const smap = (cr4 & CR4_SMAP) !== 0;
    const wp = (this.cr0 & CR0_WP) !== 0;
    let errBase = (isWrite ? PF_W : 0) | (isUser ? PF_U : 0);
    if (isFetch && (smep || nxe)) errBase |= PF_ID;

    let gpa: number;
    let userAll = 1;
    let rwAll = 1;
    let nx = 0;
    let info = 0;
    if (mode === MODE_NONE) {
      gpa = lo >>> 0;
    } else {
      let level: number;
      let table: number;
      const wide = mode !== MODE_32;
      if (mode === MODE_32) {
        level = 2;
        table = (this.cr3Lo & 0xffff_f000) >>> 0;
      } else if (mode === MODE_PAE) {
        const k = lo >>> 30;
        const plo = this.pdpte[2 * k];
        if ((plo & PTE_P) === 0) return this.pageFault(errBase, lo, hi);
        table = ((plo & 0xffff_f000) >>> 0) + (this.pdpte[2 * k + 1] & 0xfffff) * TWO32;
        level = 2;
      } else {
        level = mode === MODE_4LEVEL ? 4 : 5;
        table = ((this.cr3Lo & 0xffff_f000) >>> 0) + (this.cr3Hi & 0xfffff) * TWO32;
      }
      const top = level;
      const tblAcc = ept.accessDirty ? QUAL_READ | QUAL_WRITE : QUAL_READ;
      const pse = (cr4 & CR4_PSE) !== 0;
      for (;;) {
        let idx: number;
        if (!wide) idx = level === 2 ? lo >>> 22 : (lo >>> 12) & 0x3ff;
        else if (level === 1) idx = (lo >>> 12) & 511;
        else if (level === 2) idx = (lo >>> 21) & 511;
        else if (level === 3) idx = ((lo >>> 30) | (hi << 2)) & 511;
        else if (level === 4) idx = (hi >>> 7) & 511;
        else idx = (hi >>> 16) & 511;
        const egpa = table + idx * (wide ? 8 : 4);
        const frame = this.stage2(egpa, tblAcc, QUAL_GLA_VALID, lo, hi);
        if (frame < 0) return this.finishRefs(this.result.status);
        const byte = ((frame & host.chunkMask) << 12) + (egpa & 0xfff);
        const arr = host.u32[frame >>> host.chunkShift];
        const elo = arr[byte >>> 2];
        const ehi = wide ? arr[(byte >>> 2) + 1] : 0;
        this.walkRefs++;
        this.wFrame[level] = frame;
        this.wByte[level] = byte;
        this.wGpa[level] = egpa;
        if ((elo & PTE_P) === 0) {
          this.finishRefs(0);
          return this.pageFault(errBase, lo, hi);
        }
        // Reserved bits.
        let rsvd = false;
        const ps = (elo & PTE_PS) !== 0;
        if (!wide) {
          rsvd = level === 2 && ps && pse && (elo & this.pse36Rsvd) !== 0;
        } else {
          if ((ehi & this.hiRsvd) !== 0 || (!nxe && (ehi & PTE_HI_XD) !== 0)) rsvd = true;
          else if (ps) {
            if (level === 2) rsvd = (elo & 0x1f_e000) !== 0;
            else if (level === 3) rsvd = mode === MODE_PAE || (elo & 0x3fff_e000) !== 0;
            else if (level >= 4) rsvd = true;
          }
        }
        if (rsvd) {
          this.finishRefs(0);
          return this.pageFault(errBase | PF_P | PF_RSVD, lo, hi);
        }
        userAll &= elo >>> 2;
        rwAll &= elo >>> 1;
        if (nxe) nx |= ehi >>> 31;
        if (level === 1) break;
        if (ps && (wide || pse)) {
          info = !wide ? TLB_4M : level === 2 ? TLB_2M : TLB_1G;
          break;
        }
        table = wide ? ((elo & 0xffff_f000) >>> 0) + (ehi & 0xfffff) * TWO32 : (elo & 0xffff_f000) >>> 0;
        level--;
      }
      const leafLevel = level;
      let leafLo = this.entryLo(level);
      const leafHi = wide ? this.entryHi(level) : 0;
      userAll &= 1;
      rwAll &= 1;
      // Permission checks (SDM 4.6) for the requested access.
      let fault: boolean;
      if (isUser) fault = userAll === 0 || (isWrite && rwAll === 0) || (isFetch && nx !== 0);
      else if (isFetch) fault = (userAll !== 0 && smep) || nx !== 0;
      else fault = (userAll !== 0 && smap && (acc & (ACC_SR | ACC_SW)) !== 0) || (isWrite && rwAll === 0 && wp);
      let pkAD = false;
      let pkWD = false;
      if (mode >= MODE_4LEVEL && (cr4 & CR4_PKE) !== 0 && userAll !== 0) {
        const key = (leafHi >>> 27) & 15;
        pkAD = ((this.pkru >>> (2 * key)) & 1) !== 0;
        pkWD = ((this.pkru >>> (2 * key + 1)) & 1) !== 0;
      }
      const pkFault = !isFetch && (pkAD || (isWrite && pkWD && (isUser || wp)));
      if (fault || pkFault) {
        this.finishRefs(0);
        return this.pageFault(errBase | PF_P | (pkFault ? PF_PK : 0), lo, hi);
      }
      // Guest-physical address of the access.
      if (info === TLB_4M) gpa = ((leafLo & 0xffc0_0000) >>> 0) + ((leafLo >>> 13) & 0xff) * TWO32 + (lo & 0x3f_ffff);
      else if (info === TLB_2M) gpa = ((leafLo & 0xffe0_0000) >>> 0) + (leafHi & 0xfffff) * TWO32 + (lo & 0x1f_ffff);
      else if (info === TLB_1G) gpa = ((leafLo & 0xc000_0000) >>> 0) + (leafHi & 0xfffff) * TWO32 + (lo & 0x3fff_ffff);
      else gpa = ((leafLo & 0xffff_f000) >>> 0) + (leafHi & 0xfffff) * TWO32 + (lo & 0xfff);
      // Accessed flags on every level, dirty on the leaf for writes (written back like hardware).
      for (let l = top; l >= leafLevel; l--) {
        const need = l === leafLevel && isWrite ? PTE_A | PTE_D : PTE_A;
        const e = this.entryLo(l);
        if ((e & need) !== need) {
          let frame = this.wFrame[l];
          let byte = this.wByte[l];
          if (!ept.accessDirty) {
            // The update is a write to guest memory: it needs stage-2 write access.
            const saved = this.walkRefs;
            frame = this.stage2(this.wGpa[l], QUAL_READ | QUAL_WRITE, QUAL_GLA_VALID, lo, hi);
            this.walkRefs = saved;
            if (frame < 0) return this.finishRefs(this.result.status);
            byte = ((frame & host.chunkMask) << 12) + (this.wGpa[l] % 4096);
          }
          if ((host.flags[frame] & (FRAME_CODE | FRAME_WP)) !== 0) host.notifyWrite(frame);
          host.u32[frame >>> host.chunkShift][byte >>> 2] |= need;
          if (l === leafLevel) leafLo |= need;
        }
      }
      if ((leafLo & PTE_G) !== 0 && (cr4 & CR4_PGE) !== 0) info |= TLB_GLOBAL;
      // The TLB may only grant the kinds that are allowed now (and writes once D is set).
      let perm = 0;
      if (!pkAD) {
        if (!(userAll !== 0 && smap)) perm |= ACC_SR;
        perm |= ACC_SRA;
        if (userAll !== 0) perm |= ACC_UR;
        if ((leafLo & PTE_D) !== 0) {
          const supW = rwAll !== 0 || !wp;
          const pkW = pkWD && wp;
          if (supW && !pkW && !(userAll !== 0 && smap)) perm |= ACC_SW;
          if (supW && !pkW) perm |= ACC_SWA;
          if (userAll !== 0 && rwAll !== 0 && !pkWD) perm |= ACC_UW;
        }
      }
      if (nx === 0) {
        if (!(userAll !== 0 && smep)) perm |= ACC_SX;
        if (userAll !== 0) perm |= ACC_UX;
      }
      return this.finish(lo, hi, acc, gpa, perm, info);
    }
    return this.finish(lo, hi, acc, gpa, ACC_ALL, 0);
  }

  private finishRefs(status: number): number {
    this.totalRefs += this.walkRefs;
    return status;
  }

  /** Final stage-2 translation of the data address and the TLB fill. */
  private finish(lo: number, hi: number, acc: number, gpa: number, perm1: number, info: number): number {
    const ept = this.ept;
    const host = this.host;
    const isWrite = (acc & ACC_WRITES) !== 0;
    const access = isWrite ? QUAL_WRITE : (acc & ACC_FETCHES) !== 0 ? QUAL_FETCH : QUAL_READ;
    const frame = this.stage2(gpa, access, QUAL_GLA_VALID | QUAL_FINAL, lo, hi);
    this.totalRefs += this.walkRefs;
    if (frame < 0) return this.result.status;
    const p2 = ept.perms;
    let perm = 0;
    if ((p2 & 1) !== 0) perm |= perm1 & (ACC_SR | ACC_SRA | ACC_UR);
    if ((p2 & 2) !== 0 && ept.dirty && (host.flags[frame] & FRAME_WRITE_SLOW) === 0) perm |= perm1 & (ACC_SW | ACC_SWA | ACC_UW);
    if ((p2 & 4) !== 0) perm |= perm1 & (ACC_SX | ACC_UX);
    const chunk = frame >>> host.chunkShift;
    const base = (frame & host.chunkMask) << 12;
    const pageGpa = gpa - (gpa % 4096);
    const slot = this.tlb.fill(lo, hi, this.pcidTag, perm, chunk, base, frame, pageGpa, info);
    const res = this.result;
    res.status = XLATE_OK;
    res.frame = frame;
    res.chunk = chunk;
    res.index = base + (lo & 4095);
    res.gpa = gpa;
    res.slot = slot;
    if (isWrite && (host.flags[frame] & (FRAME_CODE | FRAME_WP)) !== 0) host.notifyWrite(frame);
    return XLATE_OK;
  }

  private entryLo(level: number): number {
    const f = this.wFrame[level];
    return this.host.u32[f >>> this.host.chunkShift][this.wByte[level] >>> 2];
  }

  private entryHi(level: number): number {
    const f = this.wFrame[level];
    return this.host.u32[f >>> this.host.chunkShift][(this.wByte[level] >>> 2) + 1];
  }
}
