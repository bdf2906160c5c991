// @ringzero/virtio/testing: test doubles (a mock guest driver) for this package and its users.
export { GuestAllocator, type GuestBuffer } from './testing/alloc';
export { DriverSplitQueue, writeSplitDesc, type UsedElement } from './testing/split-driver';
