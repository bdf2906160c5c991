// Real peers: the Linux UAPI header <linux/virtio_balloon.h> compiled by gcc (feature bits,
// config layout, stat tags and names, the packed 10-byte stat entry, PFN shift, command ids)
// and the lz4 CLI, whose frame format ends with the XXH32 of the content (the checksum KSM uses).
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import * as B from './balloon';
import { xxh32, xxh32Page } from './xxhash';

const dir = mkdtempSync(join(tmpdir(), 'balloon-peers-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const HEADER = '/usr/include/linux/virtio_balloon.h';
const gcc = spawnSync('gcc', ['--version']).status === 0;
const header = existsSync(HEADER);
if (!gcc || !header) console.warn(`SKIPPED: ${gcc ? 'linux-libc-dev (virtio_balloon.h)' : 'gcc'} not installed: the balloon ABI is not checked against the Linux UAPI header`);
const lz4 = spawnSync('lz4', ['--version']).status === 0;
if (!lz4) console.warn('SKIPPED: lz4 not installed: XXH32 is not checked against the lz4 frame checksum');

const PROGRAM = String.raw`
#include <stdio.h>
#include <stddef.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_balloon.h>
#define P(name, v) printf("\"%s\": %lld,\n", name, (long long)(v))
#define O(s, f) P(#s "." #f, offsetof(struct s, f))
static const char *names[] = VIRTIO_BALLOON_S_NAMES;
int main(void) {
  printf("{\n");
  P("ID_BALLOON", VIRTIO_ID_BALLOON);
  P("F_MUST_TELL_HOST", VIRTIO_BALLOON_F_MUST_TELL_HOST); P("F_STATS_VQ", VIRTIO_BALLOON_F_STATS_VQ);
  P("F_DEFLATE_ON_OOM", VIRTIO_BALLOON_F_DEFLATE_ON_OOM); P("F_FREE_PAGE_HINT", VIRTIO_BALLOON_F_FREE_PAGE_HINT);
  P("F_PAGE_POISON", VIRTIO_BALLOON_F_PAGE_POISON); P("F_REPORTING", VIRTIO_BALLOON_F_REPORTING);
  P("PFN_SHIFT", VIRTIO_BALLOON_PFN_SHIFT);
  P("CMD_ID_STOP", VIRTIO_BALLOON_CMD_ID_STOP); P("CMD_ID_DONE", VIRTIO_BALLOON_CMD_ID_DONE);
  P("sizeof.config", sizeof(struct virtio_balloon_config));
  O(virtio_balloon_config, num_pages); O(virtio_balloon_config, actual);
  O(virtio_balloon_config, free_page_hint_cmd_id); O(virtio_balloon_config, free_page_report_cmd_id);
  O(virtio_balloon_config, poison_val);
  P("sizeof.stat", sizeof(struct virtio_balloon_stat));
  O(virtio_balloon_stat, tag); O(virtio_balloon_stat, val);
  P("S_SWAP_IN", VIRTIO_BALLOON_S_SWAP_IN); P("S_SWAP_OUT", VIRTIO_BALLOON_S_SWAP_OUT);
  P("S_MAJFLT", VIRTIO_BALLOON_S_MAJFLT); P("S_MINFLT", VIRTIO_BALLOON_S_MINFLT);
  P("S_MEMFREE", VIRTIO_BALLOON_S_MEMFREE); P("S_MEMTOT", VIRTIO_BALLOON_S_MEMTOT);
  P("S_AVAIL", VIRTIO_BALLOON_S_AVAIL); P("S_CACHES", VIRTIO_BALLOON_S_CACHES);
  P("S_HTLB_PGALLOC", VIRTIO_BALLOON_S_HTLB_PGALLOC); P("S_HTLB_PGFAIL", VIRTIO_BALLOON_S_HTLB_PGFAIL);
#ifdef VIRTIO_BALLOON_S_OOM_KILL
  P("S_OOM_KILL", VIRTIO_BALLOON_S_OOM_KILL); P("S_ALLOC_STALL", VIRTIO_BALLOON_S_ALLOC_STALL);
  P("S_ASYNC_SCAN", VIRTIO_BALLOON_S_ASYNC_SCAN); P("S_DIRECT_SCAN", VIRTIO_BALLOON_S_DIRECT_SCAN);
  P("S_ASYNC_RECLAIM", VIRTIO_BALLOON_S_ASYNC_RECLAIM); P("S_DIRECT_RECLAIM", VIRTIO_BALLOON_S_DIRECT_RECLAIM);
#endif
  P("S_NR", VIRTIO_BALLOON_S_NR);
  for (int i = 0; i < VIRTIO_BALLOON_S_NR; i++) printf("\"name%d\": \"%s\",\n", i, names[i]);
  printf("\"end\": 0\n}\n");
  return 0;
}
`;

describe.skipIf(!gcc || !header)('virtio-balloon ABI against the Linux UAPI header (gcc)', () => {
  it('feature bits, config layout, stat tags and names, stat entry size', () => {
    const src = join(dir, 'abi.c');
    const exe = join(dir, 'abi');
    writeFileSync(src, PROGRAM);
    execFileSync('gcc', ['-Wall', '-Werror', '-o', exe, src]);
    const L = JSON.parse(execFileSync(exe, { encoding: 'utf8' })) as Record<string, number | string>;
    expect(L.ID_BALLOON).toBe(B.DEVICE_ID_BALLOON);
    expect(1 << (L.F_MUST_TELL_HOST as number)).toBe(B.BALLOON_F_MUST_TELL_HOST);
    expect(1 << (L.F_STATS_VQ as number)).toBe(B.BALLOON_F_STATS_VQ);
    expect(1 << (L.F_DEFLATE_ON_OOM as number)).toBe(B.BALLOON_F_DEFLATE_ON_OOM);
    expect(1 << (L.F_FREE_PAGE_HINT as number)).toBe(B.BALLOON_F_FREE_PAGE_HINT);
    expect(1 << (L.F_PAGE_POISON as number)).toBe(B.BALLOON_F_PAGE_POISON);
    expect(1 << (L.F_REPORTING as number)).toBe(B.BALLOON_F_REPORTING);
    expect(L.PFN_SHIFT).toBe(B.BALLOON_PFN_SHIFT);
    expect(L.CMD_ID_STOP).toBe(B.BALLOON_CMD_ID_STOP);
    expect(L.CMD_ID_DONE).toBe(B.BALLOON_CMD_ID_DONE);
    expect(L['sizeof.config']).toBe(B.BALLOON_CONFIG_SIZE);
    expect(L['virtio_balloon_config.num_pages']).toBe(B.BALLOON_CFG_NUM_PAGES);
    expect(L['virtio_balloon_config.actual']).toBe(B.BALLOON_CFG_ACTUAL);
    expect(L['virtio_balloon_config.free_page_hint_cmd_id']).toBe(B.BALLOON_CFG_FREE_PAGE_HINT_CMD_ID);
    expect(L['virtio_balloon_config.free_page_report_cmd_id']).toBe(B.BALLOON_CFG_FREE_PAGE_HINT_CMD_ID);
    expect(L['virtio_balloon_config.poison_val']).toBe(B.BALLOON_CFG_POISON_VAL);
    expect(L['sizeof.stat']).toBe(B.BALLOON_STAT_SIZE);
    expect(L['virtio_balloon_stat.tag']).toBe(0);
    expect(L['virtio_balloon_stat.val']).toBe(2);
    const tags: [string, number][] = [
      ['S_SWAP_IN', B.BALLOON_S_SWAP_IN],
      ['S_SWAP_OUT', B.BALLOON_S_SWAP_OUT],
      ['S_MAJFLT', B.BALLOON_S_MAJFLT],
      ['S_MINFLT', B.BALLOON_S_MINFLT],
      ['S_MEMFREE', B.BALLOON_S_MEMFREE],
      ['S_MEMTOT', B.BALLOON_S_MEMTOT],
      ['S_AVAIL', B.BALLOON_S_AVAIL],
      ['S_CACHES', B.BALLOON_S_CACHES],
      ['S_HTLB_PGALLOC', B.BALLOON_S_HTLB_PGALLOC],
      ['S_HTLB_PGFAIL', B.BALLOON_S_HTLB_PGFAIL],
      ['S_OOM_KILL', B.BALLOON_S_OOM_KILL],
      ['S_ALLOC_STALL', B.BALLOON_S_ALLOC_STALL],
      ['S_ASYNC_SCAN', B.BALLOON_S_ASYNC_SCAN],
      ['S_DIRECT_SCAN', B.BALLOON_S_DIRECT_SCAN],
      ['S_ASYNC_RECLAIM', B.BALLOON_S_ASYNC_RECLAIM],
      ['S_DIRECT_RECLAIM', B.BALLOON_S_DIRECT_RECLAIM],
    ];
    const nr = L.S_NR as number;
    // Older headers (Debian bookworm's 6.1) stop at 10 tags; newer ones define all 16.
    expect(nr === 10 || nr === B.BALLOON_S_NR).toBe(true);
    if (nr < B.BALLOON_S_NR) console.warn(`NOTE: ${HEADER} has ${nr} stat tags; tags ${nr}..${B.BALLOON_S_NR - 1} (Linux 6.12) are not in it and are not checked`);
    for (const [name, ours] of tags) if (L[name] !== undefined) expect([name, L[name]]).toEqual([name, ours]);
    for (let i = 0; i < nr; i++) expect(L[`name${i}`]).toBe(B.BALLOON_STAT_NAMES[i]);
  });
});

describe.skipIf(!lz4)('XXH32 against the lz4 frame content checksum', () => {
  function lz4Checksum(data: Uint8Array): number {
    const inp = join(dir, 'in.bin');
    const out = join(dir, 'in.bin.lz4');
    writeFileSync(inp, data);
    execFileSync('lz4', ['-q', '-f', '--content-size', inp, out]);
    const f = readFileSync(out);
    return f.readUInt32LE(f.length - 4);
  }

  it('matches for every length class and for whole 4 KiB pages', () => {
    let seed = 12345;
    const rnd = (): number => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed >>> 24;
    };
    for (const len of [1, 3, 4, 15, 16, 17, 31, 100, 4096]) {
      const d = Uint8Array.from({ length: len }, rnd);
      expect([len, xxh32(d)]).toEqual([len, lz4Checksum(d)]);
    }
    for (const kind of ['random', 'zero', 'ones']) {
      const page = new Uint8Array(4096);
      if (kind === 'random') for (let i = 0; i < 4096; i++) page[i] = rnd();
      if (kind === 'ones') page.fill(0xff);
      const words = new Uint32Array(page.buffer.slice(0));
      expect(xxh32Page(words, 0)).toBe(lz4Checksum(page));
      expect(xxh32(page)).toBe(lz4Checksum(page));
    }
  });
});

describe('XXH32 known value', () => {
  it('of the empty string with seed 0 is 0x02CC5D05', () => {
    expect(xxh32(new Uint8Array(0))).toBe(0x02cc5d05);
  });
});
