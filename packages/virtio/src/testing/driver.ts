import type { GuestMemory } from '@ringzero/mmu-ept';
import {
  F_EVENT_IDX,
  F_HI_RING_PACKED,
  F_HI_VERSION_1,
  F_INDIRECT_DESC,
  STATUS_ACKNOWLEDGE,
  STATUS_DRIVER,
  STATUS_DRIVER_OK,
  STATUS_FEATURES_OK,
} from '../constants';
import type { GuestAllocator, GuestBuffer } from './alloc';
import { DriverPackedQueue } from './packed-driver';
import type { UsedElement } from './split-driver';
import { DriverSplitQueue } from './split-driver';

/** The registers a driver needs, whatever the transport (virtio-mmio, virtio-pci). */
export interface DriverTransport {
  readonly deviceId: number;
  readDeviceFeatures(sel: number): number;
  writeDriverFeatures(sel: number, value: number): void;
  getStatus(): number;
  setStatus(value: number): void;
  selectQueue(index: number): void;
  queueMaxSize(): number;
  setQueueSize(size: number): void;
  /** Descriptor area, driver area (avail ring / driver event suppression), device area. */
  setQueueAddresses(desc: number, driver: number, device: number): void;
  enableQueue(): void;
  queueEnabled(): boolean;
  /** Routes the selected queue's interrupt (virtio-pci MSI-X vector; no-op elsewhere). */
  setQueueVector(vector: number): void;
  notify(index: number): void;
  readConfig(offset: number, size: number): number;
  writeConfig(offset: number, size: number, value: number): void;
  configGeneration(): number;
  /** Reads and acknowledges the interrupt cause bits (ISR_QUEUE | ISR_CONFIG). */
  ackInterrupt(): number;
}

/** A driver queue, split or packed. */
export interface DriverQueue {
  readonly size: number;
  /** Guest address of the descriptor table (split) or descriptor ring (packed). */
  readonly desc: number;
  readonly freeCount: number;
  add(out: readonly GuestBuffer[], inn: readonly GuestBuffer[], indirect?: boolean): number;
  getUsed(): UsedElement | null;
}

/** Options of MockDriver.init. */
export interface MockDriverInit {
  /** Chooses the driver's features from the offered ones (default: accept everything offered, minus RING_PACKED unless `packed`). */
  features?: (offeredLo: number, offeredHi: number) => [lo: number, hi: number];
  /** Use packed rings (needs the device to offer VIRTIO_F_RING_PACKED). */
  packed?: boolean;
  /** Queue size for every queue (default: the device's maximum, capped to 256). */
  queueSize?: number;
  /** How many queues to set up (default: all the device has, found by probing queue max sizes). */
  queues?: number;
  /** Stop before DRIVER_OK (to test the device in intermediate states). */
  skipDriverOk?: boolean;
}

/**
 * A mock guest driver (like rust-vmm's virtio-queue mock): runs the virtio initialisation
 * sequence over any DriverTransport, lays out split or packed rings in test memory, submits
 * buffers and reaps completions. Meant for this package's tests and for other device
 * packages (balloon). It trusts the device and throws on misuse, as a test helper should.
 */
export class MockDriver {
  readonly transport: DriverTransport;
  readonly mem: GuestMemory;
  readonly alloc: GuestAllocator;
  readonly queues: DriverQueue[] = [];
  featuresLo = 0;
  featuresHi = 0;

  constructor(transport: DriverTransport, mem: GuestMemory, alloc: GuestAllocator) {
    this.transport = transport;
    this.mem = mem;
    this.alloc = alloc;
  }

  /** The full initialisation (virtio 1.x §3.1.1). Returns false when the device refused FEATURES_OK. */
  init(opts: MockDriverInit = {}): boolean {
    const t = this.transport;
    t.setStatus(0);
    t.setStatus(STATUS_ACKNOWLEDGE);
    t.setStatus(STATUS_ACKNOWLEDGE | STATUS_DRIVER);
    const lo = t.readDeviceFeatures(0);
    const hi = t.readDeviceFeatures(1);
    const choose =
      opts.features ??
      ((l: number, h: number): [number, number] => [l, opts.packed === true ? h : h & ~F_HI_RING_PACKED]);
    const [flo, fhi] = choose(lo, hi);
    this.featuresLo = flo >>> 0;
    this.featuresHi = fhi >>> 0;
    t.writeDriverFeatures(0, this.featuresLo);
    t.writeDriverFeatures(1, this.featuresHi);
    t.setStatus(STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK);
    if ((t.getStatus() & STATUS_FEATURES_OK) === 0) return false;
    const packed = (this.featuresHi & F_HI_RING_PACKED) !== 0;
    for (let i = 0; opts.queues === undefined || i < opts.queues; i++) {
      t.selectQueue(i);
      const max = t.queueMaxSize();
      if (max === 0) break;
      const size = Math.min(opts.queueSize ?? 256, max);
      const q = packed ? new DriverPackedQueue(this.mem, this.alloc, size) : new DriverSplitQueue(this.mem, this.alloc, size);
      t.setQueueSize(size);
      if (q instanceof DriverPackedQueue) t.setQueueAddresses(q.desc, q.driverArea, q.deviceArea);
      else t.setQueueAddresses(q.desc, q.avail, q.used);
      t.setQueueVector(i + 1);
      t.enableQueue();
      if (!t.queueEnabled()) throw new Error(`MockDriver: device refused to enable queue ${i}`);
      this.queues.push(q);
    }
    if (opts.skipDriverOk !== true) t.setStatus(STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK | STATUS_DRIVER_OK);
    return true;
  }

  /** Notifies queue `index`. */
  kick(index: number): void {
    this.transport.notify(index);
  }

  /** Allocates a guest buffer of `len` bytes, optionally filled. */
  buffer(len: number, fill?: Uint8Array): GuestBuffer {
    const addr = this.alloc.alloc(Math.max(len, 1), 16);
    if (fill !== undefined) this.mem.writeFrom(addr, fill);
    return { addr, len };
  }

  /** Copies a guest buffer out. */
  bytes(b: GuestBuffer, len: number = b.len): Uint8Array {
    const out = new Uint8Array(len);
    this.mem.readInto(b.addr, out);
    return out;
  }

  /** Reaps every used element of queue `index`. */
  drain(index: number): UsedElement[] {
    const out: UsedElement[] = [];
    for (let e = this.queues[index].getUsed(); e != null; e = this.queues[index].getUsed()) out.push(e);
    return out;
  }
}

/** Feature chooser: everything offered, but only the ring features listed (VERSION_1 always). */
export function acceptFeatures(opts: { eventIdx?: boolean; indirect?: boolean; packed?: boolean; lo?: number; hi?: number } = {}): (l: number, h: number) => [number, number] {
  return (l, h) => {
    let lo = l & ~(F_EVENT_IDX | F_INDIRECT_DESC);
    if (opts.eventIdx !== false) lo |= l & F_EVENT_IDX;
    if (opts.indirect !== false) lo |= l & F_INDIRECT_DESC;
    let hi = (h & ~F_HI_RING_PACKED) | F_HI_VERSION_1;
    if (opts.packed === true) hi |= h & F_HI_RING_PACKED;
    if (opts.lo !== undefined) lo &= opts.lo | F_EVENT_IDX | F_INDIRECT_DESC;
    if (opts.hi !== undefined) hi &= opts.hi | F_HI_VERSION_1 | F_HI_RING_PACKED;
    return [lo >>> 0, hi >>> 0];
  };
}
