import type { GuestMemory } from '@ringzero/mmu-ept';
import {
  F_EVENT_IDX,
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
import { checkPackedLayout, PackedQueue } from './packed-queue';
import type { Virtqueue } from './queue';
import { queueErrorName } from './queue';
import { checkSplitLayout, SplitQueue } from './split-queue';

/** Where the core sends interrupts: ISR bits (ISR_QUEUE / ISR_CONFIG) and the MSI-X vector the driver chose. */
export interface InterruptSink {
  raise(isrBits: number, vector: number): void;
}

const TWO32 = 0x1_0000_0000;
const MAX_ADDR_HI = 0x20_0000;

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

  constructor(device: VirtioDevice, mem: GuestMemory, sink: InterruptSink, opts: { packed?: boolean } = {}) {
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
    this.offeredHi = (device.featuresHi | F_HI_VERSION_1 | (opts.packed === false ? 0 : F_HI_RING_PACKED)) >>> 0;
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
