import { FRAME_TABLE, type HostMemory } from './host-memory';

/*
 * Intel EPT, kept in host frames in the SDM's format (64-bit entries as two little-endian u32).
 *
 * EPTP (lo word):  2:0 memory type of the paging structures (0 UC, 6 WB)
 *                  5:3 page-walk length - 1 (3 = 4-level, 4 = 5-level)
 *                  6   enable accessed/dirty flags
 *                  51:12 host-physical address of the root table (lo 31:12, hi 19:0)
 *
 * EPT entry (lo word):
 *   bit 0 R, 1 W, 2 X            permissions; an entry with R=W=X=0 is not present
 *   5:3 memory type (leaf only)  0 UC, 1 WC, 4 WT, 5 WP, 6 WB; 2, 3, 7 are a misconfiguration
 *   6   ignore PAT (leaf only)
 *   7   page size: 1 = 1 GiB leaf in a PDPTE, 2 MiB leaf in a PDE (reserved in PML4E/PML5E)
 *   8   accessed (when EPTP bit 6), 9 dirty (leaves, when EPTP bit 6)
 *   10  user-mode execute (mode-based execute control; stored, not interpreted)
 *   51:12 address of the next table or of the page
 * (hi word) bit 31 = bit 63 suppress #VE (stored, not interpreted).
 *
 * Misconfiguration (SDM, as KVM's __reset_rsvds_bits_mask_ept encodes it): a present entry with
 * W=1,R=0 (XWR 010, 110); XWR 100 without the execute-only capability; bits 51:MAXPHYADDR set;
 * bits 7:3 set in a PML4E/PML5E; bits 6:3 set in a non-leaf PDPTE/PDE; bits 29:12 set in a
 * 1 GiB leaf; bits 20:12 set in a 2 MiB leaf; leaf memory type 2, 3 or 7.
 *
 * EPT violation exit qualification:
 *   bit 0 data read, 1 data write, 2 instruction fetch     (the access)
 *   bit 3,4,5 AND of R, W, X over the entries walked        (what the translation allows)
 *   bit 7 guest linear address valid, bit 8 access to the final translation (1) vs to a guest
 *   paging-structure entry (0). Bits 6 and 9-12 are reported as 0.
 */

export const EPT_R = 1;
export const EPT_W = 2;
export const EPT_X = 4;
export const EPT_RWX = 7;
export const EPT_MT_SHIFT = 3;
export const EPT_IPAT = 0x40;
export const EPT_PS = 0x80;
export const EPT_A = 0x100;
export const EPT_D = 0x200;
export const EPT_UX = 0x400;
/** Bit 63 (in the hi word): suppress #VE. */
export const EPT_HI_SVE = 0x8000_0000;

export const MT_UC = 0;
export const MT_WC = 1;
export const MT_WT = 4;
export const MT_WP = 5;
export const MT_WB = 6;

export const EPTP_AD = 0x40;

export const QUAL_READ = 1;
export const QUAL_WRITE = 2;
export const QUAL_FETCH = 4;
export const QUAL_READABLE = 8;
export const QUAL_WRITABLE = 0x10;
export const QUAL_EXECUTABLE = 0x20;
export const QUAL_GLA_VALID = 0x80;
export const QUAL_FINAL = 0x100;

/** Translation outcomes (distinct values, returned, never thrown). */
export const EPT_OK = 0;
export const EPT_VIOLATION = 1;
export const EPT_MISCONFIG = 2;

export const INVEPT_SINGLE = 1;
export const INVEPT_ALL = 2;

export const PAGE_4K = 4096;
export const PAGE_2M = 0x20_0000;
export const PAGE_1G = 0x4000_0000;

const TWO32 = 0x1_0000_0000;

export interface EptOptions {
  /** 4 (default) or 5 levels. */
  levels?: 4 | 5;
  /** EPTP bit 6: maintain accessed/dirty flags. */
  accessDirty?: boolean;
  /** Memory type for the paging structures in the EPTP (default WB). */
  memoryType?: number;
  /** Host MAXPHYADDR (default 46): entry bits 51:MAXPHYADDR are reserved. */
  maxPhysAddr?: number;
  /** Execute-only translations allowed (IA32_VMX_EPT_VPID_CAP bit 0, default true). */
  executeOnly?: boolean;
  /** VT-d second-level semantics: present = R|W, X ignored, no misconfiguration for XWR. */
  vtd?: boolean;
}

/** Something that caches translations made through an EPT (a vCPU's TLB). */
export interface TranslationCache {
  flushAll(): void;
}

export class Ept {
  readonly host: HostMemory;
  readonly levels: number;
  readonly accessDirty: boolean;
  readonly memoryType: number;
  readonly maxPhysAddr: number;
  readonly executeOnly: boolean;
  readonly vtd: boolean;
  readonly rootFrame: number;

  // ---- result of the last translate() (no allocation) ----
  /** Host frame of the 4 KiB page that holds the guest-physical address. */
  frame = -1;
  /** AND of R/W/X over the entries walked (bits 0..2). */
  perms = 0;
  /** Leaf memory type and ignore-PAT. */
  memType = 0;
  ipat = false;
  /** Leaf size in bytes (4 KiB, 2 MiB, 1 GiB). */
  pageSize = 0;
  /** Leaf dirty flag after the access (always true when A/D is off). */
  dirty = false;
  /** Exit qualification of a violation. */
  qual = 0;
  /** Level (1 = PTE) at which a violation or misconfiguration was found. */
  faultLevel = 0;
  /** Paging-structure entries read by the last translate (memory references). */
  refs = 0;
  /** Total entries read since creation. */
  totalRefs = 0;

  /** PML: logs the GPA of each 4 KiB page whose leaf D flag goes 0 -> 1 (needs accessDirty). */
  pmlFrame = -1;
  /** Next PML slot, counting down from 511 like the VMCS PML index; -1 = full. */
  pmlIndex = 511;
  /** Called when a log is needed and the PML page is full (the "PML full" exit); must drain. */
  onPmlFull: (() => void) | null = null;

  private readonly tables: number[] = [];
  private readonly caches: TranslationCache[] = [];
  private readonly hiRsvd: number;
  private readonly wFrame = new Int32Array(6);
  private readonly wIndex = new Int32Array(6);

  constructor(host: HostMemory, options: EptOptions = {}) {
    this.host = host;
    this.levels = options.levels ?? 4;
    if (this.levels !== 4 && this.levels !== 5) throw new RangeError('Ept: levels must be 4 or 5');
    this.accessDirty = options.accessDirty ?? false;
    this.memoryType = options.memoryType ?? MT_WB;
    if (this.memoryType !== MT_UC && this.memoryType !== MT_WB) throw new RangeError('Ept: EPTP memory type must be UC (0) or WB (6)');
    this.maxPhysAddr = options.maxPhysAddr ?? 46;
    if (this.maxPhysAddr < 36 || this.maxPhysAddr > 52) throw new RangeError('Ept: maxPhysAddr must be 36..52');
    this.executeOnly = options.executeOnly ?? true;
    this.vtd = options.vtd ?? false;
    // Reserved address bits 51:MAXPHYADDR, as a mask on the hi word (bits 19:M-32).
    this.hiRsvd = (0xfffff & ~((1 << (this.maxPhysAddr - 32)) - 1)) >>> 0;
    const root = this.newTable();
    if (root < 0) throw new RangeError('Ept: host memory exhausted');
    this.rootFrame = root;
  }

  /** EPTP low word: memory type, walk length - 1, A/D enable, root address bits 31:12. */
  get eptpLo(): number {
    return ((this.rootFrame << 12) | ((this.levels - 1) << 3) | (this.accessDirty ? EPTP_AD : 0) | this.memoryType) >>> 0;
  }

  /** EPTP high word: root address bits 51:32. */
  get eptpHi(): number {
    return Math.floor(this.rootFrame / 0x10_0000);
  }

  /** Number of host frames used by the paging structures. */
  get tableFrames(): number {
    return this.tables.length;
  }

  /** Registers a TLB that caches translations through this EPT (flushed by INVEPT). */
  attach(cache: TranslationCache): void {
    if (!this.caches.includes(cache)) this.caches.push(cache);
  }

  detach(cache: TranslationCache): void {
    const i = this.caches.indexOf(cache);
    if (i >= 0) this.caches.splice(i, 1);
  }

  /**
   * INVEPT. Single-context (1) drops every cached translation derived from this EPTP; all-context
   * (2) drops cached translations for every EPTP (every TLB registered with the host memory).
   */
  invept(type: number = INVEPT_SINGLE): void {
    if (type === INVEPT_ALL) this.host.flushWriteCaches();
    for (const c of this.caches) c.flushAll();
  }

  /**
   * Translates a guest-physical address. `access` is a mask of QUAL_READ / QUAL_WRITE /
   * QUAL_FETCH; `qualExtra` is OR-ed into the exit qualification (QUAL_GLA_VALID, QUAL_FINAL).
   * Returns EPT_OK (result in frame/perms/...), EPT_VIOLATION (qual) or EPT_MISCONFIG.
   * Sets A (and D for writes) on success when A/D is enabled, and logs to the PML page.
   */
  translate(gpa: number, access: number, qualExtra: number): number {
    return this.translateFrom(this.rootFrame, gpa, access, qualExtra);
  }

  /**
   * The same walk from another root table in host memory (the IOMMU walks tables named by
   * context entries). The root must be an allocated frame.
   */
  translateFrom(root: number, gpa: number, access: number, qualExtra: number): number {
    const host = this.host;
    const lo = gpa >>> 0;
    const hi = gpa >= TWO32 ? Math.floor(gpa / TWO32) : 0;
    let refs = 0;
    let table = root;
    let rwx = EPT_RWX;
    let level = this.levels;
    const maxHi = this.levels === 4 ? 0x10000 : 0x2000000;
    if (hi >= maxHi) {
      // Beyond the guest-physical width this EPT can map.
      this.refs = 0;
      this.faultLevel = level;
      this.qual = access | qualExtra;
      return EPT_VIOLATION;
    }
    let elo: number;
    let ehi: number;
    for (;;) {
      const idx = level === 1 ? (lo >>> 12) & 511 : level === 2 ? (lo >>> 21) & 511 : level === 3 ? ((lo >>> 30) | (hi << 2)) & 511 : level === 4 ? (hi >>> 7) & 511 : (hi >>> 16) & 511;
      const arr = host.u32[table >>> host.chunkShift];
      const pos = (((table & host.chunkMask) << 12) >>> 2) + idx * 2;
      elo = arr[pos];
      ehi = arr[pos + 1];
      refs++;
      this.wFrame[level] = table;
      this.wIndex[level] = idx;
      const xwr = this.vtd ? elo & 3 : elo & 7;
      if (xwr === 0) {
        rwx = 0;
        break;
      }
      rwx &= this.vtd ? (elo & 3) | EPT_X : elo;
      const bad = this.misconfigured(elo, ehi, level);
      if (bad) {
        this.refs = refs;
        this.totalRefs += refs;
        this.faultLevel = level;
        this.qual = 0;
        return EPT_MISCONFIG;
      }
      if (level === 1 || (elo & EPT_PS) !== 0) break;
      const next = (elo >>> 12) + (ehi & 0xfffff) * 0x10_0000;
      if (next >= host.refs.length || host.refs[next] === 0) {
        // Points outside host memory: treated as a misconfiguration (nothing to read there).
        this.refs = refs;
        this.totalRefs += refs;
        this.faultLevel = level;
        this.qual = 0;
        return EPT_MISCONFIG;
      }
      table = next;
      level--;
    }
    this.refs = refs;
    this.totalRefs += refs;
    if ((rwx & access) !== access || (elo & (this.vtd ? 3 : 7)) === 0) {
      this.faultLevel = level;
      this.perms = rwx & 7;
      this.qual = access | ((rwx & 7) << 3) | qualExtra;
      return EPT_VIOLATION;
    }
    // Leaf found and permitted.
    let frame = (elo >>> 12) + (ehi & 0xfffff) * 0x10_0000;
    if (level === 2) {
      frame = frame - (frame & 511) + ((lo >>> 12) & 511);
      this.pageSize = PAGE_2M;
    } else if (level === 3) {
      frame = frame - (frame & 0x3ffff) + ((lo >>> 12) & 0x3ffff);
      this.pageSize = PAGE_1G;
    } else {
      this.pageSize = PAGE_4K;
    }
    if (frame >= host.refs.length || host.refs[frame] === 0) {
      this.faultLevel = level;
      this.qual = 0;
      return EPT_MISCONFIG;
    }
    this.frame = frame;
    this.perms = rwx & 7;
    this.memType = (elo >>> EPT_MT_SHIFT) & 7;
    this.ipat = (elo & EPT_IPAT) !== 0;
    this.qual = 0;
    this.faultLevel = 0;
    if (this.accessDirty) {
      for (let l = this.levels; l >= level; l--) {
        const t = this.wFrame[l];
        const a = host.u32[t >>> host.chunkShift];
        const p = (((t & host.chunkMask) << 12) >>> 2) + this.wIndex[l] * 2;
        a[p] |= EPT_A;
      }
      const t = this.wFrame[level];
      const a = host.u32[t >>> host.chunkShift];
      const p = (((t & host.chunkMask) << 12) >>> 2) + this.wIndex[level] * 2;
      if ((access & QUAL_WRITE) !== 0 && (a[p] & EPT_D) === 0) {
        a[p] |= EPT_D;
        if (this.pmlFrame >= 0) this.pmlLog(gpa);
      }
      this.dirty = (a[p] & EPT_D) !== 0;
    } else {
      this.dirty = true;
    }
    return EPT_OK;
  }

  /** True when a present entry at this level is misconfigured (see the header comment). */
  private misconfigured(elo: number, ehi: number, level: number): boolean {
    if ((ehi & this.hiRsvd) !== 0) return true;
    if (!this.vtd) {
      const xwr = elo & 7;
      if (xwr === 2 || xwr === 6) return true;
      if (xwr === 4 && !this.executeOnly) return true;
    }
    const ps = (elo & EPT_PS) !== 0;
    if (this.vtd) {
      // VT-d second-level entries: bits 6:2 are ignored/EMT; page size is reserved at the top.
      if (level >= 4) return ps;
      if (level === 3 && ps) return (elo & 0x3fff_f000) !== 0;
      if (level === 2 && ps) return (elo & 0x1f_f000) !== 0;
      return false;
    }
    if (level >= 4) return (elo & 0xf8) !== 0;
    if (level === 1 || ps) {
      if (level === 3 && (elo & 0x3fff_f000) !== 0) return true;
      if (level === 2 && (elo & 0x1f_f000) !== 0) return true;
      if (!this.vtd) {
        const mt = (elo >>> 3) & 7;
        if (mt === 2 || mt === 3 || mt === 7) return true;
      }
      return false;
    }
    return (elo & 0x78) !== 0;
  }

  private pmlLog(gpa: number): void {
    if (this.pmlIndex < 0) {
      if (this.onPmlFull != null) this.onPmlFull();
      if (this.pmlIndex < 0) return; // not drained: the log is lost, like a PML-full exit ignored
    }
    const page = gpa - (gpa % 4096);
    this.host.writeU32(this.pmlFrame, this.pmlIndex * 8, page >>> 0);
    this.host.writeU32(this.pmlFrame, this.pmlIndex * 8 + 4, Math.floor(page / TWO32));
    this.pmlIndex--;
  }

  /** Turns on page-modification logging (requires accessDirty). */
  enablePml(onFull: () => void): void {
    if (!this.accessDirty) throw new Error('Ept: PML needs accessDirty');
    if (this.pmlFrame < 0) {
      const f = this.host.alloc();
      if (f < 0) throw new RangeError('Ept: host memory exhausted');
      this.host.flags[f] |= FRAME_TABLE;
      this.pmlFrame = f;
    }
    this.pmlIndex = 511;
    this.onPmlFull = onFull;
  }

  /** Hands every logged GPA (page-aligned) to `sink`, oldest first, and resets the index. */
  drainPml(sink: (gpa: number) => void): number {
    if (this.pmlFrame < 0) return 0;
    let n = 0;
    for (let i = 511; i > this.pmlIndex; i--) {
      sink(this.host.readU32(this.pmlFrame, i * 8) + this.host.readU32(this.pmlFrame, i * 8 + 4) * TWO32);
      n++;
    }
    this.pmlIndex = 511;
    return n;
  }

  // ---------------------------------------------------------------- building the tables

  /**
   * Maps [gpa, gpa + size) to host frames starting at `frame` with a single leaf of `size`
   * (4 KiB, 2 MiB or 1 GiB, naturally aligned). Intermediate tables get R/W/X. Returns false when
   * a table cannot be allocated or a larger leaf already covers the range. Callers must INVEPT
   * after changing an existing mapping.
   */
  map(gpa: number, frame: number, size: number, perms: number, memType: number = MT_WB, ipat = false): boolean {
    const level = size === PAGE_4K ? 1 : size === PAGE_2M ? 2 : size === PAGE_1G ? 3 : 0;
    if (level === 0) throw new RangeError(`Ept.map: size must be 4 KiB, 2 MiB or 1 GiB, got ${size}`);
    if (gpa % size !== 0 || (frame * 4096) % size !== 0) throw new RangeError('Ept.map: gpa and frame must be aligned to the page size');
    const t = this.tableFor(gpa, level, true);
    if (t < 0) return false;
    const idx = this.indexAt(gpa, level);
    let lo = ((frame % 0x10_0000) * 4096 + ((memType & 7) << EPT_MT_SHIFT) + (perms & (EPT_RWX | EPT_UX))) >>> 0;
    if (ipat) lo |= EPT_IPAT;
    if (level > 1) lo |= EPT_PS;
    this.writeEntry(t, idx, lo >>> 0, Math.floor(frame / 0x10_0000));
    return true;
  }

  /** Clears the leaf that maps gpa (any size). Returns its first frame, or -1 when none. */
  unmap(gpa: number): number {
    for (let level = 1; level <= 3; level++) {
      const t = this.tableFor(gpa, level, false);
      if (t < 0) continue;
      const idx = this.indexAt(gpa, level);
      const lo = this.host.readU32(t, idx * 8);
      const hi = this.host.readU32(t, idx * 8 + 4);
      if ((lo & 7) === 0) return -1;
      if (level === 1 || (lo & EPT_PS) !== 0) {
        this.writeEntry(t, idx, 0, 0);
        return (lo >>> 12) + (hi & 0xfffff) * 0x10_0000;
      }
    }
    return -1;
  }

  /** Reads the raw entry at `level` on the walk for gpa into out[0] (lo), out[1] (hi); false when the walk stops earlier. */
  readEntry(gpa: number, level: number, out: Uint32Array): boolean {
    const t = this.tableFor(gpa, level, false);
    if (t < 0) return false;
    const idx = this.indexAt(gpa, level);
    out[0] = this.host.readU32(t, idx * 8);
    out[1] = this.host.readU32(t, idx * 8 + 4);
    return true;
  }

  /** Writes a raw entry at `level` (allocating missing tables above it); for fixtures and tests. */
  writeRawEntry(gpa: number, level: number, lo: number, hi: number): boolean {
    const t = this.tableFor(gpa, level, true);
    if (t < 0) return false;
    this.writeEntry(t, this.indexAt(gpa, level), lo >>> 0, hi >>> 0);
    return true;
  }

  /** Rewrites the permission bits of the leaf mapping gpa; false when unmapped. */
  protect(gpa: number, perms: number): boolean {
    return this.editLeaf(gpa, ~(EPT_RWX | EPT_UX), perms & (EPT_RWX | EPT_UX));
  }

  /** Clears the dirty flag of the leaf mapping gpa (after dirty-log harvesting). */
  clearDirty(gpa: number): boolean {
    return this.editLeaf(gpa, ~EPT_D, 0);
  }

  /** Frees every paging-structure frame (the EPT must not be used afterwards). */
  destroy(): void {
    for (const f of this.tables) this.host.unref(f);
    this.tables.length = 0;
    if (this.pmlFrame >= 0) this.host.unref(this.pmlFrame);
    this.pmlFrame = -1;
    this.invept();
  }

  private editLeaf(gpa: number, keep: number, set: number): boolean {
    for (let level = 1; level <= 3; level++) {
      const t = this.tableFor(gpa, level, false);
      if (t < 0) continue;
      const idx = this.indexAt(gpa, level);
      const lo = this.host.readU32(t, idx * 8);
      if ((lo & 7) === 0) return false;
      if (level === 1 || (lo & EPT_PS) !== 0) {
        this.host.writeU32(t, idx * 8, ((lo & keep) | set) >>> 0);
        return true;
      }
    }
    return false;
  }

  private writeEntry(table: number, idx: number, lo: number, hi: number): void {
    this.host.writeU32(table, idx * 8, lo);
    this.host.writeU32(table, idx * 8 + 4, hi);
  }

  private indexAt(gpa: number, level: number): number {
    return Math.floor(gpa / 2 ** (12 + 9 * (level - 1))) % 512;
  }

  /** The table holding the level-`level` entry for gpa; creates missing tables when asked. */
  private tableFor(gpa: number, level: number, create: boolean): number {
    let t = this.rootFrame;
    for (let l = this.levels; l > level; l--) {
      const idx = this.indexAt(gpa, l);
      const lo = this.host.readU32(t, idx * 8);
      const hi = this.host.readU32(t, idx * 8 + 4);
      if ((lo & 7) === 0) {
        if (!create) return -1;
        const n = this.newTable();
        if (n < 0) return -1;
        this.writeEntry(t, idx, ((n % 0x10_0000) * 4096 + EPT_RWX) >>> 0, Math.floor(n / 0x10_0000));
        t = n;
      } else if ((lo & EPT_PS) !== 0) {
        return -1; // a large leaf is in the way
      } else {
        t = (lo >>> 12) + (hi & 0xfffff) * 0x10_0000;
        if (t >= this.host.refs.length || this.host.refs[t] === 0) return -1;
      }
    }
    return t;
  }

  private newTable(): number {
    const f = this.host.alloc();
    if (f < 0) return -1;
    this.host.flags[f] |= FRAME_TABLE;
    this.tables.push(f);
    return f;
  }
}
