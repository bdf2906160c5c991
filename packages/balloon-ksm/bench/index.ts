// Benchmarks print one JSON object per line: {"name","value","unit","peer"?,"peerValue"?,"ratio"?}.
// The issue names no external peer: the KSM scan rate is compared with Linux's default ksmd
// throttle (pages_to_scan 100 per sleep_millisecs 20 = 5,000 pages/s), memory saved with the
// theoretical saving, and the balloon is reported on its own.
// BENCH_VM_MIB (default 16) sets each VM's RAM for the KSM runs. Scan rates are per core: pages
// over the CPU time this process used (process.cpuUsage), so a loaded host does not lower them;
// the first one is also given over wall time.
import { AddressSpace, HostMemory } from '@ringzero/mmu-ept';
import { VirtioMmio } from '@ringzero/virtio';
import { GuestAllocator, MockDriver, mmioDriverTransport } from '@ringzero/virtio/testing';
import { Ksm, ManualScheduler, VirtioBalloon } from '../src/index';
import { BalloonDriver } from '../src/testing';

const PAGE = 4096;
const MiB = 2 ** 20;
const LINUX_DEFAULT_RATE = (100 * 1000) / 20;
const vmMiB = Number(process.env.BENCH_VM_MIB ?? 16);

/** Runs fn; returns its result with the wall and CPU milliseconds it took (one thread: CPU time = one core's). */
function timed<T>(fn: () => T): { result: T; wallMs: number; cpuMs: number } {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const result = fn();
  const wallMs = performance.now() - t0;
  const c = process.cpuUsage(c0);
  return { result, wallMs, cpuMs: (c.user + c.system) / 1000 };
}

function emit(o: { name: string; value: number; unit: string; peer?: string; peerValue?: number; ratio?: number }): void {
  const r = (x: number): number => (Math.abs(x) >= 100 ? Math.round(x) : Math.round(x * 1000) / 1000);
  const out: Record<string, unknown> = { name: o.name, value: r(o.value), unit: o.unit };
  if (o.peer !== undefined) out.peer = o.peer;
  if (o.peerValue !== undefined) out.peerValue = r(o.peerValue);
  if (o.ratio !== undefined) out.ratio = r(o.ratio);
  console.log(JSON.stringify(out));
}

/** 8 VMs whose pages are `identical` of the time the same across VMs (the rest unique). */
function fleet(vmCount: number, pages: number, identical: number) {
  const host = new HostMemory();
  const spaces: AddressSpace[] = [];
  const page = new Uint8Array(PAGE);
  const dv = new DataView(page.buffer);
  let sharedPages = 0;
  for (let v = 0; v < vmCount; v++) {
    const s = new AddressSpace(host);
    s.addRam(0, pages * PAGE, { populate: true });
    for (let p = 0; p < pages; p++) {
      const same = p < Math.round(pages * identical);
      if (v === 0 && same) sharedPages++;
      const seed = same ? p + 1 : (v + 1) * 0x100_0000 + p;
      for (let i = 0; i < PAGE; i += 4) dv.setUint32(i, Math.imul(seed, 0x9e3779b1) ^ Math.imul(i + 1, 0x85ebca77), true);
      s.writeFrom(p * PAGE, page);
    }
    spaces.push(s);
  }
  return { host, spaces, sharedPages };
}

function ksmBench(): void {
  const pages = (vmMiB * MiB) / PAGE;
  const vmCount = 8;
  // 1. Scan rate on pages that never merge (every page hashed and looked up every scan), smart_scan off.
  {
    const { spaces } = fleet(vmCount, pages, 0);
    const ksm = new Ksm({ scheduler: new ManualScheduler(), knobs: { smart_scan: 0 } });
    spaces.forEach((s, i) => ksm.register(s, 0, pages * PAGE, `vm${i}`));
    ksm.scanFull(1); // warm-up
    const t = timed(() => ksm.scanFull(3));
    const rate = t.result / (t.cpuMs / 1000);
    emit({ name: `ksm scan rate per core, unique pages, smart_scan off (${vmCount} VMs x ${vmMiB} MiB)`, value: rate, unit: 'pages/s', peer: 'Linux ksmd default throttle', peerValue: LINUX_DEFAULT_RATE, ratio: rate / LINUX_DEFAULT_RATE });
    const wall = t.result / (t.wallMs / 1000);
    emit({ name: 'ksm scan rate over wall time, unique pages (lower on a loaded host)', value: wall, unit: 'pages/s', peer: 'Linux ksmd default throttle', peerValue: LINUX_DEFAULT_RATE, ratio: wall / LINUX_DEFAULT_RATE });
  }
  // 2. Memory saved with 90 % identical RAM, after N full scans, and the scan rate while merging.
  {
    const { host, spaces, sharedPages } = fleet(vmCount, pages, 0.9);
    const ksm = new Ksm({ scheduler: new ManualScheduler() });
    spaces.forEach((s, i) => ksm.register(s, 0, pages * PAGE, `vm${i}`));
    const before = host.framesInUse;
    const theoretical = (vmCount - 1) * sharedPages * PAGE;
    let scanned = 0;
    let ms = 0;
    for (let n = 1; n <= 3; n++) {
      const t = timed(() => ksm.scanFull(1));
      scanned += t.result;
      ms += t.cpuMs;
      const saved = (before - host.framesInUse) * PAGE;
      emit({ name: `ksm memory saved after ${n} full scan(s), ${vmCount} VMs x ${vmMiB} MiB, 90% identical`, value: saved / MiB, unit: 'MiB', peer: 'theoretical saving', peerValue: theoretical / MiB, ratio: saved / theoretical });
    }
    const c = ksm.counters();
    emit({ name: 'ksm general_profit after 3 full scans', value: c.general_profit / MiB, unit: 'MiB' });
    const rate = scanned / (ms / 1000);
    emit({ name: `ksm scan rate per core while merging (3 full scans, ${vmCount} VMs x ${vmMiB} MiB, 90% identical)`, value: rate, unit: 'pages/s', peer: 'Linux ksmd default throttle', peerValue: LINUX_DEFAULT_RATE, ratio: rate / LINUX_DEFAULT_RATE });
    const t = timed(() => ksm.scanFull(3));
    const steady = t.result / (t.cpuMs / 1000);
    emit({ name: 'ksm scan rate per core, steady state after merging (smart_scan on)', value: steady, unit: 'pages/s', peer: 'Linux ksmd default throttle', peerValue: LINUX_DEFAULT_RATE, ratio: steady / LINUX_DEFAULT_RATE });
  }
}

function balloonBench(): void {
  const ram = 512 * MiB;
  const size = 256 * MiB;
  const host = new HostMemory();
  const space = new AddressSpace(host);
  space.addRam(0, ram);
  const balloon = new VirtioBalloon({ ramSize: ram, scheduler: new ManualScheduler() });
  const dev = new VirtioMmio(balloon, space, { irq: () => undefined });
  const md = new MockDriver(mmioDriverTransport(dev), space, new GuestAllocator(0x1000, 0x10_0000));
  const first = (64 * MiB) / PAGE;
  const pool = Array.from({ length: size / PAGE }, (_, i) => first + i);
  const drv = new BalloonDriver(md, pool);
  drv.init();
  for (const p of pool) space.write32(p * PAGE, p); // the guest used these pages: each has a frame
  const framesBefore = host.framesInUse;
  let t0 = performance.now();
  balloon.setTarget(ram - size);
  const reqIn = drv.adjust();
  const inflateMs = performance.now() - t0;
  if (balloon.actualPages !== size / PAGE) throw new Error('inflate did not reach the target');
  const freed = (framesBefore - host.framesInUse) * PAGE;
  emit({ name: 'balloon inflate 256 MiB through the mock driver (time until actual = target)', value: inflateMs, unit: 'ms' });
  emit({ name: 'balloon inflate throughput', value: size / MiB / (inflateMs / 1000), unit: 'MiB/s' });
  emit({ name: `balloon inflate: host memory freed (${reqIn} requests of 256 PFNs)`, value: freed / MiB, unit: 'MiB' });
  t0 = performance.now();
  balloon.setTarget(ram);
  drv.adjust();
  const deflateMs = performance.now() - t0;
  if (balloon.actualPages !== 0) throw new Error('deflate did not reach the target');
  emit({ name: 'balloon deflate 256 MiB through the mock driver (time until actual = target)', value: deflateMs, unit: 'ms' });
}

ksmBench();
balloonBench();
