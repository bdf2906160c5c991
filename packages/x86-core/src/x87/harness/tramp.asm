; x87 differential-test trampoline (host side), linked -no-pie so every symbol is below 4 GiB.
; State block (see native.ts): regs[16] u64 @0, rflags @128, mxcsr @136, fx[512] @144 (an
; FXSAVE image: loaded with FXRSTOR before the snippet, stored with FXSAVE after it), env[28]
; @656 (FNSTENV after the snippet: the full tag word). FXSAVE and FNSTENV do not wait, so a
; pending unmasked exception is captured, not raised.
bits 64
section .data
global x87_exit_ptr
host_rsp:  dq 0
state_ptr: dq 0
code_ptr:  dq 0
save_rax:  dq 0
x87_exit_ptr: dq x87_exit
host_mxcsr: dd 0
section .text
global x87_enter
x87_enter:
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
  fxrstor [rdi + 144]
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
x87_exit:
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
  fxsave [rax + 144]
  fnstenv [rax + 656]
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
