export type { GuestMemory } from './guest-memory';
export { FlatGuestMemory } from './flat-memory';
