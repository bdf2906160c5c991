import { DescriptorChain } from './chain';
import { DEVICE_ID_NET, F_HI_VERSION_1, MAX_QUEUE_SIZE } from './constants';
import type { VirtioContext, VirtioDevice } from './device';
import { POP_EMPTY } from './queue';
import type { Virtqueue } from './queue';

// virtio-net feature bits (lo word).
export const NET_F_CSUM = 0x1;
export const NET_F_GUEST_CSUM = 0x2;
export const NET_F_MTU = 0x8;
export const NET_F_MAC = 0x20;
export const NET_F_GUEST_TSO4 = 0x80;
export const NET_F_GUEST_TSO6 = 0x100;
export const NET_F_GUEST_UFO = 0x400;
export const NET_F_HOST_TSO4 = 0x800;
export const NET_F_HOST_TSO6 = 0x1000;
export const NET_F_HOST_UFO = 0x4000;
export const NET_F_MRG_RXBUF = 0x8000;
export const NET_F_STATUS = 0x1_0000;
export const NET_F_CTRL_VQ = 0x2_0000;
export const NET_F_MQ = 0x40_0000;
/** Config status: link up. */
export const NET_S_LINK_UP = 1;
/** virtio_net_hdr length with VERSION_1 or MRG_RXBUF (has num_buffers). */
export const NET_HDR_LEN = 12;
/** Legacy virtio_net_hdr without num_buffers. */
export const NET_HDR_LEN_LEGACY = 10;
/** Largest frame (without the virtio header) we move: 64 KiB GSO frames plus an Ethernet header. */
export const NET_MAX_FRAME = 65550;

const RX = 0;
const TX = 1;
/*
 * Config space (virtio 1.x §5.1.4): 0 mac[6]   6 status le16   8 max_virtqueue_pairs le16
 * 10 mtu le16.
 */
const CONFIG_SIZE = 12;

/** Sends one frame toward the network (the switch port). False = back-pressure: call resumeTx() later. */
export type NetSend = (buf: Uint8Array, offset: number, length: number) => boolean;

/** Options of VirtioNet. */
export interface VirtioNetOptions {
  /** MAC address (6 bytes). */
  mac: Uint8Array;
  /** Frames from the guest go here. */
  send: NetSend;
  /** Called when the guest posted receive buffers after deliver() returned false. */
  onRxReady?: () => void;
  /**
   * Frames in both directions carry the 12-byte virtio_net_hdr in front (as a TAP device with
   * IFF_VNET_HDR). Only then does the device offer checksum and TSO/UFO offloads, whose header
   * fields are carried through unchanged. Default false: plain Ethernet frames (a switch port).
   */
  vnetHeader?: boolean;
  /** MTU to announce (VIRTIO_NET_F_MTU). */
  mtu?: number;
  /** Queue size offered (default 256). */
  queueSize?: number;
}

/**
 * virtio-net with one queue pair (no control queue, no MQ). Transmit: each chain is one
 * header + frame; the frame goes to `send` as a view of guest memory when it is contiguous
 * (no copy), otherwise gathered once into a scratch buffer. Receive: deliver() copies the
 * frame once into guest buffers, across several of them with MRG_RXBUF; it returns false
 * (back-pressure) when the guest has not posted enough buffers, and the frame is not consumed.
 */
export class VirtioNet implements VirtioDevice {
  readonly deviceId: number = DEVICE_ID_NET;
  readonly queueCount: number = 2;
  readonly maxQueueSize: number;
  readonly featuresLo: number;
  readonly featuresHi: number = 0;
  readonly configSize: number = CONFIG_SIZE;
  /** Counters (stable shape). */
  readonly stats: { txFrames: number; txBytes: number; txErrors: number; rxFrames: number; rxBytes: number; rxDropped: number; rxBlocked: number } = {
    txFrames: 0,
    txBytes: 0,
    txErrors: 0,
    rxFrames: 0,
    rxBytes: 0,
    rxDropped: 0,
    rxBlocked: 0,
  };
  private ctx: VirtioContext | null = null;
  private readonly config = new Uint8Array(CONFIG_SIZE);
  private readonly send: NetSend;
  private readonly onRxReady: () => void;
  private readonly vnetHeader: boolean;
  private hdrLen = NET_HDR_LEN;
  private mrg = false;
  private readonly txChain = new DescriptorChain(8);
  private txPending = false;
  private readonly txBuf = new Uint8Array(NET_HDR_LEN + NET_MAX_FRAME);
  private readonly rxChains: DescriptorChain[] = [];
  private readonly rxLens: Uint32Array;
  private readonly hdr = new Uint8Array(NET_HDR_LEN);
  private rxWanted = false;
  private txBusy = false;

  constructor(opts: VirtioNetOptions) {
    if (opts.mac.length !== 6) throw new RangeError('VirtioNet: mac must be 6 bytes');
    const qs = opts.queueSize ?? 256;
    if (qs < 2 || qs > MAX_QUEUE_SIZE || (qs & (qs - 1)) !== 0) throw new RangeError(`VirtioNet: queueSize must be a power of two from 2 to ${MAX_QUEUE_SIZE}`);
    this.maxQueueSize = qs;
    this.send = opts.send;
    this.onRxReady = opts.onRxReady ?? ((): void => undefined);
    this.vnetHeader = opts.vnetHeader ?? false;
    let f = NET_F_MAC | NET_F_STATUS | NET_F_MRG_RXBUF;
    if (this.vnetHeader) {
      f |= NET_F_CSUM | NET_F_GUEST_CSUM | NET_F_GUEST_TSO4 | NET_F_GUEST_TSO6 | NET_F_GUEST_UFO | NET_F_HOST_TSO4 | NET_F_HOST_TSO6 | NET_F_HOST_UFO;
    }
    if (opts.mtu !== undefined) f |= NET_F_MTU;
    this.featuresLo = f;
    this.config.set(opts.mac, 0);
    this.config[6] = NET_S_LINK_UP;
    this.config[8] = 1;
    const mtu = opts.mtu ?? 1500;
    this.config[10] = mtu & 0xff;
    this.config[11] = mtu >>> 8;
    this.rxLens = new Uint32Array(qs);
  }

  attach(ctx: VirtioContext): void {
    this.ctx = ctx;
  }

  readConfig(offset: number): number {
    return this.config[offset];
  }

  writeConfig(_offset: number, _value: number): void {
    // MAC is read-only once VERSION_1 is negotiated (legacy drivers may write it: ignored too).
  }

  checkFeatures(lo: number): boolean {
    return (lo & (NET_F_CTRL_VQ | NET_F_MQ)) === 0;
  }

  /** Link status as the guest sees it; a change raises a config interrupt. */
  setLinkUp(up: boolean): void {
    const v = up ? NET_S_LINK_UP : 0;
    if (this.config[6] === v) return;
    this.config[6] = v;
    this.ctx?.configChanged();
  }

  get linkUp(): boolean {
    return (this.config[6] & NET_S_LINK_UP) !== 0;
  }

  activate(): void {
    const ctx = this.ctx!;
    this.mrg = (ctx.featuresLo & NET_F_MRG_RXBUF) !== 0;
    this.hdrLen = this.mrg || (ctx.featuresHi & F_HI_VERSION_1) !== 0 ? NET_HDR_LEN : NET_HDR_LEN_LEGACY;
    this.processTx();
  }

  notify(index: number): void {
    if (index === TX) this.processTx();
    else if (index === RX && this.rxWanted) {
      this.rxWanted = false;
      this.onRxReady();
    }
  }

  reset(): void {
    this.txPending = false;
    this.rxWanted = false;
  }

  /** The network accepts frames again after send() returned false. */
  resumeTx(): void {
    this.processTx();
  }

  private processTx(): void {
    const ctx = this.ctx;
    if (ctx == null || !ctx.active || this.txBusy) return;
    const q = ctx.queue(TX);
    if (q == null) return;
    this.txBusy = true;
    let pushed = false;
    const chain = this.txChain;
    for (;;) {
      if (!this.txPending) {
        const r = q.pop(chain);
        if (r === POP_EMPTY) {
          if (q.enableNotification()) continue;
          break;
        }
        if (r < 0) break; // signalUsed below reports it
        this.txPending = true;
      }
      const frameLen = chain.readableBytes - this.hdrLen;
      if (frameLen < 0 || frameLen > NET_MAX_FRAME) {
        this.stats.txErrors++;
      } else if (!this.transmit(ctx, chain, frameLen)) {
        break; // back-pressure: keep the chain, resumeTx() retries it
      }
      this.txPending = false;
      q.pushUsed(chain, 0);
      pushed = true;
      if (!ctx.active) break;
    }
    this.txBusy = false;
    if (pushed || q.error !== 0) ctx.signalUsed(TX);
  }

  private transmit(ctx: VirtioContext, chain: DescriptorChain, frameLen: number): boolean {
    const mem = ctx.mem;
    const h = this.hdrLen;
    let ok: boolean;
    if (this.vnetHeader) {
      const buf = this.txBuf;
      buf.fill(0, 0, NET_HDR_LEN);
      if (!chain.read(mem, 0, buf, 0, h + frameLen)) {
        this.stats.txErrors++;
        return true;
      }
      if (h !== NET_HDR_LEN) buf.copyWithin(NET_HDR_LEN, h, h + frameLen);
      if (h !== NET_HDR_LEN) buf.fill(0, h, NET_HDR_LEN);
      ok = this.send(buf, 0, NET_HDR_LEN + frameLen);
    } else {
      const view = chain.view(mem, false, h, frameLen);
      if (view != null) ok = this.send(view, 0, frameLen);
      else {
        if (!chain.read(mem, h, this.txBuf, 0, frameLen)) {
          this.stats.txErrors++;
          return true;
        }
        ok = this.send(this.txBuf, 0, frameLen);
      }
    }
    if (ok) {
      this.stats.txFrames++;
      this.stats.txBytes += frameLen;
    }
    return ok;
  }

  private rxChain(i: number): DescriptorChain {
    while (this.rxChains.length <= i) this.rxChains.push(new DescriptorChain(4));
    return this.rxChains[i];
  }

  /**
   * A frame from the network for the guest. Returns false (back-pressure, frame not taken)
   * when the guest has not posted enough receive buffers; the device calls onRxReady once it
   * does. Frames arriving while the device is not running, the link is down, or that cannot
   * fit (too big, buffers too small without MRG_RXBUF) are dropped and true is returned.
   */
  deliver(buf: Uint8Array, offset: number, length: number): boolean {
    const ctx = this.ctx;
    const q = ctx?.active === true ? ctx.queue(RX) : null;
    if (ctx == null || q == null || !this.linkUp) {
      this.stats.rxDropped++;
      return true;
    }
    // The virtio header we write: given by the network (vnetHeader) or all zero.
    const h = this.hdrLen;
    const hdr = this.hdr;
    let fOff = offset;
    let fLen = length;
    hdr.fill(0);
    if (this.vnetHeader) {
      if (length < NET_HDR_LEN) {
        this.stats.rxDropped++;
        return true;
      }
      hdr.set(buf.subarray(offset, offset + 10), 0);
      fOff += NET_HDR_LEN;
      fLen -= NET_HDR_LEN;
    }
    if (fLen < 0 || fLen > NET_MAX_FRAME) {
      this.stats.rxDropped++;
      return true;
    }
    const need = h + fLen;
    q.mark();
    let count = 0;
    let done = 0;
    while (done < need) {
      if (count === q.size || (count === 1 && !this.mrg)) {
        q.rewind();
        this.stats.rxDropped++;
        return true;
      }
      const c = this.rxChain(count);
      const r = q.pop(c);
      if (r === POP_EMPTY) {
        q.rewind();
        this.stats.rxBlocked++;
        this.rxWanted = true;
        q.enableNotification(); // so the driver notifies when it adds buffers
        return false;
      }
      if (r < 0) {
        ctx.signalUsed(RX); // reports the queue error (NEEDS_RESET)
        this.stats.rxDropped++;
        return true;
      }
      const n = Math.min(c.writableBytes, need - done);
      if (n === 0 && c.writableBytes === 0) {
        // A receive buffer the device cannot write into: driver error.
        ctx.fail('virtio-net: receive buffer without writable descriptors');
        return true;
      }
      this.rxLens[count] = n;
      count++;
      done += n;
    }
    // Write header + frame across the chains (one copy of the payload).
    if (h === NET_HDR_LEN) {
      hdr[10] = count & 0xff;
      hdr[11] = count >>> 8;
    }
    const mem = ctx.mem;
    let pos = 0; // position in the virtual stream [hdr | frame]
    for (let i = 0; i < count; i++) {
      const c = this.rxChains[i];
      const n = this.rxLens[i];
      let w = 0;
      if (pos < h) {
        const k = Math.min(h - pos, n);
        c.write(mem, 0, hdr, pos, k);
        w = k;
      }
      if (w < n) c.write(mem, w, buf, fOff + (pos + w - h), n - w);
      pos += n;
    }
    for (let i = 0; i < count; i++) q.pushUsed(this.rxChains[i], this.rxLens[i]);
    this.stats.rxFrames++;
    this.stats.rxBytes += fLen;
    ctx.signalUsed(RX);
    return true;
  }

  /** Receive queue, for diagnostics. */
  get rxQueue(): Virtqueue | null {
    return this.ctx?.queue(RX) ?? null;
  }
}
