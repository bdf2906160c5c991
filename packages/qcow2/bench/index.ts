// Benchmarks: convert and compression throughput next to qemu-img (same files, same run), and
// random 4 KiB IOPS through the library. Image size: RZ_BENCH_MB (default 64; 1024 = the full
// 1 GiB mixed-content image of the issue); best of RZ_BENCH_REPS runs per side (default 3).
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
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

const qemu = (args: string[]): void => {
  execFileSync('qemu-img', args, { stdio: 'ignore' });
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
  // The machine is shared, so each side runs REPS times, alternating, and keeps its best time.
  const reps = Number(process.env.RZ_BENCH_REPS ?? 3);
  for (const [name, ours, peer] of cases) {
    let tp = Infinity;
    let to = Infinity;
    for (let r = 0; r < reps; r++) {
      // The peer runs first so that inputs it produces (q1, q3) exist for the next cases.
      if (hasQemu && peer) tp = Math.min(tp, await time(() => qemu(peer)));
      to = Math.min(to, await time(ours));
    }
    emit(`${name} (${mib} MiB mixed)`, mib / to, 'MiB/s', tp !== Infinity ? mib / tp : undefined);
  }
  // Random 4 KiB I/O through the library on the converted image.
  const img = await openImage(join(dir, 'o1.qcow2'));
  const ops = 4000;
  const buf = new Uint8Array(4096).fill(0x5a);
  let x = 99;
  const rnd = (): number => {
    x = (x * 1103515245 + 12345) >>> 0;
    return (x % (size / 4096)) * 4096;
  };
  const tr = await time(async () => {
    for (let i = 0; i < ops; i++) await img.read(rnd(), 4096);
  });
  emit('random 4k read', ops / tr, 'IOPS');
  const tw = await time(async () => {
    for (let i = 0; i < ops; i++) await img.write(rnd(), buf);
    await img.flush();
  });
  emit('random 4k write', ops / tw, 'IOPS');
  await img.close();
}

main()
  .catch((e: unknown) => {
    console.error(e);
    process.exitCode = 1;
  })
  .finally(() => rmSync(dir, { recursive: true, force: true }));
