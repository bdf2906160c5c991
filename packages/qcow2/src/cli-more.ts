// ringzero-img commands that work on chains and whole images: commit, rebase, measure, amend
// and dd, with qemu-img's syntax, messages and exit codes.
import { spawnSync } from 'node:child_process';
import { realpath, stat } from 'node:fs/promises';
import type { Out } from './cli-util';
import { CliError, createOptionsFrom, fmtArg, fullBackingName, has, last, onOff, open, parse, parseOptions, parseSize, readBitmaps, toJson } from './cli-util';
import { changeRefcountWidth, checkImage } from './check';
import { validateCreateOptions } from './create';
import { RawDevice } from './device';
import type { BlockDevice, BlockStatus } from './device';
import {
  AUTOCLEAR_DATA_FILE_RAW,
  COMPAT_LAZY_REFCOUNTS,
  EXT_BITMAPS,
  EXT_FEATURE_TABLE,
  featureTable,
  INCOMPAT_COMPRESSION,
  INCOMPAT_DATA_FILE,
  INCOMPAT_DIRTY,
} from './format';
import type { MeasureBitmap } from './measure';
import { measureQcow2 } from './measure';
import { expandSnapshotZeroClusters } from './downgrade';
import type { ImageFormat, OpenedImage } from './node';
import { createQcow2File, NodeFileStore, openImage, probeFormat } from './node';
import { Qcow2Image } from './qcow2';
import { resizeImage } from './snapshot';

const HELP_HINT = "\nTry 'ringzero-img --help' for more information";
const CHUNK = 2 << 20;

function progress(out: Out, on: boolean): (pct: number) => void {
  let lastPct = -1;
  return (pct: number) => {
    if (!on || pct === lastPct) return;
    lastPct = pct;
    out.stdout(`    (${pct.toFixed(2)}/100%)\r`);
  };
}

async function probe(file: string): Promise<ImageFormat> {
  try {
    return await probeFormat(file);
  } catch (e) {
    const code = (e as { code?: string }).code;
    throw new CliError(`Could not open '${file}': ${code === 'ENOENT' ? 'No such file or directory' : (e as Error).message}`);
  }
}

async function realOrSelf(path: string): Promise<string> {
  try {
    return await realpath(path);
  } catch {
    return path;
  }
}

interface Layer {
  path: string;
  format: ImageFormat;
}

/** The file names and formats of a backing chain, top first (loops refused). */
async function chainLayers(file: string, format: ImageFormat | null): Promise<Layer[]> {
  const layers: Layer[] = [];
  const seen = new Set<string>();
  let path = file;
  let fmt = format;
  for (let i = 0; i < 64; i++) {
    const real = await realOrSelf(path);
    if (seen.has(real)) throw new CliError(`Backing file '${path}' creates an infinite loop.`);
    seen.add(real);
    const f = fmt ?? (await probe(path));
    const img = await open(path, f, { readOnly: true, noBacking: true });
    const name = img instanceof Qcow2Image ? img.header.backingFile : null;
    const bfmt = img instanceof Qcow2Image ? img.header.backingFormat : null;
    await img.close();
    layers.push({ path, format: f });
    if (name == null) return layers;
    path = fullBackingName(path, name);
    fmt = bfmt == null ? null : fmtArg(bfmt);
  }
  throw new CliError(`Backing chain of '${file}' is too deep`);
}

/** Read `len` bytes at `pos`, zeros past the end of `dev` (or when there is no device). */
async function readOrZero(dev: BlockDevice | null, pos: number, len: number): Promise<Uint8Array> {
  if (!dev || pos >= dev.size) return new Uint8Array(len);
  if (pos + len <= dev.size) return dev.read(pos, len);
  const out = new Uint8Array(len);
  out.set(await dev.read(pos, dev.size - pos));
  return out;
}

// ------------------------------------------------------------------------------- commit

/** Copy everything the layers above `base` hold into `base` (qemu-img commit). */
export async function commitImage(file: string, o: { format?: ImageFormat | null; base?: string; drop?: boolean; progress?: (pct: number) => void } = {}): Promise<void> {
  const layers = await chainLayers(file, o.format ?? null);
  if (layers.length < 2) throw new CliError('Image does not have a backing file');
  let baseIdx = 1;
  if (o.base !== undefined) {
    const want = await realOrSelf(o.base);
    baseIdx = -1;
    for (let i = 1; i < layers.length; i++) if ((await realOrSelf(layers[i].path)) === want) baseIdx = i;
    if (baseIdx < 0) throw new CliError(`Did not find '${o.base}' in the backing chain of '${file}'`);
  }
  const base = await open(layers[baseIdx].path, layers[baseIdx].format, { readOnly: false });
  const above: OpenedImage[] = [];
  try {
    for (let i = 0; i < baseIdx; i++) above.push(await open(layers[i].path, layers[i].format, { readOnly: true, noBacking: true }));
    for (let i = 0; i < baseIdx; i++) {
      const img = above[i];
      if (img instanceof Qcow2Image) img.backing = i + 1 < baseIdx ? above[i + 1] : base;
    }
    const top = above[0];
    if (base.size < top.size) {
      if (base instanceof Qcow2Image) await resizeImage(base, top.size);
      else await base.resize(top.size);
    }
    for (let pos = 0; pos < top.size; ) {
      const st = await top.blockStatus(pos, Math.min(top.size - pos, 1 << 30));
      const n = st.length;
      if (st.present && st.depth < baseIdx) {
        if (st.zero && !st.data) await base.writeZeroes(pos, n);
        else {
          for (let k = 0; k < n; k += CHUNK) {
            const m = Math.min(CHUNK, n - k);
            await base.write(pos + k, await top.read(pos + k, m));
          }
        }
      }
      pos += n;
      o.progress?.(Math.floor((pos / top.size) * 10000) / 100);
    }
    await base.flush();
  } finally {
    // Closing an overlay closes the layers under it (base included).
    if (above.length) await above[0].close();
    await base.close();
  }
  if (!o.drop) {
    const top = await open(file, layers[0].format, { readOnly: false, noBacking: true });
    try {
      if (top instanceof Qcow2Image) await top.makeEmpty();
    } finally {
      await top.close();
    }
  }
}

async function cmdCommit(argv: string[], out: Out): Promise<number> {
  const p = parse(argv, ['-f', '-t', '-b', '-r', '--object'], ['-q', '-d', '-p', '--image-opts', '-h']);
  const file = p.args[0];
  if (p.args.length !== 1) throw new CliError('Expecting one image file name' + HELP_HINT);
  const quiet = has(p, '-q');
  const show = has(p, '-p') && !quiet;
  const base = last(p, '-b');
  const o: Parameters<typeof commitImage>[1] = { format: fmtArg(last(p, '-f')), drop: has(p, '-d') || base !== undefined, progress: progress(out, show) };
  if (base !== undefined) o.base = base;
  if (show) out.stdout('    (0.00/100%)\r');
  await commitImage(file, o);
  if (show) out.stdout('\n');
  if (!quiet) out.stdout('Image committed.\n');
  return 0;
}

// ------------------------------------------------------------------------------- rebase

function isAllZero(b: Uint8Array): boolean {
  for (let i = 0; i < b.length; i++) if (b[i] !== 0) return false;
  return true;
}

/** Sectors where `a` and `b` differ, as [start, end) byte runs. */
function differingRuns(a: Uint8Array, b: Uint8Array): [number, number][] {
  const runs: [number, number][] = [];
  const n = a.length;
  let start = -1;
  for (let s = 0; s < n; s += 512) {
    const e = Math.min(n, s + 512);
    let diff = false;
    for (let i = s; i < e; i++) {
      if (a[i] !== b[i]) {
        diff = true;
        break;
      }
    }
    if (diff && start < 0) start = s;
    else if (!diff && start >= 0) {
      runs.push([start, s]);
      start = -1;
    }
  }
  if (start >= 0) runs.push([start, n]);
  return runs;
}

export interface RebaseOptions {
  format?: ImageFormat | null;
  backingFormat?: string | null;
  unsafe?: boolean;
  progress?: (pct: number) => void;
}

/**
 * Change the backing file of `file` to `backing` ('' for none). In safe mode every range the
 * overlay does not allocate and whose content differs between the old and the new backing
 * chain is first copied into the overlay, so the guest-visible content stays the same.
 */
export async function rebaseImage(file: string, backing: string, o: RebaseOptions = {}): Promise<void> {
  const top = await open(file, o.format ?? null, { readOnly: false, noBacking: true });
  let newB: OpenedImage | null = null;
  try {
    if (!(top instanceof Qcow2Image)) throw new CliError(`Could not change the backing file to '${backing}': Operation not supported`);
    if (!o.unsafe) {
      const h = top.header;
      if (h.backingFile != null) {
        const oldPath = fullBackingName(file, h.backingFile);
        try {
          top.backing = await openImage(oldPath, { format: h.backingFormat == null ? null : fmtArg(h.backingFormat), readOnly: true });
        } catch (e) {
          throw new CliError(`Could not open old backing file '${oldPath}': ${(e as Error).message}`);
        }
      }
      if (backing !== '') {
        try {
          newB = await openImage(fullBackingName(file, backing), { format: o.backingFormat == null ? null : fmtArg(o.backingFormat), readOnly: true });
        } catch (e) {
          throw new CliError(`Could not open new backing file '${backing}': ${(e as Error).message}`);
        }
      }
      const size = top.size;
      for (let pos = 0; pos < size; ) {
        const st = await top.blockStatus(pos, Math.min(size - pos, CHUNK));
        const n = st.length;
        if (!(st.present && st.depth === 0)) {
          const oldData = await readOrZero(top.backing, pos, n);
          const newData = await readOrZero(newB, pos, n);
          for (const [a, b] of differingRuns(oldData, newData)) {
            const run = oldData.subarray(a, b);
            if (isAllZero(run)) await top.writeZeroes(pos + a, b - a);
            else await top.write(pos + a, run);
          }
        }
        pos += n;
        o.progress?.(Math.floor((pos / size) * 10000) / 100);
      }
      await top.flush();
    }
    if (backing !== '' && o.backingFormat == null) {
      throw new CliError(`Could not change the backing file to '${backing}': backing format must be specified`);
    }
    try {
      await top.setBackingFile(backing === '' ? null : backing, backing === '' ? null : (o.backingFormat ?? null));
    } catch (e) {
      throw new CliError(`Could not change the backing file to '${backing}': ${(e as Error).message}`);
    }
  } finally {
    await top.close();
    if (newB) await newB.close();
  }
}

async function cmdRebase(argv: string[], out: Out): Promise<number> {
  const p = parse(argv, ['-f', '-F', '-b', '-t', '-T', '--object'], ['-q', '-u', '-p', '-c', '-U', '--force-share', '--image-opts', '-h']);
  const unsafe = has(p, '-u');
  const b = last(p, '-b');
  if (!unsafe && b === undefined) throw new CliError('Must specify backing file (-b) or use unsafe mode (-u)' + HELP_HINT);
  if (p.args.length !== 1) throw new CliError('Expecting one image file name' + HELP_HINT);
  const show = has(p, '-p') && !has(p, '-q');
  if (show) out.stdout('    (0.00/100%)\r');
  await rebaseImage(p.args[0], b ?? '', { format: fmtArg(last(p, '-f')), backingFormat: last(p, '-F') ?? null, unsafe, progress: progress(out, show) });
  if (show) out.stdout('    (100.00/100%)\r\n');
  return 0;
}

// ------------------------------------------------------------------------------- measure

interface HoleMap {
  run: (off: number, len: number) => Promise<{ zero: boolean; length: number }>;
  close: () => Promise<void>;
}

// lseek(2) whence values on Linux.
const SEEK_DATA = 3;
const SEEK_HOLE = 4;
const MAX_EXTENTS = 1 << 20;

/**
 * The data extents of a file as lseek(SEEK_DATA/SEEK_HOLE) reports them (what QEMU asks), or
 * null where that cannot be asked. Node has no lseek, so a one-line perl (part of every Debian
 * system) walks the extents and prints them; at most MAX_EXTENTS are taken.
 */
function seekExtents(path: string, fileSize: number): Float64Array | null {
  if (process.platform !== 'linux') return null;
  const script = `open(my $f, '<', $ARGV[0]) or exit 2; my $o = 0; my $n = 0;
while ($n < ${MAX_EXTENTS}) { my $d = sysseek($f, $o, ${SEEK_DATA}); last unless defined $d; my $h = sysseek($f, $d, ${SEEK_HOLE}); last unless defined $h; print $d + 0, " ", $h + 0, "\n"; $n++; $o = $h; last if $h >= ${fileSize}; }
exit($n >= ${MAX_EXTENTS} ? 3 : 0);`;
  const r = spawnSync('perl', ['-e', script, path], { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0 || r.error) return null;
  const lines = r.stdout.split('\n').filter((l) => l !== '');
  const ext = new Float64Array(lines.length * 2);
  let last = 0;
  for (let i = 0; i < lines.length; i++) {
    const [d, h] = lines[i].split(' ').map(Number);
    if (!(d >= last && h > d)) return null;
    ext[i * 2] = d;
    ext[i * 2 + 1] = Math.min(h, fileSize);
    last = h;
  }
  return ext;
}

/** A hole map from data extents (sorted [start, end) pairs); past the end of the file is a hole. */
function extentHoles(ext: Float64Array, fileSize: number): HoleMap {
  const n = ext.length / 2;
  return {
    close: () => Promise.resolve(),
    run: (off: number, len: number) => {
      if (off >= fileSize) return Promise.resolve({ zero: true, length: len });
      // The first extent that ends after `off`.
      let lo = 0;
      let hi = n;
      while (lo < hi) {
        const m = (lo + hi) >> 1;
        if (ext[m * 2 + 1] <= off) lo = m + 1;
        else hi = m;
      }
      if (lo < n && ext[lo * 2] <= off) return Promise.resolve({ zero: false, length: Math.max(1, Math.min(len, ext[lo * 2 + 1] - off)) });
      const next = lo < n ? ext[lo * 2] : Infinity;
      return Promise.resolve({ zero: true, length: Math.max(1, Math.min(len, next - off)) });
    },
  };
}

/**
 * QEMU asks the host file, under a data extent, whether it is a hole (SEEK_DATA). We ask the
 * same through seekExtents where we can. Elsewhere the file is read once: when the bytes it
 * occupies on disk (st_blocks) are those of its non-zero blocks (give or take the file
 * system's extent blocks), every all-zero block of the file system's block size is a hole, and
 * so is anything past the end of the file. Otherwise (a file that is not sparse, or that also
 * holds written zeros) nothing is taken for a hole, which can only make `required` larger than
 * QEMU's, never smaller. Null: no holes.
 */
async function hostHoles(path: string): Promise<HoleMap | null> {
  const st = await stat(path);
  const fileSize = st.size;
  const allocated = st.blocks * 512;
  const ext = seekExtents(path, fileSize);
  if (ext) return extentHoles(ext, fileSize);
  if (allocated >= fileSize) return null;
  const bs = Math.max(512, Math.min(st.blksize || 4096, 1 << 20));
  const store = await NodeFileStore.open(path, { readOnly: true });
  const buf = new Uint8Array(1 << 20);
  const blockZero = (b: Uint8Array, a: number, e: number): boolean => {
    for (let i = a; i < e; i++) if (b[i] !== 0) return false;
    return true;
  };
  let dataBytes = 0;
  let runs = 0;
  let prevData = false;
  for (let off = 0; off < fileSize; off += buf.length) {
    const n = Math.min(buf.length, fileSize - off);
    await store.preadInto(off, buf, 0, n);
    for (let i = 0; i < n; i += bs) {
      const d = !blockZero(buf, i, Math.min(i + bs, n));
      if (d) dataBytes += bs;
      if (d && !prevData) runs++;
      prevData = d;
    }
  }
  if (allocated - dataBytes > bs * (2 + Math.ceil(runs / 256))) {
    await store.close();
    return null;
  }
  return {
    close: () => store.close(),
    run: async (off: number, len: number) => {
      if (off >= fileSize) return { zero: true, length: len };
      const limit = Math.min(len, fileSize - off);
      // Scan whole blocks from the one holding `off`, at most 1 MiB per call.
      const start = off - (off % bs);
      const n = Math.min(buf.length, Math.ceil((off + limit) / bs) * bs - start);
      await store.preadInto(start, buf, 0, n);
      const kind = blockZero(buf, 0, Math.min(bs, n));
      let e = Math.min(bs, n);
      while (e < n && blockZero(buf, e, Math.min(e + bs, n)) === kind) e += bs;
      return { zero: kind, length: Math.max(1, Math.min(limit, start + e - off)) };
    },
  };
}

async function cmdMeasure(argv: string[], out: Out): Promise<number> {
  const p = parse(argv, ['-f', '-O', '-o', '-l', '--size', '--output', '--object', '-T'], ['-U', '--force-share', '--image-opts', '-h']);
  const output = last(p, '--output') ?? 'human';
  if (output !== 'human' && output !== 'json') throw new CliError('--output must be used with human or json as argument.');
  const sizeArg = last(p, '--size');
  const file = p.args[0];
  if (p.args.length > 1) throw new CliError('Expecting one image file name' + HELP_HINT);
  if (sizeArg !== undefined && file !== undefined) throw new CliError('--size N cannot be used together with a filename.');
  if (sizeArg === undefined && file === undefined) throw new CliError('Either --size N or one filename must be specified.');
  if (has(p, '-l')) throw new CliError('Snapshots are not supported by measure here');
  const outFmt = last(p, '-O') ?? 'raw';
  if (outFmt !== 'qcow2' && outFmt !== 'raw') {
    const known = ['vmdk', 'vdi', 'vpc', 'vhdx', 'qed', 'qcow', 'parallels', 'luks', 'bochs', 'cloop', 'dmg'];
    throw new CliError(known.includes(outFmt) ? `Block driver '${outFmt}' does not support size measurement` : `Unknown file format '${outFmt}'`);
  }
  const o = parseOptions(p.opts.get('-o') ?? []);
  let size = 0;
  if (sizeArg !== undefined) {
    if (sizeArg.trim().startsWith('-')) throw new CliError('Invalid image size specified. You may use k, M, G, T, P or E suffixes for\nringzero-img: kilobytes, megabytes, gigabytes, terabytes, petabytes and exabytes.');
    size = parseSize(sizeArg);
  }
  // The host's extents are asked before the image is opened: reading a file can change what
  // SEEK_DATA reports (ext4 reports an unwritten extent as data once its pages are cached), and
  // QEMU asks before reading any guest data.
  let early: HoleMap | null = null;
  if (file !== undefined && outFmt === 'qcow2') {
    try {
      const st = await stat(file);
      const ext = st.isFile() ? seekExtents(file, st.size) : null;
      if (ext) early = extentHoles(ext, st.size);
    } catch {
      // open() below reports a missing or unreadable file the way qemu-img does.
    }
  }
  const src = file !== undefined ? await open(file, fmtArg(last(p, '-f')), { readOnly: true }) : null;
  let required: number;
  let fully: number;
  let bitmaps: number | null = null;
  let holes: Awaited<ReturnType<typeof hostHoles>> = null;
  try {
    if (src) size = src.size;
    if (outFmt === 'raw') {
      for (const k of o.keys()) if (k !== 'size' && k !== 'preallocation') throw new CliError(`Invalid parameter '${k}'\nringzero-img: Invalid options for file format 'raw'`);
      required = fully = Math.ceil(size / 512) * 512;
    } else {
      let c;
      try {
        c = createOptionsFrom(o, 0);
      } catch (e) {
        throw new CliError(`${(e as Error).message}\nringzero-img: Invalid options for file format 'qcow2'`);
      }
      try {
        validateCreateOptions(c);
      } catch (e) {
        throw new CliError((e as Error).message);
      }
      const version = c.compat === '0.10' || c.compat === 'v2' ? 2 : 3;
      let list: MeasureBitmap[] | null = null;
      if (src instanceof Qcow2Image && src.header.version >= 3) {
        list = ((await readBitmaps(src)) ?? []).map((b) => ({ name: b.name, granularity: b.granularity, diskSize: src.size }));
      }
      // Data the image stores in its own file (raw, or qcow2 without an external data file)
      // may still lie over holes of that file, which QEMU does not count.
      if (src && file !== undefined && (src instanceof RawDevice || (src instanceof Qcow2Image && src.dataStore === src.store))) holes = early ?? (await hostHoles(file));
      const status = async (off: number, len: number): Promise<BlockStatus> => {
        const e = await src!.blockStatus(off, len);
        if (!holes || e.depth !== 0 || !e.data || e.zero || e.compressed || e.offset == null) return e;
        const h = await holes.run(e.offset, e.length);
        return { ...e, length: h.length, zero: h.zero };
      };
      const r = await measureQcow2(
        size,
        { clusterSize: c.clusterSize ?? 65536, refcountBits: c.refcountBits ?? 16, extendedL2: c.extendedL2 ?? false, version },
        src ? status : null,
        { backing: c.backingFile !== undefined, preallocation: c.preallocation ?? 'off', bitmaps: list },
      );
      required = r.required;
      fully = r.fullyAllocated;
      bitmaps = r.bitmaps;
    }
  } catch (e) {
    if (e instanceof CliError) throw e;
    throw new CliError((e as Error).message);
  } finally {
    if (holes) await holes.close();
    if (src) await src.close();
  }
  if (output === 'json') {
    const j: Record<string, number> = {};
    if (bitmaps != null) j.bitmaps = bitmaps;
    j.required = required;
    j['fully-allocated'] = fully;
    out.stdout(toJson(j) + '\n');
  } else {
    out.stdout(`required size: ${required}\nfully allocated size: ${fully}\n`);
    if (bitmaps != null) out.stdout(`bitmaps size: ${bitmaps}\n`);
  }
  return 0;
}

// ------------------------------------------------------------------------------- amend

const CREATION_ONLY = ['cluster_size', 'compression_type', 'extended_l2', 'preallocation', 'nocow'];
const AMENDABLE = ['compat', 'lazy_refcounts', 'refcount_bits', 'size', 'backing_file', 'backing_fmt', 'data_file', 'data_file_raw'];

/** Change options of an existing qcow2 image in the order QEMU applies them. */
async function amendImage(file: string, o: Map<string, string>): Promise<void> {
  let img = (await open(file, 'qcow2', { readOnly: false, noBacking: true })) as Qcow2Image;
  const reopen = async (): Promise<void> => {
    await img.close();
    img = (await open(file, 'qcow2', { readOnly: false, noBacking: true })) as Qcow2Image;
  };
  try {
    const h = (): typeof img.header => img.header;
    const oldVersion = h().version;
    let newVersion = oldVersion;
    const compat = o.get('compat');
    if (compat !== undefined) {
      if (compat === '0.10' || compat === 'v2') newVersion = 2;
      else if (compat === '1.1' || compat === 'v3') newVersion = 3;
      else throw new CliError(`Unknown compatibility level ${compat}`);
    }
    const curLazy = (h().compatLo & COMPAT_LAZY_REFCOUNTS) !== 0;
    const lazy = onOff(o.get('lazy_refcounts'), 'lazy_refcounts') ?? curLazy;
    let rb = img.refcountBits;
    if (o.has('refcount_bits')) {
      rb = Number(o.get('refcount_bits'));
      if (!Number.isInteger(rb) || rb < 1 || rb > 64 || (rb & (rb - 1)) !== 0) throw new CliError('Refcount width must be a power of two and may not exceed 64 bits');
    }
    const hasDataFile = (h().incompatLo & INCOMPAT_DATA_FILE) !== 0;
    const curRaw = (h().autoclearLo & AUTOCLEAR_DATA_FILE_RAW) !== 0;
    const dataFileRaw = onOff(o.get('data_file_raw'), 'data_file_raw') ?? curRaw;
    if (dataFileRaw && !curRaw) throw new CliError('data-file-raw cannot be set on existing images');
    const dataFile = o.get('data_file');
    if (dataFile !== undefined && !hasDataFile) throw new CliError('data-file can only be set for images that use an external data file');
    const size = o.has('size') ? parseSize(o.get('size')!) : null;
    // Upgrade first: some features need version 3.
    if (newVersion > oldVersion) {
      const hd = h();
      hd.version = 3;
      hd.headerLength = 112;
      if (!hd.extensions.some((e) => e.type === EXT_FEATURE_TABLE)) hd.extensions.unshift({ type: EXT_FEATURE_TABLE, data: featureTable() });
      await img.exclusive(() => img.rewriteHeaderLocked());
    }
    const bf = o.get('backing_file');
    const bfmt = o.get('backing_fmt');
    if ((bf !== undefined && bf !== (h().backingFile ?? '')) || (bfmt !== undefined && bfmt !== (h().backingFormat ?? ''))) {
      throw new CliError("Cannot amend the backing file\nYou can use 'ringzero-img rebase' instead.");
    }
    if (lazy !== curLazy) {
      if (lazy && newVersion < 3) throw new CliError('Lazy refcounts only supported with compatibility level 1.1 and above (use compat=1.1 or greater)');
      if (lazy) h().compatLo |= COMPAT_LAZY_REFCOUNTS;
      else h().compatLo &= ~COMPAT_LAZY_REFCOUNTS;
      await img.exclusive(async () => {
        await img.flushLocked();
        await img.writeFeatureWords();
        await img.store.flush();
      });
    }
    if (rb !== img.refcountBits) {
      if (newVersion < 3 && rb !== 16) throw new CliError('Refcount widths other than 16 bits require compatibility level 1.1 or above (use compat=1.1 or greater)');
      try {
        await changeRefcountWidth(img, rb);
      } catch (e) {
        throw new CliError((e as Error).message);
      }
      await reopen();
    }
    if (dataFileRaw !== curRaw || (dataFile !== undefined && dataFile !== '')) {
      if (!dataFileRaw) h().autoclearLo &= ~AUTOCLEAR_DATA_FILE_RAW;
      if (dataFile !== undefined && dataFile !== '') h().dataFile = dataFile;
      await img.exclusive(() => img.rewriteHeaderLocked());
    }
    if (size != null && size !== img.size) {
      try {
        await resizeImage(img, size);
      } catch (e) {
        throw new CliError((e as Error).message);
      }
    }
    if (newVersion < oldVersion) await downgrade(img);
  } finally {
    await img.close();
  }
}

async function downgrade(img: Qcow2Image): Promise<void> {
  const h = img.header;
  if (img.refcountBits !== 16) throw new CliError('compat=0.10 requires refcount_bits=16');
  if (h.incompatLo & INCOMPAT_DATA_FILE) throw new CliError('Cannot downgrade an image with a data file');
  const other = (h.incompatLo & ~(INCOMPAT_COMPRESSION | INCOMPAT_DIRTY)) >>> 0;
  if (other || h.incompatHi) throw new CliError(`Cannot downgrade an image with incompatible features 0x${other.toString(16)} set`);
  if (h.compressionType !== 0 && (await img.hasCompressedClusters())) {
    throw new CliError('Cannot downgrade an image with zstd compression type and existing compressed clusters');
  }
  await img.expandZeroClusters();
  if (img.snapshots.length) await expandSnapshotZeroClusters(img);
  const hadBitmaps = h.extensions.some((e) => e.type === EXT_BITMAPS);
  h.compressionType = 0;
  h.incompatLo = 0;
  h.compatLo = h.compatHi = 0;
  h.autoclearLo = h.autoclearHi = 0;
  h.extensions = h.extensions.filter((e) => e.type !== EXT_FEATURE_TABLE && e.type !== EXT_BITMAPS);
  h.extraHeader = new Uint8Array(0);
  h.version = 2;
  h.headerLength = 72;
  await img.exclusive(() => img.rewriteHeaderLocked());
  // Bitmaps cannot live in a version 2 image: their clusters are released as leaks.
  if (hadBitmaps) await checkImage(img, 'leaks');
}

async function cmdAmend(argv: string[], out: Out): Promise<number> {
  const p = parse(argv, ['-f', '-o', '-t', '--object'], ['-p', '-q', '--force', '--image-opts', '-h']);
  const list = p.opts.get('-o');
  if (!list) throw new CliError('Must specify options (-o)' + HELP_HINT);
  if (p.args.length !== 1) throw new CliError('Expecting one image file name' + HELP_HINT);
  const file = p.args[0];
  const fmt = fmtArg(last(p, '-f')) ?? (await probe(file));
  if (fmt === 'raw') throw new CliError("Format driver 'raw' does not support option amendment");
  const o = parseOptions(list);
  for (const k of o.keys()) {
    if (CREATION_ONLY.includes(k)) throw new CliError(`Invalid parameter '${k}'\nThis option is only supported for image creation`);
    if (!AMENDABLE.includes(k)) throw new CliError(k.startsWith('encrypt') ? 'Encryption is not supported' : `Invalid parameter '${k}'`);
  }
  const show = has(p, '-p') && !has(p, '-q');
  if (show) out.stdout('    (0.00/100%)\r');
  await amendImage(file, o);
  if (show) out.stdout('    (100.00/100%)\r\n');
  return 0;
}

// ------------------------------------------------------------------------------- dd

function ddNumber(v: string, what: string): number {
  try {
    if (v.trim().startsWith('-')) throw new Error('negative');
    return parseSize(v);
  } catch {
    throw new CliError(`Invalid ${what} specified. You may use k, M, G, T, P or E suffixes for\nringzero-img: kilobytes, megabytes, gigabytes, terabytes, petabytes and exabytes.`);
  }
}

async function cmdDd(argv: string[], out: Out): Promise<number> {
  const p = parse(argv, ['-f', '-O', '--object'], ['-U', '--force-share', '--image-opts', '-h']);
  let bs = 512;
  let count: number | null = null;
  let skip = 0;
  let inFile: string | undefined;
  let outFile: string | undefined;
  for (const a of p.args) {
    const eq = a.indexOf('=');
    const k = eq < 0 ? a : a.slice(0, eq);
    const v = a.slice(eq + 1);
    if (eq < 0) throw new CliError(`unrecognized operand ${a}`);
    if (k === 'bs') {
      let n: number;
      try {
        n = parseSize(v);
      } catch {
        n = 0;
      }
      if (v.trim().startsWith('-') || n < 1 || n > 2147483647) throw new CliError('Invalid bs specified. Must be between 1 and 2147483647.');
      bs = n;
    } else if (k === 'count') count = ddNumber(v, 'count');
    else if (k === 'skip') skip = ddNumber(v, 'skip');
    else if (k === 'if') inFile = v;
    else if (k === 'of') outFile = v;
    else throw new CliError(`unrecognized operand ${k}`);
  }
  if (!inFile || !outFile) throw new CliError('Must specify both input and output files');
  const outFmt = fmtArg(last(p, '-O') ?? 'raw')!;
  const src = await open(inFile, fmtArg(last(p, '-f')), { readOnly: true });
  try {
    let size = src.size;
    if (count != null && count * bs < size) size = count * bs;
    const start = skip * bs;
    const outSize = start > size ? 0 : size - start;
    let dst: BlockDevice;
    if (outFmt === 'raw') {
      const s = await NodeFileStore.open(outFile, { create: true });
      await s.truncate(outSize);
      dst = await RawDevice.open(s);
    } else {
      await createQcow2File(outFile, { size: Math.ceil(outSize / 512) * 512 });
      dst = await open(outFile, 'qcow2', { readOnly: false, noBacking: true });
    }
    try {
      if (start > size) {
        // qemu-img 7.2 reports this but still exits 0 (the empty output stays).
        out.stderr(`ringzero-img: ${inFile}: cannot skip to specified offset\n`);
        return 0;
      }
      // A sequential copy: block boundaries do not change the result, so move up to 4 MiB at a time.
      const step = Math.max(1, Math.floor((4 << 20) / bs)) * bs;
      for (let pos = start; pos < size; ) {
        const n = Math.min(step, size - pos, 4 << 20);
        await dst.write(pos - start, await src.read(pos, n));
        pos += n;
      }
      await dst.flush();
    } finally {
      await dst.close();
    }
  } finally {
    await src.close();
  }
  return 0;
}

/** Run one of the commands this module implements, or return null when it is not one of them. */
export function runMore(cmd: string, argv: string[], out: Out): Promise<number> | null {
  switch (cmd) {
    case 'commit':
      return cmdCommit(argv, out);
    case 'rebase':
      return cmdRebase(argv, out);
    case 'measure':
      return cmdMeasure(argv, out);
    case 'amend':
      return cmdAmend(argv, out);
    case 'dd':
      return cmdDd(argv, out);
    default:
      return null;
  }
}
