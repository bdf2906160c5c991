import { FlatGuestMemory } from '@ringzero/mmu-ept';
import { describe, expect, it } from 'vitest';
import { ISR_CONFIG } from './constants';
import { VirtioMmio } from './mmio';
import {
  NET_F_CSUM,
  NET_F_HOST_TSO4,
  NET_F_MAC,
  NET_F_MQ,
  NET_F_MRG_RXBUF,
  NET_HDR_LEN,
  NET_MAX_FRAME,
  VirtioNet,
} from './net';
import type { VirtioNetOptions } from './net';
import { VirtioPci } from './pci';
import { GuestAllocator } from './testing/alloc';
import type { DriverTransport, MockDriverInit } from './testing/driver';
import { acceptFeatures, MockDriver } from './testing/driver';
import { mmioDriverTransport } from './testing/mmio-transport';
import { pciDriverTransport } from './testing/pci-transport';

const MAC = new Uint8Array([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);

function frame(n: number, seed = 1): Uint8Array {
  const f = new Uint8Array(n);
  for (let i = 0; i < n; i++) f[i] = (i * 13 + seed) & 0xff;
  return f;
}

function setup(opts: Partial<VirtioNetOptions> = {}, init: MockDriverInit = {}, transport: 'mmio' | 'pci' = 'mmio') {
  const mem = new FlatGuestMemory(8 << 20);
  const alloc = new GuestAllocator(0x1000, mem.limit);
  const sent: Uint8Array[] = [];
  const views: Uint8Array[] = [];
  let accept = true;
  let rxReady = 0;
  const net = new VirtioNet({
    mac: MAC,
    send: (buf, off, len) => {
      if (!accept) return false;
      views.push(buf);
      sent.push(buf.slice(off, off + len));
      return true;
    },
    onRxReady: () => void rxReady++,
    queueSize: 64,
    ...opts,
  });
  let t: DriverTransport;
  let dev: VirtioMmio | VirtioPci;
  if (transport === 'mmio') {
    const m = new VirtioMmio(net, mem, { irq: () => undefined });
    dev = m;
    t = mmioDriverTransport(m);
  } else {
    const p = new VirtioPci(net, mem, { msi: () => undefined });
    dev = p;
    t = pciDriverTransport(p, { msix: true });
  }
  const drv = new MockDriver(t, mem, alloc);
  expect(drv.init({ queueSize: 64, ...init })).toBe(true);
  return { mem, drv, net, dev, sent, views, setAccept: (a: boolean) => (accept = a), rxReady: () => rxReady };
}

/** Guest transmit: header + frame, optionally split into pieces. */
function tx(drv: MockDriver, f: Uint8Array, pieces = 1, hdr = new Uint8Array(NET_HDR_LEN)): number {
  const bufs = [drv.buffer(hdr.length, hdr)];
  const per = Math.ceil(f.length / pieces);
  for (let o = 0; o < f.length; o += per) bufs.push(drv.buffer(Math.min(per, f.length - o), f.subarray(o, o + per)));
  return drv.queues[1].add(bufs, []);
}

for (const transport of ['mmio', 'pci'] as const) {
  describe(`virtio-net over ${transport}`, () => {
    it('transmits frames: zero copy when contiguous, one gather copy otherwise', () => {
      const { drv, sent, views, mem } = setup({}, {}, transport);
      tx(drv, frame(60, 1));
      tx(drv, frame(1514, 2), 3);
      drv.kick(1);
      expect(sent).toEqual([frame(60, 1), frame(1514, 2)]);
      expect(views[0].buffer).toBe(mem.bytes.buffer); // a view of guest RAM, not a copy
      expect(views[1].buffer).not.toBe(mem.bytes.buffer);
      expect(drv.drain(1).map((u) => u.len)).toEqual([0, 0]);
    });

    it('receives frames with MRG_RXBUF across several small buffers', () => {
      const { drv, net } = setup({}, {}, transport);
      const bufs = [];
      for (let i = 0; i < 8; i++) {
        const b = drv.buffer(256);
        bufs.push(b);
        drv.queues[0].add([], [b]);
      }
      drv.kick(0);
      const f = frame(1000, 5);
      expect(net.deliver(f, 0, f.length)).toBe(true);
      const used = drv.drain(0);
      expect(used.map((u) => u.len)).toEqual([256, 256, 256, 244]);
      const first = drv.bytes(bufs[0]);
      expect(first[10] | (first[11] << 8)).toBe(4); // num_buffers
      const got = new Uint8Array(1012);
      for (let i = 0; i < 4; i++) got.set(drv.bytes(bufs[i], used[i].len), 256 * i);
      expect(got.subarray(12)).toEqual(f);
    });
  });
}

describe('virtio-net receive and back-pressure', () => {
  it('without MRG_RXBUF one buffer holds header + frame, num_buffers = 1', () => {
    const { drv, net, dev } = setup({}, { features: acceptFeatures({ lo: ~NET_F_MRG_RXBUF }) });
    expect(dev.core.featuresLo & NET_F_MRG_RXBUF).toBe(0);
    const b = drv.buffer(1526);
    drv.queues[0].add([], [b]);
    const f = frame(100, 3);
    expect(net.deliver(f, 0, 100)).toBe(true);
    expect(drv.drain(0)).toEqual([{ id: 0, len: 112 }]);
    const got = drv.bytes(b, 112);
    expect(got[10]).toBe(1);
    expect(got.subarray(12)).toEqual(f);
    // A frame bigger than the posted buffer is dropped and the buffer kept.
    drv.queues[0].add([], [drv.buffer(64)]);
    expect(net.deliver(frame(200), 0, 200)).toBe(true);
    expect(net.stats.rxDropped).toBe(1);
    expect(drv.drain(0)).toEqual([]);
  });

  it('returns false when the guest has no buffers, takes nothing, and signals when buffers arrive', () => {
    const { drv, net, rxReady } = setup();
    const f = frame(600);
    expect(net.deliver(f, 0, f.length)).toBe(false);
    // Not enough for the whole frame: still false, and the partial buffer is not consumed.
    drv.queues[0].add([], [drv.buffer(256)]);
    drv.kick(0);
    expect(rxReady()).toBe(1);
    expect(net.deliver(f, 0, f.length)).toBe(false);
    expect(drv.drain(0)).toEqual([]);
    drv.queues[0].add([], [drv.buffer(256)]);
    drv.queues[0].add([], [drv.buffer(256)]);
    drv.kick(0);
    expect(rxReady()).toBe(2);
    expect(net.deliver(f, 0, f.length)).toBe(true);
    expect(drv.drain(0).map((u) => u.len)).toEqual([256, 256, 100]);
    expect(net.stats.rxBlocked).toBe(2);
  });

  it('holds a frame the network refused and sends it on resumeTx()', () => {
    const { drv, net, sent, setAccept } = setup();
    setAccept(false);
    tx(drv, frame(64, 7));
    tx(drv, frame(64, 8));
    drv.kick(1);
    expect(sent).toEqual([]);
    expect(drv.drain(1)).toEqual([]);
    setAccept(true);
    net.resumeTx();
    expect(sent).toEqual([frame(64, 7), frame(64, 8)]);
    expect(drv.drain(1)).toHaveLength(2);
  });

  it('link status changes raise a config interrupt and bump the generation; frames are dropped while down', () => {
    const { drv, net, dev } = setup();
    expect(drv.transport.readConfig(0, 4)).toBe(0x12005452);
    expect(drv.transport.readConfig(4, 2)).toBe(0x5634);
    expect(drv.transport.readConfig(6, 2)).toBe(1);
    const gen = drv.transport.configGeneration();
    drv.transport.ackInterrupt();
    net.setLinkUp(false);
    expect(drv.transport.readConfig(6, 2)).toBe(0);
    expect(drv.transport.configGeneration()).not.toBe(gen);
    expect((dev as VirtioMmio).interruptStatus & ISR_CONFIG).toBe(ISR_CONFIG);
    drv.queues[0].add([], [drv.buffer(2048)]);
    expect(net.deliver(frame(60), 0, 60)).toBe(true);
    expect(drv.drain(0)).toEqual([]);
  });

  it('with vnetHeader, offloads are offered and the header is carried through both ways', () => {
    const { drv, net, sent, dev } = setup({ vnetHeader: true });
    expect(dev.core.offeredLo & (NET_F_CSUM | NET_F_HOST_TSO4 | NET_F_MAC)).toBe(NET_F_CSUM | NET_F_HOST_TSO4 | NET_F_MAC);
    const hdr = new Uint8Array([1, 1, 54, 0, 0xa8, 0x05, 34, 0, 16, 0, 0, 0]); // NEEDS_CSUM, TCPv4, hdr_len, gso_size...
    const f = frame(3000, 9);
    tx(drv, f, 2, hdr);
    drv.kick(1);
    expect(sent[0].subarray(0, 12)).toEqual(hdr);
    expect(sent[0].subarray(12)).toEqual(f);
    const b = drv.buffer(4096);
    drv.queues[0].add([], [b]);
    const inbound = new Uint8Array(12 + 100);
    inbound.set([2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]); // DATA_VALID
    inbound.set(frame(100, 4), 12);
    expect(net.deliver(inbound, 0, inbound.length)).toBe(true);
    const got = drv.bytes(b, 112);
    expect(got[0]).toBe(2);
    expect(got[10]).toBe(1); // num_buffers set by the device
    expect(got.subarray(12)).toEqual(frame(100, 4));
  });

  it('drops frames bigger than NET_MAX_FRAME and transmit chains without a header', () => {
    const { drv, net, sent } = setup();
    drv.queues[0].add([], [drv.buffer(4096)]);
    const big = new Uint8Array(NET_MAX_FRAME + 1);
    expect(net.deliver(big, 0, big.length)).toBe(true);
    expect(net.stats.rxDropped).toBe(1);
    drv.queues[1].add([drv.buffer(4)], []);
    drv.kick(1);
    expect(sent).toEqual([]);
    expect(net.stats.txErrors).toBe(1);
    expect(drv.drain(1)).toHaveLength(1); // returned, not leaked
  });

  it('refuses MQ when it is not offered (one queue pair) at FEATURES_OK', () => {
    const { drv } = setup();
    const d2 = new MockDriver(drv.transport, drv.mem, drv.alloc);
    expect(d2.init({ features: (l, h) => [l | NET_F_MQ, h] })).toBe(false);
  });
});
