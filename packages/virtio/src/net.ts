import { DescriptorChain } from './chain';
import { DEVICE_ID_NET, F_HI_VERSION_1, MAX_QUEUE_SIZE } from './constants';
import type { VirtioContext, VirtioDevice } from './device';
import { POP_EMPTY } from './queue';
import type { Virtqueue } from './queue';
import type { ChainState, DeviceRestoreContext } from './state';
import { loadChain, saveChain, stateArray, stateBool, stateBytes, stateFail, stateHeader, stateInt, stateObject, stateWords, VIRTIO_STATE_VERSION } from './state';

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
export const NET_F_CTRL_RX = 0x4_0000;
export const NET_F_CTRL_VLAN = 0x8_0000;
export const NET_F_CTRL_RX_EXTRA = 0x10_0000;
export const NET_F_GUEST_ANNOUNCE = 0x20_0000;
export const NET_F_MQ = 0x40_0000;
export const NET_F_CTRL_MAC_ADDR = 0x80_0000;
/** Config status: link up. */
export const NET_S_LINK_UP = 1;
/** Config status: the device asks the driver to announce itself (gratuitous ARP), then ANNOUNCE_ACK. */
export const NET_S_ANNOUNCE = 2;

// Control queue (virtio 1.x §5.1.6.5): a chain {u8 class, u8 command, data...} then one writable ack byte.
export const NET_OK = 0;
export const NET_ERR = 1;
export const NET_CTRL_RX = 0;
export const NET_CTRL_RX_PROMISC = 0;
export const NET_CTRL_RX_ALLMULTI = 1;
export const NET_CTRL_RX_ALLUNI = 2;
export const NET_CTRL_RX_NOMULTI = 3;
export const NET_CTRL_RX_NOUNI = 4;
export const NET_CTRL_RX_NOBCAST = 5;
export const NET_CTRL_MAC = 1;
export const NET_CTRL_MAC_TABLE_SET = 0;
export const NET_CTRL_MAC_ADDR_SET = 1;
export const NET_CTRL_VLAN = 2;
export const NET_CTRL_VLAN_ADD = 0;
export const NET_CTRL_VLAN_DEL = 1;
export const NET_CTRL_ANNOUNCE = 3;
export const NET_CTRL_ANNOUNCE_ACK = 0;
export const NET_CTRL_MQ = 4;
export const NET_CTRL_MQ_VQ_PAIRS_SET = 0;
export const NET_CTRL_MQ_VQ_PAIRS_MIN = 1;
/** The spec's largest max_virtqueue_pairs. */
export const NET_CTRL_MQ_VQ_PAIRS_MAX = 0x8000;
/** Most queue pairs this device offers (the MSI-X table of VirtioPci has 128 vectors). */
export const NET_MAX_QUEUE_PAIRS = 32;
/** MAC filter table entries kept per kind (unicast, multicast); more set the overflow (accept all), as QEMU. */
export const NET_MAC_TABLE_ENTRIES = 64;
/** virtio_net_hdr length with VERSION_1 or MRG_RXBUF (has num_buffers). */
export const NET_HDR_LEN = 12;
/** Legacy virtio_net_hdr without num_buffers. */
export const NET_HDR_LEN_LEGACY = 10;
/** Largest frame (without the virtio header) we move: 64 KiB GSO frames plus an Ethernet header. */
export const NET_MAX_FRAME = 65550;

/*
 * Config space (virtio 1.x §5.1.4): 0 mac[6]   6 status le16   8 max_virtqueue_pairs le16
 * 10 mtu le16.
 */
const CONFIG_SIZE = 12;
const FLOW_SLOTS = 256;
/** Features that need CTRL_VQ (virtio 1.x §5.1.3.1). */
const NEEDS_CTRL = NET_F_CTRL_RX | NET_F_CTRL_VLAN | NET_F_CTRL_RX_EXTRA | NET_F_GUEST_ANNOUNCE | NET_F_MQ | NET_F_CTRL_MAC_ADDR;

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
  /**
   * Queue pairs offered (VIRTIO_NET_F_MQ when more than 1; at most NET_MAX_QUEUE_PAIRS).
   * Default 1.
   */
  queuePairs?: number;
  /**
   * Offer the control queue (CTRL_VQ with CTRL_RX, CTRL_RX_EXTRA, CTRL_VLAN, CTRL_MAC_ADDR and
   * GUEST_ANNOUNCE). Default true; forced on when queuePairs > 1 (MQ needs it).
   */
  ctrlQueue?: boolean;
}

/** virtio-net's own state, as plain data. */
export interface VirtioNetState {
  version: number;
  kind: 'virtio-net';
  maxPairs: number;
  /** The MAC the guest uses (MAC_ADDR_SET) and the config status word. */
  mac: number[];
  status: number;
  curPairs: number;
  filter: RxFilter;
  /** Used entries of the unicast then multicast tables (6 bytes each). */
  uniMacs: number[];
  multiMacs: number[];
  /** VLAN filter bitmap, 128 words. */
  vlans: number[];
  /** Per pair: the transmit chain held under back-pressure, or null. */
  txPending: (ChainState | null)[];
  /** Per pair: deliver() was refused for lack of buffers (onRxReady owed). */
  rxWanted: boolean[];
}

/** Receive filter state set through the control queue (QEMU's defaults after reset: promiscuous). */
export interface RxFilter {
  promisc: boolean;
  allmulti: boolean;
  alluni: boolean;
  nomulti: boolean;
  nouni: boolean;
  nobcast: boolean;
  uniCount: number;
  multiCount: number;
  uniOverflow: boolean;
  multiOverflow: boolean;
}

/**
 * virtio-net (virtio 1.x §5.1). Queues are numbered as Linux's virtio_net numbers them:
 * receiveq0, transmitq0, receiveq1, transmitq1, ..., then the control queue (index
 * 2 x max_virtqueue_pairs with MQ, 2 without).
 *
 * Transmit: each chain is one header + frame; the frame goes to `send` as a view of guest
 * memory when it is contiguous (no copy), otherwise gathered once into a scratch buffer.
 * Receive: deliver() copies the frame once into guest buffers, across several of them with
 * MRG_RXBUF; it returns false (back-pressure) when the guest has not posted enough buffers,
 * and the frame is not consumed. With several queue pairs enabled (VQ_PAIRS_SET), a received
 * frame goes to the pair its flow was last transmitted on (the spec's automatic receive
 * steering, kept in a 256-slot table indexed by a symmetric flow hash), else to the pair its
 * hash picks.
 *
 * Control queue: RX mode (promisc, allmulti, alluni, nomulti, nouni, nobcast), MAC table and
 * MAC address, VLAN filter, ANNOUNCE_ACK and MQ VQ_PAIRS_SET; the receive filter they set is
 * applied in deliver() as QEMU applies it. Other classes are answered VIRTIO_NET_ERR.
 */
export class VirtioNet implements VirtioDevice {
  readonly deviceId: number = DEVICE_ID_NET;
  readonly queueCount: number;
  readonly maxQueueSize: number;
  readonly featuresLo: number;
  readonly featuresHi: number = 0;
  readonly configSize: number = CONFIG_SIZE;
  /** Chains go back in the order they were popped, on every queue. */
  readonly supportsInOrder: boolean = true;
  /** Queue pairs offered (max_virtqueue_pairs). */
  readonly maxPairs: number;
  /** Counters (stable shape). */
  readonly stats: {
    txFrames: number;
    txBytes: number;
    txErrors: number;
    rxFrames: number;
    rxBytes: number;
    rxDropped: number;
    rxBlocked: number;
    rxFiltered: number;
    ctrlCommands: number;
    ctrlErrors: number;
  } = {
    txFrames: 0,
    txBytes: 0,
    txErrors: 0,
    rxFrames: 0,
    rxBytes: 0,
    rxDropped: 0,
    rxBlocked: 0,
    rxFiltered: 0,
    ctrlCommands: 0,
    ctrlErrors: 0,
  };
  /** Receive filter as the control queue left it. */
  readonly filter: RxFilter = {
    promisc: true,
    allmulti: false,
    alluni: false,
    nomulti: false,
    nouni: false,
    nobcast: false,
    uniCount: 0,
    multiCount: 0,
    uniOverflow: false,
    multiOverflow: false,
  };
  /** Unicast then multicast MAC filter tables, NET_MAC_TABLE_ENTRIES x 6 bytes each. */
  readonly macTable: Uint8Array = new Uint8Array(2 * NET_MAC_TABLE_ENTRIES * 6);
  /** VLAN filter bitmap (4096 bits): a tagged frame passes when its VID bit is set. */
  readonly vlans: Uint32Array = new Uint32Array(128);
  /** Queue pairs in use (1 until VQ_PAIRS_SET). */
  curPairs = 1;
  private ctx: VirtioContext | null = null;
  private readonly config = new Uint8Array(CONFIG_SIZE);
  private readonly mac: Uint8Array;
  private readonly send: NetSend;
  private readonly onRxReady: () => void;
  private readonly vnetHeader: boolean;
  private readonly ctrl: boolean;
  private hdrLen = NET_HDR_LEN;
  private mrg = false;
  /** Index of the control queue for the negotiated features, or -1. */
  private ctrlIndex = -1;
  /** Pairs the driver may use: maxPairs with MQ negotiated, else 1. */
  private usablePairs = 1;
  private readonly txChains: DescriptorChain[] = [];
  private readonly txPending: Uint8Array;
  private readonly txBusy: Uint8Array;
  private readonly rxWanted: Uint8Array;
  private readonly txBuf = new Uint8Array(NET_HDR_LEN + NET_MAX_FRAME);
  private readonly rxChains: DescriptorChain[] = [];
  private readonly rxLens: Uint32Array;
  private readonly hdr = new Uint8Array(NET_HDR_LEN);
  /** Flow hash slot -> 1 + the pair the flow was last transmitted on (0: none). */
  private readonly flows = new Uint8Array(FLOW_SLOTS);
  private readonly ctrlChain = new DescriptorChain(4);
  private readonly ctrlBuf = new Uint8Array(8);

  constructor(opts: VirtioNetOptions) {
    if (opts.mac.length !== 6) throw new RangeError('VirtioNet: mac must be 6 bytes');
    const qs = opts.queueSize ?? 256;
    if (qs < 2 || qs > MAX_QUEUE_SIZE || (qs & (qs - 1)) !== 0) throw new RangeError(`VirtioNet: queueSize must be a power of two from 2 to ${MAX_QUEUE_SIZE}`);
    const pairs = opts.queuePairs ?? 1;
    if (!Number.isInteger(pairs) || pairs < 1 || pairs > NET_MAX_QUEUE_PAIRS) throw new RangeError(`VirtioNet: queuePairs must be an integer from 1 to ${NET_MAX_QUEUE_PAIRS}`);
    this.maxPairs = pairs;
    this.ctrl = pairs > 1 || (opts.ctrlQueue ?? true);
    this.queueCount = 2 * pairs + (this.ctrl ? 1 : 0);
    this.maxQueueSize = qs;
    this.send = opts.send;
    this.onRxReady = opts.onRxReady ?? ((): void => undefined);
    this.vnetHeader = opts.vnetHeader ?? false;
    let f = NET_F_MAC | NET_F_STATUS | NET_F_MRG_RXBUF;
    if (this.vnetHeader) {
      f |= NET_F_CSUM | NET_F_GUEST_CSUM | NET_F_GUEST_TSO4 | NET_F_GUEST_TSO6 | NET_F_GUEST_UFO | NET_F_HOST_TSO4 | NET_F_HOST_TSO6 | NET_F_HOST_UFO;
    }
    if (opts.mtu !== undefined) f |= NET_F_MTU;
    if (this.ctrl) f |= NET_F_CTRL_VQ | NET_F_CTRL_RX | NET_F_CTRL_RX_EXTRA | NET_F_CTRL_VLAN | NET_F_CTRL_MAC_ADDR | NET_F_GUEST_ANNOUNCE;
    if (pairs > 1) f |= NET_F_MQ;
    this.featuresLo = f >>> 0;
    this.mac = opts.mac.slice();
    this.config.set(opts.mac, 0);
    this.config[6] = NET_S_LINK_UP;
    this.config[8] = pairs & 0xff;
    this.config[9] = pairs >>> 8;
    const mtu = opts.mtu ?? 1500;
    this.config[10] = mtu & 0xff;
    this.config[11] = mtu >>> 8;
    this.rxLens = new Uint32Array(qs);
    this.txPending = new Uint8Array(pairs);
    this.txBusy = new Uint8Array(pairs);
    this.rxWanted = new Uint8Array(pairs);
    for (let i = 0; i < pairs; i++) this.txChains.push(new DescriptorChain(8));
    this.vlans.fill(0xffff_ffff);
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
    if ((lo & NEEDS_CTRL) !== 0 && (lo & NET_F_CTRL_VQ) === 0) return false;
    if ((lo & NET_F_CTRL_RX_EXTRA) !== 0 && (lo & NET_F_CTRL_RX) === 0) return false;
    return true;
  }

  /** Link status as the guest sees it; a change raises a config interrupt. */
  setLinkUp(up: boolean): void {
    const v = up ? NET_S_LINK_UP : 0;
    if ((this.config[6] & NET_S_LINK_UP) === v) return;
    this.config[6] = (this.config[6] & ~NET_S_LINK_UP) | v;
    this.ctx?.configChanged();
  }

  get linkUp(): boolean {
    return (this.config[6] & NET_S_LINK_UP) !== 0;
  }

  /**
   * Asks the guest to announce itself (after a migration): sets VIRTIO_NET_S_ANNOUNCE and raises
   * a config interrupt; the driver answers ANNOUNCE_ACK, which clears it. False when the driver
   * did not negotiate GUEST_ANNOUNCE.
   */
  announce(): boolean {
    const ctx = this.ctx;
    if (ctx == null || !ctx.active || (ctx.featuresLo & NET_F_GUEST_ANNOUNCE) === 0) return false;
    this.config[6] |= NET_S_ANNOUNCE;
    ctx.configChanged();
    return true;
  }

  /** The MAC address the guest currently uses (the configured one until MAC_ADDR_SET). */
  get macAddress(): Uint8Array {
    return this.config.slice(0, 6);
  }

  /** Index of the control queue under the negotiated features (-1 when not negotiated). */
  get controlQueueIndex(): number {
    return this.ctrlIndex;
  }

  /** Header length, MRG_RXBUF, usable pairs and the control queue index under the negotiated features. */
  private derive(): void {
    const ctx = this.ctx!;
    const lo = ctx.featuresLo;
    this.mrg = (lo & NET_F_MRG_RXBUF) !== 0;
    this.hdrLen = this.mrg || (ctx.featuresHi & F_HI_VERSION_1) !== 0 ? NET_HDR_LEN : NET_HDR_LEN_LEGACY;
    this.usablePairs = (lo & NET_F_MQ) !== 0 ? this.maxPairs : 1;
    this.ctrlIndex = (lo & NET_F_CTRL_VQ) !== 0 ? 2 * this.usablePairs : -1;
  }

  activate(): void {
    this.derive();
    // Without CTRL_VLAN every VLAN passes; with it the table starts empty (as QEMU).
    this.vlans.fill((this.ctx!.featuresLo & NET_F_CTRL_VLAN) !== 0 ? 0 : 0xffff_ffff);
    for (let p = 0; p < this.curPairs; p++) this.processTx(p);
    if (this.ctrlIndex >= 0) this.processCtrl();
  }

  notify(index: number): void {
    if (index === this.ctrlIndex) return this.processCtrl();
    const pair = index >>> 1;
    if (pair >= this.usablePairs) return;
    if ((index & 1) === 1) {
      // The device does not read transmit queues beyond the pairs in use (VQ_PAIRS_SET).
      if (pair < this.curPairs) this.processTx(pair);
    } else if (this.rxWanted[pair] !== 0) {
      this.rxWanted[pair] = 0;
      this.onRxReady();
    }
  }

  reset(): void {
    this.txPending.fill(0);
    this.rxWanted.fill(0);
    this.curPairs = 1;
    this.usablePairs = 1;
    this.ctrlIndex = -1;
    this.flows.fill(0);
    const f = this.filter;
    f.promisc = true;
    f.allmulti = false;
    f.alluni = false;
    f.nomulti = false;
    f.nouni = false;
    f.nobcast = false;
    f.uniCount = 0;
    f.multiCount = 0;
    f.uniOverflow = false;
    f.multiOverflow = false;
    this.macTable.fill(0);
    this.vlans.fill(0xffff_ffff);
    this.config.set(this.mac, 0);
    this.config[6] &= ~NET_S_ANNOUNCE;
  }

  /** The network accepts frames again after send() returned false. */
  resumeTx(): void {
    for (let p = 0; p < this.curPairs; p++) this.processTx(p);
  }

  private processTx(pair: number): void {
    const ctx = this.ctx;
    if (ctx == null || !ctx.active || this.txBusy[pair] !== 0) return;
    const qi = 2 * pair + 1;
    const q = ctx.queue(qi);
    if (q == null) return;
    this.txBusy[pair] = 1;
    let pushed = false;
    const chain = this.txChains[pair];
    for (;;) {
      if (this.txPending[pair] === 0) {
        const r = q.pop(chain);
        if (r === POP_EMPTY) {
          if (q.enableNotification()) continue;
          break;
        }
        if (r < 0) break; // signalUsed below reports it
        this.txPending[pair] = 1;
      }
      const frameLen = chain.readableBytes - this.hdrLen;
      if (frameLen < 0 || frameLen > NET_MAX_FRAME) {
        this.stats.txErrors++;
      } else if (!this.transmit(ctx, chain, frameLen, pair)) {
        break; // back-pressure: keep the chain, resumeTx() retries it
      }
      this.txPending[pair] = 0;
      q.pushUsed(chain, 0);
      pushed = true;
      if (!ctx.active) break;
    }
    this.txBusy[pair] = 0;
    if (pushed || q.error !== 0) ctx.signalUsed(qi);
  }

  private transmit(ctx: VirtioContext, chain: DescriptorChain, frameLen: number, pair: number): boolean {
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
      if (this.curPairs > 1) this.flows[flowHash(buf, NET_HDR_LEN, frameLen) & (FLOW_SLOTS - 1)] = pair + 1;
      ok = this.send(buf, 0, NET_HDR_LEN + frameLen);
    } else {
      const view = chain.view(mem, false, h, frameLen);
      if (view != null) {
        if (this.curPairs > 1) this.flows[flowHash(view, 0, frameLen) & (FLOW_SLOTS - 1)] = pair + 1;
        ok = this.send(view, 0, frameLen);
      } else {
        if (!chain.read(mem, h, this.txBuf, 0, frameLen)) {
          this.stats.txErrors++;
          return true;
        }
        if (this.curPairs > 1) this.flows[flowHash(this.txBuf, 0, frameLen) & (FLOW_SLOTS - 1)] = pair + 1;
        ok = this.send(this.txBuf, 0, frameLen);
      }
    }
    if (ok) {
      this.stats.txFrames++;
      this.stats.txBytes += frameLen;
    }
    return ok;
  }

  // ---- state ----------------------------------------------------------------------------

  saveState(): VirtioNetState {
    const txPending: (ChainState | null)[] = [];
    const rxWanted: boolean[] = [];
    for (let p = 0; p < this.maxPairs; p++) {
      txPending.push(this.txPending[p] !== 0 ? saveChain(this.txChains[p]) : null);
      rxWanted.push(this.rxWanted[p] !== 0);
    }
    const f = this.filter;
    const half = NET_MAC_TABLE_ENTRIES * 6;
    return {
      version: VIRTIO_STATE_VERSION,
      kind: 'virtio-net',
      maxPairs: this.maxPairs,
      mac: Array.from(this.config.subarray(0, 6)),
      status: this.config[6] | (this.config[7] << 8),
      curPairs: this.curPairs,
      filter: { ...f },
      uniMacs: Array.from(this.macTable.subarray(0, 6 * f.uniCount)),
      multiMacs: Array.from(this.macTable.subarray(half, half + 6 * f.multiCount)),
      vlans: Array.from(this.vlans),
      txPending,
      rxWanted,
    };
  }

  /**
   * Checks a saved virtio-net state: same number of pairs, filter tables within their bounds,
   * pairs in use allowed by the negotiated features, held transmit chains valid and, on split
   * queues, exactly what each queue has outstanding (nothing on receive and control queues).
   */
  prepareRestore(v: unknown, rc: DeviceRestoreContext): () => void {
    const P = 'state.device';
    const o = stateHeader(v, P, 'virtio-net');
    if (o.maxPairs !== this.maxPairs) stateFail(`${P}.maxPairs`, `is ${String(o.maxPairs)}, this device has ${this.maxPairs} queue pairs`);
    const mac = stateBytes(o.mac, `${P}.mac`, 6, 6);
    const status = stateInt(o.status, `${P}.status`, 0, NET_S_LINK_UP | NET_S_ANNOUNCE);
    const mq = (rc.featuresLo & NET_F_MQ) !== 0;
    const curPairs = stateInt(o.curPairs, `${P}.curPairs`, 1, mq ? this.maxPairs : 1);
    const fo = stateObject(o.filter, `${P}.filter`);
    const flag = (k: keyof RxFilter): boolean => stateBool(fo[k], `${P}.filter.${k}`);
    const filter: RxFilter = {
      promisc: flag('promisc'),
      allmulti: flag('allmulti'),
      alluni: flag('alluni'),
      nomulti: flag('nomulti'),
      nouni: flag('nouni'),
      nobcast: flag('nobcast'),
      uniOverflow: flag('uniOverflow'),
      multiOverflow: flag('multiOverflow'),
      uniCount: stateInt(fo.uniCount, `${P}.filter.uniCount`, 0, NET_MAC_TABLE_ENTRIES),
      multiCount: stateInt(fo.multiCount, `${P}.filter.multiCount`, 0, NET_MAC_TABLE_ENTRIES),
    };
    const uni = stateBytes(o.uniMacs, `${P}.uniMacs`, 6 * filter.uniCount, 6 * filter.uniCount);
    const multi = stateBytes(o.multiMacs, `${P}.multiMacs`, 6 * filter.multiCount, 6 * filter.multiCount);
    const vlans = stateWords(o.vlans, `${P}.vlans`, 128);
    const tx = stateArray(o.txPending, `${P}.txPending`, this.maxPairs, this.maxPairs);
    const rxw = stateArray(o.rxWanted, `${P}.rxWanted`, this.maxPairs, this.maxPairs);
    const chains: (DescriptorChain | null)[] = [];
    const wanted: boolean[] = [];
    for (let p = 0; p < this.maxPairs; p++) {
      wanted.push(stateBool(rxw[p], `${P}.rxWanted[${p}]`));
      const q = 2 * p + 1;
      const size = rc.queueSize(q);
      let c: DescriptorChain | null = null;
      if (tx[p] != null) {
        if (size === 0) stateFail(`${P}.txPending[${p}]`, 'is held for a transmit queue that is not live');
        c = new DescriptorChain(4);
        loadChain(tx[p], `${P}.txPending[${p}]`, rc.mem, size, rc.outstanding(q) < 0 ? 0xffff : size - 1, c);
      }
      chains.push(c);
    }
    if (rc.active) {
      for (let q = 0; q < this.queueCount; q++) {
        const out = rc.outstanding(q);
        const want = (q & 1) === 1 && q < 2 * this.maxPairs && chains[q >>> 1] != null ? 1 : 0;
        if (out >= 0 && out !== want) stateFail(`${P}`, `does not match queue ${q}: ${out} chains outstanding, ${want} held`);
      }
    }
    return () => {
      const ctx = this.ctx!;
      this.derive();
      this.config.set(mac, 0);
      this.config[6] = status & 0xff;
      this.config[7] = status >>> 8;
      this.curPairs = curPairs;
      Object.assign(this.filter, filter);
      const half = NET_MAC_TABLE_ENTRIES * 6;
      this.macTable.fill(0);
      this.macTable.set(uni, 0);
      this.macTable.set(multi, half);
      this.vlans.set(vlans);
      this.flows.fill(0);
      this.txBusy.fill(0);
      for (let p = 0; p < this.maxPairs; p++) {
        const c = chains[p];
        this.txPending[p] = c != null ? 1 : 0;
        if (c != null) this.txChains[p] = c;
        this.rxWanted[p] = wanted[p] ? 1 : 0;
      }
      if (!ctx.active) this.txPending.fill(0);
    };
  }

  // ---- control queue ------------------------------------------------------------------

  private processCtrl(): void {
    const ctx = this.ctx;
    if (ctx == null || !ctx.active || this.ctrlIndex < 0) return;
    const q = ctx.queue(this.ctrlIndex);
    if (q == null) return;
    const c = this.ctrlChain;
    let pushed = false;
    for (;;) {
      const r = q.pop(c);
      if (r === POP_EMPTY) {
        if (q.enableNotification()) continue;
        break;
      }
      if (r < 0) break;
      if (c.readableBytes < 2 || c.writableBytes < 1 || !c.read(ctx.mem, 0, this.ctrlBuf, 0, 2)) {
        ctx.fail('virtio-net: control command without a class/command header or an ack byte');
        return;
      }
      const ack = this.command(ctx, c, this.ctrlBuf[0], this.ctrlBuf[1], c.readableBytes - 2);
      this.stats.ctrlCommands++;
      if (ack !== NET_OK) this.stats.ctrlErrors++;
      const at = c.locate(true, 0, 1);
      if (at < 0 || !ctx.mem.write8(at, ack)) {
        ctx.fail('virtio-net: control ack byte not writable');
        return;
      }
      q.pushUsed(c, 1);
      pushed = true;
      if (!ctx.active) break;
    }
    if (pushed || q.error !== 0) ctx.signalUsed(this.ctrlIndex);
  }

  /** Runs one control command whose data is `len` readable bytes after the 2-byte header; returns the ack. */
  private command(ctx: VirtioContext, c: DescriptorChain, cls: number, cmd: number, len: number): number {
    const lo = ctx.featuresLo;
    const b = this.ctrlBuf;
    const mem = ctx.mem;
    switch (cls) {
      case NET_CTRL_RX: {
        if ((lo & NET_F_CTRL_RX) === 0 || len < 1 || cmd > NET_CTRL_RX_NOBCAST) return NET_ERR;
        if (cmd > NET_CTRL_RX_ALLMULTI && (lo & NET_F_CTRL_RX_EXTRA) === 0) return NET_ERR;
        if (!c.read(mem, 2, b, 0, 1)) return NET_ERR;
        const on = b[0] !== 0;
        const f = this.filter;
        if (cmd === NET_CTRL_RX_PROMISC) f.promisc = on;
        else if (cmd === NET_CTRL_RX_ALLMULTI) f.allmulti = on;
        else if (cmd === NET_CTRL_RX_ALLUNI) f.alluni = on;
        else if (cmd === NET_CTRL_RX_NOMULTI) f.nomulti = on;
        else if (cmd === NET_CTRL_RX_NOUNI) f.nouni = on;
        else f.nobcast = on;
        return NET_OK;
      }
      case NET_CTRL_MAC:
        if (cmd === NET_CTRL_MAC_ADDR_SET) {
          if ((lo & NET_F_CTRL_MAC_ADDR) === 0 || len !== 6 || !c.read(mem, 2, b, 0, 6)) return NET_ERR;
          this.config.set(b.subarray(0, 6), 0);
          return NET_OK;
        }
        if (cmd === NET_CTRL_MAC_TABLE_SET && (lo & NET_F_CTRL_RX) !== 0) return this.macTableSet(mem, c, len);
        return NET_ERR;
      case NET_CTRL_VLAN: {
        if ((lo & NET_F_CTRL_VLAN) === 0 || len !== 2 || cmd > NET_CTRL_VLAN_DEL || !c.read(mem, 2, b, 0, 2)) return NET_ERR;
        const vid = b[0] | (b[1] << 8);
        if (vid >= 4096) return NET_ERR;
        if (cmd === NET_CTRL_VLAN_ADD) this.vlans[vid >>> 5] |= 1 << (vid & 31);
        else this.vlans[vid >>> 5] &= ~(1 << (vid & 31));
        return NET_OK;
      }
      case NET_CTRL_ANNOUNCE:
        // As QEMU: an acknowledgement with no announcement pending is an error.
        if ((lo & NET_F_GUEST_ANNOUNCE) === 0 || cmd !== NET_CTRL_ANNOUNCE_ACK || (this.config[6] & NET_S_ANNOUNCE) === 0) return NET_ERR;
        this.config[6] &= ~NET_S_ANNOUNCE;
        return NET_OK;
      case NET_CTRL_MQ: {
        if ((lo & NET_F_MQ) === 0 || cmd !== NET_CTRL_MQ_VQ_PAIRS_SET || len !== 2 || !c.read(mem, 2, b, 0, 2)) return NET_ERR;
        const n = b[0] | (b[1] << 8);
        if (n < NET_CTRL_MQ_VQ_PAIRS_MIN || n > this.maxPairs) return NET_ERR;
        const old = this.curPairs;
        this.curPairs = n;
        this.flows.fill(0);
        // Frames the driver queued on newly enabled pairs before the ack go out now.
        for (let p = old; p < n; p++) this.processTx(p);
        return NET_OK;
      }
      default:
        return NET_ERR;
    }
  }

  /**
   * MAC_TABLE_SET: two struct virtio_net_ctrl_mac {le32 entries; u8 macs[entries][6]}, unicast
   * then multicast, filling the data exactly. Checked whole before anything changes; tables
   * longer than NET_MAC_TABLE_ENTRIES set the overflow flag (that kind is then accepted).
   */
  private macTableSet(mem: VirtioContext['mem'], c: DescriptorChain, len: number): number {
    const b = this.ctrlBuf;
    if (len < 8 || !c.read(mem, 2, b, 0, 4)) return NET_ERR;
    const uni = (b[0] | (b[1] << 8) | (b[2] << 16) | (b[3] << 24)) >>> 0;
    const at2 = 4 + 6 * uni;
    if (at2 + 4 > len || !c.read(mem, 2 + at2, b, 0, 4)) return NET_ERR;
    const multi = (b[0] | (b[1] << 8) | (b[2] << 16) | (b[3] << 24)) >>> 0;
    if (at2 + 4 + 6 * multi !== len) return NET_ERR;
    const f = this.filter;
    const t = this.macTable;
    const half = NET_MAC_TABLE_ENTRIES * 6;
    f.uniOverflow = uni > NET_MAC_TABLE_ENTRIES;
    f.uniCount = f.uniOverflow ? 0 : uni;
    if (f.uniCount > 0 && !c.read(mem, 6, t, 0, 6 * uni)) f.uniCount = 0;
    f.multiOverflow = multi > NET_MAC_TABLE_ENTRIES;
    f.multiCount = f.multiOverflow ? 0 : multi;
    if (f.multiCount > 0 && !c.read(mem, 2 + at2 + 4, t, half, 6 * multi)) f.multiCount = 0;
    return NET_OK;
  }

  // ---- receive --------------------------------------------------------------------------

  /** QEMU's receive_filter: true when the frame at buf[off, off + len) passes the filter. */
  private accepts(buf: Uint8Array, off: number, len: number): boolean {
    const f = this.filter;
    if (f.promisc) return true;
    if (len < 14) return false;
    if (buf[off + 12] === 0x81 && buf[off + 13] === 0x00) {
      const vid = ((buf[off + 14] << 8) | buf[off + 15]) & 0xfff;
      if ((this.vlans[vid >>> 5] & (1 << (vid & 31))) === 0) return false;
    }
    if ((buf[off] & 1) !== 0) {
      if (buf[off] === 0xff && buf[off + 1] === 0xff && buf[off + 2] === 0xff && buf[off + 3] === 0xff && buf[off + 4] === 0xff && buf[off + 5] === 0xff) return !f.nobcast;
      if (f.nomulti) return false;
      if (f.allmulti || f.multiOverflow) return true;
      return this.inTable(buf, off, NET_MAC_TABLE_ENTRIES * 6, f.multiCount);
    }
    if (f.nouni) return false;
    if (f.alluni || f.uniOverflow) return true;
    const m = this.config;
    if (buf[off] === m[0] && buf[off + 1] === m[1] && buf[off + 2] === m[2] && buf[off + 3] === m[3] && buf[off + 4] === m[4] && buf[off + 5] === m[5]) return true;
    return this.inTable(buf, off, 0, f.uniCount);
  }

  private inTable(buf: Uint8Array, off: number, base: number, count: number): boolean {
    const t = this.macTable;
    for (let i = 0, e = base; i < count; i++, e += 6) {
      if (buf[off] === t[e] && buf[off + 1] === t[e + 1] && buf[off + 2] === t[e + 2] && buf[off + 3] === t[e + 3] && buf[off + 4] === t[e + 4] && buf[off + 5] === t[e + 5]) return true;
    }
    return false;
  }

  private rxChain(i: number): DescriptorChain {
    while (this.rxChains.length <= i) this.rxChains.push(new DescriptorChain(4));
    return this.rxChains[i];
  }

  /**
   * A frame from the network for the guest. Returns false (back-pressure, frame not taken)
   * when the guest has not posted enough receive buffers; the device calls onRxReady once it
   * does. Frames arriving while the device is not running, the link is down, that the receive
   * filter refuses or that cannot fit (too big, buffers too small without MRG_RXBUF) are
   * dropped and true is returned.
   */
  deliver(buf: Uint8Array, offset: number, length: number): boolean {
    const ctx = this.ctx;
    if (ctx == null || !ctx.active || !this.linkUp) {
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
    if (!this.filter.promisc && !this.accepts(buf, fOff, fLen)) {
      this.stats.rxFiltered++;
      return true;
    }
    let pair = 0;
    if (this.curPairs > 1) {
      const hash = flowHash(buf, fOff, fLen);
      const e = this.flows[hash & (FLOW_SLOTS - 1)];
      pair = e !== 0 && e <= this.curPairs ? e - 1 : hash % this.curPairs;
    }
    const qi = 2 * pair;
    const q = ctx.queue(qi);
    if (q == null) {
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
        this.rxWanted[pair] = 1;
        q.enableNotification(); // so the driver notifies when it adds buffers
        return false;
      }
      if (r < 0) {
        ctx.signalUsed(qi); // reports the queue error (NEEDS_RESET)
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
    ctx.signalUsed(qi);
    return true;
  }

  /** Receive queue, for diagnostics. */
  get rxQueue(): Virtqueue | null {
    return this.ctx?.queue(0) ?? null;
  }
}

/**
 * A symmetric flow hash of an Ethernet frame (the same for both directions of a flow): IPv4 and
 * IPv6 addresses, protocol and TCP/UDP ports when present, else the two MAC addresses.
 */
export function flowHash(b: Uint8Array, off: number, len: number): number {
  if (len < 14) return 0;
  let p = off + 12;
  let type = (b[p] << 8) | b[p + 1];
  if (type === 0x8100 && len >= 18) {
    p += 4;
    type = (b[p] << 8) | b[p + 1];
  }
  p += 2; // start of the L3 header
  const end = off + len;
  let h = 0;
  let l4 = -1;
  let proto: number;
  if (type === 0x0800 && p + 20 <= end) {
    h = rd32(b, p + 12) ^ rd32(b, p + 16);
    proto = b[p + 9];
    const frag = ((b[p + 6] & 0x1f) << 8) | b[p + 7];
    if (frag === 0) l4 = p + 4 * (b[p] & 0xf);
  } else if (type === 0x86dd && p + 40 <= end) {
    for (let i = 8; i < 40; i += 4) h ^= rd32(b, p + i);
    proto = b[p + 6];
    l4 = p + 40;
  } else {
    // Destination and source MAC, word by word, so that swapping them gives the same hash.
    for (let k = 0; k < 6; k += 2) h ^= (((b[off + k] << 8) | b[off + k + 1]) ^ ((b[off + 6 + k] << 8) | b[off + 7 + k])) << (4 * k);
    return mix(h);
  }
  if ((proto === 6 || proto === 17) && l4 >= 0 && l4 + 4 <= end) h ^= ((b[l4] << 8) | b[l4 + 1]) ^ ((b[l4 + 2] << 8) | b[l4 + 3]);
  return mix(h ^ proto);
}

function rd32(b: Uint8Array, p: number): number {
  return ((b[p] << 24) | (b[p + 1] << 16) | (b[p + 2] << 8) | b[p + 3]) >>> 0;
}

function mix(h: number): number {
  h = Math.imul(h ^ (h >>> 16), 0x45d9f3b);
  h = Math.imul(h ^ (h >>> 16), 0x45d9f3b);
  return (h ^ (h >>> 16)) >>> 0;
}
