/**
 * SMP: several vCPUs over one guest memory, each with its own local APIC, connected the way
 * KVM's in-kernel irqchip connects them: an IPI written to one APIC's ICR reaches the others
 * (fixed, NMI, INIT, SIPI; physical and flat-logical destinations, the broadcast shorthands).
 * The first vCPU is the bootstrap processor; the others start waiting for a SIPI, as application
 * processors do after power-on. Running them is the machine's job: each `Vcpu.run()` is
 * independent (call them in turn, or from one worker each over shared memory).
 */
import type { AddressSpace } from '@ringzero/mmu-ept';
import { Vcpu, type VcpuOptions } from './vcpu';

const MODE_FIXED = 0;
const MODE_LOWEST = 1;
const MODE_NMI = 4;
const MODE_INIT = 5;
const MODE_SIPI = 6;

export class Smp {
  readonly vcpus: readonly Vcpu[];
  /** IPIs delivered between vCPUs (statistics). */
  ipis = 0;

  constructor(space: AddressSpace, count: number, options: Omit<VcpuOptions, 'apicId'> = {}) {
    if (!Number.isInteger(count) || count < 1 || count > 255) throw new RangeError('Smp: count must be 1..255');
    const vcpus: Vcpu[] = [];
    for (let i = 0; i < count; i++) {
      const v = new Vcpu(space, { ...options, apicId: i });
      if (i > 0) {
        v.apic.baseMsr = (v.apic.baseMsr & ~0x100) >>> 0; // BSP flag only on the first
        v.waitingForSipi = true;
      }
      const from = i;
      v.apic.onIpi = (lo: number, hi: number): void => this.route(from, lo, hi);
      vcpus.push(v);
    }
    this.vcpus = vcpus;
  }

  /** Delivers an ICR write of vCPU `from` to the other vCPUs it addresses. */
  route(from: number, icrLo: number, icrHi: number): void {
    const src = this.vcpus[from];
    const mode = (icrLo >>> 8) & 7;
    const vector = icrLo & 0xff;
    const logical = (icrLo & 0x800) !== 0;
    const short = (icrLo >>> 18) & 3;
    // INIT level de-assert (level 0, level-triggered) does nothing on modern CPUs.
    if (mode === MODE_INIT && (icrLo & 0xc000) === 0x8000) return;
    const x2 = src.apic.x2apic;
    const dest = x2 ? icrHi >>> 0 : icrHi >>> 24;
    for (let j = 0; j < this.vcpus.length; j++) {
      if (j === from) continue; // the source APIC delivered to itself already
      const t = this.vcpus[j];
      let hit: boolean;
      if (short === 2 || short === 3) hit = true;
      else if (short === 1) hit = false;
      else if (!logical) hit = dest === (x2 ? 0xffffffff : 0xff) || dest === t.apic.id;
      else if (x2) hit = (dest >>> 16) === (t.apic.id >>> 4) && ((dest & 0xffff) & (1 << (t.apic.id & 15))) !== 0;
      else hit = (dest & (t.apic.readReg(0xd0) >>> 24)) !== 0; // flat model
      if (!hit) continue;
      this.ipis++;
      if (mode === MODE_LOWEST) {
        // Lowest priority: one target (arbitration by the lowest APIC ID, not by TPR).
        t.apic.accept(vector, false);
        return;
      }
      if (mode === MODE_FIXED) t.apic.accept(vector, false);
      else if (mode === MODE_NMI) t.injectNmi();
      else if (mode === MODE_INIT) t.init();
      else if (mode === MODE_SIPI) t.sipi(vector);
    }
  }
}
