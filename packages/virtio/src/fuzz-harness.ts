// Fuzz harness shared by fuzz.test.ts and its kept corpus (not part of the public API).
import { FlatGuestMemory } from '@ringzero/mmu-ept';
import { MemoryBlockBackend } from './block-backend';
import { VirtioBlk } from './blk';
import { STATUS_DRIVER_OK, STATUS_NEEDS_RESET } from './constants';
import { VirtioConsole } from './console';
import type { VirtioDevice } from './device';
import { VirtioMmio } from './mmio';
import { VirtioNet } from './net';
import { VirtioPci } from './pci';
import { VirtioRng } from './rng';
import { GuestAllocator } from './testing/alloc';
import { acceptFeatures, MockDriver } from './testing/driver';
import { mmioDriverTransport } from './testing/mmio-transport';
import { pciDriverTransport } from './testing/pci-transport';

/** One step of a fuzz case. */
export type FuzzOp =
  /** Write bytes into guest RAM at ringBase + at (rings and buffers live there). */
  | { k: 'mem'; at: number; bytes: number[] }
  /** Write a 16- or 32-bit value into guest RAM at ringBase + at. */
  | { k: 'mem32'; at: number; value: number }
  /** Transport register write: space 0 mmio window / PCI config, 1..3 = PCI BAR0, BAR1, BAR4. */
  | { k: 'w'; space: number; off: number; size: number; value: number }
  | { k: 'r'; space: number; off: number; size: number }
  | { k: 'kick'; q: number }
  /** A frame from the network (net) or console input. */
  | { k: 'rx'; len: number }
  /** Let async back-end completions run. */
  | { k: 'settle' }
  /** Structure-aware: write descriptor i of queue q (addr picks from interesting addresses). */
  | { k: 'desc'; q: number; i: number; addr: number; len: number; flags: number; next: number }
  /** Structure-aware: publish head index `head` in queue q's available ring (split; packed ignores). */
  | { k: 'avail'; q: number; head: number }
  /** Structure-aware (net): a control command {class, command, data} on the last queue, kicked. */
  | { k: 'ctrl'; cls: number; cmd: number; data: number[] }
  /** A frame from the network whose first bytes (MACs, ethertype, IP header) are given. */
  | { k: 'rxf'; bytes: number[] };

export interface FuzzCase {
  name?: string;
  device: 'blk' | 'net' | 'net-mq' | 'console' | 'console-mp' | 'rng';
  transport: 'mmio' | 'pci';
  packed: boolean;
  /** Offer (and accept) VIRTIO_F_IN_ORDER. */
  inOrder?: boolean;
  ops: FuzzOp[];
}

/** Size of the region the rings and first buffers are allocated in (fuzzed memory writes land here). */
export const FUZZ_SPAN = 0x4000;
const MEM = 1 << 20;

/** Runs one case; throws only if the device misbehaved (a host exception, a broken invariant). */
export async function runFuzzCase(c: FuzzCase): Promise<{ status: number; served: number; lastError: string }> {
  const mem = new FlatGuestMemory(MEM);
  const base = 0x1000;
  const alloc = new GuestAllocator(base, MEM);
  let dev: VirtioDevice;
  const blkBackend = new MemoryBlockBackend(64 * 1024);
  let served = 0;
  let calls = 0;
  switch (c.device) {
    case 'blk':
      dev = new VirtioBlk(blkBackend, { queueSize: 16 });
      break;
    case 'net':
    case 'net-mq':
      // The network refuses every third frame (back-pressure), to exercise resumeTx. 'net' is the
      // single pair without a control queue (the kept corpus was made with it), 'net-mq' has
      // two pairs and the control queue (queues rx0 tx0 rx1 tx1 ctrl).
      dev = new VirtioNet({
        mac: new Uint8Array([2, 0, 0, 0, 0, 1]),
        send: (_b, _o, len) => ++calls % 3 !== 0 && (served += len) > 0,
        queueSize: 16,
        ...(c.device === 'net' ? { ctrlQueue: false } : { queuePairs: 2 }),
      });
      break;
    case 'console':
      dev = new VirtioConsole({ output: (_b, _o, len) => void (served += len), queueSize: 16 });
      break;
    case 'console-mp': {
      // Three ports (queues rx0 tx0 crx ctx rx1 tx1 rx2 tx2), port 1 named and present.
      const con = new VirtioConsole({ output: (_b, _o, len) => void (served += len), queueSize: 16, maxPorts: 3, name: 'c0' });
      con.addPort(1, { name: 'p1', output: (_b, _o, len) => void (served += len) });
      dev = con;
      break;
    }
    default:
      dev = new VirtioRng({ queueSize: 16, random: (o) => o.fill(7) });
  }
  let mmio: VirtioMmio | null = null;
  let pci: VirtioPci | null = null;
  const inOrder = c.inOrder ?? false;
  if (c.transport === 'mmio') mmio = new VirtioMmio(dev, mem, { irq: () => undefined, inOrder });
  else pci = new VirtioPci(dev, mem, { msi: () => undefined, intx: () => undefined, inOrder });
  const t = mmio != null ? mmioDriverTransport(mmio) : pciDriverTransport(pci!, { msix: true });
  const drv = new MockDriver(t, mem, alloc);
  drv.init({ queueSize: 16, features: acceptFeatures({ packed: c.packed }) });
  // A few well-formed buffers so that fuzzed rings can point at something real.
  for (let i = 0; i < drv.queues.length; i++) {
    for (let j = 0; j < 2; j++) {
      const b = drv.buffer(512);
      if (c.device === 'blk') drv.queues[i].add([drv.buffer(16)], [b, drv.buffer(1)]);
      else if (dev instanceof VirtioNet && i === (dev.queueCount & ~1)) drv.queues[i].add([drv.buffer(2, new Uint8Array([0, 0]))], [drv.buffer(1)]);
      else if (dev instanceof VirtioNet && (i & 1) === 1) drv.queues[i].add([b], []);
      else if (dev instanceof VirtioConsole && (i & 1) === 1) drv.queues[i].add([b], []);
      else drv.queues[i].add([], [b]);
    }
  }
  const core = mmio?.core ?? pci!.core;
  const goodBuf = drv.buffer(4096);
  const table = drv.buffer(256);
  // Addresses a hostile descriptor may carry: good, an indirect table, edges of RAM, beyond 2^32, beyond 2^53.
  const addrs = [goodBuf.addr, table.addr, 0, MEM - 8, MEM, MEM + 4096, 0x1_0000_0000, 2 ** 53 - 16, 0xffff_ffff];
  const frame = new Uint8Array(70000);
  for (const op of c.ops) {
    switch (op.k) {
      case 'mem':
        mem.writeFrom(base + (op.at % FUZZ_SPAN), Uint8Array.from(op.bytes.slice(0, 64)));
        break;
      case 'mem32':
        mem.write32(base + (op.at % FUZZ_SPAN), op.value >>> 0);
        break;
      case 'w':
        if (mmio != null) mmio.write(op.off, op.size, op.value);
        else if (op.space === 0) pci!.configWrite(op.off, op.size, op.value);
        else pci!.barWrite([0, 1, 4][op.space - 1] ?? 9, op.off, op.size, op.value);
        break;
      case 'r':
        if (mmio != null) mmio.read(op.off, op.size);
        else if (op.space === 0) pci!.configRead(op.off, op.size);
        else pci!.barRead([0, 1, 4][op.space - 1] ?? 9, op.off, op.size);
        break;
      case 'kick':
        t.notify(op.q);
        break;
      case 'rx':
        if (dev instanceof VirtioNet) dev.deliver(frame, 0, Math.min(op.len, frame.length));
        else if (dev instanceof VirtioConsole) dev.input(frame.subarray(0, Math.min(op.len, 4096)), dev.maxPorts > 1 ? op.len % 3 : 0);
        break;
      case 'desc': {
        const dq = drv.queues[op.q % drv.queues.length];
        const idx = op.i % dq.size;
        const addr = op.addr < addrs.length ? addrs[op.addr] : op.addr;
        const lo = addr >>> 0;
        const hi = Math.floor(addr / 2 ** 32) >>> 0;
        // Descriptors go into the queue's own table, or (i >= size) into the spare indirect table.
        const tbl = op.i >= dq.size ? table.addr + 16 * (op.i % 16) : dq.desc + 16 * idx;
        mem.write64(tbl, lo, hi);
        mem.write32(tbl + 8, op.len >>> 0);
        if (c.packed) {
          mem.write16(tbl + 12, op.next & 0xffff);
          mem.write16(tbl + 14, op.flags & 0xffff);
        } else {
          mem.write16(tbl + 12, op.flags & 0xffff);
          mem.write16(tbl + 14, op.next & 0xffff);
        }
        break;
      }
      case 'avail': {
        const dq = drv.queues[op.q % drv.queues.length];
        if ('publishHead' in dq) (dq as { publishHead(h: number): void }).publishHead(op.head & 0xffff);
        break;
      }
      case 'settle':
        await new Promise((r) => setImmediate(r));
        break;
      case 'ctrl': {
        if (dev instanceof VirtioConsole && dev.queueCount > 2) {
          // A control message {le32 id, le16 event, le16 value} (+ extra bytes) on the control transmitq.
          const id = op.data[0] ?? 0;
          const m = Uint8Array.from([id, 0, 0, 0, op.cls, 0, op.cmd, 0, ...op.data.slice(1, 16)]);
          drv.queues[3].add([drv.buffer(m.length, m)], []);
          t.notify(3);
          break;
        }
        if (!(dev instanceof VirtioNet) || dev.queueCount % 2 === 0) break;
        const cq = drv.queues[dev.queueCount - 1];
        const data = Uint8Array.from([op.cls, op.cmd, ...op.data.slice(0, 64)]);
        cq.add([drv.buffer(data.length, data)], [drv.buffer(1)]);
        t.notify(dev.queueCount - 1);
        break;
      }
      case 'rxf':
        if (dev instanceof VirtioNet) {
          const f = new Uint8Array(Math.max(60, op.bytes.length));
          f.set(op.bytes.slice(0, 128));
          dev.deliver(f, 0, f.length);
        }
        break;
    }
    const s = core.getStatus();
    if ((s & STATUS_NEEDS_RESET) !== 0 && core.active) throw new Error('invariant: active with NEEDS_RESET');
    if (core.active && (s & STATUS_DRIVER_OK) === 0) throw new Error('invariant: active without DRIVER_OK');
    if (dev instanceof VirtioBlk && dev.inFlight > 16) throw new Error(`invariant: ${dev.inFlight} blk requests in flight`);
    if (dev instanceof VirtioNet && (dev.curPairs < 1 || dev.curPairs > dev.maxPairs)) throw new Error(`invariant: ${dev.curPairs} queue pairs`);
  }
  await new Promise((r) => setImmediate(r));
  const status = core.getStatus();
  const lastError = core.lastError;
  // Whatever the guest did, a reset and a clean initialisation must bring the device back.
  const fresh = new MockDriver(t, mem, new GuestAllocator(MEM / 2, MEM));
  if (!fresh.init({ queueSize: 8, features: acceptFeatures({ packed: c.packed }) })) throw new Error('re-init after reset failed');
  if (!recovers(fresh, dev, blkBackend)) throw new Error('device did not recover after reset');
  await new Promise((r) => setImmediate(r));
  if (c.device === 'blk' && fresh.drain(0).length !== 1) throw new Error('blk did not recover after reset');
  return { status, served, lastError };
}

/** Submits one well-formed request after re-initialisation; true when it was served (async blk: checked by the caller). */
function recovers(drv: MockDriver, dev: VirtioDevice, _backend: MemoryBlockBackend): boolean {
  if (dev instanceof VirtioBlk) {
    drv.queues[0].add([drv.buffer(16, new Uint8Array([8, 0, 0, 0]))], [drv.buffer(20), drv.buffer(1)]);
    drv.kick(0);
    return true;
  }
  if (dev instanceof VirtioNet) {
    const before = dev.stats.txFrames;
    drv.queues[1].add([drv.buffer(12), drv.buffer(60)], []);
    drv.kick(1);
    // the fuzz send() refuses every third byte count; resume until taken
    for (let i = 0; i < 3 && dev.stats.txFrames === before; i++) dev.resumeTx();
    return dev.stats.txFrames === before + 1;
  }
  if (dev instanceof VirtioConsole) {
    drv.queues[1].add([drv.buffer(5)], []);
    drv.kick(1);
    return drv.drain(1).length === 1;
  }
  drv.queues[0].add([], [drv.buffer(16)]);
  drv.kick(0);
  return drv.drain(0).length === 1;
}
