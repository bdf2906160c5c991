/**
 * Node-only: the host-side fast path. Decompresses a bzImage's payload into the vmlinux ELF so
 * the loader can place the kernel directly and skip the in-guest decompressor. gzip goes through
 * node:zlib; xz (what Debian's kernels use) through the host's `xz` program; other compressors
 * are reported, not decompressed.
 */
import { spawnSync } from 'node:child_process';
import { gunzipSync } from 'node:zlib';
import { parseSetupHeader } from './bzimage';
import { KernelLoadError } from './errors';
import { isElf } from './elf';
import { bzImagePayload, type KernelCompressor } from './payload';

/** The largest vmlinux accepted (a decompression bomb guard). */
export const MAX_VMLINUX_SIZE = 0x2000_0000;

export interface ExtractedVmlinux {
  readonly compressor: KernelCompressor;
  readonly vmlinux: Uint8Array;
}

/** Decompresses a bzImage's payload to the vmlinux ELF; throws KernelLoadError saying why not. */
export function extractVmlinux(image: Uint8Array): ExtractedVmlinux {
  const payload = bzImagePayload(image, parseSetupHeader(image));
  let out: Uint8Array;
  if (payload.compressor === 'gzip') {
    try {
      out = new Uint8Array(gunzipSync(payload.bytes, { maxOutputLength: MAX_VMLINUX_SIZE }));
    } catch (err) {
      throw new KernelLoadError(`the bzImage's gzip payload does not decompress: ${(err as Error).message}`);
    }
  } else if (payload.compressor === 'xz') {
    const r = spawnSync('xz', ['-dc', '--single-stream'], { input: payload.bytes, maxBuffer: MAX_VMLINUX_SIZE });
    if (r.error) {
      throw new KernelLoadError(`the bzImage's payload is xz-compressed and the host has no usable xz program (${r.error.message}); boot it without the fast path`);
    }
    if (r.status !== 0) throw new KernelLoadError(`the bzImage's xz payload does not decompress: ${r.stderr.toString().trim()}`);
    out = new Uint8Array(r.stdout);
  } else {
    throw new KernelLoadError(`the bzImage's payload is ${payload.compressor}-compressed; the fast path handles gzip and xz only`);
  }
  if (!isElf(out)) throw new KernelLoadError('the bzImage payload decompressed into something that is not an ELF vmlinux');
  return { compressor: payload.compressor, vmlinux: out };
}
