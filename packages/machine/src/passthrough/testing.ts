// A test double of PassthroughDevice: plain byte regions, a config region with a type-0 header,
// recorded MSI handler and DMA view, and helpers to make the "device" signal and DMA.
import type { GuestMemory } from '@ringzero/mmu-ept';
import type { MmioDevice } from '../bus/mmio';
import { VFIO_PCI_CONFIG_REGION_INDEX, VFIO_PCI_MSIX_IRQ_INDEX, VFIO_REGION_INFO_FLAG_MMAP, VFIO_REGION_INFO_FLAG_READ, VFIO_REGION_INFO_FLAG_WRITE, type PassthroughDevice, type PassthroughMsiHandler, type PassthroughRegionInfo } from './vfio';

/** Options of the fake device. */
export interface FakePassthroughOptions {
  vendorId?: number;
  deviceId?: number;
  requesterId?: number;
  /** BARs: index -> size (memory BARs; 64-bit when `is64`). */
  bars?: readonly { index: number; size: number; is64?: boolean; mmap?: boolean }[];
  msixVectors?: number;
}

/** A fake assignable device with byte-array regions. */
export class FakePassthroughDevice implements PassthroughDevice {
  readonly name: string = 'fake-passthrough';
  readonly requesterId: number;
  readonly regions: Map<number, Uint8Array> = new Map<number, Uint8Array>();
  readonly config: Uint8Array = new Uint8Array(4096);
  msiHandler: PassthroughMsiHandler | null = null;
  dma: GuestMemory | null = null;
  resets = 0;
  private readonly bars: readonly { index: number; size: number; is64?: boolean; mmap?: boolean }[];
  private readonly vectors: number;

  constructor(options: FakePassthroughOptions = {}) {
    this.requesterId = options.requesterId ?? 0x0108;
    this.bars = options.bars ?? [{ index: 0, size: 0x1000 }];
    this.vectors = options.msixVectors ?? 4;
    for (const b of this.bars) this.regions.set(b.index, new Uint8Array(b.size));
    const v = options.vendorId ?? 0x8086;
    const d = options.deviceId ?? 0x10ed;
    this.config.set([v & 0xff, v >> 8, d & 0xff, d >> 8], 0);
    this.config[0x0b] = 0x02; // network controller
  }

  regionInfo(index: number): PassthroughRegionInfo {
    if (index === VFIO_PCI_CONFIG_REGION_INDEX) return { index, size: 4096, flags: VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE };
    const b = this.bars.find((x) => x.index === index);
    if (b === undefined) return { index, size: 0, flags: 0 };
    return { index, size: b.size, flags: VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE | (b.mmap === false ? 0 : VFIO_REGION_INFO_FLAG_MMAP), is64: b.is64 === true };
  }

  private bytesOf(index: number): Uint8Array | undefined {
    return index === VFIO_PCI_CONFIG_REGION_INDEX ? this.config : this.regions.get(index);
  }

  regionRead(index: number, offset: number, size: number): number {
    const r = this.bytesOf(index);
    if (r === undefined || offset < 0 || offset + size > r.length) return 0;
    let v = 0;
    for (let i = 0; i < size; i++) v |= r[offset + i] << (8 * i);
    return v >>> 0;
  }

  regionWrite(index: number, offset: number, size: number, value: number): void {
    const r = this.bytesOf(index);
    if (r === undefined || offset < 0 || offset + size > r.length) return;
    if (index === VFIO_PCI_CONFIG_REGION_INDEX && offset < 4) return; // IDs are read-only
    for (let i = 0; i < size; i++) r[offset + i] = (value >>> (8 * i)) & 0xff;
  }

  regionMmap(index: number): MmioDevice | null {
    if ((this.regionInfo(index).flags & VFIO_REGION_INFO_FLAG_MMAP) === 0) return null;
    return { mmioRead: (o: number, s: number): number => this.regionRead(index, o, s), mmioWrite: (o: number, s: number, v: number): void => this.regionWrite(index, o, s, v) };
  }

  irqCount(index: number): number {
    return index === VFIO_PCI_MSIX_IRQ_INDEX ? this.vectors : 0;
  }

  setMsiHandler(handler: PassthroughMsiHandler | null): void {
    this.msiHandler = handler;
  }

  attachDma(memory: GuestMemory | null): void {
    this.dma = memory;
  }

  reset(): void {
    this.resets++;
  }

  /** The device sends an MSI-X message (dropped while no handler is set). Returns whether it went anywhere. */
  signal(addressLo: number, addressHi: number, data: number): boolean {
    if (this.msiHandler == null) return false;
    this.msiHandler(addressLo, addressHi, data);
    return true;
  }

  /** The device writes `bytes` at IOVA `addr` (false when refused). */
  dmaWrite(addr: number, bytes: Uint8Array): boolean {
    return this.dma?.writeFrom(addr, bytes) ?? false;
  }
}
