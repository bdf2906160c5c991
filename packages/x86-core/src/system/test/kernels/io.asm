; Port I/O sizes and string I/O: byte, word and dword IN/OUT in the immediate and DX forms
; (a byte IN changes AL only), INSB/OUTSB/INSW/OUTSD single and with REP, upwards and
; downwards (DF=1), with RCX/ESI/EDI checked afterwards. Ends with a byte OUT to the exit port.
%include "lib.inc"

_start:
  mov esp, stack0_top
  call setup32
  PRINT "io: start", 10
  ; E4: in al, imm8 from an unassigned port (all ones), upper bytes kept
  mov eax, 0x12345678
  in al, 0xe0
  PRINT "in al,imm: "
  PHEX eax
  NL
  ; E5 with 66: in ax, imm8
  mov eax, 0x12345678
  in ax, 0xe0
  PRINT "in ax,imm: "
  PHEX eax
  NL
  ; EC: in al, dx (LSR: transmitter empty)
  mov eax, 0x12345678
  mov dx, 0x3fd
  in al, dx
  PRINT "in al,dx: "
  PHEX eax
  NL
  ; ED with 66: in ax, dx from an unassigned port
  mov eax, 0x12345678
  mov dx, 0xe2
  in ax, dx
  PRINT "in ax,dx: "
  PHEX eax
  NL
  ; 6E: outsb, single
  mov esi, msg1
  mov dx, 0x3f8
  outsb
  outsb
  PRINT " esi+"
  lea eax, [esi - msg1]
  PHEX eax
  NL
  ; F3 6E: rep outsb, upwards
  mov esi, msg2
  mov ecx, msg2_len
  rep outsb
  PRINT "ecx="
  PHEX ecx
  PRINT " esi+"
  lea eax, [esi - msg2]
  PHEX eax
  NL
  ; F3 6E with DF=1: the string backwards
  mov esi, msg2 + msg2_len - 2
  mov ecx, msg2_len - 1
  std
  rep outsb
  cld
  mov al, 10
  call putc
  PRINT "ecx="
  PHEX ecx
  PRINT " esi-"
  mov eax, msg2 + msg2_len - 2
  sub eax, esi
  PHEX eax
  NL
  ; 6C: insb single, F3 6C rep insb (LSR: 0x60 each), buffer prefilled
  mov dword [buf], 0x11223344
  mov dword [buf + 4], 0x55667788
  mov edi, buf
  mov dx, 0x3fd
  insb
  mov ecx, 3
  rep insb
  PRINT "insb: "
  PHEX dword [buf]
  PRINT " "
  PHEX dword [buf + 4]
  PRINT " edi+"
  lea eax, [edi - buf]
  PHEX eax
  NL
  ; F3 66 6D: rep insw from an unassigned port, DF=1
  mov dword [buf], 0x11223344
  mov dword [buf + 4], 0x55667788
  mov edi, buf + 4
  mov dx, 0xe2
  mov ecx, 2
  std
  rep insw
  cld
  PRINT "insw down: "
  PHEX dword [buf]
  PRINT " "
  PHEX dword [buf + 4]
  PRINT " edi="
  lea eax, [edi - buf]
  PHEX eax
  NL
  ; rep with ecx = 0: nothing happens
  xor ecx, ecx
  mov esi, msg1
  mov dx, 0x3f8
  rep outsb
  PRINT "zero count: esi+"
  lea eax, [esi - msg1]
  PHEX eax
  NL
  ; 16-bit address size: rep outsb with CX/SI only (upper halves kept)
  mov ecx, 0xabcd0003
  mov esi, msg2
  a16 rep outsb
  NL
  PRINT "a16: ecx="
  PHEX ecx
  PRINT " esi+"
  lea eax, [esi - msg2]
  PHEX eax
  NL
  PRINT "io: done", 10
  ; E6: out imm8, al to isa-debug-exit (a byte write: the exit code is AL only)
  call flush
  mov eax, 0x77777728
  out 0xf4, al
  hlt

msg1: db "OK"
msg2: db "string out", 10
msg2_len equ $ - msg2
align 4
buf: times 16 db 0
stack0: times 4096 db 0
stack0_top:
