// Two "VMs", each a guest memory with a virtio-net device (virtio-pci transport) driven by the
// mock guest driver, plugged into one vswitch bridge. VM1 resolves VM2 with ARP and pings it;
// then an OpenFlow rule drops ICMP and the ping goes unanswered. When ovs-ofctl is installed,
// the real ovs-ofctl reads the flows and port counters over OpenFlow 1.3.
import { execFile, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import { FlatGuestMemory } from '@ringzero/mmu-ept';
import { NET_HDR_LEN, VirtioNet, VirtioPci } from '@ringzero/virtio';
import { GuestAllocator, MockDriver, pciDriverTransport, type GuestBuffer } from '@ringzero/virtio/testing';
import { Bridge, type Port } from '@ringzero/vswitch';
import { listenOpenFlow } from '@ringzero/vswitch/node';

const check = process.argv.includes('--check');

class Vm {
  readonly mem = new FlatGuestMemory(4 << 20);
  readonly net: VirtioNet;
  readonly driver: MockDriver;
  readonly rx: GuestBuffer[] = [];
  port: Port | null = null;
  received: Uint8Array[] = [];

  constructor(readonly name: string, readonly mac: Uint8Array, readonly ip: Uint8Array) {
    this.net = new VirtioNet({ mac, send: (buf, off, len) => (this.port!.receive(buf, off, len), true) });
    const pci = new VirtioPci(this.net, this.mem, { msi: () => undefined });
    this.driver = new MockDriver(pciDriverTransport(pci, { msix: true }), this.mem, new GuestAllocator(0x1000, this.mem.limit));
    if (!this.driver.init({ queueSize: 64 })) throw new Error(`${name}: the device refused the features`);
    for (let i = 0; i < 32; i++) this.postRx();
  }

  private postRx(): void {
    const b = this.driver.buffer(1526);
    this.rx[this.driver.queues[0].add([], [b])] = b;
    this.driver.kick(0);
  }

  /** The guest transmits one Ethernet frame (virtio-net header + frame, one descriptor chain). */
  send(frame: Uint8Array): void {
    const hdr = this.driver.buffer(NET_HDR_LEN, new Uint8Array(NET_HDR_LEN));
    this.driver.queues[1].add([hdr, this.driver.buffer(frame.length, frame)], []);
    this.driver.kick(1);
    this.driver.drain(1);
  }

  /** The guest reaps received frames (stripping the virtio-net header) and reposts buffers. */
  poll(): Uint8Array[] {
    const got = this.driver.drain(0).map((u) => this.driver.bytes(this.rx[u.id]!, u.len).slice(NET_HDR_LEN));
    for (let i = 0; i < got.length; i++) this.postRx();
    this.received.push(...got);
    return got;
  }
}

const hex = (b: Uint8Array): string => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(':');
const dotted = (b: Uint8Array): string => Array.from(b).join('.');

function eth(dst: Uint8Array, src: Uint8Array, type: number, payload: Uint8Array): Uint8Array {
  const f = new Uint8Array(Math.max(60, 14 + payload.length));
  f.set(dst, 0);
  f.set(src, 6);
  f[12] = type >> 8;
  f[13] = type & 0xff;
  f.set(payload, 14);
  return f;
}

function arp(op: 1 | 2, sha: Uint8Array, spa: Uint8Array, tha: Uint8Array, tpa: Uint8Array): Uint8Array {
  const p = new Uint8Array(28);
  p.set([0, 1, 8, 0, 6, 4, 0, op]);
  p.set(sha, 8);
  p.set(spa, 14);
  p.set(tha, 18);
  p.set(tpa, 24);
  return p;
}

function checksum(b: Uint8Array): number {
  let s = 0;
  for (let i = 0; i < b.length; i += 2) s += (b[i]! << 8) | (b[i + 1] ?? 0);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}

function icmpEcho(type: 0 | 8, src: Uint8Array, dst: Uint8Array, seq: number): Uint8Array {
  const ip = new Uint8Array(20 + 8 + 32);
  ip.set([0x45, 0, 0, ip.length, 0, seq, 0x40, 0, 64, 1, 0, 0]);
  ip.set(src, 12);
  ip.set(dst, 16);
  const ipc = checksum(ip.subarray(0, 20));
  ip[10] = ipc >> 8;
  ip[11] = ipc & 0xff;
  const icmp = ip.subarray(20);
  icmp.set([type, 0, 0, 0, 0x12, 0x34, 0, seq]);
  for (let i = 8; i < icmp.length; i++) icmp[i] = i;
  const c = checksum(icmp);
  icmp[2] = c >> 8;
  icmp[3] = c & 0xff;
  return ip;
}

/** A tiny guest network stack: answers ARP requests and ICMP echo requests for its address. */
function answer(vm: Vm): void {
  for (const f of vm.poll()) {
    const type = (f[12]! << 8) | f[13]!;
    const src = f.subarray(6, 12);
    if (type === 0x0806 && f[21] === 1 && dotted(f.subarray(38, 42)) === dotted(vm.ip)) {
      vm.send(eth(src, vm.mac, 0x0806, arp(2, vm.mac, vm.ip, src, f.subarray(28, 32))));
    } else if (type === 0x0800 && f[23] === 1 && f[34] === 8) {
      const seq = f[41]!;
      vm.send(eth(src, vm.mac, 0x0800, icmpEcho(0, vm.ip, f.subarray(26, 30), seq)));
    }
  }
}

const vm1 = new Vm('vm1', new Uint8Array([0x52, 0x54, 0, 0, 0, 1]), new Uint8Array([10, 0, 0, 1]));
const vm2 = new Vm('vm2', new Uint8Array([0x52, 0x54, 0, 0, 0, 2]), new Uint8Array([10, 0, 0, 2]));
const br = new Bridge({ name: 'br0' });
vm1.port = br.addPort('vnet0', vm1.net);
vm2.port = br.addPort('vnet1', vm2.net);

function ping(seq: number): boolean {
  vm1.send(eth(vm2.mac, vm1.mac, 0x0800, icmpEcho(8, vm1.ip, vm2.ip, seq)));
  answer(vm2);
  return vm1.poll().some((f) => f[23] === 1 && f[34] === 0 && f[41] === seq);
}

console.log(`vm1 ${hex(vm1.mac)} ${dotted(vm1.ip)}  <->  br0  <->  vm2 ${hex(vm2.mac)} ${dotted(vm2.ip)}`);
vm1.send(eth(new Uint8Array(6).fill(0xff), vm1.mac, 0x0806, arp(1, vm1.mac, vm1.ip, new Uint8Array(6), vm2.ip)));
answer(vm2);
const reply = vm1.poll().find((f) => f[12] === 8 && f[13] === 6 && f[21] === 2);
console.log(`ARP: who-has ${dotted(vm2.ip)}? -> ${reply ? `is-at ${hex(reply.subarray(22, 28))}` : 'no answer'}`);
const pings = [1, 2, 3].map(ping);
console.log(`ping ${dotted(vm2.ip)}: ${pings.filter(Boolean).length}/3 replies (NORMAL switching, MACs learned)`);

br.addFlow('priority=100,icmp,actions=drop');
const dropped = ping(4);
console.log(`after add-flow "priority=100,icmp,actions=drop": ping ${dropped ? 'answered (wrong!)' : 'dropped, as the flow says'}`);
console.log('flows:\n  ' + br.dumpFlows(undefined, true).join('\n  '));
for (const p of [vm1.port, vm2.port]) {
  const s = p.stats();
  console.log(`${p.name}: rx ${s.rxPackets} pkts / ${s.rxBytes} B, tx ${s.txPackets} pkts / ${s.txBytes} B`);
}

let ofctl = 'skipped';
if (spawnSync('ovs-ofctl', ['--version']).error) {
  console.warn('SKIPPED: ovs-ofctl not installed (Debian openvswitch-common): the OpenFlow part of the demo does not run');
} else {
  const of = await listenOpenFlow(br, '127.0.0.1', 0);
  const target = `tcp:127.0.0.1:${of.port}`;
  // Asynchronously: the OpenFlow server answers from this process's event loop.
  const { stdout: out } = await promisify(execFile)('ovs-ofctl', ['-O', 'OpenFlow13', 'dump-flows', target], { timeout: 20_000 });
  console.log(`real ovs-ofctl -O OpenFlow13 dump-flows ${target}:\n` + out.trimEnd().replace(/^/gm, '  '));
  ofctl = out.includes('icmp') && out.includes('actions=drop') ? 'ok' : 'unexpected';
  await of.close();
}

if (check) {
  const ok = reply !== undefined && pings.every(Boolean) && !dropped && ofctl !== 'unexpected';
  if (!ok) {
    console.error('example check failed', { reply: reply !== undefined, pings, dropped, ofctl });
    process.exit(1);
  }
}
