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
export {
  SriovCapability,
  SriovConfigError,
  PCI_EXT_CAP_ID_SRIOV,
  PCI_SRIOV_CAP_SIZE,
  type SriovBarSpec,
  type SriovCapabilityOptions,
  type SriovCapabilityState,
  type SriovRouting,
} from './sriov';
export * as sriovRegs from './sriov';
