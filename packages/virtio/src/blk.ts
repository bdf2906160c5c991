import type { BlockBackend } from './block-backend';
import { DescriptorChain } from './chain';
import { DEVICE_ID_BLOCK, F_HI_IN_ORDER, MAX_QUEUE_SIZE } from './constants';
import type { VirtioContext, VirtioDevice } from './device';
import { POP_EMPTY } from './queue';
import type { ChainState, DeviceRestoreContext } from './state';
import { loadChain, saveChain, stateArray, stateFail, stateHeader, stateInt, VIRTIO_STATE_VERSION } from './state';

// virtio-blk feature bits (lo word).
export const BLK_F_SIZE_MAX = 0x2;
export const BLK_F_SEG_MAX = 0x4;
export const BLK_F_RO = 0x20;
export const BLK_F_BLK_SIZE = 0x40;
export const BLK_F_FLUSH = 0x200;
export const BLK_F_DISCARD = 0x2000;
export const BLK_F_WRITE_ZEROES = 0x4000;

// Request types and status values.
export const BLK_T_IN = 0;
export const BLK_T_OUT = 1;
export const BLK_T_FLUSH = 4;
export const BLK_T_GET_ID = 8;
export const BLK_T_DISCARD = 11;
export const BLK_T_WRITE_ZEROES = 13;
export const BLK_S_OK = 0;
export const BLK_S_IOERR = 1;
export const BLK_S_UNSUPP = 2;

/** Length of the GET_ID answer. */
export const BLK_ID_BYTES = 20;
const SECTOR = 512;
/** Largest data segment we announce (size_max). */
const SIZE_MAX = 1 << 20;
/** Largest IN/OUT data we accept in one request (bounds what a guest makes us allocate). */
const MAX_REQUEST_BYTES = 16 << 20;
/** Largest discard / write-zeroes range, in sectors (announced in config). */
const MAX_DISCARD_SECTORS = 0x40_0000;

/*
 * virtio-blk config space (virtio 1.x §5.2.4), 60 bytes:
 *   0 capacity le64 (512-byte sectors)   8 size_max le32   12 seg_max le32
 *  16 geometry {cylinders le16, heads u8, sectors u8}   20 blk_size le32
 *  24 topology {physical_block_exp u8, alignment_offset u8, min_io_size le16, opt_io_size le32}
 *  32 writeback u8   33 unused   34 num_queues le16
 *  36 max_discard_sectors le32   40 max_discard_seg le32   44 discard_sector_alignment le32
 *  48 max_write_zeroes_sectors le32   52 max_write_zeroes_seg le32   56 write_zeroes_may_unmap u8
 */
const CONFIG_SIZE = 60;

/** A back end's synchronous throw, as the rejection it should have been. */
function rejected(e: unknown): Promise<never> {
  return Promise.reject(e instanceof Error ? e : new Error(String(e)));
}

/** virtio-blk's own state: the requests in flight in the back end (re-run on restore). */
export interface VirtioBlkState {
  version: number;
  kind: 'virtio-blk';
  /** Disk size in sectors: a state only restores onto a disk of the same size. */
  capacity: number;
  inFlight: ChainState[];
  /** Completed requests by status [OK, IOERR, UNSUPP]. */
  completed: number[];
}

/** Options of VirtioBlk. */
export interface VirtioBlkOptions {
  /** Serial returned by GET_ID (at most 20 bytes, ASCII). */
  serial?: string;
  /** Queue size offered (power of two, default 256). */
  queueSize?: number;
}

/**
 * virtio-blk over an async BlockBackend. Requests are started as soon as they are popped, so
 * several are in flight at once (up to the queue size); each completion writes the status
 * byte, returns the chain and interrupts the driver as the ring's suppression rules allow.
 * Completions that arrive after a reset are dropped without touching guest memory.
 *
 * A chain without a 16-byte readable header or a writable status byte is a driver error
 * (NEEDS_RESET, as QEMU); everything else ends in a status byte: IOERR for out-of-range
 * sectors, bad lengths, writes to a read-only disk, wrong buffer directions and back end
 * failures; UNSUPP for unknown request types.
 */
export class VirtioBlk implements VirtioDevice {
  readonly deviceId: number = DEVICE_ID_BLOCK;
  readonly queueCount: number = 1;
  readonly maxQueueSize: number;
  readonly featuresLo: number;
  readonly featuresHi: number = 0;
  readonly configSize: number = CONFIG_SIZE;
  /** Completions are reordered into pop order when VIRTIO_F_IN_ORDER is negotiated. */
  readonly supportsInOrder: boolean = true;
  readonly backend: BlockBackend;
  /** Requests started and not yet completed. */
  inFlight = 0;
  /** Requests completed, by status: [OK, IOERR, UNSUPP]. */
  readonly completed: Uint32Array = new Uint32Array(3);
  private ctx: VirtioContext | null = null;
  private readonly config = new Uint8Array(CONFIG_SIZE);
  private readonly id = new Uint8Array(BLK_ID_BYTES);
  private readonly pool: DescriptorChain[] = [];
  /** Requests popped and not yet used, in no order (chain.index is the position). */
  private readonly flight: DescriptorChain[] = [];
  /** VIRTIO_F_IN_ORDER negotiated: completions are used in pop order. */
  private inOrder = false;
  /** Pop sequence numbers: next to give, next to use; completed chains waiting for their turn. */
  private nextSeq = 0;
  private pushSeq = 0;
  private readonly held: (DescriptorChain | null)[];
  private readonly heldLen: Uint32Array;
  /** drain() stopped at the in-flight limit. */
  private stalled = false;
  private readonly hdr = new Uint8Array(16);
  private readonly hdrView = new DataView(this.hdr.buffer);
  private readonly sectors: number;

  constructor(backend: BlockBackend, opts: VirtioBlkOptions = {}) {
    this.backend = backend;
    const qs = opts.queueSize ?? 256;
    if (qs < 2 || qs > MAX_QUEUE_SIZE || (qs & (qs - 1)) !== 0) throw new RangeError(`VirtioBlk: queueSize must be a power of two from 2 to ${MAX_QUEUE_SIZE}`);
    this.maxQueueSize = qs;
    this.held = new Array<DescriptorChain | null>(qs).fill(null);
    this.heldLen = new Uint32Array(qs);
    this.featuresLo = BLK_F_SIZE_MAX | BLK_F_SEG_MAX | BLK_F_BLK_SIZE | BLK_F_FLUSH | BLK_F_DISCARD | BLK_F_WRITE_ZEROES | (backend.readOnly ? BLK_F_RO : 0);
    this.sectors = Math.floor(backend.size / SECTOR);
    const v = new DataView(this.config.buffer);
    v.setUint32(0, this.sectors >>> 0, true);
    v.setUint32(4, Math.floor(this.sectors / 2 ** 32), true);
    v.setUint32(8, SIZE_MAX, true);
    v.setUint32(12, qs - 2, true);
    v.setUint32(20, SECTOR, true);
    v.setUint16(34, 1, true);
    v.setUint32(36, MAX_DISCARD_SECTORS, true);
    v.setUint32(40, 1, true);
    v.setUint32(44, 1, true);
    v.setUint32(48, MAX_DISCARD_SECTORS, true);
    v.setUint32(52, 1, true);
    v.setUint8(56, 1);
    const serial = opts.serial ?? 'ringzero';
    for (let i = 0; i < Math.min(serial.length, BLK_ID_BYTES); i++) this.id[i] = serial.charCodeAt(i) & 0x7f;
  }

  attach(ctx: VirtioContext): void {
    this.ctx = ctx;
  }

  readConfig(offset: number): number {
    return this.config[offset];
  }

  writeConfig(_offset: number, _value: number): void {
    // writeback (CONFIG_WCE) is not offered: config space is read-only.
  }

  checkFeatures(): boolean {
    return true;
  }

  activate(): void {
    this.inOrder = (this.ctx!.featuresHi & F_HI_IN_ORDER) !== 0;
    this.process();
  }

  notify(_index: number): void {
    this.process();
  }

  reset(): void {
    // In-flight requests finish in the back end; their completions see the epoch changed.
    this.inFlight = 0;
    for (const c of this.flight) c.index = -1;
    this.flight.length = 0;
    this.clearOrder();
  }

  private take(): DescriptorChain {
    return this.pool.pop() ?? new DescriptorChain(8);
  }

  private busy = false;
  private again = false;

  /** Runs drain() without re-entering it when a request completes synchronously inside it. */
  private process(): void {
    if (this.busy) {
      this.again = true;
      return;
    }
    this.busy = true;
    try {
      do {
        this.again = false;
        this.drain();
      } while (this.again);
    } finally {
      this.busy = false;
    }
  }

  /** Pops and starts every available request (bounded by the queue size in flight). */
  private drain(): void {
    const ctx = this.ctx;
    if (ctx == null || !ctx.active) return;
    const q = ctx.queue(0);
    if (q == null) return;
    for (;;) {
      if (this.inFlight >= q.size) {
        this.stalled = true; // the guest re-published heads; wait for completions
        return;
      }
      const chain = this.take();
      const r = q.pop(chain);
      if (r === POP_EMPTY) {
        this.pool.push(chain);
        if (q.enableNotification()) continue;
        return;
      }
      if (r < 0) {
        this.pool.push(chain);
        ctx.signalUsed(0); // reports the queue error as NEEDS_RESET
        return;
      }
      chain.epoch = ctx.epoch;
      chain.seq = this.nextSeq++;
      this.inFlight++;
      this.land(chain, true);
      this.start(chain);
      if (!ctx.active) return;
    }
  }

  private start(chain: DescriptorChain): void {
    const ctx = this.ctx!;
    const mem = ctx.mem;
    if (chain.readableBytes < 16 || chain.writableBytes < 1 || !chain.read(mem, 0, this.hdr, 0, 16)) {
      this.inFlight--;
      this.land(chain, false);
      this.pool.push(chain);
      ctx.fail('virtio-blk: request without a 16-byte header or a status byte');
      return;
    }
    const v = this.hdrView;
    const type = v.getUint32(0, true);
    const sectorLo = v.getUint32(8, true);
    const sectorHi = v.getUint32(12, true);
    const dataIn = chain.writableBytes - 1; // device-writable data bytes before the status byte
    const dataOut = chain.readableBytes - 16; // device-readable data bytes after the header
    const b = this.backend;
    switch (type) {
      case BLK_T_IN: {
        const off = dataIn > MAX_REQUEST_BYTES ? -1 : this.range(sectorLo, sectorHi, dataIn);
        if (off < 0 || dataOut !== 0) return this.done(chain, BLK_S_IOERR, 1);
        if (dataIn === 0) return this.done(chain, BLK_S_OK, 1);
        return this.run(chain, this.bRead(off, dataIn), dataIn);
      }
      case BLK_T_OUT: {
        const off = dataOut > MAX_REQUEST_BYTES ? -1 : this.range(sectorLo, sectorHi, dataOut);
        if (off < 0 || dataIn !== 0 || b.readOnly) return this.done(chain, BLK_S_IOERR, 1);
        if (dataOut === 0) return this.done(chain, BLK_S_OK, 1);
        let data = chain.view(mem, false, 16, dataOut); // zero copy when contiguous
        if (data == null) {
          data = new Uint8Array(dataOut);
          if (!chain.read(mem, 16, data, 0, dataOut)) return this.done(chain, BLK_S_IOERR, 1);
        }
        return this.run(chain, this.bWrite(off, data), 0);
      }
      case BLK_T_FLUSH:
        return this.run(chain, this.bFlush(), 0);
      case BLK_T_GET_ID: {
        const n = Math.min(dataIn, BLK_ID_BYTES);
        if (!chain.write(mem, 0, this.id, 0, n)) return this.done(chain, BLK_S_IOERR, 1);
        return this.done(chain, BLK_S_OK, n + 1);
      }
      case BLK_T_DISCARD:
      case BLK_T_WRITE_ZEROES: {
        // One segment {le64 sector, le32 num_sectors, le32 flags (bit 0 unmap)} (max_*_seg = 1).
        if (dataOut !== 16) return this.done(chain, dataOut > 16 && dataOut % 16 === 0 ? BLK_S_UNSUPP : BLK_S_IOERR, 1);
        if (!chain.read(mem, 16, this.hdr, 0, 16)) return this.done(chain, BLK_S_IOERR, 1);
        const num = v.getUint32(8, true);
        const flags = v.getUint32(12, true);
        if ((type === BLK_T_DISCARD && flags !== 0) || (flags & ~1) !== 0) return this.done(chain, BLK_S_UNSUPP, 1);
        const off = this.range(v.getUint32(0, true), v.getUint32(4, true), num * SECTOR);
        if (off < 0 || num > MAX_DISCARD_SECTORS || b.readOnly) return this.done(chain, BLK_S_IOERR, 1);
        const len = num * SECTOR;
        return this.run(chain, this.bZero(type === BLK_T_DISCARD, off, len), 0);
      }
      default:
        return this.done(chain, BLK_S_UNSUPP, 1);
    }
  }

  // Back-end calls: a back end that throws instead of returning a rejected promise (qcow2 does on
  // a closed image) must end the request in IOERR like a rejection, never as a host exception.
  private bRead(off: number, len: number): Promise<Uint8Array> {
    try {
      return this.backend.read(off, len);
    } catch (e) {
      return rejected(e);
    }
  }

  private bWrite(off: number, data: Uint8Array): Promise<void> {
    try {
      return this.backend.write(off, data);
    } catch (e) {
      return rejected(e);
    }
  }

  private bFlush(): Promise<void> {
    try {
      return this.backend.flush();
    } catch (e) {
      return rejected(e);
    }
  }

  private bZero(discard: boolean, off: number, len: number): Promise<void> {
    try {
      return discard ? this.backend.discard(off, len) : this.backend.writeZeroes(off, len);
    } catch (e) {
      return rejected(e);
    }
  }

  /** Byte offset of a request of `bytes` at sector (lo, hi), or -1 when invalid or out of range. */
  private range(lo: number, hi: number, bytes: number): number {
    if (bytes % SECTOR !== 0) return -1;
    if (hi >= 0x20_0000) return -1;
    const sector = hi * 2 ** 32 + lo;
    if (sector + bytes / SECTOR > this.sectors) return -1;
    return sector * SECTOR;
  }

  private run(chain: DescriptorChain, p: Promise<Uint8Array> | Promise<void>, readLen: number): void {
    (p as Promise<Uint8Array | undefined>).then(
      (data) => {
        if (readLen > 0) {
          const ctx = this.ctx!;
          if (chain.epoch !== ctx.epoch || !ctx.active) return this.drop(chain);
          if (!(data instanceof Uint8Array) || data.length !== readLen || !chain.write(ctx.mem, 0, data, 0, readLen)) {
            return this.done(chain, BLK_S_IOERR, 1);
          }
          return this.done(chain, BLK_S_OK, readLen + 1);
        }
        this.done(chain, BLK_S_OK, 1);
      },
      () => this.done(chain, BLK_S_IOERR, 1),
    );
  }

  private clearOrder(): void {
    this.held.fill(null);
    this.nextSeq = 0;
    this.pushSeq = 0;
    this.stalled = false;
  }

  /** Adds a started request to the in-flight list (true) or takes it off (false). */
  private land(chain: DescriptorChain, start: boolean): void {
    const f = this.flight;
    if (start) {
      chain.index = f.length;
      f.push(chain);
      return;
    }
    const i = chain.index;
    if (i < 0 || f[i] !== chain) return;
    const last = f.pop()!;
    if (last !== chain) {
      f[i] = last;
      last.index = i;
    }
    chain.index = -1;
  }

  // ---- state ----------------------------------------------------------------------------

  saveState(): VirtioBlkState {
    return {
      version: VIRTIO_STATE_VERSION,
      kind: 'virtio-blk',
      capacity: this.sectors,
      inFlight: this.flight
        .slice()
        .sort((x, y) => x.seq - y.seq)
        .map(saveChain),
      completed: Array.from(this.completed),
    };
  }

  /**
   * Checks a saved virtio-blk state: same disk size, in-flight requests valid chains (in RAM,
   * readable before writable, distinct heads) and, on a split queue, exactly the chains the
   * queue has outstanding. Applying it re-runs those requests against the back end (as QEMU
   * does after migration): reads and writes are idempotent, the driver cannot touch their
   * buffers until they complete.
   */
  prepareRestore(v: unknown, rc: DeviceRestoreContext): () => void {
    const o = stateHeader(v, 'state.device', 'virtio-blk');
    if (o.capacity !== this.sectors) stateFail('state.device.capacity', `is ${String(o.capacity)} sectors, this disk has ${this.sectors}`);
    const size = rc.queueSize(0);
    const list = stateArray(o.inFlight, 'state.device.inFlight', 0, size);
    const packed = rc.outstanding(0) < 0;
    const chains: DescriptorChain[] = [];
    const heads = new Set<number>();
    for (let i = 0; i < list.length; i++) {
      const c = new DescriptorChain(4);
      loadChain(list[i], `state.device.inFlight[${i}]`, rc.mem, size, packed ? 0xffff : size - 1, c);
      if (heads.has(c.head)) stateFail(`state.device.inFlight[${i}].head`, `${c.head} is in flight twice`);
      heads.add(c.head);
      chains.push(c);
    }
    if (rc.active && !packed && size > 0 && rc.outstanding(0) !== chains.length) {
      stateFail('state.device.inFlight', `lists ${chains.length} requests but the queue has ${rc.outstanding(0)} outstanding`);
    }
    const done = stateArray(o.completed, 'state.device.completed', 3, 3).map((n, i) => stateInt(n, `state.device.completed[${i}]`, 0, 0xffff_ffff));
    return () => {
      for (const c of this.flight) c.index = -1;
      this.flight.length = 0;
      this.inFlight = 0;
      this.clearOrder();
      this.completed.set(done);
      const ctx = this.ctx!;
      this.inOrder = (ctx.featuresHi & F_HI_IN_ORDER) !== 0;
      if (!ctx.active) return; // a failed or stopped device would drop their completions anyway
      for (const c of chains) {
        c.epoch = ctx.epoch;
        c.seq = this.nextSeq++;
        this.inFlight++;
        this.land(c, true);
        this.start(c);
      }
    };
  }

  private drop(chain: DescriptorChain): void {
    this.pool.push(chain);
  }

  /** Writes the status byte, returns the chain, interrupts. */
  private done(chain: DescriptorChain, status: number, written: number): void {
    const ctx = this.ctx!;
    if (chain.epoch !== ctx.epoch || !ctx.active) return this.drop(chain);
    this.completed[status]++;
    const q = ctx.queue(0)!;
    const at = chain.locate(true, chain.writableBytes - 1, 1);
    if (at < 0 || !ctx.mem.write8(at, status)) {
      this.inFlight--;
      this.land(chain, false);
      this.pool.push(chain);
      ctx.fail('virtio-blk: status byte not writable');
      return;
    }
    if (this.inOrder) {
      // VIRTIO_F_IN_ORDER: a completion waits until every request popped before it is used.
      const n = this.held.length;
      this.held[chain.seq % n] = chain;
      this.heldLen[chain.seq % n] = written;
      let pushed = false;
      for (;;) {
        const i = this.pushSeq % n;
        const c = this.held[i];
        if (c == null || c.seq !== this.pushSeq) break;
        this.held[i] = null;
        this.pushSeq++;
        this.inFlight--;
        this.land(c, false);
        q.pushUsed(c, this.heldLen[i]);
        this.pool.push(c);
        pushed = true;
      }
      if (!pushed) return;
    } else {
      this.inFlight--;
      this.land(chain, false);
      q.pushUsed(chain, written);
      this.pool.push(chain);
    }
    ctx.signalUsed(0);
    if (this.stalled) {
      this.stalled = false; // we stopped popping at the limit: look again
      this.process();
    }
  }

}
