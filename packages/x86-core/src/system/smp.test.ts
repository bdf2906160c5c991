/**
 * Smp's IPI routing (the kernels test boots APs under QEMU -smp 3 with the same transcript):
 * destinations (physical, broadcast, shorthands, flat logical), delivery modes (fixed, NMI,
 * INIT with its level de-assert ignored, SIPI only for a vCPU waiting for one).
 */
import { describe, expect, it } from 'vitest';
import { AddressSpace, HostMemory } from '@ringzero/mmu-ept';
import { EXIT_HLT } from '../constants';
import { Smp } from './smp';

function smp(n: number): Smp {
  const space = new AddressSpace(new HostMemory());
  space.addRam(0, 1 << 20);
  return new Smp(space, n);
}

describe('Smp', () => {
  it('the BSP runs, the APs wait for a SIPI; APIC IDs and BSP flags', () => {
    const s = smp(3);
    expect(s.vcpus.map((v) => v.apic.id)).toEqual([0, 1, 2]);
    expect(s.vcpus.map((v) => (v.apic.baseMsr & 0x100) !== 0)).toEqual([true, false, false]);
    expect(s.vcpus.map((v) => v.waitingForSipi)).toEqual([false, true, true]);
    expect(s.vcpus[1].run(100)).toBe(EXIT_HLT);
    expect(s.vcpus[1].cpu.retired).toBe(0);
  });

  it('routes fixed IPIs by physical ID, broadcast, shorthand and flat logical destination', () => {
    const s = smp(4);
    for (const v of s.vcpus) v.apic.writeReg(0xf0, 0x1ff); // software-enable
    const irr = (): boolean[] => s.vcpus.map((v) => v.apic.hasIrr());
    const clear = (): void => {
      for (const v of s.vcpus) v.apic.reset();
      for (const v of s.vcpus) v.apic.writeReg(0xf0, 0x1ff);
    };
    s.route(0, 0x4041, 2 << 24); // physical, APIC ID 2
    expect(irr()).toEqual([false, false, true, false]);
    clear();
    s.route(1, 0x4041, 0xff << 24); // physical broadcast (its own APIC delivers to the source itself)
    expect(irr()).toEqual([true, false, true, true]);
    clear();
    s.route(3, 0xc4041, 0); // shorthand: all excluding self
    expect(irr()).toEqual([true, true, true, false]);
    clear();
    s.vcpus[1].apic.writeReg(0xd0, 0x02000000); // LDR: logical ID bit 1
    s.vcpus[2].apic.writeReg(0xd0, 0x04000000);
    s.vcpus[3].apic.writeReg(0xd0, 0x08000000);
    s.route(0, 0x4841, 0x0a << 24); // logical, flat: bits 1 and 3
    expect(irr()).toEqual([false, true, false, true]);
    expect(s.ipis).toBe(9);
    clear();
    s.route(0, 0x4141, 0xff << 24); // lowest priority to all: exactly one target
    expect(irr()).toEqual([false, true, false, false]);
  });

  it('NMI, INIT (level de-assert ignored) and SIPI (only when waiting)', () => {
    const s = smp(2);
    const ap = s.vcpus[1];
    s.route(0, 0x4600 | 0x12, 1 << 24); // SIPI to the waiting AP: starts at 1200:0000
    expect(ap.run(1)).not.toBe(-1);
    expect(ap.waitingForSipi).toBe(false);
    expect(ap.getSregs().cs.selector).toBe(0x1200);
    s.route(0, 0x4600 | 0x34, 1 << 24); // a running AP ignores a SIPI
    ap.run(1);
    expect(ap.getSregs().cs.selector).toBe(0x1200);
    s.route(0, 0x8500, 1 << 24); // INIT level de-assert: nothing
    ap.run(1);
    expect(ap.waitingForSipi).toBe(false);
    s.route(0, 0xc500, 1 << 24); // INIT assert: back to waiting for a SIPI
    expect(ap.run(10)).toBe(EXIT_HLT);
    expect(ap.waitingForSipi).toBe(true);
    expect(ap.getEvents().waitingForSipi).toBe(true);
    s.route(0, 0x4400, 1 << 24); // NMI
    expect(ap.getEvents().nmiPending).toBe(true);
  });
});
