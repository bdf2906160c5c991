import type { BlockDevice } from './device';

/** One named conformance check; `run` throws on failure. */
export interface ConformanceCase {
  name: string;
  run: () => Promise<void>;
}

function fail(msg: string): never {
  throw new Error(`conformance: ${msg}`);
}

function pattern(len: number, seed: number): Uint8Array {
  const b = new Uint8Array(len);
  let x = seed * 2654435761 + 1;
  for (let i = 0; i < len; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * The BlockDevice contract, run against every backend (raw, qcow2, memory). `make` returns a
 * fresh zero-filled writable device of `size` bytes (at least 4 MiB) and a way to reopen it
 * after close (or null when the backend doesn't persist).
 */
export function blockDeviceConformance(make: (size: number) => Promise<{ dev: BlockDevice; reopen: (() => Promise<BlockDevice>) | null }>): ConformanceCase[] {
  const size = 4 * 1024 * 1024;
  return [
    {
      name: 'reports its size and reads zeros when fresh',
      run: async () => {
        const { dev } = await make(size);
        if (dev.size !== size) fail(`size ${dev.size} != ${size}`);
        if (dev.readOnly) fail('fresh device is read-only');
        const d = await dev.read(size - 8192, 8192);
        if (d.length !== 8192 || d.some((x) => x !== 0)) fail('fresh device does not read zeros');
        await dev.close();
      },
    },
    {
      name: 'reads back unaligned writes across cluster boundaries',
      run: async () => {
        const { dev } = await make(size);
        const a = pattern(200_001, 1);
        await dev.write(65_530, a);
        const b = pattern(513, 2);
        await dev.write(3, b);
        const r = await dev.read(65_530, a.length);
        if (!equal(r, a)) fail('unaligned write mismatch');
        const r2 = await dev.read(0, 516);
        if (r2[0] !== 0 || !equal(r2.subarray(3), b)) fail('small write mismatch');
        await dev.close();
      },
    },
    {
      name: 'writeZeroes zeroes exactly the range',
      run: async () => {
        const { dev } = await make(size);
        const a = pattern(300_000, 3);
        await dev.write(100_000, a);
        await dev.writeZeroes(131_072, 70_000);
        const r = await dev.read(100_000, a.length);
        const exp = a.slice();
        exp.fill(0, 31_072, 31_072 + 70_000);
        if (!equal(r, exp)) fail('writeZeroes result mismatch');
        await dev.close();
      },
    },
    {
      name: 'discard leaves data outside the range untouched',
      run: async () => {
        const { dev } = await make(size);
        const a = pattern(262_144, 4);
        await dev.write(0, a);
        await dev.discard(65_536, 65_536);
        const r = await dev.read(0, 65_536);
        const r2 = await dev.read(131_072, 131_072);
        if (!equal(r, a.subarray(0, 65_536)) || !equal(r2, a.subarray(131_072))) fail('discard touched outside its range');
        await dev.close();
      },
    },
    {
      name: 'rejects out-of-range requests',
      run: async () => {
        const { dev } = await make(size);
        let threw = 0;
        try {
          await dev.read(size - 10, 11);
        } catch {
          threw++;
        }
        try {
          await dev.write(size, new Uint8Array(1));
        } catch {
          threw++;
        }
        if (threw !== 2) fail('out-of-range request accepted');
        await dev.close();
      },
    },
    {
      name: 'concurrent writes to distinct ranges all land',
      run: async () => {
        const { dev } = await make(size);
        const chunks = Array.from({ length: 16 }, (_, i) => pattern(10_000 + i * 7, 10 + i));
        await Promise.all(chunks.map((c, i) => dev.write(i * 200_000 + 17, c)));
        const back = await Promise.all(chunks.map((c, i) => dev.read(i * 200_000 + 17, c.length)));
        back.forEach((b, i) => {
          if (!equal(b, chunks[i])) fail(`concurrent write ${i} lost`);
        });
        await dev.close();
      },
    },
    {
      name: 'requests on a closed device return rejected promises (never a synchronous throw)',
      run: async () => {
        const { dev } = await make(size);
        await dev.write(0, pattern(4096, 6));
        await dev.close();
        const calls: [string, () => Promise<unknown>][] = [
          ['read', () => dev.read(0, 512)],
          ['write', () => dev.write(0, new Uint8Array(512))],
          ['discard', () => dev.discard(0, 65_536)],
          ['writeZeroes', () => dev.writeZeroes(0, 4096)],
          ['flush', () => dev.flush()],
          ['write out of range', () => dev.write(size, new Uint8Array(1))],
        ];
        for (const [what, call] of calls) {
          let p: Promise<unknown>;
          try {
            p = call();
          } catch {
            fail(`${what} on a closed device threw synchronously`);
          }
          let rejected = false;
          await p.catch(() => {
            rejected = true;
          });
          if (!rejected) fail(`${what} on a closed device did not reject`);
        }
        await dev.close();
      },
    },
    {
      name: 'bad arguments give rejected promises, not synchronous throws',
      run: async () => {
        const { dev } = await make(size);
        const calls: [string, () => Promise<unknown>][] = [
          ['read past the end', () => dev.read(size, 1)],
          ['negative write', () => dev.write(-1, new Uint8Array(1))],
          ['fractional discard', () => dev.discard(0.5, 512)],
          ['huge writeZeroes', () => dev.writeZeroes(0, size + 1)],
        ];
        for (const [what, call] of calls) {
          let p: Promise<unknown>;
          try {
            p = call();
          } catch {
            fail(`${what} threw synchronously`);
          }
          let rejected = false;
          await p.catch(() => {
            rejected = true;
          });
          if (!rejected) fail(`${what} did not reject`);
        }
        await dev.close();
      },
    },
    {
      name: 'data survives flush, close and reopen',
      run: async () => {
        const { dev, reopen } = await make(size);
        const a = pattern(150_000, 5);
        await dev.write(1_000_000, a);
        await dev.flush();
        await dev.close();
        if (!reopen) return;
        const d2 = await reopen();
        const r = await d2.read(1_000_000, a.length);
        if (!equal(r, a)) fail('data lost across reopen');
        await d2.close();
      },
    },
  ];
}
