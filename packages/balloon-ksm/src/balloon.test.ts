// virtio-balloon through @ringzero/virtio's mock guest driver, over virtio-mmio and virtio-pci,
// on an mmu-ept AddressSpace so host frame counts show what the balloon really frees.
import { AddressSpace, HostMemory, ZERO_FRAME } from '@ringzero/mmu-ept';
import { VirtioMmio, VirtioPci } from '@ringzero/virtio';
import { GuestAllocator, MockDriver, mmioDriverTransport, pciDriverTransport } from '@ringzero/virtio/testing';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  BALLOON_CMD_ID_MIN,
  BALLOON_F_ALL,
  BALLOON_F_FREE_PAGE_HINT,
  BALLOON_F_MUST_TELL_HOST,
  BALLOON_F_PAGE_POISON,
  BALLOON_F_REPORTING,
  BALLOON_F_STATS_VQ,
  BALLOON_S_MEMFREE,
  BALLOON_S_NR,
  BALLOON_STAT_NAMES,
  BQ_DEFLATE,
  BQ_FREE_PAGE,
  BQ_INFLATE,
  BQ_REPORTING,
  BQ_STATS,
  VirtioBalloon,
  balloonQueueIndex,
} from './index';
import { BalloonDriver, ManualScheduler } from './testing';

const MiB = 2 ** 20;
const RAM = 32 * MiB;
/** Guest pages the test driver may give: 8..24 MiB. Rings and buffers live below 1 MiB. */
const POOL = Array.from({ length: (16 * MiB) / 4096 }, (_, i) => 8 * 256 + i);

interface Rig {
  host: HostMemory;
  space: AddressSpace;
  balloon: VirtioBalloon;
  drv: BalloonDriver;
  clock: ManualScheduler;
  changes: number[];
  configIrqs: () => number;
}

function rig(transport: 'mmio' | 'pci', accept?: number, offer: number = BALLOON_F_ALL): Rig {
  const host = new HostMemory({ chunkShift: 10 });
  const space = new AddressSpace(host);
  space.addRam(0, RAM);
  const clock = new ManualScheduler();
  const changes: number[] = [];
  const balloon = new VirtioBalloon({ ramSize: RAM, features: offer, scheduler: clock, onChange: (b) => changes.push(b) });
  let irqs = 0;
  let t;
  if (transport === 'mmio') {
    const dev = new VirtioMmio(balloon, space, { irq: (level) => void (level && irqs++) });
    t = mmioDriverTransport(dev);
  } else {
    const dev = new VirtioPci(balloon, space, { msi: () => void irqs++ });
    t = pciDriverTransport(dev, { msix: true });
  }
  const md = new MockDriver(t, space, new GuestAllocator(0x1000, 0x10_0000));
  const drv = new BalloonDriver(md, POOL);
  expect(drv.init(accept)).toBe(true);
  return { host, space, balloon, drv, clock, changes, configIrqs: () => irqs };
}

/** Writes a distinct non-zero pattern into each page so every page owns a host frame. */
function dirty(space: AddressSpace, pfns: readonly number[]): void {
  for (const p of pfns) space.write32(p * 4096, 0xa5a5_0000 + (p & 0xffff));
}

describe.each(['mmio', 'pci'] as const)('virtio-balloon over virtio-%s', (transport) => {
  it('inflating to a target frees the host frames, deflating gives the pages back, actual and BALLOON_CHANGE follow', () => {
    const r = rig(transport);
    dirty(r.space, POOL);
    const before = r.host.framesInUse;
    // QMP balloon: leave the guest 24 MiB of its 32 MiB -> 2048 pages into the balloon.
    r.balloon.setTarget(24 * MiB);
    expect(r.drv.numPages()).toBe(2048);
    expect(r.configIrqs()).toBeGreaterThan(0);
    const requests = r.drv.adjust();
    expect(requests).toBe(8); // 2048 / 256 per request, as Linux
    expect(r.drv.actual()).toBe(2048);
    expect(r.balloon.actualPages).toBe(2048);
    expect(r.balloon.query()).toEqual({ actual: 24 * MiB });
    expect(r.changes.at(-1)).toBe(24 * MiB);
    expect(r.host.framesInUse).toBe(before - 2048);
    expect(r.balloon.counters.inflatedPages).toBe(2048);
    for (const p of r.drv.inBalloon) expect(r.space.frameAt(p * 4096)).toBe(ZERO_FRAME);
    // A page the guest touches again reads zero and gets a fresh frame on write.
    const p0 = r.drv.inBalloon[0];
    expect(r.space.read32(p0 * 4096)).toBe(0);
    expect(r.space.write32(p0 * 4096 + 8, 7)).toBe(true);
    expect(r.host.framesInUse).toBe(before - 2047);
    // Deflate all the way back.
    r.balloon.setTarget(RAM);
    expect(r.drv.numPages()).toBe(0);
    r.drv.adjust();
    expect(r.drv.actual()).toBe(0);
    expect(r.balloon.counters.inflatedPages).toBe(0);
    expect(r.balloon.query()).toEqual({ actual: RAM });
    expect(r.changes.at(-1)).toBe(RAM);
    // No change events with intermediate byte values: each is a multiple of the page size and in range.
    for (const c of r.changes) expect(c % 4096 === 0 && c >= 24 * MiB && c <= RAM).toBe(true);
  });

  it('stats: every tag Linux sends (old and new) with age, polling returns the buffer', () => {
    const r = rig(transport);
    const entries = Array.from({ length: BALLOON_S_NR }, (_, t) => [t, t === BALLOON_S_MEMFREE ? 123 * MiB : 1000 + t] as const);
    r.drv.sendStats([...entries, [99, 5]]); // tag 99 is unknown: skipped
    const s = r.balloon.stats();
    expect(Object.keys(s.stats)).toEqual(BALLOON_STAT_NAMES);
    expect(s.stats['free-memory']).toBe(123 * MiB);
    expect(s.stats['direct-reclaims']).toBe(1015);
    expect(s.age).toBe(0);
    expect(s.pollingInterval).toBe(0);
    r.clock.advance(5000);
    expect(r.balloon.stats().age).toBe(5000);
    expect(r.drv.statsReturned()).toBe(0); // polling off: the device keeps the buffer
    r.balloon.setStatsPollingInterval(2);
    r.clock.advance(1999);
    expect(r.drv.statsReturned()).toBe(0);
    r.clock.advance(1);
    expect(r.drv.statsReturned()).toBe(1);
    r.drv.sendStats([[BALLOON_S_MEMFREE, 7 * MiB]]);
    expect(r.balloon.stats()).toMatchObject({ lastUpdate: 7000, age: 0, pollingInterval: 2 });
    expect(r.balloon.stats().stats['free-memory']).toBe(7 * MiB);
    expect(r.balloon.counters.statsUpdates).toBe(2);
    // Values above 2^32 survive (64-bit field as two halves).
    r.clock.advance(2000);
    r.drv.statsReturned();
    r.drv.sendStats([[5, 6 * 2 ** 32 + 17]]);
    expect(r.balloon.stats().stats['total-memory']).toBe(6 * 2 ** 32 + 17);
  });

  it('free page reporting releases whole reported pages only', () => {
    const r = rig(transport);
    dirty(r.space, POOL);
    const before = r.host.framesInUse;
    const base = POOL[0] * 4096;
    // 2 MiB (512 pages) + a range that starts and ends mid-page (only its 1 whole page goes).
    expect(r.drv.report([[base, 2 * MiB], [base + 2 * MiB + 100, 8192]])).toBe(1);
    expect(r.host.framesInUse).toBe(before - 513);
    expect(r.space.read32(base + 2 * MiB)).not.toBe(0); // the partial first page kept its data
    expect(r.space.read32(base + 2 * MiB + 4096)).toBe(0);
    expect(r.balloon.counters.reportedPages).toBe(513);
  });

  it('free page hints: a run under the current command id reaches the host; a stale id does not', () => {
    const hints: [number, number][] = [];
    const r = rig(transport);
    r.balloon.onFreePageHint = (a, l) => hints.push([a, l]);
    const id = r.balloon.startFreePageHint();
    expect(id).toBeGreaterThanOrEqual(BALLOON_CMD_ID_MIN);
    expect(r.drv.cmdId()).toBe(id);
    r.drv.hint(id - 1, [[0x80_0000, 4 * MiB]]);
    expect(hints).toEqual([]);
    r.drv.hint(id, [[0x80_0000, 4 * MiB], [0xc0_0000, 4 * MiB]]);
    expect(hints).toEqual([
      [0x80_0000, 4 * MiB],
      [0xc0_0000, 4 * MiB],
    ]);
    expect(r.balloon.counters.hintedPages).toBe(2048);
    r.balloon.doneFreePageHint();
    expect(r.drv.cmdId()).toBe(1);
  });
});

describe('queue numbering', () => {
  it('is compact, as Linux numbers the queues of negotiated features', () => {
    const all = BALLOON_F_ALL;
    expect([BQ_INFLATE, BQ_DEFLATE, BQ_STATS, BQ_FREE_PAGE, BQ_REPORTING].map((q) => balloonQueueIndex(all, q))).toEqual([0, 1, 2, 3, 4]);
    expect(balloonQueueIndex(BALLOON_F_REPORTING, BQ_REPORTING)).toBe(2);
    expect(balloonQueueIndex(BALLOON_F_REPORTING | BALLOON_F_STATS_VQ, BQ_REPORTING)).toBe(3);
    expect(balloonQueueIndex(BALLOON_F_REPORTING | BALLOON_F_FREE_PAGE_HINT, BQ_REPORTING)).toBe(3);
    expect(balloonQueueIndex(BALLOON_F_FREE_PAGE_HINT, BQ_FREE_PAGE)).toBe(2);
    expect(balloonQueueIndex(0, BQ_STATS)).toBe(-1);
  });

  it('reporting without stats and hints works on queue 2', () => {
    const r = rig('mmio', BALLOON_F_MUST_TELL_HOST | BALLOON_F_REPORTING);
    expect(r.drv.queue[BQ_REPORTING]).toBe(2);
    expect(r.balloon.queueIndex(BQ_REPORTING)).toBe(2);
    dirty(r.space, POOL.slice(0, 16));
    const before = r.host.framesInUse;
    r.drv.report([[POOL[0] * 4096, 16 * 4096]]);
    expect(r.host.framesInUse).toBe(before - 16);
  });

  it('a device offering fewer features still works with a driver wanting more', () => {
    const r = rig('pci', undefined, BALLOON_F_STATS_VQ);
    expect(r.drv.features & 0x3f).toBe(BALLOON_F_STATS_VQ);
    r.balloon.setNumPages(300);
    r.drv.adjust();
    expect(r.balloon.actualPages).toBe(300);
  });
});

describe('hostile guests', () => {
  it('PFNs outside RAM, huge PFNs and duplicates are counted, never thrown, and never free other memory', () => {
    const r = rig('mmio');
    dirty(r.space, POOL.slice(0, 64));
    const before = r.host.framesInUse;
    r.drv.send(BQ_INFLATE, [RAM / 4096, 0xffff_ffff, 0x8000_0000, RAM / 4096 + 12345]);
    expect(r.balloon.counters.badPfns).toBe(4);
    expect(r.host.framesInUse).toBe(before);
    r.drv.send(BQ_INFLATE, [POOL[0], POOL[0], POOL[1], POOL[0]]);
    expect(r.balloon.counters.inflatedPages).toBe(2);
    expect(r.balloon.counters.duplicatePfns).toBe(2);
    expect(r.host.framesInUse).toBe(before - 2);
    // Deflating a page never inflated, twice, or out of range.
    r.drv.send(BQ_DEFLATE, [POOL[5], POOL[0], POOL[0], 0xffff_ffff]);
    expect(r.balloon.counters.inflatedPages).toBe(1);
    expect(r.balloon.isInflated(POOL[1])).toBe(true);
    expect(r.balloon.isInflated(POOL[0])).toBe(false);
    // An empty buffer and a buffer with a stray 3 bytes.
    r.drv.send(BQ_INFLATE, []);
    const md = r.drv.driver;
    const odd = md.buffer(7, new Uint8Array([POOL[2] & 0xff, (POOL[2] >> 8) & 0xff, 0, 0, 1, 2, 3]));
    md.queues[0].add([odd], []);
    md.kick(0);
    expect(md.drain(0)).toHaveLength(1);
    expect(r.balloon.isInflated(POOL[2])).toBe(true);
  });

  it('actual written by the guest beyond RAM is reported clamped; poison only with PAGE_POISON', () => {
    const r = rig('mmio');
    r.drv.setActual(0xffff_ffff);
    expect(r.changes.at(-1)).toBe(0);
    const q = rig('mmio', BALLOON_F_ALL & ~BALLOON_F_PAGE_POISON);
    q.drv.driver.transport.writeConfig(12, 4, 0xaa);
    expect(q.balloon.poisonValue).toBe(0);
  });

  it('with a poison value, reported pages keep their contents', () => {
    const r = rig('mmio');
    r.drv.setPoison(0xaa);
    expect(r.balloon.poisonValue).toBe(0xaa);
    dirty(r.space, POOL.slice(0, 4));
    const before = r.host.framesInUse;
    r.drv.report([[POOL[0] * 4096, 4 * 4096]]);
    expect(r.host.framesInUse).toBe(before);
    expect(r.balloon.counters.reportSkippedPoison).toBe(4);
  });

  it('random PFN requests: the host balloon set equals a model and pages in it hold no frame', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            inflate: fc.boolean(),
            pfns: fc.array(fc.oneof(fc.integer({ min: POOL[0], max: POOL[0] + 40 }), fc.integer({ min: 0, max: 0xffff_ffff })), { maxLength: 20 }),
          }),
          { maxLength: 12 },
        ),
        (reqs) => {
          const r = rig('mmio');
          const model = new Set<number>();
          // Pages below 1 MiB hold this driver's rings. A guest that balloons one gets it back as a
          // zero page: its avail_event/descriptors are gone, so later requests may never reach the
          // device (as with Linux's driver). From then on only the host's side is checked.
          let ownRingsLost = false;
          for (const q of reqs) {
            if (!ownRingsLost) for (const p of q.pfns) if (p < RAM / 4096 && p >= 256) r.space.write8(p * 4096, 1);
            r.drv.send(q.inflate ? BQ_INFLATE : BQ_DEFLATE, q.pfns);
            if (ownRingsLost) continue;
            for (const p of q.pfns) {
              if (p >= RAM / 4096) continue;
              if (q.inflate) model.add(p);
              else model.delete(p);
            }
            for (const p of q.pfns) if (q.inflate && p < RAM / 4096 && p >= 256) expect(r.space.frameAt(p * 4096)).toBe(ZERO_FRAME);
            if (q.inflate && q.pfns.some((p) => p < 256)) ownRingsLost = true;
          }
          const seen = new Set(reqs.flatMap((q) => q.pfns).filter((p) => p < RAM / 4096));
          if (!ownRingsLost) {
            expect(r.balloon.counters.inflatedPages).toBe(model.size);
            for (const p of model) expect(r.balloon.isInflated(p)).toBe(true);
          }
          // Whatever reached the device: the balloon holds only pages the guest named, counted
          // exactly, and none of them above the ring area owns a host frame (the guest stopped
          // touching pages once its rings were lost).
          let inflated = 0;
          for (const p of seen) {
            if (!r.balloon.isInflated(p)) continue;
            inflated++;
            if (p >= 256) expect(r.space.frameAt(p * 4096)).toBe(ZERO_FRAME);
          }
          expect(r.balloon.counters.inflatedPages).toBe(inflated);
        },
      ),
      { numRuns: 40 },
    );
  });

  it('a reset gives every page back to the guest and reports it', () => {
    const r = rig('mmio');
    r.balloon.setNumPages(512);
    r.drv.adjust();
    expect(r.balloon.actualPages).toBe(512);
    r.drv.driver.transport.setStatus(0);
    expect(r.balloon.actualPages).toBe(0);
    expect(r.balloon.counters.inflatedPages).toBe(0);
    expect(r.changes.at(-1)).toBe(RAM);
    expect(r.balloon.targetPages).toBe(512); // the host's target survives a guest reboot
  });
});

describe('hostile buffers on every queue', () => {
  it('random buffers (any address and length, in and out of RAM, either direction) never throw or break the device', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            queue: fc.nat(4),
            out: fc.array(fc.record({ addr: fc.oneof(fc.integer({ min: 0x10_0000, max: RAM }), fc.integer({ min: 0, max: 2 ** 40 })), len: fc.integer({ min: 1, max: 3 * MiB }) }), { maxLength: 3 }),
            inn: fc.array(fc.record({ addr: fc.oneof(fc.integer({ min: 0x10_0000, max: RAM }), fc.integer({ min: 0, max: 2 ** 40 })), len: fc.integer({ min: 1, max: 3 * MiB }) }), { maxLength: 3 }),
          }),
          { maxLength: 10 },
        ),
        (reqs) => {
          const r = rig('mmio');
          const md = r.drv.driver;
          r.balloon.startFreePageHint();
          for (const q of reqs) {
            if (q.out.length + q.inn.length === 0) continue;
            md.queues[q.queue].add(q.out, q.inn);
            md.kick(q.queue);
            if (q.queue !== BQ_STATS) md.drain(q.queue);
          }
          // Buffers outside RAM break the queue (NEEDS_RESET) in the virtio core; otherwise the
          // device keeps serving. Either way a reset brings it back and inflate works again.
          md.transport.setStatus(0);
          const again = new BalloonDriver(new MockDriver(md.transport, r.space, new GuestAllocator(0x2_0000, 0x10_0000)), POOL.slice(0, 8));
          expect(again.init()).toBe(true);
          r.balloon.setNumPages(8);
          again.adjust();
          expect(r.balloon.actualPages).toBe(8);
          expect(r.balloon.counters.inflatedPages).toBe(8);
        },
      ),
      { numRuns: 60 },
    );
  });
});
