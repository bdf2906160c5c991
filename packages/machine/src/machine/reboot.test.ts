// Guest resets restart the machine as QEMU does without -no-reboot, and end it with -no-reboot.
// The peer: qemu-system-x86_64 TCG boots the same nasm kernel (test-kernels/reboot.asm), which
// counts its boots in CMOS and resets through the i8042, 0xCF9 and a triple fault in turn.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runMachine } from './run';

const HAVE_NASM = !spawnSync('nasm', ['-v']).error;
const HAVE_QEMU = !spawnSync('qemu-system-x86_64', ['--version']).error;
if (!HAVE_NASM) console.warn('SKIPPED: nasm not installed: the reboot test kernel is not booted');
if (HAVE_NASM && !HAVE_QEMU) console.warn('SKIPPED: qemu-system-x86_64 not installed: reboots are not compared with QEMU');

const dir = mkdtempSync(join(tmpdir(), 'rz-reboot-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function kernel(): string {
  const out = join(dir, 'reboot.bin');
  const r = spawnSync('nasm', ['-i', join(__dirname, 'test-kernels') + '/', '-f', 'bin', '-o', out, join(__dirname, 'test-kernels', 'reboot.asm')], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  return out;
}

function qemu(k: string, noReboot: boolean): { serial: string; status: number | null } {
  const r = spawnSync(
    'qemu-system-x86_64',
    ['-accel', 'tcg', '-m', '64', '-kernel', k, '-display', 'none', '-serial', 'stdio', '-monitor', 'none',
      ...(noReboot ? ['-no-reboot'] : []), '-device', 'isa-debug-exit,iobase=0xf4,iosize=0x04'],
    { encoding: 'latin1', timeout: 60_000 },
  );
  return { serial: r.stdout, status: r.status };
}

async function ringzero(k: string, noReboot: boolean): Promise<{ serial: string; status: number; boots: number; reason: string }> {
  let serial = '';
  const resets: number[] = [];
  const r = await runMachine(
    { memory: 64 << 20, kernel: new Uint8Array(readFileSync(k)), cmdline: k, debugExit: { iobase: 0xf4, iosize: 4 }, time: 'deterministic', noReboot },
    {
      onMachine: (m, boot) => {
        m.on('reset', () => resets.push(boot));
        return m.on('serial', (b) => (serial += Buffer.from(b).toString('latin1')));
      },
    },
  );
  expect(resets).toEqual(noReboot ? [1] : [1, 2, 3]);
  return { serial, status: r.stop.exitStatus & 0xff, boots: r.boots, reason: r.stop.reason };
}

describe.skipIf(!HAVE_NASM)('guest reset', () => {
  it('restarts the machine (i8042 0xFE, 0xCF9, triple fault), keeping the CMOS, as QEMU without -no-reboot', async () => {
    const k = kernel();
    const expected = 'boot 1\r\nboot 2\r\nboot 3\r\nboot 4\r\n';
    expect(await ringzero(k, false)).toEqual({ serial: expected, status: 0x21, boots: 4, reason: 'debug-exit' });
    if (HAVE_QEMU) expect(qemu(k, false)).toEqual({ serial: expected, status: 0x21 });
  });

  it('ends the run with -no-reboot, as QEMU', async () => {
    const k = kernel();
    expect(await ringzero(k, true)).toEqual({ serial: 'boot 1\r\n', status: 0, boots: 1, reason: 'reset' });
    if (HAVE_QEMU) expect(qemu(k, true)).toEqual({ serial: 'boot 1\r\n', status: 0 });
  });

  it('stops after maxReboots', async () => {
    const k = kernel();
    let serial = '';
    const r = await runMachine(
      { memory: 64 << 20, kernel: new Uint8Array(readFileSync(k)), time: 'deterministic' },
      { maxReboots: 1, onMachine: (m) => m.on('serial', (b) => (serial += Buffer.from(b).toString('latin1'))) },
    );
    expect({ serial, boots: r.boots, reason: r.stop.reason }).toEqual({ serial: 'boot 1\r\nboot 2\r\n', boots: 2, reason: 'reset' });
  });
});
