// Node adapters: a file-backed ByteStore and image opening with backing-chain resolution.
export type { WorkerCompressorPoolOptions } from './node-pool';
export { WorkerCompressorPool, closeSharedCompressorPool, sharedCompressorPool } from './node-pool';
import * as fs from 'node:fs';
import { realpath } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import { constants as zc, deflateRaw, deflateRawSync } from 'node:zlib';
import { createRequire } from 'node:module';
import type { ClusterCodec } from './compress';
import { COMPRESSION_ZLIB, COMPRESSION_ZSTD, getZstdCodec, zstdContentSize, zstdFrameLength } from './compress';
import type { ByteStore } from './store';
import type { BlockDevice, BlockStatusSource } from './device';
import { ImageError, RawDevice } from './device';
import type { Qcow2CreateOptions } from './create';
import { createQcow2 } from './create';
import type { RawInflate } from './node-inflate';
import { createReusableInflater, inflateRawSyncInto } from './node-inflate';
import { Qcow2Image } from './qcow2';

const PIECE = 2 << 20;

/** Run `fn` over [0, length) in PIECE-sized parts, at most 4 at a time. */
async function pieces(length: number, fn: (at: number, n: number) => Promise<void>): Promise<void> {
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < length) {
      const at = next;
      next += PIECE;
      await fn(at, Math.min(PIECE, length - at));
    }
  };
  await Promise.all([lane(), lane(), lane(), lane()]);
}

/** Offsets from hostile metadata can be anything: refuse what no file can hold, clearly. */
function checkFileRange(offset: number, length: number): void {
  if (!(offset >= 0 && length >= 0 && offset + length <= Number.MAX_SAFE_INTEGER)) {
    throw new ImageError(`File offset out of range: ${offset} (+${length})`, 'EINVAL');
  }
}

/**
 * Requests up to this size run as synchronous calls on the calling thread: a small read or
 * write that the page cache serves takes a few microseconds, while a hop through libuv's
 * thread pool costs tens (more on a busy machine). Bigger ones go through the pool, several at
 * once.
 */
const SYNC_MAX = 64 * 1024;

/** A ByteStore over a file (positional I/O, fdatasync as the barrier). */
export class NodeFileStore implements ByteStore {
  // A plain fd with callback fs calls: cheaper per request than FileHandle's promises.
  private readonly fd: number;
  private readonly unsafe: boolean;
  private readonly syncMax: number;
  private closed = false;
  private readonly writes: { offset: number; data: Uint8Array; res: () => void; rej: (e: Error) => void }[] = [];
  private readonly drained: (() => void)[] = [];

  private constructor(fd: number, unsafe: boolean, syncMax: number) {
    this.fd = fd;
    this.unsafe = unsafe;
    this.syncMax = syncMax;
  }

  /**
   * Open `path`; `create` makes (and truncates) the file. `unsafe` turns the durability
   * barrier into a no-op (qemu-img's cache=unsafe, the default for convert's target): fast,
   * but a crash in the middle can leave anything behind.
   */
  static async open(path: string, options: { readOnly?: boolean; create?: boolean; unsafe?: boolean; syncMax?: number } = {}): Promise<NodeFileStore> {
    const flags = options.create ? 'w+' : options.readOnly ? 'r' : 'r+';
    const fd = await new Promise<number>((res, rej) => fs.open(path, flags, (e, fd) => (e ? rej(e) : res(fd))));
    return new NodeFileStore(fd, options.unsafe ?? false, options.syncMax ?? SYNC_MAX);
  }

  async pread(offset: number, length: number): Promise<Uint8Array> {
    const out = new Uint8Array(length);
    await this.preadInto(offset, out, 0, length);
    return out;
  }

  /** Reads over 2 MiB go as up to 4 concurrent 2 MiB pieces (libuv threads work side by side). */
  async preadInto(offset: number, out: Uint8Array, outOff: number, length: number): Promise<void> {
    checkFileRange(offset, length);
    if (length <= PIECE) return this.readPiece(offset, out, outOff, length);
    await pieces(length, (at, n) => this.readPiece(offset + at, out, outOff + at, n));
  }

  private readPiece(offset: number, out: Uint8Array, outOff: number, length: number): Promise<void> {
    if (length <= this.syncMax) {
      try {
        let done = 0;
        while (done < length) {
          const n = fs.readSync(this.fd, out, outOff + done, length - done, offset + done);
          if (n === 0) break;
          done += n;
        }
        if (done < length) out.fill(0, outOff + done, outOff + length);
        return Promise.resolve();
      } catch (e) {
        return Promise.reject(e instanceof Error ? e : new Error(String(e)));
      }
    }
    return new Promise((res, rej) => {
      let done = 0;
      const step = (): void => {
        fs.read(this.fd, out, outOff + done, length - done, offset + done, (e, n) => {
          if (e) return rej(e);
          done += n;
          if (n === 0 || done >= length) {
            if (done < length) out.fill(0, outOff + done, outOff + length);
            res();
          } else step();
        });
      };
      step();
    });
  }

  /**
   * A write is one call however big, and big writes (through libuv's pool) go one at a time:
   * buffered writes to one file serialize on its inode lock in the kernel, and writers side by
   * side spin on it (rwsem_spin_on_owner was 11% of a 1 GiB qcow2->raw convert's samples with
   * concurrent writes; medians of 9-15 runs: 0.65-0.81 s of system time with 1 MiB pieces 4 at
   * a time, 0.44-0.50 s unsplit but concurrent, 0.38-0.42 s one at a time). Small writes run
   * at once on this thread unless they overlap a queued one; overlapping writes land in the
   * order they were submitted.
   */
  pwrite(offset: number, data: Uint8Array): Promise<void> {
    try {
      if (this.closed) throw new ImageError('Write to a closed image file', 'EBADF');
      checkFileRange(offset, data.length);
    } catch (e) {
      return Promise.reject(e instanceof Error ? e : new Error(String(e)));
    }
    if (data.length <= this.syncMax && !this.overlapsQueued(offset, data.length)) {
      try {
        let done = 0;
        while (done < data.length) done += fs.writeSync(this.fd, data, done, data.length - done, offset + done);
        return Promise.resolve();
      } catch (e) {
        return Promise.reject(e instanceof Error ? e : new Error(String(e)));
      }
    }
    return new Promise((res, rej) => {
      this.writes.push({ offset, data, res, rej });
      if (this.writes.length === 1) this.nextWrite();
    });
  }

  /** A small write that overlaps a queued one waits behind it, so writes land in order. */
  private overlapsQueued(offset: number, length: number): boolean {
    for (const w of this.writes) if (offset < w.offset + w.data.length && w.offset < offset + length) return true;
    return false;
  }

  /** Starts the oldest queued big write; each one starts the next when it ends. */
  private nextWrite(): void {
    const w = this.writes[0];
    let done = 0;
    const step = (): void => {
      fs.write(this.fd, w.data, done, w.data.length - done, w.offset + done, (e, n) => {
        if (!e) done += n;
        if (!e && done < w.data.length) return step();
        this.writes.shift();
        if (e) w.rej(e);
        else w.res();
        if (this.writes.length > 0) this.nextWrite();
        else for (const f of this.drained.splice(0)) f();
      });
    };
    step();
  }

  flush(): Promise<void> {
    if (this.unsafe) return Promise.resolve();
    return new Promise((res, rej) => fs.fdatasync(this.fd, (e) => (e ? rej(e) : res())));
  }

  truncate(size: number): Promise<void> {
    return new Promise((res, rej) => fs.ftruncate(this.fd, size, (e) => (e ? rej(e) : res())));
  }

  private stat(): Promise<fs.Stats> {
    return new Promise((res, rej) => fs.fstat(this.fd, (e, st) => (e ? rej(e) : res(st))));
  }

  async size(): Promise<number> {
    return (await this.stat()).size;
  }

  /** Bytes the file occupies on disk (for `actual-size`). */
  async allocatedBytes(): Promise<number> {
    return (await this.stat()).blocks * 512;
  }

  /** Waits for queued writes (the fd must not be closed, and its number reused, under them). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.writes.length > 0) await new Promise<void>((res) => this.drained.push(res));
    await new Promise<void>((res, rej) => fs.close(this.fd, (e) => (e ? rej(e) : res())));
  }
}

// QEMU deflates clusters with zlib's default level, a 4 KiB window (raw deflate, wbits -12)
// and memLevel 9; the same parameters give the same bytes qemu-img writes.
const DEFLATE_OPTS = { windowBits: 12, memLevel: 9, level: zc.Z_DEFAULT_COMPRESSION };

function asU8(b: Buffer): Uint8Array {
  return new Uint8Array(b.buffer, b.byteOffset, b.length);
}

let reusableInflate: RawInflate | null | undefined;

/**
 * zlib through Node's native library. Inflating reuses one zlib context (node-inflate.ts; ~2-4x
 * less CPU per cluster than inflateRawSync's fresh context per call), falling back to
 * inflateRawSync where Node's internals differ; the output is bounded by the cluster buffer (a
 * stream that inflates past one cluster is cut at the cluster end, as QEMU does).
 * `compressAsync` runs in libuv's thread pool, so several clusters compress at once; inflating
 * is cheap enough that a thread hop costs more than it saves (measured), so it stays synchronous.
 */
export const nodeZlibCodec: ClusterCodec = {
  compress(src: Uint8Array, limit: number): Uint8Array | null {
    const c = deflateRawSync(src, DEFLATE_OPTS);
    return c.length < limit ? asU8(c) : null;
  },
  decompress(src: Uint8Array, out: Uint8Array): boolean {
    if (reusableInflate === undefined) reusableInflate = createReusableInflater();
    return reusableInflate != null ? reusableInflate(src, out) : inflateRawSyncInto(src, out);
  },
  compressAsync(src: Uint8Array, limit: number): Promise<Uint8Array | null> {
    return new Promise((res, rej) => {
      deflateRaw(src, DEFLATE_OPTS, (err, c) => {
        if (err) rej(err);
        else res(c.length < limit ? asU8(c) : null);
      });
    });
  },
};

interface NativeZstd {
  CCtx: new () => { compress(dst: Uint8Array, src: Uint8Array, level: number): number };
  DCtx: new () => { decompress(dst: Uint8Array, src: Uint8Array): number };
  compressBound(n: number): number;
}

let nativeZstdModule: NativeZstd | null | undefined;

/** The native zstd binding (zstd-napi, an optional dependency), or null where it has no build. */
function nativeZstd(): NativeZstd | null {
  if (nativeZstdModule === undefined) {
    try {
      nativeZstdModule = createRequire(import.meta.url)('zstd-napi/binding') as NativeZstd;
    } catch {
      nativeZstdModule = null;
    }
  }
  return nativeZstdModule;
}

/**
 * zstd through the native library (zstd-napi: one compression and one decompression context
 * for the process, output straight into the caller's cluster buffer), level 3 as QEMU. A frame
 * is decompressed natively only when its header declares exactly one cluster (zstd refuses
 * output that does not fit, so nothing is cut); any other frame, and every frame where the
 * binding did not build, goes through the WebAssembly build.
 */
export function getNodeZstdCodec(): Promise<ClusterCodec> {
  nodeZstdCodec ??= makeNodeZstdCodec();
  return nodeZstdCodec;
}

let nodeZstdCodec: Promise<ClusterCodec> | null = null;

async function makeNodeZstdCodec(): Promise<ClusterCodec> {
  const wasm = await getZstdCodec();
  const z = nativeZstd();
  if (z == null) return wasm;
  const cctx = new z.CCtx();
  const dctx = new z.DCtx();
  let scratch = new Uint8Array(0);
  return {
    compress(src: Uint8Array, limit: number): Uint8Array | null {
      const bound = z.compressBound(src.length);
      if (scratch.length < bound) scratch = new Uint8Array(bound);
      const n = cctx.compress(scratch, src, 3);
      return n < limit ? scratch.slice(0, n) : null;
    },
    decompress(src: Uint8Array, out: Uint8Array): boolean {
      const len = zstdFrameLength(src);
      if (len < 0) return false;
      if (zstdContentSize(src) !== out.length) return wasm.decompress(src, out);
      try {
        return dctx.decompress(out, src.subarray(0, len)) === out.length;
      } catch {
        return false;
      }
    },
  };
}

function nodeCodec(type: number): ClusterCodec | null | Promise<ClusterCodec> {
  return type === COMPRESSION_ZLIB ? nodeZlibCodec : type === COMPRESSION_ZSTD ? getNodeZstdCodec() : null;
}

export type ImageFormat = 'qcow2' | 'raw';

export type OpenedImage = (Qcow2Image | RawDevice) & BlockDevice & BlockStatusSource;

export interface OpenImageOptions {
  format?: ImageFormat | null;
  readOnly?: boolean;
  noBacking?: boolean;
  /** Maximum chain length (default 64). */
  maxDepth?: number;
  repairDirty?: boolean;
  /** Skip durability barriers on the image file itself (see NodeFileStore's `unsafe`). */
  unsafe?: boolean;
}

/** Guess the format of a file from its first bytes. */
export async function probeFormat(path: string): Promise<ImageFormat> {
  const s = await NodeFileStore.open(path, { readOnly: true });
  try {
    const b = await s.pread(0, 4);
    return b[0] === 0x51 && b[1] === 0x46 && b[2] === 0x49 && b[3] === 0xfb ? 'qcow2' : 'raw';
  } finally {
    await s.close();
  }
}

/** Resolve a backing file name the way QEMU does: relative to the overlay's directory. */
export function resolveBackingPath(overlayPath: string, name: string): string {
  return isAbsolute(name) ? name : resolve(dirname(overlayPath), name);
}

async function openChain(path: string, o: OpenImageOptions, seen: string[]): Promise<OpenedImage> {
  let real: string;
  try {
    real = await realpath(path);
  } catch (e) {
    throw new ImageError(`Could not open '${path}': ${errnoText(e)}`, 'ENOENT');
  }
  if (seen.includes(real)) throw new ImageError(`Backing file '${path}' creates an infinite loop.`, 'ELOOP');
  if (seen.length >= (o.maxDepth ?? 64)) throw new ImageError(`Backing chain of '${seen[0]}' is too deep`, 'ELOOP');
  const format = o.format ?? (await probeFormat(real));
  const readOnly = o.readOnly ?? false;
  let store: NodeFileStore;
  try {
    store = await NodeFileStore.open(real, { readOnly, unsafe: (o.unsafe ?? false) && seen.length === 0 });
  } catch (e) {
    throw new ImageError(`Could not open '${path}': ${errnoText(e)}`, 'ENOENT');
  }
  try {
    if (format === 'raw') return await RawDevice.open(store, { readOnly, sectorAligned: true });
    return await Qcow2Image.open(store, {
      readOnly,
      codec: nodeCodec,
      ...(o.noBacking ? { noBacking: true } : {}),
      ...(o.repairDirty !== undefined ? { repairDirty: o.repairDirty } : {}),
      openBacking: async (name, fmt) => {
        const bpath = resolveBackingPath(real, name);
        const f = fmt === 'qcow2' || fmt === 'raw' ? fmt : fmt == null ? null : unsupportedFormat(fmt);
        try {
          return await openChain(bpath, { ...o, format: f, readOnly: true, noBacking: false }, [...seen, real]);
        } catch (e) {
          if (e instanceof ImageError && e.code === 'ELOOP') throw e;
          throw new ImageError(`Could not open backing file: ${(e as Error).message}`, 'ENOENT');
        }
      },
      openDataFile: async (name) => NodeFileStore.open(resolveBackingPath(real, name), { readOnly }),
    });
  } catch (e) {
    await store.close();
    throw e;
  }
}

function unsupportedFormat(fmt: string): never {
  throw new ImageError(`Unknown driver '${fmt}'`, 'EINVAL');
}

function errnoText(e: unknown): string {
  const code = (e as { code?: string }).code;
  if (code === 'ENOENT') return 'No such file or directory';
  if (code === 'EACCES') return 'Permission denied';
  if (code === 'EISDIR') return 'Is a directory';
  return (e as Error).message;
}

/** Open an image file (qcow2 or raw, probed when `format` is not given) with its backing chain. */
export function openImage(path: string, options: OpenImageOptions = {}): Promise<OpenedImage> {
  return openChain(path, options, []);
}

/** Create a qcow2 image file. */
export async function createQcow2File(path: string, options: Qcow2CreateOptions): Promise<void> {
  const store = await NodeFileStore.open(path, { create: true });
  try {
    await createQcow2(store, options);
  } finally {
    await store.close();
  }
}
