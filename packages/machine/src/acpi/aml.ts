/**
 * A small AML (ACPI Machine Language) encoder: enough of ACPI 6.x §20 to write a DSDT with
 * devices, names, packages, resource templates and trivial methods. Each function returns the
 * encoded bytes of one term; terms nest by passing the children's bytes in.
 *
 * Encodings used (ACPI 6.3 §20.2):
 *   NameSeg      4 chars [A-Z_][A-Z0-9_]{3}, shorter names padded with '_'
 *   NameString   ['\' | '^'*] (NameSeg | 0x2E seg seg | 0x2F n seg*n | 0x00)
 *   PkgLength    1 byte if the whole length (itself included) < 64, else byte0 = n << 6 | len & 0xF
 *                and n more bytes holding len >> 4, len >> 12, len >> 20
 *   Integer      0x00 Zero, 0x01 One, 0x0A byte, 0x0B word, 0x0C dword, 0x0E qword
 */

export type Aml = Uint8Array;

// Opcodes.
const ZERO_OP = 0x00;
const ONE_OP = 0x01;
const NAME_OP = 0x08;
const BYTE_PREFIX = 0x0a;
const WORD_PREFIX = 0x0b;
const DWORD_PREFIX = 0x0c;
const STRING_PREFIX = 0x0d;
const QWORD_PREFIX = 0x0e;
const SCOPE_OP = 0x10;
const BUFFER_OP = 0x11;
const PACKAGE_OP = 0x12;
const METHOD_OP = 0x14;
const DUAL_NAME_PREFIX = 0x2e;
const MULTI_NAME_PREFIX = 0x2f;
const EXT_OP_PREFIX = 0x5b;
const DEVICE_OP = 0x82; // after 0x5B
const ROOT_CHAR = 0x5c;
const PARENT_PREFIX_CHAR = 0x5e;
const LOCAL0_OP = 0x60;
const ARG0_OP = 0x68;
const RETURN_OP = 0xa4;

/** An error in what the caller asked the encoder to encode (a bad name, a value out of range). */
export class AmlError extends Error {
  override readonly name = 'AmlError';
}

/** Concatenates byte arrays. */
export function concat(parts: readonly Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

const SEG_RE = /^[A-Z_][A-Z0-9_]{0,3}$/;

/** One NameSeg (4 bytes), padded with '_'. */
export function nameSeg(seg: string): Aml {
  if (!SEG_RE.test(seg)) throw new AmlError(`bad AML name segment ${JSON.stringify(seg)}`);
  const s = seg.padEnd(4, '_');
  return Uint8Array.of(s.charCodeAt(0), s.charCodeAt(1), s.charCodeAt(2), s.charCodeAt(3));
}

/** A NameString such as "_SB.PCI0", "\\_S5", "^^FOO". */
export function nameString(path: string): Aml {
  const prefix: number[] = [];
  let i = 0;
  if (path.startsWith('\\')) {
    prefix.push(ROOT_CHAR);
    i = 1;
  } else {
    while (path[i] === '^') {
      prefix.push(PARENT_PREFIX_CHAR);
      i++;
    }
  }
  const rest = path.slice(i);
  if (rest === '') return Uint8Array.from([...prefix, 0x00]);
  const segs = rest.split('.');
  if (segs.length > 255) throw new AmlError(`AML name path too long: ${path}`);
  const body = concat(segs.map(nameSeg));
  if (segs.length === 1) return concat([Uint8Array.from(prefix), body]);
  if (segs.length === 2) return concat([Uint8Array.from([...prefix, DUAL_NAME_PREFIX]), body]);
  return concat([Uint8Array.from([...prefix, MULTI_NAME_PREFIX, segs.length]), body]);
}

/** PkgLength for a body of `bodyLength` bytes (the encoding counts itself). */
export function pkgLength(bodyLength: number): Aml {
  if (!Number.isInteger(bodyLength) || bodyLength < 0) throw new AmlError(`bad AML package length ${bodyLength}`);
  if (bodyLength + 1 < 0x40) return Uint8Array.of(bodyLength + 1);
  for (let extra = 1; extra <= 3; extra++) {
    const total = bodyLength + 1 + extra;
    if (total < 2 ** (4 + 8 * extra)) {
      const out = new Uint8Array(1 + extra);
      out[0] = (extra << 6) | (total & 0xf);
      for (let k = 0; k < extra; k++) out[1 + k] = (total >>> (4 + 8 * k)) & 0xff;
      return out;
    }
  }
  throw new AmlError(`AML package too long (${bodyLength} bytes; the limit is 2^28)`);
}

function withPkgLength(op: readonly number[], body: readonly Uint8Array[]): Aml {
  const b = concat(body);
  return concat([Uint8Array.from(op), pkgLength(b.length), b]);
}

/** An Integer constant (0 to 2^53 - 1), in its shortest encoding. */
export function integer(value: number): Aml {
  if (!Number.isSafeInteger(value) || value < 0) throw new AmlError(`AML integer out of range: ${value}`);
  if (value === 0) return Uint8Array.of(ZERO_OP);
  if (value === 1) return Uint8Array.of(ONE_OP);
  if (value <= 0xff) return Uint8Array.of(BYTE_PREFIX, value);
  if (value <= 0xffff) return Uint8Array.of(WORD_PREFIX, value & 0xff, value >>> 8);
  if (value <= 0xffff_ffff) return Uint8Array.of(DWORD_PREFIX, value & 0xff, (value >>> 8) & 0xff, (value >>> 16) & 0xff, value >>> 24);
  const lo = value >>> 0;
  const hi = Math.floor(value / 2 ** 32);
  return Uint8Array.of(
    QWORD_PREFIX, lo & 0xff, (lo >>> 8) & 0xff, (lo >>> 16) & 0xff, lo >>> 24, hi & 0xff, (hi >>> 8) & 0xff, (hi >>> 16) & 0xff, hi >>> 24,
  );
}

/** A DWordConst regardless of size (EisaId values, _ADR values want this encoding). */
export function dword(value: number): Aml {
  if (!Number.isInteger(value) || value < 0 || value > 0xffff_ffff) throw new AmlError(`AML dword out of range: ${value}`);
  return Uint8Array.of(DWORD_PREFIX, value & 0xff, (value >>> 8) & 0xff, (value >>> 16) & 0xff, value >>> 24);
}

/** A String constant (printable ASCII). */
export function string(text: string): Aml {
  const out = new Uint8Array(text.length + 2);
  out[0] = STRING_PREFIX;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x01 || c > 0x7f) throw new AmlError(`AML strings are ASCII without NUL: ${JSON.stringify(text)}`);
    out[1 + i] = c;
  }
  return out;
}

/** The compressed EISA ID of "PNP0A08"-style names (3 letters, 4 hex digits), as a DWordConst. */
export function eisaId(id: string): Aml {
  return dword(eisaIdValue(id));
}

/** The 32-bit value of an EISA ID as it is stored (little-endian of the big-endian compressed form). */
export function eisaIdValue(id: string): number {
  if (!/^[A-Z]{3}[0-9A-F]{4}$/.test(id)) throw new AmlError(`bad EISA ID ${JSON.stringify(id)}`);
  const c = (i: number): number => id.charCodeAt(i) - 0x40;
  const b0 = (c(0) << 2) | (c(1) >>> 3);
  const b1 = ((c(1) & 7) << 5) | c(2);
  const b2 = parseInt(id.slice(3, 5), 16);
  const b3 = parseInt(id.slice(5, 7), 16);
  return (b0 | (b1 << 8) | (b2 << 16) | (b3 << 24)) >>> 0;
}

/** Buffer (BufferSize = bytes.length) holding the given bytes. */
export function buffer(bytes: Uint8Array): Aml {
  return withPkgLength([BUFFER_OP], [integer(bytes.length), bytes]);
}

/** Package of up to 255 elements (each a data object, a name or a nested package). */
export function pkg(elements: readonly Aml[]): Aml {
  if (elements.length > 255) throw new AmlError(`AML Package holds at most 255 elements, got ${elements.length}`);
  return withPkgLength([PACKAGE_OP], [Uint8Array.of(elements.length), ...elements]);
}

/** Name(path, object). */
export function name(path: string, object: Aml): Aml {
  return concat([Uint8Array.of(NAME_OP), nameString(path), object]);
}

/** Scope(path) { terms }. */
export function scope(path: string, terms: readonly Aml[]): Aml {
  return withPkgLength([SCOPE_OP], [nameString(path), ...terms]);
}

/** Device(path) { terms }. */
export function device(path: string, terms: readonly Aml[]): Aml {
  return withPkgLength([EXT_OP_PREFIX, DEVICE_OP], [nameString(path), ...terms]);
}

/** Method(path, argCount, NotSerialized) { terms }. */
export function method(path: string, argCount: number, terms: readonly Aml[]): Aml {
  if (!Number.isInteger(argCount) || argCount < 0 || argCount > 7) throw new AmlError(`AML methods take 0-7 arguments, got ${argCount}`);
  return withPkgLength([METHOD_OP], [nameString(path), Uint8Array.of(argCount), ...terms]);
}

/** Return(value). */
export function ret(value: Aml): Aml {
  return concat([Uint8Array.of(RETURN_OP), value]);
}

/** ArgN (0-6). */
export function arg(n: number): Aml {
  if (!Number.isInteger(n) || n < 0 || n > 6) throw new AmlError(`AML has Arg0-Arg6, not Arg${n}`);
  return Uint8Array.of(ARG0_OP + n);
}

/** LocalN (0-7). */
export function local(n: number): Aml {
  if (!Number.isInteger(n) || n < 0 || n > 7) throw new AmlError(`AML has Local0-Local7, not Local${n}`);
  return Uint8Array.of(LOCAL0_OP + n);
}

// --- Resource descriptors (ACPI 6.3 §6.4) -----------------------------------------------------

const le16 = (v: number): number[] => [v & 0xff, (v >>> 8) & 0xff];
const le32 = (v: number): number[] => [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff];
const le64 = (v: number): number[] => [...le32(v >>> 0), ...le32(Math.floor(v / 2 ** 32))];

function checkRange(what: string, v: number, max: number): void {
  if (!Number.isSafeInteger(v) || v < 0 || v > max) throw new AmlError(`${what} out of range: ${v}`);
}

/** IO(Decode16, min, max, alignment, length): the small I/O port descriptor. */
export function resIo(min: number, max: number, alignment: number, length: number): Aml {
  checkRange('IO min', min, 0xffff);
  checkRange('IO max', max, 0xffff);
  checkRange('IO alignment', alignment, 0xff);
  checkRange('IO length', length, 0xff);
  return Uint8Array.from([0x47, 0x01, ...le16(min), ...le16(max), alignment, length]);
}

/** IRQNoFlags(){irqs} (edge, active high, exclusive): the 2-byte small IRQ descriptor. */
export function resIrqNoFlags(irqs: readonly number[]): Aml {
  let mask = 0;
  for (const i of irqs) {
    checkRange('ISA IRQ', i, 15);
    mask |= 1 << i;
  }
  return Uint8Array.from([0x22, ...le16(mask)]);
}

/** Memory32Fixed(ReadWrite or ReadOnly, base, length). */
export function resMemory32Fixed(base: number, length: number, writable = true): Aml {
  checkRange('Memory32Fixed base', base, 0xffff_ffff);
  checkRange('Memory32Fixed length', length, 0xffff_ffff);
  return Uint8Array.from([0x86, ...le16(9), writable ? 1 : 0, ...le32(base), ...le32(length)]);
}

/** Address space resource types (descriptor byte 3). */
export const ADDRESS_MEMORY = 0;
export const ADDRESS_IO = 1;
export const ADDRESS_BUS = 2;
/** General flags: producer, positive decode, min and max fixed. */
const PRODUCER_FIXED = 0x0c;
/** Memory type-specific flags: read-write (bit 0), cacheability in bits 2:1. */
export const MEM_RW = 0x01;
export const MEM_NONCACHEABLE = 0x00;
export const MEM_CACHEABLE = 0x02;
/** I/O type-specific flags: entire range (ISA and non-ISA). */
export const IO_ENTIRE_RANGE = 0x03;

/** WordBusNumber / WordIO / WordMemory producer (min and max fixed, positive decode). */
export function resWordAddress(type: number, typeFlags: number, min: number, max: number): Aml {
  checkRange('Word address min', min, 0xffff);
  checkRange('Word address max', max, 0xffff);
  if (max < min) throw new AmlError(`Word address range ${min}-${max} is empty`);
  return Uint8Array.from([0x88, ...le16(13), type, PRODUCER_FIXED, typeFlags, ...le16(0), ...le16(min), ...le16(max), ...le16(0), ...le16(max - min + 1)]);
}

/** DWordMemory / DWordIO producer. */
export function resDWordAddress(type: number, typeFlags: number, min: number, max: number): Aml {
  checkRange('DWord address min', min, 0xffff_ffff);
  checkRange('DWord address max', max, 0xffff_ffff);
  if (max < min) throw new AmlError(`DWord address range ${min}-${max} is empty`);
  return Uint8Array.from([0x87, ...le16(23), type, PRODUCER_FIXED, typeFlags, ...le32(0), ...le32(min), ...le32(max), ...le32(0), ...le32(max - min + 1)]);
}

/** QWordMemory producer (addresses up to 2^53). */
export function resQWordAddress(type: number, typeFlags: number, min: number, max: number): Aml {
  checkRange('QWord address min', min, Number.MAX_SAFE_INTEGER);
  checkRange('QWord address max', max, Number.MAX_SAFE_INTEGER);
  if (max < min) throw new AmlError(`QWord address range ${min}-${max} is empty`);
  return Uint8Array.from([0x8a, ...le16(43), type, PRODUCER_FIXED, typeFlags, ...le64(0), ...le64(min), ...le64(max), ...le64(0), ...le64(max - min + 1)]);
}

/** The Extended Interrupt descriptor flags. */
export const INT_CONSUMER = 0x01;
export const INT_EDGE = 0x02;
export const INT_ACTIVE_LOW = 0x04;
export const INT_SHARED = 0x08;

/** Interrupt(ResourceConsumer, Level|Edge, ActiveHigh|ActiveLow, Exclusive|Shared) {gsis}. */
export function resExtendedInterrupt(flags: number, gsis: readonly number[]): Aml {
  if (gsis.length < 1 || gsis.length > 255) throw new AmlError('Interrupt() takes 1-255 interrupts');
  const body: number[] = [flags, gsis.length];
  for (const g of gsis) {
    checkRange('GSI', g, 0xffff_ffff);
    body.push(...le32(g));
  }
  return Uint8Array.from([0x89, ...le16(body.length), ...body]);
}

/** ResourceTemplate(){descriptors}: a Buffer ending with the End Tag (checksum 0 = none). */
export function resourceTemplate(descriptors: readonly Aml[]): Aml {
  return buffer(concat([...descriptors, Uint8Array.of(0x79, 0x00)]));
}
