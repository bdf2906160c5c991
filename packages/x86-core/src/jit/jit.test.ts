/**
 * The block compiler against the interpreter (the same Cpu with cpu.jit = null): registers,
 * flags, memory, RIP, exit reasons and retired counts must agree exactly, for whole runs and for
 * every split of the budget; plus block boundaries at a page end, self-modifying code inside a
 * compiled block, a fault in the middle of a block, and random instruction sequences
 * (fast-check). The differential harness (src/harness) also runs every generated case through
 * the JIT against the host CPU.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { EXIT_BUDGET, EXIT_EXCEPTION, EXIT_SOFTINT, PF_VEC, RAX, RBX, RCX, RDI, RDX, RSI, RSP } from '../constants';
import { Cpu } from '../cpu';
import { FlatMemory } from '../memory';
import { PROT_EXEC, PROT_READ, PROT_WRITE, UserMemory } from '../user/memory';
import { Jit, enableJit, jitDefault } from './jit';

const CODE = 0x400000;
const DATA = 0x600000;
const STACK = 0x7f0000;

function machine(code: readonly number[], at: number, jit: boolean, init?: (cpu: Cpu) => void): Cpu {
  const mem = new UserMemory();
  mem.map(CODE, 0x3000, PROT_READ | PROT_WRITE | PROT_EXEC);
  mem.map(DATA, 0x1000, PROT_READ | PROT_WRITE);
  mem.map(STACK - 0x1000, 0x1000, PROT_READ | PROT_WRITE);
  mem.writeFrom(at, Uint8Array.from(code), 0);
  const cpu = new Cpu(mem);
  if (jit) {
    const j = new Jit(cpu);
    j.hot = 1;
    cpu.jit = j;
  } else cpu.jit = null;
  cpu.rip = at;
  cpu.setRegNumber(RSP, STACK);
  cpu.setRegNumber(RDI, DATA);
  init?.(cpu);
  return cpu;
}

/** Everything a program can observe, as one string (for a readable diff on failure). */
function state(cpu: Cpu): string {
  const m = cpu.mem as UserMemory;
  const regs: string[] = [];
  for (let r = 0; r < 16; r++) regs.push(`${r}:${(cpu.hi[r] >>> 0).toString(16)}_${(cpu.lo[r] >>> 0).toString(16)}`);
  const data = Buffer.from(m.readBytes(DATA, 0x1000, 0)!).toString('hex');
  const stack = Buffer.from(m.readBytes(STACK - 0x100, 0x100, 0)!).toString('hex');
  return `rip ${cpu.rip} retired ${cpu.retired} flags ${cpu.getFlags().toString(16)} ${regs.join(' ')}\ndata ${data}\nstack ${stack}`;
}

/** Runs both CPUs with the same budgets; every exit code and state must agree after each run. */
function lockstep(code: readonly number[], at: number, budgets: readonly number[], init?: (cpu: Cpu) => void): { exits: number[]; jit: Cpu } {
  const a = machine(code, at, false, init);
  const b = machine(code, at, true, init);
  const exits: number[] = [];
  for (const n of budgets) {
    const x = a.run(n);
    const y = b.run(n);
    expect(y, `exit after budget ${n}`).toBe(x);
    expect(state(b)).toBe(state(a));
    exits.push(x);
    if (x !== EXIT_BUDGET) break;
  }
  return { exits, jit: b };
}

// loop: sum ecx..1 into eax, store each partial sum at [rdi], rdi += 4; then int3.
//  0: B9 64 00 00 00   mov ecx, 100
//  5: 31 C0            xor eax, eax
//  7: 01 C8            add eax, ecx
//  9: 89 07            mov [rdi], eax
// 11: 48 8D 7F 04      lea rdi, [rdi + 4]
// 15: FF C9            dec ecx
// 17: 75 F4            jnz 7
// 19: CC               int3
const LOOP = [0xb9, 0x64, 0, 0, 0, 0x31, 0xc0, 0x01, 0xc8, 0x89, 0x07, 0x48, 0x8d, 0x7f, 0x04, 0xff, 0xc9, 0x75, 0xf4, 0xcc];

describe('JIT tier (src/jit)', () => {
  it('is on by default and can be turned off per CPU', () => {
    expect(jitDefault.enabled).toBe(true);
    const cpu = new Cpu(new FlatMemory(16));
    expect(cpu.jit).toBeInstanceOf(Jit);
    enableJit(cpu, false);
    expect(cpu.jit).toBeNull();
  });

  it('runs a loop to the same state and retired count as the interpreter, and compiles it', () => {
    const { exits, jit } = lockstep(LOOP, CODE, [1_000_000]);
    expect(exits).toEqual([EXIT_SOFTINT]);
    expect(jit.lo[RAX]).toBe(5050);
    expect(jit.retired).toBe(2 + 100 * 5 + 1);
    expect(jit.jit!.compiled).toBeGreaterThan(0);
  });

  it('budget exactness: any split of the budget gives the interpreter retired counts and state', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 23 }), { minLength: 1, maxLength: 80 }), (budgets) => {
        const { jit } = lockstep(LOOP, CODE, [...budgets, 1_000_000]);
        expect(jit.lo[RAX]).toBe(5050);
      }),
      { numRuns: 60 },
    );
  });

  it('a fault in the middle of a block leaves the exact interpreter state (RIP, retired, registers)', () => {
    //  0: FF C0  inc eax   2: FF C3  inc ebx   4: 89 0E  mov [rsi], ecx (unmapped)   6: FF C2  inc edx   8: CC
    const code = [0xff, 0xc0, 0xff, 0xc3, 0x89, 0x0e, 0xff, 0xc2, 0xcc];
    const init = (cpu: Cpu): void => cpu.setRegNumber(RSI, 0x10000);
    for (let round = 0; round < 3; round++) {
      // Three rounds: the block runs generic, then compiled, then compiled again after restart.
      const b = machine(code, CODE, true, init);
      for (let k = 0; k <= round; k++) {
        b.rip = CODE;
        b.retired = 0;
        b.lo[RAX] = b.lo[RBX] = b.lo[RDX] = 0;
        expect(b.run(100)).toBe(EXIT_EXCEPTION);
      }
      expect(b.faultVector).toBe(PF_VEC);
      expect(b.rip).toBe(CODE + 4);
      expect(b.retired).toBe(2);
      expect([b.lo[RAX], b.lo[RBX], b.lo[RDX]]).toEqual([1, 1, 0]);
      const { exits } = lockstep(code, CODE, [100], init);
      expect(exits).toEqual([EXIT_EXCEPTION]);
    }
  });

  it('self-modifying code inside a compiled block takes effect on the next instruction', () => {
    //  0: 88 0D 02 00 00 00  mov [rip + 2], cl  (the imm8 of the add below)
    //  6: 83 C0 01           add eax, imm8
    //  9: FF C9              dec ecx
    // 11: 75 F3              jnz 0
    // 13: CC
    const code = [0x88, 0x0d, 0x02, 0, 0, 0, 0x83, 0xc0, 0x01, 0xff, 0xc9, 0x75, 0xf3, 0xcc];
    const init = (cpu: Cpu): void => cpu.setRegNumber(RCX, 50);
    const { exits, jit } = lockstep(code, CODE, [1_000_000], init);
    expect(exits).toEqual([EXIT_SOFTINT]);
    expect(jit.lo[RAX]).toBe((50 * 51) / 2);
    // And with budgets that split the block.
    lockstep(code, CODE, [3, 5, 7, 2, 1, 9, 1_000_000], init);
  });

  it('blocks stop at the page end; an instruction crossing it runs interpreted', () => {
    // At page offset 0xff9: a loop whose body crosses into the next page:
    //  ff9: FF C0            inc eax
    //  ffb: FF C3            inc ebx
    //  ffd: B9 07 00 00 00   mov ecx, 7  (crosses the page boundary at 0x1000)
    // 1002: FF CA            dec edx
    // 1004: 75 F3            jnz ff9
    // 1006: CC
    const code = [0xff, 0xc0, 0xff, 0xc3, 0xb9, 0x07, 0, 0, 0, 0xff, 0xca, 0x75, 0xf3, 0xcc];
    const init = (cpu: Cpu): void => cpu.setRegNumber(RDX, 20);
    const { exits, jit } = lockstep(code, CODE + 0xff9, [1_000_000], init);
    expect(exits).toEqual([EXIT_SOFTINT]);
    expect([jit.lo[RAX], jit.lo[RBX], jit.lo[RCX]]).toEqual([20, 20, 7]);
    lockstep(code, CODE + 0xff9, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 1_000_000], init);
  });

  it('random instruction sequences give the same registers, flags, memory and counts (fast-check)', () => {
    // Registers the sequences may use (not rsp, rbp, rdi: the stack and the data pointer).
    const REGS = [0, 1, 2, 3, 6, 8, 9, 10, 11];
    const reg = fc.constantFrom(...REGS);
    const imm32 = fc.oneof(fc.constantFrom(0, 1, -1, 0x7fffffff, -0x80000000, 0x80, 0xff), fc.integer({ min: -0x80000000, max: 0x7fffffff }));
    const imm8 = fc.integer({ min: -128, max: 127 });
    const le32 = (v: number): number[] => [v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, (v >>> 24) & 0xff];
    // One instruction: [prefix 66?, REX W?, opcode, ModRM reg/rm or [rdi + disp8]].
    const insn = fc
      .record({
        form: fc.integer({ min: 0, max: 17 }),
        kind: fc.integer({ min: 0, max: 7 }),
        size: fc.constantFrom(1, 2, 4, 8),
        g: reg,
        e: reg,
        memory: fc.boolean(),
        disp: fc.integer({ min: 0, max: 120 }),
        imm32,
        imm8,
        cc: fc.integer({ min: 0, max: 15 }),
        rex8: fc.boolean(),
      })
      .map((f): number[] => {
        const size = f.size;
        const w = size === 8 ? 8 : 0;
        const rex = 0x40 | w | (f.g >= 8 ? 4 : 0) | (!f.memory && f.e >= 8 ? 1 : 0);
        const pre: number[] = [];
        if (size === 2) pre.push(0x66);
        // A byte op without REX reaches AH..BH (registers 4..7 encode the high bytes).
        if (rex !== 0x40 || (size === 1 && f.rex8)) pre.push(rex);
        const modrm = (reg3: number): number[] => (f.memory ? [0x47 | ((reg3 & 7) << 3), f.disp] : [0xc0 | ((reg3 & 7) << 3) | (f.e & 7)]);
        const v = size === 1 ? 0 : 1;
        switch (f.form) {
          case 0:
            return [...pre, f.kind * 8 + v, ...modrm(f.g)]; // op E,G
          case 1:
            return [...pre, f.kind * 8 + 2 + v, ...modrm(f.g)]; // op G,E
          case 2:
            return size === 1 ? [...pre, 0x80, ...modrm(f.kind), f.imm8 & 0xff] : [...pre, 0x83, ...modrm(f.kind), f.imm8 & 0xff];
          case 3:
            return size === 1 ? [...pre, f.kind * 8 + 4, f.imm8 & 0xff] : size === 2 ? [...pre, f.kind * 8 + 5, f.imm8 & 0xff, 0] : [...pre, f.kind * 8 + 5, ...le32(f.imm32)];
          case 4:
            return [...pre, 0x84 + v, ...modrm(f.g)]; // test
          case 5:
            return [...pre, 0xfe + v, ...modrm(f.kind & 1)]; // inc/dec
          case 6:
            return [...pre, 0x88 + v, ...modrm(f.g)]; // mov E,G
          case 7:
            return [...pre, 0x8a + v, ...modrm(f.g)]; // mov G,E
          case 8:
            return size === 1 ? [...pre, 0xc6, ...modrm(0), f.imm8 & 0xff] : size === 2 ? [...pre, 0xc7, ...modrm(0), f.imm8 & 0xff, 0] : [...pre, 0xc7, ...modrm(0), ...le32(f.imm32)];
          case 9: {
            const p = size === 2 ? [0x66] : [];
            const r = 0x40 | (size === 8 ? 8 : 0) | (f.g >= 8 ? 4 : 0) | (!f.memory && f.e >= 8 ? 1 : 0);
            return [...p, r, 0x0f, [0xb6, 0xb7, 0xbe, 0xbf][f.kind & 3], ...modrm(f.g)]; // movzx/movsx
          }
          case 10: // lea g, [rdi + e*4 + disp8]
            return [0x48 | (f.g >= 8 ? 4 : 0) | (f.e >= 8 ? 2 : 0), 0x8d, 0x44 | ((f.g & 7) << 3), 0x87 | ((f.e & 7) << 3), f.disp];
          case 11: // push e; pop g
            return [...(f.e >= 8 ? [0x41] : []), 0x50 + (f.e & 7), ...(f.g >= 8 ? [0x41] : []), 0x58 + (f.g & 7)];
          case 12: // jcc over a 2-byte xor
            return [0x70 + f.cc, 2, 0x31, 0xc0 | ((f.g & 7) << 3) | (f.e & 7)];
          case 13: // shl/shr/sar E, imm8 (a handler call in a compiled block)
            return [...pre, 0xc0 + v, ...modrm([0, 1, 4, 5, 7][f.kind % 5]), f.imm8 & 63];
          case 14: // mov r, imm (B8+r; imm64 with REX.W)
            return size === 8 ? [0x48 | (f.g >= 8 ? 1 : 0), 0xb8 + (f.g & 7), ...le32(f.imm32), ...le32(f.imm8)] : [...(f.g >= 8 ? [0x41] : []), 0xb8 + (f.g & 7), ...le32(f.imm32)];
          case 15: // imul g, e (handler)
            return [...pre.filter((b) => b !== 0x40), 0x0f, 0xaf, ...modrm(f.g)];
          case 16: // setcc e8
            return [0x40 | (!f.memory && f.e >= 8 ? 1 : 0), 0x0f, 0x90 + f.cc, ...modrm(0)];
          default: // cmovcc g, e
            return [...pre.filter((b) => b !== 0x40), 0x0f, 0x40 + f.cc, ...modrm(f.g)];
        }
      });
    const regInit = fc.array(fc.integer({ min: -0x80000000, max: 0x7fffffff }), { minLength: 32, maxLength: 32 });
    fc.assert(
      fc.property(fc.array(insn, { minLength: 1, maxLength: 40 }), regInit, fc.array(fc.integer({ min: 1, max: 30 }), { maxLength: 20 }), (seq, init, budgets) => {
        // The sequence runs three times (dec dword [rdi + 0x200]; jnz start): generic, then compiled.
        const body = seq.flat();
        const code = [...body, 0xff, 0x8f, 0x00, 0x02, 0x00, 0x00, 0x0f, 0x85, ...le32(-(body.length + 12)), 0xcc];
        const setup = (cpu: Cpu): void => {
          for (const r of REGS) {
            cpu.lo[r] = init[r * 2];
            cpu.hi[r] = init[r * 2 + 1];
          }
          (cpu.mem as UserMemory).writeFrom(DATA + 0x200, Uint8Array.from([3, 0, 0, 0]), 0);
          for (let i = 0; i < 128; i++) (cpu.mem as UserMemory).writeFrom(DATA + i, Uint8Array.of((init[i & 31] >>> (i & 24)) & 0xff), 0);
        };
        lockstep(code, CODE, [1_000_000], setup);
        lockstep(code, CODE, [...budgets, 1_000_000], setup);
      }),
      { numRuns: 150 },
    );
  });
});
