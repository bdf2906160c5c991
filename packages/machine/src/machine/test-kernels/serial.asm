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
  mov dx, 0x3fb
  mov al, 0x83
  out dx, al
  mov dx, 0x3f8
  mov al, 1
  out dx, al
  mov dx, 0x3f9
  xor al, al
  out dx, al
  mov dx, 0x3fb
  mov al, 3
  out dx, al
  mov esi, msg
  call puts
  cmp eax, eax
  mov dx, 0xf4
  mov al, 0x10
  out dx, al
  hlt
puts:
  lodsb
  test al, al
  jz .done
  mov ah, al
  mov dx, 0x3fd
.wait:
  in al, dx
  test al, 0x20
  jz .wait
  mov al, ah
  mov dx, 0x3f8
  out dx, al
  jmp puts
.done:
  ret
msg: db 'Hello from a multiboot kernel', 13, 10, 0
load_end:
  times 256 db 0
stack_top:
bss_end:
