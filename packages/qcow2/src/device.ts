import type { ByteStore } from './store';
import { MemoryByteStore } from './store';

/** An async block device (the shape virtio-blk consumes). Offsets and lengths are in bytes. */
export interface BlockDevice {
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
 * One extent of block status, as `qemu-img map` reports it: `data` means the range is stored
 * somewhere in the chain (not a hole), `zero` that it reads as zeros, `depth` the chain layer
 * that answered (0 = this image), `present` that some layer allocated it, `offset` the host
 * offset in the layer's file for uncompressed data.
 */
export interface BlockStatus {
  start: number;
  length: number;
  depth: number;
  present: boolean;
  zero: boolean;
  data: boolean;
  compressed: boolean;
  offset: number | null;
}

/** A device that can answer block status queries (images, raw files, chains). */
export interface BlockStatusSource {
  /** Status of the extent that starts at `offset`; its length is at most `length`. */
  blockStatus(offset: number, length: number): Promise<BlockStatus>;
}

/** Error class for every failure of this package; `code` is a short errno-like tag. */
export class ImageError extends Error {
  readonly code: string;
  constructor(message: string, code = 'EINVAL') {
    super(message);
    this.name = 'ImageError';
    this.code = code;
  }
}

export function checkRange(dev: { size: number }, offset: number, length: number): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > dev.size) {
    throw new ImageError(`Request out of range: offset ${offset} length ${length} (device size ${dev.size})`, 'EINVAL');
  }
}

/** A raw image: guest offset N is byte N of the store. */
export class RawDevice implements BlockDevice, BlockStatusSource {
  readonly readOnly: boolean;
  private _size: number;
  private readonly store: ByteStore;
  private closed = false;

  private constructor(store: ByteStore, size: number, readOnly: boolean) {
    this.store = store;
    this._size = size;
    this.readOnly = readOnly;
  }

  /**
   * Open a raw store. With `sectorAligned` the size is rounded up to a multiple of 512 bytes,
   * as QEMU's block layer sees a raw file (the tail reads as zeros).
   */
  static async open(store: ByteStore, options: { readOnly?: boolean; sectorAligned?: boolean } = {}): Promise<RawDevice> {
    const size = await store.size();
    return new RawDevice(store, options.sectorAligned ? Math.ceil(size / 512) * 512 : size, options.readOnly ?? false);
  }

  get size(): number {
    return this._size;
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    this.checkOpen();
    checkRange(this, offset, length);
    return this.store.pread(offset, length);
  }

  /** Read into `out[outOff..outOff+length)` without allocating. */
  async readIntoBuffer(offset: number, out: Uint8Array, outOff: number, length: number): Promise<void> {
    this.checkOpen();
    checkRange(this, offset, length);
    if (this.store.preadInto) await this.store.preadInto(offset, out, outOff, length);
    else out.set(await this.store.pread(offset, length), outOff);
  }

  async write(offset: number, data: Uint8Array): Promise<void> {
    this.checkWritable();
    checkRange(this, offset, data.length);
    await this.store.pwrite(offset, data);
  }

  async flush(): Promise<void> {
    this.checkOpen();
    await this.store.flush();
  }

  async discard(offset: number, length: number): Promise<void> {
    this.checkWritable();
    checkRange(this, offset, length);
    // A raw store cannot punch holes through the ByteStore interface: discard is advisory.
    return Promise.resolve();
  }

  async writeZeroes(offset: number, length: number): Promise<void> {
    this.checkWritable();
    checkRange(this, offset, length);
    const chunk = new Uint8Array(Math.min(length, 1 << 20));
    for (let pos = 0; pos < length; pos += chunk.length) {
      const n = Math.min(chunk.length, length - pos);
      await this.store.pwrite(offset + pos, n === chunk.length ? chunk : chunk.subarray(0, n));
    }
  }

  /** Grow or shrink the raw image. */
  async resize(size: number): Promise<void> {
    this.checkWritable();
    await this.store.truncate(size);
    this._size = size;
  }

  async blockStatus(offset: number, length: number): Promise<BlockStatus> {
    this.checkOpen();
    checkRange(this, offset, length);
    return Promise.resolve({
      start: offset,
      length: Math.min(length, this._size - offset),
      depth: 0,
      present: true,
      zero: false,
      data: true,
      compressed: false,
      offset,
    });
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    return this.store.close();
  }

  private checkOpen(): void {
    if (this.closed) throw new ImageError('Device is closed', 'EBADF');
  }

  private checkWritable(): void {
    this.checkOpen();
    if (this.readOnly) throw new ImageError('Device is read-only', 'EACCES');
  }
}

/** A RAM-backed raw device of a fixed size (tests, scratch disks). */
export async function createMemoryDevice(size: number): Promise<RawDevice> {
  const store = new MemoryByteStore();
  await store.truncate(size);
  return RawDevice.open(store);
}
