import { mergeConfig } from 'vitest/config';
import { sharedConfig } from '../../vitest.shared.ts';

// The native differential-test runner is built once for all test files (src/harness/setup.ts).
export default mergeConfig(sharedConfig, { test: { globalSetup: ['src/harness/setup.ts'] } });
