// Multiboot test kernels (nasm, assembled here) booted by QEMU TCG (the peer) and by the
// Machine with x86-core's vCPU: the serial output and the isa-debug-exit status must match.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Machine } from './machine';

const HAVE_NASM = !spawnSync('nasm', ['-v']).error;
const HAVE_QEMU = !spawnSync('qemu-system-x86_64', ['--version']).error;
if (!HAVE_NASM) console.warn('SKIPPED: nasm not installed: the multiboot test kernels are not booted');
if (HAVE_NASM && !HAVE_QEMU) console.warn('SKIPPED: qemu-system-x86_64 not installed: test kernels run without the QEMU comparison');

const dir = mkdtempSync(join(tmpdir(), 'rz-kernels-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function assemble(name: string): string {
  const out = join(dir, `${name}.bin`);
  const r = spawnSync('nasm', ['-i', join(__dirname, 'test-kernels') + '/', '-f', 'bin', '-o', out, join(__dirname, 'test-kernels', `${name}.asm`)], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  return out;
}

function qemu(kernel: string): { serial: string; status: number | null } {
  const r = spawnSync(
    'qemu-system-x86_64',
    ['-accel', 'tcg', '-m', '64', '-kernel', kernel, '-display', 'none', '-serial', 'stdio', '-monitor', 'none', '-no-reboot', '-device', 'isa-debug-exit,iobase=0xf4,iosize=0x04'],
    { encoding: 'latin1', timeout: 30_000 },
  );
  return { serial: r.stdout, status: r.status };
}

async function ringzero(kernel: string): Promise<{ serial: string; status: number }> {
  const m = await Machine.build({ memory: 64 << 20, kernel: new Uint8Array(readFileSync(kernel)), cmdline: kernel, debugExit: { iobase: 0xf4, iosize: 4 }, time: 'deterministic' }, {});
  let serial = '';
  m.on('serial', (b) => (serial += Buffer.from(b).toString('latin1')));
  const info = await m.start();
  return { serial, status: info.exitStatus & 0xff };
}

describe.skipIf(!HAVE_NASM)('multiboot test kernels on x86-core vs QEMU TCG', () => {
  it.each([
    ['serial', 'Hello from a multiboot kernel\r\n'],
    ['timers', 'pic ticks ok\nioapic ticks ok\nrtc 24h 2 \n'],
  ])('%s', async (name, expected) => {
    const k = assemble(name);
    const ours = await ringzero(k);
    expect(ours).toEqual({ serial: expected, status: 0x21 });
    if (HAVE_QEMU) expect(qemu(k)).toEqual({ serial: expected, status: 0x21 });
  });
});
