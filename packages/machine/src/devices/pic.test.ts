import fc from 'fast-check';
import { beforeEach, describe, expect, it } from 'vitest';
import { PortIoBus } from '../bus/pio';
import { RecordingInterruptSink } from '../bus/testing';
import { DualPic } from './pic';

let bus: PortIoBus;
let pic: DualPic;
let sink: RecordingInterruptSink;
const out = (port: number, v: number): void => bus.write(port, 1, v);
const inb = (port: number): number => bus.read(port, 1);

/** arch/x86/kernel/i8259.c init_8259A(auto_eoi) followed by the unmask of the cascade. */
function linuxInit(autoEoi = false): void {
  out(0x21, 0xff);
  out(0xa1, 0xff);
  out(0x20, 0x11); // ICW1: edge, cascade, ICW4 needed
  out(0x21, 0x30); // ICW2: vectors 0x30-0x37
  out(0x21, 0x04); // ICW3: slave on IR2
  out(0x21, autoEoi ? 0x03 : 0x01); // ICW4: 8086 mode (+AEOI)
  out(0xa0, 0x11);
  out(0xa1, 0x38);
  out(0xa1, 0x02); // ICW3: slave identity 2
  out(0xa1, 0x01);
  out(0x21, 0xfb); // cached masks: all masked but the cascade
  out(0xa1, 0xff);
}

beforeEach(() => {
  bus = new PortIoBus();
  sink = new RecordingInterruptSink();
  pic = new DualPic({ sink });
  bus.register(0x20, 2, pic.master, 'pic-master');
  bus.register(0xa0, 2, pic.slave, 'pic-slave');
  bus.register(0x4d0, 2, pic.elcr, 'elcr');
});

describe('8259A pair', () => {
  it('passes Linux probe_8259A (IMR reads back) and init_8259A', () => {
    out(0xa1, 0xff);
    out(0x21, 0xfb);
    expect(inb(0x21)).toBe(0xfb);
    linuxInit();
    expect(pic.master.vectorBase).toBe(0x30);
    expect(pic.slave.vectorBase).toBe(0x38);
    expect(inb(0x21)).toBe(0xfb);
    expect(inb(0xa1)).toBe(0xff);
    expect(pic.intr).toBe(false);
  });

  it('delivers a master IRQ: INTR, INTA vector, ISR, specific EOI as mask_and_ack_8259A does', () => {
    linuxInit();
    out(0x21, 0xf9); // unmask IRQ1
    pic.setIrq(1, true);
    expect(sink.extInt).toBe(true);
    expect(inb(0x20)).toBe(0x02); // IRR
    expect(pic.acknowledge()).toBe(0x31);
    expect(sink.extInt).toBe(false);
    out(0x20, 0x0b); // OCW3: read ISR
    expect(inb(0x20)).toBe(0x02);
    out(0x20, 0x0a); // back to IRR
    expect(inb(0x20)).toBe(0x00); // edge latch cleared by INTA
    out(0x20, 0x60 + 1); // specific EOI
    out(0x20, 0x0b);
    expect(inb(0x20)).toBe(0);
    pic.setIrq(1, false);
  });

  it('delivers a slave IRQ through the cascade and needs both EOIs', () => {
    linuxInit();
    out(0xa1, 0xef); // unmask IRQ12
    pic.setIrq(12, true);
    expect(sink.extInt).toBe(true);
    expect(pic.acknowledge()).toBe(0x3c);
    expect(pic.master.isr).toBe(0x04);
    expect(pic.slave.isr).toBe(0x10);
    pic.setIrq(12, false);
    pic.setIrq(12, true); // a new edge while in service: latched, not delivered
    expect(sink.extInt).toBe(false);
    out(0xa0, 0x60 + 4);
    out(0x20, 0x60 + 2);
    expect(sink.extInt).toBe(true);
    expect(pic.acknowledge()).toBe(0x3c);
  });

  it('returns the spurious IRQ7 vector without touching ISR when nothing is pending', () => {
    linuxInit();
    expect(pic.acknowledge()).toBe(0x37);
    expect(pic.master.isr).toBe(0);
  });

  it('gives the default IR7 when a slave request vanishes before INTA (8259A datasheet: IR must stay high until INTA)', () => {
    linuxInit();
    out(0x4d1, 0x04); // IRQ10 level-triggered
    out(0xa1, 0xfb);
    pic.setIrq(10, true);
    expect(sink.extInt).toBe(true);
    pic.setIrq(10, false);
    expect(sink.extInt).toBe(false);
    expect(pic.acknowledge()).toBe(0x37);
    expect(pic.master.isr).toBe(0);
  });

  it('honours fixed priority, nesting, and masks', () => {
    linuxInit();
    out(0x21, 0x00);
    pic.setIrq(3, true);
    pic.setIrq(5, true);
    expect(pic.acknowledge()).toBe(0x33);
    expect(sink.extInt).toBe(false); // IR5 is lower than IR3 in service
    pic.setIrq(1, true);
    expect(sink.extInt).toBe(true); // IR1 nests
    expect(pic.acknowledge()).toBe(0x31);
    out(0x20, 0x20); // non-specific EOI ends the highest in service: IR1
    expect(pic.master.isr).toBe(0x08);
    out(0x20, 0x20);
    expect(pic.acknowledge()).toBe(0x35);
    out(0x21, 0xff);
    pic.setIrq(6, true);
    expect(sink.extInt).toBe(false);
  });

  it('rotates priorities (OCW2 set priority, rotate on EOI)', () => {
    linuxInit();
    out(0x21, 0x00);
    out(0x20, 0xc0 | 3); // IR3 lowest, IR4 highest
    pic.setIrq(1, true);
    pic.setIrq(5, true);
    expect(pic.acknowledge()).toBe(0x35);
    out(0x20, 0xa0); // rotate on non-specific EOI: IR5 becomes lowest
    expect(pic.master.priorityAdd).toBe(6);
    expect(pic.acknowledge()).toBe(0x31);
  });

  it('auto-EOI leaves ISR clear', () => {
    linuxInit(true);
    out(0x21, 0x00);
    pic.setIrq(4, true);
    expect(pic.acknowledge()).toBe(0x34);
    expect(pic.master.isr).toBe(0);
  });

  it('special mask mode lets lower priorities through while the in-service one is masked', () => {
    linuxInit();
    out(0x21, 0x00);
    pic.setIrq(3, true);
    expect(pic.acknowledge()).toBe(0x33);
    pic.setIrq(6, true);
    expect(sink.extInt).toBe(false);
    out(0x21, 0x08); // mask IR3
    out(0x20, 0x68); // OCW3: set special mask
    expect(sink.extInt).toBe(true);
    expect(pic.acknowledge()).toBe(0x36);
  });

  it('poll command returns 0x80|IR and services it', () => {
    linuxInit();
    out(0x21, 0x00);
    pic.setIrq(6, true);
    out(0x20, 0x0c);
    expect(inb(0x20)).toBe(0x86);
    expect(pic.master.isr).toBe(0x40);
    out(0x20, 0x0c);
    expect(inb(0x20)).toBe(0x00);
  });

  it('ELCR makes an input level-sensitive (PCI IRQ 9/10/11) with the PIIX writable masks', () => {
    linuxInit();
    out(0x4d0, 0xff);
    out(0x4d1, 0xff);
    expect(inb(0x4d0)).toBe(0xf8);
    expect(inb(0x4d1)).toBe(0xde);
    out(0x4d0, 0);
    out(0x4d1, 0x02); // IRQ9 level
    out(0x21, 0xfb);
    out(0xa1, 0xfd);
    pic.setIrq(9, true);
    expect(pic.acknowledge()).toBe(0x39);
    out(0xa0, 0x20);
    out(0x20, 0x20);
    expect(sink.extInt).toBe(true); // still asserted: requested again
    expect(pic.acknowledge()).toBe(0x39);
    out(0xa0, 0x20);
    out(0x20, 0x20);
    pic.setIrq(9, false);
    expect(sink.extInt).toBe(false);
    // edge input: a held level does not retrigger after EOI
    out(0x21, 0xfa);
    pic.setIrq(0, true);
    expect(pic.acknowledge()).toBe(0x30);
    out(0x20, 0x20);
    expect(sink.extInt).toBe(false);
  });

  it('never throws on random port traffic and always acknowledges a vector byte (fuzz)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.constantFrom(0x20, 0x21, 0xa0, 0xa1, 0x4d0, 0x4d1), fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 15 }), fc.boolean()), { maxLength: 60 }),
        (ops) => {
          for (const [port, v, irq, level] of ops) {
            out(port, v);
            inb(port);
            pic.setIrq(irq, level);
            const vec = pic.acknowledge();
            if (vec < 0 || vec > 255) return false;
          }
          return true;
        },
      ),
      { numRuns: 300 },
    );
  });
});
