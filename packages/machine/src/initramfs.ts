/**
 * A writer for Linux initramfs archives: cpio in the "newc" format (magic 070701), which the
 * kernel unpacks into its root file system before running /init. Isomorphic (no Node APIs);
 * compress the result with gzip for the usual `.cpio.gz`, or pass it uncompressed — Linux
 * accepts both.
 */

/** An entry of the archive. Paths are relative to the root ("bin/busybox", not "/bin/busybox"). */
export type CpioEntry =
  | { readonly type: 'dir'; readonly path: string; readonly mode?: number }
  | { readonly type: 'file'; readonly path: string; readonly data: Uint8Array | string; readonly mode?: number }
  | { readonly type: 'symlink'; readonly path: string; readonly target: string }
  | { readonly type: 'chardev'; readonly path: string; readonly major: number; readonly minor: number; readonly mode?: number };

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;
const HEADER = 110;

const encoder = /*#__PURE__*/ new TextEncoder();

function pad4(n: number): number {
  return (n + 3) & ~3;
}

function checkPath(path: string): void {
  if (path === '' || path.startsWith('/') || path.split('/').some((p) => p === '' || p === '.' || p === '..')) {
    throw new Error(`initramfs: bad path ${JSON.stringify(path)} (relative, no empty, "." or ".." parts)`);
  }
}

/**
 * Builds a cpio newc archive from entries, in order (list a directory before what it holds).
 * Every file gets uid/gid 0 and mtime 0, so the same input always gives the same bytes.
 */
export function buildCpio(entries: readonly CpioEntry[]): Uint8Array {
  const parts: { name: Uint8Array; data: Uint8Array; mode: number; rdevMajor: number; rdevMinor: number; nlink: number }[] = [];
  const seen = new Set<string>();
  for (const e of entries) {
    checkPath(e.path);
    if (seen.has(e.path)) throw new Error(`initramfs: duplicate path ${e.path}`);
    seen.add(e.path);
    let data: Uint8Array = new Uint8Array(0);
    let mode: number;
    let rdevMajor = 0;
    let rdevMinor = 0;
    let nlink = 1;
    switch (e.type) {
      case 'dir':
        mode = S_IFDIR | (e.mode ?? 0o755);
        nlink = 2;
        break;
      case 'file':
        data = typeof e.data === 'string' ? encoder.encode(e.data) : e.data;
        mode = S_IFREG | (e.mode ?? 0o644);
        break;
      case 'symlink':
        data = encoder.encode(e.target);
        mode = S_IFLNK | 0o777;
        break;
      case 'chardev':
        mode = S_IFCHR | (e.mode ?? 0o600);
        rdevMajor = e.major;
        rdevMinor = e.minor;
        break;
    }
    parts.push({ name: encoder.encode(e.path), data, mode, rdevMajor, rdevMinor, nlink });
  }
  parts.push({ name: encoder.encode('TRAILER!!!'), data: new Uint8Array(0), mode: 0, rdevMajor: 0, rdevMinor: 0, nlink: 1 });

  let total = 0;
  for (const p of parts) total += pad4(HEADER + p.name.length + 1) + pad4(p.data.length);
  const out = new Uint8Array(total);
  let at = 0;
  let ino = 1;
  for (const p of parts) {
    const trailer = p === parts[parts.length - 1];
    const fields = [
      trailer ? 0 : ino++, p.mode, 0, 0, p.nlink, 0, p.data.length, 0, 0, p.rdevMajor, p.rdevMinor, p.name.length + 1, 0,
    ];
    let header = '070701';
    for (const f of fields) header += (f >>> 0).toString(16).padStart(8, '0');
    out.set(encoder.encode(header), at);
    out.set(p.name, at + HEADER);
    at = pad4(at + HEADER + p.name.length + 1);
    out.set(p.data, at);
    at = pad4(at + p.data.length);
  }
  return out;
}

/** What the generated /init does, in order. */
export interface InitOptions {
  /** Kernel module files to insmod, in load order, as paths inside the initramfs. */
  readonly modules?: readonly string[];
  /** Shell script (busybox sh) run after the modules are loaded. */
  readonly script?: string;
  /** Power off when the script ends (default true); false leaves an interactive shell on the console. */
  readonly poweroff?: boolean;
}

/** The /init shell script: mounts proc/sys/dev, installs busybox applets, loads modules, runs the script. */
export function initScript(options: InitOptions = {}): string {
  const lines = [
    '#!/bin/busybox sh',
    '/bin/busybox mkdir -p /proc /sys /dev /tmp /sbin /usr/bin /usr/sbin /mnt',
    '/bin/busybox mount -t proc proc /proc',
    '/bin/busybox --install -s',
    'mount -t sysfs sysfs /sys',
    'mount -t devtmpfs devtmpfs /dev 2>/dev/null',
    'echo "ringzero-init: started"',
  ];
  for (const m of options.modules ?? []) {
    lines.push(`insmod ${m} || echo "ringzero-init: insmod ${m} failed"`);
  }
  if (options.script !== undefined) lines.push(options.script);
  if (options.poweroff ?? true) {
    lines.push('sync', 'poweroff -f');
  } else {
    lines.push('echo "ringzero-init: shell (exit or poweroff -f to stop)"', 'exec setsid cttyhack sh');
  }
  return lines.join('\n') + '\n';
}

/** The entries of a minimal busybox initramfs: /bin/busybox, /dev/console, /init and the modules. */
export function busyboxInitramfs(
  busybox: Uint8Array,
  modules: readonly { readonly name: string; readonly data: Uint8Array }[],
  options: Omit<InitOptions, 'modules'> = {},
): CpioEntry[] {
  const entries: CpioEntry[] = [
    { type: 'dir', path: 'bin' },
    { type: 'file', path: 'bin/busybox', data: busybox, mode: 0o755 },
    { type: 'symlink', path: 'bin/sh', target: 'busybox' },
    { type: 'dir', path: 'dev' },
    { type: 'chardev', path: 'dev/console', major: 5, minor: 1 },
    { type: 'chardev', path: 'dev/ttyS0', major: 4, minor: 64 },
    { type: 'dir', path: 'lib' },
    { type: 'dir', path: 'lib/modules' },
  ];
  const paths: string[] = [];
  for (const m of modules) {
    const path = `lib/modules/${m.name}.ko`;
    entries.push({ type: 'file', path, data: m.data });
    paths.push('/' + path);
  }
  entries.push({ type: 'file', path: 'init', data: initScript({ ...options, modules: paths }), mode: 0o755 });
  return entries;
}
