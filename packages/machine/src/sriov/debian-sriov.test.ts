// SR-IOV acceptance with the unmodified Debian bookworm amd64 kernel (three boots; part of
// `npm test`, RINGZERO_DEBIAN_SRIOV=0 leaves it out with a loud SKIPPED line). Linux enumerates our PF (a PCIe RC integrated endpoint with
// the SR-IOV capability), its virtio_pci driver accepts VIRTIO_F_SR_IOV, `echo 2 > sriov_numvfs`
// makes Linux's drivers/pci/iov.c create two VFs that virtio_net binds, frames between a VF and the
// PF are switched by the device's embedded switch (its counters, read on the host, say so; the
// vswitch port saw none of them), and `echo 0` removes the VFs.
import { spawnSync } from 'node:child_process';
import { appendFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { canPrepareGuests, extractVmlinux, prepareGuest, writeInitramfs } from '../node';
import type { Bridge } from '@ringzero/vswitch';
import { Machine } from '../machine/machine';
import { VfAssignment } from '../passthrough/assigned';

const enabled = process.env.RINGZERO_DEBIAN_SRIOV !== '0';
/** Optional: a directory where the guests' serial output is appended as it comes (to watch a long run). */
const watchDir = process.env.RINGZERO_SERIAL_LOG_DIR;
const watch = (name: string, bytes: Uint8Array): void => {
  if (watchDir !== undefined) appendFileSync(join(watchDir, name), bytes);
};
const canApt = canPrepareGuests();
const hasXz = !spawnSync('xz', ['--version']).error;
if (!enabled) console.warn('SKIPPED: RINGZERO_DEBIAN_SRIOV=0: the Debian guest does not create SR-IOV VFs in this run');
else if (!canApt || !hasXz) console.warn('SKIPPED: apt-get/dpkg-deb or xz not available: the Debian SR-IOV acceptance is not run');

describe.skipIf(!enabled || !canApt || !hasXz)('SR-IOV with the Debian amd64 kernel', () => {
  it('sriov_totalvfs, echo 2 > sriov_numvfs -> two VFs bound by virtio_net, frames through the embedded switch, echo 0 removes them', async () => {
    const guest = prepareGuest({ arch: 'amd64' });
    const dir = mkdtempSync(join(tmpdir(), 'rz-debian-sriov-'));
    try {
      const initrd = writeInitramfs(guest, join(dir, 'initrd.gz'), {
        script: [
          'PF=""; for d in /sys/bus/pci/devices/*; do [ -e "$d/sriov_totalvfs" ] && PF="$d"; done',
          'echo "SRIOV pf=$(basename "$PF") totalvfs=$(cat $PF/sriov_totalvfs) numvfs=$(cat $PF/sriov_numvfs) driver=$(basename $(readlink $PF/driver))"',
          'echo "NET-BEFORE $(ls /sys/class/net | tr \'\\n\' \' \')"',
          'echo 2 > $PF/sriov_numvfs && echo "ENABLE ok"',
          'echo "NUMVFS $(cat $PF/sriov_numvfs)"',
          'for v in $PF/virtfn*; do echo "VF $(basename $(readlink $v)) vendor=$(cat $v/vendor) device=$(cat $v/device) driver=$(basename $(readlink $v/driver)) physfn=$(basename $(readlink $v/physfn))"; done',
          'echo "NET-VFS $(ls /sys/class/net | tr \'\\n\' \' \')"',
          'ip link set eth0 up; ip link set eth1 up; ip addr add 10.9.0.1/24 dev eth0; ip addr add 10.9.0.2/24 dev eth1',
          'arping -c 2 -w 2 -I eth1 10.9.0.1; echo "ARPING rc=$?"',
          'echo "ETH1 $(cat /sys/class/net/eth1/address) tx=$(cat /sys/class/net/eth1/statistics/tx_packets) ETH0 rx=$(cat /sys/class/net/eth0/statistics/rx_packets)"',
          'echo 0 > $PF/sriov_numvfs && echo "DISABLE ok"',
          'echo "NET-AFTER $(ls /sys/class/net | tr \'\\n\' \' \') virtfn=$(ls -d $PF/virtfn* 2>/dev/null | wc -l)"',
        ].join('\n'),
      });
      const vmlinux = extractVmlinux(new Uint8Array(readFileSync(guest.kernel))).vmlinux;
      const machine = await Machine.build(
        {
          memory: 256 << 20,
          kernel: vmlinux,
          initrd: new Uint8Array(readFileSync(initrd)),
          cmdline: 'console=ttyS0 panic=-1 cryptomgr.notests',
          time: 'deterministic',
          netdevs: [{ type: 'switch', id: 'n0' }],
          devices: [{ type: 'virtio-net', netdev: 'n0', mac: '52:54:00:12:34:56', sriovTotalVfs: 2 }],
        },
        {},
      );
      const nic = machine.sriovNics[0];
      const uplink = machine.bridges.get('br0')!.port('vm-n0-0')!;
      let log = '';
      machine.on('serial', (b) => {
        log += Buffer.from(b).toString('latin1');
        watch('sriov-1vm.log', b);
      });
      const info = await machine.start();
      const text = log.replace(/\r/g, '');
      console.log(text.split('\n').filter((l) => /SRIOV|NET-|ENABLE|NUMVFS|^VF |ARP|ETH1|DISABLE|iov|sriov|virtfn/i.test(l)).join('\n'));
      console.log(`VEB ${JSON.stringify(nic.veb.stats)} uplink ${JSON.stringify(uplink.stats())}`);
      expect(text, text.slice(-3000)).toContain('ringzero-init: started');
      expect(text).toMatch(/^SRIOV pf=0000:00:01\.0 totalvfs=2 numvfs=0 driver=virtio-pci$/m);
      expect(text).toMatch(/^NET-BEFORE eth0 lo $/m);
      expect(text).toMatch(/^ENABLE ok$/m);
      expect(text).toMatch(/^NUMVFS 2$/m);
      expect(text).toMatch(/^VF 0000:00:01\.1 vendor=0x1af4 device=0x1041 driver=virtio-pci physfn=0000:00:01\.0$/m);
      expect(text).toMatch(/^VF 0000:00:01\.2 vendor=0x1af4 device=0x1041 driver=virtio-pci physfn=0000:00:01\.0$/m);
      expect(text).toMatch(/^NET-VFS eth0 eth1 eth2 lo $/m);
      expect(text).toMatch(/^DISABLE ok$/m);
      expect(text).toMatch(/^NET-AFTER eth0 lo +virtfn=0$/m);
      // ARP from the VF (eth1) reached the PF (eth0) inside the device, and never the vswitch.
      expect(nic.veb.stats.local).toBeGreaterThan(0);
      expect(text).toMatch(/^ETH1 52:54:00:5f:56:01 tx=[1-9]\d* ETH0 rx=[1-9]\d*$/m);
      expect(text).not.toMatch(/WARNING:|BUG:|Oops|Call Trace|Kernel panic|not enough MMIO/);
      expect(info.reason).toBe('poweroff');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 3_300_000);

  it('a VF assigned to a second VM is its eth0 and pings the first VM through the embedded switch; no IPv4 unicast crosses the vswitch', async () => {
    const guest = prepareGuest({ arch: 'amd64' });
    const dir = mkdtempSync(join(tmpdir(), 'rz-debian-sriov2-'));
    try {
      const initA = writeInitramfs(guest, join(dir, 'a.gz'), {
        script: [
          'PF=/sys/bus/pci/devices/0000:00:01.0',
          'echo 2 > $PF/sriov_numvfs && echo "A-VFS $(ls /sys/class/net | tr \'\\n\' \' \')"',
          'echo 0000:00:01.2 > /sys/bus/pci/drivers/virtio-pci/unbind && echo "A-UNBOUND $(ls /sys/class/net | tr \'\\n\' \' \')"',
          'ip link set eth0 up; ip addr add 10.9.0.1/24 dev eth0',
          'echo "A-READY"',
          'while true; do sleep 5; done',
        ].join('\n'),
      });
      const initB = writeInitramfs(guest, join(dir, 'b.gz'), {
        script: [
          'echo "B-NET $(ls /sys/class/net | tr \'\\n\' \' \') $(cat /sys/class/net/eth0/address) $(basename $(readlink /sys/class/net/eth0/device/driver))"',
          'ip link set eth0 up; ip addr add 10.9.0.2/24 dev eth0',
          'ping -c 3 -W 5 10.9.0.1; echo "PING rc=$?"',
        ].join('\n'),
      });
      const vmlinux = extractVmlinux(new Uint8Array(readFileSync(guest.kernel))).vmlinux;
      const bridges = new Map<string, Bridge>();
      const common = { memory: 256 << 20, kernel: vmlinux, cmdline: 'console=ttyS0 panic=-1 cryptomgr.notests', time: 'deterministic' } as const;
      const a = await Machine.build(
        { ...common, initrd: new Uint8Array(readFileSync(initA)), netdevs: [{ type: 'switch', id: 'n0' }], devices: [{ type: 'virtio-net', netdev: 'n0', mac: '52:54:00:12:34:56', sriovTotalVfs: 2 }] },
        { bridges },
      );
      const b = await Machine.build({ ...common, initrd: new Uint8Array(readFileSync(initB)) }, { bridges });
      const nic = a.sriovNics[0];
      const uplink = bridges.get('br0')!.port('vm-n0-0')!;
      // Watch what the device sends up to the vswitch.
      const upIpv4Unicast: number[] = [];
      nic.setUplink({
        deliver: (buf, o, n) => {
          if ((buf[o] & 1) === 0 && buf[o + 12] === 0x08 && buf[o + 13] === 0x00) upIpv4Unicast.push(n);
          uplink.receive(buf, o, n);
          return true;
        },
      });
      let logA = '';
      let logB = '';
      let assignment: VfAssignment | null = null;
      let bDone: Promise<unknown> | null = null;
      const ready = new Promise<void>((resolve) => {
        a.on('serial', (bytes) => {
          logA += Buffer.from(bytes).toString('latin1');
          watch('sriov-a.log', bytes);
          if (assignment == null && logA.includes('A-READY')) {
            assignment = new VfAssignment(nic, 1, b, { slot: 1 });
            assignment.attach();
            resolve();
          }
        });
      });
      b.on('serial', (bytes) => {
        logB += Buffer.from(bytes).toString('latin1');
        watch('sriov-b.log', bytes);
      });
      const aDone = a.start();
      await Promise.race([ready, aDone]);
      const before = { local: nic.veb.stats.local, up: uplink.stats() };
      if (assignment != null) bDone = b.start();
      const infoB = bDone != null ? await bDone : null;
      await a.stop();
      await aDone;
      const textA = logA.replace(/\r/g, '');
      const textB = logB.replace(/\r/g, '');
      console.log(textA.split('\n').filter((l) => /^A-|sriov|iov/i.test(l)).join('\n'));
      console.log(textB.split('\n').filter((l) => /^B-|PING|packets|bytes from/i.test(l)).join('\n'));
      console.log(`VEB ${JSON.stringify(nic.veb.stats)} (local before B: ${before.local}) uplink ${JSON.stringify(uplink.stats())} ipv4-unicast-up ${upIpv4Unicast.length} faults ${JSON.stringify(assignment == null ? null : (assignment as VfAssignment).container.takeFaults())}`);
      expect(textA, textA.slice(-2000)).toMatch(/^A-VFS eth0 eth1 eth2 lo $/m);
      expect(textA).toMatch(/^A-UNBOUND eth0 eth1 lo $/m);
      expect(infoB).not.toBeNull();
      expect(textB, textB.slice(-3000)).toMatch(/^B-NET eth0 lo +52:54:00:5f:56:02 virtio_net$/m); // eth0's device is the VF's virtio device
      expect(textB).toMatch(/3 packets transmitted, 3 packets received/);
      expect(textB).toMatch(/^PING rc=0$/m);
      expect(nic.veb.stats.local - before.local).toBeGreaterThanOrEqual(6);
      expect(upIpv4Unicast).toEqual([]);
      expect(`${textA}${textB}`).not.toMatch(/WARNING:|BUG:|Oops|Call Trace|Kernel panic/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 3_600_000);
});
