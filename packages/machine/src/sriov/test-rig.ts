// Test rig (not exported): a bare PCI root with ECAM on MMIO buses and guest RAM, and a guest
// driver's view of a PCI function through those buses (config through ECAM, BARs through MMIO).
import { AddressSpace, HostMemory } from '@ringzero/mmu-ept';
import type { VirtioPci } from '@ringzero/virtio';
import { GuestAllocator, MockDriver, pciDriverTransport } from '@ringzero/virtio/testing';
import { MmioBus } from '../bus/mmio';
import { PortIoBus } from '../bus/pio';
import { RecordingInterruptSink, RecordingLine } from '../bus/testing';
import { PciRoot } from '../devices/pci/host';

export const ECAM = 0xb000_0000;

export interface Vm {
  pio: PortIoBus;
  mmio: MmioBus;
  sink: RecordingInterruptSink;
  pci: PciRoot;
  memory: AddressSpace;
  cfgRead(bus: number, dev: number, fn: number, reg: number, size: number): number;
  cfgWrite(bus: number, dev: number, fn: number, reg: number, size: number, v: number): void;
}

export function makeVm(ramBytes: number = 8 << 20): Vm {
  const pio = new PortIoBus();
  const mmio = new MmioBus();
  const sink = new RecordingInterruptSink();
  const pci = new PciRoot({ pio, mmio, interrupts: sink, intxLines: [0, 1, 2, 3].map(() => new RecordingLine()), busCount: 2 });
  mmio.register(ECAM, pci.ecamSize, pci.ecam, 'ecam');
  const memory = new AddressSpace(new HostMemory({ maxFrames: (ramBytes >> 12) + 4096 }));
  memory.addRam(0, ramBytes);
  const at = (bus: number, dev: number, fn: number, reg: number): number => ECAM + ((bus << 20) | (dev << 15) | (fn << 12) | reg);
  return {
    pio,
    mmio,
    sink,
    pci,
    memory,
    cfgRead: (bus, dev, fn, reg, size) => mmio.read(at(bus, dev, fn, reg), size),
    cfgWrite: (bus, dev, fn, reg, size, v) => mmio.write(at(bus, dev, fn, reg), size, v),
  };
}

/** A function as a guest driver reaches it: config space through ECAM, BAR `i` at barAddr(i) on the MMIO bus. */
export function busFunction(vm: Vm, bdf: [number, number, number], barAddr: (bar: number) => number): VirtioPci {
  const [b, d, f] = bdf;
  const fn = {
    configRead: (o: number, s: number): number => vm.cfgRead(b, d, f, o, s),
    configWrite: (o: number, s: number, v: number): void => vm.cfgWrite(b, d, f, o, s, v),
    barRead: (bar: number, o: number, s: number): number => vm.mmio.read(barAddr(bar) + o, s),
    barWrite: (bar: number, o: number, s: number, v: number): void => vm.mmio.write(barAddr(bar) + o, s, v),
  };
  return fn as unknown as VirtioPci;
}

/** A virtio-net driver on a bus function (MSI-X on, queues 0 rx / 1 tx), its rings in [start, end) of the VM's RAM. */
export function netDriver(vm: Vm, fn: VirtioPci, start: number, end: number): MockDriver {
  const drv = new MockDriver(pciDriverTransport(fn, { msix: true }), vm.memory, new GuestAllocator(start, end));
  if (!drv.init({ queueSize: 16, queues: 2 })) throw new Error('driver init failed');
  return drv;
}

export const NET_HDR = 12;

/** An Ethernet frame dst <- src with a marker byte. */
export function frame(dst: Uint8Array, src: Uint8Array, marker: number, len = 60): Uint8Array {
  const f = new Uint8Array(len);
  f.set(dst, 0);
  f.set(src, 6);
  f[12] = 0x08;
  f[14] = marker;
  return f;
}

export function transmit(drv: MockDriver, f: Uint8Array): void {
  drv.queues[1].add([drv.buffer(NET_HDR, new Uint8Array(NET_HDR)), drv.buffer(f.length, f)], []);
  drv.kick(1);
}

/** Receive side of a driver: posts buffers and returns the frames that arrived (virtio-net header stripped). */
export class Rx {
  private readonly bufs: { addr: number; len: number }[] = [];
  private next = 0;
  constructor(private readonly drv: MockDriver) {}
  post(n = 4): void {
    for (let i = 0; i < n; i++) {
      const b = this.drv.buffer(2048);
      this.drv.queues[0].add([], [b]);
      this.bufs.push(b);
    }
    this.drv.kick(0);
  }
  take(): Uint8Array[] {
    const out: Uint8Array[] = [];
    for (const u of this.drv.drain(0)) out.push(this.drv.bytes(this.bufs[this.next++], u.len).slice(NET_HDR));
    return out;
  }
}
