; Hardware task switches with 32-bit TSSs: CALL to a TSS descriptor (back link, NT, busy bits,
; CR0.TS) and IRET back to the caller's task, JMP to a task gate, and a double fault delivered
; through a task gate (what Linux's 32-bit kernel uses) with its error code on the new stack.
%include "lib.inc"

SEL_TSS_B equ 0x48
SEL_TSS_DF equ 0x70

%macro TSSDESC 2 ; slot, tss
  mov eax, %2
  mov word [gdt + %1], 0x67
  mov word [gdt + %1 + 2], ax
  shr eax, 16
  mov byte [gdt + %1 + 4], al
  mov byte [gdt + %1 + 5], 0x89
  mov byte [gdt + %1 + 6], 0
  mov byte [gdt + %1 + 7], ah
%endmacro

%macro TSSINIT 3 ; tss, eip, esp
  mov dword [%1 + 0x20], %2
  mov dword [%1 + 0x24], 2
  mov dword [%1 + 0x38], %3
  mov dword [%1 + 0x4c], SEL_CODE32
  mov dword [%1 + 0x48], SEL_DATA32
  mov dword [%1 + 0x50], SEL_DATA32
  mov dword [%1 + 0x54], SEL_DATA32
  mov dword [%1 + 0x58], SEL_DATA32
  mov dword [%1 + 0x5c], SEL_DATA32
  mov word [%1 + 0x66], 0x68
%endmacro

_start:
  mov esp, stack0_top
  call setup32
  TSSDESC SEL_TSS_B, tss_b
  TSSDESC SEL_TSS_DF, tss_df
  TSSINIT tss_b, task_b, stack_b_top
  TSSINIT tss_df, task_df, stack_df_top
  PRINT "task: setup ok", 10
  mov eax, 0xaaaa0001
  mov ebx, 0xbbbb0002
  call SEL_TSS_B:0
  PRINT "back in the main task, eax="
  PHEX eax
  PRINT " ebx="
  PHEX ebx
  mov eax, [gdt + SEL_TSS_B + 4]
  shr eax, 8
  and eax, 0xf
  PRINT " B type="
  PHEX eax
  mov eax, cr0
  and eax, 8
  PRINT " cr0.ts="
  PHEX eax
  pushfd
  pop eax
  and eax, 0x4000
  PRINT " nt="
  PHEX eax
  NL
  clts
  ; double fault through a task gate: #GP with the #GP gate absent -> #NP -> #DF
  mov dword [idt + 8 * 8], SEL_TSS_DF << 16
  mov dword [idt + 8 * 8 + 4], 0x8500
  mov byte [idt + 13 * 8 + 5], 0x0e
  mov ax, 0x1238
fault_here:
  mov ds, ax
  PRINT "not reached", 10
  mov eax, 0x7e
  jmp exit

task_b:
  PRINT "in task B: eax="
  PHEX eax
  str ax
  PRINT " tr="
  PHEX eax
  movzx eax, word [tss_b]
  PRINT " link="
  PHEX eax
  pushfd
  pop eax
  and eax, 0x4000
  PRINT " nt="
  PHEX eax
  mov eax, [tss + 0x28]
  PRINT " saved eax="
  PHEX eax
  NL
  mov eax, 0x12121212
  iret
  PRINT "task B resumed", 10
  jmp $

task_df:
  pop ecx
  PRINT "double fault task: err="
  PHEX ecx
  str ax
  PRINT " tr="
  PHEX eax
  movzx eax, word [tss_df]
  PRINT " link="
  PHEX eax
  mov eax, [tss + 0x20]
  PRINT " saved eip ok="
  cmp eax, fault_eip
  sete al
  movzx eax, al
  PHEX eax
  NL
  PRINT "task: done", 10
  mov eax, 0x27
  jmp exit

fault_eip equ fault_here

align 16
tss_b: times 0x68 db 0
tss_df: times 0x68 db 0
stack_b: times 1024 db 0
stack_b_top:
stack_df: times 1024 db 0
stack_df_top:
stack0: times 4096 db 0
stack0_top:
