; A 64 KiB firmware image (qemu -bios): starts at the reset vector F000:FFF0 in real mode,
; enters protected mode, makes FS a 4 GiB segment and returns to real mode ("unreal" mode,
; 32-bit addresses through FS), enters long mode with paging, and comes back down to real
; mode, reporting on COM1 and leaving through isa-debug-exit.
bits 16
org 0

ROMBASE equ 0xf0000

%macro PUTC 1
  mov al, %1
  call putc16
%endmacro

start:
  cli
  xor ax, ax
  mov ss, ax
  mov sp, 0x7000
  mov ax, cs
  mov ds, ax
  mov si, msg_reset
  call puts16
  mov ax, cs
  call hex16
  PUTC 10
  ; --- protected mode
  o32 lgdt [cs:gdtr]
  mov eax, cr0
  or al, 1
  mov cr0, eax
  jmp dword 0x08:(ROMBASE + pm32)

putc16:
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

puts16:
  lodsb
  test al, al
  jz .d
  call putc16
  jmp puts16
.d:
  ret

hex16:
  push cx
  mov cx, 4
.l:
  rol ax, 4
  push ax
  and al, 0xf
  add al, '0'
  cmp al, '9'
  jbe .p
  add al, 7
.p:
  call putc16
  pop ax
  loop .l
  pop cx
  ret

bits 32
pm32:
  mov ax, 0x10
  mov ds, ax
  mov es, ax
  mov fs, ax
  mov ss, ax
  mov esp, 0x7000
  mov dword [0x200000], 0x600df00d
  ; back to real mode through a 16-bit code segment (base ROMBASE)
  jmp 0x18:real16

bits 16
real16:
  mov eax, cr0
  and al, 0xfe
  mov cr0, eax
  jmp 0xf000:unreal

unreal:
  xor ax, ax
  mov ds, ax
  mov es, ax
  mov ss, ax
  ; DS was reloaded in real mode: its base is 0 but its limit is still 4 GiB (cached)
  mov ax, 0
  mov fs, ax
  mov ebx, 0x200000
  mov eax, [fs:ebx]
  push eax
  mov ax, cs
  mov ds, ax
  mov si, msg_unreal
  call puts16
  pop eax
  push eax
  shr eax, 16
  call hex16
  pop eax
  call hex16
  PUTC 10
  ; --- long mode: identity map of the first 2 MiB (one 2 MiB page) at 0x1000
  xor ax, ax
  mov es, ax
  mov di, 0x1000
  mov cx, 0x1800
  xor eax, eax
  rep stosw
  mov dword [es:0x1000], 0x2003
  mov dword [es:0x2000], 0x3003
  mov dword [es:0x3000], 0x83
  mov eax, cr4
  or eax, 0x20
  mov cr4, eax
  mov eax, 0x1000
  mov cr3, eax
  mov ecx, 0xc0000080
  rdmsr
  or eax, 0x100
  wrmsr
  o32 lgdt [cs:gdtr]
  mov eax, cr0
  or eax, 0x80000001
  mov cr0, eax
  jmp dword 0x28:(ROMBASE + long64)

bits 64
long64:
  mov ax, 0x10
  mov ds, ax
  mov ss, ax
  mov rsp, 0x7000
  mov rax, 0x123456789
  add rax, rax
  mov rbx, rax
  mov esi, ROMBASE + msg_long
.p:
  lodsb
  test al, al
  jz .d
  mov r8b, al
  mov dx, 0x3fd
.w:
  in al, dx
  test al, 0x40 ; TEMT: the previous character has left (QEMU may retry a write later)
  jz .w
  mov al, r8b
  mov dx, 0x3f8
  out dx, al
  jmp .p
.d:
  ; leave: compatibility mode (32-bit CS), paging off, LME off, 16-bit CS, PE off
  push 0x08
  push ROMBASE + leave32
  retfq

bits 32
leave32:
  mov eax, cr0
  and eax, 0x7fffffff
  mov cr0, eax
  mov ecx, 0xc0000080
  rdmsr
  and eax, ~0x100
  wrmsr
  mov eax, cr4
  and eax, ~0x20
  mov cr4, eax
  mov ax, 0x20
  mov ds, ax
  mov es, ax
  mov fs, ax
  mov ss, ax
  jmp 0x18:down16

bits 16
down16:
  mov eax, cr0
  and al, 0xfe
  mov cr0, eax
  jmp 0xf000:real_again

real_again:
  xor ax, ax
  mov ss, ax
  mov sp, 0x7000
  mov ax, cs
  mov ds, ax
  mov si, msg_back
  call puts16
  ; the doubled constant survived the trip in RBX (low 32 bits visible in real mode)
  mov eax, ebx
  push eax
  shr eax, 16
  call hex16
  pop eax
  call hex16
  PUTC 10
  mov si, msg_done
  call puts16
  mov dx, 0x3fd
.flush:
  in al, dx
  test al, 0x40
  jz .flush
  mov dx, 0xf4
  mov eax, 0x25
  out dx, eax
  hlt

msg_reset: db "rom: reset at cs=", 0
msg_unreal: db "unreal read ", 0
msg_long: db "long mode ok", 10, 0
msg_back: db "back in real mode, ebx=", 0
msg_done: db "rom: done", 10, 0

align 8
gdt:
  dq 0
  dq 0x00cf9b000000ffff ; 0x08 code32
  dq 0x00cf93000000ffff ; 0x10 data32 (4 GiB)
  dq 0x00009b0f0000ffff ; 0x18 code16, base 0xf0000
  dq 0x000093000000ffff ; 0x20 data16 (64 KiB)
  dq 0x00af9b000000ffff ; 0x28 code64
gdt_end:
gdtr:
  dw gdt_end - gdt - 1
  dd ROMBASE + gdt

times 0xfff0 - ($ - $$) db 0xff
reset:
  jmp 0xf000:start
times 0x10000 - ($ - $$) db 0xff
