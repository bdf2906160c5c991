/**
 * A VFIO-style container for one VM: an IOMMU (mmu-ept's VT-d model) over the VM's host memory
 * with one domain, into which IOVA ranges of the VM's RAM are mapped (VFIO_IOMMU_MAP_DMA: here
 * IOVA -> the host frames behind guest-physical addresses). Devices attached to the container
 * get a DMA view for their requester ID; a DMA to an address the domain does not map is refused
 * and recorded in the IOMMU's fault log.
 */
import { EPT_R, EPT_W, Iommu, IommuDomain, type AddressSpace, type DmaFault, type GuestMemory } from '@ringzero/mmu-ept';
import { IommuDmaMemory } from '../sriov/memory';

const PAGE = 4096;

/** Thrown for impossible map/unmap requests (host API misuse, never guest-caused). */
export class DmaMapError extends Error {
  override readonly name = 'DmaMapError';
}

export class IommuContainer {
  readonly iommu: Iommu;
  readonly domain: IommuDomain;
  private readonly sids = new Set<number>();

  constructor(
    readonly space: AddressSpace,
    domainId = 1,
  ) {
    this.iommu = new Iommu(space.host);
    this.domain = new IommuDomain(space.host, domainId);
  }

  /** Maps [iova, iova + size) to the VM's RAM at guest-physical `gpa` (page-aligned; RAM only). */
  mapDma(iova: number, size: number, gpa: number = iova, writable = true): void {
    if (iova % PAGE !== 0 || gpa % PAGE !== 0 || size % PAGE !== 0 || size <= 0) throw new DmaMapError('mapDma: iova, gpa and size must be whole pages');
    if (!this.space.isRam(gpa, size)) throw new DmaMapError(`mapDma: 0x${gpa.toString(16)}+0x${size.toString(16)} is not all RAM`);
    for (let off = 0; off < size; off += PAGE) {
      const frame = this.space.breakCow(gpa + off);
      if (frame < 0 || !this.domain.map(iova + off, frame, writable ? EPT_R | EPT_W : EPT_R)) throw new DmaMapError('mapDma: mapping failed');
    }
    if (this.domain.space == null && iova === gpa) this.domain.space = this.space;
  }

  /** Maps all of the VM's RAM at IOVA = GPA (what QEMU does for an assigned device). */
  mapAllRam(): void {
    if (!this.domain.mapGuestRam(this.space)) throw new DmaMapError('mapAllRam: mapping failed');
  }

  /** Unmaps [iova, iova + size). */
  unmapDma(iova: number, size: number): void {
    if (iova % PAGE !== 0 || size % PAGE !== 0) throw new DmaMapError('unmapDma: iova and size must be whole pages');
    for (let off = 0; off < size; off += PAGE) this.domain.unmap(iova + off);
  }

  /** The DMA view of requester `sid` (bus << 8 | devfn), whose context now points at the domain. */
  dmaFor(sid: number): GuestMemory {
    this.iommu.setContext((sid >> 8) & 0xff, sid & 0xff, this.domain);
    this.sids.add(sid);
    return new IommuDmaMemory(this.iommu, sid);
  }

  /** Removes requester `sid` from the domain (its DMA faults from now on). */
  release(sid: number): void {
    if (!this.sids.delete(sid)) return;
    this.iommu.setContext((sid >> 8) & 0xff, sid & 0xff, null);
  }

  /** The recorded DMA faults (taken: the log is emptied). */
  takeFaults(): DmaFault[] {
    return this.iommu.takeFaults();
  }
}
