/**
 * The JIT inside the vCPU (frame-keyed decode cache, paging): every block compiled on its first
 * run (hot = 1), against the same program with the JIT off. Self-modifying code through another
 * linear alias of the code frame, a remapped code page (PDE + INVLPG), and retired counts.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { EXIT_HLT, RAX, RBX, RCX } from '../constants';
import { EXIT_IO, EXIT_MMIO, EXIT_EPT_VIOLATION } from '../system/regs';
import { HAVE_NASM, longModeVcpu, nasm } from '../system/test/harness';
import type { Vcpu } from '../system/vcpu';
import { Jit } from './jit';

if (!HAVE_NASM) console.warn('SKIPPED: nasm not installed: the JIT system-mode tests (snippets are assembled with nasm)');

const ENTRY = 0x100000;
const PD = 0xb000;

function withJit(vcpu: Vcpu, on: boolean): Vcpu {
  if (on) {
    const j = new Jit(vcpu.cpu);
    j.hot = 1;
    vcpu.cpu.jit = j;
  } else vcpu.cpu.jit = null;
  return vcpu;
}

describe.skipIf(!HAVE_NASM)('JIT in system mode', () => {
  it('a compiled loop that patches its own code through a linear alias sees every patch', () => {
    // 100 rounds; each writes round number into the imm32 of `add` through the alias at 16 MiB.
    const src = [
      'xor eax, eax',
      'mov ecx, 100',
      'again:',
      'mov [target + 1 + 0x1000000], ecx',
      'target: add eax, 0x11111111',
      'dec ecx',
      'jnz again',
      'hlt',
    ].join('\n');
    const results: number[][] = [];
    for (const on of [false, true]) {
      const { vcpu, space } = longModeVcpu(nasm(`bits 64\norg ${ENTRY}\n${src}\n`));
      space.write64(PD + 8 * 8, 0x83, 0);
      withJit(vcpu, on);
      expect(vcpu.run(100000)).toBe(EXIT_HLT);
      results.push([vcpu.cpu.lo[RAX], vcpu.cpu.lo[RCX], vcpu.cpu.retired]);
    }
    expect(results[1][0]).toBe(5050);
    expect(results[1]).toEqual(results[0]);
  });

  it('random code at CPL 0 in long mode: the same exits, RIP, registers, flags and retired counts (fast-check)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 96 }), fc.integer({ min: 1, max: 300 }), (bytes, slice) => {
        const trace: string[][] = [[], []];
        for (const on of [false, true]) {
          const { vcpu } = longModeVcpu(bytes, ENTRY, {}, 4 * 1024 * 1024);
          withJit(vcpu, on);
          const cpu = vcpu.cpu;
          for (let i = 0; i < 20; i++) {
            const r = vcpu.run(slice);
            trace[on ? 1 : 0].push(`${r} rip ${cpu.rip} n ${cpu.retired} f ${cpu.getFlags()} ${Array.from(cpu.lo).join(',')} ${Array.from(cpu.hi).join(',')}`);
            if (r === EXIT_IO || r === EXIT_MMIO || r === EXIT_EPT_VIOLATION || r === 1) continue;
            break;
          }
        }
        expect(trace[1]).toEqual(trace[0]);
      }),
      { numRuns: 100 },
    );
  });

  it('runs the new code after a remap + INVLPG, and the old frame again after the switch back', () => {
    const src = ['call 0x1200000', 'mov ebx, eax', 'mov rax, 0x600083', `mov [${PD + 9 * 8}], rax`, 'invlpg [0x1200000]', 'call 0x1200000', 'hlt'].join('\n');
    const { vcpu, space } = longModeVcpu(nasm(`bits 64\norg ${ENTRY}\n${src}\n`));
    withJit(vcpu, true);
    space.writeFrom(0x400000, nasm('bits 64\nmov eax, 0xaaaa\nret\n'));
    space.writeFrom(0x600000, nasm('bits 64\nmov eax, 0xbbbb\nret\n'));
    space.write64(PD + 9 * 8, 0x400083, 0);
    expect(vcpu.run(1000)).toBe(EXIT_HLT);
    expect([vcpu.cpu.lo[RBX], vcpu.cpu.lo[RAX]]).toEqual([0xaaaa, 0xbbbb]);
    space.write64(PD + 9 * 8, 0x400083, 0);
    vcpu.setSregs(vcpu.getSregs());
    vcpu.setRegs({ ...vcpu.getRegs(), rip: ENTRY });
    vcpu.halted = false;
    expect(vcpu.run(1000)).toBe(EXIT_HLT);
    expect([vcpu.cpu.lo[RBX], vcpu.cpu.lo[RAX]]).toEqual([0xaaaa, 0xbbbb]);
  });
});
