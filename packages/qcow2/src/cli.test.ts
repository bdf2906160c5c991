// The CLI against qemu-img: same JSON (parsed), same exit codes, images each tool accepts.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { humanSize, main, parseSize } from './cli';
import { haveQemu, pattern, qemuIo, run, runStatus, tempDir } from './test-util';

const Q = haveQemu('CLI comparisons with qemu-img');
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

describe('size helpers', () => {
  it('parses and prints sizes like qemu-img', () => {
    expect(parseSize('64M')).toBe(64 << 20);
    expect(parseSize('1G')).toBe(2 ** 30);
    expect(parseSize('512')).toBe(512);
    expect(humanSize(331776)).toBe('324 KiB');
    expect(humanSize(8 << 20)).toBe('8 MiB');
    expect(humanSize(0)).toBe('0 B');
  });
});

describe.skipIf(!Q)('ringzero-img vs qemu-img', () => {
  it('create prints the same Formatting line and info JSON matches', async () => {
    const a = path('a.qcow2');
    const b = path('b.qcow2');
    const ours = await rz('create', '-f', 'qcow2', '-o', 'cluster_size=4096,lazy_refcounts=on', a, '64M');
    const theirs = run('qemu-img', ['create', '-f', 'qcow2', '-o', 'cluster_size=4096,lazy_refcounts=on', b, '64M']);
    expect(ours.code).toBe(0);
    expect(ours.stdout.replace(a, 'X')).toBe(theirs.replace(b, 'X'));
    expect(runStatus('qemu-img', ['check', a]).status).toBe(0);
    for (const f of [a, b]) {
      const q = JSON.parse(run('qemu-img', ['info', '--output=json', f])) as Record<string, unknown>;
      const r = JSON.parse((await rz('info', '--output=json', f)).stdout) as Record<string, unknown>;
      expect(r).toEqual(q);
    }
  });

  it('info JSON matches on snapshots, backing files, v2, zstd, extended L2 and bitmaps', async () => {
    const base = path('base.qcow2');
    run('qemu-img', ['create', '-q', '-f', 'qcow2', '-o', 'compat=0.10', base, '4M']);
    const top = path('top.qcow2');
    run('qemu-img', ['create', '-q', '-f', 'qcow2', '-o', 'compression_type=zstd,extended_l2=on', '-b', base, '-F', 'qcow2', top]);
    run('qemu-img', ['snapshot', '-c', 'first', top]);
    run('qemu-img', ['bitmap', '--add', top, 'bm0']);
    for (const args of [[top], ['--backing-chain', top]]) {
      const q = JSON.parse(run('qemu-img', ['info', '--output=json', ...args])) as unknown;
      const r = JSON.parse((await rz('info', '--output=json', ...args)).stdout) as unknown;
      expect(r).toEqual(q);
    }
    const qh = run('qemu-img', ['info', top]);
    const rh = (await rz('info', top)).stdout;
    expect(rh).toBe(qh);
  });

  it('check: clean, leaked and corrupted images give qemu-img exit codes and JSON', async () => {
    const f = path('c.qcow2');
    run('qemu-img', ['create', '-q', '-f', 'qcow2', f, '4M']);
    qemuIo(f, ['write -P 1 0 200k', 'write 1M 64k']);
    const cmp = async (): Promise<number> => {
      const q = runStatus('qemu-img', ['check', '--output=json', f]);
      const r = await rz('check', '--output=json', f);
      expect(r.code).toBe(q.status);
      expect(JSON.parse(r.stdout)).toEqual(JSON.parse(q.stdout));
      const qt = runStatus('qemu-img', ['check', f]);
      expect((await rz('check', f)).stdout).toBe(qt.stdout);
      return r.code;
    };
    expect(await cmp()).toBe(0);
    // Leak: bump the refcount of an unused cluster (refcount block at 0x20000, cluster 10).
    const orig = readFileSync(f);
    const leakCluster = Math.ceil(orig.length / 65536);
    const buf = Buffer.concat([orig, Buffer.alloc(leakCluster * 65536 + 65536 - orig.length)]);
    buf.writeUInt16BE(1, 0x20000 + leakCluster * 2);
    writeFileSync(f, buf);
    expect(await cmp()).toBe(3);
    // Corruption: clear the refcount of the first data cluster.
    const l2 = Number(buf.readBigUInt64BE(0x30000) & 0x00fffffffffffe00n);
    const data = Number(buf.readBigUInt64BE(l2) & 0x00fffffffffffe00n);
    buf.writeUInt16BE(0, 0x20000 + (data / 65536) * 2);
    writeFileSync(f, buf);
    expect(await cmp()).toBe(2);
    // Our repair leaves an image both tools call clean, with the data intact.
    const before = run('qemu-img', ['convert', '-O', 'raw', f, path('before.raw')]);
    void before;
    const r = await rz('check', '-r', 'all', f);
    expect(r.code).toBe(0);
    expect(runStatus('qemu-img', ['check', f]).status).toBe(0);
    const after = path('after.raw');
    run('qemu-img', ['convert', '-O', 'raw', f, after]);
    expect(readFileSync(after).subarray(0, 200 * 1024).every((x) => x === 1)).toBe(true);
  });

  it('check on a raw image exits 63 and a missing file exits 1', async () => {
    const f = path('r.raw');
    writeFileSync(f, new Uint8Array(4096));
    expect((await rz('check', '-f', 'raw', f)).code).toBe(runStatus('qemu-img', ['check', '-f', 'raw', f]).status);
    const m = await rz('check', path('missing.qcow2'));
    expect(m.code).toBe(1);
    expect(m.stderr).toMatch(/^ringzero-img: Could not open .*: No such file or directory\n$/);
  });

  it('map --output=json equals qemu-img map on a chain with zero and data clusters', async () => {
    const base = path('mb.qcow2');
    run('qemu-img', ['create', '-q', '-f', 'qcow2', base, '4M']);
    qemuIo(base, ['write 0 64k', 'write 3M 128k']);
    const top = path('mt.qcow2');
    run('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', base, '-F', 'qcow2', top, '8M']);
    qemuIo(top, ['write -z 1M 64k', 'write 2M 4k', 'write 3M 64k']);
    const q = JSON.parse(run('qemu-img', ['map', '--output=json', top])) as unknown;
    const r = JSON.parse((await rz('map', '--output=json', top)).stdout) as unknown;
    expect(r).toEqual(q);
    expect((await rz('map', top)).stdout).toBe(run('qemu-img', ['map', top]));
  });

  it('convert raw -> qcow2 (plain, zlib, zstd) -> raw round-trips and qemu-img agrees', async () => {
    const src = path('src.raw');
    const data = new Uint8Array(3 << 20);
    data.set(new TextEncoder().encode('some text to compress\n'.repeat(30000)).subarray(0, 600_000), 0);
    data.set(pattern(300_000, 5), 2 << 20);
    writeFileSync(src, data);
    for (const extra of [[], ['-c'], ['-c', '-o', 'compression_type=zstd']]) {
      const q = path('conv.qcow2');
      const r = await rz('convert', '-f', 'raw', '-O', 'qcow2', ...extra, src, q);
      expect(r.code).toBe(0);
      expect(runStatus('qemu-img', ['check', q]).status).toBe(0);
      expect(run('qemu-img', ['compare', '-f', 'raw', '-F', 'qcow2', src, q])).toContain('identical');
      const back = path('back.raw');
      expect((await rz('convert', '-O', 'raw', q, back)).code).toBe(0);
      expect(Buffer.compare(readFileSync(back), Buffer.from(data))).toBe(0);
    }
  });

  it('snapshots made by us are listed, applied and deleted by qemu-img (and vice versa)', async () => {
    const f = path('s.qcow2');
    await rz('create', '-q', '-f', 'qcow2', f, '4M');
    qemuIo(f, ['write -P 0xa1 0 1M']);
    expect((await rz('snapshot', '-c', 'one', f)).code).toBe(0);
    qemuIo(f, ['write -P 0xb2 512k 1M']);
    expect(runStatus('qemu-img', ['check', f]).status).toBe(0);
    expect(run('qemu-img', ['snapshot', '-l', f])).toContain('one');
    expect((await rz('snapshot', '-a', 'one', f)).code).toBe(0);
    expect(runStatus('qemu-img', ['check', f]).status).toBe(0);
    run('qemu-io', ['-c', 'read -P 0xa1 0 1M', f]);
    const ro = runStatus('qemu-io', ['-c', 'read -P 0xa1 0 1M', f]);
    expect(ro.stdout).not.toContain('Pattern verification failed');
    run('qemu-img', ['snapshot', '-c', 'two', f]);
    expect((await rz('snapshot', '-d', 'one', f)).code).toBe(0);
    expect(runStatus('qemu-img', ['check', f]).status).toBe(0);
    const missing = await rz('snapshot', '-d', 'nope', f);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe("ringzero-img: Could not delete snapshot 'nope': snapshot not found\n");
    expect((await rz('snapshot', '-l', f)).stdout).toBe(run('qemu-img', ['snapshot', '-l', f]));
  });

  it('compare and resize follow qemu-img exit codes', async () => {
    const a = path('ca.raw');
    const b = path('cb.raw');
    writeFileSync(a, pattern(200_000, 1));
    const bb = pattern(200_000, 1);
    bb[102_500] ^= 1;
    writeFileSync(b, bb);
    const q = runStatus('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', a, b]);
    const r = await rz('compare', '-f', 'raw', '-F', 'raw', a, b);
    expect(r.code).toBe(q.status);
    expect(r.stdout).toBe(q.stdout);
    expect((await rz('compare', a, path('nope'))).code).toBe(2);
    const f = path('rs.qcow2');
    await rz('create', '-q', '-f', 'qcow2', f, '1M');
    qemuIo(f, ['write -P 7 0 1M']);
    expect((await rz('resize', f, '3G')).code).toBe(0);
    expect((await rz('resize', f, '1M')).code).toBe(1);
    expect(runStatus('qemu-img', ['check', f]).status).toBe(0);
    expect((JSON.parse(run('qemu-img', ['info', '--output=json', f])) as Record<string, unknown>)['virtual-size']).toBe(3 * 2 ** 30);
    expect((await rz('resize', '--shrink', f, '512k')).code).toBe(0);
    expect(runStatus('qemu-img', ['check', f]).status).toBe(0);
  });

  it('convert: -t cache modes as qemu-img (unsafe default, others flush), bad mode refused, -p ends at 100%', async () => {
    const src = path('t.raw');
    writeFileSync(src, pattern(1 << 20, 8));
    for (const mode of ['writeback', 'none', 'unsafe']) {
      const out = path(`t-${mode}.qcow2`);
      expect((await rz('convert', '-t', mode, '-O', 'qcow2', src, out)).code).toBe(0);
      expect(run('qemu-img', ['compare', '-f', 'raw', src, out])).toContain('identical');
    }
    const q = runStatus('qemu-img', ['convert', '-t', 'foo', src, path('x.raw')]);
    const r = await rz('convert', '-t', 'foo', src, path('y.raw'));
    expect(r.code).toBe(q.status);
    expect(r.stderr.replace('ringzero-img', 'qemu-img')).toBe(q.stderr);
    const p = await rz('convert', '-p', '-O', 'qcow2', src, path('p.qcow2'));
    expect(p.stdout.startsWith('    (0.00/100%)\r')).toBe(true);
    expect(p.stdout.endsWith('    (100.00/100%)\r\n')).toBe(true);
  });
});
