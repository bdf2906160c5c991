/**
 * virtio-balloon on the machine (QEMU's `-device virtio-balloon-pci`): the device of
 * @ringzero/balloon-ksm on a virtio-pci function, releasing inflated and reported pages to the
 * machine's guest memory (mmu-ept frames go back to the host pool at once), with its stats
 * polling timer on the machine's clock (guest seconds, so deterministic time stays
 * deterministic), and a host API in the spirit of QMP's `balloon` / `query-balloon`.
 */
import {
  BALLOON_F_DEFLATE_ON_OOM,
  BALLOON_F_FREE_PAGE_HINT,
  BALLOON_F_PAGE_POISON,
  BALLOON_F_REPORTING,
  BALLOON_F_STATS_VQ,
  VirtioBalloon,
  type BalloonMemory,
  type BalloonStats,
  type Scheduler,
} from '@ringzero/balloon-ksm';
import type { TimedDevice, TimeSource } from '../bus/time';

/** `devices: [{ type: 'virtio-balloon', ... }]`; the options are QEMU's properties of the same names. */
export interface BalloonDeviceDescription {
  readonly type: 'virtio-balloon';
  /** deflate-on-oom (default false): the guest may take pages back under memory pressure; Linux then counts ballooned memory as used instead of lowering MemTotal. */
  readonly deflateOnOom?: boolean;
  /** free-page-reporting (default false): the guest reports free 2 MiB+ blocks; their host frames are released. */
  readonly freePageReporting?: boolean;
  /** free-page-hint (default false): hints for migration (reported to the host, not discarded). */
  readonly freePageHint?: boolean;
  /** page-poison (default true, as QEMU): offered so a guest that poisons free pages can say so. */
  readonly pagePoison?: boolean;
  /** guest-stats-polling-interval in guest seconds (default 0: stats only when requested). */
  readonly statsPollingInterval?: number;
}

/** The feature bits offered for a description: STATS_VQ always (as QEMU), the rest by option. */
export function balloonFeatures(d: BalloonDeviceDescription): number {
  let f = BALLOON_F_STATS_VQ;
  if (d.deflateOnOom === true) f |= BALLOON_F_DEFLATE_ON_OOM;
  if (d.freePageReporting === true) f |= BALLOON_F_REPORTING;
  if (d.freePageHint === true) f |= BALLOON_F_FREE_PAGE_HINT;
  if (d.pagePoison !== false) f |= BALLOON_F_PAGE_POISON;
  return f;
}

/** Checks one `virtio-balloon` entry of `devices`; returns an error message or null. */
export function balloonDescriptionError(v: Record<string, unknown>, where: string): string | null {
  const allowed = ['type', 'deflateOnOom', 'freePageReporting', 'freePageHint', 'pagePoison', 'statsPollingInterval'];
  for (const k of Object.keys(v)) if (!allowed.includes(k)) return `${where}: unknown field '${k}'`;
  for (const k of ['deflateOnOom', 'freePageReporting', 'freePageHint', 'pagePoison'] as const) {
    if (v[k] !== undefined && typeof v[k] !== 'boolean') return `${where}.${k} must be true or false`;
  }
  const s = v.statsPollingInterval;
  if (s !== undefined && (typeof s !== 'number' || !Number.isInteger(s) || s < 0 || s > 0x7fff_ffff)) {
    return `${where}.statsPollingInterval must be a whole number of seconds (0 = off)`;
  }
  return null;
}

/**
 * A Scheduler (balloon stats polling, KSM pacing) on the machine's clock: timers are polled by
 * the run loop as a timed device, so with deterministic time they fire at a fixed guest time and
 * an idle guest's clock jumps to them.
 */
export class GuestTimeScheduler implements Scheduler, TimedDevice {
  private readonly due: number[] = [];
  private readonly fns: (() => void)[] = [];
  private readonly ids: number[] = [];
  private nextId = 1;

  constructor(private readonly clock: TimeSource) {}

  now(): number {
    return this.clock.nowNs() / 1e6;
  }

  setTimer(ms: number, fn: () => void): number {
    const id = this.nextId++;
    this.due.push(this.clock.nowNs() + Math.max(0, ms) * 1e6);
    this.fns.push(fn);
    this.ids.push(id);
    return id;
  }

  cancelTimer(handle: number): void {
    const i = this.ids.indexOf(handle);
    if (i < 0) return;
    this.due.splice(i, 1);
    this.fns.splice(i, 1);
    this.ids.splice(i, 1);
  }

  /** Runs the timers due by nowNs (in due order); returns the next deadline (ns) or Infinity. */
  poll(nowNs: number): number {
    for (;;) {
      let best = -1;
      for (let i = 0; i < this.due.length; i++) if (this.due[i] <= nowNs && (best < 0 || this.due[i] < this.due[best])) best = i;
      if (best < 0) break;
      const fn = this.fns[best];
      this.due.splice(best, 1);
      this.fns.splice(best, 1);
      this.ids.splice(best, 1);
      fn();
    }
    let next = Infinity;
    for (let i = 0; i < this.due.length; i++) if (this.due[i] < next) next = this.due[i];
    return next;
  }
}

/** What `query()` returns: QMP query-balloon's `actual`, plus the target the host set. */
export interface BalloonInfo {
  /** The guest's current size in bytes (RAM minus the pages in the balloon, as the guest reports). */
  readonly actual: number;
  /** The size the host asked for, in bytes. */
  readonly target: number;
}

/** The machine's balloon: QMP `balloon` / `query-balloon` / `guest-stats` over the device. */
export class MachineBalloon {
  readonly device: VirtioBalloon;

  constructor(description: BalloonDeviceDescription, ramSize: number, memory: BalloonMemory, scheduler: Scheduler, onChange: (actualBytes: number) => void) {
    this.device = new VirtioBalloon({ ramSize, memory, scheduler, features: balloonFeatures(description), onChange });
    if (description.statsPollingInterval !== undefined && description.statsPollingInterval > 0) this.device.setStatsPollingInterval(description.statsPollingInterval);
  }

  /** QMP `balloon value=bytes`: the size the guest should shrink (or grow back) to, clamped to [0, RAM]. */
  setTarget(bytes: number): void {
    this.device.setTarget(bytes);
  }

  /** QMP `query-balloon`. */
  query(): BalloonInfo {
    return { actual: this.device.query().actual, target: this.device.ramSize - this.device.targetPages * 4096 };
  }

  /** QOM `guest-stats`: the latest figures the guest sent, with their age (guest ms). */
  stats(): BalloonStats {
    return this.device.stats();
  }

  /** QOM `guest-stats-polling-interval` (guest seconds, 0 = off). */
  setStatsPollingInterval(seconds: number): void {
    this.device.setStatsPollingInterval(seconds);
  }

  /** Asks the guest for fresh stats now; false when the guest holds no stats buffer yet. */
  requestStats(): boolean {
    return this.device.requestStats();
  }
}
