// Benchmarks print one JSON object per line: {"name","value","unit","peer"?,"peerValue"?,"ratio"?}.
// The "peer" for access costs is a raw DataView read/write on one ArrayBuffer (no translation at
// all), measured in the same run: the ratio is what translation adds. BENCH_SCALE=n multiplies
// the iteration counts.
import { PerformanceObserver } from 'node:perf_hooks';
import {
  ACC_SR,
  ACC_SW,
  AddressSpace,
  CR0_PG,
  CR0_WP,
  CR4_PAE,
  EFER_LME,
  EFER_NXE,
  FlatGuestMemory,
  HostMemory,
  MODE_4LEVEL,
  Mmu,
} from '../src/index';
import { GuestPageTables } from '../src/testing';

const scale = Number(process.env.BENCH_SCALE ?? '1') || 1;
const MiB = 2 ** 20;

function emit(name: string, value: number, unit: string, peer?: string, peerValue?: number): void {
  const o: Record<string, unknown> = { name, value: Number(value.toPrecision(4)), unit };
  if (peer !== undefined && peerValue !== undefined) {
    o.peer = peer;
    o.peerValue = Number(peerValue.toPrecision(4));
    o.ratio = Number((value / peerValue).toPrecision(3));
  }
  console.log(JSON.stringify(o));
}

/** Runs fn(iterations) a few times and returns the best operations per second. */
function opsPerSec(iterations: number, fn: (n: number) => number): number {
  let best = 0;
  let sink = 0;
  for (let r = 0; r < 5; r++) {
    const t0 = performance.now();
    sink ^= fn(iterations);
    const dt = (performance.now() - t0) / 1000;
    best = Math.max(best, iterations / dt);
  }
  if (sink === 0.5) console.log('');
  return best;
}

// ---------------------------------------------------------------- setup: one 4-level guest
const host = new HostMemory();
const space = new AddressSpace(host, { ept: { levels: 4 } });
space.addRam(0, 64 * MiB, { populate: true });
const pt = new GuestPageTables(space, MODE_4LEVEL, 0x10_0000);
const PAGES = 1024; // fits the 2048-entry TLB
const LIN = 0x7f00_0000_0000;
for (let p = 0; p < 8192; p++) pt.map(LIN + p * 4096, 0x100_0000 + p * 4096);
space.populateEpt();
const mmu = new Mmu(space.ept!, space);
mmu.writeCr4(CR4_PAE);
mmu.writeEfer(EFER_LME | EFER_NXE);
mmu.writeCr3(pt.cr3, 0);
mmu.writeCr0(CR0_PG | CR0_WP);
const linLo = LIN >>> 0;
const linHi = Math.floor(LIN / 2 ** 32);
for (let p = 0; p < PAGES; p++) mmu.translate(linLo + p * 4096, linHi, ACC_SW); // warm, D set

// ---------------------------------------------------------------- the raw peer
const raw = new ArrayBuffer(64 * MiB);
const rawDv = new DataView(raw);
const rawRead = opsPerSec(4_000_000 * scale, (n) => {
  let s = 0;
  for (let i = 0; i < n; i++) s ^= rawDv.getUint32(0x100_0000 + ((i * 4100) & 0x3f_fffc), true);
  return s;
});
const rawWrite = opsPerSec(4_000_000 * scale, (n) => {
  for (let i = 0; i < n; i++) rawDv.setUint32(0x100_0000 + ((i * 4100) & 0x3f_fffc), i, true);
  return n;
});

// ---------------------------------------------------------------- warm TLB
const warmTranslate = opsPerSec(4_000_000 * scale, (n) => {
  let s = 0;
  for (let i = 0; i < n; i++) {
    mmu.translate(linLo + ((i * 4100) & 0x3f_fffc), linHi, ACC_SR);
    s ^= mmu.result.index;
  }
  return s;
});
emit('translate, warm TLB (4-level + EPT)', warmTranslate, 'translations/s', 'raw DataView read', rawRead);

const warmRead = opsPerSec(4_000_000 * scale, (n) => {
  let s = 0;
  for (let i = 0; i < n; i++) s ^= mmu.read32(linLo + ((i * 4100) & 0x3f_fffc), linHi, ACC_SR);
  return s;
});
emit('virtual read32, TLB hit', warmRead, 'ops/s', 'raw DataView read', rawRead);

const warmWrite = opsPerSec(4_000_000 * scale, (n) => {
  for (let i = 0; i < n; i++) mmu.write32(linLo + ((i * 4100) & 0x3f_fffc), linHi, i, ACC_SW);
  return n;
});
emit('virtual write32, TLB hit', warmWrite, 'ops/s', 'raw DataView write', rawWrite);

// ---------------------------------------------------------------- cold TLB: full 2-D walks
const refsBefore = mmu.totalRefs;
const walksBefore = mmu.walks;
const cold = opsPerSec(200_000 * scale, (n) => {
  let s = 0;
  for (let i = 0; i < n; i++) {
    mmu.flushTlb();
    mmu.translate(linLo + (i & 8191) * 4096, linHi, ACC_SR);
    s ^= mmu.result.index;
  }
  return s;
});
const refsPerWalk = (mmu.totalRefs - refsBefore) / (mmu.walks - walksBefore);
emit('translate, cold TLB (full 4+4 2-D walk)', cold, 'translations/s', 'warm TLB translate', warmTranslate);
emit('memory references per cold walk', refsPerWalk, 'refs');

// Misses without flushing: 8192 pages cycling through a 2048-entry TLB.
const miss = opsPerSec(400_000 * scale, (n) => {
  let s = 0;
  for (let i = 0; i < n; i++) {
    mmu.translate(linLo + ((i * 2049) & 8191) * 4096, linHi, ACC_SR);
    s ^= mmu.result.index;
  }
  return s;
});
emit('translate, capacity misses (8192 pages, 2048-entry TLB)', miss, 'translations/s');

// ---------------------------------------------------------------- GuestMemory
const gRead = opsPerSec(4_000_000 * scale, (n) => {
  let s = 0;
  for (let i = 0; i < n; i++) s ^= space.read32(0x100_0000 + ((i * 4100) & 0x3f_fffc));
  return s;
});
emit('GuestMemory read32 (AddressSpace)', gRead, 'ops/s', 'raw DataView read', rawRead);
const gWrite = opsPerSec(4_000_000 * scale, (n) => {
  for (let i = 0; i < n; i++) space.write32(0x100_0000 + ((i * 4100) & 0x3f_fffc), i);
  return n;
});
emit('GuestMemory write32 (AddressSpace)', gWrite, 'ops/s', 'raw DataView write', rawWrite);
const flat = new FlatGuestMemory(64 * MiB);
const fRead = opsPerSec(4_000_000 * scale, (n) => {
  let s = 0;
  for (let i = 0; i < n; i++) s ^= flat.read32(0x100_0000 + ((i * 4100) & 0x3f_fffc));
  return s;
});
emit('GuestMemory read32 (FlatGuestMemory)', fRead, 'ops/s', 'raw DataView read', rawRead);
const buf = new Uint8Array(65536);
const bulk = opsPerSec(20_000 * scale, (n) => {
  for (let i = 0; i < n; i++) space.readInto(0x100_0000 + (i & 63) * 65536, buf);
  return n;
});
emit('GuestMemory readInto 64 KiB', (bulk * 65536) / 2 ** 30, 'GiB/s');

// ---------------------------------------------------------------- allocation on the TLB-hit path
async function allocationCheck(): Promise<void> {
  let gcs = 0;
  const obs = new PerformanceObserver((list) => {
    gcs += list.getEntries().length;
  });
  obs.observe({ entryTypes: ['gc'] });
  const loop = (n: number): number => {
    let s = 0;
    for (let i = 0; i < n; i++) {
      s ^= mmu.read32(linLo + ((i * 4100) & 0x3f_fffc), linHi, ACC_SR);
      mmu.translate(linLo + ((i * 4100) & 0x3f_fffc), linHi, ACC_SW);
    }
    return s;
  };
  loop(2_000_000); // let the optimizing compiler settle first
  await new Promise((r) => setTimeout(r, 50));
  gcs = 0;
  const h0 = process.memoryUsage().heapUsed;
  const s = loop(20_000_000 * scale);
  const h1 = process.memoryUsage().heapUsed;
  await new Promise((r) => setTimeout(r, 50));
  obs.disconnect();
  if (s === 0.5) console.log('');
  emit('GC runs during 40M TLB-hit operations', gcs, 'collections');
  emit('heap growth during 40M TLB-hit operations', (h1 - h0) / 1024, 'KiB');
}
await allocationCheck();
