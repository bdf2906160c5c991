// ACPI fixed hardware (ACPI 6.5, 4.8): the PM1a event block (PM1_STS, PM1_EN), the PM1a control
// block (SCI_EN, SLP_TYP, SLP_EN) and the 3.579545 MHz power-management timer. SLP_EN with the
// S5 sleep type powers the machine off; the power button sets PWRBTN_STS and raises the SCI.
//
// PM1_STS / PM1_EN: [15 WAK][10 RTC][9 SLPBTN][8 PWRBTN][5 GBL][4 BM (STS only)][0 TMR]
// PM1_CNT: [13 SLP_EN (write-only)][12:10 SLP_TYP][2 GBL_RLS][1 BM_RLD][0 SCI_EN]

import type { InterruptLine } from '../bus/irq';
import type { PortIoDevice } from '../bus/pio';
import type { TimeSource, TimedDevice } from '../bus/time';
import { StateReader } from './state';

/** Saved state of the ACPI PM block. */
export interface AcpiPmState {
  version: 1;
  status: number;
  enable: number;
  control: number;
  lastMsbPeriod: number;
  poweredOff: boolean;
}

/** The PM timer's frequency in Hz. */
export const PM_TIMER_FREQUENCY_HZ = 3579545;
export const PM1_TMR_STS = 0x0001;
export const PM1_BM_STS = 0x0010;
export const PM1_GBL_STS = 0x0020;
export const PM1_PWRBTN_STS = 0x0100;
export const PM1_SLPBTN_STS = 0x0200;
export const PM1_RTC_STS = 0x0400;
export const PM1_WAK_STS = 0x8000;
export const PM1_CNT_SCI_EN = 0x0001;
export const PM1_CNT_SLP_EN = 0x2000;
const EN_MASK = PM1_TMR_STS | PM1_GBL_STS | PM1_PWRBTN_STS | PM1_SLPBTN_STS | PM1_RTC_STS;
const STS_MASK = EN_MASK | PM1_BM_STS | PM1_WAK_STS;
const TICKS_PER_NS = PM_TIMER_FREQUENCY_HZ / 1e9;

/** Options and events of the ACPI PM block. */
export interface AcpiPmOptions {
  /** The SLP_TYP value the DSDT's \_S5 package names (the ACPI tables must agree). Default 5. */
  s5SleepType?: number;
  /** A 32-bit timer (FADT TMR_VAL_EXT); default 24-bit. */
  timer32?: boolean;
  /** S5 entered: the machine powers off. */
  onPowerOff?(): void;
  /** Another sleep state requested (SLP_TYP value). */
  onSleep?(sleepType: number): void;
}

/**
 * ACPI PM1a blocks and PM timer. Register `eventBlock` (4 bytes), `controlBlock` (2 bytes) and
 * `timerBlock` (4 bytes) at the ports the FADT names. `sci` is the SCI interrupt (level).
 */
export class AcpiPm implements TimedDevice {
  readonly eventBlock: PortIoDevice;
  readonly controlBlock: PortIoDevice;
  readonly timerBlock: PortIoDevice;
  status = 0;
  enable = 0;
  /** SCI_EN reads as set: a platform without SMI_CMD is always in ACPI mode. */
  control: number = PM1_CNT_SCI_EN;
  readonly timer32: boolean;
  private readonly s5: number;
  /** Timer-MSB period index at the last TMR_STS evaluation. */
  private lastMsbPeriod = 0;
  poweredOff = false;

  constructor(
    private readonly time: TimeSource,
    private readonly sci: InterruptLine,
    private readonly options: AcpiPmOptions = {},
  ) {
    this.timer32 = options.timer32 ?? false;
    this.s5 = (options.s5SleepType ?? 5) & 7;
    this.eventBlock = {
      portRead: (offset: number, size: number): number => {
        this.sync(this.time.nowNs());
        const dword = this.status | (this.enable << 16);
        return (dword >>> ((offset & 3) * 8)) & (size === 4 ? 0xffffffff : size === 2 ? 0xffff : 0xff);
      },
      portWrite: (offset: number, size: number, value: number): void => {
        this.sync(this.time.nowNs());
        // Spread the access over the four bytes (PM1_STS is write-1-to-clear).
        for (let i = 0; i < size && (offset & 3) + i < 4; i++) {
          const byte = (value >>> (8 * i)) & 0xff;
          const at = (offset & 3) + i;
          if (at < 2) this.status &= ~((byte << (8 * at)) & STS_MASK);
          else this.enable = ((this.enable & ~(0xff << (8 * (at - 2)))) | (byte << (8 * (at - 2)))) & EN_MASK;
        }
        this.updateSci();
      },
    };
    this.controlBlock = {
      portRead: (offset: number): number => ((offset & 1) === 0 ? this.control & 0xff : (this.control >> 8) & 0xff),
      portWrite: (offset: number, size: number, value: number): void => {
        let v = this.control;
        if ((offset & 1) === 0) v = size >= 2 ? value & 0xffff : (v & 0xff00) | (value & 0xff);
        else v = (v & 0x00ff) | ((value & 0xff) << 8);
        this.writeControl(v);
      },
    };
    this.timerBlock = {
      portRead: (offset: number, size: number): number => {
        const v = this.timerValue();
        return (v >>> ((offset & 3) * 8)) & (size === 4 ? 0xffffffff : size === 2 ? 0xffff : 0xff);
      },
      portWrite: (): void => {},
    };
  }

  /** The PM timer now (24 or 32 bits). */
  timerValue(nowNs: number = this.time.nowNs()): number {
    const t = Math.floor(nowNs * TICKS_PER_NS);
    return this.timer32 ? t % 4294967296 : t % 16777216;
  }

  private msbPeriod(nowNs: number): number {
    return Math.floor(Math.floor(nowNs * TICKS_PER_NS) / (this.timer32 ? 2147483648 : 8388608));
  }

  saveState(): AcpiPmState {
    return { version: 1, status: this.status, enable: this.enable, control: this.control, lastMsbPeriod: this.lastMsbPeriod, poweredOff: this.poweredOff };
  }

  /** Loads a saved state (validated: throws DeviceStateError). */
  loadState(state: unknown): void {
    const r = new StateReader(state, 'AcpiPm', 1);
    const s = {
      status: r.int('status', 0, 0xffff) & STS_MASK,
      enable: r.int('enable', 0, 0xffff) & EN_MASK,
      control: (r.int('control', 0, 0xffff) & 0x1c06) | PM1_CNT_SCI_EN,
      lastMsbPeriod: r.int('lastMsbPeriod', 0, 2 ** 53),
      poweredOff: r.bool('poweredOff'),
    };
    this.status = s.status;
    this.enable = s.enable;
    this.control = s.control;
    this.lastMsbPeriod = s.lastMsbPeriod;
    this.poweredOff = s.poweredOff;
    this.updateSci();
  }

  /** Presses the power button: PWRBTN_STS, and an SCI if PWRBTN_EN. */
  pressPowerButton(): void {
    this.status |= PM1_PWRBTN_STS;
    this.updateSci();
  }

  private writeControl(v: number): void {
    // SCI_EN is hardware-owned here; SLP_EN is write-only.
    this.control = (v & 0x1c06) | PM1_CNT_SCI_EN;
    if (v & PM1_CNT_SLP_EN) {
      const type = (v >> 10) & 7;
      if (type === this.s5) {
        this.poweredOff = true;
        this.options.onPowerOff?.();
      } else {
        this.status |= PM1_WAK_STS; // no sleep state is implemented: wake at once
        this.options.onSleep?.(type);
      }
    }
  }

  /** Sets TMR_STS when the timer's MSB toggled since the last look. */
  private sync(nowNs: number): void {
    const p = this.msbPeriod(nowNs);
    if (p > this.lastMsbPeriod) this.status |= PM1_TMR_STS;
    this.lastMsbPeriod = p;
    this.updateSci();
  }

  private updateSci(): void {
    this.sci.setLevel((this.status & this.enable & EN_MASK) !== 0 && (this.control & PM1_CNT_SCI_EN) !== 0);
  }

  poll(nowNs: number): number {
    this.sync(nowNs);
    if ((this.enable & PM1_TMR_STS) === 0) return Infinity;
    const half = this.timer32 ? 2147483648 : 8388608;
    const nextTick = (this.lastMsbPeriod + 1) * half;
    let ns = Math.ceil(nextTick / TICKS_PER_NS);
    while (Math.floor(ns * TICKS_PER_NS) < nextTick) ns++;
    return ns;
  }
}
