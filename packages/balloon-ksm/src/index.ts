// @ringzero/balloon-ksm: memory overcommit (virtio-balloon and kernel samepage merging).
export * from './balloon';
export { type Scheduler, RealScheduler, ManualScheduler } from './clock';
export { Ksm, KsmKnobError, KSM_DEFAULTS, KSM_RMAP_ITEM_BYTES, type KsmKnobs, type KsmCounters, type KsmVmStat, type KsmOptions, type KsmRegion } from './ksm';
export { xxh32, xxh32Page } from './xxhash';
