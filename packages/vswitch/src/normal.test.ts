import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Bridge } from './bridge.js';
import type { Port } from './port.js';
import { ethFrame, FrameRecorder, frameVlan } from './testing.js';

const fr = (f: Uint8Array): [Uint8Array, number, number] => [f, 0, f.length];
const A = '02:00:00:00:00:0a';
const B = '02:00:00:00:00:0b';
const C = '02:00:00:00:00:0c';
const BCAST = 'ff:ff:ff:ff:ff:ff';

function setup(n: number, opts: Parameters<Bridge['addPort']>[2][] = []) {
  const br = new Bridge({ name: 'br0' });
  const sinks: FrameRecorder[] = [];
  const ports = [];
  for (let i = 0; i < n; i++) {
    const s = new FrameRecorder();
    sinks.push(s);
    ports.push(br.addPort(`p${i + 1}`, s, opts[i] ?? {}));
  }
  return { br, sinks, ports };
}

describe('NORMAL switching', () => {
  it('floods unknown unicast, learns, then forwards to one port only', () => {
    const { br, sinks, ports } = setup(3);
    ports[0].receive(...fr(ethFrame({ dst: B, src: A })));
    expect(sinks.map((s) => s.count)).toEqual([0, 1, 1]);
    ports[1].receive(...fr(ethFrame({ dst: A, src: B })));
    expect(sinks.map((s) => s.count)).toEqual([1, 1, 1]);
    ports[0].receive(...fr(ethFrame({ dst: B, src: A })));
    expect(sinks.map((s) => s.count)).toEqual([1, 2, 1]);
    expect(br.macEntries().map((e) => [e.mac, e.port])).toEqual([
      [A, 1],
      [B, 2],
    ]);
    expect(ports[0].stats()).toMatchObject({ rxPackets: 2, rxBytes: 120, txPackets: 1, txBytes: 60 });
  });

  it('floods broadcast and multicast, never back to the input port', () => {
    const { sinks, ports } = setup(4);
    ports[2].receive(...fr(ethFrame({ dst: BCAST, src: A })));
    ports[2].receive(...fr(ethFrame({ dst: '01:00:5e:00:00:01', src: A })));
    expect(sinks.map((s) => s.count)).toEqual([2, 2, 0, 2]);
  });

  it('accepts frames at an offset inside a bigger buffer and does not modify them', () => {
    const { sinks, ports } = setup(2);
    const f = ethFrame({ dst: B, src: A });
    const big = new Uint8Array(200);
    big.set(f, 37);
    const copy = big.slice();
    ports[0].receive(big, 37, 60);
    expect(sinks[1].frames[0]).toEqual(f);
    expect(big).toEqual(copy);
  });

  it('counts runts and oversize frames as rx errors and back-pressure as tx drops', () => {
    const { sinks, ports } = setup(2);
    ports[0].receive(new Uint8Array(10), 0, 10);
    ports[0].receive(new Uint8Array(10), 5, 10);
    expect(ports[0].stats().rxErrors).toBe(2);
    sinks[1].accept = false;
    ports[0].receive(...fr(ethFrame({ dst: BCAST, src: A })));
    expect(ports[1].stats()).toMatchObject({ txDropped: 1, txPackets: 0 });
  });

  it('ages MAC entries after the ageing time (300 s default)', () => {
    const { br, sinks, ports } = setup(3);
    ports[1].receive(...fr(ethFrame({ dst: BCAST, src: B })));
    for (const s of sinks) s.clear();
    br.tick(299_000);
    ports[0].receive(...fr(ethFrame({ dst: B, src: A })));
    expect(sinks.map((s) => s.count)).toEqual([0, 1, 0]);
    br.tick(299_000 + 301_000);
    ports[2].receive(...fr(ethFrame({ dst: B, src: C })));
    expect(sinks.map((s) => s.count)).toEqual([1, 2, 0]);
    expect(br.macEntries().some((e) => e.mac === B)).toBe(false);
  });

  it('evicts the oldest entry when the MAC table is full', () => {
    const br = new Bridge({ macTableSize: 4 });
    const s1 = new FrameRecorder();
    const p1 = br.addPort('p1', s1);
    br.addPort('p2', new FrameRecorder());
    for (let i = 0; i < 10; i++) p1.receive(ethFrame({ dst: BCAST, src: `02:00:00:00:01:${i.toString(16).padStart(2, '0')}` }), 0, 60);
    expect(br.macTable.size).toBe(4);
    expect(br.macTable.evictions).toBe(6);
    expect(br.macEntries().map((e) => e.mac)).toEqual(['02:00:00:00:01:06', '02:00:00:00:01:07', '02:00:00:00:01:08', '02:00:00:00:01:09']);
  });

  it('relearns a MAC that moves to another port', () => {
    const { br, ports } = setup(2);
    ports[0].receive(...fr(ethFrame({ dst: BCAST, src: A })));
    ports[1].receive(...fr(ethFrame({ dst: BCAST, src: A })));
    expect(br.macEntries()).toMatchObject([{ mac: A, port: 2 }]);
  });
});

describe('VLANs', () => {
  it('access ports only talk within their VLAN; trunks carry tags', () => {
    const { sinks, ports } = setup(4, [{ tag: 10 }, { tag: 10 }, { tag: 20 }, { trunks: [10, 20] }]);
    ports[0].receive(...fr(ethFrame({ dst: BCAST, src: A })));
    expect(sinks.map((s) => s.count)).toEqual([0, 1, 0, 1]);
    expect(frameVlan(sinks[1].frames[0])).toBe(-1);
    expect(frameVlan(sinks[3].frames[0])).toBe(10);
    expect(sinks[3].frames[0].length).toBe(64);
    // From the trunk, tagged 20: only the VLAN-20 access port gets it, untagged.
    ports[3].receive(...fr(ethFrame({ dst: BCAST, src: B, vlan: 20 })));
    expect(sinks.map((s) => s.count)).toEqual([0, 1, 1, 1]);
    expect(frameVlan(sinks[2].frames[0])).toBe(-1);
    expect(sinks[2].frames[0].length).toBe(56);
    expect(sinks[2].frames[0].subarray(0, 12)).toEqual(ethFrame({ dst: BCAST, src: B }).subarray(0, 12));
  });

  it('drops tagged frames on access ports and disallowed VLANs on trunks', () => {
    const { sinks, ports } = setup(3, [{ tag: 10 }, { trunks: [10] }, { tag: 10 }]);
    ports[0].receive(...fr(ethFrame({ dst: BCAST, src: A, vlan: 30 })));
    ports[1].receive(...fr(ethFrame({ dst: BCAST, src: A, vlan: 30 })));
    ports[1].receive(...fr(ethFrame({ dst: BCAST, src: A }))); // untagged = VLAN 0, not trunked
    expect(sinks.map((s) => s.count)).toEqual([0, 0, 0]);
    expect(ports[0].stats().rxDropped + ports[1].stats().rxDropped).toBe(3);
  });

  it('priority-tagged (VID 0) frames on an access port join the access VLAN', () => {
    const { sinks, ports } = setup(2, [{ tag: 5 }, { tag: 5 }]);
    ports[0].receive(...fr(ethFrame({ dst: BCAST, src: A, vlan: 0, pcp: 3 })));
    expect(sinks[1].count).toBe(1);
    expect(frameVlan(sinks[1].frames[0])).toBe(-1);
  });

  it('native-untagged and native-tagged trunks', () => {
    const { sinks, ports } = setup(3, [{ tag: 7, vlanMode: 'native-untagged', trunks: [8] }, { tag: 7, vlanMode: 'native-tagged', trunks: [8] }, { trunks: [7, 8] }]);
    ports[2].receive(...fr(ethFrame({ dst: BCAST, src: A, vlan: 7 })));
    expect(frameVlan(sinks[0].frames[0])).toBe(-1);
    expect(frameVlan(sinks[1].frames[0])).toBe(7);
    ports[2].receive(...fr(ethFrame({ dst: BCAST, src: A, vlan: 8 })));
    expect(frameVlan(sinks[0].frames[1])).toBe(8);
    expect(frameVlan(sinks[1].frames[1])).toBe(8);
    // Untagged into native-untagged joins VLAN 7 and leaves the plain trunk tagged 7.
    ports[0].receive(...fr(ethFrame({ dst: BCAST, src: B })));
    expect(frameVlan(sinks[2].frames[0])).toBe(7);
  });

  it('the same MAC is learned separately per VLAN', () => {
    const { br, ports } = setup(3, [{ trunks: [1, 2] }, { tag: 1 }, { tag: 2 }]);
    ports[1].receive(...fr(ethFrame({ dst: BCAST, src: A })));
    ports[2].receive(...fr(ethFrame({ dst: BCAST, src: A })));
    expect(br.macEntries().map((e) => [e.vlan, e.port]).sort()).toEqual([
      [1, 2],
      [2, 3],
    ]);
  });
});

describe('loop safety', () => {
  it('a cable between two ports of the same bridge does not recurse without bound', () => {
    const br = new Bridge();
    const s = new FrameRecorder();
    br.addPort('p1', s);
    // p2 and p3 are wired to each other: whatever leaves p2 enters p3 and vice versa.
    const wire: { a?: Port; b?: Port } = {};
    wire.a = br.addPort('p2', { deliver: (b, o, l) => (wire.b!.receive(b, o, l), true) });
    wire.b = br.addPort('p3', { deliver: (b, o, l) => (wire.a!.receive(b, o, l), true) });
    br.port('p1')!.receive(...fr(ethFrame({ dst: BCAST, src: A })));
    const st = br.stats();
    expect(st.loopDrops).toBeGreaterThan(0);
    expect(s.count).toBeLessThan(20);
    expect(s.count).toBeGreaterThan(0);
  });

  it('the cached NORMAL decision follows MAC moves, ageing and refreshes (same outputs as without caches)', () => {
    // Random traffic among 3 MACs on 3 ports with clock steps around the ageing time: the EMC
    // memo of NORMAL must give exactly what a bridge without caches does.
    const macs = [A, B, C];
    const step = fc.record({ port: fc.integer({ min: 0, max: 2 }), src: fc.integer({ min: 0, max: 2 }), dst: fc.integer({ min: 0, max: 3 }), dt: fc.constantFrom(0, 0, 0, 400, 1000, 2500) });
    fc.assert(
      fc.property(fc.array(step, { minLength: 1, maxLength: 40 }), (steps) => {
        const run = (caches: boolean) => {
          const br = new Bridge({ caches, macAgingSeconds: 2 });
          const sinks = [new FrameRecorder(), new FrameRecorder(), new FrameRecorder()];
          const ports = sinks.map((x, i) => br.addPort(`p${i + 1}`, x));
          let now = 0;
          const out: number[][] = [];
          for (const st of steps) {
            now += st.dt;
            br.now = now; // the clock moves without the once-a-second sweep ...
            if (st.dt === 2500) br.tick(now); // ... and sometimes with it
            const before = sinks.map((x) => x.count);
            ports[st.port].receive(...fr(ethFrame({ dst: st.dst === 3 ? BCAST : macs[st.dst], src: macs[st.src] })));
            out.push(sinks.map((x, i) => x.count - before[i]));
          }
          return out;
        };
        expect(run(true)).toEqual(run(false));
      }),
      { numRuns: 200 },
    );
  });
});
