// Real peer: QEMU's own virtio-blk-pci, probed from inside a guest. A tiny multiboot kernel
// (nasm) dumps the device's PCI config space, reads the common config (features, queues),
// runs a few status transitions, reads the device config and sizes the BARs, printing each
// result on the serial port; the same probe runs against our VirtioPci and the answers must
// agree (where the spec leaves a choice, the test says so).
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FlatGuestMemory } from '@ringzero/mmu-ept';
import { afterAll, describe, expect, it } from 'vitest';
import { BLK_F_BLK_SIZE, BLK_F_DISCARD, BLK_F_FLUSH, BLK_F_SEG_MAX, BLK_F_SIZE_MAX, BLK_F_WRITE_ZEROES, VirtioBlk } from './blk';
import { MemoryBlockBackend } from './block-backend';
import { F_EVENT_IDX, F_HI_VERSION_1, F_INDIRECT_DESC } from './constants';
import { VirtioPci } from './pci';

const have = (cmd: string, arg: string): boolean => spawnSync(cmd, [arg]).status === 0;
const nasm = have('nasm', '-v');
const qemu = have('qemu-system-x86_64', '--version');
if (!nasm || !qemu) console.warn(`SKIPPED: ${nasm ? 'qemu-system-x86_64' : 'nasm'} not installed: virtio-pci is not compared with QEMU's virtio-blk-pci`);

const KERNEL = String.raw`
bits 32
org 0x100000
MB_MAGIC equ 0x1BADB002
MB_FLAGS equ 0x00010000
header:
  dd MB_MAGIC
  dd MB_FLAGS
  dd -(MB_MAGIC + MB_FLAGS)
  dd header
  dd 0x100000
  dd end_of_image
  dd end_of_image
  dd start
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
  mov dword [ebp+0x0c], 1
  mov byte [ebp+0x14], 0x0b
  movzx eax, byte [ebp+0x14]
  mov ecx, 2
  call rec
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
; eax = config address -> eax = dword
cfgread:
  mov dx, 0xcf8
  out dx, eax
  mov dx, 0xcfc
  in eax, dx
  ret
; eax = config address, ebx = value
cfgwrite:
  mov dx, 0xcf8
  out dx, eax
  mov dx, 0xcfc
  mov eax, ebx
  out dx, eax
  ret
; prints "<bl> <ecx hex> <eax hex>\n"
rec:
  push eax
  mov al, bl
  call putc
  mov al, ' '
  call putc
  mov eax, ecx
  call hex
  mov al, ' '
  call putc
  pop eax
  call hex
  mov al, 10
  call putc
  ret
hex:
  push ecx
  mov ecx, 8
.h:
  rol eax, 4
  push eax
  and al, 0xf
  add al, '0'
  cmp al, '9'
  jbe .d
  add al, 7
.d:
  call putc
  pop eax
  loop .h
  pop ecx
  ret
putc:
  push edx
  push eax
  mov dx, 0x3fd
.w:
  in al, dx
  test al, 0x20
  jz .w
  pop eax
  mov dx, 0x3f8
  out dx, al
  pop edx
  ret
end_of_image:
`;

type Probe = Map<string, number>;

function parse(text: string): Probe {
  const m: Probe = new Map();
  for (const line of text.split('\n')) {
    const p = line.trim().split(' ');
    if (p.length === 3 && /^[A-Z]$/.test(p[0])) m.set(`${p[0]}${parseInt(p[1], 16)}`, parseInt(p[2], 16));
  }
  return m;
}

/** The same probe as the kernel, against our VirtioPci (BAR4 accessed by offset). */
function probeOurs(): Probe {
  const fn = new VirtioPci(new VirtioBlk(new MemoryBlockBackend(1 << 20), { queueSize: 256 }), new FlatGuestMemory(1 << 20), { msi: () => undefined });
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
  w(0x0c, 4, 1);
  w(0x14, 1, 0x0b);
  m.set('S2', r(0x14, 1));
  w(0x14, 1, 0);
  w(0x10, 2, 7);
  m.set('V0', r(0x10, 2));
  m.set('D0', r(0x2000, 4));
  m.set('D12', r(0x200c, 4));
  m.set('D20', r(0x2014, 4));
  for (let reg = 0x10; reg < 0x28; reg += 4) {
    const orig = fn.configRead(reg, 4);
    fn.configWrite(reg, 4, 0xffff_ffff);
    m.set(`B${reg}`, fn.configRead(reg, 4));
    fn.configWrite(reg, 4, orig);
  }
  return m;
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

const dir = nasm && qemu ? mkdtempSync(join(tmpdir(), 'virtio-qemu-')) : '';
afterAll(() => {
  if (dir !== '') rmSync(dir, { recursive: true, force: true });
});

function probeQemu(): Probe {
  writeFileSync(join(dir, 'k.asm'), KERNEL);
  execFileSync('nasm', ['-f', 'bin', '-o', join(dir, 'k.bin'), join(dir, 'k.asm')]);
  const r = spawnSync('qemu-system-x86_64', [
    '-machine', 'pc', '-m', '64', '-display', 'none', '-nodefaults', '-no-reboot', '-serial', 'stdio',
    '-device', 'isa-debug-exit,iobase=0xf4,iosize=4',
    '-device', 'virtio-blk-pci,drive=d0,addr=04.0', '-drive', 'if=none,id=d0,driver=null-co,size=1M',
    '-kernel', join(dir, 'k.bin'),
  ], { timeout: 60_000 });
  const text = r.stdout.toString();
  if (!text.includes('B 00000024')) throw new Error(`QEMU probe did not complete: ${r.stderr.toString()}`);
  return parse(text);
}

describe.skipIf(!nasm || !qemu)('virtio-pci compared with QEMU 7.2 virtio-blk-pci (probed by a guest kernel)', () => {
  const q = nasm && qemu ? probeQemu() : new Map<string, number>();
  const o = probeOurs();

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

  it('FEATURES_OK without VERSION_1: QEMU accepts it, we refuse it (the spec allows a device to fail then)', () => {
    expect(q.get('S1')).toBe(0x0b);
    expect(o.get('S1')).toBe(0x03);
  });
});
