// Shared helpers of the ringzero-img commands: getopt-style parsing, sizes, -o option lists,
// errors that carry qemu-img's exit code, and opening images with qemu-img's messages.
import { dirname, isAbsolute } from 'node:path';
import type { Qcow2CreateOptions, Preallocation } from './create';
import type { ImageFormat, OpenedImage } from './node';
import { openImage } from './node';
import type { Qcow2Image } from './qcow2';
import { AUTOCLEAR_BITMAPS, EXT_BITMAPS, getU64 } from './format';

export const NAME = 'ringzero-img';

export class CliError extends Error {
  readonly exitCode: number;
  constructor(msg: string, exitCode = 1) {
    super(msg);
    this.exitCode = exitCode;
  }
}

export interface Parsed {
  opts: Map<string, string[]>;
  args: string[];
}

/** getopt-style parsing: `withValue` lists options taking an argument. */
export function parse(argv: string[], withValue: string[], flags: string[]): Parsed {
  const opts = new Map<string, string[]>();
  const args: string[] = [];
  const add = (k: string, v: string): void => {
    const l = opts.get(k) ?? [];
    l.push(v);
    opts.set(k, l);
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') {
      args.push(...argv.slice(i + 1));
      break;
    }
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      const k = eq >= 0 ? a.slice(0, eq) : a;
      if (withValue.includes(k)) add(k, eq >= 0 ? a.slice(eq + 1) : (argv[++i] ?? missing(k)));
      else if (flags.includes(k)) add(k, '');
      else throw new CliError(`unrecognized option '${a}'`);
    } else if (a.startsWith('-') && a.length > 1) {
      for (let j = 1; j < a.length; j++) {
        const k = '-' + a[j];
        if (withValue.includes(k)) {
          add(k, j + 1 < a.length ? a.slice(j + 1) : (argv[++i] ?? missing(k)));
          break;
        } else if (flags.includes(k)) add(k, '');
        else throw new CliError(`invalid option -- '${a[j]}'`);
      }
    } else args.push(a);
  }
  return { opts, args };
}

export function missing(k: string): never {
  throw new CliError(`option requires an argument -- '${k.replace(/^-+/, '')}'`);
}

export function last(p: Parsed, ...keys: string[]): string | undefined {
  let v: string | undefined;
  for (const k of keys) {
    const l = p.opts.get(k);
    if (l?.length) v = l[l.length - 1];
  }
  return v;
}

export function has(p: Parsed, ...keys: string[]): boolean {
  return keys.some((k) => p.opts.has(k));
}

/** Parse a size like qemu-img: plain bytes or a k/M/G/T/P/E suffix (powers of 1024). */
export function parseSize(s: string): number {
  const m = /^(\d+(?:\.\d+)?)([bkKmMgGtTpPeE]?)$/.exec(s.trim());
  if (!m) throw new CliError('Invalid image size specified. You may use k, M, G, T, P or E suffixes for');
  const mult: Record<string, number> = { '': 1, b: 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40, p: 2 ** 50, e: 2 ** 60 };
  const v = Math.round(parseFloat(m[1]) * mult[m[2].toLowerCase()]);
  if (!Number.isSafeInteger(v)) throw new CliError('Invalid image size specified. Must be between 0 and 9223372036854775807.');
  return v;
}

/** qemu's size_to_str: three significant digits and a binary unit. */
export function humanSize(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB'];
  let i = 0;
  let v = n;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${parseFloat(v.toPrecision(3))} ${units[i]}`;
}

export function parseOptions(list: string[]): Map<string, string> {
  const m = new Map<string, string>();
  for (const s of list) {
    for (const kv of s.split(',')) {
      if (!kv) continue;
      const eq = kv.indexOf('=');
      m.set(eq >= 0 ? kv.slice(0, eq) : kv, eq >= 0 ? kv.slice(eq + 1) : 'on');
    }
  }
  return m;
}

export function onOff(v: string | undefined, key: string): boolean | undefined {
  if (v === undefined) return undefined;
  if (v === 'on' || v === 'true' || v === 'yes') return true;
  if (v === 'off' || v === 'false' || v === 'no') return false;
  throw new CliError(`Parameter '${key}' expects 'on' or 'off'`);
}

export function createOptionsFrom(o: Map<string, string>, size: number | undefined): Qcow2CreateOptions {
  const known = ['size', 'cluster_size', 'compat', 'lazy_refcounts', 'refcount_bits', 'compression_type', 'extended_l2', 'backing_file', 'backing_fmt', 'data_file', 'data_file_raw', 'preallocation', 'nocow', 'encryption', 'encrypt.format'];
  for (const k of o.keys()) {
    if (!known.includes(k)) throw new CliError(`Invalid parameter '${k}'`);
    if (k.startsWith('encrypt')) throw new CliError('Encryption is not supported');
  }
  const sz = o.has('size') ? parseSize(o.get('size')!) : size;
  if (sz === undefined) throw new CliError('Image creation needs a size parameter');
  const c: Qcow2CreateOptions = { size: sz };
  if (o.has('cluster_size')) c.clusterSize = parseSize(o.get('cluster_size')!);
  if (o.has('compat')) c.compat = o.get('compat')!;
  const lazy = onOff(o.get('lazy_refcounts'), 'lazy_refcounts');
  if (lazy !== undefined) c.lazyRefcounts = lazy;
  if (o.has('refcount_bits')) c.refcountBits = Number(o.get('refcount_bits'));
  const ct = o.get('compression_type');
  if (ct !== undefined) {
    if (ct !== 'zlib' && ct !== 'zstd') throw new CliError(`Invalid parameter '${ct}'`);
    c.compressionType = ct;
  }
  const el2 = onOff(o.get('extended_l2'), 'extended_l2');
  if (el2 !== undefined) c.extendedL2 = el2;
  if (o.has('backing_file')) c.backingFile = o.get('backing_file')!;
  if (o.has('backing_fmt')) c.backingFormat = o.get('backing_fmt')!;
  if (o.has('data_file')) c.dataFile = o.get('data_file')!;
  const dfr = onOff(o.get('data_file_raw'), 'data_file_raw');
  if (dfr !== undefined) c.dataFileRaw = dfr;
  const pre = o.get('preallocation');
  if (pre !== undefined) {
    if (!['off', 'metadata', 'falloc', 'full'].includes(pre)) throw new CliError(`Invalid parameter '${pre}'`);
    c.preallocation = pre as Preallocation;
  }
  return c;
}

export function fmtArg(f: string | undefined): ImageFormat | null {
  if (f === undefined) return null;
  if (f === 'qcow2' || f === 'raw') return f;
  throw new CliError(`Unknown file format '${f}'`);
}

export async function open(path: string, format: ImageFormat | null, o: { readOnly?: boolean; noBacking?: boolean; repairDirty?: boolean; unsafe?: boolean } = {}): Promise<OpenedImage> {
  try {
    return await openImage(path, { format, ...o });
  } catch (e) {
    const msg = (e as Error).message;
    // qemu-img names the image, then the reason (which may name the same file again).
    throw new CliError(`Could not open '${path}': ${msg}`);
  }
}

/** QEMU's path_combine: a relative backing name is relative to the overlay's directory. */
export function fullBackingName(image: string, backing: string): string {
  if (isAbsolute(backing) || !image.includes('/')) return backing;
  return dirname(image) + '/' + backing;
}

export interface Out {
  stdout(s: string): void;
  stderr(s: string): void;
}

export function toJson(v: unknown): string {
  return JSON.stringify(v, null, 4);
}

export interface BitmapInfo {
  name: string;
  granularity: number;
  flags: string[];
}

/** The persistent bitmaps a v3 image lists (null when it has no valid bitmaps extension). */
export async function readBitmaps(img: Qcow2Image): Promise<BitmapInfo[] | null> {
  const h = img.header;
  const ext = h.extensions.find((e) => e.type === EXT_BITMAPS);
  if (h.version < 3 || !ext || !(h.autoclearLo & AUTOCLEAR_BITMAPS) || ext.data.length < 24) return null;
  const edv = new DataView(ext.data.buffer, ext.data.byteOffset, ext.data.byteLength);
  const nb = edv.getUint32(0);
  const size = getU64(edv, 8);
  if (size > 64 << 20) return null;
  const dir = await img.store.pread(getU64(edv, 16), size);
  const dv = new DataView(dir.buffer, dir.byteOffset, dir.byteLength);
  const list: BitmapInfo[] = [];
  let p = 0;
  for (let i = 0; i < nb && p + 24 <= dir.length; i++) {
    const flags = dv.getUint32(p + 12);
    const gran = dir[p + 17];
    const nameSize = dv.getUint16(p + 18);
    const extra = dv.getUint32(p + 20);
    const name = new TextDecoder().decode(dir.subarray(p + 24 + extra, p + 24 + extra + nameSize));
    const f: string[] = [];
    if (flags & 1) f.push('in-use');
    if (flags & 2) f.push('auto');
    list.push({ name, granularity: 2 ** gran, flags: f });
    p = (p + 24 + extra + nameSize + 7) & ~7;
  }
  return list;
}
