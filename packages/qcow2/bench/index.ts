// Benchmarks: convert and compression throughput next to qemu-img (same files, same run), and
// random 4 KiB IOPS through the library (one request at a time, and 8 in flight). Image size:
// RZ_BENCH_MB (default 64; 1024 = the full 1 GiB mixed-content image of the issue). Each side
// runs RZ_BENCH_REPS times (default 5), alternating; the best and the median wall time are
// printed, and throughput per CPU-second (user + system: ours from process.cpuUsage, which
// counts libuv's threads; qemu-img's from the shell's `times` for its child).
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { convertImage } from '../src/cli';
import { openImage } from '../src/node';

const MB = Number(process.env.RZ_BENCH_MB ?? 64);
const size = MB * 1024 * 1024;
const dir = mkdtempSync(join(tmpdir(), 'rz-qcow2-bench-'));
const hasQemu = spawnSync('sh', ['-c', 'command -v qemu-img']).status === 0;
if (!hasQemu) console.warn('SKIPPED: qemu-img not installed: peer figures');

function emit(name: string, value: number, unit: string, peerValue?: number): void {
  const o: Record<string, unknown> = { name, value: Math.round(value * 10) / 10, unit };
  if (peerValue !== undefined) {
    o.peer = 'qemu-img 7.2';
    o.peerValue = Math.round(peerValue * 10) / 10;
    o.ratio = Math.round((value / peerValue) * 100) / 100;
  }
  console.log(JSON.stringify(o));
}

function mixed(): Uint8Array {
  // Thirds: text, zeros, random bytes (per 1 MiB stripe so every region mixes).
  const b = new Uint8Array(size);
  const words = 'the quick brown fox jumps over a lazy dog while qemu converts images '.split(' ');
  let x = 12345;
  for (let s = 0; s < size; s += 3 << 20) {
    let p = s;
    const tEnd = Math.min(size, s + (1 << 20));
    while (p < tEnd) {
      x = (x * 1103515245 + 12345) >>> 0;
      const w = words[x % words.length] + ' ';
      for (let i = 0; i < w.length && p < tEnd; i++) b[p++] = w.charCodeAt(i);
    }
    const rStart = Math.min(size, s + (2 << 20));
    const rEnd = Math.min(size, s + (3 << 20));
    for (let i = rStart; i < rEnd; i++) {
      x = (x * 1664525 + 1013904223) >>> 0;
      b[i] = x >>> 24;
    }
  }
  return b;
}

async function time(fn: () => Promise<void> | void): Promise<number> {
  const t = performance.now();
  await fn();
  return (performance.now() - t) / 1000;
}

/** Wall and CPU seconds of one run of ours (in-process). */
async function runOurs(fn: () => Promise<void>): Promise<[number, number]> {
  const c = process.cpuUsage();
  const w = await time(fn);
  const d = process.cpuUsage(c);
  return [w, (d.user + d.system) / 1e6];
}

const q = (a: string): string => `'${a.replace(/'/g, "'\\''")}'`;
/** Wall and CPU seconds of one qemu-img process (the shell's `times` reports its child's CPU). */
async function runQemu(args: string[]): Promise<[number, number]> {
  let out = '';
  const w = await time(() => {
    out = execFileSync('bash', ['-c', `qemu-img ${args.map(q).join(' ')} >/dev/null && times`], { encoding: 'utf8' });
  });
  const m = /\n(\d+)m([\d.]+)s (\d+)m([\d.]+)s\s*$/.exec(out);
  const cpu = m ? Number(m[1]) * 60 + Number(m[2]) + Number(m[3]) * 60 + Number(m[4]) : NaN;
  return [w, cpu];
}

const median = (a: number[]): number => {
  const s = [...a].sort((x, y) => x - y);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

async function main(): Promise<void> {
  const raw = join(dir, 'src.raw');
  writeFileSync(raw, mixed());
  const mib = size / (1 << 20);
  const cases: [string, () => Promise<void>, string[] | null][] = [
    ['convert raw->qcow2', () => convertImage(raw, join(dir, 'o1.qcow2'), { srcFormat: 'raw', outFormat: 'qcow2' }), ['convert', '-f', 'raw', '-O', 'qcow2', raw, join(dir, 'q1.qcow2')]],
    ['convert qcow2->raw', () => convertImage(join(dir, 'q1.qcow2'), join(dir, 'o2.raw'), { outFormat: 'raw' }), ['convert', '-O', 'raw', join(dir, 'q1.qcow2'), join(dir, 'q2.raw')]],
    ['compress zlib', () => convertImage(raw, join(dir, 'o3.qcow2'), { srcFormat: 'raw', outFormat: 'qcow2', compress: true }), ['convert', '-c', '-f', 'raw', '-O', 'qcow2', raw, join(dir, 'q3.qcow2')]],
    ['compress zstd', () => convertImage(raw, join(dir, 'o4.qcow2'), { srcFormat: 'raw', outFormat: 'qcow2', compress: true, create: { size: 0, compressionType: 'zstd' } }), ['convert', '-c', '-o', 'compression_type=zstd', '-f', 'raw', '-O', 'qcow2', raw, join(dir, 'q4.qcow2')]],
    ['zstd-compressed->raw', () => convertImage(join(dir, 'q4.qcow2'), join(dir, 'o6.raw'), { outFormat: 'raw' }), ['convert', '-O', 'raw', join(dir, 'q4.qcow2'), join(dir, 'q6.raw')]],
    ['zlib-compressed->raw', () => convertImage(join(dir, 'q3.qcow2'), join(dir, 'o5.raw'), { outFormat: 'raw' }), ['convert', '-O', 'raw', join(dir, 'q3.qcow2'), join(dir, 'q5.raw')]],
  ];
  const outs: Record<string, string> = {
    'convert raw->qcow2': join(dir, 'o1.qcow2'),
    'convert qcow2->raw': join(dir, 'o2.raw'),
    'compress zlib': join(dir, 'o3.qcow2'),
    'compress zstd': join(dir, 'o4.qcow2'),
    'zstd-compressed->raw': join(dir, 'o6.raw'),
    'zlib-compressed->raw': join(dir, 'o5.raw'),
  };
  // The machine is shared, so each side runs REPS times, alternating.
  const reps = Number(process.env.RZ_BENCH_REPS ?? 5);
  const only = process.env.RZ_BENCH_ONLY;
  for (const [name, ours, peer] of cases) {
    if (only && !name.includes(only)) continue;
    const ow: number[] = [];
    const oc: number[] = [];
    const pw: number[] = [];
    const pc: number[] = [];
    // One untimed run per side first. Before every run, that side's previous output is deleted:
    // this VM hands freed guest memory back to its host at once (virtio-balloon free page
    // reporting), and a run that writes into such pages pays 1.5-3 s of system time per GiB
    // (either program; measured), so each run starts by freeing the page cache it will reuse.
    for (let r = -1; r < reps; r++) {
      // The peer runs first so that inputs it produces (q1, q3) exist for the next cases.
      if (hasQemu && peer) {
        rmSync(peer[peer.length - 1], { force: true });
        const [w, c] = await runQemu(peer);
        if (r >= 0) {
          pw.push(w);
          pc.push(c);
        }
      }
      rmSync(outs[name], { force: true });
      const [w, c] = await runOurs(ours);
      if (r >= 0) {
        ow.push(w);
        oc.push(c);
      }
    }
    const label = `${name} (${mib} MiB mixed)`;
    const peerOf = (a: number[], f: (x: number[]) => number): number | undefined => (a.length ? mib / f(a) : undefined);
    const min = (a: number[]): number => Math.min(...a);
    emit(`${label}, best wall`, mib / min(ow), 'MiB/s', peerOf(pw, min));
    emit(`${label}, median wall`, mib / median(ow), 'MiB/s', peerOf(pw, median));
    emit(`${label}, best per CPU-second`, mib / min(oc), 'MiB/CPU-s', peerOf(pc, min));
    emit(`${label}, median per CPU-second`, mib / median(oc), 'MiB/CPU-s', peerOf(pc, median));
  }
  // 4 KiB I/O through the library on the converted image, next to `qemu-img bench` on the
  // peer's converted image, with the same offsets: qemu-img bench's pattern, a fixed step
  // (4 KiB x 401, prime to the image's 4 KiB blocks, so the requests hit different blocks
  // scattered over the image) wrapping at the end, 1 and 8 requests in flight, 20,000 requests
  // a run. Both sides end with a flush (qemu-img bench closes the image with one,
  // cache=writeback).
  const ops = 20000;
  const step = 4096 * 401;
  const buf = new Uint8Array(4096).fill(0x5a);
  const qbench = (file: string, depth: number, write: boolean): number | undefined => {
    if (!hasQemu) return undefined;
    const args = ['bench', '-f', 'qcow2', '-c', String(ops), '-d', String(depth), '-s', '4096', '-S', String(step), '-t', 'writeback', ...(write ? ['-w'] : []), file];
    const out = execFileSync('qemu-img', args, { encoding: 'utf8' });
    const m = /Run completed in ([\d.]+) seconds/.exec(out);
    return m ? ops / Number(m[1]) : undefined;
  };
  const ourBench = async (depth: number, write: boolean): Promise<number> => {
    const img = await openImage(join(dir, 'o1.qcow2'));
    let next = 0;
    let off = 0;
    const lane = async (): Promise<void> => {
      while (next++ < ops) {
        const at = off;
        off = (off + step) % size;
        if (write) await img.write(at, buf);
        else await img.read(at, 4096);
      }
    };
    const t = await time(async () => {
      await Promise.all(Array.from({ length: depth }, lane));
      await img.flush();
    });
    await img.close();
    return ops / t;
  };
  if (!existsSync(join(dir, 'o1.qcow2')) || (hasQemu && !existsSync(join(dir, 'q1.qcow2')))) return;
  for (const [label, depth, write] of [['random 4k read', 1, false], ['random 4k write', 1, true], ['random 4k read, 8 in flight', 8, false], ['random 4k write, 8 in flight', 8, true]] as const) {
    const ours: number[] = [];
    const peer: number[] = [];
    for (let r = 0; r < Math.min(reps, 3); r++) {
      const p = qbench(join(dir, 'q1.qcow2'), depth, write);
      if (p !== undefined) peer.push(p);
      ours.push(await ourBench(depth, write));
    }
    emit(`${label} (median of ${ours.length})`, median(ours), 'IOPS', peer.length ? median(peer) : undefined);
  }
}

main()
  .catch((e: unknown) => {
    console.error(e);
    process.exitCode = 1;
  })
  .finally(() => rmSync(dir, { recursive: true, force: true }));
