// Node adapters: OpenFlow over TCP, VXLAN over UDP, TAP devices.
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer, type Server, type Socket } from 'node:net';
import type { Bridge } from './bridge.js';
import { MAX_FRAME } from './consts.js';
import type { Port, PortOptions } from './port.js';
import { OpenFlowConnection } from './openflow.js';
import { formatIpv4, parseIpv4, VXLAN_PORT, VxlanTunnel } from './vxlan.js';

export interface OpenFlowListener {
  readonly host: string;
  readonly port: number;
  /** Open sessions. */
  readonly connections: number;
  /** OpenFlow messages received over all sessions so far. */
  readonly messages: number;
  close(): Promise<void>;
}

/** Parses "tcp:HOST:PORT" / "ptcp:PORT[:HOST]" (ovs-vswitchd style) into host and port. */
export function parseOpenFlowTarget(target: string): { host: string; port: number } {
  let m = /^p?tcp:(\[[^\]]+\]|[^:]+):(\d+)$/.exec(target);
  if (m && target.startsWith('tcp:')) return { host: m[1].replace(/^\[|\]$/g, ''), port: Number(m[2]) };
  m = /^ptcp:(\d+)(?::(.+))?$/.exec(target);
  if (m) return { host: m[2] ?? '0.0.0.0', port: Number(m[1]) };
  m = /^tcp:([^:]+)$/.exec(target);
  if (m) return { host: m[1], port: 6653 };
  throw new Error(`bad OpenFlow target "${target}" (use tcp:HOST:PORT or ptcp:PORT[:HOST])`);
}

/**
 * Listens for OpenFlow 1.3 sessions (ovs-ofctl, controllers) on TCP.
 * Port 0 picks a free port (see the returned `port`).
 */
export async function listenOpenFlow(bridge: Bridge, host = '127.0.0.1', port = 6653): Promise<OpenFlowListener> {
  const sockets = new Set<Socket>();
  let closedMessages = 0;
  const live = new Set<OpenFlowConnection>();
  const server: Server = createServer((sock) => {
    sockets.add(sock);
    sock.setNoDelay(true);
    const conn = new OpenFlowConnection(
      bridge,
      (b) => {
        if (!sock.destroyed) sock.write(b);
      },
      () => sock.end(),
    );
    sock.on('data', (d: Buffer) => {
      try {
        conn.receive(new Uint8Array(d.buffer, d.byteOffset, d.length));
      } catch {
        sock.destroy();
      }
    });
    sock.on('error', () => sock.destroy());
    live.add(conn);
    sock.on('close', () => {
      sockets.delete(sock);
      live.delete(conn);
      closedMessages += conn.messages;
      conn.detach();
    });
    conn.start();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const addr = server.address();
  const bound = typeof addr === 'object' && addr != null ? addr.port : port;
  return {
    host,
    port: bound,
    get connections() {
      return sockets.size;
    },
    get messages() {
      let n = closedMessages;
      for (const c of live) n += c.messages;
      return n;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

// ------------------------------------------------------------------ VXLAN over UDP


export interface NodeVxlan {
  readonly tunnel: VxlanTunnel;
  readonly socket: UdpSocket;
  close(): Promise<void>;
}

/**
 * Opens a VXLAN endpoint on UDP `port` (default 4789; Linux's vxlan driver defaults to 8472,
 * so give `dstport 4789` to `ip link add ... type vxlan`). Datagrams are sent from this socket.
 */
export async function openVxlan(localAddress: string = '0.0.0.0', port: number = VXLAN_PORT): Promise<NodeVxlan> {
  const socket = createSocket({ type: 'udp4', reuseAddr: false });
  const tunnel = new VxlanTunnel(
    {
      send: (buf, off, len, ip, dport) => {
        // dgram may keep the buffer until the send completes: give it its own copy.
        socket.send(Buffer.from(buf.subarray(off, off + len)), dport, formatIpv4(ip));
      },
    },
    port,
  );
  socket.on('message', (msg, rinfo) => {
    if (rinfo.family !== 'IPv4') return;
    tunnel.receive(new Uint8Array(msg.buffer, msg.byteOffset, msg.length), 0, msg.length, parseIpv4(rinfo.address), rinfo.port);
  });
  socket.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(port, localAddress, () => resolve());
  });
  return { tunnel, socket, close: () => new Promise<void>((r) => socket.close(() => r())) };
}

// ------------------------------------------------------------------ TAP devices

/** The optional native helper (@ringzero/vswitch-tap): the TUNSETIFF ioctl and a libuv poll. */
interface TapAddon {
  open(name: string): [number, string];
  read(fd: number, buf: Uint8Array, off: number, len: number): number;
  write(fd: number, buf: Uint8Array, off: number, len: number): number;
  close(fd: number): number;
  poll(fd: number, onReadable: (status: number) => void): object;
  pollStop(handle: object): void;
}

const EAGAIN = 11;
let tapAddon: TapAddon | null | undefined;
let tapLoadError = '';

function loadTapAddon(): TapAddon | null {
  if (tapAddon !== undefined) return tapAddon;
  try {
    tapAddon = createRequire(import.meta.url)('@ringzero/vswitch-tap') as TapAddon;
  } catch (e) {
    tapAddon = null;
    tapLoadError = e instanceof Error ? e.message.split('\n')[0] : String(e);
  }
  return tapAddon;
}

/**
 * Why TAP ports cannot be opened here, or null when they can (as far as can be known without
 * trying: CAP_NET_ADMIN is only checked by openTap).
 */
export function tapUnavailableReason(): string | null {
  if (process.platform !== 'linux') return `TAP ports need Linux (this is ${process.platform})`;
  if (loadTapAddon() == null)
    return `the optional native helper @ringzero/vswitch-tap is not built (${tapLoadError}); reinstall with python3, make and a C compiler available`;
  if (!existsSync('/dev/net/tun')) return '/dev/net/tun does not exist (load the tun module or pass the device into the container)';
  return null;
}

export interface NodeTap {
  readonly port: Port;
  /** The kernel interface name (the port has the same name). */
  readonly ifname: string;
  /** Frames the kernel refused on write (also counted as the port's tx_dropped). */
  readonly writeErrors: number;
  /** Failed reads other than "nothing queued". */
  readonly readErrors: number;
  /** Detaches the port from the bridge and closes the device (a non-persistent TAP disappears). */
  close(): void;
}

/** Frames read from the device per readiness callback before yielding to the event loop. */
const TAP_READ_BATCH = 64;

/**
 * Opens (creating it if needed) the Linux TAP device `ifname` and attaches it to `bridge` as a
 * port of the same name. `ifname` may contain `%d` (e.g. "rz%d": the kernel picks the first
 * free number). Needs CAP_NET_ADMIN, or a persistent device created for this user beforehand
 * (`ip tuntap add dev NAME mode tap user $USER`). Frames are read on a libuv readiness watcher
 * (the event loop never blocks) and written with a non-blocking write per frame.
 */
export function openTap(bridge: Bridge, ifname: string, opts: PortOptions = {}): NodeTap {
  const why = tapUnavailableReason();
  if (why != null) throw new Error(`TAP ports are unavailable: ${why}`);
  const addon = tapAddon!;
  if (ifname === '' || ifname.length > 15) throw new Error(`TAP name "${ifname}" must be 1..15 characters`);
  let fd: number;
  let name: string;
  try {
    [fd, name] = addon.open(ifname);
  } catch (e) {
    const code = (e as { code?: string }).code;
    const msg = e instanceof Error ? e.message : String(e);
    if (code === 'EPERM' || code === 'EACCES')
      throw new Error(`TAP ${ifname}: ${msg} (needs CAP_NET_ADMIN, or a device made for this user with "ip tuntap add dev ${ifname} mode tap user $USER")`, { cause: e });
    throw new Error(`TAP ${ifname}: ${msg}`, { cause: e });
  }
  let writeErrors = 0;
  let readErrors = 0;
  let open = true;
  let port: Port;
  try {
    port = bridge.addPort(name, {
      deliver(buf, off, len) {
        if (!open) return false;
        const n = addon.write(fd, buf, off, len);
        if (n === len) return true;
        writeErrors++;
        return false;
      },
    }, { type: 'tap', ...opts });
  } catch (e) {
    addon.close(fd);
    throw e;
  }
  const rx = new Uint8Array(MAX_FRAME + 64);
  let watching = true;
  // A device that fails (deleted under us): stop watching it, or level-triggered readiness
  // would spin; the port stays attached but down until closed.
  const fail = (): void => {
    readErrors++;
    if (!watching) return;
    watching = false;
    addon.pollStop(watcher);
    port.up = false;
    bridge.portChanged(port);
  };
  const watcher = addon.poll(fd, (status) => {
    if (status < 0) return fail();
    for (let i = 0; i < TAP_READ_BATCH && open; i++) {
      const n = addon.read(fd, rx, 0, rx.length);
      if (n > 0) port.receive(rx, 0, n);
      else {
        if (n !== -EAGAIN) fail();
        break;
      }
    }
  });
  return {
    port,
    ifname: name,
    get writeErrors() {
      return writeErrors;
    },
    get readErrors() {
      return readErrors;
    },
    close() {
      if (!open) return;
      open = false;
      if (watching) addon.pollStop(watcher);
      watching = false;
      if (bridge.port(name) === port) bridge.removePort(name);
      addon.close(fd);
    },
  };
}
