/**
 * x87 FPU group: the D8-DF escape opcodes and FWAIT (9B). FXSAVE/FXRSTOR live in src/sse
 * (state.ts); this group installs the converters for their x87 register slots (env.ts).
 * See float80.ts (number format), state.ts (registers, stack, exceptions), arith.ts, ldst.ts,
 * misc.ts, trans.ts, env.ts, and README "x87".
 *
 * Memory operands use the SDM's x87 operand names (Mfp32/64/80, Mint16/32/64, Mbcd80, M2byte,
 * Menv = 14/28 bytes, Mstate = 94/108 bytes): the x87 has its own differential harness
 * (x87.diff.test.ts), and the integer generator (src/harness/gen.ts) skips these kinds.
 */
import type { Cpu } from '../cpu';
import type { Insn } from '../insn';
import { F_MEM, F_REG, op, type OpDef } from '../table';
import { ARITH_MEM, ARITH_ST0, ARITH_STI, ARITH_STIP, fsqrt } from './arith';
import { LDST } from './ldst';
import { MISC } from './misc';
import { ENV } from './env';
import { TRANS } from './trans';

type H = (cpu: Cpu, d: Insn) => number;
const NAMES = ['fadd', 'fmul', 'fcom', 'fcomp', 'fsub', 'fsubr', 'fdiv', 'fdivr'];
const INAMES = ['fiadd', 'fimul', 'ficom', 'ficomp', 'fisub', 'fisubr', 'fidiv', 'fidivr'];
const DC_NAMES = ['fadd', 'fmul', 'fcom2', 'fcomp3', 'fsubr', 'fsub', 'fdivr', 'fdiv'];
const DE_NAMES = ['faddp', 'fmulp', 'fcomp5', '', 'fsubrp', 'fsubp', 'fdivrp', 'fdivp'];

const M = (mnem: string, byte: number, ext: number, operands: string, h: H): OpDef => op(mnem, 0, byte, operands, h, { ext, flags: F_MEM });
const Rg = (mnem: string, byte: number, ext: number, operands: string, h: H): OpDef => op(mnem, 0, byte, operands, h, { ext, flags: F_REG });
const Rm = (mnem: string, byte: number, ext: number, rm: number, h: H): OpDef => op(mnem, 0, byte, '', h, { ext, rmExt: rm });

function arithOps(): OpDef[] {
  const out: OpDef[] = [];
  for (let r = 0; r < 8; r++) {
    const cmp = r === 2 || r === 3;
    // D8 m32real, DC m64real, DA m32int, DE m16int
    out.push(M(NAMES[r], 0xd8, r, 'Mfp32', cmp ? (r === 2 ? MISC.fcomM32 : MISC.fcompM32) : ARITH_MEM[0][r]));
    out.push(M(NAMES[r], 0xdc, r, 'Mfp64', cmp ? (r === 2 ? MISC.fcomM64 : MISC.fcompM64) : ARITH_MEM[1][r]));
    out.push(M(INAMES[r], 0xda, r, 'Mint32', cmp ? (r === 2 ? MISC.ficomM32 : MISC.ficompM32) : ARITH_MEM[3][r]));
    out.push(M(INAMES[r], 0xde, r, 'Mint16', cmp ? (r === 2 ? MISC.ficomM16 : MISC.ficompM16) : ARITH_MEM[2][r]));
    // D8 reg: ST(0) op= ST(i)
    out.push(Rg(NAMES[r], 0xd8, r, 'ST0,STi', cmp ? (r === 2 ? MISC.fcom : MISC.fcomp) : ARITH_ST0[r]));
    // DC reg: ST(i) op= ST(0) (FCOM2/FCOMP3 aliases at /2, /3)
    out.push(Rg(DC_NAMES[r], 0xdc, r, 'STi,ST0', cmp ? (r === 2 ? MISC.fcom : MISC.fcomp) : ARITH_STI[r]));
    // DE reg: ...P forms; /2 FCOMP5 alias, /3 only DE D9 = FCOMPP
    if (r === 3) out.push(Rm('fcompp', 0xde, 3, 1, MISC.fcompp));
    else out.push(Rg(DE_NAMES[r], 0xde, r, 'STi,ST0', r === 2 ? MISC.fcomp : ARITH_STIP[r]));
  }
  return out;
}

export const X87_OPS: readonly OpDef[] = [
  ...arithOps(),
  // D9
  M('fld', 0xd9, 0, 'Mfp32', LDST.fldM32),
  M('fst', 0xd9, 2, 'Mfp32', LDST.fstM32),
  M('fstp', 0xd9, 3, 'Mfp32', LDST.fstpM32),
  M('fldenv', 0xd9, 4, 'Menv', ENV.fldenv),
  M('fldcw', 0xd9, 5, 'M2byte', MISC.fldcw),
  M('fnstenv', 0xd9, 6, 'Menv', ENV.fnstenv),
  M('fnstcw', 0xd9, 7, 'M2byte', MISC.fnstcw),
  Rg('fld', 0xd9, 0, 'STi', LDST.fldSt),
  Rg('fxch', 0xd9, 1, 'STi', MISC.fxch),
  Rm('fnop', 0xd9, 2, 0, MISC.fnop),
  Rg('fstp1', 0xd9, 3, 'STi', LDST.fstpStI),
  Rm('fchs', 0xd9, 4, 0, MISC.fchs),
  Rm('fabs', 0xd9, 4, 1, MISC.fabs),
  Rm('ftst', 0xd9, 4, 4, MISC.ftst),
  Rm('fxam', 0xd9, 4, 5, MISC.fxam),
  Rm('fld1', 0xd9, 5, 0, MISC.fld1),
  Rm('fldl2t', 0xd9, 5, 1, MISC.fldl2t),
  Rm('fldl2e', 0xd9, 5, 2, MISC.fldl2e),
  Rm('fldpi', 0xd9, 5, 3, MISC.fldpi),
  Rm('fldlg2', 0xd9, 5, 4, MISC.fldlg2),
  Rm('fldln2', 0xd9, 5, 5, MISC.fldln2),
  Rm('fldz', 0xd9, 5, 6, MISC.fldz),
  Rm('f2xm1', 0xd9, 6, 0, TRANS.f2xm1),
  Rm('fyl2x', 0xd9, 6, 1, TRANS.fyl2x),
  Rm('fptan', 0xd9, 6, 2, TRANS.fptan),
  Rm('fpatan', 0xd9, 6, 3, TRANS.fpatan),
  Rm('fxtract', 0xd9, 6, 4, TRANS.fxtract),
  Rm('fprem1', 0xd9, 6, 5, TRANS.fprem1),
  Rm('fdecstp', 0xd9, 6, 6, MISC.fdecstp),
  Rm('fincstp', 0xd9, 6, 7, MISC.fincstp),
  Rm('fprem', 0xd9, 7, 0, TRANS.fprem),
  Rm('fyl2xp1', 0xd9, 7, 1, TRANS.fyl2xp1),
  Rm('fsqrt', 0xd9, 7, 2, fsqrt),
  Rm('fsincos', 0xd9, 7, 3, TRANS.fsincos),
  Rm('frndint', 0xd9, 7, 4, TRANS.frndint),
  Rm('fscale', 0xd9, 7, 5, TRANS.fscale),
  Rm('fsin', 0xd9, 7, 6, TRANS.fsin),
  Rm('fcos', 0xd9, 7, 7, TRANS.fcos),
  // DA reg: FCMOVB/E/BE/U, FUCOMPP
  Rg('fcmovb', 0xda, 0, 'ST0,STi', MISC.fcmov),
  Rg('fcmove', 0xda, 1, 'ST0,STi', MISC.fcmov),
  Rg('fcmovbe', 0xda, 2, 'ST0,STi', MISC.fcmov),
  Rg('fcmovu', 0xda, 3, 'ST0,STi', MISC.fcmov),
  Rm('fucompp', 0xda, 5, 1, MISC.fucompp),
  // DB
  M('fild', 0xdb, 0, 'Mint32', LDST.fildM32),
  M('fisttp', 0xdb, 1, 'Mint32', LDST.fisttpM32),
  M('fist', 0xdb, 2, 'Mint32', LDST.fistM32),
  M('fistp', 0xdb, 3, 'Mint32', LDST.fistpM32),
  M('fld', 0xdb, 5, 'Mfp80', LDST.fldM80),
  M('fstp', 0xdb, 7, 'Mfp80', LDST.fstpM80),
  Rg('fcmovnb', 0xdb, 0, 'ST0,STi', MISC.fcmov),
  Rg('fcmovne', 0xdb, 1, 'ST0,STi', MISC.fcmov),
  Rg('fcmovnbe', 0xdb, 2, 'ST0,STi', MISC.fcmov),
  Rg('fcmovnu', 0xdb, 3, 'ST0,STi', MISC.fcmov),
  Rm('feni', 0xdb, 4, 0, MISC.fnopNoWait),
  Rm('fdisi', 0xdb, 4, 1, MISC.fnopNoWait),
  Rm('fnclex', 0xdb, 4, 2, MISC.fnclex),
  Rm('fninit', 0xdb, 4, 3, MISC.fninit),
  Rm('fsetpm', 0xdb, 4, 4, MISC.fnopNoWait),
  Rg('fucomi', 0xdb, 5, 'ST0,STi', MISC.fucomi),
  Rg('fcomi', 0xdb, 6, 'ST0,STi', MISC.fcomi),
  // DD
  M('fld', 0xdd, 0, 'Mfp64', LDST.fldM64),
  M('fisttp', 0xdd, 1, 'Mint64', LDST.fisttpM64),
  M('fst', 0xdd, 2, 'Mfp64', LDST.fstM64),
  M('fstp', 0xdd, 3, 'Mfp64', LDST.fstpM64),
  M('frstor', 0xdd, 4, 'Mstate', ENV.frstor),
  M('fnsave', 0xdd, 6, 'Mstate', ENV.fnsave),
  M('fnstsw', 0xdd, 7, 'M2byte', MISC.fnstswM),
  Rg('ffree', 0xdd, 0, 'STi', MISC.ffree),
  Rg('fxch4', 0xdd, 1, 'STi', MISC.fxch),
  Rg('fst', 0xdd, 2, 'STi', LDST.fstStI),
  Rg('fstp', 0xdd, 3, 'STi', LDST.fstpStI),
  Rg('fucom', 0xdd, 4, 'STi', MISC.fucom),
  Rg('fucomp', 0xdd, 5, 'STi', MISC.fucomp),
  // DF
  M('fild', 0xdf, 0, 'Mint16', LDST.fildM16),
  M('fisttp', 0xdf, 1, 'Mint16', LDST.fisttpM16),
  M('fist', 0xdf, 2, 'Mint16', LDST.fistM16),
  M('fistp', 0xdf, 3, 'Mint16', LDST.fistpM16),
  M('fbld', 0xdf, 4, 'Mbcd80', LDST.fbld),
  M('fild', 0xdf, 5, 'Mint64', LDST.fildM64),
  M('fbstp', 0xdf, 6, 'Mbcd80', LDST.fbstp),
  M('fistp', 0xdf, 7, 'Mint64', LDST.fistpM64),
  Rg('ffreep', 0xdf, 0, 'STi', MISC.ffreep),
  Rg('fxch7', 0xdf, 1, 'STi', MISC.fxch),
  Rg('fstp8', 0xdf, 2, 'STi', LDST.fstpStI),
  Rg('fstp9', 0xdf, 3, 'STi', LDST.fstpStI),
  op('fnstsw', 0, 0xdf, 'AX', MISC.fnstswAx, { ext: 4, rmExt: 0 }),
  Rg('fucomip', 0xdf, 5, 'ST0,STi', MISC.fucomip),
  Rg('fcomip', 0xdf, 6, 'ST0,STi', MISC.fcomip),
  // FWAIT
  op('fwait', 0, 0x9b, '', MISC.fwait),
];
