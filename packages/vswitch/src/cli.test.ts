import { execFile, execFileSync, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { Bridge } from './bridge.js';
import { openTap, tapUnavailableReason } from './node.js';

const run = promisify(execFile);
const CLI = fileURLToPath(new URL('./cli.ts', import.meta.url));
const NODE_ARGS = ['--import', 'tsx', '--conditions=@ringzero/source', CLI];
let OVS = true;
try {
  execFileSync('ovs-ofctl', ['--version'], { stdio: 'pipe' });
} catch {
  OVS = false;
  console.warn('SKIPPED: ovs-ofctl not installed: the CLI is not driven by the real ovs-ofctl');
}

function tapBlocked(): string | null {
  const why = tapUnavailableReason();
  if (why != null) return why;
  try {
    openTap(new Bridge(), 'rzprobe%d').close();
  } catch (e) {
    return (e as Error).message;
  }
  return null;
}
const TAP_BLOCKED = tapBlocked();
if (TAP_BLOCKED != null) console.warn(`SKIPPED: TAP ports: ${TAP_BLOCKED}: the CLI's type=tap port is not tested`);

/** Starts the CLI and resolves with its stdout once `ready` matches. */
async function startCli(args: string[], ready: RegExp) {
  const child = spawn(process.execPath, [...NODE_ARGS, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const io = { out: '', err: '' };
  child.stdout.on('data', (d: Buffer) => (io.out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (io.err += d.toString()));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`CLI not ready: ${io.out} ${io.err}`)), 30_000);
    const check = (): void => {
      if (ready.test(io.out)) {
        clearTimeout(t);
        resolve();
      }
    };
    child.stdout.on('data', check);
    void exited.then(() => reject(new Error(`CLI exited: ${io.out} ${io.err}`)));
  });
  return { child, io, exited };
}

describe('ringzero-switch CLI', () => {
  it.skipIf(TAP_BLOCKED != null)('--port NAME,type=tap creates the kernel TAP device and removes it on SIGINT', async () => {
    const { child, io, exited } = await startCli(['--bridge', 'br8', '--port', 'rzcli%d,type=tap,tag=3'], /port 1: rzcli\d+ type=tap/);
    const ifname = /port 1: (rzcli\d+) type=tap vlan_mode=access tag=3/.exec(io.out)?.[1];
    expect(ifname).toBeDefined();
    expect(execFileSync('ip', ['-br', 'link', 'show', ifname!], { encoding: 'utf8' })).toContain(ifname);
    child.kill('SIGINT');
    expect(await exited).toBe(0);
    expect(() => execFileSync('ip', ['link', 'show', ifname!], { stdio: 'pipe' })).toThrow();
  });

  it('rejects bad arguments with a clear error', async () => {
    const r = await run(process.execPath, [...NODE_ARGS, '--port', 'x,type=warp'], { timeout: 30_000 }).catch((e: { stderr: string; code: number }) => e);
    expect((r as { code: number }).code).toBe(1);
    expect((r as { stderr: string }).stderr).toMatch(/unknown type "warp"/);
  });

  it.skipIf(!OVS)('starts, prints its ports, serves ovs-ofctl, and closes cleanly on SIGINT', async () => {
    const child = spawn(process.execPath, [...NODE_ARGS, '--bridge', 'br9', '--openflow', 'tcp:127.0.0.1:0', '--port', 'vx0,type=vxlan,remote=127.0.0.2,key=42,dstport=0,local=127.0.0.1', '--port', 'in1,type=internal,tag=5', '--flow', 'priority=7,in_port=2,actions=output:1'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    const port = await new Promise<number>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no listener line in: ${out}`)), 30_000);
      child.stdout.on('data', () => {
        const m = /openflow listening on tcp:127\.0\.0\.1:(\d+)/.exec(out);
        if (m) {
          clearTimeout(t);
          resolve(Number(m[1]));
        }
      });
    });
    expect(out).toMatch(/port 1: vx0 type=vxlan/);
    expect(out).toMatch(/port 2: in1 type=internal vlan_mode=access tag=5/);
    const { stdout } = await run('ovs-ofctl', ['-O', 'OpenFlow13', 'dump-flows', `tcp:127.0.0.1:${port}`], { timeout: 20_000 });
    expect(stdout).toMatch(/priority=7,in_port=2 actions=output:1/);
    child.kill('SIGINT');
    expect(await exited).toBe(0);
    expect(out).toMatch(/ringzero-switch: closed/);
  });
});
