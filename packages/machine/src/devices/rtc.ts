// Motorola MC146818 real-time clock and its 128 bytes of CMOS RAM, as on the PC (index port with
// the NMI-disable bit, data port). Time runs from a start date plus the machine's virtual time,
// so a deterministic clock gives a reproducible date. Datasheet: MC146818A; CMOS layout: the
// IBM AT conventions QEMU and SeaBIOS use (memory size fields, century at 0x32).
//
// Register A: [UIP][DV2 DV1 DV0][RS3..RS0]   B: [SET][PIE][AIE][UIE][SQWE][DM][24/12][DSE]
// Register C: [IRQF][PF][AF][UF][0000] (cleared by reading)   D: [VRT][0000000]

import type { InterruptLine } from '../bus/irq';
import type { PortIoDevice } from '../bus/pio';
import type { TimeSource, TimedDevice } from '../bus/time';
import { StateReader } from './state';

/** Saved state of the RTC (times are virtual ns: restore the machine's clock with it). */
export interface RtcState {
  version: 1;
  cmos: number[];
  index: number;
  nmiMasked: boolean;
  baseSeconds: number;
  baseNs: number;
  lastSecond: number;
  periodBaseNs: number;
  lastPeriod: number;
  regC: number;
}

export const RTC_SECONDS = 0x00;
export const RTC_SECONDS_ALARM = 0x01;
export const RTC_MINUTES = 0x02;
export const RTC_MINUTES_ALARM = 0x03;
export const RTC_HOURS = 0x04;
export const RTC_HOURS_ALARM = 0x05;
export const RTC_DAY_OF_WEEK = 0x06;
export const RTC_DAY_OF_MONTH = 0x07;
export const RTC_MONTH = 0x08;
export const RTC_YEAR = 0x09;
export const RTC_REG_A = 0x0a;
export const RTC_REG_B = 0x0b;
export const RTC_REG_C = 0x0c;
export const RTC_REG_D = 0x0d;
/** Century (BCD or binary per DM), the index ACPI's FADT names. */
export const RTC_CENTURY = 0x32;

const A_UIP = 0x80;
const B_SET = 0x80;
const B_PIE = 0x40;
const B_AIE = 0x20;
const B_UIE = 0x10;
const B_DM_BINARY = 0x04;
const B_24H = 0x02;
const C_IRQF = 0x80;
const C_PF = 0x40;
const C_AF = 0x20;
const C_UF = 0x10;
/** UIP is set this long before each update. */
const UIP_NS = 244_000;

/** Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil). */
export function daysFromCivil(y: number, m: number, d: number): number {
  y -= m <= 2 ? 1 : 0;
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const doy = Math.floor((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5) + d - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146097 + doe - 719468;
}

/** Options of the RTC. */
export interface RtcOptions {
  /** The date at virtual time 0, in ms since the Unix epoch (UTC). Default 2025-01-01T00:00:00Z. */
  startTimeMs?: number;
}

/**
 * The MC146818 RTC/CMOS. Register `ports` at the board's index port (2 ports: index, data; 0x70
 * on a PC). Its IRQ output (IRQ8 on a PC) is asserted while register C's IRQF is set.
 */
export class Rtc implements TimedDevice {
  readonly cmos: Uint8Array = new Uint8Array(128);
  readonly ports: PortIoDevice;
  index = 0;
  /** Bit 7 of the last index write (NMI disabled). */
  nmiMasked = false;
  /** Seconds since the epoch at `baseNs` (time registers run from here while SET is clear). */
  private baseSeconds: number;
  private baseNs: number;
  private lastSecond: number;
  private periodBaseNs: number;
  private lastPeriod = 0;
  private regC = 0;

  constructor(
    private readonly time: TimeSource,
    private readonly irq: InterruptLine,
    options: RtcOptions = {},
  ) {
    const startMs = options.startTimeMs ?? Date.UTC(2025, 0, 1);
    const now = time.nowNs();
    this.baseSeconds = Math.floor(startMs / 1000);
    this.baseNs = now - (startMs % 1000) * 1e6;
    this.lastSecond = this.baseSeconds;
    this.periodBaseNs = now;
    this.cmos[RTC_REG_A] = 0x26; // 32.768 kHz time base, 1024 Hz periodic rate
    this.cmos[RTC_REG_B] = B_24H;
    this.cmos[RTC_REG_D] = 0x80;
    this.ports = {
      portRead: (offset: number): number => ((offset & 1) === 0 ? 0xff : this.readRegister(this.index)),
      portWrite: (offset: number, _size: number, value: number): void => {
        if ((offset & 1) === 0) {
          this.nmiMasked = (value & 0x80) !== 0;
          this.index = value & 0x7f;
        } else {
          this.writeRegister(this.index, value & 0xff);
        }
      },
    };
  }

  private get running(): boolean {
    return (this.cmos[RTC_REG_B] & B_SET) === 0 && (this.cmos[RTC_REG_A] & 0x70) === 0x20;
  }

  /** Seconds since the epoch now (fractional). */
  secondsNow(nowNs: number = this.time.nowNs()): number {
    return this.baseSeconds + (nowNs - this.baseNs) / 1e9;
  }

  private encode(v: number): number {
    return this.cmos[RTC_REG_B] & B_DM_BINARY ? v : ((Math.floor(v / 10) % 10) << 4) | v % 10;
  }

  private decode(v: number): number {
    return this.cmos[RTC_REG_B] & B_DM_BINARY ? v : (v >> 4) * 10 + (v & 0xf);
  }

  private encodeHour(h: number): number {
    if (this.cmos[RTC_REG_B] & B_24H) return this.encode(h);
    return this.encode(h % 12 === 0 ? 12 : h % 12) | (h >= 12 ? 0x80 : 0);
  }

  private decodeHour(v: number): number {
    if (this.cmos[RTC_REG_B] & B_24H) return this.decode(v);
    return (this.decode(v & 0x7f) % 12) + (v & 0x80 ? 12 : 0);
  }

  /** Writes the current time into the time registers (they then hold it while SET is set). */
  private snapshot(seconds: number): void {
    const s = Math.floor(seconds);
    const days = Math.floor(s / 86400);
    const sod = s - days * 86400;
    // civil_from_days
    const z = days + 719468;
    const era = Math.floor(z / 146097);
    const doe = z - era * 146097;
    const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36524) - Math.floor(doe / 146096)) / 365);
    const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
    const mp = Math.floor((5 * doy + 2) / 153);
    const d = doy - Math.floor((153 * mp + 2) / 5) + 1;
    const m = mp + (mp < 10 ? 3 : -9);
    const y = yoe + era * 400 + (m <= 2 ? 1 : 0);
    const c = this.cmos;
    c[RTC_SECONDS] = this.encode(sod % 60);
    c[RTC_MINUTES] = this.encode(Math.floor(sod / 60) % 60);
    c[RTC_HOURS] = this.encodeHour(Math.floor(sod / 3600));
    c[RTC_DAY_OF_WEEK] = this.encode((((days + 4) % 7) + 7) % 7 + 1);
    c[RTC_DAY_OF_MONTH] = this.encode(d);
    c[RTC_MONTH] = this.encode(m);
    c[RTC_YEAR] = this.encode(((y % 100) + 100) % 100);
    c[RTC_CENTURY] = this.encode(Math.floor(y / 100) % 100);
  }

  /** Restarts the clock from the time registers. */
  private rebase(nowNs: number): void {
    const c = this.cmos;
    let century = this.decode(c[RTC_CENTURY]);
    if (century < 19 || century > 99) century = 20;
    const year = century * 100 + (this.decode(c[RTC_YEAR]) % 100);
    const month = Math.min(12, Math.max(1, this.decode(c[RTC_MONTH])));
    const day = Math.min(31, Math.max(1, this.decode(c[RTC_DAY_OF_MONTH])));
    const secs =
      daysFromCivil(year, month, day) * 86400 +
      Math.min(23, this.decodeHour(c[RTC_HOURS])) * 3600 +
      Math.min(59, this.decode(c[RTC_MINUTES])) * 60 +
      Math.min(59, this.decode(c[RTC_SECONDS]));
    this.baseSeconds = Number.isFinite(secs) ? secs : 0;
    this.baseNs = nowNs;
    this.lastSecond = this.baseSeconds;
  }

  private periodNs(): number {
    const rs = this.cmos[RTC_REG_A] & 0x0f;
    if (rs === 0) return 0;
    const hz = rs <= 2 ? 32768 >> (rs + 6) : 32768 >> (rs - 1);
    return 1e9 / hz;
  }

  /** Sets the flags that became due by `nowNs` and drives the IRQ line. */
  private sync(nowNs: number): void {
    const period = this.periodNs();
    if (period > 0 && (this.cmos[RTC_REG_A] & 0x70) === 0x20) {
      const k = Math.floor((nowNs - this.periodBaseNs) / period);
      if (k > this.lastPeriod) this.regC |= C_PF;
      this.lastPeriod = k;
    }
    if (this.running) {
      const second = Math.floor(this.secondsNow(nowNs));
      if (second > this.lastSecond) {
        this.lastSecond = second;
        this.regC |= C_UF;
        this.snapshot(second);
        const c = this.cmos;
        const match = (alarm: number, now: number): boolean => (alarm & 0xc0) === 0xc0 || alarm === now;
        if (match(c[RTC_SECONDS_ALARM], c[RTC_SECONDS]) && match(c[RTC_MINUTES_ALARM], c[RTC_MINUTES]) && match(c[RTC_HOURS_ALARM], c[RTC_HOURS])) {
          this.regC |= C_AF;
        }
      }
    }
    this.updateIrq();
  }

  private updateIrq(): void {
    const b = this.cmos[RTC_REG_B];
    const c = this.regC;
    const irqf = ((c & C_PF) !== 0 && (b & B_PIE) !== 0) || ((c & C_AF) !== 0 && (b & B_AIE) !== 0) || ((c & C_UF) !== 0 && (b & B_UIE) !== 0);
    if (irqf) this.regC |= C_IRQF;
    else this.regC &= ~C_IRQF;
    this.irq.setLevel(irqf);
  }

  poll(nowNs: number): number {
    this.sync(nowNs);
    const b = this.cmos[RTC_REG_B];
    let next = Infinity;
    const period = this.periodNs();
    if (b & B_PIE && period > 0 && (this.cmos[RTC_REG_A] & 0x70) === 0x20) next = this.periodBaseNs + (this.lastPeriod + 1) * period;
    if (b & (B_UIE | B_AIE) && this.running) {
      const at = this.baseNs + (this.lastSecond + 1 - this.baseSeconds) * 1e9;
      if (at < next) next = at;
    }
    return next;
  }

  readRegister(reg: number): number {
    reg &= 0x7f;
    const now = this.time.nowNs();
    switch (reg) {
      case RTC_SECONDS:
      case RTC_MINUTES:
      case RTC_HOURS:
      case RTC_DAY_OF_WEEK:
      case RTC_DAY_OF_MONTH:
      case RTC_MONTH:
      case RTC_YEAR:
      case RTC_CENTURY:
        if (this.running) this.snapshot(this.secondsNow(now));
        return this.cmos[reg];
      case RTC_REG_A: {
        let uip = 0;
        if (this.running) {
          const s = this.secondsNow(now);
          if (Math.ceil(s) - s < UIP_NS / 1e9 && Math.ceil(s) !== s) uip = A_UIP;
        }
        return (this.cmos[RTC_REG_A] & 0x7f) | uip;
      }
      case RTC_REG_C: {
        this.sync(now);
        const v = this.regC;
        this.regC = 0;
        this.updateIrq();
        return v;
      }
      case RTC_REG_D:
        return 0x80;
      default:
        return this.cmos[reg];
    }
  }

  writeRegister(reg: number, value: number): void {
    reg &= 0x7f;
    value &= 0xff;
    const now = this.time.nowNs();
    switch (reg) {
      case RTC_SECONDS:
      case RTC_MINUTES:
      case RTC_HOURS:
      case RTC_DAY_OF_WEEK:
      case RTC_DAY_OF_MONTH:
      case RTC_MONTH:
      case RTC_YEAR:
      case RTC_CENTURY:
        if (this.running) {
          this.snapshot(this.secondsNow(now));
          this.cmos[reg] = value;
          this.rebase(now);
        } else {
          this.cmos[reg] = value;
        }
        return;
      case RTC_REG_A: {
        this.sync(now);
        const wasRunning = this.running;
        const oldRate = this.cmos[RTC_REG_A] & 0x0f;
        if (wasRunning) this.snapshot(this.secondsNow(now));
        this.cmos[RTC_REG_A] = value & 0x7f;
        if (!wasRunning && this.running) this.rebase(now);
        if ((value & 0x0f) !== oldRate) {
          this.periodBaseNs = now;
          this.lastPeriod = 0;
        }
        return;
      }
      case RTC_REG_B: {
        this.sync(now);
        const wasRunning = this.running;
        if (wasRunning) this.snapshot(this.secondsNow(now));
        if (value & B_SET) value &= ~B_UIE; // SET clears UIE
        this.cmos[RTC_REG_B] = value;
        if (!wasRunning && this.running) this.rebase(now);
        this.updateIrq();
        return;
      }
      case RTC_REG_C:
      case RTC_REG_D:
        return; // read-only
      default:
        this.cmos[reg] = value;
    }
  }

  saveState(): RtcState {
    return {
      version: 1,
      cmos: Array.from(this.cmos),
      index: this.index,
      nmiMasked: this.nmiMasked,
      baseSeconds: this.baseSeconds,
      baseNs: this.baseNs,
      lastSecond: this.lastSecond,
      periodBaseNs: this.periodBaseNs,
      lastPeriod: this.lastPeriod,
      regC: this.regC,
    };
  }

  /** Loads a saved state (validated: throws DeviceStateError). */
  loadState(state: unknown): void {
    const r = new StateReader(state, 'Rtc', 1);
    const cmos = r.ints('cmos', 128, 0, 255);
    const s = {
      index: r.int('index', 0, 127),
      nmiMasked: r.bool('nmiMasked'),
      baseSeconds: r.int('baseSeconds', -(2 ** 40), 2 ** 40),
      baseNs: r.num('baseNs'),
      lastSecond: r.int('lastSecond', -(2 ** 40), 2 ** 40),
      periodBaseNs: r.num('periodBaseNs'),
      lastPeriod: r.int('lastPeriod', -(2 ** 53), 2 ** 53),
      regC: r.int('regC', 0, 0xf0),
    };
    this.cmos.set(cmos);
    this.index = s.index;
    this.nmiMasked = s.nmiMasked;
    this.baseSeconds = s.baseSeconds;
    this.baseNs = s.baseNs;
    this.lastSecond = s.lastSecond;
    this.periodBaseNs = s.periodBaseNs;
    this.lastPeriod = s.lastPeriod;
    this.regC = s.regC;
    this.updateIrq();
  }

  /**
   * Fills the CMOS memory-size fields firmware and old kernels read: base memory (0x15/0x16),
   * extended memory above 1 MiB in KiB (0x17/0x18 and 0x30/0x31), memory above 16 MiB in 64 KiB
   * units (0x34/0x35), memory above 4 GiB in 64 KiB units (0x5B-0x5D), and the checksum at
   * 0x2E/0x2F over 0x10-0x2D.
   */
  setMemorySize(belowFourGiB: number, aboveFourGiB = 0): void {
    const c = this.cmos;
    c[0x15] = 0x80; // 640 KiB base memory
    c[0x16] = 0x02;
    const ext = Math.min(0xffff, Math.max(0, Math.floor((belowFourGiB - 0x100000) / 1024)));
    c[0x17] = c[0x30] = ext & 0xff;
    c[0x18] = c[0x31] = ext >> 8;
    const above16 = Math.min(0xffff, Math.max(0, Math.floor((belowFourGiB - 0x1000000) / 65536)));
    c[0x34] = above16 & 0xff;
    c[0x35] = above16 >> 8;
    const high = Math.min(0xffffff, Math.max(0, Math.floor(aboveFourGiB / 65536)));
    c[0x5b] = high & 0xff;
    c[0x5c] = (high >> 8) & 0xff;
    c[0x5d] = (high >> 16) & 0xff;
    let sum = 0;
    for (let i = 0x10; i <= 0x2d; i++) sum += c[i];
    c[0x2e] = (sum >> 8) & 0xff;
    c[0x2f] = sum & 0xff;
  }
}
