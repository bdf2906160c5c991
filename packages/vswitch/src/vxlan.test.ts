import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { Bridge } from './bridge.js';
import { openVxlan } from './node.js';
import { ArpIcmpResponder, ethFrame, FrameRecorder } from './testing.js';
import { parseIpv4, type UdpTransport, VxlanTunnel } from './vxlan.js';

const run = promisify(execFile);

describe('VXLAN in process', () => {
  it('two switches talk through a VXLAN tunnel, demultiplexed by VNI, with remote learning', () => {
    // Wire two tunnels through a fake UDP network (host 10.0.0.1 <-> 10.0.0.2).
    const datagrams: { from: number; to: number; bytes: Uint8Array }[] = [];
    const mk = (self: number): UdpTransport => ({ send: (b, o, l, ip) => datagrams.push({ from: self, to: ip, bytes: b.slice(o, o + l) }) });
    const h1 = parseIpv4('10.0.0.1');
    const h2 = parseIpv4('10.0.0.2');
    const t1 = new VxlanTunnel(mk(h1));
    const t2 = new VxlanTunnel(mk(h2));
    const b1 = new Bridge({ name: 'b1' });
    const b2 = new Bridge({ name: 'b2' });
    const vm1 = new FrameRecorder();
    const vm2 = new FrameRecorder();
    const vm3 = new FrameRecorder();
    const other = new FrameRecorder();
    // VNI 42 carries VLAN 1, VNI 43 carries VLAN 2 (two tunnels between the same two bridges
    // on one VLAN would be a loop).
    const p1 = b1.addPort('vm1', vm1, { tag: 1 });
    const p3 = b1.addPort('vm3', vm3, { tag: 2 });
    b2.addPort('vm2', vm2, { tag: 1 });
    t1.addPort(b1, 'vx42', { vni: 42, remotes: ['10.0.0.2'], tag: 1 });
    t1.addPort(b1, 'vx43', { vni: 43, remotes: ['10.0.0.2'], tag: 2 });
    const x2 = t2.addPort(b2, 'vx42', { vni: 42, tag: 1 }); // no static remote: learns it
    const x3 = t2.addPort(b2, 'vx43', { vni: 43, tag: 2 });
    b2.addPort('other', other, { tag: 2 });
    const pump = () => {
      for (let guard = 0; datagrams.length > 0 && guard < 100; guard++) {
        const d = datagrams.shift()!;
        (d.to === h1 ? t1 : t2).receive(d.bytes, 0, d.bytes.length, d.from, 4789);
      }
    };
    const bcast = ethFrame({ dst: 'ff:ff:ff:ff:ff:ff', src: '02:00:00:00:00:01' });
    p1.receive(bcast, 0, bcast.length);
    expect(datagrams.length).toBe(1);
    expect(datagrams[0].bytes[0]).toBe(0x08);
    expect(Array.from(datagrams[0].bytes.subarray(4, 7))).toEqual([0, 0, 42]);
    expect(datagrams[0].bytes.length).toBe(8 + 60);
    pump();
    expect(vm2.frames).toEqual([bcast]);
    expect(other.count).toBe(0);
    expect(x2.fdbEntries()).toEqual([{ mac: '02:00:00:00:00:01', remote: '10.0.0.1', port: 4789 }]);
    // VNI 43 reaches only VLAN 2 on the far side.
    const b3 = ethFrame({ dst: 'ff:ff:ff:ff:ff:ff', src: '02:00:00:00:00:03' });
    p3.receive(b3, 0, b3.length);
    pump();
    expect(other.frames).toEqual([b3]);
    expect(vm2.count).toBe(1);
    expect(x3.port.stats().rxPackets).toBe(1);
    // Reply unicast: b2 learned the MAC and the tunnel learned the remote.
    const reply = ethFrame({ dst: '02:00:00:00:00:01', src: '02:00:00:00:00:02' });
    b2.port('vm2')!.receive(reply, 0, reply.length);
    expect(datagrams.length).toBe(1);
    expect(datagrams[0].to).toBe(h1);
    pump();
    expect(vm1.frames.at(-1)).toEqual(reply);
    // Hostile datagrams: short, no I flag, unknown VNI.
    t2.receive(new Uint8Array(5), 0, 5, h1, 1);
    const noI = new Uint8Array(8 + 60);
    t2.receive(noI, 0, noI.length, h1, 1);
    noI[0] = 8;
    noI[6] = 77;
    t2.receive(noI, 0, noI.length, h1, 1);
    expect(t2.rxErrors).toBe(2);
    expect(t2.rxUnknownVni).toBe(1);
  });

  it('flows can match the VNI as tun_id', () => {
    const datagrams: Uint8Array[] = [];
    const t = new VxlanTunnel({ send: (b, o, l) => datagrams.push(b.slice(o, o + l)) });
    const br = new Bridge({ normalFlow: false });
    const sink = new FrameRecorder();
    br.addPort('vm', sink);
    t.addPort(br, 'vx', { vni: 5000 });
    br.addFlow('tun_id=5000,actions=output:1');
    const f = ethFrame({ dst: '02:00:00:00:00:09', src: '02:00:00:00:00:08' });
    const d = new Uint8Array(8 + f.length);
    d[0] = 8;
    d[4] = 0;
    d[5] = 5000 >> 8;
    d[6] = 5000 & 255;
    d.set(f, 8);
    t.receive(d, 0, d.length, 1, 1);
    expect(sink.count).toBe(1);
  });
});

function findPing(): string[] | null {
  for (const cmd of [['ping'], ['busybox', 'ping']]) {
    try {
      execFileSync(cmd[0], [...cmd.slice(1), '-c', '1', '-W', '1', '127.0.0.1'], { stdio: 'pipe' });
      return cmd;
    } catch {
      /* try the next one */
    }
  }
  return null;
}
const PING = findPing() ?? ['ping'];

function netnsAvailable(): string | null {
  if (findPing() == null) return 'ping (iputils or busybox) not installed';
  try {
    execFileSync('ip', ['-V'], { stdio: 'pipe' });
  } catch {
    return 'iproute2 (ip) not installed';
  }
  const probe = `rzprobe${process.pid}`;
  try {
    execFileSync('ip', ['netns', 'add', probe], { stdio: 'pipe' });
    execFileSync('ip', ['netns', 'del', probe], { stdio: 'pipe' });
  } catch (e) {
    return `network namespaces not permitted (${String((e as Error).message).split('\n')[0]})`;
  }
  return null;
}

const why = netnsAvailable();
if (why != null) console.warn(`SKIPPED: ${why}: the VXLAN interop test with the Linux kernel vxlan driver did not run`);

describe.skipIf(why != null)('VXLAN interop with the Linux kernel vxlan driver', () => {
  it('a kernel namespace pings a responder on our switch through the tunnel', async () => {
    const id = process.pid % 200;
    const ns = `rzvx${process.pid}`;
    const vethR = `rzr${process.pid % 100000}`;
    const vethN = `rzn${process.pid % 100000}`;
    const rootIp = `10.231.${id}.1`;
    const nsIp = `10.231.${id}.2`;
    const udpPort = 40000 + (process.pid % 20000);
    const sh = (args: string[]) => execFileSync('ip', args, { stdio: 'pipe' });
    const vx = await (async () => {
      sh(['netns', 'add', ns]);
      try {
        sh(['link', 'add', vethR, 'type', 'veth', 'peer', 'name', vethN]);
        sh(['link', 'set', vethN, 'netns', ns]);
        sh(['addr', 'add', `${rootIp}/24`, 'dev', vethR]);
        sh(['link', 'set', vethR, 'up']);
        sh(['-n', ns, 'link', 'set', 'lo', 'up']);
        sh(['-n', ns, 'addr', 'add', `${nsIp}/24`, 'dev', vethN]);
        sh(['-n', ns, 'link', 'set', vethN, 'up']);
        sh(['-n', ns, 'link', 'add', 'vx0', 'type', 'vxlan', 'id', '42', 'dstport', String(udpPort), 'remote', rootIp, 'local', nsIp, 'dev', vethN]);
        sh(['-n', ns, 'addr', 'add', '192.168.77.1/24', 'dev', 'vx0']);
        sh(['-n', ns, 'link', 'set', 'vx0', 'up']);
        return await openVxlan(rootIp, udpPort);
      } catch (e) {
        try {
          sh(['link', 'del', vethR]);
        } catch {
          /* already gone */
        }
        sh(['netns', 'del', ns]);
        throw e;
      }
    })();
    try {
      const br = new Bridge();
      const vxp = vx.tunnel.addPort(br, 'vx42', { vni: 42, remotes: [nsIp] });
      const responder = new ArpIcmpResponder('02:00:00:00:77:02', '192.168.77.2');
      const host = br.addPort('host', responder);
      responder.send = (f) => host.receive(f, 0, f.length);
      const tick = setInterval(() => br.tick(Date.now()), 200);
      try {
        const { stdout } = await run('ip', ['netns', 'exec', ns, ...PING, '-c', '3', '-W', '2', '192.168.77.2'], { timeout: 30_000 });
        expect(stdout).toMatch(/3 packets transmitted, 3 (packets )?received/);
      } finally {
        clearInterval(tick);
      }
      expect(responder.arps).toBeGreaterThanOrEqual(1);
      expect(responder.echoes).toBe(3);
      // Our side learned the kernel's vx0 MAC behind the namespace's address.
      const nsMac = execFileSync('ip', ['-n', ns, '-br', 'link', 'show', 'vx0'], { encoding: 'utf8' }).split(/\s+/)[2];
      expect(vxp.fdbEntries()).toContainEqual({ mac: nsMac, remote: nsIp, port: udpPort });
      // And the kernel learned our responder's MAC behind our address.
      const kfdb = execFileSync('bridge', ['-n', ns, 'fdb', 'show', 'dev', 'vx0'], { encoding: 'utf8' });
      expect(kfdb).toContain(`02:00:00:00:77:02 dst ${rootIp}`);
    } finally {
      await vx.close();
      try {
        sh(['link', 'del', vethR]);
      } catch {
        /* removed with the namespace */
      }
      sh(['netns', 'del', ns]);
    }
  });
});
