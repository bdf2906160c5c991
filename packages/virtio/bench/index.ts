// Benchmarks print one JSON object per line: {"name","value","unit","peer"?,"peerValue"?,"ratio"?}.
// virtio-blk requests/s and MB/s through the mock driver on the in-memory back end, virtio-net
// frames/s in each direction. The "peer" for throughput figures is the copy floor measured in
// the same run: a plain Uint8Array.set of the same bytes (the one payload copy a request needs).
// BENCH_SECONDS (default 1) sets the time per figure.
import { FlatGuestMemory } from '@ringzero/mmu-ept';
import { BLK_T_IN, BLK_T_OUT, MemoryBlockBackend, VirtioBlk, VirtioMmio, VirtioNet } from '../src/index';
import { GuestAllocator, MockDriver, mmioDriverTransport, submitBlk } from '../src/testing';
import type { BlkRequest } from '../src/testing';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 1);
const now = (): number => performance.now();
const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

function print(name: string, value: number, unit: string, peer?: string, peerValue?: number): void {
  const o: Record<string, unknown> = { name, value: Number(value.toPrecision(4)), unit };
  if (peer !== undefined && peerValue !== undefined) {
    o.peer = peer;
    o.peerValue = Number(peerValue.toPrecision(4));
    o.ratio = Number((value / peerValue).toPrecision(3));
  }
  console.log(JSON.stringify(o));
}

/** MB/s of Uint8Array.set for `size`-byte blocks (the copy floor). */
function memcpyRate(size: number): number {
  const src = new Uint8Array(32 << 20).fill(3); // touched: no zero-page shortcut
  const dst = new Uint8Array(size);
  let bytes = 0;
  const t0 = now();
  while (now() - t0 < SECONDS * 500) {
    for (let i = 0; i < 256; i++) {
      const o = ((i * 7919 * size) % (src.length - size)) & ~511;
      dst.set(src.subarray(o, o + size));
      bytes += size;
    }
  }
  return bytes / 1e6 / ((now() - t0) / 1000);
}

async function blk(type: number, size: number, depth: number): Promise<{ reqs: number; mbs: number }> {
  const mem = new FlatGuestMemory(64 << 20);
  const alloc = new GuestAllocator(0x1000, mem.limit);
  const backend = new MemoryBlockBackend(new Uint8Array(32 << 20).fill(3)); // touched: no zero-page shortcut
  mem.bytes.fill(0, 0, mem.limit); // fault guest RAM in before timing
  const dev = new VirtioBlk(backend, { queueSize: 256 });
  const mmio = new VirtioMmio(dev, mem, { irq: () => undefined });
  const drv = new MockDriver(mmioDriverTransport(mmio), mem, alloc);
  drv.init({ queueSize: 256 });
  const payload = new Uint8Array(size).fill(0x5a);
  const slots: BlkRequest[] = [];
  for (let i = 0; i < depth; i++) {
    slots.push(type === BLK_T_OUT ? submitBlk(drv, type, 0, { out: payload }) : submitBlk(drv, type, 0, { inLen: size }));
  }
  drv.kick(0);
  await tick();
  drv.drain(0);
  const sectors = backend.size / 512;
  const step = size / 512;
  let n = 0;
  let s = 0;
  let t0 = now();
  let warm = true;
  while (now() - t0 < SECONDS * 1000 || warm) {
    if (warm && now() - t0 > 200) {
      warm = false; // 200 ms untimed warm-up (JIT)
      n = 0;
      t0 = now();
    }
    for (const r of slots) {
      s = (s + step * 17) % (sectors - step);
      submitBlk(drv, type, s, { reuse: r, ...(type === BLK_T_OUT ? { outLen: size } : { inLen: size }) });
    }
    drv.kick(0);
    await tick();
    n += drv.drain(0).length;
  }
  const sec = (now() - t0) / 1000;
  if (type === BLK_T_OUT && backend.data.indexOf(0x5a) < 0) throw new Error('bench: nothing written');
  return { reqs: n / sec, mbs: (n * size) / 1e6 / sec };
}

function net(frameLen: number, dir: 'tx' | 'rx'): number {
  const mem = new FlatGuestMemory(16 << 20);
  const alloc = new GuestAllocator(0x1000, mem.limit);
  let sent = 0;
  const dev = new VirtioNet({ mac: new Uint8Array(6), send: () => (sent++, true), queueSize: 256 });
  const mmio = new VirtioMmio(dev, mem, { irq: () => undefined });
  const drv = new MockDriver(mmioDriverTransport(mmio), mem, alloc);
  drv.init({ queueSize: 256 });
  const frame = new Uint8Array(frameLen).fill(1);
  const hdr = drv.buffer(12);
  const body = drv.buffer(frameLen, frame);
  const rxBufs = Array.from({ length: 128 }, () => drv.buffer(2048));
  let n = 0;
  const t0 = now();
  while (now() - t0 < SECONDS * 1000) {
    if (dir === 'tx') {
      for (let i = 0; i < 128; i++) drv.queues[1].add([hdr, body], []);
      drv.kick(1);
      n += drv.drain(1).length;
    } else {
      for (const b of rxBufs) drv.queues[0].add([], [b]);
      drv.kick(0);
      for (let i = 0; i < 128; i++) if (dev.deliver(frame, 0, frameLen)) n++;
      drv.drain(0);
    }
  }
  if (dir === 'tx' && sent !== n) throw new Error('bench: frames lost');
  return n / ((now() - t0) / 1000);
}

const copy4k = memcpyRate(4096);
const copy64k = memcpyRate(65536);
for (const [label, type] of [['read', BLK_T_IN], ['write', BLK_T_OUT]] as const) {
  const small = await blk(type, 4096, 32);
  print(`virtio-blk ${label} 4 KiB qd32 (memory back end)`, small.reqs, 'req/s');
  print(`virtio-blk ${label} 4 KiB qd32 (memory back end) throughput`, small.mbs, 'MB/s', 'Uint8Array.set 4 KiB', copy4k);
  const big = await blk(type, 65536, 32);
  print(`virtio-blk ${label} 64 KiB qd32 (memory back end)`, big.mbs, 'MB/s', 'Uint8Array.set 64 KiB', copy64k);
}
for (const len of [64, 1514]) {
  print(`virtio-net tx ${len}-byte frames (guest to port)`, net(len, 'tx'), 'frames/s');
  print(`virtio-net rx ${len}-byte frames (port to guest)`, net(len, 'rx'), 'frames/s');
}
