/**
 * Debug registers (SDM vol. 3 ch. 17): DR0-DR3 breakpoints enabled by DR7 (L/G bits), of kind
 * instruction (R/W 00), data write (01), I/O (10, with CR4.DE) or data read/write (11), with
 * lengths 1, 2, 8, 4 (LEN 00, 01, 10, 11); DR6 status bits; DR7.GD.
 *
 * Nothing here runs on the hot path: the vCPU steps one instruction at a time only while an
 * instruction or data breakpoint is enabled (or EFLAGS.RF is set), and data breakpoints watch
 * memory inside MmuMemory's slow path (the TLB entries of the watched pages are kept empty, so
 * every access to them takes it).
 */
import { CR4_DE } from './regs';
import type { System } from './system';

export const DR6_B_MASK = 0xf;
/** DR6.BD: the #DB was a general-detect fault (MOV DR with DR7.GD set). */
export const DR6_BD = 0x2000;
/** DR6.BS: single-step trap (EFLAGS.TF). */
export const DR6_BS = 0x4000;
/** DR6 bits that always read as 1 (bit 12 reads 0; bit 16 RTM reads 1 without RTM). */
export const DR6_FIXED_1: number = 0xffff0ff0 | 0;
export const DR7_GD = 0x2000;
/** DR7 bit 10 reads as 1; bits 11, 12, 14, 15 read as 0. */
export const DR7_FIXED_1 = 0x400;

const TWO32 = 4294967296;

/** Breakpoint kind n (R/W field) and length n in bytes, from DR7. */
export function bpKind(dr7: number, n: number): number {
  return (dr7 >>> (16 + 4 * n)) & 3;
}
export function bpLen(dr7: number, n: number): number {
  const l = (dr7 >>> (18 + 4 * n)) & 3;
  return l === 2 ? 8 : l + 1;
}

/**
 * Recomputes sys.bpExec / bpIo and the memory watch from DR0-DR3 and DR7. Call after any write
 * to them (MOV DR, state import, reset).
 */
export function updateBreakpoints(sys: System): void {
  const dr7 = sys.dr7;
  let exec = 0;
  let io = 0;
  const mem = sys.mem;
  mem.clearWatch();
  for (let n = 0; n < 4; n++) {
    // Breakpoint linear addresses in the form the CPU uses (signed canonical for 64-bit values).
    const hi = sys.drHi[n];
    sys.dr[n] = hi === 0 ? sys.drLo[n] >>> 0 : hi * TWO32 + (sys.drLo[n] >>> 0);
    if (((dr7 >>> (2 * n)) & 3) === 0) continue;
    const kind = bpKind(dr7, n);
    if (kind === 0) exec |= 1 << n;
    else if (kind === 2) io |= 1 << n;
    else {
      const len = bpLen(dr7, n);
      // The CPU ignores the address bits below the length (SDM 17.2.5).
      const lo = sys.drLo[n] & ~(len - 1);
      mem.setWatch(n, hi === 0 ? lo >>> 0 : hi * TWO32 + (lo >>> 0), len, kind === 1);
    }
  }
  sys.bpExec = exec;
  sys.bpIo = io;
}

/**
 * Instruction breakpoints at linear address la: the DR6 B bits of every instruction-kind
 * breakpoint at la when at least one of them is enabled (the SDM lets disabled matches set
 * their B bit too), else 0.
 */
export function execBreak(sys: System, la: number): number {
  const dr7 = sys.dr7;
  let all = 0;
  for (let n = 0; n < 4; n++) if (bpKind(dr7, n) === 0 && sys.dr[n] === la) all |= 1 << n;
  return (all & sys.bpExec) !== 0 ? all : 0;
}

/** I/O breakpoints hit by an access to [port, port + size): DR6 B bits (needs CR4.DE). */
export function ioBreak(sys: System, port: number, size: number): number {
  if (sys.bpIo === 0 || (sys.cpu.cr4 & CR4_DE) === 0) return 0;
  let hit = 0;
  for (let n = 0; n < 4; n++) {
    if ((sys.bpIo & (1 << n)) === 0) continue;
    const len = bpLen(sys.dr7, n);
    const a = (sys.drLo[n] & 0xffff) & ~(len - 1);
    if (port < a + len && port + size > a) hit |= 1 << n;
  }
  return hit;
}
