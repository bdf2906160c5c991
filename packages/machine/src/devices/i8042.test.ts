import fc from 'fast-check';
import { beforeEach, describe, expect, it } from 'vitest';
import { PortIoBus } from '../bus/pio';
import { RecordingLine } from '../bus/testing';
import { I8042 } from './i8042';

let bus: PortIoBus;
let irq: RecordingLine;
let kbc: I8042;
let resets: number;
let a20: boolean[];
const status = (): number => bus.read(0x64, 1);
/** Everything in the output buffer (i8042_wait_read + read, until OBF clears). */
const drain = (): number[] => {
  const r: number[] = [];
  for (let i = 0; i < 32 && status() & 1; i++) r.push(bus.read(0x60, 1));
  return r;
};
/** i8042_command(): command to 0x64, parameters to 0x60, then the responses. */
const command = (cmd: number, ...params: number[]): number[] => {
  bus.write(0x64, 1, cmd);
  for (const p of params) bus.write(0x60, 1, p);
  return drain();
};
/** A byte to the keyboard through the data port, and its answer. */
const kbd = (...bytes: number[]): number[] => {
  for (const b of bytes) bus.write(0x60, 1, b);
  return drain();
};

beforeEach(() => {
  bus = new PortIoBus();
  irq = new RecordingLine();
  resets = 0;
  a20 = [];
  kbc = new I8042(irq, { onReset: () => resets++, onA20: (on) => a20.push(on) });
  bus.register(0x60, 1, kbc.dataPort, 'kbd-data');
  bus.register(0x64, 1, kbc.commandPort, 'kbd-cmd');
});

describe('i8042 and AT keyboard', () => {
  it('passes Linux i8042 controller probing: flush, self-test, CTR read/write, no AUX', () => {
    expect(drain()).toEqual([]);
    expect(command(0xaa)).toEqual([0x55]); // I8042_CMD_CTL_TEST
    expect(status() & 0x04).toBe(0x04); // SYS flag after self-test
    const [ctr] = command(0x20); // I8042_CMD_CTL_RCTR
    expect(ctr & 0x40).toBe(0x40); // translation on
    expect(command(0x20)).toEqual([ctr]);
    expect(command(0x60, (ctr & ~0x03) | 0x10)).toEqual([]); // WCTR: interrupts off, kbd disabled
    expect(command(0x20)).toEqual([(ctr & ~0x03) | 0x10]);
    expect(command(0xab)).toEqual([0x00]); // keyboard interface test
    expect(command(0xd3, 0x5a)).toEqual([]); // AUX_LOOP: no AUX port answers
    expect(command(0xa9)).toEqual([0x01]); // AUX_TEST: clock stuck low -> Linux sets noaux
    command(0x60, (ctr & ~0x10) | 0x01); // enable keyboard port with IRQ
    expect(irq.level).toBe(false);
  });

  it('answers atkbd probing: GETID, SETLEDS, scan set, rate, enable; reset 0xFF gives FA AA', () => {
    command(0x60, 0x45); // XLATE | SYS | KBDINT
    expect(kbd(0xf2)).toEqual([0xfa, 0xab, 0x41]); // translated MF2 ID
    expect(kbd(0xed, 0x00)).toEqual([0xfa, 0xfa]);
    expect(kbd(0xed, 0x07)).toEqual([0xfa, 0xfa]);
    expect(kbc.leds).toBe(7);
    expect(kbd(0xf0, 0x02)).toEqual([0xfa, 0xfa]);
    expect(kbd(0xf0, 0x00)).toEqual([0xfa, 0xfa, 0x41]); // set 2, as seen through translation
    expect(kbd(0xf3, 0x20)).toEqual([0xfa, 0xfa]);
    expect(kbd(0xf4)).toEqual([0xfa]);
    expect(kbd(0xff)).toEqual([0xfa, 0xaa]);
    expect(kbd(0xee)).toEqual([0xee]);
    expect(kbd(0x12)).toEqual([0xfe]);
    command(0x60, 0x05); // no translation
    expect(kbd(0xf2)).toEqual([0xfa, 0xab, 0x83]);
  });

  it('raises IRQ1 for each byte while KBDINT is set', () => {
    command(0x60, 0x45);
    kbc.injectKeyboardBytes([0x1e, 0x9e]);
    expect(irq.level).toBe(true);
    const rises = irq.rises;
    expect(bus.read(0x60, 1)).toBe(0x1e);
    expect(irq.rises).toBe(rises + 1); // the next byte is a new edge
    expect(bus.read(0x60, 1)).toBe(0x9e);
    expect(irq.level).toBe(false);
  });

  it('pulses reset on 0xFE (and on an output-port write with bit 0 clear); gates A20', () => {
    bus.write(0x64, 1, 0xfe);
    expect(resets).toBe(1);
    command(0xd1, 0xdd); // bit 1 (A20) set, bit 0 (reset) set: no reset
    expect(resets).toBe(1);
    command(0xd1, 0xdc);
    expect(resets).toBe(2);
    command(0xdd);
    expect(a20).toEqual([false]);
    expect(command(0xd0)[0] & 0x03).toBe(0x01);
    command(0xdf);
    expect(a20).toEqual([false, true]);
  });

  it('never throws and keeps its output bounded on random traffic (fuzz)', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 255 })), { maxLength: 100 }), (ops) => {
        for (const [cmd, v] of ops) {
          bus.write(cmd ? 0x64 : 0x60, 1, v);
          if (kbc.pendingBytes > 16) return false;
          const r = bus.read(cmd ? 0x64 : 0x60, 1);
          if (r < 0 || r > 255) return false;
        }
        return true;
      }),
      { numRuns: 300 },
    );
  });
});
