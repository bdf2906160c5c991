// The balloon's wiring in the machine, driven by @ringzero/balloon-ksm's Linux-like mock driver
// through the machine's own virtio-pci function: description checks, the features each QEMU
// option offers, the guest-time scheduler, frames released to the machine's memory, the
// BALLOON_CHANGE event and the QMP-like host API. The real Linux driver is in
// balloon-ksm-guest.test.ts.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  BALLOON_F_DEFLATE_ON_OOM,
  BALLOON_F_FREE_PAGE_HINT,
  BALLOON_F_PAGE_POISON,
  BALLOON_F_REPORTING,
  BALLOON_F_STATS_VQ,
  BALLOON_S_MEMFREE,
  BALLOON_S_MEMTOT,
} from '@ringzero/balloon-ksm';
import { BalloonDriver } from '@ringzero/balloon-ksm/testing';
import { ZERO_FRAME } from '@ringzero/mmu-ept';
import { GuestAllocator, MockDriver, pciDriverTransport } from '@ringzero/virtio/testing';
import { ManualClock } from '../bus/time';
import * as L from '../layout';
import { balloonFeatures, GuestTimeScheduler } from './balloon';
import { MachineConfigError, validateMachineDescription, type DeviceDescription } from './config';
import { Machine } from './machine';
import { hlt, ScriptedVcpu } from './scripted-vcpu';

const MiB = L.MiB;

/** A multiboot v1 image whose entry is HLT (the scripted vCPU never runs it). */
function tinyMultiboot(): Uint8Array {
  const img = new Uint8Array(64);
  const v = new DataView(img.buffer);
  const flags = 0x00010000;
  const words = [0x1badb002, flags, (-(0x1badb002 + flags)) >>> 0, 0x100000, 0x100000, 0x100000 + img.length, 0, 0x100020];
  words.forEach((w, i) => v.setUint32(4 * i, w >>> 0, true));
  img[0x20] = 0xf4;
  return img;
}

describe('virtio-balloon in the machine description', () => {
  const base = { memory: 64 * MiB, kernel: 'vmlinuz' };
  const check = (devices: unknown[]): unknown => validateMachineDescription({ ...base, devices });
  it('accepts the QEMU options and rejects wrong ones', () => {
    expect(() => check([{ type: 'virtio-balloon' }])).not.toThrow();
    expect(() => check([{ type: 'virtio-balloon', deflateOnOom: true, freePageReporting: true, freePageHint: false, pagePoison: false, statsPollingInterval: 5 }])).not.toThrow();
    expect(() => check([{ type: 'virtio-balloon', size: 1 }])).toThrow(/devices\[0\]: unknown field 'size'/);
    expect(() => check([{ type: 'virtio-balloon', deflateOnOom: 'yes' }])).toThrow(/deflateOnOom must be true or false/);
    expect(() => check([{ type: 'virtio-balloon', statsPollingInterval: -1 }])).toThrow(/statsPollingInterval/);
    expect(() => check([{ type: 'virtio-balloon', statsPollingInterval: 1.5 }])).toThrow(MachineConfigError);
    expect(() => check([{ type: 'virtio-balloon' }, { type: 'virtio-balloon' }])).toThrow(/only one virtio-balloon/);
  });

  it('never throws anything but MachineConfigError on arbitrary balloon entries', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.constantFrom('deflateOnOom', 'freePageReporting', 'statsPollingInterval', 'x'), fc.anything()), (extra) => {
        try {
          check([{ ...extra, type: 'virtio-balloon' }]);
        } catch (e) {
          expect(e).toBeInstanceOf(MachineConfigError);
        }
      }),
      { numRuns: 200 },
    );
  });

  it('offers STATS_VQ and PAGE_POISON by default (as QEMU), the rest on request', () => {
    expect(balloonFeatures({ type: 'virtio-balloon' })).toBe(BALLOON_F_STATS_VQ | BALLOON_F_PAGE_POISON);
    expect(balloonFeatures({ type: 'virtio-balloon', deflateOnOom: true, freePageReporting: true, freePageHint: true, pagePoison: false })).toBe(
      BALLOON_F_STATS_VQ | BALLOON_F_DEFLATE_ON_OOM | BALLOON_F_REPORTING | BALLOON_F_FREE_PAGE_HINT,
    );
  });
});

describe('GuestTimeScheduler', () => {
  it('fires timers in due order when the machine polls it, on guest time', () => {
    const clock = new ManualClock(5e6);
    const s = new GuestTimeScheduler(clock);
    const fired: string[] = [];
    expect(s.now()).toBe(5);
    s.setTimer(20, () => fired.push('b'));
    const a = s.setTimer(10, () => fired.push('a'));
    s.setTimer(10, () => fired.push('c'));
    s.cancelTimer(a);
    s.cancelTimer(999);
    clock.ns = 10e6;
    expect(s.poll(clock.ns)).toBe(15e6);
    expect(fired).toEqual([]);
    clock.ns = 15e6;
    expect(s.poll(clock.ns)).toBe(25e6);
    expect(fired).toEqual(['c']);
    s.setTimer(1, () => s.setTimer(0, () => fired.push('nested')));
    clock.ns = 30e6;
    expect(s.poll(clock.ns)).toBe(Infinity);
    expect(fired).toEqual(['c', 'b', 'nested']);
  });
});

async function balloonMachine(devices: readonly DeviceDescription[]): Promise<Machine> {
  return Machine.build({ memory: 64 * MiB, kernel: tinyMultiboot(), time: 'deterministic', devices }, { vcpu: () => new ScriptedVcpu(function* () { yield hlt(); }) });
}

describe('the machine with a virtio-balloon-pci', () => {
  it('inflating frees the machine’s host frames, BALLOON_CHANGE and query follow, stats reach the host API', async () => {
    const m = await balloonMachine([{ type: 'virtio-rng' }, { type: 'virtio-balloon', deflateOnOom: true }]);
    const pci = m.pciDevices.find((d) => d.kind === 'virtio-balloon')!;
    expect(pci.transport.configRead(0x02, 2)).toBe(0x1002); // the transitional id of virtio-balloon-pci, as QEMU's
    expect(pci.transport.configRead(0x2e, 2)).toBe(5); // subsystem id: virtio device type 5
    expect(m.balloon).not.toBeNull();
    const pool = Array.from({ length: 2048 }, (_, i) => 0x2000 + i); // 8 MiB from 32 MiB up
    for (const p of pool) m.memory.write32(p * 4096, p);
    const md = new MockDriver(pciDriverTransport(pci.transport, { msix: true }), m.memory, new GuestAllocator(0x1000, 0x10_0000));
    const drv = new BalloonDriver(md, pool);
    expect(drv.init()).toBe(true);
    expect(drv.features & BALLOON_F_DEFLATE_ON_OOM).not.toBe(0);
    const changes: number[] = [];
    m.on('balloon-change', (b) => changes.push(b));
    const frames = m.memory.host.framesInUse;
    m.balloon!.setTarget(60 * MiB);
    expect(m.balloon!.query()).toEqual({ actual: 64 * MiB, target: 60 * MiB });
    drv.adjust();
    expect(m.balloon!.query()).toEqual({ actual: 60 * MiB, target: 60 * MiB });
    expect(changes).toEqual([63 * MiB, 62 * MiB, 61 * MiB, 60 * MiB]); // actual after each request of 256 pages
    expect(frames - m.memory.host.framesInUse).toBe(1024);
    for (const p of drv.inBalloon) expect(m.memory.frameAt(p * 4096)).toBe(ZERO_FRAME);
    m.balloon!.setTarget(64 * MiB);
    drv.adjust();
    expect(changes.at(-1)).toBe(64 * MiB);
    expect(m.balloon!.device.counters.inflatedPages).toBe(0);

    // Stats: the guest answers a request; with a polling interval the buffer returns on guest time.
    drv.sendStats([[BALLOON_S_MEMFREE, 40 * MiB], [BALLOON_S_MEMTOT, 63 * MiB]]);
    expect(m.balloon!.stats().stats).toEqual({ 'free-memory': 40 * MiB, 'total-memory': 63 * MiB });
    expect(m.balloon!.requestStats()).toBe(true);
    drv.sendStats([[BALLOON_S_MEMFREE, 41 * MiB]]);
    expect(m.balloon!.stats().stats['free-memory']).toBe(41 * MiB);
    m.balloon!.setStatsPollingInterval(1);
    expect(m.balloon!.stats().pollingInterval).toBe(1);
    const now = m.clock.nowNs();
    expect(m.timers.poll(now)).toBeCloseTo(now + 1e9, -3);
    drv.statsReturned(); // the buffer returned by requestStats above
    m.timers.poll(now + 0.5e9);
    expect(drv.statsReturned()).toBe(0);
    m.timers.poll(now + 1e9);
    expect(drv.statsReturned()).toBe(1); // the stats buffer came back: the guest is asked again
    await m.stop();
  });

  it('offers QEMU’s default features to the driver', async () => {
    const m = await balloonMachine([{ type: 'virtio-balloon' }]);
    const pci = m.pciDevices.find((d) => d.kind === 'virtio-balloon')!;
    const md = new MockDriver(pciDriverTransport(pci.transport), m.memory, new GuestAllocator(0x1000, 0x10_0000));
    expect(md.transport.readDeviceFeatures(0) & 0x3f).toBe(BALLOON_F_STATS_VQ | BALLOON_F_PAGE_POISON);
    await m.stop();
  });
});
