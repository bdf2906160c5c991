; Triple fault: an IDT whose limit excludes every vector turns INT3 into #GP, the #GP into a
; double fault and the double fault into a shutdown (QEMU with -no-reboot exits; the vCPU
; returns EXIT_SHUTDOWN).
%include "lib.inc"

_start:
  mov esp, stack0_top
  call setup32
  PRINT "tf: before the triple fault", 10
  call flush
  lidt [idt_empty]
  int3
  PRINT "not reached", 10
  mov eax, 0x23
  jmp exit

idt_empty:
  dw 0
  dd idt

align 16
stack0: times 1024 db 0
stack0_top:
