/**
 * ringzero-user benchmark: CPU-bound busybox-static workloads run in ringzero-user (in
 * process), natively and under qemu-x86_64 (qemu-user) in the same run. Prints JSON lines
 * {"name","value","unit","peer"?,"peerValue"?,"ratio"?}: wall time, guest instructions retired,
 * MIPS (instructions retired / wall time; for the peers the same instruction count over their
 * time), the same by CPU time (user + system, unaffected by other load), and the ratios.
 *
 * Sizes: RINGZERO_BENCH_MIB (default 1) MiB for sha256sum; the figure is 64.
 * Run alone: tsx --conditions=@ringzero/source bench/user.ts, or from bench/index.ts through
 * userBenchmarks().
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runProgram } from '../src/user/run';

export interface BenchLine {
  name: string;
  value: number | null;
  unit: string;
  peer?: string;
  peerValue?: number;
  ratio?: number;
  error?: string;
}

const BUSYBOX_CANDIDATES = ['/bin/busybox', '/work/main/.cache/ringzero/amd64/busybox'];

function has(tool: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' }).status === 0;
}

/** Runs cmd with stdin from `input`: wall time, and CPU time (user + system) from bash's `times`. */
function timeSpawn(cmd: string, args: string[], input: string): { seconds: number; cpu: number; stdout: string; ok: boolean } {
  const t0 = performance.now();
  const script = '"$@" < "$IN" > "$OUT"; s=$?; times >&2; exit $s';
  const out = input + '.out';
  const r = spawnSync('bash', ['-c', script, 'bench', cmd, ...args], { env: { ...process.env, IN: input, OUT: out }, encoding: 'latin1' });
  const seconds = (performance.now() - t0) / 1000;
  // `times` prints the shell's then its children's user and system times: "0m0.031s 0m0.003s".
  const lines = r.stderr.trim().split('\n');
  const child = lines[lines.length - 1].match(/(\d+)m([\d.]+)s (\d+)m([\d.]+)s/);
  const cpu = child ? Number(child[1]) * 60 + Number(child[2]) + Number(child[3]) * 60 + Number(child[4]) : NaN;
  const stdout = fs.readFileSync(out, 'latin1');
  fs.rmSync(out, { force: true });
  return { seconds, cpu, stdout, ok: r.status === 0 };
}

/** One workload: busybox args with a stdin file, in all three runners. */
function workload(name: string, busybox: string, args: string[], input: string, out: (l: BenchLine) => void): void {
  const data = fs.readFileSync(input);
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const r = runProgram({ program: busybox, argv: ['busybox', ...args], env: ['LANG=C', 'LC_ALL=C'], stdin: data, captureStdout: true, captureStderr: true });
  const seconds = (performance.now() - t0) / 1000;
  const cu = process.cpuUsage(c0);
  const cpu = (cu.user + cu.system) / 1e6;
  const native = timeSpawn(busybox, args, input);
  const stdout = Buffer.from(r.stdout).toString('latin1');
  if (r.reason !== 'exit' || r.status !== 0 || stdout !== native.stdout) {
    out({ name: `${name}.time`, value: null, unit: 's', error: r.message || 'output differs from the native run' });
    return;
  }
  const mips = r.retired / seconds / 1e6;
  out({ name: `${name}.instructions`, value: r.retired, unit: 'instructions' });
  out({ name: `${name}.time`, value: seconds, unit: 's', peer: 'native', peerValue: native.seconds, ratio: seconds / native.seconds });
  out({ name: `${name}.mips`, value: mips, unit: 'MIPS', peer: 'native', peerValue: r.retired / native.seconds / 1e6, ratio: seconds / native.seconds });
  // CPU time: what the machine's load (other processes on a shared host) does not inflate.
  out({ name: `${name}.cpu`, value: cpu, unit: 's', peer: 'native', peerValue: native.cpu, ratio: cpu / native.cpu });
  out({ name: `${name}.mips-cpu`, value: r.retired / cpu / 1e6, unit: 'MIPS', peer: 'native', peerValue: r.retired / native.cpu / 1e6, ratio: cpu / native.cpu });
  if (has('qemu-x86_64')) {
    const q = timeSpawn('qemu-x86_64', [busybox, ...args], input);
    if (q.ok && q.stdout === native.stdout) {
      out({ name: `${name}.time`, value: seconds, unit: 's', peer: 'qemu-x86_64', peerValue: q.seconds, ratio: seconds / q.seconds });
      out({ name: `${name}.mips`, value: mips, unit: 'MIPS', peer: 'qemu-x86_64', peerValue: r.retired / q.seconds / 1e6, ratio: seconds / q.seconds });
      out({ name: `${name}.cpu`, value: cpu, unit: 's', peer: 'qemu-x86_64', peerValue: q.cpu, ratio: cpu / q.cpu });
    } else out({ name: `${name}.time`, value: null, unit: 's', peer: 'qemu-x86_64', error: 'qemu-x86_64 run failed' });
  } else console.warn('SKIPPED: qemu-x86_64 (qemu-user) not installed: no qemu figure');
}

/** Runs the user-mode benchmarks and prints (and returns) their JSON lines. */
export function userBenchmarks(env: NodeJS.ProcessEnv = process.env): BenchLine[] {
  const lines: BenchLine[] = [];
  const out = (l: BenchLine): void => {
    lines.push(l);
    console.log(JSON.stringify(l));
  };
  const busybox = BUSYBOX_CANDIDATES.find((p) => fs.existsSync(p));
  if (!busybox) {
    console.warn('SKIPPED: busybox-static not installed: no ringzero-user benchmark');
    return lines;
  }
  const mib = Math.max(1, Math.min(1024, Number(env.RINGZERO_BENCH_MIB ?? 1) || 1));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rz-bench-user-'));
  try {
    // sha256sum of N MiB of pseudo-random bytes.
    const input = path.join(dir, 'data.bin');
    const buf = Buffer.allocUnsafe(mib * 1024 * 1024);
    let x = 0x12345678;
    for (let i = 0; i < buf.length; i += 4) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      buf.writeInt32LE(x | 0, i);
    }
    fs.writeFileSync(input, buf);
    workload(`user.sha256sum.${mib}MiB`, busybox, ['sha256sum'], input, out);
    // An awk/sort mix on text: 20k lines sorted numerically, then summed with floats in awk.
    const text = path.join(dir, 'text.txt');
    const rows: string[] = [];
    for (let i = 0; i < 20000; i++) rows.push(`${(i * 7919) % 20011} ${((i * 104729) % 1000) / 7} row${i}`);
    fs.writeFileSync(text, rows.join('\n') + '\n');
    workload('user.sort-n.20k-lines', busybox, ['sort', '-n'], text, out);
    workload('user.awk-sum.20k-lines', busybox, ['awk', '{ s += $1 * $2 } END { printf "%.6g\\n", s }'], text, out);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return lines;
}

if (process.argv[1] && path.resolve(process.argv[1]) === path.resolve(import.meta.filename ?? '')) userBenchmarks();
