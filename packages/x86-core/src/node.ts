/**
 * Node adapters for @ringzero/x86-core: a LinuxHost over the host's files and stdio, used by
 * the ringzero-user CLI. Not reachable from index.ts (isomorphic core).
 */
import { closeSync, fstatSync, lstatSync, openSync, readdirSync, readSync, statSync, writeSync, type Stats } from 'node:fs';
import { randomFillSync } from 'node:crypto';
import { isatty } from 'node:tty';
import type { HostStat, LinuxHost } from './user/linux';

function errno(e: unknown): number {
  const code = (e as { errno?: number }).errno;
  return typeof code === 'number' ? (code < 0 ? code : -code) : -5;
}

function toStat(s: Stats): HostStat {
  return {
    dev: s.dev, ino: s.ino, mode: s.mode, nlink: s.nlink, uid: s.uid, gid: s.gid, rdev: s.rdev, size: s.size,
    blksize: s.blksize, blocks: s.blocks, atimeMs: s.atimeMs, mtimeMs: s.mtimeMs, ctimeMs: s.ctimeMs,
  };
}

/** Maps Linux open flags to Node's numeric flags (they are the same numbers on Linux). */
export class NodeLinuxHost implements LinuxHost {
  private readonly offsets = new Map<number, number>();
  private readonly paths = new Map<number, string>();

  read(fd: number, buf: Uint8Array, position: number | null): number {
    try {
      if (position != null) return readSync(fd, buf, 0, buf.length, position);
      if (fd <= 2) return readSync(fd, buf, 0, buf.length, null);
      const off = this.offsets.get(fd) ?? 0;
      const n = readSync(fd, buf, 0, buf.length, off);
      this.offsets.set(fd, off + n);
      return n;
    } catch (e) {
      if ((e as { code?: string }).code === 'EAGAIN') return 0;
      if ((e as { code?: string }).code === 'EOF') return 0;
      return errno(e);
    }
  }

  write(fd: number, data: Uint8Array): number {
    try {
      let done = 0;
      while (done < data.length) done += writeSync(fd, data, done, data.length - done);
      return done;
    } catch (e) {
      return errno(e);
    }
  }

  open(path: string, flags: number, mode: number): number {
    try {
      const fd = openSync(path, flags & ~0x80000, mode);
      this.offsets.set(fd, 0);
      this.paths.set(fd, path);
      return fd;
    } catch (e) {
      return errno(e);
    }
  }

  close(fd: number): number {
    if (fd <= 2) return 0;
    try {
      closeSync(fd);
      this.offsets.delete(fd);
      this.paths.delete(fd);
      return 0;
    } catch (e) {
      return errno(e);
    }
  }

  fstat(fd: number): HostStat | number {
    try {
      return toStat(fstatSync(fd));
    } catch (e) {
      return errno(e);
    }
  }

  stat(path: string, follow: boolean): HostStat | number {
    try {
      return toStat(follow ? statSync(path) : lstatSync(path));
    } catch (e) {
      return errno(e);
    }
  }

  lseek(fd: number, offset: number, whence: number): number {
    if (!this.offsets.has(fd)) return -29; // ESPIPE for stdio
    const cur = this.offsets.get(fd) ?? 0;
    let n: number;
    if (whence === 0) n = offset;
    else if (whence === 1) n = cur + offset;
    else if (whence === 2) {
      const st = this.fstat(fd);
      if (typeof st === 'number') return st;
      n = st.size + offset;
    } else return -22;
    if (n < 0) return -22;
    this.offsets.set(fd, n);
    return n;
  }

  readdir(fd: number): { name: string; ino: number; type: number }[] | number {
    const path = this.paths.get(fd);
    if (path === undefined) return -9;
    try {
      const list = readdirSync(path, { withFileTypes: true });
      return [
        { name: '.', ino: 1, type: 4 },
        { name: '..', ino: 1, type: 4 },
        ...list.map((d, i) => ({ name: d.name, ino: i + 2, type: d.isDirectory() ? 4 : d.isSymbolicLink() ? 10 : 8 })),
      ];
    } catch (e) {
      return errno(e);
    }
  }

  isatty(fd: number): boolean {
    return isatty(fd);
  }

  cwd(): string {
    return process.cwd();
  }

  now(): number {
    return Date.now();
  }

  monotonic(): number {
    return performance.now();
  }

  randomBytes(buf: Uint8Array): void {
    randomFillSync(buf);
  }
}
