// Virtio 1.x numbers (virtio-spec v1.2, content.tex / split-ring.tex / packed-ring.tex).
// Numeric consts, not enums: they inline and cost nothing on hot paths.

// Device status register bits.
export const STATUS_ACKNOWLEDGE = 1;
export const STATUS_DRIVER = 2;
export const STATUS_DRIVER_OK = 4;
export const STATUS_FEATURES_OK = 8;
export const STATUS_NEEDS_RESET = 64;
export const STATUS_FAILED = 128;

// Device IDs.
export const DEVICE_ID_NET = 1;
export const DEVICE_ID_BLOCK = 2;
export const DEVICE_ID_CONSOLE = 3;
export const DEVICE_ID_RNG = 4;

// Transport/ring feature bits. Bits 0..31 live in the "lo" word, bits 32..63 in the "hi" word
// (bit b of hi = feature 32 + b). Each constant below is the bit's mask inside its word.
/** lo word, bit 27: legacy only (implied by VERSION_1): any descriptor layout is accepted. */
export const F_ANY_LAYOUT = 0x0800_0000;
/** lo word, bit 28 */
export const F_INDIRECT_DESC = 0x1000_0000;
/** lo word, bit 29 */
export const F_EVENT_IDX = 0x2000_0000;
/** hi word, bit 0 (feature 32) */
export const F_HI_VERSION_1 = 0x1;
/** hi word, bit 1 (feature 33) */
export const F_HI_ACCESS_PLATFORM = 0x2;
/** hi word, bit 2 (feature 34) */
export const F_HI_RING_PACKED = 0x4;
/** hi word, bit 3 (feature 35) */
export const F_HI_IN_ORDER = 0x8;
/** hi word, bit 5 (feature 37, PCI only): the device is an SR-IOV physical function. */
export const F_HI_SR_IOV = 0x20;

// Split ring descriptor flags (le16 flags of struct virtq_desc).
export const VIRTQ_DESC_F_NEXT = 1;
export const VIRTQ_DESC_F_WRITE = 2;
export const VIRTQ_DESC_F_INDIRECT = 4;
// Packed ring descriptor flags: AVAIL bit 7, USED bit 15 (plus NEXT/WRITE/INDIRECT above).
export const VIRTQ_DESC_F_AVAIL = 0x80;
export const VIRTQ_DESC_F_USED = 0x8000;

// Split ring avail.flags / used.flags.
export const VIRTQ_AVAIL_F_NO_INTERRUPT = 1;
export const VIRTQ_USED_F_NO_NOTIFY = 1;

// Packed ring event suppression flags (struct pvirtq_event_suppress.flags).
export const RING_EVENT_FLAGS_ENABLE = 0;
export const RING_EVENT_FLAGS_DISABLE = 1;
export const RING_EVENT_FLAGS_DESC = 2;

/** Largest split queue size the spec allows; this package never offers more than MAX_QUEUE_SIZE. */
export const SPEC_MAX_QUEUE_SIZE = 32768;
/**
 * Largest queue size a device of this package offers. It also bounds every descriptor chain
 * (direct or through an indirect table), so the host memory a hostile guest can make us hold
 * is bounded by queueSize x in-flight chains x 13 bytes.
 */
export const MAX_QUEUE_SIZE = 1024;

/** MSI-X "no vector". */
export const NO_VECTOR = 0xffff;

// Interrupt status / ISR bits (virtio-mmio InterruptStatus, virtio-pci ISR).
export const ISR_QUEUE = 1;
export const ISR_CONFIG = 2;
