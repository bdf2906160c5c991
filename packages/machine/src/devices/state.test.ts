// Save/load: a device restored from a JSON round trip of its saved state must behave exactly as
// the original from then on; invalid states must fail with DeviceStateError.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MmioBus } from '../bus/mmio';
import { PortIoBus, type PortIoDevice } from '../bus/pio';
import { RecordingInterruptSink, RecordingLine } from '../bus/testing';
import { ManualClock } from '../bus/time';
import { AcpiPm } from './acpi-pm';
import { I8042 } from './i8042';
import { IoApic } from './ioapic';
import { PciDevice } from './pci/function';
import { PciRoot } from './pci/host';
import { DualPic } from './pic';
import { Pit8254 } from './pit';
import { Rtc } from './rtc';
import { DeviceStateError } from './state';
import { Uart16550 } from './uart';

interface Subject {
  save(): unknown;
  load(s: unknown): void;
  /** One operation; returns what it read (for comparison). */
  op(kind: number, a: number, b: number): number;
  /** Observable interrupt outputs. */
  observe(): string;
}

const ops = fc.array(fc.tuple(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: 0, max: 255 })), { maxLength: 40 });

function portSubject(devs: [PortIoDevice, number][], extra: (kind: number, a: number, b: number) => number, observe: () => string, save: () => unknown, load: (s: unknown) => void): Subject {
  const bus = new PortIoBus();
  const ports: number[] = [];
  let base = 0x100;
  for (const [d, n] of devs) {
    bus.register(base, n, d);
    for (let k = 0; k < n; k++) ports.push(base + k);
    base += 0x10;
  }
  return {
    save,
    load,
    observe,
    op: (kind, a, b) => {
      const port = ports[a % ports.length];
      if (kind === 0) {
        bus.write(port, 1, b);
        return -1;
      }
      if (kind === 1) return bus.read(port, 1);
      return extra(kind, a, b);
    },
  };
}

function check(make: (clock: ManualClock) => Subject): void {
  fc.assert(
    fc.property(ops, ops, (before, after) => {
      const clock = new ManualClock(5e9);
      const a = make(clock);
      for (const [k, x, y] of before) {
        a.op(k, x, y);
        clock.advance(y * 1000);
      }
      const b = make(clock);
      b.load(JSON.parse(JSON.stringify(a.save())));
      if (a.observe() !== b.observe()) return false;
      for (const [k, x, y] of after) {
        if (a.op(k, x, y) !== b.op(k, x, y) || a.observe() !== b.observe()) return false;
        clock.advance(y * 1000);
      }
      return JSON.stringify(a.save()) === JSON.stringify(b.save());
    }),
    { numRuns: 100 },
  );
}

describe('device state save/load', () => {
  it('8259 pair', () => {
    check(() => {
      const sink = new RecordingInterruptSink();
      const pic = new DualPic({ sink });
      return portSubject(
        [
          [pic.master, 2],
          [pic.slave, 2],
          [pic.elcr, 2],
        ],
        (kind, a, b) => (kind === 2 ? (pic.setIrq(a & 15, (b & 1) === 1), -1) : pic.acknowledge()),
        () => String(sink.extInt),
        () => pic.saveState(),
        (s) => pic.loadState(s),
      );
    });
  });

  it('8254 PIT', () => {
    check((clock) => {
      const irq = new RecordingLine();
      const pit = new Pit8254(clock, irq);
      return portSubject(
        [
          [pit.ports, 4],
          [pit.portB, 1],
        ],
        () => pit.poll(clock.ns),
        () => `${irq.level}`,
        () => pit.saveState(),
        (s) => pit.loadState(s),
      );
    });
  });

  it('MC146818 RTC', () => {
    check((clock) => {
      const irq = new RecordingLine();
      const rtc = new Rtc(clock, irq);
      return portSubject([[rtc.ports, 2]], () => rtc.poll(clock.ns), () => `${irq.level}`, () => rtc.saveState(), (s) => rtc.loadState(s));
    });
  });

  it('16550A UART', () => {
    check(() => {
      const irq = new RecordingLine();
      const out: number[] = [];
      const uart = new Uart16550(irq, { sink: { writeByte: (x) => out.push(x) } });
      return portSubject([[uart, 8]], (_k, _a, b) => (uart.receiveByte(b), uart.rxSpace), () => `${irq.level}`, () => uart.saveState(), (s) => uart.loadState(s));
    });
  });

  it('i8042', () => {
    check(() => {
      const irq = new RecordingLine();
      const kbc = new I8042(irq);
      return portSubject(
        [
          [kbc.dataPort, 1],
          [kbc.commandPort, 1],
        ],
        (_k, _a, b) => (kbc.injectKeyboardBytes([b]), kbc.pendingBytes),
        () => `${irq.level}`,
        () => kbc.saveState(),
        (s) => kbc.loadState(s),
      );
    });
  });

  it('IOAPIC', () => {
    check(() => {
      const sink = new RecordingInterruptSink();
      const io = new IoApic(sink);
      const bus = new MmioBus();
      bus.register(0, 0x1000, io);
      let base = 0; // messages delivered before the save are history, not state
      return {
        save: () => ((base = sink.msis.length), io.saveState()),
        load: (s) => io.loadState(s),
        observe: () => String(sink.msis.length - base),
        op: (kind, a, b) => {
          if (kind === 0) {
            bus.write(0, 4, a & 0x3f);
            bus.write(0x10, 4, (b << 8) | (a >> 6) | (b & 1 ? 0x8000 : 0));
            return -1;
          }
          if (kind === 1) {
            bus.write(0, 4, a & 0x3f);
            return bus.read(0x10, 4);
          }
          if (kind === 2) io.setIrq(a % 24, (b & 1) === 1);
          else io.endOfInterrupt(b);
          return sink.msis.length - base;
        },
      };
    });
  });

  it('ACPI PM', () => {
    check((clock) => {
      const sci = new RecordingLine();
      const pm = new AcpiPm(clock, sci);
      return portSubject(
        [
          [pm.eventBlock, 4],
          [pm.controlBlock, 2],
          [pm.timerBlock, 4],
        ],
        (kind) => (kind === 2 ? (pm.pressPowerButton(), -1) : pm.poll(clock.ns)),
        () => `${sci.level} ${pm.poweredOff}`,
        () => pm.saveState(),
        (s) => pm.loadState(s),
      );
    });
  });

  it('PCI function with MSI-X, and the root', () => {
    check(() => {
      const sink = new RecordingInterruptSink();
      const mmio = new MmioBus();
      const pio = new PortIoBus();
      const pirq = [new RecordingLine(), new RecordingLine(), new RecordingLine(), new RecordingLine()];
      const root = new PciRoot({ pio, mmio, interrupts: sink, intxLines: pirq, busCount: 1 });
      const dev = new PciDevice({ vendorId: 0x1af4, deviceId: 0x1041, classCode: 0x020000, interruptPin: 1, express: {}, bars: [{ index: 0, type: 'mem32', size: 0x1000 }], msix: { vectors: 4, bar: 0, tableOffset: 0x800, pbaOffset: 0xc00 }, msi: { vectors: 2, perVectorMask: true } });
      root.attach(dev, 1);
      mmio.register(0x80000000, root.ecamSize, root.ecam);
      let base = 0;
      return {
        save: () => ((base = sink.msis.length), { root: root.saveState(), dev: dev.saveState() }),
        load: (s) => {
          const o = s as { root: unknown; dev: unknown };
          root.loadState(o.root);
          dev.loadState(o.dev);
        },
        observe: () => `${sink.msis.length - base} ${pirq[1].level} ${dev.barMapped(0)} ${JSON.stringify(sink.msis.slice(base))}`,
        op: (kind, a, b) => {
          const reg = (a & 0xff) < 0x40 ? [0x04, 0x10, 0x3c][a % 3] : 0x40 + (a % 0x30);
          if (kind === 0) {
            mmio.write(0x80008000 + reg, 1, b);
            if (reg === 0x10) mmio.write(0x80008000 + 0x10, 4, 0xe0000000);
            return -1;
          }
          if (kind === 1) return mmio.read(0x80008000 + reg, 4);
          if (kind === 2) {
            mmio.write(0xe0000800 + (a % 64), 4, b * 0x01010101);
            return mmio.read(0xe0000c00, 4);
          }
          dev.setIntx((b & 1) === 1);
          return dev.notify(b & 3) ? 1 : 0;
        },
      };
    });
  });

  it('rejects bad states with DeviceStateError and leaves the device as it was', () => {
    const pic = new DualPic();
    const good = pic.saveState();
    expect(() => pic.loadState(null)).toThrow(DeviceStateError);
    expect(() => pic.loadState({ ...good, version: 2 })).toThrow(/version/);
    expect(() => pic.loadState({ ...good, master: { ...good.master, imr: 256 } })).toThrow(/master\.imr/);
    expect(() => pic.loadState({ ...good, slave: { ...good.slave, autoEoi: 1 } })).toThrow(/slave\.autoEoi/);
    expect(pic.saveState()).toEqual(good);
    const pit = new Pit8254(new ManualClock(), new RecordingLine());
    expect(() => pit.loadState({ ...pit.saveState(), channels: [] })).toThrow(/channels/);
    const uart = new Uart16550(new RecordingLine());
    expect(() => uart.loadState({ ...uart.saveState(), rx: new Array(17).fill(0) })).toThrow(/rx/);
    const dev = new PciDevice({ vendorId: 1, deviceId: 2, classCode: 0 });
    const other = new PciDevice({ vendorId: 1, deviceId: 3, classCode: 0 });
    expect(() => dev.loadState(other.saveState())).toThrow(/another device/);
    // read-only config bytes are never taken from a state
    const forged = dev.saveState();
    forged.config[0x0e] = 0x01;
    forged.config[0x34] = 0x40;
    dev.loadState(forged);
    expect(dev.configRead(0x0e, 1)).toBe(0);
    expect(dev.configRead(0x34, 1)).toBe(0);
  });
});
