// KSM on mmu-ept address spaces: merging, copy-on-write, zero pages, chains, knobs, counters.
import { ACC_SR, ACC_SW, AddressSpace, HostMemory, Mmu, ZERO_FRAME } from '@ringzero/mmu-ept';
import { describe, expect, it } from 'vitest';
import { Ksm, KsmKnobError, ManualScheduler, type KsmKnobs } from './index';

const PAGE = 4096;

function vms(n: number, pages: number, host = new HostMemory({ chunkShift: 10 })) {
  const spaces: AddressSpace[] = [];
  for (let i = 0; i < n; i++) {
    const s = new AddressSpace(host);
    s.addRam(0, pages * PAGE);
    spaces.push(s);
  }
  return { host, spaces };
}

/** Fills a page with a pattern derived from `seed` (seed 0 = all zero bytes, but backed by a frame). */
function fill(space: AddressSpace, page: number, seed: number): void {
  const b = new Uint8Array(PAGE);
  if (seed !== 0) for (let i = 0; i < PAGE; i += 4) new DataView(b.buffer).setUint32(i, Math.imul(seed, 0x9e3779b1) ^ i, true);
  expect(space.writeFrom(page * PAGE, b)).toBe(true);
  if (seed === 0) expect(space.frameAt(page * PAGE)).not.toBe(ZERO_FRAME);
}

function ksmOver(spaces: AddressSpace[], pages: number, knobs: Partial<KsmKnobs> = {}) {
  const ksm = new Ksm({ scheduler: new ManualScheduler(), knobs });
  spaces.forEach((s, i) => ksm.register(s, 0, pages * PAGE, `vm${i}`));
  return ksm;
}

describe('KSM merging', () => {
  it('needs two full scans (checksum, then unstable tree), then frees the duplicates', () => {
    const { host, spaces } = vms(3, 16);
    // Pages 0..9 identical across VMs; 10..15 unique per VM.
    for (let v = 0; v < 3; v++) for (let p = 0; p < 16; p++) fill(spaces[v], p, p < 10 ? 100 + p : 1000 * (v + 1) + p);
    const before = host.framesInUse;
    const ksm = ksmOver(spaces, 16);
    ksm.scanFull(1);
    expect(ksm.counters()).toMatchObject({ pages_shared: 0, pages_sharing: 0, pages_volatile: 48, full_scans: 1, pages_scanned: 48 });
    ksm.scanFull(1);
    const c = ksm.counters();
    expect(c).toMatchObject({ pages_shared: 10, pages_sharing: 20, pages_unshared: 18, pages_volatile: 0, full_scans: 2 });
    expect(host.framesInUse).toBe(before - 20);
    for (let p = 0; p < 10; p++) {
      const f = spaces[0].frameAt(p * PAGE);
      expect(spaces[1].frameAt(p * PAGE)).toBe(f);
      expect(spaces[2].frameAt(p * PAGE)).toBe(f);
      expect(host.refCount(f)).toBe(4); // three mappers + the KSM page's own reference
    }
    expect(c.general_profit).toBe(20 * PAGE - 48 * 64);
    expect(ksm.vmStat('vm1')).toEqual({ ksm_rmap_items: 16, ksm_merging_pages: 10, ksm_zero_pages: 0, ksm_process_profit: 10 * PAGE - 16 * 64 });
    // Further scans keep the state stable (no double counting).
    ksm.scanFull(2);
    expect(ksm.counters()).toMatchObject({ pages_shared: 10, pages_sharing: 20, pages_unshared: 18 });
  });

  it('a write breaks only the writer\'s copy, by CPU (EPT violation) or by device; the next visit updates the counters', () => {
    const { host, spaces } = vms(2, 4);
    for (const s of spaces) for (let p = 0; p < 4; p++) fill(s, p, 7);
    const ksm = ksmOver(spaces, 4);
    ksm.scanFull(2);
    expect(ksm.counters()).toMatchObject({ pages_shared: 1, pages_sharing: 7 });
    const shared = spaces[0].frameAt(0);
    const old = spaces[1].read32(8);
    // The CPU of VM 0 writes page 1 with paging off: EPT violation -> copy-on-write.
    const cpu = new Mmu(spaces[0].ept!, spaces[0]);
    expect(cpu.read8(PAGE + 8, 0, ACC_SR)).toBe(old & 0xff);
    expect(cpu.write8(PAGE + 8, 0, 0x5a, ACC_SW)).toBe(true);
    expect(spaces[0].frameAt(PAGE)).not.toBe(shared);
    expect(spaces[0].read8(PAGE + 8)).toBe(0x5a);
    // A device write into VM 1, page 2.
    expect(spaces[1].write32(2 * PAGE + 8, 0xdeadbeef)).toBe(true);
    for (let p = 0; p < 4; p++) {
      for (let v = 0; v < 2; v++) {
        const expected = (v === 0 && p === 1) ? (old & ~0xff) | 0x5a : v === 1 && p === 2 ? 0xdeadbeef : old;
        expect(spaces[v].read32(p * PAGE + 8) >>> 0).toBe(expected >>> 0);
      }
    }
    expect(host.refCount(shared)).toBe(7); // 6 mappers + KSM
    expect(ksm.counters().pages_sharing).toBe(7); // lags until the pages are visited again
    ksm.scanFull(1);
    expect(ksm.counters()).toMatchObject({ pages_shared: 1, pages_sharing: 5 });
    expect(ksm.staleMappings).toBe(2);
  });

  it('use_zero_pages maps zero-filled pages to the zero frame; otherwise they merge like any page', () => {
    const a = vms(1, 8);
    for (let p = 0; p < 8; p++) fill(a.spaces[0], p, p < 6 ? 0 : 5);
    const before = a.host.framesInUse;
    const ksm = ksmOver(a.spaces, 8, { use_zero_pages: 1 });
    ksm.scanFull(2);
    expect(ksm.counters()).toMatchObject({ ksm_zero_pages: 6, pages_shared: 1, pages_sharing: 1 });
    expect(a.host.framesInUse).toBe(before - 7);
    expect(ksm.vmStat('vm0').ksm_zero_pages).toBe(6);
    expect(ksm.counters().general_profit).toBe((1 + 6) * PAGE - 2 * 64);
    a.spaces[0].write8(3 * PAGE, 9); // the zero page is copied on write
    expect(a.spaces[0].read8(3 * PAGE)).toBe(9);
    expect(a.spaces[0].read8(4 * PAGE)).toBe(0);
    ksm.scanFull(1);
    expect(ksm.counters().ksm_zero_pages).toBe(5);

    const b = vms(1, 8);
    for (let p = 0; p < 8; p++) fill(b.spaces[0], p, 0);
    const k2 = ksmOver(b.spaces, 8);
    k2.scanFull(2);
    expect(k2.counters()).toMatchObject({ ksm_zero_pages: 0, pages_shared: 1, pages_sharing: 7 });
  });

  it('max_page_sharing splits identical pages into dups of a chain', () => {
    const { spaces } = vms(1, 5);
    for (let p = 0; p < 5; p++) fill(spaces[0], p, 3);
    const ksm = ksmOver(spaces, 5, { max_page_sharing: 2 });
    ksm.scanFull(2);
    expect(ksm.counters()).toMatchObject({ pages_shared: 2, pages_sharing: 2, pages_unshared: 1, stable_node_chains: 1, stable_node_dups: 2 });
    const f0 = spaces[0].frameAt(0);
    expect(spaces[0].frameAt(PAGE)).toBe(f0);
    expect(spaces[0].frameAt(2 * PAGE)).not.toBe(f0);
    // Page 2 changes: its dup keeps one mapper, and page 4 (left in the unstable tree) joins that dup.
    fill(spaces[0], 2, 4);
    ksm.scanFull(1);
    expect(spaces[0].frameAt(4 * PAGE)).toBe(spaces[0].frameAt(3 * PAGE));
    const c = ksm.counters();
    expect(c.pages_sharing + c.pages_shared).toBe(4);
    expect(c.stable_node_dups).toBe(2);
    // Freeing all but one dup collapses the chain.
    fill(spaces[0], 0, 10);
    fill(spaces[0], 1, 11);
    ksm.scanFull(1);
    expect(ksm.counters()).toMatchObject({ stable_node_chains: 0, stable_node_dups: 0 });
  });

  it('smart_scan skips pages that never merge, with Linux\'s back-off; off, nothing is skipped', () => {
    for (const smart of [1, 0]) {
      const { spaces } = vms(1, 32);
      for (let p = 0; p < 32; p++) fill(spaces[0], p, 50 + p);
      const ksm = ksmOver(spaces, 32, { smart_scan: smart });
      ksm.scanFull(20);
      const c = ksm.counters();
      if (smart) {
        // Per page, visits 1..20: age 0,1,2,3 scanned; then skip 1 (age 3), 2 (age 4-5), 4 (6-8), 8 (9+).
        expect(c.pages_skipped).toBeGreaterThan(0);
        expect(c.pages_scanned + c.pages_skipped).toBe(20 * 32);
        expect(c.pages_scanned).toBeLessThan(12 * 32);
      } else {
        expect(c).toMatchObject({ pages_skipped: 0, pages_scanned: 20 * 32 });
      }
    }
  });

  it('balloon-discarded and never-touched pages have no rmap item', () => {
    const { spaces } = vms(2, 8);
    for (const s of spaces) for (let p = 0; p < 4; p++) fill(s, p, 1 + p);
    const ksm = ksmOver(spaces, 8);
    ksm.scanFull(2);
    expect(ksm.counters()).toMatchObject({ pages_shared: 4, pages_sharing: 4 });
    spaces[0].discard(0, 2 * PAGE);
    ksm.scanFull(1);
    // vm1's two pages still map their KSM pages alone: still KSM pages (pages_shared), no longer sharing.
    expect(ksm.counters()).toMatchObject({ pages_shared: 4, pages_sharing: 2, pages_volatile: 0 });
    expect(ksm.vmStat('vm0').ksm_rmap_items).toBe(2);
    expect(spaces[1].read32(8)).not.toBe(0);
  });

  it('unregister (and run=2) unmerges: private copies again, counters back to zero', () => {
    const { host, spaces } = vms(2, 8);
    for (const s of spaces) for (let p = 0; p < 8; p++) fill(s, p, 9 + p);
    const before = host.framesInUse;
    const ksm = ksmOver(spaces, 8);
    ksm.scanFull(2);
    expect(host.framesInUse).toBe(before - 8 + 0);
    ksm.set('run', 2);
    expect(ksm.counters()).toMatchObject({ pages_shared: 0, pages_sharing: 0 });
    expect(host.framesInUse).toBe(before);
    ksm.set('run', 0);
    ksm.scanFull(2);
    expect(host.framesInUse).toBe(before - 8);
    for (const r of ksm.list()) expect(ksm.unregister(r.id)).toBe(0);
    expect(host.framesInUse).toBe(before);
    expect(ksm.counters()).toMatchObject({ pages_shared: 0, pages_sharing: 0, pages_unshared: 0, pages_volatile: 0, general_profit: 0 });
    expect(ksm.vmStat('vm0').ksm_rmap_items).toBe(0);
  });
});

describe('KSM knobs, counters and ksmd pacing', () => {
  it('has Linux\'s defaults and refuses what Linux refuses', () => {
    const ksm = new Ksm({ scheduler: new ManualScheduler() });
    expect(ksm.knobs).toEqual({
      run: 0,
      pages_to_scan: 100,
      sleep_millisecs: 20,
      merge_across_nodes: 1,
      use_zero_pages: 0,
      max_page_sharing: 256,
      stable_node_chains_prune_millisecs: 2000,
      smart_scan: 1,
    });
    expect(() => ksm.set('run', 3)).toThrow(KsmKnobError);
    expect(() => ksm.set('max_page_sharing', 1)).toThrow(/at least 2/);
    expect(() => ksm.writeFile('pages_to_scan', 'abc')).toThrow(KsmKnobError);
    ksm.writeFile('pages_to_scan', '1000\n');
    expect(ksm.readFile('pages_to_scan')).toBe('1000\n');
    const { spaces } = vms(2, 2);
    for (const s of spaces) fill(s, 0, 1);
    ksm.register(spaces[0], 0, 2 * PAGE, 'a');
    ksm.register(spaces[1], 0, 2 * PAGE, 'b');
    ksm.scanFull(2);
    let err: unknown;
    try {
      ksm.set('max_page_sharing', 10);
    } catch (e) {
      err = e;
    }
    expect((err as KsmKnobError).code).toBe('EBUSY');
    expect(() => ksm.set('merge_across_nodes', 0)).toThrow(KsmKnobError);
  });

  it('dumps a /sys/kernel/mm/ksm-like listing', () => {
    const ksm = new Ksm({ scheduler: new ManualScheduler() });
    const lines = ksm.sysfs().trimEnd().split('\n');
    expect(lines).toContain('/sys/kernel/mm/ksm/pages_to_scan:100');
    expect(lines).toContain('/sys/kernel/mm/ksm/max_page_sharing:256');
    expect(lines).toContain('/sys/kernel/mm/ksm/general_profit:0');
    const names = lines.map((l) => l.slice('/sys/kernel/mm/ksm/'.length, l.indexOf(':')));
    expect(names).toEqual([...names].sort());
    for (const n of ['pages_shared', 'pages_sharing', 'pages_unshared', 'pages_volatile', 'pages_scanned', 'full_scans', 'stable_node_chains', 'stable_node_dups', 'ksm_zero_pages', 'run', 'smart_scan', 'use_zero_pages', 'merge_across_nodes', 'sleep_millisecs']) {
      expect(names).toContain(n);
    }
  });

  it('run=1 scans pages_to_scan pages per wake-up, sleeping sleep_millisecs between, on the injected clock', () => {
    const clock = new ManualScheduler();
    const ksm = new Ksm({ scheduler: clock });
    const { spaces } = vms(1, 1000);
    for (let p = 0; p < 1000; p++) fill(spaces[0], p, p + 1);
    ksm.register(spaces[0], 0, 1000 * PAGE);
    ksm.set('run', 1);
    clock.advance(0);
    expect(ksm.counters().pages_scanned).toBe(100);
    clock.advance(19);
    expect(ksm.counters().pages_scanned).toBe(100);
    clock.advance(1);
    expect(ksm.counters().pages_scanned).toBe(200);
    clock.advance(20 * 8);
    expect(ksm.counters()).toMatchObject({ pages_scanned: 1000, full_scans: 0 });
    clock.advance(20);
    expect(ksm.counters().full_scans).toBe(1);
    ksm.set('run', 0);
    clock.advance(1000);
    expect(clock.pendingTimers).toBe(0);
    expect(ksm.counters().pages_scanned).toBe(1100);
  });

  it('rejects overlapping registrations and spaces on another host', () => {
    const ksm = new Ksm({ scheduler: new ManualScheduler() });
    const a = vms(1, 8);
    const b = vms(1, 8);
    ksm.register(a.spaces[0], 0, 4 * PAGE);
    expect(() => ksm.register(a.spaces[0], 3 * PAGE, 4 * PAGE)).toThrow(/overlaps/);
    expect(() => ksm.register(b.spaces[0], 0, 4 * PAGE)).toThrow(/HostMemory/);
    expect(() => ksm.register(a.spaces[0], 5, PAGE)).toThrow(RangeError);
  });
});
