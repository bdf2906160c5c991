/**
 * Test harness for the bare-metal kernels in ./kernels: assembles them with nasm, runs them
 * under qemu-system-x86_64 (TCG, multiboot via -kernel, COM1 on stdio, isa-debug-exit at
 * 0xf4) and in our vCPU with a minimal machine (the same COM1 and exit ports), and returns
 * both serial transcripts for a line-by-line comparison. Test-only (Node).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AddressSpace, HostMemory } from '@ringzero/mmu-ept';
import { Smp } from '../smp';
import { Vcpu, type VcpuOptions } from '../vcpu';
import { EXIT_HLT, EXIT_IO, EXIT_MMIO, EXIT_NAMES, EXIT_SHUTDOWN } from '../regs';

export const KERNEL_DIR: string = join(dirname(fileURLToPath(import.meta.url)), 'kernels');

function has(cmd: string): boolean {
  return spawnSync(cmd, ['--version'], { stdio: 'ignore' }).status === 0;
}

export const HAVE_NASM: boolean = has('nasm');
export const HAVE_QEMU: boolean = has('qemu-system-x86_64');

/** Assembles kernels/<name>.asm into a flat multiboot image. */
export function assemble(name: string): Uint8Array {
  const dir = mkdtempSync(join(tmpdir(), 'rz-kernel-'));
  try {
    const out = join(dir, `${name}.bin`);
    execFileSync('nasm', ['-f', 'bin', '-w-number-overflow', '-I', KERNEL_DIR + '/', '-o', out, join(KERNEL_DIR, `${name}.asm`)], { stdio: 'pipe' });
    return new Uint8Array(readFileSync(out));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export interface KernelRun {
  serial: string;
  /** isa-debug-exit code written by the kernel, or -1 (shutdown / timeout). */
  code: number;
  /** How the run ended: 'exit', 'shutdown', 'timeout', or an exit name. */
  end: string;
}

/** Runs the image under qemu-system-x86_64 -accel tcg (as a multiboot kernel, or as the firmware with asBios). */
export function runQemu(image: Uint8Array, asBios = false, cpus = 1): KernelRun {
  const dir = mkdtempSync(join(tmpdir(), 'rz-qemu-'));
  try {
    const k = join(dir, 'k.bin');
    writeFileSync(k, image);
    const r = spawnSync(
      'qemu-system-x86_64',
      ['-accel', 'tcg', '-machine', 'pc', '-m', '64', '-display', 'none', '-monitor', 'none', '-serial', 'stdio', '-no-reboot', '-device', 'isa-debug-exit,iobase=0xf4,iosize=4', '-smp', String(cpus), asBios ? '-bios' : '-kernel', k],
      { timeout: 30_000, encoding: 'latin1', stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const serial = r.stdout ?? '';
    if (r.error != null) return { serial, code: -1, end: 'timeout' };
    const st = r.status ?? 0;
    // isa-debug-exit: status = (code << 1) | 1; a triple fault with -no-reboot exits with 0.
    if ((st & 1) === 1) return { serial, code: st >> 1, end: 'exit' };
    return { serial, code: -1, end: 'shutdown' };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Loads a multiboot (a.out kludge) image into a fresh address space and vCPU (or `cpus` vCPUs: Smp). */
export function loadMultiboot(image: Uint8Array, options: VcpuOptions = {}, cpus = 1): { vcpu: Vcpu; space: AddressSpace; vcpus: readonly Vcpu[] } {
  const dv = new DataView(image.buffer, image.byteOffset, image.byteLength);
  let off = -1;
  for (let i = 0; i + 32 <= Math.min(image.length, 8192); i += 4) {
    if (dv.getUint32(i, true) === 0x1badb002) {
      off = i;
      break;
    }
  }
  if (off < 0) throw new Error('no multiboot header');
  const headerAddr = dv.getUint32(off + 12, true);
  const loadAddr = dv.getUint32(off + 16, true);
  const entry = dv.getUint32(off + 28, true);
  const start = off - (headerAddr - loadAddr);
  const host = new HostMemory();
  const space = new AddressSpace(host);
  space.addRam(0, 64 * 1024 * 1024);
  space.writeFrom(loadAddr, image.subarray(start));
  // A flat GDT at 0x500 (like the GRUB/QEMU handoff: 32-bit code, data).
  space.write64(0x500, 0, 0);
  space.write64(0x508, 0x0000ffff, 0x00cf9b00);
  space.write64(0x510, 0x0000ffff, 0x00cf9300);
  const vcpus = cpus === 1 ? [new Vcpu(space, options)] : new Smp(space, cpus, options).vcpus;
  const vcpu = vcpus[0];
  const seg = (selector: number, type: number): Record<string, number> => ({ selector, base: 0, limit: 0xffffffff, type, present: 1, dpl: 0, db: 1, s: 1, l: 0, g: 1, avl: 0, unusable: 0 });
  const data = seg(0x10, 3);
  vcpu.setSregs({
    cs: seg(0x08, 0xb) as never, ds: data as never, es: data as never, fs: data as never, gs: data as never, ss: data as never,
    tr: { selector: 0, base: 0, limit: 0xffff, type: 11, present: 1, dpl: 0, db: 0, s: 0, l: 0, g: 0, avl: 0, unusable: 0 },
    ldt: { selector: 0, base: 0, limit: 0, type: 2, present: 0, dpl: 0, db: 0, s: 0, l: 0, g: 0, avl: 0, unusable: 1 },
    gdt: { base: 0x500, limit: 0x17 },
    idt: { base: 0, limit: 0 },
    cr0: 0x11, cr2: 0, cr3: 0, cr4: 0, efer: 0, apicBase: 0xfee00900,
  });
  vcpu.setRegs({ rax: 0x2badb002, rbx: 0x9000, rcx: 0, rdx: 0, rsi: 0, rdi: 0, rsp: 0x7000, rbp: 0, rip: entry, rflags: 2 });
  return { vcpu, space, vcpus };
}

/** A vCPU at the architectural reset state with a 64 KiB firmware image at 0xf0000 and 0xffff0000. */
export function loadRom(rom: Uint8Array, options: VcpuOptions = {}): { vcpu: Vcpu; space: AddressSpace } {
  if (rom.length !== 0x10000) throw new Error('firmware image must be 64 KiB');
  const space = new AddressSpace(new HostMemory());
  space.addRam(0, 0x100000);
  space.addRam(0x100000, 63 * 1024 * 1024);
  space.addRam(0xffff0000, 0x10000);
  space.writeFrom(0xf0000, rom);
  space.writeFrom(0xffff0000, rom);
  return { vcpu: new Vcpu(space, options), space };
}

/** A device hook for vCPU runs: return a value for IN (or undefined for 0xff). */
export type PortHook = (port: number, size: number, input: boolean, value: number) => number | undefined;

/** Runs the image in our vCPU with COM1 and isa-debug-exit; at most maxInstructions. */
export function runVcpu(image: Uint8Array, maxInstructions = 50_000_000, options: VcpuOptions = {}, hook?: PortHook, asBios = false): KernelRun & { vcpu: Vcpu } {
  const { vcpu } = asBios ? loadRom(image, options) : loadMultiboot(image, options);
  let serial = '';
  let left = maxInstructions;
  for (;;) {
    const before = vcpu.cpu.retired;
    const r = vcpu.run(Math.min(left, 5_000_000));
    left -= vcpu.cpu.retired - before;
    if (r === EXIT_IO) {
      const io = vcpu.exit.io;
      for (let k = 0; k < io.count; k++) {
        let v = 0;
        for (let b = 0; b < io.size; b++) v |= io.data[k * io.size + b] << (8 * b);
        let res = hook?.(io.port, io.size, io.input, v);
        if (!io.input) {
          if (io.port === 0x3f8) serial += String.fromCharCode(v & 0xff);
          else if (io.port === 0xf4) return { serial, code: v >>> 0, end: 'exit', vcpu };
          continue;
        }
        if (res === undefined) res = io.port === 0x3fd ? 0x60 : 0xffffffff;
        for (let b = 0; b < io.size; b++) io.data[k * io.size + b] = res >>> (8 * b);
      }
      continue;
    }
    if (r === EXIT_MMIO) {
      vcpu.exit.mmio.data.fill(0xff);
      continue;
    }
    if (r === EXIT_SHUTDOWN) return { serial, code: -1, end: 'shutdown', vcpu };
    if (r === EXIT_HLT) return { serial, code: -1, end: 'hlt', vcpu };
    if (left <= 0) return { serial, code: -1, end: 'timeout', vcpu };
    if (r !== 1) return { serial, code: -1, end: `${EXIT_NAMES[r] ?? r}: ${vcpu.exit.message}`, vcpu };
  }
}

/**
 * Runs a multiboot image on `cpus` vCPUs (Smp: the BSP from the loader state, the others
 * waiting for a SIPI), in turn, 10,000 instructions each; COM1 and isa-debug-exit as in runVcpu.
 */
export function runSmp(image: Uint8Array, cpus: number, maxInstructions = 50_000_000): KernelRun & { vcpus: readonly Vcpu[] } {
  const { vcpus } = loadMultiboot(image, {}, cpus);
  let serial = '';
  let left = maxInstructions;
  for (;;) {
    let progress = false;
    for (const v of vcpus) {
      const start = v.cpu.retired;
      for (;;) {
        const r = v.run(10_000 - (v.cpu.retired - start));
        if (v.cpu.retired !== start) progress = true;
        if (r === EXIT_IO) {
          progress = true;
          const io = v.exit.io;
          for (let k = 0; k < io.count; k++) {
            let val = 0;
            for (let b = 0; b < io.size; b++) val |= io.data[k * io.size + b] << (8 * b);
            if (!io.input) {
              if (io.port === 0x3f8) serial += String.fromCharCode(val & 0xff);
              else if (io.port === 0xf4) return { serial, code: val >>> 0, end: 'exit', vcpus };
              continue;
            }
            const res = io.port === 0x3fd ? 0x60 : 0xffffffff;
            for (let b = 0; b < io.size; b++) io.data[k * io.size + b] = res >>> (8 * b);
          }
          continue;
        }
        if (r === EXIT_MMIO) {
          v.exit.mmio.data.fill(0xff);
          continue;
        }
        if (r === EXIT_SHUTDOWN) return { serial, code: -1, end: 'shutdown', vcpus };
        if (r === EXIT_HLT || r === 1) break;
        return { serial, code: -1, end: `${EXIT_NAMES[r] ?? r}: ${v.exit.message}`, vcpus };
      }
      left -= v.cpu.retired - start;
    }
    if (!progress) return { serial, code: -1, end: 'hlt', vcpus };
    if (left <= 0) return { serial, code: -1, end: 'timeout', vcpus };
  }
}

/** Assembles a snippet (give it its own `bits`/`org` lines) into flat bytes. */
export function nasm(src: string): Uint8Array {
  const dir = mkdtempSync(join(tmpdir(), 'rz-nasm-'));
  try {
    const i = join(dir, 'a.asm');
    const o = join(dir, 'a.bin');
    writeFileSync(i, src);
    execFileSync('nasm', ['-f', 'bin', '-w-number-overflow', '-o', o, i], { stdio: 'pipe' });
    return new Uint8Array(readFileSync(o));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const flat = (selector: number, type: number, l: number, db: number): Record<string, number> => ({ selector, base: 0, limit: 0xffffffff, type, present: 1, dpl: 0, db, s: 1, l, g: 1, avl: 0, unusable: 0 });

/**
 * A 64-bit machine in the shape @ringzero/machine's boot loader produces (bootCpuState
 * 'long64'): GDT at 0x500 (code 0x10, data 0x18, TSS 0x20), identity page tables for the first
 * 1 GiB at 0x9000 (2 MiB pages), RSP 0x8ff0, code at `entry`.
 */
export function longModeVcpu(code: Uint8Array, entry: number = 0x100000, options: VcpuOptions = {}, ramSize: number = 16 * 1024 * 1024): { vcpu: Vcpu; space: AddressSpace } {
  const space = new AddressSpace(new HostMemory());
  space.addRam(0, ramSize);
  space.writeFrom(entry, code);
  const gdt = [[0, 0], [0, 0], [0x0000ffff, 0x00af9b00], [0x0000ffff, 0x00cf9300], [0x67, 0x00008b00], [0, 0]];
  gdt.forEach(([lo, hi], i) => space.write64(0x500 + i * 8, lo, hi));
  space.write64(0x9000, 0xa003, 0);
  space.write64(0xa000, 0xb003, 0);
  for (let i = 0; i < 512; i++) space.write64(0xb000 + i * 8, ((i << 21) | 0x83) >>> 0, 0);
  const vcpu = new Vcpu(space, options);
  const data = flat(0x18, 3, 0, 1);
  vcpu.loadBootState({
    version: 1,
    mode: 'long64',
    regs: { rax: 0, rbx: 0, rcx: 0, rdx: 0, rsi: 0, rdi: 0, rsp: 0x8ff0, rbp: 0, rip: entry, rflags: 2 },
    sregs: {
      cs: flat(0x10, 0xb, 1, 0) as never, ds: data as never, es: data as never, fs: data as never, gs: data as never, ss: data as never,
      tr: { selector: 0x20, base: 0, limit: 0x67, type: 0xb, present: 1, dpl: 0, db: 0, s: 0, l: 0, g: 0, avl: 0, unusable: 0 },
      ldt: { selector: 0, base: 0, limit: 0, type: 2, present: 0, dpl: 0, db: 0, s: 0, l: 0, g: 0, avl: 0, unusable: 1 },
      gdt: { base: 0x500, limit: 0x2f },
      idt: { base: 0x520, limit: 0 },
      cr0: 0x80000011, cr2: 0, cr3: 0x9000, cr4: 0x20, efer: 0x500, apicBase: 0xfee00900,
    },
  });
  return { vcpu, space };
}
