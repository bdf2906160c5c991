import { describe, expect, it } from 'vitest';
import { FlatGuestMemory } from './index';
import { guestMemoryConformance } from './guest-memory.conformance';

describe('FlatGuestMemory', () => {
  guestMemoryConformance('FlatGuestMemory', (size) => new FlatGuestMemory(size));

  it('hands out a host view that aliases guest RAM', () => {
    const m = new FlatGuestMemory(64);
    const v = m.hostView(8, 4)!;
    v[0] = 0x5a;
    expect(m.read8(8)).toBe(0x5a);
  });
});
