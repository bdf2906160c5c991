import { execFileSync } from 'node:child_process';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Bridge } from './bridge.js';
import { formatInstructions, formatMatch, parseFlow } from './flow-text.js';
import { arpPacket, ethFrame, FrameRecorder, frameVlan, icmpEcho, inetChecksum, ipv4Packet, udpPacket } from './testing.js';

function hasOvsOfctl(): boolean {
  try {
    execFileSync('ovs-ofctl', ['--version'], { stdio: 'pipe' });
    return true;
  } catch {
    return false;
  }
}
const OVS = hasOvsOfctl();
if (!OVS) console.warn('SKIPPED: ovs-ofctl not installed: flow text formatting is not compared with the real ovs-ofctl');

const ORACLE_FLOWS = [
  'priority=100,in_port=1,dl_vlan=10,actions=strip_vlan,output:2',
  'in_port=1,actions=mod_vlan_vid:5,output:2',
  'dl_vlan=10,actions=strip_vlan,mod_vlan_vid:5,mod_dl_src:00:11:22:33:44:55,resubmit(,1),output:2',
  'tcp,nw_src=10.0.0.0/8,tp_dst=80,actions=goto_table:2',
  'udp,nw_dst=192.168.1.0/255.255.0.255,tp_src=0x1000/0xf000,actions=mod_tp_dst:53,write_actions(output:3),goto_table:4',
  'arp,arp_op=1,actions=learn(table=1,hard_timeout=10,NXM_OF_VLAN_TCI[0..11],NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],output:NXM_OF_IN_PORT[]),NORMAL',
  'icmp,icmp_type=8,icmp_code=0,nw_tos=16,dl_vlan_pcp=3,actions=drop',
  'arp,arp_spa=10.0.0.0/24,arp_tpa=10.0.0.1,arp_op=2,actions=output:1',
  'dl_src=01:00:00:00:00:00/01:00:00:00:00:00,dl_dst=00:00:00:00:00:01,actions=normal,flood,all,in_port,controller:64',
  'tcp,actions=mod_nw_src:1.2.3.4,mod_nw_dst:5.6.7.8,mod_tp_src:1,mod_tp_dst:2,mod_nw_tos:8,mod_dl_dst:01:02:03:04:05:06,mod_vlan_pcp:3,output:LOCAL,output:IN_PORT',
  'dl_vlan=0xffff,actions=controller',
  'vlan_tci=0x1000/0x1000,dl_type=0x88cc,actions=resubmit:3,resubmit(3,4),clear_actions',
  'priority=0,actions=NORMAL',
  'ip,nw_proto=47,nw_ecn=1,actions=push_vlan:0x88a8,set_field:4097->vlan_vid',
  'in_port=LOCAL,dl_type=0x0800,nw_src=1.2.3.4,actions=set_field:10.0.0.1->ip_dst,set_tunnel:0x2a,output:4',
  'tun_id=0x2a,actions=output:1',
  'sctp,tp_dst=9,actions=output:1',
  // Registers, load/move/output:field, and learn() with immediates, loads, flags and FIN timeouts.
  'priority=5,reg0=5,in_port=1,tun_id=3,reg3=0x10/0xf0,dl_src=00:00:00:00:00:01,actions=load:5->NXM_NX_REG0[],load:0x1->NXM_NX_REG1[0..15],set_field:7->reg2,move:NXM_OF_IN_PORT[]->NXM_NX_REG3[0..15],move:NXM_NX_REG0[]->NXM_NX_REG1[],output:NXM_NX_REG0[0..15],load:0->NXM_NX_REG7[31]',
  'tcp,reg1=0/0x1,tp_dst=80,reg7=0xffffffff,actions=set_field:0x5/0xff->reg1,set_field:0->reg4',
  'actions=learn(table=10,NXM_OF_VLAN_TCI[0..11],NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],load:NXM_OF_IN_PORT[]->NXM_NX_REG0[0..15]),resubmit(,10),output:NXM_NX_REG0[0..15]',
  'actions=learn(table=1,NXM_OF_VLAN_TCI[0..11]=10,NXM_OF_ETH_TYPE[]=0x800,dl_type=0x800,eth_src=00:11:22:33:44:55,NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],load:10->NXM_NX_REG0[],load:NXM_OF_IN_PORT[]->NXM_NX_REG1[0..15],output:NXM_OF_IN_PORT[])',
  'actions=learn(NXM_OF_VLAN_TCI[]=5,NXM_NX_TUN_ID[]=0x12,NXM_OF_IN_PORT[]=65534,eth_type=0x806,NXM_OF_ETH_TYPE[]=2048,NXM_OF_IP_PROTO[]=0x11)',
  'actions=learn(table=2,idle_timeout=5,hard_timeout=7,fin_idle_timeout=3,fin_hard_timeout=4,priority=9,send_flow_rem,delete_learned,cookie=0x12,NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],load:0x5->NXM_OF_VLAN_TCI[0..11],load:0->NXM_NX_REG2[],load:0x1234567890ab->NXM_OF_ETH_SRC[],reg3=7,NXM_NX_REG4[3..9]=0x0,output:NXM_OF_IN_PORT[])',
  'ip,actions=learn(eth_type=0x800,NXM_OF_IP_SRC[]=10.1.2.3,NXM_OF_IP_DST[0..7]=3,ip_proto=17,NXM_OF_UDP_DST[]=53,load:NXM_OF_IP_SRC[]->NXM_OF_IP_DST[],load:0x1c->NXM_OF_IP_TOS[],output:NXM_OF_IN_PORT[])',
  'actions=learn(NXM_OF_IN_PORT[]=5,eth_type=0x800,ip_dst=10.0.0.1,nw_proto=6,tcp_dst=80,NXM_OF_IP_TOS[]=0x20,in_port=3,vlan_tci=0x1005,NXM_OF_ETH_SRC[0..47]=NXM_OF_ETH_DST[])',
];

describe('ovs-ofctl flow syntax', () => {
  it.skipIf(!OVS)('formats matches and actions exactly like ovs-ofctl parse-flow (OpenFlow 1.3)', () => {
    for (const text of ORACLE_FLOWS) {
      const out = execFileSync('ovs-ofctl', ['-O', 'OpenFlow13', 'parse-flow', text], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
      const line = out.split('\n').find((l) => l.startsWith('OFPT_FLOW_MOD'))!;
      const theirs = line.replace(/^OFPT_FLOW_MOD \(OF1\.3\) \(xid=0x1\): ADD /, '');
      const spec = parseFlow(text);
      const m = formatMatch(spec.value, spec.mask, spec.priority);
      const ours = (m === '' ? '' : m + ' ') + 'actions=' + formatInstructions(spec.instructions);
      expect(ours, text).toBe(theirs);
    }
  });

  it('rejects bad syntax with clear errors', () => {
    expect(() => parseFlow('in_port=1')).toThrow(/must specify an action/);
    expect(() => parseFlow('nw_src=1.2.3.4,actions=drop')).toThrow(/require ip or arp/);
    expect(() => parseFlow('tp_dst=80,ip,actions=drop')).toThrow(/tp_src\/tp_dst require/);
    expect(() => parseFlow('foo=1,actions=drop')).toThrow(/unknown field/);
    expect(() => parseFlow('actions=drop,output:1')).toThrow(/"drop" must not/);
    expect(() => parseFlow('priority=70000,actions=drop')).toThrow(/out of range/);
    expect(() => parseFlow('cookie=1/1,actions=drop')).toThrow(/cookie mask/);
    expect(() => parseFlow('actions=output(')).toThrow(/parenthes/);
    expect(() => parseFlow('actions=frobnicate')).toThrow(/unknown action/);
    expect(() => parseFlow('actions=load:1->NXM_OF_ETH_TYPE[]')).toThrow(/only registers/);
    expect(() => parseFlow('actions=load:0x10000->NXM_NX_REG0[0..15]')).toThrow(/does not fit/);
    expect(() => parseFlow('actions=move:NXM_OF_IN_PORT[]->NXM_NX_REG0[]')).toThrow(/different widths/);
    expect(() => parseFlow('actions=set_field:5/0x5->reg0')).toThrow(/not contiguous/);
    expect(() => parseFlow('actions=learn(load:1->NXM_OF_ETH_TYPE[])')).toThrow(/load into NXM_OF_ETH_TYPE\[\] is not supported/);
    expect(() => parseFlow('actions=learn(NXM_OF_VLAN_TCI[0..3]=0x10)')).toThrow(/does not fit in 4 bits/);
    expect(() => parseFlow('actions=learn(foo=1)')).toThrow(/unknown field/);
  });

  it('never throws anything but FlowSyntaxError on arbitrary input', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 80 }), (s) => {
        try {
          parseFlow(s);
        } catch (e) {
          expect((e as Error).name).toBe('FlowSyntaxError');
        }
      }),
      { numRuns: 500 },
    );
  });

  it('never throws anything but FlowSyntaxError on learn/register-shaped input, and what parses formats and re-parses to the same text', () => {
    const piece = fc.constantFrom(
      'NXM_OF_ETH_SRC[]', 'NXM_OF_ETH_DST[]', 'NXM_OF_VLAN_TCI[0..11]', 'NXM_OF_IN_PORT[]', 'NXM_NX_REG0[]', 'NXM_NX_REG3[4..9]', 'NXM_NX_TUN_ID[0..31]',
      'NXM_OF_IP_TOS[]', 'NXM_NX_REG9[]', 'NXM_OF_ETH_SRC[0..15]', 'NXM_NX_REG1[40]', 'eth_type', 'in_port', 'reg2', 'ip_dst', 'foo',
      '0x800', '10', '10.0.0.1', 'LOCAL', '00:11:22:33:44:55', '0x123456789abcdef01', '', '-1',
    );
    const tok = fc.oneof(
      fc.tuple(piece, piece).map(([a, b]) => `${a}=${b}`),
      fc.tuple(piece, piece).map(([a, b]) => `load:${a}->${b}`),
      piece.map((a) => `output:${a}`),
      piece,
      fc.constantFrom('table=3', 'priority=9', 'idle_timeout=5', 'fin_idle_timeout=2', 'fin_hard_timeout=70000', 'send_flow_rem', 'delete_learned', 'cookie=0x5'),
    );
    const action = fc.oneof(
      fc.array(tok, { maxLength: 5 }).map((t) => `learn(${t.join(',')})`),
      fc.tuple(piece, piece).map(([a, b]) => `move:${a}->${b}`),
      fc.tuple(piece, piece).map(([a, b]) => `load:${a}->${b}`),
      fc.tuple(piece, fc.constantFrom('reg0', 'reg7', 'reg8', 'eth_dst')).map(([a, b]) => `set_field:${a}->${b}`),
      piece.map((a) => `output:${a}`),
      fc.constantFrom('fin_timeout(idle_timeout=3)', 'fin_timeout(hard_timeout=x)', 'fin_timeout(foo=1)'),
    );
    fc.assert(
      fc.property(fc.option(fc.constantFrom('reg0=5', 'reg1=0x10/0xf0', 'reg8=1', 'reg3=x')), fc.array(action, { minLength: 1, maxLength: 3 }), (m, acts) => {
        const text = `${m != null ? m + ',' : ''}actions=${acts.join(',')}`;
        let spec;
        try {
          spec = parseFlow(text);
        } catch (e) {
          expect((e as Error).name).toBe('FlowSyntaxError');
          return;
        }
        const printed = formatInstructions(spec.instructions);
        expect(formatInstructions(parseFlow(`actions=${printed}`).instructions)).toBe(printed);
      }),
      { numRuns: 400 },
    );
  });
});

const A = '02:00:00:00:00:0a';
const B = '02:00:00:00:00:0b';

function bridge3(opts: ConstructorParameters<typeof Bridge>[0] = {}) {
  const br = new Bridge({ normalFlow: false, ...opts });
  const s = [new FrameRecorder(), new FrameRecorder(), new FrameRecorder()];
  const p = s.map((x, i) => br.addPort(`p${i + 1}`, x));
  return { br, s, p };
}
const send = (p: { receive(b: Uint8Array, o: number, l: number): void }, f: Uint8Array) => p.receive(f, 0, f.length);

describe('flow pipeline', () => {
  it('without flows OpenFlow 1.3 drops (table miss)', () => {
    const { s, p } = bridge3();
    send(p[0], ethFrame({ dst: B, src: A }));
    expect(s.map((x) => x.count)).toEqual([0, 0, 0]);
  });

  it('picks the highest priority, counts packets and bytes per flow', () => {
    const { br, s, p } = bridge3();
    br.addFlow('priority=10,in_port=1,actions=output:2');
    br.addFlow('priority=20,in_port=1,dl_dst=02:00:00:00:00:0b,actions=output:3');
    send(p[0], ethFrame({ dst: B, src: A }));
    send(p[0], ethFrame({ dst: A, src: B }));
    send(p[0], ethFrame({ dst: B, src: A }));
    expect(s.map((x) => x.count)).toEqual([0, 1, 2]);
    const d = br.dumpFlows();
    expect(d[0]).toMatch(/n_packets=2, n_bytes=120, priority=20,in_port=1,dl_dst=02:00:00:00:00:0b actions=output:3$/);
    expect(d[1]).toMatch(/n_packets=1, n_bytes=60, priority=10,in_port=1 actions=output:2$/);
  });

  it('output to the input port is skipped unless in_port is used', () => {
    const { br, s, p } = bridge3();
    br.addFlow('in_port=1,actions=output:1,output:2');
    br.addFlow('in_port=2,actions=in_port');
    send(p[0], ethFrame({ dst: B, src: A }));
    send(p[1], ethFrame({ dst: B, src: A }));
    expect(s.map((x) => x.count)).toEqual([0, 2, 0]);
  });

  it('VLAN push/pop/modify and MAC rewrite produce the right bytes', () => {
    const { br, s, p } = bridge3();
    br.addFlow('in_port=1,actions=mod_vlan_vid:42,mod_dl_src:00:11:22:33:44:55,output:2');
    br.addFlow('in_port=2,dl_vlan=42,actions=strip_vlan,output:3');
    const f = ethFrame({ dst: B, src: A });
    send(p[0], f);
    const out = s[1].frames[0];
    expect(out.length).toBe(64);
    expect(frameVlan(out)).toBe(42);
    expect(Array.from(out.subarray(6, 12))).toEqual([0, 0x11, 0x22, 0x33, 0x44, 0x55]);
    expect(out.subarray(16)).toEqual(f.subarray(12));
    send(p[1], out);
    expect(s[2].frames[0].subarray(12)).toEqual(f.subarray(12));
    expect(frameVlan(s[2].frames[0])).toBe(-1);
  });

  it('rewrites IPv4 addresses and UDP ports keeping checksums valid', () => {
    const { br, s, p } = bridge3();
    br.addFlow('udp,actions=mod_nw_src:10.9.8.7,mod_tp_dst:5353,mod_nw_tos:40,output:2');
    const f = ethFrame({ dst: B, src: A, payload: udpPacket('192.168.0.1', '192.168.0.2', 1000, 53, new Uint8Array([1, 2, 3, 4, 5])) });
    send(p[0], f);
    const o = s[1].frames[0];
    expect(Array.from(o.subarray(26, 30))).toEqual([10, 9, 8, 7]);
    expect(o[15]).toBe(40);
    expect((o[36] << 8) | o[37]).toBe(5353);
    expect(inetChecksum(o, 14, 20)).toBe(0);
    const udpLen = (o[38] << 8) | o[39];
    const pseudo = new Uint8Array(12 + udpLen);
    pseudo.set(o.subarray(26, 34), 0);
    pseudo[9] = 17;
    pseudo[10] = udpLen >> 8;
    pseudo[11] = udpLen & 255;
    pseudo.set(o.subarray(34, 34 + udpLen), 12);
    expect(inetChecksum(pseudo, 0, pseudo.length)).toBe(0);
  });

  it('resubmit and goto_table chain tables; write_actions runs at the end', () => {
    const { br, s, p } = bridge3();
    br.addFlow('table=0,in_port=1,actions=resubmit(,1),goto_table:2');
    br.addFlow('table=1,actions=output:2');
    br.addFlow('table=2,actions=write_actions(output:3)');
    send(p[0], ethFrame({ dst: B, src: A }));
    expect(s.map((x) => x.count)).toEqual([0, 1, 1]);
    expect(() => br.addFlow('table=3,actions=goto_table:1')).toThrow(/later table/);
  });

  it('resubmit loops stop at the recursion limit', () => {
    const { br, s, p } = bridge3();
    br.addFlow('table=0,actions=output:2,resubmit(,0)');
    send(p[0], ethFrame({ dst: B, src: A }));
    expect(br.stats().resubmitLimitDrops).toBe(1);
    expect(s[1].count).toBe(64);
  });

  it('del-flows and mod-flows honour cookies with masks, strictness and out_port', () => {
    const { br } = bridge3();
    br.addFlow('cookie=0x11,priority=5,in_port=1,actions=output:2');
    br.addFlow('cookie=0x21,priority=6,in_port=1,tcp,actions=output:3');
    br.addFlow('cookie=0x22,in_port=2,actions=output:3');
    br.modFlows('cookie=0x20/0xf0,actions=output:1');
    expect(br.dumpFlows('', false)).toEqual([
      ' cookie=0x22, in_port=2 actions=output:1',
      ' cookie=0x21, priority=6,tcp,in_port=1 actions=output:1',
      ' cookie=0x11, priority=5,in_port=1 actions=output:2',
    ]);
    br.delFlows('in_port=1', true); // strict: priority 32768 + exactly in_port=1: nothing
    expect(br.flowTotal).toBe(3);
    br.delFlows('in_port=1'); // non-strict: both in_port=1 flows
    expect(br.flowTotal).toBe(1);
    br.delFlows('out_port=2');
    expect(br.flowTotal).toBe(1);
    br.delFlows('out_port=1');
    expect(br.flowTotal).toBe(0);
  });

  it('idle and hard timeouts expire flows on the bridge clock', () => {
    const { br, p } = bridge3();
    br.addFlow('idle_timeout=10,in_port=1,actions=output:2');
    br.addFlow('hard_timeout=15,in_port=2,actions=output:1');
    br.tick(8000);
    send(p[0], ethFrame({ dst: B, src: A }));
    br.tick(16_000);
    expect(br.dumpFlows('', false)).toEqual([' idle_timeout=10, in_port=1 actions=output:2']);
    br.tick(18_001);
    expect(br.flowTotal).toBe(0);
  });

  it('learn() installs a flow from the packet', () => {
    const { br, s, p } = bridge3();
    br.addFlow('table=0,actions=learn(table=1,hard_timeout=60,NXM_OF_VLAN_TCI[0..11],NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],output:NXM_OF_IN_PORT[]),resubmit(,1)');
    br.addFlow('table=1,priority=0,actions=flood');
    send(p[0], ethFrame({ dst: B, src: A }));
    expect(s.map((x) => x.count)).toEqual([0, 1, 1]);
    expect(br.dumpFlows('table=1', false)).toContain(' table=1, hard_timeout=60, vlan_tci=0x0000/0x0fff,dl_dst=02:00:00:00:00:0a actions=output:1');
    send(p[1], ethFrame({ dst: A, src: B }));
    expect(s.map((x) => x.count)).toEqual([1, 1, 1]);
  });

  it('registers: move/load/output:field drive the pipeline, and the caches key on the packet bits a register came from', () => {
    const { br, s, p } = bridge3();
    br.addFlow('table=0,actions=move:NXM_OF_IN_PORT[]->NXM_NX_REG0[0..15],load:0x3->NXM_NX_REG1[0..1],resubmit(,1)');
    br.addFlow('table=1,reg0=1,actions=output:NXM_NX_REG1[0..1]');
    br.addFlow('table=1,reg0=2,actions=set_field:1->reg2,resubmit(,2)');
    br.addFlow('table=2,reg2=1,actions=output:1');
    send(p[0], ethFrame({ dst: B, src: A })); // reg0=1: out port 3 (from reg1)
    send(p[1], ethFrame({ dst: B, src: A })); // same packet bits but in_port 2: reg0=2 -> reg2=1 -> port 1
    send(p[2], ethFrame({ dst: B, src: A })); // reg0=3: no flow in table 1, dropped
    expect(s.map((x) => x.count)).toEqual([1, 0, 1]);
    expect(br.stats()).toMatchObject({ emcHits: 0, megaflowHits: 0, misses: 3 });
    send(p[1], ethFrame({ dst: B, src: A }));
    expect(s.map((x) => x.count)).toEqual([2, 0, 1]);
  });

  it('learn: immediates, loads into packet fields, FIN timeouts (a TCP FIN lowers the learned flow\'s timeouts) and send_flow_rem', () => {
    const { br, s, p } = bridge3();
    br.addFlow('table=0,tcp,actions=learn(table=1,idle_timeout=100,hard_timeout=200,fin_idle_timeout=2,fin_hard_timeout=3,send_flow_rem,eth_type=0x800,nw_proto=6,NXM_OF_IP_DST[]=NXM_OF_IP_SRC[],NXM_OF_TCP_DST[]=NXM_OF_TCP_SRC[],load:0x0a000063->NXM_OF_IP_SRC[],load:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[],output:NXM_OF_IN_PORT[]),output:3');
    const tcp = (src: string, dst: string, sport: number, dport: number, flags: number) => {
      const t = new Uint8Array(20);
      t[0] = sport >> 8; t[1] = sport & 255; t[2] = dport >> 8; t[3] = dport & 255; t[12] = 0x50; t[13] = flags;
      return ipv4Packet({ src, dst, proto: 6, payload: t });
    };
    send(p[0], ethFrame({ dst: B, src: A, payload: tcp('10.0.0.1', '10.0.0.2', 1234, 80, 0x02) })); // SYN from port 1
    const learned = br.dumpFlows('table=1', false);
    expect(learned).toEqual([' table=1, idle_timeout=100, hard_timeout=200, send_flow_rem tcp,nw_dst=10.0.0.1,tp_dst=1234 actions=fin_timeout(idle_timeout=2,hard_timeout=3),set_field:10.0.0.99->ip_src,set_field:02:00:00:00:00:0a->eth_dst,output:1']);
    br.addFlow('table=0,priority=40000,in_port=3,actions=resubmit(,1)');
    const reply = ethFrame({ dst: A, src: B, payload: tcp('10.0.0.2', '10.0.0.1', 80, 1234, 0x10) });
    send(p[2], reply); // the learned flow rewrites the source address and forwards to port 1
    expect(s[0].count).toBe(1);
    expect(Array.from(s[0].frames[0].subarray(26, 30))).toEqual([10, 0, 0, 99]);
    expect(br.flows('table=1')[0].idleTimeout).toBe(100);
    send(p[2], ethFrame({ dst: A, src: B, payload: tcp('10.0.0.2', '10.0.0.1', 80, 1234, 0x11) })); // FIN|ACK
    expect(br.flows('table=1')[0]).toMatchObject({ idleTimeout: 2, hardTimeout: 3 });
    const removed: number[] = [];
    br.onFlowRemoved = (f, reason) => removed.push(f.table, f.flags, reason);
    br.tick(br.now + 3500);
    expect(removed).toEqual([1, 1, 1]); // table 1, send_flow_rem, hard timeout
  });

  it('learn sees the packet as rewritten by earlier actions and resubmit(port,table)', () => {
    const { br, s, p } = bridge3();
    br.addFlow('table=0,ip,actions=set_field:10.0.0.99->ip_src,resubmit(3,1)');
    br.addFlow('table=1,actions=learn(table=2,eth_type=0x800,NXM_OF_IP_DST[]=NXM_OF_IP_SRC[],NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],output:NXM_OF_IN_PORT[])');
    for (let i = 0; i < 2; i++) {
      // Two sources: the learned flow takes the rewritten address and the resubmitted in_port, never the packet's.
      send(p[i], ethFrame({ dst: B, src: i === 0 ? A : '02:00:00:00:00:0c', payload: udpPacket(`10.0.0.${i + 1}`, '10.0.0.2', 1, 2, new Uint8Array(4)) }));
    }
    expect(br.dumpFlows('table=2', false).sort()).toEqual([
      ' table=2, ip,dl_dst=02:00:00:00:00:0a,nw_dst=10.0.0.99 actions=output:3',
      ' table=2, ip,dl_dst=02:00:00:00:00:0c,nw_dst=10.0.0.99 actions=output:3',
    ]);
    expect(s.map((x) => x.count)).toEqual([0, 0, 0]);
  });

  it('controller action raises a packet-in event with the flow cookie', () => {
    const { br, p } = bridge3();
    const events: { inPort: number; len: number; cookie: number; table: number }[] = [];
    br.onPacketIn = (e) => events.push({ inPort: e.inPort, len: e.data.length, cookie: e.cookieLo, table: e.tableId });
    br.addFlow('table=0,actions=goto_table:3');
    br.addFlow('table=3,cookie=0x99,arp,actions=controller:20');
    send(p[1], ethFrame({ dst: 'ff:ff:ff:ff:ff:ff', src: A, type: 0x0806, payload: arpPacket(1, A, '10.0.0.1', '00:00:00:00:00:00', '10.0.0.2') }));
    expect(events).toEqual([{ inPort: 2, len: 20, cookie: 0x99, table: 3 }]);
  });

  it('flow changes invalidate the caches', () => {
    const { br, s, p } = bridge3();
    br.addFlow('actions=output:2');
    for (let i = 0; i < 3; i++) send(p[0], ethFrame({ dst: B, src: A }));
    expect(br.stats()).toMatchObject({ emcHits: 2, misses: 1 });
    br.addFlow('priority=40000,in_port=1,actions=output:3');
    send(p[0], ethFrame({ dst: B, src: A }));
    expect(s[2].count).toBe(1);
    br.port('p3')!.up = false;
    br.portChanged(br.port('p3')!);
    send(p[0], ethFrame({ dst: B, src: A }));
    expect(s[2].count).toBe(1);
  });

  it('matches ICMP type, ARP fields, nw_tos and VLAN PCP', () => {
    const { br, s, p } = bridge3();
    br.addFlow('icmp,icmp_type=8,nw_tos=32,actions=output:2');
    br.addFlow('arp,arp_op=1,arp_tpa=10.0.0.0/24,actions=output:3');
    br.addFlow('dl_vlan_pcp=5,actions=output:3');
    send(p[0], ethFrame({ dst: B, src: A, payload: icmpEcho('1.1.1.1', '2.2.2.2', 8, 1, 1) }));
    const ping = icmpEcho('1.1.1.1', '2.2.2.2', 8, 1, 1);
    ping[1] = 32;
    send(p[0], ethFrame({ dst: B, src: A, payload: ping }));
    send(p[0], ethFrame({ dst: B, src: A, type: 0x0806, payload: arpPacket(1, A, '10.0.0.1', '00:00:00:00:00:00', '10.0.0.7') }));
    send(p[0], ethFrame({ dst: B, src: A, type: 0x0806, payload: arpPacket(1, A, '10.0.0.1', '00:00:00:00:00:00', '10.0.1.7') }));
    send(p[0], ethFrame({ dst: B, src: A, vlan: 3, pcp: 5 }));
    expect(s.map((x) => x.count)).toEqual([0, 1, 2]);
  });
});

describe('caches are transparent', () => {
  it('random flows and packets give identical outputs with and without caches', () => {
    const macs = ['02:00:00:00:00:01', '02:00:00:00:00:02', 'ff:ff:ff:ff:ff:ff'];
    const flowArb = fc.record({
      prio: fc.integer({ min: 0, max: 5 }),
      inPort: fc.option(fc.integer({ min: 1, max: 3 })),
      dst: fc.option(fc.constantFrom(...macs)),
      vlan: fc.option(fc.integer({ min: 1, max: 3 })),
      tp: fc.option(fc.integer({ min: 1, max: 3 })),
      table: fc.integer({ min: 0, max: 1 }),
      reg: fc.option(fc.integer({ min: 0, max: 3 })),
      act: fc.constantFrom(
        'output:1', 'output:2', 'output:3', 'NORMAL', 'FLOOD', 'strip_vlan,output:2', 'mod_vlan_vid:7,output:3', 'resubmit(,1)', 'in_port',
        // Registers: computed from packet fields (the megaflow must key on them) or constants.
        'move:NXM_OF_IN_PORT[]->NXM_NX_REG0[0..15],resubmit(,1)', 'move:NXM_OF_UDP_DST[]->NXM_NX_REG0[0..15],resubmit(,1)',
        'load:2->NXM_NX_REG0[],resubmit(,1)', 'output:NXM_NX_REG0[0..15]', 'move:NXM_OF_IN_PORT[]->NXM_NX_REG1[0..15],output:NXM_NX_REG1[0..15]',
      ),
    });
    const pktArb = fc.record({ inPort: fc.integer({ min: 1, max: 3 }), src: fc.constantFrom(...macs.slice(0, 2)), dst: fc.constantFrom(...macs), vlan: fc.option(fc.integer({ min: 1, max: 3 })), tp: fc.integer({ min: 1, max: 3 }) });
    fc.assert(
      fc.property(fc.array(flowArb, { maxLength: 8 }), fc.array(pktArb, { minLength: 1, maxLength: 12 }), (flows, pkts) => {
        const run = (caches: boolean) => {
          const { br, s, p } = bridge3({ caches });
          for (const f of flows) {
            const m = [`table=${f.table}`, `priority=${f.prio}`];
            if (f.inPort != null) m.push(`in_port=${f.inPort}`);
            if (f.dst != null) m.push(`dl_dst=${f.dst}`);
            if (f.vlan != null) m.push(`dl_vlan=${f.vlan}`);
            if (f.tp != null) m.push(`udp,tp_dst=${f.tp}`);
            if (f.reg != null) m.push(`reg0=${f.reg}`);
            const act = f.table === 1 && f.act.includes('resubmit(,1)') ? 'output:1' : f.act;
            br.addFlow(`${m.join(',')},actions=${act}`);
          }
          for (const k of pkts) {
            const payload = udpPacket('10.0.0.1', '10.0.0.2', 7, k.tp, new Uint8Array(4));
            const fr = ethFrame({ dst: k.dst, src: k.src, ...(k.vlan != null ? { vlan: k.vlan } : {}), payload });
            send(p[k.inPort - 1], fr);
          }
          return s.map((x) => x.frames.map((f) => Buffer.from(f).toString('hex')));
        };
        expect(run(true)).toEqual(run(false));
      }),
      { numRuns: 150 },
    );
  });
});
