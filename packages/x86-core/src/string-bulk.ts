/**
 * Bulk REP STOS / REP MOVS: whole runs of elements that stay inside one page of the destination
 * (and of the source) are done with typed-array fill/copy straight in host memory, through
 * CpuMemory.span (a TLB hit that allows the access with no side effect). Everything else (the
 * first element on a page the TLB cannot serve, elements that cross a page, faults, MMIO, watched
 * pages, DF = 1, segment-checked modes) is left to the ordinary element loop in exec/string.ts,
 * which therefore still defines the architected behaviour; this only does the common case faster.
 *
 * Registers are committed as the runs complete (rCX, rDI, rSI), exactly as the element loop would
 * have left them after the same number of elements.
 */
import { DF, ES, FS, GS, RAX, RCX, RDI, RSI } from './constants';
import { canon } from './arith';
import type { Cpu } from './cpu';
import type { Insn } from './insn';

const TWO32 = 4294967296;

/** Linear address of seg:rR, or NaN where the bulk path does not apply (segment checks). */
function bulkAddr(cpu: Cpu, d: Insn, seg: number, r: number): number {
  if (d.asize === 8) {
    const la = canon(cpu.lo[r], cpu.hi[r]);
    return seg === FS || seg === GS ? la + cpu.segBase[seg] : la;
  }
  if (d.asize !== 4) return NaN;
  const off = cpu.lo[r] >>> 0;
  if (d.csize === 8) return seg === FS || seg === GS ? off + cpu.segBase[seg] : off;
  if (cpu.segChk !== 0 && ((cpu.segChk >> seg) & 1) !== 0) return NaN;
  return (cpu.segBase[seg] + off) >>> 0;
}

function advanceBy(cpu: Cpu, asize: number, r: number, delta: number): void {
  if (asize === 8) {
    const s = (cpu.lo[r] >>> 0) + delta;
    cpu.hi[r] = (cpu.hi[r] + Math.floor(s / TWO32)) | 0;
    cpu.lo[r] = s | 0;
  } else {
    cpu.lo[r] = (cpu.lo[r] + delta) | 0;
    if (cpu.csize === 8) cpu.hi[r] = 0;
  }
}

function setCount(cpu: Cpu, asize: number, n: number): void {
  cpu.lo[RCX] = n | 0;
  if (asize === 8) cpu.hi[RCX] = Math.floor(n / TWO32) | 0;
  else if (cpu.csize === 8) cpu.hi[RCX] = 0;
}

/** Fills count elements of `size` bytes at dst[at] with rAX's low `size` bytes. */
function fillPattern(cpu: Cpu, dst: Uint8Array, at: number, size: number, count: number): void {
  const lo = cpu.lo[RAX];
  const total = count * size;
  if (size === 1 || (lo === 0 && (size < 8 || cpu.hi[RAX] === 0))) {
    dst.fill(lo & 0xff, at, at + total);
    return;
  }
  const hi = cpu.hi[RAX];
  for (let b = 0; b < size; b++) dst[at + b] = b < 4 ? lo >>> (8 * b) : hi >>> (8 * (b - 4));
  for (let len = size; len < total; ) {
    const n = len < total - len ? len : total - len;
    dst.copyWithin(at + len, at, at + n);
    len += n;
  }
}

/**
 * Does up to `max` elements of the REP STOS/MOVS `d` (rCX = n > 0 elements left) in bulk and
 * returns how many it did (0: the element loop must take the next one).
 */
export function repBulk(cpu: Cpu, d: Insn, n: number, max: number): number {
  const mem = cpu.mem;
  if (mem.span === undefined || (cpu.flags & DF) !== 0) return 0;
  const size = d.osize;
  const stos = (d.opcode & 0xfe) === 0xaa;
  if (!stos && (d.opcode & 0xfe) !== 0xa4) return 0;
  let left = n < max ? n : max;
  let done = 0;
  while (left > 0) {
    const dla = bulkAddr(cpu, d, ES, RDI);
    if (dla !== dla) break;
    let k = ((4096 - (dla & 4095)) / size) | 0;
    if (k > left) k = left;
    if (stos) {
      if (k === 0) break;
      const dst = mem.span(dla, true);
      if (dst == null) break;
      fillPattern(cpu, dst, mem.spanIndex as number, size, k);
    } else {
      const sla = bulkAddr(cpu, d, d.seg, RSI);
      if (sla !== sla) break;
      const ks = ((4096 - (sla & 4095)) / size) | 0;
      if (ks < k) k = ks;
      if (k === 0) break;
      // The source first, as each element reads before it writes (no D bit for a failed copy).
      const src = mem.span(sla, false);
      if (src == null) break;
      const si = mem.spanIndex as number;
      const dst = mem.span(dla, true);
      if (dst == null) break;
      const di = mem.spanIndex as number;
      // Forward element order: a destination that starts inside the source run would see bytes
      // the same instruction wrote; copy at most up to that point in one go.
      if (src === dst && di > si && di < si + k * size) {
        const gap = ((di - si) / size) | 0;
        if (gap === 0) break;
        k = gap;
      }
      const nb = k * size;
      if (src === dst) dst.copyWithin(di, si, si + nb);
      else for (let b = 0; b < nb; b++) dst[di + b] = src[si + b];
      advanceBy(cpu, d.asize, RSI, nb);
    }
    advanceBy(cpu, d.asize, RDI, k * size);
    n -= k;
    setCount(cpu, d.asize, n);
    done += k;
    left -= k;
  }
  return done;
}
