// A bounded pcap (libpcap 2.4, Ethernet) writer that plugs into a vswitch bridge as a port, and
// a reader for the check when tcpdump is not installed.
import type { FrameSink } from '@ringzero/vswitch';

const HEADER = 24;
const RECORD = 16;

/** Collects frames as pcap records; stops (and counts drops) past `maxBytes`. */
export class PcapCapture implements FrameSink {
  private readonly chunks: Uint8Array[] = [];
  private size = HEADER;
  frames = 0;
  dropped = 0;
  constructor(
    private readonly maxBytes = 16 << 20,
    private readonly snaplen = 65535,
    private readonly now: () => number = () => Date.now() * 1000,
  ) {}

  deliver(buf: Uint8Array, offset: number, length: number): boolean {
    const incl = Math.min(length, this.snaplen);
    if (this.size + RECORD + incl > this.maxBytes) {
      this.dropped++;
      return true; // a full capture drops silently, as a full ring would
    }
    const rec = new Uint8Array(RECORD + incl);
    const v = new DataView(rec.buffer);
    const us = this.now();
    v.setUint32(0, Math.floor(us / 1e6), true);
    v.setUint32(4, us % 1e6, true);
    v.setUint32(8, incl, true);
    v.setUint32(12, length, true);
    rec.set(buf.subarray(offset, offset + incl), RECORD);
    this.chunks.push(rec);
    this.size += rec.length;
    this.frames++;
    return true;
  }

  /** The pcap file's bytes. */
  bytes(): Uint8Array {
    const out = new Uint8Array(this.size);
    const v = new DataView(out.buffer);
    v.setUint32(0, 0xa1b2c3d4, true); // microsecond timestamps, little-endian
    v.setUint16(4, 2, true);
    v.setUint16(6, 4, true);
    v.setUint32(16, this.snaplen, true);
    v.setUint32(20, 1, true); // LINKTYPE_ETHERNET
    let o = HEADER;
    for (const c of this.chunks) {
      out.set(c, o);
      o += c.length;
    }
    return out;
  }
}

export interface IcmpEcho {
  readonly src: string;
  readonly dst: string;
  readonly type: 'request' | 'reply';
}

/** The ICMP echo requests and replies in a little-endian Ethernet pcap file (bounds-checked). */
export function icmpEchoes(file: Uint8Array): IcmpEcho[] {
  const v = new DataView(file.buffer, file.byteOffset, file.byteLength);
  if (file.length < HEADER || v.getUint32(0, true) !== 0xa1b2c3d4 || v.getUint32(20, true) !== 1) throw new Error('not a little-endian Ethernet pcap file');
  const out: IcmpEcho[] = [];
  const ip = (o: number): string => `${file[o]}.${file[o + 1]}.${file[o + 2]}.${file[o + 3]}`;
  for (let o = HEADER; o + RECORD <= file.length; ) {
    const incl = v.getUint32(o + 8, true);
    const f = o + RECORD;
    if (f + incl > file.length) break;
    // Ethernet II, IPv4 (0x0800), protocol 1 (ICMP), type 8 (request) or 0 (reply).
    if (incl >= 14 + 20 + 8 && v.getUint16(f + 12) === 0x0800 && file[f + 14] >> 4 === 4 && file[f + 23] === 1) {
      const ihl = (file[f + 14] & 15) * 4;
      const t = file[f + 14 + ihl];
      if (14 + ihl + 8 <= incl && (t === 8 || t === 0)) out.push({ src: ip(f + 26), dst: ip(f + 30), type: t === 8 ? 'request' : 'reply' });
    }
    o = f + incl;
  }
  return out;
}
