// Node adapters of the Machine: files, qcow2/raw images, VXLAN over UDP, the terminal.
import { lookup } from 'node:dns/promises';
import { readFileSync, statSync } from 'node:fs';
import { openImage } from '@ringzero/qcow2/node';
import { Bridge } from '@ringzero/vswitch';
import { openVxlan } from '@ringzero/vswitch/node';
import type { BlockBackend } from '@ringzero/virtio';
import type { DriveDescription, NetdevDescription } from '../machine/config';
import type { Machine, MachineHost } from '../machine/machine';

/** A host file problem with a message fit for the CLI. */
export class HostFileError extends Error {
  override readonly name = 'HostFileError';
}

/** Largest kernel or initrd file read into memory (1 GiB). */
export const MAX_BOOT_FILE: number = 1 << 30;

function errnoText(e: unknown): string {
  const code = (e as { code?: string }).code;
  if (code === 'ENOENT') return 'No such file or directory';
  if (code === 'EACCES') return 'Permission denied';
  if (code === 'EISDIR') return 'Is a directory';
  return (e as Error).message;
}

/** Files from the file system, drives through @ringzero/qcow2, VXLAN through node:dgram. */
export function nodeMachineHost(): MachineHost {
  return {
    readFile(path: string): Uint8Array {
      try {
        const st = statSync(path);
        if (st.isDirectory()) throw Object.assign(new Error('is a directory'), { code: 'EISDIR' });
        if (st.size > MAX_BOOT_FILE) throw new HostFileError(`could not read '${path}': larger than ${MAX_BOOT_FILE / 2 ** 20} MiB`);
        return new Uint8Array(readFileSync(path));
      } catch (e) {
        if (e instanceof HostFileError) throw e;
        throw new HostFileError(`could not read '${path}': ${errnoText(e)}`);
      }
    },
    async openDrive(drive: DriveDescription): Promise<BlockBackend> {
      try {
        return await openImage(drive.file, { format: drive.format ?? null, readOnly: drive.readOnly === true });
      } catch (e) {
        throw new HostFileError(`could not open disk image '${drive.file}': ${(e as Error).message}`);
      }
    },
    async openVxlan(nd: Extract<NetdevDescription, { type: 'vxlan' }>): Promise<{ bridge: Bridge; close(): Promise<void> }> {
      const port = nd.port ?? 4789;
      let vx;
      try {
        vx = await openVxlan('0.0.0.0', nd.localPort ?? port);
      } catch (e) {
        throw new HostFileError(`netdev '${nd.id}': cannot bind UDP port ${nd.localPort ?? port}: ${(e as Error).message}`);
      }
      let remote = nd.remote;
      if (!/^\d+\.\d+\.\d+\.\d+$/.test(remote)) {
        try {
          remote = (await lookup(remote, { family: 4 })).address;
        } catch (e) {
          await vx.close();
          throw new HostFileError(`netdev '${nd.id}': cannot resolve '${nd.remote}' to an IPv4 address: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
        }
      }
      const bridge = new Bridge({ name: `vxlan-${nd.id}` });
      vx.tunnel.addPort(bridge, `vx-${nd.id}`, { vni: nd.vni, remotes: [remote], dstPort: port });
      return { bridge, close: () => vx.close() };
    },
  };
}

/** Options of `attachTerminal`. */
export interface TerminalOptions {
  readonly stdin?: NodeJS.ReadStream;
  readonly stdout?: NodeJS.WriteStream;
  /** Called on Ctrl-A X (default: machine.stop()). */
  readonly onQuit?: () => void;
}

/**
 * Connects COM1 to the terminal as QEMU's `-serial stdio` does: raw mode when stdin is a TTY,
 * Ctrl-A X quits, Ctrl-A Ctrl-A sends a Ctrl-A. Returns a function that restores the terminal.
 */
export function attachTerminal(machine: Machine, options: TerminalOptions = {}): () => void {
  const stdin = options.stdin ?? process.stdin;
  const stdout = options.stdout ?? process.stdout;
  const offSerial = machine.on('serial', (b) => void stdout.write(b));
  const offConsole = machine.on('console', (b) => void stdout.write(b));
  const raw = stdin.isTTY && typeof stdin.setRawMode === 'function';
  if (raw) stdin.setRawMode(true);
  let escape = false;
  const onData = (chunk: Buffer): void => {
    const out: number[] = [];
    for (const b of chunk) {
      if (escape) {
        escape = false;
        if (b === 0x78 || b === 0x58) {
          (options.onQuit ?? ((): void => void machine.stop()))();
          return;
        }
        if (b === 0x01) out.push(0x01);
        continue;
      }
      if (b === 0x01) escape = true;
      else out.push(b);
    }
    if (out.length > 0) machine.sendSerial(out);
  };
  stdin.on('data', onData);
  stdin.resume();
  return (): void => {
    offSerial();
    offConsole();
    stdin.off('data', onData);
    if (raw) stdin.setRawMode(false);
    stdin.pause();
  };
}
