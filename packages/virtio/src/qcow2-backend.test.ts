// virtio-blk over the real qcow2 back end (@ringzero/qcow2, a dev dependency only: the package
// itself declares BlockBackend and never imports qcow2). The guest's request set goes through the
// mock driver into a qcow2 file; then QEMU's own qemu-img judges the result: `qemu-img check`
// must find the image clean and `qemu-img compare` must find it identical to a raw file that
// holds what the guest should see.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FlatGuestMemory } from '@ringzero/mmu-ept';
import { createQcow2, MemoryByteStore, Qcow2Image } from '@ringzero/qcow2';
import { createQcow2File, openImage } from '@ringzero/qcow2/node';
import { afterAll, describe, expect, it } from 'vitest';
import type { BlockBackend } from './block-backend';
import {
  BLK_S_IOERR,
  BLK_S_OK,
  BLK_S_UNSUPP,
  BLK_T_DISCARD,
  BLK_T_FLUSH,
  BLK_T_GET_ID,
  BLK_T_IN,
  BLK_T_OUT,
  BLK_T_WRITE_ZEROES,
  VirtioBlk,
} from './blk';
import { STATUS_NEEDS_RESET } from './constants';
import { VirtioMmio } from './mmio';
import { VirtioPci } from './pci';
import { GuestAllocator } from './testing/alloc';
import type { BlkRequest } from './testing/blk-helpers';
import { blkData, blkStatus, submitBlk } from './testing/blk-helpers';
import { acceptFeatures, MockDriver } from './testing/driver';
import { mmioDriverTransport } from './testing/mmio-transport';
import { pciDriverTransport } from './testing/pci-transport';

const qemuImg = spawnSync('qemu-img', ['--version']).status === 0;
if (!qemuImg) console.warn('SKIPPED: qemu-img not installed: the qcow2 file virtio-blk wrote is not checked by qemu-img check / compare');

const DISK = 4 << 20; // 4 MiB
const CLUSTER = 65536;
const SECTOR = 512;

const dir = mkdtempSync(join(tmpdir(), 'virtio-qcow2-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Let the queued qcow2 operations (file I/O) finish; bounded, never a timing assertion. */
async function settle(drv: MockDriver, want: number, got: { id: number; len: number }[]): Promise<void> {
  for (let i = 0; i < 2000 && got.length < want; i++) {
    await new Promise((r) => setTimeout(r, 1));
    got.push(...drv.drain(0));
  }
}

function pattern(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  let x = seed * 2654435761;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

function setup(backend: BlockBackend, transport: 'mmio' | 'pci', packed: boolean) {
  const mem = new FlatGuestMemory(16 << 20);
  const blk = new VirtioBlk(backend, { queueSize: 64, serial: 'qcow2-disk' });
  let drv: MockDriver;
  let status: () => number;
  if (transport === 'mmio') {
    const m = new VirtioMmio(blk, mem, { irq: () => undefined });
    drv = new MockDriver(mmioDriverTransport(m), mem, new GuestAllocator(0x1000, mem.limit));
    status = () => m.core.status;
  } else {
    const p = new VirtioPci(blk, mem, { msi: () => undefined });
    drv = new MockDriver(pciDriverTransport(p, { msix: true }), mem, new GuestAllocator(0x1000, mem.limit));
    status = () => p.core.status;
  }
  expect(drv.init({ queueSize: 64, features: acceptFeatures({ packed }) })).toBe(true);
  return { drv, blk, status };
}

/**
 * The request set: writes of several shapes (one or many descriptors, indirect, crossing a
 * cluster boundary, unaligned to clusters), reads back, flush, GET_ID, a whole-cluster discard,
 * write-zeroes aligned and unaligned, and the error cases (out of range, bad length, unknown
 * type). `model` is updated with what the guest must see afterwards.
 */
async function requestSet(drv: MockDriver, model: Uint8Array, status: () => number): Promise<void> {
  const writes: [sector: number, bytes: number, segments: number, indirect: boolean][] = [
    [0, 4096, 1, false],
    [8, 65536, 4, false], // 4 KiB into cluster 0, crosses into cluster 1
    [(3 * CLUSTER) / SECTOR, CLUSTER, 1, true], // exactly cluster 3
    [(5 * CLUSTER) / SECTOR + 3, 3 * SECTOR, 3, false], // unaligned small write
    [DISK / SECTOR - 16, 8192, 2, true], // last 8 KiB of the disk
    [(2 * CLUSTER) / SECTOR, 2 * CLUSTER, 8, false], // clusters 2 and 3 (overwrites 3)
  ];
  const reqs: BlkRequest[] = [];
  let seed = 1;
  for (const [sector, bytes, segments, indirect] of writes) {
    const data = pattern(bytes, seed++);
    model.set(data, sector * SECTOR);
    reqs.push(submitBlk(drv, BLK_T_OUT, sector, { out: data, segments, indirect }));
  }
  // All in flight at once: qcow2 serialises them in submission order.
  drv.kick(0);
  const used: { id: number; len: number }[] = [];
  await settle(drv, reqs.length, used);
  expect(used).toHaveLength(reqs.length);
  for (const r of reqs) expect(blkStatus(drv, r)).toBe(BLK_S_OK);

  const flush = submitBlk(drv, BLK_T_FLUSH, 0);
  const id = submitBlk(drv, BLK_T_GET_ID, 0, { inLen: 20 });
  // Discard cluster 1 (whole cluster: it then reads as zeros), write-zeroes an aligned cluster
  // and an unaligned range.
  const seg = (sector: number, num: number, flags: number): Uint8Array => {
    const s = new Uint8Array(16);
    const v = new DataView(s.buffer);
    v.setUint32(0, sector, true);
    v.setUint32(8, num, true);
    v.setUint32(12, flags, true);
    return s;
  };
  const discard = submitBlk(drv, BLK_T_DISCARD, 0, { out: seg(CLUSTER / SECTOR, CLUSTER / SECTOR, 0) });
  model.fill(0, CLUSTER, 2 * CLUSTER);
  const wz = submitBlk(drv, BLK_T_WRITE_ZEROES, 0, { out: seg((3 * CLUSTER) / SECTOR, CLUSTER / SECTOR, 1) });
  model.fill(0, 3 * CLUSTER, 4 * CLUSTER);
  const wz2 = submitBlk(drv, BLK_T_WRITE_ZEROES, 0, { out: seg((2 * CLUSTER) / SECTOR + 5, 7, 0) });
  model.fill(0, 2 * CLUSTER + 5 * SECTOR, 2 * CLUSTER + 12 * SECTOR);
  // Errors: past the end, not a multiple of 512, unknown type.
  const past = submitBlk(drv, BLK_T_IN, DISK / SECTOR - 1, { inLen: 1024 });
  const odd = submitBlk(drv, BLK_T_OUT, 0, { out: new Uint8Array(100).fill(0xee) });
  const unknown = submitBlk(drv, 99, 0, { inLen: 512 });
  drv.kick(0);
  used.length = 0;
  await settle(drv, 8, used);
  expect(used).toHaveLength(8);
  expect([flush, discard, wz, wz2].map((r) => blkStatus(drv, r))).toEqual([BLK_S_OK, BLK_S_OK, BLK_S_OK, BLK_S_OK]);
  expect(blkStatus(drv, id)).toBe(BLK_S_OK);
  expect(new TextDecoder().decode(blkData(drv, id)).replace(/\0+$/, '')).toBe('qcow2-disk');
  expect([past, odd].map((r) => blkStatus(drv, r))).toEqual([BLK_S_IOERR, BLK_S_IOERR]);
  expect(blkStatus(drv, unknown)).toBe(BLK_S_UNSUPP);

  // Read the whole disk back through the device, 256 KiB per request, 8 in flight.
  const reads: BlkRequest[] = [];
  for (let off = 0; off < DISK; off += 256 << 10) reads.push(submitBlk(drv, BLK_T_IN, off / SECTOR, { inLen: 256 << 10, segments: 2 }));
  drv.kick(0);
  used.length = 0;
  await settle(drv, reads.length, used);
  expect(used).toHaveLength(reads.length);
  for (let i = 0; i < reads.length; i++) {
    expect(blkStatus(drv, reads[i])).toBe(BLK_S_OK);
    const got = blkData(drv, reads[i]);
    const want = model.subarray(i * (256 << 10), (i + 1) * (256 << 10));
    expect(Buffer.compare(got, want)).toBe(0);
  }
  expect(status() & STATUS_NEEDS_RESET).toBe(0);
}

describe('virtio-blk on a qcow2 back end', () => {
  for (const [transport, packed] of [['mmio', false], ['pci', true]] as const) {
    it.skipIf(!qemuImg)(`request set over ${transport} (${packed ? 'packed' : 'split'}) leaves a qcow2 file qemu-img finds clean and identical`, async () => {
      const path = join(dir, `disk-${transport}.qcow2`);
      const raw = join(dir, `disk-${transport}.raw`);
      await createQcow2File(path, { size: DISK });
      const img = await openImage(path);
      const { drv } = setup(img, transport, packed);
      const model = new Uint8Array(DISK);
      await requestSet(drv, model, () => 0);
      await img.close();
      writeFileSync(raw, model);
      const check = spawnSync('qemu-img', ['check', path], { encoding: 'utf8' });
      expect(check.status, check.stdout + check.stderr).toBe(0);
      expect(check.stdout).toContain('No errors were found');
      const cmp = spawnSync('qemu-img', ['compare', '-f', 'qcow2', '-F', 'raw', path, raw], { encoding: 'utf8' });
      expect(cmp.status, cmp.stdout + cmp.stderr).toBe(0);
      expect(cmp.stdout).toContain('Images are identical');
      // The oracle is not blind: one changed byte in the raw file makes compare fail.
      const bad = model.slice();
      bad[3 * CLUSTER - 1] ^= 1;
      writeFileSync(raw, bad);
      expect(spawnSync('qemu-img', ['compare', '-q', '-f', 'qcow2', '-F', 'raw', path, raw]).status).toBe(1);
    });
  }

  it('works on an in-memory qcow2 image too (no qemu-img needed), and reopens to the same data', async () => {
    const store = new MemoryByteStore();
    await createQcow2(store, { size: DISK });
    const img = await Qcow2Image.open(store);
    const { drv, status } = setup(img, 'mmio', false);
    const model = new Uint8Array(DISK);
    await requestSet(drv, model, status);
    await img.close();
    const again = await Qcow2Image.open(new MemoryByteStore(store.bytes()), { readOnly: true });
    expect(Buffer.compare(await again.read(0, DISK), model)).toBe(0);
  });

  it('a read-only qcow2 image: writes end in IOERR, reads still work, RO is offered', async () => {
    const store = new MemoryByteStore();
    await createQcow2(store, { size: DISK });
    const img = await Qcow2Image.open(store, { readOnly: true });
    const { drv, blk } = setup(img, 'mmio', false);
    expect(blk.featuresLo & 0x20).toBe(0x20);
    const w = submitBlk(drv, BLK_T_OUT, 0, { out: new Uint8Array(512).fill(1) });
    const z = submitBlk(drv, BLK_T_WRITE_ZEROES, 0, { out: new Uint8Array(16) });
    const r = submitBlk(drv, BLK_T_IN, 0, { inLen: 512 });
    drv.kick(0);
    const used: { id: number; len: number }[] = [];
    await settle(drv, 3, used);
    expect([w, z, r].map((q) => blkStatus(drv, q))).toEqual([BLK_S_IOERR, BLK_S_IOERR, BLK_S_OK]);
    expect(blkData(drv, r)).toEqual(new Uint8Array(512));
  });

  it('a closed qcow2 image fails every request with IOERR instead of throwing in the host', async () => {
    const store = new MemoryByteStore();
    await createQcow2(store, { size: DISK });
    const img = await Qcow2Image.open(store);
    const { drv, status } = setup(img, 'mmio', false);
    await img.close();
    const reqs = [
      submitBlk(drv, BLK_T_IN, 0, { inLen: 512 }),
      submitBlk(drv, BLK_T_OUT, 0, { out: new Uint8Array(512) }),
      submitBlk(drv, BLK_T_FLUSH, 0),
      submitBlk(drv, BLK_T_DISCARD, 0, { out: new Uint8Array(16) }),
    ];
    drv.kick(0);
    const used: { id: number; len: number }[] = [];
    await settle(drv, reqs.length, used);
    expect(used).toHaveLength(reqs.length);
    // qcow2 throws synchronously for writes and discards on a closed image; those end in IOERR.
    // (Reads and flushes of a closed in-memory image still succeed in qcow2: not our call.)
    expect(blkStatus(drv, reqs[1])).toBe(BLK_S_IOERR);
    expect(blkStatus(drv, reqs[3])).toBe(BLK_S_IOERR);
    for (const r of reqs) expect([BLK_S_OK, BLK_S_IOERR]).toContain(blkStatus(drv, r));
    expect(status() & STATUS_NEEDS_RESET).toBe(0);
  });
});
