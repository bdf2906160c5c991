; The one differential-test trampoline (host side), linked -no-pie so that every symbol is
; below 4 GiB. State block: regs[16] u64 then rflags (8 bytes each). Before the snippet the
; x87/SSE state is loaded from fx_ptr (FXRSTOR); after it FXSAVE goes to fx_ptr and FNSTENV
; (the full tag word) to env_ptr; then the FPU and MXCSR are reset for the C side.
; rz_enter(state, code): 64-bit code; the snippet ends with `jmp [abs rz_exit_ptr]`.
; rz_enter32(state, code): 32-bit code in the compatibility-mode segment 0x23 (low halves of the
; first 8 registers); the snippet ends with `jmp [abs32 rz_exit32_ptr]`.
; rz_enter16(state): 16-bit code in the LDT code segment SEL_CS16 (D = 0, base CODE_ADDR, the
; runner installs it with modify_ldt), entered by IRETQ with SS:SP, FLAGS and DS/ES set to the
; 16-bit LDT data segments, at the runner's stub at IP 0xf00 (IRET to a 16-bit stack segment
; leaves ESP[31:16] as they were, so the stub loads all of ESP) which jumps to the snippet at 0; the snippet ends with `jmp far dword [cs:ptr]` to
; rz_exit16 in the 64-bit code segment 0x33.
bits 64
section .data
global rz_exit_ptr
global rz_exit32_ptr
global rz_exit16
global fx_ptr
global env_ptr
fx_ptr:    dq 0
env_ptr:   dq 0
host_rsp:  dq 0
state_ptr: dq 0
code_ptr:  dq 0
save_rax:  dq 0
host_mxcsr: dd 0x1f80
rz_exit_ptr:   dq rz_exit
rz_exit32_ptr: dd rz_exit32
far64:     dd rz_back64
           dw 0x33
stub_esp:  dd 0
stub_edi:  dd 0
save32:    times 9 dd 0
section .bss
alignb 16
stack32:   resb 256
stack32_top:
section .text
global rz_enter
global rz_enter32
global rz_enter16
SEL_CS16 equ 0x07  ; LDT entry 0, RPL 3
SEL_DS16 equ 0x0f  ; LDT entry 1
SEL_ES16 equ 0x17  ; LDT entry 2
SEL_SS16 equ 0x1f  ; LDT entry 3

; FXSAVE/FNSTENV the snippet's x87/SSE state, then give C a clean FPU, MXCSR and RFLAGS.
%macro save_fpu 0
  mov rcx, [rel fx_ptr]
  fxsave64 [rcx]
  mov rcx, [rel env_ptr]
  fnstenv [rcx]
  fninit
  ldmxcsr [rel host_mxcsr]
  push qword 0x202
  popfq
%endmacro

; Stores RCX..RDI (RSP included) into the state block at RAX.
%macro store_rcx_rdi 0
  mov [rax + 8], rcx
  mov [rax + 16], rdx
  mov [rax + 24], rbx
  mov [rax + 32], rsp
  mov [rax + 40], rbp
  mov [rax + 48], rsi
  mov [rax + 56], rdi
%endmacro

%macro host_save 0
  push rbx
  push rbp
  push r12
  push r13
  push r14
  push r15
  mov [rel host_rsp], rsp
  mov [rel state_ptr], rdi
  mov [rel code_ptr], rsi
  mov r8, [rel fx_ptr]
  fxrstor64 [r8]
%endmacro

%macro host_restore 0
  pop r15
  pop r14
  pop r13
  pop r12
  pop rbp
  pop rbx
  ret
%endmacro

rz_enter:
  host_save
  push qword [rdi + 128]
  popfq
  mov rax, [rdi + 0]
  mov rcx, [rdi + 8]
  mov rdx, [rdi + 16]
  mov rbx, [rdi + 24]
  mov rbp, [rdi + 40]
  mov rsi, [rdi + 48]
  mov r8,  [rdi + 64]
  mov r9,  [rdi + 72]
  mov r10, [rdi + 80]
  mov r11, [rdi + 88]
  mov r12, [rdi + 96]
  mov r13, [rdi + 104]
  mov r14, [rdi + 112]
  mov r15, [rdi + 120]
  mov rsp, [rdi + 32]
  mov rdi, [rdi + 56]
  jmp [rel code_ptr]
rz_exit:
  mov [rel save_rax], rax
  mov rax, [rel state_ptr]
  store_rcx_rdi
  mov [rax + 64], r8
  mov [rax + 72], r9
  mov [rax + 80], r10
  mov [rax + 88], r11
  mov [rax + 96], r12
  mov [rax + 104], r13
  mov [rax + 112], r14
  mov [rax + 120], r15
  mov rsp, [rel host_rsp]
  pushfq
  pop qword [rax + 128]
  save_fpu
  mov rcx, [rel save_rax]
  mov [rax + 0], rcx
  host_restore

rz_enter32:
  host_save
  ; compatibility mode uses DS/ES (64-bit Linux leaves them null): load the user data selector
  mov r8d, 0x2b
  mov ds, r8d
  mov es, r8d
  mov r8d, [rdi + 32]
  mov [rel stub_esp], r8d
  mov r8d, [rdi + 56]
  mov [rel stub_edi], r8d
  ; far return frame to rz_stub32 in segment 0x23 (built on the host stack)
  mov r8, rz_stub32
  push qword 0x23
  push r8
  mov eax, [rdi + 0]
  mov ecx, [rdi + 8]
  mov edx, [rdi + 16]
  mov ebx, [rdi + 24]
  mov ebp, [rdi + 40]
  mov esi, [rdi + 48]
  push qword [rdi + 128]
  popfq
  retfq
rz_back64:
  mov rsp, [rel host_rsp]
  save_fpu
  mov rax, [rel state_ptr]
%assign i 0
%rep 8
  mov ecx, [rel save32 + i * 4]
  mov [rax + i * 8], rcx
%assign i i + 1
%endrep
  mov ecx, [rel save32 + 32]
  mov [rax + 128], rcx
  host_restore

rz_enter16:
  host_save
  mov r8d, SEL_DS16
  mov ds, r8d
  mov r8d, SEL_ES16
  mov es, r8d
  push qword SEL_SS16
  push qword [rdi + 32]
  push qword [rdi + 128]
  push qword SEL_CS16
  push qword 0xf00           ; the runner's 16-bit entry stub (sets all of ESP, jumps to IP 0)
  mov rax, [rdi + 0]
  mov rcx, [rdi + 8]
  mov rdx, [rdi + 16]
  mov rbx, [rdi + 24]
  mov rbp, [rdi + 40]
  mov rsi, [rdi + 48]
  mov rdi, [rdi + 56]
  iretq
rz_exit16:
  ; back in 64-bit code: only the low 32 bits of the registers are meaningful
  mov [rel save_rax], rax
  mov rax, [rel state_ptr]
  store_rcx_rdi
  mov rsp, [rel host_rsp]
  pushfq
  pop qword [rax + 128]
  mov ecx, 0x2b
  mov ss, ecx
  xor ecx, ecx
  mov ds, ecx
  mov es, ecx
  save_fpu
  mov rcx, [rel save_rax]
  mov [rax + 0], rcx
  host_restore

bits 32
rz_stub32:
  mov esp, [stub_esp]
  mov edi, [stub_edi]
  jmp [code_ptr]
rz_exit32:
  mov [save32 + 0], eax
  mov [save32 + 4], ecx
  mov [save32 + 8], edx
  mov [save32 + 12], ebx
  mov [save32 + 16], esp
  mov [save32 + 20], ebp
  mov [save32 + 24], esi
  mov [save32 + 28], edi
  mov esp, stack32_top
  pushfd
  pop dword [save32 + 32]
  jmp far [far64]
section .note.GNU-stack noalloc noexec nowrite progbits
