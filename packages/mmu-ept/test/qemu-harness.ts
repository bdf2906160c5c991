// Runs a bare-metal test kernel (nasm source in this folder) on qemu-system-x86_64 with a memory
// image loaded at 0x200000, and returns what it wrote to the debug console.
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const has = (tool: string): boolean => spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0;

export const qemuTools: boolean = has('nasm') && has('qemu-system-x86_64');

export function assemble(dir: string, source: string): string {
  const out = join(dir, source.replace(/\.asm$/, '.bin'));
  const r = spawnSync('nasm', ['-f', 'bin', '-o', out, join(here, source)], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`nasm ${source}: ${r.stderr}`);
  return out;
}

/** Boots `kernel` (multiboot) with `image` at guest-physical 0x200000; returns the debugcon bytes. */
export function runKernel(dir: string, kernel: string, image: Uint8Array, tag: string): Buffer {
  const img = join(dir, `img-${tag}.bin`);
  const out = join(dir, `out-${tag}.bin`);
  writeFileSync(img, image);
  writeFileSync(out, new Uint8Array(0));
  const q = spawnSync(
    'qemu-system-x86_64',
    ['-machine', 'pc', '-cpu', 'max', '-m', '32', '-display', 'none', '-nodefaults', '-no-reboot', '-kernel', kernel,
      '-device', `loader,file=${img},addr=0x200000,force-raw=on`, '-debugcon', `file:${out}`,
      '-device', 'isa-debug-exit,iobase=0xf4,iosize=4'],
    { encoding: 'utf8', timeout: 60_000 },
  );
  // isa-debug-exit turns "out 0" into exit status 1; 7 means the kernel took an unexpected exception.
  if (q.status !== 1) throw new Error(`qemu exited with ${q.status}: ${q.stderr}`);
  return readFileSync(out);
}
