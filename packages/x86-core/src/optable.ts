/**
 * Builds the packed decoder tables from every group's OpDef list, once, at load time.
 *
 * Adding a group: write src/<area>/<group>.ts exporting `const X_OPS: readonly OpDef[]`, then
 * add it to GROUP_LISTS below (DESIGN.md). Nothing else in the decoder changes.
 *
 * Layout:
 *   SLOT[((map * 256 + byte) * 4 + pfx)]   0 = #UD, > 0 = index in OPS,
 *                                          < 0 = -(g + 1): ModRM group g
 *   GROUP[g * 16 + (mod === 3 ? 8 : 0) + reg]  same encoding, < 0 = -(s + 1): rm subtable s
 *   RMSUB[s * 8 + rm]                      index in OPS (0 = #UD)
 *   OP_FLAGS[i], OP_IMM[i], OP_EXEC[i]     per-op decode flags, immediate kind, handler
 *   OP_FAST[i]                             per-op specialiser picking Insn.exec (or null)
 */
import { IMM_NONE, PFX_NONE, F_REG, F_MEM, F_MODRM, type Exec, type OpDef, type Pick } from './table';
import { UD_OP } from './exec/ud';
import { ALU_OPS } from './exec/alu';
import { MOV_OPS } from './exec/mov';
import { CONTROL_OPS } from './exec/control';
import { STACK_OPS } from './exec/stack';
import { SHIFT_OPS } from './exec/shift';
import { MULDIV_OPS } from './exec/muldiv';
import { BIT_OPS } from './exec/bits';
import { STRING_OPS } from './exec/string';
import { MISC_OPS } from './exec/misc';
import { X87_OPS } from './x87/index';
import { SSE_OPS } from './sse/index';
import { SYSTEM_OPS } from './system/ops';

const GROUP_LISTS: readonly (readonly OpDef[])[] = [
  ALU_OPS,
  MOV_OPS,
  CONTROL_OPS,
  STACK_OPS,
  SHIFT_OPS,
  MULDIV_OPS,
  BIT_OPS,
  STRING_OPS,
  MISC_OPS,
  X87_OPS,
  SSE_OPS,
  SYSTEM_OPS,
];

/** Every op; OPS[0] is the #UD entry the decoder returns for unassigned encodings. */
export const OPS: readonly OpDef[] = [UD_OP, ...GROUP_LISTS.flat()];
export const OP_FLAGS: Int32Array = new Int32Array(OPS.length);
export const OP_IMM: Uint8Array = new Uint8Array(OPS.length);
export const OP_EXEC: Exec[] = OPS.map((o) => o.exec);
/** Per op: the decode-time specialiser of its handler (OpDef.fast), or null. */
export const OP_FAST: (Pick | null)[] = OPS.map((o) => o.fast);
export const SLOT: Int32Array = new Int32Array(4 * 256 * 4);
/** Per (map, byte, pfx) slot: 1 when the slot's op(s) take a ModRM byte. */
export const SLOT_MODRM: Uint8Array = new Uint8Array(4 * 256 * 4);
let groups: Int32Array = new Int32Array(16 * 64);
let rmsub: Int32Array = new Int32Array(8 * 32);
let nGroups = 0;
let nSub = 0;

function conflict(o: OpDef, what: string): never {
  throw new Error(`opcode table: ${o.mnem} (${o.operands}) map ${o.map} byte ${o.byte.toString(16)}: ${what}`);
}

for (let i = 0; i < OPS.length; i++) {
  const o = OPS[i];
  OP_FLAGS[i] = o.flags;
  OP_IMM[i] = o.imm;
  if (i === 0) continue;
  for (let k = 0; k < o.count; k++) {
    const slot = ((o.map * 256 + o.byte + k) * 4) + o.pfx;
    const grouped = o.ext >= 0 || o.rmExt >= 0 || (o.flags & (F_MEM | F_REG)) !== 0;
    if (!grouped) {
      if (SLOT[slot] !== 0) conflict(o, 'slot already taken');
      SLOT[slot] = i;
      if (o.flags & F_MODRM) SLOT_MODRM[slot] = 1;
      continue;
    }
    SLOT_MODRM[slot] = 1;
    let g: number;
    if (SLOT[slot] < 0) g = -SLOT[slot] - 1;
    else if (SLOT[slot] === 0) {
      g = nGroups++;
      if (g * 16 + 16 > groups.length) {
        const n = new Int32Array(groups.length * 2);
        n.set(groups);
        groups = n;
      }
      SLOT[slot] = -(g + 1);
    } else conflict(o, 'mixes a plain entry with ModRM-extension entries');
    const regs = o.ext >= 0 ? [o.ext] : [0, 1, 2, 3, 4, 5, 6, 7];
    const mods = o.flags & F_MEM ? [0] : o.flags & F_REG || o.rmExt >= 0 ? [8] : [0, 8];
    for (const m of mods) {
      for (const r of regs) {
        const gi = g * 16 + m + r;
        if (o.rmExt >= 0) {
          let s: number;
          if (groups[gi] < 0) s = -groups[gi] - 1;
          else if (groups[gi] === 0) {
            s = nSub++;
            if (s * 8 + 8 > rmsub.length) {
              const n = new Int32Array(rmsub.length * 2);
              n.set(rmsub);
              rmsub = n;
            }
            groups[gi] = -(s + 1);
          } else conflict(o, 'rm-extension over a plain ModRM entry');
          if (rmsub[s * 8 + o.rmExt] !== 0) conflict(o, 'rm slot taken');
          rmsub[s * 8 + o.rmExt] = i;
        } else {
          if (groups[gi] !== 0) conflict(o, `ModRM slot /${r} taken by ${OPS[groups[gi]]?.mnem ?? 'an rm table'}`);
          groups[gi] = i;
        }
      }
    }
  }
}

export const GROUP: Int32Array = groups;
export const RMSUB: Int32Array = rmsub;
export const NO_IMM: number = IMM_NONE;
export const NO_PFX: number = PFX_NONE;
