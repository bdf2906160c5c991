// Buses and interrupt plumbing of @ringzero/machine.
export { PortIoBus, PortIoConflictError, allOnes, type PortIoDevice, type PortIoRange, type PortIoRegistry } from './pio';
export { MmioBus, MmioConflictError, MMIO_ADDRESS_LIMIT, type MmioDevice, type MmioRange, type MmioRegistry } from './mmio';
export { IrqLine, SharedIrqLine, NO_IRQ, type InterruptLine, type IrqChip } from './irq';
export {
  DELIVERY_EXTINT,
  DELIVERY_FIXED,
  DELIVERY_INIT,
  DELIVERY_LOWEST_PRIORITY,
  DELIVERY_NMI,
  DELIVERY_SMI,
  MSI_ADDRESS_BASE,
  MSI_ADDR_DEST_LOGICAL,
  MSI_ADDR_DEST_SHIFT,
  MSI_ADDR_REDIRECTION_HINT,
  MSI_DATA_DELIVERY_SHIFT,
  MSI_DATA_LEVEL_ASSERT,
  MSI_DATA_TRIGGER_LEVEL,
  decodeMsi,
  msiAddress,
  msiData,
  newMsiMessage,
  type EoiTarget,
  type ExtIntController,
  type InterruptSink,
  type MsiMessage,
} from './interrupts';
export { ManualClock, TimerGroup, wallClock, type TimeSource, type TimedDevice } from './time';
