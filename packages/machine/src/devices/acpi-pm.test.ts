import fc from 'fast-check';
import { beforeEach, describe, expect, it } from 'vitest';
import { PortIoBus } from '../bus/pio';
import { RecordingLine } from '../bus/testing';
import { ManualClock } from '../bus/time';
import { AcpiPm, PM_TIMER_FREQUENCY_HZ } from './acpi-pm';
import { DebugExit, PostCodePort } from './debug';

const EVT = 0x600;
const CNT = 0x604;
const TMR = 0x608;
let bus: PortIoBus;
let clock: ManualClock;
let sci: RecordingLine;
let pm: AcpiPm;
let events: string[];

beforeEach(() => {
  bus = new PortIoBus();
  clock = new ManualClock(0);
  sci = new RecordingLine();
  events = [];
  pm = new AcpiPm(clock, sci, { s5SleepType: 5, onPowerOff: () => events.push('off'), onSleep: (t) => events.push(`sleep${t}`) });
  bus.register(EVT, 4, pm.eventBlock, 'pm1a_evt');
  bus.register(CNT, 2, pm.controlBlock, 'pm1a_cnt');
  bus.register(TMR, 4, pm.timerBlock, 'pm_tmr');
});

describe('ACPI PM timer and PM1 blocks', () => {
  it('counts at 3.579545 MHz and wraps at 24 bits (acpi_pm_read)', () => {
    expect(bus.read(TMR, 4)).toBe(0);
    clock.ns = 1e9;
    expect(bus.read(TMR, 4)).toBe(PM_TIMER_FREQUENCY_HZ);
    clock.ns = 10e9;
    expect(bus.read(TMR, 4)).toBe((PM_TIMER_FREQUENCY_HZ * 10) % 2 ** 24);
    // Linux's acpi_pm_read_verified reads three times and expects monotonic values within a wrap
    const v1 = bus.read(TMR, 4);
    clock.advance(280);
    const v2 = bus.read(TMR, 4);
    expect(v2 - v1).toBe(1);
    const pm32 = new AcpiPm(clock, sci, { timer32: true });
    expect(pm32.timerValue(2000e9)).toBe(Math.floor(2000 * PM_TIMER_FREQUENCY_HZ) % 2 ** 32);
  });

  it('sets TMR_STS when the timer MSB toggles and raises SCI if TMR_EN', () => {
    bus.write(EVT + 2, 2, 0x0001); // TMR_EN
    const next = pm.poll(clock.ns);
    expect(next).toBeCloseTo((2 ** 23 / PM_TIMER_FREQUENCY_HZ) * 1e9, -1);
    clock.ns = next;
    pm.poll(clock.ns);
    expect(sci.level).toBe(true);
    expect(bus.read(EVT, 2) & 1).toBe(1);
    bus.write(EVT, 2, 0x0001); // write 1 to clear
    expect(sci.level).toBe(false);
  });

  it('raises SCI on the power button only when PWRBTN_EN, and clears by writing 1', () => {
    expect(bus.read(CNT, 2) & 1).toBe(1); // SCI_EN: always in ACPI mode
    pm.pressPowerButton();
    expect(sci.level).toBe(false);
    expect(bus.read(EVT, 2) & 0x100).toBe(0x100);
    bus.write(EVT + 2, 2, 0x0100); // PWRBTN_EN (acpi_button)
    expect(sci.level).toBe(true);
    expect(bus.read(EVT, 4)).toBe(0x01000100);
    bus.write(EVT, 2, 0x0100);
    expect(sci.level).toBe(false);
  });

  it('powers off on SLP_TYP=S5 with SLP_EN, as acpi_hw_legacy_sleep writes it', () => {
    // ACPICA writes SLP_TYP first, then SLP_TYP|SLP_EN
    bus.write(CNT, 2, (5 << 10) | 1);
    expect(events).toEqual([]);
    bus.write(CNT, 2, (5 << 10) | 0x2000 | 1);
    expect(events).toEqual(['off']);
    expect(pm.poweredOff).toBe(true);
    expect(bus.read(CNT, 2) & 0x2000).toBe(0); // SLP_EN reads 0
    bus.write(CNT + 1, 1, (3 << 2) | 0x20); // byte write: SLP_TYP 3, SLP_EN
    expect(events).toEqual(['off', 'sleep3']);
  });

  it('never throws on random accesses (fuzz)', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.integer({ min: EVT - 2, max: TMR + 5 }), fc.constantFrom(1, 2, 4), fc.integer()), { maxLength: 60 }), (ops) => {
        for (const [port, size, v] of ops) {
          bus.write(port, size, v);
          clock.advance(12345);
          const r = bus.read(port, size);
          if (r < 0 || r > 0xffffffff) return false;
        }
        return pm.poll(clock.ns) > clock.ns;
      }),
      { numRuns: 200 },
    );
  });
});

describe('port 0x80 and isa-debug-exit', () => {
  it('records POST codes and exits with (v << 1) | 1', () => {
    const codes: number[] = [];
    const post = new PostCodePort((c) => codes.push(c));
    let status = -1;
    const exit = new DebugExit((s) => (status = s));
    bus.register(0x80, 1, post, 'post');
    bus.register(0xf4, 4, exit, 'isa-debug-exit');
    bus.write(0x80, 1, 0x42);
    expect(codes).toEqual([0x42]);
    expect(bus.read(0x80, 1)).toBe(0xff);
    bus.write(0xf4, 1, 0x10);
    expect(status).toBe(0x21);
    bus.write(0xf4, 4, 0);
    expect(status).toBe(1);
    bus.write(0xf4, 4, 0x7fffffff);
    expect(status & 0xff).toBe(0xff);
  });
});
