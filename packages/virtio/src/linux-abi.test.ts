// The real peer for layouts and constants: the Linux kernel's own virtio UAPI headers, compiled
// by gcc. Every offset, bit and register number a Linux guest driver will use is printed by a C
// program and compared with what this package does. Also checks our EVENT_IDX arithmetic
// against the kernel's vring_need_event() and our legacy ring layout against vring_init().
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FlatGuestMemory } from '@ringzero/mmu-ept';
import { afterAll, describe, expect, it } from 'vitest';
import * as B from './blk';
import { MemoryBlockBackend } from './block-backend';
import { DescriptorChain } from './chain';
import * as C from './constants';
import * as CON from './console';
import * as M from './mmio';
import * as N from './net';
import * as P from './pci';
import { SplitQueue } from './split-queue';
import { GuestAllocator } from './testing/alloc';
import { MockDriver } from './testing/driver';
import { mmioDriverTransport } from './testing/mmio-transport';
import { DriverSplitQueue } from './testing/split-driver';

const HEADERS = ['/usr/include/linux/virtio_ring.h', '/usr/include/linux/virtio_pci.h', '/usr/include/linux/virtio_blk.h', '/usr/include/linux/virtio_net.h'];
const gcc = spawnSync('gcc', ['--version']).status === 0;
const headers = HEADERS.every((h) => existsSync(h));
if (!gcc || !headers) {
  console.warn(`SKIPPED: ${gcc ? 'linux-libc-dev virtio headers' : 'gcc'} not installed: virtio layouts and constants are not checked against the Linux UAPI headers`);
}

const PROGRAM = String.raw`
#include <stdio.h>
#include <stddef.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_ring.h>
#include <linux/virtio_pci.h>
#include <linux/virtio_mmio.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_net.h>
#include <linux/virtio_console.h>
#define P(name, v) printf("\"%s\": %lld,\n", name, (long long)(v))
#define O(s, f) P(#s "." #f, offsetof(struct s, f))
int main(void) {
  printf("{\n");
  P("S_ACKNOWLEDGE", VIRTIO_CONFIG_S_ACKNOWLEDGE); P("S_DRIVER", VIRTIO_CONFIG_S_DRIVER);
  P("S_DRIVER_OK", VIRTIO_CONFIG_S_DRIVER_OK); P("S_FEATURES_OK", VIRTIO_CONFIG_S_FEATURES_OK);
  P("S_NEEDS_RESET", VIRTIO_CONFIG_S_NEEDS_RESET); P("S_FAILED", VIRTIO_CONFIG_S_FAILED);
  P("F_INDIRECT", VIRTIO_RING_F_INDIRECT_DESC); P("F_EVENT_IDX", VIRTIO_RING_F_EVENT_IDX);
  P("F_VERSION_1", VIRTIO_F_VERSION_1); P("F_RING_PACKED", VIRTIO_F_RING_PACKED);
  P("F_IN_ORDER", VIRTIO_F_IN_ORDER); P("F_ACCESS_PLATFORM", VIRTIO_F_ACCESS_PLATFORM);
  P("ID_NET", VIRTIO_ID_NET); P("ID_BLOCK", VIRTIO_ID_BLOCK); P("ID_CONSOLE", VIRTIO_ID_CONSOLE); P("ID_RNG", VIRTIO_ID_RNG);
  P("DESC_F_NEXT", VRING_DESC_F_NEXT); P("DESC_F_WRITE", VRING_DESC_F_WRITE); P("DESC_F_INDIRECT", VRING_DESC_F_INDIRECT);
  P("PACKED_F_AVAIL", 1 << VRING_PACKED_DESC_F_AVAIL); P("PACKED_F_USED", 1 << VRING_PACKED_DESC_F_USED);
  P("EVENT_ENABLE", VRING_PACKED_EVENT_FLAG_ENABLE); P("EVENT_DISABLE", VRING_PACKED_EVENT_FLAG_DISABLE); P("EVENT_DESC", VRING_PACKED_EVENT_FLAG_DESC);
  P("AVAIL_F_NO_INTERRUPT", VRING_AVAIL_F_NO_INTERRUPT); P("USED_F_NO_NOTIFY", VRING_USED_F_NO_NOTIFY);
  P("sizeof.vring_desc", sizeof(struct vring_desc)); P("sizeof.vring_packed_desc", sizeof(struct vring_packed_desc));
  O(vring_packed_desc, addr); O(vring_packed_desc, len); O(vring_packed_desc, id); O(vring_packed_desc, flags);
  O(vring_desc, addr); O(vring_desc, len); O(vring_desc, flags); O(vring_desc, next);
  P("MMIO_MAGIC", VIRTIO_MMIO_MAGIC_VALUE); P("MMIO_MAGIC_VALUE", ('v' | 'i' << 8 | 'r' << 16 | (long long)'t' << 24)); P("MMIO_VERSION", VIRTIO_MMIO_VERSION); P("MMIO_DEVICE_ID", VIRTIO_MMIO_DEVICE_ID);
  P("MMIO_VENDOR_ID", VIRTIO_MMIO_VENDOR_ID); P("MMIO_DEVICE_FEATURES", VIRTIO_MMIO_DEVICE_FEATURES);
  P("MMIO_DEVICE_FEATURES_SEL", VIRTIO_MMIO_DEVICE_FEATURES_SEL); P("MMIO_DRIVER_FEATURES", VIRTIO_MMIO_DRIVER_FEATURES);
  P("MMIO_DRIVER_FEATURES_SEL", VIRTIO_MMIO_DRIVER_FEATURES_SEL); P("MMIO_QUEUE_SEL", VIRTIO_MMIO_QUEUE_SEL);
  P("MMIO_QUEUE_NUM_MAX", VIRTIO_MMIO_QUEUE_NUM_MAX); P("MMIO_QUEUE_NUM", VIRTIO_MMIO_QUEUE_NUM); P("MMIO_QUEUE_READY", VIRTIO_MMIO_QUEUE_READY);
  P("MMIO_QUEUE_NOTIFY", VIRTIO_MMIO_QUEUE_NOTIFY); P("MMIO_INTERRUPT_STATUS", VIRTIO_MMIO_INTERRUPT_STATUS);
  P("MMIO_INTERRUPT_ACK", VIRTIO_MMIO_INTERRUPT_ACK); P("MMIO_STATUS", VIRTIO_MMIO_STATUS);
  P("MMIO_QUEUE_DESC_LOW", VIRTIO_MMIO_QUEUE_DESC_LOW); P("MMIO_QUEUE_DESC_HIGH", VIRTIO_MMIO_QUEUE_DESC_HIGH);
  P("MMIO_QUEUE_DRIVER_LOW", VIRTIO_MMIO_QUEUE_AVAIL_LOW); P("MMIO_QUEUE_DRIVER_HIGH", VIRTIO_MMIO_QUEUE_AVAIL_HIGH);
  P("MMIO_QUEUE_DEVICE_LOW", VIRTIO_MMIO_QUEUE_USED_LOW); P("MMIO_QUEUE_DEVICE_HIGH", VIRTIO_MMIO_QUEUE_USED_HIGH);
  P("MMIO_SHM_SEL", VIRTIO_MMIO_SHM_SEL); P("MMIO_SHM_LEN_LOW", VIRTIO_MMIO_SHM_LEN_LOW); P("MMIO_SHM_LEN_HIGH", VIRTIO_MMIO_SHM_LEN_HIGH);
  P("MMIO_CONFIG_GENERATION", VIRTIO_MMIO_CONFIG_GENERATION); P("MMIO_CONFIG", VIRTIO_MMIO_CONFIG);
  P("MMIO_INT_VRING", VIRTIO_MMIO_INT_VRING); P("MMIO_INT_CONFIG", VIRTIO_MMIO_INT_CONFIG);
  P("PCI_CAP_COMMON_CFG", VIRTIO_PCI_CAP_COMMON_CFG); P("PCI_CAP_NOTIFY_CFG", VIRTIO_PCI_CAP_NOTIFY_CFG);
  P("PCI_CAP_ISR_CFG", VIRTIO_PCI_CAP_ISR_CFG); P("PCI_CAP_DEVICE_CFG", VIRTIO_PCI_CAP_DEVICE_CFG); P("PCI_CAP_PCI_CFG", VIRTIO_PCI_CAP_PCI_CFG);
  P("sizeof.virtio_pci_cap", sizeof(struct virtio_pci_cap)); P("sizeof.virtio_pci_notify_cap", sizeof(struct virtio_pci_notify_cap));
  P("sizeof.virtio_pci_cfg_cap", sizeof(struct virtio_pci_cfg_cap)); P("sizeof.virtio_pci_common_cfg", sizeof(struct virtio_pci_common_cfg));
  O(virtio_pci_cap, cfg_type); O(virtio_pci_cap, bar); O(virtio_pci_cap, offset); O(virtio_pci_cap, length);
  O(virtio_pci_notify_cap, notify_off_multiplier); O(virtio_pci_cfg_cap, pci_cfg_data);
  O(virtio_pci_common_cfg, device_feature_select); O(virtio_pci_common_cfg, device_feature); O(virtio_pci_common_cfg, guest_feature_select);
  O(virtio_pci_common_cfg, guest_feature); O(virtio_pci_common_cfg, msix_config); O(virtio_pci_common_cfg, num_queues);
  O(virtio_pci_common_cfg, device_status); O(virtio_pci_common_cfg, config_generation); O(virtio_pci_common_cfg, queue_select);
  O(virtio_pci_common_cfg, queue_size); O(virtio_pci_common_cfg, queue_msix_vector); O(virtio_pci_common_cfg, queue_enable);
  O(virtio_pci_common_cfg, queue_notify_off); O(virtio_pci_common_cfg, queue_desc_lo); O(virtio_pci_common_cfg, queue_desc_hi);
  O(virtio_pci_common_cfg, queue_avail_lo); O(virtio_pci_common_cfg, queue_avail_hi); O(virtio_pci_common_cfg, queue_used_lo); O(virtio_pci_common_cfg, queue_used_hi);
  P("PCI_HOST_FEATURES", VIRTIO_PCI_HOST_FEATURES); P("PCI_GUEST_FEATURES", VIRTIO_PCI_GUEST_FEATURES); P("PCI_QUEUE_PFN", VIRTIO_PCI_QUEUE_PFN);
  P("PCI_QUEUE_NUM", VIRTIO_PCI_QUEUE_NUM); P("PCI_QUEUE_SEL", VIRTIO_PCI_QUEUE_SEL); P("PCI_QUEUE_NOTIFY", VIRTIO_PCI_QUEUE_NOTIFY);
  P("PCI_STATUS", VIRTIO_PCI_STATUS); P("PCI_ISR", VIRTIO_PCI_ISR); P("PCI_MSI_CONFIG_VECTOR", VIRTIO_MSI_CONFIG_VECTOR);
  P("PCI_MSI_QUEUE_VECTOR", VIRTIO_MSI_QUEUE_VECTOR); P("PCI_CONFIG_OFF_MSIX", VIRTIO_PCI_CONFIG_OFF(1)); P("PCI_CONFIG_OFF", VIRTIO_PCI_CONFIG_OFF(0));
  P("PCI_QUEUE_ADDR_SHIFT", VIRTIO_PCI_QUEUE_ADDR_SHIFT); P("PCI_VRING_ALIGN", VIRTIO_PCI_VRING_ALIGN); P("MSI_NO_VECTOR", VIRTIO_MSI_NO_VECTOR);
  P("PCI_ISR_CONFIG", VIRTIO_PCI_ISR_CONFIG);
  P("BLK_F_SIZE_MAX", 1 << VIRTIO_BLK_F_SIZE_MAX); P("BLK_F_SEG_MAX", 1 << VIRTIO_BLK_F_SEG_MAX); P("BLK_F_RO", 1 << VIRTIO_BLK_F_RO);
  P("BLK_F_BLK_SIZE", 1 << VIRTIO_BLK_F_BLK_SIZE); P("BLK_F_FLUSH", 1 << VIRTIO_BLK_F_FLUSH); P("BLK_F_DISCARD", 1 << VIRTIO_BLK_F_DISCARD);
  P("BLK_F_WRITE_ZEROES", 1 << VIRTIO_BLK_F_WRITE_ZEROES);
  P("BLK_T_IN", VIRTIO_BLK_T_IN); P("BLK_T_OUT", VIRTIO_BLK_T_OUT); P("BLK_T_FLUSH", VIRTIO_BLK_T_FLUSH); P("BLK_T_GET_ID", VIRTIO_BLK_T_GET_ID);
  P("BLK_T_DISCARD", VIRTIO_BLK_T_DISCARD); P("BLK_T_WRITE_ZEROES", VIRTIO_BLK_T_WRITE_ZEROES);
  P("BLK_S_OK", VIRTIO_BLK_S_OK); P("BLK_S_IOERR", VIRTIO_BLK_S_IOERR); P("BLK_S_UNSUPP", VIRTIO_BLK_S_UNSUPP);
  P("BLK_ID_BYTES", VIRTIO_BLK_ID_BYTES); P("sizeof.virtio_blk_outhdr", sizeof(struct virtio_blk_outhdr));
  P("sizeof.virtio_blk_discard_write_zeroes", sizeof(struct virtio_blk_discard_write_zeroes));
  O(virtio_blk_discard_write_zeroes, sector); O(virtio_blk_discard_write_zeroes, num_sectors); O(virtio_blk_discard_write_zeroes, flags);
  O(virtio_blk_outhdr, type); O(virtio_blk_outhdr, sector);
  O(virtio_blk_config, capacity); O(virtio_blk_config, size_max); O(virtio_blk_config, seg_max); O(virtio_blk_config, blk_size);
  O(virtio_blk_config, num_queues); O(virtio_blk_config, max_discard_sectors); O(virtio_blk_config, max_discard_seg);
  O(virtio_blk_config, discard_sector_alignment); O(virtio_blk_config, max_write_zeroes_sectors); O(virtio_blk_config, max_write_zeroes_seg);
  O(virtio_blk_config, write_zeroes_may_unmap);
  P("NET_F_CSUM", 1 << VIRTIO_NET_F_CSUM); P("NET_F_GUEST_CSUM", 1 << VIRTIO_NET_F_GUEST_CSUM); P("NET_F_MTU", 1 << VIRTIO_NET_F_MTU);
  P("NET_F_MAC", 1 << VIRTIO_NET_F_MAC); P("NET_F_GUEST_TSO4", 1 << VIRTIO_NET_F_GUEST_TSO4); P("NET_F_GUEST_TSO6", 1 << VIRTIO_NET_F_GUEST_TSO6);
  P("NET_F_GUEST_UFO", 1 << VIRTIO_NET_F_GUEST_UFO); P("NET_F_HOST_TSO4", 1 << VIRTIO_NET_F_HOST_TSO4); P("NET_F_HOST_TSO6", 1 << VIRTIO_NET_F_HOST_TSO6);
  P("NET_F_HOST_UFO", 1 << VIRTIO_NET_F_HOST_UFO); P("NET_F_MRG_RXBUF", 1 << VIRTIO_NET_F_MRG_RXBUF); P("NET_F_STATUS", 1 << VIRTIO_NET_F_STATUS);
  P("NET_F_CTRL_VQ", 1 << VIRTIO_NET_F_CTRL_VQ); P("NET_F_MQ", 1 << VIRTIO_NET_F_MQ); P("NET_S_LINK_UP", VIRTIO_NET_S_LINK_UP);
  P("sizeof.virtio_net_hdr_v1", sizeof(struct virtio_net_hdr_v1)); P("sizeof.virtio_net_hdr", sizeof(struct virtio_net_hdr));
  O(virtio_net_hdr_v1, num_buffers);
  O(virtio_net_config, mac); O(virtio_net_config, status); O(virtio_net_config, max_virtqueue_pairs); O(virtio_net_config, mtu);
  P("NET_F_CTRL_RX", 1 << VIRTIO_NET_F_CTRL_RX); P("NET_F_CTRL_VLAN", 1 << VIRTIO_NET_F_CTRL_VLAN); P("NET_F_CTRL_RX_EXTRA", 1 << VIRTIO_NET_F_CTRL_RX_EXTRA);
  P("NET_F_GUEST_ANNOUNCE", 1 << VIRTIO_NET_F_GUEST_ANNOUNCE); P("NET_F_CTRL_MAC_ADDR", 1 << VIRTIO_NET_F_CTRL_MAC_ADDR); P("NET_S_ANNOUNCE", VIRTIO_NET_S_ANNOUNCE);
  P("NET_OK", VIRTIO_NET_OK); P("NET_ERR", VIRTIO_NET_ERR);
  P("NET_CTRL_RX", VIRTIO_NET_CTRL_RX); P("NET_CTRL_RX_PROMISC", VIRTIO_NET_CTRL_RX_PROMISC); P("NET_CTRL_RX_ALLMULTI", VIRTIO_NET_CTRL_RX_ALLMULTI);
  P("NET_CTRL_RX_ALLUNI", VIRTIO_NET_CTRL_RX_ALLUNI); P("NET_CTRL_RX_NOMULTI", VIRTIO_NET_CTRL_RX_NOMULTI); P("NET_CTRL_RX_NOUNI", VIRTIO_NET_CTRL_RX_NOUNI);
  P("NET_CTRL_RX_NOBCAST", VIRTIO_NET_CTRL_RX_NOBCAST); P("NET_CTRL_MAC", VIRTIO_NET_CTRL_MAC); P("NET_CTRL_MAC_TABLE_SET", VIRTIO_NET_CTRL_MAC_TABLE_SET);
  P("NET_CTRL_MAC_ADDR_SET", VIRTIO_NET_CTRL_MAC_ADDR_SET); P("NET_CTRL_VLAN", VIRTIO_NET_CTRL_VLAN); P("NET_CTRL_VLAN_ADD", VIRTIO_NET_CTRL_VLAN_ADD);
  P("NET_CTRL_VLAN_DEL", VIRTIO_NET_CTRL_VLAN_DEL); P("NET_CTRL_ANNOUNCE", VIRTIO_NET_CTRL_ANNOUNCE); P("NET_CTRL_ANNOUNCE_ACK", VIRTIO_NET_CTRL_ANNOUNCE_ACK);
  P("NET_CTRL_MQ", VIRTIO_NET_CTRL_MQ); P("NET_CTRL_MQ_VQ_PAIRS_SET", VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET); P("NET_CTRL_MQ_VQ_PAIRS_MIN", VIRTIO_NET_CTRL_MQ_VQ_PAIRS_MIN);
  P("NET_CTRL_MQ_VQ_PAIRS_MAX", VIRTIO_NET_CTRL_MQ_VQ_PAIRS_MAX);
  P("sizeof.virtio_net_ctrl_hdr", sizeof(struct virtio_net_ctrl_hdr)); O(virtio_net_ctrl_hdr, class); O(virtio_net_ctrl_hdr, cmd);
  P("sizeof.virtio_net_ctrl_mac", sizeof(struct virtio_net_ctrl_mac)); O(virtio_net_ctrl_mac, entries); O(virtio_net_ctrl_mac, macs);
  P("sizeof.virtio_net_ctrl_mq", sizeof(struct virtio_net_ctrl_mq)); O(virtio_net_ctrl_mq, virtqueue_pairs);
  /* Control commands laid out with the UAPI structs, as the Linux driver builds them: header, then each data buffer. */
  { unsigned char buf[64]; unsigned i;
#define DUMP(name, p, n) do { printf("\"%s\": [", name); for (i = 0; i < (n); i++) printf("%s%u", i ? "," : "", ((unsigned char *)(p))[i]); printf("],\n"); } while (0)
    struct virtio_net_ctrl_hdr h = { VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET }; DUMP("cmd.mq.hdr", &h, sizeof h);
    struct virtio_net_ctrl_mq mq = { 3 }; DUMP("cmd.mq.data", &mq, sizeof mq);
    struct virtio_net_ctrl_hdr h2 = { VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_TABLE_SET }; DUMP("cmd.mac.hdr", &h2, sizeof h2);
    struct virtio_net_ctrl_mac *uni = (void *)buf; uni->entries = 1;
    for (i = 0; i < 6; i++) uni->macs[0][i] = 0x50 + i;
    DUMP("cmd.mac.uni", buf, sizeof *uni + 1 * 6);
    struct virtio_net_ctrl_mac *mc = (void *)buf; mc->entries = 2;
    for (i = 0; i < 6; i++) { mc->macs[0][i] = i ? 0x60 + i : 0x01; mc->macs[1][i] = i ? 0x70 + i : 0x33; }
    DUMP("cmd.mac.multi", buf, sizeof *mc + 2 * 6);
  }
  P("CONSOLE_DEVICE_READY", VIRTIO_CONSOLE_DEVICE_READY); P("CONSOLE_PORT_ADD", VIRTIO_CONSOLE_PORT_ADD); P("CONSOLE_PORT_REMOVE", VIRTIO_CONSOLE_PORT_REMOVE);
  P("CONSOLE_PORT_READY", VIRTIO_CONSOLE_PORT_READY); P("CONSOLE_CONSOLE_PORT", VIRTIO_CONSOLE_CONSOLE_PORT); P("CONSOLE_RESIZE", VIRTIO_CONSOLE_RESIZE);
  P("CONSOLE_PORT_OPEN", VIRTIO_CONSOLE_PORT_OPEN); P("CONSOLE_PORT_NAME", VIRTIO_CONSOLE_PORT_NAME); P("CONSOLE_BAD_ID", VIRTIO_CONSOLE_BAD_ID);
  P("sizeof.virtio_console_control", sizeof(struct virtio_console_control)); O(virtio_console_control, id); O(virtio_console_control, event); O(virtio_console_control, value);
  { struct virtio_console_control m; unsigned i;
    m.id = VIRTIO_CONSOLE_BAD_ID; m.event = VIRTIO_CONSOLE_DEVICE_READY; m.value = 1; DUMP("con.device_ready", &m, sizeof m);
    m.id = 1; m.event = VIRTIO_CONSOLE_PORT_READY; m.value = 1; DUMP("con.port_ready.1", &m, sizeof m);
    m.id = 1; m.event = VIRTIO_CONSOLE_PORT_OPEN; m.value = 1; DUMP("con.port_open.1", &m, sizeof m); }
  P("CONSOLE_F_SIZE", 1 << VIRTIO_CONSOLE_F_SIZE); P("CONSOLE_F_MULTIPORT", 1 << VIRTIO_CONSOLE_F_MULTIPORT);
  P("CONSOLE_F_EMERG_WRITE", 1 << VIRTIO_CONSOLE_F_EMERG_WRITE);
  O(virtio_console_config, cols); O(virtio_console_config, rows); O(virtio_console_config, max_nr_ports); O(virtio_console_config, emerg_wr);
  { struct vring vr; unsigned n;
    for (n = 1; n <= 1024; n *= 2) { vring_init(&vr, n, (void *)0, VIRTIO_PCI_VRING_ALIGN);
      printf("\"vring.%u.avail\": %lld,\n\"vring.%u.used\": %lld,\n", n, (long long)(size_t)vr.avail, n, (long long)(size_t)vr.used); } }
  /* vring_need_event over triples read from stdin */
  { unsigned e, nw, o; printf("\"need_event\": ["); int first = 1;
    while (scanf("%u %u %u", &e, &nw, &o) == 3) { printf("%s%d", first ? "" : ",", vring_need_event(e, nw, o)); first = 0; }
    printf("]\n"); }
  printf("}\n");
  return 0;
}
`;

const dir = gcc && headers ? mkdtempSync(join(tmpdir(), 'virtio-abi-')) : '';
afterAll(() => {
  if (dir !== '') rmSync(dir, { recursive: true, force: true });
});

/** Deterministic (event, new, old) triples around the 16-bit wrap. */
const triples: [number, number, number][] = [];
for (let i = 0; i < 3000; i++) {
  const old = (i * 40503) & 0xffff;
  const n = (old + ((i * 7) % 40)) & 0xffff;
  const ev = (old + ((i * 13) % 50) - 5) & 0xffff;
  triples.push([ev, n, old]);
}

function linux(): Record<string, number> & { need_event: number[] } {
  const src = join(dir, 'abi.c');
  const exe = join(dir, 'abi');
  writeFileSync(src, PROGRAM);
  execFileSync('gcc', ['-std=gnu11', '-o', exe, src]);
  const out = execFileSync(exe, { input: triples.map((t) => t.join(' ')).join('\n') }).toString();
  return JSON.parse(out) as Record<string, number> & { need_event: number[] };
}

describe.skipIf(!gcc || !headers)('layouts and constants match the Linux virtio UAPI headers', () => {
  const L = gcc && headers ? linux() : ({} as ReturnType<typeof linux>);

  it('status bits, ring feature bits, descriptor flags and device IDs', () => {
    expect([C.STATUS_ACKNOWLEDGE, C.STATUS_DRIVER, C.STATUS_DRIVER_OK, C.STATUS_FEATURES_OK, C.STATUS_NEEDS_RESET, C.STATUS_FAILED]).toEqual([
      L.S_ACKNOWLEDGE, L.S_DRIVER, L.S_DRIVER_OK, L.S_FEATURES_OK, L.S_NEEDS_RESET, L.S_FAILED,
    ]);
    expect(C.F_INDIRECT_DESC).toBe(2 ** L.F_INDIRECT);
    expect(C.F_EVENT_IDX).toBe(2 ** L.F_EVENT_IDX);
    expect(C.F_HI_VERSION_1).toBe(2 ** (L.F_VERSION_1 - 32));
    expect(C.F_HI_ACCESS_PLATFORM).toBe(2 ** (L.F_ACCESS_PLATFORM - 32));
    expect(C.F_HI_RING_PACKED).toBe(2 ** (L.F_RING_PACKED - 32));
    expect(C.F_HI_IN_ORDER).toBe(2 ** (L.F_IN_ORDER - 32));
    expect([C.VIRTQ_DESC_F_NEXT, C.VIRTQ_DESC_F_WRITE, C.VIRTQ_DESC_F_INDIRECT, C.VIRTQ_DESC_F_AVAIL, C.VIRTQ_DESC_F_USED]).toEqual([
      L.DESC_F_NEXT, L.DESC_F_WRITE, L.DESC_F_INDIRECT, L.PACKED_F_AVAIL, L.PACKED_F_USED,
    ]);
    expect([C.RING_EVENT_FLAGS_ENABLE, C.RING_EVENT_FLAGS_DISABLE, C.RING_EVENT_FLAGS_DESC]).toEqual([L.EVENT_ENABLE, L.EVENT_DISABLE, L.EVENT_DESC]);
    expect([C.VIRTQ_AVAIL_F_NO_INTERRUPT, C.VIRTQ_USED_F_NO_NOTIFY]).toEqual([L.AVAIL_F_NO_INTERRUPT, L.USED_F_NO_NOTIFY]);
    expect([C.DEVICE_ID_NET, C.DEVICE_ID_BLOCK, C.DEVICE_ID_CONSOLE, C.DEVICE_ID_RNG]).toEqual([L.ID_NET, L.ID_BLOCK, L.ID_CONSOLE, L.ID_RNG]);
    expect(C.NO_VECTOR).toBe(L.MSI_NO_VECTOR);
    // descriptor layouts our queues read
    expect([L['sizeof.vring_desc'], L['vring_desc.addr'], L['vring_desc.len'], L['vring_desc.flags'], L['vring_desc.next']]).toEqual([16, 0, 8, 12, 14]);
    expect([L['sizeof.vring_packed_desc'], L['vring_packed_desc.addr'], L['vring_packed_desc.len'], L['vring_packed_desc.id'], L['vring_packed_desc.flags']]).toEqual([16, 0, 8, 12, 14]);
  });

  it('virtio-mmio register offsets and interrupt bits', () => {
    const ours: Record<string, unknown> = { ...M };
    for (const k of Object.keys(L).filter((k) => k.startsWith('MMIO_') && !k.startsWith('MMIO_INT_'))) expect([k, ours[k]]).toEqual([k, L[k]]);
    expect([C.ISR_QUEUE, C.ISR_CONFIG]).toEqual([L.MMIO_INT_VRING, L.MMIO_INT_CONFIG]);
    expect(C.ISR_CONFIG).toBe(L.PCI_ISR_CONFIG);
  });

  it('virtio-pci common config, capabilities and the legacy register block', () => {
    const cc = 'virtio_pci_common_cfg.';
    expect([P.COMMON_DFSELECT, P.COMMON_DF, P.COMMON_GFSELECT, P.COMMON_GF, P.COMMON_MSIX, P.COMMON_NUMQ, P.COMMON_STATUS, P.COMMON_CFGGENERATION]).toEqual(
      ['device_feature_select', 'device_feature', 'guest_feature_select', 'guest_feature', 'msix_config', 'num_queues', 'device_status', 'config_generation'].map((f) => L[cc + f]),
    );
    expect([P.COMMON_Q_SELECT, P.COMMON_Q_SIZE, P.COMMON_Q_MSIX, P.COMMON_Q_ENABLE, P.COMMON_Q_NOFF, P.COMMON_Q_DESCLO, P.COMMON_Q_DESCHI, P.COMMON_Q_AVAILLO, P.COMMON_Q_AVAILHI, P.COMMON_Q_USEDLO, P.COMMON_Q_USEDHI]).toEqual(
      ['queue_select', 'queue_size', 'queue_msix_vector', 'queue_enable', 'queue_notify_off', 'queue_desc_lo', 'queue_desc_hi', 'queue_avail_lo', 'queue_avail_hi', 'queue_used_lo', 'queue_used_hi'].map((f) => L[cc + f]),
    );
    expect([P.PCI_CAP_COMMON_CFG, P.PCI_CAP_NOTIFY_CFG, P.PCI_CAP_ISR_CFG, P.PCI_CAP_DEVICE_CFG, P.PCI_CAP_PCI_CFG]).toEqual([
      L.PCI_CAP_COMMON_CFG, L.PCI_CAP_NOTIFY_CFG, L.PCI_CAP_ISR_CFG, L.PCI_CAP_DEVICE_CFG, L.PCI_CAP_PCI_CFG,
    ]);
    // Our capability structures, read back from config space, with Linux's struct layout.
    const fn = new P.VirtioPci(new B.VirtioBlk(new MemoryBlockBackend(4096)), new FlatGuestMemory(4096), { msi: () => undefined });
    const caps = new Map<number, number>();
    for (let at = fn.configRead(0x34, 1); at !== 0; at = fn.configRead(at + 1, 1)) if (fn.configRead(at, 1) === 9) caps.set(fn.configRead(at + L['virtio_pci_cap.cfg_type'], 1), at);
    const common = caps.get(L.PCI_CAP_COMMON_CFG)!;
    expect(fn.configRead(common + 2, 1)).toBe(L['sizeof.virtio_pci_cap']);
    expect(fn.configRead(common + L['virtio_pci_cap.bar'], 1)).toBe(P.BAR_MODERN);
    expect(fn.configRead(common + L['virtio_pci_cap.offset'], 4)).toBe(P.MODERN_COMMON);
    // Linux's virtio_pci_modern refuses a common area shorter than its struct.
    expect(fn.configRead(common + L['virtio_pci_cap.length'], 4)).toBeGreaterThanOrEqual(L['sizeof.virtio_pci_common_cfg']);
    const notify = caps.get(L.PCI_CAP_NOTIFY_CFG)!;
    expect(fn.configRead(notify + 2, 1)).toBe(L['sizeof.virtio_pci_notify_cap']);
    expect(fn.configRead(notify + L['virtio_pci_notify_cap.notify_off_multiplier'], 4)).toBe(P.NOTIFY_OFF_MULTIPLIER);
    const pcicfg = caps.get(L.PCI_CAP_PCI_CFG)!;
    expect(fn.configRead(pcicfg + 2, 1)).toBe(L['sizeof.virtio_pci_cfg_cap']);
    expect(L['virtio_pci_cfg_cap.pci_cfg_data']).toBe(16);
    expect([P.LEGACY_HOST_FEATURES, P.LEGACY_GUEST_FEATURES, P.LEGACY_QUEUE_PFN, P.LEGACY_QUEUE_NUM, P.LEGACY_QUEUE_SEL, P.LEGACY_QUEUE_NOTIFY, P.LEGACY_STATUS, P.LEGACY_ISR, P.LEGACY_MSIX_CONFIG, P.LEGACY_MSIX_QUEUE]).toEqual([
      L.PCI_HOST_FEATURES, L.PCI_GUEST_FEATURES, L.PCI_QUEUE_PFN, L.PCI_QUEUE_NUM, L.PCI_QUEUE_SEL, L.PCI_QUEUE_NOTIFY, L.PCI_STATUS, L.PCI_ISR, L.PCI_MSI_CONFIG_VECTOR, L.PCI_MSI_QUEUE_VECTOR,
    ]);
    expect([L.PCI_CONFIG_OFF, L.PCI_CONFIG_OFF_MSIX]).toEqual([0x14, 0x18]);
    expect(2 ** L.PCI_QUEUE_ADDR_SHIFT).toBe(4096);
  });

  it('the legacy ring layout for a queue PFN matches vring_init(num, 4096)', () => {
    for (let n = 1; n <= 1024; n *= 2) {
      const avail = 16 * n;
      const used = Math.ceil((avail + 6 + 2 * n) / L.PCI_VRING_ALIGN) * L.PCI_VRING_ALIGN;
      expect([n, avail, used]).toEqual([n, L[`vring.${n}.avail`], L[`vring.${n}.used`]]);
    }
  });

  it('virtio-blk bits, request layout and the config fields a Linux driver reads', () => {
    for (const k of ['BLK_F_SIZE_MAX', 'BLK_F_SEG_MAX', 'BLK_F_RO', 'BLK_F_BLK_SIZE', 'BLK_F_FLUSH', 'BLK_F_DISCARD', 'BLK_F_WRITE_ZEROES', 'BLK_T_IN', 'BLK_T_OUT', 'BLK_T_FLUSH', 'BLK_T_GET_ID', 'BLK_T_DISCARD', 'BLK_T_WRITE_ZEROES', 'BLK_S_OK', 'BLK_S_IOERR', 'BLK_S_UNSUPP', 'BLK_ID_BYTES']) {
      expect([k, (B as Record<string, unknown>)[k]]).toEqual([k, L[k]]);
    }
    expect([L['sizeof.virtio_blk_outhdr'], L['virtio_blk_outhdr.type'], L['virtio_blk_outhdr.sector']]).toEqual([16, 0, 8]);
    expect([L['sizeof.virtio_blk_discard_write_zeroes'], L['virtio_blk_discard_write_zeroes.sector'], L['virtio_blk_discard_write_zeroes.num_sectors'], L['virtio_blk_discard_write_zeroes.flags']]).toEqual([16, 0, 8, 12]);
    const blk = new B.VirtioBlk(new MemoryBlockBackend(3 * 512 * 1024), { queueSize: 128 });
    const rd = (off: number, n: number): number => {
      let v = 0;
      for (let i = n - 1; i >= 0; i--) v = v * 256 + blk.readConfig(off + i);
      return v;
    };
    const f = (name: string): number => L[`virtio_blk_config.${name}`];
    expect(rd(f('capacity'), 4)).toBe(3 * 1024);
    expect(rd(f('seg_max'), 4)).toBe(126);
    expect(rd(f('size_max'), 4)).toBe(1 << 20);
    expect(rd(f('blk_size'), 4)).toBe(512);
    expect(rd(f('num_queues'), 2)).toBe(1);
    expect(rd(f('max_discard_seg'), 4)).toBe(1);
    expect(rd(f('max_write_zeroes_seg'), 4)).toBe(1);
    expect(rd(f('discard_sector_alignment'), 4)).toBe(1);
    expect(rd(f('max_discard_sectors'), 4)).toBeGreaterThan(0);
    expect(rd(f('max_write_zeroes_sectors'), 4)).toBeGreaterThan(0);
    expect(rd(f('write_zeroes_may_unmap'), 1)).toBe(1);
    expect(blk.configSize).toBeGreaterThanOrEqual(f('write_zeroes_may_unmap') + 1);
  });

  it('virtio-net bits, header sizes and config fields', () => {
    for (const k of Object.keys(L).filter((k) => k.startsWith('NET_F_') || k === 'NET_S_LINK_UP')) expect([k, (N as Record<string, unknown>)[k]]).toEqual([k, L[k]]);
    expect([N.NET_HDR_LEN, N.NET_HDR_LEN_LEGACY]).toEqual([L['sizeof.virtio_net_hdr_v1'], L['sizeof.virtio_net_hdr']]);
    expect(L['virtio_net_hdr_v1.num_buffers']).toBe(10);
    const net = new N.VirtioNet({ mac: new Uint8Array([1, 2, 3, 4, 5, 6]), send: () => true, mtu: 9000 });
    expect(net.readConfig(L['virtio_net_config.mac'] + 5)).toBe(6);
    expect(net.readConfig(L['virtio_net_config.status'])).toBe(L.NET_S_LINK_UP);
    expect(net.readConfig(L['virtio_net_config.max_virtqueue_pairs'])).toBe(1);
    expect(net.readConfig(L['virtio_net_config.mtu']) + 256 * net.readConfig(L['virtio_net_config.mtu'] + 1)).toBe(9000);
  });

  it('virtio-net control queue: classes, commands, struct layouts, and commands built with the UAPI structs', () => {
    for (const k of Object.keys(L).filter((k) => /^NET_(CTRL_|OK$|ERR$|S_ANNOUNCE$)/.test(k))) expect([k, (N as Record<string, unknown>)[k]]).toEqual([k, L[k]]);
    expect([L['sizeof.virtio_net_ctrl_hdr'], L['virtio_net_ctrl_hdr.class'], L['virtio_net_ctrl_hdr.cmd']]).toEqual([2, 0, 1]);
    expect([L['sizeof.virtio_net_ctrl_mac'], L['virtio_net_ctrl_mac.entries'], L['virtio_net_ctrl_mac.macs']]).toEqual([4, 0, 4]);
    expect([L['sizeof.virtio_net_ctrl_mq'], L['virtio_net_ctrl_mq.virtqueue_pairs']]).toEqual([2, 0]);
    // The bytes gcc laid out, sent through our control queue as separate buffers (Linux's sg list).
    const mem = new FlatGuestMemory(1 << 20);
    const net = new N.VirtioNet({ mac: new Uint8Array(6), send: () => true, queuePairs: 3 });
    const drv = new MockDriver(mmioDriverTransport(new M.VirtioMmio(net, mem, { irq: () => undefined })), mem, new GuestAllocator(0x1000, mem.limit));
    expect(drv.init({ queueSize: 16 })).toBe(true);
    const bytes = (k: string): Uint8Array => Uint8Array.from((L as unknown as Record<string, number[]>)[k]);
    const send = (...parts: string[]): number => {
      const ack = drv.buffer(1, new Uint8Array([0xee]));
      drv.queues[6].add(parts.map((p) => drv.buffer(bytes(p).length, bytes(p))), [ack]);
      drv.kick(6);
      return mem.read8(ack.addr);
    };
    expect(send('cmd.mq.hdr', 'cmd.mq.data')).toBe(L.NET_OK);
    expect(net.curPairs).toBe(3);
    expect(send('cmd.mac.hdr', 'cmd.mac.uni', 'cmd.mac.multi')).toBe(L.NET_OK);
    expect([net.filter.uniCount, net.filter.multiCount]).toEqual([1, 2]);
    expect(Array.from(net.macTable.subarray(0, 6))).toEqual([0x50, 0x51, 0x52, 0x53, 0x54, 0x55]);
    const m = N.NET_MAC_TABLE_ENTRIES * 6;
    expect(Array.from(net.macTable.subarray(m, m + 12))).toEqual([0x01, 0x61, 0x62, 0x63, 0x64, 0x65, 0x33, 0x71, 0x72, 0x73, 0x74, 0x75]);
  });

  it('virtio-console bits and config fields', () => {
    for (const k of ['CONSOLE_F_SIZE', 'CONSOLE_F_MULTIPORT', 'CONSOLE_F_EMERG_WRITE']) expect([k, (CON as Record<string, unknown>)[k]]).toEqual([k, L[k]]);
    const con = new CON.VirtioConsole({ output: () => undefined, cols: 132, rows: 43 });
    expect(con.readConfig(L['virtio_console_config.cols'])).toBe(132);
    expect(con.readConfig(L['virtio_console_config.rows'])).toBe(43);
    expect(con.readConfig(L['virtio_console_config.max_nr_ports'])).toBe(1);
    expect(L['virtio_console_config.emerg_wr']).toBe(8);
  });

  it('virtio-console MULTIPORT: events, struct virtio_console_control, and messages laid out by gcc', () => {
    for (const k of Object.keys(L).filter((k) => k.startsWith('CONSOLE_') && !k.startsWith('CONSOLE_F_') && k !== 'CONSOLE_BAD_ID')) expect([k, (CON as Record<string, unknown>)[k]]).toEqual([k, L[k]]);
    expect([L['sizeof.virtio_console_control'], L['virtio_console_control.id'], L['virtio_console_control.event'], L['virtio_console_control.value']]).toEqual([CON.CONSOLE_CONTROL_BYTES, 0, 4, 6]);
    const mem = new FlatGuestMemory(1 << 20);
    const opened: boolean[] = [];
    const con = new CON.VirtioConsole({ output: () => undefined, maxPorts: 2 });
    con.addPort(1, { name: 'p1', onOpen: (o) => opened.push(o) });
    const drv = new MockDriver(mmioDriverTransport(new M.VirtioMmio(con, mem, { irq: () => undefined })), mem, new GuestAllocator(0x1000, mem.limit));
    expect(drv.init({ queueSize: 8 })).toBe(true);
    expect(con.readConfig(L['virtio_console_config.max_nr_ports'])).toBe(2);
    const bufs: { addr: number; len: number }[] = [];
    for (let i = 0; i < 8; i++) {
      bufs.push(drv.buffer(32));
      drv.queues[2].add([], [bufs[i]]);
    }
    const send = (k: string): void => {
      const b = Uint8Array.from((L as unknown as Record<string, number[]>)[k]);
      drv.queues[3].add([drv.buffer(b.length, b)], []);
      drv.kick(3);
    };
    send('con.device_ready');
    expect(L.CONSOLE_BAD_ID).toBe(0xffff_ffff);
    send('con.port_ready.1');
    send('con.port_open.1');
    expect(con.isPortReady(1)).toBe(true);
    expect(opened).toEqual([true]);
    // What the device sent, read with the C layout: PORT_ADD 0, PORT_ADD 1, then PORT_NAME 1 "p1", PORT_OPEN 1.
    const got = drv.drain(2).map((u) => {
      const b = drv.bytes(bufs[u.id], u.len);
      const at = (o: number, n: number): number => b.subarray(o, o + n).reduceRight((v, x) => v * 256 + x, 0);
      return [at(L['virtio_console_control.id'], 4), at(L['virtio_console_control.event'], 2), at(L['virtio_console_control.value'], 2), u.len];
    });
    expect(got).toEqual([[0, L.CONSOLE_PORT_ADD, 1, 8], [1, L.CONSOLE_PORT_ADD, 1, 8], [1, L.CONSOLE_PORT_NAME, 1, 11], [1, L.CONSOLE_PORT_OPEN, 1, 8]]);
  });

  it('our split-ring EVENT_IDX decision equals the kernel vring_need_event() on 3000 cases around the wrap', () => {
    const got: number[] = [];
    for (const [ev, nw, old] of triples) {
      const mem = new FlatGuestMemory(1 << 16);
      const alloc = new GuestAllocator(0x100, mem.limit);
      const drv = new DriverSplitQueue(mem, alloc, 64);
      drv.availIdx = old;
      mem.write16(drv.avail + 2, old);
      const q = new SplitQueue(mem, 64, drv.desc, drv.avail, drv.used, true, false, old, old);
      const chain = new DescriptorChain();
      const buf = alloc.alloc(4);
      for (let i = 0; i !== ((nw - old) & 0xffff); i++) {
        drv.add([], [{ addr: buf, len: 4 }]);
        q.pop(chain);
        q.pushUsed(chain, 0);
        drv.getUsed();
      }
      drv.setUsedEvent(ev);
      got.push(q.needsNotification() ? 1 : 0);
    }
    expect(got).toEqual(L.need_event);
  });
});
