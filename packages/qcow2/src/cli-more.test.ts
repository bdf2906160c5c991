// commit, rebase, measure, amend and dd against qemu-img: each case runs both tools on twin
// inputs, then compares stdout/stderr (tool name aside), exit codes, and the resulting images
// (qemu-img compare, qemu-img check, qemu-img info and map without host offsets).
import { closeSync, copyFileSync, existsSync, ftruncateSync, openSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { main } from './cli';
import { haveQemu, pattern, qemuIo, run, runStatus, tempDir } from './test-util';

const Q = haveQemu('commit/rebase/measure/amend/dd comparisons with qemu-img');
const t = tempDir();
afterAll(() => t.cleanup());
let n = 0;

async function rz(argv: string[]): Promise<{ status: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const status = await main(argv, { stdout: (s) => (stdout += s), stderr: (s) => (stderr += s) });
  return { status, stdout, stderr };
}

/** Twin directories: `q` for qemu-img, `r` for ours; `build` runs in both. */
function twins(build: (p: (name: string) => string) => void): { q: (name: string) => string; r: (name: string) => string } {
  const id = n++;
  const q = (name: string): string => join(t.dir, `q${id}-${name}`);
  const r = (name: string): string => join(t.dir, `r${id}-${name}`);
  build(q);
  build(r);
  return { q, r };
}

function norm(s: string, prefix: string): string {
  return s.replace(/qemu-img|ringzero-img/g, 'TOOL').split(join(t.dir, prefix)).join('F-');
}

/** Run the same command line in both worlds ({} in args is replaced by each side's path prefix). */
async function both(cmd: string, args: string[], tw: { q: (n: string) => string; r: (n: string) => string }): Promise<void> {
  const qa = args.map((a) => a.replace(/\{(\w[\w.-]*)\}/g, (_, f: string) => tw.q(f)));
  const ra = args.map((a) => a.replace(/\{(\w[\w.-]*)\}/g, (_, f: string) => tw.r(f)));
  const q = runStatus('qemu-img', [cmd, ...qa]);
  const r = await rz([cmd, ...ra]);
  const qp = tw.q('').slice(t.dir.length + 1);
  const rp = tw.r('').slice(t.dir.length + 1);
  expect({ status: r.status, stdout: norm(r.stdout, rp), stderr: norm(r.stderr, rp) }).toEqual({ status: q.status, stdout: norm(q.stdout, qp), stderr: norm(q.stderr, qp) });
}

/** The two images hold the same data, ours passes qemu-img check, info and map agree. */
function sameImage(tw: { q: (n: string) => string; r: (n: string) => string }, name: string, o: { map?: boolean } = {}): void {
  const a = tw.q(name);
  const b = tw.r(name);
  expect(run('qemu-img', ['compare', a, b])).toContain('identical');
  if (run('qemu-img', ['info', '--output=json', b]).includes('"qcow2"')) {
    const c = runStatus('qemu-img', ['check', b]);
    expect(c.stdout).toContain('No errors were found');
    expect(c.status).toBe(0);
  }
  const info = (f: string, p: string): unknown => {
    const j = JSON.parse(run('qemu-img', ['info', '--output=json', f])) as Record<string, unknown>;
    delete j['actual-size'];
    // Snapshots were taken at slightly different times on each side.
    for (const s of (j.snapshots ?? []) as Record<string, unknown>[]) {
      delete s['date-sec'];
      delete s['date-nsec'];
    }
    return JSON.parse(norm(JSON.stringify(j), p));
  };
  expect(info(b, tw.r('').slice(t.dir.length + 1))).toEqual(info(a, tw.q('').slice(t.dir.length + 1)));
  if (o.map !== false) {
    const map = (f: string): string => run('qemu-img', ['map', '--output=json', f]).replace(/, "offset": \d+/g, '');
    expect(map(b)).toBe(map(a));
  }
}

function chain(p: (n: string) => string): void {
  run('qemu-img', ['create', '-q', '-f', 'qcow2', p('base.qcow2'), '4M']);
  qemuIo(p('base.qcow2'), ['write -P 1 0 4M']);
  run('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', p('base.qcow2'), '-F', 'qcow2', p('mid.qcow2'), '5M']);
  qemuIo(p('mid.qcow2'), ['write -P 2 512k 128k', 'write -z 3M 64k']);
  run('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', p('mid.qcow2'), '-F', 'qcow2', p('top.qcow2'), '6M']);
  qemuIo(p('top.qcow2'), ['write -P 5 0 64k', 'write -z 1M 64k', 'write -P 3 2M 4k', 'write -P 7 5M 8k']);
}

describe.skipIf(!Q)('commit', () => {
  it('commits into the backing file, grows it and empties the overlay', async () => {
    const tw = twins(chain);
    await both('commit', ['{top.qcow2}'], tw);
    sameImage(tw, 'top.qcow2');
    sameImage(tw, 'mid.qcow2', { map: false });
    expect(run('qemu-img', ['compare', tw.r('mid.qcow2'), tw.q('mid.qcow2')])).toContain('identical');
  });

  it('-d keeps the overlay; -b commits the whole chain into a deeper base', async () => {
    const tw = twins(chain);
    await both('commit', ['-d', '{top.qcow2}'], tw);
    sameImage(tw, 'top.qcow2');
    sameImage(tw, 'mid.qcow2', { map: false });
    const tw2 = twins(chain);
    await both('commit', ['-b', '{base.qcow2}', '{top.qcow2}'], tw2);
    sameImage(tw2, 'base.qcow2', { map: false });
    sameImage(tw2, 'top.qcow2');
  });

  it('errors: no backing file, base not in the chain', async () => {
    const tw = twins(chain);
    await both('commit', ['{base.qcow2}'], tw);
    const r = await rz(['commit', '-b', tw.r('nope.qcow2'), tw.r('top.qcow2')]);
    expect(r.status).toBe(1);
    expect(runStatus('qemu-img', ['commit', '-b', tw.q('nope.qcow2'), tw.q('top.qcow2')]).status).toBe(1);
  });
});

describe.skipIf(!Q)('rebase', () => {
  const setup = (p: (n: string) => string): void => {
    chain(p);
    run('qemu-img', ['create', '-q', '-f', 'qcow2', p('nb.qcow2'), '6M']);
    qemuIo(p('nb.qcow2'), ['write -P 1 0 1M', 'write -P 2 1M 1000k', 'write -P 9 5M 4k']);
  };
  const cases: string[][] = [
    ['-b', '{nb.qcow2}', '-F', 'qcow2'],
    ['-b', '{nb.qcow2}'],
    ['-u', '-b', '{nb.qcow2}', '-F', 'qcow2'],
    ['-u', '-b', '{nb.qcow2}'],
    ['-b', ''],
    ['-b', '{nope.qcow2}', '-F', 'qcow2'],
    ['-b', '{nb.qcow2}', '-F', 'raw'],
    [],
  ];
  for (const c of cases) {
    it(`rebase ${c.join(' ') || '(no options)'}`, async () => {
      const tw = twins(setup);
      await both('rebase', [...c, '{top.qcow2}'], tw);
      sameImage(tw, 'top.qcow2');
    });
  }
});

describe.skipIf(!Q)('measure', () => {
  it('text and JSON equal qemu-img for sizes, options and input images', async () => {
    const tw = twins((p) => {
      run('qemu-img', ['create', '-q', '-f', 'qcow2', p('a.qcow2'), '10G']);
      qemuIo(p('a.qcow2'), ['write 0 100k', 'write 1M 4k', 'write -z 2M 64k', 'write -c 5M 64k']);
      run('qemu-img', ['bitmap', '--add', p('a.qcow2'), 'bm0']);
      run('qemu-img', ['bitmap', '--add', '-g', '4k', p('a.qcow2'), 'a-longer-name']);
      run('qemu-img', ['create', '-q', '-f', 'qcow2', '-o', 'compat=0.10', p('v2.qcow2'), '1M']);
      writeFileSync(p('r.raw'), pattern(300_000, 3));
      run('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', p('a.qcow2'), '-F', 'qcow2', p('o.qcow2')]);
      qemuIo(p('o.qcow2'), ['write -z 0 64k', 'write 7M 64k']);
      // A sparse raw file: holes around a few written extents (QEMU finds the holes with
      // SEEK_DATA; we from st_blocks and the file's zero blocks).
      const fd = openSync(p('sp.raw'), 'w');
      ftruncateSync(fd, 8 << 20);
      writeSync(fd, pattern(5, 1), 0, 5, 1_000_000);
      writeSync(fd, pattern(196_608, 2), 0, 196_608, 3_276_800);
      writeSync(fd, pattern(1536, 3), 0, 1536, 4_608_000);
      closeSync(fd);
      // Sparse and with written zeros: holes, data, and zero bytes written over whole
      // clusters and next to data (QEMU counts written zeros as data: SEEK_DATA finds them).
      const fz = openSync(p('hz.raw'), 'w');
      ftruncateSync(fz, 8 << 20);
      writeSync(fz, new Uint8Array(131_072), 0, 131_072, 1 << 20);
      writeSync(fz, pattern(4096, 4), 0, 4096, 2 << 20);
      writeSync(fz, new Uint8Array(65_536), 0, 65_536, (2 << 20) + 4096);
      writeSync(fz, new Uint8Array(8192), 0, 8192, 5 << 20);
      writeSync(fz, pattern(100, 5), 0, 100, (6 << 20) + 70_000);
      closeSync(fz);
      // Written back: whether a file system reports an unwritten extent (QEMU's efficient
      // zero-fill of a cluster's tail) as data can depend on dirty pages in the cache, so the
      // twins are measured in the same, settled state.
      run('sync', []);
    });
    const cases: string[][] = [
      ['--size', '10G', '-O', 'qcow2'],
      ['--output=json', '--size', '10G', '-O', 'qcow2'],
      ['--output=json', '-O', 'qcow2', '{a.qcow2}'],
      ['-O', 'qcow2', '-o', 'cluster_size=4k', '{r.raw}'],
      ['-O', 'qcow2', '{sp.raw}'],
      ['-O', 'qcow2', '-o', 'cluster_size=4k', '{sp.raw}'],
      ['--output=json', '-O', 'qcow2', '-o', 'cluster_size=512', '{sp.raw}'],
      ['-O', 'qcow2', '-o', 'cluster_size=2M,extended_l2=on', '{sp.raw}'],
      ['-O', 'qcow2', '{hz.raw}'],
      ['--output=json', '-O', 'qcow2', '-o', 'cluster_size=4k', '{hz.raw}'],
      ['-O', 'qcow2', '-o', 'cluster_size=512', '{hz.raw}'],
      // a.qcow2 has partly written clusters over holes of its file next to allocated zero
      // blocks (bitmap tables).
      ['-O', 'qcow2', '-o', 'cluster_size=2M', '{a.qcow2}'],
      ['-O', 'qcow2', '-o', 'cluster_size=4k', '{a.qcow2}'],
      ['-O', 'qcow2', '-o', 'cluster_size=512', '{a.qcow2}'],
      ['-O', 'qcow2', '-o', 'compat=0.10', '{a.qcow2}'],
      ['-O', 'qcow2', '{v2.qcow2}'],
      ['-O', 'qcow2', '{r.raw}'],
      ['-O', 'qcow2', '{o.qcow2}'],
      ['-O', 'qcow2', '-o', 'extended_l2=on,cluster_size=1M', '{o.qcow2}'],
      ['{a.qcow2}'],
      ['--output=json', '--size', '1000'],
      ['--size', '1000', '-O', 'qcow2'],
      ['-O', 'qcow2', '-o', 'refcount_bits=1,cluster_size=512', '--size', '3G'],
      ['-O', 'qcow2', '-o', 'extended_l2=on', '--size', '100G'],
      ['-O', 'qcow2', '-o', 'preallocation=full', '--size', '1G'],
      ['-O', 'qcow2', '-o', 'preallocation=metadata,refcount_bits=64', '--size', '1G'],
      ['-O', 'qcow2', '-o', 'backing_file=x', '{a.qcow2}'],
      ['-O', 'qcow2', '--size', '1.5M'],
      // errors
      ['-O', 'qcow2', '-o', 'foo=1', '--size', '1G'],
      ['-O', 'qcow2', '--size', '1G', '{a.qcow2}'],
      ['-O', 'qcow2'],
      ['--size', '-5'],
      ['--size', '1G', '--output=xml'],
      ['-O', 'qcow2', '-o', 'cluster_size=4k,extended_l2=on', '--size', '1G'],
      ['-O', 'qcow2', '{nope.qcow2}'],
    ];
    for (const c of cases) await both('measure', c, tw);
  });
});

describe.skipIf(!Q)('amend', () => {
  const setup = (p: (n: string) => string): void => {
    run('qemu-img', ['create', '-q', '-f', 'qcow2', p('base.qcow2'), '4M']);
    qemuIo(p('base.qcow2'), ['write -P 1 0 4M']);
    run('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', p('base.qcow2'), '-F', 'qcow2', p('top.qcow2'), '6M']);
    qemuIo(p('top.qcow2'), ['write -P 5 0 64k', 'write -z 3M 64k', 'write -z 5M 64k', 'write -P 3 1M 64k', 'write -z 1M 64k']);
    run('qemu-img', ['create', '-q', '-f', 'qcow2', '-o', 'lazy_refcounts=on,refcount_bits=4', p('plain.qcow2'), '4M']);
    qemuIo(p('plain.qcow2'), ['write -P 8 0 300k', 'write -z 1M 128k']);
    run('qemu-img', ['snapshot', '-c', 's1', p('plain.qcow2')]);
    qemuIo(p('plain.qcow2'), ['write -P 9 64k 64k']);
  };
  const cases: [string, string[]][] = [
    ['top.qcow2', ['-o', 'compat=0.10']],
    ['top.qcow2', ['-o', 'lazy_refcounts=on']],
    ['top.qcow2', ['-o', 'refcount_bits=1']],
    ['top.qcow2', ['-o', 'refcount_bits=64']],
    ['top.qcow2', ['-o', 'size=8M']],
    ['top.qcow2', ['-o', 'size=1M']],
    ['plain.qcow2', ['-o', 'refcount_bits=16,lazy_refcounts=off,compat=0.10']],
    ['plain.qcow2', ['-o', 'compat=0.10']],
    ['plain.qcow2', ['-o', 'refcount_bits=1']],
    ['plain.qcow2', ['-o', 'refcount_bits=32']],
    // errors
    ['top.qcow2', ['-o', 'refcount_bits=3']],
    ['top.qcow2', ['-o', 'cluster_size=4k']],
    ['top.qcow2', ['-o', 'foo=1']],
    ['top.qcow2', []],
    ['top.qcow2', ['-o', 'backing_file=zz']],
    ['top.qcow2', ['-o', 'data_file=x']],
    ['top.qcow2', ['-o', 'data_file_raw=on']],
    ['top.qcow2', ['-o', 'compat=2']],
    ['top.qcow2', ['-o', 'lazy_refcounts=on,compat=0.10']],
    ['top.qcow2', ['-o', 'refcount_bits=8,compat=0.10']],
    ['top.qcow2', ['-f', 'raw', '-o', 'size=1M']],
  ];
  for (const [f, c] of cases) {
    it(`amend ${c.join(' ') || '(no options)'} on ${f}`, async () => {
      const tw = twins(setup);
      await both('amend', [...c, `{${f}}`], tw);
      sameImage(tw, f);
      if (f === 'plain.qcow2') {
        expect(run('qemu-img', ['snapshot', '-l', tw.r(f)]).split('\n')[2].slice(0, 20)).toBe(run('qemu-img', ['snapshot', '-l', tw.q(f)]).split('\n')[2].slice(0, 20));
        // The snapshot (whose table held zero clusters before a downgrade) applies cleanly in
        // QEMU on both sides and holds the same data.
        for (const side of [tw.q, tw.r]) {
          copyFileSync(side(f), side('applied.qcow2'));
          run('qemu-img', ['snapshot', '-a', 's1', side('applied.qcow2')]);
          expect(runStatus('qemu-img', ['check', side('applied.qcow2')]).status).toBe(0);
        }
        sameImage(tw, 'applied.qcow2');
      }
    });
  }

  it('downgrade with a zero cluster shared with a snapshot: the snapshot keeps its data, qemu-img check passes', async () => {
    // QEMU 7.2 zero-fills such a cluster in place (the snapshot then reads zeros and its own
    // check reports OFLAG_COPIED); we give the active table a fresh zero cluster instead.
    const tw = twins((p) => {
      run('qemu-img', ['create', '-q', '-f', 'qcow2', p('s.qcow2'), '4M']);
      qemuIo(p('s.qcow2'), ['write -P 8 0 300k', 'write -z 1M 128k']);
      run('qemu-img', ['snapshot', '-c', 's1', p('s.qcow2')]);
      qemuIo(p('s.qcow2'), ['write -P 9 64k 64k', 'write -z 0 64k']);
      run('qemu-img', ['convert', '-O', 'raw', '-l', 'snapshot.name=s1', p('s.qcow2'), p('s1.raw')]);
    });
    await both('amend', ['-o', 'compat=0.10', '{s.qcow2}'], tw);
    const f = tw.r('s.qcow2');
    expect(runStatus('qemu-img', ['check', f]).status).toBe(0);
    expect(run('qemu-img', ['compare', tw.q('s.qcow2'), f])).toContain('identical');
    const info = JSON.parse(run('qemu-img', ['info', '--output=json', f])) as { 'format-specific': { data: { compat: string } } };
    expect(info['format-specific'].data.compat).toBe('0.10');
    run('qemu-img', ['snapshot', '-a', 's1', f]);
    expect(runStatus('qemu-img', ['check', f]).status).toBe(0);
    expect(run('qemu-img', ['compare', '-F', 'raw', f, tw.r('s1.raw')])).toContain('identical');
  });

  it('a v2 image upgrades to v3 with lazy refcounts; zstd without compressed clusters downgrades', async () => {
    const tw = twins((p) => {
      run('qemu-img', ['create', '-q', '-f', 'qcow2', '-o', 'compat=0.10', p('v2.qcow2'), '4M']);
      qemuIo(p('v2.qcow2'), ['write -P 4 0 1M']);
      run('qemu-img', ['create', '-q', '-f', 'qcow2', '-o', 'compression_type=zstd', p('z.qcow2'), '4M']);
      run('qemu-img', ['create', '-q', '-f', 'qcow2', '-o', 'compression_type=zstd', p('zc.qcow2'), '4M']);
      qemuIo(p('zc.qcow2'), ['write -c -P 6 0 64k']);
      run('qemu-img', ['create', '-q', '-f', 'qcow2', '-o', 'extended_l2=on', p('x.qcow2'), '4M']);
    });
    await both('amend', ['-o', 'compat=1.1,lazy_refcounts=on', '{v2.qcow2}'], tw);
    sameImage(tw, 'v2.qcow2');
    await both('amend', ['-o', 'compat=0.10', '{z.qcow2}'], tw);
    sameImage(tw, 'z.qcow2');
    await both('amend', ['-o', 'compat=0.10', '{zc.qcow2}'], tw);
    await both('amend', ['-o', 'compat=0.10', '{x.qcow2}'], tw);
  });
});

describe.skipIf(!Q)('dd', () => {
  const setup = (p: (n: string) => string): void => {
    writeFileSync(p('in.raw'), pattern(3_000_000, 11));
    run('qemu-img', ['convert', '-O', 'qcow2', p('in.raw'), p('in.qcow2')]);
  };
  const cases: string[][] = [
    ['if={in.raw}', 'of={o.raw}'],
    ['-O', 'qcow2', 'bs=64k', 'count=10', 'skip=2', 'if={in.raw}', 'of={o.qcow2}'],
    ['-O', 'qcow2', 'bs=1000', 'count=10', 'skip=3', 'if={in.qcow2}', 'of={o.qcow2}'],
    ['-f', 'qcow2', 'bs=1.5k', 'count=7', 'if={in.qcow2}', 'of={o.raw}'],
    ['bs=3', 'count=5', 'skip=7', 'if={in.raw}', 'of={o.raw}'],
    ['skip=100000', 'bs=1k', 'if={in.raw}', 'of={o.raw}'],
    // errors
    ['if={in.raw}'],
    ['bs=0', 'if={in.raw}', 'of={o.raw}'],
    ['foo=1', 'if={in.raw}', 'of={o.raw}'],
    ['-f', 'qcow2', 'if={in.raw}', 'of={o.raw}'],
    ['bs=1k', 'count=abc', 'if={in.raw}', 'of={o.raw}'],
  ];
  for (const c of cases) {
    it(`dd ${c.join(' ')}`, async () => {
      const tw = twins(setup);
      await both('dd', c, tw);
      for (const f of ['o.raw', 'o.qcow2']) {
        expect(existsSync(tw.r(f))).toBe(existsSync(tw.q(f)));
        if (existsSync(tw.q(f))) sameImage(tw, f, { map: false });
      }
    });
  }

  it('copies a raw file exactly (the same bytes as the file qemu-img writes)', async () => {
    const tw = twins(setup);
    await both('dd', ['bs=4k', 'skip=3', 'if={in.raw}', 'of={o.raw}'], tw);
    expect(Buffer.compare(readFileSync(tw.r('o.raw')), readFileSync(tw.q('o.raw')))).toBe(0);
    copyFileSync(tw.r('o.raw'), tw.r('copy.raw'));
  });
});
