/**
 * Processes in ringzero-user against the native runs: busybox sh scripts that fork, exec, wait,
 * pipe between processes and trap signals (amd64, and i386 when the i386 busybox-static is in
 * the cache), and a C program built with gcc -static that handles SIGSEGV/SIGFPE/SIGUSR1/SIGCHLD,
 * blocks signals, forks, execs and waits. Same stdout, stderr and exit status (or signal).
 */
import { spawnSync } from 'node:child_process';
import fc from 'fast-check';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { R8, R9, R10, RAX, RDI, RDX, RSI, RSP } from '../constants';
import { SYS } from './linux';
import { ProcessTable } from './processes';
import { createProcess } from './run';
import { assemble, findBusybox32, findBusybox64, hasTool, makeTempDir, removeTempDir, runEmulated, runNative, type RunSpec } from './test-support';

const BB64 = findBusybox64();
const BB32 = findBusybox32();
if (!BB64) console.warn('SKIPPED: busybox-static (amd64) not installed: the busybox sh process tests are not run');
if (!BB32) console.warn('SKIPPED: busybox-static (i386) not in .cache/ringzero/i386: the i386 busybox sh process tests are not run');

/** Scripts for `busybox sh -c`; $B is the busybox binary under test. */
const SCRIPTS: Record<string, string> = {
  'command substitution, pipe, &&, trap + kill $$': 'echo $($B seq 3) | $B wc -w; $B true && echo ok; trap "echo caught" USR1; kill -USR1 $$',
  'pipelines and exit statuses': 'for i in 3 1 2; do $B echo $i; done | $B sort -r; $B sh -c "exit 3"; echo status $?; (exit 7); echo sub $?; $B false || echo false $?',
  'a child killed by a signal, a trap in a child': '$B sh -c "kill -9 \\$\\$"; echo killed $?; $B sh -c "trap \\"echo child caught; exit 4\\" TERM; kill -TERM \\$\\$; echo not reached"; echo child $?',
  'background job, wait, multi-line substitution': '$B sleep 0 & wait $!; echo waited $?; x=$($B echo a; $B echo b); echo "$x" | $B wc -l; $B echo done',
  '#! script, exec': './script.sh one two; echo script $?; exec $B echo replaced',
  'exec failures: missing, a directory, a device': '$B sh -c "/nonexistent/prog"; echo missing $?; $B sh -c "/tmp"; echo dir $?; $B sh -c "/dev/zero" 2>/dev/null; echo dev $?',
};

let dir = '';
beforeAll(() => {
  dir = makeTempDir('rz-user-proc-');
});
afterAll(() => removeTempDir(dir));

function same(spec: RunSpec): void {
  const native = runNative(spec);
  expect(native.stdout.length).toBeGreaterThan(0);
  const emu = runEmulated(spec);
  expect({ stdout: emu.stdout, stderr: emu.stderr, status: emu.status, signal: emu.signal }, emu.result.message).toEqual({
    stdout: native.stdout,
    stderr: native.stderr,
    status: native.status,
    signal: native.signal,
  });
}

for (const [arch, bb] of [['amd64', BB64], ['i386', BB32]] as const) {
  describe.skipIf(!bb)(`busybox sh (${arch}): fork, execve, wait4, pipes, signals`, () => {
    for (const [name, script] of Object.entries(SCRIPTS)) {
      it(name, () => {
        fs.writeFileSync(path.join(dir, 'script.sh'), `#!${bb} sh\necho script "$@"\nexit 5\n`, { mode: 0o755 });
        same({ program: bb!, argv: ['sh', '-c', script.replaceAll('$B', bb!)], env: ['PATH=/usr/bin:/bin', 'LC_ALL=C'], cwd: dir });
      });
    }
  });
}

/** gcc -static works (gcc and libc6-dev installed), or why not. */
function cannotBuildStatic(): string | null {
  if (!hasTool('gcc')) return 'gcc not installed';
  const t = makeTempDir('rz-user-cc-');
  try {
    fs.writeFileSync(path.join(t, 'a.c'), 'int main(void) { return 0; }\n');
    const r = spawnSync('gcc', ['-static', '-o', path.join(t, 'a'), path.join(t, 'a.c')], { encoding: 'utf8' });
    return r.status === 0 ? null : 'gcc -static fails (libc6-dev missing?)';
  } finally {
    removeTempDir(t);
  }
}

const noCc = cannotBuildStatic();
if (noCc) console.warn(`SKIPPED: ${noCc}: the C signal/fork/exec test program is not run`);

describe.skipIf(noCc != null)('a C program (gcc -static): signal handlers, fork, exec, wait', () => {
  it('prints the same and dies of the same unhandled SIGFPE as natively', () => {
    const exe = path.join(dir, 'signals');
    const cc = spawnSync('gcc', ['-static', '-O1', '-o', exe, path.join(__dirname, 'fixtures/signals.c')], { encoding: 'utf8' });
    expect(cc.status, cc.stderr).toBe(0);
    const spec: RunSpec = { program: exe, argv: [exe], env: [], cwd: dir };
    const native = runNative(spec);
    expect(native.signal).toBe(8);
    expect(native.stdout).toContain('caught SIGSEGV=11 addr=0x1234');
    same(spec);
  });
});

/** Builds fixtures/signals32.asm as an i386 static ELF (RT: rt frame or sigframe); null when the tools cannot. */
function buildSignals32(rt: boolean): string | null {
  const obj = path.join(dir, `sig32-${rt}.o`);
  const exe = path.join(dir, `sig32-${rt}`);
  const a = spawnSync('nasm', ['-f', 'elf32', `-DRT=${rt ? 1 : 0}`, `-DFLAGS=${rt ? 0x04000004 : 0x04000000}`, '-o', obj, path.join(__dirname, 'fixtures/signals32.asm')]);
  const l = a.status === 0 ? spawnSync('ld', ['-m', 'elf_i386', '-static', '-o', exe, obj]) : a;
  return l.status === 0 ? exe : null;
}

describe.skipIf(!hasTool('nasm') || !hasTool('ld'))('i386 signal frames (nasm program)', () => {
  for (const rt of [true, false]) {
    it(`${rt ? 'SA_SIGINFO: rt_sigframe and rt_sigreturn' : 'sigframe and sigreturn'}: the handler sees the signal and the registers come back`, ({ skip }) => {
      const exe = buildSignals32(rt);
      if (!exe) {
        console.warn('SKIPPED: nasm -f elf32 / ld -m elf_i386 failed: the i386 signal frame test is not run');
        return skip();
      }
      const spec: RunSpec = { program: exe, argv: [exe], env: [], cwd: dir };
      const native = runNative(spec);
      expect(native.status).toBe(rt ? 21 : 10);
      same(spec);
    });
  }
});

describe.skipIf(!hasTool('nasm') || !hasTool('ld'))('process table under hostile system calls', () => {
  it('fork/vfork/clone/execve/wait4/kill/rt_sigreturn/rt_sigaction with random arguments never throw and stay bounded', () => {
    // The program loops on getpid forever; the calls below run between its instructions.
    const prog = assemble(dir, 'spin', 'global _start\n_start:\n mov eax, 39\n syscall\n jmp _start\n');
    const regs = [RDI, RSI, RDX, R10, R8, R9];
    const nrs = [SYS.fork, SYS.vfork, SYS.clone, SYS.clone3, SYS.execve, SYS.execveat, SYS.wait4, SYS.kill, SYS.tgkill, SYS.rt_sigreturn, SYS.rt_sigaction, SYS.rt_sigprocmask, SYS.rt_sigsuspend, SYS.getppid, SYS.pipe];
    const arg = fc.oneof(fc.integer({ min: -5, max: 70000 }), fc.constantFrom(0, -1, 17, 0x4000 | 0x100 | 17, 0x10000, 0x401000, 0x7fff_ffff_e000, 0x7fff_ffff_eff8, 2 ** 47 - 8, 2 ** 52));
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.constantFrom(...nrs), fc.array(arg, { minLength: 6, maxLength: 6 }), fc.boolean()), { minLength: 1, maxLength: 30 }), (calls) => {
        const p = createProcess({ program: prog, env: [], stdin: new Uint8Array(0), captureStdout: true, captureStderr: true, cwd: dir });
        const table = new ProcessTable(p.cpu, p.mem, p.kernel);
        for (const [nr, args, hostileStack] of calls) {
          const cpu = table.root.cpu;
          if (hostileStack) cpu.setRegNumber(RSP, args[5]);
          cpu.setRegNumber(RAX, nr);
          regs.forEach((r, i) => cpu.setRegNumber(r, args[i]));
          p.kernel.syscall(cpu);
          p.kernel.deliverSignals(table.root.cpu);
          if (p.kernel.done) break;
          expect(Number.isSafeInteger(table.root.cpu.regNumber(RAX))).toBe(true);
          if (p.kernel.blocked) break;
        }
        expect(table.count).toBeLessThanOrEqual(257);
        const r = table.run(20000);
        expect(['exit', 'limit', 'unimplemented']).toContain(r.reason);
        p.kernel.closeAll();
      }),
      { numRuns: 40 },
    );
  });
});
