import { execFile, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Bridge } from './bridge.js';
import { listenOpenFlow, type OpenFlowListener } from './node.js';
import { OpenFlowConnection, ofMessage } from './openflow.js';
import { ethFrame, FrameRecorder, frameVlan, udpPacket } from './testing.js';

const run = promisify(execFile);
let OVS = true;
try {
  execFileSync('ovs-ofctl', ['--version'], { stdio: 'pipe' });
} catch {
  OVS = false;
  console.warn('SKIPPED: ovs-ofctl not installed: the OpenFlow 1.3 server is not tested against the real ovs-ofctl');
}

/** A FLOW_MOD adding in_port=1,idle_timeout=100,actions=output:2. */
function seedFlowMod(): Uint8Array {
  const hex =
    '040e005800000001' + '0000000000000000' + '0000000000000000' + '0000' + '0064' + '0000' + '8000' + 'ffffffff' + 'ffffffff' + 'ffffffff' + '00000000' + '0001000c80000004' + '0000000100000000' + '0004001800000000' + '0000001000000002' + 'ffff000000000000';
  return Uint8Array.from(hex.match(/../g)!.map((h) => parseInt(h, 16)));
}

/** Splits a stream of OpenFlow messages; throws on a bad framing. */
function split(bytes: Uint8Array): { type: number; xid: number; body: Uint8Array }[] {
  const out = [];
  let p = 0;
  while (p < bytes.length) {
    expect(bytes.length - p).toBeGreaterThanOrEqual(8);
    const len = (bytes[p + 2] << 8) | bytes[p + 3];
    expect(len).toBeGreaterThanOrEqual(8);
    expect(bytes[p]).toBe(4);
    out.push({ type: bytes[p + 1], xid: new DataView(bytes.buffer, bytes.byteOffset + p + 4, 4).getUint32(0), body: bytes.slice(p + 8, p + len) });
    p += len;
  }
  return out;
}

function session(br: Bridge) {
  const sent: Uint8Array[] = [];
  let closed = false;
  const c = new OpenFlowConnection(br, (b) => sent.push(b), () => (closed = true));
  c.start();
  const hello = ofMessage(0, 1, new Uint8Array([0, 1, 0, 8, 0, 0, 0, 0x10]));
  c.receive(hello);
  sent.length = 0;
  return { c, sent, closed: () => closed };
}

describe('OpenFlow 1.3 codec (in process)', () => {
  it('answers ECHO, BARRIER and refuses experimenter messages with BAD_EXPERIMENTER', () => {
    const { c, sent } = session(new Bridge());
    c.receive(ofMessage(2, 7, new Uint8Array([1, 2, 3])));
    c.receive(ofMessage(20, 8));
    c.receive(ofMessage(4, 9, new Uint8Array([0, 0, 0x23, 0x20, 0, 0, 0, 0])));
    const msgs = split(Uint8Array.from(sent.flatMap((b) => Array.from(b))));
    expect(msgs.map((m) => [m.type, m.xid])).toEqual([
      [3, 7],
      [21, 8],
      [1, 9],
    ]);
    expect(Array.from(msgs[0].body)).toEqual([1, 2, 3]);
    expect(Array.from(msgs[2].body.subarray(0, 4))).toEqual([0, 1, 0, 3]); // BAD_REQUEST / BAD_EXPERIMENTER
  });

  it('refuses a peer without OpenFlow 1.3 and closes', () => {
    const br = new Bridge();
    const sent: Uint8Array[] = [];
    let closed = false;
    const c = new OpenFlowConnection(br, (b) => sent.push(b), () => (closed = true));
    c.start();
    const hello10 = ofMessage(0, 1);
    hello10[0] = 1;
    c.receive(hello10);
    expect(closed).toBe(true);
    expect(sent[1][1]).toBe(1); // ERROR
    expect(sent[1][9]).toBe(0); // HELLO_FAILED
  });

  it('a length field below 8 is answered with BAD_LEN and the session closes', () => {
    const { c, sent, closed } = session(new Bridge());
    c.receive(new Uint8Array([4, 2, 0, 4, 0, 0, 0, 1]));
    expect(closed()).toBe(true);
    expect(split(sent[0])[0].type).toBe(1);
  });

  it('FLOW_REMOVED: sent for send_flow_rem flows with the reason, duration and counters; async config filters it', () => {
    const br = new Bridge({ now: 1000 });
    const a = br.addPort('a', new FrameRecorder());
    br.addPort('b', new FrameRecorder());
    const { c, sent } = session(br);
    br.addFlow('priority=100,in_port=1,idle_timeout=5,send_flow_rem,cookie=0x1234,actions=output:2');
    br.addFlow('priority=90,in_port=1,hard_timeout=3,send_flow_rem,actions=output:2');
    br.addFlow('priority=80,in_port=1,hard_timeout=3,actions=output:2'); // no send_flow_rem
    br.addFlow('table=1,priority=7,send_flow_rem,actions=drop');
    const f = ethFrame({ dst: '02:00:00:00:00:02', src: '02:00:00:00:00:01' });
    a.receive(f, 0, f.length);
    a.receive(f, 0, f.length);
    br.tick(4500); // hard timeout (3 s) of the priority 90 and 80 flows
    br.tick(11_600); // idle timeout (5 s after the last use at 1000)
    br.delFlows('table=1');
    const msgs = split(Uint8Array.from(sent.flatMap((b) => Array.from(b))));
    expect(msgs.map((m) => m.type)).toEqual([11, 11, 11]);
    const fields = (b: Uint8Array) => {
      const d = new DataView(b.buffer, b.byteOffset, b.length);
      return { cookie: d.getUint32(4), priority: d.getUint16(8), reason: b[10], table: b[11], sec: d.getUint32(12), nsec: d.getUint32(16), idle: d.getUint16(20), hard: d.getUint16(22), packets: d.getUint32(28), bytes: d.getUint32(36) };
    };
    expect(fields(msgs[0].body)).toEqual({ cookie: 0, priority: 90, reason: 1, table: 0, sec: 3, nsec: 500_000_000, idle: 0, hard: 3, packets: 0, bytes: 0 });
    expect(fields(msgs[1].body)).toEqual({ cookie: 0x1234, priority: 100, reason: 0, table: 0, sec: 10, nsec: 600_000_000, idle: 5, hard: 0, packets: 2, bytes: 120 });
    expect(fields(msgs[2].body)).toMatchObject({ priority: 7, reason: 2, table: 1 });
    if (OVS) {
      // ovs-ofctl decodes our bytes: the oracle for the message layout.
      const hex = Buffer.from(sent[1]).toString('hex');
      const printed = execFileSync('ovs-ofctl', ['ofp-print', hex], { encoding: 'utf8' });
      expect(printed).toMatch(/OFPT_FLOW_REMOVED \(OF1\.3\) \(xid=0x0\): priority=100,in_port=1 reason=idle table_id=0 cookie:0x1234 duration10\.600s idle5 pkts2 bytes120/);
    }
    // SET_ASYNC without the DELETE bit: deletions are no longer reported; GET_ASYNC echoes the masks.
    sent.length = 0;
    const masks = new Uint8Array(24);
    masks[3] = 3; masks[11] = 7; masks[15] = 7; masks[19] = 3; // flow_removed master: idle|hard
    c.receive(ofMessage(28, 3, masks));
    br.addFlow('table=2,send_flow_rem,actions=drop');
    br.delFlows('table=2');
    c.receive(ofMessage(26, 4));
    const after = split(Uint8Array.from(sent.flatMap((b) => Array.from(b))));
    expect(after.map((m) => [m.type, m.xid])).toEqual([[27, 4]]);
    expect(Array.from(after[0].body)).toEqual(Array.from(masks));
    // A slave session gets nothing with the default slave mask (0).
    sent.length = 0;
    const { c: c2, sent: sent2 } = session(br);
    c2.receive(ofMessage(24, 5, new Uint8Array([0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])));
    expect(split(sent2[0])[0].type).toBe(25);
    sent2.length = 0;
    // A slave may not change the switch: FLOW_MOD gets OFPBRC_IS_SLAVE.
    const before = br.flowTotal;
    c2.receive(seedFlowMod());
    const err = split(sent2[0])[0];
    expect([err.type, err.body[1], err.body[3]]).toEqual([1, 1, 10]);
    expect(br.flowTotal).toBe(before);
    sent2.length = 0;
    br.addFlow('table=3,send_flow_rem,actions=drop');
    br.delFlows('table=3');
    expect(sent2.length).toBe(0);
    // PACKET_IN: the equal-role session gets it (packet_in mask 0x3 includes ACTION), the slave does not.
    sent.length = 0;
    br.addFlow('priority=200,in_port=1,actions=controller');
    a.receive(f, 0, f.length);
    expect(sent2.length).toBe(0);
    const pin = split(sent[0]);
    expect(pin.map((m) => m.type)).toEqual([10]);
    expect(Array.from(pin[0].body.subarray(0, 8))).toEqual([0xff, 0xff, 0xff, 0xff, 0, 60, 1, 0]); // unbuffered, total_len, ACTION, table 0
    expect(Array.from(pin[0].body.subarray(pin[0].body.length - 60))).toEqual(Array.from(f));
  });

  it('fuzz: random and mutated messages never throw, and every reply is well framed', () => {
    const br = new Bridge();
    br.addPort('p1', new FrameRecorder());
    // A valid FLOW_MOD (add in_port=1 -> output:2) to mutate.
    const seedHex =
      '040e005800000001' + '0000000000000000' + '0000000000000000' + '0000' + '0064' + '0000' + '8000' + 'ffffffff' + 'ffffffff' + 'ffffffff' + '00000000' + '0001000c80000004' + '0000000100000000' + '0004001800000000' + '0000001000000002' + 'ffff000000000000';
    const seed = Uint8Array.from(seedHex.match(/../g)!.map((h) => parseInt(h, 16)));
    // A FLOW_MOD with NXAST_LEARN: learn(table=1,hard_timeout=60,NXM_OF_VLAN_TCI[0..11],
    // NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],output:NXM_OF_IN_PORT[]),NORMAL
    const learnHex =
      '040e009800000002' + '0000000000000000' + '0000000000000000' + '0000' + '0000' + '0000' + '8000' + 'ffffffff' + 'ffffffff' + 'ffffffff' + '00000000' + '0001000400000000' +
      '0004006000000000' +
      'ffff004800002320' + '0010' + '0000' + '003c' + '8000' + '0000000000000000' + '0000' + '01' + '00' + '00000000' +
      '000c' + '000008020000' + '000008020000' + '0030' + '000004060000' + '000002060000' + '1010' + '000000020000' + '00000000' +
      '00000010fffffffa' + 'ffff000000000000';
    const learnSeed = Uint8Array.from(learnHex.match(/../g)!.map((h) => parseInt(h, 16)));
    // A FLOW_MOD with reg0=5 and NXAST_REG_LOAD, NXAST_REG_MOVE, NXAST_OUTPUT_REG, NXAST_FIN_TIMEOUT
    // and a set_field into reg2, plus a learn with immediate match and load specs.
    const regHex =
      '040e00f800000003000000000000000000000000000000000000000000008000ffffffffffffffffffffffff000000000001000c000100040000000500000000000400b800000000ffff0018000023200007000f000100040000000000000001ffff00180000232000060010000000000000000200010204ffff001800002320000f000f00010004ffff000000000000ffff001000002320001300050006000000190010000104040000000700000000ffff00480000232000100000000080000000000000000000000301000002000320100800000006020000003000000406000000000206000008100000000200000001000400000000';
    const regSeed = Uint8Array.from(regHex.match(/../g)!.map((h) => parseInt(h, 16)));
    {
      const { c, sent } = session(br);
      c.receive(seed);
      c.receive(learnSeed);
      c.receive(regSeed);
      expect(sent.map((b) => Buffer.from(b).toString('hex'))).toEqual([]);
      expect(br.dumpFlows('', false)).toContain(
        ' reg0=0x5 actions=load:0x1->NXM_NX_REG0[0..15],move:NXM_OF_IN_PORT[]->NXM_NX_REG1[0..15],output:NXM_NX_REG0[0..15],fin_timeout(idle_timeout=5,hard_timeout=6),set_field:0x7->reg2,learn(table=1,fin_idle_timeout=2,fin_hard_timeout=3,send_flow_rem,delete_learned,eth_type=0x800,NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],load:NXM_OF_IN_PORT[]->NXM_NX_REG0[0..15])',
      );
      expect(br.dumpFlows('', false)).toContain(' idle_timeout=100, in_port=1 actions=output:2');
      expect(br.dumpFlows('', false)).toContain(' actions=learn(table=1,hard_timeout=60,NXM_OF_VLAN_TCI[0..11],NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],output:NXM_OF_IN_PORT[]),NORMAL');
    }
    const mutate = (src: Uint8Array) =>
      fc.tuple(fc.integer({ min: 0, max: src.length - 1 }), fc.integer({ min: 0, max: 255 }), fc.integer({ min: 8, max: src.length })).map(([i, v, cut]) => {
        const m = src.slice(0, cut);
        if (i < m.length) m[i] = v;
        m[2] = cut >> 8;
        m[3] = cut & 255;
        return m;
      });
    const msgArb = fc.oneof(
      fc.uint8Array({ minLength: 0, maxLength: 120 }),
      mutate(seed),
      mutate(learnSeed),
      mutate(regSeed),
      fc.tuple(fc.integer({ min: 0, max: 30 }), fc.uint8Array({ maxLength: 64 })).map(([t, body]) => ofMessage(t, 5, body)),
    );
    fc.assert(
      fc.property(fc.array(msgArb, { maxLength: 6 }), (msgs) => {
        const { c, sent } = session(br);
        for (const m of msgs) c.receive(m);
        for (const b of sent) split(b);
      }),
      { numRuns: 400 },
    );
  });
});

describe.skipIf(!OVS)('real ovs-ofctl against our OpenFlow server', () => {
  let br: Bridge;
  let lis: OpenFlowListener;
  let target: string;
  const sinks = [new FrameRecorder(), new FrameRecorder(), new FrameRecorder()];
  let dir: string;
  const ofctl = async (...args: string[]) => (await run('ovs-ofctl', ['-O', 'OpenFlow13', ...args.slice(0, 1), target, ...args.slice(1)], { timeout: 20_000 })).stdout;

  beforeAll(async () => {
    br = new Bridge({ name: 'br0' });
    sinks.forEach((s, i) => br.addPort(`vnet${i}`, s, i === 2 ? { trunks: [10] } : {}));
    lis = await listenOpenFlow(br, '127.0.0.1', 0);
    target = `tcp:127.0.0.1:${lis.port}`;
    dir = mkdtempSync(join(tmpdir(), 'rz-vswitch-'));
  });
  afterAll(async () => {
    await lis.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('show lists the features, our ports by name and the config', async () => {
    const out = await ofctl('show');
    expect(out).toMatch(/OFPT_FEATURES_REPLY \(OF1\.3\).*dpid:[0-9a-f]{16}/);
    expect(out).toMatch(/n_tables:254, n_buffers:0/);
    expect(out).toMatch(/ 1\(vnet0\): addr:/);
    expect(out).toMatch(/ 3\(vnet2\): addr:/);
    expect(out).toMatch(/ LOCAL\(br0\): addr:/);
    expect(out).toMatch(/OFPT_GET_CONFIG_REPLY \(OF1\.3\)/);
  });

  it('add-flow / add-flows / mod-flows / del-flows change the tables; dump-flows agrees with our own dump', async () => {
    await ofctl('del-flows');
    expect(br.flowTotal).toBe(0);
    await ofctl('add-flow', 'priority=100,in_port=1,actions=mod_vlan_vid:10,output:3');
    await ofctl('add-flow', 'priority=100,in_port=vnet2,dl_vlan=10,actions=strip_vlan,output:1');
    writeFileSync(join(dir, 'flows.txt'), ['cookie=0x10,table=0,priority=5,tcp,nw_dst=10.0.0.0/8,tp_dst=80,actions=resubmit(,2)', 'cookie=0x11,table=2,idle_timeout=30,udp,actions=mod_tp_dst:53,goto_table:3', 'table=3,arp,arp_op=1,actions=controller:128', '# comment', 'table=0,priority=0,actions=NORMAL'].join('\n'));
    await ofctl('add-flows', join(dir, 'flows.txt'));
    expect(br.flowTotal).toBe(6);
    await ofctl('mod-flows', 'cookie=0x10/0xff,actions=drop');
    const theirs = (await ofctl('dump-flows')).split('\n').slice(1).filter((l) => l !== '');
    const ours = br.dumpFlows().sort((a, b) => a.localeCompare(b));
    const norm = (l: string) => l.replace(/duration=[0-9.]+s/, 'duration=X');
    expect(theirs.map(norm).sort()).toEqual(ours.map(norm));
    expect(theirs.join('\n')).toContain('cookie=0x10, duration=');
    expect(theirs.join('\n')).toMatch(/priority=5,tcp,nw_dst=10\.0\.0\.0\/8,tp_dst=80 actions=drop/);
    await ofctl('del-flows', 'cookie=0x11/-1');
    expect(br.flowTotal).toBe(5);
    await run('ovs-ofctl', ['-O', 'OpenFlow13', '--strict', 'del-flows', target, 'priority=100,in_port=1']);
    expect(br.flowTotal).toBe(4);
  });

  it('flows installed by ovs-ofctl forward frames; dump-ports and dump-aggregate count them', async () => {
    await ofctl('del-flows');
    await ofctl('add-flow', 'in_port=1,actions=mod_vlan_vid:10,output:3');
    const f = ethFrame({ dst: '02:00:00:00:00:02', src: '02:00:00:00:00:01' });
    for (let i = 0; i < 3; i++) br.port('vnet0')!.receive(f, 0, f.length);
    expect(sinks[2].count).toBe(3);
    expect(frameVlan(sinks[2].frames[0])).toBe(10);
    const ports = await ofctl('dump-ports');
    expect(ports).toMatch(/port {2}1: rx pkts=3, bytes=180, drop=0, errs=0/);
    expect(ports).toMatch(/port {2}3: rx pkts=0, bytes=0, drop=0, errs=0, frame=0, over=0, crc=0\s+tx pkts=3, bytes=192, drop=0/);
    expect(await ofctl('dump-aggregate')).toMatch(/packet_count=3 byte_count=180 flow_count=1/);
    expect(await ofctl('dump-flows')).toMatch(/n_packets=3, n_bytes=180, in_port=1 actions=push_vlan:0x8100,set_field:4106->vlan_vid,output:3/);
  });

  it('learn: ovs-ofctl installs NXAST_LEARN, dump-flows prints it as parse-flow does, and traffic learns flows', async () => {
    await ofctl('del-flows');
    const flow = 'actions=learn(table=1,hard_timeout=60,NXM_OF_VLAN_TCI[0..11],NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],output:NXM_OF_IN_PORT[]),normal';
    const flow2 = 'table=2,priority=7,cookie=0x5,actions=learn(table=3,idle_timeout=10,priority=9,cookie=0xab,NXM_OF_VLAN_TCI[0..11],NXM_OF_ETH_SRC[]=NXM_OF_ETH_DST[],NXM_OF_VLAN_TCI[13..15]=NXM_OF_VLAN_TCI[0..2],output:NXM_OF_VLAN_TCI[4..7])';
    await ofctl('add-flow', flow);
    await ofctl('add-flow', flow2);
    // The formatting oracle: what ovs-ofctl itself prints for the same text.
    const oracle = (f: string) => /actions=(.*)$/m.exec(execFileSync('ovs-ofctl', ['-O', 'OpenFlow13', 'parse-flow', f], { encoding: 'utf8' }))![1];
    const dump = await ofctl('dump-flows');
    expect(dump).toContain(` actions=${oracle(flow)}\n`);
    expect(dump).toContain(`priority=7 actions=${oracle(flow2)}\n`);
    const norm = (l: string) => l.replace(/duration=[0-9.]+s/, 'duration=X');
    expect(dump.split('\n').slice(1).filter((l) => l !== '').map(norm).sort()).toEqual(br.dumpFlows().map(norm).sort());
    // A frame from vnet0 (port 1) teaches table 1 where 02:00:00:00:00:07 lives.
    const f = ethFrame({ dst: 'ff:ff:ff:ff:ff:ff', src: '02:00:00:00:00:07' });
    br.port('vnet0')!.receive(f, 0, f.length);
    const t1 = (await ofctl('dump-flows', 'table=1')).split('\n').slice(1).filter((l) => l !== '');
    expect(t1.map(norm)).toEqual(br.dumpFlows('table=1').map(norm));
    expect(t1[0]).toMatch(/ table=1, n_packets=0, n_bytes=0, hard_timeout=60, vlan_tci=0x0000\/0x0fff,dl_dst=02:00:00:00:00:07 actions=output:1$/);
  });

  it('registers and complete learn specs round-trip: ovs-ofctl add-flow, then dump-flows prints what parse-flow prints', async () => {
    await ofctl('del-flows');
    const flows = [
      'priority=5,reg0=5,in_port=1,tun_id=3,reg3=0x10/0xf0,actions=load:5->NXM_NX_REG0[],load:0x1->NXM_NX_REG1[0..15],set_field:7->reg2,move:NXM_OF_IN_PORT[]->NXM_NX_REG3[0..15],move:NXM_NX_REG0[]->NXM_NX_REG1[],output:NXM_NX_REG0[0..15],load:0->NXM_NX_REG7[31]',
      'priority=6,tcp,reg1=0/0x1,tp_dst=80,actions=set_field:0x5/0xff->reg1,set_field:0->reg4',
      'priority=7,actions=learn(table=1,NXM_OF_VLAN_TCI[0..11]=10,NXM_OF_ETH_TYPE[]=0x800,eth_src=00:11:22:33:44:55,NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],load:10->NXM_NX_REG0[],load:NXM_OF_IN_PORT[]->NXM_NX_REG1[0..15],output:NXM_OF_IN_PORT[])',
      'priority=8,actions=learn(table=2,idle_timeout=5,hard_timeout=7,fin_idle_timeout=3,fin_hard_timeout=4,priority=9,send_flow_rem,delete_learned,cookie=0x12,NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],load:0x5->NXM_OF_VLAN_TCI[0..11],load:0x1234567890ab->NXM_OF_ETH_SRC[],reg3=7,NXM_NX_REG4[3..9]=0x0,NXM_NX_TUN_ID[]=0x12,in_port=LOCAL,output:NXM_OF_IN_PORT[])',
      'priority=9,ip,actions=learn(eth_type=0x800,NXM_OF_IP_SRC[]=10.1.2.3,NXM_OF_IP_DST[0..7]=3,ip_proto=17,NXM_OF_UDP_DST[]=53,load:NXM_OF_IP_SRC[]->NXM_OF_IP_DST[],load:0x1c->NXM_OF_IP_TOS[],output:NXM_OF_IN_PORT[])',
    ];
    const oracle = (f: string) => /ADD (.*)$/m.exec(execFileSync('ovs-ofctl', ['-O', 'OpenFlow13', 'parse-flow', f], { encoding: 'utf8' }))![1];
    for (const f of flows) await ofctl('add-flow', f);
    const norm = (l: string) => l.replace(/duration=[0-9.]+s/, 'duration=X');
    const dump = (await ofctl('dump-flows')).split('\n').slice(1).filter((l) => l !== '');
    expect(dump.map(norm).sort()).toEqual(br.dumpFlows().map(norm).sort());
    const bare = (await run('ovs-ofctl', ['-O', 'OpenFlow13', '--no-stats', 'dump-flows', target], { timeout: 20_000 })).stdout.split('\n').filter((l) => l !== '').map((l) => l.trim());
    for (const f of flows) expect(bare).toContain(oracle(f));
    // Our own text parser gives the same flows.
    const br2 = new Bridge({ normalFlow: false });
    br2.addFlows(flows);
    expect(br2.dumpFlows('', false).map((l) => l.trim()).sort()).toEqual([...bare].sort());
  });

  it('learn behaviour: a register MAC-learning pipeline, immediates, send_flow_rem and delete_learned', async () => {
    await ofctl('del-flows');
    await ofctl('add-flow', 'table=0,priority=10,cookie=0x5,actions=learn(table=10,idle_timeout=60,priority=20,cookie=0x77,send_flow_rem,delete_learned,NXM_OF_VLAN_TCI[0..11],NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],eth_type=0x800,load:NXM_OF_IN_PORT[]->NXM_NX_REG0[0..15],load:0x2a->NXM_NX_REG1[]),resubmit(,10),resubmit(,20)');
    await ofctl('add-flow', 'table=20,priority=10,reg0=0,actions=flood');
    await ofctl('add-flow', 'table=20,priority=5,reg1=0x2a,actions=output:NXM_NX_REG0[0..15]');
    const A = '02:00:00:00:00:0a';
    const B = '02:00:00:00:00:0b';
    const ip = (src: string, dst: string) => ethFrame({ dst, src, payload: udpPacket('10.0.0.1', '10.0.0.2', 1, 2, new Uint8Array(4)) });
    const before = sinks.map((x) => x.count);
    const aToB = ip(A, B);
    br.port('vnet0')!.receive(aToB, 0, aToB.length); // unknown B: flooded; learns A behind port 1
    expect(sinks.map((x, i) => x.count - before[i])).toEqual([0, 1, 1]);
    const t10 = (await ofctl('dump-flows', 'table=10')).split('\n').slice(1).filter((l) => l !== '');
    expect(t10).toHaveLength(1);
    expect(t10[0]).toMatch(/cookie=0x77, duration=[0-9.]+s, table=10, n_packets=0, n_bytes=0, idle_timeout=60, send_flow_rem priority=20,ip,vlan_tci=0x0000\/0x0fff,dl_dst=02:00:00:00:00:0a actions=load:0x1->NXM_NX_REG0\[0\.\.15\],load:0x2a->NXM_NX_REG1\[\]$/);
    expect(t10.map((l) => l.replace(/duration=[0-9.]+s/, ''))).toEqual(br.dumpFlows('table=10').map((l) => l.replace(/duration=[0-9.]+s/, '')));
    const bToA = ip(B, A);
    br.port('vnet1')!.receive(bToA, 0, bToA.length); // A is known: reg0=1 -> output:1 only
    expect(sinks.map((x, i) => x.count - before[i])).toEqual([1, 1, 1]);
    expect(sinks[0].frames.at(-1)).toEqual(bToA);
    // A non-IP frame to A does not match the learned flow (eth_type=0x800 immediate): flooded.
    const arpToA = ethFrame({ dst: A, src: B, type: 0x0806, payload: new Uint8Array(28) });
    br.port('vnet1')!.receive(arpToA, 0, arpToA.length);
    expect(sinks.map((x, i) => x.count - before[i])).toEqual([2, 1, 2]);
    // delete_learned: removing the learning flow removes what it learned.
    expect(br.flows('table=10')).toHaveLength(2);
    await ofctl('del-flows', 'table=0');
    expect(br.flows('table=10')).toHaveLength(0);
  });

  it('actions and learn specs we cannot honour are refused with OFPBAC_BAD_ARGUMENT', async () => {
    for (const f of ['actions=load:0x5->NXM_OF_VLAN_TCI[0..11]', 'actions=move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[]', 'actions=learn(table=1,load:0x1005->NXM_OF_VLAN_TCI[])']) {
      const err = await ofctl('add-flow', f).then(
        () => null,
        (e: { stderr: string }) => e.stderr,
      );
      expect(err).toMatch(/OFPBAC_BAD_ARGUMENT/);
    }
  });

  it('monitor: ovs-ofctl receives OFPT_FLOW_REMOVED with the reason (delete, idle and hard timeouts) and OFPT_PACKET_IN', async () => {
    await ofctl('del-flows');
    const mon = spawn('ovs-ofctl', ['-O', 'OpenFlow13', `--unixctl=${join(dir, 'mon.ctl')}`, 'monitor', target, '65535'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    mon.stdout.on('data', (d: Buffer) => (out += d.toString()));
    mon.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const until = async (what: () => boolean) => {
      for (let i = 0; i < 2000 && !what(); i++) await new Promise((r) => setTimeout(r, 10));
      expect(what()).toBe(true);
    };
    try {
      const before = lis.messages;
      // The monitor's setup: HELLO, GET_CONFIG, SET_CONFIG, BARRIER, packet-in format (refused), BARRIER.
      await until(() => lis.messages >= before + 6);
      await ofctl('add-flow', 'priority=100,in_port=1,send_flow_rem,cookie=0x77,actions=output:2');
      await ofctl('add-flow', 'priority=50,in_port=1,idle_timeout=2,send_flow_rem,actions=output:3');
      await ofctl('add-flow', 'priority=40,in_port=2,hard_timeout=1,send_flow_rem,actions=output:3');
      await ofctl('add-flow', 'priority=30,in_port=3,actions=output:1'); // no send_flow_rem: silent
      const f = ethFrame({ dst: '02:00:00:00:00:02', src: '02:00:00:00:00:01' });
      br.port('vnet0')!.receive(f, 0, f.length);
      await ofctl('del-flows', 'in_port=1,cookie=0x77/-1');
      await until(() => /reason=delete/.test(out));
      expect(out).toMatch(/OFPT_FLOW_REMOVED \(OF1\.3\) \(xid=0x0\): priority=100,in_port=1 reason=delete table_id=0 cookie:0x77 duration[0-9.]+s idle0 pkts1 bytes60/);
      br.tick(br.now + 2500);
      await until(() => /reason=idle/.test(out) && /reason=hard/.test(out));
      expect(out).toMatch(/priority=50,in_port=1 reason=idle table_id=0 duration[0-9.]+s idle2 pkts0 bytes0/);
      expect(out).toMatch(/priority=40,in_port=2 reason=hard table_id=0 duration[0-9.]+s idle0 hard1 pkts0 bytes0/);
      await ofctl('del-flows');
      expect(out).not.toMatch(/priority=30/);
      // The controller action reaches the session as OFPT_PACKET_IN (max_len bytes of the frame).
      await ofctl('add-flow', 'table=0,cookie=0x99,in_port=2,actions=goto_table:3');
      await ofctl('add-flow', 'table=3,cookie=0x98,actions=controller:20');
      const pin = ethFrame({ dst: '02:00:00:00:00:05', src: '02:00:00:00:00:06' });
      br.port('vnet1')!.receive(pin, 0, pin.length);
      await until(() => /OFPT_PACKET_IN/.test(out));
      expect(out).toMatch(/OFPT_PACKET_IN \(OF1\.3\) \(xid=0x0\): table_id=3 cookie=0x98 total_len=60 in_port=2 \(via action\) data_len=20 \(unbuffered\)/);
      expect(out).toMatch(/dl_src=02:00:00:00:00:06,dl_dst=02:00:00:00:00:05/);
    } finally {
      mon.kill();
    }
  });

  it('packet-out: actions run on the frame, output:TABLE goes through the tables, bad ports are refused', async () => {
    await ofctl('del-flows');
    await ofctl('add-flow', 'in_port=CONTROLLER,actions=output:2');
    const before = sinks.map((s) => s.count);
    const f = ethFrame({ dst: '02:00:00:00:00:09', src: '02:00:00:00:00:08' });
    const hex = Buffer.from(f).toString('hex');
    await ofctl('packet-out', 'CONTROLLER', 'mod_vlan_vid:10,output:3', hex);
    expect(sinks[2].count).toBe(before[2] + 1);
    expect(frameVlan(sinks[2].frames.at(-1)!)).toBe(10);
    expect(sinks[2].frames.at(-1)!.length).toBe(f.length + 4);
    await ofctl('packet-out', `in_port=controller packet=${hex} actions=table`);
    expect(sinks[1].count).toBe(before[1] + 1);
    expect(sinks[1].frames.at(-1)).toEqual(f);
    await ofctl('packet-out', '1', 'in_port', hex);
    expect(sinks[0].count).toBe(before[0] + 1);
    expect(sinks[0].frames.at(-1)).toEqual(f);
    // The bridge did not learn the MAC of a frame that came from the controller.
    expect(br.macEntries().some((e) => e.mac === '02:00:00:00:00:08')).toBe(false);
    const err = await ofctl('packet-out', '77', 'output:1', hex).then(
      () => null,
      (e: { stderr: string }) => e.stderr,
    );
    expect(err).toMatch(/OFPBRC_BAD_PORT/);
    expect(sinks[0].count).toBe(before[0] + 1);
  });

  it('dump-ports-desc and dump-tables', async () => {
    expect(await ofctl('dump-ports-desc')).toMatch(/2\(vnet1\): addr:[0-9a-f:]+\n\s+config:\s+0\n\s+state:\s+LIVE/);
    const t = await ofctl('dump-tables');
    expect(t).toMatch(/table 0:\n\s+active=1, lookup=\d+, matched=\d+/);
  });

  it('errors: a backwards goto_table is refused and reported by ovs-ofctl', async () => {
    const err = await ofctl('add-flow', 'table=3,actions=goto_table:1').then(
      () => null,
      (e: { stderr: string }) => e.stderr,
    );
    expect(err).toMatch(/OFPBIC_BAD_TABLE_ID/);
  });

  it('an OpenFlow 1.0-only client gets HELLO_FAILED', async () => {
    const err = await run('ovs-ofctl', ['-O', 'OpenFlow10', 'show', target], { timeout: 20_000 }).then(
      () => null,
      (e: { stderr: string }) => e.stderr,
    );
    expect(err).toMatch(/version negotiation failed|OFPHFC_INCOMPATIBLE|We support OpenFlow 1\.3/);
  });

  it('a truncated message followed by a disconnect does not disturb the server', async () => {
    const before = br.flowTotal;
    await new Promise<void>((resolve, reject) => {
      const s = connect(lis.port, '127.0.0.1', () => {
        s.write(Buffer.from(ofMessage(0, 1, new Uint8Array([0, 1, 0, 8, 0, 0, 0, 0x10]))));
        s.write(Buffer.from([4, 14, 0, 200, 0, 0, 0, 2, 1, 2, 3]));
        s.end();
      });
      s.on('error', reject);
      s.on('close', () => resolve());
      s.resume();
    });
    expect(await ofctl('dump-aggregate')).toContain(`flow_count=${before}`);
  });
});
