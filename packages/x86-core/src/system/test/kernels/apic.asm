; Local APIC (xAPIC MMIO at 0xfee00000): one-shot timer into HLT, periodic timer, ISR/IRR and
; EOI, TPR blocking a self-IPI until TPR drops, self-NMI through the ICR, the interrupt
; shadow after STI, and the PIC masked so that only the APIC interrupts.
%include "lib.inc"

APIC equ 0xfee00000

_start:
  mov esp, stack0_top
  call setup32
  PRINT "apic: setup ok", 10
  mov al, 0xff
  out 0x21, al
  out 0xa1, al
  mov eax, 0x40
  mov ebx, timer_handler
  mov cl, 0x8e
  call set_gate
  mov eax, 0x45
  mov ebx, ipi_handler
  mov cl, 0x8e
  call set_gate
  mov eax, 2
  mov ebx, nmi_handler
  mov cl, 0x8e
  call set_gate
  mov eax, [APIC + 0x30]
  and eax, 0xff
  PRINT "version "
  PHEX eax
  NL
  mov dword [APIC + 0xf0], 0x1ff ; software enable, spurious vector 0xff
  mov dword [APIC + 0x3e0], 0xb  ; divide by 1
  mov dword [APIC + 0x320], 0x40 ; one-shot, vector 0x40
  mov dword [APIC + 0x380], 200000
  sti
  hlt
  cli
  PRINT "woke up, ticks="
  PHEX dword [ticks]
  mov eax, [APIC + 0x390]
  PRINT " current count="
  PHEX eax
  NL
  ; periodic: three interrupts
  mov dword [APIC + 0x320], 0x20040
  mov dword [APIC + 0x380], 50000
.wait3:
  sti
  hlt
  cli
  cmp dword [ticks], 4
  jb .wait3
  mov dword [APIC + 0x320], 0x10040 ; masked
  mov dword [APIC + 0x380], 0
  PRINT "periodic ticks="
  PHEX dword [ticks]
  NL
  ; TPR 0x50 blocks vector 0x45 (class 4)
  mov dword [APIC + 0x80], 0x50
  mov dword [APIC + 0x300], 0x44045 ; fixed, self, vector 0x45
  sti
  nop
  nop
  cli
  mov eax, [APIC + 0x200 + 0x20] ; IRR bits 32..63
  and eax, 0x20 ; vector 0x45 only (a late periodic tick may also be pending under QEMU)
  PRINT "blocked: ipis="
  PHEX dword [ipis]
  PRINT " irr1="
  PHEX eax
  mov eax, [APIC + 0xa0]
  PRINT " ppr="
  PHEX eax
  NL
  mov dword [APIC + 0x80], 0
  sti
  nop
  cli
  PRINT "after tpr=0: ipis="
  PHEX dword [ipis]
  NL
  ; self-NMI
  mov dword [APIC + 0x300], 0x44400
  nop
  PRINT "nmis="
  PHEX dword [nmis]
  PRINT " nested="
  PHEX dword [nmi_nested]
  NL
  PRINT "apic: done", 10
  mov eax, 0x24
  jmp exit

timer_handler:
  push eax
  inc dword [ticks]
  mov eax, [APIC + 0x100 + 0x20] ; ISR bits 32..63
  mov [isr_seen], eax
  mov dword [APIC + 0xb0], 0
  cmp dword [ticks], 1
  jne .q
  PRINT "timer: isr1="
  PHEX dword [isr_seen]
  mov eax, [APIC + 0x100 + 0x20]
  PRINT " after eoi="
  PHEX eax
  NL
.q:
  pop eax
  iret

ipi_handler:
  inc dword [ipis]
  mov dword [APIC + 0xb0], 0
  iret

nmi_handler:
  inc dword [nmis]
  inc dword [nmi_depth]
  cmp dword [nmi_depth], 1
  je .first
  mov dword [nmi_nested], 1
.first:
  cmp dword [nmis], 1
  jne .out
  ; a second NMI while this one is in service: held until the IRET
  mov dword [APIC + 0x300], 0x44400
  nop
  nop
.out:
  dec dword [nmi_depth]
  iret

nmi_depth: dd 0
nmi_nested: dd 0

ticks: dd 0
ipis: dd 0
nmis: dd 0
isr_seen: dd 0

align 16
stack0: times 4096 db 0
stack0_top:
