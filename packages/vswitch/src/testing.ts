// Test doubles for @ringzero/vswitch users: a recording frame sink and frame builders.
import type { FrameSink } from './port.js';

/** A FrameSink that keeps a copy of every frame it accepts. */
export class FrameRecorder implements FrameSink {
  readonly frames: Uint8Array[] = [];
  /** Set false to simulate back-pressure (deliver returns false). */
  accept = true;
  /** Keep at most this many frames (older ones are dropped from the record). */
  limit: number;
  constructor(limit = 10000) {
    this.limit = limit;
  }
  deliver(buf: Uint8Array, offset: number, length: number): boolean {
    if (!this.accept) return false;
    if (this.frames.length >= this.limit) this.frames.shift();
    this.frames.push(buf.slice(offset, offset + length));
    return true;
  }
  clear(): void {
    this.frames.length = 0;
  }
  get count(): number {
    return this.frames.length;
  }
}

/** "aa:bb:cc:dd:ee:ff" to 6 bytes. */
export function macBytes(mac: string): Uint8Array {
  const parts = mac.split(':');
  if (parts.length !== 6) throw new TypeError(`bad MAC ${mac}`);
  return Uint8Array.from(parts.map((p) => parseInt(p, 16)));
}

export function ipBytes(ip: string): Uint8Array {
  const parts = ip.split('.').map(Number);
  if (parts.length !== 4) throw new TypeError(`bad IPv4 address ${ip}`);
  return Uint8Array.from(parts);
}

export interface EthOptions {
  dst: string;
  src: string;
  type?: number;
  /** Adds an 802.1Q tag with this VID. */
  vlan?: number;
  pcp?: number;
  payload?: Uint8Array;
  /** Pad to at least this many bytes (default 60, the Ethernet minimum without FCS). */
  minLength?: number;
}

export function ethFrame(o: EthOptions): Uint8Array {
  const payload = o.payload ?? new Uint8Array(0);
  const hdr = o.vlan !== undefined ? 18 : 14;
  const len = Math.max(hdr + payload.length, o.minLength ?? 60);
  const f = new Uint8Array(len);
  f.set(macBytes(o.dst), 0);
  f.set(macBytes(o.src), 6);
  const type = o.type ?? 0x0800;
  if (o.vlan !== undefined) {
    f[12] = 0x81;
    f[13] = 0x00;
    const tci = ((o.pcp ?? 0) << 13) | o.vlan;
    f[14] = tci >> 8;
    f[15] = tci & 255;
    f[16] = type >> 8;
    f[17] = type & 255;
  } else {
    f[12] = type >> 8;
    f[13] = type & 255;
  }
  f.set(payload, hdr);
  return f;
}

/** Internet checksum of b[off..off+len). */
export function inetChecksum(b: Uint8Array, off: number, len: number, initial = 0): number {
  let sum = initial;
  for (let i = 0; i + 1 < len; i += 2) sum += (b[off + i] << 8) | b[off + i + 1];
  if (len & 1) sum += b[off + len - 1] << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

export interface Ipv4Options {
  src: string;
  dst: string;
  proto: number;
  tos?: number;
  ttl?: number;
  payload: Uint8Array;
}

export function ipv4Packet(o: Ipv4Options): Uint8Array {
  const p = new Uint8Array(20 + o.payload.length);
  p[0] = 0x45;
  p[1] = o.tos ?? 0;
  p[2] = p.length >> 8;
  p[3] = p.length & 255;
  p[8] = o.ttl ?? 64;
  p[9] = o.proto;
  p.set(ipBytes(o.src), 12);
  p.set(ipBytes(o.dst), 16);
  const c = inetChecksum(p, 0, 20);
  p[10] = c >> 8;
  p[11] = c & 255;
  p.set(o.payload, 20);
  return p;
}

export function udpPacket(src: string, dst: string, sport: number, dport: number, data: Uint8Array): Uint8Array {
  const u = new Uint8Array(8 + data.length);
  u[0] = sport >> 8;
  u[1] = sport & 255;
  u[2] = dport >> 8;
  u[3] = dport & 255;
  u[4] = u.length >> 8;
  u[5] = u.length & 255;
  u.set(data, 8);
  const pseudo = new Uint8Array(12);
  pseudo.set(ipBytes(src), 0);
  pseudo.set(ipBytes(dst), 4);
  pseudo[9] = 17;
  pseudo[10] = u.length >> 8;
  pseudo[11] = u.length & 255;
  const pre = ~inetChecksum(pseudo, 0, 12) & 0xffff;
  let c = inetChecksum(u, 0, u.length, pre);
  if (c === 0) c = 0xffff;
  u[6] = c >> 8;
  u[7] = c & 255;
  return ipv4Packet({ src, dst, proto: 17, payload: u });
}

export function icmpEcho(src: string, dst: string, type: number, id: number, seq: number, data: Uint8Array = new Uint8Array(8)): Uint8Array {
  const m = new Uint8Array(8 + data.length);
  m[0] = type;
  m[4] = id >> 8;
  m[5] = id & 255;
  m[6] = seq >> 8;
  m[7] = seq & 255;
  m.set(data, 8);
  const c = inetChecksum(m, 0, m.length);
  m[2] = c >> 8;
  m[3] = c & 255;
  return ipv4Packet({ src, dst, proto: 1, payload: m });
}

export function arpPacket(op: number, sha: string, spa: string, tha: string, tpa: string): Uint8Array {
  const a = new Uint8Array(28);
  a[1] = 1;
  a[2] = 8;
  a[4] = 6;
  a[5] = 4;
  a[7] = op;
  a.set(macBytes(sha), 8);
  a.set(ipBytes(spa), 14);
  a.set(macBytes(tha), 18);
  a.set(ipBytes(tpa), 24);
  return a;
}

/** Reads the VLAN id of a frame, or -1 when untagged. */
export function frameVlan(f: Uint8Array): number {
  if (f.length >= 18 && ((f[12] << 8) | f[13]) === 0x8100) return ((f[14] << 8) | f[15]) & 0xfff;
  return -1;
}

/**
 * A tiny host: answers ARP requests and ICMP echo requests for one IP/MAC.
 * Attach it as the sink of a port and give it the port to reply through.
 */
export class ArpIcmpResponder implements FrameSink {
  readonly mac: Uint8Array;
  readonly ip: Uint8Array;
  send: ((frame: Uint8Array) => void) | null = null;
  echoes = 0;
  arps = 0;
  constructor(mac: string, ip: string) {
    this.mac = macBytes(mac);
    this.ip = ipBytes(ip);
  }
  deliver(buf: Uint8Array, offset: number, length: number): boolean {
    const f = buf.slice(offset, offset + length);
    if (f.length < 42) return true;
    const type = (f[12] << 8) | f[13];
    if (type === 0x0806 && f[21] === 1 && f.subarray(38, 42).every((b, i) => b === this.ip[i])) {
      this.arps++;
      const r = new Uint8Array(42);
      r.set(f.subarray(6, 12), 0);
      r.set(this.mac, 6);
      r[12] = 0x08;
      r[13] = 0x06;
      r.set(f.subarray(14, 20), 14);
      r[21] = 2;
      r.set(this.mac, 22);
      r.set(this.ip, 28);
      r.set(f.subarray(22, 28), 32);
      r.set(f.subarray(28, 32), 38);
      this.send?.(r);
    } else if (type === 0x0800 && f[23] === 1 && f.subarray(30, 34).every((b, i) => b === this.ip[i])) {
      const ihl = (f[14] & 15) * 4;
      const icmp = 14 + ihl;
      if (f[icmp] !== 8) return true;
      const totalLen = (f[16] << 8) | f[17];
      const r = f.slice(0, 14 + totalLen);
      r.set(f.subarray(6, 12), 0);
      r.set(this.mac, 6);
      r.set(this.ip, 26);
      r.set(f.subarray(26, 30), 30);
      r[24] = 0;
      r[25] = 0;
      const c = inetChecksum(r, 14, ihl);
      r[24] = c >> 8;
      r[25] = c & 255;
      r[icmp] = 0;
      r[icmp + 2] = 0;
      r[icmp + 3] = 0;
      const ic = inetChecksum(r, icmp, totalLen - ihl);
      r[icmp + 2] = ic >> 8;
      r[icmp + 3] = ic & 255;
      this.echoes++;
      this.send?.(r);
    }
    return true;
  }
}
