import fc from 'fast-check';
import { beforeEach, describe, expect, it } from 'vitest';
import { PortIoBus } from '../bus/pio';
import { RecordingLine } from '../bus/testing';
import { ManualClock } from '../bus/time';
import { daysFromCivil, Rtc } from './rtc';

let bus: PortIoBus;
let clock: ManualClock;
let irq: RecordingLine;
let rtc: Rtc;
const cmosRead = (reg: number): number => {
  bus.write(0x70, 1, reg);
  return bus.read(0x71, 1);
};
const cmosWrite = (reg: number, v: number): void => {
  bus.write(0x70, 1, reg);
  bus.write(0x71, 1, v);
};
/** include/linux/mc146818rtc.h mc146818_get_time, reduced: wait out UIP, read the fields. */
function linuxGetTime(): { sec: number; min: number; hour: number; mday: number; mon: number; year: number; century: number; wday: number } {
  let guard = 0;
  while (cmosRead(0x0a) & 0x80) {
    clock.advance(100_000);
    if (++guard > 100) throw new Error('UIP stuck');
  }
  const bcd = (v: number): number => (v >> 4) * 10 + (v & 15);
  const bin = (cmosRead(0x0b) & 0x04) !== 0;
  const f = (reg: number): number => (bin ? cmosRead(reg) : bcd(cmosRead(reg)));
  return { sec: f(0), min: f(2), hour: f(4), wday: f(6), mday: f(7), mon: f(8), year: f(9), century: f(0x32) };
}

beforeEach(() => {
  bus = new PortIoBus();
  clock = new ManualClock(0);
  irq = new RecordingLine();
  rtc = new Rtc(clock, irq, { startTimeMs: Date.UTC(2025, 0, 1, 23, 59, 58) });
  bus.register(0x70, 2, rtc.ports, 'rtc');
});

describe('MC146818 RTC', () => {
  it('reads the start date in BCD 24-hour mode, as Linux does, and runs with virtual time', () => {
    expect(cmosRead(0x0d)).toBe(0x80); // VRT
    expect(cmosRead(0x0a)).toBe(0x26);
    expect(linuxGetTime()).toEqual({ sec: 58, min: 59, hour: 23, wday: 4, mday: 1, mon: 1, year: 25, century: 20 });
    clock.advance(3e9);
    expect(linuxGetTime()).toMatchObject({ sec: 1, min: 0, hour: 0, mday: 2, wday: 5 });
  });

  it('computes day numbers like the proleptic Gregorian calendar', () => {
    expect(daysFromCivil(1970, 1, 1)).toBe(0);
    expect(daysFromCivil(2000, 3, 1) * 86400 * 1000).toBe(Date.UTC(2000, 2, 1));
    expect(daysFromCivil(2100, 12, 31) * 86400 * 1000).toBe(Date.UTC(2100, 11, 31));
  });

  it('switches to binary and 12-hour format (PM in bit 7)', () => {
    cmosWrite(0x0b, 0x04); // binary, 12-hour
    expect(cmosRead(0x04)).toBe(0x80 | 11); // 23:59 is 11 PM
    expect(cmosRead(0x00)).toBe(58);
    clock.advance(2e9);
    expect(cmosRead(0x04)).toBe(12); // midnight is 12 AM
  });

  it('sets the time as mc146818_set_time does (SET, write, clear SET) and runs from it', () => {
    cmosWrite(0x0b, cmosRead(0x0b) | 0x80);
    cmosWrite(0x00, 0x30);
    cmosWrite(0x02, 0x15);
    cmosWrite(0x04, 0x10);
    cmosWrite(0x07, 0x29);
    cmosWrite(0x08, 0x02);
    cmosWrite(0x09, 0x24);
    cmosWrite(0x32, 0x20);
    clock.advance(5e9); // frozen while SET
    expect(cmosRead(0x00)).toBe(0x30);
    cmosWrite(0x0b, cmosRead(0x0b) & ~0x80);
    clock.advance(31e9);
    expect(linuxGetTime()).toMatchObject({ sec: 1, min: 16, hour: 10, mday: 29, mon: 2, year: 24, wday: 5 });
    expect(rtc.secondsNow()).toBeCloseTo(Date.UTC(2024, 1, 29, 10, 16, 1) / 1000, 3);
  });

  it('sets UIP 244 us before each update', () => {
    clock.ns = 1e9 - 100_000; // start time is on a second boundary: 100 us before the next
    expect(cmosRead(0x0a) & 0x80).toBe(0x80);
    clock.ns = 1e9 - 300_000;
    expect(cmosRead(0x0a) & 0x80).toBe(0);
  });

  it('raises the periodic interrupt at the programmed rate until register C is read', () => {
    cmosWrite(0x0a, 0x26); // 1024 Hz
    cmosWrite(0x0b, cmosRead(0x0b) | 0x40);
    const next = rtc.poll(clock.ns);
    expect(next).toBeCloseTo(976562.5, 0);
    expect(irq.level).toBe(false);
    clock.ns = next;
    rtc.poll(clock.ns);
    expect(irq.level).toBe(true);
    expect(cmosRead(0x0c) & 0xc0).toBe(0xc0);
    expect(irq.level).toBe(false);
    expect(cmosRead(0x0c)).toBe(0);
    cmosWrite(0x0a, 0x2f); // 2 Hz
    expect(rtc.poll(clock.ns) - clock.ns).toBeCloseTo(5e8, -3);
  });

  it('raises update-ended and alarm interrupts (0xC0-0xFF alarm bytes are wildcards)', () => {
    cmosWrite(0x01, 0xff);
    cmosWrite(0x03, 0xff);
    cmosWrite(0x05, 0xff);
    cmosWrite(0x0b, cmosRead(0x0b) | 0x20 | 0x10);
    const next = rtc.poll(clock.ns);
    expect(next).toBe(1e9);
    clock.ns = next;
    rtc.poll(clock.ns);
    expect(irq.level).toBe(true);
    expect(cmosRead(0x0c) & 0xb0).toBe(0x80 | 0x20 | 0x10); // PF (bit 6) runs even with PIE clear
    // a specific alarm: 00:00:05 the next day, i.e. 7 s after start
    cmosWrite(0x0b, 0x02 | 0x20);
    cmosWrite(0x01, 0x05);
    cmosWrite(0x03, 0x00);
    cmosWrite(0x05, 0x00);
    for (let s = 2; s <= 6; s++) {
      clock.ns = s * 1e9;
      rtc.poll(clock.ns);
    }
    expect(irq.level).toBe(false);
    clock.ns = 7e9;
    rtc.poll(clock.ns);
    expect(irq.level).toBe(true);
  });

  it('keeps the NMI mask bit of the index port apart from the index', () => {
    bus.write(0x70, 1, 0x8f);
    expect(rtc.nmiMasked).toBe(true);
    expect(rtc.index).toBe(0x0f);
    bus.write(0x71, 1, 0x5a);
    bus.write(0x70, 1, 0x0f);
    expect(rtc.nmiMasked).toBe(false);
    expect(bus.read(0x71, 1)).toBe(0x5a);
  });

  it('fills the CMOS memory-size fields and checksum', () => {
    rtc.setMemorySize(512 * 2 ** 20, 2 ** 30);
    expect(cmosRead(0x30) | (cmosRead(0x31) << 8)).toBe(0xffff);
    expect(cmosRead(0x34) | (cmosRead(0x35) << 8)).toBe((512 - 16) * 16);
    expect(cmosRead(0x5b) | (cmosRead(0x5c) << 8) | (cmosRead(0x5d) << 16)).toBe(16384);
    rtc.setMemorySize(8 * 2 ** 20);
    expect(cmosRead(0x17) | (cmosRead(0x18) << 8)).toBe(7 * 1024);
    expect(cmosRead(0x34)).toBe(0);
    let sum = 0;
    for (let i = 0x10; i <= 0x2d; i++) sum += cmosRead(i);
    expect((cmosRead(0x2e) << 8) | cmosRead(0x2f)).toBe(sum);
  });

  it('never throws on random register traffic (fuzz)', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 3e9 })), { maxLength: 60 }), (ops) => {
        for (const [reg, v, dt] of ops) {
          cmosWrite(reg, v);
          clock.advance(dt);
          const r = cmosRead(reg);
          if (r < 0 || r > 255 || !Number.isInteger(r)) return false;
          if (!(rtc.poll(clock.ns) > clock.ns)) return false;
        }
        return true;
      }),
      { numRuns: 300 },
    );
  });
});
