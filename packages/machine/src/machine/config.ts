/**
 * The machine description: a plain, JSON-safe object (what libvirt's domain XML is to QEMU),
 * validated before anything is built. Files (kernel, initrd, drive images) are named by path
 * or given as bytes; a `MachineHost` (see machine.ts) turns paths into bytes and block devices,
 * so the core stays free of Node APIs.
 */
import { MAX_RAM_SIZE, MIN_RAM_SIZE, MiB, PAGE_SIZE, GiB } from '../layout';
import { balloonDescriptionError, type BalloonDeviceDescription } from './balloon';

/** A disk: an image file (qcow2 or raw) on virtio-blk. */
export interface DriveDescription {
  /** Path of the image (the host opens it). */
  readonly file: string;
  /** 'qcow2', 'raw', or absent to probe the file (as QEMU does, with its warning for raw). */
  readonly format?: 'qcow2' | 'raw';
  readonly readOnly?: boolean;
  /** Serial number the guest reads with GET_ID (at most 20 ASCII bytes). */
  readonly serial?: string;
}

/** A network back end a NIC attaches to. */
export type NetdevDescription =
  | {
      readonly type: 'switch';
      readonly id: string;
      /** Name of the in-process bridge (shared by machines built with the same `bridges` map). Default "br0". */
      readonly bridge?: string;
    }
  | {
      readonly type: 'vxlan';
      readonly id: string;
      /** The other end: an IPv4 address, or a host name the host resolves to one (Node: dns.lookup). */
      readonly remote: string;
      /** The remote's UDP port (default 4789). */
      readonly port?: number;
      /** The local UDP port to bind (default: the remote's port). */
      readonly localPort?: number;
      /** 24-bit VXLAN network identifier. */
      readonly vni: number;
    };

/** A device on the PCI bus. */
export type DeviceDescription =
  | {
      readonly type: 'virtio-net';
      readonly netdev: string;
      readonly mac?: string;
      /** Makes the NIC an SR-IOV physical function with this many VFs (1-7; see README "SR-IOV"). */
      readonly sriovTotalVfs?: number;
    }
  | { readonly type: 'virtio-rng' }
  | { readonly type: 'virtio-console' }
  | BalloonDeviceDescription;

/** The whole machine. */
export interface MachineDescription {
  /** RAM in bytes (a whole number of 4 KiB pages, 2 MiB to 1 TiB). */
  readonly memory: number;
  /** vCPUs: only 1 today. */
  readonly cpus?: number;
  /** The kernel: bzImage, ELF vmlinux or multiboot v1 (told apart as QEMU does). */
  readonly kernel: string | Uint8Array;
  readonly initrd?: string | Uint8Array;
  /** Kernel command line. */
  readonly cmdline?: string;
  readonly drives?: readonly DriveDescription[];
  readonly netdevs?: readonly NetdevDescription[];
  readonly devices?: readonly DeviceDescription[];
  /** COM1: present (default) or absent. Its bytes arrive as 'serial' events. */
  readonly serial?: boolean;
  /** QEMU's isa-debug-exit (a write of v ends the machine with status (v << 1) | 1). */
  readonly debugExit?: { readonly iobase: number; readonly iosize: number } | false;
  /** 'wall' (default): devices and timers follow the host clock; 'deterministic': time from retired instructions. */
  readonly time?: 'wall' | 'deterministic';
  /** A guest reset (triple fault, 0xCF9, i8042 0xFE) ends `runMachine` instead of restarting the machine (QEMU's -no-reboot). A `Machine` always stops on a reset. */
  readonly noReboot?: boolean;
}

/** A machine description that cannot be built; the message names the field and says why. */
export class MachineConfigError extends Error {
  override readonly name = 'MachineConfigError';
}

const ID_RE = /^[A-Za-z][A-Za-z0-9_.-]{0,63}$/;
const MAC_RE = /^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/;
const IPV4_RE = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
/** A DNS host name (RFC 1123 labels; the last label not all digits, so 300.1.2.3 is no name). */
const HOSTNAME_RE = /^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*(?!\d+$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;
/** Most PCI functions the machine places on bus 0 (slots 1-31; slot 0 is the host bridge). */
export const MAX_PCI_DEVICES = 31;

function fail(msg: string): never {
  throw new MachineConfigError(msg);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v != null && !Array.isArray(v) && !(v instanceof Uint8Array);
}

function checkKeys(o: Record<string, unknown>, what: string, allowed: readonly string[]): void {
  for (const k of Object.keys(o)) if (!allowed.includes(k)) fail(`${what}: unknown field '${k}'`);
}

function fileOrBytes(v: unknown, what: string): void {
  if (v instanceof Uint8Array) {
    if (v.length === 0) fail(`${what} is empty`);
    return;
  }
  if (typeof v !== 'string' || v.length === 0) fail(`${what} must be a file path or bytes`);
}

function formatSize(n: number): string {
  return n % GiB === 0 ? `${n / GiB} GiB` : n % MiB === 0 ? `${n / MiB} MiB` : `${n} bytes`;
}

/** Parses a MAC "52:54:00:12:34:56" into 6 bytes; throws MachineConfigError. */
export function parseMac(text: string): Uint8Array {
  if (!MAC_RE.test(text)) fail(`MAC address '${text}' is not six hex bytes separated by ':'`);
  const mac = Uint8Array.from(text.split(':').map((h) => parseInt(h, 16)));
  if ((mac[0] & 1) !== 0) fail(`MAC address '${text}' is a multicast address`);
  return mac;
}

/**
 * Checks a description (anything, e.g. parsed JSON) and returns it typed. Throws
 * MachineConfigError naming the first problem.
 */
export function validateMachineDescription(value: unknown): MachineDescription {
  if (!isObject(value)) fail('machine description must be an object');
  const d = value;
  checkKeys(d, 'machine', ['memory', 'cpus', 'kernel', 'initrd', 'cmdline', 'drives', 'netdevs', 'devices', 'serial', 'debugExit', 'time', 'noReboot']);
  const mem = d.memory;
  if (typeof mem !== 'number' || !Number.isSafeInteger(mem)) fail('memory must be a whole number of bytes');
  if (mem < MIN_RAM_SIZE || mem > MAX_RAM_SIZE) {
    fail(`memory size ${formatSize(mem)} is impossible: it must be from ${formatSize(MIN_RAM_SIZE)} to ${formatSize(MAX_RAM_SIZE)}`);
  }
  if (mem % PAGE_SIZE !== 0) fail(`memory size ${mem} is not a whole number of 4 KiB pages`);
  if (d.cpus !== undefined && d.cpus !== 1) fail(`cpus: only 1 vCPU is supported, got ${JSON.stringify(d.cpus) ?? typeof d.cpus}`);
  if (d.kernel === undefined) fail('no kernel given');
  fileOrBytes(d.kernel, 'kernel');
  if (d.initrd !== undefined) fileOrBytes(d.initrd, 'initrd');
  if (d.cmdline !== undefined && typeof d.cmdline !== 'string') fail('cmdline must be a string');
  if (typeof d.cmdline === 'string' && d.cmdline.includes('\0')) fail('cmdline must not contain NUL');
  for (const k of ['serial', 'noReboot'] as const) if (d[k] !== undefined && typeof d[k] !== 'boolean') fail(`${k} must be true or false`);
  if (d.time !== undefined && d.time !== 'wall' && d.time !== 'deterministic') fail(`time must be 'wall' or 'deterministic'`);
  if (d.debugExit !== undefined && d.debugExit !== false) {
    const x = d.debugExit;
    if (!isObject(x)) fail('debugExit must be { iobase, iosize } or false');
    checkKeys(x, 'debugExit', ['iobase', 'iosize']);
    if (typeof x.iobase !== 'number' || !Number.isInteger(x.iobase) || x.iobase < 0 || x.iobase > 0xffff) fail('debugExit.iobase must be a port 0-0xffff');
    if (x.iosize !== 1 && x.iosize !== 2 && x.iosize !== 4) fail('debugExit.iosize must be 1, 2 or 4');
    if (x.iobase + x.iosize > 0x10000) fail('debugExit ports run past 0xffff');
  }

  const drives = arrayOf(d.drives, 'drives');
  drives.forEach((v, i) => {
    const w = `drives[${i}]`;
    if (!isObject(v)) fail(`${w} must be an object`);
    checkKeys(v, w, ['file', 'format', 'readOnly', 'serial']);
    if (typeof v.file !== 'string' || v.file.length === 0) fail(`${w}.file must be a path`);
    if (v.format !== undefined && v.format !== 'qcow2' && v.format !== 'raw') fail(`${w}.format must be qcow2 or raw, got ${JSON.stringify(v.format) ?? typeof v.format}`);
    if (v.readOnly !== undefined && typeof v.readOnly !== 'boolean') fail(`${w}.readOnly must be true or false`);
    if (v.serial !== undefined && (typeof v.serial !== 'string' || v.serial.length > 20 || !/^[\x20-\x7e]*$/.test(v.serial))) {
      fail(`${w}.serial must be at most 20 printable ASCII characters`);
    }
  });

  const ids = new Set<string>();
  const netdevs = arrayOf(d.netdevs, 'netdevs');
  netdevs.forEach((v, i) => {
    const w = `netdevs[${i}]`;
    if (!isObject(v)) fail(`${w} must be an object`);
    if (typeof v.id !== 'string' || !ID_RE.test(v.id)) fail(`${w}.id must be a name (a letter, then letters, digits, '_', '.', '-')`);
    if (ids.has(v.id)) fail(`netdev id '${v.id}' is used twice`);
    ids.add(v.id);
    if (v.type === 'switch') {
      checkKeys(v, w, ['type', 'id', 'bridge']);
      if (v.bridge !== undefined && (typeof v.bridge !== 'string' || !ID_RE.test(v.bridge))) fail(`${w}.bridge must be a name`);
    } else if (v.type === 'vxlan') {
      checkKeys(v, w, ['type', 'id', 'remote', 'port', 'localPort', 'vni']);
      if (typeof v.remote !== 'string' || !(IPV4_RE.test(v.remote) || HOSTNAME_RE.test(v.remote))) fail(`${w}.remote must be an IPv4 address or a host name`);
      for (const k of ['port', 'localPort'] as const) {
        const p = v[k];
        if (p !== undefined && (typeof p !== 'number' || !Number.isInteger(p) || p < 1 || p > 65535)) fail(`${w}.${k} must be 1-65535`);
      }
      if (typeof v.vni !== 'number' || !Number.isInteger(v.vni) || v.vni < 0 || v.vni > 0xffffff) fail(`${w}.vni must be 0-16777215`);
    } else fail(`${w}.type must be 'switch' or 'vxlan'`);
  });

  const devices = arrayOf(d.devices, 'devices');
  const usedNetdevs = new Set<string>();
  const macs = new Set<string>();
  let balloons = 0;
  devices.forEach((v, i) => {
    const w = `devices[${i}]`;
    if (!isObject(v)) fail(`${w} must be an object`);
    if (v.type === 'virtio-net') {
      checkKeys(v, w, ['type', 'netdev', 'mac', 'sriovTotalVfs']);
      if (v.sriovTotalVfs !== undefined && (typeof v.sriovTotalVfs !== 'number' || !Number.isInteger(v.sriovTotalVfs) || v.sriovTotalVfs < 1 || v.sriovTotalVfs > 7)) {
        fail(`${w}.sriovTotalVfs must be 1-7 (the VFs are functions 1-7 of the NIC's slot)`);
      }
      if (typeof v.netdev !== 'string' || !ids.has(v.netdev)) fail(`${w}: netdev '${String(v.netdev)}' is not defined`);
      if (usedNetdevs.has(v.netdev)) fail(`${w}: netdev '${v.netdev}' is already used by another NIC`);
      usedNetdevs.add(v.netdev);
      if (v.mac !== undefined) {
        if (typeof v.mac !== 'string') fail(`${w}.mac must be a string`);
        parseMac(v.mac);
        const m = v.mac.toLowerCase();
        if (macs.has(m)) fail(`${w}: MAC ${v.mac} is used twice`);
        macs.add(m);
      }
    } else if (v.type === 'virtio-rng' || v.type === 'virtio-console') checkKeys(v, w, ['type']);
    else if (v.type === 'virtio-balloon') {
      const err = balloonDescriptionError(v, w);
      if (err != null) fail(err);
      if (balloons++ > 0) fail(`${w}: only one virtio-balloon is allowed (as in QEMU)`);
    } else fail(`${w}.type must be 'virtio-net', 'virtio-rng', 'virtio-console' or 'virtio-balloon', got '${String(v.type)}'`);
  });
  if (drives.length + devices.length > MAX_PCI_DEVICES) fail(`too many PCI devices (${drives.length + devices.length}; at most ${MAX_PCI_DEVICES})`);
  return value as unknown as MachineDescription;
}

function arrayOf(v: unknown, what: string): unknown[] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) fail(`${what} must be an array`);
  return v as unknown[];
}
