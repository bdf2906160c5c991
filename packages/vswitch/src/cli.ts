#!/usr/bin/env node
// ringzero-switch: command-line entry of @ringzero/vswitch (not implemented yet).
process.stderr.write('ringzero-switch: not implemented yet\n');
process.exitCode = 2;
