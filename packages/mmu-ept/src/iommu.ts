import type { AddressSpace } from './address-space';
import { Ept, EPT_OK, EPT_R, EPT_VIOLATION, EPT_W, PAGE_4K, QUAL_READ, QUAL_WRITE } from './ept';
import { FRAME_TABLE, type HostMemory } from './host-memory';

/*
 * DMA remapping in the style of Intel VT-d (legacy mode), with its tables in host frames:
 *
 *   root table (4 KiB, 256 x 16 bytes, indexed by PCI bus)
 *     lo: bit 0 present, bits 63:12 context-table pointer; bits 11:1 and the hi word reserved
 *   context table (4 KiB, 256 x 16 bytes, indexed by devfn)
 *     lo: bit 0 present, bit 1 fault processing disable, bits 3:2 translation type
 *         (0 = translate through second-level tables, 2 = pass-through), 11:4 reserved,
 *         63:12 second-level table pointer
 *     hi: bits 2:0 address width (2 = 48-bit / 4-level, 3 = 57-bit / 5-level), 23:8 domain id
 *   second-level tables: the EPT format and walker in VT-d mode (R = bit 0, W = bit 1, PS = bit 7;
 *     "present" is R or W).
 *
 * A DMA that cannot be translated is refused and recorded as a fault (source id, address,
 * reason, read/write) in a bounded log, never thrown. Reason codes as VT-d numbers them (the
 * same numbers QEMU's intel_iommu uses).
 */

export const VTD_FR_ROOT_ENTRY_P = 1;
export const VTD_FR_CONTEXT_ENTRY_P = 2;
export const VTD_FR_CONTEXT_ENTRY_INV = 3;
export const VTD_FR_ADDR_BEYOND_MGAW = 4;
export const VTD_FR_WRITE = 5;
export const VTD_FR_READ = 6;
export const VTD_FR_PAGING_ENTRY_INV = 7;
export const VTD_FR_ROOT_ENTRY_RSVD = 0xa;
export const VTD_FR_CONTEXT_ENTRY_RSVD = 0xb;
export const VTD_FR_PAGING_ENTRY_RSVD = 0xc;

export const VTD_TT_MULTI_LEVEL = 0;
export const VTD_TT_PASS_THROUGH = 2;

/** One recorded DMA fault. */
export interface DmaFault {
  /** Requester id: bus << 8 | devfn. */
  sid: number;
  /** Faulting DMA address (page-aligned, like the fault recording register). */
  addr: number;
  reason: number;
  write: boolean;
}

/** A DMA address space: second-level tables of one domain. */
export class IommuDomain {
  readonly id: number;
  readonly table: Ept;
  /** Address space whose RAM this domain maps at IOVA = GPA (set by mapGuestRam), for dirty marking. */
  space: AddressSpace | null = null;

  constructor(host: HostMemory, id: number, levels: 4 | 5 = 4) {
    if (!Number.isInteger(id) || id < 0 || id > 0xffff) throw new RangeError('IommuDomain: id must be 0..65535');
    this.id = id;
    this.table = new Ept(host, { levels, vtd: true });
  }

  /** Maps one page of IOVA space to a host frame with read and/or write rights. */
  map(iova: number, frame: number, perms: number = EPT_R | EPT_W): boolean {
    return this.table.map(iova, frame, PAGE_4K, perms & (EPT_R | EPT_W), 0);
  }

  unmap(iova: number): number {
    return this.table.unmap(iova);
  }

  /**
   * Maps every RAM page of a VM at IOVA = guest-physical address (what VFIO does for a device
   * assigned to the VM). Pages get private frames first. The hypervisor must not merge or
   * discard these pages while the device is assigned (real VFIO pins them); remap after it does.
   */
  mapGuestRam(space: AddressSpace): boolean {
    if (space.host !== this.table.host) throw new Error('mapGuestRam: different HostMemory');
    this.space = space;
    for (const r of space.regions()) {
      if (r.kind !== 'ram') continue;
      for (let a = r.start; a < r.start + r.size; a += PAGE_4K) {
        const f = space.breakCow(a);
        if (f < 0 || !this.map(a, f)) return false;
      }
    }
    return true;
  }
}

export class Iommu {
  readonly host: HostMemory;
  readonly rootFrame: number;
  /** Most fault records kept (older ones are dropped and counted in faultOverflow). */
  readonly maxFaults: number;
  readonly faults: DmaFault[] = [];
  faultOverflow = 0;
  /** Result of the last translate(): host frame of the page. */
  frame = -1;
  /** Fault reason of the last failed translate(). */
  reason = 0;

  private readonly walker: Ept;
  private readonly walker5: Ept;
  private readonly contextTables: number[] = [];
  private readonly domains = new Map<number, IommuDomain>();

  constructor(host: HostMemory, maxFaults = 256) {
    this.host = host;
    this.maxFaults = maxFaults;
    const r = host.alloc();
    if (r < 0) throw new RangeError('Iommu: host memory exhausted');
    host.flags[r] |= FRAME_TABLE;
    this.rootFrame = r;
    this.walker = new Ept(host, { levels: 4, vtd: true });
    this.walker5 = new Ept(host, { levels: 5, vtd: true });
  }

  /** Points device (bus, devfn) at a domain (or pass-through, or nothing when domain is null). */
  setContext(bus: number, devfn: number, domain: IommuDomain | null, options: { passThrough?: boolean; faultProcessingDisable?: boolean } = {}): void {
    if (!Number.isInteger(bus) || bus < 0 || bus > 255 || !Number.isInteger(devfn) || devfn < 0 || devfn > 255) throw new RangeError('setContext: bus and devfn are 0..255');
    const host = this.host;
    let ctx: number;
    const rlo = host.readU32(this.rootFrame, bus * 16);
    if ((rlo & 1) === 0) {
      ctx = host.alloc();
      if (ctx < 0) throw new RangeError('Iommu: host memory exhausted');
      host.flags[ctx] |= FRAME_TABLE;
      this.contextTables.push(ctx);
      host.writeU32(this.rootFrame, bus * 16, ((ctx % 0x10_0000) * 4096 + 1) >>> 0);
      host.writeU32(this.rootFrame, bus * 16 + 4, Math.floor(ctx / 0x10_0000));
    } else {
      ctx = (rlo >>> 12) + (host.readU32(this.rootFrame, bus * 16 + 4) & 0xfffff) * 0x10_0000;
    }
    const o = devfn * 16;
    if (domain == null && options.passThrough !== true) {
      for (let k = 0; k < 16; k += 4) host.writeU32(ctx, o + k, 0);
      return;
    }
    const fpd = options.faultProcessingDisable === true ? 2 : 0;
    if (options.passThrough === true) {
      host.writeU32(ctx, o, (1 | fpd | (VTD_TT_PASS_THROUGH << 2)) >>> 0);
      host.writeU32(ctx, o + 4, 0);
      host.writeU32(ctx, o + 8, 2 | ((domain?.id ?? 0) << 8));
      host.writeU32(ctx, o + 12, 0);
      return;
    }
    const d = domain as IommuDomain;
    this.domains.set(d.id, d);
    const root = d.table.rootFrame;
    host.writeU32(ctx, o, ((root % 0x10_0000) * 4096 + 1 + fpd) >>> 0);
    host.writeU32(ctx, o + 4, Math.floor(root / 0x10_0000));
    host.writeU32(ctx, o + 8, ((d.table.levels === 5 ? 3 : 2) | (d.id << 8)) >>> 0);
    host.writeU32(ctx, o + 12, 0);
  }

  /**
   * Translates one DMA access of device `sid` (bus << 8 | devfn) at `addr`. Returns true with
   * `frame` set, or false with `reason` set (and the fault recorded unless FPD is set).
   */
  translate(sid: number, addr: number, write: boolean): boolean {
    const host = this.host;
    const bus = (sid >>> 8) & 0xff;
    const devfn = sid & 0xff;
    if (!Number.isInteger(addr) || addr < 0 || addr >= 2 ** 57) return this.fault(sid, 0, VTD_FR_ADDR_BEYOND_MGAW, write, true);
    const rlo = host.readU32(this.rootFrame, bus * 16);
    const rhi = host.readU32(this.rootFrame, bus * 16 + 4);
    if ((rlo & 1) === 0) return this.fault(sid, addr, VTD_FR_ROOT_ENTRY_P, write, true);
    if ((rlo & 0xffe) !== 0 || (rhi & 0xfff0_0000) !== 0 || host.readU32(this.rootFrame, bus * 16 + 8) !== 0 || host.readU32(this.rootFrame, bus * 16 + 12) !== 0) {
      return this.fault(sid, addr, VTD_FR_ROOT_ENTRY_RSVD, write, true);
    }
    const ctx = (rlo >>> 12) + (rhi & 0xfffff) * 0x10_0000;
    if (ctx >= host.refs.length || host.refs[ctx] === 0) return this.fault(sid, addr, VTD_FR_CONTEXT_ENTRY_INV, write, true);
    const o = devfn * 16;
    const clo = host.readU32(ctx, o);
    const chi = host.readU32(ctx, o + 4);
    const c2 = host.readU32(ctx, o + 8);
    if ((clo & 1) === 0) return this.fault(sid, addr, VTD_FR_CONTEXT_ENTRY_P, write, true);
    const record = (clo & 2) === 0;
    if ((clo & 0xff0) !== 0 || (chi & 0xfff0_0000) !== 0 || host.readU32(ctx, o + 12) !== 0 || (c2 & 0xff00_0000) !== 0) {
      return this.fault(sid, addr, VTD_FR_CONTEXT_ENTRY_RSVD, write, record);
    }
    const tt = (clo >>> 2) & 3;
    if (tt === VTD_TT_PASS_THROUGH) {
      const f = Math.floor(addr / PAGE_4K);
      if (f >= host.refs.length || host.refs[f] === 0) return this.fault(sid, addr, write ? VTD_FR_WRITE : VTD_FR_READ, write, record);
      this.frame = f;
      return true;
    }
    if (tt !== VTD_TT_MULTI_LEVEL) return this.fault(sid, addr, VTD_FR_CONTEXT_ENTRY_INV, write, record);
    const aw = c2 & 7;
    if (aw !== 2 && aw !== 3) return this.fault(sid, addr, VTD_FR_CONTEXT_ENTRY_INV, write, record);
    if (!(addr >= 0) || addr >= 2 ** (aw === 2 ? 48 : 57)) return this.fault(sid, addr, VTD_FR_ADDR_BEYOND_MGAW, write, record);
    const root = (clo >>> 12) + (chi & 0xfffff) * 0x10_0000;
    if (root >= host.refs.length || host.refs[root] === 0) return this.fault(sid, addr, VTD_FR_CONTEXT_ENTRY_INV, write, record);
    const w = aw === 2 ? this.walker : this.walker5;
    const st = w.translateFrom(root, addr, write ? QUAL_WRITE : QUAL_READ, 0);
    if (st === EPT_OK) {
      this.frame = w.frame;
      return true;
    }
    return this.fault(sid, addr, st === EPT_VIOLATION ? (write ? VTD_FR_WRITE : VTD_FR_READ) : VTD_FR_PAGING_ENTRY_RSVD, write, record);
  }

  /** Device reads guest memory into dst; false (nothing copied past the fault) on a fault. */
  dmaRead(sid: number, addr: number, dst: Uint8Array): boolean {
    const host = this.host;
    if (!this.rangeOk(addr, dst.length)) return this.fault(sid, 0, VTD_FR_ADDR_BEYOND_MGAW, false, true);
    let done = 0;
    while (done < dst.length) {
      const a = addr + done;
      if (!this.translate(sid, a, false)) return false;
      const po = a % PAGE_4K;
      const n = Math.min(PAGE_4K - po, dst.length - done);
      const b = host.byteIndex(this.frame) + po;
      dst.set(host.u8[this.frame >>> host.chunkShift].subarray(b, b + n), done);
      done += n;
    }
    return true;
  }

  /** Device writes src to guest memory; every page is translated before any byte is written. */
  dmaWrite(sid: number, addr: number, src: Uint8Array): boolean {
    const host = this.host;
    if (!this.rangeOk(addr, src.length)) return this.fault(sid, 0, VTD_FR_ADDR_BEYOND_MGAW, true, true);
    for (let a = addr; a < addr + src.length; a = a - (a % PAGE_4K) + PAGE_4K) if (!this.translate(sid, a, true)) return false;
    let done = 0;
    while (done < src.length) {
      const a = addr + done;
      if (!this.translate(sid, a, true)) return false;
      const po = a % PAGE_4K;
      const n = Math.min(PAGE_4K - po, src.length - done);
      host.notifyWrite(this.frame);
      host.u8[this.frame >>> host.chunkShift].set(src.subarray(done, done + n), host.byteIndex(this.frame) + po);
      done += n;
    }
    const bus = (sid >>> 8) & 0xff;
    const ctxDid = this.domainOf(bus, sid & 0xff);
    if (ctxDid != null && ctxDid.space != null) ctxDid.space.markDirty(addr, src.length);
    return true;
  }

  private rangeOk(addr: number, length: number): boolean {
    return Number.isInteger(addr) && addr >= 0 && addr + length <= Number.MAX_SAFE_INTEGER;
  }

  /** Removes and returns the recorded faults. */
  takeFaults(): DmaFault[] {
    return this.faults.splice(0, this.faults.length);
  }

  private domainOf(bus: number, devfn: number): IommuDomain | null {
    const rlo = this.host.readU32(this.rootFrame, bus * 16);
    if ((rlo & 1) === 0) return null;
    const ctx = (rlo >>> 12) + (this.host.readU32(this.rootFrame, bus * 16 + 4) & 0xfffff) * 0x10_0000;
    const did = (this.host.readU32(ctx, devfn * 16 + 8) >>> 8) & 0xffff;
    return this.domains.get(did) ?? null;
  }

  private fault(sid: number, addr: number, reason: number, write: boolean, record: boolean): false {
    this.reason = reason;
    this.frame = -1;
    if (record) {
      if (this.faults.length >= this.maxFaults) {
        this.faults.shift();
        this.faultOverflow++;
      }
      const page = Number.isFinite(addr) && addr >= 0 ? addr - (addr % PAGE_4K) : 0;
      this.faults.push({ sid, addr: page, reason, write });
    }
    return false;
  }
}
