import fc from 'fast-check';
import { beforeEach, describe, expect, it } from 'vitest';
import { PortIoBus } from '../bus/pio';
import { RecordingLine } from '../bus/testing';
import { ManualClock } from '../bus/time';
import { Pit8254, PIT_FREQUENCY_HZ } from './pit';

let bus: PortIoBus;
let clock: ManualClock;
let irq: RecordingLine;
let pit: Pit8254;
const out = (port: number, v: number): void => bus.write(port, 1, v);
const inb = (port: number): number => bus.read(port, 1);
/** Virtual ns for n PIT ticks (rounded up so the tick has happened). */
const ticks = (n: number): number => Math.ceil((n * 1e9) / PIT_FREQUENCY_HZ);

beforeEach(() => {
  bus = new PortIoBus();
  clock = new ManualClock(1_000_000);
  irq = new RecordingLine();
  pit = new Pit8254(clock, irq);
  bus.register(0x40, 4, pit.ports, 'pit');
  bus.register(0x61, 1, pit.portB, 'port61');
});

describe('8254 PIT', () => {
  it('serves pit_calibrate_tsc: channel 2 mode 0, OUT2 rises in port 0x61 after the latch count', () => {
    // arch/x86/kernel/tsc.c pit_calibrate_tsc(latch = 1193182 / (1000 / 10), ms = 10)
    const latch = Math.floor(PIT_FREQUENCY_HZ / 100);
    out(0x61, (inb(0x61) & ~0x02) | 0x01);
    out(0x43, 0xb0);
    out(0x42, latch & 0xff);
    out(0x42, latch >> 8);
    expect(inb(0x61) & 0x20).toBe(0);
    clock.advance(ticks(latch - 1));
    expect(inb(0x61) & 0x20).toBe(0);
    clock.advance(ticks(2));
    expect(inb(0x61) & 0x20).toBe(0x20);
    expect(inb(0x61) & 0x03).toBe(0x01);
  });

  it('serves quick_pit_calibrate: the MSB of channel 2 counts down every 256 ticks', () => {
    out(0x61, (inb(0x61) & ~0x02) | 0x01);
    out(0x43, 0xb0);
    out(0x42, 0xff);
    out(0x42, 0xff);
    const msb = (): number => {
      inb(0x42); // pit_verify_msb: LSB then MSB
      return inb(0x42);
    };
    expect(msb()).toBe(0xff);
    clock.advance(ticks(255));
    expect(msb()).toBe(0xff);
    clock.advance(ticks(2));
    expect(msb()).toBe(0xfe);
    clock.advance(ticks(256 * 10));
    expect(msb()).toBe(0xf4);
  });

  it('stops channel 2 while its gate (port 0x61 bit 0) is low', () => {
    out(0x43, 0xb0);
    out(0x42, 0x00);
    out(0x42, 0x10);
    clock.advance(ticks(100));
    out(0x43, 0x80); // latch channel 2
    expect(inb(0x42) | (inb(0x42) << 8)).toBe(0x1000);
    out(0x61, 1);
    clock.advance(ticks(100));
    out(0x61, 0);
    clock.advance(ticks(500));
    out(0x43, 0x80);
    const v = inb(0x42) | (inb(0x42) << 8);
    expect(v).toBeGreaterThanOrEqual(0x1000 - 101);
    expect(v).toBeLessThanOrEqual(0x1000 - 99);
  });

  it('toggles the refresh bit (port 0x61 bit 4) every 15 us', () => {
    const a = inb(0x61) & 0x10;
    clock.advance(15085);
    expect(inb(0x61) & 0x10).toBe(a ^ 0x10);
  });

  it('latches the count as the i8253 clocksource reads it, and freezes it until read', () => {
    // drivers/clocksource/i8253.c: outb_p(0x00, PIT_MODE); count = inb_p(PIT_CH0) | inb_p(PIT_CH0) << 8
    out(0x43, 0x34); // init_pit_timer periodic: mode 2, lobyte/hibyte
    const latch = 11932; // LATCH for HZ = 100
    out(0x40, latch & 0xff);
    out(0x40, latch >> 8);
    clock.advance(ticks(1000));
    out(0x43, 0x00);
    clock.advance(ticks(3000)); // the latch holds
    const count = inb(0x40) | (inb(0x40) << 8);
    expect(count).toBeGreaterThanOrEqual(latch - 1001);
    expect(count).toBeLessThanOrEqual(latch - 999);
  });

  it('raises IRQ0 once per period in mode 2 (missed periods coalesce) and reports the next deadline', () => {
    out(0x43, 0x34);
    out(0x40, 100);
    out(0x40, 0);
    const start = clock.ns;
    let next = pit.poll(clock.ns);
    expect(irq.rises).toBe(0);
    expect(next).toBeGreaterThan(start);
    clock.ns = next;
    next = pit.poll(clock.ns);
    expect(irq.rises).toBe(1);
    expect(next - start).toBeCloseTo(ticks(200), -3);
    clock.advance(ticks(1000));
    pit.poll(clock.ns);
    expect(irq.rises).toBe(2);
  });

  it('mode 4 (Linux oneshot clockevent) strobes once at terminal count', () => {
    out(0x43, 0x38);
    out(0x40, 50);
    out(0x40, 0);
    const deadline = pit.poll(clock.ns);
    clock.ns = deadline;
    pit.poll(clock.ns);
    expect(irq.rises).toBe(1);
    clock.advance(ticks(70000));
    expect(pit.poll(clock.ns)).toBe(Infinity);
    expect(irq.rises).toBe(1);
  });

  it('mode 0 holds IRQ0 high from terminal count until reprogrammed', () => {
    out(0x43, 0x30);
    out(0x40, 10);
    out(0x40, 0);
    clock.advance(ticks(11));
    pit.poll(clock.ns);
    expect(irq.level).toBe(true);
    out(0x43, 0x30);
    expect(irq.level).toBe(false);
  });

  it('read-back latches status and count; status shows OUT, null count, RW, mode, BCD', () => {
    out(0x43, 0x36); // mode 3, word
    expect(pit.channels[0].nullCount).toBe(true);
    out(0x43, 0xe2); // read-back status of channel 0
    expect(inb(0x40)).toBe(0xc0 | 0x36); // OUT high (mode 3 idle), null count
    out(0x40, 0x00);
    out(0x40, 0x10);
    out(0x43, 0xe2); // status only
    expect(inb(0x40)).toBe(0x80 | 0x36);
    out(0x43, 0xd2); // count only
    expect(inb(0x40)).toBe(0x00);
    expect(inb(0x40)).toBe(0x10);
    out(0x43, 0xc2); // both: status first, then the count
    expect(inb(0x40)).toBe(0x80 | 0x36);
    expect(inb(0x40)).toBe(0x00);
    expect(inb(0x40)).toBe(0x10);
  });

  it('counts in BCD and honours lobyte-only / hibyte-only access', () => {
    out(0x43, 0x91); // channel 2, LSB only, mode 0, BCD
    out(0x61, 1);
    out(0x42, 0x99);
    clock.advance(ticks(10));
    expect(inb(0x42)).toBe(0x89);
    out(0x43, 0xa0); // channel 2, MSB only, mode 0, binary
    out(0x42, 0x02);
    expect(inb(0x42)).toBe(0x02);
    clock.advance(ticks(256));
    expect(inb(0x42)).toBe(0x01);
  });

  it('never throws on random port traffic (fuzz)', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.constantFrom(0x40, 0x41, 0x42, 0x43, 0x61), fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 1e7 })), { maxLength: 80 }), (ops) => {
        for (const [port, v, dt] of ops) {
          out(port, v);
          clock.advance(dt);
          const r = inb(port);
          if (r < 0 || r > 255) return false;
          const next = pit.poll(clock.ns);
          if (!(next > clock.ns)) return false;
        }
        return true;
      }),
      { numRuns: 300 },
    );
  });
});
