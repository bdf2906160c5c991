#!/usr/bin/env node
/**
 * ringzero-user PROGRAM [ARGS...]: runs a statically linked x86-64 Linux program on the
 * RingZero CPU, with its system calls served from the host (files, stdio), and exits with the
 * program's exit status (128 + n when signal n ended it, 125 for an unimplemented instruction).
 *
 * Environment: RINGZERO_USER_DEBUG=1 logs unimplemented system calls and ioctls on stderr;
 * RINGZERO_USER_DEBUG=strace logs every system call; RINGZERO_USER_MEM_MIB caps guest memory
 * (default 2048 MiB of mappings).
 */
import * as fs from 'node:fs';
import { ElfError } from './user/elf';
import { runProgram, UNIMPLEMENTED_STATUS } from './user/run';

const USAGE = `usage: ringzero-user PROGRAM [ARGS...]

Runs a statically linked x86-64 Linux ELF program (e.g. Debian's busybox-static) on the
RingZero x86 interpreter. Exit status: the program's, 128+N if signal N ended it,
${UNIMPLEMENTED_STATUS} if it hit an instruction the CPU does not implement yet.
Set RINGZERO_USER_DEBUG=1 (unimplemented calls) or =strace (every call) to log system calls,
RINGZERO_USER_MEM_MIB to cap guest memory (default 2048).
`;

function main(args: string[]): number {
  if (args.length === 0 || args[0] === '--help' || args[0] === '-h') {
    process.stderr.write(USAGE);
    return args.length === 0 ? 2 : 0;
  }
  const program = args[0];
  if (!fs.existsSync(program)) {
    process.stderr.write(`ringzero-user: ${program}: no such file\n`);
    return 127;
  }
  const dbg = process.env.RINGZERO_USER_DEBUG ?? '';
  try {
    const mib = Number(process.env.RINGZERO_USER_MEM_MIB ?? '');
    const r = runProgram({
      program,
      argv: args,
      debug: dbg !== '' && dbg !== '0',
      strace: dbg === 'strace',
      ...(mib > 0 ? { maxMemoryMiB: mib } : {}),
    });
    if (r.message) process.stderr.write(`ringzero-user: ${r.message}\n`);
    if (dbg !== '' && dbg !== '0') process.stderr.write(`ringzero-user: ${r.retired} instructions retired\n`);
    return r.status;
  } catch (e) {
    if (e instanceof ElfError) {
      process.stderr.write(`ringzero-user: ${program}: ${e.message}\n`);
      return 126;
    }
    throw e;
  }
}

process.exitCode = main(process.argv.slice(2));
