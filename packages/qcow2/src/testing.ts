// Test doubles: a power-loss byte store and the shared BlockDevice conformance checks.
export { PowerLossStore } from './powerloss';
export { blockDeviceConformance } from './conformance';
export type { ConformanceCase } from './conformance';
