// The boundary between the platform's interrupt sources and the CPU's local APIC (in
// @ringzero/x86-core). Declared here, on the consumer side: the IOAPIC, PCI MSI and MSI-X emit
// through it, and the 8259 pair drives its INTR output through it. The local APIC implements it.

/**
 * Where platform interrupts go. MSIs are the x86 interrupt message: a 32-bit memory write of
 * `data` to `addressHi:addressLo` in the 0xFEExxxxx window (see `MSI_*` for the fields).
 */
export interface InterruptSink {
  /** An interrupt message (PCI MSI/MSI-X, or an IOAPIC redirection entry as a message). */
  deliverMsi(addressLo: number, addressHi: number, data: number): void;
  /**
   * The 8259's INTR output (to LINT0 in ExtINT mode, or the CPU's INTR pin with the APIC off).
   * The CPU takes the vector from `ExtIntController.acknowledge()` when it accepts.
   */
  setExtInt(level: boolean): void;
  /** A non-maskable interrupt (LINT1 / NMI pin). */
  deliverNmi(): void;
}

/** The INTA cycle: the 8259 pair implements it, the CPU or local APIC calls it. */
export interface ExtIntController {
  /** Acknowledge the highest-priority request; returns its vector (spurious IRQ 7/15 if none). */
  acknowledge(): number;
  /** Whether INTR is asserted now. */
  readonly intr: boolean;
}

/** The local APIC's EOI broadcast for level-triggered vectors: the IOAPIC implements it. */
export interface EoiTarget {
  endOfInterrupt(vector: number): void;
}

// MSI address (Intel SDM vol. 3, 11.11.1): 0xFEE[dest:8][rsvd:8][RH:1][DM:1][xx:2]
/** Base of the interrupt-message window. */
export const MSI_ADDRESS_BASE = 0xfee00000;
/** Destination ID field (bits 19:12). */
export const MSI_ADDR_DEST_SHIFT = 12;
/** Redirection hint (bit 3). */
export const MSI_ADDR_REDIRECTION_HINT: number = 1 << 3;
/** Destination mode: 1 = logical (bit 2). */
export const MSI_ADDR_DEST_LOGICAL: number = 1 << 2;
// MSI data: [trigger:1 (15)][level:1 (14)][rsvd:3][delivery mode:3 (10:8)][vector:8]
/** Delivery mode field shift (bits 10:8). */
export const MSI_DATA_DELIVERY_SHIFT = 8;
/** Level assert (bit 14; meaningful for level-triggered messages). */
export const MSI_DATA_LEVEL_ASSERT: number = 1 << 14;
/** Trigger mode: 1 = level (bit 15). */
export const MSI_DATA_TRIGGER_LEVEL: number = 1 << 15;

/** Delivery modes of an interrupt message or IOAPIC redirection entry. */
export const DELIVERY_FIXED = 0;
export const DELIVERY_LOWEST_PRIORITY = 1;
export const DELIVERY_SMI = 2;
export const DELIVERY_NMI = 4;
export const DELIVERY_INIT = 5;
export const DELIVERY_EXTINT = 7;

/** A decoded interrupt message; fill one with `decodeMsi` (reuse it: no allocation). */
export interface MsiMessage {
  /** True when the address lies in the 0xFEExxxxx window (otherwise it is an ordinary DMA write). */
  valid: boolean;
  destination: number;
  logical: boolean;
  redirectionHint: boolean;
  vector: number;
  deliveryMode: number;
  levelTriggered: boolean;
  assert: boolean;
}

/** A fresh MsiMessage to reuse with `decodeMsi`. */
export function newMsiMessage(): MsiMessage {
  return { valid: false, destination: 0, logical: false, redirectionHint: false, vector: 0, deliveryMode: 0, levelTriggered: false, assert: false };
}

/** Decodes an interrupt message into `out` (xAPIC format, 8-bit destination). */
export function decodeMsi(addressLo: number, addressHi: number, data: number, out: MsiMessage): MsiMessage {
  out.valid = addressHi === 0 && (addressLo & 0xfff00000) >>> 0 === MSI_ADDRESS_BASE;
  out.destination = (addressLo >>> MSI_ADDR_DEST_SHIFT) & 0xff;
  out.logical = (addressLo & MSI_ADDR_DEST_LOGICAL) !== 0;
  out.redirectionHint = (addressLo & MSI_ADDR_REDIRECTION_HINT) !== 0;
  out.vector = data & 0xff;
  out.deliveryMode = (data >>> MSI_DATA_DELIVERY_SHIFT) & 7;
  out.levelTriggered = (data & MSI_DATA_TRIGGER_LEVEL) !== 0;
  out.assert = (data & MSI_DATA_LEVEL_ASSERT) !== 0;
  return out;
}

/** The address of an interrupt message to `destination` (physical unless `logical`). */
export function msiAddress(destination: number, logical = false): number {
  return (MSI_ADDRESS_BASE | ((destination & 0xff) << MSI_ADDR_DEST_SHIFT) | (logical ? MSI_ADDR_DEST_LOGICAL : 0)) >>> 0;
}

/** The data of an interrupt message. */
export function msiData(vector: number, deliveryMode: number = DELIVERY_FIXED, levelTriggered = false, assert = true): number {
  return (vector & 0xff) | ((deliveryMode & 7) << MSI_DATA_DELIVERY_SHIFT) | (levelTriggered ? MSI_DATA_TRIGGER_LEVEL : 0) | (assert ? MSI_DATA_LEVEL_ASSERT : 0);
}
