// Node adapters: OpenFlow over TCP, VXLAN over UDP, TAP devices.
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer, type Server, type Socket } from 'node:net';
import type { Bridge } from './bridge.js';
import { OpenFlowConnection } from './openflow.js';
import { formatIpv4, parseIpv4, VXLAN_PORT, VxlanTunnel } from './vxlan.js';

export interface OpenFlowListener {
  readonly host: string;
  readonly port: number;
  /** Open sessions. */
  readonly connections: number;
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
    sock.on('close', () => sockets.delete(sock));
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
