import type { GuestMemory } from '@ringzero/mmu-ept';
import type { Virtqueue } from './queue';
import type { DeviceRestoreContext } from './state';

/**
 * What a device model (blk, net, console, rng...) implements. It knows nothing about the
 * transport: the same object works behind virtio-mmio and virtio-pci.
 */
export interface VirtioDevice {
  /** Virtio device ID (DEVICE_ID_*). */
  readonly deviceId: number;
  /** Number of virtqueues. */
  readonly queueCount: number;
  /** Largest queue size offered (a power of two, at most MAX_QUEUE_SIZE). */
  readonly maxQueueSize: number;
  /** Device-specific feature bits offered, bits 0..31. The transport adds the ring/transport bits. */
  readonly featuresLo: number;
  /** Device-specific feature bits offered, bits 32..63. */
  readonly featuresHi: number;
  /**
   * The device returns every queue's chains in the order it popped them, so the transport may
   * offer VIRTIO_F_IN_ORDER (when asked to).
   */
  readonly supportsInOrder?: boolean;
  /** Size in bytes of the device configuration space. */
  readonly configSize: number;
  /** Called once by the transport's core before anything else. */
  attach(ctx: VirtioContext): void;
  /** One byte of device configuration space (offset < configSize). */
  readConfig(offset: number): number;
  /** Driver writes one byte of device configuration space. */
  writeConfig(offset: number, value: number): void;
  /** Extra device rules on the driver's features (e.g. MQ needs CTRL_VQ); true to accept. */
  checkFeatures(lo: number, hi: number): boolean;
  /** DRIVER_OK was set: queues are live, start serving. */
  activate(): void;
  /** The driver notified queue `index` (which is live). */
  notify(index: number): void;
  /** Device reset: drop all state; in-flight async work must not touch guest memory afterwards. */
  reset(): void;
  /** The device's state as a versioned plain object (snapshots, migration). */
  saveState?(): object;
  /**
   * Checks a saved device state against this device (same configuration) and the transport
   * state being restored, without changing anything; returns the function that applies it.
   * Throws VirtioStateError.
   */
  prepareRestore?(state: unknown, rc: DeviceRestoreContext): () => void;
}

/** What the transport gives a device. */
export interface VirtioContext {
  readonly mem: GuestMemory;
  /** True between DRIVER_OK and reset/NEEDS_RESET/FAILED. */
  readonly active: boolean;
  /** Incremented on every reset: async completions carry the epoch they started in. */
  readonly epoch: number;
  /** Negotiated features, bits 0..31 and 32..63. */
  readonly featuresLo: number;
  readonly featuresHi: number;
  /** The live queue `index`, or null when the driver did not enable it. */
  queue(index: number): Virtqueue | null;
  /** Interrupts the driver for queue `index` if its notification suppression allows. */
  signalUsed(index: number): void;
  /** The device configuration changed: bumps the generation and interrupts the driver. */
  configChanged(): void;
  /** The device hit a driver error it cannot recover from: sets NEEDS_RESET and stops. */
  fail(reason: string): void;
}
