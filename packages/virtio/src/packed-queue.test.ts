import { FlatGuestMemory } from '@ringzero/mmu-ept';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DescriptorChain } from './chain';
import { VIRTQ_DESC_F_AVAIL, VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE } from './constants';
import { checkPackedLayout, PackedQueue } from './packed-queue';
import {
  POP_EMPTY,
  POP_OK,
  QERR_BUFFER_NOT_RAM,
  QERR_CHAIN_TOO_LONG,
  QERR_INDIRECT_LEN,
  QERR_INDIRECT_NEXT,
  QERR_LAYOUT,
  QERR_NESTED_INDIRECT,
  QERR_READ_AFTER_WRITE,
  queueErrorName,
} from './queue';
import { GuestAllocator } from './testing/alloc';
import { DriverPackedQueue, writePackedDesc } from './testing/packed-driver';

function setup(size: number, eventIdx = true) {
  const mem = new FlatGuestMemory(1 << 20);
  const alloc = new GuestAllocator(0x1000, mem.limit);
  const drv = new DriverPackedQueue(mem, alloc, size);
  expect(checkPackedLayout(mem, size, 1024, drv.desc, drv.driverArea, drv.deviceArea)).toBe(0);
  const q = new PackedQueue(mem, size, drv.desc, drv.driverArea, drv.deviceArea, eventIdx, true);
  return { mem, alloc, drv, q, chain: new DescriptorChain() };
}

describe('PackedQueue', () => {
  it('round-trips chains over several wraps with a size that is not a power of two', () => {
    const { alloc, drv, q, chain, mem } = setup(5);
    const r = alloc.alloc(8);
    const w = alloc.alloc(8);
    mem.writeFrom(r, new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]));
    for (let i = 0; i < 23; i++) {
      const id = drv.add([{ addr: r, len: 8 }], [{ addr: w, len: 4 }, { addr: w + 4, len: 4 }], i % 3 === 0);
      expect(id).toBeGreaterThanOrEqual(0);
      expect(q.pop(chain)).toBe(POP_OK);
      expect(chain.head).toBe(id);
      expect(chain.slots).toBe(i % 3 === 0 ? 1 : 3);
      expect(chain.readableBytes).toBe(8);
      expect(chain.writableBytes).toBe(8);
      expect(q.pop(chain)).toBe(POP_EMPTY);
      q.pushUsed(chain, 8 + i);
      expect(drv.getUsed()).toEqual({ id, len: 8 + i });
    }
    expect(q.availWrap).toBe(drv.availWrap);
  });

  it('completes out of order: used descriptors are written in ring order, ids say which buffer', () => {
    const { alloc, drv, q } = setup(8);
    const b = alloc.alloc(16);
    const ids = [0, 1, 2].map(() => drv.add([], [{ addr: b, len: 16 }, { addr: b, len: 16 }]));
    const chains = ids.map(() => {
      const c = new DescriptorChain();
      expect(q.pop(c)).toBe(POP_OK);
      return c;
    });
    q.pushUsed(chains[2], 1);
    q.pushUsed(chains[0], 2);
    q.pushUsed(chains[1], 3);
    expect([drv.getUsed(), drv.getUsed(), drv.getUsed(), drv.getUsed()]).toEqual([
      { id: ids[2], len: 1 },
      { id: ids[0], len: 2 },
      { id: ids[1], len: 3 },
      null,
    ]);
  });

  it('event suppression: ENABLE and DISABLE from the driver, and the device side structure', () => {
    const { alloc, drv, q, chain } = setup(4);
    const b = alloc.alloc(8);
    drv.add([], [{ addr: b, len: 8 }]);
    q.pop(chain);
    q.pushUsed(chain, 0);
    expect(q.needsNotification()).toBe(true);
    expect(q.needsNotification()).toBe(false);
    drv.setEventSuppression('disable');
    drv.getUsed();
    drv.add([], [{ addr: b, len: 8 }]);
    q.pop(chain);
    q.pushUsed(chain, 0);
    expect(q.needsNotification()).toBe(false);
    q.disableNotification();
    expect(drv.deviceEventFlags).toBe(1);
    expect(q.enableNotification()).toBe(false);
    expect(drv.deviceEventFlags).toBe(2); // DESC mode with EVENT_IDX
    const q2 = setup(4, false);
    q2.q.enableNotification();
    expect(q2.drv.deviceEventFlags).toBe(0);
  });

  it('event suppression DESC: interrupts exactly when the used position passes the event (any size, across wraps)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 2, max: 10 }),
        fc.array(fc.tuple(fc.integer({ min: 0, max: 2 }), fc.integer({ min: -1, max: 9 })), { minLength: 1, maxLength: 30 }),
        (size, steps) => {
          const { alloc, drv, q, chain } = setup(size);
          const b = alloc.alloc(8);
          let used = 0; // absolute used position
          for (const [n, rel] of steps) {
            const old = used;
            const target = old + (rel % size); // absolute event position, at most one lap ahead
            const lap = Math.floor(target / size);
            drv.setEventSuppression({ off: ((target % size) + size) % size, wrap: lap % 2 === 0 });
            for (let i = 0; i < n; i++) {
              drv.add([], [{ addr: b, len: 8 }]);
              expect(q.pop(chain)).toBe(POP_OK);
              q.pushUsed(chain, 0);
              drv.getUsed();
              used++;
            }
            const expected = target >= old && target < used;
            expect(q.needsNotification()).toBe(expected);
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('checkPackedLayout accepts any size up to the maximum and refuses 0, misalignment and rings outside RAM', () => {
    const mem = new FlatGuestMemory(1 << 16);
    expect(checkPackedLayout(mem, 7, 1024, 0, 0x1000, 0x1004)).toBe(0);
    expect(checkPackedLayout(mem, 0, 1024, 0, 0x1000, 0x1004)).toBe(QERR_LAYOUT);
    expect(checkPackedLayout(mem, 1025, 1024, 0, 0x1000, 0x1004)).toBe(QERR_LAYOUT);
    expect(checkPackedLayout(mem, 7, 1024, 8, 0x1000, 0x1004)).toBe(QERR_LAYOUT);
    expect(checkPackedLayout(mem, 7, 1024, 0, 0x1002, 0x1004)).toBe(QERR_LAYOUT);
    expect(checkPackedLayout(mem, 7, 1024, 0, 0x1000, 0xfffe)).toBe(QERR_LAYOUT);
  });
});

describe('PackedQueue against hostile rings', () => {
  const A = VIRTQ_DESC_F_AVAIL; // first lap: AVAIL set, USED clear
  const cases: [string, (m: FlatGuestMemory, ring: number, b: number, t: number, size: number) => void, number][] = [
    ['every descriptor chained to the next (a chain as long as the ring)', (m, ring, b, _t, size) => {
      for (let i = 0; i < size; i++) writePackedDesc(m, ring, i, b, 8, 0, A | VIRTQ_DESC_F_NEXT);
    }, QERR_CHAIN_TOO_LONG],
    ['indirect inside indirect', (m, ring, _b, t) => {
      writePackedDesc(m, t, 0, t, 16, 0, VIRTQ_DESC_F_INDIRECT);
      writePackedDesc(m, ring, 0, t, 16, 0, A | VIRTQ_DESC_F_INDIRECT);
    }, QERR_NESTED_INDIRECT],
    ['INDIRECT with NEXT', (m, ring, _b, t) => writePackedDesc(m, ring, 0, t, 16, 0, A | VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_NEXT), QERR_INDIRECT_NEXT],
    ['indirect length not a multiple of 16', (m, ring, _b, t) => writePackedDesc(m, ring, 0, t, 24, 0, A | VIRTQ_DESC_F_INDIRECT), QERR_INDIRECT_LEN],
    ['buffer outside RAM', (m, ring) => writePackedDesc(m, ring, 0, m.limit, 1, 0, A), QERR_BUFFER_NOT_RAM],
    ['readable after writable', (m, ring, b) => {
      writePackedDesc(m, ring, 1, b, 8, 0, A);
      writePackedDesc(m, ring, 0, b, 8, 0, A | VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT);
    }, QERR_READ_AFTER_WRITE],
  ];
  for (const [name, build, code] of cases) {
    it(`${name} → ${queueErrorName(code)}`, () => {
      const { mem, alloc, drv, q, chain } = setup(6);
      const b = alloc.alloc(64);
      const t = alloc.alloc(256);
      build(mem, drv.desc, b, t, 6);
      expect(q.pop(chain)).toBe(code);
      expect(q.pop(chain)).toBe(code);
      expect(q.pushUsed(chain, 0)).toBe(false);
    });
  }

  it('a descriptor whose AVAIL/USED bits do not match the wrap counter is not available', () => {
    const { mem, alloc, drv, q, chain } = setup(4);
    const b = alloc.alloc(8);
    writePackedDesc(mem, drv.desc, 0, b, 8, 0, VIRTQ_DESC_F_AVAIL | (1 << 15));
    expect(q.pop(chain)).toBe(POP_EMPTY);
    writePackedDesc(mem, drv.desc, 0, b, 8, 0, 0);
    expect(q.pop(chain)).toBe(POP_EMPTY);
  });
});
