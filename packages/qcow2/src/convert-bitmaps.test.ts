// convert --bitmaps against qemu-img 7.2: the same bitmaps (names, granularity, enabled flag,
// bits) in the target, qemu-img check clean, qemu-img reading our bitmaps back (bitmap
// --merge), and the same messages and exit codes for inconsistent bitmaps and unsupported
// formats.
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadBitmapDirectory, readBitmap } from './bitmaps';
import { main } from './cli';
import { openImage } from './node';
import type { Qcow2Image } from './qcow2';
import { haveQemu, qemuIo, run, runStatus, tempDir } from './test-util';

const Q = haveQemu('convert --bitmaps comparisons with qemu-img');
const t = tempDir();
afterAll(() => t.cleanup());
const p = (n: string): string => join(t.dir, n);

async function rz(argv: string[]): Promise<{ status: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const status = await main(argv, { stdout: (s) => (stdout += s), stderr: (s) => (stderr += s) });
  return { status, stdout, stderr };
}

async function bitmaps(file: string): Promise<{ name: string; flags: number; gran: number; bits: string }[]> {
  const img = (await openImage(file, { readOnly: true })) as Qcow2Image;
  try {
    const dir = await loadBitmapDirectory(img);
    const out = [];
    for (const e of dir?.entries ?? []) {
      const bits = await readBitmap(img, e.name);
      out.push({ name: e.name, flags: e.flags, gran: e.granularityBits, bits: Buffer.from(bits!).toString('hex') });
    }
    return out;
  } finally {
    await img.close();
  }
}

const info = (f: string): unknown => {
  const j = JSON.parse(run('qemu-img', ['info', '--output=json', f])) as Record<string, unknown>;
  delete j.filename;
  delete j['actual-size'];
  return j;
};

describe.skipIf(!Q)('convert --bitmaps', () => {
  it('copies enabled and disabled bitmaps as qemu-img does; qemu-img reads them back', async () => {
    run('qemu-img', ['create', '-q', '-f', 'qcow2', p('src.qcow2'), '20M']);
    qemuIo(p('src.qcow2'), ['write -P 1 0 64k']);
    run('qemu-img', ['bitmap', '--add', p('src.qcow2'), 'b1']);
    run('qemu-img', ['bitmap', '--add', '-g', '4k', '--disable', p('src.qcow2'), 'b2']);
    run('qemu-img', ['bitmap', '--add', '-g', '512', p('src.qcow2'), 'fine']);
    qemuIo(p('src.qcow2'), ['write -P 2 1M 4k', 'write -P 3 7M 300k', 'write -z 12M 64k', 'discard 19M 1M']);
    const src = await bitmaps(p('src.qcow2'));
    expect(src.map((b) => b.name)).toEqual(['b1', 'b2', 'fine']);
    expect(src[0].bits).toMatch(/[1-9a-f]/); // b1 recorded writes (a test of empty bitmaps proves nothing)
    run('qemu-img', ['convert', '--bitmaps', '-O', 'qcow2', p('src.qcow2'), p('q.qcow2')]);
    const r = await rz(['convert', '--bitmaps', '-O', 'qcow2', p('src.qcow2'), p('r.qcow2')]);
    expect(r).toEqual({ status: 0, stdout: '', stderr: '' });
    expect(runStatus('qemu-img', ['check', p('r.qcow2')]).status).toBe(0);
    expect(run('qemu-img', ['compare', p('q.qcow2'), p('r.qcow2')])).toContain('identical');
    expect(info(p('r.qcow2'))).toEqual(info(p('q.qcow2')));
    expect(await bitmaps(p('r.qcow2'))).toEqual(await bitmaps(p('q.qcow2')));
    expect(await bitmaps(p('r.qcow2'))).toEqual(src);
    // QEMU reads our bitmap data: merged into a fresh image's bitmap, the bits are the source's.
    run('qemu-img', ['create', '-q', '-f', 'qcow2', p('m.qcow2'), '20M']);
    run('qemu-img', ['bitmap', '--add', '-g', '4k', p('m.qcow2'), 'm']);
    run('qemu-img', ['bitmap', '--merge', 'b2', '-b', p('r.qcow2'), '-F', 'qcow2', p('m.qcow2'), 'm']);
    expect((await bitmaps(p('m.qcow2')))[0].bits).toBe(src[1].bits);
    // An enabled copied bitmap keeps recording in QEMU.
    qemuIo(p('r.qcow2'), ['write -P 4 15M 4k']);
    expect(runStatus('qemu-img', ['check', p('r.qcow2')]).status).toBe(0);
    expect((await bitmaps(p('r.qcow2')))[0].bits).not.toBe(src[0].bits);
  });

  it('inconsistent bitmaps and unsupported formats: the same messages and exit codes', async () => {
    run('qemu-img', ['create', '-q', '-f', 'qcow2', p('u.qcow2'), '4M']);
    run('qemu-img', ['bitmap', '--add', p('u.qcow2'), 'b1']);
    run('qemu-img', ['bitmap', '--add', p('u.qcow2'), 'b2']);
    // An aborted QEMU leaves its bitmaps in-use (inconsistent).
    runStatus('qemu-io', ['-c', 'write 0 4k', '-c', 'abort', p('u.qcow2')]);
    run('qemu-img', ['convert', '-f', 'qcow2', '-O', 'raw', p('u.qcow2'), p('u.raw')]);
    const cases = [
      ['convert', '--bitmaps', '-O', 'qcow2', p('u.qcow2'), 'OUT.qcow2'],
      ['convert', '--bitmaps', '--skip-broken-bitmaps', '-O', 'qcow2', p('u.qcow2'), 'OUT.qcow2'],
      ['convert', '--bitmaps', '-O', 'raw', p('u.qcow2'), 'OUT.raw'],
      ['convert', '--bitmaps', '-f', 'raw', '-O', 'qcow2', p('u.raw'), 'OUT.qcow2'],
    ];
    let k = 0;
    for (const c of cases) {
      k++;
      const q = runStatus('qemu-img', c.map((a) => a.replace('OUT', p(`q${k}`))));
      const r = await rz(c.map((a) => a.replace('OUT', p(`r${k}`))));
      const norm = (s: string): string => s.replace(/qemu-img|ringzero-img/g, 'TOOL');
      expect({ status: r.status, stderr: norm(r.stderr) }).toEqual({ status: q.status, stderr: norm(q.stderr) });
    }
    // Skipped bitmaps: none copied, the target is clean.
    expect(await bitmaps(p('r2.qcow2'))).toEqual([]);
    expect(runStatus('qemu-img', ['check', p('r2.qcow2')]).status).toBe(0);
  });
});
