/**
 * Debian's busybox-static (amd64) applets in ringzero-user, each compared with the native run
 * of the same binary with the same argv, environment, working directory and stdin: same
 * stdout, same stderr, same exit status.
 *
 * Applets listed in KNOWN_FAILING stop today at an instruction the CPU does not implement yet.
 * Their test still runs: it passes when the run ends with reason "unimplemented" (and prints
 * the instruction) or when it already matches the native run (then it warns that the entry
 * can go). Any other outcome (wrong output, a runner error, a crash) fails the test.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findBusybox32, findBusybox64, makeTempDir, removeTempDir, runEmulated, runNative, type RunSpec } from './test-support';

const BUSYBOX = findBusybox64();
if (!BUSYBOX) console.warn('SKIPPED: busybox-static (amd64) not installed: the busybox applet tests against the native run are not run');
const BUSYBOX32 = findBusybox32();
if (!BUSYBOX32) console.warn('SKIPPED: busybox-static (i386) not in .cache/ringzero/i386: the 32-bit busybox applet tests are not run');


/**
 * Applets that cannot pass yet, with the instruction they stop at today (what the runner
 * reports). Remove an entry when its test warns that it passes.
 */
const KNOWN_FAILING: Readonly<Record<string, string>> = {};

interface Case {
  name: string;
  args: string[];
  stdin?: Uint8Array | string;
  /** Files to create in the working directory before the runs. */
  files?: Record<string, Uint8Array | string>;
}

/** Deterministic text input: words and numbers, some repeated lines. */
function makeText(lines: number): string {
  const words = ['alpha', 'Bravo', 'charlie', 'delta', 'Echo', 'foxtrot', 'golf', 'hotel', 'india', 'juliet'];
  let x = 12345;
  const out: string[] = [];
  for (let i = 0; i < lines; i++) {
    x = (x * 1103515245 + 12345) % 2147483648;
    const n = x % 1000;
    out.push(`${words[x % 10]}:${n}:${words[(x >> 8) % 10]} ${(n * 1.25).toFixed(2)}`);
    if (i % 7 === 0) out.push(out[out.length - 1]);
  }
  return out.join('\n') + '\n';
}

function makeBinary(n: number): Uint8Array {
  const b = new Uint8Array(n);
  let x = 7;
  for (let i = 0; i < n; i++) {
    x = (x * 1664525 + 1013904223) >>> 0;
    b[i] = i % 3 === 0 ? x >>> 24 : 0x61 + (i % 11); // compressible but not trivial
  }
  return b;
}

const TEXT = makeText(300);
const BIN = makeBinary(32 * 1024);
const SORTED = TEXT.split('\n').filter(Boolean).sort().join('\n') + '\n';

const CASES: Case[] = [
  { name: 'echo', args: ['echo', 'hello', 'world', '-n'] },
  { name: 'true', args: ['true'] },
  { name: 'false', args: ['false'] },
  { name: 'basename', args: ['basename', '/usr/lib/x86_64-linux-gnu/libc.so.6', '.6'] },
  { name: 'seq', args: ['seq', '1', '10'] },
  { name: 'wc', args: ['wc'], stdin: TEXT },
  { name: 'wc -l file', args: ['wc', '-l', 'input.txt'], files: { 'input.txt': TEXT } },
  { name: 'md5sum', args: ['md5sum'], stdin: BIN },
  { name: 'sha1sum', args: ['sha1sum'], stdin: BIN },
  { name: 'sha256sum', args: ['sha256sum'], stdin: BIN },
  { name: 'sha512sum', args: ['sha512sum'], stdin: BIN },
  { name: 'sort', args: ['sort', '-t:', '-k2,2n', '-k1,1'], stdin: TEXT },
  { name: 'uniq', args: ['uniq', '-c'], stdin: SORTED },
  { name: 'tr', args: ['tr', 'a-z', 'A-Z'], stdin: TEXT },
  { name: 'cut', args: ['cut', '-d:', '-f1,3'], stdin: TEXT },
  { name: 'base64', args: ['base64'], stdin: BIN.subarray(0, 4000) },
  { name: 'base64 -d', args: ['base64', '-d'], stdin: Buffer.from(BIN.subarray(0, 4000)).toString('base64') },
  { name: 'od', args: ['od', '-A', 'x', '-t', 'x1z', '-t', 'd2'], stdin: BIN.subarray(0, 600) },
  { name: 'expr', args: ['expr', '3', '+', '4', '*', '5'] },
  { name: 'expr match', args: ['expr', 'ringzero', ':', 'ring\\(.*\\)'] },
  { name: 'printf', args: ['printf', '%d|%5s|%x|%o|%c\\n', '42', 'ab', '255', '8', 'z'] },
  { name: 'printf floats', args: ['printf', '%.3f %e %g\\n', '3.14159', '12345.678', '0.0001'] },
  { name: 'factor', args: ['factor', '123456789', '1000000007', '600851475143'] },
  { name: 'sed', args: ['sed', '-e', 's/a/4/g', '-e', '/^j/d', '-e', '3q'], stdin: TEXT },
  { name: 'grep', args: ['grep', '-n', '-i', '-E', 'echo|delta'], stdin: TEXT },
  { name: 'grep -c', args: ['grep', '-c', 'alpha'], stdin: TEXT },
  { name: 'awk', args: ['awk', '-F:', '{ s += $2; t += $2 * 1.5 } END { printf "%d %.4f %g\\n", NR, s / NR, t }'], stdin: TEXT },
  { name: 'dc', args: ['dc', '-e', '2 64 ^ p 7 k 1 3 / p'] },
  { name: 'gzip', args: ['gzip', '-c', '-9'], stdin: BIN },
  { name: 'bzip2', args: ['bzip2', '-c'], stdin: BIN.subarray(0, 8 * 1024) },
];

for (const [arch, bb] of [['amd64', BUSYBOX], ['i386', BUSYBOX32]] as const) {
describe.skipIf(!bb)(`busybox-static (${arch}) applets: ringzero-user against the native run`, () => {
  const BUSYBOX = bb;
  let dir = '';
  const ENV = ['LANG=C', 'LC_ALL=C', 'PATH=/usr/bin:/bin', 'HOME=/nonexistent'];

  beforeAll(() => {
    dir = makeTempDir('rz-busybox-');
  });
  afterAll(() => removeTempDir(dir));

  function spec(c: Case): RunSpec {
    for (const [name, data] of Object.entries(c.files ?? {})) fs.writeFileSync(path.join(dir, name), data);
    const stdin = typeof c.stdin === 'string' ? new TextEncoder().encode(c.stdin) : c.stdin;
    return { program: BUSYBOX!, argv: ['busybox', ...c.args], env: ENV, cwd: dir, ...(stdin ? { stdin } : {}) };
  }

  for (const c of CASES) {
    const known = KNOWN_FAILING[c.name];
    it(`${c.name}${known ? ' (known failing: ' + known + ')' : ''}`, () => {
      const s = spec(c);
      const n = runNative(s);
      const e = runEmulated(s, 400_000_000);
      const same = e.stdout === n.stdout && e.stderr === n.stderr && e.status === n.status && e.signal === n.signal;
      if (known) {
        if (same) console.warn(`busybox ${c.name} now matches the native run: remove it from KNOWN_FAILING`);
        else {
          console.info(`busybox ${c.name}: ${e.result.message}`);
          expect(e.result.reason).toBe('unimplemented');
        }
        return;
      }
      expect(e.result.message).toBe('');
      expect(e.stdout).toBe(n.stdout);
      expect(e.stderr).toBe(n.stderr);
      expect({ status: e.status, signal: e.signal }).toEqual({ status: n.status, signal: n.signal });
    });
  }

  it('gunzip and bzip2 -d restore what the native gzip and bzip2 compressed (round trips)', () => {
    const gz = runNative({ ...spec({ name: 'gz', args: ['gzip', '-c'], stdin: BIN }) }).stdoutBytes;
    const back = runEmulated(spec({ name: 'gunzip', args: ['gunzip', '-c'], stdin: gz }), 400_000_000);
    expect(back.result.message).toBe('');
    expect(new Uint8Array(back.result.stdout)).toEqual(BIN);
    const data = BIN.subarray(0, 8 * 1024);
    const bz = runNative({ ...spec({ name: 'bz', args: ['bzip2', '-c'], stdin: data }) }).stdoutBytes;
    const back2 = runEmulated(spec({ name: 'bunzip2', args: ['bzip2', '-d', '-c'], stdin: bz }), 400_000_000);
    expect(back2.result.message).toBe('');
    expect(new Uint8Array(back2.result.stdout)).toEqual(data);
  });

  it('file applets change the file system as natively: mkdir cp mv ln readlink ls find stat touch tar rm cmp...', () => {
    // Each step runs natively in one directory and emulated in a twin; outputs must agree step by step.
    const steps: string[][] = [
      ['mkdir', '-p', 'a/b/c'],
      ['cp', 'input.txt', 'a/b/c/copy'],
      ['mv', 'a/b/c/copy', 'a/moved'],
      ['ln', '-s', 'moved', 'a/link'],
      ['readlink', 'a/link'],
      ['ls', '-a', 'a'],
      ['find', '.'],
      ['cat', 'a/link'],
      ['stat', '-c', '%n %s %F %a %h', 'a/moved', 'a/link', 'a', 'a/b'],
      ['touch', '-d', '2020-01-02 03:04:05', 'a/moved'],
      ['stat', '-c', '%Y', 'a/moved'],
      ['tar', 'cf', 'a.tar', 'a'],
      ['tar', 'tf', 'a.tar'],
      ['cmp', 'input.txt', 'a/moved'],
      ['cmp', 'input.txt', 'a.tar'],
      ['rm', '-r', 'a/b'],
      ['ls', 'a'],
      ['rmdir', 'a'],
      ['head', '-n', '3', 'input.txt'],
      ['tail', '-n', '2', 'input.txt'],
      ['tac', 'input.txt'],
      ['rev', 'input.txt'],
      ['nl', 'input.txt'],
      ['cksum', 'input.txt'],
      ['hexdump', '-C', 'input.txt'],
    ];
    const twin = (name: string): string => {
      const d = path.join(dir, name);
      fs.mkdirSync(d, { recursive: true });
      fs.writeFileSync(path.join(d, 'input.txt'), TEXT.slice(0, 600));
      return d;
    };
    const dn = twin('fs-native');
    const de = twin('fs-emulated');
    for (const args of steps) {
      const base = { program: BUSYBOX!, argv: ['busybox', ...args], env: ENV };
      const n = runNative({ ...base, cwd: dn });
      const e = runEmulated({ ...base, cwd: de }, 400_000_000);
      expect(e.result.message, args.join(' ')).toBe('');
      expect({ step: args.join(' '), out: e.stdout, err: e.stderr, status: e.status }).toEqual({ step: args.join(' '), out: n.stdout, err: n.stderr, status: n.status });
    }
    expect(fs.readdirSync(de).sort()).toEqual(fs.readdirSync(dn).sort());
  });

  it('reports a missing file the way the native run does (stderr and status 1)', () => {
    const s = spec({ name: 'cat missing', args: ['cat', 'no-such-file'] });
    const n = runNative(s);
    const e = runEmulated(s);
    expect(e.stderr).toBe(n.stderr);
    expect(e.status).toBe(1);
    expect(n.status).toBe(1);
  });
});
}
