// SR-IOV and device assignment of @ringzero/machine.
export { SriovVirtioNet, VirtioNetVf, SRIOV_VF_BAR_WINDOW, VIRTIO_NET_PCI_DEVICE_ID, type PciSlots, type SriovVirtioNetOptions } from './virtio-net-sriov';
export { Veb, VEB_UPLINK, type VebSink, type VebStats } from './veb';
export { ExpressOverlay, PCI_EXP_TYPE_ENDPOINT, PCI_EXP_TYPE_RC_END, type ConfigSpace, type ExpressOverlayOptions } from './overlay';
export { RetargetableMemory, IommuDmaMemory } from './memory';
export * from '../passthrough/vfio';
export { IommuContainer, DmaMapError } from '../passthrough/container';
export { VfPassthroughDevice } from '../passthrough/vf-device';
export { AssignedPciFunction, VfAssignment, ASSIGNED_BAR_WINDOW, type AssignmentOptions, type AssignmentTarget } from '../passthrough/assigned';
