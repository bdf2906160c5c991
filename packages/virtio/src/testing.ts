// @ringzero/virtio/testing: test doubles (a mock guest driver) for this package and its users.
export { GuestAllocator, type GuestBuffer } from './testing/alloc';
export { DriverSplitQueue, writeSplitDesc, type UsedElement } from './testing/split-driver';
export { DriverPackedQueue, writePackedDesc } from './testing/packed-driver';
export { MockDriver, acceptFeatures, type DriverQueue, type DriverTransport, type MockDriverInit } from './testing/driver';
export { mmioDriverTransport } from './testing/mmio-transport';
export { submitBlk, blkStatus, blkData, type BlkRequest, type BlkSubmit } from './testing/blk-helpers';
export { pciDriverTransport, findPciCaps, type PciCaps } from './testing/pci-transport';
