// Test doubles of @ringzero/machine: recording interrupt sinks and lines, a manual clock, a scripted vCPU.
export { RecordingInterruptSink, RecordingLine, RecordingIrqChip } from './bus/testing';
export { ManualClock } from './bus/time';
export {
  ScriptedVcpu,
  RecordingApic,
  hlt,
  internalError,
  mmioRead,
  mmioWrite,
  outs,
  portIn,
  portOut,
  tripleFault,
  inb,
  inl,
  inw,
  outb,
  outl,
  outw,
  readb,
  readl,
  readw,
  writeb,
  writel,
  writew,
  type ScriptStep,
  type VcpuScript,
} from './machine/scripted-vcpu';
export { FakePassthroughDevice, type FakePassthroughOptions } from './passthrough/testing';
