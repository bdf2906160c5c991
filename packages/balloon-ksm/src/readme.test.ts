// The README's example, kept runnable.
import { AddressSpace, HostMemory } from '@ringzero/mmu-ept';
import { VirtioMmio } from '@ringzero/virtio';
import { expect, it } from 'vitest';
import { Ksm, VirtioBalloon } from './index';

it('README example', () => {
  const log: unknown[] = [];
  const host = new HostMemory();
  const [vm1, vm2] = [new AddressSpace(host), new AddressSpace(host)];
  vm1.addRam(0, 64 << 20);
  vm2.addRam(0, 64 << 20);
  vm1.write32(0x1000, 42);
  vm2.write32(0x1000, 42); // the same page in both guests
  const ksm = new Ksm();
  ksm.register(vm1, 0, 64 << 20, 'vm1');
  ksm.register(vm2, 0, 64 << 20, 'vm2');
  ksm.scanFull(2); // or ksm.set('run', 1): 100 pages every 20 ms
  log.push(ksm.counters().pages_sharing, ksm.vmStat('vm2').ksm_merging_pages);
  const balloon = new VirtioBalloon({ ramSize: 64 << 20, onChange: (bytes) => log.push(bytes) });
  const mmio = new VirtioMmio(balloon, vm1, { irq: () => undefined });
  balloon.setTarget(48 << 20);
  log.push(mmio.read(0x100, 4)); // config num_pages, as the guest driver reads it
  expect(log).toEqual([1, 1, 4096]);
});
