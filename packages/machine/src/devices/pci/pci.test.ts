import fc from 'fast-check';
import { beforeEach, describe, expect, it } from 'vitest';
import { MmioBus, type MmioDevice } from '../../bus/mmio';
import { PortIoBus, type PortIoDevice } from '../../bus/pio';
import { RecordingInterruptSink, RecordingLine } from '../../bus/testing';
import { PciConfigError, PciDevice } from './function';
import { PciRoot, PciSlotError, pciSwizzle } from './host';
import * as R from './regs';

const ECAM = 0xb0000000;
let pio: PortIoBus;
let mmio: MmioBus;
let sink: RecordingInterruptSink;
let pirq: RecordingLine[];
let root: PciRoot;
let resets: boolean[];

const addr = (bus: number, dev: number, fn: number, reg: number): number => (0x80000000 | (bus << 16) | (dev << 11) | (fn << 8) | (reg & 0xfc)) >>> 0;
/** arch/x86/pci/direct.c pci_conf1_read */
function conf1Read(bus: number, dev: number, fn: number, reg: number, len: number): number {
  pio.write(0xcf8, 4, addr(bus, dev, fn, reg));
  return pio.read(0xcfc + (reg & (len === 4 ? 0 : len === 2 ? 2 : 3)), len);
}
function conf1Write(bus: number, dev: number, fn: number, reg: number, len: number, v: number): void {
  pio.write(0xcf8, 4, addr(bus, dev, fn, reg));
  pio.write(0xcfc + (reg & (len === 4 ? 0 : len === 2 ? 2 : 3)), len, v);
}
const ecamRead = (bus: number, dev: number, fn: number, reg: number, len: number): number => mmio.read(ECAM + ((bus << 20) | (dev << 15) | (fn << 12) | reg), len);
const ecamWrite = (bus: number, dev: number, fn: number, reg: number, len: number, v: number): void => mmio.write(ECAM + ((bus << 20) | (dev << 15) | (fn << 12) | reg), len, v);

class Regs implements MmioDevice, PortIoDevice {
  readonly mem = new Uint8Array(0x4000);
  mmioRead(o: number, size: number): number {
    let v = 0;
    for (let i = 0; i < size; i++) v |= this.mem[o + i] << (8 * i);
    return v >>> 0;
  }
  mmioWrite(o: number, size: number, value: number): void {
    for (let i = 0; i < size; i++) this.mem[o + i] = value >>> (8 * i);
  }
  portRead(o: number, size: number): number {
    return this.mmioRead(o, size);
  }
  portWrite(o: number, size: number, value: number): void {
    this.mmioWrite(o, size, value);
  }
}

/** drivers/pci/probe.c __pci_read_base, reduced: the size Linux derives for a BAR. */
function linuxBarSize(bus: number, dev: number, fn: number, bar: number): { size: number; flags: number } {
  const pos = 0x10 + 4 * bar;
  const l = ecamRead(bus, dev, fn, pos, 4);
  ecamWrite(bus, dev, fn, pos, 4, 0xffffffff);
  const sz = ecamRead(bus, dev, fn, pos, 4);
  ecamWrite(bus, dev, fn, pos, 4, l);
  if (l & 1) return { size: (~(sz & 0xfffffffc) + 1) & 0xffff, flags: l & 3 };
  if ((l & 6) === 4) {
    const lh = ecamRead(bus, dev, fn, pos + 4, 4);
    ecamWrite(bus, dev, fn, pos + 4, 4, 0xffffffff);
    const szh = ecamRead(bus, dev, fn, pos + 4, 4);
    ecamWrite(bus, dev, fn, pos + 4, 4, lh);
    const mask = (szh * 2 ** 32 + ((sz & 0xfffffff0) >>> 0));
    return { size: 2 ** 64 - mask, flags: l & 0xf };
  }
  return { size: (~(sz & 0xfffffff0) >>> 0) + 1, flags: l & 0xf };
}

function device(extra: Partial<ConstructorParameters<typeof PciDevice>[0]> = {}): { dev: PciDevice; regs: Regs; io: Regs } {
  const regs = new Regs();
  const io = new Regs();
  const dev = new PciDevice({
    vendorId: 0x1af4,
    deviceId: 0x1041,
    classCode: 0x020000,
    subsystemVendorId: 0x1af4,
    subsystemId: 1,
    revision: 1,
    interruptPin: 1,
    express: {},
    bars: [
      { index: 0, type: 'io', size: 32, handler: io },
      { index: 1, type: 'mem32', size: 0x1000, handler: regs },
      { index: 2, type: 'mem64', size: 0x4000, prefetchable: true, handler: regs },
    ],
    msix: { vectors: 3, bar: 2, tableOffset: 0x2000, pbaOffset: 0x3000 },
    msi: { vectors: 4, perVectorMask: true },
    ...extra,
  });
  return { dev, regs, io };
}

beforeEach(() => {
  pio = new PortIoBus();
  mmio = new MmioBus();
  sink = new RecordingInterruptSink();
  pirq = [new RecordingLine(), new RecordingLine(), new RecordingLine(), new RecordingLine()];
  resets = [];
  root = new PciRoot({ pio, mmio, interrupts: sink, intxLines: pirq, intxIrqNumbers: [16, 17, 18, 19], busCount: 4, onReset: (hard) => resets.push(hard) });
  pio.register(0xcf8, 8, root.configPorts, 'pci-conf1');
  mmio.register(ECAM, root.ecamSize, root.ecam, 'ecam');
});

describe('PCI host: type-1 and ECAM', () => {
  it("passes Linux's pci_check_type1 and pci_sanity_check (a host bridge at 00:00.0)", () => {
    pio.write(0xcfb, 1, 0x01);
    const tmp = pio.read(0xcf8, 4);
    pio.write(0xcf8, 4, 0x80000000);
    expect(pio.read(0xcf8, 4)).toBe(0x80000000);
    pio.write(0xcf8, 4, tmp);
    expect(conf1Read(0, 0, 0, 0x0a, 2)).toBe(0x0600); // PCI_CLASS_BRIDGE_HOST
    expect(conf1Read(0, 0, 0, 0x00, 4)).toBe(0x00081b36);
    expect(conf1Read(0, 0, 0, 0x02, 2)).toBe(0x0008);
    expect(conf1Read(0, 0, 0, 0x0b, 1)).toBe(0x06);
    expect(conf1Read(0, 5, 0, 0x00, 4)).toBe(0xffffffff);
    expect(conf1Read(0, 5, 0, 0x00, 2)).toBe(0xffff);
    pio.write(0xcf8, 4, 0x00000000); // enable bit clear
    expect(pio.read(0xcfc, 4)).toBe(0xffffffff);
  });

  it('decodes bus/device/function/register in ECAM and reaches the 4 KiB extended space', () => {
    const { dev } = device();
    root.attach(dev, 3);
    expect(ecamRead(0, 3, 0, 0, 4)).toBe(0x10411af4);
    expect(ecamRead(0, 3, 1, 0, 4)).toBe(0xffffffff);
    expect(ecamRead(1, 3, 0, 0, 4)).toBe(0xffffffff);
    expect(ecamRead(0, 3, 0, 0x100, 4)).toBe(0); // no extended capabilities
    const ext = dev.addExtendedCapability(0x10, 1, 0x40); // e.g. SR-IOV, as its issue will add
    const ext2 = dev.addExtendedCapability(0x0e, 1, 8);
    expect(ext).toBe(0x100);
    expect(ecamRead(0, 3, 0, 0x100, 4)).toBe((ext2 << 20) | (1 << 16) | 0x10);
    expect(ecamRead(0, 3, 0, 0x102, 2)).toBe(((ext2 << 20) | (1 << 16)) >>> 16);
    expect(conf1Read(0, 3, 0, 0x00, 4)).toBe(0x10411af4);
    // a conventional function on bus 1 reads 0 beyond 256 bytes
    root.attach(new PciDevice({ vendorId: 0x8086, deviceId: 0x1234, classCode: 0x010000 }), 0, 0, 1);
    expect(ecamRead(1, 0, 0, 0x100, 4)).toBe(0);
    expect(ecamRead(1, 0, 0, 0x00, 2)).toBe(0x8086);
  });

  it('rejects taken or impossible slots and sets the multi-function bit of function 0', () => {
    const { dev } = device();
    root.attach(dev, 2);
    expect(() => root.attach(device().dev, 2)).toThrow(PciSlotError);
    expect(() => root.attach(device().dev, 32)).toThrow(PciSlotError);
    expect(conf1Read(0, 2, 0, 0x0e, 1) & 0x80).toBe(0);
    root.attach(device({ interruptPin: 2 }).dev, 2, 1);
    expect(conf1Read(0, 2, 0, 0x0e, 1) & 0x80).toBe(0x80);
    expect(root.detach(2, 1)).not.toBeNull();
    expect(conf1Read(0, 2, 1, 0, 4)).toBe(0xffffffff);
  });

  it('raises the reset event from the reset control register (0xCF9) as reboot=pci does', () => {
    pio.write(0xcf9, 1, 0x02);
    expect(resets).toEqual([]);
    pio.write(0xcf9, 1, 0x06);
    expect(resets).toEqual([true]);
  });
});

describe('PCI function: header, BARs, capabilities', () => {
  it('sizes BARs as Linux does, including a 64-bit prefetchable BAR and a BAR above 4 GiB', () => {
    root.attach(device().dev, 1);
    expect(linuxBarSize(0, 1, 0, 0)).toEqual({ size: 32, flags: 1 });
    expect(linuxBarSize(0, 1, 0, 1)).toEqual({ size: 0x1000, flags: 0 });
    expect(linuxBarSize(0, 1, 0, 2)).toEqual({ size: 0x4000, flags: 0xc });
    expect(ecamRead(0, 1, 0, 0x30, 4)).toBe(0); // no expansion ROM
    const big = new PciDevice({ vendorId: 1, deviceId: 2, classCode: 0x030000, bars: [{ index: 0, type: 'mem64', size: 2 ** 33 }] });
    root.attach(big, 4);
    expect(linuxBarSize(0, 4, 0, 0)).toEqual({ size: 2 ** 33, flags: 4 });
    expect(() => new PciDevice({ vendorId: 1, deviceId: 2, classCode: 0, bars: [{ index: 0, type: 'mem32', size: 3000 }] })).toThrow(PciConfigError);
    expect(() => new PciDevice({ vendorId: 1, deviceId: 2, classCode: 0, bars: [{ index: 5, type: 'mem64', size: 4096 }] })).toThrow(PciConfigError);
  });

  it('decodes BARs on the buses only while the command register enables them', () => {
    const { dev, regs, io } = device();
    root.attach(dev, 1);
    ecamWrite(0, 1, 0, 0x10, 4, 0xc000);
    ecamWrite(0, 1, 0, 0x14, 4, 0xfe000000);
    ecamWrite(0, 1, 0, 0x18, 4, 0x0000000c);
    ecamWrite(0, 1, 0, 0x1c, 4, 0x1); // 0x1_0000_0000
    expect(mmio.read(0xfe000000, 4)).toBe(0xffffffff);
    ecamWrite(0, 1, 0, 0x04, 2, 0x0003);
    regs.mem[0] = 0x5a;
    io.mem[1] = 0x77;
    expect(mmio.read(0xfe000000, 1)).toBe(0x5a);
    expect(mmio.read(0x100000000, 1)).toBe(0x5a);
    expect(pio.read(0xc001, 1)).toBe(0x77);
    ecamWrite(0, 1, 0, 0x14, 4, 0xfe100000); // move it
    expect(mmio.read(0xfe000000, 1)).toBe(0xff);
    expect(mmio.read(0xfe100000, 1)).toBe(0x5a);
    ecamWrite(0, 1, 0, 0x04, 2, 0x0000);
    expect(mmio.read(0xfe100000, 1)).toBe(0xff);
    expect(pio.read(0xc001, 1)).toBe(0xff);
    // a guest BAR on top of the ECAM window cannot be decoded: recorded, not thrown
    ecamWrite(0, 1, 0, 0x14, 4, ECAM);
    ecamWrite(0, 1, 0, 0x04, 2, 0x0002);
    expect(dev.barConflicts).toBe(1);
    expect(dev.barMapped(1)).toBe(-1);
  });

  it('keeps IDs read-only, masks the command register, clears status error bits by writing 1', () => {
    const { dev } = device();
    root.attach(dev, 1);
    ecamWrite(0, 1, 0, 0x00, 4, 0);
    expect(ecamRead(0, 1, 0, 0x00, 4)).toBe(0x10411af4);
    ecamWrite(0, 1, 0, 0x04, 2, 0xffff);
    expect(ecamRead(0, 1, 0, 0x04, 2)).toBe(0x0547);
    dev.config[0x07] = 0x80; // detected parity error
    ecamWrite(0, 1, 0, 0x06, 2, 0x8000);
    expect(ecamRead(0, 1, 0, 0x07, 1)).toBe(0);
    expect(ecamRead(0, 1, 0, 0x06, 2) & R.PCI_STATUS_CAP_LIST).toBe(R.PCI_STATUS_CAP_LIST);
    expect(ecamRead(0, 1, 0, 0x08, 4)).toBe(0x02000001);
    expect(ecamRead(0, 1, 0, 0x2c, 4)).toBe(0x00011af4);
    conf1Write(0, 1, 0, 0x3c, 1, 0x0b); // interrupt line, a byte at offset 0 of its dword
    conf1Write(0, 1, 0, 0x3d, 1, 0x04); // interrupt pin is read-only
    expect(conf1Read(0, 1, 0, 0x3c, 2)).toBe(0x010b);
    conf1Write(0, 1, 0, 0x0e, 2, 0xffff); // header type read-only, BIST absent
    expect(conf1Read(0, 1, 0, 0x0e, 2)).toBe(0);
  });

  it('links the PCI Express, MSI-X and MSI capabilities as Linux walks them', () => {
    const { dev } = device();
    root.attach(dev, 1);
    const ids: number[] = [];
    let p = ecamRead(0, 1, 0, 0x34, 1);
    while (p !== 0 && ids.length < 48) {
      ids.push(ecamRead(0, 1, 0, p, 1));
      p = ecamRead(0, 1, 0, p + 1, 1);
    }
    expect(ids).toEqual([R.PCI_CAP_ID_EXP, R.PCI_CAP_ID_MSIX, R.PCI_CAP_ID_MSI]);
    const exp = dev.findCapability(R.PCI_CAP_ID_EXP);
    expect(ecamRead(0, 1, 0, exp + 2, 2)).toBe(0x0092); // version 2, RC integrated endpoint
    const msix = dev.findCapability(R.PCI_CAP_ID_MSIX);
    expect(ecamRead(0, 1, 0, msix + 2, 2)).toBe(2); // 3 vectors
    expect(ecamRead(0, 1, 0, msix + 4, 4)).toBe(0x2002);
    expect(ecamRead(0, 1, 0, msix + 8, 4)).toBe(0x3002);
  });
});

describe('PCI interrupts', () => {
  it('routes INTx through the swizzle to shared PIRQ lines, honouring INTX_DISABLE', () => {
    expect(pciSwizzle(3, 1)).toBe(3);
    expect(pciSwizzle(3, 2)).toBe(0);
    const a = device({ msix: undefined, msi: undefined, bars: [] }).dev;
    const b = device({ msix: undefined, msi: undefined, bars: [], interruptPin: 4 }).dev;
    root.attach(a, 3); // INTA of device 3 -> PIRQ D
    root.attach(b, 4); // INTD of device 4 -> PIRQ D: shared
    expect(ecamRead(0, 3, 0, 0x3c, 1)).toBe(19);
    a.setIntx(true);
    b.setIntx(true);
    expect(pirq[3].level).toBe(true);
    a.setIntx(false);
    expect(pirq[3].level).toBe(true);
    ecamWrite(0, 4, 0, 0x04, 2, R.PCI_COMMAND_INTX_DISABLE);
    expect(pirq[3].level).toBe(false);
    expect(ecamRead(0, 4, 0, 0x06, 2) & R.PCI_STATUS_INTERRUPT).toBe(R.PCI_STATUS_INTERRUPT);
    ecamWrite(0, 4, 0, 0x04, 2, 0);
    expect(pirq[3].level).toBe(true);
  });

  it('delivers MSI with multiple messages, per-vector masking and pending bits', () => {
    const { dev } = device({ msix: undefined, bars: [] });
    root.attach(dev, 1);
    const c = dev.findCapability(R.PCI_CAP_ID_MSI);
    expect(ecamRead(0, 1, 0, c + 2, 2)).toBe(0x0184); // 64-bit, per-vector mask, 4 vectors capable
    ecamWrite(0, 1, 0, c + 4, 4, 0xfee01000);
    ecamWrite(0, 1, 0, c + 8, 4, 0);
    ecamWrite(0, 1, 0, c + 12, 2, 0x4060);
    ecamWrite(0, 1, 0, c + 2, 2, 0x0021); // enable, 4 messages
    expect(dev.notify(2)).toBe(true);
    expect(sink.msis).toEqual([]); // bus mastering off: dropped
    ecamWrite(0, 1, 0, 0x04, 2, R.PCI_COMMAND_MASTER);
    dev.notify(2);
    expect(sink.msis).toEqual([[0xfee01000, 0, 0x4062]]);
    dev.setIntx(true);
    expect(pirq[0].level).toBe(false); // INTx is off while MSI is enabled
    ecamWrite(0, 1, 0, c + 16, 4, 0x2); // mask vector 1
    dev.notify(1);
    expect(sink.msis).toHaveLength(2 - 1);
    expect(ecamRead(0, 1, 0, c + 20, 4)).toBe(0x2);
    ecamWrite(0, 1, 0, c + 16, 4, 0);
    expect(sink.msis.at(-1)).toEqual([0xfee01000, 0, 0x4061]);
    expect(ecamRead(0, 1, 0, c + 20, 4)).toBe(0);
    dev.notify(7); // beyond the enabled count
    expect(dev.droppedMessages).toBe(2);
  });

  it('delivers MSI-X as Linux programs it (enable+maskall, entries, unmask), with PBA', () => {
    const { dev, regs } = device();
    root.attach(dev, 1);
    ecamWrite(0, 1, 0, 0x18, 4, 0xfe000000);
    ecamWrite(0, 1, 0, 0x1c, 4, 0);
    ecamWrite(0, 1, 0, 0x04, 2, 0x0006);
    const c = dev.findCapability(R.PCI_CAP_ID_MSIX);
    ecamWrite(0, 1, 0, c + 2, 2, 0xc000); // enable | mask all
    const table = 0xfe002000;
    expect(mmio.read(table + 12, 4)).toBe(1); // entries start masked
    for (let v = 0; v < 3; v++) {
      mmio.write(table + 16 * v, 4, 0xfee00000);
      mmio.write(table + 16 * v + 4, 4, 0);
      mmio.write(table + 16 * v + 8, 4, 0x30 + v);
    }
    mmio.write(table + 16 * 1 + 12, 4, 0); // unmask vector 1 only
    ecamWrite(0, 1, 0, c + 2, 2, 0x8000); // clear mask all
    dev.notify(1);
    expect(sink.msis).toEqual([[0xfee00000, 0, 0x31]]);
    dev.notify(0); // masked: pending
    expect(sink.msis).toHaveLength(1);
    expect(mmio.read(0xfe003000, 4)).toBe(1);
    expect(dev.msixPending(0)).toBe(true);
    mmio.write(0xfe003000, 4, 0); // PBA is read-only
    expect(mmio.read(0xfe003000, 4)).toBe(1);
    mmio.write(table + 12, 4, 0xfffffffe); // unmask (reserved bits ignored)
    expect(sink.msis.at(-1)).toEqual([0xfee00000, 0, 0x30]);
    expect(mmio.read(table + 12, 4)).toBe(0);
    expect(mmio.read(0xfe003000, 4)).toBe(0);
    mmio.write(table + 16 * 2, 8, 0xfee02000, 0); // a 64-bit write to an entry
    mmio.write(table + 16 * 2 + 12, 4, 0);
    dev.notify(2);
    expect(sink.msis.at(-1)).toEqual([0xfee02000, 0, 0x32]);
    // the rest of the BAR reaches the device's own registers
    mmio.write(0xfe000010, 4, 0xabcd);
    expect(regs.mem[0x10]).toBe(0xcd);
    dev.notify(9);
    expect(dev.droppedMessages).toBe(1);
  });
});

describe('BAR assignment', () => {
  it('places BARs aligned in the windows and enables decoding', () => {
    const { dev } = device();
    root.attach(dev, 1);
    const got = root.assignResources({ io: [0xc000, 0xffff], mem32: [0xc0000000, 0xfebfffff], mem64: [0x800000000, 0xfffffffff] });
    expect(got.map((a) => [a.bar, a.address])).toEqual([
      [2, 0x800000000],
      [1, 0xc0000000],
      [0, 0xc000],
    ]);
    expect(dev.barMapped(2)).toBe(0x800000000);
    expect(dev.command & 3).toBe(3);
    expect(() => root.assignResources({ mem32: [0, 0] })).not.toThrow(); // nothing left unassigned
    root.attach(new PciDevice({ vendorId: 1, deviceId: 1, classCode: 0, bars: [{ index: 0, type: 'mem32', size: 0x100000 }] }), 6);
    expect(() => root.assignResources({ mem32: [0xc0000000, 0xc00fffff - 0x1000] })).toThrow(PciSlotError);
  });
});

describe('hostile config traffic', () => {
  it('never throws on random type-1 and ECAM accesses (fuzz)', () => {
    const { dev } = device();
    root.attach(dev, 1);
    root.attach(device({ express: undefined }).dev, 2);
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(
            fc.tuple(fc.constant(0), fc.integer({ min: 0xcf8, max: 0xcff }), fc.constantFrom(1, 2, 4), fc.integer()),
            fc.tuple(fc.constant(1), fc.integer({ min: 0, max: (1 << 20) * 4 - 1 }), fc.constantFrom(1, 2, 4, 8), fc.integer()),
            fc.tuple(fc.constant(2), fc.integer({ min: 0, max: 0xfff }), fc.constantFrom(1, 2, 4), fc.integer()),
          ),
          { maxLength: 80 },
        ),
        (ops) => {
          for (const [kind, where, size, v] of ops) {
            if (kind === 0) {
              pio.write(where, size, v);
              pio.read(where, size);
            } else if (kind === 1) {
              mmio.write(ECAM + where, size, v, v);
              mmio.read(ECAM + where, size);
            } else {
              ecamWrite(0, 1 + (v & 1), 0, where & ~(size - 1), size, v);
              dev.notify(v & 7);
              dev.setIntx((v & 8) !== 0);
            }
          }
          return true;
        },
      ),
      { numRuns: 300 },
    );
  });
});
