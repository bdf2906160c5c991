; Multiboot test kernel: GDT/IDT, LAPIC virtual wire, 8259 + PIT ticks, then the same ticks through the IOAPIC with LAPIC EOI, an RTC register, isa-debug-exit.
bits 32
org 0x100000
MB_MAGIC equ 0x1BADB002
MB_FLAGS equ 0x00010003
align 4
hdr:
  dd MB_MAGIC, MB_FLAGS, -(MB_MAGIC + MB_FLAGS)
  dd hdr, 0x100000, load_end, bss_end, start
start:
  cli
  mov esp, stack_top
  lgdt [gdtr]
  jmp 0x08:.reload
.reload:
  mov ax, 0x10
  mov ds, ax
  mov es, ax
  mov ss, ax
  ; IDT: vectors 0x20 (PIC IRQ0) and 0x30 (IOAPIC GSI2) -> tick, 0x27 spurious -> iret_only
  mov eax, tick
  mov ebx, 0x20
  call set_gate
  mov ebx, 0x30
  call set_gate
  mov eax, spurious
  mov ebx, 0x27
  call set_gate
  mov ebx, 0xff
  call set_gate
  lidt [idtr]
  ; LAPIC: software enable (SVR 0x1ff), LINT0 ExtINT unmasked (virtual wire)
  mov dword [0xfee000f0], 0x1ff
  mov dword [0xfee00350], 0x700
  ; 8259: ICW1-4, vectors 0x20/0x28, unmask IRQ0 only
  mov al, 0x11
  out 0x20, al
  out 0xa0, al
  mov al, 0x20
  out 0x21, al
  mov al, 0x28
  out 0xa1, al
  mov al, 4
  out 0x21, al
  mov al, 2
  out 0xa1, al
  mov al, 1
  out 0x21, al
  out 0xa1, al
  mov al, 0xfe
  out 0x21, al
  mov al, 0xff
  out 0xa1, al
  ; PIT channel 0 mode 2, 1193 (~1 kHz)
  mov al, 0x34
  out 0x43, al
  mov al, 0xa9
  out 0x40, al
  mov al, 0x04
  out 0x40, al
  mov byte [mode], 0
  sti
.w1:
  hlt
  cmp dword [ticks], 5
  jb .w1
  cli
  mov esi, msg1
  call puts
  ; IOAPIC: mask the 8259, GSI 2 -> vector 0x30, fixed, physical dest 0, edge
  mov al, 0xff
  out 0x21, al
  mov dword [0xfec00000], 0x14
  mov dword [0xfec00010], 0x30
  mov dword [0xfec00000], 0x15
  mov dword [0xfec00010], 0
  mov byte [mode], 1
  mov dword [ticks], 0
  sti
.w2:
  hlt
  cmp dword [ticks], 5
  jb .w2
  cli
  mov esi, msg2
  call puts
  ; RTC: status B (binary/24h bits as firmware leaves them) and the century byte exist
  mov al, 0x0b
  out 0x70, al
  in al, 0x71
  and al, 0x02
  add al, '0'
  mov [msg3 + 8], al
  mov esi, msg3
  call puts
  mov al, 0x10
  out 0xf4, al
  hlt
tick:
  push eax
  inc dword [ticks]
  cmp byte [mode], 0
  jne .apic
  mov al, 0x20
  out 0x20, al
  pop eax
  iret
.apic:
  mov dword [0xfee000b0], 0
  pop eax
  iret
spurious:
  iret
set_gate:   ; eax = handler, ebx = vector
  lea edi, [idt + ebx * 8]
  mov [edi], ax
  mov word [edi + 2], 0x08
  mov word [edi + 4], 0x8e00
  mov ecx, eax
  shr ecx, 16
  mov [edi + 6], cx
  ret
%include "com1.inc"
msg1: db 'pic ticks ok', 10, 0
msg2: db 'ioapic ticks ok', 10, 0
msg3: db 'rtc 24h ? ', 10, 0
align 8
gdt:
  dq 0
  dq 0x00cf9a000000ffff
  dq 0x00cf92000000ffff
gdtr:
  dw gdtr - gdt - 1
  dd gdt
idtr:
  dw 256 * 8 - 1
  dd idt
ticks: dd 0
mode: db 0
load_end:
align 8
idt: times 256 * 8 db 0
  times 1024 db 0
stack_top:
bss_end:
