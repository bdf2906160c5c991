import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Veb, VEB_UPLINK } from './veb';

const mac = (n: number): Uint8Array => Uint8Array.of(0x52, 0x54, 0, 0, (n >> 8) & 0xff, n & 0xff);
function frame(dst: Uint8Array, src: Uint8Array, tag: number): Uint8Array {
  const f = new Uint8Array(60);
  f.set(dst, 0);
  f.set(src, 6);
  f[14] = tag;
  return f;
}

function rig() {
  const veb = new Veb();
  const got: number[][] = [[], [], [], []];
  const sink = (i: number) => ({ deliver: (b: Uint8Array, o: number): boolean => (got[i].push(b[o + 14]), true) });
  veb.setUplink(sink(0));
  const p1 = veb.addPort(sink(1), mac(1));
  const p2 = veb.addPort(sink(2), mac(2));
  const p3 = veb.addPort(sink(3), mac(3));
  return { veb, got, p1, p2, p3 };
}

describe('embedded switch (VEB)', () => {
  it('switches by configured MAC, floods broadcast, sends unknown unicast up, learns hosts behind the uplink', () => {
    const { veb, got, p1, p3 } = rig();
    veb.input(p1, frame(mac(3), mac(1), 1), 0, 60);
    expect(got).toEqual([[], [], [], [1]]);
    veb.input(p3, frame(new Uint8Array(6).fill(0xff), mac(3), 2), 0, 60);
    expect(got).toEqual([[2], [2], [2], [1]]);
    veb.input(p1, frame(mac(99), mac(1), 3), 0, 60); // unknown: up only
    expect(got[0]).toEqual([2, 3]);
    veb.input(VEB_UPLINK, frame(mac(1), mac(99), 4), 0, 60); // learns 99 on the uplink
    expect(got[1]).toEqual([2, 4]);
    veb.input(VEB_UPLINK, frame(mac(99), mac(98), 5), 0, 60); // to a host behind the uplink: dropped, not flooded in
    expect(got[1]).toEqual([2, 4]);
    veb.input(VEB_UPLINK, frame(mac(77), mac(98), 6), 0, 60); // unknown from the uplink: to every function
    expect(got.slice(1).map((g) => g.at(-1))).toEqual([6, 6, 6]);
    expect(veb.stats).toEqual({ local: 3, toUplink: 2, fromUplink: 4, dropped: 1, runts: 0 });
    veb.input(p1, new Uint8Array(10), 0, 10);
    expect(veb.stats.runts).toBe(1);
  });

  it('a learned source never takes over a function MAC; removed ports stop receiving', () => {
    const { veb, got, p1, p2 } = rig();
    veb.input(VEB_UPLINK, frame(mac(5), mac(2), 1), 0, 60); // spoofs function 2's MAC from outside
    veb.input(p1, frame(mac(2), mac(1), 2), 0, 60);
    expect(got[2]).toContain(2);
    veb.removePort(p2);
    veb.input(p1, frame(mac(2), mac(1), 3), 0, 60);
    expect(got[2]).not.toContain(3);
    expect(got[0]).toContain(3); // unknown now: up
    // A flood of source MACs from outside: the learned table resets when full, function MACs stay.
    for (let n = 1000; n < 7000; n++) veb.input(VEB_UPLINK, frame(mac(1), mac(n), 4), 0, 60);
    veb.input(p1, frame(mac(6999), mac(1), 5), 0, 60);
    expect(got[0].at(-1)).toBe(5);
    expect(got[1].filter((t) => t === 4).length).toBe(6000);
  });

  it('fuzz: any frames keep the counters consistent and the learned table bounded (no throw)', () => {
    fc.assert(
      fc.property(fc.array(fc.record({ from: fc.integer({ min: 0, max: 3 }), dst: fc.integer({ min: 0, max: 20000 }), src: fc.integer({ min: 0, max: 20000 }), len: fc.integer({ min: 0, max: 64 }) }), { maxLength: 200 }), (ops) => {
        const { veb, got } = rig();
        for (const o of ops) {
          const f = frame(mac(o.dst), mac(o.src), 7);
          if (o.dst === 0) f.fill(0xff, 0, 6);
          veb.input(o.from, f, 0, Math.min(o.len, f.length));
        }
        const delivered = got.reduce((s, g) => s + g.length, 0);
        expect(delivered).toBe(veb.stats.local + veb.stats.toUplink + veb.stats.fromUplink);
      }),
      { numRuns: 100 },
    );
  });
});
