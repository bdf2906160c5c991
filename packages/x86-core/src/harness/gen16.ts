/**
 * 16-bit code for the differential tests: hand-written templates for what the table cases
 * (gen.ts, mode 16) do not reach: the 16-bit string instructions (SI/DI/CX, wrapping at 64 KiB,
 * and the a32 forms), the stack with SP wrap-around, near branches whose IP wraps at 64 KiB,
 * operand-size and address-size overrides on branches, LOOP/JCXZ on CX and ECX, 16-bit LEA,
 * XLAT, segment overrides and the default segment of BP-based addresses. The native runner
 * executes them in a 16-bit LDT code segment (case.ts, SEG16_BASE).
 */
import { ARITH_FLAGS, DF } from '../constants';
import { addr16, baseState, target16, word, type GenCase } from './gen';
import { Mulberry32 as Rng } from './rng';

const CC = ['o', 'no', 'b', 'ae', 'e', 'ne', 'be', 'a', 's', 'ns', 'p', 'np', 'l', 'ge', 'le', 'g'];

/** Sets a register's low 16 bits (upper 16 bits random unless `clean`). */
function set16(rng: Rng, regs: Uint32Array, r: number, v: number, clean = false): void {
  regs[r * 2] = ((clean ? 0 : rng.u32() & 0xffff0000) | (v & 0xffff)) >>> 0;
}

/** 16-bit templates, perTemplate random cases each. */
export function templateCases16(seed: number, perTemplate: number): GenCase[] {
  const rng = new Rng(seed ^ 0x16161616);
  const out: GenCase[] = [];
  const add = (name: string, make: (st: ReturnType<typeof baseState>) => string, mask = ARITH_FLAGS | DF): void => {
    for (let k = 0; k < perTemplate; k++) {
      const st = baseState(rng, 16);
      const text = make(st);
      out.push({ name, op: -1, mode: 16, text, regs: st.regs, rflags: st.rflags, data: st.data, ...(st.hi ? { hi: st.hi } : {}), flagMask: mask });
    }
  };
  // SP multiple of 4, near the wrap: no push straddles offset 0xffff (segment limit checks on
  // data accesses are the system half's; here SP wraps between pushes, never inside one)
  const sp = (st: ReturnType<typeof baseState>): void => set16(rng, st.regs, 4, rng.pick([0, 4, 8, 0xfffc, 0xfff8, 0x20, 0x100]), true);
  for (const cc of CC) add(`j${cc} short/near`, () => `j${cc} .t\nmov al, 1\n.t: j${cc} near .u\nmov bl, 2\n.u: set${cc} dl\ncmov${cc} ax, bx`);
  add('loop/loope/loopne/jcxz (CX)', (st) => {
    set16(rng, st.regs, 1, 1 + rng.int(6)); // CX only: the upper half of ECX must not count
    set16(rng, st.regs, 2, 0);
    const v = rng.pick(['loop', 'loope', 'loopne']);
    return `.a: inc dx\ncmp dl, ${rng.int(8)}\n${v} .a\njcxz .z\nmov bl, 7\n.z: nop`;
  });
  add('a32 loop/jecxz (ECX)', (st) => {
    st.regs[2] = 1 + rng.int(6);
    const v = rng.pick(['loop', 'loope', 'loopne']);
    return `.a: inc dx\ncmp dl, ${rng.int(8)}\n${v} .a, ecx\njecxz .z\nmov bl, 7\n.z: nop`;
  });
  add('call/ret/ret imm (IP pushed as a word)', (st) => {
    sp(st);
    return `call .f\njmp .e\n.f: push ax\npop bx\nret\n.e: call .g\njmp .h\n.g: ret 2\n.h: call .i\n.i: pop cx`;
  });
  add('o32 call/ret', (st) => {
    sp(st);
    return `o32 call .f\njmp .e\n.f: pop ebx\npush ebx\no32 ret\n.e: nop`;
  });
  add('call/jmp indirect (register and memory)', (st) => {
    sp(st);
    const a = addr16(rng, st.regs, target16(rng));
    const free = ['ax', 'cx', 'dx'];
    const r = rng.pick(free);
    return `call .x\n.x: pop ${r}\nadd ${r}, .f - .x\nmov word ${a.text}, ${r}\ncall ${r}\ncall word ${a.text}\nadd ${r}, .h - .f\njmp ${r}\n.f: ret\n.h: nop`;
  });
  add('IP wraps at 64 KiB: jmp/call/ret below offset 0', (st) => {
    sp(st);
    const back = 0x10 + rng.int(0x100);
    return rng.pick([`jmp near $-${back}`, `call near $-${back}`, `mov ax, 0x${(0x10000 - back).toString(16)}\njmp ax`, `push word 0x${(0x10000 - back).toString(16)}\nret`, `jmp short $-${Math.min(back, 0x7e)}`]);
  });
  add('o32 jmp/call beyond the 64 KiB limit (#GP), and within it', (st) => {
    sp(st);
    const far = rng.int(3) !== 0;
    const rel = far ? 0x10000 + rng.int(0x10000) : 2;
    // 66 E9/E8 rel32 spelled out (nasm keeps a 16-bit displacement for `o32 jmp near`)
    return `db 0x66, ${rng.pick(['0xe9', '0xe8'])}\ndd ${rel}\nnop\nnop\nmov ax, sp`;
  });
  add('push/pop forms, SP wrap-around', (st) => {
    sp(st);
    const a = addr16(rng, st.regs, target16(rng));
    return `push ax\npush word 0x1234\npush dword -5\npush byte -3\npush word ${a.text}\npop dword [bx+si+0x40]\npop edx\npop cx\npop di\nmov bp, sp`.replace('[bx+si+0x40]', a.text.replace(']', '+4]'));
  });
  add('pusha/popa, pushad/popad', (st) => {
    sp(st);
    return rng.pick(['pusha\nmov bp, sp\nmov ax, [bp+4]\npopa', 'pushad\nmov bp, sp\nmov eax, [bp+8]\npopad', 'pusha\nxor ax, ax\nxor di, di\npopa']);
  });
  add('pushf/popf (16 and 32)', (st) => {
    sp(st);
    set16(rng, st.regs, 1, rng.u32() & 0xcd5, true); // no AC: #AC is not modelled in user mode
    return rng.pick(['pushf\npop ax\npush cx\npopf\npushf\npop bx', 'pushfd\npop eax\npush ecx\npopfd\npushfd\npop ebx']);
  });
  add('enter/leave (16-bit frames)', (st) => {
    // SP away from the wrap: how ENTER checks a frame that wraps below offset 0 is the system half's (limit checks)
    set16(rng, st.regs, 4, rng.pick([0x100, 0x180]), true);
    set16(rng, st.regs, 5, rng.pick([0x40, 0xffe0, 0x10]));
    return `enter ${rng.int(64)}, ${rng.int(4)}\nmov ax, sp\nmov dx, bp\nleave`;
  });
  for (const s of ['movs', 'stos', 'lods', 'cmps', 'scas']) {
    for (const sz of ['b', 'w', 'd']) {
      for (const rep of ['', 'rep ', 'repe ', 'repne ']) {
        if (rep === 'rep ' && (s === 'cmps' || s === 'scas')) continue;
        if ((rep === 'repe ' || rep === 'repne ') && s !== 'cmps' && s !== 'scas') continue;
        const el = sz === 'b' ? 1 : sz === 'w' ? 2 : 4;
        add(`${rep}${s}${sz} (SI/DI/CX, wrapping)`, (st) => {
          const n = rng.int(12);
          const std = rng.int(4) === 0;
          // start near offset 0 so that the walk often crosses 0xffff <-> 0; aligned to the element
          // size, so that no element straddles the segment limit
          const si = (rng.int(0x100) - 0x80) & ~(el - 1) & 0xffff;
          const di = (rng.int(0x100) - 0x80) & ~(el - 1) & 0xffff;
          set16(rng, st.regs, 6, si);
          set16(rng, st.regs, 7, di);
          set16(rng, st.regs, 1, n);
          if (s === 'cmps' && si < 0x100 && di < 0x100) st.data.copyWithin(0x100 + di, si, si + rng.int(24)); // make compares run a while (ES is DS + 0x100)
          return `${std ? 'std\n' : ''}${rep}${s}${sz}\n${std ? 'cld\n' : ''}mov bx, cx`;
        });
      }
    }
  }
  add('a32 rep movs/stos (ESI/EDI/ECX)', (st) => {
    st.regs[12] = rng.int(0x100);
    st.regs[14] = rng.int(0x100);
    st.regs[2] = rng.int(12);
    return `a32 rep ${rng.pick(['movsb', 'movsw', 'movsd', 'stosb', 'stosw'])}\nmov ebx, ecx`;
  });
  add('lea: 16-bit forms, o32 destination, a32 forms', (st) => {
    for (const r of [3, 5, 6, 7]) st.regs[r * 2] = word(rng);
    const a = ['bx+si', 'bx+di', 'bp+si', 'bp+di', 'si', 'di', 'bp', 'bx'];
    const d = rng.int(3) === 0 ? 0 : rng.int(2) ? rng.int(256) - 128 : rng.u32() & 0xffff;
    return `lea ax, [${rng.pick(a)}+${d}]\nlea ecx, [${rng.pick(a)}-${rng.int(300)}]\nlea dx, [ebx+esi*${rng.pick([1, 2, 4, 8])}+${rng.u32() | 0}]`;
  });
  add('xlat (DS:BX+AL, wrapping)', (st) => {
    set16(rng, st.regs, 3, target16(rng) - 0x80);
    return 'xlatb';
  });
  add('segment overrides and the BP default (SS)', (st) => {
    const a = addr16(rng, st.regs, target16(rng));
    const b = addr16(rng, st.regs, target16(rng));
    return `mov ax, [${rng.pick(['es', 'ss', 'ds'])}:${a.text.slice(1)}\nmov [${rng.pick(['es', 'ss', 'ds'])}:${b.text.slice(1)}, ax\nmov cx, [bp+si]\nmov dx, [bx+si]\nmov bx, [cs:2]`;
  });
  add('mov moffs (16-bit offsets)', () => `mov ax, [0x${(0xfe00 + rng.int(0x1f0)).toString(16)}]\nmov [0x${rng.int(0x160).toString(16)}], al\nmov al, [es:0x10]\nmov [ss:0x20], ax`);
  add('flag ops', () => rng.pick(['stc\ncmc', 'clc\ncmc', 'std\ncld', 'stc', 'clc']));
  add('int3 trap', () => 'int3');
  add('ud2 fault', () => 'ud2');
  add('hlt #GP', () => 'nop\nhlt');
  for (const b of ['daa', 'das', 'aaa', 'aas']) add(b, () => b, (ARITH_FLAGS & ~(b.startsWith('aa') ? 0x8c4 : 0x800)) | DF);
  add('aam/aad', () => `aam ${rng.int(4) === 0 ? 0 : rng.int(256)}\naad ${rng.int(256)}`, 0xc4 | DF);
  return out;
}
