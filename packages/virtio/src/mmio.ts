import type { GuestMemory } from '@ringzero/mmu-ept';
import type { VirtioCoreState } from './core';
import { VirtioCore } from './core';
import { stateGuard, stateHeader, stateInt, VIRTIO_STATE_VERSION } from './state';
import type { VirtioDevice } from './device';

// virtio-mmio version 2 register offsets (virtio 1.x §4.2.2).
export const MMIO_MAGIC = 0x000;
export const MMIO_VERSION = 0x004;
export const MMIO_DEVICE_ID = 0x008;
export const MMIO_VENDOR_ID = 0x00c;
export const MMIO_DEVICE_FEATURES = 0x010;
export const MMIO_DEVICE_FEATURES_SEL = 0x014;
export const MMIO_DRIVER_FEATURES = 0x020;
export const MMIO_DRIVER_FEATURES_SEL = 0x024;
export const MMIO_QUEUE_SEL = 0x030;
export const MMIO_QUEUE_NUM_MAX = 0x034;
export const MMIO_QUEUE_NUM = 0x038;
export const MMIO_QUEUE_READY = 0x044;
export const MMIO_QUEUE_NOTIFY = 0x050;
export const MMIO_INTERRUPT_STATUS = 0x060;
export const MMIO_INTERRUPT_ACK = 0x064;
export const MMIO_STATUS = 0x070;
export const MMIO_QUEUE_DESC_LOW = 0x080;
export const MMIO_QUEUE_DESC_HIGH = 0x084;
export const MMIO_QUEUE_DRIVER_LOW = 0x090;
export const MMIO_QUEUE_DRIVER_HIGH = 0x094;
export const MMIO_QUEUE_DEVICE_LOW = 0x0a0;
export const MMIO_QUEUE_DEVICE_HIGH = 0x0a4;
export const MMIO_SHM_SEL = 0x0ac;
export const MMIO_SHM_LEN_LOW = 0x0b0;
export const MMIO_SHM_LEN_HIGH = 0x0b4;
export const MMIO_SHM_BASE_LOW = 0x0b8;
export const MMIO_SHM_BASE_HIGH = 0x0bc;
export const MMIO_CONFIG_GENERATION = 0x0fc;
export const MMIO_CONFIG = 0x100;
/** Size of one virtio-mmio window (as Firecracker's MMIO_LEN). */
export const MMIO_WINDOW_SIZE = 0x1000;
/** "virt" little-endian. */
export const MMIO_MAGIC_VALUE = 0x74726976;
/** Vendor ID reported in MMIO_VENDOR_ID: the virtio PCI vendor ID. */
export const MMIO_VENDOR = 0x1af4;

/** A virtio-mmio transport with its device, as a versioned plain object. */
export interface VirtioMmioState {
  version: number;
  kind: 'virtio-mmio';
  core: VirtioCoreState;
  interruptStatus: number;
  device: object;
}

/** Options of a virtio-mmio transport. */
export interface VirtioMmioOptions {
  /** The interrupt line: called with true when InterruptStatus becomes non-zero, false when acknowledged to 0. */
  irq: (level: boolean) => void;
  /** Offer VIRTIO_F_RING_PACKED (default true). */
  packed?: boolean;
  /** Offer VIRTIO_F_IN_ORDER when the device supports it (default false, as QEMU's in_order=off). */
  inOrder?: boolean;
}

/**
 * A virtio-mmio version 2 transport for one device: a 4 KiB register window the machine maps
 * at some guest-physical address (the guest learns it from the kernel command line or a
 * device tree), and one interrupt line.
 *
 * Register accesses must be 32-bit and aligned; the device config space (from 0x100) may be
 * read with 8, 16 or 32-bit accesses. Anything else reads 0 and writes are ignored.
 */
export class VirtioMmio {
  readonly core: VirtioCore;
  /** InterruptStatus: bit 0 used buffer, bit 1 config change. */
  interruptStatus = 0;
  private readonly irq: (level: boolean) => void;
  private lineLevel = false;

  constructor(device: VirtioDevice, mem: GuestMemory, opts: VirtioMmioOptions) {
    this.irq = opts.irq;
    this.core = new VirtioCore(device, mem, this, { packed: opts.packed ?? true, inOrder: opts.inOrder ?? false });
  }

  /** InterruptSink: the core raises an interrupt. */
  raise(isrBits: number, _vector: number): void {
    this.interruptStatus |= isrBits;
    this.updateLine();
  }

  private updateLine(): void {
    const level = this.interruptStatus !== 0;
    if (level !== this.lineLevel) {
      this.lineLevel = level;
      this.irq(level);
    }
  }

  /**
   * Everything a snapshot needs to bring this transport and its device back (guest memory and
   * the back end's data are the machine's part): a versioned plain object, JSON-safe.
   */
  saveState(): VirtioMmioState {
    return {
      version: VIRTIO_STATE_VERSION,
      kind: 'virtio-mmio',
      core: this.core.saveState(),
      interruptStatus: this.interruptStatus,
      device: this.core.saveDeviceState(),
    };
  }

  /**
   * Restores a saveState() object into this transport (built with the same device
   * configuration, over guest memory that already holds the saved RAM). Everything is checked
   * before anything changes: a state that does not fit throws VirtioStateError and leaves the
   * device as it was. Then the interrupt line is re-driven and the device resumes serving its
   * queues (requests in flight at save time are run again).
   */
  restoreState(v: unknown): void {
    const plan = stateGuard('virtio-mmio state', () => {
      const o = stateHeader(v, 'state', 'virtio-mmio');
      const core = this.core.prepareRestore(o.core, 'state.core');
      const isr = stateInt(o.interruptStatus, 'state.interruptStatus', 0, 3);
      const device = this.core.prepareDeviceRestore(o.device, 'state.device', core.rc);
      return { core, isr, device };
    });
    plan.core.apply();
    this.interruptStatus = plan.isr;
    plan.device();
    this.lineLevel = false;
    if (this.interruptStatus !== 0) this.updateLine();
    this.core.resume();
  }

  /** A guest read of `size` bytes at `offset` in the window. */
  read(offset: number, size: number): number {
    const c = this.core;
    if (offset >= MMIO_CONFIG) {
      if (size !== 1 && size !== 2 && size !== 4) return 0;
      return c.readConfig(offset - MMIO_CONFIG, size);
    }
    if (size !== 4 || (offset & 3) !== 0) return 0;
    switch (offset) {
      case MMIO_MAGIC:
        return MMIO_MAGIC_VALUE;
      case MMIO_VERSION:
        return 2;
      case MMIO_DEVICE_ID:
        return c.device.deviceId;
      case MMIO_VENDOR_ID:
        return MMIO_VENDOR;
      case MMIO_DEVICE_FEATURES:
        return c.deviceFeatures(c.deviceFeatureSel);
      case MMIO_QUEUE_NUM_MAX:
        return c.queueMaxSize();
      case MMIO_QUEUE_READY:
        return c.queueReady();
      case MMIO_INTERRUPT_STATUS:
        return this.interruptStatus;
      case MMIO_STATUS:
        return c.getStatus();
      case MMIO_QUEUE_DESC_LOW:
        return c.queueAddr(0, 0);
      case MMIO_QUEUE_DESC_HIGH:
        return c.queueAddr(0, 1);
      case MMIO_QUEUE_DRIVER_LOW:
        return c.queueAddr(1, 0);
      case MMIO_QUEUE_DRIVER_HIGH:
        return c.queueAddr(1, 1);
      case MMIO_QUEUE_DEVICE_LOW:
        return c.queueAddr(2, 0);
      case MMIO_QUEUE_DEVICE_HIGH:
        return c.queueAddr(2, 1);
      case MMIO_SHM_LEN_LOW:
      case MMIO_SHM_LEN_HIGH:
        return 0xffff_ffff; // no shared memory regions
      case MMIO_CONFIG_GENERATION:
        return c.configGeneration;
      default:
        return 0;
    }
  }

  /** A guest write of `size` bytes at `offset`. */
  write(offset: number, size: number, value: number): void {
    const c = this.core;
    if (offset >= MMIO_CONFIG) {
      if (size === 1 || size === 2 || size === 4) c.writeConfig(offset - MMIO_CONFIG, size, value);
      return;
    }
    if (size !== 4 || (offset & 3) !== 0) return;
    value >>>= 0;
    switch (offset) {
      case MMIO_DEVICE_FEATURES_SEL:
        c.deviceFeatureSel = value;
        return;
      case MMIO_DRIVER_FEATURES:
        c.setDriverFeatures(c.driverFeatureSel, value);
        return;
      case MMIO_DRIVER_FEATURES_SEL:
        c.driverFeatureSel = value;
        return;
      case MMIO_QUEUE_SEL:
        c.queueSel = value;
        return;
      case MMIO_QUEUE_NUM:
        c.setQueueSize(value > 0xffff ? 0 : value);
        return;
      case MMIO_QUEUE_READY:
        c.setQueueReady(value & 1);
        return;
      case MMIO_QUEUE_NOTIFY:
        c.notify(value & 0xffff);
        return;
      case MMIO_INTERRUPT_ACK:
        this.interruptStatus &= ~value;
        this.updateLine();
        return;
      case MMIO_STATUS:
        c.setStatus(value);
        if (value === 0) {
          this.interruptStatus = 0;
          this.updateLine();
        }
        return;
      case MMIO_QUEUE_DESC_LOW:
        return c.setQueueAddr(0, 0, value);
      case MMIO_QUEUE_DESC_HIGH:
        return c.setQueueAddr(0, 1, value);
      case MMIO_QUEUE_DRIVER_LOW:
        return c.setQueueAddr(1, 0, value);
      case MMIO_QUEUE_DRIVER_HIGH:
        return c.setQueueAddr(1, 1, value);
      case MMIO_QUEUE_DEVICE_LOW:
        return c.setQueueAddr(2, 0, value);
      case MMIO_QUEUE_DEVICE_HIGH:
        return c.setQueueAddr(2, 1, value);
      default:
        return;
    }
  }
}
