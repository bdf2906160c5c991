// One RingZero boot for bench/boot.ts, in its own process so the parent measures from process
// start: argv = vmlinuz initrd memoryBytes cmdline. COM1 goes to stdout, stdin to COM1. The
// bzImage's payload is decompressed here, on the host (the loader's fast path), inside the
// measured time.
import { readFileSync } from 'node:fs';
import { Machine } from '../src/index';
import { extractVmlinux } from '../src/boot/node-fastpath';

const [kernelPath, initrdPath, memory, cmdline] = process.argv.slice(2);
const vmlinux = extractVmlinux(new Uint8Array(readFileSync(kernelPath))).vmlinux;
const machine = await Machine.build(
  { memory: Number(memory), kernel: vmlinux, initrd: new Uint8Array(readFileSync(initrdPath)), cmdline, time: 'deterministic' },
  {},
);
machine.on('serial', (b) => void process.stdout.write(b));
process.stdin.on('data', (d: Buffer) => machine.sendSerial(d));
const stop = await machine.start();
process.stdin.pause();
process.stderr.write(`guest-ns ${machine.status().guestNs}\n`);
process.exit(stop.reason === 'poweroff' ? 0 : 1);
