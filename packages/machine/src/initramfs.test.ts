import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildCpio, busyboxInitramfs, initScript } from './index';

const hasCpio = !spawnSync('cpio', ['--version']).error;
if (!hasCpio) console.warn('SKIPPED: GNU cpio not installed: initramfs archives are not checked against the real cpio');

describe('buildCpio', () => {
  it.skipIf(!hasCpio)('writes archives that GNU cpio extracts to the same tree', () => {
    const dir = mkdtempSync(join(tmpdir(), 'rz-cpio-'));
    try {
      const odd = new Uint8Array(4099).map((_, i) => (i * 7) & 0xff); // not a multiple of 4: padding matters
      const archive = buildCpio([
        { type: 'dir', path: 'etc' },
        { type: 'file', path: 'etc/hello', data: 'hello\n' },
        { type: 'file', path: 'blob', data: odd, mode: 0o640 },
        { type: 'symlink', path: 'link', target: 'etc/hello' },
        { type: 'chardev', path: 'console', major: 5, minor: 1 },
      ]);
      const file = join(dir, 'a.cpio');
      writeFileSync(file, archive);
      const list = spawnSync('cpio', ['-itv', '-F', file], { encoding: 'utf8' });
      expect(list.status).toBe(0);
      expect(list.stdout).toMatch(/^crw------- .* 5,\s*1 .* console$/m);
      expect(list.stdout).toMatch(/^lrwxrwxrwx .* link -> etc\/hello$/m);
      const out = join(dir, 'x');
      const ex = spawnSync('sh', ['-c', `mkdir ${out} && cd ${out} && cpio -id --no-absolute-filenames --nonmatching console < ${file}`], {
        encoding: 'utf8',
      });
      expect(ex.status, ex.stderr).toBe(0);
      expect(readFileSync(join(out, 'etc/hello'), 'utf8')).toBe('hello\n');
      expect(new Uint8Array(readFileSync(join(out, 'blob')))).toEqual(odd);
      expect(statSync(join(out, 'blob')).mode & 0o777).toBe(0o640);
      expect(readlinkSync(join(out, 'link'))).toBe('etc/hello');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses absolute, empty, dot-dot and duplicate paths', () => {
    expect(() => buildCpio([{ type: 'dir', path: '/etc' }])).toThrow(/bad path/);
    expect(() => buildCpio([{ type: 'dir', path: 'a/../b' }])).toThrow(/bad path/);
    expect(() => buildCpio([{ type: 'dir', path: 'a//b' }])).toThrow(/bad path/);
    expect(() => buildCpio([{ type: 'dir', path: 'a' }, { type: 'dir', path: 'a' }])).toThrow(/duplicate/);
  });

  it('is deterministic', () => {
    const e = busyboxInitramfs(new Uint8Array([1, 2, 3]), [{ name: 'm', data: new Uint8Array([9]) }]);
    expect(buildCpio(e)).toEqual(buildCpio(e));
  });
});

describe('initScript', () => {
  it('loads the modules in the given order before the script and powers off after it', () => {
    const s = initScript({ modules: ['/lib/modules/a.ko', '/lib/modules/b.ko'], script: 'echo MARK' });
    const a = s.indexOf('insmod /lib/modules/a.ko');
    const b = s.indexOf('insmod /lib/modules/b.ko');
    expect(a).toBeGreaterThan(s.indexOf('--install'));
    expect(b).toBeGreaterThan(a);
    expect(s.indexOf('echo MARK')).toBeGreaterThan(b);
    expect(s.trimEnd().endsWith('poweroff -f')).toBe(true);
    expect(initScript({ poweroff: false })).not.toMatch(/^poweroff/m);
  });
});
