/**
 * The block device virtio-blk consumes: structurally the block-device API of @ringzero/qcow2
 * (declared here, consumer side, so this package does not depend on qcow2). Offsets and
 * lengths are bytes.
 */
export interface BlockBackend {
  readonly size: number;
  readonly readOnly: boolean;
  read(offset: number, length: number): Promise<Uint8Array>;
  write(offset: number, data: Uint8Array): Promise<void>;
  flush(): Promise<void>;
  discard(offset: number, length: number): Promise<void>;
  writeZeroes(offset: number, length: number): Promise<void>;
  close(): Promise<void>;
}

/**
 * A BlockBackend in one Uint8Array, for tests and benchmarks.
 *
 * read() returns a view of the store, not a copy (the device copies it into guest memory
 * once); callers must not keep it across later writes. write() copies the data in once.
 */
export class MemoryBlockBackend implements BlockBackend {
  readonly size: number;
  readonly readOnly: boolean;
  readonly data: Uint8Array;
  closed = false;

  constructor(sizeOrData: number | Uint8Array, opts: { readOnly?: boolean } = {}) {
    this.data = typeof sizeOrData === 'number' ? new Uint8Array(sizeOrData) : sizeOrData;
    this.size = this.data.length;
    this.readOnly = opts.readOnly ?? false;
  }

  /** Why [offset, offset + length) cannot be accessed, or null. */
  private check(offset: number, length: number, write: boolean): Error | null {
    if (this.closed) return new Error('MemoryBlockBackend: closed');
    if (!Number.isInteger(offset) || !Number.isInteger(length) || offset < 0 || length < 0 || offset + length > this.size) {
      return new RangeError(`MemoryBlockBackend: range ${offset}+${length} outside ${this.size} bytes`);
    }
    if (write && this.readOnly) return new Error('MemoryBlockBackend: read-only');
    return null;
  }

  read(offset: number, length: number): Promise<Uint8Array> {
    const err = this.check(offset, length, false);
    return err != null ? Promise.reject(err) : Promise.resolve(this.data.subarray(offset, offset + length));
  }

  write(offset: number, data: Uint8Array): Promise<void> {
    const err = this.check(offset, data.length, true);
    if (err != null) return Promise.reject(err);
    this.data.set(data, offset);
    return Promise.resolve();
  }

  flush(): Promise<void> {
    return this.closed ? Promise.reject(new Error('MemoryBlockBackend: closed')) : Promise.resolve();
  }

  discard(offset: number, length: number): Promise<void> {
    return this.writeZeroes(offset, length);
  }

  writeZeroes(offset: number, length: number): Promise<void> {
    const err = this.check(offset, length, true);
    if (err != null) return Promise.reject(err);
    this.data.fill(0, offset, offset + length);
    return Promise.resolve();
  }

  close(): Promise<void> {
    this.closed = true;
    return Promise.resolve();
  }
}
