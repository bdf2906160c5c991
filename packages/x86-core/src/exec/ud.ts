import { UD } from '../constants';
import type { Cpu } from '../cpu';
import type { Insn } from '../insn';
import { op, type OpDef } from '../table';

/** Raises #UD: the handler of every unassigned encoding, and of UD2/UD1/UD0. */
export function execUd(cpu: Cpu, _d: Insn): number {
  return cpu.fault(UD, 0);
}

export const UD_OP: OpDef = op('(bad)', 0, 0, '', execUd);
