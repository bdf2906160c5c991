// Differential test against the real peer: the same sequence of port accesses runs in a tiny
// multiboot kernel under Debian's qemu-system-x86_64 (TCG) and against our devices wired as on a
// PC; every IN must read the same. The kernel reports each IN value on QEMU's debug console
// (port 0xE9) and ends with isa-debug-exit, whose exit status is compared too. Only values that
// do not depend on time or on firmware leftovers are compared; known QEMU departures from the
// datasheets are left out and listed at the end of this file.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { IrqLine } from '../bus/irq';
import { MmioBus } from '../bus/mmio';
import { PortIoBus } from '../bus/pio';
import { RecordingInterruptSink } from '../bus/testing';
import { ManualClock } from '../bus/time';
import { DebugExit } from './debug';
import { I8042 } from './i8042';
import { IoApic } from './ioapic';
import { PciRoot } from './pci/host';
import { DualPic } from './pic';
import { Pit8254 } from './pit';
import { Rtc } from './rtc';
import { Uart16550 } from './uart';

type Op = { out: true; port: number; size: 1 | 2 | 4; value: number } | { out: false; port: number; size: 1 | 2 | 4; mask?: number };
const o = (port: number, value: number, size: 1 | 2 | 4 = 1): Op => ({ out: true, port, size, value });
const i = (port: number, size: 1 | 2 | 4 = 1, mask?: number): Op => (mask === undefined ? { out: false, port, size } : { out: false, port, size, mask });
const EXIT_VALUE = 0x12;

const script: Op[] = [
  // 8259A: Linux's init_8259A, IMR read-back, ISR read, poll with everything masked, ELCR masks
  o(0x21, 0xff), o(0xa1, 0xff),
  o(0x20, 0x11), o(0x21, 0x30), o(0x21, 0x04), o(0x21, 0x01),
  o(0xa0, 0x11), o(0xa1, 0x38), o(0xa1, 0x02), o(0xa1, 0x01),
  o(0x21, 0xfb), o(0xa1, 0xff),
  i(0x21), i(0xa1),
  o(0x20, 0x0b), i(0x20), o(0xa0, 0x0b), i(0xa0), o(0x20, 0x0a),
  o(0x21, 0xff), o(0x20, 0x0c), i(0x20),
  o(0x4d0, 0xff), i(0x4d0), o(0x4d1, 0xff), i(0x4d1), o(0x4d0, 0x00), o(0x4d1, 0x00), i(0x4d0), i(0x4d1),
  // 16550A: Linux's 8250 autoconfig and startup probes, loopback data
  o(0x3f9, 0x00), i(0x3f9), o(0x3f9, 0x0f), i(0x3f9), o(0x3f9, 0x00),
  o(0x3fc, 0x1a), i(0x3fe, 1, 0xf0), o(0x3fc, 0x00),
  o(0x3fa, 0x01), i(0x3fa),
  o(0x3fb, 0x80), i(0x3fa), o(0x3fb, 0xbf), i(0x3fa), o(0x3fb, 0x00),
  o(0x3fa, 0x21), i(0x3fa),
  o(0x3fb, 0x80), o(0x3f8, 0x01), o(0x3f9, 0x00), i(0x3f8), i(0x3f9), o(0x3fb, 0x03), i(0x3fb),
  o(0x3ff, 0xa5), i(0x3ff),
  o(0x3fa, 0x07), i(0x3fd), i(0x3fa),
  o(0x3fc, 0x08), o(0x3f9, 0x02), i(0x3fa), i(0x3fa), o(0x3f9, 0x00),
  o(0x3fc, 0x10), o(0x3f8, 0x42), i(0x3fd), i(0x3f8), i(0x3fd), o(0x3fc, 0x00),
  o(0x3fa, 0x00), i(0x3fa), i(0x3fe),
  // MC146818: registers A (UIP masked), B, D, CMOS RAM, read-only C/D, the NMI bit in the index
  o(0x70, 0x0a), i(0x71, 1, 0x7f), o(0x70, 0x0b), i(0x71), o(0x70, 0x0d), i(0x71),
  o(0x70, 0x40), o(0x71, 0x5a), o(0x70, 0x40), i(0x71),
  o(0x70, 0x0d), o(0x71, 0x00), i(0x71),
  o(0x70, 0x8a), i(0x71, 1, 0x7f), o(0x70, 0x0b), o(0x71, 0x06), i(0x71), o(0x71, 0x02),
  // 8254: read-back status after a mode-0 count is loaded
  o(0x43, 0x30), o(0x40, 0xff), o(0x40, 0xff), o(0x43, 0xe2), i(0x40),
  // i8042 and keyboard: self-test, interface test, command byte, atkbd probes
  o(0x64, 0xaa), i(0x60), i(0x64, 1, 0x05), o(0x64, 0xab), i(0x60),
  o(0x64, 0x60), o(0x60, 0x44), o(0x64, 0x20), i(0x60),
  o(0x60, 0xf2), i(0x60), i(0x60), i(0x60),
  o(0x60, 0xed), i(0x60), o(0x60, 0x00), i(0x60),
  o(0x60, 0xf0), i(0x60), o(0x60, 0x00), i(0x60), i(0x60),
  o(0x60, 0xee), i(0x60),
  o(0x60, 0xff), i(0x60), i(0x60),
  // PCI type-1: CONFIG_ADDRESS read-back, absent slot, host bridge class and header type
  o(0xcf8, 0x80000000, 4), i(0xcf8, 4),
  o(0xcf8, 0x8000f800, 4), i(0xcfc, 4), i(0xcfe, 1), i(0xcfe, 2),
  o(0xcf8, 0x80000008, 4), i(0xcfe, 2), o(0xcf8, 0x8000000c, 4), i(0xcfe, 1),
];

function nasmSource(ops: Op[]): string {
  const body: string[] = [];
  for (const op of ops) {
    body.push(`  mov dx, 0x${op.port.toString(16)}`);
    const reg = op.size === 1 ? 'al' : op.size === 2 ? 'ax' : 'eax';
    if (op.out) {
      body.push(`  mov eax, 0x${(op.value >>> 0).toString(16)}`, `  out dx, ${reg}`);
    } else {
      body.push('  xor eax, eax', `  in ${reg}, dx`);
      if (op.mask !== undefined) body.push(`  and eax, 0x${op.mask.toString(16)}`);
      body.push('  call hex_out');
    }
  }
  return `bits 32
org 0x100000
header:
  dd 0x1BADB002
  dd 0x00010000
  dd -(0x1BADB002 + 0x00010000)
  dd header
  dd 0x100000
  dd image_end
  dd image_end
  dd start
start:
  cli
  mov esp, 0x90000
${body.join('\n')}
  mov dx, 0xf4
  mov eax, ${EXIT_VALUE}
  out dx, eax
.hang:
  hlt
  jmp .hang
; prints eax as 8 hex digits and a newline on port 0xE9
hex_out:
  push edx
  push ecx
  mov ecx, 8
.next:
  rol eax, 4
  push eax
  and al, 0x0f
  add al, '0'
  cmp al, '9'
  jbe .digit
  add al, 7
.digit:
  mov dx, 0xe9
  out dx, al
  pop eax
  loop .next
  push eax
  mov al, 10
  out dx, al
  pop eax
  pop ecx
  pop edx
  ret
image_end:
`;
}

/** Our side: the same devices wired as on a PC, running the same script. */
function runOurs(ops: Op[]): { values: number[]; exit: number } {
  const pio = new PortIoBus();
  const clock = new ManualClock();
  const apic = new RecordingInterruptSink();
  const pic = new DualPic({ sink: apic });
  const ioapic = new IoApic(apic);
  const isa = (n: number): IrqLine => new IrqLine([pic, n], [ioapic, n === 0 ? 2 : n]);
  const pit = new Pit8254(clock, isa(0));
  const rtc = new Rtc(clock, isa(8));
  const com1 = new Uart16550(isa(4));
  const kbc = new I8042(isa(1));
  let exit = -1;
  const pci = new PciRoot({ pio, mmio: new MmioBus(), interrupts: apic, intxLines: [isa(10), isa(11), isa(10), isa(11)] });
  pio.register(0x20, 2, pic.master);
  pio.register(0xa0, 2, pic.slave);
  pio.register(0x4d0, 2, pic.elcr);
  pio.register(0x40, 4, pit.ports);
  pio.register(0x61, 1, pit.portB);
  pio.register(0x70, 2, rtc.ports);
  pio.register(0x3f8, 8, com1, 'com1', 1);
  pio.register(0x60, 1, kbc.dataPort);
  pio.register(0x64, 1, kbc.commandPort);
  pio.register(0xcf8, 8, pci.configPorts);
  pio.register(0xf4, 4, new DebugExit((s) => (exit = s)));
  const values: number[] = [];
  for (const op of ops) {
    if (op.out) pio.write(op.port, op.size, op.value);
    else values.push((pio.read(op.port, op.size) & (op.mask ?? 0xffffffff)) >>> 0);
  }
  pio.write(0xf4, 4, EXIT_VALUE);
  return { values, exit: exit & 0xff };
}

const tools = ['nasm', 'qemu-system-x86_64'].filter((t) => spawnSync('sh', ['-c', `command -v ${t}`]).status !== 0);

describe('devices against qemu-system-x86_64', () => {
  it.skipIf(tools.length > 0)('read the same values as QEMU for the same port script', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ringzero-devices-'));
    try {
      writeFileSync(join(dir, 'k.asm'), nasmSource(script));
      const asm = spawnSync('nasm', ['-f', 'bin', '-o', join(dir, 'k.bin'), join(dir, 'k.asm')], { encoding: 'utf8' });
      expect(asm.status, asm.stderr).toBe(0);
      const q = spawnSync(
        'qemu-system-x86_64',
        ['-machine', 'pc', '-accel', 'tcg', '-nodefaults', '-display', 'none', '-m', '64', '-kernel', join(dir, 'k.bin'), '-serial', 'null', '-debugcon', `file:${join(dir, 'out.txt')}`, '-device', 'isa-debug-exit,iobase=0xf4,iosize=0x04', '-no-reboot'],
        { encoding: 'utf8', timeout: 60_000 },
      );
      expect(existsSync(join(dir, 'out.txt')), q.stderr).toBe(true);
      const theirs = readFileSync(join(dir, 'out.txt'), 'utf8').trim().split('\n').filter((l) => l !== '').map((l) => parseInt(l, 16));
      const ours = runOurs(script);
      const labels = script.filter((op) => !op.out).map((op) => `in${op.size} 0x${op.port.toString(16)}`);
      const diff = labels.map((l, k) => `${l}: qemu=${theirs[k]?.toString(16)} ours=${ours.values[k]?.toString(16)}`).filter((_, k) => theirs[k] !== ours.values[k]);
      expect(diff).toEqual([]);
      expect(theirs).toHaveLength(labels.length);
      expect(q.status).toBe(((EXIT_VALUE << 1) | 1) & 0xff);
      expect(ours.exit).toBe(q.status);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
  if (tools.length > 0) console.warn(`SKIPPED: ${tools.join(', ')} not installed: device behaviour is not compared with QEMU`);
});

// Left out on purpose (QEMU 7.2 departs from the datasheet, or the value is undefined):
// - 8254 status NULL COUNT: QEMU never sets it; the 8254 sets it from a control word until the
//   count is loaded (we do).
// - 8254 mode 2 OUT: QEMU reports it low except at reload; the 8254 holds it high except for the
//   clock before reload (we do). QEMU also ignores GATE in mode 0.
// - i8042 AUX port: QEMU has a PS/2 mouse; we have none (0xA9 answers 0x01).
// - An unaligned word access at 0xCFD: undefined for the type-1 mechanism (QEMU reads 0, we read
//   the bytes one by one).
// - Anything that depends on time (counters, RTC time, UIP, IRR with SeaBIOS's timer running).
