; Virtual-8086 mode: entered by IRET with EFLAGS.VM, I/O through the TSS permission bitmap,
; IOPL-sensitive instructions (#GP with IOPL 0: PUSHF, CLI, INT n, IRET; allowed with IOPL 3),
; INT n through a DPL 3 gate with the V86 frame (GS FS DS ES SS ESP EFLAGS CS EIP), and INT3
; (not IOPL-sensitive) to get back to the 32-bit kernel.
%include "lib.inc"

V86_CS equ 0xffff                 ; CS base 0xffff0: IP = linear - 0xffff0 reaches the kernel
%define V86IP(x) ((x) - 0xffff0)

_start:
  mov esp, stack0_top
  call setup32
  ; a TSS with an I/O bitmap: ports 0..0x3ff, all denied except 0x3f8-0x3ff and 0xf4
  mov edi, iobitmap
  mov ecx, 0x80
  mov al, 0xff
  rep stosb
  mov byte [iobitmap + 0x3f8 / 8], 0x00
  and byte [iobitmap + 0xf4 / 8], ~(1 << (0xf4 & 7))
  mov word [tss2 + 0x66], iobitmap - tss2
  mov dword [tss2 + 4], stack0_top
  mov dword [tss2 + 8], SEL_DATA32
  mov eax, tss2
  mov word [tss_desc], tss2_end - tss2 - 1
  mov word [tss_desc + 2], ax
  shr eax, 16
  mov byte [tss_desc + 4], al
  mov byte [tss_desc + 5], 0x89
  mov byte [tss_desc + 7], ah
  mov ax, SEL_TSS
  ltr ax
  ; #GP handler that reloads DS first (V86 exits leave DS = 0), INT3 and INT 0x30 gates (DPL 3)
  mov eax, 13
  mov ebx, gp_v86
  mov cl, 0x8e
  call set_gate
  mov eax, 3
  mov ebx, bp_v86
  mov cl, 0xee
  call set_gate
  mov eax, 0x30
  mov ebx, int30_v86
  mov cl, 0xee
  call set_gate
  PRINT "v86: setup ok", 10

  ; --- phase 1: IOPL 0
  mov dword [phase], 1
  push 0x2222 ; GS
  push 0x1111 ; FS
  push 0x3333 ; DS
  push 0x4444 ; ES
  push 0      ; SS
  push 0x7000 ; ESP
  push 0x20002 ; EFLAGS: VM, IOPL 0
  push V86_CS
  push V86IP(v86_code)
  iret

phase2:
  mov esp, stack0_top
  PRINT "phase 2: IOPL 3", 10
  mov dword [phase], 2
  push 0
  push 0
  push 0
  push 0
  push 0
  push 0x7000
  push 0x23002 ; EFLAGS: VM, IOPL 3
  push V86_CS
  push V86IP(v86_code2)
  iret

done:
  mov esp, stack0_top
  PRINT "v86: done", 10
  mov eax, 0x26
  jmp exit

gp_v86:
  push eax
  mov ax, SEL_DATA32
  mov ds, ax
  mov es, ax
  pop eax
  push 0 ; (error code already pushed by the CPU: this slot is the vector for exc_common)
  mov dword [esp], 13
  jmp exc_common

bp_v86:
  mov ax, SEL_DATA32
  mov ds, ax
  mov es, ax
  PRINT "int3 from v86: cs="
  mov eax, [esp + 4]
  PHEX eax
  PRINT " eflags="
  mov eax, [esp + 8]
  PHEX eax
  PRINT " ss:esp="
  mov eax, [esp + 16]
  PHEX eax
  PRINT ":"
  mov eax, [esp + 12]
  PHEX eax
  PRINT " es="
  mov eax, [esp + 20]
  PHEX eax
  PRINT " ds="
  mov eax, [esp + 24]
  PHEX eax
  PRINT " fs="
  mov eax, [esp + 28]
  PHEX eax
  PRINT " gs="
  mov eax, [esp + 32]
  PHEX eax
  PRINT " my ds="
  mov eax, fs
  PHEX eax
  NL
  cmp dword [phase], 1
  je phase2
  jmp done

int30_v86:
  push eax
  mov ax, SEL_DATA32
  mov ds, ax
  PRINT "int30 from v86, ax="
  pop eax
  PHEX eax
  NL
  iret

phase: dd 0

bits 16
v86putc:
  push dx
  push ax
  mov dx, 0x3fd
.w:
  in al, dx
  test al, 0x40 ; TEMT: the previous character has left (QEMU may retry a write later)
  jz .w
  pop ax
  mov dx, 0x3f8
  out dx, al
  pop dx
  ret

v86_code:
  mov al, 'V'
  call v86putc
  mov al, 10
  call v86putc
  mov word [cs:V86IP(resume_slot)], 0
  ; each faulting instruction resumes at the next label (set through the kernel's [resume])
  mov dword [cs:V86IP(resume)], V86IP(.a)
  out 0x80, al ; denied by the bitmap
.a:
  mov dword [cs:V86IP(resume)], V86IP(.b)
  pushf
.b:
  mov dword [cs:V86IP(resume)], V86IP(.c)
  cli
.c:
  mov dword [cs:V86IP(resume)], V86IP(.d)
  int 0x30
.d:
  mov dword [cs:V86IP(resume)], V86IP(.e)
  iret
.e:
  mov dword [cs:V86IP(resume)], V86IP(.f)
  hlt
.f:
  int3

v86_code2:
  mov al, 'W'
  call v86putc
  mov al, 10
  call v86putc
  pushf
  pop ax
  cli
  sti
  mov ax, 0xbeef
  int 0x30
  int3

resume_slot: dw 0

bits 32
align 16
tss2:
  times 0x68 db 0
iobitmap:
  times 0x80 db 0xff
  db 0xff
tss2_end:

align 16
stack0: times 4096 db 0
stack0_top:
