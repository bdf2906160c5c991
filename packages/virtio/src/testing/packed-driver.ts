import type { GuestMemory } from '@ringzero/mmu-ept';
import {
  RING_EVENT_FLAGS_DESC,
  RING_EVENT_FLAGS_DISABLE,
  RING_EVENT_FLAGS_ENABLE,
  VIRTQ_DESC_F_AVAIL,
  VIRTQ_DESC_F_INDIRECT,
  VIRTQ_DESC_F_NEXT,
  VIRTQ_DESC_F_USED,
  VIRTQ_DESC_F_WRITE,
} from '../constants';
import type { GuestAllocator, GuestBuffer } from './alloc';
import type { UsedElement } from './split-driver';

/** Writes one packed descriptor {addr, len, id, flags} (any values, for hostile tests too). */
export function writePackedDesc(mem: GuestMemory, ring: number, idx: number, addr: number, len: number, id: number, flags: number): void {
  const d = ring + 16 * idx;
  mem.write64(d, addr >>> 0, Math.floor(addr / 0x1_0000_0000) >>> 0);
  mem.write32(d + 8, len);
  mem.write16(d + 12, id);
  mem.write16(d + 14, flags);
}

/** The driver side of a packed virtqueue in test memory. */
export class DriverPackedQueue {
  readonly size: number;
  readonly desc: number;
  readonly driverArea: number;
  readonly deviceArea: number;
  nextAvail = 0;
  availWrap = true;
  nextUsed = 0;
  usedWrap = true;
  private readonly mem: GuestMemory;
  private readonly alloc: GuestAllocator;
  private freeSlots: number;
  private readonly freeIds: number[] = [];
  private readonly slotsOf = new Map<number, number>();

  constructor(mem: GuestMemory, alloc: GuestAllocator, size: number) {
    this.mem = mem;
    this.alloc = alloc;
    this.size = size;
    this.desc = alloc.alloc(16 * size, 16);
    this.driverArea = alloc.alloc(4, 4);
    this.deviceArea = alloc.alloc(4, 4);
    mem.writeFrom(this.desc, new Uint8Array(16 * size));
    mem.write32(this.driverArea, 0);
    mem.write32(this.deviceArea, 0);
    this.freeSlots = size;
    for (let i = 0; i < size; i++) this.freeIds.push(i);
  }

  get freeCount(): number {
    return this.freeSlots;
  }

  private flagsFor(wrap: boolean): number {
    return wrap ? VIRTQ_DESC_F_AVAIL : VIRTQ_DESC_F_USED;
  }

  /** Publishes a chain; returns its buffer id or -1 when the ring is full. */
  add(out: readonly GuestBuffer[], inn: readonly GuestBuffer[], indirect = false): number {
    const n = out.length + inn.length;
    if (n === 0) throw new RangeError('DriverPackedQueue.add: empty chain');
    const slots = indirect ? 1 : n;
    if (this.freeSlots < slots || this.freeIds.length === 0) return -1;
    const id = this.freeIds.shift()!;
    const mem = this.mem;
    const start = this.nextAvail;
    const startWrap = this.availWrap;
    let firstFlags = 0;
    const put = (addr: number, len: number, flags: number): void => {
      const f = flags | this.flagsFor(this.availWrap);
      if (this.nextAvail === start && this.availWrap === startWrap) {
        firstFlags = f;
        writePackedDesc(mem, this.desc, this.nextAvail, addr, len, id, 0);
        // Flags of the first descriptor are written last (below), making the chain visible at once.
        mem.write16(this.desc + 16 * this.nextAvail + 14, this.flagsFor(!this.availWrap));
      } else {
        writePackedDesc(mem, this.desc, this.nextAvail, addr, len, id, f);
      }
      if (++this.nextAvail === this.size) {
        this.nextAvail = 0;
        this.availWrap = !this.availWrap;
      }
    };
    if (indirect) {
      const table = this.alloc.alloc(16 * n, 16);
      for (let i = 0; i < n; i++) {
        const b = i < out.length ? out[i] : inn[i - out.length];
        writePackedDesc(mem, table, i, b.addr, b.len, 0, i < out.length ? 0 : VIRTQ_DESC_F_WRITE);
      }
      put(table, 16 * n, VIRTQ_DESC_F_INDIRECT);
    } else {
      for (let i = 0; i < n; i++) {
        const b = i < out.length ? out[i] : inn[i - out.length];
        put(b.addr, b.len, (i < out.length ? 0 : VIRTQ_DESC_F_WRITE) | (i + 1 < n ? VIRTQ_DESC_F_NEXT : 0));
      }
    }
    mem.write16(this.desc + 16 * start + 14, firstFlags);
    this.freeSlots -= slots;
    this.slotsOf.set(id, slots);
    return id;
  }

  /** Reaps one used buffer, or null. */
  getUsed(): UsedElement | null {
    const d = this.desc + 16 * this.nextUsed;
    const flags = this.mem.read16(d + 14);
    const used = (flags & VIRTQ_DESC_F_USED) !== 0;
    const avail = (flags & VIRTQ_DESC_F_AVAIL) !== 0;
    if (used !== this.usedWrap || avail !== this.usedWrap) return null;
    const id = this.mem.read16(d + 12);
    const len = this.mem.read32(d + 8);
    const slots = this.slotsOf.get(id) ?? 1;
    this.slotsOf.delete(id);
    this.freeIds.push(id);
    this.freeSlots += slots;
    this.nextUsed += slots;
    if (this.nextUsed >= this.size) {
      this.nextUsed -= this.size;
      this.usedWrap = !this.usedWrap;
    }
    return { id, len };
  }

  /** Driver event suppression: 'enable', 'disable', or a descriptor position (off, wrap). */
  setEventSuppression(mode: 'enable' | 'disable' | { off: number; wrap: boolean }): void {
    if (mode === 'enable') this.mem.write16(this.driverArea + 2, RING_EVENT_FLAGS_ENABLE);
    else if (mode === 'disable') this.mem.write16(this.driverArea + 2, RING_EVENT_FLAGS_DISABLE);
    else {
      this.mem.write16(this.driverArea, mode.off | (mode.wrap ? 0x8000 : 0));
      this.mem.write16(this.driverArea + 2, RING_EVENT_FLAGS_DESC);
    }
  }

  /** The device's event suppression flags (0 enable, 1 disable, 2 desc). */
  get deviceEventFlags(): number {
    return this.mem.read16(this.deviceArea + 2) & 3;
  }
}
