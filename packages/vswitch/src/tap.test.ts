import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { Bridge } from './bridge.js';
import { openTap, tapUnavailableReason } from './node.js';
import { ArpIcmpResponder } from './testing.js';

const run = promisify(execFile);

function findPing(): string[] | null {
  for (const cmd of [['ping'], ['busybox', 'ping']]) {
    try {
      execFileSync(cmd[0], [...cmd.slice(1), '-c', '1', '-W', '1', '127.0.0.1'], { stdio: 'pipe' });
      return cmd;
    } catch {
      /* try the next one */
    }
  }
  return null;
}

/** Why the kernel test cannot run here, or null. */
function kernelTapBlocked(): string | null {
  const tap = tapUnavailableReason();
  if (tap != null) return tap;
  if (findPing() == null) return 'ping (iputils or busybox) not installed';
  try {
    execFileSync('ip', ['-V'], { stdio: 'pipe' });
  } catch {
    return 'iproute2 (ip) not installed';
  }
  const probe = `rztp${process.pid}`;
  try {
    execFileSync('ip', ['netns', 'add', probe], { stdio: 'pipe' });
    execFileSync('ip', ['netns', 'del', probe], { stdio: 'pipe' });
  } catch (e) {
    return `network namespaces not permitted (${String((e as Error).message).split('\n')[0]})`;
  }
  // CAP_NET_ADMIN: try to create a TAP device.
  try {
    const t = openTap(new Bridge(), 'rzprobe%d');
    t.close();
  } catch (e) {
    return (e as Error).message;
  }
  return null;
}

const why = kernelTapBlocked();
if (why != null) console.warn(`SKIPPED: TAP ports: ${why}: the kernel TAP ping test did not run`);
const PING = findPing() ?? ['ping'];

describe.skipIf(why != null)('TAP ports with the Linux kernel', () => {
  it('the kernel pings a responder on our switch through a TAP port created by the switch', async () => {
    const ns = `rztap${process.pid}`;
    const id = process.pid % 200;
    const kernelIp = `10.232.${id}.1`;
    const responderIp = `10.232.${id}.2`;
    const br = new Bridge();
    const responder = new ArpIcmpResponder('02:00:00:00:78:02', responderIp);
    const host = br.addPort('host', responder);
    responder.send = (f) => host.receive(f, 0, f.length);
    const tap = openTap(br, 'rz%d');
    const sh = (args: string[]): string => execFileSync('ip', args, { encoding: 'utf8', stdio: 'pipe' });
    const tick = setInterval(() => br.tick(Date.now()), 200);
    try {
      expect(tap.ifname).toMatch(/^rz\d+$/);
      expect(tap.port.type).toBe('tap');
      expect(br.port(tap.ifname)).toBe(tap.port);
      // The device exists in the kernel; move it to a private namespace (our fd stays attached).
      expect(sh(['-br', 'link', 'show', tap.ifname])).toContain(tap.ifname);
      sh(['netns', 'add', ns]);
      sh(['link', 'set', tap.ifname, 'netns', ns]);
      sh(['-n', ns, 'link', 'set', 'lo', 'up']);
      sh(['-n', ns, 'addr', 'add', `${kernelIp}/24`, 'dev', tap.ifname]);
      sh(['-n', ns, 'link', 'set', tap.ifname, 'up']);
      const { stdout } = await run('ip', ['netns', 'exec', ns, ...PING, '-c', '3', '-W', '2', responderIp], { timeout: 30_000 });
      expect(stdout).toMatch(/3 packets transmitted, 3 (packets )?received/);
      expect(responder.arps).toBeGreaterThanOrEqual(1);
      expect(responder.echoes).toBe(3);
      // The kernel resolved our responder's MAC; our switch learned the TAP's MAC on the TAP port.
      expect(sh(['-n', ns, 'neigh', 'show', responderIp])).toContain('02:00:00:00:78:02');
      const kernelMac = sh(['-n', ns, '-br', 'link', 'show', tap.ifname]).split(/\s+/)[2];
      expect(br.macEntries()).toContainEqual(expect.objectContaining({ mac: kernelMac, port: tap.port.ofport }));
      const s = tap.port.stats();
      expect(s.rxPackets).toBeGreaterThanOrEqual(4); // ARP request + 3 echo requests
      expect(s.txPackets).toBeGreaterThanOrEqual(4); // ARP reply + 3 echo replies
      expect(tap.writeErrors).toBe(0);
      expect(tap.readErrors).toBe(0);
    } finally {
      clearInterval(tick);
      tap.close();
      try {
        sh(['netns', 'del', ns]);
      } catch {
        /* never created */
      }
    }
    // Closing removed the port, and the non-persistent device went away with the fd.
    expect(br.port(tap.ifname)).toBeUndefined();
  });

  it('refuses bad device names with a clear error and leaves the bridge unchanged', () => {
    const br = new Bridge();
    expect(() => openTap(br, 'bad/name')).toThrow(/TAP bad\/name: ioctl TUNSETIFF: Invalid argument/);
    expect(() => openTap(br, 'a-name-longer-than-15')).toThrow(/1\.\.15 characters/);
    expect(br.ports.length).toBe(1);
  });

  it('a device deleted under the switch turns the port down instead of spinning', async () => {
    const br = new Bridge();
    const tap = openTap(br, 'rzdel%d');
    try {
      sh(['link', 'del', tap.ifname]);
      // Readiness with an error is reported on the next loop turn.
      for (let i = 0; i < 50 && tap.port.up; i++) await new Promise((r) => setTimeout(r, 20));
      expect(tap.port.up).toBe(false);
      expect(tap.readErrors).toBe(1);
    } finally {
      tap.close();
    }
    function sh(args: string[]): string {
      return execFileSync('ip', args, { encoding: 'utf8', stdio: 'pipe' });
    }
  });
});
