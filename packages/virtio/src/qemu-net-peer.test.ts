// Real peer: QEMU's own virtio-net-pci with four queue pairs (mq=on over a multiqueue tap) and
// its control queue, driven from inside a guest. A tiny multiboot kernel (nasm) reads the
// features, queue count and config, sets the device up, puts the control queue last (as Linux's
// virtio_net does) and runs a table of control commands, printing every ack on the serial port;
// the same probe runs against our VirtioNet over VirtioPci and the answers must agree.
import { existsSync } from 'node:fs';
import { FlatGuestMemory } from '@ringzero/mmu-ept';
import { describe, expect, it } from 'vitest';
import { multibootKernel, nasmAndQemu, runQemuProbe, warnIfMissing, type Probe } from '../test/qemu-probe';
import * as N from './net';
import { VirtioPci } from './pci';

// A multiqueue tap needs /dev/net/tun and the right to create interfaces (root here).
const tap = existsSync('/dev/net/tun') && process.getuid?.() === 0;
warnIfMissing("virtio-net MQ and the control queue are not compared with QEMU's virtio-net-pci");
if (nasmAndQemu && !tap) console.warn('SKIPPED: /dev/net/tun or root not available: virtio-net MQ and the control queue are not compared with QEMU (it needs a multiqueue tap)');

const PAIRS = 4;
const MAC = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
/** MAC | STATUS | CTRL_VQ | CTRL_RX | CTRL_VLAN | CTRL_RX_EXTRA | GUEST_ANNOUNCE | MQ | CTRL_MAC_ADDR. */
const FEATURES_LO = 0x00ff_0020;

/** Control commands: [class, command, data]. */
const COMMANDS: [number, number, number[]][] = [
  [4, 0, [4, 0]], // MQ VQ_PAIRS_SET 4
  [4, 0, [5, 0]], // more pairs than offered
  [4, 0, [0, 0]], // below VQ_PAIRS_MIN
  [4, 0, [2]], // short
  [4, 0, [2, 0]], // back to 2
  [4, 1, [1, 0]], // RSS_CONFIG: RSS not offered
  [0, 0, [0]], // RX PROMISC off
  [0, 2, [1]], // RX ALLUNI on (CTRL_RX_EXTRA)
  [0, 6, [1]], // unknown RX command
  [0, 0, []], // RX without its byte
  [1, 1, [0x52, 0x54, 0x00, 0xaa, 0xbb, 0xcc]], // MAC_ADDR_SET
  [1, 1, [1, 2, 3]], // short MAC
  [1, 0, [1, 0, 0, 0, 0x52, 0x54, 0, 1, 2, 3, 1, 0, 0, 0, 1, 0, 0x5e, 0, 0, 1]], // MAC_TABLE_SET 1 + 1
  [1, 0, [5, 0, 0, 0, 0x52, 0x54, 0, 1, 2, 3, 0, 0, 0, 0]], // claims 5 unicast entries, holds 1
  [2, 0, [5, 0]], // VLAN_ADD 5
  [2, 0, [0, 0x10]], // VLAN_ADD 4096
  [2, 1, [5, 0]], // VLAN_DEL 5
  [3, 0, []], // ANNOUNCE_ACK with no announcement pending
  [99, 0, []], // unknown class
  [5, 0, [0, 0, 0, 0, 0, 0, 0, 0]], // GUEST_OFFLOADS_SET: not negotiated
  [0, 0, [1]], // PROMISC back on
];

const table = COMMANDS.map(([c, k, d]) => `  db ${[c, k, d.length, ...d].join(', ')}`).join('\n');

const KERNEL = multibootKernel(String.raw`
DESC  equ 0x200000
AVAIL equ 0x200200
USED  equ 0x200300
HDR   equ 0x201000
DATA  equ 0x202000
ACK   equ 0x203000
CTRLQ equ 0x1ff000
start:
  mov esp, 0x90000
  mov eax, 0x80002004       ; command: memory + bus master
  call cfgread
  or eax, 6
  mov ebx, eax
  mov eax, 0x80002004
  call cfgwrite
  mov eax, 0x80002020       ; BAR4: the modern virtio structures
  call cfgread
  and eax, 0xfffffff0
  mov ebp, eax
  mov dword [ebp+0x00], 0
  mov eax, [ebp+0x04]
  mov bl, 'F'
  xor ecx, ecx
  call rec
  mov dword [ebp+0x00], 1
  mov eax, [ebp+0x04]
  mov ecx, 1
  call rec
  movzx eax, word [ebp+0x12]
  mov bl, 'Q'
  xor ecx, ecx
  call rec
  mov eax, [ebp+0x2000]
  mov bl, 'M'
  xor ecx, ecx
  call rec
  movzx eax, word [ebp+0x2004]
  mov ecx, 4
  call rec
  movzx eax, word [ebp+0x2006]
  mov bl, 'D'
  mov ecx, 6
  call rec
  movzx eax, word [ebp+0x2008]
  mov ecx, 8
  call rec
  ; reset, ACK, DRIVER, features, FEATURES_OK
  mov byte [ebp+0x14], 0
  mov byte [ebp+0x14], 1
  mov byte [ebp+0x14], 3
  mov dword [ebp+0x08], 0
  mov dword [ebp+0x0c], ${FEATURES_LO}
  mov dword [ebp+0x08], 1
  mov dword [ebp+0x0c], 1
  mov byte [ebp+0x14], 0x0b
  movzx eax, byte [ebp+0x14]
  mov bl, 'S'
  mov ecx, 1
  call rec
  ; the control queue is the last one (Linux: 2 x max_virtqueue_pairs)
  movzx eax, word [ebp+0x12]
  mov bl, 'Q'
  mov ecx, 1
  call rec
  movzx eax, word [ebp+0x12]
  dec eax
  mov [CTRLQ], eax
  mov edi, DESC
  mov ecx, 0x1000
  xor eax, eax
  rep stosd
  mov eax, [CTRLQ]
  mov [ebp+0x16], ax
  mov word [ebp+0x18], 32
  mov dword [ebp+0x20], DESC
  mov dword [ebp+0x24], 0
  mov dword [ebp+0x28], AVAIL
  mov dword [ebp+0x2c], 0
  mov dword [ebp+0x30], USED
  mov dword [ebp+0x34], 0
  mov word [ebp+0x1c], 1
  mov byte [ebp+0x14], 0x0f
  movzx eax, byte [ebp+0x14]
  mov bl, 'S'
  mov ecx, 2
  call rec
  ; the command table: class, command, length, data
  mov esi, commands
  xor edi, edi
.cmd:
  cmp byte [esi], 0xff
  je .done
  mov al, [esi]
  mov [HDR], al
  mov al, [esi+1]
  mov [HDR+1], al
  movzx ecx, byte [esi+2]
  mov byte [ACK], 0xee
  mov dword [DESC], HDR
  mov dword [DESC+8], 2
  mov word [DESC+12], 1
  mov word [DESC+14], 2
  test ecx, ecx
  jz .nodata
  mov word [DESC+14], 1
  mov dword [DESC+16], DATA
  mov [DESC+24], ecx
  mov word [DESC+28], 1
  mov word [DESC+30], 2
  push esi
  push edi
  add esi, 3
  mov edi, DATA
  rep movsb
  pop edi
  pop esi
  movzx ecx, byte [esi+2]
.nodata:
  mov dword [DESC+32], ACK
  mov dword [DESC+40], 1
  mov word [DESC+44], 2
  mov word [DESC+46], 0
  call publish
  movzx eax, byte [ACK]
  mov bl, 'A'
  mov ecx, edi
  call rec
  lea esi, [esi+3]
  movzx eax, byte [esi-1]
  add esi, eax
  inc edi
  jmp .cmd
.done:
  mov eax, [ebp+0x2000]
  mov bl, 'M'
  mov ecx, 8
  call rec
  movzx eax, word [ebp+0x2004]
  mov ecx, 12
  call rec
  mov eax, [USED+8]
  mov bl, 'L'
  xor ecx, ecx
  call rec
  ; a command without an ack byte: a driver error
  mov word [DESC+12], 0
  mov word [DESC+14], 0
  mov dword [DESC+8], 2
  movzx eax, word [AVAIL+2]
  and eax, 31
  mov word [AVAIL+4+eax*2], 0
  inc word [AVAIL+2]
  call kick
  mov ecx, 20000000
.spin:
  test byte [ebp+0x14], 0x40
  jnz .failed
  loop .spin
.failed:
  movzx eax, byte [ebp+0x14]
  mov bl, 'S'
  mov ecx, 4
  call rec
  mov dx, 0xf4
  xor eax, eax
  out dx, eax
  hlt

; publishes descriptor 0 as the next available entry, kicks, waits for it to be used
publish:
  movzx eax, word [AVAIL+2]
  and eax, 31
  mov word [AVAIL+4+eax*2], 0
  inc word [AVAIL+2]
  call kick
  movzx edx, word [AVAIL+2]
  mov ecx, 200000000
.w:
  movzx eax, word [USED+2]
  cmp eax, edx
  je .ok
  pause
  loop .w
.ok:
  ret
kick:
  mov eax, [CTRLQ]
  mov [ebp+0x16], ax
  movzx edx, word [ebp+0x1e]
  mov [ebp+0x3000+edx*4], ax
  ret
`, String.raw`
commands:
${table}
  db 0xff
`);


/** The same probe as the kernel, against our VirtioNet over VirtioPci (BAR4 by offset). */
function probeOurs(): Probe {
  const mem = new FlatGuestMemory(4 << 20);
  const net = new N.VirtioNet({ mac: new Uint8Array(MAC), send: () => true, queuePairs: PAIRS });
  const fn = new VirtioPci(net, mem, { msi: () => undefined });
  const m: Probe = new Map();
  const w = (off: number, size: number, v: number): void => fn.barWrite(4, off, size, v);
  const r = (off: number, size: number): number => fn.barRead(4, off, size);
  w(0, 4, 0);
  m.set('F0', r(4, 4));
  w(0, 4, 1);
  m.set('F1', r(4, 4));
  m.set('Q0', r(0x12, 2));
  m.set('M0', r(0x2000, 4));
  m.set('M4', r(0x2004, 2));
  m.set('D6', r(0x2006, 2));
  m.set('D8', r(0x2008, 2));
  for (const v of [0, 1, 3]) w(0x14, 1, v);
  w(0x08, 4, 0);
  w(0x0c, 4, FEATURES_LO);
  w(0x08, 4, 1);
  w(0x0c, 4, 1);
  w(0x14, 1, 0x0b);
  m.set('S1', r(0x14, 1));
  m.set('Q1', r(0x12, 2));
  const ctrlq = r(0x12, 2) - 1;
  const [DESC, AVAIL, USED, HDR, DATA, ACK] = [0x200000, 0x200200, 0x200300, 0x201000, 0x202000, 0x203000];
  w(0x16, 2, ctrlq);
  w(0x18, 2, 32);
  w(0x20, 4, DESC);
  w(0x28, 4, AVAIL);
  w(0x30, 4, USED);
  w(0x1c, 2, 1);
  w(0x14, 1, 0x0f);
  m.set('S2', r(0x14, 1));
  const desc = (i: number, addr: number, len: number, flags: number, next: number): void => {
    mem.write32(DESC + 16 * i, addr);
    mem.write32(DESC + 16 * i + 8, len);
    mem.write16(DESC + 16 * i + 12, flags);
    mem.write16(DESC + 16 * i + 14, next);
  };
  const kick = (): void => {
    w(0x16, 2, ctrlq);
    w(0x3000 + 4 * r(0x1e, 2), 2, ctrlq);
  };
  const publish = (): void => {
    const idx = mem.read16(AVAIL + 2);
    mem.write16(AVAIL + 4 + 2 * (idx & 31), 0);
    mem.write16(AVAIL + 2, (idx + 1) & 0xffff);
    kick();
  };
  COMMANDS.forEach(([cls, cmd, data], i) => {
    mem.write8(HDR, cls);
    mem.write8(HDR + 1, cmd);
    mem.write8(ACK, 0xee);
    if (data.length > 0) {
      mem.writeFrom(DATA, Uint8Array.from(data));
      desc(0, HDR, 2, 1, 1);
      desc(1, DATA, data.length, 1, 2);
    } else desc(0, HDR, 2, 1, 2);
    desc(2, ACK, 1, 2, 0);
    publish();
    m.set(`A${i}`, mem.read8(ACK));
  });
  m.set('M8', r(0x2000, 4));
  m.set('M12', r(0x2004, 2));
  m.set('L0', mem.read32(USED + 8));
  desc(0, HDR, 2, 0, 0);
  publish();
  m.set('S4', r(0x14, 1));
  return m;
}

function probeQemu(): Probe {
  // A tap QEMU creates and removes itself (not persistent), named after this process.
  const ifname = `rzvq${process.pid % 100000}`;
  return runQemuProbe({
    kernel: KERNEL,
    qemuArgs: () => [
      '-netdev', `tap,id=n0,ifname=${ifname},script=no,downscript=no,queues=${PAIRS}`,
      '-device', `virtio-net-pci,netdev=n0,addr=04.0,mq=on,vectors=${2 * PAIRS + 2},mac=${MAC.map((b) => b.toString(16).padStart(2, '0')).join(':')}`,
    ],
    done: 'S 00000004',
  });
}

describe.skipIf(!nasmAndQemu || !tap)(`virtio-net MQ and control queue compared with QEMU 7.2 virtio-net-pci (mq=on, ${PAIRS} pairs)`, () => {
  const q = nasmAndQemu && tap ? probeQemu() : new Map<string, number>();
  const o = probeOurs();

  it('the same queue count once MQ is negotiated (2 x pairs + control) and max_virtqueue_pairs; both offer MQ and the control features', () => {
    expect(q.get('Q1')).toBe(2 * PAIRS + 1);
    expect(o.get('Q1')).toBe(q.get('Q1'));
    // Before the features are negotiated QEMU reports one pair + control (it adds the queues
    // when MQ is accepted); we report every queue from the start. Both are the spec's "maximum
    // number of virtqueues supported"; Linux reads num_queues only after FEATURES_OK.
    expect(q.get('Q0')).toBe(3);
    expect(o.get('Q0')).toBe(2 * PAIRS + 1);
    expect(q.get('D8')).toBe(PAIRS);
    expect(o.get('D8')).toBe(q.get('D8'));
    expect(q.get('F0')! & FEATURES_LO).toBe(FEATURES_LO);
    expect(o.get('F0')! & FEATURES_LO).toBe(FEATURES_LO);
    for (const k of ['M0', 'M4', 'S1', 'S2']) expect([k, o.get(k)]).toEqual([k, q.get(k)]);
  });

  it('the same ack for every control command, with the control queue last', () => {
    const acks = (p: Probe): number[] => COMMANDS.map((_, i) => p.get(`A${i}`)!);
    // Sanity: QEMU answered every command, with OK and ERR both present.
    expect(acks(q).every((a) => a === N.NET_OK || a === N.NET_ERR)).toBe(true);
    expect(acks(q).filter((a) => a === N.NET_OK).length).toBeGreaterThan(5);
    const rows = (p: Probe): string[] => COMMANDS.map(([c, k, d], i) => `${c}/${k} [${d.join(',')}] -> ${p.get(`A${i}`)}`);
    expect(rows(o)).toEqual(rows(q));
    expect(o.get('L0')).toBe(q.get('L0'));
  });

  it('MAC_ADDR_SET changes the MAC in config space in both', () => {
    expect([q.get('M8'), q.get('M12')]).toEqual([0xaa005452, 0xccbb]);
    expect([o.get('M8'), o.get('M12')]).toEqual([q.get('M8'), q.get('M12')]);
  });

  it('a control command without an ack byte: both set NEEDS_RESET', () => {
    expect(q.get('S4')! & 0x40).toBe(0x40);
    expect(o.get('S4')).toBe(q.get('S4'));
  });
});
