/**
 * Debug registers where QEMU TCG is no oracle (the dbg kernel in kernels.test.ts compares the
 * rest with QEMU): general detect (QEMU TCG ignores DR7.GD), the RF value pushed for faults
 * (QEMU pushes the current RF), and the vCPU's own API and robustness. Expected values are the
 * SDM's (vol. 3, 17.2.4, 17.3.1.1).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { AddressSpace } from '@ringzero/mmu-ept';
import { EXIT_BUDGET, RAX, RCX, RDX, RSI } from '../constants';
import { HAVE_NASM, longModeVcpu, nasm } from './test/harness';
import { EXIT_NAMES, EXIT_SHUTDOWN } from './regs';
import type { Vcpu } from './vcpu';

if (!HAVE_NASM) console.warn('SKIPPED: nasm not installed: the debug-register tests (snippets are assembled with nasm)');

const ENTRY = 0x100000;
const IDT = 0x2000;

/** 64-bit IDT at IDT with the given vectors -> handler addresses (interrupt gates). */
function idt(vcpu: Vcpu, space: AddressSpace, gates: Record<number, number>): void {
  for (const [v, h] of Object.entries(gates)) {
    const at = IDT + Number(v) * 16;
    space.write32(at, (h & 0xffff) | (0x10 << 16));
    space.write32(at + 4, (h & 0xffff0000) | 0x8e00);
    space.write32(at + 8, 0);
    space.write32(at + 12, 0);
  }
  vcpu.setSregs({ ...vcpu.getSregs(), idt: { base: IDT, limit: 256 * 16 - 1 } });
}

function run(vcpu: Vcpu): number {
  for (;;) {
    const r = vcpu.run(100_000);
    if (r !== 1) return r; // EXIT_IO etc. are not expected here
  }
}

describe.skipIf(!HAVE_NASM)('debug registers (SDM where QEMU TCG differs)', () => {
  it('general detect: MOV DR with DR7.GD is a #DB fault with DR6.BD, RF = 1 pushed, GD clear in the handler', () => {
    const main = nasm(`bits 64\norg ${ENTRY}\nmov rax, 0x2000\nmov dr7, rax\ngd: mov rbx, dr0\nhlt\n`);
    const handler = nasm('bits 64\norg 0x5000\nmov rax, dr6\nmov rcx, dr7\nmov rdx, [rsp]\nmov rsi, [rsp + 16]\nadd qword [rsp], 3\niretq\n');
    const { vcpu, space } = longModeVcpu(main);
    space.writeFrom(0x5000, handler);
    idt(vcpu, space, { 1: 0x5000 });
    expect(EXIT_NAMES[run(vcpu)]).toBe('hlt');
    const cpu = vcpu.cpu;
    expect(cpu.lo[RAX] >>> 0).toBe(0xffff2ff0); // BD
    expect(cpu.lo[RCX] >>> 0).toBe(0x400); // GD cleared on delivery
    expect(cpu.lo[RDX]).toBe(ENTRY + 8); // the MOV DR itself (fault): after mov eax, imm32 (5) and mov dr7, rax (3)
    expect((cpu.lo[RSI] >>> 16) & 1).toBe(1); // faults push RF = 1
    expect(cpu.lo[3]).toBe(0); // RBX never written
  });

  it('RF pushed: 1 for a fault (#UD), 0 for a trap (#BP) and for an instruction breakpoint', () => {
    const main = nasm(`bits 64\norg ${ENTRY}\nud2\nmov rdi, rsi\nint3\nmov r8, rsi\nmov rax, brk\nmov dr0, rax\nmov rax, 1\nmov dr7, rax\nbrk: nop\nmov r9, rsi\nhlt\n`);
    // One handler for all three: records the pushed RFLAGS; skips UD2 (2 bytes) for #UD only.
    const ud = nasm('bits 64\norg 0x5000\nmov rsi, [rsp + 16]\nadd qword [rsp], 2\niretq\n');
    const other = nasm('bits 64\norg 0x5100\nmov rsi, [rsp + 16]\nbts qword [rsp + 16], 16\niretq\n');
    const { vcpu, space } = longModeVcpu(main);
    space.writeFrom(0x5000, ud);
    space.writeFrom(0x5100, other);
    idt(vcpu, space, { 6: 0x5000, 3: 0x5100, 1: 0x5100 });
    expect(EXIT_NAMES[run(vcpu)]).toBe('hlt');
    const cpu = vcpu.cpu;
    expect((cpu.lo[7] >>> 16) & 1).toBe(1); // #UD: RF = 1
    expect((cpu.lo[8] >>> 16) & 1).toBe(0); // #BP: RF as it was (0)
    expect((cpu.lo[9] >>> 16) & 1).toBe(0); // instruction breakpoint: RF as it was (0)
    expect(vcpu.getDebugRegs().dr6).toBe(0xffff0ff1);
    expect((cpu.getFlags() >>> 16) & 1).toBe(0); // RF cleared once the NOP ran
  });

  it('a breakpoint on the #DB handler itself never hangs: each delivery counts against the budget', () => {
    const main = nasm(`bits 64\norg ${ENTRY}\nmov rax, 0x5000\nmov dr0, rax\nmov rax, 1\nmov dr7, rax\nnop\nint1\nhlt\n`);
    const { vcpu, space } = longModeVcpu(main);
    space.writeFrom(0x5000, Uint8Array.from([0x48, 0xcf]));
    idt(vcpu, space, { 1: 0x5000 });
    const r = vcpu.run(5000);
    expect([EXIT_BUDGET, EXIT_SHUTDOWN]).toContain(r);
  });

  it('debug registers survive getDebugRegs/setDebugRegs (64-bit addresses exact) and bad input is a TypeError', () => {
    const { vcpu } = longModeVcpu(Uint8Array.from([0xf4]));
    vcpu.setDebugRegs({ db: ['0xffffffff81000000', 0x1234, 0, '0x7fffffffffff'], dr6: 0, dr7: 0x000d0003 });
    const d = vcpu.getDebugRegs();
    // (sign-extended values come back as negative numbers when exact, as in getRegs)
    expect(d).toEqual({ version: 1, db: [-0x7f000000, 0x1234, 0, 0x7fffffffffff], dr6: 0xffff0ff0, dr7: 0x000d0403 });
    vcpu.setDebugRegs(d);
    expect(vcpu.getDebugRegs()).toEqual(d);
    fc.assert(
      fc.property(fc.anything(), (x) => {
        try {
          vcpu.setDebugRegs(x as never);
        } catch (e) {
          expect(e).toBeInstanceOf(TypeError);
        }
      }),
      { numRuns: 200 },
    );
    expect(EXIT_NAMES[vcpu.run(10)]).toBeDefined();
  });

  it('an instruction breakpoint on a high-half (kernel) address in 64-bit mode', () => {
    // Map linear 0xffff800000000000 -> the same 2 MiB identity pages (PML4[256] = PDPT at 0xa000).
    const main = nasm(`bits 64\norg ${ENTRY}\nmov rax, 0xffff800000000000 + hi\nmov dr0, rax\nmov rax, 1\nmov dr7, rax\nmov rax, 0xffff800000000000 + hi\njmp rax\nhi: nop\nhlt\n`);
    const handler = nasm('bits 64\norg 0x5000\nmov rsi, [rsp]\nbts qword [rsp + 16], 16\niretq\n');
    const { vcpu, space } = longModeVcpu(main);
    space.write64(0x9000 + 256 * 8, 0xa003, 0);
    space.writeFrom(0x5000, handler);
    idt(vcpu, space, { 1: 0x5000 });
    expect(EXIT_NAMES[run(vcpu)]).toBe('hlt');
    const regs = vcpu.getRegs();
    expect(regs.rsi).toBe(regs.rax);
    expect(Number(regs.rax)).toBeLessThan(-(2 ** 46));
  });
});


