import type { GuestMemory } from '@ringzero/mmu-ept';

/**
 * One descriptor chain popped from a virtqueue, as a host-side snapshot.
 *
 * The queue reads every descriptor from guest memory exactly once while walking the chain and
 * copies (addr, len, writable) into these typed arrays; the device only ever uses the snapshot,
 * so a guest that rewrites descriptors after publishing them cannot change what the device
 * sees (no check-then-use window). Buffer contents are still read and written in guest memory
 * on demand, and every such access is checked by GuestMemory itself.
 *
 * Segments are ordered: all readable (device reads) first, then all writable (device writes),
 * which the queue enforces. Zero-length descriptors are dropped.
 *
 * Objects are pooled by the devices and reused; capacity grows by doubling up to the queue's
 * chain limit and never shrinks.
 */
export class DescriptorChain {
  /** Split ring: head descriptor index. Packed ring: buffer id. */
  head = 0;
  /** Packed ring: ring slots the chain used (an indirect chain uses 1). Split ring: descriptors walked. */
  slots = 0;
  /** Number of segments. */
  count = 0;
  /** Index of the first writable segment (== count when none). */
  firstWritable = 0;
  /** Total bytes in readable segments. */
  readableBytes = 0;
  /** Total bytes in writable segments. */
  writableBytes = 0;
  /** Reset epoch of the device when popped: devices drop completions of an older epoch. */
  epoch = 0;
  /** Device bookkeeping (virtio-blk: position in its in-flight list; -1 when none). */
  index = -1;
  /** Device bookkeeping (virtio-blk: pop sequence number, for VIRTIO_F_IN_ORDER). */
  seq = 0;
  /** Guest-physical address of each segment. */
  addr: Float64Array;
  /** Length of each segment. */
  len: Uint32Array;

  constructor(capacity = 8) {
    this.addr = new Float64Array(capacity);
    this.len = new Uint32Array(capacity);
  }

  /** Forget all segments (keeps capacity). */
  clear(): void {
    this.count = 0;
    this.firstWritable = 0;
    this.readableBytes = 0;
    this.writableBytes = 0;
    this.slots = 0;
  }

  /** Appends a segment; the caller guarantees ordering and the overall limit. */
  push(addr: number, len: number, writable: boolean): void {
    if (this.count === this.addr.length) this.grow();
    const i = this.count++;
    this.addr[i] = addr;
    this.len[i] = len;
    if (writable) this.writableBytes += len;
    else {
      this.readableBytes += len;
      this.firstWritable = this.count;
    }
  }

  private grow(): void {
    const n = this.addr.length * 2;
    const a = new Float64Array(n);
    a.set(this.addr);
    const l = new Uint32Array(n);
    l.set(this.len);
    this.addr = a;
    this.len = l;
  }

  /**
   * Copies `length` bytes from the readable part of the chain, starting `offset` bytes into it,
   * to dst[dstOffset...]. False when the range is outside the readable part or not guest RAM.
   */
  read(mem: GuestMemory, offset: number, dst: Uint8Array, dstOffset: number, length: number): boolean {
    if (offset < 0 || length < 0 || offset + length > this.readableBytes) return false;
    let i = 0;
    const end = this.firstWritable;
    while (i < end && offset >= this.len[i]) offset -= this.len[i++];
    while (length > 0 && i < end) {
      const n = Math.min(this.len[i] - offset, length);
      const view = mem.hostView(this.addr[i] + offset, n);
      if (view != null) dst.set(view, dstOffset);
      else if (!mem.readInto(this.addr[i] + offset, dst.subarray(dstOffset, dstOffset + n))) return false;
      dstOffset += n;
      length -= n;
      offset = 0;
      i++;
    }
    return length === 0;
  }

  /**
   * Copies src[srcOffset, srcOffset + length) into the writable part of the chain, starting
   * `offset` bytes into it. False when the range is outside the writable part or not RAM.
   */
  write(mem: GuestMemory, offset: number, src: Uint8Array, srcOffset: number, length: number): boolean {
    if (offset < 0 || length < 0 || offset + length > this.writableBytes) return false;
    let i = this.firstWritable;
    const end = this.count;
    while (i < end && offset >= this.len[i]) offset -= this.len[i++];
    while (length > 0 && i < end) {
      const n = Math.min(this.len[i] - offset, length);
      if (!mem.writeFrom(this.addr[i] + offset, src.subarray(srcOffset, srcOffset + n))) return false;
      srcOffset += n;
      length -= n;
      offset = 0;
      i++;
    }
    return length === 0;
  }

  /**
   * Guest-physical address of byte `offset` of the readable (writable = false) or writable part,
   * when `length` bytes from there sit inside one segment; -1 otherwise. Lets a device use the
   * scalar GuestMemory accessors for headers and status bytes without a bounce buffer.
   */
  locate(writable: boolean, offset: number, length: number): number {
    let i = writable ? this.firstWritable : 0;
    const end = writable ? this.count : this.firstWritable;
    if (offset < 0) return -1;
    while (i < end && offset >= this.len[i]) offset -= this.len[i++];
    if (i === end || offset + length > this.len[i]) return -1;
    return this.addr[i] + offset;
  }

  /**
   * A host view of `length` bytes at `offset` in the readable or writable part when they lie in
   * one segment of contiguous host memory (zero copy); null otherwise.
   */
  view(mem: GuestMemory, writable: boolean, offset: number, length: number): Uint8Array | null {
    const a = this.locate(writable, offset, length);
    return a < 0 ? null : mem.hostView(a, length);
  }
}
