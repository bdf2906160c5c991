/*
 * The one differential-test runner (host side) for the integer, x87 and SSE/MMX tests. Reads
 * cases from argv[1], runs each natively, writes results to argv[2]. Code runs at CODE_ADDR
 * (one RWX page), data at DATA_ADDR (one RW page, the first DATA_LEN bytes carried).
 *
 * case:   u32 mode (64, 32 or 16), u32 codeLen, u8 code[256], u64 regs[16], u64 rflags,
 *         u8 data[1024], u8 hi[1024], u8 fxsave[512] (x87/SSE state loaded with FXRSTOR)
 * result: u32 signal (0 none), u32 pad, u64 faultRipOffset, u64 regs[16], u64 rflags,
 *         u8 data[1024], u8 hi[1024], u8 fxsave[512], u8 fnstenv[32]
 * `hi` is the memory at HI_ADDR (DATA_ADDR + 0xfe00), where 16-bit offsets 0xfe00-0xffff of
 * the 16-bit data segments land.
 * After a fault the registers, RFLAGS and the FXSAVE image come from the signal frame (the
 * state at the faulting instruction); the FNSTENV block is then zero. A snippet that does not
 * come back within 200 ms of CPU time is reported as SIGVTALRM (26).
 *
 * 16-bit code runs in an LDT code segment with D = 0 (base CODE_ADDR, limit 0xffff), with
 * 16-bit data segments DS, ES and SS (B = 0, bases DATA_ADDR, + 0x100, + 0x200) whose low
 * offsets land in the data page and offsets from 0xfe00 in the hi area (so 16-bit address and
 * SP wrap-around stay observable); faultRipOffset is then the IP.
 */
#define _GNU_SOURCE
#include <asm/ldt.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>
#include <ucontext.h>

#define CODE_ADDR 0x70000000UL
#define DATA_ADDR 0x70001000UL
#define CODE_MAX 256
#define DATA_LEN 1024
#define HI_ADDR (DATA_ADDR + 0xfe00)
#define HI_LEN 1024

extern void rz_enter(uint64_t *state, void *code);
extern void rz_enter32(uint64_t *state, void *code);
extern void rz_enter16(uint64_t *state, void *code);
extern uint8_t rz_exit16[];
extern uint64_t rz_exit_ptr;
extern uint32_t rz_exit32_ptr;
extern uint8_t *fx_ptr;
extern uint8_t *env_ptr;
static uint8_t fx[512] __attribute__((aligned(64)));
static uint8_t env[32];
static uint64_t state[17];

/* Installs LDT entry n: a 16-bit (D/B = 0) code or data segment, limit 0xffff, DPL 3. */
static int ldt_entry(unsigned n, unsigned long base, int code) {
  struct user_desc d;
  memset(&d, 0, sizeof d);
  d.entry_number = n;
  d.base_addr = (unsigned)base;
  d.limit = 0xffff;
  d.contents = code ? MODIFY_LDT_CONTENTS_CODE : MODIFY_LDT_CONTENTS_DATA;
  d.useable = 1;
  return (int)syscall(SYS_modify_ldt, 0x11, &d, sizeof d);
}

static sigjmp_buf jb;
static volatile int got_sig;
static volatile uint64_t fault_rip;

static const int greg_of[16] = {REG_RAX, REG_RCX, REG_RDX, REG_RBX, REG_RSP, REG_RBP, REG_RSI, REG_RDI,
                                REG_R8,  REG_R9,  REG_R10, REG_R11, REG_R12, REG_R13, REG_R14, REG_R15};

static void on_signal(int sig, siginfo_t *si, void *uc_) {
  (void)si;
  ucontext_t *uc = uc_;
  if (got_sig && sig == SIGVTALRM) return; /* a late timer after a fault: the fault stands */
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
  uint8_t *hipages = mmap((void *)(DATA_ADDR + 0xf000), 0x2000, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
  if (code != (void *)CODE_ADDR || data != (void *)DATA_ADDR || hipages != (void *)(DATA_ADDR + 0xf000)) return 3;
  uint8_t *hi = (uint8_t *)HI_ADDR;
  static uint8_t altstack[65536];
  stack_t ss = {.ss_sp = altstack, .ss_size = sizeof altstack, .ss_flags = 0};
  sigaltstack(&ss, 0);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_signal;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
  int sigs[] = {SIGSEGV, SIGFPE, SIGILL, SIGTRAP, SIGBUS, SIGVTALRM};
  for (unsigned i = 0; i < sizeof sigs / sizeof sigs[0]; i++) sigaction(sigs[i], &sa, 0);
  fx_ptr = fx;
  env_ptr = env;
  int have16 = ldt_entry(0, CODE_ADDR, 1) == 0 && ldt_entry(1, DATA_ADDR, 0) == 0 && ldt_entry(2, DATA_ADDR + 0x100, 0) == 0 &&
               ldt_entry(3, DATA_ADDR + 0x200, 0) == 0;
  for (;;) {
    uint32_t hdr[2];
    if (fread(hdr, 4, 2, in) != 2) break;
    uint8_t snippet[CODE_MAX];
    if (fread(snippet, 1, CODE_MAX, in) != CODE_MAX || fread(state, 8, 17, in) != 17 || fread(data, 1, DATA_LEN, in) != DATA_LEN || fread(hi, 1, HI_LEN, in) != HI_LEN ||
        fread(fx, 1, 512, in) != 512)
      return 4;
    memset(fx + 464, 0, 48); /* reserved/available bytes must not fault FXRSTOR */
    memset(env, 0, sizeof env);
    uint32_t mode = hdr[0], len = hdr[1];
    if (len > CODE_MAX - 16 || (mode != 64 && mode != 32 && mode != 16)) return 5;
    if (mode == 16 && !have16) return 6;
    memset(code, 0xcc, 4096);
    memcpy(code, snippet, len);
    uint8_t *p = code + len;
    if (mode == 16) {
      // jmp far dword [cs:len + 6] (66 2E FF /5 disp16), then the pointer rz_exit16:0x33
      uint16_t at = (uint16_t)(len + 6), sel = 0x33;
      uint32_t target = (uint32_t)(uintptr_t)rz_exit16;
      *p++ = 0x66; *p++ = 0x2e; *p++ = 0xff; *p++ = 0x2e;
      memcpy(p, &at, 2); p += 2;
      memcpy(p, &target, 4); p += 4;
      memcpy(p, &sel, 2);
      // entry stub at 0xf00: mov esp, [cs:0xff8] (66 2E 8B 26 disp16); jmp 0 (E9 rel16)
      static const uint8_t stub[] = {0x66, 0x2e, 0x8b, 0x26, 0xf8, 0x0f, 0xe9, 0xf7, 0xf0};
      memcpy(code + 0xf00, stub, sizeof stub);
      uint32_t esp = (uint32_t)state[4];
      memcpy(code + 0xff8, &esp, 4);
    } else {
      // jmp [abs exit pointer]: 64-bit FF 24 25 disp32 (SIB, no base); 32-bit FF 25 disp32.
      uint32_t ptr = mode == 32 ? (uint32_t)(uintptr_t)&rz_exit32_ptr : (uint32_t)(uintptr_t)&rz_exit_ptr;
      if (mode == 32) { *p++ = 0xff; *p++ = 0x25; } else { *p++ = 0xff; *p++ = 0x24; *p++ = 0x25; }
      memcpy(p, &ptr, 4);
    }
    got_sig = 0;
    fault_rip = 0;
    struct itimerval it = {{0, 0}, {0, 200000}};
    setitimer(ITIMER_VIRTUAL, &it, 0);
    if (sigsetjmp(jb, 1) == 0) {
      if (mode == 32) rz_enter32(state, code);
      else if (mode == 16) rz_enter16(state, code);
      else rz_enter(state, code);
    }
    __asm__ volatile("push $0x202\n\tpopfq" ::: "cc", "memory");
    struct itimerval off0 = {{0, 0}, {0, 0}};
    setitimer(ITIMER_VIRTUAL, &off0, 0);
    uint32_t res[2] = {(uint32_t)got_sig, 0};
    uint64_t off = !got_sig ? 0 : mode == 16 ? fault_rip : fault_rip - CODE_ADDR;
    fwrite(res, 4, 2, out);
    fwrite(&off, 8, 1, out);
    fwrite(state, 8, 17, out);
    fwrite(data, 1, DATA_LEN, out);
    fwrite(hi, 1, HI_LEN, out);
    fwrite(fx, 1, 512, out);
    fwrite(env, 1, 32, out);
  }
  fclose(out);
  return 0;
}
