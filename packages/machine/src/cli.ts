#!/usr/bin/env node
// ringzero: command-line entry of @ringzero/machine (not implemented yet).
process.stderr.write('ringzero: not implemented yet\n');
process.exitCode = 2;
