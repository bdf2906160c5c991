// Device state export/import: a device saved mid-flight and restored into a fresh instance
// carries on serving its queues; hostile state objects are refused with a VirtioStateError and
// leave the target untouched.
import { FlatGuestMemory } from '@ringzero/mmu-ept';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { BlockBackend } from './block-backend';
import { MemoryBlockBackend } from './block-backend';
import { BLK_S_OK, BLK_T_FLUSH, BLK_T_GET_ID, BLK_T_IN, BLK_T_OUT, VirtioBlk } from './blk';
import { CONSOLE_PORT_READY, CONSOLE_DEVICE_READY, CONSOLE_RESIZE, VirtioConsole } from './console';
import { STATUS_DRIVER_OK } from './constants';
import { VirtioMmio } from './mmio';
import * as N from './net';
import { VirtioPci } from './pci';
import { VirtioRng } from './rng';
import { VirtioStateError } from './state';
import type { VirtioDevice } from './device';
import { GuestAllocator } from './testing/alloc';
import type { BlkRequest } from './testing/blk-helpers';
import { blkData, blkStatus, submitBlk } from './testing/blk-helpers';
import type { DriverTransport } from './testing/driver';
import { acceptFeatures, MockDriver } from './testing/driver';
import { mmioDriverTransport } from './testing/mmio-transport';
import { pciDriverTransport } from './testing/pci-transport';

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));
const clone = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T;

/** A back end whose operations wait until the test runs them (the old instance's never are). */
class DeferredBackend implements BlockBackend {
  readonly inner: MemoryBlockBackend;
  readonly pending: (() => void)[] = [];
  constructor(data: Uint8Array) {
    this.inner = new MemoryBlockBackend(data);
  }
  get size(): number {
    return this.inner.size;
  }
  readonly readOnly = false;
  private defer<T>(op: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => this.pending.push(() => void op().then(resolve, reject)));
  }
  read(o: number, l: number): Promise<Uint8Array> {
    return this.defer(() => this.inner.read(o, l).then((v) => v.slice()));
  }
  write(o: number, d: Uint8Array): Promise<void> {
    return this.defer(() => this.inner.write(o, d.slice()));
  }
  flush(): Promise<void> {
    return this.defer(() => this.inner.flush());
  }
  discard(o: number, l: number): Promise<void> {
    return this.defer(() => this.inner.discard(o, l));
  }
  writeZeroes(o: number, l: number): Promise<void> {
    return this.defer(() => this.inner.writeZeroes(o, l));
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

type Transport = VirtioMmio | VirtioPci;

function transportFor(kind: 'mmio' | 'pci', dev: VirtioDevice, mem: FlatGuestMemory): Transport {
  return kind === 'mmio' ? new VirtioMmio(dev, mem, { irq: () => undefined }) : new VirtioPci(dev, mem, { msi: () => undefined });
}

function driverFor(t: Transport): DriverTransport {
  return t instanceof VirtioMmio ? mmioDriverTransport(t) : pciDriverTransport(t, { msix: true });
}

/** A driver that carries on with the same guest-side queues through another transport. */
function takeOver(drv: MockDriver, t: Transport): MockDriver {
  const d = new MockDriver(driverFor(t), drv.mem, drv.alloc);
  d.queues.push(...drv.queues);
  return d;
}

function pattern(n: number, seed: number): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed * 7) & 0xff);
}

/** virtio-blk saved with requests completed, in flight in the back end and published but not yet kicked. */
async function blkMidFlight(kind: 'mmio' | 'pci', packed: boolean) {
  const mem = new FlatGuestMemory(4 << 20);
  const disk = pattern(1 << 20, 3);
  const be1 = new DeferredBackend(disk.slice());
  const t1 = transportFor(kind, new VirtioBlk(be1, { queueSize: 16, serial: 'snap' }), mem);
  const drv = new MockDriver(driverFor(t1), mem, new GuestAllocator(0x1000, mem.limit));
  expect(drv.init({ queueSize: 16, features: acceptFeatures({ packed }) })).toBe(true);
  const a = pattern(4096, 11);
  const b = pattern(2048, 12);
  const c = pattern(1024, 13);
  const reqs: Record<string, BlkRequest> = {};
  reqs.w0 = submitBlk(drv, BLK_T_OUT, 0, { out: a, segments: 2 });
  reqs.w8 = submitBlk(drv, BLK_T_OUT, 8, { out: b, indirect: true });
  reqs.r100 = submitBlk(drv, BLK_T_IN, 100, { inLen: 1536, segments: 3 });
  reqs.id = submitBlk(drv, BLK_T_GET_ID, 0, { inLen: 20 });
  drv.kick(0);
  expect(be1.pending).toHaveLength(3);
  be1.pending.shift()!(); // w0 completes in the old instance
  await tick();
  expect(drv.drain(0).map((u) => u.id).sort()).toEqual([reqs.w0.id, reqs.id.id].sort());
  // Published, not kicked: the new instance must find them on its own.
  reqs.r0 = submitBlk(drv, BLK_T_IN, 0, { inLen: 4096 });
  reqs.w16 = submitBlk(drv, BLK_T_OUT, 16, { out: c });
  reqs.flush = submitBlk(drv, BLK_T_FLUSH, 0);
  const state = t1.saveState();
  return { mem, disk, drv, reqs, state, be1, a, b, c, snapshotDisk: be1.inner.data.slice() };
}

describe('state: a device restored into a fresh instance carries on mid-flight', () => {
  for (const [kind, packed] of [['mmio', false], ['pci', true], ['pci', false], ['mmio', true]] as const) {
    it(`virtio-blk over ${kind} (${packed ? 'packed' : 'split'}): in-flight requests re-run, pending ones served, data right`, async () => {
      const s = await blkMidFlight(kind, packed);
      expect(s.state.device).toMatchObject({ kind: 'virtio-blk', inFlight: [{}, {}] });
      const be2 = new MemoryBlockBackend(s.snapshotDisk);
      const t2 = transportFor(kind, new VirtioBlk(be2, { queueSize: 16, serial: 'snap' }), s.mem);
      t2.restoreState(clone(s.state)); // through JSON: plain data
      expect(t2.core.getStatus() & STATUS_DRIVER_OK).toBe(STATUS_DRIVER_OK);
      await tick();
      await tick();
      const drv2 = takeOver(s.drv, t2);
      const used = drv2.drain(0);
      const r = s.reqs;
      expect(used.map((u) => u.id).sort((x, y) => x - y)).toEqual([r.w8.id, r.r100.id, r.r0.id, r.w16.id, r.flush.id].sort((x, y) => x - y));
      for (const k of ['w8', 'r100', 'r0', 'w16', 'flush']) expect([k, blkStatus(drv2, r[k])]).toEqual([k, BLK_S_OK]);
      expect(blkData(drv2, r.r100)).toEqual(s.disk.subarray(100 * 512, 100 * 512 + 1536));
      expect(blkData(drv2, r.r0)).toEqual(s.a); // written by the old instance before the snapshot
      expect(be2.data.subarray(8 * 512, 8 * 512 + 2048)).toEqual(s.b); // re-run in the new one
      expect(be2.data.subarray(16 * 512, 16 * 512 + 1024)).toEqual(s.c);
      // And it keeps serving new requests.
      const more = submitBlk(drv2, BLK_T_GET_ID, 0, { inLen: 20 });
      drv2.kick(0);
      expect(drv2.drain(0)).toEqual([{ id: more.id, len: 21 }]);
      // The old instance's back end was never allowed to finish: nothing of it reached the guest.
      expect(s.be1.pending).toHaveLength(2);
    });
  }

  it('virtio-net: held frame, queued frames, MQ, filter and VLAN state survive; onRxReady is owed', () => {
    const mem = new FlatGuestMemory(4 << 20);
    let tries = 0;
    const mac = new Uint8Array([2, 0, 0, 0, 0, 1]);
    const opts = { mac, queuePairs: 2, queueSize: 16 } as const;
    const net1 = new N.VirtioNet({ ...opts, send: () => (tries++, false) });
    const t1 = transportFor('pci', net1, mem);
    const drv = new MockDriver(driverFor(t1), mem, new GuestAllocator(0x1000, mem.limit));
    expect(drv.init({ queueSize: 16 })).toBe(true);
    const ctrl = (cls: number, cmd: number, data: number[]): void => {
      const ack = drv.buffer(1);
      drv.queues[4].add([drv.buffer(2, new Uint8Array([cls, cmd])), drv.buffer(data.length, Uint8Array.from(data))], [ack]);
      drv.kick(4);
      expect(mem.read8(ack.addr)).toBe(N.NET_OK);
    };
    const other = [2, 0, 0, 0, 0, 9];
    ctrl(N.NET_CTRL_MQ, N.NET_CTRL_MQ_VQ_PAIRS_SET, [2, 0]);
    ctrl(N.NET_CTRL_RX, N.NET_CTRL_RX_PROMISC, [0]);
    ctrl(N.NET_CTRL_MAC, N.NET_CTRL_MAC_TABLE_SET, [1, 0, 0, 0, ...other, 0, 0, 0, 0]);
    ctrl(N.NET_CTRL_VLAN, N.NET_CTRL_VLAN_ADD, [7, 0]);
    const frame = (n: number): Uint8Array => Uint8Array.from({ length: 60 }, (_, i) => (i < 6 ? other[i] : n));
    const txq = (q: number, n: number): void => void drv.queues[q].add([drv.buffer(12), drv.buffer(60, frame(n))], []);
    txq(1, 1);
    txq(1, 2);
    drv.kick(1); // the network refuses: frame 1 is held, frame 2 waits in the ring
    txq(3, 3); // pair 1, not kicked
    expect(net1.deliver(frame(9), 0, 60)).toBe(false); // no receive buffers: onRxReady owed
    const state = t1.saveState();
    expect(state.device).toMatchObject({ kind: 'virtio-net', curPairs: 2, txPending: [{}, null], rxWanted: [true, false] });

    const sent2: number[] = [];
    let ready = 0;
    const net2 = new N.VirtioNet({ ...opts, send: (b, o) => sent2.push(b[o + 6]) > 0, onRxReady: () => void ready++ });
    const t2 = transportFor('pci', net2, mem);
    t2.restoreState(clone(state));
    expect(sent2).toEqual([1, 2, 3]); // held frame first, then the rest, both pairs
    expect(ready).toBe(1);
    expect(tries).toBe(1); // the old instance only ever tried the held frame
    const drv2 = takeOver(drv, t2);
    expect(drv2.drain(1)).toHaveLength(2);
    expect(drv2.drain(3)).toHaveLength(1);
    expect(net2.curPairs).toBe(2);
    expect(net2.filter).toEqual(net1.filter);
    for (let q = 0; q < 4; q += 2) {
      for (let i = 0; i < 2; i++) drv2.queues[q].add([], [drv2.buffer(2048)]);
    }
    const to = (dst: number[], vlan?: number): Uint8Array => {
      const f = new Uint8Array(64);
      f.set(dst, 0);
      if (vlan !== undefined) f.set([0x81, 0, 0, vlan], 12);
      return f;
    };
    const filtered = net2.stats.rxFiltered;
    net2.deliver(to(other), 0, 64); // in the restored MAC table
    net2.deliver(to([2, 0, 0, 0, 0, 8]), 0, 64); // not: filtered
    net2.deliver(to(Array.from(mac), 7), 0, 64); // VLAN 7 was added
    net2.deliver(to(Array.from(mac), 8), 0, 64); // VLAN 8 was not
    expect(net2.stats.rxFiltered - filtered).toBe(2);
    expect(net2.stats.rxFrames).toBe(2);
  });

  it('virtio-console (multiport): ports, pending input and the control backlog survive', () => {
    const mem = new FlatGuestMemory(4 << 20);
    const make = (): VirtioConsole => {
      const c = new VirtioConsole({ output: () => undefined, maxPorts: 2, queueSize: 8 });
      c.addPort(1, { name: 'p1' });
      return c;
    };
    const con1 = make();
    const t1 = transportFor('mmio', con1, mem);
    const drv = new MockDriver(driverFor(t1), mem, new GuestAllocator(0x1000, mem.limit));
    expect(drv.init({ queueSize: 8 })).toBe(true);
    const ctrlBuf = (): void => void drv.queues[2].add([], [drv.buffer(32)]);
    for (let i = 0; i < 4; i++) ctrlBuf();
    const send = (id: number, event: number): void => {
      drv.queues[3].add([drv.buffer(8, new Uint8Array([id, 0, 0, 0, event, 0, 1, 0]))], []);
      drv.kick(3);
    };
    send(0xff, CONSOLE_DEVICE_READY);
    send(1, CONSOLE_PORT_READY);
    expect(drv.drain(2)).toHaveLength(4); // PORT_ADD 0, PORT_ADD 1, PORT_NAME 1, PORT_OPEN 1
    con1.input(new TextEncoder().encode('typed into port 1'), 1);
    con1.resize(90, 30); // no control buffer left: RESIZE waits in the backlog
    const state = t1.saveState();
    expect(state.device).toMatchObject({ kind: 'virtio-console', deviceReady: true, backlog: [[0, 0, 0, 0, CONSOLE_RESIZE, 0, 0, 0, 90, 0, 30, 0]] });

    const con2 = make();
    const t2 = transportFor('mmio', con2, mem);
    t2.restoreState(clone(state));
    expect(clone(t2.saveState())).toEqual(clone(state)); // restore then save is the identity
    expect(con2.isPortReady(1)).toBe(true);
    expect(con2.pendingInputOf(1)).toBe(17);
    const drv2 = takeOver(drv, t2);
    const rb = drv2.buffer(64);
    drv2.queues[4].add([], [rb]);
    drv2.kick(4);
    expect(drv2.drain(4)).toHaveLength(1);
    expect(new TextDecoder().decode(drv2.bytes(rb, 17))).toBe('typed into port 1');
    const cb = drv2.buffer(32);
    drv2.queues[2].add([], [cb]);
    drv2.kick(2);
    expect(drv2.drain(2)).toHaveLength(1);
    expect(Array.from(drv2.bytes(cb, 12))).toEqual([0, 0, 0, 0, CONSOLE_RESIZE, 0, 0, 0, 90, 0, 30, 0]);
  });

  it('virtio-rng and a device that was never started round-trip through JSON', () => {
    const mem = new FlatGuestMemory(1 << 20);
    const r1 = transportFor('mmio', new VirtioRng({ random: (o) => o.fill(1) }), mem);
    const drv = new MockDriver(driverFor(r1), mem, new GuestAllocator(0x1000, mem.limit));
    expect(drv.init({ queueSize: 8 })).toBe(true);
    drv.queues[0].add([], [drv.buffer(16)]);
    drv.kick(0);
    expect(drv.drain(0)).toHaveLength(1);
    const st = r1.saveState();
    const r2 = transportFor('mmio', new VirtioRng({ random: (o) => o.fill(2) }), mem);
    r2.restoreState(clone(st));
    expect(clone(r2.saveState())).toEqual(clone(st));
    const fresh = transportFor('pci', new VirtioRng(), mem);
    const idle = fresh.saveState();
    const again = transportFor('pci', new VirtioRng(), mem);
    again.restoreState(clone(idle));
    expect(clone(again.saveState())).toEqual(clone(idle));
  });
});

type Path = (string | number)[];
type Bag = Record<string | number, unknown>;

function get(o: unknown, path: Path): unknown {
  let v = o;
  for (const k of path) v = (v as Bag)[k];
  return v;
}

function set(o: unknown, path: Path, value: unknown): void {
  (get(o, path.slice(0, -1)) as Bag)[path[path.length - 1]] = value;
}

describe('state: hostile state objects are refused with a clear error and change nothing', () => {
  const target = () => {
    const mem = new FlatGuestMemory(4 << 20);
    return { mem, t: new VirtioMmio(new VirtioBlk(new MemoryBlockBackend(pattern(1 << 20, 3)), { queueSize: 16, serial: 'snap' }), mem, { irq: () => undefined }) };
  };

  it('a table of broken states', async () => {
    const good = clone((await blkMidFlight('mmio', false)).state);
    const seg0 = ['device', 'inFlight', 0, 'segments', 0];
    const cases: [string, (s: unknown) => void, RegExp][] = [
      ['version', (s) => set(s, ['version'], 2), /state\.version must be 1/],
      ['kind', (s) => set(s, ['kind'], 'virtio-pci'), /state\.kind must be 'virtio-mmio'/],
      ['device id', (s) => set(s, ['core', 'deviceId'], 1), /state\.core\.deviceId is 1, this device is 2/],
      ['offered features', (s) => set(s, ['core', 'offeredLo'], 0), /other features/],
      ['status range', (s) => set(s, ['core', 'status'], 0x1ff), /state\.core\.status must be an integer from 0 to 255/],
      ['status bits', (s) => set(s, ['core', 'status'], 0x3f), /undefined bits/],
      ['status order', (s) => set(s, ['core', 'status'], 4), /DRIVER_OK without/],
      ['features', (s) => set(s, ['core', 'featuresLo'], 0xffff_ffff), /does not offer/],
      ['queue count', (s) => set(s, ['core', 'queues'], []), /state\.core\.queues must have 1 entries \(got 0\)/],
      ['queue size', (s) => set(s, ['core', 'queues', 0, 'ring', 'size'], 3), /ring layout is invalid/],
      ['ring outside RAM', (s) => set(s, ['core', 'queues', 0, 'ring', 'desc'], 2 ** 40), /ring layout is invalid/],
      ['indices', (s) => set(s, ['core', 'queues', 0, 'ring', 'lastAvail'], 200), /outstanding in a queue of 16/],
      ['ring missing', (s) => set(s, ['core', 'queues', 0, 'ring'], null), /ring is not an object/],
      ['ring on a dead queue', (s) => set(s, ['core', 'queues', 0, 'ready'], false), /must be null for a queue that is not live/],
      ['queue error code', (s) => set(s, ['core', 'queues', 0, 'ring', 'error'], -99), /error must be an integer from -16 to 0/],
      ['disk size', (s) => set(s, ['device', 'capacity'], 4096), /capacity is 4096 sectors, this disk has 2048/],
      ['device kind', (s) => set(s, ['device', 'kind'], 'virtio-net'), /state\.device\.kind must be 'virtio-blk'/],
      ['segment outside RAM', (s) => set(s, [...seg0, 'addr'], 2 ** 40), /segments\[0\] is not in guest RAM/],
      ['segment length', (s) => set(s, [...seg0, 'len'], 0), /len must be an integer from 1/],
      ['segment order', (s) => (get(s, ['device', 'inFlight', 0, 'segments']) as unknown[]).push({ ...(get(s, seg0) as object), writable: false }), /readable after a writable segment/],
      ['too many segments', (s) => set(s, ['device', 'inFlight', 0, 'segments'], new Array(40).fill(get(s, seg0))), /segments must have 0 to 32 entries/],
      ['head range', (s) => set(s, ['device', 'inFlight', 0, 'head'], 16), /head must be an integer from 0 to 15/],
      ['twice in flight', (s) => set(s, ['device', 'inFlight', 1, 'head'], get(s, ['device', 'inFlight', 0, 'head'])), /in flight twice/],
      ['in flight vs ring', (s) => set(s, ['device', 'inFlight'], []), /lists 0 requests but the queue has 2 outstanding/],
      ['not an object', (s) => set(s, ['device'], 42), /state\.device is not an object/],
      ['a throwing getter', (s) => Object.defineProperty(get(s, ['core']), 'status', { get: () => { throw new Error('boom'); }, enumerable: true }), /virtio-mmio state is malformed \(boom\)/],
    ];
    for (const [name, mutate, want] of cases) {
      const s = clone(good);
      mutate(s);
      const { t } = target();
      const before = clone(t.saveState());
      let err: unknown = null;
      try {
        t.restoreState(s);
      } catch (e) {
        err = e;
      }
      expect([name, err instanceof VirtioStateError]).toEqual([name, true]);
      expect([name, (err as Error).message]).toEqual([name, expect.stringMatching(want)]);
      expect(clone(t.saveState())).toEqual(before);
    }
    for (const junk of [null, 42, 'state', [], undefined]) {
      const { t } = target();
      expect(() => t.restoreState(junk)).toThrow(/virtio state: state is not an object/);
    }
    // The untouched state does restore (the cases above fail for their own reason).
    const { t } = target();
    t.restoreState(clone(good));
    expect(t.core.getStatus() & STATUS_DRIVER_OK).toBe(STATUS_DRIVER_OK);
  });

  it('net and console specific checks', () => {
    const mem = new FlatGuestMemory(1 << 20);
    const net = () => new VirtioMmio(new N.VirtioNet({ mac: new Uint8Array(6), send: () => true, queuePairs: 2 }), mem, { irq: () => undefined });
    const n1 = net();
    expect(new MockDriver(driverFor(n1), mem, new GuestAllocator(0x1000, mem.limit)).init({ queueSize: 8 })).toBe(true);
    const ns = clone(n1.saveState());
    const netCases: [Path, unknown, RegExp][] = [
      [['device', 'curPairs'], 3, /curPairs must be an integer from 1 to 2/],
      [['device', 'maxPairs'], 4, /this device has 2 queue pairs/],
      [['device', 'filter', 'uniCount'], 65, /uniCount must be an integer from 0 to 64/],
      [['device', 'filter', 'uniCount'], 2, /uniMacs must have 12 entries \(got 0\)/],
      [['device', 'vlans'], [1, 2], /vlans must have 128 entries/],
      [['device', 'mac', 2], 256, /mac\[2\] must be an integer from 0 to 255/],
      [['device', 'txPending', 0], { head: 0, slots: 1, segments: [] }, /does not match queue 1: 0 chains outstanding, 1 held/],
    ];
    for (const [path, value, want] of netCases) {
      const s = clone(ns);
      set(s, path, value);
      const t = net();
      expect(() => t.restoreState(s)).toThrow(want);
    }
    const con = () => new VirtioMmio(new VirtioConsole({ output: () => undefined, maxPorts: 2 }), mem, { irq: () => undefined });
    const cs = clone(con().saveState());
    const conCases: [Path, unknown, RegExp][] = [
      [['device', 'ports', 1, 'present'], true, /present is true but port 1 is not configured here/],
      [['device', 'ports', 0, 'pending'], new Array(65537).fill(0), /pending must have 0 to 65536 entries/],
      [['device', 'backlog'], [[1, 2, 3]], /backlog\[0\] must have 8 to 264 entries/],
      [['device', 'maxPorts'], 3, /this console has 2 ports/],
    ];
    for (const [path, value, want] of conCases) {
      const s = clone(cs);
      set(s, path, value);
      expect(() => con().restoreState(s)).toThrow(want);
    }
  });

  it('property: any leaf of a saved state replaced by junk restores or throws VirtioStateError, never anything else', async () => {
    const good = clone((await blkMidFlight('pci', true)).state);
    const leaves: Path[] = [];
    const walk = (v: unknown, p: Path): void => {
      if (typeof v === 'object' && v != null) for (const [k, x] of Object.entries(v)) walk(x, [...p, Array.isArray(v) ? Number(k) : k]);
      else leaves.push(p);
    };
    walk(good, []);
    const junk = fc.oneof(fc.anything(), fc.integer(), fc.constantFrom(-1, 0, 1, 2 ** 32, 2 ** 53, NaN, Infinity, '', null, [], {}));
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(fc.nat({ max: leaves.length - 1 }), junk), { minLength: 1, maxLength: 3 }), async (edits) => {
        const s = clone(good);
        for (const [i, v] of edits) set(s, leaves[i], v);
        const mem = new FlatGuestMemory(4 << 20);
        const t = new VirtioPci(new VirtioBlk(new MemoryBlockBackend(1 << 20), { queueSize: 16, serial: 'snap' }), mem, { msi: () => undefined });
        const before = clone(t.saveState());
        try {
          t.restoreState(s);
        } catch (e) {
          expect(e).toBeInstanceOf(VirtioStateError);
          expect(clone(t.saveState())).toEqual(before);
        }
        await tick();
      }),
      { numRuns: 150 },
    );
  });
});
