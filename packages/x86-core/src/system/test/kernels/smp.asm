; SMP: the bootstrap processor starts the application processors one by one with INIT (assert
; and de-assert) and two startup IPIs through its local APIC's ICR; each AP runs a real-mode
; trampoline at 0x8000 (the SIPI vector 0x08), enters protected mode, enables its own APIC and
; reports its APIC ID (APIC register, CPUID), its IA32_APIC_BASE BSP/enable bits and the CS it
; started with; the last AP sends a fixed IPI to the BSP, which takes it in HLT. Only the BSP
; prints, so the transcript does not depend on how the CPUs interleave.
%include "lib.inc"

APIC equ 0xfee00000
TRAMP equ 0x8000
NCPU equ 3

_start:
  mov esp, stack0_top
  call setup32
  mov eax, 0x40
  mov ebx, ipi_handler
  mov cl, 0x8e
  call set_gate
  mov dword [APIC + 0xf0], 0x1ff
  mov eax, [APIC + 0x20]
  shr eax, 24
  PRINT "smp: bsp apic id "
  PHEX eax
  mov ecx, 0x1b
  rdmsr
  and eax, 0x900
  PRINT " base bits "
  PHEX eax
  NL
  mov esi, tramp
  mov edi, TRAMP
  mov ecx, tramp_end - tramp
  rep movsb

  mov ebx, 1
.next:
  mov dword [started], 0
  mov edx, ebx
  shl edx, 24
  mov [APIC + 0x310], edx
  mov dword [APIC + 0x300], 0x0000c500       ; INIT, level assert
  call wait_icr
  mov [APIC + 0x310], edx
  mov dword [APIC + 0x300], 0x00008500       ; INIT level de-assert (ignored)
  call wait_icr
  mov [APIC + 0x310], edx
  mov dword [APIC + 0x300], 0x00004600 | (TRAMP >> 12)  ; SIPI
  call wait_icr
  mov [APIC + 0x310], edx
  mov dword [APIC + 0x300], 0x00004600 | (TRAMP >> 12)  ; second SIPI (ignored once running)
  call wait_icr
.w:
  pause
  cmp dword [started], 0
  je .w
  PRINT "ap "
  PHEX ebx
  PRINT " up: apic id "
  PHEX dword [ap_id]
  PRINT " cpuid id "
  PHEX dword [ap_cpuid]
  PRINT " base bits "
  PHEX dword [ap_base]
  PRINT " start cs "
  PHEX dword [ap_cs]
  NL
  inc ebx
  cmp ebx, NCPU
  jb .next

.wait:
  cli
  cmp dword [ipi_count], 0
  jne .got
  sti
  hlt
  jmp .wait
.got:
  PRINT "bsp got the IPI from the last ap: count "
  PHEX dword [ipi_count]
  PRINT " aps "
  PHEX dword [ap_count]
  NL
  PRINT "smp: done", 10
  mov eax, 0x2c
  jmp exit

wait_icr:
  test dword [APIC + 0x300], 0x1000
  jnz wait_icr
  ret

ipi_handler:
  inc dword [ipi_count]
  mov dword [APIC + 0xb0], 0
  iret

; ---- AP trampoline, copied to 0x8000 (runs at CS = 0x0800, IP = 0)
bits 16
tramp:
  cli
  mov ax, cs
  mov ds, ax
  mov [ap_cs_t - tramp], ax
  o32 lgdt [tramp_gdtr - tramp]
  mov eax, cr0
  or eax, 1
  mov cr0, eax
  jmp dword SEL_CODE32:ap32
ap_cs_t: dw 0
tramp_gdtr:
  dw gdt_end - gdt - 1
  dd gdt
tramp_end:
bits 32

ap32:
  mov ax, SEL_DATA32
  mov ds, ax
  mov es, ax
  mov ss, ax
  mov dword [APIC + 0xf0], 0x1ff
  mov eax, [APIC + 0x20]
  shr eax, 24
  mov [ap_id], eax
  mov edi, eax
  mov eax, 1
  cpuid
  shr ebx, 24
  mov [ap_cpuid], ebx
  mov ecx, 0x1b
  rdmsr
  and eax, 0x900
  mov [ap_base], eax
  movzx eax, word [TRAMP + ap_cs_t - tramp]
  mov [ap_cs], eax
  cmp edi, NCPU - 1
  jne .no_ipi
  mov dword [APIC + 0x310], 0
  mov dword [APIC + 0x300], 0x00004040       ; fixed IPI, vector 0x40, to APIC ID 0
.no_ipi:
  lock inc dword [ap_count]
  mov dword [started], 1
.h:
  cli
  hlt
  jmp .h

align 4
started: dd 0
ap_id: dd 0
ap_cpuid: dd 0
ap_base: dd 0
ap_cs: dd 0
ap_count: dd 0
ipi_count: dd 0
stack0: times 4096 db 0
stack0_top:
