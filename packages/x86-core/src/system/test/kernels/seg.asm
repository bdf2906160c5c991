; Segment limits on data accesses in protected mode (SDM vol. 3, 5.3): byte-granular and
; page-granular limits, expand-down data segments (B = 1 and B = 0), SS-relative accesses and POP
; (#SS(0)), null selectors (#GP(0)), MOV moffs, a REP MOVSB stopped at the limit with ECX/ESI/EDI
; at the faulting element. QEMU TCG does not check data-segment limits, so seg.test.ts compares
; this transcript with the SDM's expected one, not with QEMU.
%include "lib.inc"

%macro DESC 5 ; slot, base, limit (20 bits), access byte, flags nibble (G, B)
  mov dword [gdt + %1], ((%3) & 0xffff) | (((%2) & 0xffff) << 16)
  mov dword [gdt + %1 + 4], (((%2) >> 16) & 0xff) | ((%4) << 8) | ((%3) & 0xf0000) | ((%5) << 20) | ((%2) & 0xff000000)
%endmacro

; TRY "name", instruction: runs it; prints "name ok" or the fault the handler reports
%macro TRY 2+
  RESUME %%r
  %2
  PRINT %1, " ok", 10
%%r:
%endmacro

SLOT_A equ 0x48
SLOT_B equ 0x50
SLOT_C equ 0x70

_start:
  mov esp, stack0_top
  call setup32
  mov eax, 12
  mov ebx, ss_handler
  mov cl, 0x8e
  call set_gate
  mov eax, 13
  mov ebx, gp_handler
  call set_gate

  ; byte-granular data segment: base 0x200000, limit 0xfff
  DESC SLOT_A, 0x200000, 0xfff, 0x93, 0x4
  mov ax, SLOT_A
  mov fs, ax
  TRY "dword at 0xffc", mov eax, [fs:0xffc]
  TRY "dword at 0xffd", mov eax, [fs:0xffd]
  TRY "byte at 0xfff", mov byte [fs:0xfff], 1
  TRY "byte at 0x1000", mov byte [fs:0x1000], 1
  TRY "word at 0xfff", mov ax, [fs:0xfff]
  TRY "movzx byte at 0xfff", movzx eax, byte [fs:0xfff]
  TRY "moffs dword at 0xffd", mov eax, [fs:dword 0xffd]
  TRY "add to dword at 0xffe", add dword [fs:0xffe], 1
  ; REP MOVSB from fs:0xffc, 8 bytes: faults after 4 with the registers at the 5th element
  mov esi, 0xffc
  mov edi, buf
  mov ecx, 8
  TRY "rep movsb across the limit", fs rep movsb
  PRINT "  ecx="
  PHEX ecx
  PRINT " esi="
  PHEX esi
  PRINT " edi-buf="
  lea eax, [edi - buf]
  PHEX eax
  NL

  ; page-granular: limit 0x1 with G = 1 -> 0x1fff
  DESC SLOT_A, 0x200000, 0x1, 0x93, 0xc
  mov ax, SLOT_A
  mov fs, ax
  TRY "G=1 dword at 0x1ffc", mov eax, [fs:0x1ffc]
  TRY "G=1 dword at 0x1ffe", mov eax, [fs:0x1ffe]

  ; expand-down, B = 1: valid offsets 0x1000..0xffffffff (base 0x300000 wraps into low RAM)
  DESC SLOT_B, 0x300000, 0xfff, 0x97, 0x4
  mov ax, SLOT_B
  mov gs, ax
  TRY "down: dword at 0x1000", mov eax, [gs:0x1000]
  TRY "down: dword at 0xffe", mov eax, [gs:0xffe]
  TRY "down: byte at 0xfff", mov al, [gs:0xfff]
  TRY "down: dword at 0xfffffffc", mov eax, [gs:0xfffffffc]
  TRY "down: dword at 0xfffffffd", mov eax, [gs:0xfffffffd]

  ; expand-down, B = 0: valid offsets 0x1000..0xffff
  DESC SLOT_B, 0x300000, 0xfff, 0x97, 0x0
  mov ax, SLOT_B
  mov gs, ax
  TRY "down16: word at 0xfffe", mov ax, [gs:0xfffe]
  TRY "down16: word at 0xffff", mov ax, [gs:0xffff]
  TRY "down16: byte at 0x10000", mov al, [gs:0x10000]

  ; SS with limit 0x1fffff (G = 1): SS-relative accesses and POP beyond it raise #SS(0)
  DESC SLOT_C, 0, 0x1ff, 0x93, 0xc
  mov ax, SLOT_C
  mov ss, ax
  TRY "ss: dword at 0x1ffffc", mov eax, [ss:0x1ffffc]
  TRY "ss: dword at 0x1ffffd", mov eax, [ss:0x1ffffd]
  mov ebp, 0x1ffffe
  TRY "ebp-based at 0x1ffffe", mov eax, [ebp]
  mov [saved_esp], esp
  mov esp, 0x1ffffe
  TRY "pop at 0x1ffffe", pop eax
  mov esp, [saved_esp]
  mov ax, SEL_DATA32
  mov ss, ax

  ; null selectors: loading works, using them does not
  xor eax, eax
  mov es, ax
  TRY "null es write", mov dword [es:buf], 1
  mov edi, buf
  mov ecx, 1
  TRY "stosb through null es", rep stosb
  mov ax, SEL_DATA32
  mov es, ax
  TRY "flat again", mov dword [es:buf], 1

  PRINT "seg: done", 10
  mov eax, 0x2a
  jmp exit

gp_handler:
  PRINT "  #GP("
  jmp fault_common
ss_handler:
  PRINT "  #SS("
fault_common:
  push eax
  mov eax, [esp + 4]
  call puthex
  PRINT ")", 10
  mov eax, [resume]
  mov [esp + 8], eax
  pop eax
  add esp, 4
  iret

saved_esp: dd 0
align 16
buf: times 64 db 0
stack0: times 4096 db 0
stack0_top:
