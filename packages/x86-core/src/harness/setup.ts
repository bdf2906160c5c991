/**
 * vitest global setup: builds the one native differential-test runner once for every test
 * file (native.ts), provides its path as `rzNativeRunner`, and removes it afterwards.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { buildRunner, nativeUnavailable } from './native';

declare module 'vitest' {
  export interface ProvidedContext {
    rzNativeRunner: string;
  }
}

export default function setup(project: TestProject): () => void {
  if (nativeUnavailable()) return () => {};
  const dir = mkdtempSync(join(tmpdir(), 'rz-x86-runner-'));
  project.provide('rzNativeRunner', buildRunner(dir));
  return () => rmSync(dir, { recursive: true, force: true });
}
