#!/usr/bin/env node
// ringzero: the machine's command line. Today it prepares the Debian test guests; booting them
// arrives with the machine issue (x86-core's system half is needed first).
import { GuestFixtureError, prepareGuest, writeInitramfs, type GuestArch } from './node';
import { readFileSync } from 'node:fs';

const USAGE = `usage:
  ringzero guest fetch [--arch amd64|i386|all] [--refresh]
      download Debian bookworm's kernel, busybox-static and virtio modules, build an initramfs
  ringzero guest initramfs [--arch amd64|i386] --out FILE [--script FILE | --exec 'CMDS'] [--shell] [--no-modules]
      write an initramfs whose /init loads the virtio modules, runs the script and powers off
The cache folder is $RINGZERO_CACHE, else .cache/ringzero at the repository root.
Booting (-kernel/-initrd/-drive...) is not implemented yet: the machine package is still a skeleton.`;

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

function main(argv: string[]): void {
  const [cmd, sub, ...rest] = argv;
  if (cmd === undefined || cmd === '-h' || cmd === '--help') {
    process.stdout.write(USAGE + '\n');
    return;
  }
  if (cmd !== 'guest') fail(`'${cmd}': booting a machine is not implemented yet\n${USAGE}`, 2);
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
