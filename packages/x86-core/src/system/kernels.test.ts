/**
 * Bare-metal kernels (src/system/test/kernels/*.asm, nasm, multiboot) run in our vCPU and under
 * qemu-system-x86_64 -accel tcg; the serial transcripts must match line by line and both must
 * end the same way (isa-debug-exit code, or a shutdown for a triple fault).
 */
import { describe, expect, it } from 'vitest';
import { assemble, HAVE_NASM, HAVE_QEMU, runQemu, runSmp, runVcpu } from './test/harness';

const KERNELS: readonly { name: string; code: number; end: string; marker: string; bios?: boolean }[] = [
  { name: 'rom', code: 0x25, end: 'exit', marker: 'rom: done', bios: true },
  { name: 'pm', code: 0x21, end: 'exit', marker: 'pm: done' },
  { name: 'lm', code: 0x22, end: 'exit', marker: 'lm: done' },
  { name: 'apic', code: 0x24, end: 'exit', marker: 'apic: done' },
  { name: 'tf', code: -1, end: 'shutdown', marker: 'tf: before the triple fault' },
  { name: 'v86', code: 0x26, end: 'exit', marker: 'v86: done' },
  { name: 'task', code: 0x27, end: 'exit', marker: 'task: done' },
  { name: 'io', code: 0x28, end: 'exit', marker: 'io: done' },
  { name: 'dbg', code: 0x29, end: 'exit', marker: 'dbg: done' },
  { name: 'task16', code: 0x2b, end: 'exit', marker: 'task16: done' },
];

if (!HAVE_NASM) console.warn('SKIPPED: nasm not installed: the bare-metal kernels are not assembled or run');
if (HAVE_NASM && !HAVE_QEMU) console.warn('SKIPPED: qemu-system-x86_64 not installed: kernel transcripts are not compared with QEMU');

describe.skipIf(!HAVE_NASM)('bare-metal kernels', () => {
  for (const k of KERNELS) {
    it(`${k.name}: vCPU transcript${HAVE_QEMU ? ' equals QEMU TCG line by line' : ''}`, () => {
      const image = assemble(k.name);
      const ours = runVcpu(image, 50_000_000, {}, undefined, k.bios === true);
      expect(ours.end).toBe(k.end);
      expect(ours.code).toBe(k.code);
      expect(ours.serial).toContain(k.marker);
      if (!HAVE_QEMU) return;
      const peer = runQemu(image, k.bios === true);
      expect(peer.end).toBe(k.end);
      expect(peer.code).toBe(k.code);
      expect(ours.serial.split('\n')).toEqual(peer.serial.split('\n'));
    }, 60_000);
  }

  it(`smp: 3 vCPUs (INIT/SIPI, per-vCPU APICs, an IPI between CPUs)${HAVE_QEMU ? ' equal QEMU TCG -smp 3 line by line' : ''}`, () => {
    const image = assemble('smp');
    const ours = runSmp(image, 3);
    expect(ours.end).toBe('exit');
    expect(ours.code).toBe(0x2c);
    expect(ours.serial).toContain('smp: done');
    if (!HAVE_QEMU) return;
    const peer = runQemu(image, false, 3);
    expect(peer.end).toBe('exit');
    expect(peer.code).toBe(0x2c);
    expect(ours.serial.split('\n')).toEqual(peer.serial.split('\n'));
  }, 60_000);
});
