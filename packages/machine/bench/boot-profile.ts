// Boot profile: boots the unmodified Debian amd64 kernel (host-decompressed vmlinux, deterministic
// time, as debian-boot.test.ts does) until the kernel prints "Run /init", and prints the wall
// time, the host CPU time, the guest instructions retired, MIPS per CPU-second and the guest time.
//
//   npx tsx --conditions=@ringzero/source bench/boot-profile.ts [--guest-profile[=N]] [--qemu] [--full]
//
//   --guest-profile[=N]  sample the guest RIP every N instructions (default 1000) and print the top
//                        kernel functions by instructions (symbols: --system-map FILE, else the
//                        kernel's own /proc/kallsyms, dumped once under QEMU, see kernelSymbols).
//   --qemu               also time qemu-system-x86_64 -accel tcg to "Run /init" with the same files.
//   --full               run the initramfs to power-off (modules, then poweroff) instead of stopping at /init.
//   --max-insns N        stop after N guest instructions (for short host profiles).
//   --alloc-prof FILE    write a sampling allocation profile (garbage included) as a .heapprofile.
//   --analyze FILE       only print the guest profile of a --samples file.
//   --realtime           wall-clock guest time instead of deterministic time.
//   --top N              how many functions to print (default 30).
//   --samples FILE       also write the raw samples (RIP hex, count) to FILE.
// Not part of `npm run bench` (a boot takes minutes on a loaded machine).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Session } from 'node:inspector';
import { Vcpu } from '@ringzero/x86-core';
import type { AddressSpace } from '@ringzero/mmu-ept';
import { Machine } from '../src/machine/machine';
import type { VcpuFactoryOptions, VcpuPort } from '../src/machine/vcpu-port';
import { extractVmlinux, nodeMachineHost, prepareGuest, writeInitramfs, type Guest } from '../src/node';

const args = process.argv.slice(2);
const flag = (name: string): string | undefined => {
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a.startsWith(`--${name}=`)) return a.slice(name.length + 3);
    if (a === `--${name}`) return i + 1 < args.length && !args[i + 1].startsWith('--') ? args[i + 1] : '';
  }
  return undefined;
};
const profileArg = flag('guest-profile');
const sampleEvery = profileArg === undefined ? 0 : profileArg === '' ? 1000 : Number(profileArg);
const withQemu = flag('qemu') !== undefined;
const full = flag('full') !== undefined;
const realtime = flag('realtime') !== undefined;

const EXIT_BUDGET = 1;

/**
 * The kernel's text symbols. Debian's linux-image package ships only a stub System.map (the real
 * one is in the -dbg package), so the table is read once from /proc/kallsyms of the same kernel
 * booted under qemu-system-x86_64 with nokaslr (our direct boot does not randomise either), written
 * by the guest to a raw virtio disk, and cached as <cache>/amd64/kallsyms.txt.
 */
function kernelSymbols(guest: Guest): string | null {
  const given = flag('system-map');
  if (given) return given;
  const cached = join(guest.dir, 'kallsyms.txt');
  if (existsSync(cached)) return cached;
  const work = mkdtempSync(join(tmpdir(), 'rz-kallsyms-'));
  try {
    const disk = join(work, 'disk.raw');
    writeFileSync(disk, new Uint8Array(32 << 20));
    const initrd = writeInitramfs(guest, join(work, 'initrd.gz'), { script: "grep ' [tTwW] ' /proc/kallsyms > /dev/vda" });
    const r = spawnSync('qemu-system-x86_64', ['-accel', 'tcg', '-m', '256', '-kernel', guest.kernel, '-initrd', initrd, '-append', 'console=ttyS0 panic=-1 nokaslr', '-nographic', '-no-reboot', '-drive', `file=${disk},format=raw,if=virtio`], { encoding: 'latin1', timeout: 300_000 });
    const bytes = readFileSync(disk);
    const end = bytes.indexOf(0);
    const text = bytes.subarray(0, end < 0 ? bytes.length : end).toString('latin1');
    if (r.error || !/^ffffffff[0-9a-f]{8} [tT] /m.test(text)) {
      console.error(`no kernel symbols: the QEMU kallsyms dump failed (${r.error?.message ?? `exit ${r.status}`})`);
      return null;
    }
    writeFileSync(cached, text);
    return cached;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** Sorted text symbols: addresses (low 47 bits, as signed-canonical numbers) and names. */
function loadSymbols(path: string): { addr: Float64Array; name: string[] } {
  const rows: [number, string][] = [];
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    const m = /^([0-9a-f]{16}) ([tTwW]) (\S+)/.exec(line);
    if (!m) continue;
    const hi = parseInt(m[1].slice(0, 8), 16) | 0;
    const lo = parseInt(m[1].slice(8), 16);
    rows.push([hi * 4294967296 + lo, m[3]]);
  }
  rows.sort((a, b) => a[0] - b[0]);
  return { addr: Float64Array.from(rows.map((r) => r[0])), name: rows.map((r) => r[1]) };
}

function lookup(sym: { addr: Float64Array; name: string[] }, rip: number): string {
  const a = sym.addr;
  let lo = 0;
  let hi = a.length - 1;
  if (hi < 0 || rip < a[0]) return `?${rip.toString(16)}`;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (a[mid] <= rip) lo = mid;
    else hi = mid - 1;
  }
  return sym.name[lo];
}

function post(session: Session, method: string, params: object): Promise<unknown> {
  return new Promise((resolve, reject) => {
    session.post(method, params, (err, res) => (err ? reject(err) : resolve(res)));
  });
}

async function qemuBoot(kernel: string, initrd: string): Promise<number> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const p = spawn('qemu-system-x86_64', ['-accel', 'tcg', '-m', '256', '-kernel', kernel, '-initrd', initrd, '-append', 'console=ttyS0 panic=-1', '-nographic', '-no-reboot'], { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    let done = false;
    p.stdout.on('data', (b: Buffer) => {
      out += b.toString('latin1');
      if (!done && out.includes('Run /init')) {
        done = true;
        resolve((performance.now() - t0) / 1000);
        p.kill('SIGKILL');
      }
    });
    p.on('exit', () => {
      if (!done) resolve(NaN);
    });
  });
}

function printProfile(guest: Guest, samples: Map<number, number>, every: number): void {
  const map = kernelSymbols(guest);
  const sym = map ? loadSymbols(map) : { addr: new Float64Array(0), name: [] };
  const byFn = new Map<string, number>();
  let total = 0;
  for (const [rip, n] of samples) {
    const f = lookup(sym, rip);
    byFn.set(f, (byFn.get(f) ?? 0) + n);
    total += n;
  }
  const top = [...byFn].sort((a, b) => b[1] - a[1]).slice(0, Number(flag('top') ?? 30));
  console.log(`guest profile: ${total} samples, one per ${every} instructions`);
  for (const [f, n] of top) console.log(`${((100 * n) / total).toFixed(2).padStart(6)}%  ${((n * every) / 1e6).toFixed(1).padStart(8)}M  ${f}`);
}

async function main(): Promise<void> {
  const guest = prepareGuest({ arch: 'amd64' });
  const analyze = flag('analyze');
  if (analyze) {
    // Re-reads a --samples file: "rip-hex count" lines (negative RIPs as -hex), sample period from --guest-profile.
    const samples = new Map<number, number>();
    for (const line of readFileSync(analyze, 'utf8').split('\n')) {
      const [r, n] = line.split(' ');
      if (r && n) samples.set(parseInt(r, 16), Number(n));
    }
    printProfile(guest, samples, sampleEvery || 1000);
    return;
  }
  const maxInsns = Number(flag('max-insns') ?? Infinity);
  const dir = mkdtempSync(join(tmpdir(), 'rz-boot-profile-'));
  try {
    const initrd = writeInitramfs(guest, join(dir, 'initrd.gz'), { script: 'echo "PROFILE done"' });
    const vmlinux = extractVmlinux(new Uint8Array(readFileSync(guest.kernel))).vmlinux;

    const samples = new Map<number, number>();
    const ref: { core: Vcpu | null; machine: Machine | null } = { core: null, machine: null };
    const factory = (space: AddressSpace, o: VcpuFactoryOptions): VcpuPort => {
      const v = new Vcpu(space, { time: o.time, apicId: o.apicId });
      ref.core = v;
      if (sampleEvery > 0 || maxInsns !== Infinity) {
        const run = v.run.bind(v);
        let next = sampleEvery > 0 ? sampleEvery : maxInsns;
        v.run = (max = 10_000_000): number => {
          // Splits the machine's slice at sample points (the vCPU checks events at each entry anyway).
          for (;;) {
            const left = next - v.cpu.retired;
            const chunk = Math.max(1, Math.min(max, left));
            const before = v.cpu.retired;
            const r = run(chunk);
            max -= Math.max(1, v.cpu.retired - before);
            if (v.cpu.retired >= maxInsns) {
              void ref.machine?.stop();
              return r;
            }
            if (sampleEvery > 0 && v.cpu.retired >= next) {
              const rip = v.cpu.rip;
              samples.set(rip, (samples.get(rip) ?? 0) + 1);
              next = v.cpu.retired + sampleEvery;
            } else if (sampleEvery === 0) {
              next = maxInsns;
            }
            if (r !== EXIT_BUDGET || max <= 0) return r;
          }
        };
      }
      return v;
    };

    const allocProf = flag('alloc-prof');
    const session = allocProf ? new Session() : null;
    if (session) {
      session.connect();
      await post(session, 'HeapProfiler.startSampling', { samplingInterval: 16384, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
    }
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const machine = await Machine.build(
      { memory: 256 << 20, kernel: vmlinux, initrd: new Uint8Array(readFileSync(initrd)), cmdline: 'console=ttyS0 panic=-1', time: realtime ? 'wall' : 'deterministic' },
      { host: nodeMachineHost(), vcpu: factory },
    );
    ref.machine = machine;
    let log = '';
    let initAt = NaN;
    let initCpu = NaN;
    let initInsns = NaN;
    let initNs = NaN;
    machine.on('serial', (b) => {
      log += Buffer.from(b).toString('latin1');
      if (Number.isNaN(initAt) && log.includes('Run /init')) {
        initAt = performance.now();
        const c = process.cpuUsage(cpu0);
        initCpu = (c.user + c.system) / 1e6;
        initInsns = ref.core?.cpu.retired ?? NaN;
        initNs = machine.status().guestNs;
        if (!full) void machine.stop();
      }
    });
    if (process.env.RZ_PROFILE_ECHO) machine.on('serial', (b) => process.stderr.write(Buffer.from(b)));
    const info = await machine.start();
    const wall = (performance.now() - t0) / 1000;
    if (session && allocProf) {
      const r = (await post(session, 'HeapProfiler.stopSampling', {})) as { profile: unknown };
      writeFileSync(allocProf, JSON.stringify(r.profile));
      session.disconnect();
    }
    const c = process.cpuUsage(cpu0);
    const cpuS = (c.user + c.system) / 1e6;
    if (Number.isNaN(initAt) && (ref.core?.cpu.retired ?? 0) >= maxInsns) {
      const n = ref.core?.cpu.retired ?? 0;
      console.log(JSON.stringify({ name: 'prefix wall', value: wall, unit: 's' }));
      console.log(JSON.stringify({ name: 'prefix host CPU', value: cpuS, unit: 's' }));
      console.log(JSON.stringify({ name: 'prefix guest instructions', value: n / 1e6, unit: 'M' }));
      console.log(JSON.stringify({ name: 'prefix MIPS per CPU-second', value: n / 1e6 / cpuS, unit: 'MIPS' }));
      console.log(JSON.stringify({ exits: machine.status().exits, guestNs: machine.status().guestNs }));
      if (sampleEvery > 0) {
        const dump = flag('samples');
        if (dump) writeFileSync(dump, [...samples].map(([r, k]) => `${r.toString(16)} ${k}`).join('\n') + '\n');
        printProfile(guest, samples, sampleEvery);
      }
      return;
    }
    if (Number.isNaN(initAt)) {
      console.log(log.slice(-3000));
      throw new Error(`no "Run /init" (stop: ${info.reason} ${info.message})`);
    }
    const out = (name: string, value: number, unit: string): void => console.log(JSON.stringify({ name, value: Math.round(value * 1000) / 1000, unit }));
    out('boot-to-init wall', (initAt - t0) / 1000, 's');
    out('boot-to-init host CPU', initCpu, 's');
    out('boot-to-init guest instructions', initInsns / 1e6, 'M');
    out('boot-to-init guest time', initNs / 1e9, 's');
    out('boot-to-init MIPS (wall)', initInsns / 1e6 / ((initAt - t0) / 1000), 'MIPS');
    out('boot-to-init MIPS per CPU-second', initInsns / 1e6 / initCpu, 'MIPS');
    if (full) {
      out('boot-to-poweroff wall', wall, 's');
      out('boot-to-poweroff host CPU', cpuS, 's');
      out('boot-to-poweroff guest instructions', (ref.core?.cpu.retired ?? NaN) / 1e6, 'M');
    }
    const c0 = ref.core?.cpu;
    console.log(JSON.stringify({ exits: machine.status().exits, decodedPages: c0?.decodedPages, decodeCacheResets: c0?.decodeCacheResets }));

    if (sampleEvery > 0) {
      const dump = flag('samples');
      if (dump) writeFileSync(dump, [...samples].map(([r, n]) => `${r.toString(16)} ${n}`).join('\n') + '\n');
      printProfile(guest, samples, sampleEvery);
    }
    if (withQemu) {
      const q = await qemuBoot(guest.kernel, initrd);
      console.log(JSON.stringify({ name: 'boot-to-init wall', value: Math.round(((initAt - t0) / 1000) * 1000) / 1000, unit: 's', peer: 'qemu-system-x86_64 -accel tcg', peerValue: Math.round(q * 1000) / 1000, ratio: Math.round(((initAt - t0) / 1000 / q) * 10) / 10 }));
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
