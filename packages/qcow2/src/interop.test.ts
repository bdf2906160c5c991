// Interop with the real peer: images qemu-img/qemu-io write must read back byte-identical to
// `qemu-img convert -O raw`, and images we write must pass `qemu-img check` and `compare`.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createQcow2File, openImage } from './node';
import { haveQemu, pattern, qemuIo, run, runStatus, tempDir } from './test-util';

const Q = haveQemu('interop with QEMU images');
const t = tempDir();
afterAll(() => t.cleanup());
let n = 0;
const path = (name: string): string => join(t.dir, `${n++}-${name}`);

async function expectSameAsQemu(file: string): Promise<void> {
  const raw = path('ref.raw');
  run('qemu-img', ['convert', '-O', 'raw', file, raw]);
  const ref = readFileSync(raw);
  const img = await openImage(file, { readOnly: true });
  try {
    expect(img.size).toBe(ref.length);
    const got = await img.read(0, img.size);
    expect(Buffer.compare(Buffer.from(got), ref)).toBe(0);
  } finally {
    await img.close();
  }
}

const WRITES = ['write -P 0x11 0 7k', 'write -P 0x22 60k 10k', 'write -P 0x33 1M 130k', 'write -z 1088k 64k', 'discard 1152k 64k', 'write -P 0x44 3M 512'];

describe.skipIf(!Q)('we read what QEMU writes', () => {
  const variants: [string, string[]][] = [
    ['v2', ['-o', 'compat=0.10']],
    ['v3', []],
    ['512-byte clusters', ['-o', 'cluster_size=512']],
    ['4k clusters', ['-o', 'cluster_size=4096']],
    ['2M clusters', ['-o', 'cluster_size=2M']],
    ['refcount_bits=1', ['-o', 'refcount_bits=1']],
    ['refcount_bits=4', ['-o', 'refcount_bits=4']],
    ['refcount_bits=64', ['-o', 'refcount_bits=64']],
    ['extended L2', ['-o', 'extended_l2=on,cluster_size=128k']],
    ['lazy refcounts', ['-o', 'lazy_refcounts=on']],
    ['metadata preallocation', ['-o', 'preallocation=metadata']],
  ];
  for (const [name, opts] of variants) {
    it(name, async () => {
      const f = path('img.qcow2');
      run('qemu-img', ['create', '-q', '-f', 'qcow2', ...opts, f, '4M']);
      qemuIo(f, WRITES);
      await expectSameAsQemu(f);
    });
  }

  for (const ct of ['zlib', 'zstd']) {
    it(`${ct}-compressed clusters`, async () => {
      const raw = path('src.raw');
      const data = new Uint8Array(3 << 20);
      const text = new TextEncoder().encode('qcow2 compressed cluster text line\n'.repeat(40000));
      data.set(text.subarray(0, 1 << 20), 0);
      data.set(pattern(200_000, 9), 1 << 20);
      writeFileSync(raw, data);
      const f = path('c.qcow2');
      run('qemu-img', ['convert', '-c', '-O', 'qcow2', '-o', `compression_type=${ct}`, raw, f]);
      await expectSameAsQemu(f);
    });
  }

  it('a backing chain of three with a raw base', async () => {
    const base = path('base.raw');
    writeFileSync(base, pattern(4 << 20, 3));
    const mid = path('mid.qcow2');
    run('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', base, '-F', 'raw', mid]);
    qemuIo(mid, ['write -P 0x55 64k 64k', 'write -z 1M 4k']);
    const top = path('top.qcow2');
    run('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', mid, '-F', 'qcow2', top]);
    qemuIo(top, ['write -P 0x66 100k 10k', 'discard 2M 64k']);
    await expectSameAsQemu(top);
  });

  it('internal snapshots: the active layer after writes', async () => {
    const f = path('snap.qcow2');
    run('qemu-img', ['create', '-q', '-f', 'qcow2', f, '4M']);
    qemuIo(f, ['write -P 0x01 0 1M']);
    run('qemu-img', ['snapshot', '-c', 's1', f]);
    qemuIo(f, ['write -P 0x02 512k 1M']);
    await expectSameAsQemu(f);
  });

  it('a lazy-refcount image left dirty by an aborted qemu-io', async () => {
    const f = path('dirty.qcow2');
    run('qemu-img', ['create', '-q', '-f', 'qcow2', '-o', 'lazy_refcounts=on', f, '4M']);
    runStatus('qemu-io', ['-c', 'write -P 0x77 0 300k', '-c', 'abort', f]);
    expect(runStatus('qemu-img', ['check', f]).status).toBe(2);
    await expectSameAsQemu(f);
  });
});

describe.skipIf(!Q)('QEMU reads what we write', () => {
  for (const [name, opts] of [
    ['v3 defaults', {}],
    ['v2', { compat: '0.10' }],
    ['512-byte clusters, 1-bit refcounts', { clusterSize: 512, refcountBits: 1 }],
    ['2M clusters, 64-bit refcounts', { clusterSize: 2 << 20, refcountBits: 64 }],
    ['extended L2', { extendedL2: true, clusterSize: 65536 }],
  ] as const) {
    it(name, async () => {
      const f = path('ours.qcow2');
      const size = 8 << 20;
      await createQcow2File(f, { size, ...opts });
      const model = new Uint8Array(size);
      const img = await openImage(f);
      const ops: [number, number][] = [
        [0, 5000],
        [65530, 140000],
        [3 << 20, 1 << 20],
        [7 << 20, 4096],
      ];
      for (const [i, [o, l]] of ops.entries()) {
        const d = pattern(l, i + 1);
        await img.write(o, d);
        model.set(d, o);
      }
      await img.writeZeroes(3 << 20, 65536 * 2);
      model.fill(0, 3 << 20, (3 << 20) + 131072);
      await img.writeZeroes(100, 1000);
      model.fill(0, 100, 1100);
      await img.close();
      const exp = path('exp.raw');
      writeFileSync(exp, model);
      const chk = runStatus('qemu-img', ['check', f]);
      expect(chk.stdout + chk.stderr).toContain('No errors were found on the image.');
      expect(chk.status).toBe(0);
      expect(run('qemu-img', ['compare', '-f', 'qcow2', '-F', 'raw', f, exp])).toContain('Images are identical.');
    });
  }
});
