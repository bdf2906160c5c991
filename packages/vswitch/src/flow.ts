// Flow entries: match (value/mask over the flow key), instructions and actions, counters.
import { KEY_WORDS } from './consts.js';

/** set_field targets (numbers are the OXM OpenFlow-basic field codes). */
export const F_IN_PORT = 0;
export const F_ETH_DST = 3;
export const F_ETH_SRC = 4;
export const F_ETH_TYPE = 5;
export const F_VLAN_VID = 6;
export const F_VLAN_PCP = 7;
export const F_IP_DSCP = 8;
export const F_IP_ECN = 9;
export const F_IP_PROTO = 10;
export const F_IPV4_SRC = 11;
export const F_IPV4_DST = 12;
export const F_TCP_SRC = 13;
export const F_TCP_DST = 14;
export const F_UDP_SRC = 15;
export const F_UDP_DST = 16;
export const F_SCTP_SRC = 17;
export const F_SCTP_DST = 18;
export const F_ICMPV4_TYPE = 19;
export const F_ICMPV4_CODE = 20;
export const F_ARP_OP = 21;
export const F_ARP_SPA = 22;
export const F_ARP_TPA = 23;
export const F_TUNNEL_ID = 38;

/** A reference to bits [ofs, ofs+nBits) of a key field (learn, load, move, output:field). */
export interface FieldRef {
  /** NXM name (e.g. NXM_OF_ETH_SRC, NXM_NX_REG0). */
  name: string;
  /** Key word (low word for 48-bit MAC fields). */
  word: number;
  /** Total width of the field in bits. */
  width: number;
  ofs: number;
  nBits: number;
}

/** learn() flow_mod_spec kinds (NX_LEARN_DST_*). */
export const LEARN_MATCH = 0;
export const LEARN_LOAD = 1;
export const LEARN_OUTPUT = 2;
/** learn() flags (NX_LEARN_F_*). */
export const LEARN_F_SEND_FLOW_REM = 1;
export const LEARN_F_DELETE_LEARNED = 2;

/**
 * One flow_mod_spec of learn(): the learned flow matches `dst` against (or loads into `dst`, or
 * outputs to the port in) the `src` field of the learning packet, or the immediate value
 * immHi:immLo when `src` is null.
 */
export interface LearnFieldSpec {
  kind: number;
  nBits: number;
  src: FieldRef | null;
  immHi: number;
  immLo: number;
  /** null for LEARN_OUTPUT. */
  dst: FieldRef | null;
}

export interface LearnSpec {
  table: number;
  priority: number;
  idleTimeout: number;
  hardTimeout: number;
  finIdleTimeout: number;
  finHardTimeout: number;
  /** LEARN_F_* bits. */
  flags: number;
  cookieHi: number;
  cookieLo: number;
  /** In the order written (printing and the learned flow's actions keep it). */
  specs: LearnFieldSpec[];
}

export type Action =
  | { t: 'output'; port: number; maxLen: number }
  | { t: 'push_vlan'; tpid: number }
  | { t: 'pop_vlan' }
  | { t: 'set_field'; field: number; hi: number; lo: number }
  | { t: 'resubmit'; port: number; table: number }
  | { t: 'learn'; spec: LearnSpec }
  /** Loads a value into register bits (NXAST_REG_LOAD, or OFPAT_SET_FIELD when `sf`). */
  | { t: 'load'; dst: FieldRef; value: number; sf: boolean }
  /** Copies bits of a field into register bits (NXAST_REG_MOVE). */
  | { t: 'move'; src: FieldRef; dst: FieldRef }
  /** Outputs to the port number held in a field (NXAST_OUTPUT_REG). */
  | { t: 'output_reg'; src: FieldRef; maxLen: number }
  /** On a TCP FIN or RST, lowers the flow's timeouts (NXAST_FIN_TIMEOUT). */
  | { t: 'fin_timeout'; idle: number; hard: number };

/** Mask of the bits a FieldRef (of at most 32 bits) covers in its key word. */
export function refMask(r: FieldRef): number {
  return r.nBits >= 32 ? 0xffffffff : (((1 << r.nBits) - 1) << r.ofs) >>> 0;
}

/** Bits of a field (at most 32 of them) as a number. */
export function readRef(key: Uint32Array, r: FieldRef): number {
  return r.nBits >= 32 ? key[r.word] : (key[r.word] >>> r.ofs) & ((1 << r.nBits) - 1);
}

/** Writes `v` into the bits of a field (at most 32 of them). */
export function writeRef(key: Uint32Array, r: FieldRef, v: number): void {
  const m = refMask(r);
  key[r.word] = ((key[r.word] & ~m) | ((v << r.ofs) & m)) >>> 0;
}

/** OpenFlow instructions of one flow. */
export interface Instructions {
  apply: Action[];
  clear: boolean;
  write: Action[] | null;
  /** -1 when absent. */
  gotoTable: number;
}

export const FF_SEND_FLOW_REM = 1;
export const FF_CHECK_OVERLAP = 2;
export const FF_RESET_COUNTS = 4;
export const FF_NO_PKT_COUNTS = 8;
export const FF_NO_BYT_COUNTS = 16;

/** The parts of a flow needed to add, modify or delete it (text or OpenFlow). */
export interface FlowSpec {
  table: number;
  priority: number;
  cookieHi: number;
  cookieLo: number;
  cookieMaskHi: number;
  cookieMaskLo: number;
  idleTimeout: number;
  hardTimeout: number;
  flags: number;
  importance: number;
  value: Uint32Array;
  mask: Uint32Array;
  instructions: Instructions;
  /** Only for delete/modify: 0xffffffff = any. */
  outPort: number;
}

export function emptySpec(): FlowSpec {
  return {
    table: 0,
    priority: 32768,
    cookieHi: 0,
    cookieLo: 0,
    cookieMaskHi: 0,
    cookieMaskLo: 0,
    idleTimeout: 0,
    hardTimeout: 0,
    flags: 0,
    importance: 0,
    value: new Uint32Array(KEY_WORDS),
    mask: new Uint32Array(KEY_WORDS),
    instructions: { apply: [], clear: false, write: null, gotoTable: -1 },
    outPort: 0xffffffff,
  };
}

/** A flow installed in a table. */
export class Flow {
  table: number;
  priority: number;
  cookieHi: number;
  cookieLo: number;
  idleTimeout: number;
  hardTimeout: number;
  flags: number;
  importance: number;
  readonly value: Uint32Array;
  readonly mask: Uint32Array;
  instructions: Instructions;
  nPackets = 0;
  nBytes = 0;
  /** Milliseconds (bridge clock). */
  created: number;
  lastUsed: number;
  /** Set when the flow left its table. */
  dead = false;
  /** Classifier chain link. */
  next: Flow | null = null;

  constructor(spec: FlowSpec, now: number) {
    this.table = spec.table;
    this.priority = spec.priority;
    this.cookieHi = spec.cookieHi;
    this.cookieLo = spec.cookieLo;
    this.idleTimeout = spec.idleTimeout;
    this.hardTimeout = spec.hardTimeout;
    this.flags = spec.flags;
    this.importance = spec.importance;
    this.mask = spec.mask.slice();
    this.value = spec.value.slice();
    for (let i = 0; i < KEY_WORDS; i++) this.value[i] = (this.value[i] & this.mask[i]) >>> 0;
    this.instructions = spec.instructions;
    this.created = now;
    this.lastUsed = now;
  }
}

/** True when both matches are identical (same mask, same masked value). */
export function sameMatch(av: Uint32Array, am: Uint32Array, bv: Uint32Array, bm: Uint32Array): boolean {
  for (let i = 0; i < KEY_WORDS; i++) {
    if (am[i] !== bm[i]) return false;
    if (((av[i] & am[i]) >>> 0) !== ((bv[i] & bm[i]) >>> 0)) return false;
  }
  return true;
}

/** True when every packet matching flow (fv, fm) also matches the request (rv, rm). */
export function subsumedBy(fv: Uint32Array, fm: Uint32Array, rv: Uint32Array, rm: Uint32Array): boolean {
  for (let i = 0; i < KEY_WORDS; i++) {
    if (((fm[i] & rm[i]) >>> 0) !== rm[i]) return false;
    if (((fv[i] & rm[i]) >>> 0) !== ((rv[i] & rm[i]) >>> 0)) return false;
  }
  return true;
}

/** True when some packet can match both. */
export function overlaps(av: Uint32Array, am: Uint32Array, bv: Uint32Array, bm: Uint32Array): boolean {
  for (let i = 0; i < KEY_WORDS; i++) {
    const m = am[i] & bm[i];
    if (((av[i] & m) >>> 0) !== ((bv[i] & m) >>> 0)) return false;
  }
  return true;
}

export function cookieMatches(f: Flow, hi: number, lo: number, mhi: number, mlo: number): boolean {
  return ((f.cookieHi & mhi) >>> 0) === ((hi & mhi) >>> 0) && ((f.cookieLo & mlo) >>> 0) === ((lo & mlo) >>> 0);
}

/** True when the flow has an output action to `port` (for out_port filters). */
export function outputsTo(ins: Instructions, port: number): boolean {
  if (port === 0xffffffff) return true;
  for (const a of ins.apply) if (a.t === 'output' && a.port === port) return true;
  if (ins.write) for (const a of ins.write) if (a.t === 'output' && a.port === port) return true;
  return false;
}
