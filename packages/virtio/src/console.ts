import { DescriptorChain } from './chain';
import { DEVICE_ID_CONSOLE, MAX_QUEUE_SIZE } from './constants';
import type { VirtioContext, VirtioDevice } from './device';
import { POP_EMPTY } from './queue';

export const CONSOLE_F_SIZE = 0x1;
export const CONSOLE_F_MULTIPORT = 0x2;
export const CONSOLE_F_EMERG_WRITE = 0x4;
/** Input bytes kept while the guest has no receive buffer posted; more are dropped. */
export const CONSOLE_INPUT_LIMIT = 65536;

const RX = 0;
const TX = 1;
/* Config space (virtio 1.x §5.3.4): 0 cols le16, 2 rows le16, 4 max_nr_ports le32, 8 emerg_wr le32. */
const CONFIG_SIZE = 12;

/** Options of VirtioConsole. */
export interface VirtioConsoleOptions {
  /** Bytes the guest wrote to the console (port 0 or the emergency write register). */
  output: (buf: Uint8Array, offset: number, length: number) => void;
  /** Terminal size to announce (VIRTIO_CONSOLE_F_SIZE). */
  cols?: number;
  rows?: number;
  queueSize?: number;
}

/**
 * virtio-console with one port (no MULTIPORT): transmitq bytes go to `output` (a view of
 * guest memory per descriptor, no copy), input() bytes are copied into receiveq buffers as
 * they become available. Pending input is bounded by CONSOLE_INPUT_LIMIT.
 */
export class VirtioConsole implements VirtioDevice {
  readonly deviceId: number = DEVICE_ID_CONSOLE;
  readonly queueCount: number = 2;
  readonly maxQueueSize: number;
  readonly featuresLo: number;
  readonly featuresHi: number = 0;
  readonly configSize: number = CONFIG_SIZE;
  /** Input bytes dropped because the pending buffer was full. */
  inputDropped = 0;
  private ctx: VirtioContext | null = null;
  private readonly config = new Uint8Array(CONFIG_SIZE);
  private readonly output: (buf: Uint8Array, offset: number, length: number) => void;
  private readonly pending = new Uint8Array(CONSOLE_INPUT_LIMIT);
  private pendingStart = 0;
  private pendingLen = 0;
  private readonly chain = new DescriptorChain(4);
  private readonly scratch = new Uint8Array(4096);
  private readonly one = new Uint8Array(1);

  constructor(opts: VirtioConsoleOptions) {
    this.output = opts.output;
    const qs = opts.queueSize ?? 64;
    if (qs < 2 || qs > MAX_QUEUE_SIZE || (qs & (qs - 1)) !== 0) throw new RangeError('VirtioConsole: queueSize must be a power of two');
    this.maxQueueSize = qs;
    this.featuresLo = CONSOLE_F_EMERG_WRITE | (opts.cols !== undefined ? CONSOLE_F_SIZE : 0);
    const v = new DataView(this.config.buffer);
    v.setUint16(0, opts.cols ?? 0, true);
    v.setUint16(2, opts.rows ?? 0, true);
    v.setUint32(4, 1, true);
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
      this.output(this.one, 0, 1);
    }
  }

  checkFeatures(lo: number): boolean {
    return (lo & CONSOLE_F_MULTIPORT) === 0;
  }

  /** Announces a new terminal size (config change interrupt). */
  resize(cols: number, rows: number): void {
    this.config[0] = cols & 0xff;
    this.config[1] = (cols >>> 8) & 0xff;
    this.config[2] = rows & 0xff;
    this.config[3] = (rows >>> 8) & 0xff;
    this.ctx?.configChanged();
  }

  activate(): void {
    this.processTx();
    this.flushInput();
  }

  notify(index: number): void {
    if (index === TX) this.processTx();
    else this.flushInput();
  }

  reset(): void {
    this.pendingStart = 0;
    this.pendingLen = 0;
  }

  /** Bytes typed at the console for the guest. */
  input(data: Uint8Array): void {
    const cap = this.pending.length;
    for (let i = 0; i < data.length; i++) {
      if (this.pendingLen === cap) {
        this.inputDropped += data.length - i;
        break;
      }
      this.pending[(this.pendingStart + this.pendingLen++) % cap] = data[i];
    }
    this.flushInput();
  }

  /** Bytes waiting for a receive buffer. */
  get pendingInput(): number {
    return this.pendingLen;
  }

  private flushInput(): void {
    const ctx = this.ctx;
    const q = ctx?.active === true ? ctx.queue(RX) : null;
    if (ctx == null || q == null) return;
    const c = this.chain;
    let pushed = false;
    while (this.pendingLen > 0) {
      const r = q.pop(c);
      if (r === POP_EMPTY) {
        if (q.enableNotification()) continue;
        break;
      }
      if (r < 0) break;
      const n = Math.min(c.writableBytes, this.pendingLen, this.scratch.length);
      for (let i = 0; i < n; i++) this.scratch[i] = this.pending[(this.pendingStart + i) % this.pending.length];
      c.write(ctx.mem, 0, this.scratch, 0, n);
      this.pendingStart = (this.pendingStart + n) % this.pending.length;
      this.pendingLen -= n;
      q.pushUsed(c, n);
      pushed = true;
    }
    if (pushed || q.error !== 0) ctx.signalUsed(RX);
  }

  private processTx(): void {
    const ctx = this.ctx;
    const q = ctx?.active === true ? ctx.queue(TX) : null;
    if (ctx == null || q == null) return;
    const c = this.chain;
    let pushed = false;
    for (;;) {
      const r = q.pop(c);
      if (r === POP_EMPTY) {
        if (q.enableNotification()) continue;
        break;
      }
      if (r < 0) break;
      for (let i = 0; i < c.firstWritable; i++) {
        const view = ctx.mem.hostView(c.addr[i], c.len[i]);
        if (view != null) this.output(view, 0, view.length);
        else {
          for (let o = 0; o < c.len[i]; o += this.scratch.length) {
            const n = Math.min(this.scratch.length, c.len[i] - o);
            if (!ctx.mem.readInto(c.addr[i] + o, this.scratch.subarray(0, n))) break;
            this.output(this.scratch, 0, n);
          }
        }
      }
      q.pushUsed(c, 0);
      pushed = true;
      if (!ctx.active) break;
    }
    if (pushed || q.error !== 0) ctx.signalUsed(TX);
  }
}
