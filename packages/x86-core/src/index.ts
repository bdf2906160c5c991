/**
 * @ringzero/x86-core: an x86 CPU (16/32/64-bit user-level ISA) in TypeScript.
 *
 * const mem = new FlatMemory(0x10000);
 * mem.bytes.set(code, 0x1000);
 * const cpu = new Cpu(mem);
 * cpu.rip = 0x1000;
 * const exit = cpu.run(1_000_000); // EXIT_SYSCALL, EXIT_EXCEPTION, EXIT_HLT, EXIT_BUDGET...
 */
export { Cpu, canon, hiOf, type CpuFeatures } from './cpu';
// The block-compiler tier: on by default; `cpu.jit = null` / enableJit(cpu, false) / jitDefault.enabled = false turn it off.
export { Jit, Block, enableJit, jitDefault, JIT_CODEGEN } from './jit/jit';
export { FlatMemory, MEM_OK, MEM_PF_BASE, MEM_EXIT, PFEC_P, PFEC_W, PFEC_U, PFEC_I, type CpuMemory } from './memory';
export { Insn } from './insn';
export { decode, DecodeFault } from './decoder';
export { OPS } from './optable';
export { cpuidLeaf } from './exec/misc';
export * from './constants';
export type { OpDef, Exec } from './table';
// The user-mode runner's isomorphic parts (the runner itself is Node-only: "./node").
export { UserMemory, PAGE_SIZE, PROT_NONE, PROT_READ, PROT_WRITE, PROT_EXEC, USER_TOP, type UserMemoryOptions } from './user/memory';
export { parseElf, loadElf, setupStack, ElfError, STACK_TOP, STACK_TOP32, type ElfInfo, type ElfSegment, type StackSetup } from './user/elf';
export * from './system/index';
