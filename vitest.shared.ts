// Shared vitest settings: every package's tests run against the TypeScript sources of the
// workspace packages they import (the "@ringzero/source" export condition), so `npm test`
// needs no build step.
import { defineConfig } from 'vitest/config';

const conditions = ['@ringzero/source', 'import', 'module', 'node', 'default'];

export const sharedConfig: ReturnType<typeof defineConfig> = defineConfig({
  resolve: { conditions },
  ssr: { resolve: { conditions, externalConditions: conditions } },
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 600_000,
    pool: 'forks',
  },
});
