// Intel 8254 programmable interval timer (datasheet 231164), clocked at 1.193182 MHz, plus the
// PC's system control port B (0x61 on a PC) that gates channel 2, enables the speaker and shows
// OUT2 and the refresh toggle. Counters are computed from virtual time when read, so nothing
// ticks in the background; `poll()` raises channel 0's interrupt edges and says when the next is.
//
// Control word (offset 3): [SC1 SC0][RW1 RW0][M2 M1 M0][BCD]
//   SC = 3 is read-back: [1 1][!COUNT][!STATUS][CNT2][CNT1][CNT0][0]; RW = 0 is counter latch.
// Status byte (read-back): [OUT][NULL COUNT][RW1 RW0][M2 M1 M0][BCD]

import type { InterruptLine } from '../bus/irq';
import type { PortIoDevice } from '../bus/pio';
import type { TimeSource, TimedDevice } from '../bus/time';
import { StateReader } from './state';

/** Saved state of one 8254 counter (ticks are absolute: restore the machine's clock with it). */
export interface PitChannelState {
  mode: number;
  rwMode: number;
  bcd: boolean;
  count: number;
  loadTick: number;
  running: boolean;
  gate: boolean;
  frozen: number;
  nullCount: boolean;
  writeLow: number;
  writeHigh: boolean;
  readHigh: boolean;
  latched: boolean;
  latchValue: number;
  latchHigh: boolean;
  statusLatched: boolean;
  statusValue: number;
  idleOut: boolean;
}

/** Saved state of the PIT. */
export interface PitState {
  version: 1;
  channels: PitChannelState[];
  portB: number;
  lastTick: number;
}

/** The 8254's input clock on a PC, in Hz. */
export const PIT_FREQUENCY_HZ = 1193182;
const TICKS_PER_NS = PIT_FREQUENCY_HZ / 1e9;

const RW_LATCH = 0;
const RW_LSB = 1;
const RW_MSB = 2;
const RW_WORD = 3;

/** Absolute PIT tick at virtual time `ns`. */
function tickAt(ns: number): number {
  return Math.floor(ns * TICKS_PER_NS);
}

/** Earliest virtual time at which the absolute tick count reaches `tick`. */
function nsOfTick(tick: number): number {
  let ns = Math.ceil(tick / TICKS_PER_NS);
  while (tickAt(ns) < tick) ns++;
  return ns;
}

function toBcd(v: number): number {
  return (v % 10) | (Math.floor(v / 10) % 10 << 4) | (Math.floor(v / 100) % 10 << 8) | (Math.floor(v / 1000) % 10 << 12);
}

function fromBcd(v: number): number {
  return (v & 0xf) % 10 + (((v >> 4) & 0xf) % 10) * 10 + (((v >> 8) & 0xf) % 10) * 100 + (((v >> 12) & 0xf) % 10) * 1000;
}

/** One counter of the 8254. */
export class PitChannel {
  mode = 0;
  rwMode: number = RW_WORD;
  bcd = false;
  /** Initial count as loaded (1..65536, or 1..10000 in BCD). */
  count = 0x10000;
  /** Absolute tick at which counting started (or would have). */
  loadTick = 0;
  /** Counting has started (a count was written; modes 1/5 also need the gate trigger). */
  running = false;
  gate = true;
  /** Elapsed ticks frozen while the gate is low (modes 0, 2, 3, 4). */
  private frozen = -1;
  /** Set from a mode write until the count is complete. */
  nullCount = true;
  private writeLow = 0;
  private writeHigh = false;
  private readHigh = false;
  private latched = false;
  private latchValue = 0;
  private latchHigh = false;
  private statusLatched = false;
  private statusValue = 0;
  /** OUT before any count is loaded (mode 0: low; others high). */
  private idleOut = false;

  /** Ticks counted since load at `tick` (0 when not running). */
  elapsed(tick: number): number {
    if (!this.running) return 0;
    if (this.frozen >= 0) return this.frozen;
    return Math.max(0, tick - this.loadTick);
  }

  /** The counting element at `tick`, in binary (0..65535 or 0..9999). */
  counter(tick: number): number {
    const n = this.count;
    if (!this.running) return n & 0xffff;
    const d = this.elapsed(tick);
    const modulus = this.bcd ? 10000 : 0x10000;
    switch (this.mode) {
      case 2:
        return n - (d % n);
      case 3: {
        // Counts down by two, twice per period.
        const half = Math.ceil(n / 2);
        const pos = d % n;
        const r = pos < half ? n - 2 * pos : n - 2 * (pos - half);
        return ((r % modulus) + modulus) % modulus;
      }
      default:
        return (((n - d) % modulus) + modulus) % modulus;
    }
  }

  /** OUT at `tick`. */
  out(tick: number): boolean {
    if (!this.running) return this.idleOut;
    const n = this.count;
    const d = this.elapsed(tick);
    switch (this.mode) {
      case 0:
      case 1:
        return d >= n;
      case 2:
        return d % n !== n - 1 || !this.gate;
      case 3:
        return d % n < Math.ceil(n / 2) || !this.gate;
      default:
        // modes 4 and 5: low for one clock at terminal count
        return d !== n;
    }
  }

  setGate(level: boolean, tick: number): void {
    if (level === this.gate) return;
    if (!level) {
      if (this.running && (this.mode === 0 || this.mode === 2 || this.mode === 3 || this.mode === 4)) this.frozen = this.elapsed(tick);
    } else if (this.mode === 1 || this.mode === 5) {
      // Rising edge triggers (or retriggers) the count.
      if (!this.nullCount) {
        this.running = true;
        this.loadTick = tick;
        this.frozen = -1;
      }
    } else if (this.mode === 2 || this.mode === 3) {
      // Rising edge reloads the count.
      this.frozen = -1;
      if (this.running) this.loadTick = tick;
    } else if (this.frozen >= 0) {
      this.loadTick = tick - this.frozen;
      this.frozen = -1;
    }
    this.gate = level;
  }

  /** Control word for this channel (RW != 0). */
  setMode(control: number): void {
    this.rwMode = (control >> 4) & 3;
    let mode = (control >> 1) & 7;
    if (mode > 5) mode -= 4; // 6 and 7 alias 2 and 3
    this.mode = mode;
    this.bcd = (control & 1) !== 0;
    this.running = false;
    this.frozen = -1;
    this.nullCount = true;
    this.writeHigh = false;
    this.readHigh = false;
    this.latched = false;
    this.idleOut = mode !== 0;
  }

  saveState(): PitChannelState {
    return {
      mode: this.mode,
      rwMode: this.rwMode,
      bcd: this.bcd,
      count: this.count,
      loadTick: this.loadTick,
      running: this.running,
      gate: this.gate,
      frozen: this.frozen,
      nullCount: this.nullCount,
      writeLow: this.writeLow,
      writeHigh: this.writeHigh,
      readHigh: this.readHigh,
      latched: this.latched,
      latchValue: this.latchValue,
      latchHigh: this.latchHigh,
      statusLatched: this.statusLatched,
      statusValue: this.statusValue,
      idleOut: this.idleOut,
    };
  }

  /** Validates a saved counter state (throws DeviceStateError). */
  static parseState(r: StateReader): PitChannelState {
    return {
      mode: r.int('mode', 0, 5),
      rwMode: r.int('rwMode', 0, 3),
      bcd: r.bool('bcd'),
      count: r.int('count', 1, 0x10000),
      loadTick: r.int('loadTick', -(2 ** 52), 2 ** 52),
      running: r.bool('running'),
      gate: r.bool('gate'),
      frozen: r.int('frozen', -1, 2 ** 52),
      nullCount: r.bool('nullCount'),
      writeLow: r.int('writeLow', 0, 255),
      writeHigh: r.bool('writeHigh'),
      readHigh: r.bool('readHigh'),
      latched: r.bool('latched'),
      latchValue: r.int('latchValue', 0, 0xffff),
      latchHigh: r.bool('latchHigh'),
      statusLatched: r.bool('statusLatched'),
      statusValue: r.int('statusValue', 0, 255),
      idleOut: r.bool('idleOut'),
    };
  }

  applyState(s: PitChannelState): void {
    this.mode = s.mode;
    this.rwMode = s.rwMode;
    this.bcd = s.bcd;
    this.count = s.count;
    this.loadTick = s.loadTick;
    this.running = s.running;
    this.gate = s.gate;
    this.frozen = s.frozen;
    this.nullCount = s.nullCount;
    this.writeLow = s.writeLow;
    this.writeHigh = s.writeHigh;
    this.readHigh = s.readHigh;
    this.latched = s.latched;
    this.latchValue = s.latchValue;
    this.latchHigh = s.latchHigh;
    this.statusLatched = s.statusLatched;
    this.statusValue = s.statusValue;
    this.idleOut = s.idleOut;
  }

  latchCount(tick: number): void {
    if (this.latched) return;
    this.latched = true;
    this.latchHigh = false;
    this.latchValue = this.encode(this.counter(tick));
  }

  latchStatus(tick: number): void {
    if (this.statusLatched) return;
    this.statusLatched = true;
    this.statusValue = (this.out(tick) ? 0x80 : 0) | (this.nullCount ? 0x40 : 0) | (this.rwMode << 4) | (this.mode << 1) | (this.bcd ? 1 : 0);
  }

  private encode(v: number): number {
    return this.bcd ? toBcd(v) : v & 0xffff;
  }

  read(tick: number): number {
    if (this.statusLatched) {
      this.statusLatched = false;
      return this.statusValue;
    }
    const rw = this.rwMode === RW_LATCH ? RW_WORD : this.rwMode;
    let value: number;
    if (this.latched) {
      value = this.latchValue;
      if (rw === RW_WORD) {
        const hi = this.latchHigh;
        this.latchHigh = !hi;
        if (hi) this.latched = false;
        return hi ? (value >> 8) & 0xff : value & 0xff;
      }
      this.latched = false;
    } else {
      value = this.encode(this.counter(tick));
      if (rw === RW_WORD) {
        const hi = this.readHigh;
        this.readHigh = !hi;
        return hi ? (value >> 8) & 0xff : value & 0xff;
      }
    }
    return rw === RW_MSB ? (value >> 8) & 0xff : value & 0xff;
  }

  write(value: number, tick: number): void {
    value &= 0xff;
    let full: number;
    switch (this.rwMode) {
      case RW_LSB:
        full = value;
        break;
      case RW_MSB:
        full = value << 8;
        break;
      default:
        if (!this.writeHigh) {
          this.writeLow = value;
          this.writeHigh = true;
          if (this.mode === 0) this.running = false; // writing the first byte stops mode 0
          return;
        }
        this.writeHigh = false;
        full = this.writeLow | (value << 8);
    }
    let n = this.bcd ? fromBcd(full) : full;
    if (n === 0) n = this.bcd ? 10000 : 0x10000;
    this.count = n;
    this.nullCount = false;
    this.frozen = -1;
    if (this.mode === 1 || this.mode === 5) {
      // Waits for a gate trigger.
      this.idleOut = true;
      return;
    }
    this.running = true;
    this.loadTick = tick;
    if (!this.gate) this.frozen = 0;
  }
}

/**
 * The 8254 PIT. Register `ports` (4 ports: counters 0-2 and the control word; 0x40 on a PC) and
 * `portB` (1 port: 0x61 on a PC). Channel 0's OUT drives `irq` (IRQ0).
 */
export class Pit8254 implements TimedDevice {
  readonly channels: readonly [PitChannel, PitChannel, PitChannel];
  readonly ports: PortIoDevice;
  /** System control port B: bit 0 gate 2, bit 1 speaker data, bits 2-3 check enables; reads add bit 4 refresh toggle and bit 5 OUT2. */
  readonly portB: PortIoDevice;
  private portBValue = 0;
  /** Last tick at which channel 0's rising edges were accounted. */
  private lastTick = 0;

  constructor(
    private readonly time: TimeSource,
    private readonly irq: InterruptLine,
  ) {
    this.channels = [new PitChannel(), new PitChannel(), new PitChannel()];
    this.channels[2].gate = false; // port B resets to 0: gate 2 low
    this.ports = {
      portRead: (offset: number): number => {
        const tick = tickAt(this.time.nowNs());
        if ((offset & 3) === 3) return 0xff; // the control word is write-only
        return this.channels[offset & 3].read(tick);
      },
      portWrite: (offset: number, _size: number, value: number): void => this.write(offset & 3, value & 0xff),
    };
    this.portB = {
      portRead: (): number => {
        const ns = this.time.nowNs();
        const refresh = Math.floor(ns / 15085) & 1; // DRAM refresh request toggles every 15.085 us
        return (this.portBValue & 0x0f) | (refresh << 4) | (this.channels[2].out(tickAt(ns)) ? 0x20 : 0);
      },
      portWrite: (_offset: number, _size: number, value: number): void => {
        this.portBValue = value & 0x0f;
        this.channels[2].setGate((value & 1) !== 0, tickAt(this.time.nowNs()));
      },
    };
  }

  /** Whether the speaker is sounding (gate 2 and speaker data enabled). */
  get speakerEnabled(): boolean {
    return (this.portBValue & 3) === 3;
  }

  private write(offset: number, value: number): void {
    const tick = tickAt(this.time.nowNs());
    if (offset < 3) {
      this.channels[offset].write(value, tick);
      if (offset === 0) this.restartIrq(tick);
      return;
    }
    const sc = value >> 6;
    if (sc === 3) {
      for (let i = 0; i < 3; i++) {
        if ((value & (2 << i)) === 0) continue;
        const ch = this.channels[i];
        if ((value & 0x10) === 0) ch.latchStatus(tick);
        if ((value & 0x20) === 0) ch.latchCount(tick);
      }
      return;
    }
    const ch = this.channels[sc];
    if ((value & 0x30) === 0) ch.latchCount(tick);
    else {
      ch.setMode(value);
      if (sc === 0) this.restartIrq(tick);
    }
  }

  saveState(): PitState {
    return { version: 1, channels: this.channels.map((c) => c.saveState()), portB: this.portBValue, lastTick: this.lastTick };
  }

  /** Loads a saved state (validated: throws DeviceStateError). */
  loadState(state: unknown): void {
    const r = new StateReader(state, 'Pit8254', 1);
    const portB = r.int('portB', 0, 15);
    const lastTick = r.int('lastTick', -(2 ** 52), 2 ** 52);
    const states = r.items('channels', 3).map((c) => PitChannel.parseState(c));
    for (let k = 0; k < 3; k++) this.channels[k].applyState(states[k]);
    this.portBValue = portB;
    this.lastTick = lastTick;
    this.irq.setLevel(false);
  }

  private restartIrq(tick: number): void {
    // Edges are raised by poll(); mode 0's held-high OUT is dropped by reprogramming.
    this.lastTick = tick;
    this.irq.setLevel(false);
  }

  /** Raises IRQ0 for the edges of channel 0's OUT up to `nowNs`; returns the next edge's time. */
  poll(nowNs: number): number {
    const ch = this.channels[0];
    const tick = tickAt(nowNs);
    if (!ch.running || !ch.gate) {
      this.lastTick = tick;
      return Infinity;
    }
    const n = ch.count;
    const from = Math.max(0, this.lastTick - ch.loadTick);
    const to = tick - ch.loadTick;
    this.lastTick = tick;
    switch (ch.mode) {
      case 0:
      case 1:
        // OUT rises once, at terminal count, and stays high.
        if (from < n && to >= n) this.irq.setLevel(true);
        return to < n ? nsOfTick(ch.loadTick + n) : Infinity;
      case 2:
      case 3: {
        // A rising edge at each reload (d = k*n); missed periods coalesce into one edge.
        if (Math.floor(to / n) > Math.floor(from / n)) this.irq.pulse();
        return nsOfTick(ch.loadTick + (Math.floor(to / n) + 1) * n);
      }
      default:
        // modes 4 and 5: one strobe at terminal count
        if (from < n && to >= n) this.irq.pulse();
        return to < n ? nsOfTick(ch.loadTick + n) : Infinity;
    }
  }
}
