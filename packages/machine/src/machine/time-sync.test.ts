// TimeSyncGroup: the limit of each member, and that the member furthest behind can always move
// (so coupled machines never wait for each other); machines sharing a bridge get their own
// ports, which leave the bridge when the machine stops.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Machine } from './machine';
import { TimeSyncGroup, type TimeSyncMember } from './time-sync';
import type { Bridge } from '@ringzero/vswitch';

function member(now: number, state = 'running', waitingForHost = false): TimeSyncMember & { t: number } {
  const m = { t: now, state, waitingForHost, clock: { nowNs: (): number => m.t } };
  return m;
}

describe('TimeSyncGroup', () => {
  it('lets a halted member leap to a quantum past the slowest other running member', () => {
    const g = new TimeSyncGroup(1000);
    const a = member(5_000);
    const b = member(2_000);
    const c = member(100, 'stopped');
    const d = member(50, 'running', true); // waiting for a host event with nothing due
    const e = member(10, 'paused');
    const la = g.join(a);
    const lb = g.join(b);
    for (const x of [c, d, e]) g.join(x);
    expect(la()).toBe(3_000);
    expect(lb()).toBe(6_000);
    b.t = 10_000;
    expect(la()).toBe(11_000);
    g.leave(b);
    expect(la()).toBe(Infinity); // alone among the running members
  });

  it('rejects a quantum that is not a positive number', () => {
    for (const q of [0, -1, NaN, Infinity]) expect(() => new TimeSyncGroup(q)).toThrow(RangeError);
  });

  it('always lets the running member with the earliest clock advance', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(1e12), fc.boolean()), { minLength: 1, maxLength: 8 }), fc.integer({ min: 1, max: 1e9 }), (spec, q) => {
        const g = new TimeSyncGroup(q);
        const ms = spec.map(([t, waiting]) => member(t, 'running', waiting));
        const limits = ms.map((m) => g.join(m));
        const running = ms.map((m, i) => [m, i] as const).filter(([m]) => !m.waitingForHost);
        if (running.length === 0) return;
        const [slowest, i] = running.reduce((x, y) => (y[0].t < x[0].t ? y : x));
        expect(limits[i]()).toBeGreaterThan(slowest.t);
      }),
      { numRuns: 200 },
    );
  });
});

describe('machines on one bridge', () => {
  /** A multiboot v1 a.out-kludge image whose entry is HLT (never run here). */
  const kernel = (): Uint8Array => {
    const img = new Uint8Array(64);
    const v = new DataView(img.buffer);
    const flags = 0x00010000;
    [0x1badb002, flags, (-(0x1badb002 + flags)) >>> 0, 0x100000, 0x100000, 0x100000 + img.length, 0, 0x100020].forEach((w, i) => v.setUint32(4 * i, w >>> 0, true));
    img[0x20] = 0xf4;
    return img;
  };

  it('get distinct port names for the same netdev id, and leave the bridge when they stop', async () => {
    const bridges = new Map<string, Bridge>();
    const sync = new TimeSyncGroup();
    const build = (mac: string): Promise<Machine> =>
      Machine.build(
        { memory: 16 << 20, kernel: kernel(), time: 'deterministic', netdevs: [{ type: 'switch', id: 'n0', bridge: 'lan' }], devices: [{ type: 'virtio-net', netdev: 'n0', mac }] },
        { bridges, timeSync: sync },
      );
    const a = await build('52:54:00:00:00:01');
    const b = await build('52:54:00:00:00:02');
    const lan = bridges.get('lan')!;
    expect(lan.port('vm-n0-0')).toBeDefined();
    expect(lan.port('vm-n0-0.1')).toBeDefined();
    await a.stop();
    expect(lan.port('vm-n0-0')).toBeUndefined();
    const c = await build('52:54:00:00:00:03'); // takes the free name again
    expect(lan.port('vm-n0-0')).toBeDefined();
    await b.stop();
    await c.stop();
    expect(lan.port('vm-n0-0.1')).toBeUndefined();
    expect(lan.port('vm-n0-0')).toBeUndefined();
  });
});
