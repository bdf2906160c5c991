#!/usr/bin/env node
// ringzero-img: command-line entry of @ringzero/qcow2 (not implemented yet).
process.stderr.write('ringzero-img: not implemented yet\n');
process.exitCode = 2;
