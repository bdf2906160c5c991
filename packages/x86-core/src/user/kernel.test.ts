import { spawnSync } from 'node:child_process';
import fc from 'fast-check';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { R8, R9, R10, RAX, RDI, RDX, RSI } from '../constants';
import { SYS } from './linux';
import { createProcess } from './run';
import { makeTempDir, removeTempDir } from './test-support';

/** A minimal static ELF64 (one R+X PT_LOAD at 0x400000, code right after the header): exit_group(0). */
function tinyElf(): Uint8Array {
  const code = [0x31, 0xff, 0xb8, 231, 0, 0, 0, 0x0f, 0x05];
  const b = new Uint8Array(120 + code.length);
  const dv = new DataView(b.buffer);
  b.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]);
  dv.setUint16(16, 2, true);
  dv.setUint16(18, 62, true);
  dv.setBigUint64(24, 0x400078n, true);
  dv.setBigUint64(32, 64n, true);
  dv.setUint16(54, 56, true);
  dv.setUint16(56, 1, true);
  dv.setUint32(64, 1, true);
  dv.setUint32(68, 5, true);
  dv.setBigUint64(80, 0x400000n, true);
  dv.setBigUint64(96, BigInt(b.length), true);
  dv.setBigUint64(104, BigInt(b.length), true);
  b.set(code, 120);
  return b;
}

describe('LinuxKernel', () => {
  let dir = '';
  let prog = '';
  beforeAll(() => {
    dir = makeTempDir('rz-kernel-');
    prog = path.join(dir, 'prog');
    fs.writeFileSync(prog, tinyElf());
  });
  afterAll(() => removeTempDir(dir));

  function proc(stdin = new Uint8Array(0)): ReturnType<typeof createProcess> {
    return createProcess({ program: prog, env: ['A=1'], stdin, captureStdout: true, captureStderr: true, cwd: dir });
  }

  function call(p: ReturnType<typeof createProcess>, nr: number, ...args: number[]): number {
    const regs = [RDI, RSI, RDX, R10, R8, R9];
    p.cpu.setRegNumber(RAX, nr);
    regs.forEach((r, i) => p.cpu.setRegNumber(r, args[i] ?? 0));
    p.kernel.syscall(p.cpu);
    return p.cpu.regNumber(RAX);
  }

  it('brk grows page by page, refuses to shrink below its start, and mmap places below the stack', () => {
    const p = proc();
    const b0 = call(p, SYS.brk, 0);
    expect(b0 % 4096).toBe(0);
    expect(call(p, SYS.brk, b0 + 10)).toBe(b0 + 10);
    expect(p.mem.write8(b0 + 9, 1)).toBe(0);
    expect(call(p, SYS.brk, b0 - 4096)).toBe(b0 + 10);
    const a = call(p, SYS.mmap, 0, 8192, 3, 0x22, -1, 0);
    const b = call(p, SYS.mmap, 0, 4096, 3, 0x22, -1, 0);
    expect(a % 4096).toBe(0);
    expect(b + 4096).toBeLessThanOrEqual(a);
    expect(call(p, SYS.mmap, a - 0x100000, 4096, 3, 0x22 | 0x100000, -1, 0)).toBe(a - 0x100000);
    expect(call(p, SYS.mmap, a - 0x200000, 4096, 3, 0x22, -1, 0)).toBe(a - 0x200000); // a free hint is taken
    expect(call(p, SYS.mmap, a, 4096, 3, 0x22 | 0x100000, -1, 0)).toBe(-17); // MAP_FIXED_NOREPLACE: EEXIST
    // mremap grows with MREMAP_MAYMOVE and keeps the bytes.
    p.mem.write32(b, 0xfeedf00d);
    const c = call(p, SYS.mremap, b, 4096, 64 * 4096, 1);
    expect(c).toBeGreaterThan(0);
    expect(p.mem.read32(c)).toBe(0xfeedf00d);
  });

  it('mmap of a file copies its bytes; MADV_DONTNEED zeroes anonymous pages', () => {
    const p = proc();
    const file = path.join(dir, 'data.bin');
    fs.writeFileSync(file, 'mapped file contents');
    const name = p.kernel.brk;
    call(p, SYS.brk, name + 4096);
    p.mem.writeFrom(name, new TextEncoder().encode(file + '\0'));
    const fd = call(p, SYS.openat, -100, name, 0, 0);
    expect(fd).toBe(3);
    const m = call(p, SYS.mmap, 0, 100, 1, 2, fd, 0);
    expect(new TextDecoder().decode(p.mem.readBytes(m, 20)!)).toBe('mapped file contents');
    expect(p.mem.read8(m + 20)).toBe(0);
    const anon = call(p, SYS.mmap, 0, 4096, 3, 0x22, -1, 0);
    p.mem.write8(anon, 9);
    expect(call(p, SYS.madvise, anon, 4096, 4)).toBe(0);
    expect(p.mem.read8(anon)).toBe(0);
  });

  it('rt_sigaction returns the old action, refuses SIGKILL, and SIG_IGN keeps SIGPIPE from killing', () => {
    const p = proc();
    const buf = p.kernel.brk;
    call(p, SYS.brk, buf + 4096);
    p.mem.writeFrom(buf, new Uint8Array([1, 0, 0, 0, 0, 0, 0, 0])); // SIG_IGN
    expect(call(p, SYS.rt_sigaction, 13, buf, buf + 64, 8)).toBe(0);
    expect(call(p, SYS.rt_sigaction, 13, 0, buf + 64, 8)).toBe(0);
    expect(p.mem.read8(buf + 64)).toBe(1);
    expect(call(p, SYS.rt_sigaction, 9, buf, 0, 8)).toBe(-22);
    // A pipe whose reader is closed: EPIPE, and SIGPIPE is ignored.
    expect(call(p, SYS.pipe2, buf + 128, 0)).toBe(0);
    const rfd = p.mem.read32(buf + 128);
    const wfd = p.mem.read32(buf + 132);
    expect(call(p, SYS.close, rfd)).toBe(0);
    expect(call(p, SYS.write, wfd, buf, 1)).toBe(-32);
    expect(p.kernel.done).toBe(false);
  });

  it('getdents64 lists a directory in several calls when the buffer is small', () => {
    const sub = path.join(dir, 'many');
    fs.mkdirSync(sub, { recursive: true });
    for (let i = 0; i < 40; i++) fs.writeFileSync(path.join(sub, `file-with-a-long-name-${i}`), '');
    const p = proc();
    const buf = p.kernel.brk;
    call(p, SYS.brk, buf + 8192);
    p.mem.writeFrom(buf, new TextEncoder().encode('many\0'));
    const fd = call(p, SYS.openat, -100, buf, 0o200000, 0);
    expect(fd).toBeGreaterThanOrEqual(3);
    const names: string[] = [];
    for (let round = 0; round < 100; round++) {
      const n = call(p, SYS.getdents64, fd, buf + 1024, 512);
      expect(n).toBeGreaterThanOrEqual(0);
      if (n === 0) break;
      for (let o = 0; o < n; ) {
        const reclen = p.mem.read16(buf + 1024 + o + 16);
        names.push(new TextDecoder().decode(p.mem.readCString(buf + 1024 + o + 19)!));
        o += reclen;
      }
    }
    expect(names.sort()).toEqual(['.', '..', ...fs.readdirSync(sub)].sort());
    expect(call(p, SYS.getdents64, fd, buf + 1024, 10)).toBe(0); // at the end
  });

  it('survives random system calls with hostile arguments (never a host exception)', () => {
    // Sleeping and process-ending calls are left out; everything else gets random numbers
    // and pointers into mapped and unmapped memory. The working directory is a temp dir.
    const excluded = new Set<number>([SYS.nanosleep, SYS.clock_nanosleep, SYS.pause, SYS.exit, SYS.exit_group, SYS.chdir, SYS.fchdir, SYS.kill, SYS.tgkill, SYS.tkill]);
    const nrs = Object.values(SYS).filter((n) => !excluded.has(n));
    const arg = fc.oneof(
      fc.integer({ min: -5, max: 70000 }),
      fc.constantFrom(0, -1, -100, 0x400000, 0x400078, 0x7fff_ffff_e000, 0x7fff_ffff_eff8, 2 ** 47 - 8, 2 ** 52),
      fc.integer({ min: 0x400000, max: 0x400200 }),
    );
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.constantFrom(...nrs, 999, 5000), fc.array(arg, { minLength: 6, maxLength: 6 })), { minLength: 1, maxLength: 40 }), (calls) => {
        const p = proc(new Uint8Array([1, 2, 3]));
        for (const [nr, args] of calls) {
          const r = call(p, nr, ...args);
          if (p.kernel.done) break;
          expect(Number.isSafeInteger(r)).toBe(true);
        }
        p.kernel.closeAll();
      }),
      { numRuns: 60 },
    );
  });
});

describe('ringzero-user CLI', () => {
  const tsx = path.resolve(__dirname, '../../../../node_modules/.bin/tsx');
  const have = fs.existsSync(tsx) && fs.existsSync('/bin/busybox');
  if (!have) console.warn('SKIPPED: tsx or /bin/busybox missing: the CLI end-to-end test is not run');
  it.skipIf(!have)('runs a program with stdin/stdout of the host and exits with its status', () => {
    const cli = path.resolve(__dirname, '../cli.ts');
    const r = spawnSync(tsx, ['--conditions=@ringzero/source', cli, '/bin/busybox', 'wc', '-c'], { input: 'twelve bytes', encoding: 'utf8' });
    expect(r.stdout.trim()).toBe('12');
    expect(r.status).toBe(0);
    const f = spawnSync(tsx, ['--conditions=@ringzero/source', cli, '/bin/busybox', 'false'], { encoding: 'utf8' });
    expect(f.status).toBe(1);
    const bad = spawnSync(tsx, ['--conditions=@ringzero/source', cli, '/etc/hostname'], { encoding: 'utf8' });
    expect(bad.status).toBe(126);
    expect(bad.stderr).toContain('not an ELF file');
  });
});
