/**
 * Couples the deterministic clocks of machines that share a network (a conservative
 * synchronisation, as in parallel discrete-event simulation). With deterministic time a halted
 * guest leaps to its next timer at once, so an idle guest waiting for a ping reply would live
 * through its whole timeout while a busy peer has not yet run a microsecond. In a group, a halted
 * member may leap only to `quantumNs` past the slowest member that is running (started, not
 * paused or stopped, and not waiting for a host event with no timer due), so the member furthest
 * behind can always move and no two members wait for each other. Busy vCPUs are not held back:
 * their clocks advance with the instructions they retire.
 */
export interface TimeSyncMember {
  readonly state: string;
  readonly waitingForHost: boolean;
  readonly clock: { nowNs(): number };
}

export class TimeSyncGroup {
  private readonly members: TimeSyncMember[] = [];
  readonly quantumNs: number;

  /** `quantumNs`: how far a halted member may leap past the slowest running one (default 1 ms). */
  constructor(quantumNs = 1_000_000) {
    if (!(quantumNs > 0) || !Number.isFinite(quantumNs)) throw new RangeError('quantumNs must be a positive number');
    this.quantumNs = quantumNs;
  }

  /** Adds a member and returns its limit: the guest ns its idle clock may leap to now. */
  join(self: TimeSyncMember): () => number {
    this.members.push(self);
    return (): number => {
      let min = Infinity;
      for (const m of this.members) {
        if (m === self || m.state !== 'running' || m.waitingForHost) continue;
        const t = m.clock.nowNs();
        if (t < min) min = t;
      }
      return min + this.quantumNs;
    };
  }

  /** Leaves the group (a member that is discarded). */
  leave(self: TimeSyncMember): void {
    const i = this.members.indexOf(self);
    if (i >= 0) this.members.splice(i, 1);
  }
}
