// Real peer: QEMU's own virtio-blk-pci, probed from inside a guest. A tiny multiboot kernel
// (nasm) dumps the device's PCI config space, reads the common config (features, queues),
// runs a few status transitions, reads the device config and sizes the BARs, printing each
// result on the serial port; the same probe runs against our VirtioPci and the answers must
// agree (where the spec leaves a choice, the test says so).
import { FlatGuestMemory } from '@ringzero/mmu-ept';
import { beforeAll, describe, expect, it } from 'vitest';
import { multibootKernel, nasmAndQemu, runQemuProbe, warnIfMissing, type Probe } from '../test/qemu-probe';
import { BLK_F_BLK_SIZE, BLK_F_DISCARD, BLK_F_FLUSH, BLK_F_SEG_MAX, BLK_F_SIZE_MAX, BLK_F_WRITE_ZEROES, VirtioBlk } from './blk';
import { MemoryBlockBackend } from './block-backend';
import { F_EVENT_IDX, F_HI_VERSION_1, F_INDIRECT_DESC } from './constants';
import { VirtioPci } from './pci';

warnIfMissing("virtio-pci is not compared with QEMU's virtio-blk-pci");

const KERNEL = multibootKernel(String.raw`
start:
  mov esp, 0x90000
  xor esi, esi
.cfg:
  mov eax, 0x80002000
  or eax, esi
  mov dx, 0xcf8
  out dx, eax
  mov dx, 0xcfc
  in eax, dx
  mov bl, 'C'
  mov ecx, esi
  call rec
  add esi, 4
  cmp esi, 256
  jb .cfg
  mov eax, 0x80002024
  call cfgread
  test eax, eax
  jnz .sizing
  mov eax, 0x80002020
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
  mov word [ebp+0x16], 0
  movzx eax, word [ebp+0x18]
  mov ecx, 1
  call rec
  mov byte [ebp+0x14], 0
  mov byte [ebp+0x14], 1
  mov byte [ebp+0x14], 3
  mov dword [ebp+0x08], 0
  mov dword [ebp+0x0c], 0
  mov dword [ebp+0x08], 1
  mov dword [ebp+0x0c], 0
  mov byte [ebp+0x14], 0x0b
  movzx eax, byte [ebp+0x14]
  mov bl, 'S'
  mov ecx, 1
  call rec
  mov byte [ebp+0x14], 0
  movzx eax, byte [ebp+0x14]
  xor ecx, ecx
  call rec
  mov byte [ebp+0x14], 1
  mov byte [ebp+0x14], 3
  mov dword [ebp+0x08], 1
%ifdef PACKED
  mov dword [ebp+0x0c], 5
%else
  mov dword [ebp+0x0c], 1
%endif
  mov byte [ebp+0x14], 0x0b
  movzx eax, byte [ebp+0x14]
  mov ecx, 2
  call rec
%ifdef PACKED
  call ptest
%else
  call qtest
%endif
  mov byte [ebp+0x14], 0
  mov word [ebp+0x10], 7
  movzx eax, word [ebp+0x10]
  mov bl, 'V'
  xor ecx, ecx
  call rec
  mov bl, 'D'
  mov eax, [ebp+0x2000]
  xor ecx, ecx
  call rec
  mov eax, [ebp+0x200c]
  mov ecx, 12
  call rec
  mov eax, [ebp+0x2014]
  mov ecx, 20
  call rec
.sizing:
  ; legacy I/O interface in BAR0 (device reset, MSI-X off: config at 0x14)
  mov eax, 0x80002010
  call cfgread
  and eax, 0xfffc
  mov edi, eax
  mov bl, 'X'
  mov edx, edi
  in eax, dx
  xor ecx, ecx
  call rec
  lea edx, [edi+0x0c]
  in ax, dx
  movzx eax, ax
  mov ecx, 0x0c
  call rec
  lea edx, [edi+0x12]
  in al, dx
  movzx eax, al
  mov ecx, 0x12
  call rec
  lea edx, [edi+0x14]
  in eax, dx
  mov ecx, 0x14
  call rec
  mov esi, 0x10
.bar:
  mov eax, 0x80002000
  or eax, esi
  call cfgread
  mov edi, eax
  mov eax, 0x80002000
  or eax, esi
  mov ebx, 0xffffffff
  call cfgwrite
  mov eax, 0x80002000
  or eax, esi
  call cfgread
  mov bl, 'B'
  mov ecx, esi
  call rec
  mov eax, 0x80002000
  or eax, esi
  mov ebx, edi
  call cfgwrite
  add esi, 4
  cmp esi, 0x28
  jb .bar
  mov dx, 0xf4
  xor eax, eax
  out dx, eax
  hlt

DESC  equ 0x200000
AVAIL equ 0x200200
USED  equ 0x200300
HDR   equ 0x201000
STAT  equ 0x202000
DATA  equ 0x203000
QSIZE equ 32
; queue 0 with 6 requests, then a descriptor loop; ebp = BAR4 base, status = 0x0B
qtest:
  ; clear ring memory
  mov edi, DESC
  mov ecx, 0x4000
  xor eax, eax
  rep stosd
  mov word [ebp+0x16], 0
  mov word [ebp+0x18], QSIZE
  mov dword [ebp+0x20], DESC
  mov dword [ebp+0x24], 0
  mov dword [ebp+0x28], AVAIL
  mov dword [ebp+0x2c], 0
  mov dword [ebp+0x30], USED
  mov dword [ebp+0x34], 0
  mov word [ebp+0x1c], 1
  mov byte [ebp+0x14], 0x0f
  ; requests: edi index, eax type, ebx sector, ecx data length (0 none)
  mov edi, 0
  mov eax, 8
  xor ebx, ebx
  mov ecx, 20
  call mkreq
  mov edi, 1
  mov eax, 0
  mov ebx, 2048
  mov ecx, 512
  call mkreq
  mov edi, 2
  mov eax, 99
  xor ebx, ebx
  mov ecx, 8
  call mkreq
  mov edi, 3
  mov eax, 0
  mov ebx, 1
  mov ecx, 512
  call mkreq
  mov edi, 4
  mov eax, 4
  xor ebx, ebx
  xor ecx, ecx
  call mkreq
  mov edi, 5
  mov eax, 0
  xor ebx, ebx
  mov ecx, 100
  call mkreq
  mov word [AVAIL+2], 6
  call kick
  mov esi, 6
  call waitused
  ; statuses, used ring, GET_ID data
  xor esi, esi
.st:
  movzx eax, byte [STAT+esi]
  mov bl, 'R'
  mov ecx, esi
  call rec
  mov eax, [USED+4+8*esi]
  mov bl, 'U'
  mov ecx, esi
  call rec
  mov eax, [USED+8+8*esi]
  mov bl, 'L'
  mov ecx, esi
  call rec
  inc esi
  cmp esi, 6
  jb .st
  xor esi, esi
.id:
  mov eax, [DATA+esi]
  mov bl, 'I'
  mov ecx, esi
  call rec
  add esi, 4
  cmp esi, 20
  jb .id
  ; hostile: descriptors 30 -> 31 -> 30
  mov dword [DESC+30*16], HDR
  mov dword [DESC+30*16+8], 16
  mov word [DESC+30*16+12], 1
  mov word [DESC+30*16+14], 31
  mov dword [DESC+31*16], HDR
  mov dword [DESC+31*16+8], 16
  mov word [DESC+31*16+12], 1
  mov word [DESC+31*16+14], 30
  mov word [AVAIL+4+2*6], 30
  mov word [AVAIL+2], 7
  call kick
  mov ecx, 20000000
.spin:
  test byte [ebp+0x14], 0x40
  jnz .done
  loop .spin
.done:
  movzx eax, byte [ebp+0x14]
  mov bl, 'S'
  mov ecx, 4
  call rec
  movzx eax, word [USED+2]
  mov bl, 'W'
  xor ecx, ecx
  call rec
  ret

; ---- packed ring: one request at a time, recording the used descriptor the device wrote
PPOS equ 0x1ff000
ptest:
  mov edi, DESC
  mov ecx, 0x4000
  xor eax, eax
  rep stosd
  mov dword [PPOS], 0
  mov word [ebp+0x16], 0
  mov word [ebp+0x18], QSIZE
  mov dword [ebp+0x20], DESC
  mov dword [ebp+0x24], 0
  mov dword [ebp+0x28], AVAIL
  mov dword [ebp+0x2c], 0
  mov dword [ebp+0x30], USED
  mov dword [ebp+0x34], 0
  mov word [ebp+0x1c], 1
  mov byte [ebp+0x14], 0x0f
  mov edi, 0
  mov eax, 8
  xor ebx, ebx
  mov ecx, 20
  call preq
  mov edi, 1
  mov eax, 0
  mov ebx, 2048
  mov ecx, 512
  call preq
  mov edi, 2
  mov eax, 99
  xor ebx, ebx
  mov ecx, 8
  call preq
  mov edi, 3
  mov eax, 0
  mov ebx, 1
  mov ecx, 512
  call preq
  mov edi, 4
  mov eax, 4
  xor ebx, ebx
  xor ecx, ecx
  call preq
  mov edi, 5
  mov eax, 0
  xor ebx, ebx
  mov ecx, 100
  call preq
  xor esi, esi
.id:
  mov eax, [DATA+esi]
  mov bl, 'I'
  mov ecx, esi
  call rec
  add esi, 4
  cmp esi, 20
  jb .id
  ret
; one packed request at ring position [PPOS], buffer id = edi; kick; wait; record R/U/L/G
preq:
  push ebp
  mov ebp, edi
  shl ebp, 6
  add ebp, HDR
  mov [ebp], eax
  mov dword [ebp+4], 0
  mov [ebp+8], ebx
  mov dword [ebp+12], 0
  mov byte [STAT+edi], 0xee
  mov edx, [PPOS]
  shl edx, 4
  add edx, DESC
  push edx                 ; first descriptor address
  mov [edx], ebp
  mov dword [edx+4], 0
  mov dword [edx+8], 16
  mov [edx+12], di
  mov word [edx+14], 0x81  ; AVAIL | NEXT
  add edx, 16
  inc dword [PPOS]
  test ecx, ecx
  jz .status
  mov eax, edi
  shl eax, 10
  add eax, DATA
  mov [edx], eax
  mov dword [edx+4], 0
  mov [edx+8], ecx
  mov [edx+12], di
  mov word [edx+14], 0x83  ; AVAIL | WRITE | NEXT
  add edx, 16
  inc dword [PPOS]
.status:
  lea eax, [STAT+edi]
  mov [edx], eax
  mov dword [edx+4], 0
  mov dword [edx+8], 1
  mov [edx+12], di
  mov word [edx+14], 0x82  ; AVAIL | WRITE
  inc dword [PPOS]
  pop edx
  pop ebp
  push edx
  call kick
  pop edx
  mov ecx, 200000000
.w:
  test word [edx+14], 0x8000
  jnz .ok
  pause
  loop .w
.ok:
  movzx eax, byte [STAT+edi]
  mov bl, 'R'
  mov ecx, edi
  call rec
  movzx eax, word [edx+12]
  mov bl, 'U'
  call rec
  mov eax, [edx+8]
  mov bl, 'L'
  call rec
  movzx eax, word [edx+14]
  mov bl, 'G'
  call rec
  ret
kick:
  movzx eax, word [ebp+0x1e]
  mov word [ebp+0x3000+eax*4], 0
  ret
; wait until used.idx == esi (bounded)
waitused:
  mov ecx, 200000000
.w:
  movzx eax, word [USED+2]
  cmp eax, esi
  je .ok
  pause
  loop .w
.ok:
  ret
mkreq:
  push ebp
  mov ebp, edi
  shl ebp, 6
  add ebp, HDR            ; ebp = header address
  mov [ebp], eax
  mov dword [ebp+4], 0
  mov [ebp+8], ebx
  mov dword [ebp+12], 0
  mov byte [STAT+edi], 0xee
  lea edx, [edi*2+edi]    ; first descriptor index
  mov [AVAIL+4+edi*2], dx
  shl edx, 4
  add edx, DESC           ; edx = descriptor address
  mov [edx], ebp
  mov dword [edx+4], 0
  mov dword [edx+8], 16
  mov word [edx+12], 1
  lea eax, [edi*2+edi+1]
  mov [edx+14], ax
  add edx, 16
  test ecx, ecx
  jz .status
  mov eax, edi
  shl eax, 10
  add eax, DATA
  mov [edx], eax
  mov dword [edx+4], 0
  mov [edx+8], ecx
  mov word [edx+12], 3
  lea eax, [edi*2+edi+2]
  mov [edx+14], ax
  add edx, 16
.status:
  lea eax, [STAT+edi]
  mov [edx], eax
  mov dword [edx+4], 0
  mov dword [edx+8], 1
  mov word [edx+12], 2
  mov word [edx+14], 0
  pop ebp
  ret
`);


const SERIAL = 'rz-serial-0001';

/** The same probe as the kernel, against our VirtioPci (BAR4 accessed by offset). */
async function probeOurs(packed = false): Promise<Probe> {
  const mem = new FlatGuestMemory(4 << 20);
  const fn = new VirtioPci(new VirtioBlk(new MemoryBlockBackend(1 << 20), { queueSize: 256, serial: SERIAL }), mem, { msi: () => undefined });
  const m: Probe = new Map();
  for (let o = 0; o < 256; o += 4) m.set(`C${o}`, fn.configRead(o, 4));
  const w = (off: number, size: number, v: number): void => fn.barWrite(4, off, size, v);
  const r = (off: number, size: number): number => fn.barRead(4, off, size);
  w(0, 4, 0);
  m.set('F0', r(4, 4));
  w(0, 4, 1);
  m.set('F1', r(4, 4));
  m.set('Q0', r(0x12, 2));
  w(0x16, 2, 0);
  m.set('Q1', r(0x18, 2));
  for (const v of [0, 1, 3]) w(0x14, 1, v);
  w(0x08, 4, 0);
  w(0x0c, 4, 0);
  w(0x08, 4, 1);
  w(0x0c, 4, 0);
  w(0x14, 1, 0x0b);
  m.set('S1', r(0x14, 1));
  w(0x14, 1, 0);
  m.set('S0', r(0x14, 1));
  w(0x14, 1, 1);
  w(0x14, 1, 3);
  w(0x08, 4, 1);
  w(0x0c, 4, packed ? 5 : 1);
  w(0x14, 1, 0x0b);
  m.set('S2', r(0x14, 1));
  await (packed ? packedTest : queueTest)(mem, w, r, m);
  w(0x14, 1, 0);
  w(0x10, 2, 7);
  m.set('V0', r(0x10, 2));
  m.set('D0', r(0x2000, 4));
  m.set('D12', r(0x200c, 4));
  m.set('D20', r(0x2014, 4));
  m.set('X0', fn.barRead(0, 0, 4));
  m.set('X12', fn.barRead(0, 0x0c, 2));
  m.set('X18', fn.barRead(0, 0x12, 1));
  m.set('X20', fn.barRead(0, 0x14, 4));
  for (let reg = 0x10; reg < 0x28; reg += 4) {
    const orig = fn.configRead(reg, 4);
    fn.configWrite(reg, 4, 0xffff_ffff);
    m.set(`B${reg}`, fn.configRead(reg, 4));
    fn.configWrite(reg, 4, orig);
  }
  return m;
}

/** The kernel's qtest routine: six requests on a 32-entry split queue, then a descriptor loop. */
async function queueTest(mem: FlatGuestMemory, w: (o: number, s: number, v: number) => void, r: (o: number, s: number) => number, m: Probe): Promise<void> {
  const DESC = 0x200000;
  const AVAIL = 0x200200;
  const USED = 0x200300;
  const HDR = 0x201000;
  const STAT = 0x202000;
  const DATA = 0x203000;
  mem.bytes.fill(0, DESC, DESC + 0x10000);
  w(0x16, 2, 0);
  w(0x18, 2, 32);
  w(0x20, 4, DESC);
  w(0x24, 4, 0);
  w(0x28, 4, AVAIL);
  w(0x2c, 4, 0);
  w(0x30, 4, USED);
  w(0x34, 4, 0);
  w(0x1c, 2, 1);
  w(0x14, 1, 0x0f);
  const desc = (i: number, addr: number, len: number, flags: number, next: number): void => {
    mem.write32(DESC + 16 * i, addr);
    mem.write32(DESC + 16 * i + 4, 0);
    mem.write32(DESC + 16 * i + 8, len);
    mem.write16(DESC + 16 * i + 12, flags);
    mem.write16(DESC + 16 * i + 14, next);
  };
  const mkreq = (i: number, type: number, sector: number, dataLen: number): void => {
    const h = HDR + 64 * i;
    mem.write32(h, type);
    mem.write32(h + 4, 0);
    mem.write32(h + 8, sector);
    mem.write32(h + 12, 0);
    mem.write8(STAT + i, 0xee);
    const d = 3 * i;
    mem.write16(AVAIL + 4 + 2 * i, d);
    desc(d, h, 16, 1, d + 1);
    let sd = d + 1;
    if (dataLen > 0) {
      desc(d + 1, DATA + 1024 * i, dataLen, 3, d + 2);
      sd = d + 2;
    }
    desc(sd, STAT + i, 1, 2, 0);
  };
  mkreq(0, 8, 0, 20);
  mkreq(1, 0, 2048, 512);
  mkreq(2, 99, 0, 8);
  mkreq(3, 0, 1, 512);
  mkreq(4, 4, 0, 0);
  mkreq(5, 0, 0, 100);
  mem.write16(AVAIL + 2, 6);
  const kick = (): void => w(0x3000 + 4 * r(0x1e, 2), 2, 0);
  kick();
  await new Promise((res) => setImmediate(res));
  for (let i = 0; i < 6; i++) {
    m.set(`R${i}`, mem.read8(STAT + i));
    m.set(`U${i}`, mem.read32(USED + 4 + 8 * i));
    m.set(`L${i}`, mem.read32(USED + 8 + 8 * i));
  }
  for (let o = 0; o < 20; o += 4) m.set(`I${o}`, mem.read32(DATA + o));
  desc(30, HDR, 16, 1, 31);
  desc(31, HDR, 16, 1, 30);
  mem.write16(AVAIL + 4 + 12, 30);
  mem.write16(AVAIL + 2, 7);
  kick();
  m.set('S4', r(0x14, 1));
  m.set('W0', mem.read16(USED + 2));
}

/** The kernel's ptest routine: the same six requests on a packed ring, one at a time. */
async function packedTest(mem: FlatGuestMemory, w: (o: number, s: number, v: number) => void, r: (o: number, s: number) => number, m: Probe): Promise<void> {
  const DESC = 0x200000;
  const HDR = 0x201000;
  const STAT = 0x202000;
  const DATA = 0x203000;
  mem.bytes.fill(0, DESC, DESC + 0x10000);
  w(0x16, 2, 0);
  w(0x18, 2, 32);
  w(0x20, 4, DESC);
  w(0x24, 4, 0);
  w(0x28, 4, 0x200200);
  w(0x2c, 4, 0);
  w(0x30, 4, 0x200300);
  w(0x34, 4, 0);
  w(0x1c, 2, 1);
  w(0x14, 1, 0x0f);
  let pos = 0;
  const desc = (addr: number, len: number, id: number, flags: number): void => {
    const d = DESC + 16 * pos++;
    mem.write32(d, addr);
    mem.write32(d + 4, 0);
    mem.write32(d + 8, len);
    mem.write16(d + 12, id);
    mem.write16(d + 14, flags);
  };
  const reqs: [number, number, number][] = [[8, 0, 20], [0, 2048, 512], [99, 0, 8], [0, 1, 512], [4, 0, 0], [0, 0, 100]];
  for (let i = 0; i < reqs.length; i++) {
    const [type, sector, dataLen] = reqs[i];
    const h = HDR + 64 * i;
    mem.write32(h, type);
    mem.write32(h + 4, 0);
    mem.write32(h + 8, sector);
    mem.write32(h + 12, 0);
    mem.write8(STAT + i, 0xee);
    const first = DESC + 16 * pos;
    desc(h, 16, i, 0x81);
    if (dataLen > 0) desc(DATA + 1024 * i, dataLen, i, 0x83);
    desc(STAT + i, 1, i, 0x82);
    w(0x3000 + 4 * r(0x1e, 2), 2, 0);
    await new Promise((res) => setImmediate(res));
    m.set(`R${i}`, mem.read8(STAT + i));
    m.set(`U${i}`, mem.read16(first + 12));
    m.set(`L${i}`, mem.read32(first + 8));
    m.set(`G${i}`, mem.read16(first + 14));
  }
  for (let o = 0; o < 20; o += 4) m.set(`I${o}`, mem.read32(DATA + o));
}

/** Capabilities as (id, cfg_type, bar, offset) plus MSI-X control/table/PBA words. */
function caps(p: Probe): string[] {
  const byte = (o: number): number => (p.get(`C${o & ~3}`)! >>> (8 * (o & 3))) & 0xff;
  const dword = (o: number): number => p.get(`C${o}`)!;
  const out: string[] = [];
  for (let at = byte(0x34), n = 0; at !== 0 && n < 48; at = byte(at + 1), n++) {
    if (byte(at) === 0x11) out.push(`msix ctrl=${(dword(at & ~3) >>> 16) & 0x7ff} table=${dword(at + 4)} pba=${dword(at + 8)}`);
    else if (byte(at) === 9) {
      const type = byte(at + 3);
      out.push(`virtio type=${type} bar=${byte(at + 4)}` + (type === 5 ? '' : ` offset=${dword(at + 8)}`) + (type === 2 ? ` mult=${dword(at + 16)}` : ''));
    } else out.push(`cap ${byte(at)}`);
  }
  return out.sort();
}

function probeQemu(packed = false): Probe {
  return runQemuProbe({
    kernel: KERNEL,
    nasmArgs: packed ? ['-DPACKED'] : [],
    qemuArgs: () => [
      '-device', `virtio-blk-pci,drive=d0,addr=04.0,serial=${SERIAL}${packed ? ',packed=on' : ''}`, '-drive', 'if=none,id=d0,driver=null-co,size=1M',
    ],
    done: 'B 00000024',
  });
}

describe.skipIf(!nasmAndQemu)('virtio-pci compared with QEMU 7.2 virtio-blk-pci (probed by a guest kernel)', () => {
  const q = nasmAndQemu ? probeQemu() : new Map<string, number>();
  let o: Probe = new Map();
  beforeAll(async () => {
    o = await probeOurs();
  });

  it('identity: vendor/device, revision/class, subsystem, header type, interrupt pin', () => {
    expect(q.get('C0')).toBe(0x1001_1af4);
    for (const k of ['C0', 'C8', 'C44']) expect([k, o.get(k)]).toEqual([k, q.get(k)]);
    expect((o.get('C12')! >>> 16) & 0xff).toBe((q.get('C12')! >>> 16) & 0xff);
    expect((o.get('C60')! >>> 8) & 0xff).toBe((q.get('C60')! >>> 8) & 0xff);
    expect(o.get('C4')! >>> 16 & 0x10).toBe(q.get('C4')! >>> 16 & 0x10);
  });

  it('the same capabilities: MSI-X (2 vectors, table and PBA in BAR1) and the virtio structures at the same BAR offsets', () => {
    expect(caps(q)).toHaveLength(6);
    expect(caps(q)).toContain('virtio type=2 bar=4 offset=12288 mult=4');
    expect(caps(o)).toEqual(caps(q));
  });

  it('the same BAR kinds and sizes (BAR sizing)', () => {
    for (let reg = 0x10; reg < 0x28; reg += 4) expect([reg, o.get(`B${reg}`)]).toEqual([reg, q.get(`B${reg}`)]);
  });

  it('the same transport features, queue count, queue size, device config and NO_VECTOR answer', () => {
    const transportLo = F_INDIRECT_DESC | F_EVENT_IDX;
    expect(o.get('F0')! & transportLo).toBe(q.get('F0')! & transportLo);
    expect(o.get('F1')! & F_HI_VERSION_1).toBe(q.get('F1')! & F_HI_VERSION_1);
    // Device bits both offer; we also offer SIZE_MAX, QEMU also GEOMETRY, TOPOLOGY, CONFIG_WCE (and RING_RESET).
    const common = BLK_F_SEG_MAX | BLK_F_BLK_SIZE | BLK_F_FLUSH | BLK_F_DISCARD | BLK_F_WRITE_ZEROES;
    expect(q.get('F0')! & common).toBe(common);
    expect(o.get('F0')! & ~transportLo & ~BLK_F_SIZE_MAX & ~q.get('F0')!).toBe(0);
    for (const k of ['Q0', 'Q1', 'V0', 'D0', 'D12', 'D20', 'S0', 'S2']) expect([k, o.get(k)]).toEqual([k, q.get(k)]);
  });

  it('the same request statuses: GET_ID, IN past the end (IOERR), unknown type (UNSUPP), IN, FLUSH, partial sector (IOERR)', () => {
    const statuses = (p: Probe): number[] => [0, 1, 2, 3, 4, 5].map((i) => p.get(`R${i}`)!);
    expect(statuses(q)).toEqual([0, 1, 2, 0, 0, 1]);
    expect(statuses(o)).toEqual(statuses(q));
    const ids = (p: Probe): number[] => [0, 1, 2, 3, 4, 5].map((i) => p.get(`U${i}`)!).sort((a, b) => a - b);
    expect(ids(o)).toEqual(ids(q));
    const GET_ID = 0;
    const IN = 9;
    const FLUSH = 12;
    const lenOf = (p: Probe, id: number): number => p.get(`L${[0, 1, 2, 3, 4, 5].find((i) => p.get(`U${i}`) === id)}`)!;
    for (const id of [GET_ID, IN, FLUSH]) expect([id, lenOf(o, id)]).toEqual([id, lenOf(q, id)]);
    // On errors QEMU reports the whole device-writable size as used; we report the 1 status byte
    // we wrote (the spec's "bytes written"). Linux's virtio_blk does not look at either.
    for (const [id, qemuLen] of [[3, 513], [6, 9], [15, 101]]) {
      expect(lenOf(q, id)).toBe(qemuLen);
      expect(lenOf(o, id)).toBe(1);
    }
    for (const k of ['I0', 'I4', 'I8', 'I12', 'I16']) expect([k, o.get(k)]).toEqual([k, q.get(k)]);
  });

  it('a descriptor loop: both set NEEDS_RESET and use nothing', () => {
    expect(q.get('S4')).toBe(0x4f);
    expect(o.get('S4')).toBe(q.get('S4'));
    expect(o.get('W0')).toBe(q.get('W0'));
  });

  it('the legacy I/O interface: ring features and ANY_LAYOUT, queue size, status, device config at 0x14', () => {
    const bits = F_INDIRECT_DESC | F_EVENT_IDX | (1 << 27);
    expect(q.get('X0')! & bits).toBe(bits);
    expect(o.get('X0')! & bits).toBe(q.get('X0')! & bits);
    for (const k of ['X12', 'X18', 'X20']) expect([k, o.get(k)]).toEqual([k, q.get(k)]);
  });

  it('FEATURES_OK without VERSION_1: QEMU accepts it, we refuse it (the spec allows a device to fail then)', () => {
    expect(q.get('S1')).toBe(0x0b);
    expect(o.get('S1')).toBe(0x03);
  });
});

describe.skipIf(!nasmAndQemu)('packed virtqueue compared with QEMU 7.2 virtio-blk-pci,packed=on', () => {
  const q = nasmAndQemu ? probeQemu(true) : new Map<string, number>();
  let o: Probe = new Map();
  beforeAll(async () => {
    o = await probeOurs(true);
  });

  it('both offer and accept RING_PACKED', () => {
    expect(q.get('F1')! & 4).toBe(4);
    expect(o.get('F1')! & 4).toBe(4);
    expect(o.get('S2')).toBe(q.get('S2'));
  });

  it('the same statuses, buffer ids, used lengths of successful requests and GET_ID data', () => {
    for (let i = 0; i < 6; i++) {
      expect([i, o.get(`R${i}`), o.get(`U${i}`)]).toEqual([i, q.get(`R${i}`), q.get(`U${i}`)]);
      if (q.get(`R${i}`) === 0) expect([i, o.get(`L${i}`)]).toEqual([i, q.get(`L${i}`)]);
    }
    expect([0, 1, 2, 3, 4, 5].map((i) => q.get(`R${i}`))).toEqual([0, 1, 2, 0, 0, 1]);
    for (const k of ['I0', 'I4', 'I8', 'I12']) expect([k, o.get(k)]).toEqual([k, q.get(k)]);
  });

  it('used descriptors carry AVAIL and USED set to the wrap counter; we also set WRITE when we wrote (the spec: length is only meaningful with WRITE), QEMU does not', () => {
    for (let i = 0; i < 6; i++) {
      expect(q.get(`G${i}`)).toBe(0x8080);
      expect(o.get(`G${i}`)! & 0x8080).toBe(0x8080);
      expect(o.get(`G${i}`)! & 2).toBe(o.get(`L${i}`)! > 0 ? 2 : 0);
    }
  });
});
