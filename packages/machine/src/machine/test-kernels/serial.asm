; Multiboot test kernel: sets up the COM1 divisor, prints a line by polling LSR.THRE, exits through isa-debug-exit.
bits 32
org 0x100000
MB_MAGIC equ 0x1BADB002
MB_FLAGS equ 0x00010003
align 4
hdr:
  dd MB_MAGIC, MB_FLAGS, -(MB_MAGIC + MB_FLAGS)
  dd hdr, 0x100000, load_end, bss_end, start
start:
  mov esp, stack_top
  call com1_init
  mov esi, msg
  call puts
  cmp eax, eax
  mov dx, 0xf4
  mov al, 0x10
  out dx, al
  hlt
%include "com1.inc"
msg: db 'Hello from a multiboot kernel', 13, 10, 0
load_end:
  times 256 db 0
stack_top:
bss_end:
