// Device state export/import (snapshots, migration): versioned plain objects and the checks
// every import goes through. A state object is untrusted input (a file, a migration stream):
// everything is validated before anything changes, and every refusal is a VirtioStateError
// naming the field.
import type { GuestMemory } from '@ringzero/mmu-ept';
import type { DescriptorChain } from './chain';

/** Version written by saveState() and the only one restoreState() accepts. */
export const VIRTIO_STATE_VERSION = 1;

/** A state object was refused on import; `message` names the offending field. */
export class VirtioStateError extends Error {
  override readonly name: string = 'VirtioStateError';
}

/** One descriptor chain the device holds (popped, not yet used), as plain data. */
export interface ChainState {
  /** Split: head descriptor index; packed: buffer id. */
  head: number;
  /** Ring slots the chain took (packed), descriptors walked (split). */
  slots: number;
  /** The validated segments: readable ones first. */
  segments: { addr: number; len: number; writable: boolean }[];
}

/** What a device's restore check may consult: the transport state being restored, not yet applied. */
export interface DeviceRestoreContext {
  readonly mem: GuestMemory;
  readonly featuresLo: number;
  readonly featuresHi: number;
  /** DRIVER_OK set and neither NEEDS_RESET nor FAILED. */
  readonly active: boolean;
  /** Size of queue i once restored; 0 when it is not live. */
  queueSize(i: number): number;
  /** Split queue i: chains popped and not yet used; -1 for packed or not live queues. */
  outstanding(i: number): number;
}

// ---- field checks (used by every restore path) ---------------------------------------------

export function stateFail(path: string, what: string): never {
  throw new VirtioStateError(`virtio state: ${path} ${what}`);
}

export function stateObject(v: unknown, path: string): Record<string, unknown> {
  if (typeof v !== 'object' || v == null || Array.isArray(v)) stateFail(path, 'is not an object');
  return v as Record<string, unknown>;
}

export function stateInt(v: unknown, path: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) stateFail(path, `must be an integer from ${min} to ${max} (got ${describe(v)})`);
  return v;
}

export function stateBool(v: unknown, path: string): boolean {
  if (typeof v !== 'boolean') stateFail(path, `must be a boolean (got ${describe(v)})`);
  return v;
}

export function stateString(v: unknown, path: string, maxLen: number): string {
  if (typeof v !== 'string' || v.length > maxLen) stateFail(path, `must be a string of at most ${maxLen} characters`);
  return v;
}

export function stateArray(v: unknown, path: string, minLen: number, maxLen: number): readonly unknown[] {
  if (!Array.isArray(v)) stateFail(path, 'is not an array');
  const a = v as unknown[];
  if (a.length < minLen || a.length > maxLen) stateFail(path, minLen === maxLen ? `must have ${minLen} entries (got ${a.length})` : `must have ${minLen} to ${maxLen} entries (got ${a.length})`);
  return a;
}

/** An array of byte values (0..255) into a new Uint8Array. */
export function stateBytes(v: unknown, path: string, minLen: number, maxLen: number): Uint8Array {
  const a = stateArray(v, path, minLen, maxLen);
  const out = new Uint8Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = stateInt(a[i], `${path}[${i}]`, 0, 255);
  return out;
}

/** An array of unsigned 32-bit values into a new Uint32Array. */
export function stateWords(v: unknown, path: string, len: number): Uint32Array {
  const a = stateArray(v, path, len, len);
  const out = new Uint32Array(len);
  for (let i = 0; i < len; i++) out[i] = stateInt(a[i], `${path}[${i}]`, 0, 0xffff_ffff);
  return out;
}

/** Checks `version` (and `kind` when given) of a versioned state object. */
export function stateHeader(v: unknown, path: string, kind: string): Record<string, unknown> {
  const o = stateObject(v, path);
  if (o.version !== VIRTIO_STATE_VERSION) stateFail(`${path}.version`, `must be ${VIRTIO_STATE_VERSION} (got ${describe(o.version)})`);
  if (o.kind !== kind) stateFail(`${path}.kind`, `must be '${kind}' (got ${describe(o.kind)})`);
  return o;
}

function describe(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v.length > 20 ? `${v.slice(0, 20)}...` : v);
  if (typeof v === 'number' || typeof v === 'boolean' || v == null) return String(v);
  return Array.isArray(v) ? 'an array' : typeof v;
}

/** Runs a restore check; anything it throws that is not a VirtioStateError becomes one. */
export function stateGuard<T>(what: string, f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof VirtioStateError) throw e;
    throw new VirtioStateError(`virtio state: ${what} is malformed (${e instanceof Error ? e.message : String(e)})`);
  }
}

// ---- descriptor chains ---------------------------------------------------------------------

export function saveChain(c: DescriptorChain): ChainState {
  const segments: ChainState['segments'] = [];
  for (let i = 0; i < c.count; i++) segments.push({ addr: c.addr[i], len: c.len[i], writable: i >= c.firstWritable });
  return { head: c.head, slots: c.slots, segments };
}

/**
 * Checks a saved chain against the rules the queues enforce when they pop one (at most
 * 2 x queueSize segments, each non-empty and in guest RAM, readable before writable, at most
 * 2^32 bytes in all) and loads it into `out`.
 */
export function loadChain(v: unknown, path: string, mem: GuestMemory, queueSize: number, maxHead: number, out: DescriptorChain): void {
  const o = stateObject(v, path);
  const head = stateInt(o.head, `${path}.head`, 0, maxHead);
  const slots = stateInt(o.slots, `${path}.slots`, 0, 2 * queueSize);
  const segs = stateArray(o.segments, `${path}.segments`, 0, 2 * queueSize);
  out.clear();
  out.head = head;
  let total = 0;
  let seenWritable = false;
  for (let i = 0; i < segs.length; i++) {
    const p = `${path}.segments[${i}]`;
    const s = stateObject(segs[i], p);
    const addr = stateInt(s.addr, `${p}.addr`, 0, Number.MAX_SAFE_INTEGER);
    const len = stateInt(s.len, `${p}.len`, 1, 0xffff_ffff);
    const writable = stateBool(s.writable, `${p}.writable`);
    if (!writable && seenWritable) stateFail(p, 'is readable after a writable segment');
    seenWritable ||= writable;
    total += len;
    if (total > 0x1_0000_0000) stateFail(path, 'is longer than 2^32 bytes');
    if (!mem.isRam(addr, len)) stateFail(p, 'is not in guest RAM');
    out.push(addr, len, writable);
  }
  out.slots = slots;
}
