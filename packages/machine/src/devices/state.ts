// Device state as plain, versioned objects (for snapshots and migration). A saved state may come
// from a file, so loading validates every field and fails with one clear DeviceStateError.

/** A device state that cannot be loaded (wrong shape, version or range). */
export class DeviceStateError extends Error {
  override readonly name = 'DeviceStateError';
}

/** Field readers over an untrusted object; each throws DeviceStateError naming the field. */
export class StateReader {
  private readonly o: Record<string, unknown>;

  constructor(
    value: unknown,
    private readonly what: string,
    version?: number,
  ) {
    if (typeof value !== 'object' || value == null || Array.isArray(value)) throw new DeviceStateError(`${what}: state must be an object`);
    this.o = value as Record<string, unknown>;
    if (version !== undefined && this.o.version !== version) {
      throw new DeviceStateError(`${what}: unsupported state version ${String(this.o.version)} (expected ${version})`);
    }
  }

  int(key: string, min: number, max: number): number {
    const v = this.o[key];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw new DeviceStateError(`${this.what}.${key}: expected an integer in ${min}..${max}`);
    return v;
  }

  num(key: string): number {
    const v = this.o[key];
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new DeviceStateError(`${this.what}.${key}: expected a finite number`);
    return v;
  }

  bool(key: string): boolean {
    const v = this.o[key];
    if (typeof v !== 'boolean') throw new DeviceStateError(`${this.what}.${key}: expected a boolean`);
    return v;
  }

  /** An array of integers in min..max, of exactly `length` (or at most `-length` when negative). */
  ints(key: string, length: number, min: number, max: number): number[] {
    const v = this.o[key];
    const ok = Array.isArray(v) && (length >= 0 ? v.length === length : v.length <= -length);
    if (!ok) throw new DeviceStateError(`${this.what}.${key}: expected an array of ${length >= 0 ? length : `at most ${-length}`} integers`);
    for (const x of v as unknown[]) {
      if (typeof x !== 'number' || !Number.isInteger(x) || x < min || x > max) throw new DeviceStateError(`${this.what}.${key}: element out of ${min}..${max}`);
    }
    return v as number[];
  }

  sub(key: string): StateReader {
    return new StateReader(this.o[key], `${this.what}.${key}`);
  }

  /** An array of exactly `length` objects. */
  items(key: string, length: number): StateReader[] {
    const v = this.o[key];
    if (!Array.isArray(v) || v.length !== length) throw new DeviceStateError(`${this.what}.${key}: expected an array of ${length} objects`);
    return v.map((x: unknown, i) => new StateReader(x, `${this.what}.${key}[${i}]`));
  }
}
