// virtio-net multiqueue and the control queue, through the mock driver (virtio 1.x §5.1.6.5).
import { FlatGuestMemory } from '@ringzero/mmu-ept';
import { describe, expect, it } from 'vitest';
import { ISR_CONFIG, STATUS_NEEDS_RESET } from './constants';
import { VirtioMmio } from './mmio';
import * as N from './net';
import type { VirtioNetOptions } from './net';
import { VirtioPci, COMMON_NUMQ } from './pci';
import { GuestAllocator } from './testing/alloc';
import type { DriverTransport, MockDriverInit } from './testing/driver';
import { acceptFeatures, MockDriver } from './testing/driver';
import { mmioDriverTransport } from './testing/mmio-transport';
import { pciDriverTransport } from './testing/pci-transport';

const MAC = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
const OTHER = [0x52, 0x54, 0x00, 0xaa, 0xbb, 0xcc];
const BCAST = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
const MCAST = [0x33, 0x33, 0x00, 0x00, 0x00, 0x01];

function setup(opts: Partial<VirtioNetOptions> = {}, init: MockDriverInit = {}, transport: 'mmio' | 'pci' = 'mmio') {
  const mem = new FlatGuestMemory(8 << 20);
  const alloc = new GuestAllocator(0x1000, mem.limit);
  const sent: { frame: Uint8Array }[] = [];
  const net = new N.VirtioNet({
    mac: new Uint8Array(MAC),
    send: (buf, off, len) => {
      sent.push({ frame: buf.slice(off, off + len) });
      return true;
    },
    queueSize: 32,
    ...opts,
  });
  let t: DriverTransport;
  let core;
  let pci: VirtioPci | null = null;
  let mmio: VirtioMmio | null = null;
  if (transport === 'mmio') {
    mmio = new VirtioMmio(net, mem, { irq: () => undefined });
    core = mmio.core;
    t = mmioDriverTransport(mmio);
  } else {
    pci = new VirtioPci(net, mem, { msi: () => undefined });
    core = pci.core;
    t = pciDriverTransport(pci, { msix: true });
  }
  const drv = new MockDriver(t, mem, alloc);
  const ok = drv.init({ queueSize: 32, ...init });
  return { ok, mem, drv, net, core, sent, pci, mmio };
}

/** Sends one control command on queue `q`; returns the ack byte (0xee if the device did not answer). */
function ctrl(drv: MockDriver, q: number, cls: number, cmd: number, ...data: (number[] | Uint8Array)[]): number {
  const hdr = drv.buffer(2, new Uint8Array([cls, cmd]));
  const parts = data.map((d) => drv.buffer(d.length, Uint8Array.from(d)));
  const ack = drv.buffer(1, new Uint8Array([0xee]));
  drv.queues[q].add([hdr, ...parts], [ack]);
  drv.kick(q);
  const used = drv.drain(q);
  if (used.length === 1) expect(used[0].len).toBe(1);
  return drv.mem.read8(ack.addr);
}

/** An Ethernet frame: dst, src, ethertype, then payload (IPv4 + TCP when `tcp` is given). */
function eth(dst: number[], src: number[], opts: { type?: number; vlan?: number; tcp?: [srcIp: number, dstIp: number, sport: number, dport: number] } = {}): Uint8Array {
  const f = new Uint8Array(80);
  f.set(dst, 0);
  f.set(src, 6);
  let p = 12;
  if (opts.vlan !== undefined) {
    f.set([0x81, 0x00, (opts.vlan >> 8) & 0x0f, opts.vlan & 0xff], 12);
    p = 16;
  }
  const type = opts.tcp !== undefined ? 0x0800 : (opts.type ?? 0x88b5);
  f[p] = type >> 8;
  f[p + 1] = type & 0xff;
  if (opts.tcp !== undefined) {
    const ip = p + 2;
    const v = new DataView(f.buffer);
    f[ip] = 0x45;
    f[ip + 9] = 6;
    v.setUint32(ip + 12, opts.tcp[0]);
    v.setUint32(ip + 16, opts.tcp[1]);
    v.setUint16(ip + 20, opts.tcp[2]);
    v.setUint16(ip + 22, opts.tcp[3]);
  }
  return f;
}

/** Posts `n` receive buffers on every receive queue of the first `pairs` pairs. */
function postRx(drv: MockDriver, pairs: number, n = 4): void {
  for (let p = 0; p < pairs; p++) {
    for (let i = 0; i < n; i++) drv.queues[2 * p].add([], [drv.buffer(2048)]);
    drv.kick(2 * p);
  }
}

/** Which receive queue each delivered frame landed on (queue index per used element). */
function rxQueues(drv: MockDriver, pairs: number): number[] {
  const out: number[] = [];
  for (let p = 0; p < pairs; p++) for (const _ of drv.drain(2 * p)) out.push(2 * p);
  return out;
}

describe('virtio-net queue numbering (as Linux virtio_net: rx0 tx0 rx1 tx1 ... ctrl)', () => {
  for (const transport of ['mmio', 'pci'] as const) {
    it(`3 pairs over ${transport}: 7 queues, max_virtqueue_pairs 3, MQ + CTRL_VQ offered, control queue last`, () => {
      const { drv, net, core, pci } = setup({ queuePairs: 3 }, {}, transport);
      expect(net.queueCount).toBe(7);
      expect(drv.queues).toHaveLength(7); // the mock driver probes until QueueNumMax reads 0
      if (pci != null) expect(pci.barRead(4, COMMON_NUMQ, 2)).toBe(7);
      expect(drv.transport.readConfig(8, 2)).toBe(3);
      expect(core.featuresLo & (N.NET_F_MQ | N.NET_F_CTRL_VQ)).toBe(N.NET_F_MQ | N.NET_F_CTRL_VQ);
      expect(net.controlQueueIndex).toBe(6);
      expect(ctrl(drv, 6, N.NET_CTRL_MQ, N.NET_CTRL_MQ_VQ_PAIRS_SET, [3, 0])).toBe(N.NET_OK);
      expect(net.curPairs).toBe(3);
    });
  }

  it('without MQ negotiated the control queue is queue 2 even when the device has more pairs', () => {
    const { drv, net } = setup({ queuePairs: 4 }, { features: acceptFeatures({ lo: ~N.NET_F_MQ }), queues: 3 });
    expect(net.controlQueueIndex).toBe(2);
    expect(ctrl(drv, 2, N.NET_CTRL_RX, N.NET_CTRL_RX_PROMISC, [0])).toBe(N.NET_OK);
    expect(net.filter.promisc).toBe(false);
    // MQ commands are refused when MQ was not negotiated.
    expect(ctrl(drv, 2, N.NET_CTRL_MQ, N.NET_CTRL_MQ_VQ_PAIRS_SET, [2, 0])).toBe(N.NET_ERR);
    expect(net.curPairs).toBe(1);
  });

  it('one pair with the control queue: 3 queues; ctrlQueue:false keeps the old 2-queue device', () => {
    expect(setup().net.queueCount).toBe(3);
    const { net, core, drv } = setup({ ctrlQueue: false });
    expect(net.queueCount).toBe(2);
    expect(drv.queues).toHaveLength(2);
    expect(core.offeredLo & N.NET_F_CTRL_VQ).toBe(0);
  });

  it('queuePairs outside 1..NET_MAX_QUEUE_PAIRS is refused at construction', () => {
    expect(() => new N.VirtioNet({ mac: new Uint8Array(6), send: () => true, queuePairs: 0 })).toThrow(RangeError);
    expect(() => new N.VirtioNet({ mac: new Uint8Array(6), send: () => true, queuePairs: N.NET_MAX_QUEUE_PAIRS + 1 })).toThrow(RangeError);
  });
});

describe('virtio-net multiqueue', () => {
  it('VQ_PAIRS_SET: only pair 0 until set, then frames spread over the enabled pairs; bad counts are refused', () => {
    const { drv, net } = setup({ queuePairs: 4 });
    postRx(drv, 4, 16);
    const flows = Array.from({ length: 24 }, (_, i) => eth(MAC, OTHER, { tcp: [0x0a000001 + i, 0x0a000002, 1000 + i, 80] }));
    /** The receive queue one frame lands on. */
    const where = (f: Uint8Array): number => {
      expect(net.deliver(f, 0, f.length)).toBe(true);
      const q = rxQueues(drv, 4);
      expect(q).toHaveLength(1);
      drv.queues[q[0]].add([], [drv.buffer(2048)]); // repost
      return q[0];
    };
    expect(flows.slice(0, 8).map(where)).toEqual(new Array(8).fill(0));
    expect(ctrl(drv, 8, N.NET_CTRL_MQ, N.NET_CTRL_MQ_VQ_PAIRS_SET, [0, 0])).toBe(N.NET_ERR);
    expect(ctrl(drv, 8, N.NET_CTRL_MQ, N.NET_CTRL_MQ_VQ_PAIRS_SET, [5, 0])).toBe(N.NET_ERR);
    expect(ctrl(drv, 8, N.NET_CTRL_MQ, N.NET_CTRL_MQ_VQ_PAIRS_SET, [2])).toBe(N.NET_ERR); // short
    expect(ctrl(drv, 8, N.NET_CTRL_MQ, 1, [2, 0])).toBe(N.NET_ERR); // RSS_CONFIG: not offered
    expect(net.curPairs).toBe(1);
    expect(ctrl(drv, 8, N.NET_CTRL_MQ, N.NET_CTRL_MQ_VQ_PAIRS_SET, [3, 0])).toBe(N.NET_OK);
    expect(net.curPairs).toBe(3);
    const got = flows.map(where);
    expect(new Set(got).size).toBe(3); // spread over rx0, rx1, rx2...
    expect(got).not.toContain(6); // ...never onto the fourth pair, not in use
    expect(flows.map(where)).toEqual(got); // and a flow stays on its queue
    // Back to one pair: everything on rx0 again.
    expect(ctrl(drv, 8, N.NET_CTRL_MQ, N.NET_CTRL_MQ_VQ_PAIRS_SET, [1, 0])).toBe(N.NET_OK);
    expect(flows.slice(0, 8).map(where)).toEqual(new Array(8).fill(0));
  });

  it('receive steering: replies of a flow go to the receive queue of the pair it was sent on', () => {
    const { drv, net, sent } = setup({ queuePairs: 3 });
    expect(ctrl(drv, 6, N.NET_CTRL_MQ, N.NET_CTRL_MQ_VQ_PAIRS_SET, [3, 0])).toBe(N.NET_OK);
    postRx(drv, 3, 8);
    for (const pair of [2, 1, 0, 2]) {
      const out = eth(OTHER, MAC, { tcp: [0x0a000002, 0x0a000009, 40000 + pair * 7, 443] });
      drv.queues[2 * pair + 1].add([drv.buffer(12), drv.buffer(out.length, out)], []);
      drv.kick(2 * pair + 1);
      expect(drv.drain(2 * pair + 1)).toHaveLength(1);
      expect(sent.at(-1)!.frame).toEqual(out);
      const reply = eth(MAC, OTHER, { tcp: [0x0a000009, 0x0a000002, 443, 40000 + pair * 7] });
      expect(net.deliver(reply, 0, reply.length)).toBe(true);
      expect(rxQueues(drv, 3)).toEqual([2 * pair]);
    }
  });

  it('transmit queues of pairs not in use are not read until VQ_PAIRS_SET enables them', () => {
    const { drv, sent } = setup({ queuePairs: 2 });
    const f = eth(OTHER, MAC);
    drv.queues[3].add([drv.buffer(12), drv.buffer(f.length, f)], []);
    drv.kick(3);
    expect(sent).toHaveLength(0);
    expect(drv.drain(3)).toEqual([]);
    expect(ctrl(drv, 4, N.NET_CTRL_MQ, N.NET_CTRL_MQ_VQ_PAIRS_SET, [2, 0])).toBe(N.NET_OK);
    expect(sent).toHaveLength(1);
    expect(drv.drain(3)).toHaveLength(1);
  });

  it('back-pressure is per receive queue: onRxReady fires when the blocked queue gets buffers', () => {
    let ready = 0;
    const { drv, net } = setup({ queuePairs: 2, onRxReady: () => void ready++ });
    expect(ctrl(drv, 4, N.NET_CTRL_MQ, N.NET_CTRL_MQ_VQ_PAIRS_SET, [2, 0])).toBe(N.NET_OK);
    // Find a flow that hashes to pair 1, with buffers only on rx0.
    postRx(drv, 1, 4);
    let f = eth(MAC, OTHER, { tcp: [1, 2, 3, 4] });
    for (let i = 0; i < 64; i++) {
      f = eth(MAC, OTHER, { tcp: [1, 2, 3 + i, 4] });
      if (!net.deliver(f, 0, f.length)) break;
    }
    expect(net.deliver(f, 0, f.length)).toBe(false);
    drv.kick(0);
    expect(ready).toBe(0);
    drv.queues[2].add([], [drv.buffer(2048)]);
    drv.kick(2);
    expect(ready).toBe(1);
    expect(net.deliver(f, 0, f.length)).toBe(true);
    expect(drv.drain(2)).toHaveLength(1);
  });
});

describe('virtio-net control queue: receive filter', () => {
  /** True when the frame reached the guest. */
  function passes(drv: MockDriver, net: N.VirtioNet, f: Uint8Array): boolean {
    drv.queues[0].add([], [drv.buffer(2048)]);
    drv.kick(0);
    expect(net.deliver(f, 0, f.length)).toBe(true);
    return drv.drain(0).length === 1; // (a refused frame leaves its buffer posted: harmless)
  }

  it('promiscuous after reset; promisc off: own MAC and broadcast only; allmulti; nobcast; nouni', () => {
    const { drv, net } = setup();
    expect(passes(drv, net, eth(OTHER, MAC))).toBe(true);
    expect(ctrl(drv, 2, N.NET_CTRL_RX, N.NET_CTRL_RX_PROMISC, [0])).toBe(N.NET_OK);
    expect(passes(drv, net, eth(OTHER, MAC))).toBe(false);
    expect(passes(drv, net, eth(MAC, OTHER))).toBe(true);
    expect(passes(drv, net, eth(BCAST, OTHER))).toBe(true);
    expect(passes(drv, net, eth(MCAST, OTHER))).toBe(false);
    expect(ctrl(drv, 2, N.NET_CTRL_RX, N.NET_CTRL_RX_ALLMULTI, [1])).toBe(N.NET_OK);
    expect(passes(drv, net, eth(MCAST, OTHER))).toBe(true);
    expect(ctrl(drv, 2, N.NET_CTRL_RX, N.NET_CTRL_RX_NOBCAST, [1])).toBe(N.NET_OK);
    expect(passes(drv, net, eth(BCAST, OTHER))).toBe(false);
    expect(ctrl(drv, 2, N.NET_CTRL_RX, N.NET_CTRL_RX_NOUNI, [1])).toBe(N.NET_OK);
    expect(passes(drv, net, eth(MAC, OTHER))).toBe(false);
    expect(ctrl(drv, 2, N.NET_CTRL_RX, N.NET_CTRL_RX_NOMULTI, [1])).toBe(N.NET_OK);
    expect(passes(drv, net, eth(MCAST, OTHER))).toBe(false);
    expect(ctrl(drv, 2, N.NET_CTRL_RX, N.NET_CTRL_RX_PROMISC, [1])).toBe(N.NET_OK);
    expect(passes(drv, net, eth(OTHER, MAC))).toBe(true);
    expect(net.stats.rxFiltered).toBe(5);
    // A reset brings the promiscuous default back.
    drv.init({ queueSize: 32 });
    expect(net.filter.promisc).toBe(true);
    expect(net.filter.nouni).toBe(false);
  });

  it('RX commands: missing data, unknown command and RX_EXTRA commands without RX_EXTRA are refused', () => {
    const { drv, net } = setup({}, { features: acceptFeatures({ lo: ~N.NET_F_CTRL_RX_EXTRA }) });
    expect(ctrl(drv, 2, N.NET_CTRL_RX, N.NET_CTRL_RX_PROMISC)).toBe(N.NET_ERR);
    expect(ctrl(drv, 2, N.NET_CTRL_RX, 6, [1])).toBe(N.NET_ERR);
    expect(ctrl(drv, 2, N.NET_CTRL_RX, N.NET_CTRL_RX_ALLUNI, [1])).toBe(N.NET_ERR);
    expect(ctrl(drv, 2, N.NET_CTRL_RX, N.NET_CTRL_RX_ALLMULTI, [1])).toBe(N.NET_OK);
    expect(net.filter.alluni).toBe(false);
    expect(net.stats.ctrlErrors).toBe(3);
  });

  it('MAC_TABLE_SET: unicast and multicast tables, overflow accepts all, malformed tables change nothing', () => {
    const { drv, net } = setup();
    expect(ctrl(drv, 2, N.NET_CTRL_RX, N.NET_CTRL_RX_PROMISC, [0])).toBe(N.NET_OK);
    const table = (macs: number[][]): number[] => [macs.length, 0, 0, 0, ...macs.flat()];
    const M2 = [0x01, 0x00, 0x5e, 0x00, 0x00, 0xfb];
    // Two separate out buffers, as Linux sends them.
    expect(ctrl(drv, 2, N.NET_CTRL_MAC, N.NET_CTRL_MAC_TABLE_SET, table([OTHER]), table([MCAST, M2]))).toBe(N.NET_OK);
    expect([net.filter.uniCount, net.filter.multiCount]).toEqual([1, 2]);
    expect(passes(drv, net, eth(OTHER, MAC))).toBe(true);
    expect(passes(drv, net, eth(M2, OTHER))).toBe(true);
    expect(passes(drv, net, eth([0x01, 0x00, 0x5e, 0, 0, 1], OTHER))).toBe(false);
    expect(passes(drv, net, eth([2, 2, 2, 2, 2, 2], OTHER))).toBe(false);
    // Malformed: entries claim more than the data holds / trailing bytes / no multicast count.
    for (const bad of [[[5, 0, 0, 0, ...OTHER], table([])], [table([OTHER]), table([]), [0]], [table([OTHER])], [[0xff, 0xff, 0xff, 0xff], table([])]]) {
      expect(ctrl(drv, 2, N.NET_CTRL_MAC, N.NET_CTRL_MAC_TABLE_SET, ...bad)).toBe(N.NET_ERR);
    }
    expect([net.filter.uniCount, net.filter.multiCount]).toEqual([1, 2]);
    // More than NET_MAC_TABLE_ENTRIES unicast entries: overflow, every unicast frame passes.
    const many = Array.from({ length: N.NET_MAC_TABLE_ENTRIES + 1 }, (_, i) => [0x02, 0, 0, 0, 0, i]);
    expect(ctrl(drv, 2, N.NET_CTRL_MAC, N.NET_CTRL_MAC_TABLE_SET, table(many), table([]))).toBe(N.NET_OK);
    expect(net.filter.uniOverflow).toBe(true);
    expect(passes(drv, net, eth([2, 2, 2, 2, 2, 2], OTHER))).toBe(true);
    expect(passes(drv, net, eth(M2, OTHER))).toBe(false);
  });

  it('MAC_ADDR_SET changes the config MAC and the filter; a reset restores the configured MAC', () => {
    const { drv, net } = setup();
    expect(ctrl(drv, 2, N.NET_CTRL_MAC, N.NET_CTRL_MAC_ADDR_SET, OTHER)).toBe(N.NET_OK);
    expect(Array.from(net.macAddress)).toEqual(OTHER);
    expect(drv.transport.readConfig(0, 4)).toBe(0xaa005452);
    expect(ctrl(drv, 2, N.NET_CTRL_MAC, N.NET_CTRL_MAC_ADDR_SET, [1, 2, 3])).toBe(N.NET_ERR);
    expect(ctrl(drv, 2, N.NET_CTRL_RX, N.NET_CTRL_RX_PROMISC, [0])).toBe(N.NET_OK);
    expect(passes(drv, net, eth(OTHER, MAC))).toBe(true);
    expect(passes(drv, net, eth(MAC, OTHER))).toBe(false);
    drv.init({ queueSize: 32 });
    expect(Array.from(net.macAddress)).toEqual(MAC);
  });

  it('VLAN filter: with CTRL_VLAN tagged frames pass only for added VIDs; without it every VID passes', () => {
    const { drv, net } = setup();
    expect(ctrl(drv, 2, N.NET_CTRL_RX, N.NET_CTRL_RX_PROMISC, [0])).toBe(N.NET_OK);
    expect(passes(drv, net, eth(MAC, OTHER, { vlan: 5 }))).toBe(false);
    expect(ctrl(drv, 2, N.NET_CTRL_VLAN, N.NET_CTRL_VLAN_ADD, [5, 0])).toBe(N.NET_OK);
    expect(passes(drv, net, eth(MAC, OTHER, { vlan: 5 }))).toBe(true);
    expect(passes(drv, net, eth(MAC, OTHER, { vlan: 6 }))).toBe(false);
    expect(passes(drv, net, eth(MAC, OTHER))).toBe(true); // untagged
    expect(ctrl(drv, 2, N.NET_CTRL_VLAN, N.NET_CTRL_VLAN_DEL, [5, 0])).toBe(N.NET_OK);
    expect(passes(drv, net, eth(MAC, OTHER, { vlan: 5 }))).toBe(false);
    expect(ctrl(drv, 2, N.NET_CTRL_VLAN, N.NET_CTRL_VLAN_ADD, [0, 0x10])).toBe(N.NET_ERR); // VID 4096
    expect(ctrl(drv, 2, N.NET_CTRL_VLAN, N.NET_CTRL_VLAN_ADD, [5])).toBe(N.NET_ERR);
    const plain = setup({}, { features: acceptFeatures({ lo: ~N.NET_F_CTRL_VLAN }) });
    expect(ctrl(plain.drv, 2, N.NET_CTRL_RX, N.NET_CTRL_RX_PROMISC, [0])).toBe(N.NET_OK);
    expect(passes(plain.drv, plain.net, eth(MAC, OTHER, { vlan: 5 }))).toBe(true);
    expect(ctrl(plain.drv, 2, N.NET_CTRL_VLAN, N.NET_CTRL_VLAN_ADD, [5, 0])).toBe(N.NET_ERR);
  });
});

describe('virtio-net control queue: announce, errors and feature rules', () => {
  it('announce() sets VIRTIO_NET_S_ANNOUNCE with a config interrupt; ANNOUNCE_ACK clears it', () => {
    const { drv, net, mmio } = setup();
    drv.transport.ackInterrupt();
    const gen = drv.transport.configGeneration();
    expect(net.announce()).toBe(true);
    expect(drv.transport.readConfig(6, 2)).toBe(N.NET_S_LINK_UP | N.NET_S_ANNOUNCE);
    expect(mmio!.interruptStatus & ISR_CONFIG).toBe(ISR_CONFIG);
    expect(drv.transport.configGeneration()).not.toBe(gen);
    expect(ctrl(drv, 2, N.NET_CTRL_ANNOUNCE, N.NET_CTRL_ANNOUNCE_ACK)).toBe(N.NET_OK);
    expect(drv.transport.readConfig(6, 2)).toBe(N.NET_S_LINK_UP);
    expect(ctrl(drv, 2, N.NET_CTRL_ANNOUNCE, N.NET_CTRL_ANNOUNCE_ACK)).toBe(N.NET_ERR); // nothing pending (as QEMU)
    const plain = setup({}, { features: acceptFeatures({ lo: ~N.NET_F_GUEST_ANNOUNCE }) });
    expect(plain.net.announce()).toBe(false);
    expect(ctrl(plain.drv, 2, N.NET_CTRL_ANNOUNCE, N.NET_CTRL_ANNOUNCE_ACK)).toBe(N.NET_ERR);
  });

  it('unknown classes are answered VIRTIO_NET_ERR; the queue keeps working', () => {
    const { drv, net } = setup();
    expect(ctrl(drv, 2, 5, 0, [0, 0, 0, 0, 0, 0, 0, 0])).toBe(N.NET_ERR); // GUEST_OFFLOADS: not offered
    expect(ctrl(drv, 2, 0xff, 0xff)).toBe(N.NET_ERR);
    expect(ctrl(drv, 2, N.NET_CTRL_RX, N.NET_CTRL_RX_PROMISC, [0])).toBe(N.NET_OK);
    expect(net.stats.ctrlCommands).toBe(3);
  });

  it('a command without the 2-byte header or without an ack byte is a driver error: NEEDS_RESET', () => {
    for (const [out, inn] of [[[N.NET_CTRL_RX], 1], [[N.NET_CTRL_RX, 0, 0], 0]] as const) {
      const { drv, core } = setup();
      const outs = [drv.buffer(out.length, Uint8Array.from(out))];
      drv.queues[2].add(outs, inn === 1 ? [drv.buffer(1)] : []);
      drv.kick(2);
      expect(core.status & STATUS_NEEDS_RESET).toBe(STATUS_NEEDS_RESET);
      expect(core.lastError).toMatch(/virtio-net: control/);
    }
  });

  it('feature rules: the control features need CTRL_VQ, CTRL_RX_EXTRA needs CTRL_RX', () => {
    for (const drop of [N.NET_F_CTRL_VQ, N.NET_F_CTRL_RX]) {
      const { ok } = setup({ queuePairs: 2 }, { features: acceptFeatures({ lo: ~drop }) });
      expect(ok).toBe(false);
    }
    expect(setup({ queuePairs: 2 }, { features: acceptFeatures({ lo: ~(N.NET_F_CTRL_VQ | N.NET_F_CTRL_RX | N.NET_F_CTRL_RX_EXTRA | N.NET_F_CTRL_VLAN | N.NET_F_CTRL_MAC_ADDR | N.NET_F_GUEST_ANNOUNCE | N.NET_F_MQ) }), queues: 2 }).ok).toBe(true);
  });
});
