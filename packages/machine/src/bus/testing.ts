// Test doubles for the bus interfaces (for the package's tests and for the machine's users).

import type { InterruptSink } from './interrupts';
import type { InterruptLine, IrqChip } from './irq';

/** An InterruptSink that records what it receives. */
export class RecordingInterruptSink implements InterruptSink {
  /** Delivered messages as [addressLo, addressHi, data]. */
  readonly msis: [number, number, number][] = [];
  extInt = false;
  extIntEdges = 0;
  nmis = 0;
  deliverMsi(addressLo: number, addressHi: number, data: number): void {
    this.msis.push([addressLo >>> 0, addressHi >>> 0, data >>> 0]);
  }
  setExtInt(level: boolean): void {
    if (level && !this.extInt) this.extIntEdges++;
    this.extInt = level;
  }
  deliverNmi(): void {
    this.nmis++;
  }
}

/** An InterruptLine that records its level and counts rising edges. */
export class RecordingLine implements InterruptLine {
  level = false;
  rises = 0;
  setLevel(level: boolean): void {
    if (level && !this.level) this.rises++;
    this.level = level;
  }
  pulse(): void {
    this.setLevel(true);
    this.setLevel(false);
  }
}

/** An IrqChip that records pin levels. */
export class RecordingIrqChip implements IrqChip {
  readonly levels: boolean[] = [];
  readonly rises: number[] = [];
  setIrq(pin: number, level: boolean): void {
    if (level && !this.levels[pin]) this.rises[pin] = (this.rises[pin] ?? 0) + 1;
    this.levels[pin] = level;
  }
}
