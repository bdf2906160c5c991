/**
 * STI and IRET keep the vCPU's slice going when no event can be taken (System.quietBreak): the
 * interrupts a guest sees must not move. A periodic x2APIC timer interrupts a loop of CLI/STI
 * and IRETQ-to-self (Linux's sync_core); with deterministic time every delivery lands on the
 * same retired-instruction count with the shortcut as without it.
 */
import { describe, expect, it } from 'vitest';
import { EXIT_HLT } from '../constants';
import { HAVE_NASM, longModeVcpu, nasm } from './test/harness';
import { EXIT_IO } from './regs';
import type { Vcpu } from './vcpu';

if (!HAVE_NASM) console.warn('SKIPPED: nasm not installed: the STI/IRET slice tests');

const ENTRY = 0x100000;

const SRC = `bits 64
org ${ENTRY}
  mov ecx, 0x1b
  rdmsr
  or eax, 0xc00         ; APIC enable + x2APIC
  wrmsr
  mov ecx, 0x80f        ; SVR: software enable
  mov eax, 0x1ff
  xor edx, edx
  wrmsr
  mov ecx, 0x83e        ; divide by 1
  mov eax, 0xb
  wrmsr
  mov ecx, 0x832        ; LVT timer: periodic, vector 0x30
  mov eax, 0x20030
  wrmsr
  mov ecx, 0x838        ; initial count
  mov eax, 997
  wrmsr
  mov r8d, 3000
again:
  cli
  nop
  sti
  nop
  mov rax, rsp          ; IRETQ to the next instruction, as sync_core does
  push qword 0x18
  push rax
  pushfq
  push qword 0x10
  lea rax, [rel next]
  push rax
  iretq
next:
  dec r8d
  jnz again
  cli
  mov ecx, 0x838        ; stop the timer (initial count 0), then halt for good
  xor eax, eax
  xor edx, edx
  wrmsr
  hlt
`;

function machine(src: string): Vcpu {
  const { vcpu, space } = longModeVcpu(nasm(src));
  // handler for 0x30: push rax/rcx/rdx; mov al, 0x30; out 0xe9, al; x2APIC EOI; pop; iretq
  const h = 0x3000;
  space.write32(0x2000 + 0x30 * 16, (h & 0xffff) | (0x10 << 16));
  space.write32(0x2000 + 0x30 * 16 + 4, (h & 0xffff0000) | 0x8e00);
  space.writeFrom(h, Uint8Array.from([0x50, 0x51, 0x52, 0xb0, 0x30, 0xe6, 0xe9, 0xb9, 0x0b, 0x08, 0, 0, 0x31, 0xc0, 0x31, 0xd2, 0x0f, 0x30, 0x5a, 0x59, 0x58, 0x48, 0xcf]));
  vcpu.setSregs({ ...vcpu.getSregs(), idt: { base: 0x2000, limit: 0xfff } });
  return vcpu;
}

function run(quiet: boolean): { exit: number; seen: number[]; retired: number } {
  const vcpu = machine(SRC);
  if (!quiet) (vcpu as unknown as { sys: { quietBreak: unknown } }).sys.quietBreak = null;
  const seen: number[] = [];
  for (;;) {
    const r = vcpu.run(10_000_000);
    if (r === EXIT_IO && vcpu.exit.io.port === 0xe9) {
      seen.push(vcpu.cpu.retired);
      continue;
    }
    return { exit: r, seen, retired: vcpu.cpu.retired };
  }
}

describe.skipIf(!HAVE_NASM)('STI/IRET without a slice break', () => {
  it('returns EXIT_HLT for HLT with IF = 0 while a periodic timer runs (time does not leap forever)', () => {
    const src = SRC.replace('mov ecx, 0x838        ; stop the timer (initial count 0), then halt for good\n  xor eax, eax\n  xor edx, edx\n  wrmsr\n', '');
    expect(src).not.toBe(SRC);
    const vcpu = machine(src);
    let r = vcpu.run(1_000_000);
    while (r === EXIT_IO) r = vcpu.run(1_000_000);
    expect(r).toBe(EXIT_HLT);
    expect(vcpu.run(1_000_000)).toBe(EXIT_HLT);
  });

  it('delivers every timer interrupt at the same instruction as with a break after each STI/IRET', () => {
    const fast = run(true);
    const slow = run(false);
    expect(fast.exit).toBe(EXIT_HLT);
    // 3000 iterations of ~14 instructions with a 997-instruction period: dozens of interrupts,
    // many of them pending across a CLI..STI window.
    expect(fast.seen.length).toBeGreaterThan(30);
    expect(fast.seen).toEqual(slow.seen);
    expect(fast.retired).toBe(slow.retired);
  });
});
