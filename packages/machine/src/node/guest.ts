/**
 * The standard test guests, prepared from Debian bookworm's packages with `apt-get download`
 * and `dpkg-deb -x` (neither needs root), cached in a git-ignored folder:
 *
 *   <cache>/<arch>/vmlinuz            the kernel of linux-image-amd64 / linux-image-686
 *   <cache>/<arch>/busybox            busybox-static for that architecture
 *   <cache>/<arch>/modules/<name>.ko  the virtio modules of the same kernel package
 *   <cache>/<arch>/initramfs.cpio.gz  busybox + modules + an /init that loads them and powers off
 *   <cache>/<arch>/guest.json         versions and paths
 *
 * i386 packages need `dpkg --add-architecture i386` and `apt-get update` first, which this
 * module does when it runs as root; otherwise it says what to run.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync, copyFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { gzipSync } from 'node:zlib';
import { buildCpio, busyboxInitramfs, type InitOptions } from '../initramfs';

export type GuestArch = 'amd64' | 'i386';

/** The virtio modules, in load order (a module after the ones it depends on). */
export const VIRTIO_MODULES: readonly string[] = [
  'virtio_ring', 'virtio', 'virtio_pci_legacy_dev', 'virtio_pci_modern_dev', 'virtio_pci', 'virtio_blk',
  'failover', 'net_failover', 'virtio_net', 'virtio_balloon', 'virtio_console', 'virtio-rng',
];

/**
 * The filesystem modules, so the guest can make and mount a FAT filesystem on /dev/vda with
 * busybox's mkdosfs (busybox has no mkfs for ext4, and ext4.ko + jbd2.ko are 2.4 MB to load).
 * vfat's defaults need codepage 437 and the `ascii` I/O charset; `utf8` is there for
 * `-o utf8`.
 */
export const FS_MODULES: readonly string[] = ['fat', 'vfat', 'nls_cp437', 'nls_ascii', 'nls_utf8'];

/** Every module the fixture carries, in the order asked for (dependencies are added before). */
export const GUEST_MODULES: readonly string[] = [...VIRTIO_MODULES, ...FS_MODULES];

export interface Guest {
  readonly arch: GuestArch;
  readonly kernelPackage: string;
  readonly kernelVersion: string;
  readonly busyboxVersion: string;
  readonly dir: string;
  readonly kernel: string;
  readonly busybox: string;
  /** Module files in load order. */
  readonly modules: readonly string[];
  /** The default initramfs: loads the modules, prints a marker, powers off. */
  readonly initramfs: string;
}

/** An error that explains what to install or pass instead; the CLI prints only its message. */
export class GuestFixtureError extends Error {
  override readonly name = 'GuestFixtureError';
}

/** The cache folder: $RINGZERO_CACHE, else .cache/ringzero under the working directory's repository root. */
export function defaultCacheDir(): string {
  if (process.env.RINGZERO_CACHE) return resolve(process.env.RINGZERO_CACHE);
  let dir = process.cwd();
  for (;;) {
    if (existsSync(join(dir, '.git')) || existsSync(join(dir, 'turbo.json'))) return join(dir, '.cache', 'ringzero');
    const up = resolve(dir, '..');
    if (up === dir) return join(process.cwd(), '.cache', 'ringzero');
    dir = up;
  }
}

const NO_APT =
  'apt-get and dpkg-deb are needed to prepare the Debian guest (this is a Debian/Ubuntu tool set). ' +
  'Install them, or pass your own kernel and initramfs with --kernel FILE --initrd FILE.';

function run(cmd: string, args: string[], cwd?: string): string {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.error) {
    if ((r.error as NodeJS.ErrnoException).code === 'ENOENT') throw new GuestFixtureError(`${cmd} not found. ${NO_APT}`);
    throw r.error;
  }
  if (r.status !== 0) {
    throw new GuestFixtureError(`${cmd} ${args.join(' ')} failed (exit ${r.status}): ${r.stderr.trim().split('\n').slice(-3).join(' / ')}`);
  }
  return r.stdout;
}

function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

function ensureForeignArch(arch: GuestArch): void {
  if (arch === 'amd64') return;
  const native = run('dpkg', ['--print-architecture']).trim();
  if (native === arch) return;
  const foreign = run('dpkg', ['--print-foreign-architectures']).split('\n').map((s) => s.trim());
  if (foreign.includes(arch)) return;
  if (!isRoot()) {
    throw new GuestFixtureError(
      `the ${arch} guest needs Debian's ${arch} packages: run as root \`dpkg --add-architecture ${arch} && apt-get update\`, then try again`,
    );
  }
  run('dpkg', ['--add-architecture', arch]);
  updatePackageLists();
}

/** apt-get update; a partly failed update (a mirror mid-sync) still leaves usable lists, so it only warns. */
function updatePackageLists(): void {
  const r = spawnSync('apt-get', ['update', '-qq'], { encoding: 'utf8' });
  if (r.status !== 0) process.stderr.write(`ringzero: warning: apt-get update reported errors; going on with the lists it has\n`);
}

/** Downloads one package into dir and returns the .deb's path. */
function download(pkg: string, dir: string): string {
  const before = new Set(readdirSync(dir));
  // As root, apt drops privileges to _apt, which cannot write to a private temp dir.
  const sandbox = isRoot() ? ['-o', 'APT::Sandbox::User=root'] : [];
  try {
    run('apt-get', [...sandbox, '-qq', 'download', pkg], dir);
  } catch (err) {
    if (err instanceof GuestFixtureError && /Unable to locate|No packages found|Can't select/.test(err.message)) {
      throw new GuestFixtureError(`${err.message}\nThe package list may be stale or lack this architecture: run \`apt-get update\` as root.`);
    }
    throw err;
  }
  const deb = readdirSync(dir).find((f) => f.endsWith('.deb') && !before.has(f));
  if (!deb) throw new GuestFixtureError(`apt-get download ${pkg} produced no .deb`);
  return join(dir, deb);
}

function debField(deb: string, field: string): string {
  return run('dpkg-deb', ['-f', deb, field]).trim();
}

/** The `depends=` list of a kernel module, read from its .modinfo strings. */
function moduleDepends(ko: Uint8Array): string[] {
  const text = Buffer.from(ko.buffer, ko.byteOffset, ko.byteLength).toString('latin1');
  const m = /\0depends=([^\0]*)\0/.exec(text);
  return m?.[1] ? m[1].split(',').filter(Boolean) : [];
}

/** Orders the wanted modules after their dependencies, found through modules.order and each module's depends=. */
function moduleLoadOrder(modulesDir: string, wanted: readonly string[], builtin: Set<string>): { name: string; rel: string }[] {
  const norm = (p: string): string => p.replace(/^.*\//, '').replace(/\.ko(\.xz|\.zst|\.gz)?$/, '').replace(/-/g, '_');
  const relOf = new Map<string, string>();
  for (const line of readFileSync(join(modulesDir, 'modules.order'), 'utf8').split('\n')) {
    if (line.trim()) relOf.set(norm(line.trim()), line.trim().replace(/^kernel\//, 'kernel/'));
  }
  const order: { name: string; rel: string }[] = [];
  const done = new Set<string>();
  const visit = (n: string, chain: readonly string[]): void => {
    if (done.has(n) || builtin.has(n)) return;
    if (chain.includes(n)) throw new GuestFixtureError(`kernel module dependency loop: ${[...chain, n].join(' -> ')}`);
    const rel = relOf.get(n);
    if (!rel) throw new GuestFixtureError(`kernel module ${n} is neither in modules.order nor built in`);
    for (const d of moduleDepends(readFileSync(join(modulesDir, rel)))) visit(d.replace(/-/g, '_'), [...chain, n]);
    done.add(n);
    order.push({ name: rel.replace(/^.*\//, '').replace(/\.ko.*$/, ''), rel });
  };
  for (const w of wanted) visit(w.replace(/-/g, '_'), []);
  return order;
}

export interface PrepareOptions {
  readonly arch?: GuestArch;
  readonly cacheDir?: string;
  /** Re-download even when the cache is complete. */
  readonly refresh?: boolean;
  /** Progress lines (default: none). */
  readonly log?: (line: string) => void;
}

/** Prepares (or reuses from the cache) one architecture's guest. */
export function prepareGuest(options: PrepareOptions = {}): Guest {
  const arch = options.arch ?? 'amd64';
  const log = options.log ?? ((): void => {});
  const cache = options.cacheDir ?? defaultCacheDir();
  const dir = join(cache, arch);
  const manifest = join(dir, 'guest.json');
  if (!options.refresh) {
    const cached = readManifest(manifest);
    if (cached) return cached;
  }
  for (const tool of ['apt-get', 'dpkg-deb', 'dpkg']) {
    if (spawnSync(tool, ['--version']).error) throw new GuestFixtureError(`${tool} not found. ${NO_APT}`);
  }
  ensureForeignArch(arch);
  mkdirSync(cache, { recursive: true });
  // Everything is built in a private folder and moved into place with one rename, so several
  // processes (parallel test workers) preparing the same guest never see a half-made one.
  const work = mkdtempSync(join(cache, `.work-${arch}-`));
  try {
    const out = join(work, 'out');
    mkdirSync(out);
    const meta = arch === 'amd64' ? 'linux-image-amd64' : 'linux-image-686:i386';
    log(`downloading ${meta}`);
    const metaDeb = download(meta, work);
    const kernelPackage = /linux-image-[0-9][^\s,(]*/.exec(debField(metaDeb, 'Depends'))?.[0];
    if (!kernelPackage) throw new GuestFixtureError(`${meta} does not depend on a linux-image-<version> package`);
    log(`downloading ${kernelPackage}`);
    const kernelDeb = download(arch === 'amd64' ? kernelPackage : `${kernelPackage}:i386`, work);
    const kernelVersion = kernelPackage.replace(/^linux-image-/, '');
    log(`downloading busybox-static (${arch})`);
    const bbDeb = download(arch === 'amd64' ? 'busybox-static' : 'busybox-static:i386', work);
    const busyboxVersion = debField(bbDeb, 'Version');

    const root = join(work, 'root');
    mkdirSync(root);
    log(`unpacking ${kernelPackage}`);
    run('dpkg-deb', ['-x', kernelDeb, root]);
    run('dpkg-deb', ['-x', bbDeb, root]);

    copyFileSync(join(root, 'boot', `vmlinuz-${kernelVersion}`), join(out, 'vmlinuz'));
    copyFileSync(join(root, 'bin', 'busybox'), join(out, 'busybox'));

    const modulesDir = join(root, 'lib', 'modules', kernelVersion);
    const builtinFile = join(modulesDir, 'modules.builtin');
    const builtin = new Set(
      existsSync(builtinFile)
        ? readFileSync(builtinFile, 'utf8').split('\n').filter(Boolean).map((l) => l.replace(/^.*\//, '').replace(/\.ko$/, '').replace(/-/g, '_'))
        : [],
    );
    const order = moduleLoadOrder(modulesDir, GUEST_MODULES, builtin);
    mkdirSync(join(out, 'modules'));
    for (const m of order) {
      if (!m.rel.endsWith('.ko')) throw new GuestFixtureError(`module ${m.rel} is compressed; only plain .ko is supported`);
      copyFileSync(join(modulesDir, m.rel), join(out, 'modules', `${m.name}.ko`));
    }
    // Paths as they will be once `out` becomes `dir`.
    const guest: Guest = {
      arch, kernelPackage, kernelVersion, busyboxVersion, dir,
      kernel: join(dir, 'vmlinuz'),
      busybox: join(dir, 'busybox'),
      modules: order.map((m) => join(dir, 'modules', `${m.name}.ko`)),
      initramfs: join(dir, 'initramfs.cpio.gz'),
    };
    const staged: Guest = { ...guest, busybox: join(out, 'busybox'), modules: order.map((m) => join(out, 'modules', `${m.name}.ko`)) };
    writeInitramfs(staged, join(out, 'initramfs.cpio.gz'), { script: 'echo "ringzero-guest: ready"' });
    writeFileSync(join(out, 'guest.json'), JSON.stringify(guest, null, 2) + '\n');
    if (!options.refresh) {
      const winner = readManifest(manifest);
      if (winner) return winner; // another process finished first: keep its guest in place
    }
    if (existsSync(dir)) renameSync(dir, join(work, 'old'));
    try {
      renameSync(out, dir);
    } catch (err) {
      const winner = readManifest(manifest);
      if (winner) return winner; // another process finished first
      throw err;
    }
    log(`${arch} guest ready in ${dir}`);
    return guest;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

function readManifest(manifest: string): Guest | null {
  if (!existsSync(manifest)) return null;
  try {
    const g = JSON.parse(readFileSync(manifest, 'utf8')) as Guest;
    // A cache made before a module was added to GUEST_MODULES is stale: prepare it again.
    const names = new Set(g.modules.map((f) => f.replace(/^.*\//, '').replace(/\.ko$/, '').replace(/-/g, '_')));
    if (!GUEST_MODULES.every((m) => names.has(m.replace(/-/g, '_')))) return null;
    return [g.kernel, g.busybox, g.initramfs, ...g.modules].every((f) => existsSync(f)) ? g : null;
  } catch {
    return null;
  }
}

/**
 * Writes an initramfs (cpio newc, gzip) holding the guest's busybox and modules and an /init
 * that loads the modules, runs `script` and powers off (or leaves a shell with poweroff: false).
 * `modules`: true (default) for all of the guest's modules, false for none, or the names to load
 * (their dependencies come along, in load order; fewer modules boot faster). Returns the path.
 */
export function writeInitramfs(guest: Guest, path: string, options: Omit<InitOptions, 'modules'> & { modules?: boolean | readonly string[] } = {}): string {
  const norm = (n: string): string => n.replace(/-/g, '_');
  const all = guest.modules.map((f) => ({ name: f.replace(/^.*\//, '').replace(/\.ko$/, ''), data: readFileSync(f) }));
  let mods = options.modules === false ? [] : all;
  if (Array.isArray(options.modules)) {
    const byName = new Map(all.map((m) => [norm(m.name), m]));
    const keep = new Set<string>();
    // A dependency the guest does not carry is built into the kernel (prepareGuest resolved them).
    const visit = (n: string): void => {
      const m = byName.get(norm(n));
      if (m === undefined || keep.has(norm(n))) return;
      keep.add(norm(n));
      for (const d of moduleDepends(m.data)) visit(d);
    };
    for (const n of options.modules as readonly string[]) {
      if (!byName.has(norm(n))) throw new GuestFixtureError(`module ${n} is not in the ${guest.arch} guest (it has ${[...byName.keys()].join(', ')})`);
      visit(n);
    }
    mods = all.filter((m) => keep.has(norm(m.name)));
  }
  const { modules: _unused, ...init } = options;
  const cpio = buildCpio(busyboxInitramfs(readFileSync(guest.busybox), mods, init));
  writeFileSync(path, gzipSync(cpio, { level: 6 }));
  return path;
}

/** True when apt-get and dpkg-deb exist (the fixtures can be prepared on this machine). */
export function canPrepareGuests(): boolean {
  try {
    execFileSync('apt-get', ['--version'], { stdio: 'ignore' });
    execFileSync('dpkg-deb', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
