; A bare-metal long-mode test kernel for qemu-system (multiboot entry in 32-bit protected mode).
; It loads CR4 (PAE, optionally LA57/SMEP/SMAP/PKE), CR3, EFER (LME, NXE) and CR0 from a config
; block, enters 64-bit mode, sets PKRU, and runs one-access tests in ring 0 (EFLAGS.AC = 0 or 1)
; or ring 3 (through a user stub mapped at USER_CODE). Each #PF error code and CR2 is recorded;
; results and the page-table region go to the debug console (port 0xE9); exit via port 0xF4.
bits 32
CONFIG      equ 0x200000   ; +0 cr0 +4 cr3 +8 cr4 +12 efer +16 count +20 dump size +24 pkru
                           ; +32 tests {addr lo, addr hi, op (0 read 1 write 2 fetch), mode (0 ring0, 1 ring0+AC, 3 ring3)}
RESULTS     equ 0x210000   ; per test {error code or 0xffffffff, 0, cr2 lo, cr2 hi}
TABLES      equ 0x220000
USER_CODE   equ 0x10000000 ; linear address of the user stub page (mapped by the test)
USER_STACK  equ 0x10002000 ; top of the user stack page
LOAD        equ 0x100000
MB_MAGIC    equ 0x1BADB002
MB_FLAGS    equ 0x00010000

org LOAD
mb_header:
    dd MB_MAGIC, MB_FLAGS, -(MB_MAGIC + MB_FLAGS)
    dd mb_header, LOAD, 0, 0, start

start:
    cli
    mov esp, 0x90000
    lgdt [gdtr]
    mov eax, [CONFIG + 8]
    mov cr4, eax
    mov eax, [CONFIG + 4]
    mov cr3, eax
    mov ecx, 0xC0000080
    rdmsr
    or eax, [CONFIG + 12]
    wrmsr
    mov eax, [CONFIG]
    mov cr0, eax
    jmp 0x08:long_entry

bits 64
long_entry:
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov ss, ax
    mov fs, ax
    mov gs, ax
    mov rsp, 0x90000
    ; TSS descriptor (selector 0x28): base = tss, limit 0x67, type 9 (available 64-bit TSS)
    mov rax, tss
    mov rdx, rax
    shl rdx, 16
    and edx, 0xffff0000
    or edx, 0x67
    mov [gdt + 0x28], edx
    mov rdx, rax
    shr rdx, 16
    and edx, 0xff
    mov ecx, eax
    and ecx, 0xff000000
    or edx, ecx
    or edx, 0x8900
    mov [gdt + 0x2c], edx
    mov dword [gdt + 0x30], 0
    mov dword [gdt + 0x34], 0
    mov qword [tss + 4], 0x80000
    mov ax, 0x28
    ltr ax
    ; IDT: 256 interrupt gates to other_handler, 14 -> pf_handler, 0x80 (DPL 3) -> done_handler
    mov rdi, idt
    xor ecx, ecx
.fill:
    mov rax, other_handler
    mov edx, 0x8e00
    cmp ecx, 14
    jne .not14
    mov rax, pf_handler
.not14:
    cmp ecx, 0x80
    jne .gate
    mov rax, done_handler
    mov edx, 0xee00
.gate:
    mov r8, rax
    and eax, 0xffff
    or eax, 0x00080000
    mov [rdi], eax
    mov rax, r8
    and eax, 0xffff0000
    or eax, edx
    mov [rdi + 4], eax
    shr r8, 32
    mov [rdi + 8], r8d
    mov dword [rdi + 12], 0
    add rdi, 16
    inc ecx
    cmp ecx, 256
    jb .fill
    lidt [idtr]
    mov rax, cr4
    test eax, 1 << 22
    jz .nopk
    xor ecx, ecx
    xor edx, edx
    mov eax, [CONFIG + 24]
    wrpkru
.nopk:
    mov dword [cur], 0
.loop:
    mov ebx, [cur]
    cmp ebx, [CONFIG + 16]
    jae .done
    shl rbx, 4
    mov dword [RESULTS + rbx], 0xffffffff
    mov dword [RESULTS + rbx + 4], 0
    mov qword [RESULTS + rbx + 8], 0
    mov [saved_rsp], rsp
    mov rdi, [CONFIG + 32 + rbx]
    mov esi, [CONFIG + 40 + rbx]
    mov eax, [CONFIG + 44 + rbx]
    cmp eax, 3
    je .user
    cmp eax, 1
    jne .access
    stac
.access:
    call access_op
    jmp recover
.user:
    push 0x1b
    push USER_STACK
    push 0x2
    push 0x23
    push USER_CODE
    iretq
.done:
    mov dx, 0xe9
    mov rsi, RESULTS
    mov ecx, [CONFIG + 16]
    shl ecx, 4
    rep outsb
    mov rsi, TABLES
    mov ecx, [CONFIG + 20]
    rep outsb
    mov dx, 0xf4
    xor eax, eax
    out dx, eax
    hlt

recover:
    clac
    mov rsp, [saved_rsp]
    inc dword [cur]
    jmp long_entry.loop

; rdi = address, esi = op. Returns normally when the access did not fault.
access_op:
    cmp esi, 0
    jne .w
    mov eax, [rdi]
    ret
.w:
    cmp esi, 1
    jne .f
    mov dword [rdi], 0xC3C3C3C3
    ret
.f:
    call rdi
    ret

pf_handler:
    mov ebx, [cur]
    shl rbx, 4
    mov eax, [rsp]
    mov [RESULTS + rbx], eax
    mov rax, cr2
    mov [RESULTS + rbx + 8], rax
    jmp recover

done_handler:
    jmp recover

other_handler:
    mov dx, 0xf4
    mov eax, 3
    out dx, eax
    hlt

align 16
gdt:
    dq 0
    dq 0x00209a0000000000        ; 0x08 ring-0 64-bit code
    dq 0x00cf92000000ffff        ; 0x10 ring-0 data
    dq 0x00cff2000000ffff        ; 0x18 ring-3 data (selector 0x1b)
    dq 0x0020fa0000000000        ; 0x20 ring-3 64-bit code (selector 0x23)
    dq 0, 0                      ; 0x28 TSS, filled at run time
gdtr:
    dw gdtr - gdt - 1
    dq gdt
idtr:
    dw 256 * 16 - 1
    dq idt
cur:       dd 0
saved_rsp: dq 0
align 16
tss:
    times 0x68 db 0

; The user stub, at a fixed physical page (LOAD + 0x1000) the test maps at USER_CODE.
times 0x1000 - ($ - $$) db 0
user_stub:
    cmp esi, 0
    jne .w
    mov eax, [rdi]
    int 0x80
.w:
    cmp esi, 1
    jne .f
    mov dword [rdi], 0xC3C3C3C3
    int 0x80
.f:
    call rdi
    int 0x80

align 4096
idt:
    times 256 * 16 db 0
