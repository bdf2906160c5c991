// Two Debian guests in one Node process, each an unmodified Debian bookworm amd64 kernel booted
// in RingZero's machine, with a virtio-net NIC on the same in-process vswitch bridge. Each guest
// configures a static address (10.0.0.1 and 10.0.0.2), waits until its peer answers, and pings
// it three times. A SPAN mirror on the bridge copies every frame to a pcap capture port; the
// capture is written to a .pcap file and read back with tcpdump (the peer), and must show ICMP
// echo requests and replies in both directions.
//
// Both guests run with deterministic time; their clocks are coupled (TimeSyncGroup), so an idle
// guest waiting for a reply cannot leap through its timeout while its peer is still busy.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Machine, TimeSyncGroup } from '@ringzero/machine';
import { canPrepareGuests, extractVmlinux, GuestFixtureError, nodeMachineHost, prepareGuest, writeInitramfs } from '@ringzero/machine/node';
import type { Bridge } from '@ringzero/vswitch';
import { icmpEchoes, PcapCapture } from './pcap';

const check = process.argv.includes('--check');
const out = process.argv.find((a) => a.endsWith('.pcap'));
if (!canPrepareGuests() || spawnSync('xz', ['--version']).error) {
  console.warn('SKIPPED: needs apt-get/dpkg-deb (to fetch the Debian guest) and xz (Debian xz-utils): the two-VM ping is not run');
  process.exit(0);
}
const hasTcpdump = !spawnSync('tcpdump', ['--version']).error;
if (!hasTcpdump) console.warn('SKIPPED: tcpdump not installed: the capture is checked by this example\'s own pcap reader only');

const VMS = [
  { name: 'vm1', ip: '10.0.0.1', peer: '10.0.0.2', mac: '52:54:00:00:00:01' },
  { name: 'vm2', ip: '10.0.0.2', peer: '10.0.0.1', mac: '52:54:00:00:00:02' },
] as const;

function script(vm: (typeof VMS)[number]): string {
  return [
    'ip link set eth0 up',
    `ip addr add ${vm.ip}/24 dev eth0`,
    'echo "ETH0 $(cat /sys/class/net/eth0/address) $(ip -4 addr show eth0 | grep -o "inet [0-9./]*")"',
    // Wait (in guest time) until the peer is up; then the real pings.
    `n=0; until ping -c 1 -W 1 ${vm.peer} >/dev/null 2>&1; do n=$((n+1)); [ $n -ge 120 ] && echo "PEER unreachable" && break; done`,
    `ping -c 3 ${vm.peer}`,
    // The peer may still be pinging us: wait for the host's go (a line on the console), which
    // comes once both guests are done.
    'echo "DONE"; read go',
  ].join('\n');
}

const dir = mkdtempSync(join(tmpdir(), 'rz-two-vm-ping-'));
let failed = false;
try {
  const t0 = Date.now();
  const guest = prepareGuest({ arch: 'amd64', log: (l) => console.error(l) });
  const vmlinux = extractVmlinux(new Uint8Array(readFileSync(guest.kernel))).vmlinux;
  const bridges = new Map<string, Bridge>();
  const timeSync = new TimeSyncGroup();
  const logs = new Map<string, string>();
  const machines: Machine[] = [];
  for (const vm of VMS) {
    const initrd = writeInitramfs(guest, join(dir, `${vm.name}.gz`), { script: script(vm), modules: ['virtio_pci', 'virtio_net'] });
    const m = await Machine.build(
      {
        memory: 128 << 20,
        kernel: vmlinux,
        initrd: new Uint8Array(readFileSync(initrd)),
        // The kernel's crypto self-tests are 40% of the instructions to /init: skipped here.
        cmdline: 'console=ttyS0 panic=-1 cryptomgr.notests',
        time: 'deterministic',
        netdevs: [{ type: 'switch', id: 'n0', bridge: 'lan' }],
        devices: [{ type: 'virtio-net', netdev: 'n0', mac: vm.mac }],
      },
      { host: nodeMachineHost(), bridges, timeSync },
    );
    logs.set(vm.name, '');
    let line = '';
    m.on('serial', (b) => {
      const s = Buffer.from(b).toString('latin1').replace(/\r/g, '');
      logs.set(vm.name, logs.get(vm.name)! + s);
      line += s;
      for (let i = line.indexOf('\n'); i >= 0; i = line.indexOf('\n')) {
        const l = line.slice(0, i);
        line = line.slice(i + 1);
        if (!check || /^(ETH0|PING|\d+ bytes from|\d+ packets|PEER|DONE|ringzero-init)/.test(l)) console.log(`[${vm.name}] ${l}`);
      }
    });
    machines.push(m);
  }
  // Once both guests printed DONE, both may power off.
  let released = false;
  const release = (): void => {
    if (released || !VMS.every((vm) => /^DONE$/m.test(logs.get(vm.name)!))) return;
    released = true;
    for (const m of machines) m.sendSerial([0x0a]);
  };
  for (const m of machines) m.on('serial', release);
  // Every frame on the bridge goes to the capture port too (a SPAN mirror, as OVS's).
  const lan = bridges.get('lan')!;
  const capture = new PcapCapture();
  lan.addPort('capture', capture);
  lan.addMirror({ name: 'capture', selectAll: true, outputPort: 'capture' });

  const stops = await Promise.all(machines.map((m) => m.start()));
  const wall = (Date.now() - t0) / 1000;
  const pcap = out ?? join(dir, 'ping.pcap');
  writeFileSync(pcap, capture.bytes());
  console.log(`both guests stopped (${stops.map((s) => s.reason).join(', ')}) after ${wall.toFixed(0)} s; ${capture.frames} frames captured in ${pcap}`);

  const echoes = icmpEchoes(readFileSync(pcap));
  let dump = '';
  if (hasTcpdump) {
    const r = spawnSync('tcpdump', ['-n', '-r', pcap, 'icmp'], { encoding: 'utf8' });
    dump = r.stdout;
    if (r.status !== 0) throw new Error(`tcpdump cannot read the capture: ${r.stderr}`);
    console.log('tcpdump -n -r ping.pcap icmp:');
    for (const l of dump.trim().split('\n')) console.log(`  ${l}`);
  }
  if (check) {
    const problems: string[] = [];
    for (const vm of VMS) {
      const log = logs.get(vm.name)!;
      if (!log.includes(`ETH0 ${vm.mac} inet ${vm.ip}/24`)) problems.push(`${vm.name}: eth0 is not ${vm.mac} with ${vm.ip}`);
      if (!/3 packets transmitted, 3 packets received/.test(log)) problems.push(`${vm.name}: not 3/3 ping replies`);
      if (/WARNING:|BUG:|Oops|Call Trace|Kernel panic/.test(log)) problems.push(`${vm.name}: kernel warnings`);
    }
    for (const s of stops) if (s.reason !== 'poweroff') problems.push(`a guest stopped by ${s.reason}: ${s.message}`);
    for (const [a, b] of [[VMS[0].ip, VMS[1].ip], [VMS[1].ip, VMS[0].ip]]) {
      if (!echoes.some((e) => e.type === 'request' && e.src === a && e.dst === b)) problems.push(`no echo request ${a} > ${b} in the capture`);
      if (!echoes.some((e) => e.type === 'reply' && e.src === b && e.dst === a)) problems.push(`no echo reply ${b} > ${a} in the capture`);
      if (hasTcpdump) {
        if (!dump.includes(`IP ${a} > ${b}: ICMP echo request`)) problems.push(`tcpdump sees no echo request ${a} > ${b}`);
        if (!dump.includes(`IP ${b} > ${a}: ICMP echo reply`)) problems.push(`tcpdump sees no echo reply ${b} > ${a}`);
      }
    }
    if (hasTcpdump && dump.trim().split('\n').length !== echoes.length) problems.push(`tcpdump counts ${dump.trim().split('\n').length} ICMP frames, our reader ${echoes.length}`);
    if (problems.length > 0) {
      for (const vm of VMS) console.error(`--- ${vm.name} serial (tail)\n${logs.get(vm.name)!.slice(-3000)}`);
      console.error(problems.join('\n'));
      failed = true;
    } else console.log(`check passed: ${echoes.length} ICMP echo frames, requests and replies both ways`);
  }
} catch (err) {
  if (err instanceof GuestFixtureError) {
    console.error(err.message);
    failed = true;
  } else throw err;
} finally {
  rmSync(dir, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
