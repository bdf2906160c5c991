import fc from 'fast-check';
import { beforeEach, describe, expect, it } from 'vitest';
import { MmioBus } from '../bus/mmio';
import { decodeMsi, newMsiMessage } from '../bus/interrupts';
import { RecordingInterruptSink } from '../bus/testing';
import { IoApic } from './ioapic';

const BASE = 0xfec00000;
let bus: MmioBus;
let sink: RecordingInterruptSink;
let ioapic: IoApic;
const read = (reg: number): number => {
  bus.write(BASE, 4, reg);
  return bus.read(BASE + 0x10, 4);
};
const write = (reg: number, v: number): void => {
  bus.write(BASE, 4, reg);
  bus.write(BASE + 0x10, 4, v);
};

beforeEach(() => {
  bus = new MmioBus();
  sink = new RecordingInterruptSink();
  ioapic = new IoApic(sink, { id: 1 });
  bus.register(BASE, 0x1000, ioapic, 'ioapic');
});

describe('82093AA IOAPIC', () => {
  it('reports ID, version 0x11 with 24 entries, and resets all entries masked', () => {
    expect(read(0x00)).toBe(0x01000000);
    expect(read(0x01)).toBe(0x00170011);
    for (let n = 0; n < 24; n++) expect(read(0x10 + 2 * n)).toBe(0x00010000);
    write(0x00, 0x0f000000);
    expect(read(0x00)).toBe(0x0f000000);
    expect(read(0x3f)).toBe(0);
    expect(read(0x40)).toBe(0); // past entry 23
  });

  it('delivers an edge-triggered pin as an interrupt message to its destination', () => {
    // Linux ioapic_write_entry: high dword first, then low
    write(0x10 + 2 * 4 + 1, 0x03000000);
    write(0x10 + 2 * 4, 0x00000024); // vector 0x24, fixed, physical, edge, unmasked
    ioapic.setIrq(4, true);
    ioapic.setIrq(4, true);
    expect(sink.msis).toHaveLength(1);
    const m = decodeMsi(...sink.msis[0], newMsiMessage());
    expect(m).toMatchObject({ valid: true, destination: 3, vector: 0x24, deliveryMode: 0, levelTriggered: false, logical: false });
    ioapic.setIrq(4, false);
    ioapic.setIrq(4, true);
    expect(sink.msis).toHaveLength(2);
  });

  it('latches an edge while masked and delivers it on unmask', () => {
    write(0x10 + 2 * 1, 0x00010031);
    ioapic.setIrq(1, true);
    expect(sink.msis).toHaveLength(0);
    write(0x10 + 2 * 1, 0x00000031);
    expect(sink.msis).toHaveLength(1);
  });

  it('level-triggered: remote IRR holds off redelivery until the EOI broadcast', () => {
    write(0x10 + 2 * 16, 0x0000a941); // vector 0x41, lowest priority, logical, active low, level
    ioapic.setIrq(16, true);
    expect(sink.msis).toHaveLength(1);
    expect(decodeMsi(...sink.msis[0], newMsiMessage())).toMatchObject({ levelTriggered: true, assert: true, logical: true, deliveryMode: 1 });
    expect(read(0x10 + 2 * 16) & 0x4000).toBe(0x4000); // remote IRR
    write(0x10 + 2 * 16, 0x0000a941); // software cannot clear remote IRR
    expect(read(0x10 + 2 * 16) & 0x4000).toBe(0x4000);
    ioapic.setIrq(16, true);
    expect(sink.msis).toHaveLength(1);
    ioapic.endOfInterrupt(0x41); // line still asserted: delivered again
    expect(sink.msis).toHaveLength(2);
    ioapic.setIrq(16, false);
    ioapic.endOfInterrupt(0x41);
    expect(sink.msis).toHaveLength(2);
    expect(read(0x10 + 2 * 16) & 0x4000).toBe(0);
  });

  it('never throws on random register traffic (fuzz)', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 0x1fff }), fc.constantFrom(1, 2, 4, 8), fc.integer(), fc.integer({ min: -2, max: 30 }), fc.boolean()), { maxLength: 60 }), (ops) => {
        for (const [off, size, v, pin, level] of ops) {
          bus.write(BASE + off, size, v);
          ioapic.setIrq(pin, level);
          ioapic.endOfInterrupt(v & 0xff);
          const r = bus.read(BASE + off, size);
          if (r < 0 || r > 0xffffffff) return false;
        }
        return true;
      }),
      { numRuns: 300 },
    );
  });
});
