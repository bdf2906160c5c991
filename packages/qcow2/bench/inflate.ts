// Micro-bench: inflating 64 KiB clusters of the main bench's text content (QEMU's deflate
// parameters), per call, through each candidate inflater. `npx tsx bench/inflate.ts`.
import zlib, { constants as zc, deflateRawSync, inflateRawSync } from 'node:zlib';
import { inflateSync } from 'fflate';
import { nodeZlibCodec } from '../src/node';

const CS = 65536;
const N = Number(process.env.RZ_BENCH_CLUSTERS ?? 256);
const words = 'the quick brown fox jumps over a lazy dog while qemu converts images '.split(' ');
let x = 12345;
const clusters: Uint8Array[] = [];
for (let c = 0; c < N; c++) {
  const b = new Uint8Array(CS);
  let p = 0;
  while (p < CS) {
    x = (x * 1103515245 + 12345) >>> 0;
    const w = words[x % words.length] + ' ';
    for (let i = 0; i < w.length && p < CS; i++) b[p++] = w.charCodeAt(i);
  }
  const d = deflateRawSync(b, { windowBits: 12, memLevel: 9, level: zc.Z_DEFAULT_COMPRESSION });
  // QEMU stores the stream rounded up to a 512-byte sector: trailing bytes after the end.
  const padded = new Uint8Array(Math.ceil(d.length / 512) * 512);
  padded.set(d);
  clusters.push(padded);
}
const out = new Uint8Array(CS);

type H = { writeSync(f: number, i: Uint8Array, io: number, il: number, o: Uint8Array, oo: number, ol: number): void; reset(): void; onerror: unknown };
const obj = zlib.createInflateRaw() as unknown as { _handle: H; _writeState: Uint32Array };
const h = obj._handle;
const ws = obj._writeState;
h.onerror = () => {};

const cands: [string, (s: Uint8Array) => void][] = [
  ['inflateRawSync per call', (s) => out.set(inflateRawSync(s, { finishFlush: zc.Z_SYNC_FLUSH, maxOutputLength: CS }))],
  ['fflate inflateSync into out', (s) => inflateSync(s, { out })],
  ['one InflateRaw handle, writeSync into out + reset', (s) => {
    h.writeSync(zc.Z_SYNC_FLUSH, s, 0, s.length, out, 0, CS);
    if (ws[0] !== 0) throw new Error('short');
    h.reset();
  }],
  ['nodeZlibCodec.decompress', (s) => { if (!nodeZlibCodec.decompress(s, out)) throw new Error('fail'); }],
];
for (let rep = 0; rep < 3; rep++) {
  for (const [name, fn] of cands) {
    for (let i = 0; i < 32; i++) fn(clusters[i]);
    const c0 = process.cpuUsage();
    const t = performance.now();
    for (const s of clusters) fn(s);
    const wall = (performance.now() - t) / N;
    const cpu = process.cpuUsage(c0);
    console.log(JSON.stringify({ name, rep, value: Math.round(wall * 1000) / 1000 * 1000, unit: 'us/cluster wall', cpuUs: Math.round((cpu.user + cpu.system) / N) }));
  }
}
