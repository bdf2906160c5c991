import { FlatGuestMemory } from '@ringzero/mmu-ept';
import { describe, expect, it } from 'vitest';
import { CONSOLE_F_SIZE, CONSOLE_INPUT_LIMIT, VirtioConsole } from './console';
import { VirtioMmio } from './mmio';
import { RNG_MAX_PER_REQUEST, VirtioRng } from './rng';
import { GuestAllocator } from './testing/alloc';
import { MockDriver } from './testing/driver';
import { mmioDriverTransport } from './testing/mmio-transport';

function boot(dev: VirtioConsole | VirtioRng) {
  const mem = new FlatGuestMemory(4 << 20);
  const alloc = new GuestAllocator(0x1000, mem.limit);
  const mmio = new VirtioMmio(dev, mem, { irq: () => undefined });
  const drv = new MockDriver(mmioDriverTransport(mmio), mem, alloc);
  expect(drv.init()).toBe(true);
  return { mem, drv, mmio };
}

describe('virtio-console', () => {
  it('passes guest output through and feeds input into receive buffers', () => {
    const out: string[] = [];
    const con = new VirtioConsole({ output: (b, o, l) => out.push(new TextDecoder().decode(b.subarray(o, o + l))), cols: 80, rows: 25 });
    const { drv, mmio } = boot(con);
    expect(mmio.core.offeredLo & CONSOLE_F_SIZE).toBe(CONSOLE_F_SIZE);
    expect(drv.transport.readConfig(0, 2)).toBe(80);
    expect(drv.transport.readConfig(2, 2)).toBe(25);
    const enc = new TextEncoder();
    drv.queues[1].add([drv.buffer(6, enc.encode('hello ')), drv.buffer(5, enc.encode('world'))], []);
    drv.kick(1);
    expect(out.join('')).toBe('hello world');
    con.input(enc.encode('typed before buffers'));
    expect(con.pendingInput).toBe(20);
    const b1 = drv.buffer(8);
    const b2 = drv.buffer(64);
    drv.queues[0].add([], [b1]);
    drv.queues[0].add([], [b2]);
    drv.kick(0);
    const used = drv.drain(0);
    expect(used.map((u) => u.len)).toEqual([8, 12]);
    expect(new TextDecoder().decode(drv.bytes(b1)) + new TextDecoder().decode(drv.bytes(b2, 12))).toBe('typed before buffers');
    drv.transport.writeConfig(8, 4, 0x21); // emergency write '!'
    expect(out.at(-1)).toBe('!');
  });

  it('bounds pending input', () => {
    const con = new VirtioConsole({ output: () => undefined });
    boot(con);
    con.input(new Uint8Array(CONSOLE_INPUT_LIMIT + 100));
    expect(con.pendingInput).toBe(CONSOLE_INPUT_LIMIT);
    expect(con.inputDropped).toBe(100);
  });
});

describe('virtio-rng', () => {
  it('fills buffers from the injected source, at most 64 KiB per request', () => {
    let calls = 0;
    const rng = new VirtioRng({ random: (o) => void (o.fill(0xa5), calls++) });
    const { drv } = boot(rng);
    const a = drv.buffer(32);
    const big = drv.buffer(RNG_MAX_PER_REQUEST + 4096);
    drv.queues[0].add([], [a]);
    drv.queues[0].add([], [big]);
    drv.kick(0);
    expect(drv.drain(0).map((u) => u.len)).toEqual([32, RNG_MAX_PER_REQUEST]);
    expect(drv.bytes(a).every((x) => x === 0xa5)).toBe(true);
    expect(calls).toBe(2);
  });

  it('uses crypto.getRandomValues by default', () => {
    const { drv } = boot(new VirtioRng());
    const a = drv.buffer(64);
    const b = drv.buffer(64);
    drv.queues[0].add([], [a]);
    drv.queues[0].add([], [b]);
    drv.kick(0);
    expect(drv.drain(0)).toHaveLength(2);
    // 2^-512 chance of a false failure
    expect(drv.bytes(a)).not.toEqual(drv.bytes(b));
    expect(drv.bytes(a).some((x) => x !== 0)).toBe(true);
  });
});
