import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MacTable } from './mac-table.js';

/** The obvious model: a Map in insertion (= learning) order, evicting the oldest when full. */
class Model {
  readonly m = new Map<string, { port: number; seen: number }>();
  constructor(
    readonly limit: number,
    readonly agingMs: number,
  ) {}
  lookup(k: string, now: number): number {
    const e = this.m.get(k);
    return e === undefined || now - e.seen > this.agingMs ? -1 : e.port;
  }
  learn(k: string, port: number, now: number): boolean {
    const e = this.m.get(k);
    if (e !== undefined) {
      e.seen = now;
      if (e.port === port) return false;
      e.port = port;
      return true;
    }
    if (this.m.size >= this.limit) this.m.delete(this.m.keys().next().value!);
    this.m.set(k, { port, seen: now });
    return true;
  }
  expire(now: number): void {
    for (const [k, e] of this.m) if (now - e.seen > this.agingMs) this.m.delete(k);
  }
  flushPort(port: number): void {
    for (const [k, e] of this.m) if (e.port === port) this.m.delete(k);
  }
}

describe('MacTable (open addressing)', () => {
  it('agrees with a Map model under random learn/lookup/expire/flush, including evictions and cluster deletions', () => {
    // Few distinct MACs whose low words collide often, so probe clusters and back-shifts happen.
    const mac = fc.record({ hi: fc.constantFrom(0x0200, 0x0201, 0xfffe), lo: fc.integer({ min: 0, max: 40 }).map((x) => (x * 0x10001) >>> 0), vlan: fc.constantFrom(0, 1, 4095) });
    const op = fc.oneof(
      fc.record({ t: fc.constant('learn' as const), mac, port: fc.integer({ min: 1, max: 4 }), dt: fc.integer({ min: 0, max: 3000 }) }),
      fc.record({ t: fc.constant('lookup' as const), mac }),
      fc.record({ t: fc.constant('expire' as const) }),
      fc.record({ t: fc.constant('flush' as const), port: fc.integer({ min: 1, max: 4 }) }),
    );
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 24 }), fc.array(op, { maxLength: 200 }), (limit, ops) => {
        const t = new MacTable(limit, 10);
        const m = new Model(limit, 10_000);
        let now = 0;
        for (const o of ops) {
          if (o.t === 'learn') {
            now += o.dt;
            const k = `${o.mac.hi}/${o.mac.lo}/${o.mac.vlan}`;
            const gen = t.generation;
            const changed = t.learn(o.mac.hi, o.mac.lo, o.mac.vlan, o.port, now);
            expect(changed).toBe(m.learn(k, o.port, now));
            if (changed) expect(t.generation).not.toBe(gen);
          } else if (o.t === 'lookup') {
            expect(t.lookup(o.mac.hi, o.mac.lo, o.mac.vlan, now)).toBe(m.lookup(`${o.mac.hi}/${o.mac.lo}/${o.mac.vlan}`, now));
          } else if (o.t === 'expire') {
            t.expire(now);
            m.expire(now);
          } else {
            t.flushPort(o.port);
            m.flushPort(o.port);
          }
          expect(t.size).toBe(m.m.size);
        }
        // Every remaining entry is still findable (the back-shift deletion kept clusters intact).
        for (const e of t.entries(now)) {
          const b = e.mac.split(':').map((x) => parseInt(x, 16));
          expect(t.lookup((b[0] << 8) | b[1], ((b[2] << 24) | (b[3] << 16) | (b[4] << 8) | b[5]) >>> 0, e.vlan, now)).toBe(m.lookup(`${(b[0] << 8) | b[1]}/${((b[2] << 24) | (b[3] << 16) | (b[4] << 8) | b[5]) >>> 0}/${e.vlan}`, now));
        }
      }),
      { numRuns: 300 },
    );
  });
});
