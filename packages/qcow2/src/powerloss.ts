import type { ByteStore } from './store';
import { MemoryByteStore } from './store';

interface PendingWrite {
  offset: number;
  data: Uint8Array | null; // null = truncate to `offset`
}

/**
 * A byte store that simulates power loss. Writes since the last `flush()` are volatile; after
 * `failAfter` more writes the "power goes out": that write and every later one fail. `crash()`
 * then returns what a disk could hold afterwards: everything flushed plus any subset of the
 * volatile writes (chosen by `keep`).
 */
export class PowerLossStore implements ByteStore {
  private readonly durable: MemoryByteStore;
  private readonly live: MemoryByteStore;
  private pending: PendingWrite[] = [];
  private writesLeft: number;
  dead = false;

  constructor(initial: Uint8Array, failAfter: number = Infinity) {
    this.durable = new MemoryByteStore(initial);
    this.live = new MemoryByteStore(initial);
    this.writesLeft = failAfter;
  }

  private tick(): void {
    if (this.dead || this.writesLeft-- <= 0) {
      this.dead = true;
      throw new Error('simulated power loss');
    }
  }

  pread(offset: number, length: number): Promise<Uint8Array> {
    return this.live.pread(offset, length);
  }

  async pwrite(offset: number, data: Uint8Array): Promise<void> {
    this.tick();
    const copy = data.slice();
    this.pending.push({ offset, data: copy });
    await this.live.pwrite(offset, copy);
  }

  async truncate(size: number): Promise<void> {
    this.tick();
    this.pending.push({ offset: size, data: null });
    await this.live.truncate(size);
  }

  async flush(): Promise<void> {
    if (this.dead) throw new Error('simulated power loss');
    for (const w of this.pending) await apply(this.durable, w);
    this.pending = [];
  }

  size(): Promise<number> {
    return this.live.size();
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  /** Bytes left on the "disk": flushed state plus the volatile writes for which keep(i) is true. */
  async crash(keep: (index: number) => boolean): Promise<Uint8Array> {
    const disk = new MemoryByteStore(this.durable.bytes());
    for (let i = 0; i < this.pending.length; i++) if (keep(i)) await apply(disk, this.pending[i]);
    return disk.bytes();
  }

  get volatileWrites(): number {
    return this.pending.length;
  }
}

async function apply(s: MemoryByteStore, w: PendingWrite): Promise<void> {
  if (w.data) await s.pwrite(w.offset, w.data);
  else await s.truncate(w.offset);
}
