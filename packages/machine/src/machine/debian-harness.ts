// Node-only test support (not exported): boots one of the Debian guest fixtures in RingZero the
// way the acceptance tests and the boot benchmark do: Debian's kernel with its payload
// decompressed on the host (the loader's fast path), an initramfs whose /init loads the virtio
// and filesystem modules, runs a script and powers off, and deterministic time.
import { appendFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { extractVmlinux, nodeMachineHost, writeInitramfs, type Guest } from '../node';
import type { Bridge } from '@ringzero/vswitch';
import type { DeviceDescription, DriveDescription, NetdevDescription } from './config';
import { Machine, type MachineStopInfo } from './machine';

export interface DebianBootOptions {
  /** Shell lines run by /init after the modules are loaded (then it syncs and powers off). */
  readonly script: string;
  /** Scratch folder for the initramfs. */
  readonly dir: string;
  readonly memory?: number;
  readonly drives?: readonly DriveDescription[];
  readonly netdevs?: readonly NetdevDescription[];
  readonly devices?: readonly DeviceDescription[];
  readonly bridges?: Map<string, Bridge>;
  readonly cmdline?: string;
  /** Each chunk of COM1 output as it comes. */
  readonly onSerial?: (text: string) => void;
}

export interface DebianBoot {
  readonly machine: Machine;
  /** Runs the machine to its stop; resolves with the COM1 text (CR removed) and the stop. */
  readonly run: () => Promise<{ text: string; stop: MachineStopInfo }>;
}

/** Builds (but does not start) a machine booting `guest` with `script` in its /init. */
export async function buildDebianMachine(guest: Guest, o: DebianBootOptions): Promise<DebianBoot> {
  const initrd = writeInitramfs(guest, join(o.dir, `initrd-${guest.arch}-${Math.random().toString(36).slice(2)}.gz`), { script: o.script });
  const vmlinux = extractVmlinux(new Uint8Array(readFileSync(guest.kernel))).vmlinux;
  const machine = await Machine.build(
    {
      memory: o.memory ?? 256 << 20,
      kernel: vmlinux,
      initrd: new Uint8Array(readFileSync(initrd)),
      cmdline: o.cmdline ?? 'console=ttyS0 panic=-1',
      time: 'deterministic',
      ...(o.drives ? { drives: o.drives } : {}),
      ...(o.netdevs ? { netdevs: o.netdevs } : {}),
      ...(o.devices ? { devices: o.devices } : {}),
    },
    { host: nodeMachineHost(), ...(o.bridges ? { bridges: o.bridges } : {}) },
  );
  let log = '';
  machine.on('serial', (b) => {
    const s = Buffer.from(b).toString('latin1');
    log += s;
    o.onSerial?.(s);
    if (process.env.RINGZERO_BOOT_LOG) appendFileSync(process.env.RINGZERO_BOOT_LOG, s); // watch a slow boot live
  });
  return {
    machine,
    run: async () => {
      const stop = await machine.start();
      return { text: log.replace(/\r/g, ''), stop };
    },
  };
}

/** Lines `PREFIX <sha256>  <name>` of a guest's `sha256sum | sed 's/^/PREFIX /'`, as name -> hash. */
export function parseSums(text: string, prefix: string): Map<string, string> {
  const sums = new Map<string, string>();
  for (const m of text.matchAll(new RegExp(`^${prefix} ([0-9a-f]{64})  (\\S+)$`, 'gm'))) sums.set(m[2], m[1]);
  return sums;
}
