#!/usr/bin/env node
// ringzero-switch: runs one bridge with an OpenFlow 1.3 listener and VXLAN/internal ports.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { Bridge } from './bridge.js';
import { listenOpenFlow, openTap, openVxlan, parseOpenFlowTarget, tapUnavailableReason, type NodeVxlan, type OpenFlowListener } from './node.js';
import type { PortOptions, VlanMode } from './port.js';
import { VXLAN_PORT } from './vxlan.js';

const USAGE = `usage: ringzero-switch [--config FILE] [--bridge NAME] [--openflow tcp:HOST:PORT]
                       [--port NAME,type=vxlan,remote=IP,key=VNI[,dstport=4789][,local=IP][,tag=N]]
                       [--port NAME,type=internal[,tag=N][,trunks=1;2;3]]
                       [--port NAME,type=tap[,tag=N]] [--flow FLOW]...
TAP ports open (creating if needed) the Linux TAP device NAME ("rz%d": the kernel picks a number);
they need /dev/net/tun, the optional native helper @ringzero/vswitch-tap and CAP_NET_ADMIN
(or a device made with "ip tuntap add dev NAME mode tap user $USER").
Runs until interrupted (SIGINT/SIGTERM close it cleanly).
Config file (JSON): {"bridge":"br0","openflow":"tcp:127.0.0.1:6653","ports":[{"name":"vx0","type":"vxlan","remote":"10.0.0.2","key":42}],"flows":["priority=0,actions=NORMAL"]}`;

interface PortSpec {
  name: string;
  type: string;
  [k: string]: string | number | undefined;
}

function parsePortArg(s: string): PortSpec {
  const [name, ...kv] = s.split(',');
  const spec: PortSpec = { name, type: 'internal' };
  for (const item of kv) {
    const eq = item.indexOf('=');
    if (eq < 0) throw new Error(`--port ${s}: "${item}" is not key=value`);
    spec[item.slice(0, eq)] = item.slice(eq + 1);
  }
  return spec;
}

function vlanOpts(p: PortSpec): PortOptions {
  const o: PortOptions = {};
  if (p.tag !== undefined) o.tag = Number(p.tag);
  if (p.trunks !== undefined) o.trunks = String(p.trunks).split(/[;: ]/).filter(Boolean).map(Number);
  if (p.vlan_mode !== undefined) o.vlanMode = String(p.vlan_mode) as VlanMode;
  return o;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      config: { type: 'string' },
      bridge: { type: 'string' },
      openflow: { type: 'string' },
      port: { type: 'string', multiple: true },
      flow: { type: 'string', multiple: true },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(USAGE + '\n');
    return 0;
  }
  let cfg: { bridge?: string; openflow?: string; ports?: PortSpec[]; flows?: string[] } = {};
  if (values.config !== undefined) cfg = JSON.parse(readFileSync(values.config, 'utf8')) as typeof cfg;
  const br = new Bridge({ name: values.bridge ?? cfg.bridge ?? 'br0', now: Date.now() });
  const ports: PortSpec[] = [...(cfg.ports ?? []), ...(values.port ?? []).map(parsePortArg)];
  const vxlans = new Map<string, NodeVxlan>();
  const closers: (() => Promise<void>)[] = [];
  for (const p of ports) {
    switch (p.type) {
      case 'vxlan': {
        if (p.remote === undefined || p.key === undefined) throw new Error(`port ${p.name}: type=vxlan needs remote= and key=`);
        const local = String(p.local ?? '0.0.0.0');
        const dport = Number(p.dstport ?? VXLAN_PORT);
        const k = `${local}:${dport}`;
        let vx = vxlans.get(k);
        if (vx === undefined) {
          vx = await openVxlan(local, dport);
          vxlans.set(k, vx);
          const v = vx;
          closers.push(() => v.close());
        }
        vx.tunnel.addPort(br, p.name, { vni: Number(p.key), remotes: String(p.remote).split(';'), ...vlanOpts(p) });
        break;
      }
      case 'internal':
        br.addPort(p.name, { deliver: () => true }, { type: 'internal', ...vlanOpts(p) });
        break;
      case 'tap': {
        const why = tapUnavailableReason();
        if (why != null) throw new Error(`port ${p.name}: TAP ports are unavailable: ${why}`);
        const tap = openTap(br, p.name, vlanOpts(p));
        closers.push(() => Promise.resolve(tap.close()));
        break;
      }
      default:
        throw new Error(`port ${p.name}: unknown type "${p.type}" (vxlan, internal, tap)`);
    }
  }
  br.addFlows(cfg.flows ?? []);
  for (const f of values.flow ?? []) br.addFlow(f);
  let of: OpenFlowListener | null = null;
  const target = values.openflow ?? cfg.openflow;
  if (target !== undefined) {
    const { host, port } = parseOpenFlowTarget(target);
    of = await listenOpenFlow(br, host, port);
    const l = of;
    closers.push(() => l.close());
  }
  process.stdout.write(`bridge ${br.name} (dpid ${br.datapathHi.toString(16).padStart(8, '0')}${br.datapathLo.toString(16).padStart(8, '0')})\n`);
  for (const p of br.ports) process.stdout.write(`  port ${p.ofport === 0xfffffffe ? 'LOCAL' : p.ofport}: ${p.name} type=${p.type} vlan_mode=${p.vlanModeName}${p.tag >= 0 ? ` tag=${p.tag}` : ''}\n`);
  for (const [k] of vxlans) process.stdout.write(`  vxlan endpoint udp ${k}\n`);
  if (of != null) process.stdout.write(`openflow listening on tcp:${of.host}:${of.port}\n`);
  const timer = setInterval(() => br.tick(Date.now()), 500);
  await new Promise<void>((resolve) => {
    const stop = (): void => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  clearInterval(timer);
  for (const c of closers) await c();
  process.stdout.write('ringzero-switch: closed\n');
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(`ringzero-switch: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 1;
  },
);
