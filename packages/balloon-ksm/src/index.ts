// @ringzero/balloon-ksm: memory overcommit (virtio-balloon and kernel samepage merging).
export * from './balloon';
export { type Scheduler, RealScheduler, ManualScheduler } from './clock';
