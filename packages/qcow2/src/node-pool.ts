// A CompressorPool on worker threads (Node). Each worker compresses with Node's native zlib
// (raw deflate with QEMU's parameters) or zstd (native when zstd-napi's binding loads, else
// the WebAssembly reference library). A batch of clusters travels as one transferred
// ArrayBuffer: the pool copies the batch into one of its own buffers, transfers it, and gets it
// back (for reuse) with the compressed clusters in one more transferred buffer.
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { CompressorPool } from './pool';

// The worker runs this source (CommonJS, Node built-ins plus the zstd module paths it is given),
// so it needs no separate build entry and runs the same from sources and from dist.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const zlib = require('node:zlib');
const DEFLATE = { windowBits: 12, memLevel: 9, level: zlib.constants.Z_DEFAULT_COMPRESSION };
let zstd = null;
async function loadZstd() {
  if (workerData.nativeZstd) {
    try {
      const m = require(workerData.nativeZstd);
      const c = new m.CCtx();
      let dst = Buffer.alloc(0);
      return (s) => {
        if (dst.length < m.compressBound(s.length)) dst = Buffer.allocUnsafe(m.compressBound(s.length));
        return Buffer.from(dst.subarray(0, c.compress(dst, s, 3)));
      };
    } catch {}
  }
  const m = await import(workerData.wasmZstd);
  const lib = m.init ? m : m.default;
  await lib.init();
  const c = lib.createCCtx();
  const none = new Uint8Array(0);
  return (s) => lib.compressUsingDict(c, s, none, 3);
}
// A batch: m.n clusters of m.cs bytes at the start of m.buf. The reply carries the compressed
// clusters back to back in one buffer and their lengths (-1: did not shrink below m.limit).
parentPort.on('message', async (m) => {
  try {
    const lens = new Int32Array(m.n);
    if (m.type === 1) zstd ??= await loadZstd();
    else if (m.type !== 0) throw new Error('unknown compression type ' + m.type);
    let total = 0;
    const outs = [];
    for (let i = 0; i < m.n; i++) {
      const src = Buffer.from(m.buf, i * m.cs, m.cs);
      const out = m.type === 1 ? zstd(src) : zlib.deflateRawSync(src, DEFLATE);
      if (out.length >= m.limit) {
        lens[i] = -1;
      } else {
        lens[i] = out.length;
        outs.push(out);
        total += out.length;
      }
    }
    const ab = new ArrayBuffer(total);
    const u = new Uint8Array(ab);
    let p = 0;
    for (const o of outs) {
      u.set(o, p);
      p += o.length;
    }
    parentPort.postMessage({ id: m.id, buf: m.buf, out: ab, lens, error: null }, [m.buf, ab, lens.buffer]);
  } catch (e) {
    parentPort.postMessage({ id: m.id, buf: m.buf, out: null, lens: null, error: String((e && e.message) || e) }, [m.buf]);
  }
});
`;

interface Reply {
  id: number;
  buf: ArrayBuffer;
  out: ArrayBuffer | null;
  lens: Int32Array | null;
  error: string | null;
}

interface Job {
  id: number;
  type: number;
  clusters: Uint8Array[];
  limit: number;
  resolve: (v: (Uint8Array | null)[]) => void;
  reject: (e: Error) => void;
}

interface Lane {
  worker: Worker;
  jobs: Map<number, Job>;
}

export interface WorkerCompressorPoolOptions {
  /** Worker threads (default: the CPU count, at most 4, as QEMU's compression threads). */
  threads?: number;
  /** Requests sent to one worker ahead of its current one (default 2). */
  perWorker?: number;
  /** Requests waiting for a worker before `compress` itself waits (default 4 per worker). */
  maxQueued?: number;
}

function modulePaths(): { nativeZstd: string | null; wasmZstd: string | null } {
  const req = createRequire(import.meta.url);
  const find = (name: string): string | null => {
    try {
      return req.resolve(name);
    } catch {
      return null;
    }
  };
  const wasm = find('@bokuweb/zstd-wasm');
  return { nativeZstd: find('zstd-napi/binding'), wasmZstd: wasm == null ? null : pathToFileURL(wasm).href };
}

/**
 * A CompressorPool on worker threads. Workers are started on first use and kept referenced
 * only while they have work, so an idle pool never keeps the process alive; `close()` ends
 * them. A worker that dies fails every request it held and every later one, with one line
 * (`compression worker failed: ...`).
 */
export class WorkerCompressorPool implements CompressorPool {
  readonly parallelism: number;
  private readonly perWorker: number;
  private readonly maxQueued: number;
  private readonly lanes: Lane[] = [];
  private readonly queue: Job[] = [];
  private readonly spare: ArrayBuffer[] = [];
  private readonly waiters: (() => void)[] = [];
  private readonly idle: (() => void)[] = [];
  private nextId = 1;
  private outstanding = 0;
  private failure: Error | null = null;
  private closed = false;

  constructor(options: WorkerCompressorPoolOptions = {}) {
    this.parallelism = Math.max(1, Math.min(64, options.threads ?? Math.min(4, availableParallelism())));
    this.perWorker = Math.max(1, options.perWorker ?? 2);
    this.maxQueued = Math.max(1, options.maxQueued ?? 4 * this.parallelism);
  }

  async compress(compressionType: number, clusters: Uint8Array[], limit: number): Promise<(Uint8Array | null)[]> {
    while (!this.failure && !this.closed && this.queue.length >= this.maxQueued) {
      await new Promise<void>((r) => this.waiters.push(r));
    }
    if (this.failure) throw this.failure;
    if (this.closed) throw new Error('compressor pool is closed');
    if (clusters.length === 0) return [];
    const cs = clusters[0].length;
    for (const c of clusters) if (c.length !== cs) throw new Error('compressor pool: clusters of one batch must have one size');
    return new Promise<(Uint8Array | null)[]>((resolve, reject) => {
      this.outstanding++;
      this.queue.push({ id: this.nextId++, type: compressionType, clusters, limit, resolve, reject });
      this.pump();
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    this.wakeWaiters();
    if (this.outstanding > 0) await new Promise<void>((r) => this.idle.push(r));
    const lanes = this.lanes.splice(0);
    await Promise.all(lanes.map((l) => l.worker.terminate()));
  }

  /** Start every worker now (they boot in parallel with the caller's other work). */
  warm(): void {
    while (!this.closed && !this.failure && this.lanes.length < this.parallelism) this.startLane();
  }

  /** True once a worker has failed (the pool refuses further work). */
  get failed(): boolean {
    return this.failure != null;
  }

  private startLane(): Lane {
    const paths = modulePaths();
    const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: paths, execArgv: [] });
    const lane: Lane = { worker, jobs: new Map() };
    worker.on('message', (m: Reply) => this.onReply(lane, m));
    worker.on('error', (e: Error) => this.fail(new Error(`compression worker failed: ${e.message}`)));
    worker.on('exit', (code) => {
      if (!this.closed || lane.jobs.size > 0) this.fail(new Error(`compression worker failed: exited with code ${code}`));
    });
    worker.unref();
    this.lanes.push(lane);
    return lane;
  }

  private pump(): void {
    while (this.queue.length > 0 && !this.failure) {
      let lane: Lane | null = null;
      for (const l of this.lanes) if (l.jobs.size < this.perWorker && (lane == null || l.jobs.size < lane.jobs.size)) lane = l;
      // A new worker only when every running one is busy.
      if ((lane == null || lane.jobs.size > 0) && this.lanes.length < this.parallelism) lane = this.startLane();
      if (lane == null) break;
      const job = this.queue.shift()!;
      const cs = job.clusters[0].length;
      const len = cs * job.clusters.length;
      let buf = this.spare.pop();
      if (buf === undefined || buf.byteLength < len) buf = new ArrayBuffer(len);
      const u = new Uint8Array(buf);
      for (let i = 0; i < job.clusters.length; i++) u.set(job.clusters[i], i * cs);
      if (lane.jobs.size === 0) lane.worker.ref();
      lane.jobs.set(job.id, job);
      lane.worker.postMessage({ id: job.id, type: job.type, buf, n: job.clusters.length, cs, limit: job.limit }, [buf]);
    }
    this.wakeWaiters();
  }

  private wakeWaiters(): void {
    while (this.waiters.length > 0 && (this.queue.length < this.maxQueued || this.failure || this.closed)) this.waiters.shift()!();
  }

  private onReply(lane: Lane, m: Reply): void {
    const job = lane.jobs.get(m.id);
    if (!job) return;
    lane.jobs.delete(m.id);
    if (lane.jobs.size === 0) lane.worker.unref();
    if (this.spare.length < 4 * this.parallelism * this.perWorker) this.spare.push(m.buf);
    if (m.error != null || m.out == null || m.lens == null) job.reject(new Error(`compression failed: ${m.error}`));
    else {
      const res: (Uint8Array | null)[] = [];
      let p = 0;
      for (let i = 0; i < m.lens.length; i++) {
        const n = m.lens[i];
        if (n < 0) res.push(null);
        else {
          res.push(new Uint8Array(m.out, p, n));
          p += n;
        }
      }
      job.resolve(res);
    }
    this.settled();
    this.pump();
  }

  private settled(): void {
    this.outstanding--;
    if (this.outstanding === 0) for (const r of this.idle.splice(0)) r();
  }

  private fail(e: Error): void {
    if (this.failure) return;
    this.failure = e;
    for (const l of this.lanes) {
      for (const j of l.jobs.values()) {
        j.reject(e);
        this.settled();
      }
      l.jobs.clear();
      l.worker.unref();
    }
    for (const j of this.queue.splice(0)) {
      j.reject(e);
      this.settled();
    }
    this.wakeWaiters();
  }
}

let shared: WorkerCompressorPool | null = null;

/**
 * The process-wide pool `convertImage` uses by default: made on first use, its workers kept
 * for later conversions but never keeping the process alive while idle. A pool whose worker
 * failed is replaced on the next call.
 */
export function sharedCompressorPool(): WorkerCompressorPool {
  if (shared == null || shared.failed) shared = new WorkerCompressorPool();
  return shared;
}

/** Ends the shared pool's workers (the CLI calls it before exiting). */
export async function closeSharedCompressorPool(): Promise<void> {
  const p = shared;
  shared = null;
  await p?.close();
}
