// The qemu-like flags of `ringzero`, parsed into a MachineDescription plus terminal options.
// Every problem is one CliError with a message fit for stderr.
import { GiB, KiB, MAX_RAM_SIZE, MIN_RAM_SIZE, MiB, PAGE_SIZE } from '../layout';
import type { DeviceDescription, DriveDescription, MachineDescription, NetdevDescription } from '../machine/config';
import { BALLOON_PROPS, balloonDevice } from './cli-balloon';

export class CliError extends Error {
  override readonly name = 'CliError';
}

export interface CliMachine {
  readonly description: MachineDescription;
  /** COM1 on the terminal (-serial stdio or -nographic). */
  readonly serialStdio: boolean;
  readonly noReboot: boolean;
}

export const BOOT_USAGE = `usage: ringzero [options]
  -m SIZE[M|G]                 RAM (default 128M; a bare number is MiB)
  -smp 1                       one vCPU (the only choice today)
  -kernel FILE                 bzImage, ELF vmlinux or multiboot v1 kernel
  -initrd FILE                 initial ramdisk (first module for multiboot)
  -append CMDLINE              kernel command line
  -drive file=F[,format=qcow2|raw][,if=virtio][,readonly=on]
  -netdev switch,id=ID[,bridge=NAME]
  -netdev vxlan,id=ID,remote=HOST[:PORT],vni=N[,localport=PORT]  (UDP, default port 4789)
  -device virtio-net-pci,netdev=ID[,mac=52:54:00:12:34:56][,sriov_totalvfs=N]  (N 1-7: SR-IOV PF)
  -device virtio-rng-pci | virtio-serial-pci
  -device virtio-balloon-pci[,deflate-on-oom=on][,free-page-reporting=on][,free-page-hint=on]
         [,page-poison=off][,guest-stats-polling-interval=SECONDS]
  -device isa-debug-exit[,iobase=0xf4][,iosize=0x04]   exit status (value << 1) | 1
  -serial stdio|none           COM1 on the terminal (Ctrl-A X quits)
  -nographic                   the same as -serial stdio (no display exists anyway)
  -no-reboot                   a guest reset ends the process (else the machine restarts)
  -accel tcg|ringzero          accepted for QEMU compatibility (ignored)
  -icount shift=auto|N         deterministic time (instructions drive the clock)`;

function fail(msg: string): never {
  throw new CliError(msg);
}

/** Parses "256", "256M", "1G", "512k", "size=256M" (QEMU's -m; a bare number is MiB). */
export function parseMemorySize(text: string): number {
  const t = text.startsWith('size=') ? text.slice(5) : text.split(',')[0];
  const m = /^(\d+(?:\.\d+)?)([kKmMgGtT]?)[bB]?$/.exec(t);
  if (m == null) fail(`-m: '${text}' is not a size (use e.g. 256M or 1G)`);
  const unit = m[2].toLowerCase();
  const mult = unit === 'k' ? KiB : unit === 'g' ? GiB : unit === 't' ? 1024 * GiB : MiB;
  const bytes = Math.round(Number(m[1]) * mult);
  if (!Number.isSafeInteger(bytes) || bytes < MIN_RAM_SIZE || bytes > MAX_RAM_SIZE) {
    fail(`-m: ${text} is an impossible RAM size (from ${MIN_RAM_SIZE / MiB} MiB to ${MAX_RAM_SIZE / GiB} GiB)`);
  }
  if (bytes % PAGE_SIZE !== 0) fail(`-m: ${text} is not a whole number of 4 KiB pages`);
  return bytes;
}

/** Splits "a=1,b=2,flag" into a map; the first bare word (if allowed) comes back as ''. */
function props(flag: string, text: string, allowed: readonly string[], firstBare: boolean): Map<string, string> {
  const out = new Map<string, string>();
  const parts = text.split(',');
  parts.forEach((p, i) => {
    if (p === '') fail(`${flag}: empty item in '${text}'`);
    const eq = p.indexOf('=');
    if (eq < 0) {
      if (i === 0 && firstBare) out.set('', p);
      else fail(`${flag}: '${p}' should be key=value`);
      return;
    }
    const k = p.slice(0, eq);
    if (!allowed.includes(k)) fail(`${flag}: unknown property '${k}' (known: ${allowed.join(', ')})`);
    if (out.has(k)) fail(`${flag}: '${k}' given twice`);
    out.set(k, p.slice(eq + 1));
  });
  return out;
}

function parsePort(flag: string, what: string, v: string): number {
  const n = /^0x[0-9a-f]+$/i.test(v) ? parseInt(v, 16) : /^\d+$/.test(v) ? Number(v) : NaN;
  if (!Number.isInteger(n)) fail(`${flag}: ${what} '${v}' is not a number`);
  return n;
}

function onOff(flag: string, key: string, v: string): boolean {
  if (v === 'on' || v === 'true' || v === 'yes') return true;
  if (v === 'off' || v === 'false' || v === 'no') return false;
  return fail(`${flag}: ${key}=${v} must be on or off`);
}

/** Parses the boot flags (everything after `ringzero`). */
export function parseBootArgs(argv: readonly string[]): CliMachine {
  let memory = 128 * MiB;
  let kernel: string | undefined;
  let initrd: string | undefined;
  let append: string | undefined;
  const drives: DriveDescription[] = [];
  const netdevs: NetdevDescription[] = [];
  const devices: DeviceDescription[] = [];
  let debugExit: { iobase: number; iosize: number } | false = false;
  let serialStdio = false;
  let serialNone = false;
  let noReboot = false;
  let deterministic = false;
  const value = (i: number, flag: string): string => {
    const v = argv[i + 1];
    if (v === undefined) fail(`${flag} needs a value`);
    return v;
  };
  for (let i = 0; i < argv.length; i++) {
    const raw = argv[i];
    const flag = raw.startsWith('--') ? raw.slice(1) : raw;
    switch (flag) {
      case '-m':
        memory = parseMemorySize(value(i++, flag));
        break;
      case '-smp': {
        const v = value(i++, flag);
        const n = /^(?:cpus=)?(\d+)$/.exec(v.split(',')[0]);
        if (n == null) fail(`-smp: '${v}' is not a number of vCPUs`);
        if (n[1] !== '1') fail(`-smp ${v}: only one vCPU is supported`);
        break;
      }
      case '-kernel':
        kernel = value(i++, flag);
        break;
      case '-initrd':
        initrd = value(i++, flag);
        break;
      case '-append':
        append = value(i++, flag);
        break;
      case '-drive': {
        const p = props(flag, value(i++, flag), ['file', 'format', 'if', 'readonly', 'id', 'media', 'cache', 'serial'], false);
        const file = p.get('file');
        if (file === undefined || file === '') fail('-drive: file=... is required');
        const format = p.get('format');
        if (format !== undefined && format !== 'qcow2' && format !== 'raw') fail(`-drive: format=${format} is not supported (qcow2 or raw)`);
        const iface = p.get('if') ?? 'virtio';
        if (iface !== 'virtio') fail(`-drive: if=${iface} is not supported (only if=virtio)`);
        const media = p.get('media');
        if (media !== undefined && media !== 'disk') fail(`-drive: media=${media} is not supported`);
        const serial = p.get('serial');
        drives.push({
          file,
          ...(format !== undefined ? { format } : {}),
          ...(p.has('readonly') ? { readOnly: onOff(flag, 'readonly', p.get('readonly')!) } : {}),
          ...(serial !== undefined ? { serial } : {}),
        });
        break;
      }
      case '-netdev': {
        const p = props(flag, value(i++, flag), ['id', 'bridge', 'remote', 'vni', 'localport'], true);
        const type = p.get('');
        const id = p.get('id');
        if (id === undefined) fail('-netdev: id=... is required');
        if (type === 'switch') {
          if (p.has('remote') || p.has('vni') || p.has('localport')) fail('-netdev switch: remote/vni/localport belong to vxlan');
          const bridge = p.get('bridge');
          netdevs.push({ type: 'switch', id, ...(bridge !== undefined ? { bridge } : {}) });
        } else if (type === 'vxlan') {
          const remote = p.get('remote');
          if (remote === undefined) fail('-netdev vxlan: remote=HOST[:PORT] is required');
          const m = /^([^:]+)(?::(\d+))?$/.exec(remote);
          const host = m?.[1] ?? '';
          const quad = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(host);
          const isName = /^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*(?!\d+$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/.test(host);
          if (m == null || (quad == null && !isName) || (quad != null && quad.slice(1).some((b) => Number(b) > 255))) {
            fail(`-netdev vxlan: remote=${remote} is not HOST[:PORT] (an IPv4 address or a host name)`);
          }
          const udpPort = (what: string, v: string): number => {
            const n = Number(v);
            if (!/^\d+$/.test(v) || n < 1 || n > 65535) fail(`-netdev vxlan: ${what} ${v} must be 1-65535`);
            return n;
          };
          const vni = p.get('vni');
          if (vni === undefined || vni === '') fail('-netdev vxlan: vni=N is required');
          if (!/^\d+$/.test(vni) || Number(vni) > 0xffffff) fail(`-netdev vxlan: vni=${vni} must be 0-16777215`);
          const lp = p.get('localport');
          netdevs.push({
            type: 'vxlan',
            id,
            remote: quad != null ? quad.slice(1).map(Number).join('.') : host,
            vni: Number(vni),
            ...(m[2] !== undefined ? { port: udpPort('remote port', m[2]) } : {}),
            ...(lp !== undefined ? { localPort: udpPort('localport', lp) } : {}),
          });
        } else fail(`-netdev: type '${type ?? ''}' is not supported (switch or vxlan)`);
        break;
      }
      case '-device': {
        const p = props(flag, value(i++, flag), ['netdev', 'mac', 'iobase', 'iosize', 'id', 'bus', 'addr', 'sriov_totalvfs', ...BALLOON_PROPS], true);
        const type = p.get('');
        if (type !== 'virtio-balloon-pci' && type !== 'virtio-balloon') for (const k of BALLOON_PROPS) if (p.has(k)) fail(`-device ${type ?? ''}: unknown property '${k}'`);
        if (type === 'virtio-balloon-pci' || type === 'virtio-balloon') {
          if (devices.some((d) => d.type === 'virtio-balloon')) fail(`-device ${type}: only one balloon device is allowed`);
          devices.push(balloonDevice(flag, p, onOff, fail));
        } else if (type === 'virtio-net-pci' || type === 'virtio-net') {
          const netdev = p.get('netdev');
          if (netdev === undefined) fail(`-device ${type}: netdev=ID is required`);
          const mac = p.get('mac');
          const vfs = p.get('sriov_totalvfs');
          if (vfs !== undefined && !/^[1-7]$/.test(vfs)) fail(`-device ${type}: sriov_totalvfs=${vfs} must be 1-7`);
          devices.push({ type: 'virtio-net', netdev, ...(mac !== undefined ? { mac } : {}), ...(vfs !== undefined ? { sriovTotalVfs: Number(vfs) } : {}) });
        } else if (type === 'virtio-rng-pci' || type === 'virtio-rng') devices.push({ type: 'virtio-rng' });
        else if (type === 'virtio-serial-pci' || type === 'virtio-serial' || type === 'virtconsole') {
          if (!devices.some((d) => d.type === 'virtio-console')) devices.push({ type: 'virtio-console' });
        } else if (type === 'isa-debug-exit') {
          const iobase = p.has('iobase') ? parsePort(flag, 'iobase', p.get('iobase')!) : 0x501;
          const iosize = p.has('iosize') ? parsePort(flag, 'iosize', p.get('iosize')!) : 2;
          if (iobase < 0 || iobase > 0xffff) fail(`-device isa-debug-exit: iobase=${p.get('iobase') ?? ''} is not a port`);
          if (iosize !== 1 && iosize !== 2 && iosize !== 4) fail(`-device isa-debug-exit: iosize must be 1, 2 or 4`);
          debugExit = { iobase, iosize };
        } else fail(`-device: '${type ?? ''}' is not supported (virtio-net-pci, virtio-rng-pci, virtio-serial-pci, virtio-balloon-pci, isa-debug-exit)`);
        break;
      }
      case '-serial': {
        const v = value(i++, flag);
        if (v === 'stdio' || v === 'mon:stdio') serialStdio = true;
        else if (v === 'none') serialNone = true;
        else fail(`-serial ${v}: only stdio and none are supported`);
        break;
      }
      case '-nographic':
        serialStdio = true;
        break;
      case '-no-reboot':
        noReboot = true;
        break;
      case '-accel':
      case '-machine':
      case '-display':
      case '-vga':
      case '-monitor':
        value(i++, flag);
        break;
      case '-icount':
        value(i++, flag);
        deterministic = true;
        break;
      default:
        if (!raw.startsWith('-')) fail(`unexpected argument '${raw}' (flags start with -)`);
        fail(`${raw}: invalid option`);
    }
  }
  if (kernel === undefined) fail('no -kernel given (there is no firmware to boot from a disk)');
  if (serialNone && serialStdio) fail('-serial none conflicts with -nographic / -serial stdio');
  return {
    description: {
      memory,
      kernel,
      ...(initrd !== undefined ? { initrd } : {}),
      cmdline: append ?? '',
      drives,
      netdevs,
      devices,
      serial: !serialNone,
      debugExit,
      time: deterministic ? 'deterministic' : 'wall',
      noReboot,
    },
    serialStdio: serialStdio || !serialNone,
    noReboot,
  };
}
