/*
 * The one differential-test runner (host side) for the integer, x87 and SSE/MMX tests. Reads
 * cases from argv[1], runs each natively, writes results to argv[2]. Code runs at CODE_ADDR
 * (one RWX page), data at DATA_ADDR (one RW page, the first DATA_LEN bytes carried).
 *
 * case:   u32 mode (64 or 32), u32 codeLen, u8 code[256], u64 regs[16], u64 rflags,
 *         u8 data[1024], u8 fxsave[512] (x87/SSE state loaded with FXRSTOR before the snippet)
 * result: u32 signal (0 none), u32 pad, u64 faultRipOffset, u64 regs[16], u64 rflags,
 *         u8 data[1024], u8 fxsave[512], u8 fnstenv[32]
 * After a fault the registers, RFLAGS and the FXSAVE image come from the signal frame (the
 * state at the faulting instruction); the FNSTENV block is then zero. A snippet that does not
 * come back within 200 ms is reported as SIGALRM (14).
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/time.h>
#include <ucontext.h>

#define CODE_ADDR 0x70000000UL
#define DATA_ADDR 0x70001000UL
#define CODE_MAX 256
#define DATA_LEN 1024

extern void rz_enter(uint64_t *state, void *code);
extern void rz_enter32(uint64_t *state, void *code);
extern uint64_t rz_exit_ptr;
extern uint32_t rz_exit32_ptr;
extern uint8_t *fx_ptr;
extern uint8_t *env_ptr;
static uint8_t fx[512] __attribute__((aligned(64)));
static uint8_t env[32];
static uint64_t state[17];

static sigjmp_buf jb;
static volatile int got_sig;
static volatile uint64_t fault_rip;

static const int greg_of[16] = {REG_RAX, REG_RCX, REG_RDX, REG_RBX, REG_RSP, REG_RBP, REG_RSI, REG_RDI,
                                REG_R8,  REG_R9,  REG_R10, REG_R11, REG_R12, REG_R13, REG_R14, REG_R15};

static void on_signal(int sig, siginfo_t *si, void *uc_) {
  (void)si;
  ucontext_t *uc = uc_;
  got_sig = sig;
  fault_rip = (uint64_t)uc->uc_mcontext.gregs[REG_RIP];
  for (int r = 0; r < 16; r++) state[r] = (uint64_t)uc->uc_mcontext.gregs[greg_of[r]];
  state[16] = (uint64_t)uc->uc_mcontext.gregs[REG_EFL];
  if (uc->uc_mcontext.fpregs) memcpy(fx, uc->uc_mcontext.fpregs, 512);
  memset(env, 0, sizeof env);
  siglongjmp(jb, 1);
}

int main(int argc, char **argv) {
  if (argc < 3) return 2;
  FILE *in = fopen(argv[1], "rb");
  FILE *out = fopen(argv[2], "wb");
  if (!in || !out) return 2;
  uint8_t *code = mmap((void *)CODE_ADDR, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
  uint8_t *data = mmap((void *)DATA_ADDR, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
  if (code != (void *)CODE_ADDR || data != (void *)DATA_ADDR) return 3;
  static uint8_t altstack[65536];
  stack_t ss = {.ss_sp = altstack, .ss_size = sizeof altstack, .ss_flags = 0};
  sigaltstack(&ss, 0);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_signal;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
  int sigs[] = {SIGSEGV, SIGFPE, SIGILL, SIGTRAP, SIGBUS, SIGALRM};
  for (unsigned i = 0; i < sizeof sigs / sizeof sigs[0]; i++) sigaction(sigs[i], &sa, 0);
  fx_ptr = fx;
  env_ptr = env;
  for (;;) {
    uint32_t hdr[2];
    if (fread(hdr, 4, 2, in) != 2) break;
    uint8_t snippet[CODE_MAX];
    if (fread(snippet, 1, CODE_MAX, in) != CODE_MAX || fread(state, 8, 17, in) != 17 || fread(data, 1, DATA_LEN, in) != DATA_LEN ||
        fread(fx, 1, 512, in) != 512)
      return 4;
    memset(fx + 464, 0, 48); /* reserved/available bytes must not fault FXRSTOR */
    memset(env, 0, sizeof env);
    uint32_t mode = hdr[0], len = hdr[1];
    if (len > CODE_MAX - 8 || (mode != 64 && mode != 32)) return 5;
    memset(code, 0xcc, 4096);
    memcpy(code, snippet, len);
    // jmp [abs exit pointer]: 64-bit FF 24 25 disp32 (SIB, no base); 32-bit FF 25 disp32.
    uint32_t ptr = mode == 32 ? (uint32_t)(uintptr_t)&rz_exit32_ptr : (uint32_t)(uintptr_t)&rz_exit_ptr;
    uint8_t *p = code + len;
    if (mode == 32) { *p++ = 0xff; *p++ = 0x25; } else { *p++ = 0xff; *p++ = 0x24; *p++ = 0x25; }
    memcpy(p, &ptr, 4);
    got_sig = 0;
    fault_rip = 0;
    struct itimerval it = {{0, 0}, {0, 200000}};
    setitimer(ITIMER_REAL, &it, 0);
    if (sigsetjmp(jb, 1) == 0) {
      if (mode == 32) rz_enter32(state, code);
      else rz_enter(state, code);
    }
    __asm__ volatile("push $0x202\n\tpopfq" ::: "cc", "memory");
    struct itimerval off0 = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off0, 0);
    uint32_t res[2] = {(uint32_t)got_sig, 0};
    uint64_t off = got_sig ? fault_rip - CODE_ADDR : 0;
    fwrite(res, 4, 2, out);
    fwrite(&off, 8, 1, out);
    fwrite(state, 8, 17, out);
    fwrite(data, 1, DATA_LEN, out);
    fwrite(fx, 1, 512, out);
    fwrite(env, 1, 32, out);
  }
  fclose(out);
  return 0;
}
