; A bare-metal test kernel for qemu-system (multiboot, 32-bit protected mode).
; It loads CR4, EFER, CR3 and CR0 from a config block that the test writes at CONFIG, runs a
; list of one-access tests (read / write / fetch, supervisor mode), records each #PF error code
; and CR2, then dumps the results and the page-table region to the debug console (port 0xE9)
; and exits through isa-debug-exit (port 0xF4).
bits 32
CONFIG      equ 0x200000        ; +0 cr0, +4 cr3, +8 cr4, +12 efer, +16 count, +20 dump size, +32 tests {addr, op}
RESULTS     equ 0x210000        ; per test {error code or 0xffffffff, cr2}
TABLES      equ 0x220000        ; page tables, dumped after the run
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
    jmp 0x08:.cs
.cs:
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov ss, ax
    mov fs, ax
    mov gs, ax
    ; IDT: vector 14 -> pf_handler, every other exception -> other_handler
    mov edi, idt
    xor ecx, ecx
.fill:
    mov eax, other_handler
    cmp ecx, 14
    jne .gate
    mov eax, pf_handler
.gate:
    mov edx, eax
    and eax, 0xffff
    or eax, 0x00080000
    mov [edi], eax
    and edx, 0xffff0000
    or edx, 0x8e00
    mov [edi + 4], edx
    add edi, 8
    inc ecx
    cmp ecx, 32
    jb .fill
    lidt [idtr]
    mov eax, [CONFIG + 8]
    mov cr4, eax
    mov ebx, [CONFIG + 12]
    test ebx, ebx
    jz .noefer
    mov ecx, 0xC0000080
    rdmsr
    or eax, ebx
    wrmsr
.noefer:
    mov eax, [CONFIG + 4]
    mov cr3, eax
    mov eax, [CONFIG]
    mov cr0, eax
    jmp .paged
.paged:
    xor ebx, ebx
.loop:
    cmp ebx, [CONFIG + 16]
    jae .done
    mov [cur], ebx
    mov dword [RESULTS + ebx * 8], 0xffffffff
    mov dword [RESULTS + ebx * 8 + 4], 0
    mov [saved_esp], esp
    mov edi, [CONFIG + 32 + ebx * 8]
    mov eax, [CONFIG + 36 + ebx * 8]
    cmp eax, 0
    jne .notread
    mov eax, [edi]
    jmp .recover
.notread:
    cmp eax, 1
    jne .fetch
    mov dword [edi], 0xC3C3C3C3
    jmp .recover
.fetch:
    call edi
.recover:
    mov esp, [saved_esp]
    inc ebx
    jmp .loop
.done:
    mov dx, 0xe9
    mov esi, RESULTS
    mov ecx, [CONFIG + 16]
    shl ecx, 3
    rep outsb
    mov esi, TABLES
    mov ecx, [CONFIG + 20]
    rep outsb
    mov dx, 0xf4
    xor eax, eax
    out dx, eax
    hlt

pf_handler:
    push eax
    push ebx
    mov ebx, [cur]
    mov eax, [esp + 8]
    mov [RESULTS + ebx * 8], eax
    mov eax, cr2
    mov [RESULTS + ebx * 8 + 4], eax
    pop ebx
    pop eax
    add esp, 4
    mov dword [esp], start.recover
    iret

other_handler:
    mov dx, 0xf4
    mov eax, 3
    out dx, eax
    hlt

align 8
gdt:
    dq 0
    dq 0x00cf9a000000ffff        ; 0x08 ring-0 code, flat
    dq 0x00cf92000000ffff        ; 0x10 ring-0 data, flat
gdtr:
    dw gdtr - gdt - 1
    dd gdt
idtr:
    dw 32 * 8 - 1
    dd idt
cur:       dd 0
saved_esp: dd 0
align 8
idt:
    times 32 * 8 db 0
