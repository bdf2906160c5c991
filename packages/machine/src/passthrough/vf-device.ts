/**
 * The emulated VF as a PassthroughDevice (what vfio-pci would expose for a physical VF): its BARs
 * as mmap-able regions, its config space as region 7 with the vendor and device ID filled in
 * (a VF reads 0xFFFF there; vfio-pci virtualizes them the same way), MSI-X messages to a
 * handler, DMA through the view it is given, and function-level reset.
 */
import type { GuestMemory } from '@ringzero/mmu-ept';
import type { MmioDevice } from '../bus/mmio';
import type { VirtioNetVf } from '../sriov/virtio-net-sriov';
import {
  VFIO_PCI_CONFIG_REGION_INDEX,
  VFIO_PCI_MSIX_IRQ_INDEX,
  VFIO_REGION_INFO_FLAG_MMAP,
  VFIO_REGION_INFO_FLAG_READ,
  VFIO_REGION_INFO_FLAG_WRITE,
  type PassthroughDevice,
  type PassthroughMsiHandler,
  type PassthroughRegionInfo,
} from './vfio';

const NO_REGION = (index: number): PassthroughRegionInfo => ({ index, size: 0, flags: 0 });

export class VfPassthroughDevice implements PassthroughDevice {
  readonly name: string;
  readonly requesterId: number;
  private readonly maps = new Map<number, MmioDevice>();

  constructor(
    readonly vf: VirtioNetVf,
    private readonly vendorId: number,
    private readonly deviceId: number,
    name?: string,
  ) {
    this.name = name ?? `vf${vf.index}`;
    this.requesterId = vf.routingId;
    for (const b of vf.transport.bars) {
      const index = b.index;
      this.maps.set(index, {
        mmioRead: (o: number, s: number): number => vf.transport.barRead(index, o, s),
        mmioWrite: (o: number, s: number, v: number): void => vf.transport.barWrite(index, o, s, v),
      });
    }
  }

  regionInfo(index: number): PassthroughRegionInfo {
    if (index === VFIO_PCI_CONFIG_REGION_INDEX) return { index, size: 4096, flags: VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE };
    const b = this.vf.transport.bars.find((x) => x.index === index);
    if (b === undefined) return NO_REGION(index);
    return { index, size: b.size, flags: VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE | VFIO_REGION_INFO_FLAG_MMAP, is64: b.is64, prefetchable: b.prefetchable };
  }

  regionRead(index: number, offset: number, size: number): number {
    if (index === VFIO_PCI_CONFIG_REGION_INDEX) {
      let v = this.vf.overlay.read(offset, size);
      // Vendor and device ID as the PF's VF Device ID says (a VF itself reads 0xFFFF).
      for (let i = 0; i < size; i++) {
        const o = offset + i;
        if (o < 4) {
          const id = o < 2 ? this.vendorId : this.deviceId;
          const byte = (id >>> (8 * (o & 1))) & 0xff;
          v = ((v & ~(0xff << (8 * i))) | (byte << (8 * i))) >>> 0;
        }
      }
      return v;
    }
    const m = this.maps.get(index);
    return m === undefined ? 0 : m.mmioRead(offset, size);
  }

  regionWrite(index: number, offset: number, size: number, value: number): void {
    if (index === VFIO_PCI_CONFIG_REGION_INDEX) return this.vf.overlay.write(offset, size, value);
    this.maps.get(index)?.mmioWrite(offset, size, value);
  }

  regionMmap(index: number): MmioDevice | null {
    return this.maps.get(index) ?? null;
  }

  irqCount(index: number): number {
    return index === VFIO_PCI_MSIX_IRQ_INDEX ? this.vf.transport.msixVectors : 0;
  }

  setMsiHandler(handler: PassthroughMsiHandler | null): void {
    this.vf.msi = handler;
  }

  attachDma(memory: GuestMemory | null): void {
    this.vf.setDma(memory);
  }

  reset(): void {
    const t = this.vf.transport;
    t.core.reset();
    t.configWrite(0x04, 2, 0); // command: bus mastering off
    const msix = findCap(t, 0x11);
    if (msix !== 0) t.configWrite(msix + 2, 2, 0); // MSI-X off
    for (let v = 0; v < t.msixVectors; v++) {
      t.msixTable.fill(0, 4 * v, 4 * v + 3);
      t.msixTable[4 * v + 3] = 1;
    }
    t.msixPba.fill(0);
  }
}

function findCap(t: { configRead(o: number, s: number): number }, id: number): number {
  let p = t.configRead(0x34, 1);
  for (let guard = 0; p !== 0 && guard < 48; guard++) {
    if (t.configRead(p, 1) === id) return p;
    p = t.configRead(p + 1, 1);
  }
  return 0;
}
