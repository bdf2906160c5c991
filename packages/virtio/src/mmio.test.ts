import { FlatGuestMemory } from '@ringzero/mmu-ept';
import { describe, expect, it } from 'vitest';
import { MemoryBlockBackend } from './block-backend';
import { BLK_T_GET_ID, VirtioBlk } from './blk';
import {
  F_HI_VERSION_1,
  STATUS_ACKNOWLEDGE,
  STATUS_DRIVER,
  STATUS_DRIVER_OK,
  STATUS_FEATURES_OK,
  STATUS_NEEDS_RESET,
} from './constants';
import * as M from './mmio';
import { GuestAllocator } from './testing/alloc';
import { acceptFeatures, MockDriver } from './testing/driver';
import { mmioDriverTransport } from './testing/mmio-transport';
import { submitBlk } from './testing/blk-helpers';
import { DriverSplitQueue } from './testing/split-driver';

function setup() {
  const mem = new FlatGuestMemory(1 << 20);
  const alloc = new GuestAllocator(0x1000, mem.limit);
  const blk = new VirtioBlk(new MemoryBlockBackend(64 * 512), { queueSize: 16 });
  const lines: boolean[] = [];
  const dev = new M.VirtioMmio(blk, mem, { irq: (l) => lines.push(l) });
  const t = mmioDriverTransport(dev);
  const drv = new MockDriver(t, mem, alloc);
  return { mem, alloc, blk, dev, t, drv, lines };
}

const ACK = STATUS_ACKNOWLEDGE;
const DRV = STATUS_ACKNOWLEDGE | STATUS_DRIVER;
const FOK = DRV | STATUS_FEATURES_OK;

describe('virtio-mmio v2 transport', () => {
  it('identifies itself as the spec says', () => {
    const { dev } = setup();
    expect(dev.read(M.MMIO_MAGIC, 4)).toBe(0x74726976);
    expect(dev.read(M.MMIO_VERSION, 4)).toBe(2);
    expect(dev.read(M.MMIO_DEVICE_ID, 4)).toBe(2);
    dev.write(M.MMIO_DEVICE_FEATURES_SEL, 4, 1);
    expect(dev.read(M.MMIO_DEVICE_FEATURES, 4) & F_HI_VERSION_1).toBe(F_HI_VERSION_1);
    dev.write(M.MMIO_DEVICE_FEATURES_SEL, 4, 7);
    expect(dev.read(M.MMIO_DEVICE_FEATURES, 4)).toBe(0);
    expect(dev.read(M.MMIO_QUEUE_NUM_MAX, 4)).toBe(16);
    dev.write(M.MMIO_QUEUE_SEL, 4, 1);
    expect(dev.read(M.MMIO_QUEUE_NUM_MAX, 4)).toBe(0); // no queue 1
    expect(dev.read(M.MMIO_MAGIC, 2)).toBe(0); // registers are 32-bit only
    expect(dev.read(M.MMIO_MAGIC + 1, 4)).toBe(0);
    // capacity (64 sectors) in config space, readable in 1/2/4-byte pieces
    expect(dev.read(M.MMIO_CONFIG, 4)).toBe(64);
    expect(dev.read(M.MMIO_CONFIG, 1)).toBe(64);
    expect(dev.read(M.MMIO_CONFIG + 20, 4)).toBe(512);
    expect(dev.read(M.MMIO_CONFIG + 60, 4)).toBe(0); // past the config space
  });

  it('runs the status state machine: order enforced, FEATURES_OK re-read, reset', () => {
    const { dev, t } = setup();
    t.setStatus(STATUS_DRIVER); // DRIVER without ACKNOWLEDGE: ignored
    expect(t.getStatus()).toBe(0);
    t.setStatus(ACK);
    t.setStatus(ACK | STATUS_FEATURES_OK); // FEATURES_OK without DRIVER
    expect(t.getStatus()).toBe(ACK);
    t.setStatus(DRV);
    // A modern driver must accept VERSION_1: FEATURES_OK does not stick without it.
    t.writeDriverFeatures(0, 0);
    t.writeDriverFeatures(1, 0);
    t.setStatus(FOK);
    expect(t.getStatus()).toBe(DRV);
    expect(dev.core.lastError).toMatch(/VERSION_1/);
    // Features the device did not offer are refused too.
    t.writeDriverFeatures(1, F_HI_VERSION_1 | 0x8000);
    t.setStatus(FOK);
    expect(t.getStatus()).toBe(DRV);
    t.writeDriverFeatures(1, F_HI_VERSION_1);
    t.setStatus(FOK);
    expect(t.getStatus()).toBe(FOK);
    // Feature writes after FEATURES_OK are ignored.
    t.writeDriverFeatures(1, 0);
    expect(dev.core.featuresHi).toBe(F_HI_VERSION_1);
    // Clearing a bit without reset is ignored; DRIVER_OK after FEATURES_OK is accepted.
    t.setStatus(ACK);
    expect(t.getStatus()).toBe(FOK);
    t.setStatus(FOK | STATUS_DRIVER_OK);
    expect(t.getStatus()).toBe(FOK | STATUS_DRIVER_OK);
    expect(dev.core.active).toBe(true);
    t.setStatus(0);
    expect(t.getStatus()).toBe(0);
    expect(dev.core.active).toBe(false);
    expect(dev.core.featuresHi).toBe(0);
  });

  it('DRIVER_OK without FEATURES_OK is refused for a modern driver', () => {
    const { t, dev } = setup();
    t.setStatus(ACK);
    t.setStatus(DRV);
    t.setStatus(DRV | STATUS_DRIVER_OK);
    expect(t.getStatus()).toBe(DRV);
    expect(dev.core.active).toBe(false);
  });

  it('refuses queue sizes that are not a power of two and rings outside RAM, and ignores notifies on them', () => {
    const { t, dev, mem, alloc, blk } = setup();
    t.setStatus(ACK);
    t.setStatus(DRV);
    t.writeDriverFeatures(1, F_HI_VERSION_1);
    t.setStatus(FOK);
    t.selectQueue(0);
    const q = new DriverSplitQueue(mem, alloc, 16);
    t.setQueueSize(12);
    t.setQueueAddresses(q.desc, q.avail, q.used);
    t.enableQueue();
    expect(t.queueEnabled()).toBe(false);
    expect(dev.core.lastError).toMatch(/queue 0/);
    t.setQueueSize(16);
    t.setQueueAddresses(mem.limit - 64, q.avail, q.used);
    t.enableQueue();
    expect(t.queueEnabled()).toBe(false);
    t.setStatus(FOK | STATUS_DRIVER_OK);
    t.notify(0);
    t.notify(5);
    expect(dev.core.ignoredNotifies).toBe(2);
    expect(blk.inFlight).toBe(0);
  });

  it('notifications before DRIVER_OK are ignored; requests are served after it', async () => {
    const { drv, blk, dev, lines } = setup();
    expect(drv.init({ skipDriverOk: true })).toBe(true);
    const r = submitBlk(drv, BLK_T_GET_ID, 0, { inLen: 20 });
    drv.kick(0);
    expect(dev.core.ignoredNotifies).toBe(1);
    expect(drv.queues[0].getUsed()).toBeNull();
    drv.transport.setStatus(FOK | STATUS_DRIVER_OK); // activation serves what is already queued
    await Promise.resolve();
    expect(drv.queues[0].getUsed()).toEqual({ id: r.id, len: 21 });
    expect(blk.completed[0]).toBe(1);
    expect(lines).toEqual([true]);
    expect(dev.interruptStatus).toBe(1);
    expect(drv.transport.ackInterrupt()).toBe(1);
    expect(lines).toEqual([true, false]);
  });

  it('queue registers are frozen while the queue is live', () => {
    const { drv, dev, t } = setup();
    drv.init();
    t.selectQueue(0);
    const before = dev.read(M.MMIO_QUEUE_DESC_LOW, 4);
    dev.write(M.MMIO_QUEUE_DESC_LOW, 4, 0x1234_0000);
    expect(dev.read(M.MMIO_QUEUE_DESC_LOW, 4)).toBe(before);
    t.setQueueSize(2);
    dev.write(M.MMIO_QUEUE_SEL, 4, 0);
    expect(dev.core.queueSize()).toBe(16);
  });

  it('a broken queue sets NEEDS_RESET and raises a config interrupt; reset recovers', () => {
    const { drv, dev, t } = setup();
    drv.init({ features: acceptFeatures({ eventIdx: false }) });
    const q = drv.queues[0] as DriverSplitQueue;
    q.publishHead(99); // head index out of range
    drv.kick(0);
    expect(t.getStatus() & STATUS_NEEDS_RESET).toBe(STATUS_NEEDS_RESET);
    expect(dev.interruptStatus & 2).toBe(2);
    expect(dev.core.lastError).toMatch(/head descriptor index/);
    const gen = t.configGeneration();
    expect(gen).toBeGreaterThan(0);
    drv.kick(0); // further notifies are ignored, nothing throws
    t.setStatus(0);
    expect(t.getStatus()).toBe(0);
    expect(dev.interruptStatus).toBe(0);
    const drv2 = new MockDriver(t, drv.mem, drv.alloc);
    expect(drv2.init()).toBe(true);
    expect(t.getStatus() & STATUS_NEEDS_RESET).toBe(0);
  });
});
