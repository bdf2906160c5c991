// Virtual time for devices. The machine owns the clock (wall time, or deterministic time derived
// from retired instructions); devices read it and report their next deadline, so the run loop
// knows when to come back to them. No device keeps a host timer.

/** Virtual nanoseconds since the machine started (monotonic, may be fractional). */
export interface TimeSource {
  nowNs(): number;
}

/** A device with time-driven interrupts. */
export interface TimedDevice {
  /** Raises whatever became due by `nowNs`; returns the next deadline in ns (Infinity if none). */
  poll(nowNs: number): number;
}

/** A hand-driven clock: deterministic tests and instruction-counted time. */
export class ManualClock implements TimeSource {
  constructor(public ns = 0) {}
  nowNs(): number {
    return this.ns;
  }
  advance(ns: number): void {
    this.ns += ns;
  }
}

/** Wall-clock time from `performance.now()` (Node and browsers), starting at 0. */
export function wallClock(): TimeSource {
  const t0 = performance.now();
  return { nowNs: (): number => (performance.now() - t0) * 1e6 };
}

/** Several timed devices polled as one; returns the earliest deadline. */
export class TimerGroup implements TimedDevice {
  private readonly devices: TimedDevice[] = [];
  add(device: TimedDevice): void {
    this.devices.push(device);
  }
  poll(nowNs: number): number {
    let next = Infinity;
    for (let i = 0; i < this.devices.length; i++) {
      const d = this.devices[i].poll(nowNs);
      if (d < next) next = d;
    }
    return next;
  }
}
