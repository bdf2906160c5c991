/*
 * x87 differential-test runner (host side). Reads cases from argv[1], runs each natively,
 * writes results to argv[2]. Code runs at CODE_ADDR (one RWX page), data at DATA_ADDR.
 *
 * case:   u32 codeLen, u8 code[60], u8 state[688] (layout in tramp.asm), u8 data[1024]
 * result: u32 signal, u32 faultOffset, u8 state[688], u8 data[1024]
 * On a signal the registers, RFLAGS and the FXSAVE image come from the signal frame (the state
 * at the faulting instruction); the FNSTENV block is then zero.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>

#define CODE_ADDR 0x60000000UL
#define DATA_ADDR 0x60001000UL
#define CODE_MAX 60
#define STATE_LEN 688
#define DATA_LEN 1024

extern void x87_enter(uint8_t *state, void *code);
extern uint64_t x87_exit_ptr;

static sigjmp_buf jb;
static volatile int got_sig;
static uint8_t *cur_state;
static volatile uint64_t fault_rip;

static const int greg_of[16] = {REG_RAX, REG_RCX, REG_RDX, REG_RBX, REG_RSP, REG_RBP, REG_RSI, REG_RDI,
                                REG_R8,  REG_R9,  REG_R10, REG_R11, REG_R12, REG_R13, REG_R14, REG_R15};

static void on_signal(int sig, siginfo_t *si, void *uc_) {
  (void)si;
  ucontext_t *uc = uc_;
  got_sig = sig;
  fault_rip = (uint64_t)uc->uc_mcontext.gregs[REG_RIP];
  for (int r = 0; r < 16; r++) memcpy(cur_state + r * 8, &uc->uc_mcontext.gregs[greg_of[r]], 8);
  memcpy(cur_state + 128, &uc->uc_mcontext.gregs[REG_EFL], 8);
  memset(cur_state + 656, 0, 32);
  if (uc->uc_mcontext.fpregs) {
    memcpy(cur_state + 136, &uc->uc_mcontext.fpregs->mxcsr, 4);
    memcpy(cur_state + 144, uc->uc_mcontext.fpregs, 512);
  }
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
  int sigs[] = {SIGSEGV, SIGFPE, SIGILL, SIGTRAP, SIGBUS};
  for (unsigned i = 0; i < sizeof sigs / sizeof sigs[0]; i++) sigaction(sigs[i], &sa, 0);
  static uint8_t state[STATE_LEN] __attribute__((aligned(64)));
  for (;;) {
    uint32_t len;
    uint8_t snippet[CODE_MAX];
    if (fread(&len, 4, 1, in) != 1) break;
    if (fread(snippet, 1, CODE_MAX, in) != CODE_MAX || fread(state, 1, STATE_LEN, in) != STATE_LEN || fread(data, 1, DATA_LEN, in) != DATA_LEN) return 4;
    if (len > CODE_MAX) return 5;
    memset(code, 0xcc, 4096);
    memcpy(code, snippet, len);
    uint32_t ptr = (uint32_t)(uintptr_t)&x87_exit_ptr;
    uint8_t *p = code + len;
    *p++ = 0xff; *p++ = 0x24; *p++ = 0x25;
    memcpy(p, &ptr, 4);
    got_sig = 0;
    fault_rip = 0;
    cur_state = state;
    if (sigsetjmp(jb, 1) == 0) x87_enter(state, code);
    uint32_t res[2] = {(uint32_t)got_sig, got_sig ? (uint32_t)(fault_rip - CODE_ADDR) : 0};
    fwrite(res, 4, 2, out);
    fwrite(state, 1, STATE_LEN, out);
    fwrite(data, 1, DATA_LEN, out);
  }
  fclose(out);
  return 0;
}
