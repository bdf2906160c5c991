// Test doubles of @ringzero/machine: recording interrupt sinks and lines, a manual clock.
export { RecordingInterruptSink, RecordingLine, RecordingIrqChip } from './bus/testing';
export { ManualClock } from './bus/time';
