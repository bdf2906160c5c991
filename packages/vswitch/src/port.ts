// Ports: what a NIC (virtio-net, a pipe, a tunnel, a TAP device) attaches to.
import { C_RX_BYTES, C_RX_DROPPED, C_RX_ERRORS, C_RX_PACKETS, C_TX_BYTES, C_TX_DROPPED, C_TX_ERRORS, C_TX_PACKETS, N_COUNTERS } from './consts.js';

/**
 * The frame port interface: the switch hands a frame to a port by calling `deliver`.
 * The bytes are only valid during the call (the switch reuses its buffers): copy them if you
 * keep them. Return false when the frame cannot be taken (queue full): the switch counts it
 * as tx_dropped. Never throw; a throw is counted as tx_errors.
 */
export interface FrameSink {
  deliver(buf: Uint8Array, offset: number, length: number): boolean;
}

export const VLAN_ACCESS = 0;
export const VLAN_TRUNK = 1;
export const VLAN_NATIVE_TAGGED = 2;
export const VLAN_NATIVE_UNTAGGED = 3;

export type VlanMode = 'access' | 'trunk' | 'native-tagged' | 'native-untagged';
export type PortType = 'frame' | 'internal' | 'pipe' | 'vxlan' | 'tap';

export interface PortOptions {
  /** OpenFlow port number (1..65279); the lowest free one when omitted. */
  ofport?: number;
  type?: PortType;
  /** Access VLAN (access mode) or native VLAN (native-* modes). */
  tag?: number;
  /** VLANs a trunk carries; all when omitted or empty. */
  trunks?: readonly number[];
  /** Default: access when `tag` is given, else trunk (as OVS). */
  vlanMode?: VlanMode;
  /** Exclude the port from flooding (OFPPC_NO_FLOOD). */
  noFlood?: boolean;
  /** Hardware address reported in port descriptions (random locally administered when omitted). */
  mac?: string;
}

/** Port counters as plain numbers. */
export interface PortStats {
  rxPackets: number;
  rxBytes: number;
  rxDropped: number;
  rxErrors: number;
  txPackets: number;
  txBytes: number;
  txDropped: number;
  txErrors: number;
}

/** The bridge side of a port, used by Port.receive. */
export interface PortOwner {
  input(port: Port, buf: Uint8Array, offset: number, length: number): void;
}

let macSeed = 0x5a17;

export class Port {
  readonly name: string;
  readonly ofport: number;
  readonly type: PortType;
  sink: FrameSink;
  /** rx/tx packets, bytes, dropped, errors: indices C_RX_PACKETS.. in consts. */
  readonly counters: Float64Array = new Float64Array(N_COUNTERS);
  vlanMode: number;
  /** Access/native VLAN, -1 when none. */
  tag: number;
  /** 4096-entry bitmap of trunked VLANs, or null for all. */
  trunks: Uint8Array | null;
  noFlood: boolean;
  /** Administratively up (OFPPC_PORT_DOWN clears it). */
  up = true;
  /** Destination of a SPAN mirror: excluded from normal forwarding. */
  mirrorOut = false;
  /** Bit i set: mirror i selects packets received on this port / sent to this port. */
  mirrorSrc = 0;
  mirrorDst = 0;
  /** Packet serial of the last mirror copy sent to this port (mirror once per destination). */
  mirrorSerial = -1;
  /** Tunnel id (VNI) attached to frames received on this port. */
  tunId = 0;
  // NORMAL's one-entry caches (a vNIC mostly sends from one MAC to one gateway): valid while
  // the bridge clock and the MAC table generation are unchanged. -1 = empty.
  /** @internal */ lrnHi = -1;
  /** @internal */ lrnLo = 0;
  /** @internal */ lrnVlan = -1;
  /** @internal */ lrnNow = -1;
  /** @internal */ lrnGen = -1;
  /** @internal */ dstHi = -1;
  /** @internal */ dstLo = 0;
  /** @internal */ dstVlan = -1;
  /** @internal */ dstNow = -1;
  /** @internal */ dstGen = -1;
  /** @internal */ dstOut = -1;
  readonly hwHi: number;
  readonly hwLo: number;
  /** Milliseconds (bridge clock) when the port was added. */
  readonly created: number;
  private readonly owner: PortOwner;

  constructor(owner: PortOwner, name: string, ofport: number, sink: FrameSink, opts: PortOptions, now: number) {
    this.owner = owner;
    this.name = name;
    this.ofport = ofport;
    this.sink = sink;
    this.type = opts.type ?? 'frame';
    this.noFlood = opts.noFlood ?? false;
    this.tag = -1;
    this.trunks = null;
    this.vlanMode = VLAN_TRUNK;
    this.setVlan(opts);
    if (opts.mac !== undefined) {
      const m = /^([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2})$/i.exec(opts.mac);
      if (!m) throw new TypeError(`port ${name}: bad mac "${opts.mac}"`);
      const b = m.slice(1).map((x) => parseInt(x, 16));
      this.hwHi = (b[0] << 8) | b[1];
      this.hwLo = ((b[2] << 24) | (b[3] << 16) | (b[4] << 8) | b[5]) >>> 0;
    } else {
      macSeed = (Math.imul(macSeed, 1103515245) + 12345) >>> 0;
      this.hwHi = 0x0a00 | ((macSeed >>> 24) & 0xff) | 0x0200;
      this.hwLo = (Math.imul(macSeed ^ ofport, 2654435761) >>> 0) ^ ofport;
      this.hwLo >>>= 0;
    }
    this.created = now;
  }

  /** Reconfigures VLAN mode, tag and trunks (same rules as PortOptions). */
  setVlan(opts: Pick<PortOptions, 'tag' | 'trunks' | 'vlanMode'>): void {
    const tag = opts.tag ?? -1;
    if (tag !== -1 && !(Number.isInteger(tag) && tag >= 0 && tag <= 4095)) throw new RangeError(`port ${this.name}: tag ${tag} out of range 0..4095`);
    const mode = opts.vlanMode ?? (tag >= 0 ? 'access' : 'trunk');
    const modes: Record<VlanMode, number> = { access: VLAN_ACCESS, trunk: VLAN_TRUNK, 'native-tagged': VLAN_NATIVE_TAGGED, 'native-untagged': VLAN_NATIVE_UNTAGGED };
    if (!(mode in modes)) throw new TypeError(`port ${this.name}: unknown vlan mode "${String(mode)}"`);
    if (mode !== 'trunk' && tag < 0) throw new TypeError(`port ${this.name}: vlan mode ${mode} needs a tag`);
    let trunks: Uint8Array | null = null;
    if (opts.trunks !== undefined && opts.trunks.length > 0) {
      trunks = new Uint8Array(4096);
      for (const v of opts.trunks) {
        if (!(Number.isInteger(v) && v >= 0 && v <= 4095)) throw new RangeError(`port ${this.name}: trunk VLAN ${v} out of range`);
        trunks[v] = 1;
      }
    }
    this.vlanMode = modes[mode];
    this.tag = tag;
    this.trunks = trunks;
  }

  /** Ingress: the attached NIC sends a frame into the switch. The bytes are not retained. */
  receive(buf: Uint8Array, offset: number, length: number): void {
    this.owner.input(this, buf, offset, length);
  }

  /** True when the port carries `vlan` in NORMAL switching. */
  carries(vlan: number): boolean {
    switch (this.vlanMode) {
      case VLAN_ACCESS:
        return vlan === this.tag;
      case VLAN_TRUNK:
        return this.trunks == null || this.trunks[vlan] === 1;
      default:
        return vlan === this.tag || this.trunks == null || this.trunks[vlan] === 1;
    }
  }

  /** True when frames of `vlan` leave this port tagged. */
  egressTagged(vlan: number): boolean {
    switch (this.vlanMode) {
      case VLAN_ACCESS:
        return false;
      case VLAN_TRUNK:
        return vlan !== 0;
      case VLAN_NATIVE_TAGGED:
        return true;
      default:
        return vlan !== this.tag;
    }
  }

  get vlanModeName(): VlanMode {
    return (['access', 'trunk', 'native-tagged', 'native-untagged'] as const)[this.vlanMode];
  }

  stats(): PortStats {
    const c = this.counters;
    return {
      rxPackets: c[C_RX_PACKETS],
      rxBytes: c[C_RX_BYTES],
      rxDropped: c[C_RX_DROPPED],
      rxErrors: c[C_RX_ERRORS],
      txPackets: c[C_TX_PACKETS],
      txBytes: c[C_TX_BYTES],
      txDropped: c[C_TX_DROPPED],
      txErrors: c[C_TX_ERRORS],
    };
  }
}
