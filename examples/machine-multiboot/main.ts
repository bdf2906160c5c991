// Boots kernel.asm (a multiboot v1 kernel) in RingZero's machine: x86-core's vCPU, the PC's
// UART and isa-debug-exit, the multiboot loader. The kernel prints over COM1, switches from
// 32-bit protected mode to 64-bit long mode, counts primes and exits with status 33. When
// QEMU is installed, qemu-system-x86_64 -accel tcg runs the same kernel as the reference.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Machine } from '@ringzero/machine';

const check = process.argv.includes('--check');
const here = dirname(fileURLToPath(import.meta.url));
if (spawnSync('nasm', ['-v']).error) {
  console.warn('SKIPPED: nasm not installed (Debian package nasm): the demo kernel cannot be assembled');
  process.exit(0);
}
const dir = mkdtempSync(join(tmpdir(), 'rz-multiboot-'));
try {
  const kernel = join(dir, 'kernel.bin');
  const asm = spawnSync('nasm', ['-f', 'bin', '-o', kernel, join(here, 'kernel.asm')], { encoding: 'utf8' });
  if (asm.status !== 0) throw new Error(asm.stderr);

  const machine = await Machine.build(
    { memory: 64 << 20, kernel: new Uint8Array(readFileSync(kernel)), cmdline: 'kernel.bin', debugExit: { iobase: 0xf4, iosize: 4 }, time: 'deterministic' },
    {},
  );
  let serial = '';
  machine.on('serial', (b) => (serial += new TextDecoder('latin1').decode(b)));
  const started = performance.now();
  const info = await machine.start();
  const ms = performance.now() - started;
  const status = info.exitStatus & 0xff;
  console.log(`--- RingZero (${ms.toFixed(0)} ms, exit status ${status}) ---\n${serial.trimEnd()}`);

  let qemuSerial: string | null = null;
  if (spawnSync('qemu-system-x86_64', ['--version']).error) {
    console.warn('SKIPPED: qemu-system-x86_64 not installed: no reference run');
  } else {
    const q = spawnSync(
      'qemu-system-x86_64',
      ['-accel', 'tcg', '-m', '64', '-kernel', kernel, '-display', 'none', '-serial', 'stdio', '-monitor', 'none', '-no-reboot',
        '-device', 'isa-debug-exit,iobase=0xf4,iosize=0x04'],
      { encoding: 'latin1', timeout: 60_000 },
    );
    qemuSerial = q.stdout;
    console.log(`--- QEMU TCG (exit status ${q.status}) ---\n${q.stdout.trimEnd()}`);
    if (check && q.status !== status) throw new Error(`exit status differs: QEMU ${q.status}, RingZero ${status}`);
  }
  if (check) {
    // The CPU identity lines differ by design (RingZero's CPUID model vs QEMU's); the rest must not.
    const strip = (s: string): string => s.split(/\r?\n/).filter((l) => !/^(CPUID vendor|hypervisor signature)/.test(l)).join('\n');
    if (status !== 33 || !serial.includes('primes below 20000: 2262')) throw new Error('the kernel did not run to its end on RingZero');
    if (qemuSerial !== null && strip(qemuSerial) !== strip(serial)) throw new Error('RingZero and QEMU printed different output');
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
