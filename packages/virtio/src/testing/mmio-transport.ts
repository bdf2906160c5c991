import * as M from '../mmio';
import type { VirtioMmio } from '../mmio';
import type { DriverTransport } from './driver';

/** A DriverTransport over a VirtioMmio window (32-bit register accesses, as a guest makes them). */
export function mmioDriverTransport(dev: VirtioMmio): DriverTransport {
  const r = (o: number): number => dev.read(o, 4);
  const w = (o: number, v: number): void => dev.write(o, 4, v);
  if (r(M.MMIO_MAGIC) !== M.MMIO_MAGIC_VALUE || r(M.MMIO_VERSION) !== 2) throw new Error('not a virtio-mmio v2 device');
  return {
    deviceId: r(M.MMIO_DEVICE_ID),
    readDeviceFeatures(sel) {
      w(M.MMIO_DEVICE_FEATURES_SEL, sel);
      return r(M.MMIO_DEVICE_FEATURES);
    },
    writeDriverFeatures(sel, value) {
      w(M.MMIO_DRIVER_FEATURES_SEL, sel);
      w(M.MMIO_DRIVER_FEATURES, value);
    },
    getStatus: () => r(M.MMIO_STATUS),
    setStatus: (v) => w(M.MMIO_STATUS, v),
    selectQueue: (i) => w(M.MMIO_QUEUE_SEL, i),
    queueMaxSize: () => r(M.MMIO_QUEUE_NUM_MAX),
    setQueueSize: (n) => w(M.MMIO_QUEUE_NUM, n),
    setQueueAddresses(desc, driver, device) {
      w(M.MMIO_QUEUE_DESC_LOW, desc >>> 0);
      w(M.MMIO_QUEUE_DESC_HIGH, Math.floor(desc / 2 ** 32));
      w(M.MMIO_QUEUE_DRIVER_LOW, driver >>> 0);
      w(M.MMIO_QUEUE_DRIVER_HIGH, Math.floor(driver / 2 ** 32));
      w(M.MMIO_QUEUE_DEVICE_LOW, device >>> 0);
      w(M.MMIO_QUEUE_DEVICE_HIGH, Math.floor(device / 2 ** 32));
    },
    enableQueue: () => w(M.MMIO_QUEUE_READY, 1),
    queueEnabled: () => r(M.MMIO_QUEUE_READY) === 1,
    setQueueVector: () => undefined,
    notify: (i) => w(M.MMIO_QUEUE_NOTIFY, i),
    readConfig: (o, s) => dev.read(M.MMIO_CONFIG + o, s),
    writeConfig: (o, s, v) => dev.write(M.MMIO_CONFIG + o, s, v),
    configGeneration: () => r(M.MMIO_CONFIG_GENERATION),
    ackInterrupt() {
      const s = r(M.MMIO_INTERRUPT_STATUS);
      w(M.MMIO_INTERRUPT_ACK, s);
      return s;
    },
  };
}
