/**
 * Segment limits on data accesses (src/system/test/kernels/seg.asm). QEMU TCG does not check
 * data-segment limits at all, so the oracle is the SDM (vol. 3, 5.3 "Limit checking", 6.15
 * #GP/#SS): the expected transcript below is written from it. Also: flat segments and 64-bit
 * mode leave cpu.segChk at 0 (no check on the hot path).
 */
import { describe, expect, it } from 'vitest';
import { assemble, HAVE_NASM, longModeVcpu, runVcpu } from './test/harness';

if (!HAVE_NASM) console.warn('SKIPPED: nasm not installed: the segment-limit kernel is not assembled or run');

const EXPECTED = `dword at 0xffc ok
  #GP(00000000)
byte at 0xfff ok
  #GP(00000000)
  #GP(00000000)
movzx byte at 0xfff ok
  #GP(00000000)
  #GP(00000000)
  #GP(00000000)
  ecx=00000004 esi=00001000 edi-buf=00000004
G=1 dword at 0x1ffc ok
  #GP(00000000)
down: dword at 0x1000 ok
  #GP(00000000)
  #GP(00000000)
down: dword at 0xfffffffc ok
  #GP(00000000)
down16: word at 0xfffe ok
  #GP(00000000)
  #GP(00000000)
ss: dword at 0x1ffffc ok
  #SS(00000000)
  #SS(00000000)
  #SS(00000000)
  #GP(00000000)
  #GP(00000000)
flat again ok
seg: done
`;

describe.skipIf(!HAVE_NASM)('segment limits (SDM; QEMU TCG does not check them)', () => {
  it('limits, expand-down segments, #SS for SS, null selectors, REP MOVSB stopped at the limit', () => {
    const ours = runVcpu(assemble('seg'));
    expect(ours.end).toBe('exit');
    expect(ours.code).toBe(0x2a);
    expect(ours.serial).toBe(EXPECTED);
  });

  it('flat protected mode and 64-bit mode need no checks (segChk = 0)', () => {
    const flat = runVcpu(assemble('io'));
    expect(flat.vcpu.cpu.segChk).toBe(0);
    const { vcpu } = longModeVcpu(Uint8Array.from([0xf4]));
    expect(vcpu.cpu.segChk).toBe(0);
  });
});
