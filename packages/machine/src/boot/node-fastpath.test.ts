import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { KernelLoadError } from './errors';
import { extractVmlinux } from './node-fastpath';

/** A bzImage (protocol 2.15) whose payload is `payload`. */
function bzWithPayload(payload: Uint8Array): Uint8Array {
  const img = new Uint8Array(1024 + 0x40 + payload.length);
  const v = new DataView(img.buffer);
  img[0x1f1] = 1;
  v.setUint32(0x1f4, Math.ceil((img.length - 1024) / 16) - 1, true);
  v.setUint16(0x1fe, 0xaa55, true);
  img[0x201] = 0x66;
  v.setUint32(0x202, 0x53726448, true);
  v.setUint16(0x206, 0x020f, true);
  img[0x211] = 1;
  v.setUint32(0x248, 0x40, true);
  v.setUint32(0x24c, payload.length, true);
  img.set(payload, 1024 + 0x40);
  return img;
}

describe('bzImage fast path (host-side decompression)', () => {
  it('gunzips a gzip payload with node:zlib into the ELF inside', () => {
    const elf = new Uint8Array(5000);
    elf.set([0x7f, 0x45, 0x4c, 0x46, 2, 1]);
    for (let i = 6; i < elf.length; i++) elf[i] = i % 251;
    const x = extractVmlinux(bzWithPayload(new Uint8Array(gzipSync(elf))));
    expect(x.compressor).toBe('gzip');
    expect(Buffer.from(x.vmlinux).equals(Buffer.from(elf))).toBe(true);
  });

  it('reports corrupt, non-ELF and unsupported payloads as KernelLoadError', () => {
    const gz = new Uint8Array(gzipSync(new Uint8Array(100)));
    expect(() => extractVmlinux(bzWithPayload(gz))).toThrow(/not an ELF/);
    const broken = gz.slice();
    broken[20] ^= 0xff;
    expect(() => extractVmlinux(bzWithPayload(broken))).toThrow(KernelLoadError);
    expect(() => extractVmlinux(bzWithPayload(new Uint8Array([0x28, 0xb5, 0x2f, 0xfd, 0, 0, 0, 0])))).toThrow(/zstd/);
  });
});
