// Loader unit tests on small synthetic images, and hostile input: random, truncated and mutated
// kernel files end in one KernelLoadError, never another exception or a hang.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { FlatGuestMemory } from '@ringzero/mmu-ept';
import { MiB, PML4_START, ZERO_PAGE_START } from '../layout';
import {
  KernelLoadError, detectKernelFormat, loadKernel, parseElf, parseSetupHeader, bzImagePayload, detectCompressor,
} from './index';

interface BzOptions {
  version?: number;
  xloadflags?: number;
  kernelSize?: number;
  initSize?: number;
  prefAddress?: number;
  cmdlineSize?: number;
  initrdAddrMax?: number;
}

/** A minimal bzImage: 1 setup sector + boot sector, then `kernelSize` bytes of "kernel". */
function makeBzImage(o: BzOptions = {}): Uint8Array {
  const kernelSize = o.kernelSize ?? 0x3000;
  const img = new Uint8Array(1024 + kernelSize);
  const v = new DataView(img.buffer);
  img[0x1f1] = 1; // setup_sects
  v.setUint32(0x1f4, kernelSize / 16, true);
  v.setUint16(0x1fe, 0xaa55, true);
  img[0x200] = 0xeb;
  img[0x201] = 0x66; // header ends at 0x268
  v.setUint32(0x202, 0x53726448, true);
  v.setUint16(0x206, o.version ?? 0x020f, true);
  v.setUint16(0x20e, 0x300 - 0x200, true); // kernel_version -> "9.9.9-test ..."
  img.set(new TextEncoder().encode('9.9.9-test (me@here) #1\0'), 0x300);
  img[0x211] = 0x01; // LOADED_HIGH
  v.setUint32(0x214, 0x100000, true);
  v.setUint32(0x22c, o.initrdAddrMax ?? 0x7fff_ffff, true);
  v.setUint32(0x230, 0x200000, true);
  img[0x234] = 1;
  v.setUint16(0x236, o.xloadflags ?? 0x1, true);
  v.setUint32(0x238, o.cmdlineSize ?? 2047, true);
  v.setUint32(0x248, 0x10, true); // payload_offset
  v.setUint32(0x24c, 0x100, true); // payload_length
  v.setUint32(0x258, o.prefAddress ?? 0x100000, true);
  v.setUint32(0x260, o.initSize ?? 0x20000, true);
  for (let i = 0; i < kernelSize; i++) img[1024 + i] = (i * 7 + 3) & 0xff;
  img.set([0x1f, 0x8b, 0x08], 1024 + 0x10); // a "gzip" payload
  return img;
}

/** A minimal ELF64 (or ELF32) kernel with one PT_LOAD at `paddr` and an optional Xen PVH note. */
function makeElf(cls: 32 | 64, paddr: number, pvh: number | null): Uint8Array {
  const is64 = cls === 64;
  const ehsize = is64 ? 64 : 52;
  const phsize = is64 ? 56 : 32;
  const phnum = pvh == null ? 1 : 2;
  const noteAt = ehsize + phsize * phnum;
  const note = new Uint8Array(12 + 4 + 4);
  const nv = new DataView(note.buffer);
  nv.setUint32(0, 4, true);
  nv.setUint32(4, 4, true);
  nv.setUint32(8, 18, true);
  note.set([0x58, 0x65, 0x6e, 0], 12);
  nv.setUint32(16, pvh ?? 0, true);
  const codeAt = 0x100;
  const code = new Uint8Array(0x40).fill(0x90);
  const img = new Uint8Array(codeAt + code.length);
  const v = new DataView(img.buffer);
  img.set([0x7f, 0x45, 0x4c, 0x46, is64 ? 2 : 1, 1, 1], 0);
  v.setUint16(0x10, 2, true);
  v.setUint16(0x12, is64 ? 62 : 3, true);
  v.setUint32(0x14, 1, true);
  v.setUint32(0x18, paddr, true);
  if (is64) {
    v.setUint32(0x20, ehsize, true);
    v.setUint16(0x36, phsize, true);
    v.setUint16(0x38, phnum, true);
  } else {
    v.setUint32(0x1c, ehsize, true);
    v.setUint16(0x2a, phsize, true);
    v.setUint16(0x2c, phnum, true);
  }
  const ph = (i: number, type: number, off: number, addr: number, filesz: number, memsz: number): void => {
    const p = ehsize + i * phsize;
    v.setUint32(p, type, true);
    if (is64) {
      v.setUint32(p + 8, off, true);
      v.setUint32(p + 16, addr, true);
      v.setUint32(p + 20, 0xffffffff, true); // a kernel-style high virtual address
      v.setUint32(p + 24, addr, true);
      v.setUint32(p + 32, filesz, true);
      v.setUint32(p + 40, memsz, true);
    } else {
      v.setUint32(p + 4, off, true);
      v.setUint32(p + 8, addr, true);
      v.setUint32(p + 12, addr, true);
      v.setUint32(p + 16, filesz, true);
      v.setUint32(p + 20, memsz, true);
    }
  };
  ph(0, 1, codeAt, paddr, code.length, 0x2000);
  if (pvh != null) ph(1, 4, noteAt, 0, note.length, note.length);
  img.set(note, noteAt);
  img.set(code, codeAt);
  return img;
}

describe('bzImage loader (synthetic images)', () => {
  it('parses the header fields it needs', () => {
    const h = parseSetupHeader(makeBzImage());
    expect(h).toMatchObject({ version: 0x20f, setupSects: 1, setupSize: 1024, relocatable: true, xloadflags: 1, cmdlineSize: 2047, kernelVersion: '9.9.9-test (me@here) #1', headerEnd: 0x268 });
    expect(bzImagePayload(makeBzImage(), h)).toMatchObject({ offset: 1024 + 0x10, compressor: 'gzip' });
  });

  it('enters a 64-bit kernel in long mode at +0x200, and at code32_start when forced or when the protocol is older than 2.12', () => {
    const mem = new FlatGuestMemory(16 * MiB);
    const k = loadKernel(mem, makeBzImage(), { ramSize: 16 * MiB });
    expect(k.cpu.mode).toBe('long64');
    expect(k.cpu.regs.rip).toBe(0x100200);
    expect(k.cpu.sregs.cr3).toBe(PML4_START);
    expect(loadKernel(mem, makeBzImage(), { ramSize: 16 * MiB, force32BitEntry: true }).cpu).toMatchObject({ mode: 'protected32', regs: { rip: 0x100000, rsi: ZERO_PAGE_START } });
    expect(loadKernel(mem, makeBzImage({ version: 0x020b }), { ramSize: 16 * MiB }).cpu.mode).toBe('protected32');
    expect(loadKernel(mem, makeBzImage({ xloadflags: 0 }), { ramSize: 16 * MiB }).cpu.mode).toBe('protected32');
  });

  it('keeps the initrd under initrd_addr_max and above the kernel, and says so when it cannot', () => {
    const mem = new FlatGuestMemory(32 * MiB);
    const initrd = new Uint8Array(MiB).fill(5);
    const k = loadKernel(mem, makeBzImage({ initrdAddrMax: 0x00ff_ffff }), { ramSize: 32 * MiB, initrd });
    expect(k.initrd!.start + k.initrd!.size - 1).toBeLessThanOrEqual(0x00ff_ffff);
    expect(k.initrd!.start).toBe(0x100_0000 - MiB);
    expect(() => loadKernel(mem, makeBzImage({ initrdAddrMax: 0x001f_ffff }), { ramSize: 32 * MiB, initrd })).toThrow(KernelLoadError);
  });

  it('refuses old and broken headers with a clear reason', () => {
    expect(() => parseSetupHeader(makeBzImage({ version: 0x0201 }))).toThrow(/too old/);
    const zimage = makeBzImage();
    zimage[0x211] = 0;
    expect(() => parseSetupHeader(zimage)).toThrow(/zImage/);
    expect(() => parseSetupHeader(makeBzImage().subarray(0, 0x300))).toThrow(/truncated/);
    expect(() => parseSetupHeader(makeBzImage().subarray(0, 1024 + 0x100))).toThrow(/truncated/);
  });
});

describe('ELF vmlinux loader (synthetic images)', () => {
  it('loads an ELF64 at its physical address, zeroes BSS, enters long mode at e_entry', () => {
    const mem = new FlatGuestMemory(32 * MiB);
    mem.bytes.fill(0xcc);
    const img = makeElf(64, 0x100_0000, 0x100_0010);
    const elf = parseElf(img);
    expect(elf).toMatchObject({ class: 64, entry: 0x100_0000, pvhEntry: 0x100_0010 });
    const k = loadKernel(mem, img, { ramSize: 32 * MiB, cmdline: 'root=/dev/vda' });
    expect(k.format).toBe('elf');
    expect(k.cpu).toMatchObject({ mode: 'long64', regs: { rip: 0x100_0000, rsi: ZERO_PAGE_START } });
    expect(mem.read32(0x100_0000)).toBe(0x90909090);
    expect(mem.read32(0x100_0040)).toBe(0); // BSS
    expect(mem.read32(0x100_1ffc)).toBe(0);
    expect(mem.read32(ZERO_PAGE_START + 0x202)).toBe(0x53726448); // synthesized setup header
  });

  it('enters an ELF32 in protected mode', () => {
    const k = loadKernel(new FlatGuestMemory(32 * MiB), makeElf(32, 0x100_0000, null), { ramSize: 32 * MiB });
    expect(k.cpu).toMatchObject({ mode: 'protected32', regs: { rip: 0x100_0000 } });
    expect(k.elf!.pvhEntry).toBeNull();
  });

  it('refuses segments outside RAM and over the loader structures', () => {
    expect(() => loadKernel(new FlatGuestMemory(8 * MiB), makeElf(64, 0x100_0000, null), { ramSize: 8 * MiB })).toThrow(/not in guest RAM/);
    expect(() => loadKernel(new FlatGuestMemory(8 * MiB), makeElf(64, 0x1_0000, null), { ramSize: 8 * MiB })).toThrow(/boot structures/);
  });
});

describe('hostile kernel files', () => {
  const mem = new FlatGuestMemory(8 * MiB);
  const load = (img: Uint8Array): void => {
    try {
      loadKernel(mem, img, { ramSize: 8 * MiB, cmdline: 'x', initrd: new Uint8Array(100) });
    } catch (err) {
      if (!(err instanceof KernelLoadError)) throw err;
    }
  };

  it('empty and garbage files get one clear error', () => {
    expect(() => loadKernel(mem, new Uint8Array(0), { ramSize: 8 * MiB })).toThrow(/empty/);
    expect(() => loadKernel(mem, new Uint8Array(9000).fill(0x41), { ramSize: 8 * MiB })).toThrow(/neither a Linux bzImage/);
    expect(detectKernelFormat(new Uint8Array(3))).toBeNull();
    expect(detectCompressor(new Uint8Array([0x28, 0xb5, 0x2f, 0xfd]))).toBe('zstd');
  });

  it('random bytes never throw anything but KernelLoadError (property)', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 4096 }), (b) => load(b)), { numRuns: 300 });
  });

  it('every truncation of a valid bzImage, ELF64 and ELF32 fails cleanly or loads (property)', () => {
    const samples = [makeBzImage({ kernelSize: 0x400 }), makeElf(64, 0x20_0000, 0x20_0000), makeElf(32, 0x20_0000, null)];
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 }), fc.nat(), (which, cut) => {
        const s = samples[which];
        load(s.subarray(0, cut % (s.length + 1)));
      }),
      { numRuns: 300 },
    );
  });

  it('mutated headers of valid images fail cleanly or load (property)', () => {
    const samples = [makeBzImage({ kernelSize: 0x400 }), makeElf(64, 0x20_0000, 0x20_0000), makeElf(32, 0x20_0000, null)];
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 2 }),
        fc.array(fc.tuple(fc.integer({ min: 0, max: 0x2ff }), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }),
        (which, edits) => {
          const img = samples[which].slice();
          for (const [at, val] of edits) if (at < img.length) img[at] = val;
          load(img);
        },
      ),
      { numRuns: 500 },
    );
  });
});
