; 16-bit TSS task switches: CALL to a 16-bit TSS (the new task's IP, FLAGS, registers and
; segments come from the 16-bit layout; back link, NT, busy bits), IRET back to the 32-bit
; task, JMP into the 16-bit task again (it resumes where it left) and a JMP from it back to
; the 32-bit task, which saves the 16-bit task's state in the 16-bit layout; a #GP delivered
; through a task gate to a 16-bit TSS (2-byte error code on its stack).
%include "lib.inc"

SEL_TSS16 equ 0x48
SEL_D16K equ 0x50          ; 16-bit data, base 0x100000 (the image), limit 64 KiB
SEL_TSS16_GP equ 0x70      ; a 16-bit TSS for #GP, reached through a task gate

_start:
  mov esp, stack0_top
  call setup32
  ; descriptors: the 16-bit TSS (type 1, limit 0x2b) and the 16-bit data segment
  mov eax, tss16
  mov word [gdt + SEL_TSS16], 0x2b
  mov word [gdt + SEL_TSS16 + 2], ax
  shr eax, 16
  mov byte [gdt + SEL_TSS16 + 4], al
  mov byte [gdt + SEL_TSS16 + 5], 0x81
  mov byte [gdt + SEL_TSS16 + 6], 0
  mov byte [gdt + SEL_TSS16 + 7], ah
  mov dword [gdt + SEL_D16K], 0x0000ffff
  mov dword [gdt + SEL_D16K + 4], 0x00009310
  ; the 16-bit task's initial state
  mov word [tss16 + 0x0e], task16 - 0x100000
  mov word [tss16 + 0x10], 0x0002
  mov word [tss16 + 0x12], 0x1234           ; AX
  mov word [tss16 + 0x14], 0x0c0c           ; CX
  mov word [tss16 + 0x16], 0x0d0d           ; DX
  mov word [tss16 + 0x18], 0xbbbb           ; BX
  mov word [tss16 + 0x1a], stack16_top - 0x100000
  mov word [tss16 + 0x1c], 0x0b0b           ; BP
  mov word [tss16 + 0x1e], 0x5151           ; SI
  mov word [tss16 + 0x20], 0xd1d1           ; DI
  mov word [tss16 + 0x22], SEL_D16K         ; ES
  mov word [tss16 + 0x24], SEL_CODE16       ; CS
  mov word [tss16 + 0x26], SEL_D16K         ; SS
  mov word [tss16 + 0x28], SEL_D16K         ; DS
  mov word [tss16 + 0x2a], 0                ; LDT
  PRINT "task16: setup ok", 10

  mov eax, 0xaaaa0001
  call SEL_TSS16:0
  PRINT "back from the 16-bit task: eax="
  PHEX eax
  PRINT " seen="
  movzx eax, word [seen_ax]
  PHEX eax
  movzx eax, word [seen_bx]
  PHEX eax
  movzx eax, word [seen_si]
  PHEX eax
  movzx eax, word [seen_ss]
  PHEX eax
  NL
  PRINT "  tss16 type="
  movzx eax, byte [gdt + SEL_TSS16 + 5]
  and eax, 0xf
  PHEX eax
  PRINT " link="
  movzx eax, word [tss16]
  PHEX eax
  PRINT " saved ip="
  movzx eax, word [tss16 + 0x0e]
  PHEX eax
  PRINT " flags="
  movzx eax, word [tss16 + 0x10]
  PHEX eax
  PRINT " ax="
  movzx eax, word [tss16 + 0x12]
  PHEX eax
  pushfd
  pop eax
  and eax, 0x4000
  PRINT " nt="
  PHEX eax
  mov eax, cr0
  and eax, 8
  PRINT " ts="
  PHEX eax
  NL
  clts

  ; JMP into the 16-bit task again: it resumes after its IRET and JMPs back here
  jmp SEL_TSS16:0
main_again:
  PRINT "back again: saved ip="
  movzx eax, word [tss16 + 0x0e]
  PHEX eax
  PRINT " ax="
  movzx eax, word [tss16 + 0x12]
  PHEX eax
  PRINT " cx="
  movzx eax, word [tss16 + 0x14]
  PHEX eax
  PRINT " ds="
  movzx eax, word [tss16 + 0x28]
  PHEX eax
  PRINT " tss16 type="
  movzx eax, byte [gdt + SEL_TSS16 + 5]
  and eax, 0xf
  PHEX eax
  PRINT " main type="
  movzx eax, byte [gdt + SEL_TSS + 5]
  and eax, 0xf
  PHEX eax
  NL
  str ax
  PRINT "  tr="
  movzx eax, ax
  PHEX eax
  NL

  ; a #GP through a task gate to a 16-bit TSS: the 2-byte error code on the new task's stack
  mov eax, tss16_gp
  mov word [gdt + SEL_TSS16_GP], 0x2b
  mov word [gdt + SEL_TSS16_GP + 2], ax
  shr eax, 16
  mov byte [gdt + SEL_TSS16_GP + 4], al
  mov byte [gdt + SEL_TSS16_GP + 5], 0x81
  mov byte [gdt + SEL_TSS16_GP + 6], 0
  mov byte [gdt + SEL_TSS16_GP + 7], ah
  mov word [tss16_gp + 0x0e], gp_task - 0x100000
  mov word [tss16_gp + 0x10], 0x0002
  mov word [tss16_gp + 0x1a], stack16gp_top - 0x100000
  mov word [tss16_gp + 0x22], SEL_D16K
  mov word [tss16_gp + 0x24], SEL_CODE16
  mov word [tss16_gp + 0x26], SEL_D16K
  mov word [tss16_gp + 0x28], SEL_D16K
  mov dword [idt + 13 * 8], SEL_TSS16_GP << 16
  mov dword [idt + 13 * 8 + 4], 0x8500        ; task gate, present, DPL 0
  mov ax, 0x1234                              ; an LDT selector without an LDT: #GP(0x1234)
  mov ds, ax
  PRINT "after the #GP task: err="
  movzx eax, word [gp_err]
  PHEX eax
  PRINT " sp moved by "
  movzx eax, word [gp_sp]
  PHEX eax
  PRINT " link="
  movzx eax, word [tss16_gp]
  PHEX eax
  NL
  PRINT "task16: done", 10
  mov eax, 0x2b
  jmp exit

bits 16
task16:
  mov [seen_ax - 0x100000], ax
  mov [seen_bx - 0x100000], bx
  mov [seen_si - 0x100000], si
  mov [seen_ss - 0x100000], ss
  iret                        ; NT = 1: back to the caller's task
  mov ax, 0x5678
  mov cx, 0x9abc
  jmp SEL_TSS:0

gp_task:
  mov [gp_sp - 0x100000], sp
  pop ax                      ; the error code: 2 bytes on a 16-bit TSS's stack
  mov [gp_err - 0x100000], ax
  mov ax, stack16gp_top - 0x100000
  sub ax, [gp_sp - 0x100000]
  mov [gp_sp - 0x100000], ax
  add dword [tss - 0x100000 + 0x20], 2   ; resume the main task after its 2-byte MOV DS, AX
  iret
  jmp gp_task
bits 32

align 4
gp_err: dw 0
gp_sp: dw 0
seen_ax: dw 0
seen_bx: dw 0
seen_si: dw 0
seen_ss: dw 0
align 16
tss16: times 0x2c db 0
stack16: times 256 db 0
stack16_top:
align 16
tss16_gp: times 0x2c db 0
stack16gp: times 256 db 0
stack16gp_top:
stack0: times 4096 db 0
stack0_top:
