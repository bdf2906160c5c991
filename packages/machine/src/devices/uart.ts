// National Semiconductor / TI 16550A UART (datasheet SLLS057), the PC's COM port. Transmission is
// instantaneous (each THR write goes straight to the sink), reception pulls from a byte source
// into the 16-byte RX FIFO, so a slow guest can never make the device buffer without bound.
//
// Offsets: 0 RBR/THR (DLL with DLAB), 1 IER (DLM with DLAB), 2 IIR (read) / FCR (write), 3 LCR,
// 4 MCR, 5 LSR, 6 MSR, 7 SCR.
// IIR: [FIFO FIFO][0 0][ID2 ID1 ID0][!PENDING]: 0x06 line status, 0x04 RX data, 0x0C RX timeout,
// 0x02 THR empty, 0x00 modem status.

import type { InterruptLine } from '../bus/irq';
import type { PortIoDevice } from '../bus/pio';
import { StateReader } from './state';

/** Saved state of a 16550A. */
export interface UartState {
  version: 1;
  rx: number[];
  ier: number;
  lcr: number;
  mcr: number;
  lsr: number;
  msr: number;
  scr: number;
  fcr: number;
  divisor: number;
  thriPending: boolean;
  timeoutPending: boolean;
}

/** Where transmitted bytes go (the terminal). */
export interface ByteSink {
  writeByte(byte: number): void;
}

/** Where received bytes come from (the terminal); pulled only when the FIFO has room. */
export interface ByteSource {
  /** Number of bytes ready now. */
  available(): number;
  /** The next byte (only called when `available() > 0`). */
  readByte(): number;
}

export const UART_IER_RDI = 0x01;
export const UART_IER_THRI = 0x02;
export const UART_IER_RLSI = 0x04;
export const UART_IER_MSI = 0x08;
export const UART_LSR_DR = 0x01;
export const UART_LSR_OE = 0x02;
export const UART_LSR_BI = 0x10;
export const UART_LSR_THRE = 0x20;
export const UART_LSR_TEMT = 0x40;
export const UART_MCR_DTR = 0x01;
export const UART_MCR_RTS = 0x02;
export const UART_MCR_OUT1 = 0x04;
export const UART_MCR_OUT2 = 0x08;
export const UART_MCR_LOOP = 0x10;

const IIR_NONE = 0x01;
const IIR_MSI = 0x00;
const IIR_THRI = 0x02;
const IIR_RDI = 0x04;
const IIR_RLSI = 0x06;
const IIR_TIMEOUT = 0x0c;
const FIFO_SIZE = 16;
const TRIGGER = [1, 4, 8, 14];

/** Options of a 16550A. */
export interface UartOptions {
  sink?: ByteSink;
  source?: ByteSource;
  /**
   * Gate the interrupt output with MCR OUT2, as PC serial boards do (Linux sets OUT2 when it
   * opens the port). Default true.
   */
  out2GatesIrq?: boolean;
}

/** A 16550A UART. Register it as 8 ports at the board's base (0x3F8 for COM1), byte access. */
export class Uart16550 implements PortIoDevice {
  private readonly rx = new Uint8Array(FIFO_SIZE);
  private rxHead = 0;
  private rxCount = 0;
  ier = 0;
  lcr = 0;
  mcr = 0;
  lsr: number = UART_LSR_THRE | UART_LSR_TEMT;
  /** Modem status inputs (CTS, DSR, RI, DCD in bits 4-7) and their deltas (bits 0-3). */
  msr = 0xb0;
  scr = 0;
  fcr = 0;
  divisor = 12;
  /** The THR-empty interrupt is armed (cleared by reading IIR when it is reported, or by THR writes). */
  private thriPending = true;
  /** The character timeout indication: RX data below the trigger level, with no more arriving. */
  private timeoutPending = false;
  private sink: ByteSink | null;
  private source: ByteSource | null;
  private readonly out2Gates: boolean;
  /** Bytes lost to RX overrun. */
  overruns = 0;

  constructor(
    private readonly irq: InterruptLine,
    options: UartOptions = {},
  ) {
    this.sink = options.sink ?? null;
    this.source = options.source ?? null;
    this.out2Gates = options.out2GatesIrq ?? true;
  }

  attach(sink: ByteSink | null, source: ByteSource | null = this.source): void {
    this.sink = sink;
    this.source = source;
    this.pullInput();
  }

  private get fifoEnabled(): boolean {
    return (this.fcr & 1) !== 0;
  }

  private get loopback(): boolean {
    return (this.mcr & UART_MCR_LOOP) !== 0;
  }

  /** Bytes the RX FIFO can still take. */
  get rxSpace(): number {
    return (this.fifoEnabled ? FIFO_SIZE : 1) - this.rxCount;
  }

  /**
   * Receives one byte pushed by the host (instead of pulled from the source); on a full FIFO it
   * is lost and OE is set. The interrupt state is updated at once.
   */
  receiveByte(byte: number): void {
    this.push(byte);
    this.timeoutPending = this.rxCount > 0;
    this.update();
  }

  private push(byte: number): void {
    if (this.rxSpace <= 0) {
      this.lsr |= UART_LSR_OE;
      this.overruns++;
    } else {
      this.rx[(this.rxHead + this.rxCount) % FIFO_SIZE] = byte & 0xff;
      this.rxCount++;
      this.lsr |= UART_LSR_DR;
    }
    this.timeoutPending = false;
  }

  /** Pulls bytes from the source while the FIFO has room (call when the terminal has input). */
  pullInput(): void {
    const src = this.source;
    if (src != null && !this.loopback) {
      while (this.rxSpace > 0 && src.available() > 0) this.push(src.readByte());
    }
    // No more characters arriving: data under the trigger level times out.
    this.timeoutPending = this.rxCount > 0 && (src == null || src.available() === 0 || this.loopback);
    this.update();
  }

  /** A break condition on the line (BI, with a zero byte as the datasheet says). */
  sendBreak(): void {
    this.push(0);
    this.lsr |= UART_LSR_BI;
    this.update();
  }

  /** Sets the modem status inputs (CTS 0x10, DSR 0x20, RI 0x40, DCD 0x80), with deltas. */
  setModemStatus(lines: number): void {
    const old = this.msr & 0xf0;
    lines &= 0xf0;
    const changed = old ^ lines;
    let delta = 0;
    if (changed & 0x10) delta |= 0x01;
    if (changed & 0x20) delta |= 0x02;
    if (old & 0x40 && !(lines & 0x40)) delta |= 0x04; // TERI: trailing edge of RI
    if (changed & 0x80) delta |= 0x08;
    this.msr = lines | (this.msr & 0x0f) | delta;
    this.update();
  }

  private triggerLevel(): number {
    return this.fifoEnabled ? TRIGGER[this.fcr >> 6] : 1;
  }

  /** The IIR interrupt ID now (highest priority first). */
  private interruptId(): number {
    if (this.ier & UART_IER_RLSI && this.lsr & (UART_LSR_OE | 0x0c | UART_LSR_BI)) return IIR_RLSI;
    if (this.ier & UART_IER_RDI) {
      if (this.rxCount >= this.triggerLevel()) return IIR_RDI;
      if (this.rxCount > 0 && this.timeoutPending) return this.fifoEnabled ? IIR_TIMEOUT : IIR_RDI;
    }
    if (this.ier & UART_IER_THRI && this.thriPending) return IIR_THRI;
    if (this.ier & UART_IER_MSI && this.msr & 0x0f) return IIR_MSI;
    return IIR_NONE;
  }

  private update(): void {
    const pending = this.interruptId() !== IIR_NONE;
    const enabled = !this.out2Gates || ((this.mcr & UART_MCR_OUT2) !== 0 && !this.loopback);
    this.irq.setLevel(pending && enabled);
  }

  portRead(offset: number, _size: number): number {
    switch (offset & 7) {
      case 0: {
        if (this.lcr & 0x80) return this.divisor & 0xff;
        let v = 0;
        if (this.rxCount > 0) {
          v = this.rx[this.rxHead];
          this.rxHead = (this.rxHead + 1) % FIFO_SIZE;
          this.rxCount--;
        }
        if (this.rxCount === 0) this.lsr &= ~UART_LSR_DR;
        this.pullInput();
        return v;
      }
      case 1:
        return this.lcr & 0x80 ? (this.divisor >> 8) & 0xff : this.ier;
      case 2: {
        const id = this.interruptId();
        if (id === IIR_THRI) this.thriPending = false;
        const v = id | (this.fifoEnabled ? 0xc0 : 0);
        this.update();
        return v;
      }
      case 3:
        return this.lcr;
      case 4:
        return this.mcr;
      case 5: {
        const v = this.lsr | (this.lsr & (UART_LSR_OE | 0x0c | UART_LSR_BI) && this.fifoEnabled ? 0x80 : 0);
        this.lsr &= ~(UART_LSR_OE | 0x0c | UART_LSR_BI);
        this.update();
        return v;
      }
      case 6: {
        let v: number;
        if (this.loopback) {
          const m = this.mcr;
          v = ((m & UART_MCR_RTS) << 3) | ((m & UART_MCR_DTR) << 5) | ((m & UART_MCR_OUT1) << 4) | ((m & UART_MCR_OUT2) << 4);
          v |= this.msr & 0x0f;
        } else {
          v = this.msr;
        }
        this.msr &= 0xf0;
        this.update();
        return v;
      }
      default:
        return this.scr;
    }
  }

  portWrite(offset: number, _size: number, value: number): void {
    value &= 0xff;
    switch (offset & 7) {
      case 0:
        if (this.lcr & 0x80) {
          this.divisor = (this.divisor & 0xff00) | value;
          return;
        }
        if (this.loopback) {
          this.push(value);
          this.timeoutPending = true;
        } else {
          this.sink?.writeByte(value);
        }
        // Sent at once: THR and the shift register are empty again.
        this.lsr |= UART_LSR_THRE | UART_LSR_TEMT;
        this.thriPending = true;
        break;
      case 1:
        if (this.lcr & 0x80) {
          this.divisor = (this.divisor & 0xff) | (value << 8);
          return;
        }
        // Enabling ETBEI with THR empty raises THRE at once (Linux's UART_BUG_THRE probe relies on it).
        if (value & UART_IER_THRI && !(this.ier & UART_IER_THRI) && this.lsr & UART_LSR_THRE) this.thriPending = true;
        this.ier = value & 0x0f;
        break;
      case 2: {
        const enable = (value & 1) !== 0;
        if (enable !== this.fifoEnabled) this.clearRx();
        if (value & 0x02) this.clearRx();
        // TX FIFO clear: nothing is ever queued for transmission.
        this.fcr = enable ? value & 0xc9 : 0;
        break;
      }
      case 3:
        this.lcr = value;
        return;
      case 4: {
        const wasLoop = this.loopback;
        this.mcr = value & 0x1f;
        if (wasLoop !== this.loopback) this.pullInput();
        break;
      }
      case 5:
      case 6:
        return; // LSR and MSR are read-only (factory test writes ignored)
      default:
        this.scr = value;
        return;
    }
    this.update();
  }

  saveState(): UartState {
    const rx: number[] = [];
    for (let k = 0; k < this.rxCount; k++) rx.push(this.rx[(this.rxHead + k) % FIFO_SIZE]);
    return {
      version: 1,
      rx,
      ier: this.ier,
      lcr: this.lcr,
      mcr: this.mcr,
      lsr: this.lsr,
      msr: this.msr,
      scr: this.scr,
      fcr: this.fcr,
      divisor: this.divisor,
      thriPending: this.thriPending,
      timeoutPending: this.timeoutPending,
    };
  }

  /** Loads a saved state (validated: throws DeviceStateError). */
  loadState(state: unknown): void {
    const r = new StateReader(state, 'Uart16550', 1);
    const rx = r.ints('rx', -FIFO_SIZE, 0, 255);
    const s = {
      ier: r.int('ier', 0, 0x0f),
      lcr: r.int('lcr', 0, 255),
      mcr: r.int('mcr', 0, 0x1f),
      lsr: r.int('lsr', 0, 255),
      msr: r.int('msr', 0, 255),
      scr: r.int('scr', 0, 255),
      fcr: r.int('fcr', 0, 255) & 0xc9,
      divisor: r.int('divisor', 0, 0xffff),
      thriPending: r.bool('thriPending'),
      timeoutPending: r.bool('timeoutPending'),
    };
    this.rx.set(rx);
    this.rxHead = 0;
    this.rxCount = (s.fcr & 1) === 0 ? Math.min(rx.length, 1) : rx.length;
    this.ier = s.ier;
    this.lcr = s.lcr;
    this.mcr = s.mcr;
    this.lsr = (s.lsr & ~UART_LSR_DR) | (this.rxCount > 0 ? UART_LSR_DR : 0);
    this.msr = s.msr;
    this.scr = s.scr;
    this.fcr = s.fcr;
    this.divisor = s.divisor;
    this.thriPending = s.thriPending;
    this.timeoutPending = s.timeoutPending;
    this.update();
  }

  private clearRx(): void {
    this.rxHead = 0;
    this.rxCount = 0;
    this.lsr &= ~UART_LSR_DR;
    this.timeoutPending = false;
  }
}
