/** A bump allocator over a range of test guest memory (rings, buffers). Never frees. */
export class GuestAllocator {
  private next: number;
  private readonly end: number;

  constructor(start: number, end: number) {
    this.next = start;
    this.end = end;
  }

  /** Returns the address of `size` bytes aligned to `align` (a power of two). Throws when full. */
  alloc(size: number, align = 16): number {
    const a = Math.ceil(this.next / align) * align;
    if (a + size > this.end) throw new RangeError(`GuestAllocator: out of memory (${size} bytes)`);
    this.next = a + size;
    return a;
  }
}

/** A guest buffer: guest-physical address and length. */
export interface GuestBuffer {
  addr: number;
  len: number;
}
