// Compressor pools: where the clusters of a compressed write (`convert -c`) are compressed. The
// core knows only this interface and an inline pool that compresses on the calling thread; the
// Node adapter (`./node`) has one backed by worker threads.
import type { ClusterCodec } from './compress';

/**
 * Compresses whole clusters, possibly several at once and off the calling thread. Callers keep
 * a bounded number of requests outstanding (each holds one cluster); `compress` itself also
 * waits while the pool's own queue is full, so memory stays bounded either way.
 */
export interface CompressorPool {
  /** How many clusters it compresses side by side (a hint for how many to submit ahead). */
  readonly parallelism: number;
  /**
   * Compress a batch of clusters, each on its own (one qcow2 compressed cluster each), with
   * the codec of `compressionType` (0 zlib, 1 zstd). Resolves to one result per cluster: the
   * compressed bytes, or null when they would not be smaller than `limit`. The clusters are
   * only read, and may be reused once the promise settles. A batch travels as one message, so
   * batches of several clusters cost less than one cluster at a time. Rejects with one clear
   * Error on failure.
   */
  compress(compressionType: number, clusters: Uint8Array[], limit: number): Promise<(Uint8Array | null)[]>;
  /** Waits for outstanding requests, then releases the pool's threads. Idempotent. */
  close(): Promise<void>;
}

/**
 * A pool that compresses on the calling thread with the given codecs (or, when a codec has
 * `compressAsync`, through it). The isomorphic default.
 */
export function inlineCompressorPool(codecFor: (compressionType: number) => ClusterCodec | Promise<ClusterCodec>): CompressorPool {
  let closed = false;
  return {
    parallelism: 1,
    async compress(compressionType: number, clusters: Uint8Array[], limit: number): Promise<(Uint8Array | null)[]> {
      if (closed) throw new Error('compressor pool is closed');
      const codec = await codecFor(compressionType);
      const ca = codec.compressAsync?.bind(codec);
      if (ca) return Promise.all(clusters.map((c) => ca(c, limit)));
      return clusters.map((c) => codec.compress(c, limit));
    },
    close(): Promise<void> {
      closed = true;
      return Promise.resolve();
    },
  };
}
