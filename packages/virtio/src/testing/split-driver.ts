import type { GuestMemory } from '@ringzero/mmu-ept';
import {
  VIRTQ_AVAIL_F_NO_INTERRUPT,
  VIRTQ_DESC_F_INDIRECT,
  VIRTQ_DESC_F_NEXT,
  VIRTQ_DESC_F_WRITE,
  VIRTQ_USED_F_NO_NOTIFY,
} from '../constants';
import type { GuestAllocator, GuestBuffer } from './alloc';

/** Writes one split-ring descriptor {addr, len, flags, next} at table[idx] (any values, for hostile tests too). */
export function writeSplitDesc(mem: GuestMemory, table: number, idx: number, addr: number, len: number, flags: number, next: number): void {
  const d = table + 16 * idx;
  mem.write64(d, addr >>> 0, Math.floor(addr / 0x1_0000_0000) >>> 0);
  mem.write32(d + 8, len);
  mem.write16(d + 12, flags);
  mem.write16(d + 14, next);
}

/** One used element as the driver reaps it. */
export interface UsedElement {
  id: number;
  len: number;
}

/**
 * The driver side of a split virtqueue in test memory: allocates the rings, hands out
 * descriptors, publishes chains (direct or through an indirect table) and reaps used entries.
 */
export class DriverSplitQueue {
  readonly size: number;
  readonly desc: number;
  readonly avail: number;
  readonly used: number;
  /** Free-running available index the driver publishes. */
  availIdx = 0;
  /** Free-running used index the driver has consumed up to. */
  lastUsed = 0;
  private readonly mem: GuestMemory;
  private readonly alloc: GuestAllocator;
  private readonly free: number[] = [];
  private readonly chains = new Map<number, number[]>();

  /** `at` places the rings at fixed addresses (e.g. the legacy PFN layout) instead of allocating them. */
  constructor(mem: GuestMemory, alloc: GuestAllocator, size: number, at?: { desc: number; avail: number; used: number }) {
    this.mem = mem;
    this.alloc = alloc;
    this.size = size;
    this.desc = at?.desc ?? alloc.alloc(16 * size, 16);
    this.avail = at?.avail ?? alloc.alloc(6 + 2 * size, 2);
    this.used = at?.used ?? alloc.alloc(6 + 8 * size, 4);
    for (let i = 0; i < size; i++) this.free.push(i);
    mem.writeFrom(this.desc, new Uint8Array(16 * size));
    mem.writeFrom(this.avail, new Uint8Array(6 + 2 * size));
    mem.writeFrom(this.used, new Uint8Array(6 + 8 * size));
  }

  /** Descriptors not in use. */
  get freeCount(): number {
    return this.free.length;
  }

  /**
   * Publishes a chain of device-readable `out` buffers then device-writable `inn` buffers.
   * With `indirect`, the chain goes into a fresh indirect table behind one descriptor.
   * Returns the head index, or -1 when there are not enough free descriptors.
   */
  add(out: readonly GuestBuffer[], inn: readonly GuestBuffer[], indirect = false): number {
    const n = out.length + inn.length;
    if (n === 0) throw new RangeError('DriverSplitQueue.add: empty chain');
    const need = indirect ? 1 : n;
    if (this.free.length < need) return -1;
    const ids = this.free.splice(0, need);
    const mem = this.mem;
    if (indirect) {
      const table = this.alloc.alloc(16 * n, 16);
      for (let i = 0; i < n; i++) {
        const b = i < out.length ? out[i] : inn[i - out.length];
        const flags = (i < out.length ? 0 : VIRTQ_DESC_F_WRITE) | (i + 1 < n ? VIRTQ_DESC_F_NEXT : 0);
        writeSplitDesc(mem, table, i, b.addr, b.len, flags, i + 1 < n ? i + 1 : 0);
      }
      writeSplitDesc(mem, this.desc, ids[0], table, 16 * n, VIRTQ_DESC_F_INDIRECT, 0);
    } else {
      for (let i = 0; i < n; i++) {
        const b = i < out.length ? out[i] : inn[i - out.length];
        const flags = (i < out.length ? 0 : VIRTQ_DESC_F_WRITE) | (i + 1 < n ? VIRTQ_DESC_F_NEXT : 0);
        writeSplitDesc(mem, this.desc, ids[i], b.addr, b.len, flags, i + 1 < n ? ids[i + 1] : 0);
      }
    }
    const head = ids[0];
    this.chains.set(head, ids);
    this.publishHead(head);
    return head;
  }

  /** Puts a raw head index in the available ring and bumps avail.idx (no bookkeeping: hostile tests). */
  publishHead(head: number): void {
    this.mem.write16(this.avail + 4 + 2 * (this.availIdx % this.size), head);
    this.availIdx = (this.availIdx + 1) & 0xffff;
    this.mem.write16(this.avail + 2, this.availIdx);
  }

  /** Reaps one used element, or null when the device has not used anything new. */
  getUsed(): UsedElement | null {
    const idx = this.mem.read16(this.used + 2);
    if (idx === this.lastUsed) return null;
    const e = this.used + 4 + 8 * (this.lastUsed % this.size);
    const id = this.mem.read32(e);
    const len = this.mem.read32(e + 4);
    this.lastUsed = (this.lastUsed + 1) & 0xffff;
    // As Linux does: ask for an interrupt at the next used entry (harmless without EVENT_IDX).
    this.setUsedEvent(this.lastUsed);
    const ids = this.chains.get(id);
    if (ids !== undefined) {
      this.chains.delete(id);
      for (const i of ids) this.free.push(i);
    }
    return { id, len };
  }

  /** Sets used_event (VIRTIO_F_EVENT_IDX): interrupt me when the used index passes this. */
  setUsedEvent(v: number): void {
    this.mem.write16(this.avail + 4 + 2 * this.size, v);
  }

  /** Sets or clears VIRTQ_AVAIL_F_NO_INTERRUPT. */
  setNoInterrupt(on: boolean): void {
    this.mem.write16(this.avail, on ? VIRTQ_AVAIL_F_NO_INTERRUPT : 0);
  }

  /** avail_event as the device last wrote it (VIRTIO_F_EVENT_IDX). */
  get availEvent(): number {
    return this.mem.read16(this.used + 4 + 8 * this.size);
  }

  /** Whether the device asked not to be notified (used.flags NO_NOTIFY). */
  get noNotify(): boolean {
    return (this.mem.read16(this.used) & VIRTQ_USED_F_NO_NOTIFY) !== 0;
  }
}
