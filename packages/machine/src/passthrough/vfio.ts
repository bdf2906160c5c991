/**
 * The back-end interface of device assignment, shaped like Linux VFIO (include/uapi/linux/vfio.h)
 * so that a VFIO-backed implementation (a Node addon opening /dev/vfio/N) could stand where the
 * emulated VF stands today:
 *
 *   regions     VFIO_DEVICE_GET_REGION_INFO + read/write at an offset, and mmap of the regions
 *               flagged MMAP (here: an MmioDevice the VMM maps straight into the guest's MMIO
 *               space, without going through its own emulation). Indexes as VFIO's: BAR0-5 = 0-5,
 *               ROM = 6, CONFIG = 7.
 *   interrupts  VFIO_DEVICE_SET_IRQS with an eventfd per MSI-X vector. Here one callback gets
 *               every MSI-X message the device sends (address and data as the guest programmed
 *               the device's MSI-X table); a VFIO back end would keep a shadow table and call
 *               it when vector n's eventfd fires.
 *   DMA         VFIO_IOMMU_MAP_DMA / UNMAP_DMA on a container: IOVA ranges mapped to guest RAM in
 *               an IOMMU domain; the device's DMA sees only what is mapped. `attachDma` gives the
 *               device the container's view for its requester ID.
 *   reset       VFIO_DEVICE_RESET (function-level reset): queues, interrupts and DMA state dropped.
 */
import type { GuestMemory } from '@ringzero/mmu-ept';
import type { MmioDevice } from '../bus/mmio';

export const VFIO_PCI_BAR0_REGION_INDEX = 0;
export const VFIO_PCI_BAR5_REGION_INDEX = 5;
export const VFIO_PCI_ROM_REGION_INDEX = 6;
export const VFIO_PCI_CONFIG_REGION_INDEX = 7;
export const VFIO_PCI_NUM_REGIONS = 9;
export const VFIO_PCI_INTX_IRQ_INDEX = 0;
export const VFIO_PCI_MSI_IRQ_INDEX = 1;
export const VFIO_PCI_MSIX_IRQ_INDEX = 2;

export const VFIO_REGION_INFO_FLAG_READ = 1;
export const VFIO_REGION_INFO_FLAG_WRITE = 2;
export const VFIO_REGION_INFO_FLAG_MMAP = 4;

/** VFIO_DEVICE_GET_REGION_INFO's answer. A region of size 0 does not exist. */
export interface PassthroughRegionInfo {
  readonly index: number;
  readonly size: number;
  readonly flags: number;
  /** For a BAR: 64-bit and prefetchable memory BAR (what its BAR register says). */
  readonly is64?: boolean;
  readonly prefetchable?: boolean;
}

/** One MSI-X message, as an eventfd-like callback receives it. */
export type PassthroughMsiHandler = (addressLo: number, addressHi: number, data: number) => void;

/** A device that can be assigned to a VM. */
export interface PassthroughDevice {
  readonly name: string;
  /** Bus << 8 | devfn of the device on the physical side (its IOMMU requester ID). */
  readonly requesterId: number;
  regionInfo(index: number): PassthroughRegionInfo;
  /** A read of `size` (1, 2, 4) bytes; unreadable bytes read as 0 (config: as the device virtualizes them). */
  regionRead(index: number, offset: number, size: number): number;
  regionWrite(index: number, offset: number, size: number, value: number): void;
  /** The handler to map a MMAP region straight into a guest's MMIO space, or null. */
  regionMmap(index: number): MmioDevice | null;
  /** Vectors of IRQ index `index` (VFIO_DEVICE_GET_IRQ_INFO's count). */
  irqCount(index: number): number;
  /** VFIO_DEVICE_SET_IRQS for MSI-X: where messages go (null: disabled, messages dropped). */
  setMsiHandler(handler: PassthroughMsiHandler | null): void;
  /** Points the device's DMA at a container's IOMMU view (null: every DMA fails). */
  attachDma(memory: GuestMemory | null): void;
  /** Function-level reset. */
  reset(): void;
}
