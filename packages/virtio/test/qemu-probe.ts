// What the QEMU peer tests share: a multiboot v1 kernel frame (nasm) with a small runtime for
// PCI type-1 configuration access and for printing probe records on COM1, the parser of those
// records, and one way to assemble such a kernel and run it under qemu-system-x86_64.
//
// A probe record is one serial line "<letter> <index hex> <value hex>"; the same probe runs
// against our device model in-process and the two record maps are compared.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export type Probe = Map<string, number>;

const have = (cmd: string, arg: string): boolean => spawnSync(cmd, [arg]).status === 0;

/** nasm and qemu-system-x86_64 are installed (scripts/test-deps.sh installs both). */
export const nasmAndQemu: boolean = have('nasm', '-v') && have('qemu-system-x86_64', '--version');

/** Says loudly what is not compared when a peer tool is missing. */
export function warnIfMissing(what: string): void {
  if (nasmAndQemu) return;
  const missing = have('nasm', '-v') ? 'qemu-system-x86_64' : 'nasm';
  console.warn(`SKIPPED: ${missing} not installed: ${what}`);
}

/**
 * A flat 32-bit multiboot v1 kernel loaded at 1 MiB: `body` must define `start`; `data` goes
 * after the runtime. The runtime gives `cfgread` (eax = CF8 address -> eax), `cfgwrite`
 * (eax = address, ebx = value), `rec` (prints "<bl> <ecx hex> <eax hex>\n"), `hex` and `putc`.
 */
export function multibootKernel(body: string, data = ''): string {
  return String.raw`
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
${body}
cfgread:
  mov dx, 0xcf8
  out dx, eax
  mov dx, 0xcfc
  in eax, dx
  ret
cfgwrite:
  mov dx, 0xcf8
  out dx, eax
  mov dx, 0xcfc
  mov eax, ebx
  out dx, eax
  ret
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
${data}
end_of_image:
`;
}

/** The probe records printed on the serial line, keyed "<letter><index>". */
export function parseProbe(text: string): Probe {
  const m: Probe = new Map();
  for (const line of text.split('\n')) {
    const p = line.trim().split(' ');
    if (p.length === 3 && /^[A-Z]$/.test(p[0])) m.set(`${p[0]}${parseInt(p[1], 16)}`, parseInt(p[2], 16));
  }
  return m;
}

export interface QemuProbeRun {
  /** The kernel's nasm source. */
  kernel: string;
  /** Extra nasm arguments (e.g. -DPACKED). */
  nasmArgs?: readonly string[];
  /** The device arguments: everything after QEMU's common pc/serial/isa-debug-exit set. */
  qemuArgs: (dir: string) => readonly string[];
  /** A line the probe prints last: without it the run failed. */
  done: string;
}

/** Assembles the kernel and runs it under QEMU TCG in a fresh temporary folder, removed after. */
export function runQemuProbe(run: QemuProbeRun): Probe {
  const dir = mkdtempSync(join(tmpdir(), 'virtio-qemu-probe-'));
  try {
    writeFileSync(join(dir, 'k.asm'), run.kernel);
    execFileSync('nasm', [...(run.nasmArgs ?? []), '-f', 'bin', '-o', join(dir, 'k.bin'), join(dir, 'k.asm')]);
    const r = spawnSync('qemu-system-x86_64', [
      '-machine', 'pc', '-m', '64', '-display', 'none', '-nodefaults', '-no-reboot', '-serial', 'stdio',
      '-device', 'isa-debug-exit,iobase=0xf4,iosize=4',
      ...run.qemuArgs(dir),
      '-kernel', join(dir, 'k.bin'),
    ], { timeout: 60_000 });
    const text = r.stdout.toString();
    if (!text.includes(run.done)) throw new Error(`QEMU probe did not complete: ${r.stderr.toString()}\n${text}`);
    return parseProbe(text);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
