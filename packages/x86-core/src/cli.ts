/**
 * ringzero-user PROGRAM ARGS...: runs a static x86-64 Linux ELF in the x86-core interpreter
 * against the host's files and stdio, and exits with the program's status.
 * RZ_USER_TRACE=1 prints each system call to stderr.
 */
import { readFileSync } from 'node:fs';
import { ElfError } from './user/elf';
import { LinuxProcess } from './user/linux';
import { NodeLinuxHost } from './node';

export function main(args: readonly string[]): number {
  if (args.length === 0) {
    process.stderr.write('usage: ringzero-user PROGRAM [ARGS...]\n');
    return 2;
  }
  let file: Uint8Array;
  try {
    file = readFileSync(args[0]);
  } catch (e) {
    process.stderr.write(`ringzero-user: cannot read ${args[0]}: ${(e as Error).message}\n`);
    return 127;
  }
  const proc = new LinuxProcess(new NodeLinuxHost());
  if (process.env.RZ_USER_TRACE) proc.trace = (nr, ret) => process.stderr.write(`[syscall ${nr} = ${ret}]\n`);
  try {
    proc.load(file, args, Object.entries(process.env).map(([k, v]) => `${k}=${v ?? ''}`));
  } catch (e) {
    if (e instanceof ElfError) {
      process.stderr.write(`ringzero-user: ${args[0]}: ${e.message}\n`);
      return 126;
    }
    throw e;
  }
  const r = proc.run();
  if (r.fault) process.stderr.write(`ringzero-user: ${args[0]}: ${r.fault}\n`);
  return r.status;
}

const invokedDirectly = typeof process !== 'undefined' && process.argv[1] !== undefined && /ringzero-user(\.js)?$|cli\.(js|ts)$/.test(process.argv[1]);
if (invokedDirectly) process.exitCode = main(process.argv.slice(2));
