// Numeric constants shared by the data path, the flow tables and the OpenFlow codec.

/** OpenFlow 1.3 reserved port numbers (32-bit forms). */
export const OFPP_MAX = 0xffffff00;
export const OFPP_IN_PORT = 0xfffffff8;
export const OFPP_TABLE = 0xfffffff9;
export const OFPP_NORMAL = 0xfffffffa;
export const OFPP_FLOOD = 0xfffffffb;
export const OFPP_ALL = 0xfffffffc;
export const OFPP_CONTROLLER = 0xfffffffd;
export const OFPP_LOCAL = 0xfffffffe;
export const OFPP_ANY = 0xffffffff;

export const ETH_TYPE_IP = 0x0800;
export const ETH_TYPE_ARP = 0x0806;
export const ETH_TYPE_RARP = 0x8035;
export const ETH_TYPE_IPV6 = 0x86dd;
export const ETH_TYPE_VLAN = 0x8100;
export const ETH_TYPE_VLAN_8021AD = 0x88a8;

export const IPPROTO_ICMP = 1;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;
export const IPPROTO_SCTP = 132;

/**
 * Flow key layout: one Uint32Array of KEY_WORDS words per packet.
 *   0 in_port (32-bit OpenFlow port number)
 *   1 dl_dst bytes 0-1 (16 bits)   2 dl_dst bytes 2-5
 *   3 dl_src bytes 0-1 (16 bits)   4 dl_src bytes 2-5
 *   5 dl_type (inner type when tagged; 0x05ff for 802.3 frames)
 *   6 vlan_tci: PCP<<13 | 0x1000 (tag present) | VID, 0 when untagged
 *   7 nw_src / arp_spa   8 nw_dst / arp_tpa
 *   9 nw_proto / arp_op (low 8 bits)
 *  10 nw_tos (whole TOS byte: DSCP<<2 | ECN)
 *  11 tp_src / icmp_type   12 tp_dst / icmp_code
 *  13 tun_id (VXLAN VNI)
 *  14..21 reg0..reg7 (Nicira registers: zero when a packet arrives, set by load/move actions
 *         during translation; the caches key on the first PKT_WORDS words only)
 */
export const K_IN_PORT = 0;
export const K_DST_HI = 1;
export const K_DST_LO = 2;
export const K_SRC_HI = 3;
export const K_SRC_LO = 4;
export const K_DL_TYPE = 5;
export const K_VLAN_TCI = 6;
export const K_NW_SRC = 7;
export const K_NW_DST = 8;
export const K_NW_PROTO = 9;
export const K_NW_TOS = 10;
export const K_TP_SRC = 11;
export const K_TP_DST = 12;
export const K_TUN_ID = 13;
export const K_REG0 = 14;
/** Words of the key that come from the packet (what the EMC and megaflow caches compare). */
export const PKT_WORDS = 14;
export const N_REGS = 8;
export const KEY_WORDS = 22;

export const VLAN_CFI = 0x1000;
export const VLAN_VID_MASK = 0x0fff;
export const VLAN_PCP_MASK = 0xe000;

/** Per-port counters, indices into Port.counters (a Float64Array). */
export const C_RX_PACKETS = 0;
export const C_RX_BYTES = 1;
export const C_RX_DROPPED = 2;
export const C_RX_ERRORS = 3;
export const C_TX_PACKETS = 4;
export const C_TX_BYTES = 5;
export const C_TX_DROPPED = 6;
export const C_TX_ERRORS = 7;
export const N_COUNTERS = 8;

/** Largest frame the switch forwards (bytes, without FCS); larger frames count as rx errors. */
export const MAX_FRAME = 65535;
/** Minimum frame (an Ethernet header). */
export const MIN_FRAME = 14;
