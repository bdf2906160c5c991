// Two Debian guests in two `ringzero` processes share one network over VXLAN: each process runs
// the package's CLI (the `ringzero` bin) with `-netdev vxlan,id=n0,remote=127.0.0.1:PEER_PORT,
// vni=42,localport=OWN_PORT`, so every frame of a guest crosses the host's UDP stack to the
// other process. Each guest sets a static address, waits until its peer answers and pings it
// three times. tcpdump captures the UDP on the loopback interface and decodes it as VXLAN
// (vni 42) carrying the ICMP exchange.
//
// Not part of `npm test` (two Debian boots take minutes); `npm run vxlan -- --check` verifies.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { canPrepareGuests, extractVmlinux, GuestFixtureError, prepareGuest, writeInitramfs } from '@ringzero/machine/node';

const check = process.argv.includes('--check');
if (!canPrepareGuests() || spawnSync('xz', ['--version']).error) {
  console.warn('SKIPPED: needs apt-get/dpkg-deb (to fetch the Debian guest) and xz (Debian xz-utils): the VXLAN ping is not run');
  process.exit(0);
}
const BIN = join(dirname(createRequire(import.meta.url).resolve('@ringzero/machine/package.json')), 'bin', 'ringzero.js');

async function freeUdpPort(): Promise<number> {
  const s = createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  const port = s.address().port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

const ports = [await freeUdpPort(), await freeUdpPort()];
const VMS = [
  { name: 'vm1', ip: '10.0.0.1', peer: '10.0.0.2', mac: '52:54:00:00:00:01', port: ports[0], peerPort: ports[1] },
  { name: 'vm2', ip: '10.0.0.2', peer: '10.0.0.1', mac: '52:54:00:00:00:02', port: ports[1], peerPort: ports[0] },
] as const;

function script(vm: (typeof VMS)[number]): string {
  return [
    'ip link set eth0 up',
    `ip addr add ${vm.ip}/24 dev eth0`,
    'echo "ETH0 $(cat /sys/class/net/eth0/address) $(ip -4 addr show eth0 | grep -o "inet [0-9./]*")"',
    // Time is deterministic (instructions drive the clock) and the two processes do not share a
    // clock: an idle guest would leap through ping's timeouts while its peer is still booting.
    // A busy loop ties guest time to work done.
    '(while :; do :; done) & busy=$!',
    `n=0; until ping -c 1 -W 2 ${vm.peer} >/dev/null 2>&1; do n=$((n+1)); [ $n -ge 200 ] && echo "PEER unreachable" && break; done`,
    `ping -A -c 3 -W 5 ${vm.peer}`,
    'kill $busy',
    // The peer may still be pinging us: wait for the host's go, sent once both guests are done.
    'echo "DONE"; read go',
  ].join('\n');
}

const dir = mkdtempSync(join(tmpdir(), 'rz-two-vm-vxlan-'));
const children: ChildProcess[] = [];
let failed = false;
try {
  const t0 = Date.now();
  const guest = prepareGuest({ arch: 'amd64', log: (l) => console.error(l) });
  const vmlinux = join(dir, 'vmlinux');
  writeFileSync(vmlinux, extractVmlinux(new Uint8Array(readFileSync(guest.kernel))).vmlinux);

  // tcpdump on the loopback interface: both tunnel ports.
  const pcap = process.argv.find((a) => a.endsWith('.pcap')) ?? join(dir, 'vxlan.pcap');
  const filter = ['udp', 'port', String(ports[0]), 'or', 'udp', 'port', String(ports[1])];
  let tcpdump: ChildProcess | null = null;
  let tcpdumpErr = '';
  if (spawnSync('tcpdump', ['--version']).error) console.warn('SKIPPED: tcpdump not installed: the tunnel is not captured');
  else {
    tcpdump = spawn('tcpdump', ['-Z', 'root', '-i', 'lo', '-n', '--immediate-mode', '-U', '-w', pcap, ...filter], { stdio: ['ignore', 'ignore', 'pipe'] });
    children.push(tcpdump);
    const ok = await new Promise<boolean>((resolve) => {
      tcpdump!.stderr!.on('data', (d: Buffer) => {
        tcpdumpErr += d.toString();
        if (tcpdumpErr.includes('listening on')) resolve(true);
      });
      tcpdump!.on('exit', () => resolve(false));
    });
    if (!ok) {
      console.warn(`SKIPPED: tcpdump cannot capture on lo (${tcpdumpErr.trim().split('\n').pop() ?? ''}): the tunnel is not captured`);
      tcpdump = null;
    }
  }

  const logs = new Map<string, string>();
  const exits: Promise<number | null>[] = [];
  for (const vm of VMS) {
    const initrd = writeInitramfs(guest, join(dir, `${vm.name}.gz`), { script: script(vm), modules: ['virtio_pci', 'virtio_net'] });
    const args = [
      '-m', '128M', '-kernel', vmlinux, '-initrd', initrd, '-append', 'console=ttyS0 panic=-1 cryptomgr.notests',
      '-netdev', `vxlan,id=n0,remote=127.0.0.1:${vm.peerPort},vni=42,localport=${vm.port}`,
      '-device', `virtio-net-pci,netdev=n0,mac=${vm.mac}`,
      '-nographic', '-no-reboot', '-icount', 'shift=auto',
    ];
    console.log(`[${vm.name}] ringzero ${args.join(' ')}`);
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['pipe', 'pipe', 'inherit'] });
    children.push(child);
    logs.set(vm.name, '');
    let line = '';
    child.stdout!.on('data', (b: Buffer) => {
      const s = b.toString('latin1').replace(/\r/g, '');
      logs.set(vm.name, logs.get(vm.name)! + s);
      line += s;
      for (let i = line.indexOf('\n'); i >= 0; i = line.indexOf('\n')) {
        const l = line.slice(0, i);
        line = line.slice(i + 1);
        if (!check || /^(ETH0|PING|\d+ bytes from|\d+ packets|PEER|DONE|ringzero-init)/.test(l)) console.log(`[${vm.name}] ${l}`);
      }
      // Once both guests printed DONE, both may power off.
      if (VMS.every((v) => /^DONE$/m.test(logs.get(v.name)!))) for (const c of children.slice(-VMS.length)) c.stdin?.write('\n');
    });
    exits.push(new Promise((resolve) => child.on('exit', (code) => resolve(code))));
  }
  const codes = await Promise.all(exits);
  const wall = (Date.now() - t0) / 1000;
  console.log(`both ringzero processes exited (status ${codes.join(', ')}) after ${wall.toFixed(0)} s`);

  let dump = '';
  if (tcpdump != null) {
    tcpdump.kill('SIGINT');
    await new Promise((r) => tcpdump!.on('exit', r));
    const r = spawnSync('tcpdump', ['-n', '-r', pcap, '-T', 'vxlan', ...filter], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`tcpdump cannot read the capture: ${r.stderr}`);
    dump = r.stdout;
    const count = (re: RegExp): number => dump.split('\n').filter((l) => re.test(l)).length;
    console.log(`tcpdump -n -r vxlan.pcap -T vxlan: ${count(/VXLAN, flags/)} VXLAN datagrams, ${count(/ICMP echo/)} of them ICMP:`);
    for (const l of dump.split('\n').filter((x) => x.includes('ICMP'))) console.log(`  ${l}`);
  }
  if (check) {
    const problems: string[] = [];
    for (const vm of VMS) {
      const log = logs.get(vm.name)!;
      if (!log.includes(`ETH0 ${vm.mac} inet ${vm.ip}/24`)) problems.push(`${vm.name}: eth0 is not ${vm.mac} with ${vm.ip}`);
      if (!/3 packets transmitted, 3 packets received/.test(log)) problems.push(`${vm.name}: not 3/3 ping replies`);
      if (!log.includes('reboot: Power down')) problems.push(`${vm.name}: no power-off`);
      if (/WARNING:|BUG:|Oops|Call Trace|Kernel panic/.test(log)) problems.push(`${vm.name}: kernel warnings`);
    }
    if (codes.some((c) => c !== 0)) problems.push(`exit statuses ${codes.join(', ')}`);
    if (tcpdump != null) {
      for (const [a, b] of [[VMS[0], VMS[1]], [VMS[1], VMS[0]]]) {
        // The outer header (from a's port to b's) and the inner ICMP, on one line per datagram.
        const re = (what: string): RegExp =>
          new RegExp(`127\\.0\\.0\\.1\\.${a.port} > 127\\.0\\.0\\.1\\.${b.port}: VXLAN, flags \\[I\\] \\(0x08\\), vni 42\\n?.*IP ${a.ip.replace(/\./g, '\\.')} > ${b.ip.replace(/\./g, '\\.')}: ICMP echo ${what}`);
        if (!re('request').test(dump)) problems.push(`tcpdump sees no VXLAN vni 42 datagram ${a.name} > ${b.name} carrying an echo request`);
        if (!re('reply').test(dump)) problems.push(`tcpdump sees no VXLAN vni 42 datagram ${a.name} > ${b.name} carrying an echo reply`);
      }
    }
    if (problems.length > 0) {
      for (const vm of VMS) console.error(`--- ${vm.name} serial (tail)\n${logs.get(vm.name)!.slice(-3000)}`);
      if (dump !== '') console.error(`--- tcpdump\n${dump.slice(0, 6000)}`);
      console.error(problems.join('\n'));
      failed = true;
    } else console.log('check passed: both guests got 3/3 replies over VXLAN; tcpdump decodes vni 42 carrying echo requests and replies both ways');
  }
} catch (err) {
  if (err instanceof GuestFixtureError) {
    console.error(err.message);
    failed = true;
  } else throw err;
} finally {
  for (const c of children) if (c.exitCode == null && c.signalCode == null) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
