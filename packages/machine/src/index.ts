// @ringzero/machine: the PC that assembles the RingZero packages: the layout, firmware tables,
// boot loaders, buses and chipset devices, and the Machine that wires them to a vCPU.
export { buildCpio, busyboxInitramfs, initScript, type CpioEntry, type InitOptions } from './initramfs';
export * from './layout';
export * from './acpi/index';
export * from './boot/index';
export * from './bus/index';
export * from './devices/index';
export * from './machine/index';
export * from './sriov/index';
