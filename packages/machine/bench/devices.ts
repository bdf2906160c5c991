// Device-dispatch benchmark: how many port-I/O and MMIO exits per second the buses and devices
// can absorb (the machine's share of the cost of an exit). No peer: QEMU's equivalent path
// cannot be timed apart from its vCPU exit, so these figures stand alone.
// Prints one JSON object per line: {"name","value","unit"}.
// Run: npx tsx --conditions=@ringzero/source bench/devices.ts   (BENCH_SCALE=4 for longer runs)
import { IrqLine } from '../src/bus/irq';
import { MmioBus } from '../src/bus/mmio';
import { PortIoBus } from '../src/bus/pio';
import { RecordingInterruptSink } from '../src/bus/testing';
import { ManualClock } from '../src/bus/time';
import { IoApic } from '../src/devices/ioapic';
import { PciDevice } from '../src/devices/pci/function';
import { PciRoot } from '../src/devices/pci/host';
import { DualPic } from '../src/devices/pic';
import { Pit8254 } from '../src/devices/pit';
import { PostCodePort } from '../src/devices/debug';
import { Uart16550 } from '../src/devices/uart';

const scale = Number(process.env.BENCH_SCALE ?? 1);
const pio = new PortIoBus();
const mmio = new MmioBus();
const sink = new RecordingInterruptSink();
const pic = new DualPic({ sink });
const ioapic = new IoApic(sink);
const clock = new ManualClock(1e9);
let sent = 0;
const uart = new Uart16550(new IrqLine([pic, 4], [ioapic, 4]), { sink: { writeByte: () => sent++ } });
const pit = new Pit8254(clock, new IrqLine([pic, 0], [ioapic, 2]));
const pci = new PciRoot({ pio, mmio, interrupts: sink, intxLines: [16, 17, 18, 19].map((g) => new IrqLine([ioapic, g])) });
pci.attach(new PciDevice({ vendorId: 0x1af4, deviceId: 0x1041, classCode: 0x020000, express: {} }), 1);
pio.register(0x20, 2, pic.master, 'pic1');
pio.register(0xa0, 2, pic.slave, 'pic2');
pio.register(0x40, 4, pit.ports, 'pit');
pio.register(0x3f8, 8, uart, 'com1', 1);
pio.register(0x80, 1, new PostCodePort(), 'post');
pio.register(0xcf8, 8, pci.configPorts, 'pci');
mmio.register(0xfec00000, 0x1000, ioapic, 'ioapic');
mmio.register(0xb0000000, pci.ecamSize, pci.ecam, 'ecam');
pio.write(0x3fc, 1, 0x0b);

/** Best of three timed runs after one warm-up run (so the JIT has settled). */
function bench(name: string, iterations: number, body: (n: number) => number): void {
  let best = Infinity;
  let check = 0;
  for (let run = 0; run < 4; run++) {
    const t0 = performance.now();
    check ^= body(iterations);
    const seconds = (performance.now() - t0) / 1000;
    if (run > 0 && seconds < best) best = seconds;
  }
  if (check === 0.5) console.error('unreachable');
  // Each iteration is one access, except where the name says two (counted as two).
  const perIteration = name.includes('+') ? 2 : 1;
  console.log(JSON.stringify({ name, value: Math.round((iterations * perIteration) / best), unit: 'accesses/s' }));
}

const N = 2_000_000 * scale;
bench('pio.out port 0x80 (POST code)', N, (n) => {
  for (let k = 0; k < n; k++) pio.write(0x80, 1, k & 0xff);
  return 0;
});
bench('pio.in uart LSR (polling serial)', N, (n) => {
  let acc = 0;
  for (let k = 0; k < n; k++) acc ^= pio.read(0x3fd, 1);
  return acc;
});
bench('pio.out uart THR (console output)', N, (n) => {
  for (let k = 0; k < n; k++) pio.write(0x3f8, 1, 0x41);
  return sent;
});
bench('pio.in unclaimed port', N, (n) => {
  let acc = 0;
  for (let k = 0; k < n; k++) acc ^= pio.read(0x1234, 1);
  return acc;
});
bench('pio.in pit counter 0 (time-derived)', N / 5, (n) => {
  let acc = 0;
  for (let k = 0; k < n; k++) {
    clock.ns += 100;
    acc ^= pio.read(0x40, 1);
  }
  return acc;
});
bench('pio 8259 EOI + IMR read', N / 2, (n) => {
  let acc = 0;
  for (let k = 0; k < n; k++) {
    pio.write(0x20, 1, 0x20);
    acc ^= pio.read(0x21, 1);
  }
  return acc;
});
bench('pci type-1 config read (cf8+cfc)', N / 5, (n) => {
  let acc = 0;
  for (let k = 0; k < n; k++) {
    pio.write(0xcf8, 4, 0x80000800 | ((k & 15) << 2));
    acc ^= pio.read(0xcfc, 4);
  }
  return acc;
});
bench('mmio ioapic IOREGSEL+IOWIN read', N / 2, (n) => {
  let acc = 0;
  for (let k = 0; k < n; k++) {
    mmio.write(0xfec00000, 4, 0x10 + (k & 31));
    acc ^= mmio.read(0xfec00010, 4);
  }
  return acc;
});
bench('mmio ecam config read', N / 5, (n) => {
  let acc = 0;
  for (let k = 0; k < n; k++) acc ^= mmio.read(0xb0008000 + ((k & 15) << 2), 4);
  return acc;
});
