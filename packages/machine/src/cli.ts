#!/usr/bin/env node
// ringzero: the machine's command line. `ringzero -kernel ... [qemu-like flags]` boots a machine
// with COM1 on the terminal; `ringzero guest fetch|initramfs` prepares the Debian test guests.
import { readFileSync } from 'node:fs';
import { detectKernelFormat, KernelLoadError } from './boot/index';
import { MachineConfigError, runMachine, type Machine, type MachineStopInfo } from './machine/index';
import { BOOT_USAGE, CliError, parseBootArgs } from './node/cli-args';
import { attachTerminal, HostFileError, nodeMachineHost } from './node/machine-host';
import { GuestFixtureError, prepareGuest, writeInitramfs, type GuestArch } from './node';

const USAGE = `usage:
  ringzero guest fetch [--arch amd64|i386|all] [--refresh]
      download Debian bookworm's kernel, busybox-static and virtio modules, build an initramfs
  ringzero guest initramfs [--arch amd64|i386] --out FILE [--script FILE | --exec 'CMDS'] [--shell] [--no-modules]
      write an initramfs whose /init loads the virtio modules, runs the script and powers off
The cache folder is $RINGZERO_CACHE, else .cache/ringzero at the repository root.

${BOOT_USAGE}`;

function fail(msg: string, code = 1): never {
  process.stderr.write(`ringzero: ${msg}\n`);
  process.exit(code);
}

function parse(args: string[]): Map<string, string | true> {
  const out = new Map<string, string | true>();
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (!a.startsWith('--')) fail(`unexpected argument '${a}'\n${USAGE}`);
    const key = a.slice(2);
    if (['refresh', 'shell', 'no-modules'].includes(key)) out.set(key, true);
    else {
      const v = args[++i];
      if (v === undefined) fail(`option --${key} needs a value`);
      out.set(key, v);
    }
  }
  return out;
}

function archesOf(v: string | true | undefined, allowAll: boolean): GuestArch[] {
  if (v === undefined) return ['amd64'];
  if (v === 'amd64' || v === 'i386') return [v];
  if (v === 'all' && allowAll) return ['amd64', 'i386'];
  return fail(`--arch must be amd64, i386${allowAll ? ' or all' : ''}`);
}

/** QEMU's process status for a stop: isa-debug-exit's value, 0 for power-off and reset, 1 for errors. */
function exitCodeOf(info: MachineStopInfo): number {
  if (info.reason === 'debug-exit') return info.exitStatus & 0xff;
  return info.reason === 'error' ? 1 : 0;
}

async function boot(argv: string[]): Promise<number> {
  const args = parseBootArgs(argv);
  const host = nodeMachineHost();
  const kernelPath = args.description.kernel as string;
  const image = host.readFile(kernelPath) as Uint8Array;
  let description = { ...args.description, kernel: image };
  // As QEMU: a multiboot kernel's command line starts with the kernel's file name.
  if (detectKernelFormat(image) === 'multiboot') description = { ...description, cmdline: `${kernelPath} ${description.cmdline ?? ''}`.trim() };
  const tty = process.stderr.isTTY;
  let progress: ReturnType<typeof setInterval> | null = null;
  const t0 = Date.now();
  const clearProgress = (): void => {
    if (progress == null) return;
    clearInterval(progress);
    progress = null;
    if (tty) process.stderr.write('\r\x1b[K');
  };
  let current: Machine | null = null;
  const stopOnSignal = (): void => void current?.stop();
  process.once('SIGINT', stopOnSignal);
  process.once('SIGTERM', stopOnSignal);
  // A guest reset restarts the machine (as QEMU) unless -no-reboot.
  const { stop: info } = await runMachine(description, {
    host,
    onMachine: (machine) => {
      current = machine;
      if (tty && progress == null) {
        progress = setInterval(() => {
          process.stderr.write(`\r\x1b[Kringzero: booting ${kernelPath} (${((Date.now() - t0) / 1000).toFixed(1)} s, guest ${(machine.status().guestNs / 1e9).toFixed(2)} s)`);
        }, 250);
      }
      const off = machine.on('serial', clearProgress);
      const detach = args.serialStdio ? attachTerminal(machine) : (): void => undefined;
      return () => {
        off();
        detach();
      };
    },
  });
  clearProgress();
  process.off('SIGINT', stopOnSignal);
  process.off('SIGTERM', stopOnSignal);
  if (info.reason === 'error') process.stderr.write(`\nringzero: ${info.message}\n`);
  return exitCodeOf(info);
}

function main(argv: string[]): void {
  const [cmd, sub, ...rest] = argv;
  if (cmd === undefined || cmd === '-h' || cmd === '--help' || cmd === '-help') {
    process.stdout.write(USAGE + '\n');
    return;
  }
  if (cmd !== 'guest') {
    boot(argv).then(
      (code) => process.exit(code),
      (err: unknown) => {
        if (err instanceof CliError || err instanceof MachineConfigError || err instanceof KernelLoadError || err instanceof HostFileError) fail(err.message);
        fail(`internal error: ${(err as Error).stack ?? String(err)}`, 2);
      },
    );
    return;
  }
  const opts = parse(rest);
  const log = (l: string): void => void process.stderr.write(`ringzero: ${l}\n`);
  if (sub === 'fetch') {
    for (const arch of archesOf(opts.get('arch'), true)) {
      const g = prepareGuest({ arch, refresh: opts.has('refresh'), log });
      process.stdout.write(`${arch}: kernel ${g.kernel} (${g.kernelPackage})\n${arch}: initramfs ${g.initramfs}\n`);
    }
    return;
  }
  if (sub === 'initramfs') {
    const out = opts.get('out');
    if (typeof out !== 'string') fail('guest initramfs needs --out FILE');
    const [arch] = archesOf(opts.get('arch'), false);
    const scriptFile = opts.get('script');
    const exec = opts.get('exec');
    const script = typeof scriptFile === 'string' ? readFileSync(scriptFile, 'utf8') : typeof exec === 'string' ? exec : undefined;
    const g = prepareGuest({ arch: arch, log });
    writeInitramfs(g, out, {
      ...(script !== undefined ? { script } : {}),
      poweroff: !opts.has('shell'),
      modules: !opts.has('no-modules'),
    });
    process.stdout.write(`${out}\n`);
    return;
  }
  fail(`unknown guest command '${sub ?? ''}'\n${USAGE}`);
}

try {
  main(process.argv.slice(2));
} catch (err) {
  if (err instanceof GuestFixtureError) fail(err.message);
  const e = err as NodeJS.ErrnoException;
  if (e.code === 'ENOENT' || e.code === 'EACCES') fail(e.message);
  throw err;
}
