/**
 * The opcode table: one list of OpDef entries drives the decoder (which bytes follow, which
 * sizes apply), the executor (the handler) and the differential test generator (mnemonic,
 * operand syntax, the flags the SDM defines). Each instruction group lives in its own file
 * (src/exec/*.ts, later src/x87/*.ts, src/sse/*.ts) and exports an OpDef[]; this module
 * concatenates them and builds the packed lookup tables once at load time.
 */
import type { Cpu } from './cpu';
import type { Insn } from './insn';

/** An instruction handler: returns ST_OK or a status (src/constants.ts). */
export type Exec = (cpu: Cpu, d: Insn) => number;

/*
 * OpDef.flags bits (decode behaviour).
 *  F_MODRM   the op has a ModRM byte (implied by E/G/M/R operands or an ext)
 *  F_BYTE    operand size is 8 bits
 *  F_DEF64   in 64-bit mode the operand size defaults to 64 (66 selects 16): PUSH, POP, ...
 *  F_FORCE64 in 64-bit mode the operand size is 64 whatever the prefixes (near branches)
 *  F_INV64   invalid (#UD) in 64-bit mode
 *  F_ONLY64  valid only in 64-bit mode
 *  F_LOCK    LOCK allowed (with a memory destination); otherwise LOCK is #UD
 *  F_MEM     ModRM must name memory (mod=3 is #UD or another op)
 *  F_REG     ModRM must name a register (mod!=3 is #UD or another op)
 *  F_SIZE16  operand size is 16 regardless of prefixes (RET imm16's imm, MOV Sreg...)
 *  F_SIZE32  operand size is 32 regardless of 66/REX.W (e.g. CPUID ignores it anyway)
 *  F_NOREPFB / F_NO66FB / F_PFXSEL  mandatory-prefix fallback rules (see below)
 */
export const F_MODRM = 1;
export const F_BYTE = 2;
export const F_DEF64 = 4;
export const F_FORCE64 = 8;
export const F_INV64 = 16;
export const F_ONLY64 = 32;
export const F_LOCK = 64;
export const F_MEM = 128;
export const F_REG = 256;
export const F_SIZE16 = 512;
export const F_SIZE32 = 1024;
/** F2/F3 on this op's encoding select other ops: they never fall back to this entry. */
export const F_NOREPFB = 2048;
/** 66 on this op's encoding selects another op: it never falls back to this entry. */
export const F_NO66FB = 4096;
/** Both of the above: an SSE-style entry selected by its exact mandatory prefix. */
export const F_PFXSEL = 6144;

/*
 * Immediate kinds (OpDef.imm).
 *  IMM_B   8 bits, sign-extended into Insn.imm        IMM_UB  8 bits, zero-extended
 *  IMM_W   16 bits, zero-extended                      IMM_Z   16 or 32 bits by operand size,
 *                                                              sign-extended (to 64 via immHi)
 *  IMM_V   16/32/64 bits by operand size (MOV r, imm64) IMM_MOFFS address-size offset
 *  IMM_WB  imm16 then imm8 (ENTER)                     IMM_AP  far pointer offset:selector
 */
export const IMM_NONE = 0;
export const IMM_B = 1;
export const IMM_UB = 2;
export const IMM_W = 3;
export const IMM_Z = 4;
export const IMM_V = 5;
export const IMM_MOFFS = 6;
export const IMM_WB = 7;
export const IMM_AP = 8;

/** Mandatory-prefix selector of an entry: none, 66, F3, F2 (SSE forms, POPCNT, TZCNT...). */
export const PFX_NONE = 0;
export const PFX_66 = 1;
export const PFX_F3 = 2;
export const PFX_F2 = 3;

/**
 * Picks a handler specialised for one decoded form (e.g. register operand, 32-bit size) or
 * null for the op's generic handler; called once per decode, never per execution.
 */
export type Pick = (d: Insn) => Exec | null;

export interface OpDef {
  /** nasm mnemonic, lower case (the test generator writes it as is). */
  readonly mnem: string;
  /** Opcode map (0 one-byte, 1 0F, 2 0F38, 3 0F3A). */
  readonly map: number;
  /** Opcode byte. With F_REGOP-style ops (B8+r) list the 8 bytes via `count`. */
  readonly byte: number;
  /** How many consecutive opcode bytes this entry covers (register-in-opcode forms: 8). */
  readonly count: number;
  /** ModRM.reg extension (0..7) or -1. */
  readonly ext: number;
  /** For mod=3-only forms selected by ModRM.rm (0F 01 F9 = RDTSCP): 0..7, else -1. */
  readonly rmExt: number;
  /** Mandatory prefix (PFX_*). */
  readonly pfx: number;
  /** Operand syntax, SDM style (Eb,Gb / Ev,Iz / Jz...), for the docs and the test generator. */
  readonly operands: string;
  readonly flags: number;
  readonly imm: number;
  readonly exec: Exec;
  /** Optional decode-time specialiser of exec (src/exec/fast.ts), or null. */
  readonly fast: Pick | null;
  /** EFLAGS bits this instruction writes with SDM-defined values (test oracle mask). */
  readonly defFlags: number;
  /** EFLAGS bits the SDM says are undefined after it (never compared). */
  readonly undefFlags: number;
}

/** Operand kinds that imply a ModRM byte: E, G, M, R (ModRM.rm/reg), S (Sreg), C/D (CRn/DRn), N/P/Q/U/V/W (MMX/SSE). */
const MODRM_OPERAND = /^(E|G|M|R|S|C|D|N|P|Q|U|V|W)[a-z]*$/;
/** First-operand kinds that make the op byte-sized. */
const BYTE_FIRST = /^(Eb|Gb|AL|Zb|Ob|Xb|Yb|Mb)$/;

/**
 * Shorthand used by the group files: op('add', 0, 0x00, 'Eb,Gb', exec, { flags: F_LOCK }).
 * F_MODRM is implied by ModRM operands or an ext; F_BYTE by a byte-sized first operand
 * (Eb, Gb, AL, Zb = byte register in the opcode, Ob, Xb/Yb = string operands).
 */
export function op(
  mnem: string,
  map: number,
  byte: number,
  operands: string,
  exec: Exec,
  opts: {
    ext?: number;
    rmExt?: number;
    pfx?: number;
    flags?: number;
    imm?: number;
    count?: number;
    def?: number;
    undef?: number;
    fast?: Pick;
  } = {},
): OpDef {
  let flags = opts.flags ?? 0;
  const list = operands === '' ? [] : operands.split(',');
  if (opts.ext !== undefined || list.some((o) => MODRM_OPERAND.test(o))) flags |= F_MODRM;
  if (list.length > 0 && BYTE_FIRST.test(list[0])) flags |= F_BYTE;
  return {
    mnem,
    map,
    byte,
    count: opts.count ?? 1,
    ext: opts.ext ?? -1,
    rmExt: opts.rmExt ?? -1,
    pfx: opts.pfx ?? PFX_NONE,
    operands,
    flags,
    imm: opts.imm ?? IMM_NONE,
    exec,
    fast: opts.fast ?? null,
    defFlags: opts.def ?? 0,
    undefFlags: opts.undef ?? 0,
  };
}
