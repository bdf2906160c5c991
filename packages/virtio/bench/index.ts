// Benchmarks print one JSON object per line: {"name","value","unit","peer"?,"peerValue"?,"ratio"?}.
// virtio-blk requests/s and MB/s through the mock driver on the in-memory back end and on qcow2
// back ends (an in-memory qcow2 image and a qcow2 file in a temp dir, via @ringzero/qcow2),
// virtio-net frames/s in each direction. The "peer" for memory-back-end throughput is the copy
// floor measured in the same run (a plain Uint8Array.set of the same bytes, the one payload copy
// a request needs); for qcow2 it is the same qcow2 device driven directly by its library API at
// the same queue depth, so the ratio is what virtio-blk costs on top of the image.
// BENCH_SECONDS (default 1) sets the time per figure.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FlatGuestMemory } from '@ringzero/mmu-ept';
import { createQcow2, MemoryByteStore, Qcow2Image } from '@ringzero/qcow2';
import { createQcow2File, openImage } from '@ringzero/qcow2/node';
import type { BlockBackend } from '../src/index';
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

const DISK = 32 << 20;

/** A fully written back end of DISK bytes (touched: no zero-page or unallocated-cluster shortcut). */
async function backend(kind: 'memory' | 'qcow2-mem' | 'qcow2-file', dir: string): Promise<BlockBackend> {
  const fill = new Uint8Array(1 << 20).fill(3);
  if (kind === 'memory') return new MemoryBlockBackend(new Uint8Array(DISK).fill(3));
  let dev: BlockBackend;
  if (kind === 'qcow2-mem') {
    const store = new MemoryByteStore();
    await createQcow2(store, { size: DISK });
    dev = await Qcow2Image.open(store);
  } else {
    const path = join(dir, `bench-${Math.random().toString(36).slice(2)}.qcow2`);
    await createQcow2File(path, { size: DISK });
    dev = await openImage(path);
  }
  for (let o = 0; o < DISK; o += fill.length) await dev.write(o, fill);
  await dev.flush();
  return dev;
}

/** Sector of the next request: a stride through the disk, block aligned. */
function nextSector(s: number, size: number): number {
  const step = size / 512;
  return (s + step * 17) % (DISK / 512 - step);
}

async function blk(be: BlockBackend, type: number, size: number, depth: number): Promise<{ reqs: number; mbs: number }> {
  const mem = new FlatGuestMemory(64 << 20);
  const alloc = new GuestAllocator(0x1000, mem.limit);
  mem.bytes.fill(0, 0, mem.limit); // fault guest RAM in before timing
  const dev = new VirtioBlk(be, { queueSize: 256 });
  const mmio = new VirtioMmio(dev, mem, { irq: () => undefined });
  const drv = new MockDriver(mmioDriverTransport(mmio), mem, alloc);
  drv.init({ queueSize: 256 });
  const payload = new Uint8Array(size).fill(0x5a);
  const slots: BlkRequest[] = [];
  for (let i = 0; i < depth; i++) {
    slots.push(type === BLK_T_OUT ? submitBlk(drv, type, 0, { out: payload }) : submitBlk(drv, type, 0, { inLen: size }));
  }
  drv.kick(0);
  let got = 0;
  while (got < depth) {
    await tick();
    got += drv.drain(0).length;
  }
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
      s = nextSector(s, size);
      submitBlk(drv, type, s, { reuse: r, ...(type === BLK_T_OUT ? { outLen: size } : { inLen: size }) });
    }
    drv.kick(0);
    // Reap the whole batch (slots are reused), however long the back end takes.
    let done = 0;
    while (done < depth) {
      await tick();
      done += drv.drain(0).length;
    }
    n += done;
  }
  const sec = (now() - t0) / 1000;
  if (type === BLK_T_OUT && (await be.read(0, 512))[0] !== 0x5a) throw new Error('bench: nothing written');
  return { reqs: n / sec, mbs: (n * size) / 1e6 / sec };
}

/** The same back end driven directly by its API, `depth` requests in flight: the qcow2 peer figure. */
async function direct(be: BlockBackend, type: number, size: number, depth: number): Promise<number> {
  const payload = new Uint8Array(size).fill(0x5b);
  let n = 0;
  let s = 0;
  let t0 = now();
  let warm = true;
  const batch: Promise<unknown>[] = new Array<Promise<unknown>>(depth);
  while (now() - t0 < SECONDS * 1000 || warm) {
    if (warm && now() - t0 > 200) {
      warm = false;
      n = 0;
      t0 = now();
    }
    for (let i = 0; i < depth; i++) {
      s = nextSector(s, size);
      batch[i] = type === BLK_T_OUT ? be.write(s * 512, payload) : be.read(s * 512, size);
    }
    await Promise.all(batch);
    n += depth;
  }
  return (n * size) / 1e6 / ((now() - t0) / 1000);
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
const dir = mkdtempSync(join(tmpdir(), 'virtio-bench-'));
try {
  for (const kind of ['memory', 'qcow2-mem', 'qcow2-file'] as const) {
    const be = await backend(kind, dir);
    const label = kind === 'memory' ? 'memory back end' : kind === 'qcow2-mem' ? 'qcow2 image in memory' : 'qcow2 file';
    for (const [op, type] of [['read', BLK_T_IN], ['write', BLK_T_OUT]] as const) {
      for (const size of [4096, 65536]) {
        const r = await blk(be, type, size, 32);
        const kib = size / 1024;
        print(`virtio-blk ${op} ${kib} KiB qd32 (${label})`, r.reqs, 'req/s');
        if (kind === 'memory') print(`virtio-blk ${op} ${kib} KiB qd32 (${label}) throughput`, r.mbs, 'MB/s', `Uint8Array.set ${kib} KiB`, size === 4096 ? copy4k : copy64k);
        else print(`virtio-blk ${op} ${kib} KiB qd32 (${label}) throughput`, r.mbs, 'MB/s', `qcow2 API direct, qd32`, await direct(be, type, size, 32));
      }
    }
    await be.close();
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
for (const len of [64, 1514]) {
  print(`virtio-net tx ${len}-byte frames (guest to port)`, net(len, 'tx'), 'frames/s');
  print(`virtio-net rx ${len}-byte frames (port to guest)`, net(len, 'rx'), 'frames/s');
}
