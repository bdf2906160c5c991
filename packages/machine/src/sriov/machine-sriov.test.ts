// SR-IOV through the machine's own surfaces: the CLI flag, the description, Machine.build (PF on
// bus 0 with its VF BARs placed as firmware would) and a VF of one Machine assigned to another.
import { describe, expect, it } from 'vitest';
import * as S from '../devices/pci/sriov';
import type { Bridge } from '@ringzero/vswitch';
import { Machine } from '../machine/machine';
import { MachineConfigError, validateMachineDescription } from '../machine/config';
import { ScriptedVcpu, type RecordingApic } from '../machine/scripted-vcpu';
import { CliError, parseBootArgs } from '../node/cli-args';
import { VfAssignment } from '../passthrough/assigned';
import { SRIOV_VF_BAR_WINDOW } from './virtio-net-sriov';

function tinyMultiboot(): Uint8Array {
  const img = new Uint8Array(64);
  const v = new DataView(img.buffer);
  const words = [0x1badb002, 0x00010000, (-(0x1badb002 + 0x00010000)) >>> 0, 0x100000, 0x100000, 0x100000 + img.length, 0, 0x100020];
  words.forEach((w, i) => v.setUint32(4 * i, w >>> 0, true));
  img[0x20] = 0xf4;
  return img;
}

const vcpu = (): ScriptedVcpu => new ScriptedVcpu(function* () {});

describe('SR-IOV in the machine description and CLI', () => {
  it('-device virtio-net-pci,netdev=ID,sriov_totalvfs=N', () => {
    const c = parseBootArgs(['-kernel', 'k', '-netdev', 'switch,id=n0', '-device', 'virtio-net-pci,netdev=n0,sriov_totalvfs=2']);
    expect(c.description.devices).toEqual([{ type: 'virtio-net', netdev: 'n0', sriovTotalVfs: 2 }]);
    expect(() => parseBootArgs(['-kernel', 'k', '-netdev', 'switch,id=n0', '-device', 'virtio-net-pci,netdev=n0,sriov_totalvfs=8'])).toThrow(CliError);
    expect(() => parseBootArgs(['-kernel', 'k', '-netdev', 'switch,id=n0', '-device', 'virtio-net-pci,netdev=n0,sriov_totalvfs=x'])).toThrow(/must be 1-7/);
    const base = { memory: 64 << 20, kernel: 'k', netdevs: [{ type: 'switch', id: 'n0' }] };
    for (const bad of [0, 8, 1.5, '2']) {
      expect(() => validateMachineDescription({ ...base, devices: [{ type: 'virtio-net', netdev: 'n0', sriovTotalVfs: bad }] })).toThrow(MachineConfigError);
    }
  });

  it('Machine.build places the PF with its SR-IOV capability and VF BARs; a VF assigned to a second Machine interrupts that Machine', async () => {
    const bridges = new Map<string, Bridge>();
    const a = await Machine.build(
      { memory: 64 << 20, kernel: tinyMultiboot(), netdevs: [{ type: 'switch', id: 'n0' }], devices: [{ type: 'virtio-rng' }, { type: 'virtio-net', netdev: 'n0', sriovTotalVfs: 3 }] },
      { vcpu, bridges },
    );
    const b = await Machine.build({ memory: 64 << 20, kernel: tinyMultiboot() }, { vcpu, bridges });
    try {
      expect(a.sriovNics.length).toBe(1);
      const nic = a.sriovNics[0];
      const slot = 2;
      expect(a.pci.configRead(0, slot, 0, 0, 4)).toBe(0x1041_1af4);
      expect(a.pci.configRead(0, slot, 0, 0x100, 4) & 0xffff).toBe(S.PCI_EXT_CAP_ID_SRIOV);
      expect(a.pci.configRead(0, slot, 0, 0x100 + S.PCI_SRIOV_TOTAL_VF, 2)).toBe(3);
      for (const bar of [1, 4]) {
        const base = nic.sriov.vfBarBase(bar);
        expect(base).toBeGreaterThanOrEqual(SRIOV_VF_BAR_WINDOW[0]);
        expect(base + 3 * nic.sriov.vfBarSize(bar)).toBeLessThanOrEqual(SRIOV_VF_BAR_WINDOW[1]);
      }
      a.pci.configWrite(0, slot, 0, 0x100 + S.PCI_SRIOV_NUM_VF, 2, 2);
      a.pci.configWrite(0, slot, 0, 0x100 + S.PCI_SRIOV_CTRL, 2, S.PCI_SRIOV_CTRL_VFE | S.PCI_SRIOV_CTRL_MSE);
      expect(a.pci.configRead(0, slot, 1, 0x08, 4)).toBe(0x0200_0001);
      expect(a.pci.configRead(0, slot, 2, 0x08, 4)).toBe(0x0200_0001);
      const asg = new VfAssignment(nic, 1, b, { slot: 7 });
      const fn = asg.attach();
      expect(b.pci.configRead(0, 7, 0, 0, 4)).toBe(0x1041_1af4);
      expect(a.pci.configRead(0, slot, 2, 0x08, 4)).toBe(0xffffffff);
      expect(b.mmio.owner(fn.barAddress(4))).toContain('bar4');
      // The VF's MSI-X goes to B's local APIC: enable MSI-X with vector 0's message, raise a config interrupt.
      const bar1 = fn.barAddress(1);
      b.mmio.write(bar1, 4, 0xfee0_0000);
      b.mmio.write(bar1 + 8, 4, 0x61);
      b.mmio.write(bar1 + 12, 4, 0);
      b.pci.configWrite(0, 7, 0, 0x04, 2, 0x6);
      b.pci.configWrite(0, 7, 0, 0x42, 2, 0x8000);
      nic.vfs[1].transport.raise(2, 0);
      const accepted = (m: Machine): number[] => (m.vcpu.apic as unknown as RecordingApic).accepted.map((x) => x.vector);
      expect(accepted(b)).toEqual([0x61]);
      expect(accepted(a)).toEqual([]);
      asg.detach();
      expect(a.pci.configRead(0, slot, 2, 0x08, 4)).toBe(0x0200_0001);
    } finally {
      await a.stop();
      await b.stop();
    }
  });
});
