/**
 * The memory interface the CPU consumes: linear addresses in, values or fault codes out.
 *
 * This is the consumer side of mmu-ept's translation (DESIGN.md: "define the interface you
 * consume"). The system issue plugs paging (and EPT) in behind it; this tests and the
 * user-mode runner use flat or sparse implementations.
 *
 * Contract:
 * - A linear address is a plain number: a 32-bit address in 16/32-bit modes, and in 64-bit
 *   mode a canonical address in its *signed* form, in [-2^47, 2^47) (0xffff8000_00000000 is
 *   -2^47). Canonical addresses are therefore exact doubles. The CPU checks canonicality
 *   itself and passes NaN for a non-canonical address; an implementation must answer NaN,
 *   negative or unmapped addresses with a fault code, never throw.
 * - Reads return the value zero-extended (read32 gives 0..2^32-1) or a negative fault code.
 *   64-bit values travel as lo/hi halves (read64 fills out[index], out[index + 1]).
 * - Writes return 0 or a negative fault code; a faulting write changes nothing (an access that
 *   crosses a page boundary is checked on both pages before anything is written).
 * - fetch8 is an instruction fetch (execute permission, the I/D bit of a page-fault code).
 * - No allocation per access.
 *
 * Fault codes: MEM_PF_BASE - errorCode for a page fault (the #PF error code, 0..0xffff), with
 * the faulting linear address left in faultAddress (it becomes CR2). Codes at or below
 * MEM_EXIT are reserved for accesses that must leave the vCPU (MMIO, EPT violation: system issue).
 */
export interface CpuMemory {
  /** Linear address of the last fault reported (CR2 for a page fault). */
  faultAddress: number;
  fetch8(la: number): number;
  /**
   * Optional fast path for the decoder: copies up to n instruction bytes at la into dst and
   * returns how many were fetchable (it stops at the first byte fetch8 would fault on). Never
   * faults itself; the decoder asks fetch8 for the fault when it needs a missing byte.
   */
  fetchBytes?(la: number, dst: Uint8Array, n: number): number;
  /**
   * Optional decode-cache support. markCode(la) declares that the page holding la contains
   * decoded instructions and returns true when the CPU may cache them; from then on any write
   * to that page, and any change of the mapping, increments codeWrites. The CPU drops its
   * decode cache whenever codeWrites changes (self-modifying code stays correct).
   */
  markCode?(la: number): boolean;
  readonly codeWrites?: number;
  /**
   * Optional, preferred over markCode: a decode cache keyed by physical page. codePage(la)
   * translates la for a fetch and returns a key >= 0 naming the page's backing (the host frame),
   * or -1 when it cannot be cached; from then on a write to that page calls onCodeWrite(key)
   * (the CPU sets it) before it lands. codeWrites then only counts mapping changes (CR3, INVLPG,
   * CPL, remaps), after which linear addresses are translated again but decoded pages are kept.
   */
  codePage?(la: number): number;
  onCodeWrite?: ((key: number) => void) | null;
  /**
   * Optional bulk path (REP MOVS/STOS): when the page holding la is plain RAM that a data read
   * (write = false) or write may touch right now with no side effect other than the access itself
   * (mapped, permitted, accessed/dirty already set, not watched, not MMIO), returns the byte array
   * holding it with la's byte at spanIndex; else null, and the caller takes the ordinary path,
   * which reports faults and exits. Bytes up to the end of la's page may be accessed directly.
   */
  span?(la: number, write: boolean): Uint8Array | null;
  readonly spanIndex?: number;
  read8(la: number): number;
  read16(la: number): number;
  read32(la: number): number;
  read64(la: number, out: Int32Array, index: number): number;
  write8(la: number, value: number): number;
  write16(la: number, value: number): number;
  write32(la: number, value: number): number;
  write64(la: number, lo: number, hi: number): number;
}

export const MEM_OK = 0;
/** A page fault with error code e is reported as MEM_PF_BASE - e. */
export const MEM_PF_BASE = -1;
/** Codes <= MEM_EXIT are not faults but exits (MMIO, EPT), defined by the system issue. */
export const MEM_EXIT = -0x20000;

/** Page-fault error-code bits (SDM vol. 3 4.7). */
export const PFEC_P = 1;
export const PFEC_W = 2;
export const PFEC_U = 4;
export const PFEC_I = 16;

/**
 * The simplest CpuMemory: linear address == offset in one Uint8Array, starting at `base`.
 * Everything outside [base, base + size) is a not-present page fault. For tests and small
 * programs; user mode uses the paged memory in src/user.
 */
export class FlatMemory implements CpuMemory {
  faultAddress = 0;
  readonly bytes: Uint8Array;
  readonly base: number;
  readonly size: number;
  private readonly dv: DataView;

  constructor(size: number, base = 0) {
    if (!Number.isInteger(size) || size < 0 || size > 0x7fff_ffff) throw new RangeError(`FlatMemory: bad size ${size}`);
    if (!Number.isInteger(base) || Math.abs(base) > 2 ** 47) throw new RangeError(`FlatMemory: bad base ${base}`);
    this.bytes = new Uint8Array(size);
    this.dv = new DataView(this.bytes.buffer);
    this.base = base;
    this.size = size;
  }

  private miss(la: number, write: boolean, fetch: boolean): number {
    this.faultAddress = la === la ? la : 0;
    return MEM_PF_BASE - (PFEC_U | (write ? PFEC_W : 0) | (fetch ? PFEC_I : 0));
  }

  fetch8(la: number): number {
    const o = la - this.base;
    return o >= 0 && o < this.size ? this.bytes[o] : this.miss(la, false, true);
  }
  fetchBytes(la: number, dst: Uint8Array, n: number): number {
    const o = la - this.base;
    if (!(o >= 0 && o < this.size)) return 0;
    const k = Math.min(n, this.size - o);
    for (let i = 0; i < k; i++) dst[i] = this.bytes[o + i];
    return k;
  }
  read8(la: number): number {
    const o = la - this.base;
    return o >= 0 && o < this.size ? this.bytes[o] : this.miss(la, false, false);
  }
  read16(la: number): number {
    const o = la - this.base;
    return o >= 0 && o + 2 <= this.size ? this.dv.getUint16(o, true) : this.miss(la, false, false);
  }
  read32(la: number): number {
    const o = la - this.base;
    return o >= 0 && o + 4 <= this.size ? this.dv.getUint32(o, true) : this.miss(la, false, false);
  }
  read64(la: number, out: Int32Array, index: number): number {
    const o = la - this.base;
    if (!(o >= 0 && o + 8 <= this.size)) return this.miss(la, false, false);
    out[index] = this.dv.getInt32(o, true);
    out[index + 1] = this.dv.getInt32(o + 4, true);
    return 0;
  }
  write8(la: number, value: number): number {
    const o = la - this.base;
    if (!(o >= 0 && o < this.size)) return this.miss(la, true, false);
    this.bytes[o] = value;
    return 0;
  }
  write16(la: number, value: number): number {
    const o = la - this.base;
    if (!(o >= 0 && o + 2 <= this.size)) return this.miss(la, true, false);
    this.dv.setUint16(o, value, true);
    return 0;
  }
  write32(la: number, value: number): number {
    const o = la - this.base;
    if (!(o >= 0 && o + 4 <= this.size)) return this.miss(la, true, false);
    this.dv.setInt32(o, value | 0, true);
    return 0;
  }
  write64(la: number, lo: number, hi: number): number {
    const o = la - this.base;
    if (!(o >= 0 && o + 8 <= this.size)) return this.miss(la, true, false);
    this.dv.setInt32(o, lo | 0, true);
    this.dv.setInt32(o + 4, hi | 0, true);
    return 0;
  }
}
