/**
 * A fake vCPU for wiring tests: a generator script yields the exits a guest would cause (port
 * I/O, MMIO, HLT) and receives what the machine answered (the value of an IN or an MMIO read,
 * the vector of an interrupt that ended a HLT). No instructions run; time advances 1 µs per
 * run() unless the machine moves it.
 *
 *   const vcpu = new ScriptedVcpu(function* () {
 *     yield outb(0xcf8 ...);                     // OUT
 *     const id: number = yield inl(0xcfc);       // IN: the machine's answer
 *   });
 */
import type { BootCpuState } from '../boot/cpu-state';
import {
  VCPU_EXIT_HLT,
  VCPU_EXIT_INTERNAL_ERROR,
  VCPU_EXIT_INTR,
  VCPU_EXIT_IO,
  VCPU_EXIT_IRQ_WINDOW,
  VCPU_EXIT_MMIO,
  VCPU_EXIT_SHUTDOWN,
  type VcpuApic,
  type VcpuPort,
} from './vcpu-port';

/** One exit a script asks for. */
export type ScriptStep =
  | { readonly op: 'in'; readonly port: number; readonly size: 1 | 2 | 4 }
  | { readonly op: 'out'; readonly port: number; readonly size: 1 | 2 | 4; readonly value: number }
  /** OUTS: `data.length / size` elements in one exit (REP OUTSB and friends). */
  | { readonly op: 'outs'; readonly port: number; readonly size: 1 | 2 | 4; readonly data: Uint8Array }
  | { readonly op: 'read'; readonly address: number; readonly size: 1 | 2 | 4 | 8 }
  | { readonly op: 'write'; readonly address: number; readonly size: 1 | 2 | 4 | 8; readonly value: number; readonly hi?: number }
  /** HLT until an interrupt (an injected 8259 vector or a vector accepted by the APIC); yields the vector. */
  | { readonly op: 'hlt' }
  | { readonly op: 'shutdown'; readonly message?: string }
  | { readonly op: 'error'; readonly message: string };

/** A script: yields steps, receives the answer of each (IN / read value, HLT vector, else 0). */
export type VcpuScript = () => Generator<ScriptStep, void, number>;

export const inb = (port: number): ScriptStep => ({ op: 'in', port, size: 1 });
export const inw = (port: number): ScriptStep => ({ op: 'in', port, size: 2 });
export const inl = (port: number): ScriptStep => ({ op: 'in', port, size: 4 });
export const outb = (port: number, value: number): ScriptStep => ({ op: 'out', port, size: 1, value });
export const outw = (port: number, value: number): ScriptStep => ({ op: 'out', port, size: 2, value });
export const outl = (port: number, value: number): ScriptStep => ({ op: 'out', port, size: 4, value });
export const readl = (address: number): ScriptStep => ({ op: 'read', address, size: 4 });
export const readw = (address: number): ScriptStep => ({ op: 'read', address, size: 2 });
export const readb = (address: number): ScriptStep => ({ op: 'read', address, size: 1 });
export const writel = (address: number, value: number): ScriptStep => ({ op: 'write', address, size: 4, value });
export const writew = (address: number, value: number): ScriptStep => ({ op: 'write', address, size: 2, value });
export const writeb = (address: number, value: number): ScriptStep => ({ op: 'write', address, size: 1, value });
export const hlt = (): ScriptStep => ({ op: 'hlt' });
export const outs = (port: number, size: 1 | 2 | 4, data: Uint8Array): ScriptStep => ({ op: 'outs', port, size, data });
export const portIn = (port: number, size: 1 | 2 | 4): ScriptStep => ({ op: 'in', port, size });
export const portOut = (port: number, size: 1 | 2 | 4, value: number): ScriptStep => ({ op: 'out', port, size, value });
export const mmioRead = (address: number, size: 1 | 2 | 4 | 8): ScriptStep => ({ op: 'read', address, size });
export const mmioWrite = (address: number, size: 1 | 2 | 4 | 8, value: number, hi = 0): ScriptStep => ({ op: 'write', address, size, value, hi });
export const tripleFault = (message = 'triple fault'): ScriptStep => ({ op: 'shutdown', message });
export const internalError = (message: string): ScriptStep => ({ op: 'error', message });

/** A local APIC that records what it accepts. */
export class RecordingApic implements VcpuApic {
  readonly accepted: { vector: number; level: boolean }[] = [];
  onEoi: ((vector: number) => void) | null = null;
  enabled = true;
  /** LVT LINT0 (0x350): ExtINT, unmasked, so the 8259 reaches the CPU as in virtual-wire mode. */
  lint0 = 0x700;
  accept(vector: number, level = false): void {
    this.accepted.push({ vector, level });
  }
  readReg(offset: number): number {
    return offset === 0x350 ? this.lint0 : 0;
  }
  /** The guest's EOI for a level-triggered vector. */
  eoi(vector: number): void {
    this.onEoi?.(vector);
  }
}

/** The fake vCPU. */
export class ScriptedVcpu implements VcpuPort {
  readonly exit: {
    io: { port: number; size: number; input: boolean; count: number; data: Uint8Array };
    mmio: { address: number; size: number; write: boolean; readonly data: Uint8Array };
    message: string;
  } = {
    io: { port: 0, size: 1, input: false, count: 1, data: new Uint8Array(8) },
    mmio: { address: 0, size: 4, write: false, data: new Uint8Array(8) },
    message: '',
  };
  readonly apic: RecordingApic = new RecordingApic();
  private ns = 0;
  readonly time: { now(): number; advanceTo(ns: number): void } = {
    now: (): number => this.ns,
    advanceTo: (ns: number): void => {
      if (ns > this.ns) this.ns = ns;
    },
  };
  requestInterruptWindow = false;
  halted = false;
  /** Vectors injected as external (8259) interrupts. */
  readonly injected: number[] = [];
  nmis = 0;
  boot: BootCpuState | null = null;
  /** Every step the script took, with the machine's answer. */
  readonly log: { step: ScriptStep; answer: number }[] = [];
  private readonly gen: Generator<ScriptStep, void, number>;
  private started = false;
  private pending: ScriptStep | null = null;
  private acceptedAtHalt = 0;
  private kicked = false;
  private done = false;
  private lastVector = -1;
  private apicAtHalt = 0;

  constructor(script: VcpuScript) {
    this.gen = script();
  }

  loadBootState(state: BootCpuState): void {
    this.boot = state;
  }

  injectInterrupt(vector: number): boolean {
    this.injected.push(vector);
    this.lastVector = vector;
    return true;
  }

  canInjectInterrupt(): boolean {
    return true;
  }

  injectNmi(): void {
    this.nmis++;
  }

  kick(): void {
    this.kicked = true;
  }

  /** The answer of the exit just completed. */
  private answer(step: ScriptStep): number {
    if (step.op === 'in') {
      const d = this.exit.io.data;
      let v = 0;
      for (let i = 0; i < step.size; i++) v |= d[i] << (8 * i);
      return v >>> 0;
    }
    if (step.op === 'read') {
      const d = this.exit.mmio.data;
      return (d[0] | (d[1] << 8) | (d[2] << 16) | (d[3] << 24)) >>> 0;
    }
    return 0;
  }

  run(): number {
    this.ns += 1000;
    if (this.kicked) {
      this.kicked = false;
      return VCPU_EXIT_INTR;
    }
    if (this.requestInterruptWindow) return VCPU_EXIT_IRQ_WINDOW;
    let value = 0;
    if (this.halted) {
      const wake = this.injected.length + this.apic.accepted.length > this.acceptedAtHalt;
      if (!wake) return VCPU_EXIT_HLT;
      this.halted = false;
      value = this.injected.length + this.apic.accepted.length > this.acceptedAtHalt && this.apic.accepted.length > this.apicAtHalt ? this.apic.accepted[this.apicAtHalt].vector : this.lastVector;
      if (this.pending != null) this.log.push({ step: this.pending, answer: value });
      this.pending = null;
    } else if (this.pending != null) {
      value = this.answer(this.pending);
      this.log.push({ step: this.pending, answer: value });
      this.pending = null;
    }
    if (this.done) return this.finish('script ended');
    const r = this.started ? this.gen.next(value) : this.gen.next(0);
    this.started = true;
    if (r.done === true) {
      this.done = true;
      return this.finish('script ended');
    }
    const s = r.value;
    this.pending = s;
    const io = this.exit.io;
    const m = this.exit.mmio;
    switch (s.op) {
      case 'in':
      case 'out':
        io.port = s.port;
        io.size = s.size;
        io.input = s.op === 'in';
        io.count = 1;
        io.data = new Uint8Array(s.size);
        if (s.op === 'out') for (let i = 0; i < s.size; i++) io.data[i] = s.value >>> (8 * i);
        return VCPU_EXIT_IO;
      case 'outs':
        io.port = s.port;
        io.size = s.size;
        io.input = false;
        io.count = Math.floor(s.data.length / s.size);
        io.data = s.data.slice(0, io.count * s.size);
        return VCPU_EXIT_IO;
      case 'read':
      case 'write':
        m.address = s.address;
        m.size = s.size;
        m.write = s.op === 'write';
        m.data.fill(0);
        if (s.op === 'write') {
          for (let i = 0; i < 4; i++) {
            m.data[i] = s.value >>> (8 * i);
            m.data[i + 4] = (s.hi ?? 0) >>> (8 * i);
          }
        }
        return VCPU_EXIT_MMIO;
      case 'hlt':
        this.halted = true;
        this.acceptedAtHalt = this.injected.length + this.apic.accepted.length;
        this.apicAtHalt = this.apic.accepted.length;
        return VCPU_EXIT_HLT;
      case 'shutdown':
        this.pending = null;
        this.exit.message = s.message ?? 'triple fault';
        return VCPU_EXIT_SHUTDOWN;
      case 'error':
        this.pending = null;
        this.exit.message = s.message;
        return VCPU_EXIT_INTERNAL_ERROR;
    }
  }

  private finish(message: string): number {
    this.exit.message = message;
    return VCPU_EXIT_INTERNAL_ERROR;
  }
}
