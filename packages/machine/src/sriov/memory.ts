// Guest memory as a device's DMA sees it, when the target can change: a VF's DMA goes to the
// VM that owns it (its host VM's RAM, or, once assigned, another VM's RAM through an IOMMU
// domain). Also the IOMMU view itself: a GuestMemory whose every access is translated by
// mmu-ept's Iommu for one requester ID, so a DMA outside the domain is refused (false / -1)
// and recorded as a fault, never performed.
import type { GuestMemory, Iommu } from '@ringzero/mmu-ept';

/** A GuestMemory that forwards to a replaceable target (nothing behind it: every access fails). */
export class RetargetableMemory implements GuestMemory {
  target: GuestMemory | null;
  constructor(target: GuestMemory | null) {
    this.target = target;
  }
  get limit(): number {
    return this.target?.limit ?? 0;
  }
  isRam(addr: number, length: number): boolean {
    return this.target?.isRam(addr, length) ?? false;
  }
  read8(addr: number): number {
    return this.target?.read8(addr) ?? -1;
  }
  read16(addr: number): number {
    return this.target?.read16(addr) ?? -1;
  }
  read32(addr: number): number {
    return this.target?.read32(addr) ?? -1;
  }
  read64(addr: number, out: Uint32Array, index: number): boolean {
    return this.target?.read64(addr, out, index) ?? false;
  }
  write8(addr: number, value: number): boolean {
    return this.target?.write8(addr, value) ?? false;
  }
  write16(addr: number, value: number): boolean {
    return this.target?.write16(addr, value) ?? false;
  }
  write32(addr: number, value: number): boolean {
    return this.target?.write32(addr, value) ?? false;
  }
  write64(addr: number, lo: number, hi: number): boolean {
    return this.target?.write64(addr, lo, hi) ?? false;
  }
  readInto(addr: number, dst: Uint8Array): boolean {
    return this.target?.readInto(addr, dst) ?? false;
  }
  writeFrom(addr: number, src: Uint8Array): boolean {
    return this.target?.writeFrom(addr, src) ?? false;
  }
  hostView(addr: number, length: number): Uint8Array | null {
    return this.target?.hostView(addr, length) ?? null;
  }
  markDirty(addr: number, length: number): void {
    this.target?.markDirty?.(addr, length);
  }
}

/**
 * DMA of one requester ID (bus << 8 | devfn) through an IOMMU: addresses are IOVAs of the
 * device's domain. No host views (every access is translated and checked page by page).
 */
export class IommuDmaMemory implements GuestMemory {
  readonly limit: number = 2 ** 48;
  private readonly b8 = new Uint8Array(8);
  constructor(
    private readonly iommu: Iommu,
    readonly sid: number,
  ) {}
  isRam(addr: number, length: number): boolean {
    if (!(length >= 0) || !Number.isSafeInteger(addr) || addr < 0) return false;
    // A device checking its buffer is the start of its DMA: a refused page is recorded as a fault.
    let ok = true;
    for (let a = addr - (addr % 4096); a < addr + length && ok; a += 4096) ok = this.iommu.translate(this.sid, a, false);
    return ok;
  }
  private rd(addr: number, n: number): number {
    const b = this.b8.subarray(0, n);
    if (!this.iommu.dmaRead(this.sid, addr, b)) return -1;
    let v = 0;
    for (let i = n - 1; i >= 0; i--) v = v * 256 + b[i];
    return v;
  }
  private wr(addr: number, n: number, v: number): boolean {
    const b = this.b8.subarray(0, n);
    for (let i = 0; i < n; i++) b[i] = (v >>> (8 * i)) & 0xff;
    return this.iommu.dmaWrite(this.sid, addr, b);
  }
  read8(addr: number): number {
    return this.rd(addr, 1);
  }
  read16(addr: number): number {
    return this.rd(addr, 2);
  }
  read32(addr: number): number {
    return this.rd(addr, 4);
  }
  read64(addr: number, out: Uint32Array, index: number): boolean {
    if (!this.iommu.dmaRead(this.sid, addr, this.b8)) return false;
    const b = this.b8;
    out[index] = (b[0] | (b[1] << 8) | (b[2] << 16) | (b[3] << 24)) >>> 0;
    out[index + 1] = (b[4] | (b[5] << 8) | (b[6] << 16) | (b[7] << 24)) >>> 0;
    return true;
  }
  write8(addr: number, value: number): boolean {
    return this.wr(addr, 1, value);
  }
  write16(addr: number, value: number): boolean {
    return this.wr(addr, 2, value);
  }
  write32(addr: number, value: number): boolean {
    return this.wr(addr, 4, value);
  }
  write64(addr: number, lo: number, hi: number): boolean {
    const b = this.b8;
    for (let i = 0; i < 4; i++) {
      b[i] = (lo >>> (8 * i)) & 0xff;
      b[i + 4] = (hi >>> (8 * i)) & 0xff;
    }
    return this.iommu.dmaWrite(this.sid, addr, b);
  }
  readInto(addr: number, dst: Uint8Array): boolean {
    return this.iommu.dmaRead(this.sid, addr, dst);
  }
  writeFrom(addr: number, src: Uint8Array): boolean {
    return this.iommu.dmaWrite(this.sid, addr, src);
  }
  hostView(): Uint8Array | null {
    return null;
  }
}
