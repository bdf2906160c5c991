/**
 * The seeded generators of the differential tests. Two algorithms, so that every existing
 * test keeps its seeds and therefore its exact cases: mulberry32 (integer cases, gen.ts) and
 * xorshift128 on 32-bit words (SSE and x87 cases).
 */

/** The common generator surface. */
export interface Random {
  u32(): number;
  int(n: number): number;
  pick<T>(xs: readonly T[]): T;
}

/** mulberry32: small seeded PRNG. */
export class Mulberry32 implements Random {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0;
  }
  u32(): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }
  int(n: number): number {
    return this.u32() % n;
  }
  pick<T>(a: readonly T[]): T {
    return a[this.int(a.length)];
  }
}

/** xorshift128 on 32-bit words. */
export class XorShift128 implements Random {
  private a: number;
  private b: number;
  private c: number;
  private d: number;
  constructor(seed: number) {
    this.a = seed | 0 || 1;
    this.b = 0x9e3779b9;
    this.c = 0x243f6a88;
    this.d = 0xb7e15162;
    for (let i = 0; i < 16; i++) this.u32();
  }
  u32(): number {
    let t = this.d;
    const s = this.a;
    this.d = this.c;
    this.c = this.b;
    this.b = s;
    t ^= t << 11;
    t ^= t >>> 8;
    this.a = t ^ s ^ (s >>> 19);
    return this.a >>> 0;
  }
  /** Integer in [0, n). */
  int(n: number): number {
    return this.u32() % n;
  }
  chance(p: number): boolean {
    return this.u32() / 4294967296 < p;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)];
  }
}
