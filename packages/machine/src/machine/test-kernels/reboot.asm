; Multiboot test kernel for guest resets: counts its boots in CMOS byte 0x40 (battery-backed, so
; it survives a reset), prints "boot N", and resets the machine a different way each time:
; boot 1 through the i8042 (0xFE to port 0x64), boot 2 through the PCI reset control register
; (0x06 to port 0xCF9), boot 3 by a triple fault (an empty IDT); boot 4 exits through
; isa-debug-exit (0x10, status 0x21). Without -no-reboot QEMU prints boot 1-4; with it, boot 1.
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
  ; count = ++CMOS[0x40]
  mov al, 0x40
  out 0x70, al
  in al, 0x71
  inc al
  mov bl, al
  mov al, 0x40
  out 0x70, al
  mov al, bl
  out 0x71, al
  add bl, '0'
  mov [digit], bl
  mov esi, msg
  call puts
  cmp byte [digit], '1'
  je .kbc
  cmp byte [digit], '2'
  je .cf9
  cmp byte [digit], '3'
  je .triple
  mov dx, 0xf4
  mov al, 0x10
  out dx, al
  hlt
.kbc:
  mov al, 0xfe
  out 0x64, al
  jmp .stuck
.cf9:
  mov dx, 0xcf9
  mov al, 0x06
  out dx, al
  jmp .stuck
.triple:
  lidt [empty_idt]
  int3
.stuck:
  hlt
  jmp .stuck
%include "com1.inc"
align 8
empty_idt:
  dw 0
  dd 0
msg: db 'boot '
digit: db '0', 13, 10, 0
load_end:
  times 256 db 0
stack_top:
bss_end:
