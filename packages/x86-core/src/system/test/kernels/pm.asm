; Protected-mode kernel: segment loads and their faults, exceptions with error codes, INT n and
; gate DPL, far transfers to 16-bit code, ring 3 through IRET and back through a call gate,
; I/O and privileged instructions at CPL 3, 32-bit paging faults with CR2 (WP, U/S), and a
; return to real mode (IVT interrupt) and back.
%include "lib.inc"

_start:
  mov esp, stack0_top
  call setup32
  PRINT "pm: setup ok", 10

  ; --- #UD, #DE, #BP (trap: EIP after int3)
  RESUME .a1
  ud2
.a1:
  RESUME .a2
  xor ecx, ecx
  div ecx
.a2:
  RESUME 0
  mov eax, 3
  mov ebx, int3_handler
  mov cl, 0x8e
  call set_gate
  int3
  PRINT "after int3", 10

  ; --- segment loads: beyond the GDT, not present, DPL, null SS, null DS use
  RESUME .b1
  mov ax, 0x1230
  mov ds, ax
.b1:
  RESUME .b2
  mov ax, SEL_NOTPRESENT
  mov es, ax
.b2:
  RESUME .b3
  mov ax, SEL_CODE32 ; code segment into SS
  mov ss, ax
.b3:
  RESUME .b4
  xor eax, eax
  mov ss, ax
.b4:
  RESUME .b5
  mov ax, SEL_DATA32 | 3 ; RPL 3 > DPL 0 into DS
  mov ds, ax
.b5:
  ; LAR / LSL / VERR / VERW
  mov eax, 0x11111111
  mov bx, SEL_CODE32
  lar eax, bx
  PRINT "lar code32 "
  PHEX eax
  lsl eax, bx
  PRINT " lsl "
  PHEX eax
  mov bx, SEL_TSS
  lsl eax, bx
  PRINT " lsl tss "
  PHEX eax
  pushfd
  pop eax
  and eax, 0x40
  PRINT " zf "
  PHEX eax
  mov bx, 0x1238
  lar eax, bx
  pushfd
  pop eax
  and eax, 0x40
  PRINT " lar bad zf "
  PHEX eax
  mov bx, SEL_CODE32
  verw bx
  pushfd
  pop eax
  and eax, 0x40
  PRINT " verw code zf "
  PHEX eax
  NL

  ; --- INT n through an absent gate and a DPL 0 gate (fine at CPL 0)
  RESUME .c1
  int 0x77
.c1:
  mov eax, 0x40
  mov ebx, int40_handler
  mov cl, 0xee ; DPL 3 interrupt gate
  call set_gate
  mov eax, 0x41
  mov ebx, int40_handler
  mov cl, 0x8e ; DPL 0 interrupt gate
  call set_gate
  mov eax, 0x12345678
  int 0x40
  PRINT "int40 returned eax="
  PHEX eax
  NL
  ; IDT limit: vector beyond the limit -> #GP(vec*8+2)
  lidt [idtr_small]
  RESUME .c2
  mov dword [saved_vec], 0
  int 0x60
.c2:
  lidt [idtr]

  ; --- far jump to 16-bit code and a far return back
  call SEL_CODE32:.c3 ; a far call within 32-bit code
.c3:
  ; (the far call pushed CS:EIP; pop them)
  pop eax
  pop ebx
  PRINT "far call pushed "
  PHEX ebx
  PRINT ":"
  PHEX eax
  NL
  jmp SEL_CODE16:code16 - 0x100000
back_from16:
  mov ax, SEL_DATA32
  mov ds, ax
  mov es, ax
  PRINT "back from 16-bit code, ax was "
  PHEX ecx
  NL

  ; --- ring 3 via IRET
  mov eax, SEL_CALLGATE
  ; call gate at 0x60 -> SEL_CODE32:gate_target, DPL 3, 32-bit (type 0xc)
  mov ebx, gate_target
  mov word [gdt + 0x60], bx
  mov word [gdt + 0x62], SEL_CODE32
  mov byte [gdt + 0x64], 0
  mov byte [gdt + 0x65], 0xec
  shr ebx, 16
  mov word [gdt + 0x66], bx
  push SEL_UDATA32
  push stack3_top
  push 0x002 ; IF=0 (QEMU's PIT would interrupt), IOPL 0
  push SEL_UCODE32
  push ring3
  iret

ring3:
  ; the IRET to CPL 3 nulled DS/ES/FS/GS (DPL 0 < CPL): a data access through them would #GP
  mov ax, SEL_UDATA32
  mov ds, ax
  mov es, ax
  ; at CPL 3: I/O and privileged instructions fault; INT to a DPL 0 gate faults
  mov eax, cs
  mov [saved_cs3], eax
  RESUME .r1
  mov dx, 0x80
  out dx, al
.r1:
  RESUME .r2
  hlt
.r2:
  RESUME .r3
  cli
.r3:
  RESUME .r4
  mov eax, cr0
.r4:
  RESUME .r5
  int 0x41
.r5:
  mov eax, 0x3333
  int 0x40 ; DPL 3 gate: works, handler runs at CPL 0 on the TSS stack
  RESUME .r6
  mov ax, SEL_DATA32
  mov ds, ax ; DPL 0 data from CPL 3
.r6:
  ; back to ring 0 through the call gate
  call SEL_CALLGATE:0
gate_return3:
  jmp gate_return3

gate_target:
  ; at CPL 0; stack has SS3, ESP3, CS3, EIP3
  mov ax, SEL_DATA32
  mov ds, ax
  mov es, ax
  PRINT "call gate: cs3="
  mov eax, [esp + 4]
  PHEX eax
  PRINT " ss3="
  mov eax, [esp + 12]
  PHEX eax
  PRINT " esp3 ok="
  mov eax, [esp + 8]
  cmp eax, stack3_top
  sete al
  movzx eax, al
  PHEX eax
  PRINT " my cs="
  mov eax, cs
  PHEX eax
  NL
  mov esp, stack0_top
  mov ax, SEL_DATA32
  mov ss, ax

  ; --- SYSENTER / SYSEXIT (SYSENTER_CS = 0x20: kernel CS 0x20, SS 0x28; user CS 0x33, SS 0x3b)
  mov ecx, 0x174
  mov eax, 0x20
  xor edx, edx
  wrmsr
  mov ecx, 0x175
  mov eax, stack0_top - 64
  wrmsr
  mov ecx, 0x176
  mov eax, sysenter_entry
  wrmsr
  mov ecx, stack3_top
  mov edx, ring3_sys
  sysexit
ring3_sys:
  mov ebx, cs
  mov esi, ss
  mov edi, esp
  sysenter
sysenter_entry:
  mov eax, cs
  PRINT "sysenter: cs="
  PHEX eax
  mov eax, ss
  PRINT " ss="
  PHEX eax
  PRINT " esp ok="
  cmp esp, stack0_top - 64
  sete al
  movzx eax, al
  PHEX eax
  PRINT " from cs="
  PHEX ebx
  PRINT " ss="
  PHEX esi
  PRINT " esp ok="
  cmp edi, stack3_top
  sete al
  movzx eax, al
  PHEX eax
  NL
  jmp SEL_CODE32:.back
.back:
  mov ax, SEL_DATA32
  mov ss, ax
  mov esp, stack0_top

  ; --- 32-bit paging with 4 KiB pages: identity map 0..4 MiB, page 0x300000 read-only,
  ; 0x301000 not present, 0x302000 user.
  mov edi, pd
  mov ecx, 1024
  xor eax, eax
  rep stosd
  mov dword [pd], pt0 + 3
  mov edi, pt0
  mov eax, 3
  mov ecx, 1024
.pt:
  stosd
  add eax, 0x1000
  loop .pt
  mov dword [pt0 + 0x300 * 4], 0x300000 + 1   ; read-only supervisor
  mov dword [pt0 + 0x301 * 4], 0              ; not present
  mov dword [pt0 + 0x302 * 4], 0x302000 + 7   ; user
  mov dword [pt0 + 0x303 * 4], 0              ; not present
  mov eax, pd
  mov cr3, eax
  mov eax, cr0
  or eax, 0x80000000
  mov cr0, eax
  PRINT "paging on", 10
  mov dword [0x300000], 1 ; WP=0: supervisor writes to read-only pages are allowed
  mov eax, cr0
  or eax, 0x10000
  mov cr0, eax
  RESUME .p1
  mov dword [0x300004], 1
.p1:
  RESUME .p2
  mov eax, [0x301008]
.p2:
  RESUME .p3
  mov byte [0x301ffe], 7
.p3:
  ; accessed/dirty bits
  mov eax, [pt0 + 0x302 * 4]
  PRINT "pte before "
  PHEX eax
  mov dword [0x302010], 5
  invlpg [0x302010]
  mov eax, [pt0 + 0x302 * 4]
  PRINT " after "
  PHEX eax
  NL
  ; a write that crosses into the absent page faults on the second page and writes nothing
  mov dword [0x302ffc], 0
  RESUME .p4
  mov dword [0x302ffe], 0xaabbccdd
.p4:
  mov eax, [0x302ffc]
  PRINT "split write left "
  PHEX eax
  NL
  mov eax, cr0
  and eax, 0x7fffffff
  mov cr0, eax

  ; --- back to real mode: 16-bit PM code, clear PE, real-mode IVT interrupt, and back
  jmp SEL_CODE16:to_real - 0x100000
real_done:
  mov ax, SEL_DATA32
  mov ds, ax
  mov es, ax
  mov ss, ax
  mov esp, stack0_top
  lidt [idtr]
  PRINT "back in pm, real-mode int returned "
  PHEX ecx
  NL

  PRINT "pm: done", 10
  mov eax, 0x21
  jmp exit

int3_handler:
  PRINT "int3 at "
  mov eax, [esp]
  PHEX eax
  NL
  iret

int40_handler:
  PRINT "int40 from cs="
  mov ebx, [esp + 4]
  PHEX ebx
  PRINT " eax="
  PHEX eax
  mov eax, cs
  PRINT " cs="
  PHEX eax
  NL
  mov eax, 0xabcd
  iret

idtr_small:
  dw 0x40 * 8 + 7
  dd idt

saved_vec: dd 0
saved_cs3: dd 0

bits 16
code16:
  ; running in 16-bit protected mode
  mov ax, 0x5a5a
  mov cx, ax
  jmp dword SEL_CODE32:back_from16

to_real:
  mov ax, SEL_DATA16
  mov ds, ax
  mov es, ax
  mov ss, ax
  mov eax, cr0
  and eax, 0xfffffffe
  mov cr0, eax
  jmp 0xffff:real_entry - 0x100000 + 0x10

real_entry:
  ; real mode, CS = 0xffff (base 0xffff0: reaches the kernel above 1 MiB with A20 on)
  xor ax, ax
  mov ss, ax
  mov sp, 0x7000
  mov ds, ax
  mov es, ax
  mov word [0x50 * 4], real_int50 - 0x100000 + 0x10
  mov word [0x50 * 4 + 2], 0xffff
  lidt [cs:idtr_real - 0x100000 + 0x10]
  xor cx, cx
  pushf
  pop bx
  int 0x50
  mov al, 'R'
  call putc_real
  mov al, 10
  call putc_real
  lgdt [cs:gdtr - 0x100000 + 0x10]
  mov eax, cr0
  or al, 1
  mov cr0, eax
  jmp dword SEL_CODE32:real_done

putc_real:
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

real_int50:
  mov cx, 0x5050
  mov bp, sp
  mov ax, [bp + 4] ; pushed FLAGS
  iret
bits 32

align 4096
pd: times 1024 dd 0
pt0: times 1024 dd 0
stack0: times 4096 db 0
stack0_top:
stack3: times 4096 db 0
stack3_top:
