import type { GuestMemory } from '@ringzero/mmu-ept';
import type { DescriptorChain } from './chain';
import {
  VIRTQ_AVAIL_F_NO_INTERRUPT,
  VIRTQ_DESC_F_INDIRECT,
  VIRTQ_DESC_F_NEXT,
  VIRTQ_DESC_F_WRITE,
  VIRTQ_USED_F_NO_NOTIFY,
} from './constants';
import type { Virtqueue } from './queue';
import { stateBool, stateFail, stateInt, stateObject } from './state';
import {
  POP_EMPTY,
  POP_OK,
  QERR_AVAIL_IDX,
  QERR_AVAIL_RING,
  QERR_BUFFER_NOT_RAM,
  QERR_CHAIN_TOO_BIG,
  QERR_CHAIN_TOO_LONG,
  QERR_DESC_NOT_RAM,
  QERR_HEAD_RANGE,
  QERR_INDIRECT_LEN,
  QERR_INDIRECT_NEXT,
  QERR_INDIRECT_NOT_NEGOTIATED,
  QERR_LAYOUT,
  QERR_NESTED_INDIRECT,
  QERR_NEXT_RANGE,
  QERR_READ_AFTER_WRITE,
  QERR_USED_RING,
} from './queue';

const TWO32 = 0x1_0000_0000;
/** Above this, hi * 2^32 + lo no longer fits in a double exactly. */
const MAX_ADDR_HI = 0x20_0000;

/** Split ring sizes: descriptor table 16N, available ring 6 + 2N, used ring 6 + 8N. */
export function splitRingBytes(size: number): { desc: number; avail: number; used: number } {
  return { desc: 16 * size, avail: 6 + 2 * size, used: 6 + 8 * size };
}

/**
 * Checks a split ring layout before the queue goes live: size a power of two from 1 to
 * maxSize, areas aligned (16 / 2 / 4) and entirely guest RAM. Returns 0 or QERR_LAYOUT.
 */
export function checkSplitLayout(mem: GuestMemory, size: number, maxSize: number, desc: number, avail: number, used: number): number {
  if (!Number.isInteger(size) || size < 1 || size > maxSize || (size & (size - 1)) !== 0) return QERR_LAYOUT;
  if (desc % 16 !== 0 || avail % 2 !== 0 || used % 4 !== 0) return QERR_LAYOUT;
  const b = splitRingBytes(size);
  if (!mem.isRam(desc, b.desc) || !mem.isRam(avail, b.avail) || !mem.isRam(used, b.used)) return QERR_LAYOUT;
  return 0;
}

/** A split queue's position, as plain data (layout plus the device's indices). */
export interface SplitQueueState {
  kind: 'split';
  size: number;
  desc: number;
  avail: number;
  used: number;
  lastAvail: number;
  nextUsed: number;
  signalledUsed: number;
  notificationsEnabled: boolean;
  /** 0, or the QERR_* code that broke the queue. */
  error: number;
}

/** Checks a saved split queue (layout in `mem`, indices consistent); throws VirtioStateError. */
export function parseSplitState(v: unknown, path: string, mem: GuestMemory, maxSize: number): SplitQueueState {
  const o = stateObject(v, path);
  if (o.kind !== 'split') stateFail(`${path}.kind`, "must be 'split'");
  const size = stateInt(o.size, `${path}.size`, 1, maxSize);
  const desc = stateInt(o.desc, `${path}.desc`, 0, Number.MAX_SAFE_INTEGER);
  const avail = stateInt(o.avail, `${path}.avail`, 0, Number.MAX_SAFE_INTEGER);
  const used = stateInt(o.used, `${path}.used`, 0, Number.MAX_SAFE_INTEGER);
  if (checkSplitLayout(mem, size, maxSize, desc, avail, used) !== 0) stateFail(path, 'layout is invalid (size not a power of two, misaligned, or not in guest RAM)');
  const lastAvail = stateInt(o.lastAvail, `${path}.lastAvail`, 0, 0xffff);
  const nextUsed = stateInt(o.nextUsed, `${path}.nextUsed`, 0, 0xffff);
  if (((lastAvail - nextUsed) & 0xffff) > size) stateFail(path, `has ${(lastAvail - nextUsed) & 0xffff} chains outstanding in a queue of ${size}`);
  return {
    kind: 'split',
    size,
    desc,
    avail,
    used,
    lastAvail,
    nextUsed,
    signalledUsed: stateInt(o.signalledUsed, `${path}.signalledUsed`, 0, 0xffff),
    notificationsEnabled: stateBool(o.notificationsEnabled, `${path}.notificationsEnabled`),
    error: stateInt(o.error, `${path}.error`, -16, 0),
  };
}

/**
 * The device side of a split virtqueue (virtio 1.x §2.7).
 *
 * Every descriptor is read from guest memory once, validated and copied into the
 * DescriptorChain; the chain limit (the queue size) bounds loops and nested walks, indirect
 * tables may not nest, and readable buffers may not follow writable ones. Any violation breaks
 * the queue with a QERR_* code (the device then sets NEEDS_RESET); nothing throws.
 */
export class SplitQueue implements Virtqueue {
  readonly size: number;
  error = 0;
  /** Next available-ring entry the device will consume (free-running u16). */
  lastAvail = 0;
  /** Next used-ring entry the device will fill (free-running u16). */
  nextUsed = 0;
  private readonly mem: GuestMemory;
  private readonly desc: number;
  private readonly avail: number;
  private readonly used: number;
  private readonly eventIdx: boolean;
  private readonly indirect: boolean;
  private signalledUsed = 0;
  private notificationsEnabled = true;
  private markAvail = 0;
  private readonly scratch = new Uint32Array(2);

  /** The layout must have passed checkSplitLayout. Addresses are guest-physical. */
  constructor(mem: GuestMemory, size: number, desc: number, avail: number, used: number, eventIdx: boolean, indirect: boolean, lastAvail = 0, nextUsed = 0) {
    this.mem = mem;
    this.size = size;
    this.desc = desc;
    this.avail = avail;
    this.used = used;
    this.eventIdx = eventIdx;
    this.indirect = indirect;
    this.lastAvail = lastAvail & 0xffff;
    this.nextUsed = nextUsed & 0xffff;
    this.signalledUsed = this.nextUsed;
  }

  private fail(code: number): number {
    if (this.error === 0) this.error = code;
    return this.error;
  }

  hasAvailable(): boolean {
    if (this.error !== 0) return false;
    const idx = this.mem.read16(this.avail + 2);
    return idx >= 0 && idx !== this.lastAvail;
  }

  pop(chain: DescriptorChain): number {
    if (this.error !== 0) return this.error;
    const mem = this.mem;
    const availIdx = mem.read16(this.avail + 2);
    if (availIdx < 0) return this.fail(QERR_AVAIL_RING);
    if (availIdx === this.lastAvail) return POP_EMPTY;
    if (((availIdx - this.lastAvail) & 0xffff) > this.size) return this.fail(QERR_AVAIL_IDX);
    const head = mem.read16(this.avail + 4 + 2 * (this.lastAvail & (this.size - 1)));
    if (head < 0) return this.fail(QERR_AVAIL_RING);
    if (head >= this.size) return this.fail(QERR_HEAD_RANGE);
    chain.clear();
    chain.head = head;
    const r = this.walk(chain, head);
    if (r !== POP_OK) return this.fail(r);
    this.lastAvail = (this.lastAvail + 1) & 0xffff;
    if (this.eventIdx && this.notificationsEnabled) mem.write16(this.used + 4 + 8 * this.size, this.lastAvail);
    return POP_OK;
  }

  /** Walks the chain starting at `head`; returns POP_OK or a QERR_* code. */
  private walk(chain: DescriptorChain, head: number): number {
    const mem = this.mem;
    const s = this.scratch;
    const limit = this.size;
    let table = this.desc;
    let tableSize = this.size;
    let inIndirect = false;
    let idx = head;
    let walked = 0;
    let total = 0;
    let seenWritable = false;
    for (;;) {
      if (++walked > limit) return QERR_CHAIN_TOO_LONG;
      const d = table + 16 * idx;
      if (!mem.read64(d, s, 0)) return QERR_DESC_NOT_RAM;
      const len = mem.read32(d + 8);
      const flags = mem.read16(d + 12);
      const next = mem.read16(d + 14);
      if (len < 0 || flags < 0 || next < 0) return QERR_DESC_NOT_RAM;
      const lo = s[0];
      const hi = s[1];
      if ((flags & VIRTQ_DESC_F_INDIRECT) !== 0) {
        if (!this.indirect) return QERR_INDIRECT_NOT_NEGOTIATED;
        if (inIndirect) return QERR_NESTED_INDIRECT;
        if ((flags & VIRTQ_DESC_F_NEXT) !== 0) return QERR_INDIRECT_NEXT;
        if (len === 0 || len % 16 !== 0 || len / 16 > limit) return QERR_INDIRECT_LEN;
        if (hi >= MAX_ADDR_HI) return QERR_DESC_NOT_RAM;
        const addr = hi * TWO32 + lo;
        if (!mem.isRam(addr, len)) return QERR_DESC_NOT_RAM;
        table = addr;
        tableSize = len / 16;
        inIndirect = true;
        walked = 0;
        idx = 0;
        chain.slots++;
        continue;
      }
      chain.slots++;
      const writable = (flags & VIRTQ_DESC_F_WRITE) !== 0;
      if (writable) seenWritable = true;
      else if (seenWritable) return QERR_READ_AFTER_WRITE;
      total += len;
      if (total > TWO32) return QERR_CHAIN_TOO_BIG;
      if (len > 0) {
        if (hi >= MAX_ADDR_HI) return QERR_BUFFER_NOT_RAM;
        const addr = hi * TWO32 + lo;
        if (!mem.isRam(addr, len)) return QERR_BUFFER_NOT_RAM;
        chain.push(addr, len, writable);
      }
      if ((flags & VIRTQ_DESC_F_NEXT) === 0) return POP_OK;
      if (next >= tableSize) return QERR_NEXT_RANGE;
      idx = next;
    }
  }

  pushUsed(chain: DescriptorChain, written: number): boolean {
    if (this.error !== 0) return false;
    const mem = this.mem;
    const e = this.used + 4 + 8 * (this.nextUsed & (this.size - 1));
    if (!mem.write32(e, chain.head) || !mem.write32(e + 4, written >>> 0)) {
      this.fail(QERR_USED_RING);
      return false;
    }
    this.nextUsed = (this.nextUsed + 1) & 0xffff;
    if (!mem.write16(this.used + 2, this.nextUsed)) {
      this.fail(QERR_USED_RING);
      return false;
    }
    return true;
  }

  needsNotification(): boolean {
    const mem = this.mem;
    const newUsed = this.nextUsed;
    const old = this.signalledUsed;
    this.signalledUsed = newUsed;
    if (this.eventIdx) {
      const ev = mem.read16(this.avail + 4 + 2 * this.size);
      if (ev < 0) return true;
      // virtio spec §2.7.10: notify when new_idx passed used_event since the last notification.
      return ((newUsed - ev - 1) & 0xffff) < ((newUsed - old) & 0xffff);
    }
    if (newUsed === old) return false;
    const flags = mem.read16(this.avail);
    return flags < 0 || (flags & VIRTQ_AVAIL_F_NO_INTERRUPT) === 0;
  }

  enableNotification(): boolean {
    this.notificationsEnabled = true;
    if (this.eventIdx) this.mem.write16(this.used + 4 + 8 * this.size, this.lastAvail);
    else this.mem.write16(this.used, 0);
    return this.hasAvailable();
  }

  disableNotification(): void {
    this.notificationsEnabled = false;
    if (!this.eventIdx) this.mem.write16(this.used, VIRTQ_USED_F_NO_NOTIFY);
  }

  /** Chains popped and not yet returned. */
  get outstanding(): number {
    return (this.lastAvail - this.nextUsed) & 0xffff;
  }

  saveState(): SplitQueueState {
    return {
      kind: 'split',
      size: this.size,
      desc: this.desc,
      avail: this.avail,
      used: this.used,
      lastAvail: this.lastAvail,
      nextUsed: this.nextUsed,
      signalledUsed: this.signalledUsed,
      notificationsEnabled: this.notificationsEnabled,
      error: this.error,
    };
  }

  /** Takes over the indices of a checked state (parseSplitState) with the same layout. */
  restoreIndices(s: SplitQueueState): void {
    this.lastAvail = s.lastAvail;
    this.nextUsed = s.nextUsed;
    this.signalledUsed = s.signalledUsed;
    this.notificationsEnabled = s.notificationsEnabled;
    this.error = s.error;
    this.markAvail = s.lastAvail;
  }

  mark(): void {
    this.markAvail = this.lastAvail;
  }

  rewind(): void {
    this.lastAvail = this.markAvail;
  }
}
