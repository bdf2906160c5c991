/**
 * Time for the balloon's stats polling and KSM's scan pauses, injectable so tests and
 * benchmarks are deterministic. Times are milliseconds.
 */
export interface Scheduler {
  /** Current time in milliseconds (any origin, monotonic). */
  now(): number;
  /** Runs `fn` once after `ms` milliseconds; returns a handle for cancel. */
  setTimer(ms: number, fn: () => void): number;
  /** Cancels a pending timer (unknown handles are ignored). */
  cancelTimer(handle: number): void;
}

/** The platform's timers (setTimeout / performance.now); works in Node and browsers. */
export class RealScheduler implements Scheduler {
  private readonly timers = new Map<number, ReturnType<typeof setTimeout>>();
  private next = 1;

  now(): number {
    return globalThis.performance.now();
  }

  setTimer(ms: number, fn: () => void): number {
    const h = this.next++;
    this.timers.set(
      h,
      setTimeout(() => {
        this.timers.delete(h);
        fn();
      }, ms),
    );
    return h;
  }

  cancelTimer(handle: number): void {
    const t = this.timers.get(handle);
    if (t !== undefined) {
      clearTimeout(t);
      this.timers.delete(handle);
    }
  }
}

/**
 * A manual clock for tests: time moves only when `advance` is called, and timers due by then
 * run in order of due time (then of creation). Timers set by a running timer are honoured in
 * the same advance when they fall due within it.
 */
export class ManualScheduler implements Scheduler {
  private time = 0;
  private seq = 0;
  private readonly pending: { due: number; seq: number; fn: () => void }[] = [];
  private readonly handles = new Map<number, { due: number; seq: number; fn: () => void }>();

  now(): number {
    return this.time;
  }

  setTimer(ms: number, fn: () => void): number {
    const t = { due: this.time + Math.max(0, ms), seq: ++this.seq, fn };
    this.pending.push(t);
    this.handles.set(t.seq, t);
    return t.seq;
  }

  cancelTimer(handle: number): void {
    const t = this.handles.get(handle);
    if (t === undefined) return;
    this.handles.delete(handle);
    const i = this.pending.indexOf(t);
    if (i >= 0) this.pending.splice(i, 1);
  }

  /** Timers not yet run. */
  get pendingTimers(): number {
    return this.pending.length;
  }

  /** Moves time forward by `ms`, running every timer that falls due (at most `maxTimers`). Returns how many ran. */
  advance(ms: number, maxTimers = 1_000_000): number {
    const end = this.time + ms;
    let ran = 0;
    while (ran < maxTimers) {
      let best = -1;
      for (let i = 0; i < this.pending.length; i++) {
        const t = this.pending[i];
        if (t.due > end) continue;
        if (best < 0 || t.due < this.pending[best].due || (t.due === this.pending[best].due && t.seq < this.pending[best].seq)) best = i;
      }
      if (best < 0) break;
      const t = this.pending[best];
      this.pending.splice(best, 1);
      this.handles.delete(t.seq);
      this.time = Math.max(this.time, t.due);
      ran++;
      t.fn();
    }
    this.time = Math.max(this.time, end);
    return ran;
  }
}
