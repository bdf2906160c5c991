; SSE differential-test trampoline (host side), linked -no-pie so every symbol is below 4 GiB.
; State block (see native.ts): regs[16] u64 @0, rflags @128, mxcsr @136, ctl @140 (bit 0: load
; MMX registers), xmm[16] @144, mm[8] @400, fsw u16 @464, abridged ftw u8 @466.
; sse_enter(state, code): fninit; loads MM0-7 (then EMMS unless ctl bit 0), XMM, MXCSR, GPRs except RSP and
; RFLAGS, jumps to code, which ends with `jmp [abs sse_exit_ptr]`; sse_exit stores everything back.
bits 64
section .data
global sse_exit_ptr
host_rsp:  dq 0
state_ptr: dq 0
code_ptr:  dq 0
save_rax:  dq 0
sse_exit_ptr: dq sse_exit
host_mxcsr: dd 0
section .bss
alignb 64
fxarea: resb 512
section .text
global sse_enter
sse_enter:
  push rbx
  push rbp
  push r12
  push r13
  push r14
  push r15
  mov [rel host_rsp], rsp
  mov [rel state_ptr], rdi
  mov [rel code_ptr], rsi
  stmxcsr [rel host_mxcsr]
  fninit
%assign i 0
%rep 8
  movq mm %+ i, [rdi + 400 + i * 8]
%assign i i + 1
%endrep
  test dword [rdi + 140], 1
  jnz .mmx
  emms
.mmx:
%assign i 0
%rep 16
  movdqu xmm %+ i, [rdi + 144 + i * 16]
%assign i i + 1
%endrep
  ldmxcsr [rdi + 136]
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
  mov rdi, [rdi + 56]
  jmp [rel code_ptr]
sse_exit:
  mov [rel save_rax], rax
  mov rax, [rel state_ptr]
  mov [rax + 8], rcx
  mov [rax + 16], rdx
  mov [rax + 24], rbx
  mov [rax + 40], rbp
  mov [rax + 48], rsi
  mov [rax + 56], rdi
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
  cld
  mov rcx, [rel save_rax]
  mov [rax + 0], rcx
  stmxcsr [rax + 136]
%assign i 0
%rep 16
  movdqu [rax + 144 + i * 16], xmm %+ i
%assign i i + 1
%endrep
  fxsave [rel fxarea]
  mov cx, [rel fxarea + 2]
  mov [rax + 464], cx
  mov cl, [rel fxarea + 4]
  mov [rax + 466], cl
%assign i 0
%rep 8
  mov rcx, [rel fxarea + 32 + i * 16]
  mov [rax + 400 + i * 8], rcx
%assign i i + 1
%endrep
  emms
  fninit
  ldmxcsr [rel host_mxcsr]
  pop r15
  pop r14
  pop r13
  pop r12
  pop rbp
  pop rbx
  ret
section .note.GNU-stack noalloc noexec nowrite progbits
