#!/usr/bin/env node
// `npm start`: RingZero's main job: boot the default Debian guest in RingZero's own machine
// (scripts/boot.mjs). On a terminal that ends in an interactive shell; without one the guest
// prints what it found and powers off, and the examples' demos run after it.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const say = (s) => process.stdout.write(`\n\x1b[1m== ${s}\x1b[0m\n`);

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { stdio: 'inherit', cwd: root, ...opts });
  return r.status ?? 1;
}

say('Preparing the default guest (Debian bookworm amd64 kernel, busybox, virtio modules)');
const fetched = run(process.execPath, [join(root, 'packages/machine/bin/ringzero.js'), 'guest', 'fetch', '--arch', 'amd64']);
if (fetched !== 0) process.stdout.write('(the guest could not be prepared here; the demos below do not need it)\n');

say('Booting it in RingZero: x86-core vCPU, chipset, ACPI, PCI, virtio (about half a minute on an idle 2-core machine)');
const booted = run(process.execPath, [join(root, 'scripts/boot.mjs')]);
if (process.stdin.isTTY) process.exit(booted);
say('The demos under examples/');
let failures = 0;
const examples = join(root, 'examples');
for (const dir of existsSync(examples) ? readdirSync(examples).sort() : []) {
  const pkgFile = join(examples, dir, 'package.json');
  if (!existsSync(pkgFile)) continue;
  const pkg = JSON.parse(readFileSync(pkgFile, 'utf8'));
  if (!pkg.scripts?.demo) continue;
  say(`${pkg.name}: ${pkg.description ?? ''}`);
  if (run('npm', ['run', '--silent', 'demo'], { cwd: join(examples, dir) }) !== 0) failures++;
}
process.exitCode = failures === 0 && booted === 0 ? 0 : 1;
