// Micro-bench: 64 KiB zstd clusters (level 3, as QEMU) of the main bench's text content, per
// call, compressed and decompressed by the Node adapter's codec (zstd-napi, one reused context
// each) and by the WebAssembly build the core falls back to.
// `npx tsx --conditions=@ringzero/source bench/zstd-clusters.ts`.
import { getZstdCodec } from '../src/compress';
import { getNodeZstdCodec } from '../src/node';

const CS = 65536;
const N = Number(process.env.RZ_BENCH_CLUSTERS ?? 256);
const words = 'the quick brown fox jumps over a lazy dog while qemu converts images '.split(' ');
let x = 12345;
const wasm = await getZstdCodec();
const node = await getNodeZstdCodec();
const plain: Uint8Array[] = [];
const packed: Uint8Array[] = [];
for (let c = 0; c < N; c++) {
  const b = new Uint8Array(CS);
  let p = 0;
  while (p < CS) {
    x = (x * 1103515245 + 12345) >>> 0;
    const w = words[x % words.length] + ' ';
    for (let i = 0; i < w.length && p < CS; i++) b[p++] = w.charCodeAt(i);
  }
  plain.push(b);
  const z = wasm.compress(b, CS);
  if (z == null) throw new Error('text did not compress');
  packed.push(z);
}
const out = new Uint8Array(CS);

const cands: [string, (i: number) => void][] = [
  ['decompress: node adapter (zstd-napi)', (i) => { if (!node.decompress(packed[i], out)) throw new Error('fail'); }],
  ['decompress: wasm (reused DCtx) + copy', (i) => { if (!wasm.decompress(packed[i], out)) throw new Error('fail'); }],
  ['compress: node adapter (zstd-napi)', (i) => { if (node.compress(plain[i], CS) == null) throw new Error('fail'); }],
  ['compress: wasm', (i) => { if (wasm.compress(plain[i], CS) == null) throw new Error('fail'); }],
];
for (let rep = 0; rep < Number(process.env.RZ_BENCH_REPS ?? 5); rep++) {
  for (const [name, fn] of cands) {
    for (let i = 0; i < 32; i++) fn(i);
    const c0 = process.cpuUsage();
    const t = performance.now();
    for (let i = 0; i < N; i++) fn(i);
    const wall = (performance.now() - t) / N;
    const cpu = process.cpuUsage(c0);
    console.log(JSON.stringify({ name, rep, value: Math.round(wall * 1000), unit: 'us/cluster wall', cpuUs: Math.round((cpu.user + cpu.system) / N) }));
  }
}
