// @ringzero/qcow2: QEMU's qcow2 format (read/write), raw images and an in-memory device behind
// one BlockDevice interface. Node file access lives in "@ringzero/qcow2/node".
export type { BlockDevice, BlockStatus, BlockStatusSource } from './device';
export { ImageError, RawDevice, createMemoryDevice } from './device';
export type { ByteStore } from './store';
export { MemoryByteStore } from './store';
export type { Qcow2OpenOptions, BackingDevice } from './qcow2';
export { Qcow2Image } from './qcow2';
export type { Qcow2CreateOptions, Preallocation } from './create';
export { createQcow2, validateCreateOptions } from './create';
export type { ClusterCodec } from './compress';
export type { CompressorPool } from './pool';
export { inlineCompressorPool } from './pool';
export { COMPRESSION_ZLIB, COMPRESSION_ZSTD, zlibCodec, getZstdCodec } from './compress';
export type { QcowHeader, SnapshotEntry, HeaderExtension } from './format';
export { parseHeader, serializeHeader } from './format';
export type { MeasureTarget, MeasureResult, MeasureBitmap, StatusQuery } from './measure';
export { measureQcow2, fullyAllocatedSize, refcountMetadataSize, bitmapsSize } from './measure';
export type { BitmapEntry, BitmapDirectory } from './bitmaps';
export { loadBitmapDirectory, readBitmap } from './bitmaps';
