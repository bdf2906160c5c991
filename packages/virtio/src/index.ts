// @ringzero/virtio: virtio 1.x back ends (queues, transports, devices).
export * from './constants';
export { DescriptorChain } from './chain';
export * from './queue';
export { SplitQueue, checkSplitLayout, splitRingBytes } from './split-queue';
