import { FlatGuestMemory } from '@ringzero/mmu-ept';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DescriptorChain } from './chain';
import { VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE } from './constants';
import {
  POP_EMPTY,
  POP_OK,
  QERR_AVAIL_IDX,
  QERR_BUFFER_NOT_RAM,
  QERR_CHAIN_TOO_BIG,
  QERR_CHAIN_TOO_LONG,
  QERR_HEAD_RANGE,
  QERR_INDIRECT_LEN,
  QERR_INDIRECT_NEXT,
  QERR_INDIRECT_NOT_NEGOTIATED,
  QERR_LAYOUT,
  QERR_NESTED_INDIRECT,
  QERR_NEXT_RANGE,
  QERR_READ_AFTER_WRITE,
  queueErrorName,
} from './queue';
import { checkSplitLayout, SplitQueue } from './split-queue';
import { GuestAllocator } from './testing/alloc';
import { DriverSplitQueue, writeSplitDesc } from './testing/split-driver';

function setup(size = 8, opts: { eventIdx?: boolean; indirect?: boolean; memSize?: number } = {}) {
  const mem = new FlatGuestMemory(opts.memSize ?? 1 << 20);
  const alloc = new GuestAllocator(0x1000, mem.limit);
  const drv = new DriverSplitQueue(mem, alloc, size);
  expect(checkSplitLayout(mem, size, 1024, drv.desc, drv.avail, drv.used)).toBe(0);
  const q = new SplitQueue(mem, size, drv.desc, drv.avail, drv.used, opts.eventIdx ?? false, opts.indirect ?? true);
  return { mem, alloc, drv, q, chain: new DescriptorChain(2) };
}

describe('SplitQueue', () => {
  it('pops a chain, exposes readable then writable bytes, and returns it through the used ring', () => {
    const { mem, alloc, drv, q, chain } = setup();
    const a = alloc.alloc(5);
    const b = alloc.alloc(3);
    const w1 = alloc.alloc(4);
    const w2 = alloc.alloc(6);
    mem.writeFrom(a, new Uint8Array([1, 2, 3, 4, 5]));
    mem.writeFrom(b, new Uint8Array([6, 7, 8]));
    const head = drv.add([{ addr: a, len: 5 }, { addr: b, len: 3 }], [{ addr: w1, len: 4 }, { addr: w2, len: 6 }]);
    expect(q.hasAvailable()).toBe(true);
    expect(q.pop(chain)).toBe(POP_OK);
    expect(chain.head).toBe(head);
    expect(chain.count).toBe(4);
    expect(chain.readableBytes).toBe(8);
    expect(chain.writableBytes).toBe(10);
    const got = new Uint8Array(6);
    expect(chain.read(mem, 2, got, 0, 6)).toBe(true);
    expect([...got]).toEqual([3, 4, 5, 6, 7, 8]);
    expect(chain.read(mem, 3, got, 0, 6)).toBe(false);
    expect(chain.write(mem, 2, new Uint8Array([9, 9, 9, 9]), 0, 4)).toBe(true);
    expect([...mem.bytes.subarray(w1, w1 + 4)]).toEqual([0, 0, 9, 9]);
    expect([...mem.bytes.subarray(w2, w2 + 2)]).toEqual([9, 9]);
    expect(chain.locate(true, 4, 6)).toBe(w2);
    expect(chain.locate(true, 3, 2)).toBe(-1);
    expect(q.pop(chain)).toBe(POP_EMPTY);
    expect(q.pushUsed(chain, 6)).toBe(true);
    expect(drv.getUsed()).toEqual({ id: head, len: 6 });
    expect(drv.getUsed()).toBeNull();
  });

  it('walks indirect tables when INDIRECT_DESC is negotiated and refuses them otherwise', () => {
    const { mem, alloc, drv, q, chain } = setup();
    const a = alloc.alloc(16);
    const w = alloc.alloc(16);
    drv.add([{ addr: a, len: 16 }], [{ addr: w, len: 16 }], true);
    expect(q.pop(chain)).toBe(POP_OK);
    expect(chain.readableBytes).toBe(16);
    expect(chain.writableBytes).toBe(16);
    expect(chain.locate(false, 0, 16)).toBe(a);
    const s2 = setup(8, { indirect: false });
    s2.drv.add([{ addr: a, len: 16 }], [], true);
    expect(s2.q.pop(s2.chain)).toBe(QERR_INDIRECT_NOT_NEGOTIATED);
    void mem;
  });

  it('keeps working across the 16-bit index wrap', () => {
    const mem = new FlatGuestMemory(1 << 16);
    const alloc = new GuestAllocator(0x100, mem.limit);
    const drv = new DriverSplitQueue(mem, alloc, 4);
    drv.availIdx = 0xfffe;
    drv.lastUsed = 0xfffe;
    mem.write16(drv.used + 2, 0xfffe);
    const q = new SplitQueue(mem, 4, drv.desc, drv.avail, drv.used, true, false, 0xfffe, 0xfffe);
    const chain = new DescriptorChain();
    const buf = alloc.alloc(8);
    for (let i = 0; i < 10; i++) {
      const h = drv.add([], [{ addr: buf, len: 8 }]);
      expect(q.pop(chain)).toBe(POP_OK);
      expect(chain.head).toBe(h);
      expect(q.pushUsed(chain, i)).toBe(true);
      expect(drv.getUsed()).toEqual({ id: h, len: i });
      expect(drv.availEvent).toBe(q.lastAvail);
    }
    expect(q.lastAvail).toBe(8);
  });

  it('mark/rewind un-pops chains', () => {
    const { alloc, drv, q, chain } = setup();
    const w = alloc.alloc(8);
    const h1 = drv.add([], [{ addr: w, len: 8 }]);
    drv.add([], [{ addr: w, len: 8 }]);
    q.mark();
    expect(q.pop(chain)).toBe(POP_OK);
    expect(q.pop(chain)).toBe(POP_OK);
    q.rewind();
    expect(q.pop(chain)).toBe(POP_OK);
    expect(chain.head).toBe(h1);
  });

  it('VIRTQ_AVAIL_F_NO_INTERRUPT suppresses notifications without EVENT_IDX', () => {
    const { alloc, drv, q, chain } = setup();
    const w = alloc.alloc(8);
    drv.add([], [{ addr: w, len: 8 }]);
    q.pop(chain);
    q.pushUsed(chain, 0);
    drv.setNoInterrupt(true);
    expect(q.needsNotification()).toBe(false);
    drv.add([], [{ addr: w, len: 8 }]);
    q.pop(chain);
    q.pushUsed(chain, 0);
    drv.setNoInterrupt(false);
    expect(q.needsNotification()).toBe(true);
    expect(q.needsNotification()).toBe(false); // nothing new since
    q.disableNotification();
    expect(drv.noNotify).toBe(true);
    expect(q.enableNotification()).toBe(false);
    expect(drv.noNotify).toBe(false);
  });

  it('EVENT_IDX: interrupts exactly when used_event lies in [old, new) (spec §2.7.10, modulo 2^16)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 0xffff }),
        fc.array(fc.tuple(fc.integer({ min: 0, max: 8 }), fc.integer({ min: 0, max: 0xffff })), { minLength: 1, maxLength: 20 }),
        (start, steps) => {
          const mem = new FlatGuestMemory(1 << 16);
          const alloc = new GuestAllocator(0x100, mem.limit);
          const drv = new DriverSplitQueue(mem, alloc, 8);
          drv.availIdx = start;
          mem.write16(drv.avail + 2, start);
          const q = new SplitQueue(mem, 8, drv.desc, drv.avail, drv.used, true, false, start, start);
          const chain = new DescriptorChain();
          const buf = alloc.alloc(4);
          let used = start;
          for (const [n, evOff] of steps) {
            const old = used;
            for (let i = 0; i < n; i++) {
              drv.add([], [{ addr: buf, len: 4 }]);
              expect(q.pop(chain)).toBe(POP_OK);
              q.pushUsed(chain, 0);
              drv.getUsed();
              used = (used + 1) & 0xffff;
            }
            const ev = (old + (evOff % 12) - 2) & 0xffff;
            drv.setUsedEvent(ev);
            const distance = (ev - old) & 0xffff;
            const expected = distance < ((used - old) & 0xffff);
            expect(q.needsNotification()).toBe(expected);
          }
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe('SplitQueue against hostile rings', () => {
  function raw(size = 8, indirect = true) {
    const s = setup(size, { indirect });
    const buf = s.alloc.alloc(64);
    return { ...s, buf };
  }

  it('a descriptor loop ends with QERR_CHAIN_TOO_LONG', () => {
    const { mem, drv, q, chain, buf } = raw();
    writeSplitDesc(mem, drv.desc, 0, buf, 8, VIRTQ_DESC_F_NEXT, 1);
    writeSplitDesc(mem, drv.desc, 1, buf, 8, VIRTQ_DESC_F_NEXT, 0);
    drv.publishHead(0);
    expect(q.pop(chain)).toBe(QERR_CHAIN_TOO_LONG);
    expect(q.error).toBe(QERR_CHAIN_TOO_LONG);
    expect(q.pop(chain)).toBe(QERR_CHAIN_TOO_LONG); // stays broken
    expect(q.pushUsed(chain, 0)).toBe(false);
    expect(chain.count).toBeLessThanOrEqual(8);
    expect(queueErrorName(q.error)).toMatch(/loop/);
  });

  it('a loop inside an indirect table ends too', () => {
    const { mem, alloc, drv, q, chain, buf } = raw();
    const t = alloc.alloc(64);
    for (let i = 0; i < 4; i++) writeSplitDesc(mem, t, i, buf, 8, VIRTQ_DESC_F_NEXT, (i + 1) % 4);
    writeSplitDesc(mem, drv.desc, 0, t, 64, VIRTQ_DESC_F_INDIRECT, 0);
    drv.publishHead(0);
    expect(q.pop(chain)).toBe(QERR_CHAIN_TOO_LONG);
  });

  const cases: [string, (m: FlatGuestMemory, d: DriverSplitQueue, buf: number, t: number) => void, number][] = [
    ['next index past the table', (m, d, b) => writeSplitDesc(m, d.desc, 0, b, 8, VIRTQ_DESC_F_NEXT, 8), QERR_NEXT_RANGE],
    ['indirect inside indirect', (m, d, b, t) => {
      writeSplitDesc(m, t, 0, t, 16, VIRTQ_DESC_F_INDIRECT, 0);
      writeSplitDesc(m, d.desc, 0, t, 16, VIRTQ_DESC_F_INDIRECT, 0);
      void b;
    }, QERR_NESTED_INDIRECT],
    ['INDIRECT together with NEXT', (m, d, _b, t) => writeSplitDesc(m, d.desc, 0, t, 16, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_NEXT, 1), QERR_INDIRECT_NEXT],
    ['indirect length not a multiple of 16', (m, d, _b, t) => writeSplitDesc(m, d.desc, 0, t, 20, VIRTQ_DESC_F_INDIRECT, 0), QERR_INDIRECT_LEN],
    ['indirect length zero', (m, d, _b, t) => writeSplitDesc(m, d.desc, 0, t, 0, VIRTQ_DESC_F_INDIRECT, 0), QERR_INDIRECT_LEN],
    ['indirect table longer than the queue', (m, d, _b, t) => writeSplitDesc(m, d.desc, 0, t, 16 * 9, VIRTQ_DESC_F_INDIRECT, 0), QERR_INDIRECT_LEN],
    ['buffer past the end of RAM', (m, d) => writeSplitDesc(m, d.desc, 0, m.limit - 4, 8, 0, 0), QERR_BUFFER_NOT_RAM],
    ['buffer at an address above 2^53', (m, d) => {
      m.write64(d.desc, 0, 0xffff_ffff);
      m.write32(d.desc + 8, 8);
      m.write16(d.desc + 12, 0);
    }, QERR_BUFFER_NOT_RAM],
    ['readable descriptor after a writable one', (m, d, b) => {
      writeSplitDesc(m, d.desc, 0, b, 8, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 1);
      writeSplitDesc(m, d.desc, 1, b, 8, 0, 0);
    }, QERR_READ_AFTER_WRITE],
    ['lengths that overflow 2^32 in total', (m, d, b) => {
      writeSplitDesc(m, d.desc, 0, b, 0x20, VIRTQ_DESC_F_NEXT, 1);
      writeSplitDesc(m, d.desc, 1, b, 0xffff_fff0, 0, 0);
    }, QERR_CHAIN_TOO_BIG],
  ];
  for (const [name, build, code] of cases) {
    it(`${name} → ${queueErrorName(code)}`, () => {
      const { mem, alloc, drv, q, chain, buf } = raw();
      const t = alloc.alloc(16 * 16);
      build(mem, drv, buf, t);
      drv.publishHead(0);
      expect(q.pop(chain)).toBe(code);
    });
  }

  it('a head index out of range and an available index that jumps are refused', () => {
    const a = raw();
    a.drv.publishHead(8);
    expect(a.q.pop(a.chain)).toBe(QERR_HEAD_RANGE);
    const b = raw();
    b.mem.write16(b.drv.avail + 2, 9);
    expect(b.q.pop(b.chain)).toBe(QERR_AVAIL_IDX);
  });

  it('checkSplitLayout refuses non-powers of two, misalignment and rings outside RAM', () => {
    const mem = new FlatGuestMemory(1 << 16);
    expect(checkSplitLayout(mem, 3, 1024, 0, 0x1000, 0x2000)).toBe(QERR_LAYOUT);
    expect(checkSplitLayout(mem, 0, 1024, 0, 0x1000, 0x2000)).toBe(QERR_LAYOUT);
    expect(checkSplitLayout(mem, 2048, 1024, 0, 0x1000, 0x2000)).toBe(QERR_LAYOUT);
    expect(checkSplitLayout(mem, 4, 1024, 8, 0x1000, 0x2000)).toBe(QERR_LAYOUT);
    expect(checkSplitLayout(mem, 4, 1024, 0, 0x1001, 0x2000)).toBe(QERR_LAYOUT);
    expect(checkSplitLayout(mem, 4, 1024, 0, 0x1000, 0x2002)).toBe(QERR_LAYOUT);
    expect(checkSplitLayout(mem, 4, 1024, 0, 0x1000, 0xfff0)).toBe(QERR_LAYOUT);
    expect(checkSplitLayout(mem, 4, 1024, 0, 0x1000, 0x2000)).toBe(0);
  });

  it('descriptors rewritten after pop do not change the popped chain (snapshot, no TOCTOU)', () => {
    const { mem, drv, q, chain, buf } = raw();
    writeSplitDesc(mem, drv.desc, 0, buf, 8, VIRTQ_DESC_F_WRITE, 0);
    drv.publishHead(0);
    expect(q.pop(chain)).toBe(POP_OK);
    writeSplitDesc(mem, drv.desc, 0, 0, 0xffff_ffff, VIRTQ_DESC_F_WRITE, 0);
    expect(chain.writableBytes).toBe(8);
    expect(chain.write(mem, 0, new Uint8Array(9), 0, 9)).toBe(false);
    expect(chain.write(mem, 0, new Uint8Array(8).fill(7), 0, 8)).toBe(true);
    expect(mem.bytes[0]).toBe(0);
  });
});
