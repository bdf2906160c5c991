import type { DescriptorChain } from './chain';

/** pop() results: 1 = a chain was popped, 0 = nothing available, negative = a QERR_* code. */
export const POP_OK = 1;
export const POP_EMPTY = 0;

// Queue error codes. Once a queue reports one it is broken (every later pop returns the same
// code) until the device is reset; the device core then sets NEEDS_RESET.
export const QERR_AVAIL_RING = -1;
export const QERR_AVAIL_IDX = -2;
export const QERR_HEAD_RANGE = -3;
export const QERR_DESC_NOT_RAM = -4;
export const QERR_CHAIN_TOO_LONG = -5;
export const QERR_NEXT_RANGE = -6;
export const QERR_NESTED_INDIRECT = -7;
export const QERR_INDIRECT_NEXT = -8;
export const QERR_INDIRECT_LEN = -9;
export const QERR_BUFFER_NOT_RAM = -10;
export const QERR_READ_AFTER_WRITE = -11;
export const QERR_CHAIN_TOO_BIG = -12;
export const QERR_USED_RING = -13;
export const QERR_INDIRECT_NOT_NEGOTIATED = -14;
export const QERR_BAD_ID = -15;
export const QERR_LAYOUT = -16;

const NAMES: readonly string[] = [
  'none',
  'available ring not in guest RAM',
  'available index moved by more than the queue size',
  'head descriptor index out of range',
  'descriptor table not in guest RAM',
  'descriptor chain longer than the queue size (loop?)',
  'next descriptor index out of range',
  'indirect table inside an indirect table',
  'indirect descriptor with NEXT set',
  'indirect table length not a non-zero multiple of 16 or longer than the queue size',
  'buffer outside guest RAM',
  'readable descriptor after a writable one',
  'chain longer than 2^32 bytes',
  'used ring not in guest RAM',
  'indirect descriptor without VIRTIO_F_INDIRECT_DESC',
  'buffer id out of range or already in use',
  'queue size or ring addresses invalid',
];

/** Human-readable name of a QERR_* code. */
export function queueErrorName(code: number): string {
  return NAMES[-code] ?? `unknown queue error ${code}`;
}

/** What a device sees of one virtqueue, split or packed. */
export interface Virtqueue {
  readonly size: number;
  /** 0, or the QERR_* code that broke the queue. */
  readonly error: number;
  /** Pops the next available chain into `chain`; POP_OK, POP_EMPTY or a QERR_* code. */
  pop(chain: DescriptorChain): number;
  /** True when at least one chain is available (cheap; does not walk it). */
  hasAvailable(): boolean;
  /** Returns a chain to the driver with `written` bytes written by the device. False (and the queue broken) when the ring is not RAM. */
  pushUsed(chain: DescriptorChain, written: number): boolean;
  /** Whether the driver wants an interrupt for the used buffers pushed since the last call. */
  needsNotification(): boolean;
  /** Asks the driver for notifications again; returns true when buffers arrived meanwhile. */
  enableNotification(): boolean;
  /** Asks the driver not to notify (the device is polling the queue anyway). */
  disableNotification(): void;
  /** Remembers the current position in the available ring... */
  mark(): void;
  /** ...and goes back to it, un-popping the chains popped since (none may have been pushed). */
  rewind(): void;
}
