import type { GuestMemory } from '@ringzero/mmu-ept';
import {
  F_EVENT_IDX,
  F_HI_IN_ORDER,
  F_HI_SR_IOV,
  F_HI_RING_PACKED,
  F_HI_VERSION_1,
  F_INDIRECT_DESC,
  ISR_CONFIG,
  ISR_QUEUE,
  NO_VECTOR,
  STATUS_ACKNOWLEDGE,
  STATUS_DRIVER,
  STATUS_DRIVER_OK,
  STATUS_FAILED,
  STATUS_FEATURES_OK,
  STATUS_NEEDS_RESET,
} from './constants';
import type { VirtioContext, VirtioDevice } from './device';
import type { PackedQueueState } from './packed-queue';
import { checkPackedLayout, PackedQueue, parsePackedState } from './packed-queue';
import type { Virtqueue } from './queue';
import { queueErrorName } from './queue';
import type { SplitQueueState } from './split-queue';
import { checkSplitLayout, parseSplitState, SplitQueue } from './split-queue';
import type { DeviceRestoreContext } from './state';
import { stateArray, stateBool, stateFail, stateInt, stateObject, stateWords } from './state';

/** Where the core sends interrupts: ISR bits (ISR_QUEUE / ISR_CONFIG) and the MSI-X vector the driver chose. */
export interface InterruptSink {
  raise(isrBits: number, vector: number): void;
}

const TWO32 = 0x1_0000_0000;
const MAX_ADDR_HI = 0x20_0000;
const STATUS_BITS = STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_DRIVER_OK | STATUS_FEATURES_OK | STATUS_NEEDS_RESET | STATUS_FAILED;

/** One queue's transport registers and, when live, its ring position. */
export interface VirtioQueueState {
  size: number;
  ready: boolean;
  vector: number;
  /** desc lo, desc hi, driver lo, driver hi, device lo, device hi (as the driver wrote them). */
  addr: number[];
  ring: SplitQueueState | PackedQueueState | null;
}

/** The transport-independent state of a virtio device (status, features, queues). */
export interface VirtioCoreState {
  deviceId: number;
  /** The feature words this device offered: a state only restores into a device offering the same. */
  offeredLo: number;
  offeredHi: number;
  status: number;
  featuresLo: number;
  featuresHi: number;
  deviceFeatureSel: number;
  driverFeatureSel: number;
  queueSel: number;
  configGeneration: number;
  configVector: number;
  legacy: boolean;
  queues: VirtioQueueState[];
}

/**
 * The transport-independent half of a virtio transport (virtio 1.x §2-§3): device status
 * state machine, feature negotiation in 32-bit windows, per-queue registers, the config
 * generation counter and reset. virtio-mmio and virtio-pci map their registers onto it.
 *
 * Status rules (as Firecracker's transition table): writing 0 resets; otherwise the driver
 * may only add bits, in the order ACKNOWLEDGE → DRIVER → FEATURES_OK → DRIVER_OK (FAILED at
 * any time); an out-of-order write is ignored. FEATURES_OK is kept only when the driver's
 * features are a subset of the offer, include VERSION_1 (modern) and pass the device's own
 * check, so the driver's re-read sees it cleared otherwise.
 */
export class VirtioCore implements VirtioContext {
  readonly device: VirtioDevice;
  readonly mem: GuestMemory;
  status = 0;
  active = false;
  epoch = 0;
  featuresLo = 0;
  featuresHi = 0;
  readonly offeredLo: number;
  readonly offeredHi: number;
  deviceFeatureSel = 0;
  driverFeatureSel = 0;
  queueSel = 0;
  configGeneration = 0;
  configVector: number = NO_VECTOR;
  /** Set while a legacy (pre-1.0) driver drives the device through the legacy PCI interface. */
  legacy = false;
  /** Last driver error, for diagnostics ('' when none). */
  lastError = '';
  /** Notifications ignored because the queue was not live (not an error: counted for tests). */
  ignoredNotifies: number = 0;
  readonly queueCount: number;
  readonly qSize: Uint16Array;
  readonly qReady: Uint8Array;
  readonly qVector: Uint16Array;
  /** Per queue: desc lo, desc hi, driver lo, driver hi, device lo, device hi. */
  readonly qAddr: Uint32Array;
  private readonly queues: (Virtqueue | null)[];
  private readonly sink: InterruptSink;

  constructor(device: VirtioDevice, mem: GuestMemory, sink: InterruptSink, opts: { packed?: boolean; inOrder?: boolean; sriov?: boolean } = {}) {
    this.device = device;
    this.mem = mem;
    this.sink = sink;
    const n = device.queueCount;
    this.queueCount = n;
    this.qSize = new Uint16Array(n);
    this.qReady = new Uint8Array(n);
    this.qVector = new Uint16Array(n);
    this.qAddr = new Uint32Array(6 * n);
    this.queues = new Array<Virtqueue | null>(n).fill(null);
    this.offeredLo = (device.featuresLo | F_INDIRECT_DESC | F_EVENT_IDX) >>> 0;
    const inOrder = opts.inOrder === true && device.supportsInOrder === true ? F_HI_IN_ORDER : 0;
    this.offeredHi = (device.featuresHi | F_HI_VERSION_1 | (opts.packed === false ? 0 : F_HI_RING_PACKED) | inOrder | (opts.sriov === true ? F_HI_SR_IOV : 0)) >>> 0;
    this.resetQueues();
    device.attach(this);
  }

  private resetQueues(): void {
    this.qSize.fill(this.device.maxQueueSize);
    this.qReady.fill(0);
    this.qVector.fill(NO_VECTOR);
    this.qAddr.fill(0);
    this.queues.fill(null);
  }

  /** Device reset (status write 0, or the transport's reset). */
  reset(): void {
    this.device.reset();
    this.status = 0;
    this.active = false;
    this.epoch++;
    this.featuresLo = 0;
    this.featuresHi = 0;
    this.deviceFeatureSel = 0;
    this.driverFeatureSel = 0;
    this.queueSel = 0;
    this.configVector = NO_VECTOR;
    this.legacy = false;
    this.resetQueues();
  }

  // ---- features -------------------------------------------------------------------------

  /** The 32-bit window `sel` of the offered features (0 above bit 63). */
  deviceFeatures(sel: number): number {
    if (sel === 0) return this.offeredLo;
    if (sel === 1) return this.offeredHi;
    return 0;
  }

  /** The driver writes window `sel` of its features; ignored outside the negotiation phase. */
  setDriverFeatures(sel: number, value: number): void {
    if ((this.status & STATUS_FEATURES_OK) !== 0 || (this.status & STATUS_DRIVER_OK) !== 0) {
      this.lastError = 'driver features written after FEATURES_OK';
      return;
    }
    if (sel === 0) this.featuresLo = value >>> 0;
    else if (sel === 1) this.featuresHi = value >>> 0;
    else if (value !== 0) this.lastError = `driver features window ${sel} is not offered`;
  }

  /** The driver features window `sel`. */
  driverFeatures(sel: number): number {
    return sel === 0 ? this.featuresLo : sel === 1 ? this.featuresHi : 0;
  }

  private featuresAcceptable(): boolean {
    if ((this.featuresLo & ~this.offeredLo) !== 0 || (this.featuresHi & ~this.offeredHi) !== 0) {
      this.lastError = 'driver accepted features the device did not offer';
      return false;
    }
    if (!this.legacy && (this.featuresHi & F_HI_VERSION_1) === 0) {
      this.lastError = 'modern driver did not accept VIRTIO_F_VERSION_1';
      return false;
    }
    if (!this.device.checkFeatures(this.featuresLo, this.featuresHi)) {
      this.lastError = 'device refused the feature combination';
      return false;
    }
    return true;
  }

  get packed(): boolean {
    return (this.featuresHi & F_HI_RING_PACKED) !== 0;
  }

  // ---- status ---------------------------------------------------------------------------

  /** The status byte as the driver reads it. */
  getStatus(): number {
    return this.status;
  }

  setStatus(value: number): void {
    value &= 0xff;
    if (value === 0) {
      this.reset();
      return;
    }
    const old = this.status;
    const v = value & (STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK | STATUS_DRIVER_OK | STATUS_FAILED);
    if ((v & STATUS_FAILED) !== 0) {
      this.status = old | STATUS_FAILED;
      this.active = false;
      return;
    }
    const low = STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK | STATUS_DRIVER_OK;
    if ((old & low & ~v) !== 0) {
      this.lastError = `status write 0x${value.toString(16)} clears bits without a reset`;
      return;
    }
    const added = v & ~old;
    const next = old | v;
    if ((added & STATUS_DRIVER) !== 0 && (next & STATUS_ACKNOWLEDGE) === 0) return this.badOrder(value);
    if ((added & STATUS_FEATURES_OK) !== 0 && (next & STATUS_DRIVER) === 0) return this.badOrder(value);
    if ((added & STATUS_DRIVER_OK) !== 0) {
      if ((next & STATUS_DRIVER) === 0) return this.badOrder(value);
      if (!this.legacy && (next & STATUS_FEATURES_OK) === 0) return this.badOrder(value);
    }
    let s = next;
    if ((added & STATUS_FEATURES_OK) !== 0 && !this.featuresAcceptable()) s &= ~STATUS_FEATURES_OK;
    this.status = s;
    if ((added & STATUS_DRIVER_OK) !== 0 && (this.status & STATUS_DRIVER_OK) !== 0 && (this.status & STATUS_NEEDS_RESET) === 0) {
      if (this.legacy && (this.status & STATUS_FEATURES_OK) === 0 && !this.featuresAcceptable()) {
        this.fail(this.lastError);
        return;
      }
      this.active = true;
      this.device.activate();
    }
  }

  private badOrder(value: number): void {
    this.lastError = `status write 0x${value.toString(16)} out of order (from 0x${this.status.toString(16)})`;
  }

  // ---- queues ---------------------------------------------------------------------------

  /** The selected queue, or -1 when queueSel is out of range. */
  private sel(): number {
    return this.queueSel < this.queueCount ? this.queueSel : -1;
  }

  queueMaxSize(): number {
    return this.sel() < 0 ? 0 : this.device.maxQueueSize;
  }

  queueSize(): number {
    const q = this.sel();
    return q < 0 ? 0 : this.qSize[q];
  }

  /** Queue registers are writable only while the queue is disabled and before DRIVER_OK. */
  private queueWritable(q: number): boolean {
    if (q < 0) return false;
    if (this.qReady[q] !== 0 || (this.status & STATUS_DRIVER_OK) !== 0) {
      this.lastError = `queue ${q} register written while the queue is live`;
      return false;
    }
    return true;
  }

  setQueueSize(v: number): void {
    const q = this.sel();
    if (this.queueWritable(q)) this.qSize[q] = v;
  }

  queueReady(): number {
    const q = this.sel();
    return q < 0 ? 0 : this.qReady[q];
  }

  /** Queue address part: which 0 desc, 1 driver (avail), 2 device (used); half 0 lo, 1 hi. */
  queueAddr(which: number, half: number): number {
    const q = this.sel();
    return q < 0 ? 0 : this.qAddr[6 * q + 2 * which + half];
  }

  setQueueAddr(which: number, half: number, v: number): void {
    const q = this.sel();
    if (this.queueWritable(q)) this.qAddr[6 * q + 2 * which + half] = v >>> 0;
  }

  queueVector(): number {
    const q = this.sel();
    return q < 0 ? NO_VECTOR : this.qVector[q];
  }

  setQueueVector(v: number): void {
    const q = this.sel();
    if (q >= 0) this.qVector[q] = v;
  }

  private addr(q: number, which: number): number {
    const hi = this.qAddr[6 * q + 2 * which + 1];
    return hi >= MAX_ADDR_HI ? -1 : hi * TWO32 + this.qAddr[6 * q + 2 * which];
  }

  /**
   * Enables (1) or disables the selected queue. Enabling validates the layout (size and
   * alignment for the negotiated ring format, every area in RAM); an invalid queue stays
   * disabled and lastError says why. Disabling a live queue is only possible by reset.
   */
  setQueueReady(v: number): void {
    const q = this.sel();
    if (q < 0) return;
    if (v === 0) {
      if (this.qReady[q] !== 0) this.lastError = `queue ${q}: disable without reset is not supported`;
      return;
    }
    if (!this.queueWritable(q)) return;
    if ((this.status & STATUS_FEATURES_OK) === 0 && !this.legacy) {
      this.lastError = `queue ${q} enabled before FEATURES_OK`;
      return;
    }
    this.enableQueue(q, this.addr(q, 0), this.addr(q, 1), this.addr(q, 2));
  }

  /** Makes queue q live at the given addresses (also used by the legacy PFN register). */
  enableQueue(q: number, desc: number, driver: number, device: number): boolean {
    const size = this.qSize[q];
    const max = this.device.maxQueueSize;
    const eventIdx = (this.featuresLo & F_EVENT_IDX) !== 0;
    const indirect = (this.featuresLo & F_INDIRECT_DESC) !== 0;
    let err: number;
    if (desc < 0 || driver < 0 || device < 0) err = -16;
    else if (this.packed) err = checkPackedLayout(this.mem, size, max, desc, driver, device);
    else err = checkSplitLayout(this.mem, size, max, desc, driver, device);
    if (err !== 0) {
      this.lastError = `queue ${q}: ${queueErrorName(err)}`;
      return false;
    }
    this.queues[q] = this.packed
      ? new PackedQueue(this.mem, size, desc, driver, device, eventIdx, indirect)
      : new SplitQueue(this.mem, size, desc, driver, device, eventIdx, indirect);
    this.qReady[q] = 1;
    return true;
  }

  /** Legacy interface: queue q disabled by writing PFN 0. */
  disableQueue(q: number): void {
    this.queues[q] = null;
    this.qReady[q] = 0;
  }

  /** The driver notified queue `index` (a virtio-mmio QueueNotify or a virtio-pci notify write). */
  notify(index: number): void {
    if (!this.active || index >= this.queueCount || this.queues[index] == null) {
      this.ignoredNotifies++;
      return;
    }
    this.device.notify(index);
  }

  // ---- VirtioContext --------------------------------------------------------------------

  queue(index: number): Virtqueue | null {
    return index < this.queueCount ? this.queues[index] : null;
  }

  signalUsed(index: number): void {
    const q = this.queues[index];
    if (!this.active || q == null) return;
    if (q.error !== 0) {
      this.fail(`queue ${index}: ${queueErrorName(q.error)}`);
      return;
    }
    if (q.needsNotification()) this.sink.raise(ISR_QUEUE, this.qVector[index]);
  }

  configChanged(): void {
    this.configGeneration = (this.configGeneration + 1) & 0xff;
    if ((this.status & STATUS_DRIVER_OK) !== 0) this.sink.raise(ISR_CONFIG, this.configVector);
  }

  fail(reason: string): void {
    this.lastError = reason;
    if ((this.status & STATUS_NEEDS_RESET) !== 0) return;
    this.active = false;
    this.status |= STATUS_NEEDS_RESET;
    if ((this.status & STATUS_DRIVER_OK) !== 0) {
      this.configGeneration = (this.configGeneration + 1) & 0xff;
      this.sink.raise(ISR_CONFIG, this.configVector);
    }
  }

  // ---- state ----------------------------------------------------------------------------

  saveState(): VirtioCoreState {
    const queues: VirtioQueueState[] = [];
    for (let q = 0; q < this.queueCount; q++) {
      const ring = this.queues[q];
      queues.push({
        size: this.qSize[q],
        ready: this.qReady[q] !== 0,
        vector: this.qVector[q],
        addr: Array.from(this.qAddr.subarray(6 * q, 6 * q + 6)),
        ring: ring == null ? null : (ring as SplitQueue | PackedQueue).saveState(),
      });
    }
    return {
      deviceId: this.device.deviceId,
      offeredLo: this.offeredLo,
      offeredHi: this.offeredHi,
      status: this.status,
      featuresLo: this.featuresLo,
      featuresHi: this.featuresHi,
      deviceFeatureSel: this.deviceFeatureSel,
      driverFeatureSel: this.driverFeatureSel,
      queueSel: this.queueSel,
      configGeneration: this.configGeneration,
      configVector: this.configVector,
      legacy: this.legacy,
      queues,
    };
  }

  /**
   * Checks a saved core state against this device (same ID, same offered features, same
   * queues) and guest memory (every live ring laid out in RAM) without changing anything.
   * Returns what a device's own check may consult and the function that applies it.
   */
  prepareRestore(v: unknown, path: string): { rc: DeviceRestoreContext; apply: () => void } {
    const o = stateObject(v, path);
    if (o.deviceId !== this.device.deviceId) stateFail(`${path}.deviceId`, `is ${String(o.deviceId)}, this device is ${this.device.deviceId}`);
    if (o.offeredLo !== this.offeredLo || o.offeredHi !== this.offeredHi) stateFail(path, 'was saved from a device offering other features (different configuration)');
    const status = stateInt(o.status, `${path}.status`, 0, 0xff);
    if ((status & ~STATUS_BITS) !== 0) stateFail(`${path}.status`, 'has undefined bits');
    const featuresLo = stateInt(o.featuresLo, `${path}.featuresLo`, 0, 0xffff_ffff);
    const featuresHi = stateInt(o.featuresHi, `${path}.featuresHi`, 0, 0xffff_ffff);
    if ((featuresLo & ~this.offeredLo) !== 0 || (featuresHi & ~this.offeredHi) !== 0) stateFail(path, 'has features the device does not offer');
    const legacy = stateBool(o.legacy, `${path}.legacy`);
    const has = (b: number): boolean => (status & b) !== 0;
    if ((has(STATUS_DRIVER) && !has(STATUS_ACKNOWLEDGE)) || (has(STATUS_FEATURES_OK) && !has(STATUS_DRIVER))) stateFail(`${path}.status`, 'is not a state the status machine reaches');
    if (has(STATUS_DRIVER_OK) && (!has(STATUS_DRIVER) || (!legacy && !has(STATUS_FEATURES_OK)))) stateFail(`${path}.status`, 'has DRIVER_OK without DRIVER / FEATURES_OK');
    const negotiated = has(STATUS_FEATURES_OK) || (legacy && has(STATUS_DRIVER_OK));
    if (negotiated && ((!legacy && (featuresHi & F_HI_VERSION_1) === 0) || !this.device.checkFeatures(featuresLo, featuresHi))) stateFail(path, 'has a feature set the device refuses');
    const packed = (featuresHi & F_HI_RING_PACKED) !== 0;
    const qs = stateArray(o.queues, `${path}.queues`, this.queueCount, this.queueCount);
    const max = this.device.maxQueueSize;
    const regs: { size: number; ready: boolean; vector: number; addr: Uint32Array; ring: SplitQueueState | PackedQueueState | null }[] = [];
    for (let q = 0; q < this.queueCount; q++) {
      const p = `${path}.queues[${q}]`;
      const e = stateObject(qs[q], p);
      const size = stateInt(e.size, `${p}.size`, 0, 0xffff);
      const ready = stateBool(e.ready, `${p}.ready`);
      const vector = stateInt(e.vector, `${p}.vector`, 0, 0xffff);
      const addr = stateWords(e.addr, `${p}.addr`, 6);
      let ring: SplitQueueState | PackedQueueState | null = null;
      if (ready) {
        if (!negotiated && !(legacy && has(STATUS_DRIVER))) stateFail(p, 'is live before the features were negotiated');
        ring = packed ? parsePackedState(e.ring, `${p}.ring`, this.mem, max) : parseSplitState(e.ring, `${p}.ring`, this.mem, max);
        if (ring.size !== size) stateFail(`${p}.ring.size`, `differs from the queue size ${size}`);
      } else if (e.ring != null) {
        stateFail(`${p}.ring`, 'must be null for a queue that is not live');
      }
      regs.push({ size, ready, vector, addr, ring });
    }
    const fields = {
      deviceFeatureSel: stateInt(o.deviceFeatureSel, `${path}.deviceFeatureSel`, 0, 0xffff_ffff),
      driverFeatureSel: stateInt(o.driverFeatureSel, `${path}.driverFeatureSel`, 0, 0xffff_ffff),
      queueSel: stateInt(o.queueSel, `${path}.queueSel`, 0, 0xffff_ffff),
      configGeneration: stateInt(o.configGeneration, `${path}.configGeneration`, 0, 0xff),
      configVector: stateInt(o.configVector, `${path}.configVector`, 0, 0xffff),
    };
    const active = has(STATUS_DRIVER_OK) && !has(STATUS_NEEDS_RESET) && !has(STATUS_FAILED);
    const rc: DeviceRestoreContext = {
      mem: this.mem,
      featuresLo,
      featuresHi,
      active,
      queueSize: (i) => regs[i]?.ring?.size ?? 0,
      outstanding: (i) => {
        const r = regs[i]?.ring;
        return r == null || r.kind !== 'split' ? -1 : (r.lastAvail - r.nextUsed) & 0xffff;
      },
    };
    const apply = (): void => {
      this.status = status;
      this.active = active;
      this.epoch++;
      this.featuresLo = featuresLo;
      this.featuresHi = featuresHi;
      this.legacy = legacy;
      this.deviceFeatureSel = fields.deviceFeatureSel;
      this.driverFeatureSel = fields.driverFeatureSel;
      this.queueSel = fields.queueSel;
      this.configGeneration = fields.configGeneration;
      this.configVector = fields.configVector;
      this.lastError = '';
      const eventIdx = (featuresLo & F_EVENT_IDX) !== 0;
      const indirect = (featuresLo & F_INDIRECT_DESC) !== 0;
      for (let q = 0; q < this.queueCount; q++) {
        const r = regs[q];
        this.qSize[q] = r.size;
        this.qReady[q] = r.ready ? 1 : 0;
        this.qVector[q] = r.vector;
        this.qAddr.set(r.addr, 6 * q);
        const ring = r.ring;
        if (ring == null) this.queues[q] = null;
        else if (ring.kind === 'split') {
          const sq = new SplitQueue(this.mem, ring.size, ring.desc, ring.avail, ring.used, eventIdx, indirect);
          sq.restoreIndices(ring);
          this.queues[q] = sq;
        } else {
          const pq = new PackedQueue(this.mem, ring.size, ring.desc, ring.driver, ring.device, eventIdx, indirect);
          pq.restoreIndices(ring);
          this.queues[q] = pq;
        }
      }
    };
    return { rc, apply };
  }

  /** The device's own state (throws when the device model cannot export one). */
  saveDeviceState(): object {
    const d = this.device;
    if (d.saveState === undefined) throw new Error(`virtio device ${d.deviceId} does not support state export`);
    return d.saveState();
  }

  /** Checks the device's own saved state; returns the function that applies it. */
  prepareDeviceRestore(v: unknown, path: string, rc: DeviceRestoreContext): () => void {
    const d = this.device;
    if (d.prepareRestore === undefined) stateFail(path, `cannot be restored: device ${d.deviceId} does not support state import`);
    return d.prepareRestore(v, rc);
  }

  /** After a restore: the device looks at every live queue, as if the driver had just notified it. */
  resume(): void {
    for (let q = 0; q < this.queueCount; q++) if (this.active && this.queues[q] != null) this.device.notify(q);
  }

  // ---- device config --------------------------------------------------------------------

  /** Reads `size` (1, 2, 4 or 8: lo only) bytes of device config, little-endian; 0 outside. */
  readConfig(offset: number, size: number): number {
    const d = this.device;
    if (offset < 0 || size > 4 || offset + size > d.configSize) return 0;
    let v = 0;
    for (let i = size - 1; i >= 0; i--) v = v * 256 + d.readConfig(offset + i);
    return v >>> 0;
  }

  writeConfig(offset: number, size: number, value: number): void {
    const d = this.device;
    if (offset < 0 || size > 4 || offset + size > d.configSize) return;
    for (let i = 0; i < size; i++) d.writeConfig(offset + i, (value >>> (8 * i)) & 0xff);
  }
}
