import { describe, expect, it } from 'vitest';
import { Cpu, FlatMemory, EXIT_SYSCALL, EXIT_EXCEPTION, RAX, RCX, RDX, RSP, UD, GP, DE, PF_VEC, R11 } from './index';

/** Runs raw 64-bit code at 0x1000 with a stack at 0xf000 until it exits. */
function run64(code: number[], setup?: (cpu: Cpu) => void): Cpu {
  const mem = new FlatMemory(0x10000);
  mem.bytes.set(code, 0x1000);
  const cpu = new Cpu(mem);
  cpu.rip = 0x1000;
  cpu.setRegNumber(RSP, 0xf000);
  setup?.(cpu);
  cpu.run(1000);
  return cpu;
}

describe('Cpu basics', () => {
  it('runs mov/add/jcc/loop and stops at SYSCALL with RCX/R11 set as hardware does', () => {
    // mov ecx, 10; xor eax, eax; l: add rax, rcx; loop l; syscall
    const code = [0xb9, 10, 0, 0, 0, 0x31, 0xc0, 0x48, 0x01, 0xc8, 0xe2, 0xfb, 0x0f, 0x05];
    const mem = new FlatMemory(0x10000);
    mem.bytes.set(code, 0x1000);
    const cpu = new Cpu(mem);
    cpu.rip = 0x1000;
    expect(cpu.run(1000)).toBe(EXIT_SYSCALL);
    expect(cpu.regNumber(RAX)).toBe(55);
    expect(cpu.rip).toBe(0x1000 + code.length);
    expect(cpu.regNumber(RCX)).toBe(cpu.rip);
    expect(cpu.regNumber(R11) & 0x42).toBe(0x02); // RFLAGS image: bit 1 set, ZF clear after the last add
  });

  it('64-bit multiply and divide without BigInt', () => {
    // mov rax, -3; mov rcx, 0x100000001; imul rcx; idiv rcx; syscall
    const cpu = run64([0x48, 0xc7, 0xc0, 0xfd, 0xff, 0xff, 0xff, 0x48, 0xb9, 1, 0, 0, 0, 1, 0, 0, 0, 0x48, 0xf7, 0xe9, 0x48, 0xf7, 0xf9, 0x0f, 0x05]);
    expect(cpu.regNumber(RAX)).toBe(-3);
    expect(cpu.regNumber(RDX)).toBe(0);
  });

  it('raises #DE, #UD and #PF as faults with RIP at the instruction', () => {
    let cpu = run64([0x31, 0xc9, 0xf7, 0xf1]); // xor ecx,ecx; div ecx
    expect(cpu.faultVector).toBe(DE);
    expect(cpu.rip).toBe(0x1002);
    cpu = run64([0x0f, 0x0b]);
    expect(cpu.faultVector).toBe(UD);
    cpu = run64([0xc5, 0xf8, 0x77]); // vzeroupper: VEX is #UD (no AVX advertised)
    expect(cpu.faultVector).toBe(UD);
    cpu = run64([0x48, 0xb8, 0, 0, 0, 0, 1, 0, 0, 0, 0x8b, 0x00]); // mov rax, 1<<32; mov eax,[rax]
    expect(cpu.faultVector).toBe(PF_VEC);
    expect(cpu.faultAddress).toBe(2 ** 32);
    expect(cpu.rip).toBe(0x100a);
    cpu = run64([0x48, 0xb8, 0, 0, 0, 0, 0, 0x80, 0, 0, 0x8b, 0x00]); // non-canonical -> #GP(0)
    expect(cpu.faultVector).toBe(GP);
  });

  it('limits instructions to 15 bytes (#GP)', () => {
    const cpu = run64([...new Array<number>(15).fill(0x66), 0x90]);
    expect(cpu.faultVector).toBe(GP);
    const ok = run64([...new Array<number>(14).fill(0x66), 0x90, 0x0f, 0x0b]);
    expect(ok.faultVector).toBe(UD);
    expect(ok.rip).toBe(0x100f);
  });

  it('exits with EXIT_EXCEPTION rather than throwing on fetch outside memory', () => {
    const mem = new FlatMemory(0x100);
    const cpu = new Cpu(mem);
    cpu.rip = 0x5000;
    expect(cpu.run(10)).toBe(EXIT_EXCEPTION);
    expect(cpu.faultVector).toBe(PF_VEC);
  });
});
