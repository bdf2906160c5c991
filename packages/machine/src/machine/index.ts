// The machine: description, wiring, run loop, lifecycle.
export {
  Machine,
  type MachineEventMap,
  type MachineHost,
  type MachineOptions,
  type MachinePciDevice,
  type MachineState,
  type MachineStatus,
  type MachineStopInfo,
  type StopReason,
} from './machine';
export {
  MachineConfigError,
  MAX_PCI_DEVICES,
  parseMac,
  validateMachineDescription,
  type DeviceDescription,
  type DriveDescription,
  type MachineDescription,
  type NetdevDescription,
} from './config';
export { runMachine, type RunMachineOptions, type RunMachineResult } from './run';
export { TimeSyncGroup, type TimeSyncMember } from './time-sync';
export { VirtioPciFunction, type VirtioPciLike } from './virtio-function';
export * from './vcpu-port';
export { balloonFeatures, GuestTimeScheduler, MachineBalloon, type BalloonDeviceDescription, type BalloonInfo } from './balloon';
