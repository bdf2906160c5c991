import type { GuestMemory } from '@ringzero/mmu-ept';
import type { DescriptorChain } from './chain';
import {
  RING_EVENT_FLAGS_DESC,
  RING_EVENT_FLAGS_DISABLE,
  RING_EVENT_FLAGS_ENABLE,
  VIRTQ_DESC_F_AVAIL,
  VIRTQ_DESC_F_INDIRECT,
  VIRTQ_DESC_F_NEXT,
  VIRTQ_DESC_F_USED,
  VIRTQ_DESC_F_WRITE,
} from './constants';
import type { Virtqueue } from './queue';
import { stateBool, stateFail, stateInt, stateObject } from './state';
import {
  POP_EMPTY,
  POP_OK,
  QERR_BUFFER_NOT_RAM,
  QERR_CHAIN_TOO_BIG,
  QERR_CHAIN_TOO_LONG,
  QERR_DESC_NOT_RAM,
  QERR_INDIRECT_LEN,
  QERR_INDIRECT_NEXT,
  QERR_INDIRECT_NOT_NEGOTIATED,
  QERR_LAYOUT,
  QERR_NESTED_INDIRECT,
  QERR_READ_AFTER_WRITE,
  QERR_USED_RING,
} from './queue';

const TWO32 = 0x1_0000_0000;
const MAX_ADDR_HI = 0x20_0000;

/**
 * Checks a packed ring layout: size 1..maxSize (any integer), descriptor ring aligned to 16,
 * event suppression areas aligned to 4, all in RAM. Returns 0 or QERR_LAYOUT.
 */
export function checkPackedLayout(mem: GuestMemory, size: number, maxSize: number, desc: number, driver: number, device: number): number {
  if (!Number.isInteger(size) || size < 1 || size > maxSize) return QERR_LAYOUT;
  if (desc % 16 !== 0 || driver % 4 !== 0 || device % 4 !== 0) return QERR_LAYOUT;
  if (!mem.isRam(desc, 16 * size) || !mem.isRam(driver, 4) || !mem.isRam(device, 4)) return QERR_LAYOUT;
  return 0;
}

/** A packed queue's position, as plain data (layout plus the device's indices and wrap counters). */
export interface PackedQueueState {
  kind: 'packed';
  size: number;
  desc: number;
  driver: number;
  device: number;
  nextAvail: number;
  availWrap: boolean;
  nextUsed: number;
  usedWrap: boolean;
  usedSince: number;
  /** 0, or the QERR_* code that broke the queue. */
  error: number;
}

/** Checks a saved packed queue (layout in `mem`, indices in range); throws VirtioStateError. */
export function parsePackedState(v: unknown, path: string, mem: GuestMemory, maxSize: number): PackedQueueState {
  const o = stateObject(v, path);
  if (o.kind !== 'packed') stateFail(`${path}.kind`, "must be 'packed'");
  const size = stateInt(o.size, `${path}.size`, 1, maxSize);
  const desc = stateInt(o.desc, `${path}.desc`, 0, Number.MAX_SAFE_INTEGER);
  const driver = stateInt(o.driver, `${path}.driver`, 0, Number.MAX_SAFE_INTEGER);
  const device = stateInt(o.device, `${path}.device`, 0, Number.MAX_SAFE_INTEGER);
  if (checkPackedLayout(mem, size, maxSize, desc, driver, device) !== 0) stateFail(path, 'layout is invalid (misaligned or not in guest RAM)');
  return {
    kind: 'packed',
    size,
    desc,
    driver,
    device,
    nextAvail: stateInt(o.nextAvail, `${path}.nextAvail`, 0, size - 1),
    availWrap: stateBool(o.availWrap, `${path}.availWrap`),
    nextUsed: stateInt(o.nextUsed, `${path}.nextUsed`, 0, size - 1),
    usedWrap: stateBool(o.usedWrap, `${path}.usedWrap`),
    usedSince: stateInt(o.usedSince, `${path}.usedSince`, 0, 0x7fff_ffff),
    error: stateInt(o.error, `${path}.error`, -16, 0),
  };
}

/**
 * The device side of a packed virtqueue (virtio 1.x §2.8): one descriptor ring shared by
 * both sides, AVAIL/USED flag bits checked against wrap counters, a driver and a device
 * event suppression structure. Descriptors are snapshotted and validated as in SplitQueue;
 * the chain limit is the queue size, indirect tables may not nest.
 */
export class PackedQueue implements Virtqueue {
  readonly size: number;
  error = 0;
  nextAvail = 0;
  availWrap = true;
  nextUsed = 0;
  usedWrap = true;
  private readonly mem: GuestMemory;
  private readonly desc: number;
  private readonly driver: number;
  private readonly device: number;
  private readonly eventIdx: boolean;
  private readonly indirect: boolean;
  /** Ring slots used since the last needsNotification(). */
  private usedSince = 0;
  private markAvail = 0;
  private markWrap = true;
  private readonly scratch = new Uint32Array(2);

  constructor(mem: GuestMemory, size: number, desc: number, driver: number, device: number, eventIdx: boolean, indirect: boolean) {
    this.mem = mem;
    this.size = size;
    this.desc = desc;
    this.driver = driver;
    this.device = device;
    this.eventIdx = eventIdx;
    this.indirect = indirect;
  }

  private fail(code: number): number {
    if (this.error === 0) this.error = code;
    return this.error;
  }

  private isAvail(flags: number, wrap: boolean): boolean {
    return ((flags & VIRTQ_DESC_F_AVAIL) !== 0) === wrap && ((flags & VIRTQ_DESC_F_USED) !== 0) !== wrap;
  }

  hasAvailable(): boolean {
    if (this.error !== 0) return false;
    const flags = this.mem.read16(this.desc + 16 * this.nextAvail + 14);
    return flags >= 0 && this.isAvail(flags, this.availWrap);
  }

  pop(chain: DescriptorChain): number {
    if (this.error !== 0) return this.error;
    const mem = this.mem;
    const first = mem.read16(this.desc + 16 * this.nextAvail + 14);
    if (first < 0) return this.fail(QERR_DESC_NOT_RAM);
    if (!this.isAvail(first, this.availWrap)) return POP_EMPTY;
    chain.clear();
    const s = this.scratch;
    const n = this.size;
    let idx = this.nextAvail;
    let wrap = this.availWrap;
    let total = 0;
    let seenWritable = false;
    for (;;) {
      if (chain.slots >= n) return this.fail(QERR_CHAIN_TOO_LONG);
      const d = this.desc + 16 * idx;
      if (!mem.read64(d, s, 0)) return this.fail(QERR_DESC_NOT_RAM);
      const len = mem.read32(d + 8);
      const id = mem.read16(d + 12);
      const flags = mem.read16(d + 14);
      if (len < 0 || id < 0 || flags < 0) return this.fail(QERR_DESC_NOT_RAM);
      chain.slots++;
      chain.head = id;
      if (++idx === n) {
        idx = 0;
        wrap = !wrap;
      }
      if ((flags & VIRTQ_DESC_F_INDIRECT) !== 0) {
        if (!this.indirect) return this.fail(QERR_INDIRECT_NOT_NEGOTIATED);
        if ((flags & VIRTQ_DESC_F_NEXT) !== 0) return this.fail(QERR_INDIRECT_NEXT);
        if (len === 0 || len % 16 !== 0 || len / 16 > n) return this.fail(QERR_INDIRECT_LEN);
        if (s[1] >= MAX_ADDR_HI) return this.fail(QERR_DESC_NOT_RAM);
        const r = this.walkIndirect(chain, s[1] * TWO32 + s[0], len / 16, total, seenWritable);
        if (r !== POP_OK) return this.fail(r);
        break;
      }
      const writable = (flags & VIRTQ_DESC_F_WRITE) !== 0;
      if (writable) seenWritable = true;
      else if (seenWritable) return this.fail(QERR_READ_AFTER_WRITE);
      total += len;
      if (total > TWO32) return this.fail(QERR_CHAIN_TOO_BIG);
      if (len > 0) {
        if (s[1] >= MAX_ADDR_HI) return this.fail(QERR_BUFFER_NOT_RAM);
        const addr = s[1] * TWO32 + s[0];
        if (!mem.isRam(addr, len)) return this.fail(QERR_BUFFER_NOT_RAM);
        chain.push(addr, len, writable);
      }
      if ((flags & VIRTQ_DESC_F_NEXT) === 0) break;
    }
    this.nextAvail = idx;
    this.availWrap = wrap;
    return POP_OK;
  }

  /** Packed indirect tables are a plain array of len/16 descriptors (NEXT is not used). */
  private walkIndirect(chain: DescriptorChain, table: number, entries: number, total: number, seenWritable: boolean): number {
    const mem = this.mem;
    const s = this.scratch;
    if (!mem.isRam(table, 16 * entries)) return QERR_DESC_NOT_RAM;
    for (let i = 0; i < entries; i++) {
      const d = table + 16 * i;
      if (!mem.read64(d, s, 0)) return QERR_DESC_NOT_RAM;
      const len = mem.read32(d + 8);
      const flags = mem.read16(d + 14);
      if (len < 0 || flags < 0) return QERR_DESC_NOT_RAM;
      if ((flags & VIRTQ_DESC_F_INDIRECT) !== 0) return QERR_NESTED_INDIRECT;
      const writable = (flags & VIRTQ_DESC_F_WRITE) !== 0;
      if (writable) seenWritable = true;
      else if (seenWritable) return QERR_READ_AFTER_WRITE;
      total += len;
      if (total > TWO32) return QERR_CHAIN_TOO_BIG;
      if (len > 0) {
        if (s[1] >= MAX_ADDR_HI) return QERR_BUFFER_NOT_RAM;
        const addr = s[1] * TWO32 + s[0];
        if (!mem.isRam(addr, len)) return QERR_BUFFER_NOT_RAM;
        chain.push(addr, len, writable);
      }
    }
    return POP_OK;
  }

  pushUsed(chain: DescriptorChain, written: number): boolean {
    if (this.error !== 0) return false;
    const mem = this.mem;
    const d = this.desc + 16 * this.nextUsed;
    let flags = this.usedWrap ? VIRTQ_DESC_F_AVAIL | VIRTQ_DESC_F_USED : 0;
    if (written > 0) flags |= VIRTQ_DESC_F_WRITE;
    // id and len first, flags last: the flags write is what hands the slot back to the driver.
    if (!mem.write32(d + 8, written >>> 0) || !mem.write16(d + 12, chain.head) || !mem.write16(d + 14, flags)) {
      this.fail(QERR_USED_RING);
      return false;
    }
    const slots = chain.slots > 0 ? chain.slots : 1;
    this.nextUsed += slots;
    if (this.nextUsed >= this.size) {
      this.nextUsed -= this.size;
      this.usedWrap = !this.usedWrap;
    }
    this.usedSince += slots;
    return true;
  }

  needsNotification(): boolean {
    const since = this.usedSince;
    this.usedSince = 0;
    if (since === 0) return false;
    const flags = this.mem.read16(this.driver + 2);
    if (flags < 0) return true;
    const mode = flags & 3;
    if (mode === RING_EVENT_FLAGS_DISABLE) return false;
    if (mode !== RING_EVENT_FLAGS_DESC || !this.eventIdx) return true;
    if (since >= 0x8000) return true; // beyond what the 16-bit comparison can tell apart
    const offWrap = this.mem.read16(this.driver);
    let event = offWrap & 0x7fff;
    if ((offWrap >>> 15 === 1) !== this.usedWrap) event -= this.size;
    const newIdx = this.nextUsed;
    const oldIdx = newIdx - since;
    return ((newIdx - event - 1) & 0xffff) < ((newIdx - oldIdx) & 0xffff);
  }

  enableNotification(): boolean {
    if (this.eventIdx) {
      this.mem.write16(this.device, this.nextAvail | (this.availWrap ? 0x8000 : 0));
      this.mem.write16(this.device + 2, RING_EVENT_FLAGS_DESC);
    } else {
      this.mem.write16(this.device + 2, RING_EVENT_FLAGS_ENABLE);
    }
    return this.hasAvailable();
  }

  disableNotification(): void {
    this.mem.write16(this.device + 2, RING_EVENT_FLAGS_DISABLE);
  }

  saveState(): PackedQueueState {
    return {
      kind: 'packed',
      size: this.size,
      desc: this.desc,
      driver: this.driver,
      device: this.device,
      nextAvail: this.nextAvail,
      availWrap: this.availWrap,
      nextUsed: this.nextUsed,
      usedWrap: this.usedWrap,
      usedSince: this.usedSince,
      error: this.error,
    };
  }

  /** Takes over the indices of a checked state (parsePackedState) with the same layout. */
  restoreIndices(s: PackedQueueState): void {
    this.nextAvail = s.nextAvail;
    this.availWrap = s.availWrap;
    this.nextUsed = s.nextUsed;
    this.usedWrap = s.usedWrap;
    this.usedSince = s.usedSince;
    this.error = s.error;
    this.markAvail = s.nextAvail;
    this.markWrap = s.availWrap;
  }

  mark(): void {
    this.markAvail = this.nextAvail;
    this.markWrap = this.availWrap;
  }

  rewind(): void {
    this.nextAvail = this.markAvail;
    this.availWrap = this.markWrap;
  }
}
