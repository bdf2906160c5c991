// Header extensions, feature bits, external data files and bitmaps, with qemu-img/qemu-io as
// the oracle: images are made by QEMU, bits and extensions are crafted into them byte by byte,
// our library works on them, and QEMU judges the result (check, info, compare, its own header
// rewrites).
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { main } from './cli';
import { readBitmap } from './bitmaps';
import { openImage } from './node';
import type { Qcow2Image } from './qcow2';
import { haveQemu, pattern, qemuIo, run, runStatus, tempDir } from './test-util';

const Q = haveQemu('header extensions, feature bits, data files and bitmaps against qemu-img');
const t = tempDir();
afterAll(() => t.cleanup());
let n = 0;
const path = (name: string): string => join(t.dir, `${n++}-${name}`);

async function rz(...argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await main(argv, { stdout: (s) => (stdout += s), stderr: (s) => (stderr += s) });
  return { code, stdout, stderr };
}

const UNKNOWN_EXT = 0x7a7a0001;
const EXT_DATA = new TextEncoder().encode('an extension nobody knows, 33 b.');

/** Header extensions of a file as [type, data] in file order (read by hand, not by our parser). */
function extensions(file: string): [number, Buffer][] {
  const b = readFileSync(file);
  const version = b.readUInt32BE(4);
  let p = version === 2 ? 72 : b.readUInt32BE(100);
  const out: [number, Buffer][] = [];
  for (;;) {
    const type = b.readUInt32BE(p);
    const len = b.readUInt32BE(p + 4);
    if (type === 0) return out;
    out.push([type, b.subarray(p + 8, p + 8 + len)]);
    p += 8 + ((len + 7) & ~7);
  }
}

/** Insert an extension just before the end marker (the image must have no backing file). */
function addExtension(file: string, type: number, data: Uint8Array): void {
  const b = readFileSync(file);
  expect(b.readBigUInt64BE(8)).toBe(0n);
  const version = b.readUInt32BE(4);
  let p = version === 2 ? 72 : b.readUInt32BE(100);
  while (b.readUInt32BE(p) !== 0) p += 8 + ((b.readUInt32BE(p + 4) + 7) & ~7);
  b.writeUInt32BE(type, p);
  b.writeUInt32BE(data.length, p + 4);
  Buffer.from(data).copy(b, p + 8);
  b.fill(0, p + 8 + data.length, p + 8 + ((data.length + 7) & ~7) + 8);
  writeFileSync(file, b);
}

function word(file: string, off: number): bigint {
  return readFileSync(file).readBigUInt64BE(off);
}

function setWord(file: string, off: number, v: bigint): void {
  const b = readFileSync(file);
  b.writeBigUInt64BE(v, off);
  writeFileSync(file, b);
}

function qemuClean(file: string): void {
  const c = runStatus('qemu-img', ['check', file]);
  expect(c.stdout + c.stderr).toContain('No errors were found on the image.');
  expect(c.status).toBe(0);
}

async function expectSameAsQemu(file: string): Promise<void> {
  const raw = path('ref.raw');
  run('qemu-img', ['convert', '-O', 'raw', file, raw]);
  const ref = readFileSync(raw);
  const img = await openImage(file, { readOnly: true });
  try {
    expect(img.size).toBe(ref.length);
    expect(Buffer.compare(Buffer.from(await img.read(0, img.size)), ref)).toBe(0);
  } finally {
    await img.close();
  }
}

describe.skipIf(!Q)('unknown header extensions survive our header rewrites', () => {
  for (const compat of ['0.10', '1.1']) {
    it(`compat=${compat}: rebase -u, amend and QEMU's own rewrite keep the extension`, async () => {
      const f = path('ext.qcow2');
      run('qemu-img', ['create', '-q', '-f', 'qcow2', '-o', `compat=${compat}`, f, '4M']);
      qemuIo(f, ['write -P 3 0 128k']);
      addExtension(f, UNKNOWN_EXT, EXT_DATA);
      qemuClean(f);
      // Our rewrite #1: a backing file name is added (header + extensions + name).
      const base = path('base.raw');
      writeFileSync(base, new Uint8Array(4 << 20));
      expect((await rz('rebase', '-u', '-b', base, '-F', 'raw', f)).code).toBe(0);
      let ext = extensions(f);
      expect(ext.find(([ty]) => ty === UNKNOWN_EXT)?.[1]).toEqual(Buffer.from(EXT_DATA));
      expect(JSON.parse(run('qemu-img', ['info', '--output=json', f]))).toMatchObject({ 'backing-filename': base, 'backing-filename-format': 'raw' });
      qemuClean(f);
      // Our rewrite #2: amend (v2 upgrades to v3; v3 gets lazy refcounts).
      expect((await rz('amend', '-o', compat === '0.10' ? 'compat=1.1' : 'lazy_refcounts=on', f)).code).toBe(0);
      ext = extensions(f);
      expect(ext.find(([ty]) => ty === UNKNOWN_EXT)?.[1]).toEqual(Buffer.from(EXT_DATA));
      qemuClean(f);
      // QEMU parses what we wrote and keeps the extension through its own rewrite.
      run('qemu-img', ['amend', '-o', 'lazy_refcounts=off', f]);
      expect(extensions(f).find(([ty]) => ty === UNKNOWN_EXT)?.[1]).toEqual(Buffer.from(EXT_DATA));
      // And it still reads the data we never touched.
      expect(runStatus('qemu-io', ['-c', 'read -P 3 0 128k', f]).stdout).not.toContain('verification failed');
      // A downgrade back to v2 (ours) keeps it too.
      expect((await rz('amend', '-o', 'compat=0.10', f)).code).toBe(0);
      expect(extensions(f).find(([ty]) => ty === UNKNOWN_EXT)?.[1]).toEqual(Buffer.from(EXT_DATA));
      qemuClean(f);
    });
  }
});

describe.skipIf(!Q)('feature bits as QEMU treats them', () => {
  it('an unknown compatible bit is kept across our writes and QEMU accepts the image', async () => {
    const f = path('compat.qcow2');
    run('qemu-img', ['create', '-q', '-f', 'qcow2', f, '4M']);
    setWord(f, 80, word(f, 80) | (1n << 40n) | (1n << 5n));
    const img = await openImage(f);
    await img.write(65536, pattern(70_000, 4));
    await img.close();
    expect(word(f, 80) & ((1n << 40n) | (1n << 5n))).toBe((1n << 40n) | (1n << 5n));
    qemuClean(f);
    await expectSameAsQemu(f);
  });

  it('unknown autoclear bits are cleared on a read-write open, kept on a read-only one; the bitmaps bit stays', async () => {
    const f = path('autoclear.qcow2');
    run('qemu-img', ['create', '-q', '-f', 'qcow2', f, '4M']);
    run('qemu-img', ['bitmap', '--add', f, 'keep']);
    expect(word(f, 88)).toBe(1n);
    setWord(f, 88, 1n | (1n << 7n) | (1n << 50n));
    const ro = await openImage(f, { readOnly: true });
    await ro.close();
    expect(word(f, 88)).toBe(1n | (1n << 7n) | (1n << 50n));
    const rw = await openImage(f);
    await rw.close();
    expect(word(f, 88)).toBe(1n);
    qemuClean(f);
    // QEMU agrees that the bitmap (guarded by autoclear bit 0) is still valid.
    const info = JSON.parse(run('qemu-img', ['info', '--output=json', f])) as { 'format-specific': { data: { bitmaps: { name: string; flags: string[] }[] } } };
    expect(info['format-specific'].data.bitmaps).toEqual([{ name: 'keep', granularity: 65536, flags: ['auto'] }]);
    // The same crafted bits: QEMU clears the unknown ones too.
    setWord(f, 88, 1n | (1n << 7n));
    qemuIo(f, ['read 0 4k']);
    expect(word(f, 88)).toBe(1n);
  });

  it('an unknown incompatible bit refuses the open with the same message as qemu-img', async () => {
    const f = path('incompat.qcow2');
    run('qemu-img', ['create', '-q', '-f', 'qcow2', f, '4M']);
    setWord(f, 72, word(f, 72) | (1n << 9n));
    const q = runStatus('qemu-img', ['info', f]);
    const r = await rz('info', f);
    expect(r.code).toBe(q.status);
    expect(q.stderr).toContain('Unknown incompatible feature: 200');
    expect(r.stderr).toContain('Unsupported qcow2 feature(s): Unknown incompatible feature: 200');
  });
});

describe.skipIf(!Q)('external data files', () => {
  for (const rawOpt of ['off', 'on']) {
    it(`qemu-img's image with data_file_raw=${rawOpt} reads back like qemu-img convert`, async () => {
      const f = path('df.qcow2');
      const d = path('df.data');
      run('qemu-img', ['create', '-q', '-f', 'qcow2', '-o', `data_file=${d},data_file_raw=${rawOpt}`, f, '4M']);
      qemuIo(f, ['write -P 0x11 0 7k', 'write -P 0x22 60k 100k', 'write -z 1M 64k', 'write -P 0x44 3M 512', 'discard 64k 64k']);
      await expectSameAsQemu(f);
    });

    it(`our create with data_file_raw=${rawOpt}: same info as qemu-img, QEMU reads our writes`, async () => {
      const ours = path('o.qcow2');
      const od = path('o.data');
      const theirs = path('q.qcow2');
      const qd = path('q.data');
      const o = await rz('create', '-f', 'qcow2', '-o', `data_file=${od},data_file_raw=${rawOpt}`, ours, '4M');
      const q = run('qemu-img', ['create', '-f', 'qcow2', '-o', `data_file=${qd},data_file_raw=${rawOpt}`, theirs, '4M']);
      expect(o.code).toBe(0);
      expect(o.stdout.split(ours).join('X').split(od).join('D')).toBe(q.split(theirs).join('X').split(qd).join('D'));
      const norm = (file: string, data: string): unknown => {
        const j = JSON.parse(run('qemu-img', ['info', '--output=json', file]).split(file).join('X').split(data).join('D')) as Record<string, unknown>;
        delete j['actual-size'];
        return j;
      };
      expect(norm(ours, od)).toEqual(norm(theirs, qd));
      const img = await openImage(ours);
      const a = pattern(200_000, 7);
      await img.write(4096, a);
      await img.write(2 << 20, a.subarray(0, 65536));
      await img.writeZeroes(2 << 20, 4096);
      await img.close();
      qemuClean(ours);
      const expected = new Uint8Array(4 << 20);
      expected.set(a, 4096);
      expected.set(a.subarray(4096, 65536), (2 << 20) + 4096);
      const ref = path('exp.raw');
      writeFileSync(ref, expected);
      expect(run('qemu-img', ['compare', '-f', 'raw', '-F', 'qcow2', ref, ours])).toContain('identical');
      if (rawOpt === 'on') {
        // A raw data file is the disk itself: guest offset N is byte N of the file.
        expect(Buffer.compare(readFileSync(od).subarray(0, 4 << 20), Buffer.from(expected))).toBe(0);
      }
      await expectSameAsQemu(ours);
    });
  }
});

describe.skipIf(!Q)('bitmaps', () => {
  type Info = { 'format-specific': { data: { bitmaps: unknown[] } } };
  const bitmapsOf = (f: string): unknown[] => (JSON.parse(run('qemu-img', ['info', '--output=json', f])) as Info)['format-specific'].data.bitmaps;
  /** Twin images with an enabled 64k bitmap, a disabled 4k one and an enabled 512-byte one. */
  const twin = (): [string, string] => {
    const q = path('bmq.qcow2');
    run('qemu-img', ['create', '-q', '-f', 'qcow2', q, '8M']);
    qemuIo(q, ['write -P 1 0 1M']);
    run('qemu-img', ['bitmap', '--add', q, 'tracking']);
    run('qemu-img', ['bitmap', '--add', '-g', '4k', '--disable', q, 'frozen']);
    run('qemu-img', ['bitmap', '--add', '-g', '512', q, 'fine']);
    qemuIo(q, ['write -P 2 2M 256k']);
    const r = path('bmr.qcow2');
    writeFileSync(r, readFileSync(q));
    return [q, r];
  };
  // The same guest changes on both sides: writes (one unaligned), a discard, zeroes.
  const qemuOps = ['write -P 3 5242880 300000', 'write -P 4 12345 100', 'discard 0 128k', 'write -z 1M 64k'];
  const ourOps = async (img: Awaited<ReturnType<typeof openImage>>): Promise<void> => {
    await img.write(5 << 20, pattern(300_000, 2));
    await img.write(12_345, pattern(100, 4));
    await img.discard(0, 128 << 10);
    await img.writeZeroes(1 << 20, 64 << 10);
  };

  it('enabled bitmaps record our writes, discards and zeroes bit for bit as QEMU records them', async () => {
    const [q, r] = twin();
    qemuIo(q, qemuOps);
    const img = await openImage(r);
    await ourOps(img);
    await img.close();
    qemuClean(r);
    expect(bitmapsOf(r)).toEqual(bitmapsOf(q));
    expect(bitmapsOf(r)).toEqual([
      { name: 'tracking', granularity: 65536, flags: ['auto'] },
      { name: 'frozen', granularity: 4096, flags: [] },
      { name: 'fine', granularity: 512, flags: ['auto'] },
    ]);
    const qi = (await openImage(q, { readOnly: true })) as Qcow2Image;
    const ri = (await openImage(r, { readOnly: true })) as Qcow2Image;
    for (const name of ['tracking', 'frozen', 'fine']) {
      const a = await readBitmap(qi, name);
      const b = await readBitmap(ri, name);
      expect(a).not.toBeNull();
      expect(b && Buffer.from(b).toString('hex')).toBe(Buffer.from(a!).toString('hex'));
    }
    // Something was recorded (a test of equal empty bitmaps would prove nothing).
    expect((await readBitmap(ri, 'fine'))!.some((x) => x !== 0)).toBe(true);
    await qi.close();
    await ri.close();
    // QEMU carries on from our bitmaps: more writes, then its own check and our read agree.
    qemuIo(r, ['write -P 5 7M 4k']);
    qemuClean(r);
    expect(bitmapsOf(r)).toEqual(bitmapsOf(q));
    await expectSameAsQemu(r);
  });

  it('corrupted bitmap directories and tables never crash a writer or its close', async () => {
    const [q] = twin();
    const orig = readFileSync(q);
    // Where the directory and the first table are (from the extension).
    const ext = extensions(q).find(([ty]) => ty === 0x23852875)![1];
    const dirOff = Number(ext.readBigUInt64BE(16));
    const dirSize = Number(ext.readBigUInt64BE(8));
    const tableOff = Number(orig.readBigUInt64BE(dirOff));
    let x = 12345;
    const rnd = (n: number): number => {
      x = (x * 1103515245 + 12345) >>> 0;
      return (x >>> 8) % n;
    };
    const f = path('bmfuzz.qcow2');
    for (let iter = 0; iter < 60; iter++) {
      const b = Buffer.from(orig);
      for (let k = 0; k < 1 + rnd(4); k++) {
        const at = rnd(3) === 0 ? tableOff + rnd(64) : dirOff + rnd(dirSize);
        b[at] = rnd(256);
      }
      writeFileSync(f, b);
      try {
        const before = await openImage(f, { readOnly: true });
        const model = await before.read(0, before.size);
        await before.close();
        const img = await openImage(f);
        const at = rnd(8 << 20) & ~511;
        const d = pattern(Math.min(4096, model.length - at), iter);
        await img.write(at, d);
        model.set(d, at);
        await img.discard(0, 65536);
        model.fill(0, 0, 65536);
        await img.close();
        const ro = (await openImage(f, { readOnly: true })) as Qcow2Image;
        await readBitmap(ro, 'tracking');
        // Whatever the bitmaps held, the guest data is exactly what was written.
        expect(Buffer.compare(Buffer.from(await ro.read(0, ro.size)), Buffer.from(model))).toBe(0);
        await ro.close();
      } catch (e) {
        // Only clear errors are allowed (e.g. a table pointing into metadata).
        expect((e as Error).name).toBe('ImageError');
      }
    }
  });

  it('a writer that stops without closing leaves every bitmap in-use, as a crashed QEMU does', async () => {
    const [q, r] = twin();
    runStatus('qemu-io', ['-c', qemuOps[0], '-c', 'abort', q]);
    const img = await openImage(r);
    await ourOps(img);
    await img.flush();
    // The file as a crash right now would leave it.
    const crashed = path('bmcrash.qcow2');
    writeFileSync(crashed, readFileSync(r));
    await img.close();
    expect(bitmapsOf(crashed)).toEqual(bitmapsOf(q));
    expect(bitmapsOf(crashed)).toEqual([
      { name: 'tracking', granularity: 65536, flags: ['in-use', 'auto'] },
      { name: 'frozen', granularity: 4096, flags: ['in-use'] },
      { name: 'fine', granularity: 512, flags: ['in-use', 'auto'] },
    ]);
    // In-use bitmaps stay in-use (inconsistent) through a later clean session, on both sides.
    qemuIo(q, ['write -P 6 0 4k']);
    const again = await openImage(crashed);
    await again.write(0, pattern(4096, 6));
    await again.close();
    expect(bitmapsOf(crashed)).toEqual(bitmapsOf(q));
    qemuClean(crashed);
  });
});
