/**
 * Node adapters of @ringzero/x86-core: the ringzero-user runner (static x86-64 and i386 Linux
 * programs, system calls served from the host's files and stdio). Not reachable from index.ts,
 * which stays isomorphic.
 *
 * import { runProgram } from '@ringzero/x86-core/node';
 * const r = runProgram({ program: '/bin/busybox', argv: ['busybox', 'echo', 'hi'], captureStdout: true });
 */
export {
  runProgram,
  createProcess,
  runProcess,
  UNIMPLEMENTED_STATUS,
  LIMIT_STATUS,
  type UserRunOptions,
  type UserRunResult,
  type UserRunReason,
} from './user/run';
export { LinuxKernel, MMAP_TOP, MMAP_TOP32, SYS_BLOCK, SYS_NORESULT, type KernelOptions, type ProcessHost } from './user/kernel';
export { ProcessTable, Proc, loadImage, type Image, type ImageOptions, type TableResult } from './user/processes';
