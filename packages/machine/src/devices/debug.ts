// Two tiny ports: the POST-code port (0x80 on a PC, which Linux also writes as an I/O delay) and
// QEMU's isa-debug-exit (0xF4 in QEMU's test setups), whose write ends the machine with status
// (value << 1) | 1.

import type { PortIoDevice } from '../bus/pio';

/** The POST-code port: records the last code; reads return 0xFF as QEMU's does. */
export class PostCodePort implements PortIoDevice {
  last = 0;
  writes = 0;
  constructor(private readonly sink?: (code: number) => void) {}
  portRead(): number {
    return 0xff;
  }
  portWrite(_offset: number, _size: number, value: number): void {
    this.last = value & 0xff;
    this.writes++;
    this.sink?.(this.last);
  }
}

/** QEMU's isa-debug-exit: a write of v exits with status (v << 1) | 1. */
export class DebugExit implements PortIoDevice {
  /** The exit status requested, or -1. */
  status = -1;
  constructor(private readonly onExit?: (status: number) => void) {}
  portRead(): number {
    return 0;
  }
  portWrite(_offset: number, _size: number, value: number): void {
    // QEMU computes (val << 1) | 1 in a 32-bit int; the process status keeps the low 8 bits.
    this.status = ((value << 1) | 1) >>> 0;
    this.onExit?.(this.status);
  }
}
