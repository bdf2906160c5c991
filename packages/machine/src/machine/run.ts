/**
 * Runs a machine as QEMU runs one: a guest reset (i8042 0xFE, 0xCF9, port 0x92, triple fault)
 * restarts the machine, and only power-off, isa-debug-exit, an error or `stop()` end the run;
 * with `noReboot` a reset ends it too (QEMU's -no-reboot). A `Machine` itself always stops on a
 * reset: the restart builds a fresh one from the same description (RAM, CPU and devices in their
 * power-on state, the kernel loaded again), as a reset PC runs its firmware again. The CMOS
 * NVRAM (bytes 0x0E-0x7F) is battery-backed on a PC and carries over.
 */
import type { MachineDescription } from './config';
import { Machine, type MachineOptions, type MachineStopInfo } from './machine';

export interface RunMachineOptions extends MachineOptions {
  /**
   * Called with every machine built (boot 1, then one per reboot) before it starts, to attach
   * listeners or a terminal. What it returns is called when that machine stops.
   */
  readonly onMachine?: (machine: Machine, boot: number) => (() => void) | void;
  /** Ends the run after this many reboots (default: no limit, as QEMU). */
  readonly maxReboots?: number;
}

export interface RunMachineResult {
  /** Why the last machine stopped. */
  readonly stop: MachineStopInfo;
  /** How many times the machine booted (1 + reboots). */
  readonly boots: number;
  /** The last machine. */
  readonly machine: Machine;
}

const CMOS_NVRAM_START = 0x0e;

/** Builds and runs the machine, restarting it on guest resets unless `description.noReboot`. */
export async function runMachine(description: MachineDescription, options: RunMachineOptions = {}): Promise<RunMachineResult> {
  const { onMachine, maxReboots = Infinity, ...machineOptions } = options;
  let nvram: Uint8Array | null = null;
  for (let boot = 1; ; boot++) {
    const machine = await Machine.build(description, machineOptions);
    if (nvram != null) machine.rtc.cmos.set(nvram, CMOS_NVRAM_START);
    const detach = onMachine?.(machine, boot);
    let stop: MachineStopInfo;
    try {
      stop = await machine.start();
    } finally {
      if (typeof detach === 'function') detach();
    }
    if (stop.reason !== 'reset' || description.noReboot === true || boot > maxReboots) return { stop, boots: boot, machine };
    nvram = machine.rtc.cmos.slice(CMOS_NVRAM_START);
  }
}
