// PC platform devices of @ringzero/machine. None of them knows the board: ports, IRQs and MMIO
// bases are where the machine registers them.
export { DeviceStateError, StateReader } from './state';
export { DualPic, Pic8259, type DualPicOptions, type DualPicState, type Pic8259State } from './pic';
export { Pit8254, PitChannel, PIT_FREQUENCY_HZ, type PitChannelState, type PitState } from './pit';
export { Rtc, daysFromCivil, RTC_CENTURY, RTC_REG_A, RTC_REG_B, RTC_REG_C, RTC_REG_D, type RtcOptions, type RtcState } from './rtc';
export { Uart16550, type ByteSink, type ByteSource, type UartOptions, type UartState } from './uart';
export { I8042, type I8042Events, type I8042State } from './i8042';
export { IoApic, IOAPIC_MMIO_SIZE, type IoApicOptions, type IoApicState } from './ioapic';
export { AcpiPm, PM_TIMER_FREQUENCY_HZ, PM1_PWRBTN_STS, PM1_TMR_STS, PM1_CNT_SCI_EN, PM1_CNT_SLP_EN, type AcpiPmOptions, type AcpiPmState } from './acpi-pm';
export { DebugExit, PostCodePort } from './debug';
export * from './pci/index';
