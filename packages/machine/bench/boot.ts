// Boot benchmark, side by side in one run: the Debian bookworm amd64 kernel and the fixture's
// busybox initramfs in RingZero (deterministic time, host-decompressed vmlinux) and in
// `qemu-system-x86_64 -accel tcg` (the same bzImage, initramfs, command line and 256 MiB).
// Measured from process start by the time each marker reaches the parent on the serial line:
// "Run /init as init process", the shell prompt, and a CPU-bound workload typed at the prompt
// (`dd if=/dev/zero bs=1M count=N | sha256sum`, between two echo markers).
//
// Default: N = 8 and `cryptomgr.notests` on the command line (the kernel's crypto self-tests are
// 40% of the instructions to /init; RingZero's interpreter needs minutes for them). The full run
// of the issue (64 MiB, the kernel's own command line): RINGZERO_BENCH_FULL=1.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { canPrepareGuests, prepareGuest, writeInitramfs } from '../src/node/guest';

const FULL = process.env.RINGZERO_BENCH_FULL === '1';
const MIB = FULL ? 64 : 8;
const CMDLINE = FULL ? 'console=ttyS0 panic=-1' : 'console=ttyS0 panic=-1 cryptomgr.notests';
const MEMORY = 256 << 20;
const QEMU = 'qemu-system-x86_64';

interface Times {
  init: number;
  prompt: number;
  work: number;
}

/** Runs one boot; resolves with the seconds from spawn to each marker. */
export function measure(cmd: string, args: string[]): Promise<Times> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const at: Partial<Record<'init' | 'prompt' | 'start' | 'end', number>> = {};
    let out = '';
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString('latin1');
      const now = (performance.now() - t0) / 1000;
      if (at.init === undefined && out.includes('Run /init as init process')) at.init = now;
      if (at.prompt === undefined && /ringzero-init: shell[^]*# /.test(out)) {
        at.prompt = now;
        // The markers are computed, so the shell's echo of the typed line cannot match them.
        child.stdin.write(`echo WORK-$((40+2))-START; dd if=/dev/zero bs=1M count=${MIB} 2>/dev/null | sha256sum; echo WORK-$((40+2))-END\n`);
      }
      if (at.start === undefined && /^WORK-42-START/m.test(out)) at.start = now;
      if (at.end === undefined && /^WORK-42-END/m.test(out)) {
        at.end = now;
        child.stdin.write('poweroff -f\n');
      }
    });
    child.on('error', reject);
    child.on('exit', () => {
      const sum = /^([0-9a-f]{64})\s+-/m.exec(out)?.[1];
      if (at.init === undefined || at.prompt === undefined || at.start === undefined || at.end === undefined || sum === undefined) {
        reject(new Error(`${cmd}: a marker is missing: ${JSON.stringify(at)}\n${out.slice(-2000)}\n${err.slice(-1000)}`));
        return;
      }
      resolve({ init: at.init, prompt: at.prompt, work: at.end - at.start });
    });
  });
}

function line(name: string, value: number, peerValue: number | null): void {
  const o: Record<string, unknown> = { name, value: Number(value.toFixed(2)), unit: 's' };
  if (peerValue != null) {
    o.peer = `${QEMU} -accel tcg`;
    o.peerValue = Number(peerValue.toFixed(2));
    o.ratio = Number((value / peerValue).toFixed(1));
  }
  console.log(JSON.stringify(o));
}

export async function bootBench(): Promise<void> {
  if (!canPrepareGuests() || spawnSync('xz', ['--version']).error) {
    console.warn('SKIPPED: boot benchmark: needs apt-get/dpkg-deb (the Debian guest) and xz');
    return;
  }
  const hasQemu = !spawnSync(QEMU, ['--version']).error;
  if (!hasQemu) console.warn(`SKIPPED: ${QEMU} not installed: the boot benchmark runs without its peer`);
  const guest = prepareGuest({ arch: 'amd64' });
  const dir = mkdtempSync(join(tmpdir(), 'rz-boot-bench-'));
  try {
    const initrd = writeInitramfs(guest, join(dir, 'initrd.gz'), { poweroff: false });
    const peer = hasQemu
      ? await measure(QEMU, ['-accel', 'tcg', '-m', String(MEMORY >> 20), '-kernel', guest.kernel, '-initrd', initrd, '-append', CMDLINE,
          '-nographic', '-no-reboot', '-monitor', 'none'])
      : null;
    const ours = await measure(process.execPath, ['--import', 'tsx', '--conditions=@ringzero/source', join(import.meta.dirname, 'boot-child.ts'),
      guest.kernel, initrd, String(MEMORY), CMDLINE]);
    const note = FULL ? '' : ' (default run: cryptomgr.notests; RINGZERO_BENCH_FULL=1 for the full boot and 64 MiB)';
    line(`debian amd64: process start to /init${note}`, ours.init, peer?.init ?? null);
    line(`debian amd64: process start to the shell prompt${note}`, ours.prompt, peer?.prompt ?? null);
    line(`debian amd64: sha256sum of ${MIB} MiB in the guest`, ours.work, peer?.work ?? null);
    // Both peers share the host with whatever else runs: the figures only compare within a run.
    console.log(JSON.stringify({ name: 'host load average (1 min) after the boot benchmark', value: Number(loadavg()[0].toFixed(1)), unit: 'load' }));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
