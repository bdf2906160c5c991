// Every device wired as on a PC (the ports and IRQs are the test's board, not the devices'),
// then hammered with random port and MMIO traffic: nothing may throw, hang or return garbage.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { IrqLine } from '../bus/irq';
import { MmioBus } from '../bus/mmio';
import { PortIoBus } from '../bus/pio';
import { RecordingInterruptSink } from '../bus/testing';
import { ManualClock, TimerGroup } from '../bus/time';
import { AcpiPm } from './acpi-pm';
import { DebugExit, PostCodePort } from './debug';
import { I8042 } from './i8042';
import { IoApic } from './ioapic';
import { PciDevice } from './pci/function';
import { PciRoot } from './pci/host';
import { DualPic } from './pic';
import { Pit8254 } from './pit';
import { Rtc } from './rtc';
import { Uart16550 } from './uart';

function board() {
  const pio = new PortIoBus();
  const mmio = new MmioBus();
  const clock = new ManualClock();
  const apic = new RecordingInterruptSink();
  const pic = new DualPic({ sink: apic });
  const ioapic = new IoApic(apic);
  const isa = (n: number): IrqLine => new IrqLine([pic, n], [ioapic, n === 0 ? 2 : n]);
  const events: string[] = [];
  const pit = new Pit8254(clock, isa(0));
  const rtc = new Rtc(clock, isa(8));
  const com1 = new Uart16550(isa(4), { sink: { writeByte: () => {} } });
  const kbc = new I8042(isa(1), { onReset: () => events.push('reset') });
  const pm = new AcpiPm(clock, isa(9), { onPowerOff: () => events.push('off') });
  const pci = new PciRoot({ pio, mmio, interrupts: apic, intxLines: [16, 17, 18, 19].map((g) => new IrqLine([ioapic, g])), busCount: 1 });
  pci.attach(
    new PciDevice({
      vendorId: 0x1af4,
      deviceId: 0x1042,
      classCode: 0x010000,
      interruptPin: 1,
      express: {},
      bars: [{ index: 0, type: 'mem64', size: 0x4000 }],
      msix: { vectors: 2, bar: 0, tableOffset: 0x1000, pbaOffset: 0x2000 },
    }),
    1,
  );
  pio.register(0x20, 2, pic.master, 'pic1');
  pio.register(0xa0, 2, pic.slave, 'pic2');
  pio.register(0x4d0, 2, pic.elcr, 'elcr');
  pio.register(0x40, 4, pit.ports, 'pit');
  pio.register(0x61, 1, pit.portB, 'port61');
  pio.register(0x70, 2, rtc.ports, 'rtc');
  pio.register(0x3f8, 8, com1, 'com1', 1);
  pio.register(0x60, 1, kbc.dataPort, 'kbd');
  pio.register(0x64, 1, kbc.commandPort, 'kbd-cmd');
  pio.register(0x600, 4, pm.eventBlock, 'pm1a_evt');
  pio.register(0x604, 2, pm.controlBlock, 'pm1a_cnt');
  pio.register(0x608, 4, pm.timerBlock, 'pm_tmr');
  pio.register(0x80, 1, new PostCodePort(), 'post');
  pio.register(0xf4, 4, new DebugExit(() => events.push('exit')), 'debug-exit');
  pio.register(0xcf8, 8, pci.configPorts, 'pci');
  mmio.register(0xfec00000, 0x1000, ioapic, 'ioapic');
  mmio.register(0xb0000000, pci.ecamSize, pci.ecam, 'ecam');
  pci.assignResources({ mem32: [0xc0000000, 0xfebfffff] });
  const timers = new TimerGroup();
  for (const t of [pit, rtc, pm]) timers.add(t);
  return { pio, mmio, clock, timers, apic, pic, events };
}

describe('a PC board of these devices', () => {
  it('survives random port and MMIO traffic (fuzz)', () => {
    const b = board();
    const interesting = [0x20, 0x21, 0xa0, 0xa1, 0x4d0, 0x4d1, 0x40, 0x41, 0x42, 0x43, 0x61, 0x70, 0x71, 0x3f8, 0x3f9, 0x3fa, 0x3fb, 0x3fc, 0x3fd, 0x3fe, 0x3ff, 0x60, 0x64, 0x600, 0x602, 0x604, 0x608, 0x80, 0xcf8, 0xcf9, 0xcfc, 0xcfe];
    const mmioBases = [0xfec00000, 0xfec00010, 0xb0000000, 0xb0008000, 0xb0008010, 0xc0000000, 0xc0001000, 0xc0002000];
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            port: fc.oneof(fc.constantFrom(...interesting), fc.integer({ min: 0, max: 0xffff })),
            mmio: fc.tuple(fc.constantFrom(...mmioBases), fc.integer({ min: 0, max: 0x3f })),
            size: fc.constantFrom(1, 2, 4),
            value: fc.integer(),
            dt: fc.integer({ min: 0, max: 5_000_000 }),
          }),
          { maxLength: 120 },
        ),
        (ops) => {
          for (const op of ops) {
            b.pio.write(op.port, op.size, op.value);
            const r = b.pio.read(op.port, op.size);
            if (!(r >= 0 && r <= 0xffffffff)) return false;
            const a = op.mmio[0] + op.mmio[1];
            b.mmio.write(a, op.size, op.value);
            const m = b.mmio.read(a, op.size);
            if (!(m >= 0 && m <= 0xffffffff)) return false;
            b.clock.advance(op.dt);
            if (!(b.timers.poll(b.clock.ns) > b.clock.ns)) return false;
            const v = b.pic.acknowledge();
            if (v < 0 || v > 255) return false;
          }
          return true;
        },
      ),
      { numRuns: 150 },
    );
    expect(b.pio.ranges().length).toBeGreaterThan(10);
  });
});
