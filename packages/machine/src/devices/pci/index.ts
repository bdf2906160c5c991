// PCI / PCI Express of @ringzero/machine.
export {
  PciConfigError,
  PciDevice,
  type PciAttachContext,
  type PciBarSpec,
  type PciCapabilitySpec,
  type PciDeviceOptions,
  type PciDeviceState,
  type PciFunction,
} from './function';
export { PciRoot, PciSlotError, pciSwizzle, type PciAssignment, type PciRootOptions, type PciRootState, type PciWindows } from './host';
export * as pciRegs from './regs';
