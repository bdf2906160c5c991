// @ringzero/machine: the PC that assembles the RingZero packages. Today: the layout, the
// firmware tables, the boot loaders and the initramfs writer (the machine itself is to come).
export { buildCpio, busyboxInitramfs, initScript, type CpioEntry, type InitOptions } from './initramfs';
export * from './layout';
export * from './acpi/index';
export * from './boot/index';
