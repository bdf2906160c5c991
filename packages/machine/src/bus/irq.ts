// Interrupt lines: the wires between devices and interrupt controllers. A device holds an
// InterruptLine and drives it; a controller (8259 pair, IOAPIC) is an IrqChip with numbered
// input pins. Level and edge are both carried as levels: an edge-triggered input latches the
// rising edge, and `pulse()` is a rising edge followed by a fall.

/** An interrupt controller's input pins (consumer side: what a line drives). */
export interface IrqChip {
  setIrq(pin: number, level: boolean): void;
}

/** What a device drives: one interrupt output. */
export interface InterruptLine {
  /** Drive the line (true = asserted, whatever the electrical polarity). */
  setLevel(level: boolean): void;
  /** A rising edge followed by a fall (for edge-triggered inputs, e.g. PIT channel 0). */
  pulse(): void;
}

/**
 * A line wired to one or more controller pins (on a PC, ISA IRQ n goes to 8259 pin n and to
 * IOAPIC pin n, except IRQ0 which the board routes to IOAPIC pin 2). Only changes are forwarded.
 */
export class IrqLine implements InterruptLine {
  private readonly chips: IrqChip[] = [];
  private readonly pins: number[] = [];
  private current = false;

  constructor(...targets: readonly (readonly [IrqChip, number])[]) {
    for (const [chip, pin] of targets) this.connect(chip, pin);
  }

  connect(chip: IrqChip, pin: number): void {
    this.chips.push(chip);
    this.pins.push(pin);
    if (this.current) chip.setIrq(pin, true);
  }

  get level(): boolean {
    return this.current;
  }

  setLevel(level: boolean): void {
    if (level === this.current) return;
    this.current = level;
    for (let i = 0; i < this.chips.length; i++) this.chips[i].setIrq(this.pins[i], level);
  }

  pulse(): void {
    if (this.current) this.setLevel(false);
    this.setLevel(true);
    this.setLevel(false);
  }
}

/**
 * A wired-OR (shared, level-triggered) line, as PCI INTx lines are: each source gets its own
 * handle, and the target is asserted while any source asserts.
 */
export class SharedIrqLine {
  private readonly asserted: boolean[] = [];
  private count = 0;

  constructor(private readonly target: InterruptLine) {}

  /** A new source on this line. */
  source(): InterruptLine {
    const index = this.asserted.length;
    this.asserted.push(false);
    const set = (level: boolean): void => {
      if (this.asserted[index] === level) return;
      this.asserted[index] = level;
      this.count += level ? 1 : -1;
      this.target.setLevel(this.count > 0);
    };
    return {
      setLevel: set,
      pulse: (): void => {
        set(true);
        set(false);
      },
    };
  }

  get level(): boolean {
    return this.count > 0;
  }
}

/** A line that goes nowhere (an unwired output). */
export const NO_IRQ: InterruptLine = { setLevel: (): void => {}, pulse: (): void => {} };
