// The loaders against the real, unmodified Debian kernels of the guest fixtures (the peer:
// the kernels themselves, `file`'s reading of them, and xz for their payload).
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FlatGuestMemory } from '@ringzero/mmu-ept';
import { defaultCacheDir, prepareGuest, type Guest, type GuestArch } from '../node/guest';
import { E820_RAM, MiB, PML4_START, ZERO_PAGE_START, buildE820 } from '../layout';
import { loadKernel, detectKernelFormat, parseSetupHeader, parseElf, bzImagePayload } from './index';
import { XLF_KERNEL_64 } from './bzimage';
import { extractVmlinux } from './node-fastpath';
import { prepareDirectBoot } from './direct';

function guestOrSkip(arch: GuestArch): Guest | null {
  const cache = process.env.RINGZERO_CACHE ?? defaultCacheDir();
  if (!existsSync(join(cache, arch, 'guest.json'))) {
    console.warn(`SKIPPED: the ${arch} Debian guest is not prepared (no ${join(cache, arch)}; run the fixture command or set RINGZERO_CACHE): the real-kernel loader tests`);
    return null;
  }
  try {
    return prepareGuest({ arch, cacheDir: cache });
  } catch (err) {
    console.warn(`SKIPPED: the ${arch} Debian guest is unavailable (${(err as Error).message}): the real-kernel loader tests`);
    return null;
  }
}

const HAVE_FILE = !spawnSync('file', ['--version']).error;
if (!HAVE_FILE) console.warn('SKIPPED: file not installed: the kernel version string is not compared with file(1)');
const HAVE_XZ = !spawnSync('xz', ['--version']).error;
if (!HAVE_XZ) console.warn('SKIPPED: xz not installed: the Debian kernel payload is not decompressed into a vmlinux');

/** Walks 4-level page tables with 2 MiB pages the way the MMU would; returns the physical address or -1. */
function walk(mem: FlatGuestMemory, cr3: number, la: number): number {
  const out = new Uint32Array(2);
  let table = cr3;
  for (const shift of [39, 30, 21]) {
    const idx = Math.floor(la / 2 ** shift) % 512;
    if (!mem.read64(table + idx * 8, out, 0) || !(out[0] & 1)) return -1;
    const addr = (out[0] & 0xffff_f000) + out[1] * 2 ** 32;
    if (shift === 21) return out[0] & 0x80 ? addr - (addr % 2 ** 21) + (la % 2 ** 21) : -1;
    table = addr;
  }
  return -1;
}

const cstring = (mem: FlatGuestMemory, addr: number): string => {
  let s = '';
  for (let a = addr; mem.read8(a) > 0 && s.length < 4096; a++) s += String.fromCharCode(mem.read8(a));
  return s;
};

describe.each(['amd64', 'i386'] as const)('the Debian %s kernel', (arch) => {
  const guest = guestOrSkip(arch);
  const run = guest ? it : it.skip;

  run('has the setup header the kernel documentation and file(1) describe', () => {
    const image = new Uint8Array(readFileSync(guest!.kernel));
    expect(detectKernelFormat(image)).toBe('bzimage');
    const h = parseSetupHeader(image);
    expect(h.version).toBe(0x020f); // Linux 6.1 speaks boot protocol 2.15
    expect(h.kernelVersion.startsWith(`${guest!.kernelVersion} `)).toBe(true);
    expect(h.relocatable).toBe(true);
    expect(h.prefAddress).toBe(0x100_0000); // CONFIG_PHYSICAL_START
    expect(h.kernelAlignment).toBeGreaterThanOrEqual(0x20_0000);
    expect(h.cmdlineSize).toBeGreaterThanOrEqual(2047);
    expect(h.initSize).toBeGreaterThan(image.length - h.setupSize);
    expect(Boolean(h.xloadflags & XLF_KERNEL_64)).toBe(arch === 'amd64');
    if (HAVE_FILE) {
      const out = spawnSync('file', ['-b', guest!.kernel], { encoding: 'utf8' }).stdout;
      const fileVersion = /version (\S+ \([^)]*\) #[^,]*)/.exec(out)?.[1];
      expect(fileVersion).toBeDefined();
      expect(h.kernelVersion).toBe(fileVersion);
    }
  });

  run('reports an xz payload, which xz decompresses into the vmlinux ELF of the right class', () => {
    const image = new Uint8Array(readFileSync(guest!.kernel));
    const p = bzImagePayload(image, parseSetupHeader(image));
    expect(p.compressor).toBe('xz');
    if (!HAVE_XZ) return;
    const x = extractVmlinux(image);
    expect(x.compressor).toBe('xz');
    const vmlinux = x.vmlinux;
    expect(vmlinux.length).toBe(p.decompressedSize);
    expect(detectKernelFormat(vmlinux)).toBe('elf');
    const elf = parseElf(vmlinux);
    expect(elf.class).toBe(arch === 'amd64' ? 64 : 32);
    expect(elf.entry).toBe(0x100_0000); // phys_startup_64 / phys_startup_32
    expect(elf.segments[0].paddr).toBe(0x100_0000);

    // The fast path: that vmlinux loads directly, entered at its physical entry.
    const mem = new FlatGuestMemory(128 * MiB);
    const k = loadKernel(mem, vmlinux, { ramSize: 128 * MiB, cmdline: 'console=ttyS0' });
    expect(k.format).toBe('elf');
    expect(k.cpu.mode).toBe(arch === 'amd64' ? 'long64' : 'protected32');
    expect(k.cpu.regs.rip).toBe(0x100_0000);
    const s = elf.segments[0];
    expect(Buffer.from(mem.bytes.subarray(s.paddr, s.paddr + 4096)).equals(Buffer.from(vmlinux.subarray(s.offset, s.offset + 4096)))).toBe(true);
  });

  run('loads with the initramfs and command line: zero page, placement and entry state', () => {
    const image = new Uint8Array(readFileSync(guest!.kernel));
    const initrd = new Uint8Array(readFileSync(guest!.initramfs));
    const ram = 256 * MiB;
    const mem = new FlatGuestMemory(ram);
    const cmdline = 'console=ttyS0 panic=-1 quiet';
    const k = loadKernel(mem, image, { ramSize: ram, cmdline, initrd, acpiRsdp: 0xe0000 });
    const h = k.setupHeader!;
    // The protected-mode kernel is at 1 MiB, byte for byte.
    expect(Buffer.from(mem.bytes.subarray(0x10_0000, 0x10_0000 + 65536)).equals(Buffer.from(image.subarray(h.setupSize, h.setupSize + 65536)))).toBe(true);
    // Zero page as the kernel will read it.
    const zp = ZERO_PAGE_START;
    expect(mem.read16(zp + 0x1fe)).toBe(0xaa55);
    expect(mem.read32(zp + 0x202)).toBe(0x53726448);
    expect(mem.read8(zp + 0x210)).toBe(0xff); // type_of_loader
    expect(mem.read16(zp + 0x1fa)).toBe(0xffff); // vid_mode normal
    expect(cstring(mem, mem.read32(zp + 0x228))).toBe(cmdline);
    expect(mem.read32(zp + 0x070)).toBe(0xe0000); // acpi_rsdp_addr
    const rdStart = mem.read32(zp + 0x218);
    const rdSize = mem.read32(zp + 0x21c);
    expect(rdSize).toBe(initrd.length);
    expect(rdStart % 4096).toBe(0);
    expect(rdStart + rdSize - 1).toBeLessThanOrEqual(h.initrdAddrMax);
    expect(rdStart).toBeGreaterThanOrEqual(h.prefAddress + h.initSize); // clear of the decompressed kernel
    expect(rdStart + rdSize).toBeLessThanOrEqual(ram);
    expect(Buffer.from(mem.bytes.subarray(rdStart, rdStart + rdSize)).equals(Buffer.from(initrd))).toBe(true);
    const e820 = buildE820(ram);
    expect(mem.read8(zp + 0x1e8)).toBe(e820.length);
    for (let i = 0; i < e820.length; i++) {
      expect(mem.read32(zp + 0x2d0 + i * 20)).toBe(e820[i].addr >>> 0);
      expect(mem.read32(zp + 0x2d0 + i * 20 + 8)).toBe(e820[i].size >>> 0);
      expect(mem.read32(zp + 0x2d0 + i * 20 + 16)).toBe(e820[i].type);
    }
    expect(e820.some((e) => e.type === E820_RAM)).toBe(true);
    // The setup header's fields the kernel wrote stay as they were (version, xloadflags).
    expect(mem.read16(zp + 0x206)).toBe(0x020f);
    expect(mem.read16(zp + 0x236)).toBe(h.xloadflags);

    const { regs, sregs } = k.cpu;
    expect(regs.rsi).toBe(ZERO_PAGE_START);
    expect(sregs.cs.selector).toBe(0x10);
    expect(sregs.ds.selector).toBe(0x18);
    expect(regs.rflags & 0x200).toBe(0); // interrupts off
    if (arch === 'amd64') {
      expect(k.cpu.mode).toBe('long64');
      expect(regs.rip).toBe(0x10_0200); // 64-bit entry = load address + 0x200
      expect(sregs.cs.l).toBe(1);
      expect(sregs.efer & 0x500).toBe(0x500);
      expect(sregs.cr3).toBe(PML4_START);
      // Identity mapping covers the kernel, the zero page, the command line and the initrd.
      for (const a of [0x10_0200, zp, 0x2_0000, rdStart, rdStart + rdSize - 1, h.prefAddress + h.initSize - 1]) expect(walk(mem, sregs.cr3, a)).toBe(a);
      // The GDT's code descriptor at 0x10 is a 64-bit one.
      expect(mem.read32(sregs.gdt.base + 0x10 + 4)).toBe(0x00af9b00);
    } else {
      expect(k.cpu.mode).toBe('protected32');
      expect(regs.rip).toBe(0x10_0000); // code32_start
      expect(sregs.cr0 & 0x8000_0001).toBe(1); // PE on, paging off
      expect(mem.read32(sregs.gdt.base + 0x10 + 4)).toBe(0x00cf9b00);
    }
  });

  run('boots directly with ACPI: the RSDP is where Linux scans and where boot_params points', () => {
    const image = new Uint8Array(readFileSync(guest!.kernel));
    const mem = new FlatGuestMemory(128 * MiB);
    const d = prepareDirectBoot(mem, image, { ramSize: 128 * MiB, cmdline: 'console=ttyS0', acpi: { serialPorts: [1] } });
    expect(d.acpi!.rsdpAddress).toBe(0xe0000);
    expect(mem.read32(ZERO_PAGE_START + 0x070)).toBe(0xe0000);
    expect(cstring(mem, 0xe0000).startsWith('RSD PTR ')).toBe(true);
    expect(d.kernel.cpu.regs.rip).toBe(arch === 'amd64' ? 0x10_0200 : 0x10_0000);
  });

  run('refuses a command line longer than the kernel accepts, and a RAM too small for the initrd', () => {
    const image = new Uint8Array(readFileSync(guest!.kernel));
    const h = parseSetupHeader(image);
    const mem = new FlatGuestMemory(96 * MiB);
    expect(() => loadKernel(mem, image, { ramSize: 96 * MiB, cmdline: 'x'.repeat(h.cmdlineSize + 1) })).toThrow(/command line/);
    expect(() => loadKernel(mem, image, { ramSize: 96 * MiB, initrd: new Uint8Array(80 * MiB) })).toThrow(/initrd .* does not fit/);
  });
});
