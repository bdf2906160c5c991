import fc from 'fast-check';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RSP } from '../constants';
import { cpuidLeaf } from '../index';
import { AT_ENTRY, AT_EXECFN, AT_PHDR, AT_PHNUM, AT_PLATFORM, AT_RANDOM, AT_SECURE, AT_HWCAP, AT_PAGESZ, AT_PHENT, ElfError, loadElf, parseElf, STACK_TOP } from './elf';
import { UserMemory } from './memory';
import { createProcess, runProgram } from './run';
import { makeTempDir, removeTempDir } from './test-support';

/** A minimal static ELF64 executable: header, one PT_LOAD (R+X) at 0x400000 holding everything, code at 0x400078. */
function tinyElf(code: number[], opts: { type?: number; machine?: number; extraPhdr?: number[] } = {}): Uint8Array {
  const phnum = opts.extraPhdr ? 2 : 1;
  const codeOff = 64 + 56 * phnum;
  const size = codeOff + code.length;
  const b = new Uint8Array(size);
  const dv = new DataView(b.buffer);
  b.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]);
  dv.setUint16(16, opts.type ?? 2, true);
  dv.setUint16(18, opts.machine ?? 62, true);
  dv.setUint32(20, 1, true);
  dv.setBigUint64(24, BigInt(0x400000 + codeOff), true);
  dv.setBigUint64(32, 64n, true);
  dv.setUint16(52, 64, true);
  dv.setUint16(54, 56, true);
  dv.setUint16(56, phnum, true);
  dv.setUint32(64, 1, true); // PT_LOAD
  dv.setUint32(68, 5, true); // R+X
  dv.setBigUint64(80, 0x400000n, true);
  dv.setBigUint64(88, 0x400000n, true);
  dv.setBigUint64(96, BigInt(size), true);
  dv.setBigUint64(104, BigInt(size + 0x2000), true); // + bss
  dv.setBigUint64(112, 0x1000n, true);
  if (opts.extraPhdr) b.set(opts.extraPhdr, 120);
  b.set(code, codeOff);
  return b;
}

// mov edi, 3; mov eax, 231; syscall  (exit_group(3))
const EXIT3 = [0xbf, 3, 0, 0, 0, 0xb8, 231, 0, 0, 0, 0x0f, 0x05];

describe('ELF loader', () => {
  let dir = '';
  beforeAll(() => {
    dir = makeTempDir('rz-elf-');
  });
  afterAll(() => removeTempDir(dir));

  it('parses a minimal executable and runs it to its exit status', () => {
    const elf = tinyElf(EXIT3);
    const info = parseElf(elf);
    expect(info.entry).toBe(0x400000 + 120);
    expect(info.phdr).toBe(0x400040);
    expect(info.brk).toBe(0x400000 + 0x3000);
    const p = path.join(dir, 'exit3');
    fs.writeFileSync(p, elf);
    const r = runProgram({ program: p, env: [], captureStdout: true, captureStderr: true });
    expect(r).toMatchObject({ reason: 'exit', status: 3, retired: 3 });
  });

  it('loads segments with their protection: code is not writable, bss reads as zero', () => {
    const elf = tinyElf(EXIT3);
    const mem = new UserMemory();
    loadElf(mem, elf, parseElf(elf));
    expect(mem.read8(0x400000)).toBe(0x7f);
    expect(mem.read32(0x400000 + elf.length + 0x100)).toBe(0);
    expect(mem.write8(0x400000, 0)).toBeLessThan(0);
    expect(mem.fetch8(0x400000 + 120)).toBe(0xbf);
  });

  it('builds the initial stack like Linux: argc, argv, envp, auxv with no AT_SYSINFO_EHDR', () => {
    const p = path.join(dir, 'stack');
    fs.writeFileSync(p, tinyElf(EXIT3));
    const { cpu, mem } = createProcess({ program: p, argv: ['prog', 'a b', ''], env: ['X=1', 'Y='] });
    const sp = cpu.regNumber(RSP);
    expect(sp % 16).toBe(0);
    expect(sp).toBeLessThan(STACK_TOP);
    const q = (la: number): number => {
      const out = new Int32Array(2);
      expect(mem.read64(la, out, 0)).toBe(0);
      return out[1] * 2 ** 32 + (out[0] >>> 0);
    };
    const str = (la: number): string => new TextDecoder().decode(mem.readCString(la)!);
    expect(q(sp)).toBe(3);
    expect([str(q(sp + 8)), str(q(sp + 16)), str(q(sp + 24))]).toEqual(['prog', 'a b', '']);
    expect(q(sp + 32)).toBe(0);
    expect([str(q(sp + 40)), str(q(sp + 48))]).toEqual(['X=1', 'Y=']);
    expect(q(sp + 56)).toBe(0);
    const aux = new Map<number, number>();
    for (let a = sp + 64; ; a += 16) {
      const k = q(a);
      if (k === 0) break;
      expect(aux.has(k)).toBe(false);
      aux.set(k, q(a + 8));
    }
    expect(aux.has(33)).toBe(false); // AT_SYSINFO_EHDR: no vDSO
    expect(aux.get(AT_PAGESZ)).toBe(4096);
    expect(aux.get(AT_PHDR)).toBe(0x400040);
    expect(aux.get(AT_PHENT)).toBe(56);
    expect(aux.get(AT_PHNUM)).toBe(1);
    expect(aux.get(AT_ENTRY)).toBe(0x400078);
    expect(aux.get(AT_SECURE)).toBe(0);
    expect(str(aux.get(AT_PLATFORM)!)).toBe('x86_64');
    expect(str(aux.get(AT_EXECFN)!)).toBe(p);
    expect(mem.readBytes(aux.get(AT_RANDOM)!, 16)).not.toBeNull();
    const id = new Int32Array(4);
    cpuidLeaf(cpu, 1, 0, id);
    expect(aux.get(AT_HWCAP)).toBe(id[3] >>> 0);
    // The program headers are readable where AT_PHDR says.
    expect(mem.read32(aux.get(AT_PHDR)!)).toBe(1);
  });

  it('rejects what it cannot run with a clear ElfError', () => {
    expect(() => parseElf(new Uint8Array(10))).toThrow(/not an ELF file/);
    expect(() => parseElf(tinyElf(EXIT3, { machine: 40 }))).toThrow(/not an x86-64/);
    const e32 = tinyElf(EXIT3);
    e32[4] = 1; // an ELF32 class on ELF64 headers: the i386 program header size is wrong
    expect(() => parseElf(e32)).toThrow(/not an i386 ELF file/);
    e32[18] = 3;
    expect(() => parseElf(e32)).toThrow(/bad program header size/);
    expect(() => parseElf(tinyElf(EXIT3, { type: 1 }))).toThrow(/not an executable/);
    const interp = [3, 0, 0, 0, 4, 0, 0, 0, ...new Array<number>(48).fill(0)];
    expect(() => parseElf(tinyElf(EXIT3, { extraPhdr: interp }))).toThrow(/dynamically linked/);
    const bigBss = tinyElf(EXIT3);
    new DataView(bigBss.buffer).setBigUint64(104, 1n << 40n, true);
    expect(() => parseElf(bigBss)).toThrow(ElfError);
    const badEntry = tinyElf(EXIT3);
    new DataView(badEntry.buffer).setBigUint64(24, 0x1234n, true);
    expect(() => parseElf(badEntry)).toThrow(/entry point/);
  });

  it('never throws anything but ElfError on mutated or random files, and loads within bounds', () => {
    const base = tinyElf(EXIT3);
    const mutated = fc
      .array(fc.record({ at: fc.nat(base.length - 1), v: fc.nat(255) }), { minLength: 1, maxLength: 8 })
      .map((muts) => {
        const b = base.slice();
        for (const m of muts) b[m.at] = m.v;
        return b;
      });
    const random = fc.uint8Array({ minLength: 0, maxLength: 400 }).map((b) => {
      if (b.length >= 4) b.set([0x7f, 0x45, 0x4c, 0x46]);
      return b;
    });
    fc.assert(
      fc.property(fc.oneof(mutated, random), (file) => {
        try {
          const info = parseElf(file);
          const mem = new UserMemory({ maxPages: 1 << 18 });
          loadElf(mem, file, info);
          expect(mem.mappedPages).toBeLessThanOrEqual(1 << 18);
        } catch (e) {
          expect(e).toBeInstanceOf(ElfError);
        }
      }),
      { numRuns: 400 },
    );
  });
});
