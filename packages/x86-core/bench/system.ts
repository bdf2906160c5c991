/**
 * System benchmarks of the vCPU (run with: npx tsx --conditions=@ringzero/source bench/system.ts).
 * One JSON object per line:
 * - exits/s of a tight OUT loop and of an MMIO read loop (the cost of the vCPU/machine boundary);
 * - interrupts delivered/s (self-IPI through the xAPIC, handler with EOI and IRETQ);
 * - MIPS of an integer loop in long mode and in 32-bit protected mode with paging, next to the
 *   same loop on the CPU over flat memory (the cost of paging and of the vCPU loop).
 * BENCH_SCALE multiplies the iteration counts.
 */
import { AddressSpace, HostMemory } from '@ringzero/mmu-ept';
import { Cpu, EXIT_BUDGET, PROT_EXEC, PROT_READ, PROT_WRITE, RSP, UserMemory } from '../src/index';
import { EXIT_IO, EXIT_MMIO, Vcpu } from '../src/system/index';

const SCALE = Number(process.env.BENCH_SCALE ?? '1') || 1;
const ENTRY = 0x100000;

function emit(name: string, value: number, unit: string, extra: Record<string, unknown> = {}): void {
  console.log(JSON.stringify({ name, value: Math.round(value * 100) / 100, unit, ...extra }));
}

const flatSeg = (selector: number, type: number, l: number, db: number): never => ({ selector, base: 0, limit: 0xffffffff, type, present: 1, dpl: 0, db, s: 1, l, g: 1, avl: 0, unusable: 0 }) as never;

/** A long-mode vCPU with identity tables for 0..1 GiB and the APIC page, code at ENTRY. */
function longVcpu(code: readonly number[]): { vcpu: Vcpu; space: AddressSpace } {
  const space = new AddressSpace(new HostMemory());
  space.addRam(0, 16 * 1024 * 1024);
  space.writeFrom(ENTRY, Uint8Array.from(code));
  space.write64(0x500 + 0x10, 0x0000ffff, 0x00af9b00);
  space.write64(0x500 + 0x18, 0x0000ffff, 0x00cf9300);
  space.write64(0x9000, 0xa003, 0);
  space.write64(0xa000, 0xb003, 0);
  space.write64(0xa000 + 3 * 8, 0xc003, 0);
  for (let i = 0; i < 512; i++) {
    space.write64(0xb000 + i * 8, ((i << 21) | 0x83) >>> 0, 0);
    space.write64(0xc000 + i * 8, (((3 * 512 + i) << 21) | 0x83) >>> 0, 0);
  }
  const vcpu = new Vcpu(space);
  const data = flatSeg(0x18, 3, 0, 1);
  vcpu.setSregs({
    cs: flatSeg(0x10, 0xb, 1, 0), ds: data, es: data, fs: data, gs: data, ss: data,
    tr: { selector: 0, base: 0, limit: 0x67, type: 0xb, present: 1, dpl: 0, db: 0, s: 0, l: 0, g: 0, avl: 0, unusable: 0 },
    ldt: { selector: 0, base: 0, limit: 0, type: 2, present: 0, dpl: 0, db: 0, s: 0, l: 0, g: 0, avl: 0, unusable: 1 },
    gdt: { base: 0x500, limit: 0x1f }, idt: { base: 0x2000, limit: 0xfff },
    cr0: 0x80000011, cr2: 0, cr3: 0x9000, cr4: 0x20, efer: 0x500, apicBase: 0xfee00900,
  });
  vcpu.setRegs({ rax: 0, rbx: 0, rcx: 0, rdx: 0, rsi: 0, rdi: 0x200000, rsp: 0x8ff0, rbp: 0, rip: ENTRY, rflags: 2 });
  return { vcpu, space };
}

function time(fn: () => number): { n: number; s: number } {
  const t0 = performance.now();
  const n = fn();
  return { n, s: (performance.now() - t0) / 1000 };
}

// ---------------------------------------------------------------- exits

{
  const { vcpu } = longVcpu([0xe6, 0x80, 0xeb, 0xfc]); // l: out 0x80, al; jmp l
  const N = 300_000 * SCALE;
  for (let i = 0; i < 10_000; i++) vcpu.run();
  const r = time(() => {
    let n = 0;
    while (n < N) if (vcpu.run() === EXIT_IO) n++;
    return n;
  });
  emit('exits/s, OUT loop (port I/O exit + complete + rerun)', r.n / r.s, 'exits/s');
}

{
  // mov rbx, 0xd0000000; l: mov eax, [rbx]; jmp l
  const { vcpu, space } = longVcpu([0x48, 0xbb, 0, 0, 0, 0xd0, 0, 0, 0, 0, 0x8b, 0x03, 0xeb, 0xfc]);
  space.addMmio(0xd0000000, 0x1000, 1);
  const N = 200_000 * SCALE;
  for (let i = 0; i < 10_000; i++) vcpu.run();
  const r = time(() => {
    let n = 0;
    while (n < N) {
      if (vcpu.run() === EXIT_MMIO) {
        vcpu.exit.mmio.data[0] = n & 0xff;
        n++;
      }
    }
    return n;
  });
  emit('exits/s, MMIO read loop (exit + complete + replayed instruction)', r.n / r.s, 'exits/s');
}

// ---------------------------------------------------------------- interrupts

{
  // mov rbx, 0xfee00300; sti; l: mov dword [rbx], 0x44040 (self-IPI, vector 0x40); jmp l
  const code = [0x48, 0xbb, 0x00, 0x03, 0xe0, 0xfe, 0, 0, 0, 0, 0xfb, 0xc7, 0x03, 0x40, 0x40, 0x04, 0x00, 0xeb, 0xf8];
  const { vcpu, space } = longVcpu(code);
  // handler: mov dword [rbx - 0x250], 0 (EOI); iretq
  const handler = 0x3000;
  space.writeFrom(handler, Uint8Array.from([0xc7, 0x83, 0xb0, 0xfd, 0xff, 0xff, 0, 0, 0, 0, 0x48, 0xcf]));
  const v = 0x40;
  space.write32(0x2000 + v * 16, (handler & 0xffff) | (0x10 << 16));
  space.write32(0x2000 + v * 16 + 4, (handler & 0xffff0000) | 0x8e00);
  vcpu.apic.writeReg(0xf0, 0x1ff);
  const N = 20_000_000 * SCALE;
  const r = time(() => {
    vcpu.run(N);
    return vcpu.interruptsDelivered;
  });
  emit('interrupts delivered/s (self-IPI, EOI, IRETQ)', r.n / r.s, 'interrupts/s', { instructions: vcpu.cpu.retired });
}

// ---------------------------------------------------------------- MIPS with paging vs flat

// l: add rax, rcx; xor rdx, rax; inc rcx; mov [rdi], rdx; jmp l
const LOOP64 = [0x48, 0x01, 0xc8, 0x48, 0x31, 0xc2, 0x48, 0xff, 0xc1, 0x48, 0x89, 0x17, 0xeb, 0xf2];
// the same in 32-bit code: add eax, ecx; xor edx, eax; inc ecx; mov [edi], edx; jmp l
const LOOP32 = [0x01, 0xc8, 0x31, 0xc2, 0x41, 0x89, 0x17, 0xeb, 0xf7];
const MI = 10_000_000 * SCALE;

let flatMips: number;
{
  // The user-mode memory of x86-core 1 (no paging structures, decode cache on).
  const mem = new UserMemory();
  mem.map(0, 4 * 1024 * 1024, PROT_READ | PROT_WRITE | PROT_EXEC);
  mem.writeFrom(0x1000, Uint8Array.from(LOOP64));
  const cpu = new Cpu(mem);
  cpu.rip = 0x1000;
  cpu.setRegNumber(RSP, 0x8000);
  cpu.setRegNumber(7, 0x200000);
  cpu.run(1_000_000);
  const r = time(() => {
    cpu.run(MI);
    return MI;
  });
  flatMips = r.n / r.s / 1e6;
  emit('MIPS, integer loop, CPU on flat user-mode memory (64-bit, no vCPU, no paging)', flatMips, 'MIPS');
}

{
  const { vcpu } = longVcpu(LOOP64);
  vcpu.run(1_000_000);
  const r = time(() => {
    if (vcpu.run(MI) !== EXIT_BUDGET) throw new Error('unexpected exit');
    return MI;
  });
  const mips = r.n / r.s / 1e6;
  emit('MIPS, integer loop, vCPU long mode with 4-level paging + EPT', mips, 'MIPS', { peer: 'flat user-mode memory', peerValue: Math.round(flatMips * 100) / 100, ratio: Math.round((mips / flatMips) * 100) / 100 });
}

{
  // 32-bit protected mode, paging with one 4 MiB page (CR4.PSE) at 0, page directory at 0x9000.
  const space = new AddressSpace(new HostMemory());
  space.addRam(0, 16 * 1024 * 1024);
  space.writeFrom(ENTRY, Uint8Array.from(LOOP32));
  space.write32(0x9000, 0x83);
  space.write64(0x500 + 0x08, 0x0000ffff, 0x00cf9b00);
  space.write64(0x500 + 0x10, 0x0000ffff, 0x00cf9300);
  const vcpu = new Vcpu(space);
  const data = flatSeg(0x10, 3, 0, 1);
  vcpu.setSregs({
    cs: flatSeg(0x08, 0xb, 0, 1), ds: data, es: data, fs: data, gs: data, ss: data,
    tr: { selector: 0, base: 0, limit: 0x67, type: 0xb, present: 1, dpl: 0, db: 0, s: 0, l: 0, g: 0, avl: 0, unusable: 0 },
    ldt: { selector: 0, base: 0, limit: 0, type: 2, present: 0, dpl: 0, db: 0, s: 0, l: 0, g: 0, avl: 0, unusable: 1 },
    gdt: { base: 0x500, limit: 0x17 }, idt: { base: 0, limit: 0 },
    cr0: 0x80000011, cr2: 0, cr3: 0x9000, cr4: 0x10, efer: 0, apicBase: 0xfee00900,
  });
  vcpu.setRegs({ rax: 0, rbx: 0, rcx: 0, rdx: 0, rsi: 0, rdi: 0x200000, rsp: 0x8000, rbp: 0, rip: ENTRY, rflags: 2 });
  vcpu.run(1_000_000);
  const r = time(() => {
    if (vcpu.run(MI) !== EXIT_BUDGET) throw new Error('unexpected exit');
    return MI;
  });
  const mips = r.n / r.s / 1e6;
  emit('MIPS, integer loop, vCPU 32-bit protected mode with paging (4 MiB page) + EPT', mips, 'MIPS', { peer: 'flat user-mode memory', peerValue: Math.round(flatMips * 100) / 100, ratio: Math.round((mips / flatMips) * 100) / 100 });
}
