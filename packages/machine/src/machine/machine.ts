/**
 * The machine: QEMU's pc board and libvirt's domain lifecycle in one object. `Machine.build`
 * takes a plain description, opens what it names through a `MachineHost`, and wires:
 *
 *   RAM (mmu-ept AddressSpace, split around the PCI hole) + MMIO holes for the hole and the
 *   64-bit PCI window;
 *   the port-I/O bus: 8259 pair + ELCR, 8254 + port 0x61, RTC/CMOS, COM1, i8042, ACPI PM,
 *   0x80, 0x92, isa-debug-exit, PCI type-1 (0xCF8-0xCFF, reset at 0xCF9);
 *   the MMIO bus: IOAPIC, ECAM, and the BARs of the virtio-pci functions;
 *   interrupts: ISA IRQ n -> 8259 pin n and IOAPIC pin n (IRQ0 -> GSI 2), PCI INTx -> GSI 16-19,
 *   IOAPIC messages and MSI-X -> the vCPU's local APIC, the 8259's INTR -> injected by the run loop;
 *   ACPI tables and the kernel (prepareDirectBoot), the vCPU's initial state from the loader.
 *
 * The run loop (`start`) calls `vcpu.run()`, dispatches each exit to the buses, polls the timed
 * devices, injects 8259 interrupts, and yields to the host event loop between slices so that
 * asynchronous disk I/O, network frames and terminal input get their turn.
 */
import { AddressSpace, HostMemory } from '@ringzero/mmu-ept';
import { GuestTimeScheduler, MachineBalloon } from './balloon';
import { VirtioBlk, VirtioConsole, VirtioNet, VirtioPci, VirtioRng, type BlockBackend, type VirtioDevice } from '@ringzero/virtio';
import { Bridge } from '@ringzero/vswitch';
import { Vcpu } from '@ringzero/x86-core';
import { prepareDirectBoot, type DirectBoot } from '../boot/direct';
import { decodeMsi, DELIVERY_EXTINT, DELIVERY_FIXED, DELIVERY_LOWEST_PRIORITY, DELIVERY_NMI, newMsiMessage, type InterruptSink } from '../bus/interrupts';
import { IrqLine, type InterruptLine } from '../bus/irq';
import { MmioBus } from '../bus/mmio';
import { PortIoBus, type PortIoDevice } from '../bus/pio';
import { TimerGroup, type TimeSource } from '../bus/time';
import { AcpiPm } from '../devices/acpi-pm';
import { DebugExit, PostCodePort } from '../devices/debug';
import { I8042 } from '../devices/i8042';
import { IoApic } from '../devices/ioapic';
import { PciRoot } from '../devices/pci/host';
import { DualPic } from '../devices/pic';
import { Pit8254 } from '../devices/pit';
import { Rtc } from '../devices/rtc';
import { Uart16550, type ByteSource } from '../devices/uart';
import * as L from '../layout';
import { MachineConfigError, parseMac, validateMachineDescription, type DriveDescription, type MachineDescription, type NetdevDescription } from './config';
import {
  VCPU_EXIT_BUDGET,
  VCPU_EXIT_DEBUG,
  VCPU_EXIT_EPT_VIOLATION,
  VCPU_EXIT_HLT,
  VCPU_EXIT_INTERNAL_ERROR,
  VCPU_EXIT_INTR,
  VCPU_EXIT_IO,
  VCPU_EXIT_IRQ_WINDOW,
  VCPU_EXIT_MMIO,
  VCPU_EXIT_NAMES,
  VCPU_EXIT_SHUTDOWN,
  type VcpuFactory,
  type VcpuPort,
} from './vcpu-port';
import type { TimeSyncGroup } from './time-sync';
import { VirtioPciFunction } from './virtio-function';
import { SRIOV_VF_BAR_WINDOW, SriovVirtioNet } from '../sriov/virtio-net-sriov';

/** What the machine needs from its host (files, disks, tunnels). `@ringzero/machine/node` has `nodeMachineHost`. */
export interface MachineHost {
  readFile(path: string): Uint8Array | Promise<Uint8Array>;
  openDrive(drive: DriveDescription): Promise<BlockBackend>;
  /** A bridge whose other side is a VXLAN tunnel (Node: UDP). */
  openVxlan?(netdev: Extract<NetdevDescription, { type: 'vxlan' }>): Promise<{ bridge: Bridge; close(): Promise<void> }>;
}

export interface MachineOptions {
  /** Makes the vCPU. Default: @ringzero/x86-core's `Vcpu` (`(space, o) => new Vcpu(space, o)`). */
  readonly vcpu?: VcpuFactory<AddressSpace>;
  /** Where files named by path come from. Needed when the description names files. */
  readonly host?: MachineHost;
  /** In-process bridges by name, shared by machines built with the same map (created on demand). */
  readonly bridges?: Map<string, Bridge>;
  /** Terminal input for COM1 (pulled while the UART's FIFO has room). `sendSerial` also works. */
  readonly serialInput?: ByteSource;
  /** Instructions per vCPU run() between device polls (default 20000). */
  readonly sliceInstructions?: number;
  /** Wall time (ms) the loop runs before yielding to the host event loop (default 10). */
  readonly sliceMs?: number;
  /** Host frames for guest RAM; machines given the same one can share pages (KSM). Default: a new one. */
  readonly hostMemory?: HostMemory;
  /**
   * Deterministic time only: machines that talk to each other join one `TimeSyncGroup`, so an
   * idle guest's clock cannot leap seconds ahead of a busy peer's and time out waiting for it.
   */
  readonly timeSync?: TimeSyncGroup;
}

export type MachineState = 'created' | 'running' | 'paused' | 'stopped';

/** Why a machine stopped. */
export type StopReason = 'poweroff' | 'reset' | 'debug-exit' | 'shutdown' | 'error' | 'stopped';

export interface MachineStopInfo {
  readonly reason: StopReason;
  /** The process exit status QEMU would give: isa-debug-exit (v << 1) | 1, 0 for power-off, 1 for errors. */
  readonly exitStatus: number;
  /** What went wrong (vCPU internal error, triple fault, host failure). */
  readonly message: string;
}

export interface MachineStatus {
  readonly state: MachineState;
  readonly stop: MachineStopInfo | null;
  /** Virtual time in ns. */
  readonly guestNs: number;
  /** vCPU exits by name. */
  readonly exits: Readonly<Record<string, number>>;
  /** Bytes the guest wrote to COM1. */
  readonly serialBytes: number;
  /** The last vCPU exit (name and detail), for diagnostics. */
  readonly lastExit: string;
}

export interface MachineEventMap {
  /** Bytes the guest wrote to COM1 (batched). */
  serial: Uint8Array;
  /** Bytes the guest wrote to the virtio console. */
  console: Uint8Array;
  poweroff: undefined;
  reset: undefined;
  'debug-exit': number;
  stop: MachineStopInfo;
  /** QMP BALLOON_CHANGE: the guest's new size in bytes, whenever the balloon driver updates `actual`. */
  'balloon-change': number;
}

type Listener<T> = (value: T) => void;

/** A PCI function the machine built, for inspection. */
export interface MachinePciDevice {
  readonly slot: number;
  readonly kind: 'virtio-blk' | 'virtio-net' | 'virtio-rng' | 'virtio-console' | 'virtio-balloon';
  readonly function: VirtioPciFunction;
  readonly transport: VirtioPci;
  readonly device: VirtioDevice;
}

/** Port 0x92: fast A20 (bit 1) and fast reset (bit 0). */
class SystemControlA implements PortIoDevice {
  value = 0x02;
  constructor(private readonly onReset: () => void) {}
  portRead(): number {
    return this.value;
  }
  portWrite(_o: number, _s: number, v: number): void {
    const reset = (v & 1) !== 0 && (this.value & 1) === 0;
    this.value = v & 0x03;
    if (reset) this.onReset();
  }
}

/** The local APIC as the platform's interrupt sink (IOAPIC messages, MSI/MSI-X, 8259 INTR, NMI). */
class ApicSink implements InterruptSink {
  /** The 8259's INTR output level. */
  intr = false;
  /** An IOAPIC entry in ExtINT mode fired: take the vector from the 8259. */
  extIntMessage = false;
  dropped = 0;
  private readonly msg = newMsiMessage();
  constructor(private readonly vcpu: () => VcpuPort) {}
  deliverMsi(addressLo: number, addressHi: number, data: number): void {
    const m = decodeMsi(addressLo, addressHi, data, this.msg);
    if (!m.valid) {
      this.dropped++;
      return;
    }
    // One vCPU: every destination that could name it reaches it.
    switch (m.deliveryMode) {
      case DELIVERY_FIXED:
      case DELIVERY_LOWEST_PRIORITY:
        this.vcpu().apic.accept(m.vector, m.levelTriggered);
        return;
      case DELIVERY_NMI:
        this.vcpu().injectNmi();
        return;
      case DELIVERY_EXTINT:
        this.extIntMessage = true;
        return;
      default:
        this.dropped++; // SMI, INIT, SIPI: nothing to do with one vCPU and no SMM
    }
  }
  setExtInt(level: boolean): void {
    this.intr = level;
  }
  deliverNmi(): void {
    this.vcpu().injectNmi();
  }
}

const DEFAULT_MAC_PREFIX = [0x52, 0x54, 0x00, 0x12, 0x34];
const IO_WINDOW: readonly [number, number] = [0xc000, 0xffff];
const LVT_LINT0 = 0x350;

/** `base` (cut to the 15 characters a port name may have), or with a number after it when taken. */
function freePortName(bridge: Bridge, base: string): string {
  const cut = (n: string): string => n.slice(0, 15);
  if (bridge.port(cut(base)) === undefined) return cut(base);
  for (let i = 1; ; i++) {
    const suffix = `.${i}`;
    const name = base.slice(0, 15 - suffix.length) + suffix;
    if (bridge.port(name) === undefined) return name;
  }
}

function hex(n: number): string {
  return '0x' + n.toString(16);
}

/** A PC built from a MachineDescription, with a KVM-style run loop and a lifecycle. */
export class Machine {
  readonly description: MachineDescription;
  readonly memory: AddressSpace;
  readonly pio: PortIoBus = new PortIoBus();
  readonly mmio: MmioBus = new MmioBus();
  readonly vcpu: VcpuPort;
  readonly clock: TimeSource;
  readonly timers: TimerGroup = new TimerGroup();
  readonly pic: DualPic;
  readonly ioapic: IoApic;
  readonly pit: Pit8254;
  readonly rtc: Rtc;
  readonly pm: AcpiPm;
  readonly i8042: I8042;
  readonly com1: Uart16550 | null;
  readonly pci: PciRoot;
  readonly pciDevices: readonly MachinePciDevice[];
  /** The SR-IOV NICs (virtio-net with `sriovTotalVfs`): their VFs, embedded switch, assignment. */
  readonly sriovNics: readonly SriovVirtioNet[];
  readonly boot: DirectBoot;
  readonly bridges: Map<string, Bridge>;
  /** The virtio-balloon (QMP balloon / query-balloon), when the description has one. */
  readonly balloon: MachineBalloon | null = null;
  private readonly sink: ApicSink;
  private readonly deterministic: boolean;
  private readonly sliceInstructions: number;
  private readonly sliceMs: number;
  private readonly listeners = new Map<keyof MachineEventMap, Listener<never>[]>();
  private readonly drives: BlockBackend[];
  private readonly closers: (() => Promise<void>)[];
  private readonly serialOut: Uint8Array = new Uint8Array(4096);
  private serialLen = 0;
  private serialTotal = 0;
  private readonly serialQueue: number[] = [];
  private serialQueueHead = 0;
  private stateValue: MachineState = 'created';
  private stopInfo: MachineStopInfo | null = null;
  private pendingStop: MachineStopInfo | null = null;
  private pauseRequested = false;
  private loopDone: Promise<MachineStopInfo> | null = null;
  private wake: (() => void) | null = null;
  private readonly exitCounts = new Float64Array(32);
  private lastExitText = '';
  private readonly timeLimit: (() => number) | null;
  /** Halted with no timer due: the guest waits for a host event (a frame, a disk completion, input). */
  waitingForHost = false;

  private constructor(d: MachineDescription, options: MachineOptions, files: { kernel: Uint8Array; initrd: Uint8Array | null }, drives: BlockBackend[], netBridges: Map<string, Bridge>, closers: (() => Promise<void>)[]) {
    this.description = d;
    this.deterministic = d.time === 'deterministic';
    this.sliceInstructions = options.sliceInstructions ?? 20_000;
    this.sliceMs = options.sliceMs ?? 10;
    this.timeLimit = options.timeSync?.join(this) ?? null;
    this.drives = drives;
    this.closers = closers;
    this.bridges = options.bridges ?? new Map<string, Bridge>();
    const ramSize = d.memory;

    // Memory: RAM around the hole; the hole and the 64-bit window are MMIO (exits).
    const host = options.hostMemory ?? new HostMemory({ maxFrames: Math.max(1 << 16, Math.ceil(ramSize / L.PAGE_SIZE) + (1 << 14)) });
    this.memory = new AddressSpace(host);
    for (const r of L.ramRegions(ramSize)) this.memory.addRam(r.start, r.size);
    this.memory.addMmio(L.PCI_HOLE_START, L.FOUR_GiB - L.PCI_HOLE_START, 1);
    const w64 = L.pciMmio64Window(ramSize);
    this.memory.addMmio(w64.start, w64.size, 2);

    // vCPU and its clock (deterministic: from retired instructions).
    this.vcpu = (options.vcpu ?? defaultVcpu)(this.memory, { time: this.deterministic ? 'deterministic' : 'wall', apicId: 0 });
    const vcpu = this.vcpu;
    this.clock = { nowNs: (): number => vcpu.time.now() };
    this.sink = new ApicSink(() => vcpu);

    // Interrupt controllers.
    this.pic = new DualPic({ sink: this.sink });
    this.ioapic = new IoApic(this.sink, { id: 1 });
    vcpu.apic.onEoi = (v: number): void => this.ioapic.endOfInterrupt(v);
    const isa = (irq: number): IrqLine => new IrqLine([this.pic, irq], [this.ioapic, L.isaIrqToGsi(irq)]);

    // Chipset devices.
    const reset = (): void => this.requestStop('reset', 0, 'guest reset');
    this.pit = new Pit8254(this.clock, isa(L.IRQ_PIT));
    this.rtc = new Rtc(this.clock, isa(L.IRQ_RTC), this.deterministic ? {} : { startTimeMs: Date.now() });
    this.rtc.setMemorySize(ramSize);
    this.pm = new AcpiPm(this.clock, isa(L.IRQ_SCI), { s5SleepType: L.ACPI_S5_SLP_TYP, onPowerOff: () => this.requestStop('poweroff', 0, 'ACPI S5') });
    this.i8042 = new I8042(isa(L.IRQ_KEYBOARD), { onReset: reset });
    this.com1 = d.serial === false ? null : new Uart16550(isa(L.IRQ_COM1), { sink: { writeByte: (b: number) => this.serialByte(b) }, source: this.serialSource(options.serialInput) });
    this.timers.add(this.pit);
    this.timers.add(this.rtc);
    this.timers.add(this.pm);

    const pio = this.pio;
    pio.register(L.PIC_MASTER_PORT, 2, this.pic.master, 'pic1');
    pio.register(L.PIC_SLAVE_PORT, 2, this.pic.slave, 'pic2');
    pio.register(L.ELCR_PORT, 2, this.pic.elcr, 'elcr');
    pio.register(L.PIT_PORT, L.PIT_PORT_COUNT, this.pit.ports, 'pit');
    pio.register(L.SYSTEM_CONTROL_B_PORT, 1, this.pit.portB, 'port61');
    pio.register(L.RTC_PORT, L.RTC_PORT_COUNT, this.rtc.ports, 'rtc');
    pio.register(L.I8042_DATA_PORT, 1, this.i8042.dataPort, 'i8042-data');
    pio.register(L.I8042_COMMAND_PORT, 1, this.i8042.commandPort, 'i8042-cmd');
    pio.register(L.POST_PORT, 1, new PostCodePort(), 'post');
    pio.register(L.SYSTEM_CONTROL_A_PORT, 1, new SystemControlA(reset), 'port92');
    pio.register(L.ACPI_PM1A_EVT_PORT, L.ACPI_PM1_EVT_LEN, this.pm.eventBlock, 'pm1a-evt');
    pio.register(L.ACPI_PM1A_CNT_PORT, L.ACPI_PM1_CNT_LEN, this.pm.controlBlock, 'pm1a-cnt');
    pio.register(L.ACPI_PM_TMR_PORT, L.ACPI_PM_TMR_LEN, this.pm.timerBlock, 'pm-tmr');
    if (this.com1 != null) pio.register(L.COM1_PORT, L.UART_PORT_COUNT, this.com1, 'com1', 1);
    if (d.debugExit !== undefined && d.debugExit !== false) {
      const x = d.debugExit;
      const dev = new DebugExit((status) => {
        this.emit('debug-exit', status);
        this.requestStop('debug-exit', status, `isa-debug-exit wrote ${hex((status - 1) / 2)}`);
      });
      if (!pio.tryRegister(x.iobase, x.iosize, dev, 'isa-debug-exit')) {
        throw new MachineConfigError(`debugExit: ports ${hex(x.iobase)}+${x.iosize} overlap ${pio.owner(x.iobase) ?? pio.owner(x.iobase + x.iosize - 1) ?? 'another device'}`);
      }
    }
    this.mmio.register(L.IOAPIC_START, L.IOAPIC_SIZE, this.ioapic, 'ioapic');

    // PCI root, ECAM, virtio functions.
    const intxLines: InterruptLine[] = [0, 1, 2, 3].map((i) => new IrqLine([this.ioapic, L.PCI_INTX_GSI_BASE + i]));
    this.pci = new PciRoot({
      pio,
      mmio: this.mmio,
      interrupts: this.sink,
      intxLines,
      intxIrqNumbers: [16, 17, 18, 19],
      busCount: L.ECAM_SIZE >>> 20,
      onReset: reset,
    });
    pio.register(L.PCI_CONFIG_ADDRESS_PORT, 8, this.pci.configPorts, 'pci-config');
    this.mmio.register(L.ECAM_START, this.pci.ecamSize, this.pci.ecam, 'ecam');
    const devices: MachinePciDevice[] = [];
    let slot = 1;
    const add = (kind: MachinePciDevice['kind'], device: VirtioDevice): void => {
      let fn: VirtioPciFunction | null = null;
      const transport = new VirtioPci(device, this.memory, {
        msi: (lo, hi, data) => this.sink.deliverMsi(lo, hi, data),
        intx: (level) => fn?.setIntx(level),
      });
      fn = new VirtioPciFunction(transport, `${kind}@${slot}`);
      this.pci.attach(fn, slot);
      devices.push({ slot, kind, function: fn, transport, device });
      slot++;
    };
    (d.drives ?? []).forEach((drive, i) => add('virtio-blk', new VirtioBlk(drives[i], drive.serial !== undefined ? { serial: drive.serial } : {})));
    let nic = 0;
    const sriovNics: SriovVirtioNet[] = [];
    for (const dev of d.devices ?? []) {
      if (dev.type === 'virtio-rng') add('virtio-rng', new VirtioRng());
      else if (dev.type === 'virtio-console') add('virtio-console', new VirtioConsole({ output: (b, o, n) => this.emit('console', b.slice(o, o + n)) }));
      else if (dev.type === 'virtio-balloon') {
        const scheduler = new GuestTimeScheduler(this.clock);
        this.timers.add(scheduler);
        this.balloon = new MachineBalloon(dev, ramSize, this.memory, scheduler, (bytes) => this.emit('balloon-change', bytes));
        add('virtio-balloon', this.balloon.device);
      } else {
        const mac = dev.mac !== undefined ? parseMac(dev.mac) : Uint8Array.from([...DEFAULT_MAC_PREFIX, 0x56 + nic]);
        const bridge = netBridges.get(dev.netdev);
        if (bridge === undefined) throw new MachineConfigError(`netdev '${dev.netdev}' is not defined`);
        if (dev.sriovTotalVfs !== undefined) {
          const sr = new SriovVirtioNet({ mac, totalVfs: dev.sriovTotalVfs, memory: this.memory, root: this.pci, name: `virtio-net-sriov@${slot}` });
          const upName = freePortName(bridge, `vm-${dev.netdev}-${nic}`);
          const up = bridge.addPort(upName, sr.uplink);
          this.closers.push(() => Promise.resolve(bridge.removePort(upName)));
          sr.setUplink({ deliver: (b, o, n) => (up.receive(b, o, n), true) });
          this.pci.attach(sr.function, slot);
          devices.push({ slot, kind: 'virtio-net', function: sr.function, transport: sr.transport, device: sr.pf });
          sriovNics.push(sr);
          slot++;
          nic++;
          continue;
        }
        let port: { receive(b: Uint8Array, o: number, n: number): void } | null = null;
        const net = new VirtioNet({ mac, send: (b, o, n) => (port?.receive(b, o, n), true) });
        // Machines sharing a bridge get distinct port names; the port leaves when the machine stops.
        const portName = freePortName(bridge, `vm-${dev.netdev}-${nic}`);
        port = bridge.addPort(portName, net);
        this.closers.push(() => Promise.resolve(bridge.removePort(portName)));
        add('virtio-net', net);
        nic++;
      }
    }
    this.pciDevices = devices;
    this.assignBars();
    this.sriovNics = sriovNics;
    let vfAt = SRIOV_VF_BAR_WINDOW[0];
    for (const sr of sriovNics) vfAt = sr.assignVfBars(vfAt, SRIOV_VF_BAR_WINDOW[1]);

    // Firmware tables and the kernel.
    this.boot = prepareDirectBoot(this.memory, files.kernel, {
      ramSize,
      cmdline: d.cmdline ?? '',
      ...(files.initrd != null ? { initrd: files.initrd } : {}),
      acpi: { cpus: 1, serialPorts: this.com1 != null ? [1] : [] },
    });
    vcpu.loadBootState(this.boot.kernel.cpu);
  }

  /**
   * Validates the description, reads the kernel and initrd, opens drives and tunnels, and wires
   * the machine. Throws MachineConfigError (bad description), KernelLoadError (bad kernel) or the
   * host's error (missing file, bad image).
   */
  static async build(description: MachineDescription, options: MachineOptions): Promise<Machine> {
    const d = validateMachineDescription(description);
    const read = async (v: string | Uint8Array, what: string): Promise<Uint8Array> => {
      if (v instanceof Uint8Array) return v;
      if (options.host === undefined) throw new MachineConfigError(`${what} '${v}' is a path, but no MachineHost was given to read it`);
      return options.host.readFile(v);
    };
    const kernel = await read(d.kernel, 'kernel');
    const initrd = d.initrd !== undefined ? await read(d.initrd, 'initrd') : null;
    const drives: BlockBackend[] = [];
    const closers: (() => Promise<void>)[] = [];
    const bridges = options.bridges ?? new Map<string, Bridge>();
    const netBridges = new Map<string, Bridge>();
    try {
      for (const drive of d.drives ?? []) {
        if (options.host === undefined) throw new MachineConfigError(`drive '${drive.file}' needs a MachineHost to be opened`);
        const b = await options.host.openDrive(drive);
        drives.push(b);
      }
      for (const nd of d.netdevs ?? []) {
        if (nd.type === 'switch') {
          const name = nd.bridge ?? 'br0';
          let br = bridges.get(name);
          if (br === undefined) {
            br = new Bridge({ name });
            bridges.set(name, br);
          }
          netBridges.set(nd.id, br);
        } else {
          if (options.host?.openVxlan === undefined) throw new MachineConfigError(`netdev '${nd.id}': VXLAN needs a host with UDP (use @ringzero/machine/node)`);
          const t = await options.host.openVxlan(nd);
          closers.push(() => t.close());
          netBridges.set(nd.id, t.bridge);
        }
      }
      return new Machine(d, { ...options, bridges }, { kernel, initrd }, drives, netBridges, closers);
    } catch (e) {
      await Promise.allSettled([...drives.map((b) => b.close()), ...closers.map((c) => c())]);
      throw e;
    }
  }

  // ------------------------------------------------------------------ events

  on<K extends keyof MachineEventMap>(event: K, listener: Listener<MachineEventMap[K]>): () => void {
    let list = this.listeners.get(event);
    if (list === undefined) {
      list = [];
      this.listeners.set(event, list);
    }
    list.push(listener);
    return (): void => {
      const l = this.listeners.get(event);
      const i = l?.indexOf(listener) ?? -1;
      if (l !== undefined && i >= 0) l.splice(i, 1);
    };
  }

  private emit<K extends keyof MachineEventMap>(event: K, value: MachineEventMap[K]): void {
    const list = this.listeners.get(event);
    if (list === undefined) return;
    for (const l of [...list]) (l as Listener<MachineEventMap[K]>)(value);
  }

  // ------------------------------------------------------------------ serial

  private serialByte(b: number): void {
    this.serialOut[this.serialLen++] = b;
    this.serialTotal++;
    if (this.serialLen === this.serialOut.length) this.flushSerial();
  }

  private flushSerial(): void {
    if (this.serialLen === 0) return;
    const bytes = this.serialOut.slice(0, this.serialLen);
    this.serialLen = 0;
    this.emit('serial', bytes);
  }

  private serialSource(external: ByteSource | undefined): ByteSource {
    return {
      available: (): number => this.serialQueue.length - this.serialQueueHead + (external?.available() ?? 0),
      readByte: (): number => {
        if (this.serialQueueHead < this.serialQueue.length) {
          const b = this.serialQueue[this.serialQueueHead++];
          if (this.serialQueueHead === this.serialQueue.length) {
            this.serialQueue.length = 0;
            this.serialQueueHead = 0;
          }
          return b;
        }
        return external?.readByte() ?? 0;
      },
    };
  }

  /** Types bytes on COM1 (terminal input). Bounded: at most 64 KiB wait at once, the rest is dropped. */
  sendSerial(bytes: ArrayLike<number>): void {
    const room = 65536 - (this.serialQueue.length - this.serialQueueHead);
    for (let i = 0; i < bytes.length && i < room; i++) this.serialQueue.push(bytes[i] & 0xff);
    this.wakeUp();
  }

  /** Presses the ACPI power button (the guest's `shutdown` path). */
  pressPowerButton(): void {
    this.pm.pressPowerButton();
    this.wakeUp();
  }

  // ------------------------------------------------------------------ lifecycle

  get state(): MachineState {
    return this.stateValue;
  }

  status(): MachineStatus {
    const exits: Record<string, number> = {};
    for (let i = 0; i < this.exitCounts.length; i++) if (this.exitCounts[i] > 0) exits[VCPU_EXIT_NAMES[i] ?? String(i)] = this.exitCounts[i];
    return {
      state: this.stateValue,
      stop: this.stopInfo,
      guestNs: this.clock.nowNs(),
      exits,
      serialBytes: this.serialTotal,
      lastExit: this.lastExitText,
    };
  }

  /** Starts the run loop; the promise settles when the machine stops (power-off, reset, debug-exit, stop(), error). */
  start(): Promise<MachineStopInfo> {
    if (this.stateValue !== 'created') return Promise.reject(new Error(`cannot start a machine that is ${this.stateValue}`));
    this.stateValue = 'running';
    this.loopDone = this.loop();
    return this.loopDone;
  }

  /** Stops running guest code (the loop parks); devices keep their state. */
  pause(): void {
    if (this.stateValue !== 'running') return;
    this.pauseRequested = true;
    this.stateValue = 'paused';
    this.vcpu.kick();
  }

  resume(): void {
    if (this.stateValue !== 'paused') return;
    this.pauseRequested = false;
    this.stateValue = 'running';
    this.wakeUp();
  }

  /** Stops the machine (as pulling the plug), closes disks and tunnels. Resolves with the stop info. */
  async stop(): Promise<MachineStopInfo> {
    if (this.stateValue === 'created') {
      this.stateValue = 'running';
      this.requestStop('stopped', 0, 'stopped by the host');
      this.loopDone = this.loop();
    } else this.requestStop('stopped', 0, 'stopped by the host');
    this.pauseRequested = false;
    this.wakeUp();
    return this.loopDone!;
  }

  private requestStop(reason: StopReason, exitStatus: number, message: string): void {
    if (this.pendingStop != null) return;
    this.pendingStop = { reason, exitStatus, message };
    if (reason === 'poweroff') this.emit('poweroff', undefined);
    if (reason === 'reset') this.emit('reset', undefined);
    this.vcpu.kick();
  }

  private wakeUp(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.wake = null;
        resolve();
      }, ms);
      this.wake = (): void => {
        clearTimeout(t);
        resolve();
      };
    });
  }

  private async loop(): Promise<MachineStopInfo> {
    try {
      while (this.pendingStop == null) {
        if (this.pauseRequested) {
          this.flushSerial();
          await this.sleep(50);
          continue;
        }
        const idleMs = this.runSlice();
        this.flushSerial();
        if (this.pendingStop != null) break;
        if (idleMs > 0) await this.sleep(idleMs);
        else await yieldToHost();
      }
    } catch (e) {
      this.pendingStop ??= { reason: 'error', exitStatus: 1, message: `host error: ${(e as Error).message}` };
    }
    this.flushSerial();
    const info = this.pendingStop ?? { reason: 'error', exitStatus: 1, message: 'unknown' };
    this.stopInfo = info;
    this.stateValue = 'stopped';
    await Promise.allSettled([...this.drives.map((b) => b.close()), ...this.closers.map((c) => c())]);
    this.emit('stop', info);
    return info;
  }

  /**
   * Runs the vCPU for about sliceMs of wall time. Returns 0 to continue at once (after letting
   * the host run), or the ms to wait when the vCPU is halted with nothing due.
   */
  private runSlice(): number {
    const vcpu = this.vcpu;
    const t0 = performance.now();
    const clock = this.clock;
    for (;;) {
      if (this.pendingStop != null || this.pauseRequested) return 0;
      const now = clock.nowNs();
      const next = this.timers.poll(now);
      this.com1?.pullInput();
      this.injectExtInt();
      let budget = this.sliceInstructions;
      if (this.deterministic && next !== Infinity) budget = Math.max(1, Math.min(budget, Math.ceil(next - now)));
      const reason = vcpu.run(budget);
      this.waitingForHost = false;
      if (reason < this.exitCounts.length) this.exitCounts[reason]++;
      switch (reason) {
        case VCPU_EXIT_IO:
          this.handleIo();
          break;
        case VCPU_EXIT_MMIO:
        case VCPU_EXIT_EPT_VIOLATION:
          this.handleMmio();
          break;
        case VCPU_EXIT_HLT: {
          const at = clock.nowNs();
          const due = this.timers.poll(at);
          if (this.sink.intr || this.sink.extIntMessage) break; // an 8259 interrupt to inject
          if (this.deterministic) {
            if (due !== Infinity && vcpu.time.advanceTo !== undefined) {
              const limit = this.timeLimit?.() ?? Infinity;
              if (due <= limit) {
                vcpu.time.advanceTo(due);
                break;
              }
              if (limit > at) vcpu.time.advanceTo(limit);
              this.lastExitText = 'hlt';
              return 0; // a peer's clock is behind: let it run first
            }
            this.lastExitText = 'hlt';
            this.waitingForHost = true;
            return 1; // nothing due: wait for host events (disk completions, input)
          }
          this.lastExitText = 'hlt';
          return due === Infinity ? 10 : Math.max(0, Math.min(10, (due - at) / 1e6));
        }
        case VCPU_EXIT_IRQ_WINDOW:
          vcpu.requestInterruptWindow = false;
          break;
        case VCPU_EXIT_SHUTDOWN:
          this.lastExitText = `shutdown: ${vcpu.exit.message}`;
          this.requestStop('reset', 0, `triple fault: ${vcpu.exit.message}`);
          return 0;
        case VCPU_EXIT_INTERNAL_ERROR:
          this.lastExitText = `internal-error: ${vcpu.exit.message}`;
          this.requestStop('error', 1, `vCPU internal error: ${vcpu.exit.message}${this.ripText()}`);
          return 0;
        case VCPU_EXIT_DEBUG:
        case VCPU_EXIT_BUDGET:
        case VCPU_EXIT_INTR:
          break;
        default:
          this.requestStop('error', 1, `unknown vCPU exit ${reason}`);
          return 0;
      }
      if (performance.now() - t0 >= this.sliceMs) return 0;
    }
  }

  private ripText(): string {
    const v = this.vcpu as VcpuPort & { getRegs?(): { rip: number | string } };
    if (typeof v.getRegs !== 'function') return '';
    const rip = v.getRegs().rip;
    return ` at rip ${typeof rip === 'number' ? hex(rip) : rip}`;
  }

  /** The 8259's INTR reaches the CPU through LINT0 in ExtINT mode, an IOAPIC ExtINT entry, or with the APIC off. */
  private injectExtInt(): void {
    const sink = this.sink;
    if (!sink.intr) {
      sink.extIntMessage = false;
      return;
    }
    const apic = this.vcpu.apic;
    const lint0 = apic.enabled ? apic.readReg(LVT_LINT0) : 0;
    const viaLint0 = !apic.enabled || ((lint0 & 0x10000) === 0 && ((lint0 >>> 8) & 7) === DELIVERY_EXTINT);
    if (!viaLint0 && !sink.extIntMessage) return;
    if (this.vcpu.canInjectInterrupt()) {
      sink.extIntMessage = false;
      this.vcpu.injectInterrupt(this.pic.acknowledge());
    } else this.vcpu.requestInterruptWindow = true;
  }

  private handleIo(): void {
    const io = this.vcpu.exit.io;
    const data = io.data;
    const size = io.size;
    if (size !== 1 && size !== 2 && size !== 4) return;
    this.lastExitText = `io ${io.input ? 'in' : 'out'} ${hex(io.port)}`;
    for (let e = 0; e < io.count; e++) {
      const o = e * size;
      if (io.input) {
        const v = this.pio.read(io.port, size);
        for (let i = 0; i < size; i++) data[o + i] = v >>> (8 * i);
      } else {
        let v = 0;
        for (let i = 0; i < size; i++) v |= data[o + i] << (8 * i);
        this.pio.write(io.port, size, v >>> 0);
      }
    }
  }

  private handleMmio(): void {
    const m = this.vcpu.exit.mmio;
    const d = m.data;
    this.lastExitText = `mmio ${m.write ? 'write' : 'read'} ${hex(m.address)}`;
    if (m.write) {
      const lo = (d[0] | (d[1] << 8) | (d[2] << 16) | (d[3] << 24)) >>> 0;
      const hi = (d[4] | (d[5] << 8) | (d[6] << 16) | (d[7] << 24)) >>> 0;
      this.mmio.write(m.address, m.size, lo, hi);
      return;
    }
    const lo = this.mmio.read(m.address, m.size);
    const hi = m.size === 8 ? this.mmio.readHi : 0;
    for (let i = 0; i < 4; i++) {
      d[i] = lo >>> (8 * i);
      d[i + 4] = hi >>> (8 * i);
    }
  }

  /** Places every BAR of the virtio functions (largest first, naturally aligned), as firmware does. */
  private assignBars(): void {
    type Item = { fn: VirtioPciFunction; index: number; size: number; io: boolean; is64: boolean };
    const items: Item[] = [];
    for (const p of this.pciDevices) for (const b of p.transport.bars) items.push({ fn: p.function, index: b.index, size: b.size, io: b.kind === 'io', is64: b.is64 });
    items.sort((a, b) => b.size - a.size);
    let io = IO_WINDOW[0];
    let mem = L.PCI_MMIO32_START;
    for (const it of items) {
      if (it.io) {
        const a = Math.ceil(io / it.size) * it.size;
        if (a + it.size - 1 > IO_WINDOW[1]) throw new MachineConfigError('too many PCI devices: the I/O window is full');
        io = a + it.size;
        it.fn.configWrite(0x10 + 4 * it.index, 4, a | 1);
      } else {
        const a = Math.ceil(mem / it.size) * it.size;
        if (a + it.size > L.PCI_MMIO32_START + L.PCI_MMIO32_SIZE) throw new MachineConfigError('too many PCI devices: the 32-bit MMIO window is full');
        mem = a + it.size;
        it.fn.configWrite(0x10 + 4 * it.index, 4, a);
        if (it.is64) it.fn.configWrite(0x14 + 4 * it.index, 4, 0);
      }
    }
    for (const p of this.pciDevices) p.function.configWrite(0x04, 2, p.function.configRead(0x04, 2) | 0x3);
  }
}

/** x86-core's interpreter vCPU. */
const defaultVcpu: VcpuFactory<AddressSpace> = (space, o) => new Vcpu(space, o);

/** Lets the host event loop run (I/O completions, timers, input) between slices. */
function yieldToHost(): Promise<void> {
  const si = (globalThis as { setImmediate?: (f: () => void) => unknown }).setImmediate;
  return new Promise((resolve) => {
    if (si !== undefined) si(resolve);
    else setTimeout(resolve, 0);
  });
}

