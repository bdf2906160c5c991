import { describe, expect, it } from 'vitest';
import { Bridge } from './bridge.js';
import { ethFrame, FrameRecorder, frameVlan } from './testing.js';

const A = '02:00:00:00:00:0a';
const B = '02:00:00:00:00:0b';
const fr = (f: Uint8Array): [Uint8Array, number, number] => [f, 0, f.length];

function setup() {
  const br = new Bridge();
  const s = Array.from({ length: 5 }, () => new FrameRecorder());
  const p = s.map((x, i) => br.addPort(`p${i + 1}`, x, i === 4 ? { trunks: [10, 20, 999] } : { tag: i < 2 ? 10 : 20 }));
  return { br, s, p };
}

describe('mirrors', () => {
  it('SPAN by source port: the output port gets a copy and leaves normal forwarding', () => {
    const { br, s, p } = setup();
    const spanSink = new FrameRecorder();
    br.addPort('span', spanSink);
    br.addMirror({ name: 'm1', selectSrcPorts: ['p1'], outputPort: 'span' });
    p[0].receive(...fr(ethFrame({ dst: 'ff:ff:ff:ff:ff:ff', src: A })));
    p[1].receive(...fr(ethFrame({ dst: 'ff:ff:ff:ff:ff:ff', src: B })));
    expect(spanSink.count).toBe(1); // only p1's packet; not flooded as a normal port
    expect(s[1].count).toBe(1);
    expect(br.macEntries().every((e) => e.port !== br.port('span')!.ofport)).toBe(true);
  });

  it('select by destination port and VLAN; a packet is mirrored once per destination', () => {
    const { br, p } = setup();
    const spanSink = new FrameRecorder();
    br.addPort('span', spanSink);
    br.addMirror({ name: 'm', selectSrcPorts: ['p1'], selectDstPorts: ['p2', 'p5'], outputPort: 'span' });
    p[0].receive(...fr(ethFrame({ dst: 'ff:ff:ff:ff:ff:ff', src: A }))); // src p1 and dst p2 + p5: still one copy
    expect(spanSink.count).toBe(1);
    const m2 = br.addMirror({ name: 'v20', selectAll: true, selectVlans: [20], outputPort: 'span' });
    p[2].receive(...fr(ethFrame({ dst: 'ff:ff:ff:ff:ff:ff', src: B }))); // VLAN 20
    p[0].receive(...fr(ethFrame({ dst: 'ff:ff:ff:ff:ff:ff', src: A }))); // VLAN 10: only m
    expect(m2.packets).toBe(1);
    expect(spanSink.count).toBe(3);
  });

  it('RSPAN: copies leave trunks tagged with the output VLAN', () => {
    const { br, s, p } = setup();
    br.addMirror({ name: 'r', selectSrcPorts: ['p3'], outputVlan: 999 });
    p[2].receive(...fr(ethFrame({ dst: B, src: A })));
    // p5 (trunk carrying 999) receives the flood on VLAN 20 and the RSPAN copy on VLAN 999.
    expect(s[4].frames.map(frameVlan).sort()).toEqual([20, 999]);
  });
});
