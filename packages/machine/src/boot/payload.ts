/**
 * The compressed kernel inside a bzImage (payload_offset/payload_length, protocol 2.08+), for
 * the host-side fast path: decompress it to the vmlinux ELF and load that directly, skipping the
 * in-guest decompressor. Which compressor a kernel uses is told by the payload's magic bytes.
 */
import { KernelLoadError } from './errors';
import type { SetupHeader } from './bzimage';

export type KernelCompressor = 'gzip' | 'xz' | 'lzma' | 'bzip2' | 'lzo' | 'lz4' | 'zstd' | 'unknown';

export interface BzImagePayload {
  /** Offset of the payload in the file. */
  readonly offset: number;
  readonly compressor: KernelCompressor;
  /** The compressed bytes (a view into the image; the last 4 bytes are the decompressed size, little-endian). */
  readonly bytes: Uint8Array;
  /** The decompressed size Linux appends after the compressed stream. */
  readonly decompressedSize: number;
}

function starts(b: Uint8Array, magic: readonly number[]): boolean {
  return b.length >= magic.length && magic.every((m, i) => b[i] === m);
}

/** Names the compressor from the stream's first bytes. */
export function detectCompressor(b: Uint8Array): KernelCompressor {
  if (starts(b, [0x1f, 0x8b])) return 'gzip';
  if (starts(b, [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00])) return 'xz';
  if (starts(b, [0x42, 0x5a, 0x68])) return 'bzip2';
  if (starts(b, [0x89, 0x4c, 0x5a, 0x4f])) return 'lzo';
  if (starts(b, [0x02, 0x21, 0x4c, 0x18])) return 'lz4';
  if (starts(b, [0x28, 0xb5, 0x2f, 0xfd])) return 'zstd';
  if (starts(b, [0x5d, 0x00])) return 'lzma';
  return 'unknown';
}

/** Finds the compressed payload of a parsed bzImage; throws KernelLoadError if it has none. */
export function bzImagePayload(image: Uint8Array, header: SetupHeader): BzImagePayload {
  if (header.version < 0x0208 || header.payloadLength === 0) throw new KernelLoadError('this bzImage does not describe its payload (boot protocol 2.08 or later is needed)');
  const offset = header.setupSize + header.payloadOffset;
  const end = offset + header.payloadLength;
  if (end > image.length || header.payloadLength < 4) throw new KernelLoadError(`bzImage is truncated: its payload ends at ${end}, the file at ${image.length}`);
  const bytes = image.subarray(offset, end);
  const t = end - 4;
  const decompressedSize = (image[t] | (image[t + 1] << 8) | (image[t + 2] << 16) | (image[t + 3] << 24)) >>> 0;
  return { offset, compressor: detectCompressor(bytes), bytes, decompressedSize };
}
