// PC platform devices of @ringzero/machine. None of them knows the board: ports, IRQs and MMIO
// bases are where the machine registers them.
export { DualPic, Pic8259, type DualPicOptions } from './pic';
export { Pit8254, PitChannel, PIT_FREQUENCY_HZ } from './pit';
export { Rtc, daysFromCivil, RTC_CENTURY, RTC_REG_A, RTC_REG_B, RTC_REG_C, RTC_REG_D, type RtcOptions } from './rtc';
export { Uart16550, type ByteSink, type ByteSource, type UartOptions } from './uart';
export { I8042, type I8042Events } from './i8042';
export { IoApic, IOAPIC_MMIO_SIZE, type IoApicOptions } from './ioapic';
export { AcpiPm, PM_TIMER_FREQUENCY_HZ, PM1_PWRBTN_STS, PM1_TMR_STS, PM1_CNT_SCI_EN, PM1_CNT_SLP_EN, type AcpiPmOptions } from './acpi-pm';
export { DebugExit, PostCodePort } from './debug';
export * from './pci/index';
