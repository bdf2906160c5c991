// @ringzero/machine: the PC that assembles the RingZero packages. Until its issue lands this
// exports the initramfs writer used to build test guests.
export { buildCpio, busyboxInitramfs, initScript, type CpioEntry, type InitOptions } from './initramfs';
