// Real peer: QEMU's own virtio-serial-pci (MULTIPORT) with a console at port 0, a named port at 1
// whose host side is open and an unnamed port at 3 whose host side is closed, driven from
// inside a guest. A tiny multiboot kernel (nasm) plays the Linux virtio_console driver's side of
// the control protocol (DEVICE_READY, then PORT_READY for each PORT_ADD, then PORT_OPEN) and
// prints every control message the device sends; the same probe runs against our VirtioConsole
// over VirtioPci and the message streams must agree.
import { join } from 'node:path';
import { FlatGuestMemory } from '@ringzero/mmu-ept';
import { describe, expect, it } from 'vitest';
import { multibootKernel, nasmAndQemu, runQemuProbe, warnIfMissing, type Probe } from '../test/qemu-probe';
import { CONSOLE_F_MULTIPORT, VirtioConsole } from './console';
import { VirtioPci } from './pci';

warnIfMissing("virtio-console MULTIPORT is not compared with QEMU's virtio-serial-pci");

const MAX_PORTS = 4;
const NAME1 = 'org.ringzero.p1';

const KERNEL = multibootKernel(String.raw`
; control receiveq (2): 16 buffers of 64 bytes; control transmitq (3): one message at a time
RXD   equ 0x200000
RXA   equ 0x200200
RXU   equ 0x200300
TXD   equ 0x210000
TXA   equ 0x210200
TXU   equ 0x210300
BUF   equ 0x220000
MSG   equ 0x230000
SEEN  equ 0x1ff000
COUNT equ 0x1ff004
start:
  mov esp, 0x90000
  mov eax, 0x80002004
  call cfgread
  or eax, 6
  mov ebx, eax
  mov eax, 0x80002004
  call cfgwrite
  mov eax, 0x80002020
  call cfgread
  and eax, 0xfffffff0
  mov ebp, eax
  mov dword [ebp+0x00], 0
  mov eax, [ebp+0x04]
  mov bl, 'F'
  xor ecx, ecx
  call rec
  movzx eax, word [ebp+0x12]
  mov bl, 'Q'
  xor ecx, ecx
  call rec
  mov eax, [ebp+0x2004]
  mov bl, 'D'
  mov ecx, 4
  call rec
  mov byte [ebp+0x14], 0
  mov byte [ebp+0x14], 1
  mov byte [ebp+0x14], 3
  mov dword [ebp+0x08], 0
  mov dword [ebp+0x0c], 2          ; MULTIPORT
  mov dword [ebp+0x08], 1
  mov dword [ebp+0x0c], 1          ; VERSION_1
  mov byte [ebp+0x14], 0x0b
  movzx eax, byte [ebp+0x14]
  mov bl, 'S'
  mov ecx, 1
  call rec
  mov edi, RXD
  mov ecx, 0x10000
  xor eax, eax
  rep stosd
  ; receive buffers: descriptor i -> BUF + 64 i, device-writable
  xor ecx, ecx
.rx:
  mov eax, ecx
  shl eax, 6
  add eax, BUF
  mov edx, ecx
  shl edx, 4
  mov [RXD+edx], eax
  mov dword [RXD+edx+8], 64
  mov word [RXD+edx+12], 2
  mov [RXA+4+ecx*2], cx
  inc ecx
  cmp ecx, 16
  jb .rx
  mov word [RXA+2], 16
  mov eax, 2
  mov ebx, RXD
  mov ecx, RXA
  mov edx, RXU
  call setq
  mov eax, 3
  mov ebx, TXD
  mov ecx, TXA
  mov edx, TXU
  call setq
  mov byte [ebp+0x14], 0x0f
  movzx eax, byte [ebp+0x14]
  mov bl, 'S'
  mov ecx, 2
  call rec
  mov dword [SEEN], 0
  mov dword [COUNT], 0
  ; DEVICE_READY (id VIRTIO_CONSOLE_BAD_ID, value 1), then PORT_READY for ports 0, 1, 3, then PORT_OPEN 1
  mov eax, 0xffffffff
  mov ebx, 0x00010000
  call send
  xor eax, eax
  mov ebx, 0x00010003
  call send
  mov eax, 1
  mov ebx, 0x00010003
  call send
  mov eax, 3
  mov ebx, 0x00010003
  call send
  mov eax, 1
  mov ebx, 0x00010006
  call send
  mov eax, [COUNT]
  mov bl, 'Z'
  xor ecx, ecx
  call rec
  mov dx, 0xf4
  xor eax, eax
  out dx, eax
  hlt

; eax = queue, ebx = desc, ecx = driver, edx = device: size 16, enabled
setq:
  mov [ebp+0x16], ax
  mov word [ebp+0x18], 16
  mov [ebp+0x20], ebx
  mov dword [ebp+0x24], 0
  mov [ebp+0x28], ecx
  mov dword [ebp+0x2c], 0
  mov [ebp+0x30], edx
  mov dword [ebp+0x34], 0
  mov word [ebp+0x1c], 1
  ret
; sends the control message {id = eax, event|value = ebx} on queue 3, waits, records what queue 2 received
send:
  mov [MSG], eax
  mov [MSG+4], ebx
  mov dword [TXD], MSG
  mov dword [TXD+8], 8
  mov word [TXD+12], 0
  movzx eax, word [TXA+2]
  and eax, 15
  mov word [TXA+4+eax*2], 0
  inc word [TXA+2]
  mov word [ebp+0x16], 3
  movzx edx, word [ebp+0x1e]
  mov word [ebp+0x3000+edx*4], 3
  movzx edx, word [TXA+2]
  mov ecx, 200000000
.w:
  movzx eax, word [TXU+2]
  cmp eax, edx
  je .got
  pause
  loop .w
.got:
  ; every message the device put on the control receiveq since the last look
.m:
  movzx eax, word [RXU+2]
  cmp eax, [SEEN]
  je .end
  mov eax, [SEEN]
  and eax, 15
  mov esi, [RXU+4+eax*8]           ; buffer id
  mov edi, [RXU+8+eax*8]           ; length
  shl esi, 6
  add esi, BUF
  mov ecx, [COUNT]
  mov eax, [esi]
  mov bl, 'P'
  call rec
  mov eax, [esi+4]
  mov bl, 'E'
  call rec
  mov eax, edi
  mov bl, 'N'
  call rec
  mov eax, [esi+8]
  mov bl, 'T'
  call rec
  mov eax, [esi+12]
  mov bl, 'U'
  call rec
  inc dword [SEEN]
  and dword [SEEN], 0xffff
  inc dword [COUNT]
  jmp .m
.end:
  ret
`);


/** The same probe as the kernel, against our VirtioConsole over VirtioPci (BAR4 by offset). */
function probeOurs(): Probe {
  const mem = new FlatGuestMemory(4 << 20);
  const con = new VirtioConsole({ output: () => undefined, maxPorts: MAX_PORTS });
  con.addPort(1, { name: NAME1 });
  con.addPort(3, { hostOpen: false });
  const fn = new VirtioPci(con, mem, { msi: () => undefined });
  const m: Probe = new Map();
  const w = (off: number, size: number, v: number): void => fn.barWrite(4, off, size, v);
  const r = (off: number, size: number): number => fn.barRead(4, off, size);
  w(0, 4, 0);
  m.set('F0', r(4, 4));
  m.set('Q0', r(0x12, 2));
  m.set('D4', r(0x2004, 4));
  for (const v of [0, 1, 3]) w(0x14, 1, v);
  w(0x08, 4, 0);
  w(0x0c, 4, CONSOLE_F_MULTIPORT);
  w(0x08, 4, 1);
  w(0x0c, 4, 1);
  w(0x14, 1, 0x0b);
  m.set('S1', r(0x14, 1));
  const [RXD, RXA, RXU, TXD, TXA, TXU, BUF, MSG] = [0x200000, 0x200200, 0x200300, 0x210000, 0x210200, 0x210300, 0x220000, 0x230000];
  for (let i = 0; i < 16; i++) {
    mem.write32(RXD + 16 * i, BUF + 64 * i);
    mem.write32(RXD + 16 * i + 8, 64);
    mem.write16(RXD + 16 * i + 12, 2);
    mem.write16(RXA + 4 + 2 * i, i);
  }
  mem.write16(RXA + 2, 16);
  const setq = (q: number, d: number, a: number, u: number): void => {
    w(0x16, 2, q);
    w(0x18, 2, 16);
    w(0x20, 4, d);
    w(0x28, 4, a);
    w(0x30, 4, u);
    w(0x1c, 2, 1);
  };
  setq(2, RXD, RXA, RXU);
  setq(3, TXD, TXA, TXU);
  w(0x14, 1, 0x0f);
  m.set('S2', r(0x14, 1));
  let seen = 0;
  let count = 0;
  const send = (id: number, eventValue: number): void => {
    mem.write32(MSG, id);
    mem.write32(MSG + 4, eventValue);
    mem.write32(TXD, MSG);
    mem.write32(TXD + 8, 8);
    mem.write16(TXD + 12, 0);
    const idx = mem.read16(TXA + 2);
    mem.write16(TXA + 4 + 2 * (idx & 15), 0);
    mem.write16(TXA + 2, idx + 1);
    w(0x16, 2, 3);
    w(0x3000 + 4 * r(0x1e, 2), 2, 3);
    while (mem.read16(RXU + 2) !== seen) {
      const e = RXU + 4 + 8 * (seen & 15);
      const buf = BUF + 64 * mem.read32(e);
      m.set(`P${count}`, mem.read32(buf));
      m.set(`E${count}`, mem.read32(buf + 4));
      m.set(`N${count}`, mem.read32(e + 4));
      m.set(`T${count}`, mem.read32(buf + 8));
      m.set(`U${count}`, mem.read32(buf + 12));
      seen = (seen + 1) & 0xffff;
      count++;
    }
  };
  send(0xffff_ffff, 0x0001_0000);
  send(0, 0x0001_0003);
  send(1, 0x0001_0003);
  send(3, 0x0001_0003);
  send(1, 0x0001_0006);
  m.set('Z0', count);
  return m;
}

function probeQemu(): Probe {
  return runQemuProbe({
    kernel: KERNEL,
    qemuArgs: (dir) => [
      '-device', `virtio-serial-pci,addr=04.0,max_ports=${MAX_PORTS}`,
      // port 0: a console (QEMU opens its host side itself); port 1: named, a file (open); port 3: null (closed)
      '-chardev', `file,id=c0,path=${join(dir, 'c0.out')}`, '-device', 'virtconsole,chardev=c0,nr=0',
      '-chardev', `file,id=c1,path=${join(dir, 'c1.out')}`, '-device', `virtserialport,chardev=c1,nr=1,name=${NAME1}`,
      '-chardev', 'null,id=c3', '-device', 'virtserialport,chardev=c3,nr=3',
    ],
    done: 'Z 00000000',
  });
}

/** The control messages as "id event value len [name bytes]". */
function messages(p: Probe): string[] {
  const out: string[] = [];
  for (let i = 0; i < p.get('Z0')!; i++) {
    const ev = p.get(`E${i}`)!;
    const len = p.get(`N${i}`)!;
    const name = len > 8 ? ` ${(p.get(`T${i}`)! >>> 0).toString(16)} ${(p.get(`U${i}`)! >>> 0).toString(16)}` : '';
    out.push(`${p.get(`P${i}`)} ${ev & 0xffff} ${ev >>> 16} ${len}${name}`);
  }
  return out;
}

describe.skipIf(!nasmAndQemu)('virtio-console MULTIPORT compared with QEMU 7.2 virtio-serial-pci', () => {
  const q = nasmAndQemu ? probeQemu() : new Map<string, number>();
  const o = probeOurs();

  it('the same queue count (2 x (max_nr_ports + 1)), max_nr_ports, MULTIPORT offered and accepted', () => {
    expect(q.get('Q0')).toBe(2 * (MAX_PORTS + 1));
    expect(o.get('Q0')).toBe(q.get('Q0'));
    expect(q.get('D4')).toBe(MAX_PORTS);
    expect(o.get('D4')).toBe(q.get('D4'));
    expect(q.get('F0')! & CONSOLE_F_MULTIPORT).toBe(CONSOLE_F_MULTIPORT);
    expect(o.get('F0')! & CONSOLE_F_MULTIPORT).toBe(CONSOLE_F_MULTIPORT);
    for (const k of ['S1', 'S2']) expect([k, o.get(k)]).toEqual([k, q.get(k)]);
  });

  it('the same control messages, in the same order, for DEVICE_READY, PORT_READY x 3 and PORT_OPEN', () => {
    const qm = messages(q);
    // Sanity: QEMU announced the three ports and named port 1.
    expect(qm.slice(0, 3)).toEqual(['0 1 1 8', '1 1 1 8', '3 1 1 8']);
    expect(qm.some((m) => m.startsWith(`1 7 1 ${8 + NAME1.length + 1}`))).toBe(true);
    expect(messages(o)).toEqual(qm);
  });
});
