/**
 * MMX/SSE/SSE2/SSE3/SSSE3 group (0F and 0F38/0F3A maps, selected by mandatory prefixes
 * 66/F3/F2 with F_PFXSEL). Not implemented yet: those encodings decode to #UD and CPUID does
 * not advertise SSE (cpu.features.sse2 stays false). See src/DESIGN.md.
 */
import type { OpDef } from '../table';

export const SSE_OPS: readonly OpDef[] = [];
