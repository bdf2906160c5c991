// @ringzero/virtio: virtio 1.x back ends (queues, transports, devices).
export * from './constants';
export { DescriptorChain } from './chain';
export * from './queue';
export { SplitQueue, checkSplitLayout, splitRingBytes, type SplitQueueState } from './split-queue';
export { PackedQueue, checkPackedLayout, type PackedQueueState } from './packed-queue';
export type { VirtioDevice, VirtioContext } from './device';
export { VirtioCore, type InterruptSink, type VirtioCoreState, type VirtioQueueState } from './core';
export { VIRTIO_STATE_VERSION, VirtioStateError, type ChainState, type DeviceRestoreContext } from './state';
export * from './mmio';
export { type BlockBackend, MemoryBlockBackend } from './block-backend';
export * from './blk';
export * from './pci';
export * from './net';
export * from './console';
export * from './rng';
