// Intel 8042 keyboard controller with an AT keyboard behind it, enough for Linux's i8042 and
// atkbd drivers to probe without errors, and the 0xFE reset pulse machines use to reboot. The
// auxiliary (mouse) port is absent: AUX commands get no answer and the interface test reports a
// stuck clock line, as on a board without a PS/2 mouse connector.
//
// Status (read at the command port): [PERR][TMOUT][AUXB][INH#][A2][SYS][IBF][OBF]
// Command byte: [0][XLATE][AUXDIS][KBDDIS][0][SYS][AUXINT][KBDINT]

import type { InterruptLine } from '../bus/irq';
import type { PortIoDevice } from '../bus/pio';
import { StateReader } from './state';

/** Saved state of the 8042 and its keyboard. */
export interface I8042State {
  version: 1;
  commandByte: number;
  outputPort: number;
  output: number[];
  lastRead: number;
  status: number;
  pendingCommand: number;
  keyboardCommand: number;
  ram: number[];
  leds: number;
  scanSet: number;
  typematic: number;
  scanning: boolean;
}

const STR_OBF = 0x01;
const STR_SYS = 0x04;
const STR_A2 = 0x08;
const STR_UNLOCKED = 0x10;
const CTR_KBDINT = 0x01;
const CTR_SYS = 0x04;
const CTR_KBDDIS = 0x10;
const CTR_AUXDIS = 0x20;
const CTR_XLATE = 0x40;
const QUEUE = 16;

/** Events the machine handles. */
export interface I8042Events {
  /** The CPU reset line was pulsed (command 0xFE, or an output-port write with bit 0 clear). */
  onReset?(): void;
  /** The A20 gate changed (output port bit 1). */
  onA20?(enabled: boolean): void;
}

/**
 * The 8042 and its keyboard. Register `dataPort` (0x60 on a PC) and `commandPort` (0x64), one
 * port each. `irq` is the keyboard interrupt (IRQ1).
 */
export class I8042 {
  readonly dataPort: PortIoDevice;
  readonly commandPort: PortIoDevice;
  commandByte: number = CTR_KBDINT | CTR_SYS | CTR_XLATE;
  outputPort = 0x03; // reset line high (not in reset), A20 enabled
  private readonly queue = new Uint8Array(QUEUE);
  private qHead = 0;
  private qCount = 0;
  /** The last byte read (a read with nothing queued returns it again). */
  private lastRead = 0;
  private status = STR_UNLOCKED;
  /** The controller command waiting for its parameter byte, or 0. */
  private pendingCommand = 0;
  /** The keyboard command waiting for its argument byte, or 0. */
  private keyboardCommand = 0;
  private readonly ram = new Uint8Array(32);
  /** Keyboard state as Linux sets it. */
  leds = 0;
  scanSet = 2;
  typematic = 0x2b;
  scanning = true;
  resets = 0;

  constructor(
    private readonly irq: InterruptLine,
    private readonly events: I8042Events = {},
  ) {
    this.dataPort = {
      portRead: (): number => this.readData(),
      portWrite: (_o: number, _s: number, value: number): void => this.writeData(value & 0xff),
    };
    this.commandPort = {
      portRead: (): number => this.status | (this.qCount > 0 ? STR_OBF : 0),
      portWrite: (_o: number, _s: number, value: number): void => this.writeCommand(value & 0xff),
    };
  }

  /** Bytes waiting in the output buffer. */
  get pendingBytes(): number {
    return this.qCount;
  }

  /** Queues bytes from the keyboard (scan codes, in the set the guest selected). */
  injectKeyboardBytes(bytes: ArrayLike<number>): void {
    for (let i = 0; i < bytes.length; i++) this.push(bytes[i]);
  }

  saveState(): I8042State {
    const output: number[] = [];
    for (let k = 0; k < this.qCount; k++) output.push(this.queue[(this.qHead + k) % QUEUE]);
    return {
      version: 1,
      commandByte: this.commandByte,
      outputPort: this.outputPort,
      output,
      lastRead: this.lastRead,
      status: this.status,
      pendingCommand: this.pendingCommand,
      keyboardCommand: this.keyboardCommand,
      ram: Array.from(this.ram),
      leds: this.leds,
      scanSet: this.scanSet,
      typematic: this.typematic,
      scanning: this.scanning,
    };
  }

  /** Loads a saved state (validated: throws DeviceStateError). Fires no reset or A20 events. */
  loadState(state: unknown): void {
    const r = new StateReader(state, 'I8042', 1);
    const output = r.ints('output', -QUEUE, 0, 255);
    const ram = r.ints('ram', 32, 0, 255);
    const s = {
      commandByte: r.int('commandByte', 0, 255) & 0x77,
      outputPort: r.int('outputPort', 0, 255) | 1,
      lastRead: r.int('lastRead', 0, 255),
      status: r.int('status', 0, 255) & (STR_SYS | STR_A2 | STR_UNLOCKED),
      pendingCommand: r.int('pendingCommand', 0, 255),
      keyboardCommand: r.int('keyboardCommand', 0, 255),
      leds: r.int('leds', 0, 7),
      scanSet: r.int('scanSet', 1, 3),
      typematic: r.int('typematic', 0, 0x7f),
      scanning: r.bool('scanning'),
    };
    this.queue.set(output);
    this.qHead = 0;
    this.qCount = output.length;
    this.ram.set(ram);
    this.commandByte = s.commandByte;
    this.outputPort = s.outputPort;
    this.lastRead = s.lastRead;
    this.status = s.status;
    this.pendingCommand = s.pendingCommand;
    this.keyboardCommand = s.keyboardCommand;
    this.leds = s.leds;
    this.scanSet = s.scanSet;
    this.typematic = s.typematic;
    this.scanning = s.scanning;
    this.irq.setLevel(false);
    this.updateIrq();
  }

  private push(byte: number): void {
    if (this.qCount >= QUEUE) return; // a real keyboard's buffer overflows too
    this.queue[(this.qHead + this.qCount) % QUEUE] = byte & 0xff;
    this.qCount++;
    this.updateIrq();
  }

  private updateIrq(): void {
    this.irq.setLevel(this.qCount > 0 && (this.commandByte & CTR_KBDINT) !== 0);
  }

  private readData(): number {
    if (this.qCount === 0) return this.lastRead;
    const v = this.queue[this.qHead];
    this.lastRead = v;
    this.qHead = (this.qHead + 1) % QUEUE;
    this.qCount--;
    this.irq.setLevel(false);
    this.updateIrq(); // the next byte (if any) is a new edge
    return v;
  }

  private setOutputPort(value: number): void {
    const a20 = (value & 2) !== 0;
    if (a20 !== ((this.outputPort & 2) !== 0)) this.events.onA20?.(a20);
    this.outputPort = value | 1;
    if ((value & 1) === 0) this.reset();
  }

  private reset(): void {
    this.resets++;
    this.events.onReset?.();
  }

  private writeCommand(cmd: number): void {
    this.status |= STR_A2;
    this.pendingCommand = 0;
    if (cmd >= 0x20 && cmd <= 0x3f) {
      this.push(cmd === 0x20 ? this.commandByte : this.ram[cmd & 0x1f]);
      return;
    }
    if (cmd >= 0x60 && cmd <= 0x7f) {
      this.pendingCommand = cmd;
      return;
    }
    if (cmd >= 0xf0) {
      if ((cmd & 1) === 0) this.reset(); // pulse output port bit 0 (reset)
      return;
    }
    switch (cmd) {
      case 0xa7:
        this.commandByte |= CTR_AUXDIS;
        break;
      case 0xa8:
        this.commandByte &= ~CTR_AUXDIS;
        break;
      case 0xa9:
        this.push(0x01); // AUX interface test: clock line stuck low (no AUX port)
        break;
      case 0xaa:
        this.status |= STR_SYS;
        this.commandByte |= CTR_SYS;
        this.push(0x55);
        break;
      case 0xab:
        this.push(0x00); // keyboard interface test OK
        break;
      case 0xad:
        this.commandByte |= CTR_KBDDIS;
        break;
      case 0xae:
        this.commandByte &= ~CTR_KBDDIS;
        break;
      case 0xc0:
        this.push(0x00); // input port
        break;
      case 0xd0:
        this.push(this.outputPort);
        break;
      case 0xd1:
      case 0xd2:
      case 0xd3:
      case 0xd4:
        this.pendingCommand = cmd;
        break;
      case 0xdd:
        this.setOutputPort(this.outputPort & ~2);
        break;
      case 0xdf:
        this.setOutputPort(this.outputPort | 2);
        break;
      default:
      // unknown commands are ignored
    }
  }

  private writeData(value: number): void {
    this.status &= ~STR_A2;
    const cmd = this.pendingCommand;
    this.pendingCommand = 0;
    if (cmd >= 0x60 && cmd <= 0x7f) {
      if (cmd === 0x60) {
        this.commandByte = value & 0x77;
        if (value & CTR_SYS) this.status |= STR_SYS;
        else this.status &= ~STR_SYS;
        this.updateIrq();
      } else {
        this.ram[cmd & 0x1f] = value;
      }
      return;
    }
    switch (cmd) {
      case 0xd1:
        this.setOutputPort(value);
        return;
      case 0xd2:
        this.push(value); // as if from the keyboard
        return;
      case 0xd3:
      case 0xd4:
        return; // no AUX port: nothing answers
      default:
        this.keyboard(value);
    }
  }

  /** The keyboard's command interpreter (data-port writes with no controller command pending). */
  private keyboard(value: number): void {
    const arg = this.keyboardCommand;
    if (arg !== 0) {
      this.keyboardCommand = 0;
      switch (arg) {
        case 0xed:
          this.leds = value & 7;
          this.push(0xfa);
          return;
        case 0xf3:
          this.typematic = value & 0x7f;
          this.push(0xfa);
          return;
        case 0xf0:
          this.push(0xfa);
          if (value === 0) this.push(this.commandByte & CTR_XLATE ? [0, 0x43, 0x41, 0x3f][this.scanSet] : this.scanSet);
          else if (value <= 3) this.scanSet = value;
          return;
        default:
      }
    }
    switch (value) {
      case 0xed: // set LEDs
      case 0xf3: // set typematic rate
      case 0xf0: // get/set scan code set
        this.keyboardCommand = value;
        this.push(0xfa);
        return;
      case 0xee: // echo
        this.push(0xee);
        return;
      case 0xf2: // get ID: MF2 keyboard, translated if the controller translates
        this.push(0xfa);
        this.push(0xab);
        this.push(this.commandByte & CTR_XLATE ? 0x41 : 0x83);
        return;
      case 0xf4:
        this.scanning = true;
        this.push(0xfa);
        return;
      case 0xf5:
      case 0xf6:
        this.scanning = value === 0xf6;
        this.leds = 0;
        this.scanSet = 2;
        this.push(0xfa);
        return;
      case 0xfe: // resend: nothing was sent in error
        this.push(0xfa);
        return;
      case 0xff: // reset and basic assurance test
        this.leds = 0;
        this.scanSet = 2;
        this.scanning = true;
        this.push(0xfa);
        this.push(0xaa);
        return;
      default:
        this.push(0xfe); // unknown command: resend request
    }
  }
}
