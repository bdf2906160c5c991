// ACPI tables and the AML encoder of the RingZero PC.
export {
  ACPI_CREATOR_ID, ACPI_OEM_ID, ACPI_OEM_TABLE_ID, AcpiConfigError, acpiChecksum, buildAcpiTables, writeAcpiTables,
  type AcpiOptions, type AcpiTableInfo, type AcpiTables,
} from './tables';
export * as aml from './aml';
