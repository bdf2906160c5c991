; A multiboot v1 kernel for the demo: prints over COM1 (polling LSR.THRE), shows the CPUID
; vendor and the hypervisor signature leaf, switches to 64-bit long mode with identity paging,
; counts the primes below 20000 there, prints the count and exits through isa-debug-exit.
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
  mov dx, 0x3fb            ; 8N1, divisor 1
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
  mov esi, banner
  call puts
  xor eax, eax             ; CPUID vendor
  cpuid
  mov [vendor], ebx
  mov [vendor + 4], edx
  mov [vendor + 8], ecx
  mov esi, vendor_msg
  call puts
  mov esi, vendor
  call puts
  mov esi, crlf
  call puts
  mov eax, 1               ; hypervisor-present bit -> leaf 0x40000000 signature
  cpuid
  bt ecx, 31
  jnc .no_hv
  mov eax, 0x40000000
  cpuid
  mov [hv], ebx
  mov [hv + 4], ecx
  mov [hv + 8], edx
  mov esi, hv_msg
  call puts
  mov esi, hv
  call puts
  mov esi, crlf
  call puts
.no_hv:
  ; identity-map 1 GiB with one PML4 -> PDPT entry of a 1 GiB... use 2 MiB pages (PSE in PD)
  mov edi, pml4
  mov dword [edi], pdpt + 3
  mov dword [pdpt], pd + 3
  xor ecx, ecx
.fill:
  mov eax, ecx
  shl eax, 21
  or eax, 0x83             ; present, writable, 2 MiB
  mov [pd + ecx * 8], eax
  inc ecx
  cmp ecx, 512
  jb .fill
  mov eax, pml4
  mov cr3, eax
  mov eax, cr4
  or eax, 1 << 5           ; PAE
  mov cr4, eax
  mov ecx, 0xC0000080      ; EFER.LME
  rdmsr
  or eax, 1 << 8
  wrmsr
  mov eax, cr0
  or eax, 1 << 31          ; PG: long mode becomes active
  mov cr0, eax
  lgdt [gdtr]
  jmp 0x08:long_mode
bits 64
long_mode:
  mov ax, 0x10
  mov ds, ax
  mov es, ax
  mov ss, ax
  mov rsi, lm_msg
  call puts64
  ; count primes below 20000 by trial division, in 64-bit registers
  xor r12, r12             ; count
  mov r8, 2
.next:
  cmp r8, 20000
  jae .counted
  mov r9, 2
.try:
  mov rax, r9
  imul rax, r9
  cmp rax, r8
  ja .prime
  mov rax, r8
  xor rdx, rdx
  div r9
  test rdx, rdx
  jz .composite
  inc r9
  jmp .try
.prime:
  inc r12
.composite:
  inc r8
  jmp .next
.counted:
  mov rsi, primes_msg
  call puts64
  mov rax, r12             ; print r12 in decimal
  lea rdi, [numbuf + 20]
  mov byte [rdi], 0
  mov rcx, 10
.digit:
  xor rdx, rdx
  div rcx
  add dl, '0'
  dec rdi
  mov [rdi], dl
  test rax, rax
  jnz .digit
  mov rsi, rdi
  call puts64
  mov rsi, crlf
  call puts64
  mov dx, 0xf4             ; isa-debug-exit: status (0x10 << 1) | 1 = 33
  mov al, 0x10
  out dx, al
  hlt
puts64:
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
  jmp puts64
.done:
  ret
bits 32
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
banner: db 'multiboot kernel: hello from 32-bit protected mode', 13, 10, 0
vendor_msg: db 'CPUID vendor: ', 0
hv_msg: db 'hypervisor signature: ', 0
lm_msg: db 'now in 64-bit long mode (EFER.LME, CR4.PAE, CR0.PG, 2 MiB pages)', 13, 10, 0
primes_msg: db 'primes below 20000: ', 0
crlf: db 13, 10, 0
align 8
gdt: dq 0, 0x00209a0000000000, 0x0000920000000000
gdtr: dw gdtr - gdt - 1
  dd gdt
vendor: times 13 db 0
hv: times 13 db 0
numbuf: times 21 db 0
load_end:
align 4096
pml4: times 4096 db 0
pdpt: times 4096 db 0
pd: times 4096 db 0
  times 1024 db 0
stack_top:
bss_end:
