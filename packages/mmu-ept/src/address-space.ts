import { Ept, EPT_RWX, EPT_R, EPT_X, MT_WB, PAGE_4K, QUAL_WRITE, type EptOptions } from './ept';
import type { GuestMemory } from './guest-memory';
import { FRAME_CODE, FRAME_SHARED, FRAME_WP, FRAME_WRITE_SLOW, ZERO_FRAME, type HostMemory } from './host-memory';

/**
 * A guest-physical address space (one VM's memory, like KVM's memslots): RAM slots backed by
 * host frames, MMIO holes, and the EPT that maps it for the CPU.
 *
 * - RAM pages start out mapped to the shared zero frame and get a private frame on their first
 *   write (from the CPU through an EPT violation, or from a device through GuestMemory).
 * - Frames may be shared between pages and between address spaces (KSM merging): a shared
 *   frame is mapped read-only and a write copies it first (copy-on-write).
 * - The EPT is filled lazily: a CPU access to a page not yet in the EPT is an EPT violation that
 *   handleEptViolation() resolves (the in-kernel half of KVM's fault handling); MMIO and holes
 *   are left unmapped so the violation reaches the machine.
 * - Dirty logging per slot: PML (when the EPT has A/D flags) or write protection, drained into
 *   a bitmap with get-and-clear semantics (KVM_GET_DIRTY_LOG).
 *
 * Addresses are integers below 2^52. Accesses that are not entirely RAM never throw.
 */

export interface RamOptions {
  /** Allocate every frame now, in runs of consecutive frames (so hostView spans pages). */
  populate?: boolean;
  /** Guest writes are refused (ROM): GuestMemory writes return false, CPU writes stay EPT violations. */
  readonly?: boolean;
}

export interface AddressSpaceOptions {
  /** EPT options, or false for a space without an EPT (devices only). Default: 4-level, no A/D. */
  ept?: EptOptions | false;
}

class Slot {
  constructor(
    readonly id: number,
    readonly start: number,
    readonly end: number,
    readonly frames: Int32Array,
    readonly readonly: boolean,
    public dirty: Uint32Array | null,
  ) {}
}

class Hole {
  constructor(
    readonly id: number,
    readonly start: number,
    readonly end: number,
  ) {}
}

const NO_SLOT = new Slot(-1, 0, 0, new Int32Array(0), true, null);
const MAX_SLOT_PAGES = 0x4000_0000; // 4 TiB per slot
const MAX_GPA = 2 ** 52;

export class AddressSpace implements GuestMemory {
  readonly host: HostMemory;
  readonly ept: Ept | null;
  private slots: Slot[] = [];
  private holes: Hole[] = [];
  private last: Slot = NO_SLOT;
  private nextSlotId = 1;
  private limitValue = 0;
  private readonly scratch = new Uint8Array(8);

  constructor(host: HostMemory, options: AddressSpaceOptions = {}) {
    this.host = host;
    this.ept = options.ept === false ? null : new Ept(host, options.ept ?? {});
  }

  get limit(): number {
    return this.limitValue;
  }

  // ------------------------------------------------------------------ layout

  /** Adds a RAM slot at [start, start + size) (page-aligned, not overlapping). Returns its id. */
  addRam(start: number, size: number, options: RamOptions = {}): number {
    this.checkRange(start, size, 'addRam');
    const pages = size / PAGE_4K;
    if (pages > MAX_SLOT_PAGES) throw new RangeError(`addRam: slot larger than ${MAX_SLOT_PAGES} pages`);
    const frames = new Int32Array(pages); // all ZERO_FRAME (0)
    const slot = new Slot(this.nextSlotId++, start, start + size, frames, options.readonly === true, null);
    if (options.populate === true) {
      const run = this.host.chunkFrames;
      for (let i = 0; i < pages; i += run) {
        const n = Math.min(run, pages - i);
        const f = this.host.allocRun(n);
        if (f < 0) {
          for (let j = 0; j < i; j++) this.host.unref(frames[j]);
          throw new RangeError('addRam: host memory exhausted');
        }
        for (let j = 0; j < n; j++) frames[i + j] = f + j;
      }
    }
    this.slots.push(slot);
    this.slots.sort((a, b) => a.start - b.start);
    this.limitValue = Math.max(this.limitValue, slot.end);
    return slot.id;
  }

  /** Removes a RAM slot: unmaps it from the EPT (with INVEPT) and releases its frames. */
  removeRam(id: number): void {
    const i = this.slots.findIndex((s) => s.id === id);
    if (i < 0) throw new RangeError(`removeRam: no slot ${id}`);
    const slot = this.slots[i];
    this.slots.splice(i, 1);
    if (this.last === slot) this.last = NO_SLOT;
    if (this.ept != null) {
      for (let p = 0; p < slot.frames.length; p++) this.ept.unmap(slot.start + p * PAGE_4K);
      this.ept.invept();
    }
    for (let p = 0; p < slot.frames.length; p++) if (slot.frames[p] !== ZERO_FRAME) this.host.unref(slot.frames[p]);
    this.host.flushWriteCaches();
    this.limitValue = this.slots.reduce((m, s) => Math.max(m, s.end), 0);
  }

  /** Declares an MMIO hole (a device's window) with the caller's id. */
  addMmio(start: number, size: number, id: number): void {
    this.checkRange(start, size, 'addMmio');
    this.holes.push(new Hole(id, start, start + size));
    this.holes.sort((a, b) => a.start - b.start);
  }

  /** Removes the MMIO hole starting at `start`; false when there is none. */
  removeMmio(start: number): boolean {
    const i = this.holes.findIndex((h) => h.start === start);
    if (i < 0) return false;
    this.holes.splice(i, 1);
    return true;
  }

  /** Id of the MMIO hole holding gpa, or -1. */
  mmioAt(gpa: number): number {
    for (const h of this.holes) if (gpa >= h.start && gpa < h.end) return h.id;
    return -1;
  }

  /** Id of the RAM slot holding gpa, or -1. */
  slotAt(gpa: number): number {
    const s = this.find(gpa, 1);
    return s == null ? -1 : s.id;
  }

  /** Describes the layout (RAM slots and MMIO holes), sorted by address. */
  regions(): { kind: 'ram' | 'mmio'; id: number; start: number; size: number }[] {
    const out: { kind: 'ram' | 'mmio'; id: number; start: number; size: number }[] = [];
    for (const s of this.slots) out.push({ kind: 'ram', id: s.id, start: s.start, size: s.end - s.start });
    for (const h of this.holes) out.push({ kind: 'mmio', id: h.id, start: h.start, size: h.end - h.start });
    return out.sort((a, b) => a.start - b.start);
  }

  /** Host frame backing gpa (ZERO_FRAME when never written), or -1 when not RAM. No allocation. */
  frameAt(gpa: number): number {
    const s = this.find(gpa, 1);
    return s == null ? -1 : s.frames[Math.floor((gpa - s.start) / PAGE_4K)];
  }

  // ------------------------------------------------------------------ EPT maintenance

  /**
   * Resolves an EPT violation on RAM the way KVM does in the kernel: maps the page (allocating a
   * frame, breaking copy-on-write, logging dirt) and returns true so the access is retried.
   * Returns false for MMIO, holes and writes to read-only slots: those are the machine's.
   */
  handleEptViolation(gpa: number, qual: number): boolean {
    const ept = this.ept;
    if (ept == null) return false;
    const s = this.find(gpa, 1);
    if (s == null) return false;
    const i = Math.floor((gpa - s.start) / PAGE_4K);
    const page = s.start + i * PAGE_4K;
    const write = (qual & QUAL_WRITE) !== 0;
    if (write) {
      if (s.readonly) return false;
      const f = this.privateFrame(s, i);
      if (f < 0) return false;
      if (s.dirty != null) this.setDirtyBit(s, i);
      ept.map(page, f, PAGE_4K, EPT_RWX, MT_WB);
    } else {
      const f = s.frames[i];
      const writable = !s.readonly && f !== ZERO_FRAME && (this.host.flags[f] & FRAME_SHARED) === 0 && (s.dirty == null || ept.accessDirty);
      ept.map(page, f, PAGE_4K, writable ? EPT_RWX : EPT_R | EPT_X, MT_WB);
    }
    // No INVEPT: the entry was absent or gains rights (cached translations are stricter and
    // fault into a new walk); frame changes (copy-on-write) already invalidated in privateFrame.
    return true;
  }

  /** Maps every RAM page into the EPT now (instead of on first touch). */
  populateEpt(): void {
    const ept = this.ept;
    if (ept == null) return;
    for (const s of this.slots) {
      for (let i = 0; i < s.frames.length; i++) {
        const f = s.frames[i];
        const writable = !s.readonly && f !== ZERO_FRAME && (this.host.flags[f] & FRAME_SHARED) === 0 && (s.dirty == null || ept.accessDirty);
        ept.map(s.start + i * PAGE_4K, f, PAGE_4K, writable ? EPT_RWX : EPT_R | EPT_X, MT_WB);
      }
    }
    ept.invept();
  }

  // ------------------------------------------------------------------ sharing (KSM) and balloon

  /**
   * Copy-on-write merge (what KSM does): if the page at gpa here and the page at otherGpa in
   * `other` (which may be this space) hold the same bytes, both map one frame read-only and the
   * other frame is released. Returns false (and changes nothing) when the contents differ or
   * either page is not RAM.
   */
  mergeWith(gpa: number, other: AddressSpace, otherGpa: number): boolean {
    if (other.host !== this.host) throw new Error('mergeWith: spaces must share one HostMemory');
    const a = this.find(gpa, 1);
    const b = other.find(otherGpa, 1);
    if (a == null || b == null || a.readonly || b.readonly) return false;
    const ia = Math.floor((gpa - a.start) / PAGE_4K);
    const ib = Math.floor((otherGpa - b.start) / PAGE_4K);
    const fa = a.frames[ia];
    const fb = b.frames[ib];
    if (fa === fb) return true;
    const host = this.host;
    const ua = host.u8[fa >>> host.chunkShift];
    const ub = host.u8[fb >>> host.chunkShift];
    const oa = host.byteIndex(fa);
    const ob = host.byteIndex(fb);
    for (let k = 0; k < PAGE_4K; k++) if (ua[oa + k] !== ub[ob + k]) return false;
    if (fa !== ZERO_FRAME) host.ref(fa);
    b.frames[ib] = fa;
    if (fb !== ZERO_FRAME) host.unref(fb);
    this.unmapPage(a.start + ia * PAGE_4K);
    other.unmapPage(b.start + ib * PAGE_4K);
    host.flushWriteCaches();
    return true;
  }

  /** Gives the page back to the zero frame (balloon inflate / discard): contents become zero. */
  discard(gpa: number, size: number): void {
    for (let a = gpa - (gpa % PAGE_4K); a < gpa + size; a += PAGE_4K) {
      const s = this.find(a, 1);
      if (s == null) continue;
      const i = Math.floor((a - s.start) / PAGE_4K);
      const f = s.frames[i];
      if (f === ZERO_FRAME) continue;
      s.frames[i] = ZERO_FRAME;
      this.host.unref(f);
      this.unmapPage(a);
    }
    this.host.flushWriteCaches();
  }

  /** Breaks sharing of the page at gpa so it has a private frame; returns that frame or -1. */
  breakCow(gpa: number): number {
    const s = this.find(gpa, 1);
    if (s == null || s.readonly) return -1;
    return this.privateFrame(s, Math.floor((gpa - s.start) / PAGE_4K));
  }

  // ------------------------------------------------------------------ dirty logging

  /** Starts dirty logging on a slot (a clean bitmap; existing mappings lose write access). */
  enableDirtyLog(id: number): void {
    const s = this.slotById(id);
    s.dirty = new Uint32Array(Math.ceil(s.frames.length / 32));
    const ept = this.ept;
    if (ept != null) {
      if (ept.accessDirty) {
        if (ept.pmlFrame < 0) ept.enablePml(() => this.drainPml());
        for (let i = 0; i < s.frames.length; i++) ept.clearDirty(s.start + i * PAGE_4K);
      } else {
        for (let i = 0; i < s.frames.length; i++) ept.protect(s.start + i * PAGE_4K, EPT_R | EPT_X);
      }
      ept.invept();
    }
  }

  disableDirtyLog(id: number): void {
    this.slotById(id).dirty = null;
  }

  /**
   * KVM_GET_DIRTY_LOG: copies the slot's dirty bitmap (bit i = page i) into `out` (at least
   * ceil(pages / 32) words), clears it, and re-arms tracking of those pages. Returns the number
   * of dirty pages.
   */
  getDirtyLog(id: number, out: Uint32Array): number {
    const s = this.slotById(id);
    const bm = s.dirty;
    if (bm == null) throw new Error(`getDirtyLog: slot ${id} is not logging`);
    if (out.length < bm.length) throw new RangeError(`getDirtyLog: out needs ${bm.length} words`);
    this.drainPml();
    const ept = this.ept;
    let n = 0;
    for (let w = 0; w < bm.length; w++) {
      let bits = bm[w];
      out[w] = bits;
      bm[w] = 0;
      while (bits !== 0) {
        const b = 31 - Math.clz32(bits);
        bits &= ~(1 << b);
        n++;
        if (ept != null) {
          const gpa = s.start + (w * 32 + b) * PAGE_4K;
          if (ept.accessDirty) ept.clearDirty(gpa);
          else ept.protect(gpa, EPT_R | EPT_X);
        }
      }
    }
    if (ept != null) ept.invept();
    return n;
  }

  /** Records that [gpa, gpa + length) was written behind the CPU's back (e.g. through hostView). */
  markDirty(gpa: number, length: number): void {
    for (let a = gpa - (gpa % PAGE_4K); a < gpa + length; a += PAGE_4K) {
      const s = this.find(a, 1);
      if (s == null) continue;
      const i = Math.floor((a - s.start) / PAGE_4K);
      if (s.dirty != null) this.setDirtyBit(s, i);
      this.host.notifyWrite(s.frames[i]);
    }
  }

  private drainPml(): void {
    const ept = this.ept;
    if (ept == null) return;
    ept.drainPml((gpa) => {
      const s = this.find(gpa, 1);
      if (s != null && s.dirty != null) this.setDirtyBit(s, Math.floor((gpa - s.start) / PAGE_4K));
    });
  }

  private setDirtyBit(s: Slot, i: number): void {
    (s.dirty as Uint32Array)[i >>> 5] |= 1 << (i & 31);
  }

  // ------------------------------------------------------------------ GuestMemory

  isRam(addr: number, length: number): boolean {
    if (!(length >= 0) || !Number.isInteger(addr) || !Number.isInteger(length) || addr < 0 || addr + length > this.limitValue) return false;
    let a = addr;
    const end = addr + length;
    if (length === 0) return addr >= 0 && addr <= this.limitValue;
    while (a < end) {
      const s = this.find(a, 1);
      if (s == null) return false;
      a = s.end;
    }
    return true;
  }

  read8(addr: number): number {
    let s = this.last;
    if (!(addr >= s.start && addr < s.end)) {
      const f = this.find(addr, 1);
      if (f == null) return -1;
      s = f;
    }
    const off = addr - s.start;
    const frame = s.frames[(off / PAGE_4K) | 0];
    const host = this.host;
    return host.u8[frame >>> host.chunkShift][((frame & host.chunkMask) << 12) + (off & 4095)];
  }

  read16(addr: number): number {
    const s = this.fast(addr, 2);
    if (s == null) return this.readSlow(addr, 2);
    const off = addr - s.start;
    const frame = s.frames[(off / PAGE_4K) | 0];
    const host = this.host;
    return host.dv[frame >>> host.chunkShift].getUint16(((frame & host.chunkMask) << 12) + (off & 4095), true);
  }

  read32(addr: number): number {
    const s = this.fast(addr, 4);
    if (s == null) return this.readSlow(addr, 4);
    const off = addr - s.start;
    const frame = s.frames[(off / PAGE_4K) | 0];
    const host = this.host;
    return host.dv[frame >>> host.chunkShift].getUint32(((frame & host.chunkMask) << 12) + (off & 4095), true);
  }

  read64(addr: number, out: Uint32Array, index: number): boolean {
    const s = this.fast(addr, 8);
    if (s == null) {
      if (!this.readInto(addr, this.scratch)) return false;
      const b = this.scratch;
      out[index] = b[0] | (b[1] << 8) | (b[2] << 16) | (b[3] << 24);
      out[index + 1] = b[4] | (b[5] << 8) | (b[6] << 16) | (b[7] << 24);
      return true;
    }
    const off = addr - s.start;
    const frame = s.frames[(off / PAGE_4K) | 0];
    const host = this.host;
    const dv = host.dv[frame >>> host.chunkShift];
    const p = ((frame & host.chunkMask) << 12) + (off & 4095);
    out[index] = dv.getUint32(p, true);
    out[index + 1] = dv.getUint32(p + 4, true);
    return true;
  }

  write8(addr: number, value: number): boolean {
    const s = this.fast(addr, 1);
    if (s == null) return false;
    const frame = this.writableFrame(s, addr);
    if (frame < 0) return false;
    const host = this.host;
    host.u8[frame >>> host.chunkShift][((frame & host.chunkMask) << 12) + ((addr - s.start) & 4095)] = value;
    return true;
  }

  write16(addr: number, value: number): boolean {
    const s = this.fast(addr, 2);
    if (s == null) {
      const b = this.scratch;
      b[0] = value;
      b[1] = value >>> 8;
      return this.writeFrom(addr, b.subarray(0, 2));
    }
    const frame = this.writableFrame(s, addr);
    if (frame < 0) return false;
    const host = this.host;
    host.dv[frame >>> host.chunkShift].setUint16(((frame & host.chunkMask) << 12) + ((addr - s.start) & 4095), value, true);
    return true;
  }

  write32(addr: number, value: number): boolean {
    const s = this.fast(addr, 4);
    if (s == null) {
      const b = this.scratch;
      b[0] = value;
      b[1] = value >>> 8;
      b[2] = value >>> 16;
      b[3] = value >>> 24;
      return this.writeFrom(addr, b.subarray(0, 4));
    }
    const frame = this.writableFrame(s, addr);
    if (frame < 0) return false;
    const host = this.host;
    host.dv[frame >>> host.chunkShift].setUint32(((frame & host.chunkMask) << 12) + ((addr - s.start) & 4095), value >>> 0, true);
    return true;
  }

  write64(addr: number, lo: number, hi: number): boolean {
    const s = this.fast(addr, 8);
    if (s == null) {
      const b = this.scratch;
      for (let i = 0; i < 4; i++) {
        b[i] = lo >>> (8 * i);
        b[4 + i] = hi >>> (8 * i);
      }
      return this.writeFrom(addr, b);
    }
    const frame = this.writableFrame(s, addr);
    if (frame < 0) return false;
    const host = this.host;
    const dv = host.dv[frame >>> host.chunkShift];
    const p = ((frame & host.chunkMask) << 12) + ((addr - s.start) & 4095);
    dv.setUint32(p, lo >>> 0, true);
    dv.setUint32(p + 4, hi >>> 0, true);
    return true;
  }

  readInto(addr: number, dst: Uint8Array): boolean {
    if (!this.isRam(addr, dst.length)) return false;
    const host = this.host;
    let done = 0;
    while (done < dst.length) {
      const a = addr + done;
      const s = this.find(a, 1) as Slot;
      const off = a - s.start;
      const frame = s.frames[Math.floor(off / PAGE_4K)];
      const po = off % PAGE_4K;
      const n = Math.min(PAGE_4K - po, dst.length - done);
      const b = host.byteIndex(frame) + po;
      dst.set(host.u8[frame >>> host.chunkShift].subarray(b, b + n), done);
      done += n;
    }
    return true;
  }

  writeFrom(addr: number, src: Uint8Array): boolean {
    if (!this.isRam(addr, src.length)) return false;
    // Check every page is writable before touching any (all or nothing).
    for (let a = addr; a < addr + src.length; a = a - (a % PAGE_4K) + PAGE_4K) {
      if ((this.find(a, 1) as Slot).readonly) return false;
    }
    const host = this.host;
    let done = 0;
    while (done < src.length) {
      const a = addr + done;
      const s = this.find(a, 1) as Slot;
      const frame = this.writableFrame(s, a);
      if (frame < 0) return false; // host out of frames: earlier pages were written
      const po = (a - s.start) % PAGE_4K;
      const n = Math.min(PAGE_4K - po, src.length - done);
      host.u8[frame >>> host.chunkShift].set(src.subarray(done, done + n), host.byteIndex(frame) + po);
      done += n;
    }
    return true;
  }

  /**
   * A view of [addr, addr + length) when it lies in one writable slot on consecutive private
   * host frames of one chunk (populated slots always qualify; pages never written or shared
   * copy-on-write do not: use readInto/writeFrom). Writers must call markDirty afterwards when
   * dirty logging or code watching matters.
   */
  hostView(addr: number, length: number): Uint8Array | null {
    const s = this.find(addr, Math.max(length, 1));
    if (s == null || s.readonly || length < 0) return null;
    const first = Math.floor((addr - s.start) / PAGE_4K);
    const lastPage = Math.floor((addr + Math.max(length, 1) - 1 - s.start) / PAGE_4K);
    const host = this.host;
    const f0 = s.frames[first];
    for (let i = first; i <= lastPage; i++) {
      const f = s.frames[i];
      if (f === ZERO_FRAME || (host.flags[f] & FRAME_SHARED) !== 0) return null;
      if (f !== f0 + (i - first) || f >>> host.chunkShift !== f0 >>> host.chunkShift) return null;
    }
    const b = host.byteIndex(f0) + ((addr - s.start) % PAGE_4K);
    return host.u8[f0 >>> host.chunkShift].subarray(b, b + length);
  }

  // ------------------------------------------------------------------ internals

  /** The slot for an access of `len` bytes that stays inside one page, or null (slow path). */
  private fast(addr: number, len: number): Slot | null {
    let s = this.last;
    if (!(addr >= s.start && addr + len <= s.end)) {
      const f = this.find(addr, len);
      if (f == null) return null;
      s = f;
    }
    return ((addr - s.start) & 4095) + len <= PAGE_4K ? s : null;
  }

  private readSlow(addr: number, len: number): number {
    const b = this.scratch;
    if (!this.readInto(addr, b.subarray(0, len))) return -1;
    return len === 2 ? b[0] | (b[1] << 8) : (b[0] | (b[1] << 8) | (b[2] << 16) | (b[3] << 24)) >>> 0;
  }

  /** Frame that may be written at addr (copy-on-write broken, watchers told), or -1. */
  private writableFrame(s: Slot, addr: number): number {
    const i = ((addr - s.start) / PAGE_4K) | 0;
    let f = s.frames[i];
    const fl = this.host.flags[f];
    if (s.readonly) return -1;
    if (fl !== 0 || s.dirty != null) {
      if ((fl & FRAME_WRITE_SLOW) !== 0) {
        if ((fl & (FRAME_CODE | FRAME_WP)) !== 0) this.host.notifyWrite(f);
        if ((this.host.flags[f] & FRAME_SHARED) !== 0) f = this.privateFrame(s, i);
      }
      if (s.dirty != null && f >= 0) this.setDirtyBit(s, i);
    }
    return f;
  }

  /** Gives page i of slot s a frame of its own (copying a shared one). -1 when out of memory. */
  private privateFrame(s: Slot, i: number): number {
    const host = this.host;
    const old = s.frames[i];
    if (old !== ZERO_FRAME && (host.flags[old] & FRAME_SHARED) === 0) return old;
    const f = host.alloc();
    if (f < 0) return -1;
    if (old !== ZERO_FRAME) {
      host.copyFrame(f, old);
      if ((host.flags[old] & (FRAME_CODE | FRAME_WP)) !== 0) host.flags[f] |= host.flags[old] & (FRAME_CODE | FRAME_WP);
      host.unref(old);
    }
    s.frames[i] = f;
    this.unmapPage(s.start + i * PAGE_4K);
    return f;
  }

  private unmapPage(gpa: number): void {
    if (this.ept != null && this.ept.unmap(gpa) >= 0) this.ept.invept();
  }

  private find(addr: number, len: number): Slot | null {
    const slots = this.slots;
    let lo = 0;
    let hi = slots.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const s = slots[mid];
      if (addr < s.start) hi = mid - 1;
      else if (addr >= s.end) lo = mid + 1;
      else {
        if (addr + len > s.end || !Number.isInteger(addr)) return null;
        this.last = s;
        return s;
      }
    }
    return null;
  }

  private slotById(id: number): Slot {
    const s = this.slots.find((x) => x.id === id);
    if (s === undefined) throw new RangeError(`no RAM slot ${id}`);
    return s;
  }

  private checkRange(start: number, size: number, what: string): void {
    if (!Number.isInteger(start) || !Number.isInteger(size) || start < 0 || size <= 0 || start % PAGE_4K !== 0 || size % PAGE_4K !== 0 || start + size > MAX_GPA) {
      throw new RangeError(`${what}: start and size must be page-aligned, size > 0, below 2^52 (got ${start}, ${size})`);
    }
    for (const s of this.slots) if (start < s.end && s.start < start + size) throw new RangeError(`${what}: overlaps RAM slot ${s.id}`);
    for (const h of this.holes) if (start < h.end && h.start < start + size) throw new RangeError(`${what}: overlaps MMIO hole ${h.id}`);
  }
}
