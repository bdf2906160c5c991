; Debug registers: instruction breakpoints (fault before the instruction, RF to step over it,
; IRET loading RF), disabled breakpoints, data write and read/write breakpoints with lengths
; 1, 2, 4 and 8 (traps after the access), I/O breakpoints (CR4.DE), TF single-step (DR6.BS)
; over ordinary and I/O instructions. The #DB handler prints DR6, the return EIP and the RF
; bit it was given, clears DR6 and returns (with RF set after an instruction breakpoint).
; (General detect and the RF value pushed for faults are checked in vcpu.test.ts against the
; SDM: QEMU TCG implements neither.)
%include "lib.inc"

%macro SETDR7 1
  mov eax, %1
  mov dr7, eax
%endmacro

_start:
  mov esp, stack0_top
  call setup32
  mov eax, 1
  mov ebx, db_handler
  mov cl, 0x8e
  call set_gate
  mov eax, cr4
  or eax, 8                 ; CR4.DE: I/O breakpoints
  mov cr4, eax
  xor eax, eax
  mov dr6, eax
  mov eax, dr6
  PRINT "dbg: dr6 reset value "
  PHEX eax
  mov eax, dr7
  PRINT " dr7 "
  PHEX eax
  NL

  ; 1. instruction breakpoint (DR0, L0), hit on each call
  mov eax, ib1
  mov dr0, eax
  SETDR7 0x1
  call ib_func
  call ib_func
  PRINT "1: #DB count "
  PHEX dword [db_count]
  NL

  ; 2. disabled (no L0/G0): no #DB; then G0 enables it again
  SETDR7 0x0
  call ib_func
  PRINT "2: disabled, count "
  PHEX dword [db_count]
  NL
  SETDR7 0x2
  call ib_func
  PRINT "2: global enable, count "
  PHEX dword [db_count]
  NL

  ; 3. IRET with RF = 1 straight onto a breakpoint: the instruction runs once without #DB;
  ;    POPFD cannot set RF, so the next call hits
  mov eax, ib2
  mov dr0, eax
  SETDR7 0x1
  push .ret3
  pushfd
  or dword [esp], 0x10000
  push SEL_CODE32
  push ib2
  iretd
.ret3:
  PRINT "3: after IRET with RF, count "
  PHEX dword [db_count]
  NL
  pushfd
  or dword [esp], 0x10000
  popfd
  call ib2
  PRINT "3: POPFD does not set RF, count "
  PHEX dword [db_count]
  NL
  xor eax, eax
  mov dr0, eax
  SETDR7 0

  ; 4. data write breakpoint, 4 bytes (DR1: L1, R/W1 = 01, LEN1 = 11)
  mov eax, var1
  mov dr1, eax
  SETDR7 (1 << 2) | (1 << 20) | (3 << 22)
  mov dword [var1], 0x11111111
  mov eax, [var1]            ; a read: no trap
  mov byte [var1 + 3], 0x22  ; overlaps: trap
  mov byte [var1 + 4], 0x33  ; beyond: no trap
  xor ecx, ecx
  mov edi, var1
  rep stosb                  ; ecx = 0: no access
  PRINT "4: data write, count "
  PHEX dword [db_count]
  NL

  ; 5. data read/write breakpoint, 2 bytes (DR2: L2, R/W2 = 11, LEN2 = 01)
  mov eax, var2
  mov dr2, eax
  SETDR7 (1 << 4) | (3 << 24) | (1 << 26)
  mov eax, [var2 - 2]        ; dword read overlapping var2: trap
  mov al, [var2 + 2]         ; next word: no trap
  mov al, [var2 + 1]         ; trap
  push dword [var2]          ; a memory operand of PUSH: trap
  pop eax
  PRINT "5: data read/write, count "
  PHEX dword [db_count]
  NL

  ; 6. data write breakpoint, 8 bytes (DR3: L3, R/W3 = 01, LEN3 = 10)
  mov eax, var3
  mov dr3, eax
  SETDR7 (1 << 6) | (1 << 28) | (2 << 30)
  mov dword [var3 + 4], 1    ; trap
  mov dword [var3 + 8], 1    ; no trap
  PRINT "6: 8-byte data write, count "
  PHEX dword [db_count]
  NL

  ; 7. I/O breakpoint on port 0x80 (DR3: L3, R/W3 = 10, LEN3 = 00), then LEN3 = 11 at 0x84
  mov eax, 0x80
  mov dr3, eax
  SETDR7 (1 << 6) | (2 << 28)
  mov al, 0x12
  out 0x80, al               ; trap
  out 0xe1, al               ; no trap
  mov dx, 0x7f
  out dx, ax                 ; 0x7f..0x80 overlaps: trap
  mov eax, 0x84
  mov dr3, eax
  SETDR7 (1 << 6) | (2 << 28) | (3 << 30)
  mov dx, 0x87
  out dx, al                 ; trap
  mov dx, 0x88
  out dx, al                 ; no trap
  PRINT "7: I/O, count "
  PHEX dword [db_count]
  NL
  SETDR7 0

  ; 8. TF single-step over ordinary and I/O instructions: traps with DR6.BS
  mov dword [tf_steps], 4
  pushfd
  or dword [esp], 0x100
  popfd
  mov eax, 1
  out 0xe1, al
  mov ebx, 2
  nop
  nop
  PRINT "8: single-step, count "
  PHEX dword [db_count]
  NL

  PRINT "dbg: done", 10
  mov eax, 0x29
  jmp exit

ib_func:
ib1:
  nop
  ret

ib2:
  nop
  ret

db_handler:
  push eax
  inc dword [db_count]
  PRINT "  #DB dr6="
  mov eax, dr6
  PHEX eax
  PRINT " eip="
  mov eax, [esp + 4]
  PHEX eax
  PRINT " rf="
  mov eax, [esp + 12]
  shr eax, 16
  and eax, 1
  PHEX eax
  NL
  ; RF only for the instruction breakpoints (DR0): QEMU keeps RF set across a translation block,
  ; so a later trap would push RF = 1 there (the SDM: RF is cleared as each instruction starts)
  mov eax, dr6
  test eax, 1
  jz .norf
  or dword [esp + 12], 0x10000
.norf:
  xor eax, eax
  mov dr6, eax
  cmp dword [tf_steps], 0
  je .out
  dec dword [tf_steps]
  jnz .out
  and dword [esp + 12], ~0x100
.out:
  pop eax
  iretd

align 16
db_count: dd 0
tf_steps: dd 0
var1: dd 0, 0
var2_pad: dd 0
var2: dd 0, 0
align 8
var3: dq 0, 0
stack0: times 4096 db 0
stack0_top:
