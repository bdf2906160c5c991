// VXLAN (RFC 7348) tunnel ports: encapsulation/decapsulation and remote-endpoint learning
// per VNI. The UDP socket itself is a transport supplied by the host (see node.ts).
import type { Bridge } from './bridge.js';
import { MAX_FRAME, MIN_FRAME } from './consts.js';
import type { Port, PortOptions } from './port.js';

export const VXLAN_PORT = 4789;
const VXLAN_HDR = 8;
const FLAG_I = 0x08;

/** Sends one UDP datagram (bytes are only valid during the call). */
export interface UdpTransport {
  send(buf: Uint8Array, offset: number, length: number, ip: number, port: number): void;
}

export interface VxlanPortOptions extends PortOptions {
  /** 24-bit VXLAN network identifier ("key" in OVS). */
  vni: number;
  /** Static remote endpoints (IPv4 dotted quads) for broadcast/unknown traffic. */
  remotes?: readonly string[];
  /** Destination UDP port of the remotes (default: the tunnel's port). */
  dstPort?: number;
  /** Learned (MAC -> remote) entries kept per VNI (default 4096). */
  fdbLimit?: number;
  /** Ageing of learned entries in seconds (default 300, as Linux). */
  fdbAgingSeconds?: number;
}

export function parseIpv4(s: string): number {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (!m || m.slice(1).some((x) => Number(x) > 255)) throw new TypeError(`"${s}" is not an IPv4 address`);
  return ((Number(m[1]) << 24) | (Number(m[2]) << 16) | (Number(m[3]) << 8) | Number(m[4])) >>> 0;
}

export function formatIpv4(v: number): string {
  return `${v >>> 24}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;
}

/** Learned remote of one inner MAC. */
export interface VxlanFdbEntry {
  mac: string;
  remote: string;
  port: number;
}

/** One VNI attached to a bridge as a port. */
export class VxlanPort {
  readonly vni: number;
  readonly port: Port;
  readonly remotes: number[];
  readonly dstPort: number;
  private readonly tunnel: VxlanTunnel;
  private readonly fdb = new Map<number, { ip: number; port: number; seen: number }>();
  private readonly fdbLimit: number;
  private readonly agingMs: number;
  /** Learned remote endpoints (flood targets in addition to the static ones). */
  readonly learnedRemotes: Set<number> = new Set<number>();

  constructor(tunnel: VxlanTunnel, bridge: Bridge, name: string, o: VxlanPortOptions) {
    if (!Number.isInteger(o.vni) || o.vni < 0 || o.vni > 0xffffff) throw new RangeError(`VNI ${o.vni} out of range 0..16777215`);
    this.vni = o.vni;
    this.tunnel = tunnel;
    this.remotes = (o.remotes ?? []).map(parseIpv4);
    this.dstPort = o.dstPort ?? tunnel.port;
    this.fdbLimit = o.fdbLimit ?? 4096;
    this.agingMs = (o.fdbAgingSeconds ?? 300) * 1000;
    const { vni: _v, remotes: _r, dstPort: _d, fdbLimit: _l, fdbAgingSeconds: _a, ...portOpts } = o;
    this.port = bridge.addPort(name, { deliver: (b, off, len) => this.encap(b, off, len) }, { ...portOpts, type: 'vxlan' });
    this.port.tunId = o.vni;
  }

  private macKey(b: Uint8Array, o: number): number {
    return (((b[o] << 8) | b[o + 1]) * 4294967296) + (((b[o + 2] << 24) | (b[o + 3] << 16) | (b[o + 4] << 8) | b[o + 5]) >>> 0);
  }

  private encap(b: Uint8Array, off: number, len: number): boolean {
    const t = this.tunnel;
    const tx = t.txBuf;
    if (len + VXLAN_HDR > tx.length) return false;
    tx[0] = FLAG_I;
    tx[1] = 0;
    tx[2] = 0;
    tx[3] = 0;
    tx[4] = this.vni >>> 16;
    tx[5] = this.vni >>> 8;
    tx[6] = this.vni;
    tx[7] = 0;
    if (len <= 128) for (let i = 0; i < len; i++) tx[VXLAN_HDR + i] = b[off + i];
    else tx.set(b.subarray(off, off + len), VXLAN_HDR);
    const dstIsGroup = (b[off] & 1) !== 0;
    if (!dstIsGroup) {
      const e = this.fdb.get(this.macKey(b, off));
      if (e !== undefined && t.bridgeNow() - e.seen <= this.agingMs) {
        t.transport.send(tx, 0, len + VXLAN_HDR, e.ip, e.port);
        return true;
      }
    }
    let sent = false;
    for (const ip of this.remotes) {
      t.transport.send(tx, 0, len + VXLAN_HDR, ip, this.dstPort);
      sent = true;
    }
    for (const ip of this.learnedRemotes) {
      if (this.remotes.includes(ip)) continue;
      t.transport.send(tx, 0, len + VXLAN_HDR, ip, this.dstPort);
      sent = true;
    }
    return sent;
  }

  /** Called by the tunnel for a datagram of this VNI. */
  decap(b: Uint8Array, off: number, len: number, srcIp: number, srcPort: number): void {
    const src = off + VXLAN_HDR;
    const n = len - VXLAN_HDR;
    if ((b[src + 6] & 1) === 0) {
      const k = this.macKey(b, src + 6);
      const e = this.fdb.get(k);
      const now = this.tunnel.bridgeNow();
      if (e !== undefined) {
        e.ip = srcIp;
        e.port = this.dstPort;
        e.seen = now;
      } else {
        if (this.fdb.size >= this.fdbLimit) {
          const oldest = this.fdb.keys().next();
          if (oldest.done !== true) this.fdb.delete(oldest.value);
        }
        this.fdb.set(k, { ip: srcIp, port: this.dstPort, seen: now });
      }
      if (this.learnedRemotes.size < 1024) this.learnedRemotes.add(srcIp);
    }
    void srcPort;
    this.port.receive(b, src, n);
  }

  fdbEntries(): VxlanFdbEntry[] {
    return [...this.fdb.entries()].map(([k, e]) => {
      const hex = k.toString(16).padStart(12, '0');
      return { mac: hex.match(/../g)!.join(':'), remote: formatIpv4(e.ip), port: e.port };
    });
  }
}

/** One VXLAN UDP endpoint: demultiplexes datagrams by VNI to the VXLAN ports. */
export class VxlanTunnel {
  readonly port: number;
  readonly transport: UdpTransport;
  readonly txBuf: Uint8Array = new Uint8Array(VXLAN_HDR + MAX_FRAME);
  private readonly byVni = new Map<number, VxlanPort>();
  private readonly bridges = new Set<Bridge>();
  /** Datagrams dropped: too short, I flag clear, unknown VNI. */
  rxErrors = 0;
  rxUnknownVni = 0;

  constructor(transport: UdpTransport, port: number = VXLAN_PORT) {
    this.transport = transport;
    this.port = port;
  }

  bridgeNow(): number {
    for (const b of this.bridges) return b.now;
    return 0;
  }

  /** Adds a VXLAN port for `vni` to `bridge`. */
  addPort(bridge: Bridge, name: string, o: VxlanPortOptions): VxlanPort {
    if (this.byVni.has(o.vni)) throw new Error(`VNI ${o.vni} already has a port`);
    const p = new VxlanPort(this, bridge, name, o);
    this.byVni.set(o.vni, p);
    this.bridges.add(bridge);
    return p;
  }

  /** Feeds one received UDP payload. */
  receive(b: Uint8Array, off: number, len: number, srcIp: number, srcPort: number): void {
    if (len < VXLAN_HDR + MIN_FRAME || (b[off] & FLAG_I) === 0) {
      this.rxErrors++;
      return;
    }
    const vni = (b[off + 4] << 16) | (b[off + 5] << 8) | b[off + 6];
    const p = this.byVni.get(vni);
    if (p === undefined) {
      this.rxUnknownVni++;
      return;
    }
    p.decap(b, off, len, srcIp, srcPort);
  }

  get ports(): VxlanPort[] {
    return [...this.byVni.values()];
  }
}
