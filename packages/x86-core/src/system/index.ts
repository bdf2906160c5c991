/** The system half of x86-core: the KVM-style vCPU and what it is made of. */
export {
  Vcpu,
  VcpuExit,
  IoExit,
  MmioExit,
  EptExit,
  InstructionClock,
  WallClock,
  MSR_SAVE_LIST,
  u64ToParts,
  partsToU64,
  type VcpuOptions,
  type VcpuRegs,
  type VcpuSregs,
  type VcpuSegment,
  type VcpuDtable,
  type VcpuFpu,
  type VcpuMsr,
  type VcpuDebugRegs,
  type VcpuEvents,
  type BootState,
  type U64,
} from './vcpu';
export { LocalApic, type LapicState } from './apic';
export { Smp } from './smp';
export { MmuMemory } from './paging';
export { System, HV_SIGNATURE, type TimeSource } from './system';
export {
  EXIT_IO,
  EXIT_MMIO,
  EXIT_SHUTDOWN,
  EXIT_IRQ_WINDOW,
  EXIT_DEBUG,
  EXIT_EPT_VIOLATION,
  EXIT_INTERNAL_ERROR,
  EXIT_INTR,
  EXIT_NAMES,
} from './regs';
