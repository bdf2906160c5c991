/**
 * x87 register file, stack and exception machinery.
 *
 * Storage (cpu.ts fields): physical register Rp holds its 64-bit significand in
 * cpu.mmx[2p] (bits 0-31) and cpu.mmx[2p + 1] (bits 32-63), the sign and 15-bit exponent in
 * cpu.fprExt[p] (bits 0-15): the exact 80-bit value, and the MMX registers alias the
 * significands as on hardware (MMn = Rn). cpu.fpr[p] is not used by this group. cpu.fpTag is
 * the full tag word (2 bits per physical register: 0 valid, 1 zero, 2 special, 3 empty),
 * cpu.fpTop is TOP and cpu.fpSw the status word without TOP.
 *
 * Exceptions: handlers collect the exception bits of the instruction (X_* in float80.ts) and
 * commit them with `raise`. An unmasked exception sets ES and B; the #MF is delivered by the
 * next waiting x87 instruction (`fpEnter`), as with CR0.NE = 1. (CR0.NE = 0, the legacy FERR# /
 * IRQ13 path, is the system half's: it behaves like NE = 1 for now.)
 */
import type { Cpu } from '../cpu';
import { MF, NM, ST_FAULT, ST_OK } from '../constants';
import { F80, setIndefinite, tagOf, X_IE, X_SF } from './float80';

// Status word bits.
export const SW_IE = 0x0001;
export const SW_SF = 0x0040;
export const SW_ES = 0x0080;
export const SW_C0 = 0x0100;
export const SW_C1 = 0x0200;
export const SW_C2 = 0x0400;
export const SW_TOP = 0x3800;
export const SW_C3 = 0x4000;
export const SW_B = 0x8000;
export const SW_CC: number = SW_C0 | SW_C1 | SW_C2 | SW_C3;

const CR0_MP = 2;
const CR0_EM = 4;
const CR0_TS = 8;

/** Entry checks of a waiting x87 instruction: #NM (CR0.EM/TS), then a pending #MF. */
export function fpEnter(cpu: Cpu): number {
  if ((cpu.cr0 & (CR0_EM | CR0_TS)) !== 0) return cpu.fault(NM, 0);
  if ((cpu.fpSw & SW_ES) !== 0) return cpu.fault(MF, 0);
  return ST_OK;
}

/** Entry checks of a non-waiting control instruction (FNINIT, FNSTSW, FNSTENV...): #NM only. */
export function fpEnterNoWait(cpu: Cpu): number {
  if ((cpu.cr0 & (CR0_EM | CR0_TS)) !== 0) return cpu.fault(NM, 0);
  return ST_OK;
}

/** FWAIT: #NM only when CR0.MP and CR0.TS are both set; then a pending #MF. */
export function fwaitCheck(cpu: Cpu): number {
  if ((cpu.cr0 & (CR0_MP | CR0_TS)) === (CR0_MP | CR0_TS)) return cpu.fault(NM, 0);
  if ((cpu.fpSw & SW_ES) !== 0) return cpu.fault(MF, 0);
  return ST_OK;
}

export function phys(cpu: Cpu, i: number): number {
  return (cpu.fpTop + i) & 7;
}

export function isEmpty(cpu: Cpu, i: number): boolean {
  return ((cpu.fpTag >> (2 * ((cpu.fpTop + i) & 7))) & 3) === 3;
}

export function readST(cpu: Cpu, i: number, out: F80): void {
  const p = (cpu.fpTop + i) & 7;
  out.se = cpu.fprExt[p] & 0xffff;
  out.hi = cpu.mmx[2 * p + 1] >>> 0;
  out.lo = cpu.mmx[2 * p] >>> 0;
}

/** Writes ST(i) and its tag. */
export function writeST(cpu: Cpu, i: number, v: F80): void {
  writePhys(cpu, (cpu.fpTop + i) & 7, v);
}

export function writePhys(cpu: Cpu, p: number, v: F80): void {
  cpu.fprExt[p] = v.se & 0xffff;
  cpu.mmx[2 * p + 1] = v.hi | 0;
  cpu.mmx[2 * p] = v.lo | 0;
  cpu.fpTag = (cpu.fpTag & ~(3 << (2 * p))) | (tagOf(v) << (2 * p));
}

export function setEmpty(cpu: Cpu, i: number): void {
  cpu.fpTag |= 3 << (2 * ((cpu.fpTop + i) & 7));
}

/** Marks ST(0) empty and increments TOP. */
export function pop(cpu: Cpu): void {
  setEmpty(cpu, 0);
  cpu.fpTop = (cpu.fpTop + 1) & 7;
}

/** Decrements TOP (the caller then writes ST(0)). */
export function pushTop(cpu: Cpu): void {
  cpu.fpTop = (cpu.fpTop - 1) & 7;
}

/** The invalid-operation mask bit is set. */
export function imMasked(cpu: Cpu): boolean {
  return (cpu.fpCw & 1) !== 0;
}

/**
 * Commits exception bits exc (X_* / SW bits 0-6) raised by an instruction to the status word:
 * sticky flags, then ES and B when one of them is unmasked (SF follows IE's mask).
 */
export function raise(cpu: Cpu, exc: number): void {
  if (exc === 0) return;
  let sw = cpu.fpSw | exc;
  if ((exc & 0x3f & ~cpu.fpCw) !== 0) sw |= SW_ES | SW_B;
  cpu.fpSw = sw;
}

/** Sets C1 (0/1), leaving the other condition codes alone. */
export function setC1(cpu: Cpu, c1: number): void {
  cpu.fpSw = c1 ? cpu.fpSw | SW_C1 : cpu.fpSw & ~SW_C1;
}

/** Sets C3 C2 C1 C0 from bits (c3 << 3 | c2 << 2 | c1 << 1 | c0). */
export function setCC(cpu: Cpu, c3: number, c2: number, c1: number, c0: number): void {
  cpu.fpSw = (cpu.fpSw & ~SW_CC) | (c0 ? SW_C0 : 0) | (c1 ? SW_C1 : 0) | (c2 ? SW_C2 : 0) | (c3 ? SW_C3 : 0);
}

const IND = /*#__PURE__*/ new F80();
setIndefinite(IND);

/**
 * Stack underflow (a source register is empty) for an instruction whose result goes to
 * ST(dst): IE + SF with C1 = 0; masked: the indefinite QNaN is written to ST(dst) (then the
 * pop, if any); unmasked: nothing changes but the flags.
 */
export function underflow(cpu: Cpu, dst: number, popAfter: boolean): number {
  raise(cpu, X_IE | X_SF);
  setC1(cpu, 0);
  if (imMasked(cpu)) {
    if (dst >= 0) writeST(cpu, dst, IND);
    if (popAfter) pop(cpu);
  }
  return ST_OK;
}

/**
 * Pushes v: stack overflow (ST(7) not empty) is IE + SF with C1 = 1; masked: TOP is
 * decremented and the indefinite QNaN pushed; unmasked: nothing changes. Returns true when the
 * push happened normally (or with the masked response) so the caller can go on.
 */
export function pushValue(cpu: Cpu, v: F80): void {
  if (!isEmpty(cpu, 7)) {
    raise(cpu, X_IE | X_SF);
    setC1(cpu, 1);
    if (imMasked(cpu)) {
      pushTop(cpu);
      writeST(cpu, 0, IND);
    }
    return;
  }
  setC1(cpu, 0);
  pushTop(cpu);
  writeST(cpu, 0, v);
}

/** ST_FAULT helper for readability. */
export const FAULT: number = ST_FAULT;
