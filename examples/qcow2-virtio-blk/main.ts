// A virtio-blk device (virtio-pci transport) whose back end is a qcow2 image file from
// @ringzero/qcow2, driven by the virtio mock guest driver the way Linux's virtio_blk would:
// it writes sectors, discards a range, flushes, reads back. Then QEMU's own qemu-img checks
// the image and compares it with the data the guest wrote.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FlatGuestMemory } from '@ringzero/mmu-ept';
import { createQcow2File, openImage } from '@ringzero/qcow2/node';
import { BLK_T_DISCARD, BLK_T_FLUSH, BLK_T_IN, BLK_T_OUT, VirtioBlk, VirtioPci } from '@ringzero/virtio';
import { GuestAllocator, MockDriver, blkData, blkStatus, pciDriverTransport, submitBlk, type BlkRequest } from '@ringzero/virtio/testing';

const check = process.argv.includes('--check');
const SIZE = 64 << 20;
const dir = mkdtempSync(join(tmpdir(), 'rz-qcow2-blk-'));
const image = join(dir, 'disk.qcow2');
const problems: string[] = [];

try {
  await createQcow2File(image, { size: SIZE });
  const disk = await openImage(image);
  const mem = new FlatGuestMemory(16 << 20);
  const blk = new VirtioBlk(disk, { serial: 'rz-disk0' });
  const pci = new VirtioPci(blk, mem, { msi: () => undefined });
  const drv = new MockDriver(pciDriverTransport(pci, { msix: true }), mem, new GuestAllocator(0x1000, mem.limit));
  if (!drv.init({ queueSize: 128 })) throw new Error('virtio-blk refused the driver features');

  // The guest's view of the disk, kept as a plain model to compare against.
  const model = new Uint8Array(SIZE);
  const requests: BlkRequest[] = [];
  const settle = async (): Promise<void> => {
    for (let i = 0; i < 200 && drv.queues[0].freeCount < drv.queues[0].size; i++) {
      await new Promise((r) => setTimeout(r, 5));
      drv.drain(0);
    }
  };
  let seed = 1;
  const rand = (): number => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 8) & 0xff;
  for (let i = 0; i < 48; i++) {
    const sector = (i * 977 + 13) % (SIZE / 512 - 64);
    const data = new Uint8Array(512 * (1 + (i % 16)));
    if (i % 3 !== 0) for (let j = 0; j < data.length; j++) data[j] = rand(); // else: zeros and text
    else data.set(new TextEncoder().encode(`block ${i} of the demo, written through virtio-blk\n`));
    model.set(data, sector * 512);
    requests.push(submitBlk(drv, BLK_T_OUT, sector, { out: data, segments: 1 + (i % 3) }));
    if (i % 8 === 7) {
      drv.kick(0);
      await settle();
    }
  }
  // Discard 64 sectors from sector 2048: the guest must read zeros there afterwards.
  const discard = new Uint8Array(16);
  new DataView(discard.buffer).setUint32(0, 2048, true);
  new DataView(discard.buffer).setUint32(8, 64, true);
  requests.push(submitBlk(drv, BLK_T_DISCARD, 0, { out: discard }));
  model.fill(0, 2048 * 512, (2048 + 64) * 512);
  requests.push(submitBlk(drv, BLK_T_FLUSH, 0));
  drv.kick(0);
  await settle();
  const bad = requests.filter((r) => blkStatus(drv, r) !== 0).length;
  console.log(`guest: ${requests.length} requests (OUT, DISCARD, FLUSH), ${bad} failed`);
  if (bad) problems.push(`${bad} requests did not complete with VIRTIO_BLK_S_OK`);

  const readBack = submitBlk(drv, BLK_T_IN, 0, { inLen: 1 << 20 });
  drv.kick(0);
  await settle();
  const same = blkData(drv, readBack).every((b, i) => b === model[i]);
  console.log(`guest: read back the first MiB: ${same ? 'matches' : 'DIFFERS from'} what it wrote`);
  if (!same) problems.push('read-back differs');
  await disk.close();

  if (spawnSync('qemu-img', ['--version']).error) {
    console.warn('SKIPPED: qemu-img not installed (Debian qemu-utils): the image is not checked by QEMU');
  } else {
    const chk = spawnSync('qemu-img', ['check', image], { encoding: 'utf8' });
    console.log(`qemu-img check: ${chk.stdout.trim().split('\n').pop()} (exit ${chk.status})`);
    if (chk.status !== 0) problems.push('qemu-img check failed');
    const raw = join(dir, 'expected.raw');
    writeFileSync(raw, model);
    const cmp = spawnSync('qemu-img', ['compare', '-f', 'raw', '-F', 'qcow2', raw, image], { encoding: 'utf8' });
    console.log(`qemu-img compare with the guest's model: ${cmp.stdout.trim()} (exit ${cmp.status})`);
    if (cmp.status !== 0) problems.push('qemu-img compare found a difference');
    const map = JSON.parse(execFileSync('qemu-img', ['map', '--output=json', image], { encoding: 'utf8' })) as { data: boolean; length: number }[];
    const allocated = map.filter((m) => m.data).reduce((n, m) => n + m.length, 0);
    console.log(`qemu-img map: ${(allocated / 1024).toFixed(0)} KiB allocated of ${SIZE >> 20} MiB`);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
if (check && problems.length) {
  console.error('example check failed: ' + problems.join('; '));
  process.exit(1);
}
