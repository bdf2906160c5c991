/**
 * MMX/SSE/SSE2/SSE3/SSSE3 group (0F, 0F38 and 0F3A maps, forms selected by the mandatory
 * prefixes 66/F3/F2 with F_PFXSEL). See src/DESIGN.md and the files beside this one:
 * common.ts (checks, operands, #XM), fp.ts (IEEE + MXCSR), int.ts (integer SIMD and SSSE3),
 * float.ts (float arithmetic, compares, conversions), move.ts (data movement), state.ts
 * (LDMXCSR/STMXCSR, FXSAVE/FXRSTOR).
 */
import type { OpDef } from '../table';
import { FLOAT_OPS } from './float';
import { INT_OPS } from './int';
import { MOVE_OPS } from './move';
import { STATE_OPS } from './state';

export const SSE_OPS: readonly OpDef[] = [...MOVE_OPS, ...INT_OPS, ...FLOAT_OPS, ...STATE_OPS];
