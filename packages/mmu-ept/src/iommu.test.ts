import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  AddressSpace,
  EPT_R,
  HostMemory,
  Iommu,
  IommuDomain,
  VTD_FR_ADDR_BEYOND_MGAW,
  VTD_FR_CONTEXT_ENTRY_P,
  VTD_FR_CONTEXT_ENTRY_RSVD,
  VTD_FR_READ,
  VTD_FR_ROOT_ENTRY_P,
  VTD_FR_WRITE,
} from './index';

const MiB = 2 ** 20;
const sid = (bus: number, dev: number, fn: number) => (bus << 8) | (dev << 3) | fn;

function twoVms() {
  const host = new HostMemory();
  const a = new AddressSpace(host);
  const b = new AddressSpace(host);
  a.addRam(0, 4 * MiB);
  b.addRam(0, 4 * MiB);
  const iommu = new Iommu(host);
  const domA = new IommuDomain(host, 1);
  expect(domA.mapGuestRam(a)).toBe(true);
  const nic = sid(0, 3, 0);
  iommu.setContext(0, 3 << 3, domA);
  return { host, a, b, iommu, domA, nic };
}

describe('VT-d style DMA remapping', () => {
  it('writes root and context entries in the VT-d layout', () => {
    const { host, iommu, domA } = twoVms();
    const rlo = host.readU32(iommu.rootFrame, 0);
    expect(rlo & 0xfff).toBe(1);
    const ctx = rlo >>> 12;
    const o = (3 << 3) * 16;
    expect(host.readU32(ctx, o)).toBe(((domA.table.rootFrame << 12) | 1) >>> 0); // P, TT = 0
    expect(host.readU32(ctx, o + 8)).toBe(2 | (1 << 8)); // AW = 48-bit, domain 1
  });

  it('an assigned device reaches its VM memory, with dirty marking, and nothing else', () => {
    const { a, b, iommu, nic } = twoVms();
    b.write32(0x1000, 0x5ec2e7);
    const slotA = a.slotAt(0);
    a.enableDirtyLog(slotA);
    expect(iommu.dmaWrite(nic, 0x1ffe, new Uint8Array([1, 2, 3, 4]))).toBe(true);
    expect(a.read32(0x1ffe)).toBe(0x04030201);
    expect(b.read32(0x1ffe)).toBe(0);
    const bits = new Uint32Array(32);
    expect(a.getDirtyLog(slotA, bits)).toBe(2);
    const buf = new Uint8Array(4);
    expect(iommu.dmaRead(nic, 0x1000, buf)).toBe(true);
    expect(buf).toEqual(new Uint8Array(4)); // A's page, not B's secret
    // Outside A's RAM: refused and recorded.
    expect(iommu.dmaRead(nic, 4 * MiB, buf)).toBe(false);
    expect(iommu.dmaWrite(nic, 4 * MiB - 2, new Uint8Array(4))).toBe(false);
    expect(a.read16(4 * MiB - 2)).toBe(0); // all-or-nothing
    expect(iommu.takeFaults()).toEqual([
      { sid: nic, addr: 4 * MiB, reason: VTD_FR_READ, write: false },
      { sid: nic, addr: 4 * MiB, reason: VTD_FR_WRITE, write: true },
    ]);
  });

  it('records the VT-d fault reasons for missing root, context, width and rights', () => {
    const { iommu, domA, nic } = twoVms();
    const buf = new Uint8Array(1);
    expect(iommu.dmaRead(sid(5, 0, 0), 0, buf)).toBe(false);
    expect(iommu.reason).toBe(VTD_FR_ROOT_ENTRY_P);
    expect(iommu.dmaRead(sid(0, 4, 0), 0, buf)).toBe(false);
    expect(iommu.reason).toBe(VTD_FR_CONTEXT_ENTRY_P);
    expect(iommu.dmaRead(nic, 2 ** 48, buf)).toBe(false);
    expect(iommu.reason).toBe(VTD_FR_ADDR_BEYOND_MGAW);
    domA.map(0x3000, domA.table.host.alloc(), EPT_R);
    expect(iommu.dmaWrite(nic, 0x3000, buf)).toBe(false);
    expect(iommu.reason).toBe(VTD_FR_WRITE);
    expect(iommu.dmaRead(nic, 0x3000, buf)).toBe(true);
    // Reserved bits in the context entry.
    const ctx = iommu.host.readU32(iommu.rootFrame, 0) >>> 12;
    iommu.host.writeU32(ctx, (3 << 3) * 16, iommu.host.readU32(ctx, (3 << 3) * 16) | 0x10);
    expect(iommu.dmaRead(nic, 0, buf)).toBe(false);
    expect(iommu.reason).toBe(VTD_FR_CONTEXT_ENTRY_RSVD);
    // Fault processing disable: refused but not recorded.
    iommu.takeFaults();
    iommu.setContext(0, 4 << 3, domA, { faultProcessingDisable: true });
    expect(iommu.dmaRead(sid(0, 4, 0), 8 * MiB, buf)).toBe(false);
    expect(iommu.faults.length).toBe(0);
  });

  it('keeps a bounded fault log and never throws on hostile DMA addresses', () => {
    const { iommu, nic } = twoVms();
    iommu.setContext(0, 5 << 3, null, { passThrough: true });
    const pt = sid(0, 5, 0);
    const one = new Uint8Array(1);
    expect(iommu.dmaRead(pt, 4096 * 3, one)).toBe(true); // pass-through: host-physical frames
    fc.assert(
      fc.property(fc.oneof(fc.double(), fc.integer(), fc.constant(2 ** 60)), fc.integer({ min: 0, max: 0xffff }), (addr, s) => {
        const buf = new Uint8Array(3);
        expect(() => iommu.dmaRead(s, addr, buf)).not.toThrow();
        expect(() => iommu.dmaRead(nic, addr, buf)).not.toThrow();
        expect(() => iommu.dmaWrite(pt, addr, buf)).not.toThrow();
      }),
      { numRuns: 400 },
    );
    expect(iommu.faults.length).toBeLessThanOrEqual(256);
    expect(iommu.faultOverflow).toBeGreaterThan(0);
  });
});
