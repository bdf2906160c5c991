/**
 * x87 FPU group (D8-DF escape opcodes, FXSAVE/FXRSTOR's x87 half, FSAVE/FRSTOR...).
 * Not implemented yet: every D8-DF encoding decodes to #UD until this list is filled in, and
 * CPUID does not advertise an FPU (cpu.features.fpu stays false). See src/DESIGN.md.
 */
import type { OpDef } from '../table';

export const X87_OPS: readonly OpDef[] = [];
