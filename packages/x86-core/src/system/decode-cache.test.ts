/**
 * The vCPU's decode cache is keyed by host frame and kept across mapping changes (CR3, INVLPG,
 * CPL). These tests pin what that must not break: a write through another linear alias of a
 * code frame is seen at once, and a remapped linear page (PDE changed + INVLPG) runs the new
 * frame's code, not the decodes of the old one.
 */
import { describe, expect, it } from 'vitest';
import { EXIT_HLT, RAX, RBX } from '../constants';
import { HAVE_NASM, longModeVcpu, nasm } from './test/harness';

if (!HAVE_NASM) console.warn('SKIPPED: nasm not installed: the decode-cache tests (snippets are assembled with nasm)');

const ENTRY = 0x100000;
const PD = 0xb000; // the harness's page directory: 2 MiB identity pages for the first GiB

describe.skipIf(!HAVE_NASM)('frame-keyed decode cache', () => {
  it('sees code rewritten through another linear alias of the same frame', () => {
    // Linear 16 MiB + x aliases physical x (PDE 8 -> frame 0); the code patches its own
    // immediate through the alias between two runs of the same instruction.
    const src = [
      'xor ebx, ebx',
      'again:',
      'target: mov eax, 0x11111111',
      'inc ebx',
      'cmp ebx, 2',
      'je done',
      'mov dword [target + 1 + 0x1000000], 0x22222222',
      'jmp again',
      'done: hlt',
    ].join('\n');
    const { vcpu, space } = longModeVcpu(nasm(`bits 64\norg ${ENTRY}\n${src}\n`));
    space.write64(PD + 8 * 8, 0x83, 0);
    expect(vcpu.run(1000)).toBe(EXIT_HLT);
    expect(vcpu.cpu.lo[RAX]).toBe(0x22222222);
  });

  it('runs the new code after the guest remaps a linear page and flushes it with INVLPG', () => {
    // Linear 18 MiB (PDE 9) -> physical 4 MiB (code A), then -> 6 MiB (code B) + INVLPG.
    const src = [
      'call 0x1200000',
      'mov ebx, eax',
      `mov rax, 0x600083`,
      `mov [${PD + 9 * 8}], rax`,
      'invlpg [0x1200000]',
      'call 0x1200000',
      'hlt',
    ].join('\n');
    const { vcpu, space } = longModeVcpu(nasm(`bits 64\norg ${ENTRY}\n${src}\n`));
    space.writeFrom(0x400000, nasm('bits 64\nmov eax, 0xaaaa\nret\n'));
    space.writeFrom(0x600000, nasm('bits 64\nmov eax, 0xbbbb\nret\n'));
    space.write64(PD + 9 * 8, 0x400083, 0);
    expect(vcpu.run(1000)).toBe(EXIT_HLT);
    expect([vcpu.cpu.lo[RBX], vcpu.cpu.lo[RAX]]).toEqual([0xaaaa, 0xbbbb]);
    // And back (the machine rewrites the PDE and reloads the state, which flushes the TLB): the
    // first frame's cached decodes are still right for it.
    space.write64(PD + 9 * 8, 0x400083, 0);
    vcpu.setSregs(vcpu.getSregs());
    vcpu.setRegs({ ...vcpu.getRegs(), rip: ENTRY });
    vcpu.halted = false;
    expect(vcpu.run(1000)).toBe(EXIT_HLT);
    expect([vcpu.cpu.lo[RBX], vcpu.cpu.lo[RAX]]).toEqual([0xaaaa, 0xbbbb]);
  });
});
