/**
 * The vCPU as the machine consumes it (declared here, on the consumer side, as rust-vmm
 * advises): KVM's run loop in a few members. `run()` executes guest code until something needs
 * the machine and returns an exit reason; the machine completes the exit (fills the data of an
 * IN or an MMIO read in place) and calls `run()` again. @ringzero/x86-core's `Vcpu` fits this
 * structurally; tests use `ScriptedVcpu` from `@ringzero/machine/testing`.
 *
 * Exit reasons are numbers shared with x86-core (KVM_EXIT_* in spirit, not in value).
 */
import type { BootCpuState } from '../boot/cpu-state';

/** run() stopped because its instruction budget ran out. */
export const VCPU_EXIT_BUDGET = 1;
/** HLT with nothing to deliver (and, with deterministic time, no local APIC deadline). */
export const VCPU_EXIT_HLT = 4;
/** IN/OUT/INS/OUTS: see `exit.io`. */
export const VCPU_EXIT_IO = 16;
/** An access to an MMIO hole: see `exit.mmio`. */
export const VCPU_EXIT_MMIO = 17;
/** Triple fault (or an unrecoverable event): the machine resets or stops. */
export const VCPU_EXIT_SHUTDOWN = 18;
/** `requestInterruptWindow` was set and an external interrupt can now be injected. */
export const VCPU_EXIT_IRQ_WINDOW = 19;
/** Single-step or breakpoint (guest debugging). */
export const VCPU_EXIT_DEBUG = 20;
/** An access to guest-physical memory that is neither RAM nor a declared MMIO hole (`exit.mmio` filled as for MMIO). */
export const VCPU_EXIT_EPT_VIOLATION = 21;
/** Something the vCPU cannot do: `exit.message` says what. */
export const VCPU_EXIT_INTERNAL_ERROR = 22;
/** `kick()` was called. */
export const VCPU_EXIT_INTR = 23;

/** Names of the exit reasons, for messages. */
export const VCPU_EXIT_NAMES: Readonly<Record<number, string>> = {
  1: 'budget',
  4: 'hlt',
  16: 'io',
  17: 'mmio',
  18: 'shutdown',
  19: 'irq-window',
  20: 'debug',
  21: 'ept-violation',
  22: 'internal-error',
  23: 'intr',
};

/** An I/O exit: `count` elements of `size` bytes in `data` (fill it for an IN). */
export interface VcpuIoExit {
  readonly port: number;
  readonly size: number;
  readonly input: boolean;
  readonly count: number;
  readonly data: Uint8Array;
}

/** An MMIO exit: `size` bytes (1, 2, 4, 8) at `address`; `data` holds the write or receives the read. */
export interface VcpuMmioExit {
  readonly address: number;
  readonly size: number;
  readonly write: boolean;
  readonly data: Uint8Array;
}

/** The last exit's details (read them before the next run()). */
export interface VcpuExitInfo {
  readonly io: VcpuIoExit;
  readonly mmio: VcpuMmioExit;
  readonly message: string;
}

/** The local APIC as the machine's interrupt sources need it. */
export interface VcpuApic {
  /** An interrupt message arrives for this CPU: IRR (and TMR when level-triggered). */
  accept(vector: number, level?: boolean): void;
  /** EOI of a level-triggered vector: the machine broadcasts it to the IOAPIC. */
  onEoi: ((vector: number) => void) | null;
  /** Whether the APIC is enabled in IA32_APIC_BASE (when not, the 8259's INTR goes straight to the CPU). */
  readonly enabled: boolean;
  /** A register by xAPIC offset (the machine reads LVT LINT0 at 0x350). */
  readReg(offset: number): number;
}

/** The vCPU's clock in nanoseconds; deterministic clocks can be moved forward while halted. */
export interface VcpuTime {
  now(): number;
  advanceTo?(ns: number): void;
}

/** What the machine needs from a vCPU. */
export interface VcpuPort {
  readonly exit: VcpuExitInfo;
  readonly apic: VcpuApic;
  readonly time: VcpuTime;
  /** Runs until an exit, at most `maxInstructions` instructions (then VCPU_EXIT_BUDGET). */
  run(maxInstructions?: number): number;
  /** The boot loader's initial state (KVM_SET_REGS + KVM_SET_SREGS). */
  loadBootState(state: BootCpuState): void;
  /** Queues an external (8259) interrupt vector; false when one is already queued. */
  injectInterrupt(vector: number): boolean;
  /** True when an external interrupt would be taken now. */
  canInjectInterrupt(): boolean;
  injectNmi(): void;
  /** Ask for VCPU_EXIT_IRQ_WINDOW as soon as an external interrupt can be injected. */
  requestInterruptWindow: boolean;
  /** Makes the current or next run() return VCPU_EXIT_INTR. */
  kick(): void;
  /** Whether the CPU sits in HLT. */
  readonly halted: boolean;
}

/** Options the machine passes to a vCPU factory. */
export interface VcpuFactoryOptions {
  /** 'deterministic' (time from retired instructions) or 'wall'. */
  readonly time: 'deterministic' | 'wall';
  readonly apicId: number;
}

/**
 * Makes the vCPU over the machine's address space (an @ringzero/mmu-ept AddressSpace with an
 * EPT). With @ringzero/x86-core: `(space, o) => new Vcpu(space, o)`.
 */
export type VcpuFactory<Space> = (space: Space, options: VcpuFactoryOptions) => VcpuPort;
