/** The example at the top of src/system/README.md, run as written. */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { AddressSpace, HostMemory } from '@ringzero/mmu-ept';
import { Vcpu, EXIT_IO, EXIT_HLT } from '../index';

describe('system README', () => {
  it('the example runs from the reset vector and prints A', () => {
    const text = readFileSync(new URL('./README.md', import.meta.url), 'utf8');
    expect(text).toContain('console.log(out, vcpu.getSregs().cs.selector.toString(16)); // "A f000"');
    const space = new AddressSpace(new HostMemory());
    space.addRam(0, 1 << 20);
    space.addRam(0xffff0000, 0x10000);
    space.writeFrom(0xfffffff0, Uint8Array.from([0xb0, 0x41, 0xe6, 0xe9, 0xf4]));
    const vcpu = new Vcpu(space);
    let out = '';
    for (let r = vcpu.run(); r !== EXIT_HLT; r = vcpu.run()) {
      if (r === EXIT_IO && !vcpu.exit.io.input) out += String.fromCharCode(vcpu.exit.io.data[0]);
    }
    expect([out, vcpu.getSregs().cs.selector.toString(16)]).toEqual(['A', 'f000']);
  });
});
