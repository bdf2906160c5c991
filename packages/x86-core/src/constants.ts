/**
 * Numbers shared by every part of the CPU: register numbers, EFLAGS bits, exception vectors,
 * handler status codes and run() exit reasons. Plain numeric consts (no enums), so that the
 * bundler can inline them and hot paths compare small integers.
 */

// General-purpose register numbers, in ModRM/REX encoding order.
export const RAX = 0;
export const RCX = 1;
export const RDX = 2;
export const RBX = 3;
export const RSP = 4;
export const RBP = 5;
export const RSI = 6;
export const RDI = 7;
export const R8 = 8;
export const R9 = 9;
export const R10 = 10;
export const R11 = 11;
export const R12 = 12;
export const R13 = 13;
export const R14 = 14;
export const R15 = 15;

// Segment register numbers, in the encoding order of MOV Sreg (ModRM.reg).
export const ES = 0;
export const CS = 1;
export const SS = 2;
export const DS = 3;
export const FS = 4;
export const GS = 5;

/*
 * EFLAGS
 *  bit  0 CF carry          bit  8 TF trap            bit 16 RF resume
 *  bit  1 (always 1)        bit  9 IF interrupt       bit 17 VM virtual-8086
 *  bit  2 PF parity         bit 10 DF direction       bit 18 AC alignment check
 *  bit  4 AF adjust         bit 11 OF overflow        bit 19 VIF, 20 VIP
 *  bit  6 ZF zero           bit 12-13 IOPL            bit 21 ID (CPUID available)
 *  bit  7 SF sign           bit 14 NT nested task
 */
export const CF = 0x0001;
export const PF = 0x0004;
export const AF = 0x0010;
export const ZF = 0x0040;
export const SF = 0x0080;
export const TF = 0x0100;
export const IF = 0x0200;
export const DF = 0x0400;
export const OF = 0x0800;
export const IOPL = 0x3000;
export const NT = 0x4000;
export const RF = 0x10000;
export const VM = 0x20000;
export const AC = 0x40000;
export const VIF = 0x80000;
export const VIP = 0x100000;
export const ID = 0x200000;
/** The six arithmetic status flags, the ones computed lazily. */
export const ARITH_FLAGS = 0x08d5;

// Exception vectors.
export const DE = 0; // divide error
export const DB = 1;
export const NMI = 2;
export const BP = 3;
export const OFV = 4; // overflow (INTO)
export const BR = 5; // BOUND range
export const UD = 6; // invalid opcode
export const NM = 7; // device not available
export const DF_VEC = 8; // double fault
export const TS = 10;
export const NP = 11;
export const SS_VEC = 12; // stack fault
export const GP = 13;
export const PF_VEC = 14; // page fault
export const MF = 16; // x87 floating point
export const AC_VEC = 17;
export const MC = 18;
export const XM = 19; // SIMD floating point

/*
 * Status codes returned by every instruction handler (and by the CPU's memory helpers).
 * 0 means "done, go on"; anything else stops the instruction. A handler that returns a
 * non-zero status must not have changed any register: RIP stays at the instruction, so it
 * can be restarted after the fault is handled (the "commit registers last" rule, DESIGN.md).
 */
export const ST_OK = 0;
/** A CPU exception; cpu.faultVector / faultError / faultAddress say which. */
export const ST_FAULT = 1;
/** SYSCALL executed with cpu.syscallExits set: RIP already points past it. */
export const ST_SYSCALL = 2;
/** HLT: RIP already points past it. */
export const ST_HLT = 3;
/** The instruction wants to be executed again (a REP string instruction that yielded). */
export const ST_AGAIN = 4;
/** A software interrupt or trap (INT n, INT3, INTO, INT1): cpu.faultVector; RIP past it. */
export const ST_SOFTINT = 5;
/**
 * The instruction completed (RIP past it) and may have unblocked an event (STI, POPF changing
 * IF/TF, MOV SS, IRET...): run() returns EXIT_BREAK so the vCPU (src/system) re-checks
 * interrupts, the interrupt shadow and single-step. Only returned when cpu.sys is set.
 */
export const ST_BREAK = 6;

/*
 * run() exit reasons (KVM's kvm_run.exit_reason, for a CPU that is a library). The system
 * issue adds I/O, MMIO, shutdown, interrupt-window, debug and EPT exits after these numbers.
 */
export const EXIT_BUDGET = 1;
export const EXIT_EXCEPTION = 2;
export const EXIT_SYSCALL = 3;
export const EXIT_HLT = 4;
/** INT n / INT3 / INTO / INT1 in user mode (vector in cpu.faultVector; RIP past the instruction). */
export const EXIT_SOFTINT = 5;
/** An instruction returned ST_BREAK (system mode only; RIP past it). */
export const EXIT_BREAK = 6;

/**
 * faultVector of an access that must leave the vCPU (MMIO, EPT violation, port I/O): the
 * system's memory adapter or I/O hook recorded the details; RIP is still at the instruction.
 */
export const VEC_EXIT = 0x100;

// Operand / address / code sizes are in bytes: 1, 2, 4, 8.
