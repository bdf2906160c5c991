/**
 * For test files: the native harness on the runner the global setup built (setup.ts), or a
 * freshly built one when the file runs without it.
 */
import { inject } from 'vitest';
import { NativeHarness } from './native';

export function openHarness(): NativeHarness {
  const runner = inject('rzNativeRunner');
  return new NativeHarness(runner || undefined);
}
