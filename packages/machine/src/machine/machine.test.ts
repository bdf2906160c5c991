// The machine's wiring, driven by a scripted vCPU that replays what a guest does through port
// and MMIO exits: Linux's 8250 probe and console output, a PCI enumeration of the virtio
// functions (type-1 and ECAM, BAR sizing), a virtio-blk read through the real VirtioPci BARs
// with MSI-X into the local APIC, timer interrupts through the 8259 and the IOAPIC, power-off
// through ACPI PM1, resets, and the lifecycle.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MemoryBlockBackend, type BlockBackend } from '@ringzero/virtio';
import type { AddressSpace } from '@ringzero/mmu-ept';
import { Machine, type MachineHost } from './machine';
import { MachineConfigError, validateMachineDescription, type MachineDescription } from './config';
import { ScriptedVcpu, hlt, inb, inl, inw, outb, outl, outw, readl, writeb, writel, writew, outs, mmioRead, mmioWrite, portIn, portOut, tripleFault, internalError, type VcpuScript } from './scripted-vcpu';
import * as L from '../layout';

/** A multiboot v1 a.out-kludge image: header, then HLT at the entry. The fake vCPU never runs it. */
export function tinyMultiboot(): Uint8Array {
  const img = new Uint8Array(64);
  const v = new DataView(img.buffer);
  const flags = 0x00010000;
  const words = [0x1badb002, flags, (-(0x1badb002 + flags)) >>> 0, 0x100000, 0x100000, 0x100000 + img.length, 0, 0x100020];
  words.forEach((w, i) => v.setUint32(4 * i, w >>> 0, true));
  img[0x20] = 0xf4;
  return img;
}

function memHost(files: Record<string, Uint8Array> = {}, disks: Record<string, BlockBackend> = {}): MachineHost {
  return {
    readFile: (p: string): Uint8Array => {
      const f = files[p];
      if (f === undefined) throw new Error(`no such file ${p}`);
      return f;
    },
    openDrive: (d): Promise<BlockBackend> => {
      const b = disks[d.file];
      return b === undefined ? Promise.reject(new Error(`no such disk ${d.file}`)) : Promise.resolve(b);
    },
  };
}

async function boot(script: VcpuScript, extra: Partial<MachineDescription> = {}, host: MachineHost = memHost()): Promise<{ m: Machine; vcpu: ScriptedVcpu; serial: number[] }> {
  let vcpu: ScriptedVcpu | null = null;
  const m = await Machine.build(
    { memory: 64 * L.MiB, kernel: tinyMultiboot(), debugExit: { iobase: 0xf4, iosize: 4 }, time: 'deterministic', ...extra },
    { vcpu: () => (vcpu = new ScriptedVcpu(script)), host },
  );
  const serial: number[] = [];
  m.on('serial', (b) => serial.push(...b));
  return { m, vcpu: vcpu!, serial };
}

const cfgAddr = (dev: number, reg: number, fn = 0, bus = 0): number => (0x80000000 | (bus << 16) | (dev << 11) | (fn << 8) | (reg & 0xfc)) >>> 0;

describe('machine description', () => {
  const ok: MachineDescription = { memory: 64 * L.MiB, kernel: 'vmlinuz' };
  it('accepts a full description', () => {
    expect(() =>
      validateMachineDescription({
        ...ok,
        initrd: 'initrd.gz',
        cmdline: 'console=ttyS0',
        drives: [{ file: 'disk.qcow2', format: 'qcow2', readOnly: true, serial: 'd0' }],
        netdevs: [{ type: 'switch', id: 'n0', bridge: 'br1' }, { type: 'vxlan', id: 'n1', remote: '10.0.0.2', vni: 42 }],
        devices: [{ type: 'virtio-net', netdev: 'n0', mac: '52:54:00:00:00:01' }, { type: 'virtio-net', netdev: 'n1' }, { type: 'virtio-rng' }, { type: 'virtio-console' }],
        debugExit: { iobase: 0xf4, iosize: 4 },
        time: 'wall',
      }),
    ).not.toThrow();
  });
  it.each([
    [{ ...ok, memory: 1024 }, /memory size 1024 bytes is impossible/],
    [{ ...ok, memory: 2 ** 41 }, /impossible/],
    [{ ...ok, memory: 64 * L.MiB + 1 }, /4 KiB pages/],
    [{ ...ok, memory: '64M' }, /whole number of bytes/],
    [{ memory: 64 * L.MiB }, /no kernel/],
    [{ ...ok, cpus: 2 }, /only 1 vCPU/],
    [{ ...ok, colour: 'red' }, /unknown field 'colour'/],
    [{ ...ok, drives: [{ file: 'a', format: 'vmdk' }] }, /drives\[0\]\.format must be qcow2 or raw/],
    [{ ...ok, devices: [{ type: 'virtio-net', netdev: 'nope' }] }, /netdev 'nope' is not defined/],
    [{ ...ok, netdevs: [{ type: 'switch', id: 'a' }], devices: [{ type: 'virtio-net', netdev: 'a', mac: '01:00:00:00:00:01' }] }, /multicast/],
    [{ ...ok, netdevs: [{ type: 'switch', id: 'a' }], devices: [{ type: 'virtio-net', netdev: 'a', mac: 'zz' }] }, /six hex bytes/],
    [{ ...ok, netdevs: [{ type: 'switch', id: 'a' }, { type: 'switch', id: 'a' }] }, /used twice/],
    [{ ...ok, netdevs: [{ type: 'vxlan', id: 'a', remote: '300.1.1.1', vni: 1 }] }, /IPv4/],
    [{ ...ok, netdevs: [{ type: 'vxlan', id: 'a', remote: '1.1.1.1', vni: 2 ** 24 }] }, /vni/],
    [{ ...ok, devices: [{ type: 'virtio-gpu' }] }, /devices\[0\]\.type/],
    [{ ...ok, debugExit: { iobase: 0xf4, iosize: 3 } }, /iosize/],
    [{ ...ok, devices: Array.from({ length: 32 }, () => ({ type: 'virtio-rng' })) }, /too many PCI devices/],
    [{ ...ok, time: 'fast' }, /time must be/],
    [[], /must be an object/],
  ])('rejects %j', (d, msg) => {
    expect(() => validateMachineDescription(d)).toThrow(MachineConfigError);
    expect(() => validateMachineDescription(d)).toThrow(msg);
  });
  it('only ever throws MachineConfigError on random input (fuzz)', () => {
    fc.assert(
      fc.property(fc.anything(), fc.record({ memory: fc.anything(), kernel: fc.anything(), drives: fc.anything(), devices: fc.anything(), netdevs: fc.anything() }, { requiredKeys: [] }), (a, b) => {
        for (const v of [a, b]) {
          try {
            validateMachineDescription(v);
          } catch (e) {
            if (!(e instanceof MachineConfigError)) return false;
          }
        }
        return true;
      }),
      { numRuns: 300 },
    );
  });
  it('refuses a debug-exit port that overlaps a chipset device', async () => {
    await expect(Machine.build({ ...ok, kernel: tinyMultiboot(), debugExit: { iobase: 0x3f8, iosize: 4 } }, { vcpu: () => new ScriptedVcpu(function* () {}) })).rejects.toThrow(/overlap com1/);
  });
  it('reports a missing file through the host', async () => {
    await expect(Machine.build(ok, { vcpu: () => new ScriptedVcpu(function* () {}), host: memHost() })).rejects.toThrow(/no such file vmlinuz/);
    await expect(Machine.build(ok, { vcpu: () => new ScriptedVcpu(function* () {}) })).rejects.toThrow(/no MachineHost/);
  });
});

describe('machine wiring (scripted vCPU)', () => {
  it('loads the kernel and hands the loader state to the vCPU; RAM and holes follow the layout', async () => {
    const { m, vcpu } = await boot(function* () {});
    expect(m.boot.kernel.format).toBe('multiboot');
    expect(vcpu.boot?.regs.rip).toBe(0x100020);
    expect(vcpu.boot?.regs.rax).toBe(0x2badb002);
    expect(m.memory.read8(0x100020)).toBe(0xf4);
    const regions = m.memory.regions();
    expect(regions.filter((r) => r.kind === 'ram')).toEqual([expect.objectContaining({ start: 0, size: 64 * L.MiB })]);
    expect(regions.filter((r) => r.kind === 'mmio').map((r) => r.start)).toEqual([L.PCI_HOLE_START, L.FOUR_GiB]);
    // The ACPI RSDP is where Linux scans for it.
    const sig = new Uint8Array(8);
    m.memory.readInto(L.ACPI_TABLES_START, sig);
    expect(new TextDecoder().decode(sig)).toBe('RSD PTR ');
    await m.stop();
  });

  it('puts RAM above 4 GiB when it does not fit below the hole', async () => {
    let space: AddressSpace | null = null;
    const m = await Machine.build({ memory: 3 * L.GiB + 64 * L.MiB, kernel: tinyMultiboot() }, { vcpu: (s) => ((space = s), new ScriptedVcpu(function* () {})) });
    expect(space).toBe(m.memory);
    expect(m.memory.regions().filter((r) => r.kind === 'ram').map((r) => [r.start, r.size])).toEqual([
      [0, L.PCI_HOLE_START],
      [L.FOUR_GiB, 64 * L.MiB],
    ]);
    await m.stop();
  });

  it("Linux's 8250 probe and console output reach the serial event; isa-debug-exit stops with (v << 1) | 1", async () => {
    const { m, vcpu, serial } = await boot(function* () {
      // autoconfig(): scratch register, IER test, LCR/EFR, FIFO detection through IIR.
      yield outb(0x3ff, 0xa5);
      const scr: number = yield inb(0x3ff);
      yield outb(0x3f9, 0);
      const ier: number = yield inb(0x3f9);
      yield outb(0x3fb, 0xbf);
      yield outb(0x3fb, 0x03);
      yield outb(0x3fa, 0x07); // FCR: enable and clear FIFOs
      const iir: number = yield inb(0x3fa);
      // Console: 8N1, DLAB baud 115200, then THR bytes while LSR.THRE.
      yield outb(0x3fb, 0x83);
      yield outb(0x3f8, 0x01);
      yield outb(0x3f9, 0x00);
      yield outb(0x3fb, 0x03);
      for (const ch of 'hello\n') {
        const lsr: number = yield inb(0x3fd);
        if ((lsr & 0x20) === 0) throw new Error('THR not empty');
        yield outb(0x3f8, ch.charCodeAt(0));
      }
      yield outs(0x3f8, 1, new TextEncoder().encode('rep outsb\n'));
      if (scr !== 0xa5 || ier !== 0 || (iir & 0xc0) !== 0xc0) throw new Error(`probe failed ${scr} ${ier} ${iir}`);
      yield outb(0xf4, 0x31);
      yield outb(0x3f8, 0x21); // never reached
    });
    const exits: number[] = [];
    m.on('debug-exit', (s) => exits.push(s));
    const info = await m.start();
    expect(info).toEqual({ reason: 'debug-exit', exitStatus: 0x63, message: 'isa-debug-exit wrote 0x31' });
    expect(exits).toEqual([0x63]);
    expect(new TextDecoder().decode(Uint8Array.from(serial))).toBe('hello\nrep outsb\n');
    expect(m.status()).toMatchObject({ state: 'stopped', serialBytes: 16, stop: info });
    expect(vcpu.log.some((l) => l.step.op === 'out' && l.step.value === 0x21)).toBe(false);
  });

  it('enumerates the virtio functions by type-1 and ECAM, sizes and reads BARs as Linux does', async () => {
    const found: { dev: number; id: number; ecamId: number; cls: number; bars: number[]; sizes: number[]; pin: number; line: number }[] = [];
    const disk = new MemoryBlockBackend(1 << 20);
    const { m } = await boot(
      function* () {
        for (let dev = 0; dev < 32; dev++) {
          yield outl(0xcf8, cfgAddr(dev, 0));
          const id: number = yield inl(0xcfc);
          const ecamId: number = yield readl(L.ECAM_START + (dev << 15));
          if (id === 0xffffffff) {
            if (ecamId !== 0xffffffff) throw new Error('ECAM disagrees');
            continue;
          }
          yield outl(0xcf8, cfgAddr(dev, 8));
          const cls: number = yield inl(0xcfc);
          yield outl(0xcf8, cfgAddr(dev, 0x3c));
          const intr: number = yield inl(0xcfc);
          // __pci_read_base: decoding off, write all-ones, read the mask, restore.
          yield outl(0xcf8, cfgAddr(dev, 4));
          const cmd: number = yield inw(0xcfc);
          yield outw(0xcfc, cmd & ~3);
          const bars: number[] = [];
          const sizes: number[] = [];
          for (let b = 0; b < 6; b++) {
            yield outl(0xcf8, cfgAddr(dev, 0x10 + 4 * b));
            const orig: number = yield inl(0xcfc);
            yield outl(0xcfc, 0xffffffff);
            const mask: number = yield inl(0xcfc);
            yield outl(0xcfc, orig);
            bars.push(orig);
            const io = (orig & 1) === 1;
            sizes.push(mask === 0 ? 0 : (~(mask & (io ? ~3 : ~0xf)) + 1) & (io ? 0xffff : 0xffffffff));
          }
          yield outl(0xcf8, cfgAddr(dev, 4));
          yield outw(0xcfc, cmd);
          found.push({ dev, id, ecamId, cls: cls >>> 8, bars, sizes, pin: (intr >>> 8) & 0xff, line: intr & 0xff });
        }
        yield outb(0xf4, 0);
      },
      { drives: [{ file: 'd0' }], netdevs: [{ type: 'switch', id: 'n0' }], devices: [{ type: 'virtio-net', netdev: 'n0' }, { type: 'virtio-rng' }, { type: 'virtio-console' }] },
      memHost({}, { d0: disk }),
    );
    expect((await m.start()).exitStatus).toBe(1);
    expect(found.map((f) => [f.dev, f.id.toString(16), f.cls.toString(16)])).toEqual([
      [0, '81b36', '60000'],
      [1, '10011af4', '10000'],
      [2, '10001af4', '20000'],
      [3, '10051af4', 'ff00'],
      [4, '10031af4', '78000'],
    ]);
    for (const f of found) expect(f.ecamId).toBe(f.id);
    for (const f of found.slice(1)) {
      // BAR0 legacy I/O, BAR1 MSI-X 4 KiB, BAR4 64-bit prefetchable 16 KiB (+ BAR5 its high half).
      expect(f.bars[0] & 1).toBe(1);
      expect(f.bars[0] & ~3).toBeGreaterThanOrEqual(0xc000);
      expect(f.sizes[1]).toBe(0x1000);
      expect(f.bars[4] & 0xf).toBe(0xc);
      expect(f.sizes[4]).toBe(0x4000);
      expect(f.bars[5]).toBe(0);
      expect(f.pin).toBe(1);
      expect(f.line).toBe(L.pciIntxGsi(f.dev, 0));
      // The BARs the guest read back are where the buses decode them.
      const p = m.pciDevices.find((d) => d.slot === f.dev)!;
      expect(p.function.decodedAt(4)).toBe((f.bars[4] & ~0xf) >>> 0);
      expect(m.mmio.owner((f.bars[4] & ~0xf) >>> 0)).toMatch(/bar4/);
      expect(m.pio.owner(f.bars[0] & ~3)).toMatch(/bar0/);
    }
    // No two BARs overlap.
    const ranges = found.slice(1).flatMap((f) => [[f.bars[1], f.sizes[1]], [(f.bars[4] & ~0xf) >>> 0, f.sizes[4]]]);
    ranges.sort((a, b) => a[0] - b[0]);
    for (let i = 1; i < ranges.length; i++) expect(ranges[i][0]).toBeGreaterThanOrEqual(ranges[i - 1][0] + ranges[i - 1][1]);
  });

  it('reads a virtio-blk sector through the real VirtioPci BARs, completion by MSI-X into the local APIC', async () => {
    const disk = new MemoryBlockBackend(1 << 20);
    for (let i = 0; i < 512; i++) disk.data[i] = (i * 7 + 3) & 0xff;
    let mem: AddressSpace | null = null;
    const Q = 0x200000; // desc table, avail, used
    const REQ = 0x210000;
    const DATA = 0x211000;
    const STATUS = 0x212000;
    const results: Record<string, number> = {};
    let vcpu: ScriptedVcpu | null = null;
    const script: VcpuScript = function* () {
      yield outl(0xcf8, cfgAddr(1, 0x20));
      const bar4: number = yield inl(0xcfc);
      yield outl(0xcf8, cfgAddr(1, 0x14));
      const bar1: number = yield inl(0xcfc);
      const common = (bar4 & ~0xf) >>> 0;
      const msix = (bar1 & ~0xf) >>> 0;
      yield outl(0xcf8, cfgAddr(1, 4));
      yield outw(0xcfc, 0x7); // I/O, memory, bus master
      yield writeb(common + 0x14, 0); // reset
      yield writeb(common + 0x14, 1);
      yield writeb(common + 0x14, 3);
      yield writel(common + 0x00, 1);
      const hiFeatures: number = yield readl(common + 0x04);
      results.version1 = hiFeatures & 1;
      yield writel(common + 0x08, 1);
      yield writel(common + 0x0c, 1); // VIRTIO_F_VERSION_1 only
      yield writel(common + 0x08, 0);
      yield writel(common + 0x0c, 0);
      yield writeb(common + 0x14, 11);
      const status: number = yield mmioRead(common + 0x14, 1);
      results.featuresOk = status & 8;
      // MSI-X table: vector 0 (config) -> 0x40, vector 1 (queue 0) -> 0x41, unmasked.
      for (const [v, vec] of [[0, 0x40], [1, 0x41]]) {
        yield writel(msix + 16 * v, 0xfee00000);
        yield writel(msix + 16 * v + 4, 0);
        yield writel(msix + 16 * v + 8, vec);
        yield writel(msix + 16 * v + 12, 0);
      }
      yield outl(0xcf8, cfgAddr(1, 0x40));
      const ctrl: number = yield inl(0xcfc);
      yield outl(0xcfc, (ctrl | 0x80000000) >>> 0); // MSI-X enable (message control bit 15)
      yield writew(common + 0x10, 0);
      yield writew(common + 0x16, 0);
      yield writew(common + 0x18, 8);
      yield writew(common + 0x1a, 1);
      yield writel(common + 0x20, Q);
      yield writel(common + 0x24, 0);
      yield writel(common + 0x28, Q + 0x80);
      yield writel(common + 0x2c, 0);
      yield writel(common + 0x30, Q + 0x100);
      yield writel(common + 0x34, 0);
      yield writew(common + 0x1c, 1);
      yield writeb(common + 0x14, 15);
      // The request: header (IN, sector 0), 512 data bytes, status byte.
      const g = mem!;
      g.write32(REQ, 0);
      g.write32(REQ + 4, 0);
      g.write64(REQ + 8, 0, 0);
      const desc = (i: number, addr: number, len: number, flags: number, next: number): void => {
        g.write64(Q + 16 * i, addr, 0);
        g.write32(Q + 16 * i + 8, len);
        g.write16(Q + 16 * i + 12, flags);
        g.write16(Q + 16 * i + 14, next);
      };
      desc(0, REQ, 16, 1, 1);
      desc(1, DATA, 512, 3, 2);
      desc(2, STATUS, 1, 2, 0);
      g.write8(STATUS, 0xff);
      g.write16(Q + 0x80, 0);
      g.write16(Q + 0x80 + 4, 0);
      g.write16(Q + 0x80 + 2, 1);
      yield writew(common + 0x3000, 0); // notify queue 0
      results.vector = yield hlt();
      yield outb(0xf4, 0);
    };
    const m = await Machine.build(
      { memory: 64 * L.MiB, kernel: tinyMultiboot(), debugExit: { iobase: 0xf4, iosize: 4 }, drives: [{ file: 'd0' }], time: 'deterministic' },
      { vcpu: (space) => ((mem = space), (vcpu = new ScriptedVcpu(script))), host: memHost({}, { d0: disk }) },
    );
    const info = await m.start();
    expect(info.reason).toBe('debug-exit');
    expect(results).toEqual({ version1: 1, featuresOk: 8, vector: 0x41 });
    expect(vcpu!.apic.accepted).toEqual([{ vector: 0x41, level: false }]);
    const g = m.memory;
    expect(g.read16(Q + 0x100 + 2)).toBe(1); // used idx
    expect(g.read32(Q + 0x100 + 4)).toBe(0); // used[0].id
    expect(g.read8(STATUS)).toBe(0);
    const got = new Uint8Array(512);
    g.readInto(DATA, got);
    expect(got).toEqual(disk.data.subarray(0, 512));
    expect(disk.closed).toBe(true); // stop closes the drives
  });

  it('PIT interrupts reach the CPU through the 8259 (virtual wire) and through the IOAPIC', async () => {
    const { m, vcpu } = await boot(function* () {
      // init_8259A: ICW1-4 master/slave, vectors 0x30/0x38, unmask IRQ0.
      for (const [p, v] of [[0x20, 0x11], [0x21, 0x30], [0x21, 0x04], [0x21, 0x01], [0xa0, 0x11], [0xa1, 0x38], [0xa1, 0x02], [0xa1, 0x01], [0x21, 0xfe], [0xa1, 0xff]]) yield outb(p, v);
      // PIT channel 0 mode 2, 1193 counts (~1 ms).
      yield outb(0x43, 0x34);
      yield outb(0x40, 1193 & 0xff);
      yield outb(0x40, 1193 >> 8);
      const v1: number = yield hlt();
      yield outb(0x20, 0x20); // EOI
      // Now through the IOAPIC: mask the 8259, route GSI 2 to vector 0x50 (edge, fixed, dest 0).
      yield outb(0x21, 0xff);
      yield writel(L.IOAPIC_START, 0x10 + 2 * 2);
      yield writel(L.IOAPIC_START + 0x10, 0x50);
      yield writel(L.IOAPIC_START, 0x10 + 2 * 2 + 1);
      yield writel(L.IOAPIC_START + 0x10, 0);
      const v2: number = yield hlt();
      yield outb(0xf4, v1 === 0x30 && v2 === 0x50 ? 0 : 1);
    });
    const info = await m.start();
    expect(info.exitStatus).toBe(1);
    expect(vcpu.injected).toEqual([0x30]);
    expect(vcpu.apic.accepted[0]).toEqual({ vector: 0x50, level: false });
    // Deterministic time moved forward to the PIT deadlines while halted (about 1 ms each).
    expect(m.status().guestNs).toBeGreaterThan(1_000_000);
    expect(m.status().exits.hlt).toBeGreaterThan(0);
  });

  it('poweroff through PM1_CNT (SLP_TYP of \\_S5, SLP_EN) stops the machine with status 0', async () => {
    const { m } = await boot(function* () {
      const cnt: number = yield inw(L.ACPI_PM1A_CNT_PORT);
      yield outw(L.ACPI_PM1A_CNT_PORT, cnt | (L.ACPI_S5_SLP_TYP << 10) | L.ACPI_PM1_CNT_SLP_EN);
      yield outb(0xf4, 7);
    });
    const events: string[] = [];
    m.on('poweroff', () => events.push('poweroff'));
    m.on('stop', (i) => events.push(`stop ${i.reason}`));
    expect(await m.start()).toEqual({ reason: 'poweroff', exitStatus: 0, message: 'ACPI S5' });
    expect(events).toEqual(['poweroff', 'stop poweroff']);
  });

  it.each([
    ['i8042 0xFE', [outb(0x64, 0xfe)]],
    ['0xCF9', [outb(0xcf9, 0x06)]],
    ['port 0x92', [outb(0x92, 0x03)]],
    ['triple fault', [tripleFault('triple fault (vector 13)')]],
  ])('a guest reset by %s stops the machine (no reboot)', async (_what, steps) => {
    const { m } = await boot(function* () {
      for (const s of steps) yield s;
      yield outb(0xf4, 1);
    });
    let resets = 0;
    m.on('reset', () => resets++);
    const info = await m.start();
    expect(info.reason).toBe('reset');
    expect(resets).toBe(1);
  });

  it('a vCPU internal error stops the machine with its message', async () => {
    const { m } = await boot(function* () {
      yield internalError('instruction fetch at 0xfffffff0 that is not RAM');
    });
    const info = await m.start();
    expect(info.reason).toBe('error');
    expect(info.exitStatus).toBe(1);
    expect(info.message).toMatch(/not RAM/);
    expect(m.status().lastExit).toMatch(/internal-error/);
  });

  it('terminal input reaches the guest through the UART; pause, resume and stop', async () => {
    let got = '';
    const { m } = await boot(function* () {
      yield outb(0x3fa, 0x07);
      for (;;) {
        const lsr: number = yield inb(0x3fd);
        if (lsr & 1) {
          const c: number = yield inb(0x3f8);
          got += String.fromCharCode(c);
        } else yield inb(0x80);
      }
    });
    const done = m.start();
    expect(m.state).toBe('running');
    m.pause();
    expect(m.state).toBe('paused');
    m.sendSerial(new TextEncoder().encode('ls\r'));
    m.resume();
    while (got.length < 3) await new Promise((r) => setTimeout(r, 1));
    expect(got).toBe('ls\r');
    const info = await m.stop();
    expect(info.reason).toBe('stopped');
    expect(await done).toBe(info);
    expect(m.state).toBe('stopped');
    await expect(m.start()).rejects.toThrow(/stopped/);
  });

  it('hostile port and MMIO traffic never throws out of the run loop (fuzz)', async () => {
    const ports = [0x20, 0x21, 0xa0, 0xa1, 0x40, 0x43, 0x61, 0x70, 0x71, 0x3f8, 0x3fd, 0x60, 0x64, 0x600, 0x604, 0x608, 0xcf8, 0xcfc, 0xcfe, 0xc000, 0xc040];
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.oneof(
            fc.record({ port: fc.oneof(fc.constantFrom(...ports), fc.integer({ min: 0, max: 0xffff })), size: fc.constantFrom<1 | 2 | 4>(1, 2, 4), value: fc.nat(), input: fc.boolean() }),
            fc.record({ address: fc.oneof(fc.constantFrom(L.IOAPIC_START, L.ECAM_START, L.ECAM_START + 0x8000, L.PCI_MMIO32_START, L.PCI_MMIO32_START + 0x4000), fc.integer({ min: L.PCI_HOLE_START, max: L.FOUR_GiB - 8 })), size: fc.constantFrom<1 | 2 | 4 | 8>(1, 2, 4, 8), value: fc.nat(), write: fc.boolean() }),
          ),
          { maxLength: 60 },
        ),
        async (ops) => {
          const { m } = await boot(
            function* () {
              for (const o of ops) {
                if ('port' in o) {
                  if (o.port >= 0xf4 && o.port < 0xf8) continue;
                  yield o.input ? portIn(o.port, o.size) : portOut(o.port, o.size, o.value);
                } else yield o.write ? mmioWrite(o.address, o.size, o.value) : mmioRead(o.address, o.size);
              }
              yield outb(0xf4, 0);
            },
            { netdevs: [{ type: 'switch', id: 'n' }], devices: [{ type: 'virtio-rng' }, { type: 'virtio-net', netdev: 'n' }] },
          );
          const info = await m.start();
          return ['debug-exit', 'reset', 'poweroff'].includes(info.reason);
        },
      ),
      { numRuns: 40 },
    );
  });
});
