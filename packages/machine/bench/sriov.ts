// SR-IOV benchmark: frames per second from one VF to another through the NIC's embedded switch
// (VEB), against VM-to-VM frames through two plain virtio-net devices and the vswitch (a Bridge
// with MAC learning), measured in the same run. Both sides are driven the same way: a guest
// driver (virtio's MockDriver) posts 60-byte frames on one device's tx queue and receive buffers
// on the other's rx queue, in batches of 32, buffers reused; each frame is copied out of guest
// memory, switched, and copied into the receiver's buffer.
// Prints one JSON object per line: {"name","value","unit","peer","peerValue","ratio"}.
// Run: npx tsx --conditions=@ringzero/source bench/sriov.ts   (BENCH_SCALE=4 for longer runs)
import { VirtioNet, VirtioPci } from '@ringzero/virtio';
import { GuestAllocator, MockDriver, pciDriverTransport } from '@ringzero/virtio/testing';
import { Bridge } from '@ringzero/vswitch';
import { makeVm, type Vm } from '../src/sriov/test-rig';
import { SriovVirtioNet } from '../src/sriov/virtio-net-sriov';
import * as S from '../src/devices/pci/sriov';

const scale = Number(process.env.BENCH_SCALE ?? 1);
const BATCH = 32;
const HDR = 12;

interface Pair {
  tx: MockDriver;
  rx: MockDriver;
}

function driver(vm: Vm, fn: VirtioPci, start: number): MockDriver {
  const drv = new MockDriver(pciDriverTransport(fn, { msix: true }), vm.memory, new GuestAllocator(start, start + 0x10_0000));
  if (!drv.init({ queueSize: 64, queues: 2 })) throw new Error('init failed');
  return drv;
}

/** Moves `frames` frames from pair.tx to pair.rx; returns frames received (a check value). */
function pump(p: Pair, frames: number, dst: Uint8Array, src: Uint8Array): number {
  const hdr = p.tx.buffer(HDR, new Uint8Array(HDR));
  const f = new Uint8Array(60);
  f.set(dst, 0);
  f.set(src, 6);
  f[12] = 0x08;
  const body = p.tx.buffer(60, f);
  const rxBufs = Array.from({ length: BATCH }, () => p.rx.buffer(2048));
  let got = 0;
  for (let done = 0; done < frames; done += BATCH) {
    for (let i = 0; i < BATCH; i++) p.rx.queues[0].add([], [rxBufs[i]]);
    p.rx.kick(0);
    for (let i = 0; i < BATCH; i++) p.tx.queues[1].add([hdr, body], []);
    p.tx.kick(1);
    got += p.rx.drain(0).length;
    p.tx.drain(1);
  }
  return got;
}

const frames = 20_000 * scale;

// VF to VF through the embedded switch.
const vm = makeVm(16 << 20);
const nic = new SriovVirtioNet({ mac: Uint8Array.of(0x52, 0x54, 0, 1, 2, 3), totalVfs: 2, memory: vm.memory, root: vm.pci });
vm.pci.attach(nic.function, 3);
nic.function.configWrite(0x100 + S.PCI_SRIOV_NUM_VF, 2, 2);
nic.function.configWrite(0x100 + S.PCI_SRIOV_CTRL, 2, S.PCI_SRIOV_CTRL_VFE);
for (const vf of nic.vfs) vf.msi = (): void => undefined; // as the vswitch side: interrupts go nowhere
const veb: Pair = { tx: driver(vm, nic.vfs[0].transport, 0x10_0000), rx: driver(vm, nic.vfs[1].transport, 0x20_0000) };

// VM to VM through virtio-net and the vswitch.
const bridge = new Bridge({ name: 'br0' });
const macs = [Uint8Array.of(0x52, 0x54, 0, 9, 9, 1), Uint8Array.of(0x52, 0x54, 0, 9, 9, 2)];
const fns = macs.map((mac, i) => {
  let port: { receive(b: Uint8Array, o: number, n: number): void } | null = null;
  const net = new VirtioNet({ mac, send: (b, o, n) => (port?.receive(b, o, n), true) });
  port = bridge.addPort(`vm${i}`, net);
  return new VirtioPci(net, vm.memory, { msi: () => undefined, transitional: false });
});
const vs: Pair = { tx: driver(vm, fns[0], 0x30_0000), rx: driver(vm, fns[1], 0x40_0000) };
// Teach the bridge where macs[0] lives (a frame the other way), as any conversation would.
pump({ tx: vs.rx, rx: vs.tx }, BATCH, macs[0], macs[1]);
// Interleaved rounds (one warm-up), best of each: load on a shared machine hits both sides alike.
const best = [Infinity, Infinity];
const checks = [0, 0];
for (let round = 0; round < 6; round++) {
  for (const side of [0, 1]) {
    const t0 = performance.now();
    checks[side] = side === 0 ? pump(veb, frames, nic.vfs[1].mac, nic.vfs[0].mac) : pump(vs, frames, macs[1], macs[0]);
    const sec = (performance.now() - t0) / 1000;
    if (round > 0) best[side] = Math.min(best[side], sec);
  }
}
const a = { seconds: best[0], check: checks[0] };
const b = { seconds: best[1], check: checks[1] };

if (a.check !== frames || b.check !== frames) throw new Error(`lost frames: veb ${a.check}, vswitch ${b.check} of ${frames}`);
const vebRate = frames / a.seconds;
const vsRate = frames / b.seconds;
console.log(JSON.stringify({ name: 'sriov vf-to-vf via embedded switch (60-byte frames)', value: Math.round(vebRate), unit: 'frames/s', peer: 'vm-to-vm via virtio-net + vswitch', peerValue: Math.round(vsRate), ratio: Number((vebRate / vsRate).toFixed(2)) }));
if (nic.veb.stats.toUplink !== 0 || nic.veb.stats.local !== 6 * frames) throw new Error('VF-to-VF frames left the embedded switch');
