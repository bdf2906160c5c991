/**
 * Local APIC through the vCPU: x2APIC MSRs (TPR, EOI, self-IPI, ICR), the TSC-deadline timer
 * and a one-shot timer waking HLT with deterministic time (replayable: the same instruction
 * counts every run), and the state object.
 */
import { describe, expect, it } from 'vitest';
import { EXIT_HLT } from '../constants';
import { HAVE_NASM, longModeVcpu, nasm } from './test/harness';
import { EXIT_IO } from './regs';
import type { Vcpu } from './vcpu';
import type { AddressSpace } from '@ringzero/mmu-ept';

const ENTRY = 0x100000;

function setupIdt(vcpu: Vcpu, space: AddressSpace, vectors: readonly number[]): void {
  // handler for v: mov al, v; out 0xe9, al; x2APIC EOI (wrmsr 0x80b, 0); iretq
  for (const v of vectors) {
    const h = 0x3000 + v * 32;
    space.write32(0x2000 + v * 16, (h & 0xffff) | (0x10 << 16));
    space.write32(0x2000 + v * 16 + 4, (h & 0xffff0000) | 0x8e00);
    space.writeFrom(h, Uint8Array.from([0x50, 0x51, 0x52, 0xb0, v, 0xe6, 0xe9, 0xb9, 0x0b, 0x08, 0, 0, 0x31, 0xc0, 0x31, 0xd2, 0x0f, 0x30, 0x5a, 0x59, 0x58, 0x48, 0xcf]));
  }
  vcpu.setSregs({ ...vcpu.getSregs(), idt: { base: 0x2000, limit: 0xfff } });
}

function trace(vcpu: Vcpu): { exit: number; seen: number[] } {
  const seen: number[] = [];
  for (;;) {
    const r = vcpu.run(1_000_000);
    if (r === EXIT_IO && vcpu.exit.io.port === 0xe9) {
      seen.push(vcpu.exit.io.data[0]);
      continue;
    }
    return { exit: r, seen };
  }
}

describe.skipIf(!HAVE_NASM)('local APIC', () => {
  it('x2APIC: enable through IA32_APIC_BASE, TPR/PPR, self-IPI, EOI, and #GP on xAPIC-only registers', () => {
    const src = `bits 64
org ${ENTRY}
  mov ecx, 0x1b
  rdmsr
  or eax, 0x400        ; EXTD: x2APIC mode
  wrmsr
  mov ecx, 0x80f       ; SVR
  mov eax, 0x1ff
  xor edx, edx
  wrmsr
  mov ecx, 0x808       ; TPR = 0x50
  mov eax, 0x50
  wrmsr
  mov ecx, 0x83f       ; SELF IPI vector 0x41 (blocked by TPR)
  mov eax, 0x41
  wrmsr
  mov eax, 0x61
  wrmsr                ; and 0x61 (delivered)
  sti
  nop
  nop
  mov ecx, 0x80a       ; PPR
  rdmsr
  mov ebx, eax
  mov ecx, 0x808
  xor eax, eax
  wrmsr                ; TPR = 0: 0x41 is delivered now
  nop
  mov ecx, 0x802       ; APIC ID
  rdmsr
  mov r8d, eax
  hlt`;
    const { vcpu, space } = longModeVcpu(nasm(src));
    setupIdt(vcpu, space, [0x41, 0x61]);
    const t = trace(vcpu);
    expect(t.exit).toBe(EXIT_HLT);
    expect(t.seen).toEqual([0x61, 0x41]);
    expect(vcpu.cpu.lo[3]).toBe(0x50); // PPR while TPR = 0x50 and nothing in service
    expect(vcpu.cpu.lo[8]).toBe(0);
    expect(vcpu.apic.x2apic).toBe(true);
    expect(vcpu.apic.mmioBase()).toBe(-1);
  });

  it('one-shot timer wakes HLT; deterministic time makes the wake-up instruction count exact', () => {
    const src = `bits 64
org ${ENTRY}
  mov rbx, 0xfee00000
  mov dword [rbx + 0xf0], 0x1ff
  mov dword [rbx + 0x3e0], 0xb      ; divide by 1
  mov dword [rbx + 0x320], 0x40     ; one-shot, vector 0x40
  mov dword [rbx + 0x380], 100000   ; 100 us at 1 GHz
  sti
  hlt
  rdtsc
  hlt`;
    const runOnce = (): { seen: number[]; tsc: number; retired: number } => {
      const { vcpu, space } = longModeVcpu(nasm(src));
      // APIC page: map 0xfee00000 (PDPT[3] -> PD at 0xc000) and an xAPIC EOI handler.
      space.write64(0xa000 + 3 * 8, 0xc003, 0);
      for (let i = 0; i < 512; i++) space.write64(0xc000 + i * 8, (((3 * 512 + i) << 21) | 0x83) >>> 0, 0);
      const h = 0x3000;
      space.write32(0x2000 + 0x40 * 16, (h & 0xffff) | (0x10 << 16));
      space.write32(0x2000 + 0x40 * 16 + 4, (h & 0xffff0000) | 0x8e00);
      // mov al, 0x40; out 0xe9, al; mov dword [rbx + 0xb0], 0; iretq
      space.writeFrom(h, Uint8Array.from([0xb0, 0x40, 0xe6, 0xe9, 0xc7, 0x83, 0xb0, 0, 0, 0, 0, 0, 0, 0, 0x48, 0xcf]));
      vcpu.setSregs({ ...vcpu.getSregs(), idt: { base: 0x2000, limit: 0xfff } });
      const t = trace(vcpu);
      expect(t.exit).toBe(EXIT_HLT);
      const tsc = (vcpu.cpu.hi[2] >>> 0) * 2 ** 32 + (vcpu.cpu.lo[0] >>> 0);
      return { seen: t.seen, tsc, retired: vcpu.cpu.retired };
    };
    const a = runOnce();
    const b = runOnce();
    expect(a.seen).toEqual([0x40]);
    // The HLT skipped to the deadline: the TSC (1 GHz) is past 100 us.
    expect(a.tsc).toBeGreaterThanOrEqual(100000);
    expect(a.tsc).toBeLessThan(100000 + 100);
    expect(b).toEqual(a);
  });

  it('TSC-deadline mode fires when the TSC reaches IA32_TSC_DEADLINE', () => {
    const src = `bits 64
org ${ENTRY}
  mov ecx, 0x1b
  rdmsr
  or eax, 0x400
  wrmsr
  mov ecx, 0x80f
  mov eax, 0x1ff
  xor edx, edx
  wrmsr
  mov ecx, 0x832       ; LVT timer: TSC-deadline mode (bits 18:17 = 2), vector 0x50
  mov eax, 0x40050
  wrmsr
  rdtsc
  add eax, 5000
  mov ecx, 0x6e0
  wrmsr
  sti
  hlt
  rdtsc
  hlt`;
    const { vcpu, space } = longModeVcpu(nasm(src));
    setupIdt(vcpu, space, [0x50]);
    const t = trace(vcpu);
    expect(t.exit).toBe(EXIT_HLT);
    expect(t.seen).toEqual([0x50]);
    expect(vcpu.apic.getState().deadline).toBe(-1);
  });
});
