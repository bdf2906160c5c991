// ringzero-img: a qemu-img-compatible command line (subset), on top of the library.
import { existsSync, statSync, writeFileSync } from 'node:fs';
import { basename } from 'node:path';
import type { BlockDevice, BlockStatus } from './device';
import { ImageError, RawDevice } from './device';
import type { Qcow2CreateOptions } from './create';
import { validateCreateOptions } from './create';
import type { CheckResult, RepairMode } from './check';
import { checkImage } from './check';
import { Qcow2Image } from './qcow2';
import type { ImageFormat, OpenedImage } from './node';
import { closeSharedCompressorPool, createQcow2File, NodeFileStore, probeFormat, sharedCompressorPool } from './node';
import type { CompressorPool } from './pool';
import type { BitmapEntry, NewBitmap } from './bitmaps';
import { addBitmaps, loadBitmapDirectory, readBitmap } from './bitmaps';
import { inlineCompressorPool } from './pool';
import { COMPAT_LAZY_REFCOUNTS } from './format';
import { createSnapshot, deleteSnapshot, applySnapshot } from './snapshot';

import type { Out } from './cli-util';
import { runMore } from './cli-more';
import { CliError, NAME, readBitmaps, createOptionsFrom, fmtArg, fullBackingName, has, humanSize, last, open, parse, parseOptions, parseSize, toJson } from './cli-util';

export { humanSize, parseSize };
export type { Out };
// ------------------------------------------------------------------------------- create

async function cmdCreate(argv: string[], out: Out): Promise<number> {
  const p = parse(argv, ['-f', '-o', '-b', '-F', '-B', '--backing-format', '--format', '--backing', '--options'], ['-q', '-u', '--quiet', '-h']);
  const fmt = last(p, '-f', '--format') ?? 'raw';
  if (fmt !== 'qcow2' && fmt !== 'raw') throw new CliError(`Unknown file format '${fmt}'`);
  const [file, sizeArg] = p.args;
  if (!file) throw new CliError('Expecting image file name');
  const o = parseOptions([...(p.opts.get('-o') ?? []), ...(p.opts.get('--options') ?? [])]);
  const b = last(p, '-b', '--backing');
  const bf = last(p, '-F', '-B', '--backing-format');
  if (b !== undefined) o.set('backing_file', b);
  if (bf !== undefined) o.set('backing_fmt', bf);
  let size = sizeArg !== undefined ? parseSize(sizeArg) : undefined;
  if (o.has('backing_file')) {
    if (!o.has('backing_fmt')) throw new CliError('Backing file specified without backing format');
    const bpath = fullBackingName(file, o.get('backing_file')!);
    if (bpath === file || (existsSync(file) && existsSync(bpath) && statSync(file).ino === statSync(bpath).ino)) {
      throw new CliError(`${file}: Error: Trying to create an image with the same filename as the backing file`);
    }
    if (size === undefined && !o.has('size')) {
      const bimg = await open(bpath, fmtArg(o.get('backing_fmt')), { readOnly: true });
      size = bimg.size;
      await bimg.close();
    }
  }
  if (fmt === 'raw') {
    if (size === undefined) throw new CliError('Image creation needs a size parameter');
    if (!has(p, '-q', '--quiet')) out.stdout(`Formatting '${file}', fmt=raw size=${size}\n`);
    const s = await NodeFileStore.open(file, { create: true });
    await s.truncate(size);
    await s.close();
    return 0;
  }
  const c = createOptionsFrom(o, size);
  try {
    validateCreateOptions(c);
  } catch (e) {
    throw new CliError(`${file}: ${(e as Error).message}`);
  }
  if (!has(p, '-q', '--quiet')) {
    const parts = [`Formatting '${file}', fmt=qcow2 cluster_size=${c.clusterSize ?? 65536} extended_l2=${c.extendedL2 ? 'on' : 'off'}`];
    if (c.compat && c.compat !== '1.1' && c.compat !== 'v3') parts.push(`compat=${c.compat}`);
    parts.push(`compression_type=${c.compressionType ?? 'zlib'} size=${c.size}`);
    if (c.backingFile !== undefined) parts.push(`backing_file=${c.backingFile}`);
    if (c.backingFormat !== undefined) parts.push(`backing_fmt=${c.backingFormat}`);
    if (c.dataFile !== undefined) parts.push(`data_file=${c.dataFile} data_file_raw=${c.dataFileRaw ? 'on' : 'off'}`);
    if (c.preallocation && c.preallocation !== 'off') parts.push(`preallocation=${c.preallocation}`);
    parts.push(`lazy_refcounts=${c.lazyRefcounts ? 'on' : 'off'} refcount_bits=${c.refcountBits ?? 16}`);
    out.stdout(parts.join(' ') + '\n');
  }
  if (c.dataFile !== undefined) {
    const ds = await NodeFileStore.open(fullBackingName(file, c.dataFile), { create: true });
    await ds.truncate(c.dataFileRaw ? c.size : 0);
    await ds.close();
  }
  await createQcow2File(file, c);
  return 0;
}

// ------------------------------------------------------------------------------- info

interface InfoJson {
  [k: string]: unknown;
}

async function allocatedBytes(path: string): Promise<number> {
  const s = await NodeFileStore.open(path, { readOnly: true });
  try {
    return await s.allocatedBytes();
  } finally {
    await s.close();
  }
}

async function imageInfo(path: string, img: OpenedImage): Promise<InfoJson> {
  const info: InfoJson = {};
  if (img instanceof Qcow2Image) {
    const h = img.header;
    if (img.snapshots.length) {
      info.snapshots = img.snapshots.map((s) => {
        const o: InfoJson = {};
        if (s.icount >= 0) o.icount = s.icount;
        o['vm-clock-nsec'] = s.vmClockNsec % 1e9;
        o.name = s.name;
        o['date-sec'] = s.dateSec;
        o['date-nsec'] = s.dateNsec;
        o['vm-clock-sec'] = Math.floor(s.vmClockNsec / 1e9);
        o.id = s.id;
        o['vm-state-size'] = s.vmStateSize;
        return o;
      });
    }
    info['virtual-size'] = img.size;
    info.filename = path;
    info['cluster-size'] = img.clusterSize;
    info.format = 'qcow2';
    info['actual-size'] = await allocatedBytes(path);
    const data: InfoJson = { compat: h.version === 3 ? '1.1' : '0.10' };
    if (h.dataFile != null) data['data-file'] = h.dataFile;
    if (h.dataFile != null) data['data-file-raw'] = img.dataFileRaw;
    data['compression-type'] = h.compressionType === 1 ? 'zstd' : 'zlib';
    if (h.version === 3) {
      data['lazy-refcounts'] = (h.compatLo & COMPAT_LAZY_REFCOUNTS) !== 0;
      const b = await readBitmaps(img);
      if (b) data.bitmaps = b.map((x) => ({ flags: x.flags, name: x.name, granularity: x.granularity }));
    }
    data['refcount-bits'] = img.refcountBits;
    if (h.version === 3) {
      data.corrupt = img.isCorrupt;
      data['extended-l2'] = img.extendedL2;
    }
    info['format-specific'] = { type: 'qcow2', data };
    if (h.backingFile != null) {
      if (h.backingFormat != null) info['backing-filename-format'] = h.backingFormat;
      info['full-backing-filename'] = fullBackingName(path, h.backingFile);
      info['backing-filename'] = h.backingFile;
    }
    info['dirty-flag'] = img.isDirty;
  } else {
    info['virtual-size'] = img.size;
    info.filename = path;
    info.format = 'raw';
    info['actual-size'] = await allocatedBytes(path);
    info['dirty-flag'] = false;
  }
  return info;
}

function pad2(n: number): string {
  return String(n).padStart(2, '0');
}

function snapshotTable(snaps: InfoJson[] | undefined): string {
  let s = `${'ID'.padEnd(10)}${'TAG'.padEnd(17)}${'VM SIZE'.padStart(8)}${'DATE'.padStart(20)}${'VM CLOCK'.padStart(13)}${'ICOUNT'.padStart(11)}\n`;
  for (const e of snaps ?? []) {
    const d = new Date((e['date-sec'] as number) * 1000);
    const date = `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())} ${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
    const secs = e['vm-clock-sec'] as number;
    const clock = `${pad2(Math.floor(secs / 3600))}:${pad2(Math.floor(secs / 60) % 60)}:${pad2(secs % 60)}.${String(Math.floor((e['vm-clock-nsec'] as number) / 1e6)).padStart(3, '0')}`;
    const ic = e.icount === undefined ? "" : `${e.icount as number}`;
    s += `${String(e.id).padEnd(10)}${String(e.name).padEnd(17)}${humanSize(e['vm-state-size'] as number).padStart(8)}${date.padStart(20)}${clock.padStart(13)}${ic.padStart(11)}\n`;
  }
  return s;
}

function infoText(i: InfoJson): string {
  let s = `image: ${i.filename as string}\nfile format: ${i.format as string}\n`;
  s += `virtual size: ${humanSize(i['virtual-size'] as number)} (${i['virtual-size'] as number} bytes)\n`;
  s += `disk size: ${humanSize(i['actual-size'] as number)}\n`;
  if (i['cluster-size'] !== undefined) s += `cluster_size: ${i['cluster-size'] as number}\n`;
  if (i['backing-filename'] !== undefined) {
    s += `backing file: ${i['backing-filename'] as string}`;
    if (i['full-backing-filename'] !== i['backing-filename']) s += ` (actual path: ${i['full-backing-filename'] as string})`;
    s += '\n';
    if (i['backing-filename-format'] !== undefined) s += `backing file format: ${i['backing-filename-format'] as string}\n`;
  }
  if (i['dirty-flag']) s += 'cleanly shut down: no\n';
  if (i.snapshots) s += 'Snapshot list:\n' + snapshotTable(i.snapshots as InfoJson[]);
  const fs = i['format-specific'] as { data: InfoJson } | undefined;
  if (fs) {
    s += 'Format specific information:\n';
    for (const [k, v] of Object.entries(fs.data)) {
      const key = k.replace(/-/g, ' ');
      if (k === 'bitmaps') {
        s += `    bitmaps:\n`;
        (v as { name: string; granularity: number; flags: string[] }[]).forEach((b, idx) => {
          s += `        [${idx}]:\n            flags:\n`;
          b.flags.forEach((f, j) => (s += `                [${j}]: ${f}\n`));
          s += `            name: ${b.name}\n            granularity: ${b.granularity}\n`;
        });
      } else s += `    ${key}: ${String(v)}\n`;
    }
  }
  return s;
}


async function cmdInfo(argv: string[], out: Out): Promise<number> {
  const p = parse(argv, ['-f', '--output', '--format', '-t', '-T'], ['--backing-chain', '-U', '--force-share', '-q', '--image-opts', '-h']);
  const file = p.args[0];
  if (!file) throw new CliError('Expecting one image file name');
  const output = last(p, '--output') ?? 'human';
  const chain = has(p, '--backing-chain');
  const infos: InfoJson[] = [];
  let path = file;
  let fmt = fmtArg(last(p, '-f', '--format'));
  const seen = new Set<string>();
  for (;;) {
    const img = await open(path, fmt, { readOnly: true, noBacking: true });
    try {
      infos.push(await imageInfo(path, img));
    } finally {
      await img.close();
    }
    const i = infos[infos.length - 1];
    if (!chain || i['backing-filename'] === undefined) break;
    path = i['full-backing-filename'] as string;
    if (seen.has(path)) throw new CliError(`Backing file '${path}' creates an infinite loop.`);
    seen.add(path);
    const bf = i['backing-filename-format'] as string | undefined;
    fmt = bf ? fmtArg(bf) : await probeFormat(path);
  }
  if (output === 'json') out.stdout(toJson(chain ? infos : infos[0]) + '\n');
  else if (output === 'human') out.stdout(infos.map(infoText).join('\n'));
  else throw new CliError(`--output must be used with human or json as argument.`);
  return 0;
}

// ------------------------------------------------------------------------------- check

function checkJson(file: string, r: CheckResult): InfoJson {
  const j: InfoJson = {};
  j['image-end-offset'] = r.imageEndOffset;
  j['total-clusters'] = r.totalClusters;
  j['check-errors'] = r.checkErrors;
  if (r.leaks) j.leaks = r.leaks;
  if (r.corruptions) j.corruptions = r.corruptions;
  if (r.leaksFixed) j['leaks-fixed'] = r.leaksFixed;
  if (r.corruptionsFixed) j['corruptions-fixed'] = r.corruptionsFixed;
  j['allocated-clusters'] = r.allocatedClusters;
  if (r.fragmentedClusters) j['fragmented-clusters'] = r.fragmentedClusters;
  if (r.compressedClusters) j['compressed-clusters'] = r.compressedClusters;
  j.filename = file;
  j.format = 'qcow2';
  return j;
}

function checkText(r: CheckResult): string {
  let s = '';
  if (r.corruptionsFixed || r.leaksFixed) {
    s += `The following inconsistencies were found and repaired:\n\n    ${r.leaksFixed} leaked clusters\n    ${r.corruptionsFixed} corruptions\n\nDouble checking the fixed image now...\n`;
  }
  if (!r.corruptions && !r.leaks && !r.checkErrors) s += 'No errors were found on the image.\n';
  else {
    if (r.corruptions) s += `\n${r.corruptions} errors were found on the image.\nData may be corrupted, or further writes to the image may corrupt it.\n`;
    if (r.leaks) s += `\n${r.leaks} leaked clusters were found on the image.\nThis means waste of disk space, but no harm to data.\n`;
    if (r.checkErrors) s += `\n${r.checkErrors} internal errors have occurred during the check.\n`;
  }
  if (r.totalClusters && r.allocatedClusters) {
    const pct = (x: number, d: number): string => ((x * 100) / d).toFixed(2);
    s += `${r.allocatedClusters}/${r.totalClusters} = ${pct(r.allocatedClusters, r.totalClusters)}% allocated, ${pct(r.fragmentedClusters, r.allocatedClusters)}% fragmented, ${pct(r.compressedClusters, r.allocatedClusters)}% compressed clusters\n`;
  }
  if (r.imageEndOffset) s += `Image end offset: ${r.imageEndOffset}\n`;
  return s;
}

async function cmdCheck(argv: string[], out: Out): Promise<number> {
  const p = parse(argv, ['-f', '--output', '-r', '--format', '-T'], ['-q', '-U', '--force-share', '--image-opts', '-h']);
  const file = p.args[0];
  if (!file) throw new CliError('Expecting one image file name');
  const output = last(p, '--output') ?? 'human';
  const quiet = has(p, '-q');
  const r = last(p, '-r');
  let mode: RepairMode = 'none';
  if (r === 'leaks') mode = 'leaks';
  else if (r === 'all') mode = 'all';
  else if (r !== undefined) throw new CliError(`Unknown option value for -r (expecting 'leaks' or 'all'): ${r}`);
  const fmt = fmtArg(last(p, '-f', '--format')) ?? (await probeFormatOr(file));
  if (fmt === 'raw') throw new CliError('This image format does not support checks', 63);
  const img = await open(file, 'qcow2', { readOnly: mode === 'none', noBacking: true, repairDirty: false });
  let res: CheckResult;
  try {
    res = await checkImage(img as Qcow2Image, mode);
  } catch (e) {
    await img.close().catch(() => undefined);
    throw new CliError(`Check failed: ${(e as Error).message}`);
  }
  await img.close();
  for (const m of res.messages) out.stderr(m + '\n');
  if (!quiet) {
    if (output === 'json') out.stdout(toJson(checkJson(file, res)) + '\n');
    else out.stdout(checkText(res));
  }
  if (res.checkErrors) return 1;
  if (res.corruptions) return 2;
  if (res.leaks) return 3;
  return 0;
}

async function probeFormatOr(file: string): Promise<ImageFormat> {
  try {
    return await probeFormat(file);
  } catch (e) {
    throw new CliError(`Could not open '${file}': ${(e as { code?: string }).code === 'ENOENT' ? 'No such file or directory' : (e as Error).message}`);
  }
}

// ------------------------------------------------------------------------------- map

function sameExtent(a: BlockStatus, b: BlockStatus): boolean {
  return (
    a.start + a.length === b.start &&
    a.depth === b.depth &&
    a.present === b.present &&
    a.zero === b.zero &&
    a.data === b.data &&
    a.compressed === b.compressed &&
    (a.offset == null) === (b.offset == null) &&
    (a.offset == null || a.offset + a.length === b.offset)
  );
}

/** All block-status extents of a device, merged like `qemu-img map`. */
export async function mapExtents(img: OpenedImage, start = 0, length: number = img.size): Promise<BlockStatus[]> {
  const out: BlockStatus[] = [];
  let pos = start;
  const end = start + length;
  while (pos < end) {
    const s = await img.blockStatus(pos, Math.min(end - pos, 1 << 30));
    if (s.length <= 0) throw new ImageError('block status made no progress', 'EIO');
    const prev = out[out.length - 1];
    if (prev && sameExtent(prev, s)) prev.length += s.length;
    else out.push({ ...s });
    pos += s.length;
  }
  return out;
}

async function cmdMap(argv: string[], out: Out): Promise<number> {
  const p = parse(argv, ['-f', '--output', '--format', '--start-offset', '--max-length'], ['-U', '--force-share', '--image-opts', '-h']);
  const file = p.args[0];
  if (!file) throw new CliError('Expecting one image file name');
  const output = last(p, '--output') ?? 'human';
  const img = await open(file, fmtArg(last(p, '-f', '--format')), { readOnly: true });
  const so = last(p, '--start-offset');
  const ml = last(p, '--max-length');
  const start = so ? Math.min(parseSize(so), img.size) : 0;
  const len = ml ? Math.min(parseSize(ml), img.size - start) : img.size - start;
  try {
    const ext = await mapExtents(img, start, len);
    if (output === 'json') {
      const lines = ext.map((e) => {
        let s = `{ "start": ${e.start}, "length": ${e.length}, "depth": ${e.depth}, "present": ${e.present}, "zero": ${e.zero}, "data": ${e.data}`;
        if (e.offset != null) s += `, "offset": ${e.offset}`;
        return s + '}';
      });
      out.stdout('[' + lines.join(',\n') + ']\n');
    } else {
      const names = await chainNames(file);
      let s = `${'Offset'.padEnd(16)}${'Length'.padEnd(16)}${'Mapped to'.padEnd(16)}File\n`;
      const hx = (n: number): string => (n ? '0x' + n.toString(16) : '0');
      // Human output lists data with a host offset, merging runs that map contiguously.
      const rows: BlockStatus[] = [];
      for (const e of ext) {
        if (!e.data || e.offset == null) continue;
        const prev = rows[rows.length - 1];
        if (prev && prev.depth === e.depth && prev.start + prev.length === e.start && prev.offset! + prev.length === e.offset) prev.length += e.length;
        else rows.push({ ...e });
      }
      for (const e of rows) s += `${hx(e.start).padEnd(16)}${hx(e.length).padEnd(16)}${hx(e.offset!).padEnd(16)}${names[e.depth] ?? file}\n`;
      out.stdout(s);
    }
  } finally {
    await img.close();
  }
  return 0;
}

/** File names of the chain layers (depth 0 = the image itself). */
async function chainNames(file: string): Promise<string[]> {
  const names = [file];
  let path = file;
  for (let i = 0; i < 64; i++) {
    const img = await open(path, null, { readOnly: true, noBacking: true });
    const bname = img instanceof Qcow2Image ? img.header.backingFile : null;
    await img.close();
    if (bname == null) break;
    path = fullBackingName(path, bname);
    names.push(path);
  }
  return names;
}

// ------------------------------------------------------------------------------- convert

// The zero check compares against a zero buffer with the native memcmp (Buffer#compare takes
// any Uint8Array as its target and allocates nothing), about twice as fast as a JS word loop.
const ZERO = Buffer.alloc(1 << 20);

function isZero(b: Uint8Array, start: number, end: number): boolean {
  for (let p = start; p < end; p += ZERO.length) {
    const e = Math.min(end, p + ZERO.length);
    if (ZERO.compare(b, p, e, 0, e - p) !== 0) return false;
  }
  return true;
}

export interface ConvertOptions {
  srcFormat?: ImageFormat | null;
  outFormat: ImageFormat;
  compress?: boolean;
  create?: Qcow2CreateOptions | null;
  progress?: (pct: number) => void;
  noCreate?: boolean;
  /** Target cache mode as qemu-img's -t: 'unsafe' (the default) skips fdatasync. */
  cache?: string;
  /**
   * Where -c compresses clusters: a pool the caller owns (left open), or null to compress on
   * this thread. Default: the process-wide worker pool (`sharedCompressorPool()`).
   */
  compressor?: CompressorPool | null;
  /** Copy the source's persistent bitmaps (qemu-img's --bitmaps). */
  bitmaps?: boolean;
  /** With `bitmaps`: skip inconsistent (in-use) bitmaps with a warning instead of failing. */
  skipBrokenBitmaps?: boolean;
  /** Warnings (qemu-img prints them on stderr). */
  warn?: (line: string) => void;
}

/** The source's bitmaps as `convert --bitmaps` copies them, checked before anything is written. */
async function bitmapsToCopy(from: OpenedImage, o: ConvertOptions): Promise<BitmapEntry[]> {
  if (!(from instanceof Qcow2Image)) throw new CliError('Source lacks bitmap support');
  const dir = await loadBitmapDirectory(from);
  const out: BitmapEntry[] = [];
  // QEMU walks the bitmaps last to first.
  for (const e of [...(dir?.entries ?? [])].reverse()) {
    if (e.flags & 1) {
      if (!o.skipBrokenBitmaps) throw new CliError(`Cannot copy inconsistent bitmap '${e.name}'\nTry --skip-broken-bitmaps, or use 'qemu-img bitmap --remove' to delete it`);
      o.warn?.(`warning: Skipping inconsistent bitmap '${e.name}'`);
      continue;
    }
    out.push(e);
  }
  if (o.outFormat !== 'qcow2') throw new CliError(`Format driver '${o.outFormat}' does not support bitmaps`);
  return out.reverse();
}

/** Copy an image into a new one (qemu-img convert). */
export async function convertImage(src: string, dst: string, o: ConvertOptions): Promise<void> {
  const from = await open(src, o.srcFormat ?? null, { readOnly: true });
  try {
    const size = from.size;
    const copyBitmaps = o.bitmaps ? await bitmapsToCopy(from, o) : [];
    let to: BlockDevice;
    let cs = 65536;
    const unsafe = (o.cache ?? 'unsafe') === 'unsafe';
    if (o.outFormat === 'raw') {
      const s = await NodeFileStore.open(dst, { create: !o.noCreate, unsafe });
      if (!o.noCreate) await s.truncate(size);
      to = await RawDevice.open(s);
    } else {
      if (!o.noCreate) await createQcow2File(dst, { ...(o.create ?? {}), size });
      const q = await open(dst, 'qcow2', { unsafe });
      if (!(q instanceof Qcow2Image)) throw new CliError('target is not qcow2');
      to = q;
      cs = q.clusterSize;
    }
    try {
      // Several chunks are read at once; with -c the clusters of a chunk are compressed
      // concurrently when the codec can work off-thread (Node's zlib).
      const chunk = Math.max(cs, 2 << 20);
      const target = to instanceof Qcow2Image ? to : null;
      const compressing = o.compress === true && target != null;
      let compressor: CompressorPool | null = null;
      if (compressing) {
        if (o.compressor !== undefined) compressor = o.compressor ?? inlineCompressorPool(() => target.compressionCodec);
        else {
          const shared = sharedCompressorPool();
          shared.warm();
          compressor = shared;
        }
      }
      const compressionType = target?.compressionType ?? 0;
      interface Piece {
        pos: number;
        n: number;
        buf: Uint8Array;
      }
      const pool: Uint8Array[] = [];
      // Finds the next range to copy, skipping what the source chain has as holes or zeros.
      const nextRange = async (from0: number): Promise<number> => {
        let pos = from0;
        while (pos < size) {
          const st = await from.blockStatus(pos, Math.min(size - pos, 1 << 30));
          if (!st.data && st.zero) {
            const skip = Math.floor((pos + st.length) / cs) * cs - pos;
            if (skip > 0 || pos + st.length >= size) {
              pos += skip > 0 ? skip : st.length;
              continue;
            }
          }
          return pos;
        }
        return -1;
      };
      let lastPct = -1;
      type Job = { off: number; data: Uint8Array; c: Promise<Uint8Array | null> | undefined };
      // With -c, the clusters of a chunk start compressing as soon as it is read, in batches
      // of up to 8 (one message to a worker each).
      const compressJobs = (piece: Piece): Job[] => {
        const { pos, n, buf } = piece;
        const jobs: Job[] = [];
        let batch: Uint8Array[] = [];
        let batchJobs: Job[] = [];
        const send = (): void => {
          if (batch.length === 0 || compressor == null) return;
          const all = compressor.compress(compressionType, batch, cs - 1);
          all.catch(() => undefined);
          batchJobs.forEach((j, k) => {
            j.c = all.then((r) => r[k]);
            j.c.catch(() => undefined);
          });
          batch = [];
          batchJobs = [];
        };
        for (let i = 0; i < n; ) {
          const e = Math.min(n, i + cs - ((pos + i) % cs));
          if (!isZero(buf, i, e)) {
            const data = buf.subarray(i, e);
            let padded = data;
            if (data.length < cs) {
              padded = new Uint8Array(cs);
              padded.set(data);
            }
            const j: Job = { off: pos + i, data, c: undefined };
            jobs.push(j);
            batch.push(padded);
            batchJobs.push(j);
            if (batch.length === 8) send();
          }
          i = e;
        }
        send();
        return jobs;
      };
      // Issues the writes of a chunk; `issued` is called once all of them are submitted (with
      // -c: done, as each waits for its compressed bytes in order).
      const writeChunk = async (piece: Piece, jobs: Job[] | null, issued: () => void): Promise<void> => {
        const { pos, n, buf } = piece;
        if (jobs && to instanceof Qcow2Image) {
          for (const j of jobs) await to.writePrecompressed(j.off, j.data, j.c === undefined ? undefined : await j.c);
          issued();
        } else {
          // Non-zero clusters merged into runs, all submitted at once (the device runs them side
          // by side; allocation follows submission order, as qemu-img's in-order writes).
          const writes: Promise<void>[] = [];
          let i = 0;
          while (i < n) {
            const e = Math.min(n, i + cs - ((pos + i) % cs));
            if (isZero(buf, i, e)) {
              i = e;
              continue;
            }
            let j = e;
            let next = -1; // the end of the zero cluster that ended the run (checked once)
            while (j < n) {
              const e2 = Math.min(n, j + cs);
              if (isZero(buf, j, e2)) {
                next = e2;
                break;
              }
              j = e2;
            }
            writes.push(to.write(pos + i, buf.subarray(i, j)));
            i = next >= 0 ? next : j;
          }
          issued();
          await Promise.all(writes);
        }
        const pct = Math.floor(((pos + n) / size) * 10000) / 100;
        if (o.progress && pct > lastPct) {
          lastPct = pct;
          o.progress(pct);
        }
      };
      // Up to DEPTH chunks of 2 MiB in flight: their reads run side by side, and each chunk's
      // writes are issued after the previous chunk's were. Few and small, so a chunk is still in
      // the CPU's cache when it is written: 1 GiB qcow2->raw, medians of 31 runs, 0.256 s wall
      // and 0.345 CPU-s with 3 chunks, 0.282 s and 0.379 CPU-s with 8 (qemu-img's count); 4
      // chunks of 4 MiB took 0.38-0.40 s and 0.62-0.65 CPU-s (with NodeFileStore's concurrent
      // writes of that time).
      const DEPTH = 3;
      const inFlight: Promise<void>[] = [];
      let order: Promise<void> = Promise.resolve();
      let pos = 0;
      let failure: { e: unknown } | null = null;
      try {
        while ((pos = await nextRange(pos)) >= 0) {
          const n = Math.min(chunk, size - pos);
          // Chunk buffers are reused: fresh 4 MiB arrays cost a page fault per 4 KiB.
          const piece: Piece = { pos, n, buf: pool.pop() ?? new Uint8Array(chunk) };
          const read = from.readIntoBuffer(pos, piece.buf, 0, n);
          const prev = order;
          let issued!: () => void;
          order = new Promise<void>((r) => {
            issued = r;
          });
          const done = (async (): Promise<void> => {
            try {
              await read;
              const jobs = compressing ? compressJobs(piece) : null;
              await prev;
              await writeChunk(piece, jobs, issued);
              pool.push(piece.buf);
            } finally {
              issued();
            }
          })();
          done.catch(() => undefined);
          inFlight.push(done);
          if (inFlight.length >= DEPTH) await inFlight.shift();
          pos += n;
        }
      } catch (e) {
        failure = { e };
      }
      // Nothing is left running when this returns or throws.
      const rest = await Promise.allSettled(inFlight);
      if (failure) throw failure.e;
      for (const r of rest) if (r.status === 'rejected') throw r.reason;
      if (o.progress && lastPct !== 100) o.progress(100);
      await to.flush();
      if (copyBitmaps.length && to instanceof Qcow2Image && from instanceof Qcow2Image) {
        const list: NewBitmap[] = [];
        for (const e of copyBitmaps) {
          const bits = await readBitmap(from, e.name);
          if (!bits) throw new CliError(`Could not read bitmap '${e.name}'`);
          list.push({ name: e.name, granularityBits: e.granularityBits, enabled: (e.flags & 2) !== 0, bits });
        }
        await addBitmaps(to, list);
      }
    } finally {
      await to.close();
    }
  } finally {
    await from.close();
  }
}

async function cmdConvert(argv: string[], out: Out): Promise<number> {
  const p = parse(argv, ['-f', '-O', '-o', '-S', '-m', '-t', '-T', '-B', '-F', '-l', '-s', '-r', '--target-format', '--source-format'], ['-c', '-p', '-q', '-n', '-W', '-U', '-C', '--force-share', '--salvage', '--target-is-zero', '-h', '--bitmaps', '--skip-broken-bitmaps']);
  if (p.args.length < 2) throw new CliError('Expecting image file name');
  if (p.args.length > 2) throw new CliError('Converting more than one source image is not supported');
  const [src, dst] = p.args;
  const outFmt = fmtArg(last(p, '-O') ?? 'raw')!;
  const o = parseOptions(p.opts.get('-o') ?? []);
  const compress = has(p, '-c');
  if (compress && outFmt === 'raw') throw new CliError('Compression not supported for this file format');
  if (compress && o.has('preallocation') && o.get('preallocation') !== 'off') throw new CliError('Compression and preallocation not supported at the same time');
  const create = outFmt === 'qcow2' ? createOptionsFrom(o, 0) : null;
  if (create) {
    delete (create as { size?: number }).size;
  }
  const showProgress = has(p, '-p') && !has(p, '-q');
  const cache = last(p, '-t') ?? 'unsafe';
  if (!['none', 'writeback', 'writethrough', 'directsync', 'unsafe'].includes(cache)) throw new CliError(`Invalid cache option: ${cache}`);
  const opts: ConvertOptions = { srcFormat: fmtArg(last(p, '-f')), outFormat: outFmt, compress, create, noCreate: has(p, '-n'), cache };
  if (has(p, '--bitmaps')) {
    opts.bitmaps = true;
    opts.skipBrokenBitmaps = has(p, '--skip-broken-bitmaps');
    opts.warn = (line) => out.stderr(`${NAME}: ${line}\n`);
  }
  if (showProgress) opts.progress = (pct: number) => out.stdout(`    (${pct.toFixed(2)}/100%)\r`);
  if (showProgress) out.stdout(`    (0.00/100%)\r`);
  await convertImage(src, dst, opts);
  if (showProgress) out.stdout('\n');
  return 0;
}

// ------------------------------------------------------------------------------- snapshot

async function cmdSnapshot(argv: string[], out: Out): Promise<number> {
  const p = parse(argv, ['-c', '-a', '-d', '-f'], ['-l', '-q', '-U', '--force-share', '-h']);
  const file = p.args[0];
  if (!file) throw new CliError('Expecting one image file name');
  const list = has(p, '-l');
  const img = await open(file, fmtArg(last(p, '-f')) ?? 'qcow2', { readOnly: list, noBacking: true });
  try {
    if (!(img instanceof Qcow2Image)) throw new CliError('This image format does not support snapshots');
    if (list) {
      const info = await imageInfo(file, img);
      out.stdout('Snapshot list:\n' + snapshotTable(info.snapshots as InfoJson[] | undefined));
      return 0;
    }
    const c = last(p, '-c');
    const a = last(p, '-a');
    const d = last(p, '-d');
    if (c !== undefined) {
      try {
        await createSnapshot(img, c);
      } catch (e) {
        throw new CliError(`Could not create snapshot '${c}': ${(e as Error).message}`);
      }
    } else if (a !== undefined) {
      try {
        await applySnapshot(img, a);
      } catch (e) {
        throw new CliError(`Could not apply snapshot '${a}': ${(e as Error).message}`);
      }
    } else if (d !== undefined) {
      try {
        await deleteSnapshot(img, d);
      } catch (e) {
        throw new CliError(`Could not delete snapshot '${d}': ${(e as Error).message}`);
      }
    } else throw new CliError('No snapshot operation given');
  } finally {
    await img.close();
  }
  return 0;
}

// ------------------------------------------------------------------------------- compare

async function cmdCompare(argv: string[], out: Out): Promise<number> {
  const p = parse(argv, ['-f', '-F', '-T'], ['-s', '-q', '-p', '-U', '--force-share', '-h']);
  if (p.args.length !== 2) throw new CliError('Expecting two image file names');
  const [f1, f2] = p.args;
  let a: OpenedImage;
  let b: OpenedImage;
  try {
    a = await open(f1, fmtArg(last(p, '-f')), { readOnly: true });
  } catch (e) {
    out.stderr(`${NAME}: ${(e as Error).message}\n`);
    return 2;
  }
  try {
    b = await open(f2, fmtArg(last(p, '-F')), { readOnly: true });
  } catch (e) {
    await a.close();
    out.stderr(`${NAME}: ${(e as Error).message}\n`);
    return 2;
  }
  const quiet = has(p, '-q');
  const strict = has(p, '-s');
  try {
    if (strict && a.size !== b.size) {
      if (!quiet) out.stdout(`Strict mode: Image size mismatch!\n`);
      return 1;
    }
    const common = Math.min(a.size, b.size);
    const chunk = 1 << 20;
    for (let pos = 0; pos < Math.max(a.size, b.size); pos += chunk) {
      const n = Math.min(chunk, Math.max(a.size, b.size) - pos);
      const da = pos < a.size ? await a.read(pos, Math.min(n, a.size - pos)) : new Uint8Array(0);
      const db = pos < b.size ? await b.read(pos, Math.min(n, b.size - pos)) : new Uint8Array(0);
      for (let i = 0; i < n; i++) {
        const x = i < da.length ? da[i] : 0;
        const y = i < db.length ? db[i] : 0;
        if (x !== y) {
          const off = pos + i;
          // qemu-img reports the start of the sector where the difference begins.
          if (!quiet) out.stdout(`Content mismatch at offset ${off - (off % 512)}!\n`);
          return 1;
        }
      }
      void common;
    }
    if (!quiet) out.stdout('Images are identical.\n');
    return 0;
  } finally {
    await a.close();
    await b.close();
  }
}

// ------------------------------------------------------------------------------- resize

async function cmdResize(argv: string[], out: Out): Promise<number> {
  const p = parse(argv, ['-f', '--preallocation'], ['-q', '--shrink', '-U', '-h']);
  const [file, sizeArg] = p.args;
  if (!file || sizeArg === undefined) throw new CliError('Expecting image file name and size');
  const img = await open(file, fmtArg(last(p, '-f')), { noBacking: true });
  try {
    let size: number;
    if (sizeArg.startsWith('+')) size = img.size + parseSize(sizeArg.slice(1));
    else if (sizeArg.startsWith('-')) size = img.size - parseSize(sizeArg.slice(1));
    else size = parseSize(sizeArg);
    if (size < img.size && !has(p, '--shrink')) {
      throw new CliError('Use the --shrink option to perform a shrink operation.');
    }
    if (img instanceof Qcow2Image) {
      const { resizeImage } = await import('./snapshot');
      await resizeImage(img, size);
    } else await img.resize(size);
  } finally {
    await img.close();
  }
  if (!has(p, '-q')) out.stdout('Image resized.\n');
  return 0;
}

// ------------------------------------------------------------------------------- main


const USAGE = `usage: ${NAME} [command] [command options]
Commands: amend, check, commit, compare, convert, create, dd, info, map, measure, rebase, resize, snapshot
`;

/** Run the CLI with `argv` (without node and script); returns the exit code. */
export async function main(argv: string[], out: Out): Promise<number> {
  const [cmd, ...rest] = argv;
  try {
    switch (cmd) {
      case 'create':
        return await cmdCreate(rest, out);
      case 'info':
        return await cmdInfo(rest, out);
      case 'check':
        return await cmdCheck(rest, out);
      case 'convert':
        return await cmdConvert(rest, out);
      case 'map':
        return await cmdMap(rest, out);
      case 'snapshot':
        return await cmdSnapshot(rest, out);
      case 'compare':
        return await cmdCompare(rest, out);
      case 'resize':
        return await cmdResize(rest, out);
      case '--version':
      case '-V':
        out.stdout(`${NAME} version 0.1.0 (qemu-img compatible)\n`);
        return 0;
      case undefined:
      case '-h':
      case '--help':
        out.stdout(USAGE);
        return cmd === undefined ? 1 : 0;
      default: {
        const r = runMore(cmd, rest, out);
        if (r) return await r;
        throw new CliError(`Command not found: ${cmd}`);
      }
    }
  } catch (e) {
    const code = e instanceof CliError ? e.exitCode : 1;
    out.stderr(`${NAME}: ${(e as Error).message}\n`);
    return code;
  }
}

// Run when executed as a program (the bin launcher imports dist/cli.js).
const isMain = typeof process !== 'undefined' && process.argv[1] !== undefined && /ringzero-img(\.js)?$|cli\.(js|ts)$/.test(basename(process.argv[1]));
if (isMain) {
  void main(process.argv.slice(2), {
    stdout: (s) => process.stdout.write(s),
    stderr: (s) => process.stderr.write(s),
  })
    .then((code) => {
      process.exitCode = code;
    })
    .finally(() => closeSharedCompressorPool());
}

void writeFileSync;
