import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { IrqLine, SharedIrqLine } from './irq';
import { decodeMsi, DELIVERY_EXTINT, msiAddress, msiData, newMsiMessage } from './interrupts';
import { MmioBus, MmioConflictError, type MmioDevice } from './mmio';
import { PortIoBus, PortIoConflictError, type PortIoDevice } from './pio';
import { RecordingIrqChip, RecordingLine } from './testing';

class Regs implements PortIoDevice, MmioDevice {
  readonly log: string[] = [];
  constructor(private readonly bytes: Uint8Array) {}
  private get(offset: number, size: number): number {
    let v = 0;
    for (let i = 0; i < size; i++) v |= this.bytes[offset + i] << (8 * i);
    return v >>> 0;
  }
  private set(offset: number, size: number, value: number): void {
    for (let i = 0; i < size; i++) this.bytes[offset + i] = value >>> (8 * i);
  }
  portRead(offset: number, size: number): number {
    this.log.push(`r${offset}/${size}`);
    return this.get(offset, size);
  }
  portWrite(offset: number, size: number, value: number): void {
    this.log.push(`w${offset}/${size}=${value.toString(16)}`);
    this.set(offset, size, value);
  }
  mmioRead(offset: number, size: number): number {
    return this.portRead(offset, size);
  }
  mmioWrite(offset: number, size: number, value: number): void {
    this.portWrite(offset, size, value);
  }
}

describe('PortIoBus', () => {
  it('dispatches with offsets relative to the base and masks to the access size', () => {
    const bus = new PortIoBus();
    const dev = new Regs(new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]));
    bus.register(0x3f8, 8, dev, 'uart');
    expect(bus.read(0x3f8, 1)).toBe(1);
    expect(bus.read(0x3f9, 2)).toBe(0x0302);
    expect(bus.read(0x3fa, 4)).toBe(0x06050403);
    bus.write(0x3fb, 2, 0x1234abcd);
    expect(dev.log.at(-1)).toBe('w3/2=abcd');
    expect(bus.owner(0x3ff)).toBe('uart');
    expect(bus.owner(0x400)).toBeUndefined();
  });

  it('reads all-ones of the access size from unclaimed ports and ignores writes', () => {
    const bus = new PortIoBus();
    expect(bus.read(0x1234, 1)).toBe(0xff);
    expect(bus.read(0x1234, 2)).toBe(0xffff);
    expect(bus.read(0x1234, 4)).toBe(0xffffffff);
    bus.write(0x1234, 4, 0);
    expect(bus.unclaimed).toBeGreaterThan(0);
  });

  it('rejects overlaps and bad ranges, and frees ranges on unregister', () => {
    const bus = new PortIoBus();
    const dev = new Regs(new Uint8Array(16));
    bus.register(0x20, 2, dev, 'pic');
    expect(() => bus.register(0x21, 1, dev, 'other')).toThrow(PortIoConflictError);
    expect(() => bus.register(0xfffe, 4, dev)).toThrow(PortIoConflictError);
    expect(() => bus.register(-1, 1, dev)).toThrow(PortIoConflictError);
    expect(bus.tryRegister(0x1f, 2, dev)).toBe(false);
    expect(bus.tryRegister(0x22, 2, dev, 'next')).toBe(true);
    expect(bus.ranges().map((r) => r.name)).toEqual(['pic', 'next']);
    expect(bus.unregister(0x21)).toBe(false);
    expect(bus.unregister(0x20)).toBe(true);
    expect(bus.read(0x20, 1)).toBe(0xff);
    bus.register(0x20, 1, dev, 'again');
    expect(bus.owner(0x20)).toBe('again');
  });

  it('splits an access that runs past a block, or is wider than it accepts, into bytes', () => {
    const bus = new PortIoBus();
    const a = new Regs(new Uint8Array([0x11, 0x22]));
    const b = new Regs(new Uint8Array([0x33]));
    bus.register(0x100, 2, a, 'a', 1);
    bus.register(0x102, 1, b, 'b');
    expect(bus.read(0x101, 4)).toBe(0xffff3322);
    expect(bus.read(0x100, 2)).toBe(0x2211);
    expect(a.log).toContain('r0/1');
    expect(a.log).not.toContain('r0/2');
    expect(bus.read(0xffff, 2)).toBe(0xffff);
  });

  it('never throws on random accesses (fuzz)', () => {
    const bus = new PortIoBus();
    bus.register(0x60, 1, new Regs(new Uint8Array(4)), 'x');
    fc.assert(
      fc.property(fc.integer({ min: -70000, max: 140000 }), fc.constantFrom(0, 1, 2, 3, 4, 8, -1), fc.integer(), (port, size, v) => {
        bus.write(port, size, v);
        const r = bus.read(port, size);
        return Number.isInteger(r) && r >= 0 && r <= 0xffffffff;
      }),
      { numRuns: 2000 },
    );
  });
});

describe('MmioBus', () => {
  it('finds sorted ranges, rejects overlaps, splits 8-byte accesses into lo/hi', () => {
    const bus = new MmioBus();
    const ioapic = new Regs(new Uint8Array(0x20));
    const hpet = new Regs(new Uint8Array(0x400));
    bus.register(0xfed00000, 0x400, hpet, 'hpet');
    bus.register(0xfec00000, 0x20, ioapic, 'ioapic');
    expect(() => bus.register(0xfec0001f, 2, ioapic)).toThrow(MmioConflictError);
    expect(() => bus.register(2 ** 52, 16, ioapic)).toThrow(MmioConflictError);
    expect(bus.ranges().map((r) => r.name)).toEqual(['ioapic', 'hpet']);
    bus.write(0xfed00010, 8, 0x89abcdef, 0x01234567);
    expect(hpet.log.slice(-2)).toEqual(['w16/4=89abcdef', 'w20/4=1234567']);
    expect(bus.read(0xfed00010, 8)).toBe(0x89abcdef);
    expect(bus.readHi).toBe(0x01234567);
    expect(bus.read(0xfed00011, 1)).toBe(0xcd);
    expect(bus.read(0xfec00000 - 4, 4)).toBe(0xffffffff);
    expect(bus.read(0xfec0001e, 4)).toBe(0xffff0000);
    expect(bus.owner(0xfed003ff)).toBe('hpet');
    expect(bus.unregister(0xfed00000)).toBe(true);
    expect(bus.read(0xfed00010, 4)).toBe(0xffffffff);
  });

  it('never throws on random accesses (fuzz)', () => {
    const bus = new MmioBus();
    bus.register(0x1000, 0x100, new Regs(new Uint8Array(0x100)), 'x');
    bus.register(0x1100, 0x10, new Regs(new Uint8Array(0x10)), 'y');
    fc.assert(
      fc.property(fc.oneof(fc.integer({ min: 0xff0, max: 0x1120 }), fc.double()), fc.constantFrom(1, 2, 4, 8, 3, 0), fc.integer(), (addr, size, v) => {
        bus.write(addr, size, v, v);
        const r = bus.read(addr, size);
        return Number.isInteger(r) && r >= 0 && r <= 0xffffffff;
      }),
      { numRuns: 2000 },
    );
  });
});

describe('interrupt lines and messages', () => {
  it('forwards only level changes to every connected pin', () => {
    const pic = new RecordingIrqChip();
    const ioapic = new RecordingIrqChip();
    const line = new IrqLine([pic, 0], [ioapic, 2]);
    line.setLevel(true);
    line.setLevel(true);
    expect(pic.rises[0]).toBe(1);
    expect(ioapic.levels[2]).toBe(true);
    line.pulse();
    expect(pic.rises[0]).toBe(2);
    expect(ioapic.levels[2]).toBe(false);
  });

  it('wire-ORs shared sources', () => {
    const out = new RecordingLine();
    const shared = new SharedIrqLine(out);
    const a = shared.source();
    const b = shared.source();
    a.setLevel(true);
    b.setLevel(true);
    a.setLevel(false);
    expect(out.level).toBe(true);
    b.setLevel(false);
    expect(out.level).toBe(false);
    expect(out.rises).toBe(1);
  });

  it('encodes and decodes x86 interrupt messages', () => {
    expect(msiAddress(3)).toBe(0xfee03000);
    expect(msiAddress(1, true)).toBe(0xfee01004);
    const m = decodeMsi(msiAddress(0x12), 0, msiData(0x31, DELIVERY_EXTINT, true), newMsiMessage());
    expect(m).toMatchObject({ valid: true, destination: 0x12, vector: 0x31, deliveryMode: 7, levelTriggered: true, assert: true });
    expect(decodeMsi(0x1000, 0, 0, newMsiMessage()).valid).toBe(false);
  });
});
