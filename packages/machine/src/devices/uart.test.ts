import fc from 'fast-check';
import { beforeEach, describe, expect, it } from 'vitest';
import { PortIoBus } from '../bus/pio';
import { RecordingLine } from '../bus/testing';
import { Uart16550, type ByteSource } from './uart';

const BASE = 0x3f8;
let bus: PortIoBus;
let irq: RecordingLine;
let uart: Uart16550;
let sent: number[];
let input: number[];
const source: ByteSource = { available: () => input.length, readByte: () => input.shift()! };
const out = (reg: number, v: number): void => bus.write(BASE + reg, 1, v);
const inb = (reg: number): number => bus.read(BASE + reg, 1);

beforeEach(() => {
  bus = new PortIoBus();
  irq = new RecordingLine();
  sent = [];
  input = [];
  uart = new Uart16550(irq, { sink: { writeByte: (b) => sent.push(b) }, source });
  bus.register(BASE, 8, uart, 'com1', 1);
});

describe('16550A UART', () => {
  it('passes Linux 8250 autoconfig: IER test, loopback MSR test, 16550A FIFO identification', () => {
    // drivers/tty/serial/8250/8250_port.c autoconfig()
    const scratch = inb(1);
    out(1, 0);
    const scratch2 = inb(1) & 0x0f;
    out(1, 0x0f);
    const scratch3 = inb(1) & 0x0f;
    out(1, scratch);
    expect([scratch2, scratch3]).toEqual([0, 0x0f]);
    const saveMcr = inb(4);
    out(4, 0x10 | 0x0a); // UART_MCR_LOOP | 0x0A
    expect(inb(6) & 0xf0).toBe(0x90);
    out(4, saveMcr);
    out(2, 0x01); // UART_FCR_ENABLE_FIFO
    expect(inb(2) >> 6).toBe(3); // 16550A family
    out(3, 0x80); // UART_LCR_CONF_MODE_A: EFR probe must not look like a 16650
    expect(inb(2)).not.toBe(0);
    out(3, 0xbf); // UART_LCR_CONF_MODE_B
    expect(inb(2)).not.toBe(0);
    out(3, 0);
    out(2, 0x21); // 64-byte FIFO enable probe (16750): bit 5 must stay clear
    expect(inb(2) >> 5).toBe(6);
    out(1, 0x40); // XScale UUE probe: upper IER bits read back 0
    expect(inb(1) & 0x40).toBe(0);
    expect(inb(7)).toBe(0);
    out(7, 0xa5);
    expect(inb(7)).toBe(0xa5);
  });

  it('reasserts THRE when ETBEI is enabled on an idle transmitter (serial8250_do_startup THRE test)', () => {
    out(4, 0x08); // OUT2
    out(1, 0x02);
    const iir1 = inb(2);
    out(1, 0);
    out(1, 0x02);
    const iir = inb(2);
    out(1, 0);
    expect(iir1 & 0x0f).toBe(0x02);
    expect(iir & 0x01).toBe(0); // interrupt pending: no UART_BUG_THRE
    expect(inb(5) & 0x60).toBe(0x60);
  });

  it('transmits to the sink and raises THRE interrupts, gated by OUT2', () => {
    out(3, 0x83);
    out(0, 0x01); // divisor 1 (115200)
    out(1, 0x00);
    out(3, 0x03);
    expect(uart.divisor).toBe(1);
    out(1, 0x02);
    expect(irq.level).toBe(false); // OUT2 clear: the PC's IRQ driver is off
    out(4, 0x0b); // DTR | RTS | OUT2
    expect(irq.level).toBe(true);
    expect(inb(2)).toBe(0x02);
    expect(irq.level).toBe(false); // reading IIR acknowledged THRE
    for (const c of 'hi\n') out(0, c.charCodeAt(0));
    expect(String.fromCharCode(...sent)).toBe('hi\n');
    expect(irq.level).toBe(true);
  });

  it('receives into the FIFO: trigger level, timeout indication, overrun', () => {
    out(2, 0x01 | 0x80); // FIFO, trigger 8
    out(4, 0x08);
    out(1, 0x01);
    input.push(1, 2, 3);
    uart.pullInput();
    expect(inb(2)).toBe(0xcc); // character timeout (below the trigger, nothing more arriving)
    expect(irq.level).toBe(true);
    expect(inb(5) & 0x01).toBe(1);
    expect([inb(0), inb(0), inb(0)]).toEqual([1, 2, 3]);
    expect(inb(5) & 0x01).toBe(0);
    expect(irq.level).toBe(false);
    input.push(...Array.from({ length: 20 }, (_, i) => i));
    uart.pullInput();
    expect(input.length).toBe(4); // pulled only what fits
    expect(inb(2)).toBe(0xc4); // received data available
    for (let i = 0; i < 16; i++) expect(inb(0)).toBe(i);
    expect(input.length).toBe(0); // refilled as the guest drained it
    out(1, 0x05);
    for (let i = 0; i < 20; i++) uart.receiveByte(i);
    expect(irq.level).toBe(true);
    expect(inb(2)).toBe(0xc6); // receiver line status
    expect(inb(5) & 0x82).toBe(0x82); // OE, error in FIFO
    expect(inb(5) & 0x02).toBe(0);
  });

  it('loops transmitted bytes back into the receiver in loopback mode', () => {
    out(4, 0x10);
    out(0, 0x42);
    expect(sent).toEqual([]);
    expect(inb(5) & 1).toBe(1);
    expect(inb(0)).toBe(0x42);
    out(4, 0x10 | 0x01 | 0x04);
    expect(inb(6) & 0xf0).toBe(0x60); // DTR -> DSR, OUT1 -> RI
  });

  it('reports modem status changes when EDSSI is set', () => {
    out(4, 0x08);
    out(1, 0x08);
    uart.setModemStatus(0x30);
    expect(inb(2)).toBe(0x00);
    expect(inb(6)).toBe(0x38); // DCD dropped: delta DCD
    expect(inb(2)).toBe(0x01);
  });

  it('never throws on random register traffic and keeps the FIFO bounded (fuzz)', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 7 }), fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 40 })), { maxLength: 60 }), (ops) => {
        input = [];
        for (const [reg, v, n] of ops) {
          out(reg, v);
          for (let i = 0; i < n; i++) input.push(i);
          uart.pullInput();
          if (input.length > 40 * 60) return false;
          const r = inb(reg);
          if (r < 0 || r > 255) return false;
        }
        return uart.rxSpace >= 0;
      }),
      { numRuns: 300 },
    );
  });
});
