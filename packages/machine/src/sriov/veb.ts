// The embedded switch of an SR-IOV NIC (a Virtual Ethernet Bridge, as in 802.1Qbg): the PF and
// every VF are its internal ports, the device's external link is its uplink. A frame from a
// function goes to the function owning its destination MAC (configured MACs, then learned ones)
// without leaving the device; broadcast and multicast go to every other function and the
// uplink; unknown unicast goes to the uplink. Frames from the uplink go to the function owning
// the destination, or to all functions when it is broadcast, multicast or unknown.
//
// Hot path: MACs are looked up as 48-bit numbers in a Map<number, number>; no allocation per frame.

/** Where the VEB hands a frame to one of its ports (a virtio-net device's receive side, the uplink). */
export interface VebSink {
  deliver(buf: Uint8Array, offset: number, length: number): boolean;
}

/** The port number of the uplink. */
export const VEB_UPLINK = 0;

const MAX_LEARNED = 4096;

/** VEB counters (frames). */
export interface VebStats {
  /** Frames switched from one function to another inside the device. */
  local: number;
  /** Frames sent out of the uplink. */
  toUplink: number;
  /** Frames that came in from the uplink and reached a function. */
  fromUplink: number;
  /** Frames a function could not take (no receive buffers) or without a destination. */
  dropped: number;
  /** Frames too short to carry an Ethernet header. */
  runts: number;
}

/**
 * MAC -> port table: open addressing over typed arrays, keyed by the MAC's high 16 and low 32
 * bits (no allocation per lookup). Configured entries (a function's own MAC) are never
 * overwritten by learning; learned entries are dropped together when the table fills up.
 */
class MacTable {
  private readonly hi = new Uint16Array(MAX_LEARNED * 2);
  private readonly lo = new Uint32Array(MAX_LEARNED * 2);
  private readonly port = new Int8Array(MAX_LEARNED * 2).fill(-1);
  private readonly fixed = new Uint8Array(MAX_LEARNED * 2);
  private readonly mask = MAX_LEARNED * 2 - 1;
  learnedCount = 0;

  private slot(hi: number, lo: number): number {
    let i = (Math.imul(lo ^ (hi << 7), 0x9e3779b1) >>> 20) & this.mask;
    while (this.port[i] >= 0 && (this.hi[i] !== hi || this.lo[i] !== lo)) i = (i + 1) & this.mask;
    return i;
  }

  get(hi: number, lo: number): number {
    return this.port[this.slot(hi, lo)];
  }

  set(hi: number, lo: number, port: number, fixed: boolean): void {
    let i = this.slot(hi, lo);
    if (this.port[i] >= 0) {
      if (this.fixed[i] !== 0 && !fixed) return;
      if (this.port[i] === port && this.fixed[i] === (fixed ? 1 : 0)) return;
    } else if (!fixed) {
      if (this.learnedCount >= MAX_LEARNED) {
        this.rebuild(-1, true);
        i = this.slot(hi, lo);
      }
      this.learnedCount++;
    }
    this.hi[i] = hi;
    this.lo[i] = lo;
    this.port[i] = port;
    this.fixed[i] = fixed ? 1 : 0;
  }

  /** Drops the entries of `port` (and every learned entry when `dropLearned`). */
  rebuild(port: number, dropLearned: boolean): void {
    const keep: [number, number, number, number][] = [];
    for (let i = 0; i <= this.mask; i++) {
      if (this.port[i] < 0 || this.port[i] === port || (dropLearned && this.fixed[i] === 0)) continue;
      keep.push([this.hi[i], this.lo[i], this.port[i], this.fixed[i]]);
    }
    this.port.fill(-1);
    this.fixed.fill(0);
    this.learnedCount = 0;
    for (const [h, l, p, f] of keep) this.set(h, l, p, f !== 0);
  }
}

const hi16 = (b: Uint8Array, at: number): number => (b[at] << 8) | b[at + 1];
const lo32 = (b: Uint8Array, at: number): number => ((b[at + 2] << 24) | (b[at + 3] << 16) | (b[at + 4] << 8) | b[at + 5]) >>> 0;

/** The embedded switch. Port 0 is the uplink; functions get ports 1 and up. */
export class Veb {
  private readonly sinks: (VebSink | null)[] = [null];
  private readonly macs = new MacTable();
  /** Per port: frames received from it, frames delivered to it. */
  readonly rxFrames: Float64Array = new Float64Array(64);
  readonly txFrames: Float64Array = new Float64Array(64);
  readonly stats: VebStats = { local: 0, toUplink: 0, fromUplink: 0, dropped: 0, runts: 0 };

  /** Sets where frames for the uplink go (the vswitch port), or null when unplugged. */
  setUplink(sink: VebSink | null): void {
    this.sinks[VEB_UPLINK] = sink;
  }

  /** Adds a function port with its MAC; returns the port number (1-63). */
  addPort(sink: VebSink, mac: Uint8Array): number {
    let port = this.sinks.indexOf(null, 1);
    if (port < 0) port = this.sinks.length;
    if (port >= 64) throw new RangeError('Veb: at most 63 functions');
    this.sinks[port] = sink;
    this.rxFrames[port] = 0;
    this.txFrames[port] = 0;
    this.macs.set(hi16(mac, 0), lo32(mac, 0), port, true);
    return port;
  }

  /** Removes a function port (its MAC and learned entries go too). */
  removePort(port: number): void {
    if (port <= 0 || port >= this.sinks.length) return;
    this.sinks[port] = null;
    this.macs.rebuild(port, false);
  }

  /** A frame sent by function port `port` (or by the uplink, port 0). */
  input(port: number, buf: Uint8Array, offset: number, length: number): boolean {
    if (length < 14) {
      this.stats.runts++;
      return true;
    }
    this.rxFrames[port]++;
    if ((buf[offset + 6] & 1) === 0) this.macs.set(hi16(buf, offset + 6), lo32(buf, offset + 6), port, false);
    const group = (buf[offset] & 1) !== 0;
    if (!group) {
      const to = this.macs.get(hi16(buf, offset), lo32(buf, offset));
      if (to === port) {
        this.stats.dropped++; // the destination is where the frame came from
        return true;
      }
      if (to >= 0 && to !== port && this.sinks[to] != null) {
        this.send(port, to, buf, offset, length);
        return true;
      }
      if (port !== VEB_UPLINK && to < 0) {
        this.send(port, VEB_UPLINK, buf, offset, length);
        return true;
      }
      if (port !== VEB_UPLINK) {
        this.stats.dropped++; // to a port that went away
        return true;
      }
    }
    // Flood: broadcast, multicast, or unknown unicast from the uplink.
    for (let p = 0; p < this.sinks.length; p++) if (p !== port && this.sinks[p] != null) this.send(port, p, buf, offset, length);
    return true;
  }

  private send(from: number, to: number, buf: Uint8Array, offset: number, length: number): void {
    const sink = this.sinks[to];
    if (sink == null) {
      this.stats.dropped++;
      return;
    }
    if (!sink.deliver(buf, offset, length)) {
      this.stats.dropped++;
      return;
    }
    this.txFrames[to]++;
    if (to === VEB_UPLINK) this.stats.toUplink++;
    else if (from === VEB_UPLINK) this.stats.fromUplink++;
    else this.stats.local++;
  }
}
