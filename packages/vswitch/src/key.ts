// Packet parsing into the flow key (see consts.ts for the layout). Allocation-free.
import {
  ETH_TYPE_ARP,
  ETH_TYPE_IP,
  ETH_TYPE_RARP,
  ETH_TYPE_VLAN,
  ETH_TYPE_VLAN_8021AD,
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
  VLAN_CFI,
} from './consts.js';

/**
 * Fills `key` from the frame at buf[off..off+len). The caller guarantees len >= 14.
 * Returns the offset of the L3 header relative to `off`.
 */
export function extractKey(buf: Uint8Array, off: number, len: number, inPort: number, tunId: number, key: Uint32Array): number {
  key[K_IN_PORT] = inPort;
  key[K_DST_HI] = (buf[off] << 8) | buf[off + 1];
  key[K_DST_LO] = ((buf[off + 2] << 24) | (buf[off + 3] << 16) | (buf[off + 4] << 8) | buf[off + 5]) >>> 0;
  key[K_SRC_HI] = (buf[off + 6] << 8) | buf[off + 7];
  key[K_SRC_LO] = ((buf[off + 8] << 24) | (buf[off + 9] << 16) | (buf[off + 10] << 8) | buf[off + 11]) >>> 0;
  key[K_TUN_ID] = tunId;
  let type = (buf[off + 12] << 8) | buf[off + 13];
  let l3 = 14;
  if ((type === ETH_TYPE_VLAN || type === ETH_TYPE_VLAN_8021AD) && len >= 18) {
    key[K_VLAN_TCI] = (((buf[off + 14] << 8) | buf[off + 15]) & ~VLAN_CFI) | VLAN_CFI;
    type = (buf[off + 16] << 8) | buf[off + 17];
    l3 = 18;
  } else {
    key[K_VLAN_TCI] = 0;
  }
  if (type < 0x600) type = 0x05ff;
  key[K_DL_TYPE] = type;
  key[K_NW_SRC] = 0;
  key[K_NW_DST] = 0;
  key[K_NW_PROTO] = 0;
  key[K_NW_TOS] = 0;
  key[K_TP_SRC] = 0;
  key[K_TP_DST] = 0;
  const p = off + l3;
  const rest = len - l3;
  if (type === ETH_TYPE_IP) {
    if (rest < 20) return l3;
    const ihl = (buf[p] & 0x0f) << 2;
    if ((buf[p] >> 4) !== 4 || ihl < 20 || rest < ihl) return l3;
    key[K_NW_TOS] = buf[p + 1];
    const proto = buf[p + 9];
    key[K_NW_PROTO] = proto;
    key[K_NW_SRC] = ((buf[p + 12] << 24) | (buf[p + 13] << 16) | (buf[p + 14] << 8) | buf[p + 15]) >>> 0;
    key[K_NW_DST] = ((buf[p + 16] << 24) | (buf[p + 17] << 16) | (buf[p + 18] << 8) | buf[p + 19]) >>> 0;
    const fragOff = ((buf[p + 6] & 0x1f) << 8) | buf[p + 7];
    if (fragOff !== 0) return l3;
    const q = p + ihl;
    const l4rest = rest - ihl;
    if (proto === IPPROTO_TCP || proto === IPPROTO_UDP || proto === IPPROTO_SCTP) {
      if (l4rest >= 4) {
        key[K_TP_SRC] = (buf[q] << 8) | buf[q + 1];
        key[K_TP_DST] = (buf[q + 2] << 8) | buf[q + 3];
      }
    } else if (proto === IPPROTO_ICMP) {
      if (l4rest >= 2) {
        key[K_TP_SRC] = buf[q];
        key[K_TP_DST] = buf[q + 1];
      }
    }
  } else if (type === ETH_TYPE_ARP || type === ETH_TYPE_RARP) {
    // Ethernet/IPv4 ARP only: htype 1, ptype 0x0800, hlen 6, plen 4.
    if (rest >= 28 && buf[p] === 0 && buf[p + 1] === 1 && buf[p + 2] === 8 && buf[p + 3] === 0 && buf[p + 4] === 6 && buf[p + 5] === 4) {
      const op = (buf[p + 6] << 8) | buf[p + 7];
      key[K_NW_PROTO] = op <= 0xff ? op : 0;
      key[K_NW_SRC] = ((buf[p + 14] << 24) | (buf[p + 15] << 16) | (buf[p + 16] << 8) | buf[p + 17]) >>> 0;
      key[K_NW_DST] = ((buf[p + 24] << 24) | (buf[p + 25] << 16) | (buf[p + 26] << 8) | buf[p + 27]) >>> 0;
    }
  }
  return l3;
}

/** 32-bit hash of the first `words` words of `key` (a multiply per word, then murmur3's fmix32). */
export function hashKey(key: Uint32Array, words: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < words; i++) h = Math.imul(h ^ key[i], 0x01000193) + (h >>> 19);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}
