/**
 * The decoded-instruction record. The decoder fills one in place (no allocation); the executor
 * reads it. Everything here depends only on the instruction bytes and the code size, never on
 * register values, so a record can be cached per code page and replayed (the future decode
 * cache and JIT tier rely on that: effective addresses are computed at execute time).
 */
import { execUd } from './exec/ud';
import type { Exec } from './table';

export class Insn {
  /** Index in OPS (src/table.ts): selects the handler. 0 is the #UD entry. */
  op = 0;
  /**
   * The handler run() calls: OP_EXEC[op], or a variant of it specialised by the decoder for
   * this record's form (register or memory operand, operand size; OpDef.fast). Both give the
   * same result, so a caller may use either.
   */
  exec: Exec = execUd;
  /** Length in bytes (1..15). */
  len = 0;
  /** Last opcode byte (condition codes, ALU sub-op, register-in-opcode live in it). */
  opcode = 0;
  /** Opcode map: 0 one-byte, 1 0F, 2 0F38, 3 0F3A. */
  map = 0;
  /** Operand size in bytes (1, 2, 4, 8), already resolved from prefixes, REX.W and the op. */
  osize = 4;
  /** Address size in bytes (2, 4, 8). */
  asize = 4;
  /** Code size the record was decoded for (2, 4, 8). */
  csize = 4;
  /** REX byte (0 when absent). */
  rex = 0;
  /** Repeat prefix: 0 none, 2 REPNE (F2), 3 REP/REPE (F3); the last one wins. */
  rep = 0;
  /** 1 when a LOCK prefix is present. */
  lock = 0;
  /** 1 when a 66 prefix is present (also when it selected an SSE form). */
  p66 = 0;
  /** Segment of the memory operand (override or default: SS for rBP/rSP bases, else DS). */
  seg = 3;
  /** 1 when a segment override prefix was given. */
  segOverride = 0;
  /** ModRM fields; reg and rm include REX.R / REX.B. mod = 3 means a register operand. */
  mod = 3;
  reg = 0;
  rm = 0;
  /** Memory operand: base and index register numbers (-1 none), scale shift 0..3. */
  base = -1;
  index = -1;
  scale = 0;
  /** Displacement, sign-extended to 32 bits; dispHi is its high half (moffs64 only). */
  disp = 0;
  dispHi = 0;
  /** 1 for RIP-relative addressing (64-bit mode, mod=0 rm=5). */
  ripRel = 0;
  /**
   * Shape of a 64-bit-address memory operand for Cpu.eaFast: 1 = [base + index*scale + disp]
   * (base and index optional) with a flat segment, 2 = [rip + disp] with a flat segment, 3 = as
   * 1 plus the FS or GS base; 0 = any other (Cpu.eaOf).
   */
  eaKind = 0;
  /** First immediate, sign- or zero-extended as the op defines (int32); immHi for imm64. */
  imm = 0;
  immHi = 0;
  /** Second immediate (ENTER's nesting level, far pointer selector). */
  imm2 = 0;
}
