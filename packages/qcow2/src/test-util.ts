// Helpers shared by the tests (not part of the public surface).
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export function hasTool(tool: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0;
}

const warned = new Set<string>();
/** True when qemu-img and qemu-io exist; otherwise warns loudly once per topic. */
export function haveQemu(what: string): boolean {
  if (hasTool('qemu-img') && hasTool('qemu-io')) return true;
  if (!warned.has(what)) {
    warned.add(what);
    console.warn(`SKIPPED: qemu-img not installed: ${what}`);
  }
  return false;
}

export function tempDir(): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'rz-qcow2-'));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export function run(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

export function runStatus(cmd: string, args: string[]): { status: number; stdout: string; stderr: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

export function qemuIo(file: string, cmds: string[], extra: string[] = []): void {
  const args: string[] = [...extra];
  for (const c of cmds) args.push('-c', c);
  args.push(file);
  run('qemu-io', args);
}

export function pattern(len: number, seed: number): Uint8Array {
  const b = new Uint8Array(len);
  let x = (seed * 2654435761 + 7) >>> 0;
  for (let i = 0; i < len; i++) {
    x = (x * 1664525 + 1013904223) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}
