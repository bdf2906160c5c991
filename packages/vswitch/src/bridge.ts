// The bridge: ports, the OpenFlow pipeline (translation to a compiled program, cached in the
// EMC and megaflow caches), NORMAL switching with MAC learning and VLANs, mirrors.
import { EMC_MEMO, ExactMatchCache, MegaflowCache, Program } from './cache.js';
import { FlowTable } from './classifier.js';
import {
  C_RX_BYTES,
  C_RX_DROPPED,
  C_RX_ERRORS,
  C_RX_PACKETS,
  C_TX_BYTES,
  C_TX_DROPPED,
  C_TX_ERRORS,
  C_TX_PACKETS,
  ETH_TYPE_IP,
  IPPROTO_TCP,
  IPPROTO_UDP,
  K_DL_TYPE,
  K_DST_HI,
  K_DST_LO,
  K_IN_PORT,
  K_NW_DST,
  K_NW_PROTO,
  K_NW_SRC,
  K_NW_TOS,
  K_SRC_HI,
  K_SRC_LO,
  K_TP_DST,
  K_TP_SRC,
  K_TUN_ID,
  K_VLAN_TCI,
  K_REG0,
  KEY_WORDS,
  N_REGS,
  PKT_WORDS,
  MAX_FRAME,
  MIN_FRAME,
  OFPP_ALL,
  OFPP_ANY,
  OFPP_CONTROLLER,
  OFPP_FLOOD,
  OFPP_IN_PORT,
  OFPP_LOCAL,
  OFPP_MAX,
  OFPP_NORMAL,
  OFPP_TABLE,
  VLAN_CFI,
} from './consts.js';
import {
  type Action,
  cookieMatches,
  F_ETH_DST,
  F_ETH_SRC,
  F_IP_DSCP,
  F_IPV4_DST,
  F_IPV4_SRC,
  F_SCTP_DST,
  F_SCTP_SRC,
  F_TCP_DST,
  F_TCP_SRC,
  F_TUNNEL_ID,
  F_UDP_DST,
  F_UDP_SRC,
  F_VLAN_PCP,
  F_VLAN_VID,
  FF_CHECK_OVERLAP,
  FF_RESET_COUNTS,
  Flow,
  type FlowSpec,
  FF_SEND_FLOW_REM,
  type Instructions,
  LEARN_F_DELETE_LEARNED,
  LEARN_F_SEND_FLOW_REM,
  LEARN_LOAD,
  LEARN_MATCH,
  LEARN_OUTPUT,
  type FieldRef,
  type LearnSpec,
  outputsTo,
  readRef,
  refMask,
  writeRef,
  overlaps,
  sameMatch,
  subsumedBy,
} from './flow.js';
import { formatFlowStats, isRegister, parseFlow } from './flow-text.js';
import { extractKey, hashKey } from './key.js';
import { MacTable, type MacEntry } from './mac-table.js';
import { type FrameSink, Port, type PortOptions, type PortOwner, VLAN_ACCESS, VLAN_TRUNK } from './port.js';

// Datapath program op codes (operands inline in the Int32Array).
const OP_OUTPUT = 1; // ofport
const OP_IN_PORT = 2;
const OP_NORMAL = 3;
const OP_FLOOD = 4;
const OP_ALL = 5;
const OP_CONTROLLER = 6; // maxLen, tableId, refIndex(flow)
const OP_SET_ETH_SRC = 7; // hi, lo
const OP_SET_ETH_DST = 8; // hi, lo
const OP_PUSH_VLAN = 9; // tpid
const OP_POP_VLAN = 10;
const OP_SET_VLAN_VID = 11; // vid
const OP_SET_VLAN_PCP = 12; // pcp
const OP_SET_NW_SRC = 13; // ip
const OP_SET_NW_DST = 14; // ip
const OP_SET_DSCP = 15; // dscp
const OP_SET_TP_SRC = 16; // port
const OP_SET_TP_DST = 17; // port
const OP_LEARN = 18; // refIndex(spec), reg0..reg7, bitmap of rewritten packet words, their values
const OP_SET_TUN_ID = 19; // id
const OP_TABLE = 20; // PACKET_OUT only: run the frame through the tables
const OP_FIN_TIMEOUT = 21; // refIndex(flow), idle, hard

/** OpenFlow FLOW_MOD commands. */
export const FC_ADD = 0;
export const FC_MODIFY = 1;
export const FC_MODIFY_STRICT = 2;
export const FC_DELETE = 3;
export const FC_DELETE_STRICT = 4;

/** Flow-mod results (0 = ok, else an OFPFMFC_* code + 0x100 * error type). */
export const FM_OK = 0;
export const FM_TABLE_FULL: number = (5 << 8) | 1;
export const FM_BAD_TABLE_ID: number = (5 << 8) | 2;
export const FM_OVERLAP: number = (5 << 8) | 3;
export const FM_BAD_COMMAND: number = (5 << 8) | 6;
export const FM_BAD_GOTO_TABLE: number = (3 << 8) | 2;
/** packetOut results: OFPBRC_BAD_PORT, OFPBRC_BAD_PACKET (type BAD_REQUEST). */
export const PO_BAD_PORT: number = (1 << 8) | 11;
export const PO_BAD_PACKET: number = (1 << 8) | 12;

const HEADROOM = 64;
/** The LOCAL port's number in the MAC table (ofports are below it). */
const LOCAL_MAC_PORT = 0xff00;
const MAX_DEPTH = 4;
const MAX_RESUBMIT_DEPTH = 64;
const MAX_RESUBMITS = 4096;

/** Packet sent to the controller (the `controller` action): an event of the host API. */
export interface PacketIn {
  /** A copy of (up to maxLen bytes of) the frame. */
  data: Uint8Array;
  totalLength: number;
  inPort: number;
  tableId: number;
  cookieHi: number;
  cookieLo: number;
  /** OFPR_ACTION (1). */
  reason: number;
}

export interface MirrorOptions {
  name: string;
  selectAll?: boolean;
  selectSrcPorts?: readonly string[];
  selectDstPorts?: readonly string[];
  selectVlans?: readonly number[];
  /** SPAN: copy to this port (which then leaves normal forwarding). */
  outputPort?: string;
  /** RSPAN: flood copies tagged with this VLAN to the ports that carry it. */
  outputVlan?: number;
}

export class Mirror {
  readonly name: string;
  readonly bit: number;
  readonly outPort: Port | null;
  readonly outVlan: number;
  readonly vlans: Uint8Array | null;
  packets = 0;
  bytes = 0;
  constructor(name: string, bit: number, outPort: Port | null, outVlan: number, vlans: Uint8Array | null) {
    this.name = name;
    this.bit = bit;
    this.outPort = outPort;
    this.outVlan = outVlan;
    this.vlans = vlans;
  }
}

export interface BridgeOptions {
  name?: string;
  /** 64-bit datapath id as 16 hex digits (default derived from the name). */
  datapathId?: string;
  macTableSize?: number;
  macAgingSeconds?: number;
  /** Install `priority=0,actions=NORMAL` in table 0 (default true, as OVS). */
  normalFlow?: boolean;
  /** Starting clock value in ms (advance it with tick()). */
  now?: number;
  /** Disable the EMC and megaflow caches (every packet takes the classifier path). */
  caches?: boolean;
  /** Maximum number of flows over all tables (default 200000). */
  flowLimit?: number;
}

export interface BridgeStats {
  emcHits: number;
  megaflowHits: number;
  misses: number;
  loopDrops: number;
  resubmitLimitDrops: number;
  megaflows: number;
  megaflowMasks: number;
  macEntries: number;
  flows: number;
}

/** Per re-entrancy level working state (a pipe into the same bridge nests one level). */
class Ctx {
  readonly key = new Uint32Array(KEY_WORDS);
  readonly xkey = new Uint32Array(KEY_WORDS);
  readonly wc = new Uint32Array(KEY_WORDS);
  /** The key learn() reads: the packet's fields and the registers of the translation. */
  readonly lkey = new Uint32Array(KEY_WORDS);
  /** Packet words the translation has rewritten so far (1 = learn must see xkey's value, not the packet's). */
  readonly xmod = new Uint8Array(PKT_WORDS);
  readonly scratch = new Uint8Array(HEADROOM + MAX_FRAME + 8);
  readonly scratchT = new Uint8Array(HEADROOM + MAX_FRAME + 8);
  readonly scratchU = new Uint8Array(HEADROOM + MAX_FRAME + 8);
  readonly scratchM = new Uint8Array(HEADROOM + MAX_FRAME + 8);
  /** Scratch program for translations at this level (reused on every miss). */
  readonly prog = new Program();
  inPort: Port | null = null;
  buf: Uint8Array = this.scratch;
  off = 0;
  len = 0;
  writable = false;
  serial = 0;
  mirrored = 0;
  // NORMAL frame forms
  formTOff = -1;
  formTLen = 0;
  formUOff = -1;
  formULen = 0;
  normVlan = 0;
  /** EMC row of this packet whose NORMAL memo the first NORMAL action may use, else -1. */
  memo = -1;
  /** The EMC's write count when `memo` was found: a nested packet (a pipe back into the bridge) may reuse the row. */
  memoWrites = 0;
}

const NULL_SINK: FrameSink = { deliver: () => true };

/** One switch, like an OVS bridge: ports, flow tables, MAC learning. */
export class Bridge implements PortOwner {
  readonly name: string;
  readonly datapathHi: number;
  readonly datapathLo: number;
  readonly macTable: MacTable;
  /** The bridge clock in ms; advance with tick(). */
  now: number;
  /** Called for packets sent to CONTROLLER by a flow. */
  onPacketIn: ((p: PacketIn) => void) | null = null;
  /** Called when a flow expires or is deleted (reason: 0 idle, 1 hard, 2 delete), whatever its flags. */
  onFlowRemoved: ((f: Flow, reason: number) => void) | null = null;
  /** Further flow-removed listeners (OpenFlow sessions), see addFlowRemovedListener(). */
  private removedListeners: ((f: Flow, reason: number) => void)[] = [];
  /** Further packet-in listeners (OpenFlow sessions), see addPacketInListener(). */
  private packetInListeners: ((p: PacketIn) => void)[] = [];
  readonly local: Port;
  private readonly portList: Port[] = [];
  private readonly byOfport: (Port | null)[] = new Array<Port | null>(0xff00).fill(null);
  private readonly byName = new Map<string, Port>();
  readonly tables: (FlowTable | null)[] = new Array<FlowTable | null>(255).fill(null);
  private readonly mirrors: (Mirror | null)[] = [];
  private readonly ctxs: Ctx[] = [];
  private depth = 0;
  private serial = 0;
  private readonly emc = new ExactMatchCache(8192);
  private readonly mega = new MegaflowCache(65536);
  private cachesOn: boolean;
  private flowCount = 0;
  private readonly flowLimit: number;
  private lastSweep: number;
  /** NORMAL memo stamp (see memoStamp()). */
  private stamp = 1;
  private stampGen = -1;
  private stampNow = NaN;
  // translation state
  /** The program being built (the scratch program of the translating context). */
  private tp: Program = new Program();
  private readonly tActionSet: Action[] = [];
  private tResubmits = 0;
  private tPacketOut = false;
  /** The in_port of PACKET_OUTs sent "from the controller" (not a port of the bridge). */
  private readonly controllerPort: Port;
  private readonly bstats = { emcHits: 0, megaflowHits: 0, misses: 0, loopDrops: 0, resubmitLimitDrops: 0 };

  constructor(opts: BridgeOptions = {}) {
    this.name = opts.name ?? 'br0';
    if (opts.datapathId !== undefined) {
      if (!/^[0-9a-f]{16}$/i.test(opts.datapathId)) throw new TypeError('datapathId must be 16 hex digits');
      this.datapathHi = parseInt(opts.datapathId.slice(0, 8), 16) >>> 0;
      this.datapathLo = parseInt(opts.datapathId.slice(8), 16) >>> 0;
    } else {
      let h = 0x811c9dc5;
      for (const ch of this.name) h = Math.imul(h ^ ch.charCodeAt(0), 0x01000193);
      this.datapathHi = 0x0000ffff & h;
      this.datapathLo = Math.imul(h, 0x9e3779b1) >>> 0;
    }
    this.now = opts.now ?? 0;
    this.lastSweep = this.now;
    this.macTable = new MacTable(opts.macTableSize ?? 8192, opts.macAgingSeconds ?? 300);
    this.cachesOn = opts.caches ?? true;
    this.flowLimit = opts.flowLimit ?? 200000;
    for (let i = 0; i < MAX_DEPTH; i++) this.ctxs.push(new Ctx());
    this.local = new Port(this, this.name, OFPP_LOCAL, NULL_SINK, { type: 'internal' }, this.now);
    this.local.up = false;
    this.controllerPort = new Port(this, 'CONTROLLER', OFPP_CONTROLLER, NULL_SINK, { type: 'internal' }, this.now);
    this.portList.push(this.local);
    this.byName.set(this.name, this.local);
    if (opts.normalFlow ?? true) this.addFlow('priority=0,actions=NORMAL');
  }

  // ---------------------------------------------------------------- ports

  /** Adds a port; `sink` receives the frames the switch sends out of it. */
  addPort(name: string, sink: FrameSink, opts: PortOptions = {}): Port {
    if (this.byName.has(name)) throw new Error(`port ${name} already exists on ${this.name}`);
    if (name === '' || name.length > 15) throw new Error(`port name "${name}" must be 1..15 characters`);
    let ofport = opts.ofport ?? 0;
    if (opts.ofport !== undefined) {
      if (!Number.isInteger(ofport) || ofport < 1 || ofport >= 0xff00) throw new RangeError(`ofport ${ofport} out of range 1..65279`);
      if (this.byOfport[ofport] != null) throw new Error(`ofport ${ofport} is in use`);
    } else {
      ofport = 1;
      while (ofport < 0xff00 && this.byOfport[ofport] != null) ofport++;
      if (ofport >= 0xff00) throw new Error('no free ofport');
    }
    const p = new Port(this, name, ofport, sink, opts, this.now);
    this.byOfport[ofport] = p;
    this.byName.set(name, p);
    this.portList.push(p);
    this.invalidate();
    return p;
  }

  /** Attaches a sink to the bridge's internal (LOCAL) port and brings it up. */
  attachLocal(sink: FrameSink): Port {
    this.local.sink = sink;
    this.local.up = true;
    this.invalidate();
    return this.local;
  }

  removePort(name: string): void {
    const p = this.byName.get(name);
    if (p === undefined || p === this.local) throw new Error(`no port ${name} on ${this.name}`);
    this.byName.delete(name);
    this.byOfport[p.ofport] = null;
    this.portList.splice(this.portList.indexOf(p), 1);
    this.macTable.flushPort(p.ofport);
    for (let i = 0; i < this.mirrors.length; i++) {
      const m = this.mirrors[i];
      if (m != null && m.outPort === p) this.removeMirror(m.name);
    }
    this.invalidate();
  }

  port(name: string): Port | undefined {
    return this.byName.get(name);
  }

  portByOfport(ofport: number): Port | undefined {
    if (ofport === OFPP_LOCAL) return this.local;
    return (ofport >= 0 && ofport < 0xff00 ? this.byOfport[ofport] : null) ?? undefined;
  }

  /** All ports, LOCAL first. */
  get ports(): readonly Port[] {
    return this.portList;
  }

  /** Call after changing a port's VLAN settings, up state or flood flag. */
  portChanged(p: Port): void {
    this.macTable.flushPort(p.ofport);
    this.invalidate();
  }

  // ---------------------------------------------------------------- mirrors

  addMirror(o: MirrorOptions): Mirror {
    if (this.mirrors.some((m) => m != null && m.name === o.name)) throw new Error(`mirror ${o.name} exists`);
    let bit = this.mirrors.indexOf(null);
    if (bit < 0) bit = this.mirrors.length;
    if (bit >= 31) throw new Error('at most 31 mirrors per bridge');
    if ((o.outputPort === undefined) === (o.outputVlan === undefined)) throw new Error('a mirror needs exactly one of outputPort / outputVlan');
    const out = o.outputPort !== undefined ? this.byName.get(o.outputPort) : null;
    if (out === undefined) throw new Error(`mirror ${o.name}: no port ${o.outputPort}`);
    if (o.outputVlan !== undefined && !(o.outputVlan >= 1 && o.outputVlan <= 4095)) throw new RangeError('outputVlan out of range 1..4095');
    let vlans: Uint8Array | null = null;
    if (o.selectVlans !== undefined && o.selectVlans.length > 0) {
      vlans = new Uint8Array(4096);
      for (const v of o.selectVlans) vlans[v & 4095] = 1;
    }
    const m = new Mirror(o.name, bit, out, o.outputVlan ?? -1, vlans);
    const pick = (names: readonly string[] | undefined): Port[] =>
      (names ?? []).map((n) => {
        const p = this.byName.get(n);
        if (p === undefined) throw new Error(`mirror ${o.name}: no port ${n}`);
        return p;
      });
    const src = o.selectAll ? this.portList.slice() : pick(o.selectSrcPorts);
    const dst = o.selectAll ? this.portList.slice() : pick(o.selectDstPorts);
    for (const p of src) p.mirrorSrc |= 1 << bit;
    for (const p of dst) p.mirrorDst |= 1 << bit;
    if (out != null) {
      out.mirrorOut = true;
      this.macTable.flushPort(out.ofport);
    }
    this.mirrors[bit] = m;
    this.invalidate();
    return m;
  }

  removeMirror(name: string): void {
    const i = this.mirrors.findIndex((m) => m != null && m.name === name);
    if (i < 0) throw new Error(`no mirror ${name}`);
    const m = this.mirrors[i]!;
    for (const p of this.portList) {
      p.mirrorSrc &= ~(1 << i);
      p.mirrorDst &= ~(1 << i);
    }
    this.mirrors[i] = null;
    if (m.outPort != null) m.outPort.mirrorOut = this.mirrors.some((x) => x != null && x.outPort === m.outPort);
    this.invalidate();
  }

  // ---------------------------------------------------------------- clock

  /** Advances the bridge clock (ms) and expires flows and MAC entries about once a second. */
  tick(now: number): void {
    this.now = now;
    if (now - this.lastSweep < 1000 && now >= this.lastSweep) return;
    this.lastSweep = now;
    this.macTable.expire(now);
    let changed = false;
    for (const t of this.tables) {
      if (t == null || t.count === 0) continue;
      for (const f of t.flows()) {
        let reason = -1;
        if (f.hardTimeout && now - f.created >= f.hardTimeout * 1000) reason = 1;
        else if (f.idleTimeout && now - f.lastUsed >= f.idleTimeout * 1000) reason = 0;
        if (reason >= 0) {
          this.removeFlow(f, reason);
          changed = true;
        }
      }
    }
    if (changed) this.invalidate();
  }

  /** Drops every cached translation (called on flow and port changes). */
  invalidate(): void {
    this.emc.invalidate();
    this.mega.invalidate();
  }

  setCaches(on: boolean): void {
    this.cachesOn = on;
    this.invalidate();
  }

  stats(): BridgeStats {
    return {
      ...this.bstats,
      megaflows: this.mega.count,
      megaflowMasks: this.mega.masks,
      macEntries: this.macTable.size,
      flows: this.flowCount,
    };
  }

  macEntries(): MacEntry[] {
    return this.macTable.entries(this.now);
  }

  // ---------------------------------------------------------------- flows

  private table(id: number): FlowTable {
    let t = this.tables[id];
    if (t == null) {
      t = new FlowTable(id);
      this.tables[id] = t;
    }
    return t;
  }

  private removeFlow(f: Flow, reason: number): void {
    const t = this.tables[f.table];
    if (t == null || f.dead) return;
    t.remove(f);
    f.dead = true;
    this.flowCount--;
    this.onFlowRemoved?.(f, reason);
    const ls = this.removedListeners;
    for (let i = 0; i < ls.length; i++) ls[i](f, reason);
    this.deleteLearned(f.instructions);
  }

  /**
   * learn(...,delete_learned): when the last flow holding such a learn action (same table and
   * cookie) leaves, the flows it learned (that table, that cookie) are deleted too.
   */
  private deleteLearned(ins: Instructions): void {
    const specs = learnSpecs(ins, LEARN_F_DELETE_LEARNED);
    if (specs.length === 0) return;
    for (const sp of specs) {
      let live = false;
      for (const t of this.tables) {
        if (t == null || live) continue;
        for (const g of t.flows()) {
          if (learnSpecs(g.instructions, LEARN_F_DELETE_LEARNED).some((o) => o.table === sp.table && o.cookieHi === sp.cookieHi && o.cookieLo === sp.cookieLo)) {
            live = true;
            break;
          }
        }
      }
      if (live) continue;
      const t = this.tables[sp.table];
      if (t == null) continue;
      for (const g of t.flows()) if (g.cookieHi === sp.cookieHi && g.cookieLo === sp.cookieLo) this.removeFlow(g, 2);
    }
    this.invalidate();
  }

  /**
   * Adds a listener called after a flow leaves its table (reason: 0 idle timeout, 1 hard
   * timeout, 2 delete); returns the function that removes it. OpenFlow sessions use it to
   * send OFPT_FLOW_REMOVED for flows with send_flow_rem.
   */
  /** Adds a listener for `controller` actions (as onPacketIn); returns the function that removes it. */
  addPacketInListener(cb: (p: PacketIn) => void): () => void {
    this.packetInListeners = [...this.packetInListeners, cb];
    return () => {
      this.packetInListeners = this.packetInListeners.filter((x) => x !== cb);
    };
  }

  addFlowRemovedListener(cb: (f: Flow, reason: number) => void): () => void {
    this.removedListeners = [...this.removedListeners, cb];
    return () => {
      this.removedListeners = this.removedListeners.filter((x) => x !== cb);
    };
  }

  private resolvePort = (name: string): number | undefined => this.byName.get(name)?.ofport;

  /** Applies an OpenFlow flow-mod. Returns FM_OK or an FM_* error. */
  flowMod(command: number, spec: FlowSpec): number {
    const ins = spec.instructions;
    if (command <= FC_MODIFY_STRICT && ins.gotoTable >= 0 && ins.gotoTable <= spec.table) return FM_BAD_GOTO_TABLE;
    switch (command) {
      case FC_ADD: {
        if (spec.table > 254) return FM_BAD_TABLE_ID;
        const t = this.table(spec.table);
        if (spec.flags & FF_CHECK_OVERLAP) {
          for (const f of t.flows()) if (f.priority === spec.priority && overlaps(f.value, f.mask, spec.value, spec.mask)) return FM_OVERLAP;
        }
        const old = t.findExact(spec.value, spec.mask, spec.priority);
        if (old == null && this.flowCount >= this.flowLimit) return FM_TABLE_FULL;
        const f = new Flow(spec, this.now);
        if (old != null) {
          t.remove(old);
          old.dead = true;
          this.flowCount--;
        }
        t.insert(f);
        this.flowCount++;
        if (old != null) this.deleteLearned(old.instructions);
        break;
      }
      case FC_MODIFY:
      case FC_MODIFY_STRICT: {
        if (spec.table > 254 && spec.table !== 255) return FM_BAD_TABLE_ID;
        for (const f of this.select(spec, command === FC_MODIFY_STRICT)) {
          const before = f.instructions;
          f.instructions = ins;
          this.deleteLearned(before);
          if (spec.flags & FF_RESET_COUNTS) {
            f.nPackets = 0;
            f.nBytes = 0;
          }
        }
        break;
      }
      case FC_DELETE:
      case FC_DELETE_STRICT:
        for (const f of this.select(spec, command === FC_DELETE_STRICT)) this.removeFlow(f, 2);
        break;
      default:
        return FM_BAD_COMMAND;
    }
    this.invalidate();
    return FM_OK;
  }

  /** Flows selected by a modify/delete/stats request (table 255 = all tables). */
  select(spec: FlowSpec, strict: boolean): Flow[] {
    const out: Flow[] = [];
    for (const t of this.tables) {
      if (t == null || (spec.table !== 255 && t.id !== spec.table)) continue;
      for (const f of t.flows()) {
        if (!cookieMatches(f, spec.cookieHi, spec.cookieLo, spec.cookieMaskHi, spec.cookieMaskLo)) continue;
        if (strict) {
          if (f.priority !== spec.priority || !sameMatch(f.value, f.mask, spec.value, spec.mask)) continue;
        } else if (!subsumedBy(f.value, f.mask, spec.value, spec.mask)) continue;
        if (spec.outPort !== OFPP_ANY && !outputsTo(f.instructions, spec.outPort)) continue;
        out.push(f);
      }
    }
    return out;
  }

  private check(code: number, what: string): void {
    if (code === FM_OK) return;
    const msg: Record<number, string> = {
      [FM_TABLE_FULL]: 'flow table full',
      [FM_BAD_TABLE_ID]: 'bad table id',
      [FM_OVERLAP]: 'overlapping flow exists (check_overlap)',
      [FM_BAD_GOTO_TABLE]: 'goto_table must go to a later table',
    };
    throw new Error(`${what}: ${msg[code] ?? `error ${code}`}`);
  }

  /** `ovs-ofctl add-flow` with a flow in ovs-ofctl syntax. */
  addFlow(text: string): void {
    this.check(this.flowMod(FC_ADD, parseFlow(text, { resolvePort: this.resolvePort })), 'add-flow');
  }

  addFlows(texts: Iterable<string>): void {
    for (const t of texts) if (t.trim() !== '' && !t.trim().startsWith('#')) this.addFlow(t);
  }

  /** `ovs-ofctl mod-flows [--strict]`. */
  modFlows(text: string, strict = false): void {
    const spec = parseFlow(text, { resolvePort: this.resolvePort, mode: 'mod' });
    if (!strict && !/(^|[\s,])table=/.test(text)) spec.table = 255;
    this.check(this.flowMod(strict ? FC_MODIFY_STRICT : FC_MODIFY, spec), 'mod-flows');
  }

  /** `ovs-ofctl del-flows [--strict] [flow]`. */
  delFlows(text = '', strict = false): void {
    const spec = parseFlow(text, { resolvePort: this.resolvePort, mode: 'match' });
    if (!/(^|[\s,])table=/.test(text)) spec.table = 255;
    if (!strict) spec.priority = 32768;
    this.check(this.flowMod(strict ? FC_DELETE_STRICT : FC_DELETE, spec), 'del-flows');
  }

  /** Flows matching a dump-flows filter (all when omitted), sorted by table then priority. */
  flows(filter = ''): Flow[] {
    const spec = parseFlow(filter, { resolvePort: this.resolvePort, mode: 'match' });
    if (!/(^|[\s,])table=/.test(filter)) spec.table = 255;
    return this.select(spec, false);
  }

  /** Lines as `ovs-ofctl -O OpenFlow13 dump-flows` prints them (without its header). */
  dumpFlows(filter = '', showStats = true): string[] {
    return this.flows(filter).map((f) => {
      const age = Math.max(0, this.now - f.created);
      return formatFlowStats(
        {
          ...f,
          durationSec: Math.floor(age / 1000),
          durationNsec: (age % 1000) * 1e6,
          nPackets: f.nPackets,
          nBytes: f.nBytes,
          value: f.value,
          mask: f.mask,
          instructions: f.instructions,
        },
        showStats,
      );
    });
  }

  get flowTotal(): number {
    return this.flowCount;
  }

  // ---------------------------------------------------------------- data path

  /** Ingress of a frame on `port` (called by Port.receive). */
  input(port: Port, buf: Uint8Array, off: number, len: number): void {
    if (this.depth >= MAX_DEPTH) {
      this.bstats.loopDrops++;
      port.counters[C_RX_DROPPED]++;
      return;
    }
    if (len < MIN_FRAME || len > MAX_FRAME || off < 0 || off + len > buf.length) {
      port.counters[C_RX_ERRORS]++;
      return;
    }
    port.counters[C_RX_PACKETS]++;
    port.counters[C_RX_BYTES] += len;
    if (!port.up || port.mirrorOut) {
      port.counters[C_RX_DROPPED]++;
      return;
    }
    this.process(port, buf, off, len);
  }

  /**
   * Executes OpenFlow PACKET_OUT `actions` on a frame (output:TABLE runs it through the tables).
   * `inPort` is an ofport, LOCAL, or CONTROLLER/ANY for a frame that comes from no port.
   * Returns 0, PO_BAD_PORT or PO_BAD_PACKET. The frame is not retained.
   */
  packetOut(inPort: number, actions: readonly Action[], buf: Uint8Array, off: number, len: number): number {
    const port = inPort === OFPP_CONTROLLER || inPort === OFPP_ANY ? this.controllerPort : this.portByOfport(inPort);
    if (port === undefined) return PO_BAD_PORT;
    if (len < MIN_FRAME || len > MAX_FRAME || off < 0 || off + len > buf.length) return PO_BAD_PACKET;
    if (this.depth >= MAX_DEPTH) {
      this.bstats.loopDrops++;
      return FM_OK;
    }
    const ctx = this.ctxs[this.depth++];
    try {
      this.begin(ctx, port, buf, off, len);
      ctx.xkey.set(ctx.key);
      ctx.wc.fill(0);
      ctx.xmod.fill(0);
      this.resetTranslation(ctx);
      this.tPacketOut = true;
      const actionSet = this.tActionSet;
      actionSet.length = 0;
      for (const a of actions) this.emit(ctx, a, 0, 0, actionSet);
      this.tPacketOut = false;
      this.execute(ctx.prog, ctx);
    } finally {
      this.tPacketOut = false;
      this.depth--;
    }
    return FM_OK;
  }

  private begin(ctx: Ctx, port: Port, buf: Uint8Array, off: number, len: number): void {
    ctx.inPort = port;
    ctx.buf = buf;
    ctx.off = off;
    ctx.len = len;
    ctx.writable = false;
    ctx.serial = ++this.serial;
    ctx.mirrored = 0;
    ctx.memo = -1;
    extractKey(buf, off, len, port.ofport, port.tunId, ctx.key);
  }

  /** The pipeline for a frame received on `port` (caches, then the tables). */
  private process(port: Port, buf: Uint8Array, off: number, len: number): void {
    if (this.depth >= MAX_DEPTH) {
      this.bstats.loopDrops++;
      port.counters[C_RX_DROPPED]++;
      return;
    }
    const ctx = this.ctxs[this.depth++];
    try {
      this.begin(ctx, port, buf, off, len);
      const key = ctx.key;
      if (port.mirrorSrc !== 0) this.mirrorIngress(ctx, port);
      let prog: Program | null = null;
      if (this.cachesOn) {
        const h = hashKey(key, PKT_WORDS);
        const emc = this.emc;
        let slot = emc.lookupRow(key, h);
        if (slot >= 0) {
          prog = emc.program(slot);
          this.bstats.emcHits++;
        } else {
          prog = this.mega.lookup(key);
          if (prog != null) this.bstats.megaflowHits++;
          else {
            this.bstats.misses++;
            prog = this.translate(ctx).compact();
            this.mega.insert(key, ctx.wc, prog);
          }
          slot = emc.insert(key, h, prog);
        }
        ctx.memo = slot;
        ctx.memoWrites = emc.writes;
      } else {
        this.bstats.misses++;
        prog = this.translate(ctx);
      }
      this.execute(prog, ctx);
    } finally {
      this.depth--;
    }
  }

  // Translation: runs the OpenFlow tables on a copy of the key and emits a program.
  private translate(ctx: Ctx): Program {
    ctx.xkey.set(ctx.key);
    ctx.wc.fill(0);
    ctx.xmod.fill(0);
    this.resetTranslation(ctx);
    const actionSet = this.tActionSet;
    if (actionSet.length !== 0) actionSet.length = 0;
    this.runTable(ctx, 0, 0, actionSet);
    if (actionSet.length > 0) {
      // Action-set order: pop, push, set_field, output.
      const order = (a: Action): number => (a.t === 'pop_vlan' ? 0 : a.t === 'push_vlan' ? 1 : a.t === 'set_field' ? 2 : 3);
      actionSet.sort((a, b) => order(a) - order(b));
      for (const a of actionSet) this.emit(ctx, a, 0, 0, actionSet);
    }
    return ctx.prog;
  }

  private resetTranslation(ctx: Ctx): void {
    this.tp = ctx.prog;
    this.tp.reset();
    this.tResubmits = 0;
  }

  private runTable(ctx: Ctx, tableId: number, depth: number, actionSet: Action[]): void {
    const t = this.tables[tableId];
    const f = t == null ? null : t.lookup(ctx.xkey, ctx.wc);
    this.tp.table(tableId, f != null);
    if (f == null) return;
    this.tp.flow(f);
    const ins = f.instructions;
    const apply = ins.apply;
    for (let i = 0; i < apply.length; i++) {
      const a = apply[i];
      if (a.t === 'output') this.emitOutput(a.port, a.maxLen, tableId, f);
      else this.emit(ctx, a, tableId, depth, actionSet, f);
    }
    if (ins.clear) actionSet.length = 0;
    if (ins.write != null) {
      for (const a of ins.write) {
        let i: number;
        if (a.t === 'set_field') i = actionSet.findIndex((b) => b.t === 'set_field' && b.field === a.field);
        else i = actionSet.findIndex((b) => b.t === a.t);
        if (i >= 0) actionSet[i] = a;
        else actionSet.push(a);
      }
    }
    if (ins.gotoTable > tableId) this.runTable(ctx, ins.gotoTable, depth, actionSet);
  }

  private emit(ctx: Ctx, a: Action, tableId: number, depth: number, actionSet: Action[], flow: Flow | null = null): void {
    const tp = this.tp;
    const x = ctx.xkey;
    const xm = ctx.xmod;
    switch (a.t) {
      case 'output':
        this.emitOutput(a.port, a.maxLen, tableId, flow);
        return;
      case 'push_vlan':
        tp.op2(OP_PUSH_VLAN, a.tpid);
        xm[K_VLAN_TCI] = 1; x[K_VLAN_TCI] = (x[K_VLAN_TCI] | VLAN_CFI) >>> 0;
        return;
      case 'pop_vlan':
        tp.op1(OP_POP_VLAN);
        xm[K_VLAN_TCI] = 1; x[K_VLAN_TCI] = 0;
        return;
      case 'set_field':
        switch (a.field) {
          case F_ETH_SRC: tp.op3(OP_SET_ETH_SRC, a.hi, a.lo | 0); xm[K_SRC_HI] = 1; x[K_SRC_HI] = a.hi; xm[K_SRC_LO] = 1; x[K_SRC_LO] = a.lo; return;
          case F_ETH_DST: tp.op3(OP_SET_ETH_DST, a.hi, a.lo | 0); xm[K_DST_HI] = 1; x[K_DST_HI] = a.hi; xm[K_DST_LO] = 1; x[K_DST_LO] = a.lo; return;
          case F_VLAN_VID:
            if (x[K_VLAN_TCI] & VLAN_CFI) {
              tp.op2(OP_SET_VLAN_VID, a.lo & 0xfff);
              xm[K_VLAN_TCI] = 1; x[K_VLAN_TCI] = ((x[K_VLAN_TCI] & 0xf000) | (a.lo & 0xfff)) >>> 0;
            }
            return;
          case F_VLAN_PCP:
            if (x[K_VLAN_TCI] & VLAN_CFI) {
              tp.op2(OP_SET_VLAN_PCP, a.lo & 7);
              xm[K_VLAN_TCI] = 1; x[K_VLAN_TCI] = ((x[K_VLAN_TCI] & 0x1fff) | ((a.lo & 7) << 13)) >>> 0;
            }
            return;
          case F_IPV4_SRC: if (x[K_DL_TYPE] === ETH_TYPE_IP) { tp.op2(OP_SET_NW_SRC, a.lo | 0); xm[K_NW_SRC] = 1; x[K_NW_SRC] = a.lo; } return;
          case F_IPV4_DST: if (x[K_DL_TYPE] === ETH_TYPE_IP) { tp.op2(OP_SET_NW_DST, a.lo | 0); xm[K_NW_DST] = 1; x[K_NW_DST] = a.lo; } return;
          case F_IP_DSCP: if (x[K_DL_TYPE] === ETH_TYPE_IP) { tp.op2(OP_SET_DSCP, a.lo & 63); xm[K_NW_TOS] = 1; x[K_NW_TOS] = ((x[K_NW_TOS] & 3) | ((a.lo & 63) << 2)) >>> 0; } return;
          case F_TCP_SRC: case F_UDP_SRC: case F_SCTP_SRC:
            if (x[K_DL_TYPE] === ETH_TYPE_IP && x[K_NW_PROTO] === (a.field === F_TCP_SRC ? IPPROTO_TCP : a.field === F_UDP_SRC ? IPPROTO_UDP : 132)) { tp.op2(OP_SET_TP_SRC, a.lo & 0xffff); xm[K_TP_SRC] = 1; x[K_TP_SRC] = a.lo & 0xffff; }
            return;
          case F_TCP_DST: case F_UDP_DST: case F_SCTP_DST:
            if (x[K_DL_TYPE] === ETH_TYPE_IP && x[K_NW_PROTO] === (a.field === F_TCP_DST ? IPPROTO_TCP : a.field === F_UDP_DST ? IPPROTO_UDP : 132)) { tp.op2(OP_SET_TP_DST, a.lo & 0xffff); xm[K_TP_DST] = 1; x[K_TP_DST] = a.lo & 0xffff; }
            return;
          case F_TUNNEL_ID: tp.op2(OP_SET_TUN_ID, a.lo | 0); xm[K_TUN_ID] = 1; x[K_TUN_ID] = a.lo; return;
        }
        return;
      case 'resubmit': {
        if (depth + 1 >= MAX_RESUBMIT_DEPTH || ++this.tResubmits > MAX_RESUBMITS) {
          this.bstats.resubmitLimitDrops++;
          return;
        }
        const savedIn = x[K_IN_PORT];
        const savedMod = xm[K_IN_PORT];
        if (a.port !== OFPP_IN_PORT) {
          x[K_IN_PORT] = a.port;
          xm[K_IN_PORT] = 1;
        }
        this.runTable(ctx, a.table === 255 ? tableId : a.table, depth + 1, actionSet);
        x[K_IN_PORT] = savedIn;
        xm[K_IN_PORT] = savedMod;
        return;
      }
      case 'learn': {
        // learn sees the packet as rewritten so far: the registers, then a bitmap of the rewritten
        // packet words and their values (constants of this translation).
        tp.op2(OP_LEARN, tp.ref(a.spec));
        for (let i = 0; i < N_REGS; i++) tp.op1(x[K_REG0 + i] | 0);
        let bits = 0;
        for (let w = 0; w < PKT_WORDS; w++) {
          if (xm[w] === 0) continue;
          bits |= 1 << w;
          // A partly rewritten word (VID but not PCP) still carries packet bits: key the megaflow on it.
          ctx.wc[w] = 0xffffffff;
        }
        tp.op1(bits);
        for (let w = 0; w < PKT_WORDS; w++) if (xm[w] !== 0) tp.op1(x[w] | 0);
        return;
      }
      case 'load':
        writeRef(x, a.dst, a.value);
        return;
      case 'move': {
        // The register now depends on the source bits: the megaflow must match them.
        if (!isRegister(a.src)) ctx.wc[a.src.word] = (ctx.wc[a.src.word] | refMask(a.src)) >>> 0;
        writeRef(x, a.dst, readRef(x, a.src));
        return;
      }
      case 'output_reg': {
        let port = readRef(x, a.src);
        if (a.src.nBits <= 16 && port >= 0xff00) port = (0xffff0000 | port) >>> 0;
        this.emitOutput(port, a.maxLen, tableId, flow);
        return;
      }
      case 'fin_timeout':
        if (flow != null) tp.op4(OP_FIN_TIMEOUT, tp.ref(flow), a.idle, a.hard);
        return;
    }
  }

  private emitOutput(p: number, maxLen: number, tableId: number, flow: Flow | null): void {
    const tp = this.tp;
    if (p === OFPP_NORMAL) tp.op1(OP_NORMAL);
    else if (p === OFPP_FLOOD) tp.op1(OP_FLOOD);
    else if (p === OFPP_ALL) tp.op1(OP_ALL);
    else if (p === OFPP_IN_PORT) tp.op1(OP_IN_PORT);
    else if (p === OFPP_CONTROLLER) tp.op4(OP_CONTROLLER, maxLen, tableId, tp.ref(flow));
    else if (p === OFPP_LOCAL || (p > 0 && p < OFPP_MAX)) tp.op2(OP_OUTPUT, p | 0);
    // TABLE and ANY are not valid flow outputs: ignored.
    else if (p === OFPP_TABLE && this.tPacketOut) tp.op1(OP_TABLE);
  }

  // Execution of a program on the packet in ctx.
  private execute(prog: Program, ctx: Ctx): void {
    const len = ctx.len;
    const now = this.now;
    const flows = prog.flows;
    for (let i = 0; i < prog.nFlows; i++) {
      const f = flows[i];
      f.nPackets++;
      f.nBytes += len;
      f.lastUsed = now;
    }
    const tables = prog.tables;
    for (let i = 0; i < prog.nTables; i++) {
      const t = this.tables[tables[i]];
      if (t != null) {
        t.lookups++;
        t.matched += prog.matched[i];
      }
    }
    const ops = prog.ops;
    const nOps = prog.nOps;
    const inPort = ctx.inPort!;
    let pc = 0;
    while (pc < nOps) {
      switch (ops[pc]) {
        case OP_OUTPUT: {
          const ofp = ops[pc + 1] >>> 0;
          pc += 2;
          if (ofp === inPort.ofport) break;
          const p = ofp === OFPP_LOCAL ? this.local : ofp < 0xff00 ? this.byOfport[ofp] : null;
          if (p != null) this.sendTo(ctx, p, ctx.buf, ctx.off, ctx.len);
          break;
        }
        case OP_IN_PORT:
          pc++;
          this.sendTo(ctx, inPort, ctx.buf, ctx.off, ctx.len);
          break;
        case OP_NORMAL:
          pc++;
          this.normal(ctx);
          break;
        case OP_TABLE:
          pc++;
          this.process(inPort, ctx.buf, ctx.off, ctx.len);
          break;
        case OP_FLOOD:
        case OP_ALL: {
          const flood = ops[pc] === OP_FLOOD;
          pc++;
          const ports = this.portList;
          for (let i = 0; i < ports.length; i++) {
            const p = ports[i];
            if (p === inPort || p.mirrorOut || (flood && p.noFlood)) continue;
            this.sendTo(ctx, p, ctx.buf, ctx.off, ctx.len);
          }
          break;
        }
        case OP_CONTROLLER: {
          const maxLen = ops[pc + 1];
          const tableId = ops[pc + 2];
          const flow = prog.refs[ops[pc + 3]] as Flow | null;
          pc += 4;
          const cb = this.onPacketIn;
          const ls = this.packetInListeners;
          if (cb != null || ls.length > 0) {
            const n = Math.min(ctx.len, maxLen === 0xffff ? ctx.len : maxLen);
            const ev: PacketIn = {
              data: ctx.buf.slice(ctx.off, ctx.off + n),
              totalLength: ctx.len,
              inPort: inPort.ofport,
              tableId,
              cookieHi: flow?.cookieHi ?? 0xffffffff,
              cookieLo: flow?.cookieLo ?? 0xffffffff,
              reason: 1,
            };
            cb?.(ev);
            for (let i = 0; i < ls.length; i++) ls[i](ev);
          }
          break;
        }
        case OP_SET_ETH_SRC:
        case OP_SET_ETH_DST: {
          const at = ops[pc] === OP_SET_ETH_SRC ? 6 : 0;
          this.writable(ctx);
          const b = ctx.buf;
          const o = ctx.off + at;
          const hi = ops[pc + 1];
          const lo = ops[pc + 2];
          b[o] = hi >> 8;
          b[o + 1] = hi;
          b[o + 2] = lo >>> 24;
          b[o + 3] = lo >>> 16;
          b[o + 4] = lo >>> 8;
          b[o + 5] = lo;
          pc += 3;
          break;
        }
        case OP_PUSH_VLAN: {
          const tpid = ops[pc + 1];
          pc += 2;
          this.writable(ctx);
          if (ctx.off < 4 || ctx.len + 4 > MAX_FRAME) break;
          const b = ctx.buf;
          const o = ctx.off;
          const tagged = this.isTagged(b, o, ctx.len);
          const tci = tagged ? (b[o + 14] << 8) | b[o + 15] : 0;
          b.copyWithin(o - 4, o, o + 12);
          ctx.off -= 4;
          ctx.len += 4;
          b[o + 8] = tpid >> 8;
          b[o + 9] = tpid;
          b[o + 10] = tci >> 8;
          b[o + 11] = tci;
          break;
        }
        case OP_POP_VLAN: {
          pc++;
          if (!this.isTagged(ctx.buf, ctx.off, ctx.len)) break;
          this.writable(ctx);
          const b = ctx.buf;
          const o = ctx.off;
          b.copyWithin(o + 4, o, o + 12);
          ctx.off += 4;
          ctx.len -= 4;
          break;
        }
        case OP_SET_VLAN_VID:
        case OP_SET_VLAN_PCP: {
          const v = ops[pc + 1];
          const isVid = ops[pc] === OP_SET_VLAN_VID;
          pc += 2;
          if (!this.isTagged(ctx.buf, ctx.off, ctx.len)) break;
          this.writable(ctx);
          const b = ctx.buf;
          const o = ctx.off + 14;
          let tci = (b[o] << 8) | b[o + 1];
          tci = isVid ? (tci & 0xf000) | v : (tci & 0x1fff) | (v << 13);
          b[o] = tci >> 8;
          b[o + 1] = tci;
          break;
        }
        case OP_SET_NW_SRC:
        case OP_SET_NW_DST:
        case OP_SET_DSCP:
        case OP_SET_TP_SRC:
        case OP_SET_TP_DST:
          this.writable(ctx);
          setL3L4(ctx.buf, ctx.off, ctx.len, ops[pc], ops[pc + 1]);
          pc += 2;
          break;
        case OP_SET_TUN_ID:
          ctx.key[K_TUN_ID] = ops[pc + 1] >>> 0;
          pc += 2;
          break;
        case OP_LEARN: {
          const lkey = ctx.lkey;
          lkey.set(ctx.key);
          for (let i = 0; i < N_REGS; i++) lkey[K_REG0 + i] = ops[pc + 2 + i] >>> 0;
          const bits = ops[pc + 2 + N_REGS];
          let q = pc + 3 + N_REGS;
          for (let w = 0; w < PKT_WORDS; w++) if ((bits >>> w) & 1) lkey[w] = ops[q++] >>> 0;
          this.learn(prog.refs[ops[pc + 1]] as LearnSpec, lkey);
          pc = q;
          break;
        }
        case OP_FIN_TIMEOUT:
          if (tcpFinOrRst(ctx.buf, ctx.off, ctx.len)) {
            const f = prog.refs[ops[pc + 1]] as Flow;
            const idle = ops[pc + 2];
            const hard = ops[pc + 3];
            if (idle !== 0 && (f.idleTimeout === 0 || f.idleTimeout > idle)) f.idleTimeout = idle;
            if (hard !== 0 && (f.hardTimeout === 0 || f.hardTimeout > hard)) f.hardTimeout = hard;
          }
          pc += 4;
          break;
        default:
          return;
      }
    }
  }

  private isTagged(b: Uint8Array, o: number, len: number): boolean {
    if (len < 18) return false;
    const t = (b[o + 12] << 8) | b[o + 13];
    return t === 0x8100 || t === 0x88a8;
  }

  /** Moves the current frame into the context's scratch buffer before a modification. */
  private writable(ctx: Ctx): void {
    if (ctx.writable) return;
    const dst = ctx.scratch;
    const src = ctx.buf;
    const n = ctx.len;
    const o = ctx.off;
    if (n <= 128) for (let i = 0; i < n; i++) dst[HEADROOM + i] = src[o + i];
    else dst.set(src.subarray(o, o + n), HEADROOM);
    ctx.buf = dst;
    ctx.off = HEADROOM;
    ctx.writable = true;
  }

  private readonly learnValue = new Uint32Array(KEY_WORDS);
  private readonly learnMask = new Uint32Array(KEY_WORDS);

  /** Executes learn(): builds the flow its specs describe from `key` and adds (or refreshes) it. */
  private learn(spec: LearnSpec, key: Uint32Array): void {
    const value = this.learnValue.fill(0);
    const mask = this.learnMask.fill(0);
    const apply: Action[] = [];
    if (spec.finIdleTimeout !== 0 || spec.finHardTimeout !== 0) apply.push({ t: 'fin_timeout', idle: spec.finIdleTimeout, hard: spec.finHardTimeout });
    for (const f of spec.specs) {
      let hi = f.immHi;
      let lo = f.immLo;
      if (f.src != null) {
        if (f.src.width === 48) {
          hi = key[f.src.word - 1];
          lo = key[f.src.word];
        } else {
          hi = 0;
          lo = readRef(key, f.src);
        }
      }
      if (f.kind === LEARN_OUTPUT) {
        const port = f.nBits <= 16 && lo >= 0xff00 ? (0xffff0000 | lo) >>> 0 : lo;
        apply.push({ t: 'output', port, maxLen: 0 });
        continue;
      }
      const d = f.dst!;
      if (f.kind === LEARN_MATCH) {
        if (d.width === 48) {
          value[d.word - 1] = hi & 0xffff;
          mask[d.word - 1] = 0xffff;
          value[d.word] = lo;
          mask[d.word] = 0xffffffff;
        } else if (d.word === K_IN_PORT && d.nBits === 16) {
          value[K_IN_PORT] = lo >= 0xff00 ? (0xffff0000 | lo) >>> 0 : lo;
          mask[K_IN_PORT] = 0xffffffff;
        } else {
          writeRef(value, d, lo);
          mask[d.word] = (mask[d.word] | refMask(d)) >>> 0;
        }
      } else if (f.kind === LEARN_LOAD) apply.push(learnedLoad(d, hi, lo));
    }
    const t = this.table(spec.table);
    const old = t.findExact(value, mask, spec.priority);
    if (old != null && sameActions(old.instructions.apply, apply)) {
      old.created = this.now;
      old.lastUsed = this.now;
      return;
    }
    this.flowMod(FC_ADD, {
      table: spec.table,
      priority: spec.priority,
      cookieHi: spec.cookieHi,
      cookieLo: spec.cookieLo,
      cookieMaskHi: 0,
      cookieMaskLo: 0,
      idleTimeout: spec.idleTimeout,
      hardTimeout: spec.hardTimeout,
      flags: spec.flags & LEARN_F_SEND_FLOW_REM ? FF_SEND_FLOW_REM : 0,
      importance: 0,
      value,
      mask,
      instructions: { apply, clear: false, write: null, gotoTable: -1 },
      outPort: OFPP_ANY,
    });
  }

  private sendTo(ctx: Ctx, p: Port, buf: Uint8Array, off: number, len: number): void {
    if (!p.up) return;
    if (p.mirrorDst !== 0) this.mirrorEgress(ctx, p, buf, off, len);
    this.deliver(p, buf, off, len);
  }

  private deliver(p: Port, buf: Uint8Array, off: number, len: number): void {
    let ok: boolean;
    try {
      ok = p.sink.deliver(buf, off, len);
    } catch {
      p.counters[C_TX_ERRORS]++;
      return;
    }
    if (ok) {
      p.counters[C_TX_PACKETS]++;
      p.counters[C_TX_BYTES] += len;
    } else p.counters[C_TX_DROPPED]++;
  }

  // ---------------------------------------------------------------- NORMAL

  private normal(ctx: Ctx): void {
    const inPort = ctx.inPort!;
    const b = ctx.buf;
    const o = ctx.off;
    const tagged = this.isTagged(b, o, ctx.len);
    const vid = tagged ? ((b[o + 14] << 8) | b[o + 15]) & 0xfff : 0;
    let vlan: number;
    switch (inPort.vlanMode) {
      case VLAN_ACCESS:
        if (tagged && vid !== 0) {
          inPort.counters[C_RX_DROPPED]++;
          return;
        }
        vlan = inPort.tag;
        break;
      case VLAN_TRUNK:
        vlan = vid;
        if (!inPort.carries(vlan)) {
          inPort.counters[C_RX_DROPPED]++;
          return;
        }
        break;
      default:
        vlan = !tagged || vid === 0 ? inPort.tag : vid;
        if (!inPort.carries(vlan)) {
          inPort.counters[C_RX_DROPPED]++;
          return;
        }
    }
    ctx.normVlan = vlan;
    ctx.formTOff = -1;
    ctx.formUOff = -1;
    if (tagged && vid === vlan) {
      ctx.formTOff = o;
      ctx.formTLen = ctx.len;
    } else if (!tagged) {
      ctx.formUOff = o;
      ctx.formULen = ctx.len;
    }
    // Addresses: from the flow key when the frame is unmodified (no re-parsing), else the bytes.
    let srcHi: number, srcLo: number, dstHi: number, dstLo: number;
    if (!ctx.writable) {
      const key = ctx.key;
      srcHi = key[K_SRC_HI];
      srcLo = key[K_SRC_LO];
      dstHi = key[K_DST_HI];
      dstLo = key[K_DST_LO];
    } else {
      srcHi = (b[o + 6] << 8) | b[o + 7];
      srcLo = ((b[o + 8] << 24) | (b[o + 9] << 16) | (b[o + 10] << 8) | b[o + 11]) >>> 0;
      dstHi = (b[o] << 8) | b[o + 1];
      dstLo = ((b[o + 2] << 24) | (b[o + 3] << 16) | (b[o + 4] << 8) | b[o + 5]) >>> 0;
    }
    const mt = this.macTable;
    const now = this.now;
    // The EMC slot's memo: same packet key, same MAC table generation and clock, so learning
    // would change nothing and the lookup would give the same answer.
    const memo = ctx.memo === -1 || ctx.memoWrites !== this.emc.writes ? -1 : ctx.memo;
    ctx.memo = -1;
    const rows = this.emc.rows;
    if (memo >= 0 && !ctx.writable) {
      const m = rows[memo + EMC_MEMO];
      if (m >>> 16 === this.memoStamp()) {
        const out = m & 0xffff;
        this.normalForward(ctx, inPort, vlan, out === 0xffff ? -1 : out);
        return;
      }
    }
    if ((srcHi & 0x0100) === 0 && inPort !== this.controllerPort) {
      // Skip the table when this port already learned this MAC at this clock value.
      if (inPort.lrnLo !== srcLo || inPort.lrnHi !== srcHi || inPort.lrnVlan !== vlan || inPort.lrnNow !== now || inPort.lrnGen !== mt.generation) {
        mt.learn(srcHi, srcLo, vlan, inPort === this.local ? LOCAL_MAC_PORT : inPort.ofport, now);
        inPort.lrnHi = srcHi;
        inPort.lrnLo = srcLo;
        inPort.lrnVlan = vlan;
        inPort.lrnNow = now;
        inPort.lrnGen = mt.generation;
      }
    }
    let ofp = -1;
    if ((dstHi & 0x0100) === 0) {
      if (inPort.dstLo === dstLo && inPort.dstHi === dstHi && inPort.dstVlan === vlan && inPort.dstNow === now && inPort.dstGen === mt.generation) ofp = inPort.dstOut;
      else {
        ofp = mt.lookup(dstHi, dstLo, vlan, now);
        inPort.dstHi = dstHi;
        inPort.dstLo = dstLo;
        inPort.dstVlan = vlan;
        inPort.dstNow = now;
        inPort.dstGen = mt.generation;
        inPort.dstOut = ofp;
      }
    }
    if (memo >= 0 && !ctx.writable) {
      rows[memo + EMC_MEMO] = ((this.memoStamp() << 16) | (ofp & 0xffff)) >>> 0;
    }
    this.normalForward(ctx, inPort, vlan, ofp);
  }

  /**
   * A 16-bit number that changes whenever the MAC table generation or the clock does: a NORMAL
   * memo made under the current stamp is still the answer NORMAL would compute (0 is never a
   * stamp; when the counter wraps the EMC is invalidated, so no old stamp can come back).
   */
  private memoStamp(): number {
    const g = this.macTable.generation;
    if (g !== this.stampGen || this.now !== this.stampNow) {
      this.stampGen = g;
      this.stampNow = this.now;
      this.stamp = (this.stamp + 1) & 0xffff;
      if (this.stamp === 0) {
        this.stamp = 1;
        this.emc.invalidate();
      }
    }
    return this.stamp;
  }

  /** NORMAL's output: to the learned port `ofp`, or flooded on the VLAN when ofp < 0. */
  private normalForward(ctx: Ctx, inPort: Port, vlan: number, ofp: number): void {
    if (ofp >= 0) {
      const out = ofp === LOCAL_MAC_PORT ? this.local : this.byOfport[ofp];
      if (out == null || out === inPort || out.mirrorOut || !out.carries(vlan)) return;
      this.normalOut(ctx, out, vlan);
      return;
    }
    const ports = this.portList;
    for (let i = 0; i < ports.length; i++) {
      const p = ports[i];
      if (p === inPort || p.noFlood || p.mirrorOut || !p.up || !p.carries(vlan)) continue;
      this.normalOut(ctx, p, vlan);
    }
  }

  /** Sends the NORMAL frame to `p` tagged or untagged as the port's VLAN mode wants. */
  private normalOut(ctx: Ctx, p: Port, vlan: number): void {
    if (p.egressTagged(vlan)) {
      if (ctx.formTOff < 0) this.makeTagged(ctx, vlan);
      this.sendTo(ctx, p, ctx.formTOff === -2 ? ctx.scratchT : ctx.buf, ctx.formTOff === -2 ? HEADROOM : ctx.formTOff, ctx.formTLen);
    } else {
      if (ctx.formUOff < 0) this.makeUntagged(ctx);
      this.sendTo(ctx, p, ctx.formUOff === -2 ? ctx.scratchU : ctx.buf, ctx.formUOff === -2 ? HEADROOM : ctx.formUOff, ctx.formULen);
    }
  }

  // Forms are built in scratchT/scratchU; formXOff === -2 means "in the scratch buffer".
  private makeTagged(ctx: Ctx, vlan: number): void {
    const b = ctx.buf;
    const o = ctx.off;
    const d = ctx.scratchT;
    const tagged = this.isTagged(b, o, ctx.len);
    let n: number;
    if (tagged) {
      d.set(b.subarray(o, o + ctx.len), HEADROOM);
      const tci = (((b[o + 14] << 8) | b[o + 15]) & 0xf000) | vlan;
      d[HEADROOM + 14] = tci >> 8;
      d[HEADROOM + 15] = tci;
      n = ctx.len;
    } else {
      for (let i = 0; i < 12; i++) d[HEADROOM + i] = b[o + i];
      d[HEADROOM + 12] = 0x81;
      d[HEADROOM + 13] = 0x00;
      d[HEADROOM + 14] = vlan >> 8;
      d[HEADROOM + 15] = vlan;
      d.set(b.subarray(o + 12, o + ctx.len), HEADROOM + 16);
      n = ctx.len + 4;
    }
    ctx.formTOff = -2;
    ctx.formTLen = n;
  }

  private makeUntagged(ctx: Ctx): void {
    const b = ctx.buf;
    const o = ctx.off;
    const d = ctx.scratchU;
    for (let i = 0; i < 12; i++) d[HEADROOM + i] = b[o + i];
    d.set(b.subarray(o + 16, o + ctx.len), HEADROOM + 12);
    ctx.formUOff = -2;
    ctx.formULen = ctx.len - 4;
  }

  // ---------------------------------------------------------------- mirrors

  private frameVlan(port: Port, b: Uint8Array, o: number, len: number): number {
    if (this.isTagged(b, o, len)) {
      const vid = ((b[o + 14] << 8) | b[o + 15]) & 0xfff;
      if (vid !== 0 || port.vlanMode === VLAN_TRUNK) return vid;
    }
    return port.vlanMode === VLAN_TRUNK ? 0 : port.tag;
  }

  private mirrorIngress(ctx: Ctx, port: Port): void {
    const vlan = this.frameVlan(port, ctx.buf, ctx.off, ctx.len);
    for (let bits = port.mirrorSrc; bits !== 0; bits &= bits - 1) {
      const m = this.mirrors[31 - Math.clz32(bits & -bits)];
      if (m != null && (m.vlans == null || m.vlans[vlan] === 1)) this.mirrorOut(ctx, m, vlan, ctx.buf, ctx.off, ctx.len);
    }
  }

  private mirrorEgress(ctx: Ctx, port: Port, b: Uint8Array, o: number, len: number): void {
    const vlan = this.frameVlan(ctx.inPort!, b, o, len);
    for (let bits = port.mirrorDst; bits !== 0; bits &= bits - 1) {
      const m = this.mirrors[31 - Math.clz32(bits & -bits)];
      if (m != null && (m.vlans == null || m.vlans[vlan] === 1)) this.mirrorOut(ctx, m, vlan, b, o, len);
    }
  }

  private mirrorOut(ctx: Ctx, m: Mirror, _vlan: number, b: Uint8Array, o: number, len: number): void {
    const bit = 1 << m.bit;
    if ((ctx.mirrored & bit) !== 0) return;
    ctx.mirrored |= bit;
    m.packets++;
    m.bytes += len;
    if (m.outPort != null) {
      const p = m.outPort;
      if (p === ctx.inPort || p.mirrorSerial === ctx.serial || !p.up) return;
      p.mirrorSerial = ctx.serial;
      this.deliver(p, b, o, len);
      return;
    }
    // RSPAN: tag with the output VLAN and send to every port carrying it, tagged.
    const d = ctx.scratchM;
    let n: number;
    if (this.isTagged(b, o, len)) {
      d.set(b.subarray(o, o + len), HEADROOM);
      const tci = (((b[o + 14] << 8) | b[o + 15]) & 0xf000) | m.outVlan;
      d[HEADROOM + 14] = tci >> 8;
      d[HEADROOM + 15] = tci;
      n = len;
    } else {
      for (let i = 0; i < 12; i++) d[HEADROOM + i] = b[o + i];
      d[HEADROOM + 12] = 0x81;
      d[HEADROOM + 13] = 0;
      d[HEADROOM + 14] = m.outVlan >> 8;
      d[HEADROOM + 15] = m.outVlan;
      d.set(b.subarray(o + 12, o + len), HEADROOM + 16);
      n = len + 4;
    }
    for (const p of this.portList) {
      if (p === ctx.inPort || !p.up || p.mirrorOut || p.mirrorSerial === ctx.serial || !p.carries(m.outVlan) || !p.egressTagged(m.outVlan)) continue;
      p.mirrorSerial = ctx.serial;
      this.deliver(p, d, HEADROOM, n);
    }
  }

  /** Mirrors by name (for status output). */
  mirrorList(): Mirror[] {
    return this.mirrors.filter((m): m is Mirror => m != null);
  }
}

/** Rewrites an IPv4 address, DSCP or L4 port in place with incremental checksum updates. */
function setL3L4(b: Uint8Array, off: number, len: number, op: number, v: number): void {
  let l3 = off + 14;
  let type = (b[off + 12] << 8) | b[off + 13];
  if ((type === 0x8100 || type === 0x88a8) && len >= 18) {
    type = (b[off + 16] << 8) | b[off + 17];
    l3 = off + 18;
  }
  if (type !== ETH_TYPE_IP || l3 + 20 > off + len) return;
  const ihl = (b[l3] & 15) << 2;
  if (ihl < 20 || l3 + ihl > off + len) return;
  const proto = b[l3 + 9];
  const l4 = l3 + ihl;
  const frag = ((b[l3 + 6] & 0x1f) << 8) | b[l3 + 7];
  const l4ok = frag === 0 && l4 + 8 <= off + len;
  const csumAt = proto === IPPROTO_TCP ? l4 + 16 : proto === IPPROTO_UDP ? l4 + 6 : -1;
  const l4csum = l4ok && csumAt >= 0 && csumAt + 2 <= off + len && !(proto === IPPROTO_UDP && b[csumAt] === 0 && b[csumAt + 1] === 0);
  if (op === OP_SET_NW_SRC || op === OP_SET_NW_DST) {
    const at = l3 + (op === OP_SET_NW_SRC ? 12 : 16);
    for (let i = 0; i < 4; i += 2) {
      const oldW = (b[at + i] << 8) | b[at + i + 1];
      const newW = (v >>> (16 - i * 8)) & 0xffff;
      csumUpdate(b, l3 + 10, oldW, newW);
      if (l4csum) csumUpdate(b, csumAt, oldW, newW);
      b[at + i] = newW >> 8;
      b[at + i + 1] = newW;
    }
  } else if (op === OP_SET_DSCP) {
    const oldW = (b[l3] << 8) | b[l3 + 1];
    const tos = (b[l3 + 1] & 3) | (v << 2);
    const newW = (b[l3] << 8) | tos;
    csumUpdate(b, l3 + 10, oldW, newW);
    b[l3 + 1] = tos;
  } else if (l4ok) {
    const at = l4 + (op === OP_SET_TP_SRC ? 0 : 2);
    const oldW = (b[at] << 8) | b[at + 1];
    if (l4csum) csumUpdate(b, csumAt, oldW, v);
    b[at] = v >> 8;
    b[at + 1] = v;
  }
}

/** RFC 1624 incremental update of the 16-bit checksum at b[at] for a word change. */
function csumUpdate(b: Uint8Array, at: number, oldW: number, newW: number): void {
  let sum = (~((b[at] << 8) | b[at + 1]) & 0xffff) + (~oldW & 0xffff) + newW;
  sum = (sum & 0xffff) + (sum >>> 16);
  sum = (sum & 0xffff) + (sum >>> 16);
  const c = ~sum & 0xffff;
  b[at] = c >> 8;
  b[at + 1] = c;
}

/** The learn specs with flag `flag` among a flow's actions. */
function learnSpecs(ins: Instructions, flag: number): LearnSpec[] {
  const out: LearnSpec[] = [];
  for (const a of ins.apply) if (a.t === 'learn' && (a.spec.flags & flag) !== 0) out.push(a.spec);
  if (ins.write != null) for (const a of ins.write) if (a.t === 'learn' && (a.spec.flags & flag) !== 0) out.push(a.spec);
  return out;
}

/** The action a learn() load spec puts in the learned flow (registers: load; packet fields: set_field). */
function learnedLoad(d: FieldRef, hi: number, lo: number): Action {
  if (isRegister(d)) return { t: 'load', dst: d, value: lo, sf: false };
  switch (d.name) {
    case 'NXM_OF_ETH_SRC': return { t: 'set_field', field: F_ETH_SRC, hi: hi & 0xffff, lo };
    case 'NXM_OF_ETH_DST': return { t: 'set_field', field: F_ETH_DST, hi: hi & 0xffff, lo };
    case 'NXM_OF_IP_SRC': return { t: 'set_field', field: F_IPV4_SRC, hi: 0, lo };
    case 'NXM_OF_IP_DST': return { t: 'set_field', field: F_IPV4_DST, hi: 0, lo };
    case 'NXM_OF_IP_TOS': return { t: 'set_field', field: F_IP_DSCP, hi: 0, lo: (lo >> 2) & 63 };
    case 'NXM_OF_TCP_SRC': return { t: 'set_field', field: F_TCP_SRC, hi: 0, lo };
    case 'NXM_OF_TCP_DST': return { t: 'set_field', field: F_TCP_DST, hi: 0, lo };
    case 'NXM_OF_UDP_SRC': return { t: 'set_field', field: F_UDP_SRC, hi: 0, lo };
    case 'NXM_OF_UDP_DST': return { t: 'set_field', field: F_UDP_DST, hi: 0, lo };
    case 'NXM_NX_TUN_ID': return { t: 'set_field', field: F_TUNNEL_ID, hi: 0, lo };
    default: // NXM_OF_VLAN_TCI[0..11] or [13..15] (checked when the learn action was parsed)
      return d.ofs === 0 ? { t: 'set_field', field: F_VLAN_VID, hi: 0, lo: (lo & 0xfff) | VLAN_CFI } : { t: 'set_field', field: F_VLAN_PCP, hi: 0, lo: lo & 7 };
  }
}

function sameActions(a: readonly Action[], b: readonly Action[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (JSON.stringify(a[i]) !== JSON.stringify(b[i])) return false;
  return true;
}

/** True when the frame is IPv4/TCP (optionally VLAN-tagged) with FIN or RST set. */
function tcpFinOrRst(b: Uint8Array, off: number, len: number): boolean {
  let l3 = off + 14;
  let type = (b[off + 12] << 8) | b[off + 13];
  if ((type === 0x8100 || type === 0x88a8) && len >= 18) {
    type = (b[off + 16] << 8) | b[off + 17];
    l3 = off + 18;
  }
  if (type !== ETH_TYPE_IP || l3 + 20 > off + len || b[l3 + 9] !== IPPROTO_TCP) return false;
  if ((((b[l3 + 6] & 0x1f) << 8) | b[l3 + 7]) !== 0) return false;
  const l4 = l3 + ((b[l3] & 15) << 2);
  if (l4 + 14 > off + len) return false;
  return (b[l4 + 13] & 0x05) !== 0;
}
