import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MEM_PF_BASE, PFEC_I, PFEC_P, PFEC_U, PFEC_W } from '../memory';
import { PAGE_SIZE, PROT_EXEC, PROT_NONE, PROT_READ, PROT_WRITE, USER_TOP, UserMemory } from './memory';

const pf = (code: number): number => MEM_PF_BASE - code;

describe('UserMemory', () => {
  it('reads zeros from fresh pages and round-trips every access size, also across pages', () => {
    const m = new UserMemory();
    expect(m.map(0x10000, 2 * PAGE_SIZE, PROT_READ | PROT_WRITE)).toBe(true);
    expect(m.read64(0x10ff8, new Int32Array(2), 0)).toBe(0);
    expect(m.read32(0x10000)).toBe(0);
    expect(m.residentPages).toBe(0); // reads do not allocate
    for (const la of [0x10000, 0x10ffd, 0x10fff, 0x10ffe, 0x10ff9]) {
      expect(m.write32(la, 0xdeadbeef | 0)).toBe(0);
      expect(m.read32(la)).toBe(0xdeadbeef);
      expect(m.write16(la, 0xbeef)).toBe(0);
      expect(m.read16(la)).toBe(0xbeef);
      expect(m.write64(la, 0x01234567, 0x89abcdef | 0)).toBe(0);
      const out = new Int32Array(2);
      expect(m.read64(la, out, 0)).toBe(0);
      expect([out[0] >>> 0, out[1] >>> 0]).toEqual([0x01234567, 0x89abcdef]);
      expect(m.read8(la + 7)).toBe(0x89);
    }
    expect(m.residentPages).toBe(2);
  });

  it('faults with the page-fault error code and CR2 of the first bad byte', () => {
    const m = new UserMemory();
    m.map(0x20000, PAGE_SIZE, PROT_READ);
    m.map(0x21000, PAGE_SIZE, PROT_READ | PROT_WRITE);
    expect(m.read8(0x30000)).toBe(pf(PFEC_U));
    expect(m.faultAddress).toBe(0x30000);
    expect(m.write8(0x20010, 1)).toBe(pf(PFEC_U | PFEC_W | PFEC_P));
    expect(m.fetch8(0x20010)).toBe(pf(PFEC_U | PFEC_I | PFEC_P)); // NX: readable is not executable
    // A write crossing from a writable page into an unmapped one changes nothing.
    expect(m.write32(0x21ffe, 0x11223344)).toBe(pf(PFEC_U | PFEC_W));
    expect(m.faultAddress).toBe(0x22000);
    expect(m.read16(0x21ffe)).toBe(0);
    // And a write crossing from a read-only page into a writable one, too.
    expect(m.write64(0x20ffc, -1, -1)).toBe(pf(PFEC_U | PFEC_W | PFEC_P));
    expect(m.read32(0x21000)).toBe(0);
    // Kernel-half, NaN and too-high addresses.
    for (const la of [-8, NaN, USER_TOP, USER_TOP - 2]) {
      expect(m.read32(la)).toBeLessThan(0);
      expect(m.write32(la, 0)).toBeLessThan(0);
    }
  });

  it('honours mprotect and munmap after the TLB has cached a page', () => {
    const m = new UserMemory();
    m.map(0x40000, PAGE_SIZE, PROT_READ | PROT_WRITE | PROT_EXEC);
    expect(m.write8(0x40000, 0x90)).toBe(0);
    expect(m.fetch8(0x40000)).toBe(0x90);
    expect(m.protect(0x40000, PAGE_SIZE, PROT_NONE)).toBe(true);
    expect(m.read8(0x40000)).toBe(pf(PFEC_U | PFEC_P));
    expect(m.fetch8(0x40000)).toBe(pf(PFEC_U | PFEC_I | PFEC_P));
    expect(m.protect(0x40000, PAGE_SIZE, PROT_READ)).toBe(true);
    expect(m.read8(0x40000)).toBe(0x90);
    expect(m.protect(0x40000, 2 * PAGE_SIZE, PROT_READ)).toBe(false); // second page unmapped
    m.unmap(0x40000, PAGE_SIZE);
    expect(m.read8(0x40000)).toBe(pf(PFEC_U));
    expect(m.mappedPages).toBe(0);
    expect(m.residentPages).toBe(0);
  });

  it('sees a page written after it was read through the shared zero page', () => {
    const m = new UserMemory();
    m.map(0x50000, PAGE_SIZE, PROT_READ | PROT_WRITE | PROT_EXEC);
    expect(m.read8(0x50123)).toBe(0);
    expect(m.fetch8(0x50123)).toBe(0);
    m.write8(0x50123, 0xab);
    expect(m.read8(0x50123)).toBe(0xab);
    expect(m.fetch8(0x50123)).toBe(0xab);
  });

  it('fetchBytes gives the decoder the fetchable bytes, stopping where fetch8 would fault', () => {
    const m = new UserMemory();
    m.map(0x70000, PAGE_SIZE, PROT_READ | PROT_WRITE | PROT_EXEC);
    m.map(0x71000, PAGE_SIZE, PROT_READ | PROT_WRITE | PROT_EXEC);
    m.map(0x72000, PAGE_SIZE, PROT_READ | PROT_WRITE);
    for (let i = 0; i < 32; i++) m.write8(0x70ff0 + i, i + 1);
    const dst = new Uint8Array(15);
    expect(m.fetchBytes(0x70ff8, dst, 15)).toBe(15); // across an executable page boundary
    expect([...dst]).toEqual([...Array(15).keys()].map((i) => i + 9));
    expect(m.fetchBytes(0x71ffa, dst, 15)).toBe(6); // the next page is not executable
    expect(m.fetchBytes(0x72000, dst, 15)).toBe(0);
    expect(m.fetchBytes(0x90000, dst, 15)).toBe(0);
    expect(m.fetchBytes(-4, dst, 15)).toBe(0);
  });

  it('decode-cache support: writes to pages marked as code, and their remapping, bump codeWrites', () => {
    const m = new UserMemory();
    m.map(0x80000, 2 * PAGE_SIZE, PROT_READ | PROT_WRITE | PROT_EXEC);
    expect(m.write32(0x80000, 1)).toBe(0); // fills the write TLB before the page is code
    expect(m.markCode(0x80010)).toBe(true);
    expect(m.markCode(0x90000)).toBe(false);
    let g = m.codeWrites;
    expect(m.write8(0x81000, 1)).toBe(0); // a data page: no change
    expect(m.codeWrites).toBe(g);
    expect(m.write32(0x80004, 0x90909090 | 0)).toBe(0);
    expect(m.codeWrites).toBeGreaterThan(g);
    expect(m.fetch8(0x80004)).toBe(0x90);
    g = m.codeWrites;
    expect(m.write8(0x80008, 0xcc)).toBe(0); // again: code pages stay out of the write TLB
    expect(m.codeWrites).toBeGreaterThan(g);
    g = m.codeWrites;
    expect(m.writeFrom(0x80ff0, new Uint8Array(32))).toBe(true); // the kernel's copy_to_user too
    expect(m.codeWrites).toBeGreaterThan(g);
    g = m.codeWrites;
    m.protect(0x81000, PAGE_SIZE, PROT_READ); // not code
    expect(m.codeWrites).toBe(g);
    m.protect(0x80000, PAGE_SIZE, PROT_READ | PROT_EXEC);
    expect(m.codeWrites).toBeGreaterThan(g);
    g = m.codeWrites;
    m.unmap(0x80000, PAGE_SIZE);
    expect(m.codeWrites).toBeGreaterThan(g);
  });

  it('bulk copies check protection and refuse before writing anything', () => {
    const m = new UserMemory();
    m.map(0x60000, PAGE_SIZE, PROT_READ | PROT_WRITE);
    m.map(0x61000, PAGE_SIZE, PROT_READ);
    expect(m.writeFrom(0x60ff0, new Uint8Array(32).fill(7))).toBe(false);
    expect(m.read8(0x60ff0)).toBe(0);
    expect(m.writeFrom(0x60ff0, new Uint8Array(32).fill(7), 0)).toBe(true); // the loader may
    expect(m.readBytes(0x60ff0, 32)).toEqual(new Uint8Array(32).fill(7));
    expect(m.readBytes(0x61ff0, 32)).toBeNull();
    expect(m.accessible(0x60000, 2 * PAGE_SIZE, PROT_READ)).toBe(true);
    expect(m.accessible(0x60000, 2 * PAGE_SIZE, PROT_WRITE)).toBe(false);
    m.writeFrom(0x60100, new TextEncoder().encode('abc\0'));
    expect(m.readCString(0x60100)).toEqual(new TextEncoder().encode('abc'));
    expect(m.readCString(0x60100, 2)).toBeNull();
  });

  it('refuses mappings beyond its page limit or outside user space', () => {
    const m = new UserMemory({ maxPages: 4 });
    expect(m.map(0x1000, 5 * PAGE_SIZE, PROT_READ)).toBe(false);
    expect(m.mappedPages).toBe(0);
    expect(m.map(0x1000, 4 * PAGE_SIZE, PROT_READ)).toBe(true);
    expect(m.map(0x1000, 4 * PAGE_SIZE, PROT_WRITE)).toBe(true); // remapping adds nothing
    expect(m.map(USER_TOP - PAGE_SIZE, 2 * PAGE_SIZE, PROT_READ)).toBe(false);
    expect(m.map(0x1001, PAGE_SIZE, PROT_READ)).toBe(false);
    expect(m.map(-PAGE_SIZE, PAGE_SIZE, PROT_READ)).toBe(false);
  });

  it('agrees with a byte-map model under random maps, protections, reads and writes', () => {
    const base = 0x7fff_fff0_0000; // near the top of user space: exercises large addresses
    const op = fc.oneof(
      fc.record({ k: fc.constant('map' as const), page: fc.nat(7), n: fc.integer({ min: 1, max: 3 }), prot: fc.nat(7) }),
      fc.record({ k: fc.constant('unmap' as const), page: fc.nat(7), n: fc.integer({ min: 1, max: 3 }) }),
      fc.record({ k: fc.constant('protect' as const), page: fc.nat(7), n: fc.integer({ min: 1, max: 2 }), prot: fc.nat(7) }),
      fc.record({ k: fc.constant('write' as const), off: fc.nat(8 * PAGE_SIZE - 1), size: fc.constantFrom(1, 2, 4, 8), v: fc.integer(), w: fc.integer() }),
      fc.record({ k: fc.constant('read' as const), off: fc.nat(8 * PAGE_SIZE - 1), size: fc.constantFrom(1, 2, 4, 8), fetch: fc.boolean() }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
        const m = new UserMemory();
        const prot = new Map<number, number>();
        const bytes = new Map<number, number>();
        for (const o of ops) {
          if (o.k === 'map') {
            m.map(base + o.page * PAGE_SIZE, o.n * PAGE_SIZE, o.prot);
            for (let p = o.page; p < o.page + o.n; p++) {
              prot.set(p, o.prot);
              for (let i = 0; i < PAGE_SIZE; i++) bytes.delete(p * PAGE_SIZE + i);
            }
          } else if (o.k === 'unmap') {
            m.unmap(base + o.page * PAGE_SIZE, o.n * PAGE_SIZE);
            for (let p = o.page; p < o.page + o.n; p++) prot.delete(p);
          } else if (o.k === 'protect') {
            let all = true;
            for (let p = o.page; p < o.page + o.n; p++) if (!prot.has(p)) all = false;
            expect(m.protect(base + o.page * PAGE_SIZE, o.n * PAGE_SIZE, o.prot)).toBe(all);
            if (all) for (let p = o.page; p < o.page + o.n; p++) prot.set(p, o.prot);
          } else {
            const la = base + o.off;
            let ok = true;
            const need = o.k === 'write' ? PROT_WRITE : o.k === 'read' && o.fetch ? PROT_EXEC : PROT_READ;
            for (let i = 0; i < o.size; i++) {
              const p = Math.floor((o.off + i) / PAGE_SIZE);
              if (!((prot.get(p) ?? 0) & need) || !prot.has(p)) ok = false;
            }
            if (o.k === 'write') {
              const st = o.size === 1 ? m.write8(la, o.v & 0xff) : o.size === 2 ? m.write16(la, o.v & 0xffff) : o.size === 4 ? m.write32(la, o.v) : m.write64(la, o.v, o.w);
              expect(st === 0).toBe(ok);
              if (ok) for (let i = 0; i < o.size; i++) bytes.set(o.off + i, (i < 4 ? o.v >> (8 * i) : o.w >> (8 * (i - 4))) & 0xff);
            } else if (o.fetch) {
              const v = m.fetch8(la);
              const p = prot.get(Math.floor(o.off / PAGE_SIZE));
              expect(v >= 0).toBe(p !== undefined && (p & PROT_EXEC) !== 0);
              if (v >= 0) expect(v).toBe(bytes.get(o.off) ?? 0);
            } else {
              const out = new Int32Array(2);
              const v = o.size === 1 ? m.read8(la) : o.size === 2 ? m.read16(la) : o.size === 4 ? m.read32(la) : m.read64(la, out, 0);
              expect(v >= 0).toBe(ok);
              if (ok) {
                let lo = 0;
                let hi = 0;
                for (let i = 0; i < o.size; i++) {
                  const b = bytes.get(o.off + i) ?? 0;
                  if (i < 4) lo += b * 2 ** (8 * i);
                  else hi += b * 2 ** (8 * (i - 4));
                }
                if (o.size === 8) expect([out[0] >>> 0, out[1] >>> 0]).toEqual([lo, hi]);
                else expect(v).toBe(lo);
              }
            }
          }
        }
      }),
      { numRuns: 150 },
    );
  });
});
