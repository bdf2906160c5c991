// virtio-console MULTIPORT through the mock driver, playing the Linux virtio_console driver's
// side of the control protocol (virtio 1.x §5.3.6).
import { FlatGuestMemory } from '@ringzero/mmu-ept';
import { describe, expect, it } from 'vitest';
import * as C from './console';
import type { VirtioConsoleOptions } from './console';
import { VirtioMmio } from './mmio';
import { VirtioPci } from './pci';
import { GuestAllocator } from './testing/alloc';
import type { GuestBuffer } from './testing/alloc';
import type { MockDriverInit } from './testing/driver';
import { acceptFeatures, MockDriver } from './testing/driver';
import { mmioDriverTransport } from './testing/mmio-transport';
import { pciDriverTransport } from './testing/pci-transport';

const BAD_ID = 0xffff_ffff;
const dec = new TextDecoder();
const enc = new TextEncoder();

interface Msg {
  id: number;
  event: number;
  value: number;
  extra: Uint8Array;
}

function setup(opts: Partial<VirtioConsoleOptions> = {}, init: MockDriverInit = {}, transport: 'mmio' | 'pci' = 'mmio') {
  const mem = new FlatGuestMemory(4 << 20);
  const out: string[][] = [[], [], [], []];
  const con = new C.VirtioConsole({ output: (b, o, l) => out[0].push(dec.decode(b.subarray(o, o + l))), maxPorts: 4, cols: 80, rows: 25, queueSize: 16, ...opts });
  const mmio = transport === 'mmio' ? new VirtioMmio(con, mem, { irq: () => undefined }) : null;
  const pci = transport === 'pci' ? new VirtioPci(con, mem, { msi: () => undefined }) : null;
  const t = mmio != null ? mmioDriverTransport(mmio) : pciDriverTransport(pci!, { msix: true });
  const drv = new MockDriver(t, mem, new GuestAllocator(0x1000, mem.limit));
  const ok = drv.init({ queueSize: 16, ...init });
  const ctrlBufs = new Map<number, GuestBuffer>();
  /** Posts control receive buffers (Linux fills the control receiveq at probe). */
  const postCtrl = (n: number, len = 64): void => {
    for (let i = 0; i < n; i++) {
      const b = drv.buffer(len);
      ctrlBufs.set(drv.queues[2].add([], [b]), b);
    }
    drv.kick(2);
  };
  /** The control messages the device sent. */
  const received = (): Msg[] =>
    drv.drain(2).map((u) => {
      const b = drv.bytes(ctrlBufs.get(u.id)!, u.len);
      const v = new DataView(b.buffer);
      return { id: v.getUint32(0, true), event: v.getUint16(4, true), value: v.getUint16(6, true), extra: b.subarray(8) };
    });
  /** The driver sends one control message. */
  const send = (id: number, event: number, value: number): void => {
    const b = new Uint8Array(8);
    const v = new DataView(b.buffer);
    v.setUint32(0, id, true);
    v.setUint16(4, event, true);
    v.setUint16(6, value, true);
    drv.queues[3].add([drv.buffer(8, b)], []);
    drv.kick(3);
    expect(drv.drain(3)).toHaveLength(1);
  };
  return { ok, mem, drv, con, out, mmio, postCtrl, received, send };
}

const brief = (ms: Msg[]): [number, number, number][] => ms.map((m) => [m.id, m.event, m.value]);

describe('virtio-console MULTIPORT', () => {
  for (const transport of ['mmio', 'pci'] as const) {
    it(`queue numbering as Linux (over ${transport}): port 0 at 0/1, control at 2/3, port n at 2(n+1)/2(n+1)+1; max_nr_ports in config`, () => {
      const { ok, drv, con } = setup({}, {}, transport);
      expect(ok).toBe(true);
      expect(con.queueCount).toBe(10);
      expect(drv.queues).toHaveLength(10);
      expect(drv.featuresLo & C.CONSOLE_F_MULTIPORT).toBe(C.CONSOLE_F_MULTIPORT);
      expect(drv.transport.readConfig(4, 4)).toBe(4);
      // Data on port 2's transmitq (index 7) reaches port 2's output; input to port 2 lands on index 6.
      const got: string[] = [];
      con.addPort(2, { output: (b, o, l) => got.push(dec.decode(b.subarray(o, o + l))) });
      drv.queues[7].add([drv.buffer(5, enc.encode('port2'))], []);
      drv.kick(7);
      expect(got).toEqual(['port2']);
      const rb = drv.buffer(32);
      drv.queues[6].add([], [rb]);
      drv.kick(6);
      con.input(enc.encode('to port 2'), 2);
      expect(drv.drain(6)).toEqual([{ id: 0, len: 9 }]);
      expect(dec.decode(drv.bytes(rb, 9))).toBe('to port 2');
      expect(drv.drain(0)).toEqual([]);
    });
  }

  it('the handshake QEMU does: DEVICE_READY -> PORT_ADD each; PORT_READY -> CONSOLE_PORT, PORT_NAME, PORT_OPEN', () => {
    const { con, postCtrl, received, send } = setup({ name: 'console0' });
    const opened: boolean[] = [];
    con.addPort(1, { name: 'org.ringzero.agent', onOpen: (o) => opened.push(o) });
    con.addPort(3, { hostOpen: false });
    postCtrl(16);
    expect(received()).toEqual([]); // nothing before DEVICE_READY
    send(BAD_ID, C.CONSOLE_DEVICE_READY, 1);
    expect(con.deviceReady).toBe(true);
    expect(brief(received())).toEqual([[0, C.CONSOLE_PORT_ADD, 1], [1, C.CONSOLE_PORT_ADD, 1], [3, C.CONSOLE_PORT_ADD, 1]]);
    send(0, C.CONSOLE_PORT_READY, 1);
    const m0 = received();
    expect(brief(m0)).toEqual([[0, C.CONSOLE_CONSOLE_PORT, 1], [0, C.CONSOLE_PORT_NAME, 1], [0, C.CONSOLE_PORT_OPEN, 1]]);
    expect(dec.decode(m0[1].extra)).toBe('console0\0');
    send(1, C.CONSOLE_PORT_READY, 1);
    const m1 = received();
    expect(brief(m1)).toEqual([[1, C.CONSOLE_PORT_NAME, 1], [1, C.CONSOLE_PORT_OPEN, 1]]);
    expect(dec.decode(m1[0].extra)).toBe('org.ringzero.agent\0');
    send(3, C.CONSOLE_PORT_READY, 1);
    expect(received()).toEqual([]); // not a console, no name, host side closed
    expect([0, 1, 3].map((i) => con.isPortReady(i))).toEqual([true, true, true]);
    // The guest opens and closes port 1; the host side of port 3 connects.
    send(1, C.CONSOLE_PORT_OPEN, 1);
    send(1, C.CONSOLE_PORT_OPEN, 0);
    expect(opened).toEqual([true, false]);
    con.setHostOpen(3, true);
    expect(brief(received())).toEqual([[3, C.CONSOLE_PORT_OPEN, 1]]);
    con.setHostOpen(3, false);
    expect(brief(received())).toEqual([[3, C.CONSOLE_PORT_OPEN, 0]]);
  });

  it('resize() sends RESIZE {le16 cols, le16 rows} to the console port; hot plug sends PORT_ADD / PORT_REMOVE', () => {
    const { con, postCtrl, received, send, drv } = setup();
    postCtrl(8);
    send(BAD_ID, C.CONSOLE_DEVICE_READY, 1);
    received();
    const gen = drv.transport.configGeneration();
    con.resize(132, 43);
    const [r] = received();
    expect([r.id, r.event, r.value]).toEqual([0, C.CONSOLE_RESIZE, 0]);
    expect(Array.from(r.extra)).toEqual([132, 0, 43, 0]);
    expect(drv.transport.readConfig(0, 2)).toBe(132); // config space follows too...
    expect(drv.transport.configGeneration()).toBe(gen); // ...without a config interrupt (multiport uses RESIZE)
    const old = setup({ resizeRowsFirst: true });
    old.postCtrl(4);
    old.send(BAD_ID, C.CONSOLE_DEVICE_READY, 1);
    old.received();
    old.con.resize(132, 43);
    expect(Array.from(old.received()[0].extra)).toEqual([43, 0, 132, 0]);
    con.addPort(2, { name: 'hot' });
    expect(brief(received())).toEqual([[2, C.CONSOLE_PORT_ADD, 1]]);
    con.removePort(2);
    expect(brief(received())).toEqual([[2, C.CONSOLE_PORT_REMOVE, 0]]);
    expect(() => con.addPort(4)).toThrow(RangeError);
    expect(() => con.addPort(0)).toThrow(RangeError);
  });

  it('control messages wait for control receive buffers, bounded; a short buffer gets a truncated message', () => {
    const { con, postCtrl, send, drv } = setup();
    send(BAD_ID, C.CONSOLE_DEVICE_READY, 1);
    expect(con.controlBacklog).toBe(1); // PORT_ADD(0) waits
    for (let i = 0; i < C.CONSOLE_CONTROL_BACKLOG + 20; i++) {
      con.addPort(1);
      con.removePort(1);
    }
    expect(con.controlBacklog).toBe(C.CONSOLE_CONTROL_BACKLOG);
    expect(con.controlDropped).toBe(2 * (C.CONSOLE_CONTROL_BACKLOG + 20) + 1 - C.CONSOLE_CONTROL_BACKLOG);
    postCtrl(1, 4);
    expect(drv.drain(2)).toEqual([{ id: 0, len: 4 }]); // the 8-byte PORT_ADD(0), truncated to the buffer
    expect(con.controlBacklog).toBe(C.CONSOLE_CONTROL_BACKLOG - 1);
  });

  it('hostile control messages: unknown ports, short messages, device-only events and DEVICE_READY 0 are ignored and counted', () => {
    const { con, postCtrl, received, send, drv } = setup();
    postCtrl(8);
    send(99, C.CONSOLE_PORT_READY, 1);
    send(2, C.CONSOLE_PORT_OPEN, 1); // port 2 does not exist
    send(0, C.CONSOLE_RESIZE, 0); // a device-to-driver event
    send(0, 0x7777, 1);
    send(BAD_ID, C.CONSOLE_DEVICE_READY, 0);
    drv.queues[3].add([drv.buffer(7)], []);
    drv.kick(3);
    expect(drv.drain(3)).toHaveLength(1);
    expect(con.controlErrors).toBe(6);
    expect(received()).toEqual([]);
    send(BAD_ID, C.CONSOLE_DEVICE_READY, 1);
    expect(brief(received())).toEqual([[0, C.CONSOLE_PORT_ADD, 1]]);
  });

  it('a reset forgets the guest side; the handshake runs again after re-initialisation', () => {
    const { con, postCtrl, received, send, drv } = setup();
    postCtrl(4);
    send(BAD_ID, C.CONSOLE_DEVICE_READY, 1);
    send(0, C.CONSOLE_PORT_READY, 1);
    expect(con.isPortReady(0)).toBe(true);
    drv.queues.length = 0;
    expect(drv.init({ queueSize: 16 })).toBe(true);
    expect(con.deviceReady).toBe(false);
    expect(con.isPortReady(0)).toBe(false);
    expect(con.controlBacklog).toBe(0);
    postCtrl(4);
    send(BAD_ID, C.CONSOLE_DEVICE_READY, 1);
    expect(brief(received())).toEqual([[0, C.CONSOLE_PORT_ADD, 1]]);
  });

  it('without MULTIPORT negotiated the device is the single-port console (2 queues, config resize)', () => {
    const { ok, drv, con, out, mmio } = setup({}, { features: acceptFeatures({ lo: ~C.CONSOLE_F_MULTIPORT }), queues: 2 });
    expect(ok).toBe(true);
    drv.queues[1].add([drv.buffer(2, enc.encode('hi'))], []);
    drv.kick(1);
    expect(out[0]).toEqual(['hi']);
    drv.transport.ackInterrupt();
    const gen = drv.transport.configGeneration();
    con.resize(100, 30);
    expect(drv.transport.configGeneration()).not.toBe(gen);
    expect(mmio!.interruptStatus & 2).toBe(2);
    expect(con.controlBacklog).toBe(0);
  });

  it('maxPorts outside 1..CONSOLE_MAX_PORTS and MULTIPORT on a single-port console are refused', () => {
    expect(() => new C.VirtioConsole({ output: () => undefined, maxPorts: 0 })).toThrow(RangeError);
    expect(() => new C.VirtioConsole({ output: () => undefined, maxPorts: C.CONSOLE_MAX_PORTS + 1 })).toThrow(RangeError);
    const single = new C.VirtioConsole({ output: () => undefined });
    expect(single.queueCount).toBe(2);
    const mem = new FlatGuestMemory(1 << 20);
    const drv = new MockDriver(mmioDriverTransport(new VirtioMmio(single, mem, { irq: () => undefined })), mem, new GuestAllocator(0x1000, mem.limit));
    expect(drv.init({ features: (l, h) => [l | C.CONSOLE_F_MULTIPORT, h] })).toBe(false);
  });
});
