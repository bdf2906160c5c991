// Benchmarks print one JSON object per line: {"name","value","unit","peer"?,"peerValue"?,"ratio"?}.
//
// interp-loop: a CPU-bound integer loop (xorshift, multiply, table loads/stores, branches) in a
// static ELF built here with nasm + ld, run by ringzero-user (this interpreter), natively, and
// under Debian's qemu-x86_64 in the same run. MIPS = guest instructions retired (counted by the
// interpreter) / wall seconds. RZ_BENCH_ITERS sets the loop count (default 1,000,000 ≈ 14 M
// instructions). The busybox sha256sum / awk-sort workloads need the SSE group first.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runProgram } from '../src/node';
import { userBenchmarks } from './user';
import { jitBusybox, jitVsInterp } from './jit';

const ITERS = Number(process.env.RZ_BENCH_ITERS ?? 1_000_000);

const PROGRAM = `bits 64
global _start
section .bss
table: resq 256
out: resb 16
section .text
_start:
  mov rcx, ${ITERS}
  mov rax, 0x9e3779b97f4a7c15
  xor ebx, ebx
  lea rdi, [rel table]
.loop:
  mov rdx, rax
  shl rdx, 13
  xor rax, rdx
  mov rdx, rax
  shr rdx, 7
  xor rax, rdx
  mov rdx, rax
  shl rdx, 17
  xor rax, rdx
  movzx edx, al
  add rbx, [rdi + rdx*8]
  mov [rdi + rdx*8], rax
  imul rbx, rbx, 31
  test al, 1
  jz .even
  add rbx, rcx
.even:
  dec rcx
  jnz .loop
  ; print rbx as 16 hex digits
  lea rsi, [rel out]
  mov ecx, 16
.hex:
  rol rbx, 4
  mov eax, ebx
  and eax, 15
  cmp eax, 10
  jb .d
  add eax, 39
.d:
  add eax, 48
  mov [rsi], al
  inc rsi
  dec ecx
  jnz .hex
  mov eax, 1
  mov edi, 1
  lea rsi, [rel out]
  mov edx, 16
  syscall
  mov eax, 60
  xor edi, edi
  syscall
`;

function have(tool: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0;
}

function emit(o: Record<string, unknown>): void {
  process.stdout.write(JSON.stringify(o) + '\n');
}

function main(): void {
  if (!have('nasm') || !have('ld')) {
    console.warn('SKIPPED: nasm/ld not installed: no benchmark program');
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'rz-x86-bench-'));
  try {
    writeFileSync(join(dir, 'loop.asm'), PROGRAM);
    execFileSync('nasm', ['-f', 'elf64', '-o', join(dir, 'loop.o'), join(dir, 'loop.asm')]);
    execFileSync('ld', ['-static', '-o', join(dir, 'loop'), join(dir, 'loop.o')]);
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    const r = runProgram({ program: join(dir, 'loop'), argv: ['loop'], env: [], captureStdout: true });
    const secs = (performance.now() - t0) / 1000;
    const c1 = process.cpuUsage(c0);
    const cpuSecs = (c1.user + c1.system) / 1e6;
    if (r.reason !== 'exit') throw new Error(`benchmark program failed: ${r.message}`);
    const host = { out: Buffer.from(r.stdout).toString() };
    const insns = r.retired;
    const mips = insns / secs / 1e6;
    emit({ name: 'interp-loop instructions', value: insns, unit: 'instructions' });
    // Per CPU-second of this process: less sensitive to other load on a shared machine.
    emit({ name: 'interp-loop MIPS per CPU-second', value: +(insns / cpuSecs / 1e6).toFixed(2), unit: 'MIPS' });

    const timeIt = (cmd: string, args: string[]): { secs: number; out: string } | null => {
      const t = performance.now();
      const p = spawnSync(cmd, args);
      const s = (performance.now() - t) / 1000;
      return p.status === 0 ? { secs: s, out: p.stdout.toString() } : null;
    };
    const native = timeIt(join(dir, 'loop'), []);
    if (native && native.out !== host.out) throw new Error(`interpreter result ${host.out} differs from native ${native.out}`);
    if (native) emit({ name: 'interp-loop MIPS vs native', value: +mips.toFixed(2), unit: 'MIPS', peer: 'native', peerValue: +(insns / native.secs / 1e6).toFixed(1), ratio: +(native.secs / secs).toFixed(4) });
    if (have('qemu-x86_64')) {
      const q = timeIt('qemu-x86_64', [join(dir, 'loop')]);
      if (q && q.out !== host.out) throw new Error('qemu-x86_64 result differs');
      if (q) emit({ name: 'interp-loop MIPS vs qemu-x86_64', value: +mips.toFixed(2), unit: 'MIPS', peer: 'qemu-x86_64', peerValue: +(insns / q.secs / 1e6).toFixed(1), ratio: +(q.secs / secs).toFixed(4) });
    } else console.warn('SKIPPED: qemu-x86_64 not installed: no qemu peer figure');
    if (!native) emit({ name: 'interp-loop MIPS', value: +mips.toFixed(2), unit: 'MIPS' });
    // The block compiler (on by default, so the figures above include it) against the interpreter.
    jitVsInterp('interp-loop', join(dir, 'loop'), ['loop']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main();
// busybox sha256sum (and the awk/sort mix) in ringzero-user, natively and under qemu-x86_64.
userBenchmarks();
// busybox sha256sum with the block compiler against the interpreter alone (same run).
jitBusybox();
// vCPU exits/s, interrupts/s and MIPS inside protected and long mode with paging (issue 6).
await import('./system');
