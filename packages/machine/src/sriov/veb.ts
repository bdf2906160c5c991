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

function macKey(buf: Uint8Array, at: number): number {
  return (buf[at] * 0x100 + buf[at + 1]) * 0x1_0000_0000 + ((buf[at + 2] << 24) | (buf[at + 3] << 16) | (buf[at + 4] << 8) | buf[at + 5]) >>> 0;
}

/** The embedded switch. Port 0 is the uplink; functions get ports 1 and up. */
export class Veb {
  private readonly sinks: (VebSink | null)[] = [null];
  /** Configured MAC -> port (a function's own address). */
  private readonly configured = new Map<number, number>();
  /** Learned source MAC -> port. */
  private readonly learned = new Map<number, number>();
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
    this.configured.set(macKey(mac, 0), port);
    return port;
  }

  /** Removes a function port (its MAC and learned entries go too). */
  removePort(port: number): void {
    if (port <= 0 || port >= this.sinks.length) return;
    this.sinks[port] = null;
    for (const [k, p] of this.configured) if (p === port) this.configured.delete(k);
    for (const [k, p] of this.learned) if (p === port) this.learned.delete(k);
  }

  /** A frame sent by function port `port` (or by the uplink, port 0). */
  input(port: number, buf: Uint8Array, offset: number, length: number): boolean {
    if (length < 14) {
      this.stats.runts++;
      return true;
    }
    this.rxFrames[port]++;
    const src = macKey(buf, offset + 6);
    if ((buf[offset + 6] & 1) === 0 && this.configured.get(src) !== port) {
      if (this.learned.size >= MAX_LEARNED && !this.learned.has(src)) this.learned.clear();
      this.learned.set(src, port);
    }
    const group = (buf[offset] & 1) !== 0;
    if (!group) {
      const dst = macKey(buf, offset);
      const to = this.configured.get(dst) ?? this.learned.get(dst);
      if (to !== undefined && to !== port && this.sinks[to] != null) {
        this.send(port, to, buf, offset, length);
        return true;
      }
      if (port !== VEB_UPLINK && to === undefined) {
        this.send(port, VEB_UPLINK, buf, offset, length);
        return true;
      }
      if (port !== VEB_UPLINK) {
        this.stats.dropped++; // to itself
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
