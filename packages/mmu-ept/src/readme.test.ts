// The README's example, kept runnable.
import { expect, it } from 'vitest';
import { AddressSpace, HostMemory, Mmu, ACC_SW, CR0_PG, CR4_PAE, EFER_LME, MODE_4LEVEL } from './index';
import { GuestPageTables } from './testing';

it('README example', () => {
  const host = new HostMemory();
  const vm = new AddressSpace(host);
  vm.addRam(0, 3 * 2 ** 30);
  vm.addRam(4 * 2 ** 30, 3 * 2 ** 30);
  vm.addMmio(0xfee0_0000, 0x1000, 1);
  const pt = new GuestPageTables(vm, MODE_4LEVEL, 0x10_0000);
  pt.map(0x7fff_0000_0000, 0x20_0000);
  const cpu = new Mmu(vm.ept!, vm);
  cpu.writeCr4(CR4_PAE);
  cpu.writeEfer(EFER_LME);
  cpu.writeCr3(pt.cr3, 0);
  cpu.writeCr0(CR0_PG);
  expect(cpu.write32(0, 0x7fff, 0xc0ffee, ACC_SW)).toBe(true);
  expect([vm.read32(0x20_0000).toString(16), cpu.walkRefs]).toEqual(['c0ffee', 24]);
});
