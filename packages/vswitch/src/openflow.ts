// OpenFlow 1.3 server side (isomorphic): message framing, version negotiation, FLOW_MOD,
// BARRIER, ECHO, FEATURES, GET_CONFIG, PORT_MOD, PACKET_OUT (not yet: ERROR), MULTIPART
// (DESC, FLOW, AGGREGATE, TABLE, PORT_STATS, PORT_DESC, TABLE_FEATURES), and ERROR replies
// for everything else. Transport-agnostic: feed bytes with receive(), get bytes via `send`.
import type { Bridge, PacketIn } from './bridge.js';
import { FC_DELETE_STRICT, FM_OK, PO_BAD_PORT } from './bridge.js';
import {
  C_RX_BYTES,
  C_RX_DROPPED,
  C_RX_ERRORS,
  C_RX_PACKETS,
  C_TX_BYTES,
  C_TX_DROPPED,
  C_TX_ERRORS,
  C_TX_PACKETS,
  ETH_TYPE_ARP,
  ETH_TYPE_RARP,
  IPPROTO_ICMP,
  IPPROTO_SCTP,
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
  N_REGS,
  OFPP_ANY,
  OFPP_LOCAL,
  OFPP_MAX,
} from './consts.js';
import type { Action, FieldRef, Flow, FlowSpec, Instructions, LearnSpec } from './flow.js';
import {
  emptySpec,
  FF_SEND_FLOW_REM,
  LEARN_F_DELETE_LEARNED,
  LEARN_F_SEND_FLOW_REM,
  LEARN_LOAD,
  LEARN_OUTPUT,
  F_ARP_OP,
  F_ARP_SPA,
  F_ARP_TPA,
  F_ETH_DST,
  F_ETH_SRC,
  F_ETH_TYPE,
  F_ICMPV4_CODE,
  F_ICMPV4_TYPE,
  F_IN_PORT,
  F_IP_DSCP,
  F_IP_ECN,
  F_IP_PROTO,
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
} from './flow.js';
import { checkLearnLoadDst, checkPrerequisites, FlowSyntaxError, isRegister, makeFieldRef, NXM_FIELDS, nxmNameOf } from './flow-text.js';
import type { Port } from './port.js';

export const OFP13_VERSION = 4;

// Message types.
const T_HELLO = 0;
const T_ERROR = 1;
const T_ECHO_REQUEST = 2;
const T_ECHO_REPLY = 3;
const T_EXPERIMENTER = 4;
const T_FEATURES_REQUEST = 5;
const T_FEATURES_REPLY = 6;
const T_GET_CONFIG_REQUEST = 7;
const T_GET_CONFIG_REPLY = 8;
const T_SET_CONFIG = 9;
const T_PACKET_IN = 10;
const T_FLOW_REMOVED = 11;
const T_PACKET_OUT = 13;
const T_FLOW_MOD = 14;
const T_PORT_MOD = 16;
const T_TABLE_MOD = 17;
const T_MULTIPART_REQUEST = 18;
const T_MULTIPART_REPLY = 19;
const T_BARRIER_REQUEST = 20;
const T_BARRIER_REPLY = 21;
const T_ROLE_REQUEST = 24;
const T_ROLE_REPLY = 25;
const T_GET_ASYNC_REQUEST = 26;
const T_GET_ASYNC_REPLY = 27;
const T_SET_ASYNC = 28;

/** Controller roles (ofp_controller_role). */
const ROLE_NOCHANGE = 0;
const ROLE_SLAVE = 3;

// Multipart types.
const MP_DESC = 0;
const MP_FLOW = 1;
const MP_AGGREGATE = 2;
const MP_TABLE = 3;
const MP_PORT_STATS = 4;
const MP_TABLE_FEATURES = 12;
const MP_PORT_DESC = 13;

// Error types and codes (OpenFlow 1.3).
export const ET_HELLO_FAILED = 0;
export const ET_BAD_REQUEST = 1;
export const ET_BAD_ACTION = 2;
export const ET_BAD_INSTRUCTION = 3;
export const ET_BAD_MATCH = 4;
export const ET_PORT_MOD_FAILED = 7;
export const ET_ROLE_REQUEST_FAILED = 11;
const RRFC_BAD_ROLE = 2;
const BRC_BAD_VERSION = 0;
const BRC_BAD_TYPE = 1;
const BRC_BAD_MULTIPART = 2;
const BRC_BAD_EXPERIMENTER = 3;
const BRC_EPERM = 5;
const BRC_BAD_LEN = 6;
const BRC_BUFFER_UNKNOWN = 8;
const BRC_BAD_TABLE_ID = 9;
const BRC_IS_SLAVE = 10;
const BRC_BAD_PORT = 11;
const BRC_BAD_PACKET = 12;
const BAC_BAD_TYPE = 0;
const BAC_BAD_LEN = 1;
const BAC_BAD_EXPERIMENTER = 2;
const BAC_BAD_EXP_TYPE = 3;
const BAC_BAD_OUT_PORT = 4;
const BAC_BAD_ARGUMENT = 5;
const BAC_BAD_SET_TYPE = 13;
const BAC_BAD_SET_LEN = 14;
const BAC_BAD_SET_ARGUMENT = 15;
const BIC_UNKNOWN_INST = 0;
const BIC_UNSUP_INST = 1;
const BIC_BAD_LEN = 7;
const BMC_BAD_TYPE = 0;
const BMC_BAD_LEN = 1;
const BMC_BAD_FIELD = 6;
const BMC_BAD_VALUE = 7;
const BMC_BAD_PREREQ = 9;
const BMC_DUP_FIELD = 10;
const PMFC_BAD_PORT = 0;

const NX_VENDOR = 0x2320;
const NXAST_RESUBMIT = 1;
const NXAST_RESUBMIT_TABLE = 14;
const NXAST_LEARN = 16;
/** nx_action_learn: 32 bytes of header, then flow_mod_spec elements padded with zeros to 8 bytes. */
const NX_LEARN_HEADER = 32;
const NX_LEARN_SRC_IMMEDIATE = 1 << 13;
const NX_LEARN_DST_MASK = 3 << 11;
const NXAST_REG_MOVE = 6;
const NXAST_REG_LOAD = 7;
const NXAST_OUTPUT_REG = 15;
const NXAST_FIN_TIMEOUT = 19;

/** An OpenFlow error to report to the peer. */
export class OfError extends Error {
  readonly type: number;
  readonly code: number;
  constructor(type: number, code: number, msg = `OpenFlow error type ${type} code ${code}`) {
    super(msg);
    this.type = type;
    this.code = code;
  }
}

/** Growable big-endian writer (control path only). */
class Writer {
  buf: Uint8Array = new Uint8Array(256);
  dv: DataView = new DataView(this.buf.buffer);
  len = 0;
  private ensure(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.len + n) size *= 2;
    const nb = new Uint8Array(size);
    nb.set(this.buf.subarray(0, this.len));
    this.buf = nb;
    this.dv = new DataView(nb.buffer);
  }
  u8(v: number): void {
    this.ensure(1);
    this.buf[this.len++] = v & 255;
  }
  u16(v: number): void {
    this.ensure(2);
    this.dv.setUint16(this.len, v & 0xffff);
    this.len += 2;
  }
  u32(v: number): void {
    this.ensure(4);
    this.dv.setUint32(this.len, v >>> 0);
    this.len += 4;
  }
  u64(hi: number, lo: number): void {
    this.u32(hi);
    this.u32(lo);
  }
  num64(v: number): void {
    this.u32(Math.floor(v / 4294967296));
    this.u32(v >>> 0);
  }
  zeros(n: number): void {
    this.ensure(n);
    this.buf.fill(0, this.len, this.len + n);
    this.len += n;
  }
  bytes(b: Uint8Array): void {
    this.ensure(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
  }
  str(s: string, n: number): void {
    const b = new Uint8Array(n);
    for (let i = 0; i < s.length && i < n - 1; i++) b[i] = s.charCodeAt(i) & 0x7f;
    this.bytes(b);
  }
  pad8(from: number): void {
    const n = (8 - ((this.len - from) % 8)) % 8;
    this.zeros(n);
  }
  setU16(at: number, v: number): void {
    this.dv.setUint16(at, v);
  }
  result(): Uint8Array {
    return this.buf.slice(0, this.len);
  }
}

function header(w: Writer, type: number, xid: number): number {
  const at = w.len;
  w.u8(OFP13_VERSION);
  w.u8(type);
  w.u16(0);
  w.u32(xid);
  return at;
}

function finish(w: Writer, at: number): void {
  w.setU16(at + 2, w.len - at);
}

// ------------------------------------------------------------------ match

interface OxmDef {
  bytes: number;
  maskable: boolean;
}
const OXM: Record<number, OxmDef> = {
  [F_IN_PORT]: { bytes: 4, maskable: false },
  [F_ETH_DST]: { bytes: 6, maskable: true },
  [F_ETH_SRC]: { bytes: 6, maskable: true },
  [F_ETH_TYPE]: { bytes: 2, maskable: false },
  [F_VLAN_VID]: { bytes: 2, maskable: true },
  [F_VLAN_PCP]: { bytes: 1, maskable: false },
  [F_IP_DSCP]: { bytes: 1, maskable: false },
  [F_IP_ECN]: { bytes: 1, maskable: false },
  [F_IP_PROTO]: { bytes: 1, maskable: false },
  [F_IPV4_SRC]: { bytes: 4, maskable: true },
  [F_IPV4_DST]: { bytes: 4, maskable: true },
  [F_TCP_SRC]: { bytes: 2, maskable: true },
  [F_TCP_DST]: { bytes: 2, maskable: true },
  [F_UDP_SRC]: { bytes: 2, maskable: true },
  [F_UDP_DST]: { bytes: 2, maskable: true },
  [F_SCTP_SRC]: { bytes: 2, maskable: true },
  [F_SCTP_DST]: { bytes: 2, maskable: true },
  [F_ICMPV4_TYPE]: { bytes: 1, maskable: false },
  [F_ICMPV4_CODE]: { bytes: 1, maskable: false },
  [F_ARP_OP]: { bytes: 2, maskable: false },
  [F_ARP_SPA]: { bytes: 4, maskable: true },
  [F_ARP_TPA]: { bytes: 4, maskable: true },
  [F_TUNNEL_ID]: { bytes: 8, maskable: true },
};

function readN(b: Uint8Array, at: number, n: number): number {
  let v = 0;
  for (let i = 0; i < n; i++) v = v * 256 + b[at + i];
  return v;
}

function setW(value: Uint32Array, mask: Uint32Array, word: number, v: number, m: number): void {
  value[word] = ((value[word] & ~m) | (v & m)) >>> 0;
  mask[word] = (mask[word] | m) >>> 0;
}

/** Decodes an ofp_match (OXM) at `at`; returns the padded length consumed. */
export function decodeMatch(b: Uint8Array, at: number, end: number, value: Uint32Array, mask: Uint32Array): number {
  if (at + 4 > end) throw new OfError(ET_BAD_MATCH, BMC_BAD_LEN);
  const type = (b[at] << 8) | b[at + 1];
  const len = (b[at + 2] << 8) | b[at + 3];
  if (type !== 1) throw new OfError(ET_BAD_MATCH, BMC_BAD_TYPE);
  const padded = (len + 7) & ~7;
  if (len < 4 || at + padded > end) throw new OfError(ET_BAD_MATCH, BMC_BAD_LEN);
  let p = at + 4;
  const mend = at + len;
  const seen = new Set<number>();
  while (p < mend) {
    if (p + 4 > mend) throw new OfError(ET_BAD_MATCH, BMC_BAD_LEN);
    const cls = (b[p] << 8) | b[p + 1];
    const field = b[p + 2] >> 1;
    const hasMask = (b[p + 2] & 1) === 1;
    const flen = b[p + 3];
    p += 4;
    if (p + flen > mend) throw new OfError(ET_BAD_MATCH, BMC_BAD_LEN);
    if (cls === 0x0001 && field < N_REGS) {
      // Nicira registers (NXM_NX_REG0..7), maskable, 32 bits.
      if (flen !== (hasMask ? 8 : 4)) throw new OfError(ET_BAD_MATCH, BMC_BAD_LEN);
      if (seen.has(0x100 + field)) throw new OfError(ET_BAD_MATCH, BMC_DUP_FIELD);
      seen.add(0x100 + field);
      const v = readN(b, p, 4);
      const mk = hasMask ? readN(b, p + 4, 4) : 0xffffffff;
      if ((v & ~mk) !== 0) throw new OfError(ET_BAD_MATCH, 8); // BAD_WILDCARDS
      setW(value, mask, K_REG0 + field, v, mk);
      p += flen;
      continue;
    }
    if (cls !== 0x8000) throw new OfError(ET_BAD_MATCH, BMC_BAD_FIELD);
    const def = OXM[field];
    if (def === undefined) throw new OfError(ET_BAD_MATCH, BMC_BAD_FIELD);
    if (flen !== def.bytes * (hasMask ? 2 : 1) || (hasMask && !def.maskable)) throw new OfError(ET_BAD_MATCH, BMC_BAD_LEN);
    if (seen.has(field)) throw new OfError(ET_BAD_MATCH, BMC_DUP_FIELD);
    seen.add(field);
    const n = def.bytes;
    const m = p + n;
    const full = n >= 4 ? 0xffffffff : 2 ** (8 * n) - 1;
    switch (field) {
      case F_ETH_DST:
      case F_ETH_SRC: {
        const hiW = field === F_ETH_DST ? K_DST_HI : K_SRC_HI;
        const loW = field === F_ETH_DST ? K_DST_LO : K_SRC_LO;
        setW(value, mask, hiW, readN(b, p, 2), hasMask ? readN(b, m, 2) : 0xffff);
        setW(value, mask, loW, readN(b, p + 2, 4), hasMask ? readN(b, m + 2, 4) : 0xffffffff);
        break;
      }
      case F_TUNNEL_ID: {
        const hi = readN(b, p, 4);
        const mhi = hasMask ? readN(b, m, 4) : 0xffffffff;
        if ((hi & mhi) !== 0) throw new OfError(ET_BAD_MATCH, BMC_BAD_VALUE, 'tunnel ids above 32 bits are not supported');
        setW(value, mask, K_TUN_ID, readN(b, p + 4, 4), hasMask ? readN(b, m + 4, 4) : 0xffffffff);
        break;
      }
      default: {
        const v = readN(b, p, n);
        const mk = hasMask ? readN(b, m, n) : full;
        switch (field) {
          case F_IN_PORT: setW(value, mask, K_IN_PORT, v, 0xffffffff); break;
          case F_ETH_TYPE: setW(value, mask, K_DL_TYPE, v, 0xffff); break;
          case F_VLAN_VID:
            if (v > 0x1fff) throw new OfError(ET_BAD_MATCH, BMC_BAD_VALUE);
            setW(value, mask, K_VLAN_TCI, v, hasMask ? mk & 0x1fff : 0x1fff);
            break;
          case F_VLAN_PCP:
            if (v > 7) throw new OfError(ET_BAD_MATCH, BMC_BAD_VALUE);
            setW(value, mask, K_VLAN_TCI, v << 13, 0xe000);
            break;
          case F_IP_DSCP:
            if (v > 63) throw new OfError(ET_BAD_MATCH, BMC_BAD_VALUE);
            setW(value, mask, K_NW_TOS, v << 2, 0xfc);
            break;
          case F_IP_ECN:
            if (v > 3) throw new OfError(ET_BAD_MATCH, BMC_BAD_VALUE);
            setW(value, mask, K_NW_TOS, v, 0x03);
            break;
          case F_IP_PROTO: setW(value, mask, K_NW_PROTO, v, 0xff); break;
          case F_ARP_OP:
            if (v > 255) throw new OfError(ET_BAD_MATCH, BMC_BAD_VALUE);
            setW(value, mask, K_NW_PROTO, v, 0xff);
            break;
          case F_IPV4_SRC: case F_ARP_SPA: setW(value, mask, K_NW_SRC, v, mk); break;
          case F_IPV4_DST: case F_ARP_TPA: setW(value, mask, K_NW_DST, v, mk); break;
          case F_TCP_SRC: case F_UDP_SRC: case F_SCTP_SRC: case F_ICMPV4_TYPE: setW(value, mask, K_TP_SRC, v, mk); break;
          case F_TCP_DST: case F_UDP_DST: case F_SCTP_DST: case F_ICMPV4_CODE: setW(value, mask, K_TP_DST, v, mk); break;
        }
      }
    }
    p += flen;
  }
  // OXM prerequisites (OpenFlow 1.3 section 7.2.3.6), checked as a whole.
  const proto = mask[K_NW_PROTO] ? value[K_NW_PROTO] : -1;
  const needProto = (f: number, pr: number): void => {
    if (seen.has(f) && proto !== pr) throw new OfError(ET_BAD_MATCH, BMC_BAD_PREREQ);
  };
  needProto(F_TCP_SRC, IPPROTO_TCP);
  needProto(F_TCP_DST, IPPROTO_TCP);
  needProto(F_UDP_SRC, IPPROTO_UDP);
  needProto(F_UDP_DST, IPPROTO_UDP);
  needProto(F_SCTP_SRC, IPPROTO_SCTP);
  needProto(F_SCTP_DST, IPPROTO_SCTP);
  needProto(F_ICMPV4_TYPE, IPPROTO_ICMP);
  needProto(F_ICMPV4_CODE, IPPROTO_ICMP);
  const isArp = mask[K_DL_TYPE] !== 0 && (value[K_DL_TYPE] === ETH_TYPE_ARP || value[K_DL_TYPE] === ETH_TYPE_RARP);
  if ((seen.has(F_ARP_OP) || seen.has(F_ARP_SPA) || seen.has(F_ARP_TPA)) && !isArp) throw new OfError(ET_BAD_MATCH, BMC_BAD_PREREQ);
  if ((seen.has(F_IPV4_SRC) || seen.has(F_IPV4_DST) || seen.has(F_IP_PROTO) || seen.has(F_IP_DSCP) || seen.has(F_IP_ECN)) && isArp) throw new OfError(ET_BAD_MATCH, BMC_BAD_PREREQ);
  if (seen.has(F_VLAN_PCP) && !((value[K_VLAN_TCI] & mask[K_VLAN_TCI] & 0x1000) !== 0)) throw new OfError(ET_BAD_MATCH, BMC_BAD_PREREQ);
  try {
    checkPrerequisites(value, mask);
  } catch {
    throw new OfError(ET_BAD_MATCH, BMC_BAD_PREREQ);
  }
  return padded;
}

function oxm(w: Writer, field: number, n: number, v: number, m: number | null): void {
  w.u16(0x8000);
  w.u8((field << 1) | (m != null ? 1 : 0));
  w.u8(m != null ? n * 2 : n);
  const put = (x: number): void => {
    for (let i = n - 1; i >= 0; i--) w.u8(Math.floor(x / 2 ** (8 * i)) & 255);
  };
  put(v);
  if (m != null) put(m);
}

function encodeMatch(w: Writer, value: Uint32Array, mask: Uint32Array): void {
  const start = w.len;
  w.u16(1);
  w.u16(0);
  if (mask[K_IN_PORT]) oxm(w, F_IN_PORT, 4, value[K_IN_PORT], null);
  const mac = (field: number, hiW: number, loW: number): void => {
    if (!mask[hiW] && !mask[loW]) return;
    const exact = mask[hiW] === 0xffff && mask[loW] === 0xffffffff;
    w.u16(0x8000);
    w.u8((field << 1) | (exact ? 0 : 1));
    w.u8(exact ? 6 : 12);
    w.u16(value[hiW]);
    w.u32(value[loW]);
    if (!exact) {
      w.u16(mask[hiW]);
      w.u32(mask[loW]);
    }
  };
  mac(F_ETH_DST, K_DST_HI, K_DST_LO);
  mac(F_ETH_SRC, K_SRC_HI, K_SRC_LO);
  if (mask[K_DL_TYPE]) oxm(w, F_ETH_TYPE, 2, value[K_DL_TYPE], null);
  const tm = mask[K_VLAN_TCI];
  if (tm & 0x1fff) oxm(w, F_VLAN_VID, 2, value[K_VLAN_TCI] & 0x1fff, (tm & 0x1fff) === 0x1fff ? null : tm & 0x1fff);
  if ((tm & 0xe000) === 0xe000) oxm(w, F_VLAN_PCP, 1, value[K_VLAN_TCI] >>> 13, null);
  const isArp = mask[K_DL_TYPE] !== 0 && (value[K_DL_TYPE] === ETH_TYPE_ARP || value[K_DL_TYPE] === ETH_TYPE_RARP);
  if (mask[K_NW_TOS] & 0xfc) oxm(w, F_IP_DSCP, 1, (value[K_NW_TOS] & 0xfc) >> 2, null);
  if (mask[K_NW_TOS] & 0x03) oxm(w, F_IP_ECN, 1, value[K_NW_TOS] & 3, null);
  if (mask[K_NW_PROTO]) {
    if (isArp) oxm(w, F_ARP_OP, 2, value[K_NW_PROTO], null);
    else oxm(w, F_IP_PROTO, 1, value[K_NW_PROTO], null);
  }
  const ip = (field: number, word: number): void => {
    if (mask[word]) oxm(w, field, 4, value[word], mask[word] === 0xffffffff ? null : mask[word]);
  };
  ip(isArp ? F_ARP_SPA : F_IPV4_SRC, K_NW_SRC);
  ip(isArp ? F_ARP_TPA : F_IPV4_DST, K_NW_DST);
  const proto = value[K_NW_PROTO];
  const tp = (word: number, tcp: number, udp: number, sctp: number, icmp: number): void => {
    if (!mask[word]) return;
    if (proto === IPPROTO_ICMP) oxm(w, icmp, 1, value[word], null);
    else {
      const f = proto === IPPROTO_TCP ? tcp : proto === IPPROTO_UDP ? udp : sctp;
      oxm(w, f, 2, value[word], mask[word] === 0xffff ? null : mask[word]);
    }
  };
  tp(K_TP_SRC, F_TCP_SRC, F_UDP_SRC, F_SCTP_SRC, F_ICMPV4_TYPE);
  tp(K_TP_DST, F_TCP_DST, F_UDP_DST, F_SCTP_DST, F_ICMPV4_CODE);
  for (let i = 0; i < N_REGS; i++) {
    const m = mask[K_REG0 + i];
    if (m === 0) continue;
    w.u16(0x0001);
    w.u8((i << 1) | (m === 0xffffffff ? 0 : 1));
    w.u8(m === 0xffffffff ? 4 : 8);
    w.u32(value[K_REG0 + i]);
    if (m !== 0xffffffff) w.u32(m);
  }
  if (mask[K_TUN_ID]) {
    const exact = mask[K_TUN_ID] === 0xffffffff;
    w.u16(0x8000);
    w.u8((F_TUNNEL_ID << 1) | (exact ? 0 : 1));
    w.u8(exact ? 8 : 16);
    w.u64(0, value[K_TUN_ID]);
    if (!exact) w.u64(0, mask[K_TUN_ID]);
  }
  w.setU16(start + 2, w.len - start);
  w.pad8(start);
}

// ------------------------------------------------------------------ actions

function port16to32(p: number): number {
  return p >= 0xff00 ? (0xffff0000 | p) >>> 0 : p;
}

function decodeActions(b: Uint8Array, at: number, end: number): Action[] {
  const out: Action[] = [];
  let p = at;
  while (p < end) {
    if (p + 4 > end) throw new OfError(ET_BAD_ACTION, BAC_BAD_LEN);
    const type = (b[p] << 8) | b[p + 1];
    const len = (b[p + 2] << 8) | b[p + 3];
    if (len < 8 || len % 8 !== 0 || p + len > end) throw new OfError(ET_BAD_ACTION, BAC_BAD_LEN);
    const dv = new DataView(b.buffer, b.byteOffset + p, len);
    switch (type) {
      case 0: {
        if (len !== 16) throw new OfError(ET_BAD_ACTION, BAC_BAD_LEN);
        const port = dv.getUint32(4);
        if (port === 0 || (port >= OFPP_MAX && port < 0xfffffff8) || port === OFPP_ANY) throw new OfError(ET_BAD_ACTION, BAC_BAD_OUT_PORT);
        out.push({ t: 'output', port, maxLen: dv.getUint16(8) });
        break;
      }
      case 17: {
        const tpid = dv.getUint16(4);
        if (tpid !== 0x8100 && tpid !== 0x88a8) throw new OfError(ET_BAD_ACTION, BAC_BAD_ARGUMENT);
        out.push({ t: 'push_vlan', tpid });
        break;
      }
      case 18:
        out.push({ t: 'pop_vlan' });
        break;
      case 25: {
        if (len < 8) throw new OfError(ET_BAD_ACTION, BAC_BAD_LEN);
        const cls = dv.getUint16(4);
        const field = b[p + 6] >> 1;
        const hasMask = (b[p + 6] & 1) === 1;
        const flen = b[p + 7];
        if (cls === 0x0001 && !hasMask && field < N_REGS) {
          // A Nicira register (NXM_NX_REG0..7).
          if (flen !== 4 || len < 16) throw new OfError(ET_BAD_ACTION, BAC_BAD_SET_LEN);
          out.push({ t: 'load', dst: makeFieldRef(`NXM_NX_REG${field}`, 0, 32), value: readN(b, p + 8, 4), sf: true });
          break;
        }
        if (cls !== 0x8000 || hasMask) throw new OfError(ET_BAD_ACTION, BAC_BAD_SET_TYPE);
        const def = OXM[field];
        if (def === undefined) throw new OfError(ET_BAD_ACTION, BAC_BAD_SET_TYPE);
        if (flen !== def.bytes || 8 + flen > len) throw new OfError(ET_BAD_ACTION, BAC_BAD_SET_LEN);
        const v = p + 8;
        let hi = 0;
        let lo: number;
        if (def.bytes === 6) {
          hi = readN(b, v, 2);
          lo = readN(b, v + 2, 4);
        } else if (def.bytes === 8) {
          hi = readN(b, v, 4);
          lo = readN(b, v + 4, 4);
        } else lo = readN(b, v, def.bytes);
        if (!SETTABLE.includes(field)) throw new OfError(ET_BAD_ACTION, BAC_BAD_SET_TYPE);
        if (field === F_VLAN_VID && (lo & 0x1000) === 0) throw new OfError(ET_BAD_ACTION, BAC_BAD_SET_ARGUMENT);
        if ((field === F_VLAN_VID && lo > 0x1fff) || (field === F_VLAN_PCP && lo > 7) || (field === F_IP_DSCP && lo > 63)) throw new OfError(ET_BAD_ACTION, BAC_BAD_SET_ARGUMENT);
        out.push({ t: 'set_field', field, hi, lo });
        break;
      }
      case 0xffff: {
        if (len < 16) throw new OfError(ET_BAD_ACTION, BAC_BAD_LEN);
        if (dv.getUint32(4) !== NX_VENDOR) throw new OfError(ET_BAD_ACTION, BAC_BAD_EXPERIMENTER);
        const sub = dv.getUint16(8);
        if (sub === NXAST_RESUBMIT || sub === NXAST_RESUBMIT_TABLE) {
          const port = port16to32(dv.getUint16(10));
          const table = sub === NXAST_RESUBMIT ? 255 : b[p + 12];
          out.push({ t: 'resubmit', port, table });
        } else if (sub === NXAST_LEARN) out.push({ t: 'learn', spec: decodeLearn(b, p, len) });
        else if (sub === NXAST_REG_MOVE || sub === NXAST_REG_LOAD || sub === NXAST_OUTPUT_REG) {
          if (len !== 24) throw new OfError(ET_BAD_ACTION, BAC_BAD_LEN);
          const reg = (r: FieldRef): FieldRef => {
            if (!isRegister(r)) throw new OfError(ET_BAD_ACTION, BAC_BAD_ARGUMENT, 'only registers can be loaded or moved into');
            return r;
          };
          if (sub === NXAST_REG_MOVE) {
            const n = dv.getUint16(10);
            if (n === 0 || n > 32) throw new OfError(ET_BAD_ACTION, BAC_BAD_ARGUMENT);
            out.push({ t: 'move', src: nxRef(b, p + 16, dv.getUint16(12), n), dst: reg(nxRef(b, p + 20, dv.getUint16(14), n)) });
          } else {
            const on = dv.getUint16(10);
            const nBits = (on & 63) + 1;
            if (sub === NXAST_REG_LOAD) {
              const dst = reg(nxRef(b, p + 12, on >> 6, nBits));
              const hi = dv.getUint32(16);
              const lo = dv.getUint32(20);
              if (hi !== 0 || (nBits < 32 && lo >= 2 ** nBits)) throw new OfError(ET_BAD_ACTION, BAC_BAD_ARGUMENT);
              out.push({ t: 'load', dst, value: lo, sf: false });
            } else {
              for (let i = 18; i < 24; i++) if (b[p + i] !== 0) throw new OfError(ET_BAD_ACTION, BAC_BAD_ARGUMENT);
              out.push({ t: 'output_reg', src: nxRef(b, p + 12, on >> 6, nBits), maxLen: dv.getUint16(16) });
            }
          }
        } else if (sub === NXAST_FIN_TIMEOUT) {
          if (len !== 16) throw new OfError(ET_BAD_ACTION, BAC_BAD_LEN);
          out.push({ t: 'fin_timeout', idle: dv.getUint16(10), hard: dv.getUint16(12) });
        }
        else throw new OfError(ET_BAD_ACTION, BAC_BAD_EXP_TYPE);
        break;
      }
      default:
        throw new OfError(ET_BAD_ACTION, BAC_BAD_TYPE);
    }
    p += len;
  }
  return out;
}

/** Reads an NXM field reference (32-bit header, then `ofs` from the caller) as a FieldRef. */
function nxRef(b: Uint8Array, at: number, ofs: number, nBits: number): FieldRef {
  const name = nxmNameOf(readN(b, at, 4));
  if (name === undefined) throw new OfError(ET_BAD_ACTION, BAC_BAD_ARGUMENT);
  try {
    return makeFieldRef(name, ofs, nBits);
  } catch (e) {
    if (e instanceof FlowSyntaxError) throw new OfError(ET_BAD_ACTION, BAC_BAD_ARGUMENT);
    throw e;
  }
}

/**
 * Decodes NXAST_LEARN (Nicira experimenter action 16) into a LearnSpec: match, load and output
 * specs with field or immediate sources, the send_flow_rem / delete_learned flags and the FIN
 * timeouts. Loads go into registers or packet fields set_field can write; anything else is
 * refused with BAD_ARGUMENT.
 */
function decodeLearn(b: Uint8Array, p: number, len: number): LearnSpec {
  if (len < NX_LEARN_HEADER) throw new OfError(ET_BAD_ACTION, BAC_BAD_LEN);
  const bad = (): never => {
    throw new OfError(ET_BAD_ACTION, BAC_BAD_ARGUMENT);
  };
  const tableId = b[p + 26];
  const flags = readN(b, p + 24, 2);
  if ((flags & ~(LEARN_F_SEND_FLOW_REM | LEARN_F_DELETE_LEARNED)) !== 0 || b[p + 27] !== 0 || tableId === 255) bad();
  const spec: LearnSpec = {
    table: tableId,
    idleTimeout: readN(b, p + 10, 2),
    hardTimeout: readN(b, p + 12, 2),
    priority: readN(b, p + 14, 2),
    cookieHi: readN(b, p + 16, 4),
    cookieLo: readN(b, p + 20, 4),
    flags,
    finIdleTimeout: readN(b, p + 28, 2),
    finHardTimeout: readN(b, p + 30, 2),
    specs: [],
  };
  const end = p + len;
  let q = p + NX_LEARN_HEADER;
  while (q + 2 <= end) {
    const h = readN(b, q, 2);
    if (h === 0) {
      // Padding: the rest must be zeros.
      for (let i = q; i < end; i++) if (b[i] !== 0) bad();
      break;
    }
    const nBits = h & 0x7ff;
    const dstKind = (h & NX_LEARN_DST_MASK) >> 11;
    const immediate = (h & NX_LEARN_SRC_IMMEDIATE) !== 0;
    if ((h & 0xc000) !== 0 || nBits === 0 || dstKind === 3 || (immediate && dstKind === LEARN_OUTPUT)) bad();
    q += 2;
    let src: FieldRef | null = null;
    let immHi = 0;
    let immLo = 0;
    if (immediate) {
      const n = 2 * Math.ceil(nBits / 16);
      if (n > 8) bad();
      if (q + n > end) throw new OfError(ET_BAD_ACTION, BAC_BAD_LEN);
      immLo = readN(b, q + Math.max(0, n - 4), Math.min(4, n));
      immHi = n > 4 ? readN(b, q, n - 4) : 0;
      q += n;
    } else {
      if (q + 6 > end) throw new OfError(ET_BAD_ACTION, BAC_BAD_LEN);
      src = nxRef(b, q, readN(b, q + 4, 2), nBits);
      q += 6;
    }
    let dst: FieldRef | null = null;
    if (dstKind !== LEARN_OUTPUT) {
      if (q + 6 > end) throw new OfError(ET_BAD_ACTION, BAC_BAD_LEN);
      dst = nxRef(b, q, readN(b, q + 4, 2), nBits);
      q += 6;
      if (dstKind === LEARN_LOAD) {
        try {
          checkLearnLoadDst(dst);
        } catch {
          bad();
        }
      }
    }
    spec.specs.push({ kind: dstKind, nBits, src, immHi, immLo, dst });
  }
  return spec;
}

function nxField(w: Writer, r: FieldRef): void {
  w.u32(NXM_FIELDS[r.name].header);
  w.u16(r.ofs);
}

function encodeLearn(w: Writer, s: LearnSpec): void {
  const start = w.len;
  w.u16(0xffff);
  w.u16(0);
  w.u32(NX_VENDOR);
  w.u16(NXAST_LEARN);
  w.u16(s.idleTimeout);
  w.u16(s.hardTimeout);
  w.u16(s.priority);
  w.u64(s.cookieHi, s.cookieLo);
  w.u16(s.flags);
  w.u8(s.table);
  w.u8(0);
  w.u16(s.finIdleTimeout);
  w.u16(s.finHardTimeout);
  for (const f of s.specs) {
    w.u16((f.src == null ? NX_LEARN_SRC_IMMEDIATE : 0) | (f.kind << 11) | f.nBits);
    if (f.src != null) nxField(w, f.src);
    else {
      const n = 2 * Math.ceil(f.nBits / 16);
      for (let i = n - 1; i >= 0; i--) w.u8(i >= 4 ? f.immHi >>> (8 * (i - 4)) : f.immLo >>> (8 * i));
    }
    if (f.dst != null) nxField(w, f.dst);
  }
  w.pad8(start);
  w.setU16(start + 2, w.len - start);
}

function nxHeader(w: Writer, len: number, subtype: number): void {
  w.u16(0xffff);
  w.u16(len);
  w.u32(NX_VENDOR);
  w.u16(subtype);
}

function encodeActions(w: Writer, actions: readonly Action[]): void {
  for (const a of actions) {
    switch (a.t) {
      case 'output':
        w.u16(0);
        w.u16(16);
        w.u32(a.port);
        w.u16(a.maxLen);
        w.zeros(6);
        break;
      case 'push_vlan':
        w.u16(17);
        w.u16(8);
        w.u16(a.tpid);
        w.zeros(2);
        break;
      case 'pop_vlan':
        w.u16(18);
        w.u16(8);
        w.zeros(4);
        break;
      case 'set_field': {
        const start = w.len;
        w.u16(25);
        w.u16(0);
        const n = OXM[a.field].bytes;
        w.u16(0x8000);
        w.u8(a.field << 1);
        w.u8(n);
        if (n === 6) {
          w.u16(a.hi);
          w.u32(a.lo);
        } else if (n === 8) w.u64(a.hi, a.lo);
        else for (let i = n - 1; i >= 0; i--) w.u8(a.lo >>> (8 * i));
        w.pad8(start);
        w.setU16(start + 2, w.len - start);
        break;
      }
      case 'resubmit':
        w.u16(0xffff);
        w.u16(16);
        w.u32(NX_VENDOR);
        w.u16(NXAST_RESUBMIT_TABLE);
        w.u16(a.port >= OFPP_MAX ? a.port & 0xffff : a.port);
        w.u8(a.table);
        w.zeros(3);
        break;
      case 'learn':
        encodeLearn(w, a.spec);
        break;
      case 'load':
        if (a.sf) {
          w.u16(25);
          w.u16(16);
          w.u16(0x0001);
          w.u8((a.dst.word - K_REG0) << 1);
          w.u8(4);
          w.u32(a.value);
          w.zeros(4);
          break;
        }
        nxHeader(w, 24, NXAST_REG_LOAD);
        w.u16((a.dst.ofs << 6) | (a.dst.nBits - 1));
        w.u32(NXM_FIELDS[a.dst.name].header);
        w.u64(0, a.value);
        break;
      case 'move':
        nxHeader(w, 24, NXAST_REG_MOVE);
        w.u16(a.src.nBits);
        w.u16(a.src.ofs);
        w.u16(a.dst.ofs);
        w.u32(NXM_FIELDS[a.src.name].header);
        w.u32(NXM_FIELDS[a.dst.name].header);
        break;
      case 'output_reg':
        nxHeader(w, 24, NXAST_OUTPUT_REG);
        w.u16((a.src.ofs << 6) | (a.src.nBits - 1));
        w.u32(NXM_FIELDS[a.src.name].header);
        w.u16(a.maxLen);
        w.zeros(6);
        break;
      case 'fin_timeout':
        nxHeader(w, 16, NXAST_FIN_TIMEOUT);
        w.u16(a.idle);
        w.u16(a.hard);
        w.zeros(2);
        break;
    }
  }
}

function decodeInstructions(b: Uint8Array, at: number, end: number): Instructions {
  const ins: Instructions = { apply: [], clear: false, write: null, gotoTable: -1 };
  const seen = new Set<number>();
  let p = at;
  while (p < end) {
    if (p + 4 > end) throw new OfError(ET_BAD_INSTRUCTION, BIC_BAD_LEN);
    const type = (b[p] << 8) | b[p + 1];
    const len = (b[p + 2] << 8) | b[p + 3];
    if (len < 8 || len % 8 !== 0 || p + len > end) throw new OfError(ET_BAD_INSTRUCTION, BIC_BAD_LEN);
    if (seen.has(type)) throw new OfError(ET_BAD_INSTRUCTION, BIC_UNKNOWN_INST);
    seen.add(type);
    switch (type) {
      case 1:
        ins.gotoTable = b[p + 4];
        if (ins.gotoTable > 254) throw new OfError(ET_BAD_INSTRUCTION, 2);
        break;
      case 3:
        ins.write = decodeActions(b, p + 8, p + len);
        break;
      case 4:
        ins.apply = decodeActions(b, p + 8, p + len);
        break;
      case 5:
        ins.clear = true;
        break;
      case 2:
      case 6:
        throw new OfError(ET_BAD_INSTRUCTION, BIC_UNSUP_INST);
      default:
        throw new OfError(ET_BAD_INSTRUCTION, BIC_UNKNOWN_INST);
    }
    p += len;
  }
  return ins;
}

function encodeInstructions(w: Writer, ins: Instructions): void {
  if (ins.apply.length > 0) {
    const s = w.len;
    w.u16(4);
    w.u16(0);
    w.zeros(4);
    encodeActions(w, ins.apply);
    w.setU16(s + 2, w.len - s);
  }
  if (ins.clear) {
    w.u16(5);
    w.u16(8);
    w.zeros(4);
  }
  if (ins.write != null) {
    const s = w.len;
    w.u16(3);
    w.u16(0);
    w.zeros(4);
    encodeActions(w, ins.write);
    w.setU16(s + 2, w.len - s);
  }
  if (ins.gotoTable >= 0) {
    w.u16(1);
    w.u16(8);
    w.u8(ins.gotoTable);
    w.zeros(3);
  }
}

// ------------------------------------------------------------------ connection

/** Limits of one connection. */
const MAX_REPLY_BODY = 65000;

export interface OpenFlowConnectionOptions {
  /** Text for DESC replies. */
  description?: string;
}

/**
 * One OpenFlow 1.3 session with a controller or ovs-ofctl. Feed received bytes to
 * receive(); replies go to `send`; `close` is called when the session must end
 * (incompatible version, framing error).
 */
export class OpenFlowConnection {
  private readonly bridge: Bridge;
  private readonly send: (bytes: Uint8Array) => void;
  private readonly close: () => void;
  private pending = new Uint8Array(0);
  private negotiated = false;
  private closed = false;
  private readonly desc: string;
  /** Messages handled, errors sent, FLOW_REMOVED messages sent (for tests and status). */
  messages = 0;
  errors = 0;
  flowRemovedSent = 0;
  packetInSent = 0;
  /** Role from ROLE_REQUEST (EQUAL until changed) and the async masks of SET_ASYNC. */
  private role = 1;
  /** packet_in, port_status, flow_removed masks: [master/equal, slave] each (OpenFlow 1.3 defaults). */
  private readonly asyncMasks = Uint32Array.of(0x3, 0x0, 0x7, 0x7, 0xf, 0x0);
  private unsubscribe: (() => void) | null = null;

  constructor(bridge: Bridge, send: (bytes: Uint8Array) => void, close: () => void, opts: OpenFlowConnectionOptions = {}) {
    this.bridge = bridge;
    this.send = send;
    this.close = close;
    this.desc = opts.description ?? 'RingZero vswitch';
  }

  /**
   * Sends our HELLO (call once when the transport is up) and subscribes the session to the
   * bridge's flow removals (OFPT_FLOW_REMOVED for flows added with send_flow_rem).
   */
  start(): void {
    if (this.unsubscribe == null) {
      const a = this.bridge.addFlowRemovedListener((f, reason) => this.flowRemoved(f, reason));
      const b = this.bridge.addPacketInListener((p) => this.packetIn(p));
      this.unsubscribe = () => {
        a();
        b();
      };
    }
    const w = new Writer();
    const at = header(w, T_HELLO, 0);
    w.u16(1); // VERSIONBITMAP element
    w.u16(8);
    w.u32(1 << OFP13_VERSION);
    finish(w, at);
    this.send(w.result());
  }

  get isClosed(): boolean {
    return this.closed;
  }

  private shut(): void {
    if (this.closed) return;
    this.detach();
    this.closed = true;
    this.pending = new Uint8Array(0);
    this.close();
  }

  /** Ends the subscription to bridge events (call when the transport closed). */
  detach(): void {
    this.unsubscribe?.();
    this.unsubscribe = null;
  }

  /** Sends OFPT_PACKET_IN for a `controller` action when the async config lets the reason through. */
  private packetIn(p: PacketIn): void {
    if (this.closed || !this.negotiated) return;
    const mask = this.asyncMasks[this.role === ROLE_SLAVE ? 1 : 0];
    if (((mask >>> p.reason) & 1) === 0) return;
    const w = new Writer();
    const at = header(w, T_PACKET_IN, 0);
    w.u32(0xffffffff); // buffer_id: unbuffered
    w.u16(p.totalLength);
    w.u8(p.reason);
    w.u8(p.tableId);
    w.u64(p.cookieHi, p.cookieLo);
    const m = w.len;
    w.u16(1);
    w.u16(12);
    w.u16(0x8000);
    w.u8(F_IN_PORT << 1);
    w.u8(4);
    w.u32(p.inPort);
    w.pad8(m);
    w.zeros(2);
    w.bytes(p.data);
    finish(w, at);
    this.packetInSent++;
    this.send(w.result());
  }

  /** Sends OFPT_FLOW_REMOVED when the flow asked for it and the async config lets the reason through. */
  private flowRemoved(f: Flow, reason: number): void {
    if (this.closed || !this.negotiated || (f.flags & FF_SEND_FLOW_REM) === 0) return;
    const mask = this.asyncMasks[4 + (this.role === ROLE_SLAVE ? 1 : 0)];
    if (((mask >>> reason) & 1) === 0) return;
    const w = new Writer();
    const at = header(w, T_FLOW_REMOVED, 0);
    const age = Math.max(0, this.bridge.now - f.created);
    w.u64(f.cookieHi, f.cookieLo);
    w.u16(f.priority);
    w.u8(reason);
    w.u8(f.table);
    w.u32(Math.floor(age / 1000));
    w.u32((age % 1000) * 1e6);
    w.u16(f.idleTimeout);
    w.u16(f.hardTimeout);
    w.num64(f.nPackets);
    w.num64(f.nBytes);
    encodeMatch(w, f.value, f.mask);
    finish(w, at);
    this.flowRemovedSent++;
    this.send(w.result());
  }

  receive(chunk: Uint8Array): void {
    if (this.closed) return;
    let buf: Uint8Array;
    if (this.pending.length === 0) buf = chunk;
    else {
      buf = new Uint8Array(this.pending.length + chunk.length);
      buf.set(this.pending);
      buf.set(chunk, this.pending.length);
    }
    let p = 0;
    while (!this.closed && buf.length - p >= 8) {
      const len = (buf[p + 2] << 8) | buf[p + 3];
      if (len < 8) {
        this.error(ET_BAD_REQUEST, BRC_BAD_LEN, buf.subarray(p, p + 8), (buf[p + 4] << 24) | (buf[p + 5] << 16) | (buf[p + 6] << 8) | buf[p + 7]);
        this.shut();
        return;
      }
      if (buf.length - p < len) break;
      this.handle(buf.subarray(p, p + len));
      p += len;
    }
    if (!this.closed) this.pending = buf.slice(p);
  }

  private error(type: number, code: number, msg: Uint8Array, xid: number): void {
    this.errors++;
    const w = new Writer();
    const at = header(w, T_ERROR, xid >>> 0);
    w.u16(type);
    w.u16(code);
    w.bytes(msg.subarray(0, Math.min(msg.length, 64)));
    finish(w, at);
    this.send(w.result());
  }

  private handle(m: Uint8Array): void {
    this.messages++;
    const version = m[0];
    const type = m[1];
    const xid = ((m[4] << 24) | (m[5] << 16) | (m[6] << 8) | m[7]) >>> 0;
    if (!this.negotiated) {
      if (type !== T_HELLO) {
        this.error(ET_HELLO_FAILED, 0, m, xid);
        this.shut();
        return;
      }
      let ok = version >= OFP13_VERSION;
      // Version bitmap elements, when present, override the header version.
      let p = 8;
      while (p + 4 <= m.length) {
        const et = (m[p] << 8) | m[p + 1];
        const el = (m[p + 2] << 8) | m[p + 3];
        if (el < 4 || p + el > m.length) break;
        if (et === 1 && el >= 8) ok = (m[p + 4 + 3] & (1 << OFP13_VERSION)) !== 0;
        p += (el + 7) & ~7;
      }
      if (!ok) {
        this.error(ET_HELLO_FAILED, 0, new TextEncoder().encode('We support OpenFlow 1.3 (version 0x04) only'), xid);
        this.shut();
        return;
      }
      this.negotiated = true;
      return;
    }
    if (version !== OFP13_VERSION) {
      this.error(ET_BAD_REQUEST, BRC_BAD_VERSION, m, xid);
      return;
    }
    try {
      this.dispatch(type, xid, m);
    } catch (e) {
      if (e instanceof OfError) this.error(e.type, e.code, m, xid);
      else if (e instanceof RangeError) this.error(ET_BAD_REQUEST, BRC_BAD_LEN, m, xid);
      else throw e;
    }
  }

  private dispatch(type: number, xid: number, m: Uint8Array): void {
    const dv = new DataView(m.buffer, m.byteOffset, m.length);
    switch (type) {
      case T_HELLO:
      case T_ERROR:
      case T_ECHO_REPLY:
        return;
      case T_ECHO_REQUEST: {
        const w = new Writer();
        const at = header(w, T_ECHO_REPLY, xid);
        w.bytes(m.subarray(8));
        finish(w, at);
        this.send(w.result());
        return;
      }
      case T_EXPERIMENTER:
        throw new OfError(ET_BAD_REQUEST, BRC_BAD_EXPERIMENTER);
      case T_FEATURES_REQUEST: {
        const w = new Writer();
        const at = header(w, T_FEATURES_REPLY, xid);
        w.u64(this.bridge.datapathHi, this.bridge.datapathLo);
        w.u32(0); // n_buffers
        w.u8(254); // n_tables
        w.u8(0);
        w.zeros(2);
        w.u32(1 | 2 | 4); // FLOW_STATS | TABLE_STATS | PORT_STATS
        w.u32(0);
        finish(w, at);
        this.send(w.result());
        return;
      }
      case T_GET_CONFIG_REQUEST: {
        const w = new Writer();
        const at = header(w, T_GET_CONFIG_REPLY, xid);
        w.u16(0);
        w.u16(128);
        finish(w, at);
        this.send(w.result());
        return;
      }
      case T_SET_CONFIG:
      case T_TABLE_MOD:
        if (m.length < 12) throw new OfError(ET_BAD_REQUEST, BRC_BAD_LEN);
        return;
      case T_BARRIER_REQUEST: {
        const w = new Writer();
        finish(w, header(w, T_BARRIER_REPLY, xid));
        this.send(w.result());
        return;
      }
      case T_ROLE_REQUEST: {
        if (m.length !== 24) throw new OfError(ET_BAD_REQUEST, BRC_BAD_LEN);
        const role = dv.getUint32(8);
        if (role > ROLE_SLAVE) throw new OfError(ET_ROLE_REQUEST_FAILED, RRFC_BAD_ROLE);
        if (role !== ROLE_NOCHANGE) this.role = role;
        const w = new Writer();
        const at = header(w, T_ROLE_REPLY, xid);
        w.u32(this.role);
        w.bytes(m.subarray(12, 24));
        finish(w, at);
        this.send(w.result());
        return;
      }
      case T_GET_ASYNC_REQUEST: {
        if (m.length !== 8) throw new OfError(ET_BAD_REQUEST, BRC_BAD_LEN);
        const w = new Writer();
        const at = header(w, T_GET_ASYNC_REPLY, xid);
        for (const v of this.asyncMasks) w.u32(v);
        finish(w, at);
        this.send(w.result());
        return;
      }
      case T_SET_ASYNC:
        if (m.length !== 32) throw new OfError(ET_BAD_REQUEST, BRC_BAD_LEN);
        for (let i = 0; i < 6; i++) this.asyncMasks[i] = dv.getUint32(8 + 4 * i);
        return;
      case T_FLOW_MOD:
        if (this.role === ROLE_SLAVE) throw new OfError(ET_BAD_REQUEST, BRC_IS_SLAVE);
        this.flowMod(m, dv);
        return;
      case T_PACKET_OUT:
        if (this.role === ROLE_SLAVE) throw new OfError(ET_BAD_REQUEST, BRC_IS_SLAVE);
        this.packetOut(m, dv);
        return;
      case T_PORT_MOD:
        if (this.role === ROLE_SLAVE) throw new OfError(ET_BAD_REQUEST, BRC_IS_SLAVE);
        this.portMod(m, dv);
        return;
      case T_MULTIPART_REQUEST:
        this.multipart(xid, m, dv);
        return;
      default:
        throw new OfError(ET_BAD_REQUEST, BRC_BAD_TYPE);
    }
  }

  /** PACKET_OUT: buffer_id (we keep no buffers), in_port, actions, then the frame. */
  private packetOut(m: Uint8Array, dv: DataView): void {
    if (m.length < 24) throw new OfError(ET_BAD_REQUEST, BRC_BAD_LEN);
    const bufferId = dv.getUint32(8);
    const inPort = dv.getUint32(12);
    const actionsEnd = 24 + dv.getUint16(16);
    if (actionsEnd > m.length) throw new OfError(ET_BAD_REQUEST, BRC_BAD_LEN);
    if (bufferId !== 0xffffffff) throw new OfError(ET_BAD_REQUEST, BRC_BUFFER_UNKNOWN);
    const actions = decodeActions(m, 24, actionsEnd);
    const r = this.bridge.packetOut(inPort, actions, m, actionsEnd, m.length - actionsEnd);
    if (r === PO_BAD_PORT) throw new OfError(ET_BAD_REQUEST, BRC_BAD_PORT);
    if (r !== FM_OK) throw new OfError(ET_BAD_REQUEST, BRC_BAD_PACKET);
  }

  private flowMod(m: Uint8Array, dv: DataView): void {
    if (m.length < 56) throw new OfError(ET_BAD_REQUEST, BRC_BAD_LEN);
    const spec: FlowSpec = emptySpec();
    spec.cookieHi = dv.getUint32(8);
    spec.cookieLo = dv.getUint32(12);
    spec.cookieMaskHi = dv.getUint32(16);
    spec.cookieMaskLo = dv.getUint32(20);
    spec.table = m[24];
    const command = m[25];
    spec.idleTimeout = dv.getUint16(26);
    spec.hardTimeout = dv.getUint16(28);
    spec.priority = dv.getUint16(30);
    const bufferId = dv.getUint32(32);
    spec.outPort = dv.getUint32(36);
    spec.flags = dv.getUint16(44);
    if (command > FC_DELETE_STRICT) throw new OfError(5, 6); // BAD_COMMAND
    if (bufferId !== 0xffffffff) throw new OfError(ET_BAD_REQUEST, BRC_BUFFER_UNKNOWN);
    if (command === 0 && spec.table === 255) throw new OfError(5, 2); // BAD_TABLE_ID
    const mlen = decodeMatch(m, 48, m.length, spec.value, spec.mask);
    spec.instructions = decodeInstructions(m, 48 + mlen, m.length);
    if (command >= 3) spec.instructions = { apply: [], clear: false, write: null, gotoTable: -1 };
    const rc = this.bridge.flowMod(command, spec);
    if (rc !== FM_OK) throw new OfError(rc >> 8, rc & 0xff);
  }

  private portMod(m: Uint8Array, dv: DataView): void {
    if (m.length !== 40) throw new OfError(ET_BAD_REQUEST, BRC_BAD_LEN);
    const p = this.bridge.portByOfport(dv.getUint32(8));
    if (p === undefined) throw new OfError(ET_PORT_MOD_FAILED, PMFC_BAD_PORT);
    const config = dv.getUint32(24);
    const mask = dv.getUint32(28);
    if (mask & 1) p.up = (config & 1) === 0;
    if (mask & 0x10) p.noFlood = (config & 0x10) !== 0;
    this.bridge.portChanged(p);
  }

  // --------------------------------------------------------------- multipart

  private replies(xid: number, mpType: number, bodies: Uint8Array[]): void {
    // Packs bodies into replies of at most MAX_REPLY_BODY bytes, REPLY_MORE on all but the last.
    const groups: Uint8Array[][] = [[]];
    let size = 0;
    for (const b of bodies) {
      if (size + b.length > MAX_REPLY_BODY && groups[groups.length - 1].length > 0) {
        groups.push([]);
        size = 0;
      }
      groups[groups.length - 1].push(b);
      size += b.length;
    }
    groups.forEach((g, i) => {
      const w = new Writer();
      const at = header(w, T_MULTIPART_REPLY, xid);
      w.u16(mpType);
      w.u16(i < groups.length - 1 ? 1 : 0);
      w.zeros(4);
      for (const b of g) w.bytes(b);
      finish(w, at);
      this.send(w.result());
    });
  }

  private multipart(xid: number, m: Uint8Array, dv: DataView): void {
    if (m.length < 16) throw new OfError(ET_BAD_REQUEST, BRC_BAD_LEN);
    const mp = dv.getUint16(8);
    const flags = dv.getUint16(10);
    if (flags & 1) throw new OfError(ET_BAD_REQUEST, BRC_BAD_MULTIPART);
    const body = m.subarray(16);
    const br = this.bridge;
    switch (mp) {
      case MP_DESC: {
        if (body.length !== 0) throw new OfError(ET_BAD_REQUEST, BRC_BAD_LEN);
        const w = new Writer();
        w.str('RingZero', 256);
        w.str('RingZero vswitch (TypeScript)', 256);
        w.str('0.x', 256);
        w.str('None', 32);
        w.str(this.desc + ' ' + br.name, 256);
        this.replies(xid, mp, [w.result()]);
        return;
      }
      case MP_FLOW:
      case MP_AGGREGATE: {
        if (body.length < 32) throw new OfError(ET_BAD_REQUEST, BRC_BAD_LEN);
        const spec = emptySpec();
        const bd = new DataView(body.buffer, body.byteOffset, body.length);
        spec.table = body[0];
        spec.outPort = bd.getUint32(4);
        spec.cookieHi = bd.getUint32(16);
        spec.cookieLo = bd.getUint32(20);
        spec.cookieMaskHi = bd.getUint32(24);
        spec.cookieMaskLo = bd.getUint32(28);
        const mlen = decodeMatch(body, 32, body.length, spec.value, spec.mask);
        if (32 + mlen !== body.length) throw new OfError(ET_BAD_REQUEST, BRC_BAD_LEN);
        if (spec.table !== 255 && spec.table > 254) throw new OfError(ET_BAD_REQUEST, BRC_BAD_TABLE_ID);
        const flows = br.select(spec, false);
        if (mp === MP_AGGREGATE) {
          const w = new Writer();
          let pk = 0;
          let by = 0;
          for (const f of flows) {
            pk += f.nPackets;
            by += f.nBytes;
          }
          w.num64(pk);
          w.num64(by);
          w.u32(flows.length);
          w.zeros(4);
          this.replies(xid, mp, [w.result()]);
          return;
        }
        flows.sort((a, b) => a.table - b.table || b.priority - a.priority);
        this.replies(xid, mp, flows.map((f) => this.flowStats(f)));
        return;
      }
      case MP_TABLE: {
        if (body.length !== 0) throw new OfError(ET_BAD_REQUEST, BRC_BAD_LEN);
        const out: Uint8Array[] = [];
        for (let i = 0; i < 254; i++) {
          const t = br.tables[i];
          const w = new Writer();
          w.u8(i);
          w.zeros(3);
          w.u32(t?.count ?? 0);
          w.num64(t?.lookups ?? 0);
          w.num64(t?.matched ?? 0);
          out.push(w.result());
        }
        this.replies(xid, mp, out);
        return;
      }
      case MP_PORT_STATS:
      case MP_PORT_DESC: {
        let portNo = OFPP_ANY;
        if (mp === MP_PORT_STATS || body.length > 0) {
          if (body.length !== 8) throw new OfError(ET_BAD_REQUEST, BRC_BAD_LEN);
          portNo = new DataView(body.buffer, body.byteOffset, 8).getUint32(0);
        }
        let ports: readonly Port[] = br.ports;
        if (portNo !== OFPP_ANY) {
          const p = br.portByOfport(portNo);
          if (p === undefined) throw new OfError(ET_BAD_REQUEST, 11); // BAD_PORT
          ports = [p];
        }
        const sorted = [...ports].sort((a, b) => (a.ofport >>> 0) - (b.ofport >>> 0));
        this.replies(xid, mp, sorted.map((p) => (mp === MP_PORT_STATS ? this.portStats(p) : this.portDesc(p))));
        return;
      }
      case MP_TABLE_FEATURES: {
        if (body.length !== 0) throw new OfError(ET_BAD_REQUEST, BRC_EPERM);
        const out: Uint8Array[] = [];
        for (let i = 0; i < 254; i++) out.push(tableFeatures(i));
        this.replies(xid, mp, out);
        return;
      }
      default:
        throw new OfError(ET_BAD_REQUEST, BRC_BAD_MULTIPART);
    }
  }

  private flowStats(f: Flow): Uint8Array {
    const w = new Writer();
    const age = Math.max(0, this.bridge.now - f.created);
    w.u16(0);
    w.u8(f.table);
    w.u8(0);
    w.u32(Math.floor(age / 1000));
    w.u32((age % 1000) * 1e6);
    w.u16(f.priority);
    w.u16(f.idleTimeout);
    w.u16(f.hardTimeout);
    w.u16(f.flags);
    w.zeros(4);
    w.u64(f.cookieHi, f.cookieLo);
    w.num64(f.nPackets);
    w.num64(f.nBytes);
    encodeMatch(w, f.value, f.mask);
    encodeInstructions(w, f.instructions);
    w.setU16(0, w.len);
    return w.result();
  }

  private portDesc(p: Port): Uint8Array {
    const w = new Writer();
    w.u32(p.ofport);
    w.zeros(4);
    w.u16(p.hwHi);
    w.u32(p.hwLo);
    w.zeros(2);
    w.str(p.name, 16);
    w.u32((p.up ? 0 : 1) | (p.noFlood ? 0x10 : 0));
    w.u32(p.up ? 4 : 1); // LIVE or LINK_DOWN
    const internal = p.ofport === OFPP_LOCAL || p.type === 'internal';
    const feat = internal ? 0 : (1 << 6) | (1 << 11); // 10GB_FD | COPPER
    w.u32(feat);
    w.u32(0);
    w.u32(0);
    w.u32(0);
    w.u32(internal ? 0 : 10_000_000);
    w.u32(0);
    return w.result();
  }

  private portStats(p: Port): Uint8Array {
    const w = new Writer();
    const c = p.counters;
    w.u32(p.ofport);
    w.zeros(4);
    w.num64(c[C_RX_PACKETS]);
    w.num64(c[C_TX_PACKETS]);
    w.num64(c[C_RX_BYTES]);
    w.num64(c[C_TX_BYTES]);
    w.num64(c[C_RX_DROPPED]);
    w.num64(c[C_TX_DROPPED]);
    w.num64(c[C_RX_ERRORS]);
    w.num64(c[C_TX_ERRORS]);
    w.num64(0);
    w.num64(0);
    w.num64(0);
    w.num64(0);
    const age = Math.max(0, this.bridge.now - p.created);
    w.u32(Math.floor(age / 1000));
    w.u32((age % 1000) * 1e6);
    return w.result();
  }
}

const SETTABLE = [F_ETH_DST, F_ETH_SRC, F_VLAN_VID, F_VLAN_PCP, F_IP_DSCP, F_IPV4_SRC, F_IPV4_DST, F_TCP_SRC, F_TCP_DST, F_UDP_SRC, F_UDP_DST, F_SCTP_SRC, F_SCTP_DST, F_TUNNEL_ID];

/** One ofp_table_features entry with the eight properties OpenFlow 1.3 requires. */
function tableFeatures(id: number): Uint8Array {
  const w = new Writer();
  w.u16(0);
  w.u8(id);
  w.zeros(5);
  w.str('', 32);
  w.u64(0, 0);
  w.u64(0, 0);
  w.u32(3); // OFPTC_DEPRECATED_MASK
  w.u32(200000);
  const prop = (type: number, fill: () => void): void => {
    const s = w.len;
    w.u16(type);
    w.u16(0);
    fill();
    w.setU16(s + 2, w.len - s);
    w.pad8(s);
  };
  const fieldIds = (fields: number[], masks: boolean): void => {
    for (const f of fields) {
      const d = OXM[f];
      const m = masks && d.maskable;
      w.u16(0x8000);
      w.u8((f << 1) | (m ? 1 : 0));
      w.u8(m ? d.bytes * 2 : d.bytes);
    }
  };
  const ids = (list: number[]): void => {
    for (const t of list) {
      w.u16(t);
      w.u16(4);
    }
  };
  const all = Object.keys(OXM).map(Number);
  prop(0, () => ids([1, 3, 4, 5]));
  prop(2, () => {
    for (let t = id + 1; t < 254; t++) w.u8(t);
  });
  prop(4, () => ids([0, 17, 18, 25]));
  prop(6, () => ids([0, 17, 18, 25]));
  prop(8, () => fieldIds(all, true));
  prop(10, () => fieldIds(all, false));
  prop(12, () => fieldIds(SETTABLE, false));
  prop(14, () => fieldIds(SETTABLE, false));
  w.setU16(0, w.len);
  return w.result();
}

/** For tests: builds a raw OpenFlow 1.3 message. */
export function ofMessage(type: number, xid: number, body: Uint8Array = new Uint8Array(0)): Uint8Array {
  const w = new Writer();
  const at = header(w, type, xid);
  w.bytes(body);
  finish(w, at);
  return w.result();
}

