// Multiboot v1 kernels assembled with nasm at test time: QEMU (the peer) boots each and the
// kernel checks what a multiboot loader must hand it, reporting through isa-debug-exit; our
// loader must detect and load the same files and hand over the same things.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FlatGuestMemory } from '@ringzero/mmu-ept';
import { buildE820, MiB, MULTIBOOT_INFO_START } from '../layout';
import { detectKernelFormat, findMultibootHeader, loadKernel, KernelLoadError, MULTIBOOT_BOOTLOADER_MAGIC } from './index';

const HAVE_NASM = !spawnSync('nasm', ['-v']).error;
const HAVE_QEMU = !spawnSync('qemu-system-x86_64', ['--version']).error;
if (!HAVE_NASM) console.warn('SKIPPED: nasm not installed: multiboot kernels are not assembled or loaded');
if (HAVE_NASM && !HAVE_QEMU) console.warn('SKIPPED: qemu-system-x86_64 not installed: the multiboot test kernels are not checked under QEMU');

const MODULE_MAGIC = 0xcafebabe;

// One kernel source, two containers: the a.out kludge (flat binary, flag 16) or a hand-built ELF32.
const SOURCE = `
bits 32
org 0x100000
MB_MAGIC equ 0x1BADB002
%ifdef AOUT
MB_FLAGS equ 0x00010003
%else
MB_FLAGS equ 0x00000003
ehdr:
  db 0x7f, 'ELF', 1, 1, 1, 0
  times 8 db 0
  dw 2, 3
  dd 1, start, phdr - ehdr, 0, 0
  dw 52, 32, 1, 0, 0, 0
phdr:
  dd 1, 0, 0x100000, 0x100000, load_end - ehdr, bss_end - ehdr, 7, 0x1000
%endif
align 4
hdr:
  dd MB_MAGIC, MB_FLAGS, -(MB_MAGIC + MB_FLAGS)
%ifdef AOUT
  dd hdr, 0x100000, load_end, bss_end, start
%endif
start:
  mov dx, 0xf4
  mov ecx, 0x10             ; each failed check exits with its own code
  cmp eax, 0x2BADB002
  jne fail
  inc ecx
  test dword [ebx], 1       ; mem_lower/mem_upper valid
  jz fail
  inc ecx
  cmp dword [ebx + 4], 639  ; KiB below the EBDA
  ja fail
  cmp dword [ebx + 4], 500
  jb fail
  inc ecx
  test dword [ebx], 0x40    ; mmap valid
  jz fail
  inc ecx
  test dword [ebx], 8       ; modules
  jz fail
  cmp dword [ebx + 20], 1
  jne fail
  inc ecx
  mov esi, [ebx + 24]
  mov esi, [esi]            ; mod_start
  cmp dword [esi], ${MODULE_MAGIC}
  jne fail
  inc ecx
  test esi, 0xfff           ; page aligned (header flag 0)
  jnz fail
  inc ecx
  cmp dword [bss_var], 0
  jne fail
  mov ecx, 0x31             ; all good: exit status 99
fail:
  mov eax, ecx
  out dx, al
  hlt
  jmp fail
load_end:
bss_var equ load_end
bss_end equ load_end + 0x2000
`;

describe.skipIf(!HAVE_NASM)('multiboot v1 kernels assembled with nasm', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rz-mb-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'k.asm'), SOURCE);
  const mod = new Uint8Array(4096 + 123);
  new DataView(mod.buffer).setUint32(0, MODULE_MAGIC, true);
  writeFileSync(join(dir, 'mod.bin'), mod);

  function assemble(aout: boolean): { path: string; bytes: Uint8Array } {
    const path = join(dir, aout ? 'aout.bin' : 'elf.bin');
    const r = spawnSync('nasm', ['-f', 'bin', ...(aout ? ['-DAOUT'] : []), '-o', path, join(dir, 'k.asm')], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    return { path, bytes: new Uint8Array(readFileSync(path)) };
  }

  describe.each([true, false])('a.out kludge: %s', (aout) => {
    const k = assemble(aout);

    it.skipIf(!HAVE_QEMU)('boots under qemu-system-x86_64, whose multiboot loader passes every check', () => {
      const r = spawnSync('qemu-system-x86_64', [
        '-accel', 'tcg', '-m', '64', '-display', 'none', '-serial', 'none', '-monitor', 'none', '-no-reboot', '-nodefaults',
        '-device', 'isa-debug-exit,iobase=0xf4,iosize=0x04', '-kernel', k.path, '-initrd', join(dir, 'mod.bin'), '-append', 'hello',
      ], { encoding: 'utf8', timeout: 60_000 });
      expect(r.status, `${r.stderr}`).toBe(99);
    });

    it('is detected as multiboot and loaded with what the kernel checks', () => {
      expect(detectKernelFormat(k.bytes)).toBe('multiboot');
      const h = findMultibootHeader(k.bytes)!;
      expect(Boolean(h.flags & 0x10000)).toBe(aout);
      const ram = 64 * MiB;
      const mem = new FlatGuestMemory(ram);
      mem.bytes.fill(0xaa); // so the BSS must really be zeroed
      const l = loadKernel(mem, k.bytes, { ramSize: ram, cmdline: 'hello', initrd: mod });
      expect(l.format).toBe('multiboot');
      expect(l.cpu.mode).toBe('protected32');
      expect(l.cpu.regs.rax).toBe(MULTIBOOT_BOOTLOADER_MAGIC);
      expect(l.cpu.regs.rbx).toBe(MULTIBOOT_INFO_START);
      expect(l.cpu.sregs.cr0 & 0x8000_0001).toBe(1);
      expect(l.cpu.sregs.cs.db).toBe(1);
      // The entry is the 'start' label: the instruction there is "mov dx, 0xf4" (66 BA F4 00).
      expect(mem.read32(l.cpu.regs.rip)).toBe(0x00f4ba66);
      const info = MULTIBOOT_INFO_START;
      const flags = mem.read32(info);
      expect(flags & 0x4d).toBe(0x4d); // memory, cmdline, modules, mmap
      expect(mem.read32(info + 4)).toBe(639);
      expect(mem.read32(info + 8)).toBe((ram - MiB) / 1024);
      expect(mem.read32(info + 20)).toBe(1);
      const modStart = mem.read32(mem.read32(info + 24));
      const modEnd = mem.read32(mem.read32(info + 24) + 4);
      expect(modStart % 4096).toBe(0);
      expect(modStart).toBeGreaterThanOrEqual(l.kernel.end);
      expect(modEnd - modStart).toBe(mod.length);
      expect(mem.read32(modStart)).toBe(MODULE_MAGIC);
      let cmd = '';
      for (let a = mem.read32(info + 16); mem.read8(a) !== 0; a++) cmd += String.fromCharCode(mem.read8(a));
      expect(cmd).toBe('hello');
      // BSS (after the loaded bytes) is zero; mmap mirrors the e820 map.
      for (let a = l.kernel.end - 0x2000; a < l.kernel.end; a += 4) expect(mem.read32(a)).toBe(0);
      const e820 = buildE820(ram);
      expect(mem.read32(info + 44)).toBe(24 * e820.length);
      const mmap = mem.read32(info + 48);
      e820.forEach((e, i) => {
        expect(mem.read32(mmap + i * 24)).toBe(20);
        expect(mem.read32(mmap + i * 24 + 4)).toBe(e.addr);
        expect(mem.read32(mmap + i * 24 + 12)).toBe(e.size);
        expect(mem.read32(mmap + i * 24 + 20)).toBe(e.type);
      });
    });
  });

  it('rejects a multiboot header that requires an unknown feature, and a bad checksum is no header at all', () => {
    const k = assemble(true);
    const bad = k.bytes.slice();
    const h = findMultibootHeader(bad)!;
    const v = new DataView(bad.buffer);
    v.setUint32(h.offset + 4, h.flags | 0x8, true);
    v.setUint32(h.offset + 8, (-(0x1badb002 + (h.flags | 0x8))) >>> 0, true);
    expect(() => loadKernel(new FlatGuestMemory(8 * MiB), bad, { ramSize: 8 * MiB })).toThrow(KernelLoadError);
    v.setUint32(h.offset + 8, 0, true);
    expect(findMultibootHeader(bad)).toBeNull();
    expect(detectKernelFormat(bad)).toBeNull();
  });
});
