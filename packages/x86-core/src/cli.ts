#!/usr/bin/env node
// ringzero-user: command-line entry of @ringzero/x86-core (not implemented yet).
process.stderr.write('ringzero-user: not implemented yet\n');
process.exitCode = 2;
