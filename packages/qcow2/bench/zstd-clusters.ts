// Micro-bench: decompressing 64 KiB zstd clusters (level 3, as QEMU) of the main bench's text
// content, per call: the native binding, the WebAssembly build, and the Node adapter's codec.
// `npx tsx --conditions=@ringzero/source bench/zstd-clusters.ts`.
import { createRequire } from 'node:module';
import { getZstdCodec } from '../src/compress';
import { getNodeZstdCodec } from '../src/node';

const CS = 65536;
const N = Number(process.env.RZ_BENCH_CLUSTERS ?? 256);
const words = 'the quick brown fox jumps over a lazy dog while qemu converts images '.split(' ');
let x = 12345;
type Z = { Encoder: new (l: number) => { encodeSync(b: Buffer): Buffer }; Decoder: new () => { decodeSync(b: Buffer): Buffer; decode(b: Buffer): Promise<Buffer> } };
const z = createRequire(import.meta.url)('@toondepauw/node-zstd') as Z;
const enc = new z.Encoder(3);
const dec = new z.Decoder();
const clusters: Uint8Array[] = [];
for (let c = 0; c < N; c++) {
  const b = Buffer.alloc(CS);
  let p = 0;
  while (p < CS) {
    x = (x * 1103515245 + 12345) >>> 0;
    const w = words[x % words.length] + ' ';
    for (let i = 0; i < w.length && p < CS; i++) b[p++] = w.charCodeAt(i);
  }
  clusters.push(new Uint8Array(enc.encodeSync(b)));
}
const out = new Uint8Array(CS);
const wasm = await getZstdCodec();
const node = await getNodeZstdCodec();
const asBuf = (u: Uint8Array): Buffer => Buffer.from(u.buffer, u.byteOffset, u.length);

const cands: [string, (s: Uint8Array) => void][] = [
  ['native decodeSync + copy', (s) => out.set(dec.decodeSync(asBuf(s)))],
  ['wasm (reused DCtx) + copy', (s) => { if (!wasm.decompress(s, out)) throw new Error('fail'); }],
  ['node adapter codec', (s) => { if (!node.decompress(s, out)) throw new Error('fail'); }],
];
for (let rep = 0; rep < Number(process.env.RZ_BENCH_REPS ?? 5); rep++) {
  for (const [name, fn] of cands) {
    for (let i = 0; i < 32; i++) fn(clusters[i]);
    const c0 = process.cpuUsage();
    const t = performance.now();
    for (const s of clusters) fn(s);
    const wall = (performance.now() - t) / N;
    const cpu = process.cpuUsage(c0);
    console.log(JSON.stringify({ name, rep, value: Math.round(wall * 1000), unit: 'us/cluster wall', cpuUs: Math.round((cpu.user + cpu.system) / N) }));
  }
  // The native async decode, several clusters in flight (libuv's thread pool).
  const c0 = process.cpuUsage();
  const t = performance.now();
  await Promise.all(clusters.map((s) => dec.decode(asBuf(s)).then((r) => out.set(r))));
  const cpu = process.cpuUsage(c0);
  console.log(JSON.stringify({ name: 'native decode (async, all in flight)', rep, value: Math.round(((performance.now() - t) / N) * 1000), unit: 'us/cluster wall', cpuUs: Math.round((cpu.user + cpu.system) / N) }));
}
