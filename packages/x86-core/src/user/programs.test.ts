/**
 * Hand-written static ELFs (nasm + ld) exercising the system calls, run natively (the oracle)
 * and in ringzero-user with the same argv, environment and stdin: same stdout, same exit
 * status or terminating signal.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assemble, hasTool, makeTempDir, removeTempDir, runEmulated, runNative, type RunSpec } from './test-support';

const HAVE = hasTool('nasm') && hasTool('ld');
if (!HAVE) console.warn('SKIPPED: nasm or ld (binutils) not installed: the hand-made ELF system-call tests against the native run are not run');

/** Helpers shared by every program: print_hex (rax as 16 hex digits + newline), print_cstr (rsi), print_str (rsi, rdx). */
const PRELUDE = `
bits 64
default rel
section .bss
hexbuf: resb 32
statbuf: resb 256
iobuf: resb 65536
section .text
print_hex:
  push rbx
  push rcx
  push rdx
  push rsi
  push rdi
  push r11
  lea rdi, [hexbuf+16]
  mov byte [rdi], 10
  mov ecx, 16
.l:
  dec rdi
  mov rbx, rax
  and ebx, 15
  cmp ebx, 10
  jb .d
  add ebx, 'a' - 10 - '0'
.d:
  add ebx, '0'
  mov [rdi], bl
  shr rax, 4
  dec ecx
  jnz .l
  mov eax, 1
  mov edi, 1
  lea rsi, [hexbuf]
  mov edx, 17
  syscall
  pop r11
  pop rdi
  pop rsi
  pop rdx
  pop rcx
  pop rbx
  ret
print_str:
  push rcx
  push r11
  push rdi
  mov eax, 1
  mov edi, 1
  syscall
  pop rdi
  pop r11
  pop rcx
  ret
print_cstr:
  xor edx, edx
.n:
  cmp byte [rsi+rdx], 0
  je .w
  inc rdx
  jmp .n
.w:
  call print_str
  push rsi
  lea rsi, [hexbuf+16]
  mov byte [rsi], 10
  mov edx, 1
  call print_str
  pop rsi
  ret
%macro exit 1
  mov edi, %1
  mov eax, 231
  syscall
%endmacro
`;

const PROGRAMS: Record<string, string> = {
  hello: `
global _start
_start:
  lea rsi, [msg]
  mov edx, msglen
  call print_str
  exit 42
section .data
msg: db "hello, world", 10
msglen equ $ - msg
`,
  // argc, argv and envp strings, and auxv entries that are the same natively.
  args: `
global _start
_start:
  mov rax, [rsp]
  call print_hex
  lea rbx, [rsp+8]
.argv:
  mov rsi, [rbx]
  add rbx, 8
  test rsi, rsi
  jz .env
  call print_cstr
  jmp .argv
.env:
  mov rsi, [rbx]
  add rbx, 8
  test rsi, rsi
  jz .aux
  call print_cstr
  jmp .env
.aux:
  mov rax, [rbx]
  mov r12, [rbx+8]
  add rbx, 16
  test rax, rax
  jz .done
  cmp rax, 6          ; AT_PAGESZ
  je .val
  cmp rax, 4          ; AT_PHENT
  je .val
  cmp rax, 5          ; AT_PHNUM
  je .val
  cmp rax, 3          ; AT_PHDR
  je .val
  cmp rax, 23         ; AT_SECURE
  je .val
  cmp rax, 11         ; AT_UID
  je .val
  cmp rax, 9          ; AT_ENTRY
  je .entry
  cmp rax, 15         ; AT_PLATFORM
  je .str
  cmp rax, 31         ; AT_EXECFN
  je .str
  cmp rax, 25         ; AT_RANDOM: 16 readable bytes
  je .rnd
  jmp .aux
.val:
  call print_hex
  mov rax, r12
  call print_hex
  jmp .aux
.entry:
  call print_hex
  lea rax, [_start]
  cmp rax, r12
  sete al
  movzx eax, al
  call print_hex
  jmp .aux
.str:
  call print_hex
  mov rsi, r12
  call print_cstr
  jmp .aux
.rnd:
  call print_hex
  mov rax, [r12]
  or rax, [r12+8]
  mov rax, [r12+8]
  mov eax, 1
  call print_hex
  jmp .aux
.done:
  mov rax, rsp
  and eax, 15         ; RSP is 16-byte aligned at entry
  call print_hex
  exit 0
`,
  // open/fstat/read/lseek/pread/close, then openat(O_CREAT) + write + newfstatat, then errors.
  files: `
global _start
_start:
  mov rbx, [rsp+16]   ; argv[1]: input file
  mov r15, [rsp+24]   ; argv[2]: output file to create
  mov eax, 2
  mov rdi, rbx
  xor esi, esi
  syscall
  mov r12, rax
  call print_hex
  mov eax, 5
  mov rdi, r12
  lea rsi, [statbuf]
  syscall
  call print_hex
  mov rax, [statbuf+48]   ; st_size
  call print_hex
  mov eax, [statbuf+24]   ; st_mode
  and eax, 0xf000
  call print_hex
  xor eax, eax
  mov rdi, r12
  lea rsi, [iobuf]
  mov edx, 65536
  syscall
  mov r13, rax
  call print_hex
  lea rsi, [iobuf]
  mov rdx, r13
  call print_str
  mov eax, 8          ; lseek(fd, 3, SEEK_SET)
  mov rdi, r12
  mov esi, 3
  xor edx, edx
  syscall
  call print_hex
  xor eax, eax
  mov rdi, r12
  lea rsi, [iobuf]
  mov edx, 4
  syscall
  lea rsi, [iobuf]
  mov rdx, rax
  call print_str
  mov eax, 8          ; lseek(fd, -2, SEEK_END)
  mov rdi, r12
  mov rsi, -2
  mov edx, 2
  syscall
  call print_hex
  mov eax, 17         ; pread64(fd, iobuf, 5, 1)
  mov rdi, r12
  lea rsi, [iobuf]
  mov edx, 5
  mov r10d, 1
  syscall
  lea rsi, [iobuf]
  mov rdx, rax
  call print_str
  mov eax, 8          ; lseek(fd, 0, SEEK_CUR): pread did not move it
  mov rdi, r12
  xor esi, esi
  mov edx, 1
  syscall
  call print_hex
  mov eax, 3
  mov rdi, r12
  syscall
  call print_hex
  mov eax, 3          ; close again: -EBADF
  mov rdi, r12
  syscall
  call print_hex
  mov eax, 257        ; openat(AT_FDCWD, out, O_WRONLY|O_CREAT|O_TRUNC, 0644)
  mov rdi, -100
  mov rsi, r15
  mov edx, 0o1101
  mov r10d, 0o644
  syscall
  mov r12, rax
  mov eax, 1
  mov rdi, r12
  lea rsi, [written]
  mov edx, writtenlen
  syscall
  call print_hex
  mov eax, 20         ; writev(fd, iov, 2)
  mov rdi, r12
  lea rsi, [iov]
  mov edx, 2
  syscall
  call print_hex
  mov eax, 3
  mov rdi, r12
  syscall
  mov eax, 262        ; newfstatat(AT_FDCWD, out, statbuf, 0)
  mov rdi, -100
  mov rsi, r15
  lea rdx, [statbuf]
  xor r10d, r10d
  syscall
  call print_hex
  mov rax, [statbuf+48]
  call print_hex
  mov eax, 2          ; read it back
  mov rdi, r15
  xor esi, esi
  syscall
  mov r12, rax
  mov eax, 19         ; readv(fd, iov2, 2)
  mov rdi, r12
  lea rsi, [iov2]
  mov edx, 2
  syscall
  call print_hex
  lea rsi, [iobuf]
  mov edx, 24
  call print_str
  mov eax, 2          ; a file that does not exist: -ENOENT
  lea rdi, [nofile]
  xor esi, esi
  syscall
  call print_hex
  mov eax, 21         ; access(out, W_OK)
  mov rdi, r15
  mov esi, 2
  syscall
  call print_hex
  mov eax, 87         ; unlink(out)
  mov rdi, r15
  syscall
  call print_hex
  mov eax, 21         ; access(out, F_OK): gone
  mov rdi, r15
  xor esi, esi
  syscall
  call print_hex
  mov eax, 0          ; read(-1): -EBADF
  mov edi, -1
  lea rsi, [iobuf]
  mov edx, 1
  syscall
  call print_hex
  mov eax, 1          ; write(1, unmapped, 4): -EFAULT
  mov edi, 1
  mov esi, 16
  mov edx, 4
  syscall
  call print_hex
  exit 0
section .data
written: db "written by the program", 10
writtenlen equ $ - written
v1: db "vec1 "
v2: db "vec2", 10
iov: dq v1, 5, v2, 5
iov2: dq iobuf, 10, iobuf+10, 14
nofile: db "/nonexistent/ringzero", 0
`,
  // brk, anonymous mmap, munmap, mprotect, and a write to a read-only page (SIGSEGV).
  memory: `
global _start
_start:
  mov eax, 12
  xor edi, edi
  syscall
  mov rbx, rax
  and eax, 0xfff
  call print_hex
  lea rdi, [rbx+0x10000]
  mov eax, 12
  syscall
  sub rax, rbx
  call print_hex
  mov byte [rbx+0xffff], 7
  movzx eax, byte [rbx+0xffff]
  call print_hex
  movzx eax, byte [rbx+0x1000]
  call print_hex
  mov rdi, rbx        ; shrink back
  mov eax, 12
  syscall
  sub rax, rbx
  call print_hex
  mov eax, 9          ; mmap(0, 1 MiB, RW, PRIVATE|ANON, -1, 0)
  xor edi, edi
  mov esi, 0x100000
  mov edx, 3
  mov r10d, 0x22
  mov r8, -1
  xor r9d, r9d
  syscall
  mov r12, rax
  and eax, 0xfff
  call print_hex
  mov rax, 0x1122334455667788
  mov [r12+0x80000], rax
  mov rax, [r12+0x80000]
  call print_hex
  mov rax, [r12+0xffff8]
  call print_hex
  lea rdi, [r12+0x80000]   ; munmap the second half
  mov esi, 0x80000
  mov eax, 11
  syscall
  call print_hex
  mov rdi, r12             ; mprotect(first page, PROT_READ)
  mov esi, 0x1000
  mov edx, 1
  mov eax, 10
  syscall
  call print_hex
  lea rdi, [r12+0x80000]   ; mprotect of unmapped memory: -ENOMEM
  mov esi, 0x1000
  mov edx, 1
  mov eax, 10
  syscall
  call print_hex
  mov eax, 9               ; mmap of length 0: -EINVAL
  xor edi, edi
  xor esi, esi
  mov edx, 3
  mov r10d, 0x22
  mov r8, -1
  xor r9d, r9d
  syscall
  call print_hex
  mov eax, 9               ; MAP_FIXED over the unmapped half, then use it
  lea rdi, [r12+0x80000]
  mov esi, 0x2000
  mov edx, 3
  mov r10d, 0x32
  mov r8, -1
  xor r9d, r9d
  syscall
  sub rax, r12
  call print_hex
  mov qword [r12+0x81ff8], 5
  mov rax, [r12+0x81ff8]
  call print_hex
  mov rax, [r12]
  call print_hex
  mov byte [r12], 1        ; SIGSEGV: the page is read-only now
  exit 3
`,
  // pipe2, dup2, dup, fcntl, close.
  fds: `
global _start
_start:
  mov eax, 293
  lea rdi, [fds]
  xor esi, esi
  syscall
  call print_hex
  mov eax, [fds]
  call print_hex
  mov eax, [fds+4]
  call print_hex
  mov eax, 1
  mov edi, [fds+4]
  lea rsi, [msg]
  mov edx, msglen
  syscall
  call print_hex
  xor eax, eax
  mov edi, [fds]
  lea rsi, [iobuf]
  mov edx, 100
  syscall
  mov rdx, rax
  lea rsi, [iobuf]
  call print_str
  mov eax, 33          ; dup2(1, 9)
  mov edi, 1
  mov esi, 9
  syscall
  call print_hex
  mov eax, 1
  mov edi, 9
  lea rsi, [msg2]
  mov edx, msg2len
  syscall
  mov eax, 72          ; fcntl(9, F_GETFD)
  mov edi, 9
  mov esi, 1
  syscall
  call print_hex
  mov eax, 72          ; fcntl(9, F_SETFD, FD_CLOEXEC)
  mov edi, 9
  mov esi, 2
  mov edx, 1
  syscall
  mov eax, 72
  mov edi, 9
  mov esi, 1
  syscall
  call print_hex
  mov eax, 3
  mov edi, 9
  syscall
  mov eax, 1           ; write to closed fd 9: -EBADF
  mov edi, 9
  lea rsi, [msg2]
  mov edx, msg2len
  syscall
  call print_hex
  mov eax, 32          ; dup(2) = lowest free (5)
  mov edi, 2
  syscall
  call print_hex
  mov eax, 3           ; close the pipe's write end, then read: EOF
  mov edi, [fds+4]
  syscall
  xor eax, eax
  mov edi, [fds]
  lea rsi, [iobuf]
  mov edx, 100
  syscall
  call print_hex
  exit 0
section .data
fds: dd 0, 0
msg: db "through a pipe", 10
msglen equ $ - msg
msg2: db "through dup2", 10
msg2len equ $ - msg2
`,
  // cat: stdin to stdout until EOF.
  cat: `
global _start
_start:
.loop:
  xor eax, eax
  xor edi, edi
  lea rsi, [iobuf]
  mov edx, 65536
  syscall
  test rax, rax
  jle .done
  mov rdx, rax
  lea rsi, [iobuf]
  mov eax, 1
  mov edi, 1
  syscall
  jmp .loop
.done:
  exit 0
`,
  // getcwd, chdir, uname, getdents64 of the working directory, clock_gettime, getrandom.
  env: `
global _start
_start:
  mov eax, 79
  lea rdi, [iobuf]
  mov esi, 4096
  syscall
  call print_hex
  lea rsi, [iobuf]
  call print_cstr
  mov eax, 79          ; getcwd with a 1-byte buffer: -ERANGE
  lea rdi, [iobuf]
  mov esi, 1
  syscall
  call print_hex
  mov eax, 63
  lea rdi, [iobuf]
  syscall
  call print_hex
  lea rsi, [iobuf]
  call print_cstr
  lea rsi, [iobuf+65*4]
  call print_cstr
  mov eax, 257         ; openat(AT_FDCWD, ".", O_RDONLY|O_DIRECTORY)
  mov rdi, -100
  lea rsi, [dot]
  mov edx, 0o200000
  syscall
  mov r12, rax
  xor r13d, r13d       ; entries
  xor r14d, r14d       ; sum of name lengths
.dents:
  mov eax, 217
  mov rdi, r12
  lea rsi, [iobuf]
  mov edx, 4096
  syscall
  test rax, rax
  jle .dend
  lea rbx, [iobuf]
  lea r15, [iobuf+rax]
.ent:
  cmp rbx, r15
  jae .dents
  inc r13
  lea rsi, [rbx+19]
.len:
  cmp byte [rsi], 0
  je .lend
  inc rsi
  inc r14
  jmp .len
.lend:
  movzx eax, word [rbx+16]
  add rbx, rax
  jmp .ent
.dend:
  mov rax, r13
  call print_hex
  mov rax, r14
  call print_hex
  mov eax, 80          ; chdir("/")
  lea rdi, [root]
  syscall
  call print_hex
  mov eax, 79
  lea rdi, [iobuf]
  mov esi, 4096
  syscall
  lea rsi, [iobuf]
  call print_cstr
  mov eax, 228         ; clock_gettime(CLOCK_REALTIME): after 2020
  xor edi, edi
  lea rsi, [statbuf]
  syscall
  call print_hex
  mov rax, [statbuf]
  cmp rax, 1577836800
  seta al
  movzx eax, al
  call print_hex
  mov eax, 318         ; getrandom(buf, 16, 0) = 16
  lea rdi, [statbuf]
  mov esi, 16
  xor edx, edx
  syscall
  call print_hex
  mov eax, 102         ; getuid() == geteuid()
  syscall
  mov rbx, rax
  mov eax, 107
  syscall
  cmp rax, rbx
  sete al
  movzx eax, al
  call print_hex
  mov eax, 16          ; ioctl(1, TCGETS): stdout is a pipe: -ENOTTY
  mov edi, 1
  mov esi, 0x5401
  lea rdx, [statbuf]
  syscall
  call print_hex
  exit 0
section .data
dot: db ".", 0
root: db "/", 0
`,
  // Self-modifying code in a writable and executable section: patch an immediate, run it again.
  smc: `
global _start
section .smc progbits alloc exec write align=16
_start:
  mov r12d, 3
.again:
  call patched
  call print_hex
  mov eax, [patched+1]
  add eax, 0x1111
  mov [patched+1], eax    ; the next call runs the new immediate
  dec r12d
  jnz .again
  exit 0
patched:
  mov eax, 0x1000
  ret
`,
  ud2: `
global _start
_start:
  ud2
`,
  divzero: `
global _start
_start:
  xor ecx, ecx
  mov eax, 1
  div ecx
  exit 0
`,
  int3: `
global _start
_start:
  int3
  exit 0
`,
  exit256: `
global _start
_start:
  exit 256 + 7
`,
  segv: `
global _start
_start:
  mov rax, [0]
  exit 0
`,
};

/** i386 helpers: print_hex (eax as 8 hex digits + newline), print_str (ecx, edx), print_cstr (ecx). System calls by INT 0x80. */
const PRELUDE32 = `
bits 32
section .bss
hexbuf: resb 16
statbuf: resb 256
iobuf: resb 65536
section .text
print_hex:
  pushad
  lea edi, [hexbuf+8]
  mov byte [edi], 10
  mov ecx, 8
.l:
  dec edi
  mov ebx, eax
  and ebx, 15
  cmp ebx, 10
  jb .d
  add ebx, 'a' - 10 - '0'
.d:
  add ebx, '0'
  mov [edi], bl
  shr eax, 4
  dec ecx
  jnz .l
  mov eax, 4
  mov ebx, 1
  mov ecx, hexbuf
  mov edx, 9
  int 0x80
  popad
  ret
print_str:
  pushad
  mov eax, 4
  mov ebx, 1
  int 0x80
  popad
  ret
print_cstr:
  pushad
  xor edx, edx
.n:
  cmp byte [ecx+edx], 0
  je .w
  inc edx
  jmp .n
.w:
  call print_str
  mov byte [hexbuf+8], 10
  mov ecx, hexbuf+8
  mov edx, 1
  call print_str
  popad
  ret
%macro exit 1
  mov ebx, %1
  mov eax, 252
  int 0x80
%endmacro
`;

const PROGRAMS32: Record<string, string> = {
  hello32: `
global _start
_start:
  mov ecx, msg
  mov edx, msglen
  call print_str
  exit 42
section .data
msg: db "hello from i386", 10
msglen equ $ - msg
`,
  args32: `
global _start
_start:
  mov eax, [esp]
  call print_hex
  lea ebx, [esp+4]
.argv:
  mov ecx, [ebx]
  add ebx, 4
  test ecx, ecx
  jz .env
  call print_cstr
  jmp .argv
.env:
  mov ecx, [ebx]
  add ebx, 4
  test ecx, ecx
  jz .aux
  call print_cstr
  jmp .env
.aux:
  mov eax, [ebx]
  mov esi, [ebx+4]
  add ebx, 8
  test eax, eax
  jz .done
  cmp eax, 6
  je .val
  cmp eax, 4
  je .val
  cmp eax, 5
  je .val
  cmp eax, 3
  je .val
  cmp eax, 23
  je .val
  cmp eax, 9
  je .val
  cmp eax, 15
  je .str
  cmp eax, 31
  je .str
  jmp .aux
.val:
  call print_hex
  mov eax, esi
  call print_hex
  jmp .aux
.str:
  call print_hex
  mov ecx, esi
  call print_cstr
  jmp .aux
.done:
  mov eax, esp
  and eax, 15
  call print_hex
  exit 0
`,
  files32: `
global _start
_start:
  mov ebx, [esp+8]      ; argv[1]
  mov ebp, [esp+12]     ; argv[2]
  mov eax, 5            ; open(argv1, O_RDONLY)
  xor ecx, ecx
  int 0x80
  mov esi, eax
  call print_hex
  mov eax, 197          ; fstat64
  mov ebx, esi
  mov ecx, statbuf
  int 0x80
  call print_hex
  mov eax, [statbuf+44] ; st_size
  call print_hex
  mov eax, [statbuf+16] ; st_mode
  and eax, 0xf000
  call print_hex
  mov eax, 3            ; read
  mov ebx, esi
  mov ecx, iobuf
  mov edx, 65536
  int 0x80
  mov edx, eax
  call print_hex
  mov ecx, iobuf
  call print_str
  mov eax, 140          ; _llseek(fd, 0, 5, &result, SEEK_SET)
  mov ebx, esi
  xor ecx, ecx
  mov edx, 5
  push esi
  mov esi, statbuf
  mov edi, 0
  int 0x80
  pop esi
  call print_hex
  mov eax, [statbuf]
  call print_hex
  mov eax, 3
  mov ebx, esi
  mov ecx, iobuf
  mov edx, 5
  int 0x80
  mov edx, eax
  mov ecx, iobuf
  call print_str
  mov eax, 180          ; pread64(fd, buf, 3, offset 10 = lo 10, hi 0)
  mov ebx, esi
  mov ecx, iobuf
  mov edx, 3
  push esi
  mov esi, 10
  xor edi, edi
  int 0x80
  pop esi
  mov edx, eax
  mov ecx, iobuf
  call print_str
  mov eax, 6            ; close
  mov ebx, esi
  int 0x80
  call print_hex
  mov eax, 295          ; openat(AT_FDCWD, argv2, O_WRONLY|O_CREAT|O_TRUNC, 0644)
  mov ebx, -100
  mov ecx, ebp
  mov edx, 0o1101
  mov esi, 0o644
  int 0x80
  mov esi, eax
  mov eax, 146          ; writev(fd, iov, 2)
  mov ebx, esi
  mov ecx, iov
  mov edx, 2
  int 0x80
  call print_hex
  mov eax, 6
  mov ebx, esi
  int 0x80
  mov eax, 195          ; stat64(argv2)
  mov ebx, ebp
  mov ecx, statbuf
  int 0x80
  call print_hex
  mov eax, [statbuf+44]
  call print_hex
  mov eax, 10           ; unlink
  mov ebx, ebp
  int 0x80
  call print_hex
  mov eax, 5            ; open of a missing file: -ENOENT
  mov ebx, nofile
  xor ecx, ecx
  int 0x80
  call print_hex
  exit 0
section .data
v1: db "vec1 "
v2: db "vec2", 10
iov: dd v1, 5, v2, 5
nofile: db "/nonexistent/ringzero", 0
`,
  memory32: `
global _start
_start:
  mov eax, 45           ; brk(0)
  xor ebx, ebx
  int 0x80
  mov esi, eax
  and eax, 0xfff
  call print_hex
  lea ebx, [esi+0x10000]
  mov eax, 45
  int 0x80
  sub eax, esi
  call print_hex
  mov byte [esi+0xffff], 7
  movzx eax, byte [esi+0xffff]
  call print_hex
  mov eax, 192          ; mmap2(0, 1 MiB, RW, PRIVATE|ANON, -1, 0)
  xor ebx, ebx
  mov ecx, 0x100000
  mov edx, 3
  push esi
  mov esi, 0x22
  mov edi, -1
  push ebp
  xor ebp, ebp
  int 0x80
  pop ebp
  pop esi
  mov edi, eax
  and eax, 0xfff
  call print_hex
  mov dword [edi+0x80000], 0x11223344
  mov eax, [edi+0x80000]
  call print_hex
  mov eax, [edi+0xffffc]
  call print_hex
  mov eax, 91           ; munmap the second half
  lea ebx, [edi+0x80000]
  mov ecx, 0x80000
  int 0x80
  call print_hex
  mov eax, 125          ; mprotect(first page, PROT_READ)
  mov ebx, edi
  mov ecx, 0x1000
  mov edx, 1
  int 0x80
  call print_hex
  mov eax, [edi]
  call print_hex
  mov byte [edi], 1     ; SIGSEGV
  exit 3
`,
  cat32: `
global _start
_start:
.loop:
  mov eax, 3
  xor ebx, ebx
  mov ecx, iobuf
  mov edx, 65536
  int 0x80
  test eax, eax
  jle .done
  mov edx, eax
  mov eax, 4
  mov ebx, 1
  mov ecx, iobuf
  int 0x80
  jmp .loop
.done:
  exit 0
`,
  divzero32: `
global _start
_start:
  xor ecx, ecx
  mov eax, 1
  div ecx
  exit 0
`,
};

/** Assembles i386 source into a static ELF32 (nasm -f elf32, ld -m elf_i386). */
function assemble32(dir: string, name: string, source: string): string {
  const asm = path.join(dir, `${name}.asm`);
  const obj = path.join(dir, `${name}.o`);
  const exe = path.join(dir, name);
  fs.writeFileSync(asm, source);
  const a = spawnSync('nasm', ['-f', 'elf32', '-o', obj, asm], { encoding: 'utf8' });
  if (a.status !== 0) throw new Error(`nasm failed for ${name}: ${a.stderr}`);
  const l = spawnSync('ld', ['-m', 'elf_i386', '-static', '-o', exe, obj], { encoding: 'utf8' });
  if (l.status !== 0) throw new Error(`ld failed for ${name}: ${l.stderr}`);
  return exe;
}

describe.skipIf(!HAVE)('hand-made ELFs: ringzero-user against the native run', () => {
  let dir = '';
  const exe: Record<string, string> = {};
  const ENV = ['RINGZERO_TEST=1', 'LANG=C', 'EMPTY='];

  beforeAll(() => {
    dir = makeTempDir('rz-user-');
    for (const [name, src] of Object.entries(PROGRAMS)) exe[name] = assemble(dir, name, PRELUDE + src);
  });
  afterAll(() => removeTempDir(dir));

  /** Runs spec natively and emulated; the outputs and the exit status or signal must agree. */
  function same(spec: RunSpec, native?: Partial<RunSpec>): ReturnType<typeof runEmulated> {
    const n = runNative({ ...spec, ...native });
    const e = runEmulated({ ...spec });
    expect(e.result.reason === 'unimplemented' ? e.result.message : '').toBe('');
    expect(e.stdout).toBe(n.stdout);
    expect({ status: e.status, signal: e.signal }).toEqual({ status: n.status, signal: n.signal });
    return e;
  }

  it('hello: write(2) to stdout and exit status 42', () => {
    const e = same({ program: exe.hello, argv: [exe.hello], env: ENV });
    expect(e.stdout).toBe('hello, world\n');
    expect(e.status).toBe(42);
  });

  it('args: argc, argv, envp and auxv (AT_PAGESZ/PHENT/PHNUM/PHDR/ENTRY/PLATFORM/EXECFN/RANDOM/SECURE/UID)', () => {
    const e = same({ program: exe.args, argv: [exe.args, 'one', '', 'three with spaces', 'ünïcödé'], env: ENV });
    expect(e.stdout).toContain('x86_64\n');
    expect(e.stdout.split('\n')[0]).toBe('0000000000000005');
  });

  it('files: open/fstat/read/lseek/pread/close/openat(O_CREAT)/write/writev/readv/newfstatat/access/unlink and errors', () => {
    const input = path.join(dir, 'input.txt');
    fs.writeFileSync(input, 'The quick brown fox jumps over the lazy dog.\n');
    const e = same(
      { program: exe.files, argv: [exe.files, input, path.join(dir, 'out-emu')], env: ENV },
      { argv: [exe.files, input, path.join(dir, 'out-native')] },
    );
    expect(e.stdout).toContain('The quick brown fox');
    expect(e.stdout).toContain('fffffffffffffffe\n'); // -ENOENT
    expect(fs.existsSync(path.join(dir, 'out-emu'))).toBe(false);
  });

  it('memory: brk grow/shrink, mmap/munmap/mprotect/MAP_FIXED, then SIGSEGV on a read-only page', () => {
    const e = same({ program: exe.memory, argv: [exe.memory], env: ENV });
    expect(e.signal).toBe(11);
    expect(e.result.message).toMatch(/write at 0x[0-9a-f]+ \(protection violation\)/);
  });

  it('fds: pipe2, dup2, dup, fcntl F_GETFD/F_SETFD, close, EOF after the writer closes', () => {
    const e = same({ program: exe.fds, argv: [exe.fds], env: ENV });
    expect(e.stdout).toMatch(/through a pipe\n0+9\nthrough dup2\n/);
  });

  it('cat: read(2) from stdin until EOF, byte for byte', () => {
    const input = new Uint8Array(200_000).map((_, i) => (i * 7919) & 0xff);
    const e = same({ program: exe.cat, argv: [exe.cat], env: ENV, stdin: input });
    expect(e.stdout.length).toBe(input.length);
  });

  it('env: getcwd/chdir/uname/getdents64/clock_gettime/getrandom/getuid/ioctl TCGETS on a pipe', () => {
    const sub = path.join(dir, 'listing');
    fs.mkdirSync(sub, { recursive: true });
    for (const f of ['a', 'bb', 'ccc']) fs.writeFileSync(path.join(sub, f), f);
    fs.mkdirSync(path.join(sub, 'sub'), { recursive: true });
    const e = same({ program: exe.env, argv: [exe.env], env: ENV, cwd: sub });
    expect(e.stdout).toContain(`${sub}\n`);
    expect(e.stdout).toContain('Linux\n');
  });

  it('faults become the signals Linux sends: UD2 SIGILL, #DE SIGFPE, INT3 SIGTRAP, NULL read SIGSEGV', () => {
    expect(same({ program: exe.ud2, argv: [exe.ud2], env: ENV }).signal).toBe(4);
    expect(same({ program: exe.divzero, argv: [exe.divzero], env: ENV }).signal).toBe(8);
    expect(same({ program: exe.int3, argv: [exe.int3], env: ENV }).signal).toBe(5);
    const segv = same({ program: exe.segv, argv: [exe.segv], env: ENV });
    expect(segv.signal).toBe(11);
    expect(segv.result.status).toBe(128 + 11);
  });

  it('self-modifying code runs the patched instruction (decode cache invalidated by the write)', () => {
    const e = same({ program: exe.smc, argv: [exe.smc], env: ENV });
    expect(e.stdout).toBe('0000000000001000\n0000000000002111\n0000000000003222\n');
  });

  it('exit status is truncated to 8 bits like the kernel does', () => {
    expect(same({ program: exe.exit256, argv: [exe.exit256], env: ENV }).status).toBe(7);
  });
});


describe.skipIf(!HAVE)('hand-made i386 ELFs (INT 0x80): ringzero-user against the native run', () => {
  let dir = '';
  const exe: Record<string, string> = {};
  const ENV = ['RINGZERO_TEST=1', 'LANG=C'];
  let native32 = true;

  beforeAll(() => {
    dir = makeTempDir('rz-user32-');
    for (const [name, src] of Object.entries(PROGRAMS32)) exe[name] = assemble32(dir, name, PRELUDE32 + src);
    // The host kernel must run i386 programs (IA32 emulation) to be the oracle.
    native32 = spawnSync(exe.hello32).status === 42;
    if (!native32) console.warn('SKIPPED: the host kernel does not run i386 programs: the 32-bit ELF tests have no oracle');
  });
  afterAll(() => removeTempDir(dir));

  function same(spec: RunSpec, native?: Partial<RunSpec>): ReturnType<typeof runEmulated> | null {
    if (!native32) return null;
    const n = runNative({ ...spec, ...native });
    const e = runEmulated({ ...spec });
    expect(e.result.reason === 'unimplemented' ? e.result.message : '').toBe('');
    expect(e.stdout).toBe(n.stdout);
    expect({ status: e.status, signal: e.signal }).toEqual({ status: n.status, signal: n.signal });
    return e;
  }

  it('hello32: write and exit_group through INT 0x80', () => {
    const e = same({ program: exe.hello32, argv: [exe.hello32], env: ENV });
    if (e) expect(e.stdout).toBe('hello from i386\n');
  });

  it('args32: argc, argv, envp and the i386 auxv (AT_PLATFORM i686)', () => {
    const e = same({ program: exe.args32, argv: [exe.args32, 'x', 'y z'], env: ENV });
    if (e) expect(e.stdout).toContain('i686\n');
  });

  it('files32: open/fstat64/read/_llseek/pread64/close/openat/writev/stat64/unlink', () => {
    const input = path.join(dir, 'input.txt');
    fs.writeFileSync(input, 'Pack my box with five dozen liquor jugs.\n');
    const e = same({ program: exe.files32, argv: [exe.files32, input, path.join(dir, 'o-emu')], env: ENV }, { argv: [exe.files32, input, path.join(dir, 'o-native')] });
    if (e) expect(e.stdout).toContain('Pack my box');
  });

  it('memory32: brk, mmap2, munmap, mprotect and SIGSEGV, all below 4 GiB', () => {
    const e = same({ program: exe.memory32, argv: [exe.memory32], env: ENV });
    if (e) expect(e.signal).toBe(11);
  });

  it('cat32 copies stdin; divzero32 gets SIGFPE', () => {
    const input = new Uint8Array(70_000).map((_, i) => (i * 31) & 0xff);
    const e = same({ program: exe.cat32, argv: [exe.cat32], env: ENV, stdin: input });
    if (e) expect(e.stdout.length).toBe(input.length);
    const d = same({ program: exe.divzero32, argv: [exe.divzero32], env: ENV });
    if (d) expect(d.signal).toBe(8);
  });
});
