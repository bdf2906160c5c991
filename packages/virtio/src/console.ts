import { DescriptorChain } from './chain';
import { DEVICE_ID_CONSOLE, MAX_QUEUE_SIZE } from './constants';
import type { VirtioContext, VirtioDevice } from './device';
import { POP_EMPTY } from './queue';
import type { DeviceRestoreContext } from './state';
import { stateArray, stateBool, stateBytes, stateFail, stateHeader, stateInt, stateObject, VIRTIO_STATE_VERSION } from './state';

export const CONSOLE_F_SIZE = 0x1;
export const CONSOLE_F_MULTIPORT = 0x2;
export const CONSOLE_F_EMERG_WRITE = 0x4;
/** Input bytes kept per port while the guest has no receive buffer posted; more are dropped. */
export const CONSOLE_INPUT_LIMIT = 65536;
/** Most ports a multiport console offers (QEMU's virtio-serial default max_ports). */
export const CONSOLE_MAX_PORTS = 31;
/** Longest port name sent in PORT_NAME. */
export const CONSOLE_NAME_MAX = 255;
/** Control messages waiting for control receive buffers; more are dropped (counted). */
export const CONSOLE_CONTROL_BACKLOG = 256;

// Control messages (struct virtio_console_control {le32 id; le16 event; le16 value}, virtio 1.x §5.3.6.2).
export const CONSOLE_DEVICE_READY = 0;
export const CONSOLE_PORT_ADD = 1;
export const CONSOLE_PORT_REMOVE = 2;
export const CONSOLE_PORT_READY = 3;
export const CONSOLE_CONSOLE_PORT = 4;
export const CONSOLE_RESIZE = 5;
export const CONSOLE_PORT_OPEN = 6;
export const CONSOLE_PORT_NAME = 7;
/** sizeof(struct virtio_console_control). */
export const CONSOLE_CONTROL_BYTES = 8;

/* Config space (virtio 1.x §5.3.4): 0 cols le16, 2 rows le16, 4 max_nr_ports le32, 8 emerg_wr le32. */
const CONFIG_SIZE = 12;
/** Queue indices with MULTIPORT: port 0 rx/tx 0/1, control rx/tx 2/3, port n >= 1 rx/tx 2(n+1), 2(n+1)+1. */
const CTRL_RX = 2;
const CTRL_TX = 3;

/** Where a port's guest output goes. */
export type ConsoleOutput = (buf: Uint8Array, offset: number, length: number) => void;

/** A port of a multiport console. */
export interface ConsolePortOptions {
  /** Name sent with PORT_NAME (Linux shows it as /dev/virtio-ports/<name>). */
  name?: string;
  /** A console port (hvc): CONSOLE_PORT is sent for it. */
  console?: boolean;
  /** Bytes the guest wrote to this port. */
  output?: ConsoleOutput;
  /** The guest opened (true) or closed (false) the port. */
  onOpen?: (open: boolean) => void;
  /** Host side connected (PORT_OPEN sent to the guest when its port is ready). Default true. */
  hostOpen?: boolean;
}

/** Options of VirtioConsole. */
export interface VirtioConsoleOptions {
  /** Bytes the guest wrote to the console (port 0 or the emergency write register). */
  output: ConsoleOutput;
  /** Terminal size to announce (VIRTIO_CONSOLE_F_SIZE). */
  cols?: number;
  rows?: number;
  queueSize?: number;
  /**
   * Offer VIRTIO_CONSOLE_F_MULTIPORT with this many ports (max_nr_ports, 1..CONSOLE_MAX_PORTS).
   * Port 0 is the console port (output above); add others with addPort(). Without it the device
   * has one port and no control queues.
   */
  maxPorts?: number;
  /** Name of port 0 (multiport only). */
  name?: string;
  /**
   * Send RESIZE as {rows, cols} instead of the spec's {cols, rows}: Linux read rows first until
   * commit 5326ab737a47 made it follow the spec, so older guest kernels want this. Default false.
   */
  resizeRowsFirst?: boolean;
}

/** One port's state (its name, console flag and callbacks are configuration, not state). */
export interface ConsolePortState {
  present: boolean;
  hostOpen: boolean;
  guestReady: boolean;
  guestOpen: boolean;
  /** Input bytes waiting for a receive buffer. */
  pending: number[];
}

/** virtio-console's own state, as plain data. */
export interface VirtioConsoleState {
  version: number;
  kind: 'virtio-console';
  maxPorts: number;
  cols: number;
  rows: number;
  deviceReady: boolean;
  ports: ConsolePortState[];
  /** Control messages waiting for control receive buffers. */
  backlog: number[][];
}

/** Host-side state of one port (stable shape). */
class Port {
  present = false;
  console = false;
  name: Uint8Array | null = null;
  output: ConsoleOutput | null = null;
  onOpen: ((open: boolean) => void) | null = null;
  hostOpen = true;
  /** The guest answered PORT_READY (value 1) for it. */
  guestReady = false;
  /** The guest has it open (PORT_OPEN from the guest). */
  guestOpen = false;
  /** Pending input ring (allocated on first input). */
  pending: Uint8Array | null = null;
  pendingStart = 0;
  pendingLen = 0;
}

/**
 * virtio-console (virtio 1.x §5.3). Single port by default: transmitq bytes go to `output`
 * (a view of guest memory per descriptor, no copy), input() bytes are copied into receiveq
 * buffers as they become available, the terminal size lives in config space.
 *
 * With `maxPorts` the device offers MULTIPORT and numbers its queues as Linux's
 * virtio_console does: port 0 receiveq/transmitq 0/1, control receiveq/transmitq 2/3, port n
 * receiveq/transmitq 2(n+1)/2(n+1)+1. The control protocol follows QEMU's virtio-serial: on
 * the driver's DEVICE_READY the device sends PORT_ADD for every port; on PORT_READY it sends
 * CONSOLE_PORT (console ports), PORT_NAME (named ports) and PORT_OPEN (host side connected);
 * the driver's PORT_OPEN is reported through onOpen; resize() sends RESIZE {cols, rows} to the
 * console port. Control messages wait (bounded) for control receive buffers. Pending input is
 * bounded per port by CONSOLE_INPUT_LIMIT.
 */
export class VirtioConsole implements VirtioDevice {
  readonly deviceId: number = DEVICE_ID_CONSOLE;
  readonly queueCount: number;
  readonly maxQueueSize: number;
  readonly featuresLo: number;
  readonly featuresHi: number = 0;
  readonly configSize: number = CONFIG_SIZE;
  /** Chains go back in the order they were popped, on every queue. */
  readonly supportsInOrder: boolean = true;
  /** Ports offered (1 without MULTIPORT). */
  readonly maxPorts: number;
  /** Input bytes dropped because a port's pending buffer was full. */
  inputDropped = 0;
  /** Control messages dropped because the backlog was full. */
  controlDropped = 0;
  /** Control messages from the guest that were malformed or named a port that does not exist. */
  controlErrors = 0;
  /** The driver sent DEVICE_READY (multiport). */
  deviceReady = false;
  private ctx: VirtioContext | null = null;
  private readonly config = new Uint8Array(CONFIG_SIZE);
  private readonly multiportOffered: boolean;
  private readonly resizeRowsFirst: boolean;
  /** MULTIPORT negotiated (set at activate). */
  private multiport = false;
  private readonly ports: Port[] = [];
  private readonly backlog: Uint8Array[] = [];
  private readonly chain = new DescriptorChain(4);
  private readonly scratch = new Uint8Array(4096);
  private readonly one = new Uint8Array(1);
  private readonly msg = new Uint8Array(CONSOLE_CONTROL_BYTES);

  constructor(opts: VirtioConsoleOptions) {
    const qs = opts.queueSize ?? 64;
    if (qs < 2 || qs > MAX_QUEUE_SIZE || (qs & (qs - 1)) !== 0) throw new RangeError('VirtioConsole: queueSize must be a power of two');
    const mp = opts.maxPorts;
    if (mp !== undefined && (!Number.isInteger(mp) || mp < 1 || mp > CONSOLE_MAX_PORTS)) throw new RangeError(`VirtioConsole: maxPorts must be an integer from 1 to ${CONSOLE_MAX_PORTS}`);
    this.multiportOffered = mp !== undefined;
    this.resizeRowsFirst = opts.resizeRowsFirst ?? false;
    this.maxPorts = mp ?? 1;
    this.queueCount = this.multiportOffered ? 2 * (this.maxPorts + 1) : 2;
    this.maxQueueSize = qs;
    this.featuresLo = CONSOLE_F_EMERG_WRITE | (opts.cols !== undefined ? CONSOLE_F_SIZE : 0) | (this.multiportOffered ? CONSOLE_F_MULTIPORT : 0);
    const v = new DataView(this.config.buffer);
    v.setUint16(0, opts.cols ?? 0, true);
    v.setUint16(2, opts.rows ?? 0, true);
    v.setUint32(4, this.maxPorts, true);
    for (let i = 0; i < this.maxPorts; i++) this.ports.push(new Port());
    const p0 = this.ports[0];
    p0.present = true;
    p0.console = true;
    p0.output = opts.output;
    if (opts.name !== undefined) p0.name = encodeName(opts.name);
  }

  attach(ctx: VirtioContext): void {
    this.ctx = ctx;
  }

  readConfig(offset: number): number {
    return offset >= 8 ? 0 : this.config[offset];
  }

  writeConfig(offset: number, value: number): void {
    if (offset === 8) {
      this.one[0] = value;
      this.ports[0].output!(this.one, 0, 1);
    }
  }

  checkFeatures(lo: number): boolean {
    return (lo & CONSOLE_F_MULTIPORT) === 0 || this.multiportOffered;
  }

  /**
   * Announces a new terminal size for the console: in config space (config change interrupt)
   * and, with MULTIPORT, as a RESIZE control message {le16 cols, le16 rows} to port 0 (see
   * resizeRowsFirst).
   */
  resize(cols: number, rows: number): void {
    this.config[0] = cols & 0xff;
    this.config[1] = (cols >>> 8) & 0xff;
    this.config[2] = rows & 0xff;
    this.config[3] = (rows >>> 8) & 0xff;
    if (this.multiport) {
      const m = controlMessage(0, CONSOLE_RESIZE, 0, 4);
      const first = this.resizeRowsFirst ? rows : cols;
      const second = this.resizeRowsFirst ? cols : rows;
      m[8] = first & 0xff;
      m[9] = (first >>> 8) & 0xff;
      m[10] = second & 0xff;
      m[11] = (second >>> 8) & 0xff;
      this.queueControl(m);
    } else {
      this.ctx?.configChanged();
    }
  }

  /**
   * Adds port `id` (1..maxPorts-1) to a multiport console; announced with PORT_ADD at once if
   * the driver is ready, else at its DEVICE_READY.
   */
  addPort(id: number, opts: ConsolePortOptions = {}): void {
    if (!this.multiportOffered || !Number.isInteger(id) || id < 1 || id >= this.maxPorts) throw new RangeError(`VirtioConsole: port id must be from 1 to ${this.maxPorts - 1} (multiport)`);
    const p = this.ports[id];
    if (p.present) throw new Error(`VirtioConsole: port ${id} already exists`);
    p.present = true;
    p.console = opts.console ?? false;
    p.name = opts.name !== undefined ? encodeName(opts.name) : null;
    p.output = opts.output ?? null;
    p.onOpen = opts.onOpen ?? null;
    p.hostOpen = opts.hostOpen ?? true;
    if (this.multiport && this.deviceReady) this.queueControl(controlMessage(id, CONSOLE_PORT_ADD, 1, 0));
  }

  /** Removes port `id` (PORT_REMOVE to the guest). */
  removePort(id: number): void {
    if (id < 1 || id >= this.maxPorts || !this.ports[id].present) throw new RangeError(`VirtioConsole: no port ${id}`);
    const p = this.ports[id];
    p.present = false;
    p.guestReady = false;
    p.guestOpen = false;
    p.pendingLen = 0;
    if (this.multiport && this.deviceReady) this.queueControl(controlMessage(id, CONSOLE_PORT_REMOVE, 0, 0));
  }

  /** The host side of port `id` connected or disconnected (PORT_OPEN to the guest). */
  setHostOpen(id: number, open: boolean): void {
    const p = this.ports[id];
    if (p === undefined || !p.present) throw new RangeError(`VirtioConsole: no port ${id}`);
    if (p.hostOpen === open) return;
    p.hostOpen = open;
    if (this.multiport && p.guestReady) this.queueControl(controlMessage(id, CONSOLE_PORT_OPEN, open ? 1 : 0, 0));
  }

  /** Whether the guest has port `id` open (multiport) / is driving port 0 (single port). */
  isGuestOpen(id: number): boolean {
    return this.ports[id]?.guestOpen ?? false;
  }

  /** Whether the guest accepted port `id` (PORT_READY). */
  isPortReady(id: number): boolean {
    return this.ports[id]?.guestReady ?? false;
  }

  /** Control messages waiting for control receive buffers. */
  get controlBacklog(): number {
    return this.backlog.length;
  }

  activate(): void {
    const ctx = this.ctx!;
    this.multiport = (ctx.featuresLo & CONSOLE_F_MULTIPORT) !== 0;
    if (!this.multiport) this.ports[0].guestOpen = true;
    this.processTx(0);
    this.flushInput(0);
    if (this.multiport) {
      this.processControl();
      this.flushControl();
    }
  }

  notify(index: number): void {
    if (!this.multiport) {
      if (index === 1) this.processTx(0);
      else if (index === 0) this.flushInput(0);
      return;
    }
    if (index === CTRL_TX) return this.processControl();
    if (index === CTRL_RX) return this.flushControl();
    const port = index < 2 ? 0 : (index >>> 1) - 1;
    if (port >= this.maxPorts) return;
    if ((index & 1) === 1) this.processTx(port);
    else this.flushInput(port);
  }

  reset(): void {
    this.multiport = false;
    this.deviceReady = false;
    this.backlog.length = 0;
    for (const p of this.ports) {
      p.guestReady = false;
      p.guestOpen = false;
      p.pendingStart = 0;
      p.pendingLen = 0;
    }
  }

  /** Bytes typed at port `port` (default 0, the console) for the guest. */
  input(data: Uint8Array, port = 0): void {
    const p = this.ports[port];
    if (p === undefined || !p.present) {
      this.inputDropped += data.length;
      return;
    }
    p.pending ??= new Uint8Array(CONSOLE_INPUT_LIMIT);
    const buf = p.pending;
    const cap = buf.length;
    for (let i = 0; i < data.length; i++) {
      if (p.pendingLen === cap) {
        this.inputDropped += data.length - i;
        break;
      }
      buf[(p.pendingStart + p.pendingLen++) % cap] = data[i];
    }
    this.flushInput(port);
  }

  /** Bytes waiting for a receive buffer on port `port` (default 0). */
  pendingInputOf(port: number): number {
    return this.ports[port]?.pendingLen ?? 0;
  }

  /** Bytes waiting for a receive buffer on port 0. */
  get pendingInput(): number {
    return this.ports[0].pendingLen;
  }

  // ---- state ----------------------------------------------------------------------------

  saveState(): VirtioConsoleState {
    return {
      version: VIRTIO_STATE_VERSION,
      kind: 'virtio-console',
      maxPorts: this.maxPorts,
      cols: this.config[0] | (this.config[1] << 8),
      rows: this.config[2] | (this.config[3] << 8),
      deviceReady: this.deviceReady,
      ports: this.ports.map((p) => {
        const pending: number[] = [];
        for (let i = 0; i < p.pendingLen; i++) pending.push(p.pending![(p.pendingStart + i) % p.pending!.length]);
        return { present: p.present, hostOpen: p.hostOpen, guestReady: p.guestReady, guestOpen: p.guestOpen, pending };
      }),
      backlog: this.backlog.map((m) => Array.from(m)),
    };
  }

  /**
   * Checks a saved virtio-console state: same number of ports and the same ports present
   * (add or remove ports on this device before restoring), pending input and the control
   * backlog within their bounds, nothing outstanding on the queues.
   */
  prepareRestore(v: unknown, rc: DeviceRestoreContext): () => void {
    const P = 'state.device';
    const o = stateHeader(v, P, 'virtio-console');
    if (o.maxPorts !== this.maxPorts) stateFail(`${P}.maxPorts`, `is ${String(o.maxPorts)}, this console has ${this.maxPorts} ports`);
    const cols = stateInt(o.cols, `${P}.cols`, 0, 0xffff);
    const rows = stateInt(o.rows, `${P}.rows`, 0, 0xffff);
    const deviceReady = stateBool(o.deviceReady, `${P}.deviceReady`);
    const list = stateArray(o.ports, `${P}.ports`, this.maxPorts, this.maxPorts);
    const ports = list.map((e, i) => {
      const q = `${P}.ports[${i}]`;
      const po = stateObject(e, q);
      const present = stateBool(po.present, `${q}.present`);
      if (present !== this.ports[i].present) stateFail(`${q}.present`, `is ${present} but port ${i} is ${this.ports[i].present ? '' : 'not '}configured here`);
      return {
        hostOpen: stateBool(po.hostOpen, `${q}.hostOpen`),
        guestReady: stateBool(po.guestReady, `${q}.guestReady`),
        guestOpen: stateBool(po.guestOpen, `${q}.guestOpen`),
        pending: stateBytes(po.pending, `${q}.pending`, 0, CONSOLE_INPUT_LIMIT),
      };
    });
    const bl = stateArray(o.backlog, `${P}.backlog`, 0, CONSOLE_CONTROL_BACKLOG);
    const backlog = bl.map((m, i) => stateBytes(m, `${P}.backlog[${i}]`, CONSOLE_CONTROL_BYTES, CONSOLE_CONTROL_BYTES + CONSOLE_NAME_MAX + 1));
    if (rc.active) for (let q = 0; q < this.queueCount; q++) if (rc.outstanding(q) > 0) stateFail(P, `does not match queue ${q}: ${rc.outstanding(q)} chains outstanding, none held`);
    return () => {
      const ctx = this.ctx!;
      this.multiport = ctx.active && (ctx.featuresLo & CONSOLE_F_MULTIPORT) !== 0;
      this.config[0] = cols & 0xff;
      this.config[1] = cols >>> 8;
      this.config[2] = rows & 0xff;
      this.config[3] = rows >>> 8;
      this.deviceReady = deviceReady;
      for (let i = 0; i < this.maxPorts; i++) {
        const p = this.ports[i];
        const s = ports[i];
        p.hostOpen = s.hostOpen;
        p.guestReady = s.guestReady;
        p.guestOpen = s.guestOpen;
        p.pendingStart = 0;
        p.pendingLen = s.pending.length;
        if (s.pending.length > 0) {
          p.pending ??= new Uint8Array(CONSOLE_INPUT_LIMIT);
          p.pending.set(s.pending);
        }
      }
      this.backlog.length = 0;
      this.backlog.push(...backlog);
    };
  }

  private rxIndex(port: number): number {
    return port === 0 ? 0 : 2 * (port + 1);
  }

  private flushInput(port: number): void {
    const ctx = this.ctx;
    const p = this.ports[port];
    const qi = this.rxIndex(port);
    const q = ctx?.active === true && (port === 0 || this.multiport) ? ctx.queue(qi) : null;
    if (ctx == null || q == null || p.pending == null) return;
    const c = this.chain;
    const buf = p.pending;
    let pushed = false;
    while (p.pendingLen > 0) {
      const r = q.pop(c);
      if (r === POP_EMPTY) {
        if (q.enableNotification()) continue;
        break;
      }
      if (r < 0) break;
      const n = Math.min(c.writableBytes, p.pendingLen, this.scratch.length);
      for (let i = 0; i < n; i++) this.scratch[i] = buf[(p.pendingStart + i) % buf.length];
      c.write(ctx.mem, 0, this.scratch, 0, n);
      p.pendingStart = (p.pendingStart + n) % buf.length;
      p.pendingLen -= n;
      q.pushUsed(c, n);
      pushed = true;
    }
    if (pushed || q.error !== 0) ctx.signalUsed(qi);
  }

  private processTx(port: number): void {
    const ctx = this.ctx;
    const qi = this.rxIndex(port) + 1;
    const q = ctx?.active === true ? ctx.queue(qi) : null;
    if (ctx == null || q == null) return;
    const p = this.ports[port];
    const out = p.present ? p.output : null; // data for a port the host does not have is discarded
    const c = this.chain;
    let pushed = false;
    for (;;) {
      const r = q.pop(c);
      if (r === POP_EMPTY) {
        if (q.enableNotification()) continue;
        break;
      }
      if (r < 0) break;
      if (out != null) this.emit(ctx, c, out);
      q.pushUsed(c, 0);
      pushed = true;
      if (!ctx.active) break;
    }
    if (pushed || q.error !== 0) ctx.signalUsed(qi);
  }

  /** Hands the readable part of a chain to `out`: views of guest RAM, bounced when not contiguous host memory. */
  private emit(ctx: VirtioContext, c: DescriptorChain, out: ConsoleOutput): void {
    for (let i = 0; i < c.firstWritable; i++) {
      const view = ctx.mem.hostView(c.addr[i], c.len[i]);
      if (view != null) out(view, 0, view.length);
      else {
        for (let o = 0; o < c.len[i]; o += this.scratch.length) {
          const n = Math.min(this.scratch.length, c.len[i] - o);
          if (!ctx.mem.readInto(c.addr[i] + o, this.scratch.subarray(0, n))) break;
          out(this.scratch, 0, n);
        }
      }
    }
  }

  // ---- control queues (MULTIPORT) -------------------------------------------------------

  private queueControl(m: Uint8Array): void {
    if (this.backlog.length >= CONSOLE_CONTROL_BACKLOG) {
      this.controlDropped++;
      return;
    }
    this.backlog.push(m);
    this.flushControl();
  }

  /** Copies waiting control messages into the driver's control receive buffers (truncated to the buffer, as QEMU). */
  private flushControl(): void {
    const ctx = this.ctx;
    const q = ctx?.active === true && this.multiport ? ctx.queue(CTRL_RX) : null;
    if (ctx == null || q == null) return;
    const c = this.chain;
    let pushed = false;
    let sent = 0;
    while (sent < this.backlog.length) {
      const r = q.pop(c);
      if (r === POP_EMPTY) {
        if (q.enableNotification()) continue;
        break;
      }
      if (r < 0) break;
      const m = this.backlog[sent++];
      const n = Math.min(m.length, c.writableBytes);
      c.write(ctx.mem, 0, m, 0, n);
      q.pushUsed(c, n);
      pushed = true;
    }
    if (sent > 0) this.backlog.splice(0, sent);
    if (pushed || q.error !== 0) ctx.signalUsed(CTRL_RX);
  }

  /** Runs the driver's control messages (control transmitq). */
  private processControl(): void {
    const ctx = this.ctx;
    const q = ctx?.active === true && this.multiport ? ctx.queue(CTRL_TX) : null;
    if (ctx == null || q == null) return;
    const c = this.chain;
    const m = this.msg;
    let pushed = false;
    for (;;) {
      const r = q.pop(c);
      if (r === POP_EMPTY) {
        if (q.enableNotification()) continue;
        break;
      }
      if (r < 0) break;
      if (c.readableBytes < CONSOLE_CONTROL_BYTES || !c.read(ctx.mem, 0, m, 0, CONSOLE_CONTROL_BYTES)) {
        this.controlErrors++; // QEMU ignores short control messages
      } else {
        const id = (m[0] | (m[1] << 8) | (m[2] << 16) | (m[3] << 24)) >>> 0;
        this.control(id, m[4] | (m[5] << 8), m[6] | (m[7] << 8));
      }
      q.pushUsed(c, 0);
      pushed = true;
      if (!ctx.active) break;
    }
    if (pushed || q.error !== 0) ctx.signalUsed(CTRL_TX);
  }

  private control(id: number, event: number, value: number): void {
    if (event === CONSOLE_DEVICE_READY) {
      if (value === 0 || this.deviceReady) {
        if (value === 0) this.controlErrors++;
        return;
      }
      this.deviceReady = true;
      for (let i = 0; i < this.maxPorts; i++) if (this.ports[i].present) this.queueControl(controlMessage(i, CONSOLE_PORT_ADD, 1, 0));
      return;
    }
    const p = id < this.maxPorts ? this.ports[id] : undefined;
    if (p === undefined || !p.present) {
      this.controlErrors++;
      return;
    }
    switch (event) {
      case CONSOLE_PORT_READY:
        if (value === 0) {
          this.controlErrors++; // the guest failed to add the port
          return;
        }
        if (p.guestReady) return;
        p.guestReady = true;
        if (p.console) this.queueControl(controlMessage(id, CONSOLE_CONSOLE_PORT, 1, 0));
        if (p.name != null) {
          const msg = controlMessage(id, CONSOLE_PORT_NAME, 1, p.name.length + 1);
          msg.set(p.name, CONSOLE_CONTROL_BYTES);
          this.queueControl(msg);
        }
        if (p.hostOpen) this.queueControl(controlMessage(id, CONSOLE_PORT_OPEN, 1, 0));
        this.flushInput(id);
        return;
      case CONSOLE_PORT_OPEN: {
        const open = value !== 0;
        if (p.guestOpen === open) return;
        p.guestOpen = open;
        p.onOpen?.(open);
        if (open) this.flushInput(id);
        return;
      }
      default:
        this.controlErrors++; // events the device sends, or unknown ones
    }
  }
}

/** A control message {le32 id, le16 event, le16 value} with `extra` zero bytes after it. */
function controlMessage(id: number, event: number, value: number, extra: number): Uint8Array {
  const m = new Uint8Array(CONSOLE_CONTROL_BYTES + extra);
  m[0] = id & 0xff;
  m[1] = (id >>> 8) & 0xff;
  m[2] = (id >>> 16) & 0xff;
  m[3] = id >>> 24;
  m[4] = event & 0xff;
  m[5] = event >>> 8;
  m[6] = value & 0xff;
  m[7] = value >>> 8;
  return m;
}

function encodeName(name: string): Uint8Array {
  const b = new TextEncoder().encode(name);
  if (b.length > CONSOLE_NAME_MAX || b.includes(0)) throw new RangeError(`VirtioConsole: port name must be 1..${CONSOLE_NAME_MAX} bytes without NUL`);
  return b;
}
