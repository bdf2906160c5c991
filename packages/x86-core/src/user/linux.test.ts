import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { ElfError } from './elf';
import { LinuxProcess, type LinuxHost } from './linux';
import { NodeLinuxHost } from '../node';

function have(tool: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0;
}

/** A host that records stdout/stderr in memory (files from the real host). */
class CaptureHost extends NodeLinuxHost implements LinuxHost {
  out: number[] = [];
  override write(fd: number, data: Uint8Array): number {
    if (fd === 1 || fd === 2) {
      this.out.push(...data);
      return data.length;
    }
    return super.write(fd, data);
  }
}

const PROGRAM = `bits 64
global _start
section .data
msg: db "argv:", 0
nl: db 10
section .bss
buf: resb 64
section .text
_start:
  mov r12, [rsp]          ; argc
  lea r13, [rsp + 8]      ; argv
.next:
  test r12, r12
  jz .done
  mov rsi, [r13]
  xor edx, edx
.len: cmp byte [rsi + rdx], 0
  je .print
  inc rdx
  jmp .len
.print:
  mov eax, 1
  mov edi, 1
  syscall
  mov eax, 1
  mov edi, 1
  lea rsi, [rel nl]
  mov edx, 1
  syscall
  add r13, 8
  dec r12
  jmp .next
.done:
  ; brk grows, uname works, then exit with a checksum of a loop as the status
  mov eax, 12
  xor edi, edi
  syscall
  lea rdi, [rax + 8192]
  mov eax, 12
  syscall
  mov byte [rax - 1], 42
  xor ebx, ebx
  mov ecx, 100000
.l: imul rbx, rbx, 33
  add rbx, rcx
  loop .l
  mov edi, ebx
  and edi, 0x7f
  mov eax, 231
  syscall
`;

const why = !have('nasm') || !have('ld') ? 'nasm/ld not installed' : process.arch !== 'x64' ? 'host is not x86-64' : null;
if (why) console.warn(`SKIPPED: ${why}: user-mode runner vs native run not tested`);

describe.skipIf(why != null)('ringzero-user runs a static ELF like the host does', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rz-user-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('same output and exit status as the native run', () => {
    writeFileSync(join(dir, 'p.asm'), PROGRAM);
    execFileSync('nasm', ['-f', 'elf64', '-o', join(dir, 'p.o'), join(dir, 'p.asm')]);
    execFileSync('ld', ['-static', '-o', join(dir, 'p'), join(dir, 'p.o')]);
    const native = spawnSync(join(dir, 'p'), ['one', 'two three']);
    const host = new CaptureHost();
    const proc = new LinuxProcess(host);
    proc.load(readFileSync(join(dir, 'p')), [join(dir, 'p'), 'one', 'two three'], []);
    const r = proc.run(10_000_000);
    expect(r.fault).toBeNull();
    expect(Buffer.from(host.out).toString()).toBe(native.stdout.toString());
    expect(r.status).toBe(native.status);
    expect(r.instructions).toBeGreaterThan(300_000);
  });
});

describe('ELF loader on hostile input', () => {
  it('rejects garbage with ElfError, never a host exception', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 300 }), fc.boolean(), (bytes, elfMagic) => {
        const b = new Uint8Array(bytes);
        if (elfMagic && b.length >= 20) {
          b.set([0x7f, 0x45, 0x4c, 0x46, 2, 1], 0);
          b[18] = 62;
          b[16] = 2;
        }
        const proc = new LinuxProcess(new NodeLinuxHost(), 1 << 24);
        try {
          proc.load(b, ['x'], []);
        } catch (e) {
          expect(e).toBeInstanceOf(ElfError);
        }
      }),
      { numRuns: 500 },
    );
  });
});
