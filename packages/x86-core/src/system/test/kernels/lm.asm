; Long-mode kernel: the switch from protected mode to IA-32e (PAE, EFER.LME, CR0.PG, far jump
; to a 64-bit code segment), 64-bit IDT delivery with error codes and CR2 (not present, NX,
; user/supervisor, non-canonical #GP), IRETQ to ring 3 with a 64-bit TSS, INT from ring 3,
; SYSCALL/SYSRET round trips with STAR/LSTAR/SFMASK, a double fault on an IST stack,
; SWAPGS and the FS/GS base MSRs, compatibility mode, and the way back to protected mode.
%include "lib.inc"

%macro PRINT64 1+
  jmp %%over
%%str: db %1, 0
%%over:
  push rsi
  lea rsi, [rel %%str]
  call puts64
  pop rsi
%endmacro

%macro PHEX64 1
  push rax
  mov rax, %1
  call puthex64
  pop rax
%endmacro

%macro NL64 0
  push rax
  mov al, 10
  call putc64
  pop rax
%endmacro

_start:
  mov esp, stack0_top
  call setup32
  PRINT "lm: setup ok", 10
  ; 4-level tables: PML4[0] -> PDPT, PDPT[0] -> PD, PD[0] -> PT (4 KiB pages for 0..2 MiB),
  ; PD[1] = 2 MiB page at 2 MiB (kernel, tables, stacks), PD[2..] unmapped.
  mov edi, pml4
  mov ecx, 4 * 1024
  xor eax, eax
  rep stosd
  mov dword [pml4], pdpt + 7
  mov dword [pdpt], pd + 7
  mov dword [pd], pt + 7
  mov dword [pd + 8], 0x200000 + 0x87 ; 2 MiB page, user (for the ring-3 code/stack)
  mov dword [pd + 16], 0x400000 + 0x83 ; 2 MiB page, supervisor only
  mov edi, pt
  mov eax, 3
  mov ecx, 512
.pt:
  stosd
  mov dword [edi], 0
  add edi, 4
  add eax, 0x1000
  loop .pt
  ; the kernel image is at 1 MiB: user-accessible so that ring 3 can run it
  mov edi, pt + 0x100 * 8
  mov ecx, 0x100
.u:
  or dword [edi], 4
  add edi, 8
  loop .u
  mov dword [pt + 0x10 * 8], 0          ; 0x10000 not present
  mov dword [pt + 0x11 * 8 + 4], 0x80000000 ; 0x11000 NX
  mov eax, cr4
  or eax, 0x20 ; PAE
  mov cr4, eax
  mov eax, pml4
  mov cr3, eax
  mov ecx, 0xc0000080
  rdmsr
  or eax, 0x901 ; LME, NXE, SCE
  wrmsr
  mov eax, cr0
  or eax, 0x80000000
  mov cr0, eax
  ; compatibility mode now (CS is still 32-bit)
  mov ecx, 0xc0000080
  rdmsr
  PRINT "efer "
  PHEX eax
  NL
  jmp SEL_CODE64:long64

bits 64
putc64:
  push rdx
  push rax
  mov dx, 0x3fd
.w:
  in al, dx
  test al, 0x40 ; TEMT: the previous character has left (QEMU may retry a write later)
  jz .w
  pop rax
  mov dx, 0x3f8
  out dx, al
  pop rdx
  ret

puts64:
  push rax
.l:
  lodsb
  test al, al
  jz .d
  call putc64
  jmp .l
.d:
  pop rax
  ret

puthex64:
  push rcx
  push rax
  mov ecx, 16
.l:
  rol rax, 4
  push rax
  and al, 0xf
  add al, '0'
  cmp al, '9'
  jbe .p
  add al, 7
.p:
  call putc64
  pop rax
  loop .l
  pop rax
  pop rcx
  ret

; gate64(vector rax, handler rbx, type/dpl byte cl, ist dl)
gate64:
  push rdi
  mov rdi, rax
  shl rdi, 4
  add rdi, idt64
  mov word [rdi], bx
  mov word [rdi + 2], SEL_CODE64
  mov byte [rdi + 4], dl
  mov byte [rdi + 5], cl
  push rbx
  shr rbx, 16
  mov word [rdi + 6], bx
  shr rbx, 16
  mov dword [rdi + 8], ebx
  mov dword [rdi + 12], 0
  pop rbx
  pop rdi
  ret

%assign i 0
%rep 32
x64_stub_ %+ i:
%if i = 8 || (i >= 10 && i <= 14) || i = 17
%else
  push 0
%endif
  push i
  jmp x64_common
%assign i i+1
%endrep

x64_stubs:
%assign i 0
%rep 32
  dq x64_stub_ %+ i
%assign i i+1
%endrep

; frame: [rsp] vec, +8 err, +16 rip, +24 cs, +32 rflags, +40 rsp, +48 ss
x64_common:
  push rax
  PRINT64 "exc "
  mov rax, [rsp + 8]
  call puthex64
  PRINT64 " err="
  mov rax, [rsp + 16]
  call puthex64
  PRINT64 " at "
  mov rax, [rsp + 32]
  call puthex64
  PRINT64 ":"
  mov rax, [rsp + 24]
  call puthex64
  cmp qword [rsp + 8], 14
  jne .nocr2
  PRINT64 " cr2="
  mov rax, cr2
  call puthex64
.nocr2:
  cmp qword [rsp + 8], 8
  jne .nodf
  PRINT64 " rsp-on-ist="
  lea rax, [rsp + 24]
  sub rax, ist1_top - 64
  call puthex64
.nodf:
  NL64
  mov rax, [rel resume64]
  test rax, rax
  jz .halt
  mov [rsp + 24], rax
  mov qword [rel resume64], 0
  pop rax
  add rsp, 16
  iretq
.halt:
  PRINT64 "unexpected exception", 10
  mov eax, 0x7f
  mov dx, 0xf4
  out dx, eax
  hlt

%macro RESUME64 1
  push rax
  lea rax, [rel %1]
  mov [rel resume64], rax
  pop rax
%endmacro

long64:
  mov ax, SEL_DATA32
  mov ds, ax
  mov es, ax
  mov ss, ax
  mov rsp, stack0_top
  PRINT64 "in 64-bit mode", 10
  ; 64-bit IDT
  xor eax, eax
.g:
  mov rbx, [x64_stubs + rax * 8]
  mov cl, 0x8e
  xor edx, edx
  call gate64
  inc eax
  cmp eax, 32
  jb .g
  lidt [idtr64]
  ; 64-bit TSS: descriptor at 0x40 (16 bytes), RSP0 and IST1
  mov rax, tss64
  mov word [tss_desc], tss64_end - tss64 - 1
  mov word [tss_desc + 2], ax
  shr rax, 16
  mov byte [tss_desc + 4], al
  mov byte [tss_desc + 5], 0x89
  mov byte [tss_desc + 6], 0
  mov byte [tss_desc + 7], ah
  shr rax, 16
  mov dword [tss_desc + 8], eax
  mov dword [tss_desc + 12], 0
  mov rax, stack0_top
  mov [tss64 + 4], rax
  mov rax, ist1_top
  mov [tss64 + 0x24], rax
  mov ax, SEL_TSS
  ltr ax
  PRINT64 "tss loaded", 10

  ; --- faults
  RESUME64 .f1
  ud2
.f1:
  RESUME64 .f2
  mov rax, 0x8000000000000000
  mov rbx, [rax]
.f2:
  RESUME64 .f3
  mov rax, [0x10008]
.f3:
  RESUME64 .f4
  mov rax, 0x11000
  mov byte [rax], 0xc3 ; ret
  call rax ; NX: instruction fetch fault
.f4:
  RESUME64 .f5
  mov rax, [0x600000] ; not mapped (PD[3] empty)
.f5:
  RESUME64 .f6
  mov ax, 0x1238
  mov ds, ax
.f6:

  ; --- compatibility mode and back
  push SEL_CODE32
  lea rax, [rel compat32]
  push rax
  retfq
compat_back:
  PRINT64 "back from compatibility mode, ecx="
  PHEX64 rcx
  NL64

  ; --- FS/GS bases and SWAPGS
  mov ecx, 0xc0000100
  mov eax, 0x12345678
  mov edx, 0x00007fff
  wrmsr
  mov ecx, 0xc0000102
  mov eax, 0xabcd0000
  mov edx, 0xffffffff
  wrmsr
  swapgs
  mov ecx, 0xc0000101
  rdmsr
  PRINT64 "gs base after swapgs "
  PHEX64 rdx
  PRINT64 ":"
  PHEX64 rax
  mov ecx, 0xc0000100
  rdmsr
  PRINT64 " fs base "
  PHEX64 rax
  NL64
  swapgs
  ; (#GP for unknown MSRs and non-canonical bases is checked in vcpu.test.ts: QEMU's TCG
  ; accepts both silently, unlike KVM and the SDM)

  ; --- SYSCALL/SYSRET: STAR[47:32] = kernel CS (0x28, SS 0x30), STAR[63:48] = 0x30 so that
  ; SYSRETQ loads CS = 0x40|3... we use user selectors at 0x58 (code64) and 0x50+... see below.
  ; STAR[63:48] = base: SYSRET to 64-bit: CS = base + 16, SS = base + 8.
  ; With base = 0x48: CS = 0x58|3 (code64 ring 3), SS = 0x50|3 ... 0x50 is not present, so use
  ; the data segment copy at 0x68 via base 0x60? Pick base = 0x48 and patch 0x50 to a DPL-3 data.
  mov dword [gdt + 0x50], 0x0000ffff
  mov dword [gdt + 0x54], 0x00cff300
  mov ecx, 0xc0000081
  xor eax, eax
  mov edx, 0x00480028 ; SYSRET base 0x48, SYSCALL CS 0x28 (SS 0x30)
  wrmsr
  ; 0x30 must be a data segment for SYSCALL's SS (it is code32 ring 3 in the GDT; SYSCALL
  ; does not check it, SS just gets flat attributes)
  mov ecx, 0xc0000082
  lea rax, [rel syscall_entry]
  mov rdx, rax
  shr rdx, 32
  wrmsr
  mov ecx, 0xc0000084
  mov eax, 0x200 ; SFMASK: clear IF
  xor edx, edx
  wrmsr
  ; user INT gate 0x80 (DPL 3)
  mov eax, 0x80
  lea rbx, [rel int80_handler]
  mov cl, 0xee
  xor edx, edx
  call gate64
  ; IRETQ to ring 3
  mov rax, rsp
  push SEL_UDATA32
  push user_stack_top
  push 0x002
  push SEL_UCODE64
  lea rax, [rel user64]
  push rax
  iretq

user64:
  mov rax, 0x1111
  int 0x80
  mov rdi, 0x2222
  syscall
  mov rdi, 0x3333
  syscall
  ; privileged from ring 3
  RESUME64 .u1
  mov rax, cr3
.u1:
  RESUME64 .u2
  swapgs
.u2:
  RESUME64 .u3
  mov rax, [0x400000] ; supervisor-only page
.u3:
  mov rdi, 0xdead
  syscall ; asks the kernel to continue in ring 0

int80_handler:
  PRINT64 "int80 rax="
  PHEX64 rax
  PRINT64 " cs="
  mov rax, [rsp + 8]
  PHEX64 rax
  PRINT64 " ss="
  mov rax, [rsp + 32]
  PHEX64 rax
  PRINT64 " rsp="
  mov rax, [rsp + 24]
  PHEX64 rax
  PRINT64 " my rsp ok="
  mov rax, rsp
  add rax, 40
  cmp rax, stack0_top
  sete al
  movzx eax, al
  PHEX64 rax
  NL64
  iretq

syscall_entry:
  ; RCX = user RIP, R11 = user RFLAGS; still on the user stack
  mov r12, rsp
  mov rsp, stack0_top
  cmp rdi, 0xdead
  je kernel_again
  PRINT64 "syscall rdi="
  PHEX64 rdi
  PRINT64 " r11="
  PHEX64 r11
  mov rax, cs
  PRINT64 " cs="
  PHEX64 rax
  mov rax, ss
  PRINT64 " ss="
  PHEX64 rax
  pushfq
  pop rax
  and eax, 0x200
  PRINT64 " if="
  PHEX64 rax
  NL64
  mov rsp, r12
  o64 sysret

kernel_again:
  mov ax, SEL_DATA32 ; SYSCALL left SS = STAR + 8 (0x30, a code segment here)
  mov ss, ax
  mov rax, cs
  PRINT64 "back in ring 0, cs="
  PHEX64 rax
  NL64
  ; --- double fault on IST1: make the #PF gate not present, then fault
  mov byte [idt64 + 14 * 16 + 5], 0x0e ; P = 0
  mov eax, 8
  lea rbx, [rel x64_stub_8]
  mov cl, 0x8e
  mov dl, 1
  call gate64
  RESUME64 .d1
  mov rax, [0x10000]
.d1:
  mov byte [idt64 + 14 * 16 + 5], 0x8e

  ; --- leave long mode: compatibility mode, paging off, LME off
  push SEL_CODE32
  lea rax, [rel leave32]
  push rax
  retfq

bits 32
compat32:
  ; compatibility mode: 32-bit code under a 64-bit OS
  mov ecx, 0xc0c0c0c0
  push SEL_CODE64
  push compat_back
  retf

leave32:
  mov ax, SEL_DATA32
  mov ds, ax
  mov ss, ax
  mov esp, stack0_top
  mov eax, cr0
  and eax, 0x7fffffff
  mov cr0, eax
  mov ecx, 0xc0000080
  rdmsr
  and eax, ~0x100
  wrmsr
  rdmsr
  PRINT "left long mode, efer "
  PHEX eax
  NL
  lidt [idtr]
  PRINT "lm: done", 10
  mov eax, 0x22
  jmp exit

resume64: dq 0

align 16
idt64:
  times 256 dq 0, 0
idt64_end:
idtr64:
  dw idt64_end - idt64 - 1
  dq idt64

align 16
tss64:
  times 0x68 db 0
tss64_end:

align 4096
pml4: times 512 dq 0
pdpt: times 512 dq 0
pd: times 512 dq 0
pt: times 512 dq 0
stack0: times 4096 db 0
stack0_top:
ist1: times 4096 db 0
ist1_top:
user_stack: times 4096 db 0
user_stack_top:
