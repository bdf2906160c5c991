// ovs-ofctl's textual flow syntax: parsing (add-flow / del-flows arguments) and printing in
// the format `ovs-ofctl -O OpenFlow13 dump-flows` uses, so that our dumps and the real
// tool's dumps of the same flows are identical.
import {
  ETH_TYPE_ARP,
  ETH_TYPE_IP,
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
import type { Action, FieldRef, FlowSpec, Instructions, LearnFieldSpec, LearnSpec } from './flow.js';
import {
  emptySpec,
  LEARN_F_DELETE_LEARNED,
  LEARN_F_SEND_FLOW_REM,
  LEARN_LOAD,
  LEARN_MATCH,
  LEARN_OUTPUT,
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
  FF_NO_BYT_COUNTS,
  FF_NO_PKT_COUNTS,
  FF_RESET_COUNTS,
  FF_SEND_FLOW_REM,
} from './flow.js';

/** Thrown for text the parser does not accept. */
export class FlowSyntaxError extends Error {
  override name = 'FlowSyntaxError';
}

/** Resolves a port name (for in_port=NAME, output:NAME); returns undefined when unknown. */
export type PortResolver = (name: string) => number | undefined;

const RESERVED_PORTS: Record<string, number> = {
  IN_PORT: OFPP_IN_PORT,
  TABLE: OFPP_TABLE,
  NORMAL: OFPP_NORMAL,
  FLOOD: OFPP_FLOOD,
  ALL: OFPP_ALL,
  CONTROLLER: OFPP_CONTROLLER,
  LOCAL: OFPP_LOCAL,
  ANY: OFPP_ANY,
  NONE: OFPP_ANY,
};

export function formatPort(port: number): string {
  if (port < OFPP_MAX) return String(port);
  for (const [n, v] of Object.entries(RESERVED_PORTS)) if (v === port) return n;
  return String(port);
}

function parseIntStrict(s: string, what: string, max: number): number {
  let v: number;
  if (/^0x[0-9a-f]+$/i.test(s)) v = parseInt(s.slice(2), 16);
  else if (/^[0-9]+$/.test(s)) v = parseInt(s, 10);
  else throw new FlowSyntaxError(`${what}: "${s}" is not a number`);
  if (!(v <= max)) throw new FlowSyntaxError(`${what}: ${s} is out of range (max ${max})`);
  return v;
}

function parsePort(s: string, resolve: PortResolver | undefined): number {
  const up = s.toUpperCase();
  if (up in RESERVED_PORTS) return RESERVED_PORTS[up];
  if (/^(0x[0-9a-f]+|[0-9]+)$/i.test(s)) return parseIntStrict(s, 'port', 0xffffffff);
  const r = resolve?.(s);
  if (r === undefined) throw new FlowSyntaxError(`unknown port "${s}"`);
  return r;
}

function parseMac(s: string): [number, number] {
  const m = /^([0-9a-f]{1,2}):([0-9a-f]{1,2}):([0-9a-f]{1,2}):([0-9a-f]{1,2}):([0-9a-f]{1,2}):([0-9a-f]{1,2})$/i.exec(s);
  if (!m) throw new FlowSyntaxError(`"${s}" is not an Ethernet address`);
  const b = m.slice(1).map((x) => parseInt(x, 16));
  return [(b[0] << 8) | b[1], ((b[2] << 24) | (b[3] << 16) | (b[4] << 8) | b[5]) >>> 0];
}

export function formatMac(hi: number, lo: number): string {
  const b = [hi >> 8, hi & 255, lo >>> 24, (lo >>> 16) & 255, (lo >>> 8) & 255, lo & 255];
  return b.map((x) => x.toString(16).padStart(2, '0')).join(':');
}

function parseIp(s: string): number {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (!m) throw new FlowSyntaxError(`"${s}" is not an IPv4 address`);
  const b = m.slice(1).map(Number);
  if (b.some((x) => x > 255)) throw new FlowSyntaxError(`"${s}" is not an IPv4 address`);
  return ((b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3]) >>> 0;
}

export function formatIp(v: number): string {
  return `${v >>> 24}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;
}

function parseIpMasked(s: string): [number, number] {
  const slash = s.indexOf('/');
  if (slash < 0) return [parseIp(s), 0xffffffff];
  const ip = parseIp(s.slice(0, slash));
  const m = s.slice(slash + 1);
  if (/^\d+$/.test(m)) {
    const n = Number(m);
    if (n > 32) throw new FlowSyntaxError(`bad prefix length in "${s}"`);
    const mask = n === 0 ? 0 : (0xffffffff << (32 - n)) >>> 0;
    return [(ip & mask) >>> 0, mask];
  }
  const mask = parseIp(m);
  return [(ip & mask) >>> 0, mask];
}

function ipMaskFormat(v: number, m: number): string {
  if (m === 0xffffffff) return formatIp(v);
  // CIDR when the mask is contiguous high bits.
  const inv = ~m >>> 0;
  if (((inv + 1) & inv) === 0) {
    let n = 0;
    for (let x = m; x !== 0; x = (x << 1) >>> 0) n++;
    return `${formatIp(v)}/${n}`;
  }
  return `${formatIp(v)}/${formatIp(m)}`;
}

function setMasked(spec: FlowSpec, word: number, value: number, mask: number): void {
  spec.value[word] = ((spec.value[word] & ~mask) | (value & mask)) >>> 0;
  spec.mask[word] = (spec.mask[word] | mask) >>> 0;
}

function parseMasked16(s: string, what: string): [number, number] {
  const slash = s.indexOf('/');
  if (slash < 0) return [parseIntStrict(s, what, 0xffff), 0xffff];
  return [parseIntStrict(s.slice(0, slash), what, 0xffff), parseIntStrict(s.slice(slash + 1), what, 0xffff)];
}

/** Splits at top-level commas and whitespace (not inside parentheses). */
function splitTop(s: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of s) {
    if (ch === '(') depth++;
    else if (ch === ')') depth--;
    if (depth < 0) throw new FlowSyntaxError('unbalanced parentheses');
    if (depth === 0 && (ch === ',' || ch === ' ' || ch === '\t')) {
      if (cur !== '') out.push(cur);
      cur = '';
    } else cur += ch;
  }
  if (depth !== 0) throw new FlowSyntaxError('unbalanced parentheses');
  if (cur !== '') out.push(cur);
  return out;
}

function splitKv(tok: string): [string, string | null] {
  const eq = tok.indexOf('=');
  const colon = tok.indexOf(':');
  let i = eq;
  if (i < 0 || (colon >= 0 && colon < i && !tok.startsWith('set_field'))) i = colon >= 0 && (eq < 0 || colon < eq) ? colon : eq;
  if (i < 0) return [tok, null];
  return [tok.slice(0, i), tok.slice(i + 1)];
}

/** Parse options. */
export interface ParseOptions {
  resolvePort?: PortResolver;
  /** add: actions required, cookie masks refused (default); mod: actions required; match: no actions. */
  mode?: 'add' | 'mod' | 'match';
}

/**
 * Parses one flow in ovs-ofctl syntax, e.g.
 * `priority=100,in_port=1,dl_vlan=10,actions=strip_vlan,output:2`.
 */
export function parseFlow(text: string, opts: ParseOptions = {}): FlowSpec {
  const mode = opts.mode ?? 'add';
  const forAdd = mode !== 'match';
  const spec = emptySpec();
  let matchPart = text.trim();
  let actionPart: string | null = null;
  const ai = matchPart.search(/(^|[\s,])(actions|apply_actions)\s*=/);
  if (ai >= 0) {
    const eq = matchPart.indexOf('=', ai);
    actionPart = matchPart.slice(eq + 1).trim();
    matchPart = matchPart.slice(0, ai);
  }
  if (forAdd && actionPart == null) throw new FlowSyntaxError('must specify an action');
  if (!forAdd && actionPart != null) throw new FlowSyntaxError('actions are not allowed here');
  let hasCookieMask = false;
  for (const tok of splitTop(matchPart)) {
    const eq = tok.indexOf('=');
    const name = (eq < 0 ? tok : tok.slice(0, eq)).trim();
    const val = eq < 0 ? null : tok.slice(eq + 1).trim();
    if (val == null) {
      switch (name) {
        case 'ip': setMasked(spec, K_DL_TYPE, ETH_TYPE_IP, 0xffff); break;
        case 'arp': setMasked(spec, K_DL_TYPE, ETH_TYPE_ARP, 0xffff); break;
        case 'rarp': setMasked(spec, K_DL_TYPE, ETH_TYPE_RARP, 0xffff); break;
        case 'tcp': case 'udp': case 'sctp': case 'icmp':
          setMasked(spec, K_DL_TYPE, ETH_TYPE_IP, 0xffff);
          setMasked(spec, K_NW_PROTO, { tcp: IPPROTO_TCP, udp: IPPROTO_UDP, sctp: IPPROTO_SCTP, icmp: IPPROTO_ICMP }[name], 0xff);
          break;
        case 'send_flow_rem': spec.flags |= FF_SEND_FLOW_REM; break;
        case 'check_overlap': spec.flags |= FF_CHECK_OVERLAP; break;
        case 'reset_counts': spec.flags |= FF_RESET_COUNTS; break;
        case 'no_packet_counts': spec.flags |= FF_NO_PKT_COUNTS; break;
        case 'no_byte_counts': spec.flags |= FF_NO_BYT_COUNTS; break;
        default: throw new FlowSyntaxError(`unknown keyword "${name}"`);
      }
      continue;
    }
    switch (name) {
      case 'table': spec.table = parseIntStrict(val, 'table', 254); break;
      case 'priority': spec.priority = parseIntStrict(val, 'priority', 65535); break;
      case 'idle_timeout': spec.idleTimeout = parseIntStrict(val, 'idle_timeout', 65535); break;
      case 'hard_timeout': spec.hardTimeout = parseIntStrict(val, 'hard_timeout', 65535); break;
      case 'importance': spec.importance = parseIntStrict(val, 'importance', 65535); break;
      case 'out_port': spec.outPort = parsePort(val, opts.resolvePort); break;
      case 'duration': case 'n_packets': case 'n_bytes': case 'idle_age': case 'hard_age': break;
      case 'cookie': {
        const slash = val.indexOf('/');
        const [hi, lo] = parse64(slash < 0 ? val : val.slice(0, slash));
        spec.cookieHi = hi;
        spec.cookieLo = lo;
        if (slash >= 0) {
          const [mh, ml] = parse64(val.slice(slash + 1));
          spec.cookieMaskHi = mh;
          spec.cookieMaskLo = ml;
          hasCookieMask = true;
        }
        break;
      }
      case 'in_port': setMasked(spec, K_IN_PORT, parsePort(val, opts.resolvePort), 0xffffffff); break;
      case 'dl_src': case 'eth_src': case 'dl_dst': case 'eth_dst': {
        const slash = val.indexOf('/');
        const [vh, vl] = parseMac(slash < 0 ? val : val.slice(0, slash));
        const [mh, ml] = slash < 0 ? [0xffff, 0xffffffff] : parseMac(val.slice(slash + 1));
        const src = name.endsWith('src');
        setMasked(spec, src ? K_SRC_HI : K_DST_HI, vh, mh);
        setMasked(spec, src ? K_SRC_LO : K_DST_LO, vl, ml);
        break;
      }
      case 'dl_type': case 'eth_type': setMasked(spec, K_DL_TYPE, parseIntStrict(val, name, 0xffff), 0xffff); break;
      case 'dl_vlan': {
        const v = parseIntStrict(val, 'dl_vlan', 0xffff);
        if (v === 0xffff) setMasked(spec, K_VLAN_TCI, 0, 0x1fff);
        else if (v > 4095) throw new FlowSyntaxError(`dl_vlan ${v} is out of range`);
        else setMasked(spec, K_VLAN_TCI, v | VLAN_CFI, 0x1fff);
        break;
      }
      case 'dl_vlan_pcp': case 'vlan_pcp': {
        const v = parseIntStrict(val, name, 7);
        setMasked(spec, K_VLAN_TCI, (v << 13) | VLAN_CFI, 0xf000);
        break;
      }
      case 'vlan_tci': {
        const [v, m] = parseMasked16(val, 'vlan_tci');
        setMasked(spec, K_VLAN_TCI, v, m);
        break;
      }
      case 'nw_src': case 'ip_src': case 'arp_spa': { const [v, m] = parseIpMasked(val); setMasked(spec, K_NW_SRC, v, m); break; }
      case 'nw_dst': case 'ip_dst': case 'arp_tpa': { const [v, m] = parseIpMasked(val); setMasked(spec, K_NW_DST, v, m); break; }
      case 'nw_proto': case 'ip_proto': case 'arp_op': setMasked(spec, K_NW_PROTO, parseIntStrict(val, name, 255), 0xff); break;
      case 'nw_tos': setMasked(spec, K_NW_TOS, parseIntStrict(val, name, 255) & 0xfc, 0xfc); break;
      case 'ip_dscp': setMasked(spec, K_NW_TOS, parseIntStrict(val, name, 63) << 2, 0xfc); break;
      case 'nw_ecn': case 'ip_ecn': setMasked(spec, K_NW_TOS, parseIntStrict(val, name, 3), 0x03); break;
      case 'tp_src': case 'tcp_src': case 'udp_src': case 'sctp_src': { const [v, m] = parseMasked16(val, name); setMasked(spec, K_TP_SRC, v, m); break; }
      case 'tp_dst': case 'tcp_dst': case 'udp_dst': case 'sctp_dst': { const [v, m] = parseMasked16(val, name); setMasked(spec, K_TP_DST, v, m); break; }
      case 'icmp_type': setMasked(spec, K_TP_SRC, parseIntStrict(val, name, 255), 0xffff); break;
      case 'icmp_code': setMasked(spec, K_TP_DST, parseIntStrict(val, name, 255), 0xffff); break;
      case 'tun_id': case 'tunnel_id': {
        const slash = val.indexOf('/');
        const [hi, lo] = parse64(slash < 0 ? val : val.slice(0, slash));
        const m = slash < 0 ? 0xffffffff : parse64(val.slice(slash + 1))[1];
        if (hi !== 0) throw new FlowSyntaxError('tun_id above 32 bits is not supported');
        setMasked(spec, K_TUN_ID, lo, m);
        break;
      }
      default: {
        const r = /^reg([0-7])$/.exec(name);
        if (r) {
          const slash = val.indexOf('/');
          const v = parseIntStrict(slash < 0 ? val : val.slice(0, slash), name, 0xffffffff);
          const m = slash < 0 ? 0xffffffff : parseIntStrict(val.slice(slash + 1), name, 0xffffffff);
          setMasked(spec, K_REG0 + Number(r[1]), v, m);
          break;
        }
        throw new FlowSyntaxError(`unknown field "${name}"`);
      }
    }
  }
  if (mode === 'add' && hasCookieMask) throw new FlowSyntaxError('flow additions cannot use a cookie mask');
  checkPrerequisites(spec.value, spec.mask);
  if (actionPart != null) spec.instructions = parseActions(actionPart, spec, opts.resolvePort);
  return spec;
}

function parse64(s: string): [number, number] {
  let hex: string;
  if (/^0x[0-9a-f]{1,16}$/i.test(s)) hex = s.slice(2);
  else if (/^[0-9]+$/.test(s)) {
    const n = Number(s);
    if (!Number.isSafeInteger(n)) throw new FlowSyntaxError(`"${s}": decimal values above 2^53 need hex`);
    return [Math.floor(n / 2 ** 32) >>> 0, n >>> 0];
  } else throw new FlowSyntaxError(`"${s}" is not a number`);
  hex = hex.padStart(16, '0');
  return [parseInt(hex.slice(0, 8), 16) >>> 0, parseInt(hex.slice(8), 16) >>> 0];
}

export function format64(hi: number, lo: number): string {
  if (hi === 0) return '0x' + lo.toString(16);
  return '0x' + hi.toString(16) + lo.toString(16).padStart(8, '0');
}

/** Throws when a field is matched without its prerequisite (e.g. nw_src without ip/arp). */
export function checkPrerequisites(value: Uint32Array, mask: Uint32Array): void {
  const type = mask[K_DL_TYPE] === 0xffff ? value[K_DL_TYPE] : -1;
  const isIp = type === ETH_TYPE_IP;
  const isArp = type === ETH_TYPE_ARP || type === ETH_TYPE_RARP;
  const proto = mask[K_NW_PROTO] === 0xff ? value[K_NW_PROTO] : -1;
  if ((mask[K_NW_SRC] || mask[K_NW_DST] || mask[K_NW_PROTO]) && !isIp && !isArp)
    throw new FlowSyntaxError('nw_src/nw_dst/nw_proto require ip or arp (dl_type=0x0800 or 0x0806)');
  if (mask[K_NW_TOS] && !isIp) throw new FlowSyntaxError('nw_tos requires ip (dl_type=0x0800)');
  if ((mask[K_TP_SRC] || mask[K_TP_DST]) && !(isIp && (proto === IPPROTO_TCP || proto === IPPROTO_UDP || proto === IPPROTO_SCTP || proto === IPPROTO_ICMP)))
    throw new FlowSyntaxError('tp_src/tp_dst require tcp, udp or sctp (icmp_type/icmp_code require icmp)');
}

const SET_FIELD_NAMES: Record<string, number> = {
  eth_src: F_ETH_SRC, dl_src: F_ETH_SRC, eth_dst: F_ETH_DST, dl_dst: F_ETH_DST,
  vlan_vid: F_VLAN_VID, vlan_pcp: F_VLAN_PCP, ip_src: F_IPV4_SRC, nw_src: F_IPV4_SRC,
  ip_dst: F_IPV4_DST, nw_dst: F_IPV4_DST, ip_dscp: F_IP_DSCP, tcp_src: F_TCP_SRC, tcp_dst: F_TCP_DST,
  udp_src: F_UDP_SRC, udp_dst: F_UDP_DST, sctp_src: F_SCTP_SRC, sctp_dst: F_SCTP_DST,
  tun_id: F_TUNNEL_ID, tunnel_id: F_TUNNEL_ID,
};

export const SET_FIELD_PRINT: Record<number, string> = {
  [F_ETH_SRC]: 'eth_src', [F_ETH_DST]: 'eth_dst', [F_VLAN_VID]: 'vlan_vid', [F_VLAN_PCP]: 'vlan_pcp',
  [F_IPV4_SRC]: 'ip_src', [F_IPV4_DST]: 'ip_dst', [F_IP_DSCP]: 'ip_dscp', [F_TCP_SRC]: 'tcp_src',
  [F_TCP_DST]: 'tcp_dst', [F_UDP_SRC]: 'udp_src', [F_UDP_DST]: 'udp_dst', [F_SCTP_SRC]: 'sctp_src',
  [F_SCTP_DST]: 'sctp_dst', [F_TUNNEL_ID]: 'tun_id',
};

function setField(field: number, valStr: string): Action {
  switch (field) {
    case F_ETH_SRC: case F_ETH_DST: { const [hi, lo] = parseMac(valStr); return { t: 'set_field', field, hi, lo }; }
    case F_IPV4_SRC: case F_IPV4_DST: return { t: 'set_field', field, hi: 0, lo: parseIp(valStr) };
    case F_VLAN_VID: return { t: 'set_field', field, hi: 0, lo: parseIntStrict(valStr, 'vlan_vid', 0x1fff) };
    case F_VLAN_PCP: return { t: 'set_field', field, hi: 0, lo: parseIntStrict(valStr, 'vlan_pcp', 7) };
    case F_IP_DSCP: return { t: 'set_field', field, hi: 0, lo: parseIntStrict(valStr, 'ip_dscp', 63) };
    case F_TUNNEL_ID: { const [hi, lo] = parse64(valStr); return { t: 'set_field', field, hi, lo }; }
    default: return { t: 'set_field', field, hi: 0, lo: parseIntStrict(valStr, 'port', 0xffff) };
  }
}

/** NXM fields usable in learn(), load, move and output:field: key word, width in bits, and the 32-bit NXM header (class:16|field:7|hasmask:1|len:8). */
export const NXM_FIELDS: Readonly<Record<string, { word: number; width: number; header: number }>> = {
  NXM_OF_IN_PORT: { word: K_IN_PORT, width: 16, header: 0x00000002 },
  NXM_OF_ETH_DST: { word: K_DST_LO, width: 48, header: 0x00000206 },
  NXM_OF_ETH_SRC: { word: K_SRC_LO, width: 48, header: 0x00000406 },
  NXM_OF_ETH_TYPE: { word: K_DL_TYPE, width: 16, header: 0x00000602 },
  NXM_OF_VLAN_TCI: { word: K_VLAN_TCI, width: 16, header: 0x00000802 },
  NXM_OF_IP_TOS: { word: K_NW_TOS, width: 8, header: 0x00000a01 },
  NXM_OF_IP_PROTO: { word: K_NW_PROTO, width: 8, header: 0x00000c01 },
  NXM_OF_IP_SRC: { word: K_NW_SRC, width: 32, header: 0x00000e04 },
  NXM_OF_IP_DST: { word: K_NW_DST, width: 32, header: 0x00001004 },
  NXM_OF_TCP_SRC: { word: K_TP_SRC, width: 16, header: 0x00001202 },
  NXM_OF_TCP_DST: { word: K_TP_DST, width: 16, header: 0x00001402 },
  NXM_OF_UDP_SRC: { word: K_TP_SRC, width: 16, header: 0x00001602 },
  NXM_OF_UDP_DST: { word: K_TP_DST, width: 16, header: 0x00001802 },
  NXM_NX_TUN_ID: { word: K_TUN_ID, width: 64, header: 0x00012008 },
  ...Object.fromEntries(Array.from({ length: N_REGS }, (_, i) => [`NXM_NX_REG${i}`, { word: K_REG0 + i, width: 32, header: (0x00010004 + (i << 9)) >>> 0 }])),
};

/** The field names learn() accepts for `name=value` immediates, and how ovs-ofctl prints them. */
const LEARN_MF_NAMES: Record<string, string> = {
  in_port: 'NXM_OF_IN_PORT', eth_src: 'NXM_OF_ETH_SRC', dl_src: 'NXM_OF_ETH_SRC', eth_dst: 'NXM_OF_ETH_DST', dl_dst: 'NXM_OF_ETH_DST',
  eth_type: 'NXM_OF_ETH_TYPE', dl_type: 'NXM_OF_ETH_TYPE', vlan_tci: 'NXM_OF_VLAN_TCI', nw_tos: 'NXM_OF_IP_TOS',
  nw_proto: 'NXM_OF_IP_PROTO', ip_proto: 'NXM_OF_IP_PROTO', ip_src: 'NXM_OF_IP_SRC', nw_src: 'NXM_OF_IP_SRC',
  ip_dst: 'NXM_OF_IP_DST', nw_dst: 'NXM_OF_IP_DST', tcp_src: 'NXM_OF_TCP_SRC', tcp_dst: 'NXM_OF_TCP_DST',
  udp_src: 'NXM_OF_UDP_SRC', udp_dst: 'NXM_OF_UDP_DST', tun_id: 'NXM_NX_TUN_ID', tunnel_id: 'NXM_NX_TUN_ID',
  ...Object.fromEntries(Array.from({ length: N_REGS }, (_, i) => [`reg${i}`, `NXM_NX_REG${i}`])),
};
const LEARN_MF_PRINT: Record<string, string> = {
  NXM_OF_IN_PORT: 'in_port', NXM_OF_ETH_SRC: 'eth_src', NXM_OF_ETH_DST: 'eth_dst', NXM_OF_ETH_TYPE: 'eth_type',
  NXM_OF_VLAN_TCI: 'vlan_tci', NXM_OF_IP_TOS: 'nw_tos', NXM_OF_IP_PROTO: 'nw_proto', NXM_OF_IP_SRC: 'ip_src',
  NXM_OF_IP_DST: 'ip_dst', NXM_OF_TCP_SRC: 'tcp_src', NXM_OF_TCP_DST: 'tcp_dst', NXM_OF_UDP_SRC: 'udp_src',
  NXM_OF_UDP_DST: 'udp_dst', NXM_NX_TUN_ID: 'tun_id',
  ...Object.fromEntries(Array.from({ length: N_REGS }, (_, i) => [`NXM_NX_REG${i}`, `reg${i}`])),
};

/** The NXM field name of a 32-bit NXM header, or undefined when unsupported. */
export function nxmNameOf(header: number): string | undefined {
  for (const [name, f] of Object.entries(NXM_FIELDS)) if (f.header === header) return name;
  return undefined;
}

/** True for the Nicira registers (NXM_NX_REG0..7). */
export function isRegister(r: FieldRef): boolean {
  return r.word >= K_REG0 && r.word < K_REG0 + N_REGS;
}

/** A field reference to bits [ofs, ofs+nBits) of an NXM field; throws FlowSyntaxError when unsupported. */
export function makeFieldRef(name: string, ofs: number, nBits: number): FieldRef {
  const f = NXM_FIELDS[name];
  if (!f) throw new FlowSyntaxError(`unsupported field ${name}`);
  if (!(Number.isInteger(ofs) && Number.isInteger(nBits) && ofs >= 0 && nBits >= 1 && ofs + nBits <= f.width)) throw new FlowSyntaxError(`bad bit range ${ofs}+${nBits} of ${name}`);
  if (f.width === 48 && nBits !== 48) throw new FlowSyntaxError(`bit ranges of 48-bit fields are not supported (${name})`);
  if (f.width === 64 && (ofs !== 0 || (nBits !== 64 && nBits > 32))) throw new FlowSyntaxError(`bit ranges above bit 31 of ${name} are not supported`);
  return { name, word: f.word, width: f.width, ofs, nBits };
}

/** Parses `NXM_OF_ETH_SRC[]`, `NXM_NX_REG0[0..15]`, `NXM_OF_VLAN_TCI[12]`. */
export function parseFieldRef(s: string): FieldRef {
  const m = /^([A-Z0-9_]+)\[(?:(\d+)(?:\.\.(\d+))?)?\]$/.exec(s);
  if (!m) throw new FlowSyntaxError(`"${s}" is not a field reference like NXM_OF_ETH_SRC[]`);
  const f = NXM_FIELDS[m[1]];
  if (!f) throw new FlowSyntaxError(`unsupported field ${m[1]}`);
  if (m[2] === undefined) return makeFieldRef(m[1], 0, f.width);
  const ofs = Number(m[2]);
  const end = m[3] !== undefined ? Number(m[3]) : ofs;
  if (end < ofs || end >= f.width) throw new FlowSyntaxError(`bad bit range in ${s}`);
  return makeFieldRef(m[1], ofs, end - ofs + 1);
}

export function formatFieldRef(r: FieldRef): string {
  if (r.ofs === 0 && r.nBits === r.width) return `${r.name}[]`;
  if (r.nBits === 1) return `${r.name}[${r.ofs}]`;
  return `${r.name}[${r.ofs}..${r.ofs + r.nBits - 1}]`;
}

/** ovs's ds_put_hex of a value: minimal hex digits, "0" for zero. */
function hex64(hi: number, lo: number): string {
  return hi === 0 && lo === 0 ? '0' : format64(hi, lo);
}

/** An immediate for `nBits` bits: a number (hex or decimal, up to 64 bits). */
function parseImmediate(s: string, nBits: number, what: string): [number, number] {
  const [hi, lo] = parse64(s);
  const fits = nBits >= 64 || (nBits > 32 ? hi < 2 ** (nBits - 32) : hi === 0 && (nBits === 32 || lo < 2 ** nBits));
  if (!fits) throw new FlowSyntaxError(`${what}: ${s} does not fit in ${nBits} bits`);
  return [hi, lo];
}

/** A whole-field immediate written in the field's own syntax (MAC, IPv4, port name, number). */
function parseFieldValue(r: FieldRef, s: string): [number, number] {
  switch (r.name) {
    case 'NXM_OF_ETH_SRC': case 'NXM_OF_ETH_DST': return parseMac(s);
    case 'NXM_OF_IP_SRC': case 'NXM_OF_IP_DST': return [0, parseIp(s)];
    case 'NXM_OF_IN_PORT': {
      const up = s.toUpperCase();
      if (up in RESERVED_PORTS) return [0, RESERVED_PORTS[up] & 0xffff];
      return parseImmediate(s, 16, 'in_port');
    }
    default: return parseImmediate(s, r.nBits, r.name);
  }
}

function formatFieldValue(r: FieldRef, hi: number, lo: number): string {
  switch (r.name) {
    case 'NXM_OF_ETH_SRC': case 'NXM_OF_ETH_DST': return formatMac(hi, lo);
    case 'NXM_OF_IP_SRC': case 'NXM_OF_IP_DST': return formatIp(lo);
    case 'NXM_OF_IN_PORT': return formatPort(lo >= 0xff00 ? (0xffff0000 | lo) >>> 0 : lo);
    case 'NXM_OF_ETH_TYPE': case 'NXM_OF_VLAN_TCI': case 'NXM_NX_TUN_ID': return '0x' + lo.toString(16);
    case 'NXM_OF_IP_TOS': case 'NXM_OF_IP_PROTO': case 'NXM_OF_TCP_SRC': case 'NXM_OF_TCP_DST': case 'NXM_OF_UDP_SRC': case 'NXM_OF_UDP_DST': return String(lo);
    default: return hex64(hi, lo);
  }
}

/** Throws unless a learned flow can load into `dst`: a register, or a packet field set_field can write. */
export function checkLearnLoadDst(dst: FieldRef): void {
  if (isRegister(dst)) return;
  const whole = dst.ofs === 0 && dst.nBits === dst.width;
  switch (dst.name) {
    case 'NXM_OF_ETH_SRC': case 'NXM_OF_ETH_DST': case 'NXM_OF_IP_SRC': case 'NXM_OF_IP_DST': case 'NXM_OF_IP_TOS':
    case 'NXM_OF_TCP_SRC': case 'NXM_OF_TCP_DST': case 'NXM_OF_UDP_SRC': case 'NXM_OF_UDP_DST':
      if (whole) return;
      break;
    case 'NXM_NX_TUN_ID':
      if (dst.ofs === 0 && (dst.nBits === 32 || dst.nBits === 64)) return;
      break;
    case 'NXM_OF_VLAN_TCI':
      if ((dst.ofs === 0 && dst.nBits === 12) || (dst.ofs === 13 && dst.nBits === 3)) return;
      break;
  }
  throw new FlowSyntaxError(`learn: load into ${formatFieldRef(dst)} is not supported (registers, whole packet fields, NXM_OF_VLAN_TCI[0..11] or [13..15])`);
}

function parseLearn(args: string): LearnSpec {
  const spec: LearnSpec = { table: 1, priority: 32768, idleTimeout: 0, hardTimeout: 0, finIdleTimeout: 0, finHardTimeout: 0, flags: 0, cookieHi: 0, cookieLo: 0, specs: [] };
  const add = (kind: number, nBits: number, src: FieldRef | null, imm: [number, number], dst: FieldRef | null): void => {
    spec.specs.push({ kind, nBits, src, immHi: imm[0], immLo: imm[1], dst });
  };
  for (const tok of splitTop(args)) {
    const eq = tok.indexOf('=');
    const key = eq < 0 ? tok : tok.slice(0, eq);
    const val = eq < 0 ? '' : tok.slice(eq + 1);
    switch (key) {
      case 'table': spec.table = parseIntStrict(val, 'learn table', 254); continue;
      case 'priority': spec.priority = parseIntStrict(val, 'learn priority', 65535); continue;
      case 'idle_timeout': spec.idleTimeout = parseIntStrict(val, 'learn idle_timeout', 65535); continue;
      case 'hard_timeout': spec.hardTimeout = parseIntStrict(val, 'learn hard_timeout', 65535); continue;
      case 'fin_idle_timeout': spec.finIdleTimeout = parseIntStrict(val, 'learn fin_idle_timeout', 65535); continue;
      case 'fin_hard_timeout': spec.finHardTimeout = parseIntStrict(val, 'learn fin_hard_timeout', 65535); continue;
      case 'cookie': [spec.cookieHi, spec.cookieLo] = parse64(val); continue;
      case 'send_flow_rem': if (eq < 0) { spec.flags |= LEARN_F_SEND_FLOW_REM; continue; } break;
      case 'delete_learned': if (eq < 0) { spec.flags |= LEARN_F_DELETE_LEARNED; continue; } break;
    }
    if (tok.startsWith('output:')) {
      const r = parseFieldRef(tok.slice(7));
      add(LEARN_OUTPUT, r.nBits, r, [0, 0], null);
      continue;
    }
    if (tok.startsWith('load:')) {
      const arrow = tok.indexOf('->');
      if (arrow < 0) throw new FlowSyntaxError(`learn: "${tok}" needs load:SRC->DST`);
      const dst = parseFieldRef(tok.slice(arrow + 2));
      checkLearnLoadDst(dst);
      const srcText = tok.slice(5, arrow);
      if (srcText.includes('[')) {
        const src = parseFieldRef(srcText);
        if (src.nBits !== dst.nBits) throw new FlowSyntaxError(`learn: ${tok} has fields of different widths`);
        add(LEARN_LOAD, dst.nBits, src, [0, 0], dst);
      } else add(LEARN_LOAD, dst.nBits, null, parseImmediate(srcText, dst.nBits, 'learn load'), dst);
      continue;
    }
    if (eq < 0) {
      const r = parseFieldRef(tok);
      add(LEARN_MATCH, r.nBits, r, [0, 0], r);
      continue;
    }
    if (!key.includes('[')) {
      const nxm = LEARN_MF_NAMES[key];
      if (nxm === undefined) throw new FlowSyntaxError(`learn: unknown field "${key}"`);
      const dst = makeFieldRef(nxm, 0, NXM_FIELDS[nxm].width);
      add(LEARN_MATCH, dst.nBits, null, parseFieldValue(dst, val), dst);
      continue;
    }
    const dst = parseFieldRef(key);
    if (val.includes('[')) {
      const src = parseFieldRef(val);
      if (dst.nBits !== src.nBits) throw new FlowSyntaxError(`learn: ${tok} has fields of different widths`);
      add(LEARN_MATCH, dst.nBits, src, [0, 0], dst);
    } else {
      const whole = dst.ofs === 0 && dst.nBits === dst.width;
      add(LEARN_MATCH, dst.nBits, null, whole ? parseFieldValue(dst, val) : parseImmediate(val, dst.nBits, 'learn'), dst);
    }
  }
  return spec;
}

function formatLearnSpec(f: LearnFieldSpec): string {
  const dst = f.dst;
  if (f.kind === LEARN_OUTPUT) return `output:${formatFieldRef(f.src!)}`;
  if (f.kind === LEARN_LOAD) return `load:${f.src != null ? formatFieldRef(f.src) : hex64(f.immHi, f.immLo)}->${formatFieldRef(dst!)}`;
  if (f.src == null) {
    if (dst!.ofs === 0 && dst!.nBits === dst!.width) return `${LEARN_MF_PRINT[dst!.name]}=${formatFieldValue(dst!, f.immHi, f.immLo)}`;
    return `${formatFieldRef(dst!)}=${hex64(f.immHi, f.immLo)}`;
  }
  const d = formatFieldRef(dst!);
  return f.src.name === dst!.name && f.src.ofs === dst!.ofs ? d : `${d}=${formatFieldRef(f.src)}`;
}

export function formatLearn(s: LearnSpec): string {
  const parts = [`table=${s.table}`];
  if (s.idleTimeout) parts.push(`idle_timeout=${s.idleTimeout}`);
  if (s.hardTimeout) parts.push(`hard_timeout=${s.hardTimeout}`);
  if (s.finIdleTimeout) parts.push(`fin_idle_timeout=${s.finIdleTimeout}`);
  if (s.finHardTimeout) parts.push(`fin_hard_timeout=${s.finHardTimeout}`);
  if (s.priority !== 32768) parts.push(`priority=${s.priority}`);
  if (s.flags & LEARN_F_SEND_FLOW_REM) parts.push('send_flow_rem');
  if (s.flags & LEARN_F_DELETE_LEARNED) parts.push('delete_learned');
  if (s.cookieHi || s.cookieLo) parts.push(`cookie=${format64(s.cookieHi, s.cookieLo)}`);
  for (const f of s.specs) parts.push(formatLearnSpec(f));
  return `learn(${parts.join(',')})`;
}

/** Parses `load:VALUE->REG[..]` / `set_field:V[/M]->regN` targets: registers only. */
function registerDst(r: FieldRef, what: string): FieldRef {
  if (!isRegister(r)) throw new FlowSyntaxError(`${what}: only registers (NXM_NX_REG0..7) can be written; use set_field for packet fields`);
  return r;
}

/** Parses an action list (the text after `actions=`) the way ovs-ofctl turns it into OpenFlow 1.3. */
export function parseActions(text: string, spec: FlowSpec, resolve?: PortResolver): Instructions {
  const ins: Instructions = { apply: [], clear: false, write: null, gotoTable: -1 };
  let hasVlan = (spec.mask[K_VLAN_TCI] & VLAN_CFI) !== 0 && (spec.value[K_VLAN_TCI] & VLAN_CFI) !== 0;
  const proto = spec.mask[K_NW_PROTO] === 0xff ? spec.value[K_NW_PROTO] : -1;
  const toks = splitTop(text);
  let sawDrop = false;
  const parseList = (list: string[], out: Action[], top: boolean): void => {
    for (const tok of list) {
      const lower = tok.toLowerCase();
      if (lower === 'drop') { sawDrop = true; continue; }
      if (top && lower === 'clear_actions') { ins.clear = true; continue; }
      if (top && lower.startsWith('write_actions(') && lower.endsWith(')')) {
        ins.write = [];
        parseList(splitTop(tok.slice(14, -1)), ins.write, false);
        continue;
      }
      if (top && lower.startsWith('goto_table:')) { ins.gotoTable = parseIntStrict(tok.slice(11), 'goto_table', 254); continue; }
      if (lower.startsWith('learn(') && lower.endsWith(')')) { out.push({ t: 'learn', spec: parseLearn(tok.slice(6, -1)) }); continue; }
      if (lower.startsWith('resubmit(') && lower.endsWith(')')) {
        const [p, t] = tok.slice(9, -1).split(',');
        out.push({ t: 'resubmit', port: p === undefined || p === '' ? OFPP_IN_PORT : parsePort(p, resolve), table: t === undefined || t === '' ? 255 : parseIntStrict(t, 'resubmit table', 254) });
        continue;
      }
      if (lower.startsWith('fin_timeout(') && lower.endsWith(')')) {
        const a = { t: 'fin_timeout' as const, idle: 0, hard: 0 };
        for (const kv of splitTop(tok.slice(12, -1))) {
          const [k, v] = kv.split('=');
          if (k === 'idle_timeout') a.idle = parseIntStrict(v ?? '', 'fin_timeout idle_timeout', 65535);
          else if (k === 'hard_timeout') a.hard = parseIntStrict(v ?? '', 'fin_timeout hard_timeout', 65535);
          else throw new FlowSyntaxError(`fin_timeout: unknown argument "${kv}"`);
        }
        out.push(a);
        continue;
      }
      if (lower.startsWith('load:') || lower.startsWith('move:')) {
        const arrow = tok.indexOf('->');
        if (arrow < 0) throw new FlowSyntaxError(`"${tok}" needs SRC->DST`);
        const dst = registerDst(parseFieldRef(tok.slice(arrow + 2)), tok.slice(0, 4));
        const srcText = tok.slice(5, arrow);
        if (lower.startsWith('load:')) {
          out.push({ t: 'load', dst, value: parseImmediate(srcText, dst.nBits, 'load')[1], sf: false });
        } else {
          const src = parseFieldRef(srcText);
          if (src.nBits !== dst.nBits) throw new FlowSyntaxError(`move: ${tok} has fields of different widths`);
          if (src.nBits > 32) throw new FlowSyntaxError(`move: fields wider than 32 bits are not supported`);
          out.push({ t: 'move', src, dst });
        }
        continue;
      }
      if (lower.startsWith('output:') && tok.includes('[')) {
        out.push({ t: 'output_reg', src: parseFieldRef(tok.slice(7)), maxLen: 65535 });
        continue;
      }
      if (lower.startsWith('set_field:')) {
        const arrow = tok.indexOf('->');
        if (arrow < 0) throw new FlowSyntaxError(`"${tok}": set_field needs value->field`);
        const fname = tok.slice(arrow + 2);
        const reg = /^reg([0-7])$/.exec(fname);
        if (reg) {
          const vt = tok.slice(10, arrow);
          const slash = vt.indexOf('/');
          const v = parseIntStrict(slash < 0 ? vt : vt.slice(0, slash), 'set_field', 0xffffffff);
          const name = `NXM_NX_REG${reg[1]}`;
          if (slash < 0) {
            out.push({ t: 'load', dst: makeFieldRef(name, 0, 32), value: v, sf: true });
            continue;
          }
          const m = parseIntStrict(vt.slice(slash + 1), 'set_field mask', 0xffffffff);
          const ofs = m === 0 ? 0 : 31 - Math.clz32(m & -m);
          const nBits = m === 0 ? 0 : 32 - Math.clz32(m) - ofs;
          if (m === 0 || (nBits < 32 && ((m >>> ofs) !== (2 ** nBits - 1)))) throw new FlowSyntaxError(`set_field: mask ${vt.slice(slash + 1)} is not contiguous`);
          out.push({ t: 'load', dst: makeFieldRef(name, ofs, nBits), value: ((v & m) >>> ofs) >>> 0, sf: nBits === 32 });
          continue;
        }
        const field = SET_FIELD_NAMES[fname];
        if (field === undefined) throw new FlowSyntaxError(`set_field: unsupported field "${fname}"`);
        out.push(setField(field, tok.slice(10, arrow)));
        continue;
      }
      const [k, v] = splitKv(tok);
      const kl = k.toLowerCase();
      switch (kl) {
        case 'output': out.push({ t: 'output', port: parsePort(v ?? '', resolve), maxLen: v != null && v.toUpperCase() === 'CONTROLLER' ? 65535 : 0 }); continue;
        case 'normal': case 'flood': case 'all': case 'local': case 'in_port':
          if (v == null) { out.push({ t: 'output', port: RESERVED_PORTS[kl.toUpperCase()], maxLen: 0 }); continue; }
          break;
        case 'controller': out.push({ t: 'output', port: OFPP_CONTROLLER, maxLen: v == null ? 65535 : parseIntStrict(v, 'controller max_len', 65535) }); continue;
        case 'strip_vlan': case 'pop_vlan': out.push({ t: 'pop_vlan' }); hasVlan = false; continue;
        case 'push_vlan': {
          const tpid = parseIntStrict(v ?? '', 'push_vlan', 0xffff);
          if (tpid !== 0x8100 && tpid !== 0x88a8) throw new FlowSyntaxError(`push_vlan: ethertype 0x${tpid.toString(16)} is not 0x8100 or 0x88a8`);
          out.push({ t: 'push_vlan', tpid });
          hasVlan = true;
          continue;
        }
        case 'mod_vlan_vid': case 'mod_vlan_pcp': {
          const isVid = kl === 'mod_vlan_vid';
          const n = parseIntStrict(v ?? '', kl, isVid ? 4095 : 7);
          if (!hasVlan) out.push({ t: 'push_vlan', tpid: 0x8100 });
          hasVlan = true;
          out.push({ t: 'set_field', field: isVid ? F_VLAN_VID : F_VLAN_PCP, hi: 0, lo: isVid ? n | VLAN_CFI : n });
          continue;
        }
        case 'mod_dl_src': out.push(setField(F_ETH_SRC, v ?? '')); continue;
        case 'mod_dl_dst': out.push(setField(F_ETH_DST, v ?? '')); continue;
        case 'mod_nw_src': out.push(setField(F_IPV4_SRC, v ?? '')); continue;
        case 'mod_nw_dst': out.push(setField(F_IPV4_DST, v ?? '')); continue;
        case 'mod_nw_tos': out.push({ t: 'set_field', field: F_IP_DSCP, hi: 0, lo: parseIntStrict(v ?? '', 'mod_nw_tos', 255) >> 2 }); continue;
        case 'mod_tp_src': case 'mod_tp_dst': {
          const src = kl === 'mod_tp_src';
          const f = proto === IPPROTO_TCP ? (src ? F_TCP_SRC : F_TCP_DST) : proto === IPPROTO_UDP ? (src ? F_UDP_SRC : F_UDP_DST) : proto === IPPROTO_SCTP ? (src ? F_SCTP_SRC : F_SCTP_DST) : -1;
          if (f < 0) throw new FlowSyntaxError(`${kl} requires a tcp, udp or sctp match`);
          out.push(setField(f, v ?? ''));
          continue;
        }
        case 'set_tunnel': case 'set_tunnel64': out.push(setField(F_TUNNEL_ID, v ?? '')); continue;
        case 'resubmit': out.push({ t: 'resubmit', port: parsePort(v ?? '', resolve), table: 255 }); continue;
      }
      if (v == null && /^(0x[0-9a-f]+|[0-9]+)$/i.test(k)) { out.push({ t: 'output', port: parsePort(k, resolve), maxLen: 0 }); continue; }
      if (v == null && resolve?.(k) !== undefined) { out.push({ t: 'output', port: resolve(k)!, maxLen: 0 }); continue; }
      throw new FlowSyntaxError(`unknown action "${tok}"`);
    }
  };
  parseList(toks, ins.apply, true);
  if (sawDrop && (toks.length > 1)) throw new FlowSyntaxError('"drop" must not be accompanied by any other action or instruction');
  return ins;
}

function formatAction(a: Action): string {
  switch (a.t) {
    case 'output':
      if (a.port === OFPP_CONTROLLER) return `CONTROLLER:${a.maxLen}`;
      return a.port < OFPP_MAX ? `output:${a.port}` : formatPort(a.port);
    case 'push_vlan': return `push_vlan:0x${a.tpid.toString(16)}`;
    case 'pop_vlan': return 'pop_vlan';
    case 'resubmit':
      if (a.table === 255) return `resubmit:${formatPort(a.port)}`;
      return `resubmit(${a.port === OFPP_IN_PORT ? '' : formatPort(a.port)},${a.table})`;
    case 'learn': return formatLearn(a.spec);
    case 'load': return a.sf ? `set_field:${hex64(0, a.value)}->${LEARN_MF_PRINT[a.dst.name]}` : `load:${hex64(0, a.value)}->${formatFieldRef(a.dst)}`;
    case 'move': return `move:${formatFieldRef(a.src)}->${formatFieldRef(a.dst)}`;
    case 'output_reg': return a.maxLen === 65535 ? `output:${formatFieldRef(a.src)}` : `output(port=${formatFieldRef(a.src)},max_len=${a.maxLen})`;
    case 'fin_timeout': {
      const p: string[] = [];
      if (a.idle) p.push(`idle_timeout=${a.idle}`);
      if (a.hard) p.push(`hard_timeout=${a.hard}`);
      return `fin_timeout(${p.join(',')})`;
    }
    case 'set_field': {
      const name = SET_FIELD_PRINT[a.field] ?? `field${a.field}`;
      let v: string;
      if (a.field === F_ETH_SRC || a.field === F_ETH_DST) v = formatMac(a.hi, a.lo);
      else if (a.field === F_IPV4_SRC || a.field === F_IPV4_DST) v = formatIp(a.lo);
      else if (a.field === F_TUNNEL_ID) v = format64(a.hi, a.lo);
      else v = String(a.lo);
      return `set_field:${v}->${name}`;
    }
  }
}

/** Formats instructions as ovs-ofctl prints them after `actions=`. */
export function formatInstructions(ins: Instructions): string {
  const parts = ins.apply.map(formatAction);
  if (ins.clear) parts.push('clear_actions');
  if (ins.write != null) parts.push(`write_actions(${ins.write.map(formatAction).join(',')})`);
  if (ins.gotoTable >= 0) parts.push(`goto_table:${ins.gotoTable}`);
  return parts.length === 0 ? 'drop' : parts.join(',');
}

function masked16(name: string, v: number, m: number): string {
  return m === 0xffff ? `${name}=${v},` : `${name}=0x${v.toString(16)}/0x${m.toString(16)},`;
}

/** Formats a match (with its priority) exactly as OVS's match_format() does. */
export function formatMatch(value: Uint32Array, mask: Uint32Array, priority: number): string {
  let s = '';
  if (priority !== 32768) s += `priority=${priority},`;
  let skipType = false;
  let skipProto = false;
  const dlType = value[K_DL_TYPE];
  const proto = value[K_NW_PROTO];
  if (mask[K_DL_TYPE]) {
    skipType = true;
    if (dlType === ETH_TYPE_IP) {
      if (mask[K_NW_PROTO]) {
        skipProto = true;
        if (proto === IPPROTO_ICMP) s += 'icmp,';
        else if (proto === IPPROTO_TCP) s += 'tcp,';
        else if (proto === IPPROTO_UDP) s += 'udp,';
        else if (proto === IPPROTO_SCTP) s += 'sctp,';
        else { s += 'ip,'; skipProto = false; }
      } else s += 'ip,';
    } else if (dlType === ETH_TYPE_ARP) s += 'arp,';
    else if (dlType === ETH_TYPE_RARP) s += 'rarp,';
    else skipType = false;
  }
  for (let i = 0; i < N_REGS; i++) {
    const m = mask[K_REG0 + i];
    if (m) s += `reg${i}=${hex64(0, value[K_REG0 + i])}${m === 0xffffffff ? '' : '/0x' + m.toString(16)},`;
  }
  if (mask[K_TUN_ID]) s += `tun_id=${value[K_TUN_ID] === 0 ? '0' : '0x' + value[K_TUN_ID].toString(16)}${mask[K_TUN_ID] === 0xffffffff ? '' : '/0x' + 'ffffffff' + mask[K_TUN_ID].toString(16).padStart(8, '0')},`;
  if (mask[K_IN_PORT]) s += `in_port=${formatPort(value[K_IN_PORT])},`;
  const tm = mask[K_VLAN_TCI];
  if (tm) {
    const tv = value[K_VLAN_TCI];
    const vidMask = tm & 0x0fff;
    const pcpMask = tm & 0xe000;
    if (tm & VLAN_CFI && tv & VLAN_CFI && (!vidMask || vidMask === 0x0fff) && (!pcpMask || pcpMask === 0xe000) && (vidMask || pcpMask)) {
      if (vidMask) s += `dl_vlan=${tv & 0x0fff},`;
      if (pcpMask) s += `dl_vlan_pcp=${tv >>> 13},`;
    } else if (tm === 0xffff) s += `vlan_tci=0x${tv.toString(16).padStart(4, '0')},`;
    else s += `vlan_tci=0x${tv.toString(16).padStart(4, '0')}/0x${tm.toString(16).padStart(4, '0')},`;
  }
  const macMasked = (name: string, hiW: number, loW: number): void => {
    if (mask[hiW] || mask[loW]) {
      s += `${name}=${formatMac(value[hiW], value[loW])}`;
      if (!(mask[hiW] === 0xffff && mask[loW] === 0xffffffff)) s += `/${formatMac(mask[hiW], mask[loW])}`;
      s += ',';
    }
  };
  macMasked('dl_src', K_SRC_HI, K_SRC_LO);
  macMasked('dl_dst', K_DST_HI, K_DST_LO);
  if (!skipType && mask[K_DL_TYPE]) s += `dl_type=0x${dlType.toString(16).padStart(4, '0')},`;
  const isArp = mask[K_DL_TYPE] !== 0 && (dlType === ETH_TYPE_ARP || dlType === ETH_TYPE_RARP);
  if (mask[K_NW_SRC]) s += `${isArp ? 'arp_spa' : 'nw_src'}=${ipMaskFormat(value[K_NW_SRC], mask[K_NW_SRC])},`;
  if (mask[K_NW_DST]) s += `${isArp ? 'arp_tpa' : 'nw_dst'}=${ipMaskFormat(value[K_NW_DST], mask[K_NW_DST])},`;
  if (!skipProto && mask[K_NW_PROTO]) s += `${isArp ? 'arp_op' : 'nw_proto'}=${proto},`;
  if (mask[K_NW_TOS] & 0xfc) s += `nw_tos=${value[K_NW_TOS] & 0xfc},`;
  if (mask[K_NW_TOS] & 0x03) s += `nw_ecn=${value[K_NW_TOS] & 0x03},`;
  if (mask[K_DL_TYPE] && dlType === ETH_TYPE_IP && proto === IPPROTO_ICMP) {
    if (mask[K_TP_SRC]) s += masked16('icmp_type', value[K_TP_SRC], mask[K_TP_SRC]);
    if (mask[K_TP_DST]) s += masked16('icmp_code', value[K_TP_DST], mask[K_TP_DST]);
  } else {
    if (mask[K_TP_SRC]) s += masked16('tp_src', value[K_TP_SRC], mask[K_TP_SRC]);
    if (mask[K_TP_DST]) s += masked16('tp_dst', value[K_TP_DST], mask[K_TP_DST]);
  }
  return s.endsWith(',') ? s.slice(0, -1) : s;
}

/** Inputs of one dump-flows line. */
export interface FlowStatsLine {
  table: number;
  priority: number;
  cookieHi: number;
  cookieLo: number;
  durationSec: number;
  durationNsec: number;
  idleTimeout: number;
  hardTimeout: number;
  flags: number;
  importance: number;
  nPackets: number;
  nBytes: number;
  value: Uint32Array;
  mask: Uint32Array;
  instructions: Instructions;
}

export function formatDuration(sec: number, nsec: number): string {
  let s = String(sec);
  if (nsec > 0) {
    const ms = Math.floor(nsec / 1e6);
    if (ms * 1e6 === nsec) s += '.' + String(ms).padStart(3, '0');
    else s += ('.' + String(nsec).padStart(9, '0')).replace(/0+$/, '');
  }
  return s + 's';
}

/** One line of `ovs-ofctl -O OpenFlow13 dump-flows` (with the leading space). */
export function formatFlowStats(f: FlowStatsLine, showStats = true): string {
  let s = ' ';
  if (showStats || f.cookieHi || f.cookieLo) s += `cookie=${format64(f.cookieHi, f.cookieLo)}, `;
  if (showStats) s += `duration=${formatDuration(f.durationSec, f.durationNsec)}, `;
  if (showStats || f.table) s += `table=${f.table}, `;
  if (showStats) s += `n_packets=${f.nPackets}, n_bytes=${f.nBytes}, `;
  if (f.idleTimeout) s += `idle_timeout=${f.idleTimeout}, `;
  if (f.hardTimeout) s += `hard_timeout=${f.hardTimeout}, `;
  if (f.flags) {
    if (f.flags & FF_SEND_FLOW_REM) s += 'send_flow_rem ';
    if (f.flags & FF_CHECK_OVERLAP) s += 'check_overlap ';
    if (f.flags & FF_RESET_COUNTS) s += 'reset_counts ';
    if (f.flags & FF_NO_PKT_COUNTS) s += 'no_packet_counts ';
    if (f.flags & FF_NO_BYT_COUNTS) s += 'no_byte_counts ';
  }
  if (f.importance) s += `importance=${f.importance}, `;
  const m = formatMatch(f.value, f.mask, f.priority);
  if (m !== '') s += m + ' ';
  return s + 'actions=' + formatInstructions(f.instructions);
}
