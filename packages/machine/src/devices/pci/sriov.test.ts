import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import * as S from './sriov';

const bars: S.SriovBarSpec[] = [
  { index: 1, type: 'mem32', size: 0x1000 },
  { index: 4, type: 'mem64', size: 0x4000, prefetchable: true },
];

function make(opts: Partial<S.SriovCapabilityOptions> = {}): { cap: S.SriovCapability; changes: number[] } {
  const changes: number[] = [];
  const cap = new S.SriovCapability({ totalVfs: 4, vfDeviceId: 0x1041, bars, onChange: () => changes.push(cap.enabledVfs), ...opts });
  return { cap, changes };
}

/** Linux drivers/pci/iov.c sriov_init's BAR probe (__pci_read_base on a VF BAR): size of VF BAR i. */
function probeSize(cap: S.SriovCapability, i: number): number {
  const off = S.PCI_SRIOV_BAR + 4 * i;
  const orig = cap.read(off, 4);
  cap.write(off, 4, 0xffffffff);
  const lo = cap.read(off, 4);
  cap.write(off, 4, orig);
  let size = ~(lo & 0xfffffff0) + 1;
  if ((lo & 6) === 4) {
    const origHi = cap.read(off + 4, 4);
    cap.write(off + 4, 4, 0xffffffff);
    const hi = cap.read(off + 4, 4);
    cap.write(off + 4, 4, origHi);
    size = 2 ** 32 - ((lo & 0xfffffff0) >>> 0) + (0xffffffff - hi) * 2 ** 32;
  }
  return size >>> 0 === size ? size >>> 0 : size;
}

describe('SR-IOV capability registers (PCIe Base spec 9.3.3; Linux pci_regs.h offsets)', () => {
  it('reads as Linux sriov_init expects: header, TotalVFs, InitialVFs, VF Device ID, page sizes', () => {
    const { cap } = make();
    expect(cap.read(0, 4) & 0xffff).toBe(S.PCI_EXT_CAP_ID_SRIOV);
    expect((cap.read(0, 4) >>> 16) & 0xf).toBe(1);
    cap.setNext(0x140);
    expect(cap.read(0, 4) >>> 20).toBe(0x140);
    expect(cap.read(S.PCI_SRIOV_TOTAL_VF, 2)).toBe(4);
    expect(cap.read(S.PCI_SRIOV_INITIAL_VF, 2)).toBe(4);
    expect(cap.read(S.PCI_SRIOV_VF_DID, 2)).toBe(0x1041);
    expect(cap.read(S.PCI_SRIOV_SUP_PGSIZE, 4)).toBe(0x553);
    expect(cap.read(S.PCI_SRIOV_SYS_PGSIZE, 4)).toBe(1); // 4 KiB
    expect(cap.read(S.PCI_SRIOV_CTRL, 2)).toBe(0);
    expect(cap.read(S.PCI_SRIOV_NUM_VF, 2)).toBe(0);
  });

  it('sizes VF BARs like BARs (per-VF size), keeps type bits, and places VF n at base + n x size', () => {
    const { cap } = make();
    expect(probeSize(cap, 1)).toBe(0x1000);
    expect(probeSize(cap, 4)).toBe(0x4000);
    expect(cap.read(S.PCI_SRIOV_BAR + 16, 4) & 0xf).toBe(0xc); // 64-bit prefetchable
    expect(cap.read(S.PCI_SRIOV_BAR, 4)).toBe(0); // no BAR0: reads zero, ignores writes
    cap.write(S.PCI_SRIOV_BAR, 4, 0xffffffff);
    expect(cap.read(S.PCI_SRIOV_BAR, 4)).toBe(0);
    cap.write(S.PCI_SRIOV_BAR + 4, 4, 0xd0000000);
    cap.write(S.PCI_SRIOV_BAR + 16, 4, 0xd0100000);
    cap.write(S.PCI_SRIOV_BAR + 20, 4, 0);
    cap.write(S.PCI_SRIOV_NUM_VF, 2, 3);
    expect(cap.vfBarAddress(0, 1)).toBe(-1); // VFs off
    cap.write(S.PCI_SRIOV_CTRL, 2, S.PCI_SRIOV_CTRL_VFE | S.PCI_SRIOV_CTRL_MSE);
    expect(cap.enabledVfs).toBe(3);
    expect(cap.vfBarAddress(0, 1)).toBe(0xd0000000);
    expect(cap.vfBarAddress(2, 1)).toBe(0xd0002000);
    expect(cap.vfBarAddress(2, 4)).toBe(0xd0108000);
    expect(cap.vfBarAddress(3, 4)).toBe(-1); // only 3 VFs
  });

  it('follows Linux: System Page Size gets the smallest supported size; a bigger page grows the VF BARs', () => {
    const { cap } = make();
    // sriov_init: pgsz = SUP_PGSIZE & ~(PAGE_SIZE/4K - 1); pgsz &= ~(pgsz - 1); write it.
    let pgsz = cap.read(S.PCI_SRIOV_SUP_PGSIZE, 4);
    pgsz &= ~(pgsz - 1);
    cap.write(S.PCI_SRIOV_SYS_PGSIZE, 4, pgsz);
    expect(cap.systemPageSize).toBe(4096);
    cap.write(S.PCI_SRIOV_SYS_PGSIZE, 4, 0x10); // 64 KiB
    expect(cap.systemPageSize).toBe(65536);
    expect(probeSize(cap, 1)).toBe(65536);
    cap.write(S.PCI_SRIOV_SYS_PGSIZE, 4, 0x6); // two bits: refused, falls back to 4 KiB
    expect(cap.systemPageSize).toBe(4096);
    cap.write(S.PCI_SRIOV_SYS_PGSIZE, 4, 0x4); // 16 KiB is not supported (0x553)
    expect(cap.systemPageSize).toBe(4096);
    expect(cap.ignoredWrites).toBe(2);
  });

  it('recomputes First VF Offset and VF Stride when NumVFs or ARI change (compute_max_vf_buses)', () => {
    const calls: [number, boolean][] = [];
    const { cap } = make({
      totalVfs: 8,
      routing: (n, ari) => {
        calls.push([n, ari]);
        return ari ? { offset: 8, stride: 1 } : { offset: n > 4 ? 16 : 1, stride: n > 4 ? 8 : 1 };
      },
    });
    const seen: [number, number, number][] = [];
    for (let n = 8; n >= 1; n--) {
      cap.write(S.PCI_SRIOV_NUM_VF, 2, n);
      seen.push([n, cap.read(S.PCI_SRIOV_VF_OFFSET, 2), cap.read(S.PCI_SRIOV_VF_STRIDE, 2)]);
    }
    expect(seen[0]).toEqual([8, 16, 8]);
    expect(seen[7]).toEqual([1, 1, 1]);
    cap.write(S.PCI_SRIOV_CTRL, 2, S.PCI_SRIOV_CTRL_ARI);
    expect(cap.firstVfOffset).toBe(8);
    expect(calls.at(-1)).toEqual([1, true]);
    cap.write(S.PCI_SRIOV_NUM_VF, 2, 2);
    cap.write(S.PCI_SRIOV_CTRL, 2, S.PCI_SRIOV_CTRL_ARI | S.PCI_SRIOV_CTRL_VFE);
    expect(cap.vfRoutingOffset(1)).toBe(9);
  });

  it('hostile: NumVFs above TotalVFs enables TotalVFs; NumVFs is frozen while enabled; VF Enable without MSE decodes nothing', () => {
    const { cap, changes } = make();
    cap.write(S.PCI_SRIOV_NUM_VF, 2, 500);
    expect(cap.numVfsRegister).toBe(500);
    expect(cap.ignoredWrites).toBe(1);
    cap.write(S.PCI_SRIOV_BAR + 4, 4, 0xd0000000);
    cap.write(S.PCI_SRIOV_CTRL, 2, S.PCI_SRIOV_CTRL_VFE);
    expect(cap.enabledVfs).toBe(4);
    expect(cap.vfBarAddress(0, 1)).toBe(-1); // no VF MSE
    cap.write(S.PCI_SRIOV_NUM_VF, 2, 1);
    expect(cap.numVfsRegister).toBe(500);
    cap.write(S.PCI_SRIOV_SYS_PGSIZE, 4, 0x10);
    expect(cap.systemPageSize).toBe(4096);
    cap.write(S.PCI_SRIOV_CTRL, 2, 0);
    expect(cap.enabledVfs).toBe(0);
    expect(changes.at(-1)).toBe(0);
    // Read-only fields keep their values.
    cap.write(S.PCI_SRIOV_TOTAL_VF, 2, 0xffff);
    cap.write(S.PCI_SRIOV_VF_DID, 2, 0);
    cap.write(S.PCI_SRIOV_VF_OFFSET, 4, 0);
    expect(cap.totalVfs).toBe(4);
    expect(cap.read(S.PCI_SRIOV_TOTAL_VF, 2)).toBe(4);
    expect(cap.read(S.PCI_SRIOV_VF_DID, 2)).toBe(0x1041);
    expect(cap.read(S.PCI_SRIOV_VF_OFFSET, 2)).toBe(1);
  });

  it('rejects impossible descriptions', () => {
    expect(() => make({ totalVfs: 0 })).toThrow(S.SriovConfigError);
    expect(() => make({ initialVfs: 9 })).toThrow(S.SriovConfigError);
    expect(() => make({ bars: [{ index: 5, type: 'mem64', size: 4096 }] })).toThrow(S.SriovConfigError);
    expect(() => make({ bars: [{ index: 0, type: 'mem32', size: 100 }] })).toThrow(S.SriovConfigError);
  });

  it('saves and loads the guest-writable state (validated)', () => {
    const { cap } = make();
    cap.write(S.PCI_SRIOV_BAR + 4, 4, 0xd0000000);
    cap.write(S.PCI_SRIOV_NUM_VF, 2, 2);
    cap.write(S.PCI_SRIOV_CTRL, 2, 9);
    const st = JSON.parse(JSON.stringify(cap.saveState())) as unknown;
    const { cap: b, changes } = make();
    b.loadState(st);
    expect(b.enabledVfs).toBe(2);
    expect(b.vfBarAddress(1, 1)).toBe(0xd0001000);
    expect(changes).toEqual([2]);
    expect(() => b.loadState({ ...(st as object), systemPageSize: 3 })).toThrow();
    expect(() => b.loadState({ version: 2 })).toThrow();
  });

  it('fuzz: any sequence of config writes keeps the invariants (bounded)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ off: fc.integer({ min: -4, max: 0x44 }), size: fc.constantFrom(1, 2, 4, 3), value: fc.integer({ min: 0, max: 0xffffffff }) }), { maxLength: 40 }),
        (writes) => {
          const { cap } = make();
          for (const w of writes) {
            cap.write(w.off, w.size, w.value);
            expect(cap.enabledVfs).toBeLessThanOrEqual(4);
            expect(cap.read(S.PCI_SRIOV_TOTAL_VF, 2)).toBe(4);
            expect(cap.read(S.PCI_SRIOV_VF_DID, 2)).toBe(0x1041);
            const sps = cap.read(S.PCI_SRIOV_SYS_PGSIZE, 4);
            expect(sps & (sps - 1)).toBe(0);
            expect(sps & 0x553).toBe(sps);
            for (let vf = 0; vf < 4; vf++) {
              const a = cap.vfBarAddress(vf, 4);
              if (a >= 0) expect(a % cap.vfBarSize(4)).toBe(0);
            }
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});
