import { DescriptorChain } from './chain';
import { DEVICE_ID_RNG, MAX_QUEUE_SIZE } from './constants';
import type { VirtioContext, VirtioDevice } from './device';
import { POP_EMPTY } from './queue';
import type { DeviceRestoreContext } from './state';
import { stateFail, stateHeader, stateInt, VIRTIO_STATE_VERSION } from './state';

/** virtio-rng's own state (it holds no chains: every request is served when popped). */
export interface VirtioRngState {
  version: number;
  kind: 'virtio-rng';
  bytesServed: number;
}

/** Most bytes given per request (crypto.getRandomValues' own limit per call). */
export const RNG_MAX_PER_REQUEST = 65536;

/** Options of VirtioRng. */
export interface VirtioRngOptions {
  /** Entropy source (default: the platform's crypto.getRandomValues). */
  random?: (out: Uint8Array) => void;
  queueSize?: number;
}

/** virtio-rng (entropy device): fills each writable buffer, up to 64 KiB per request, from the platform's crypto random source. */
export class VirtioRng implements VirtioDevice {
  readonly deviceId: number = DEVICE_ID_RNG;
  readonly queueCount: number = 1;
  readonly maxQueueSize: number;
  readonly featuresLo: number = 0;
  readonly featuresHi: number = 0;
  readonly configSize: number = 0;
  /** Chains go back in the order they were popped, on every queue. */
  readonly supportsInOrder: boolean = true;
  bytesServed = 0;
  private ctx: VirtioContext | null = null;
  private readonly random: (out: Uint8Array) => void;
  private readonly chain = new DescriptorChain(4);
  private readonly scratch = new Uint8Array(RNG_MAX_PER_REQUEST);

  constructor(opts: VirtioRngOptions = {}) {
    this.random = opts.random ?? ((out: Uint8Array): void => void globalThis.crypto.getRandomValues(out));
    const qs = opts.queueSize ?? 64;
    if (qs < 2 || qs > MAX_QUEUE_SIZE || (qs & (qs - 1)) !== 0) throw new RangeError('VirtioRng: queueSize must be a power of two');
    this.maxQueueSize = qs;
  }

  attach(ctx: VirtioContext): void {
    this.ctx = ctx;
  }

  readConfig(): number {
    return 0;
  }

  writeConfig(): void {}

  checkFeatures(): boolean {
    return true;
  }

  activate(): void {
    this.process();
  }

  notify(): void {
    this.process();
  }

  reset(): void {}

  saveState(): VirtioRngState {
    return { version: VIRTIO_STATE_VERSION, kind: 'virtio-rng', bytesServed: this.bytesServed };
  }

  prepareRestore(v: unknown, rc: DeviceRestoreContext): () => void {
    const o = stateHeader(v, 'state.device', 'virtio-rng');
    const served = stateInt(o.bytesServed, 'state.device.bytesServed', 0, Number.MAX_SAFE_INTEGER);
    if (rc.active && rc.outstanding(0) > 0) stateFail('state.device', `does not match queue 0: ${rc.outstanding(0)} chains outstanding, none held`);
    return () => {
      this.bytesServed = served;
    };
  }

  private process(): void {
    const ctx = this.ctx;
    const q = ctx?.active === true ? ctx.queue(0) : null;
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
      const n = Math.min(c.writableBytes, RNG_MAX_PER_REQUEST);
      let done = 0;
      for (let i = c.firstWritable; i < c.count && done < n; i++) {
        const k = Math.min(c.len[i], n - done);
        const view = ctx.mem.hostView(c.addr[i], k);
        if (view != null) this.random(view); // straight into guest RAM
        else {
          const s = this.scratch.subarray(0, k);
          this.random(s);
          ctx.mem.writeFrom(c.addr[i], s);
        }
        done += k;
      }
      this.bytesServed += n;
      q.pushUsed(c, n);
      pushed = true;
    }
    if (pushed || q.error !== 0) ctx.signalUsed(0);
  }
}
