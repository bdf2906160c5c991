// Node-only adapters of @ringzero/machine: guest fixtures (Debian packages, files).
export {
  VIRTIO_MODULES,
  FS_MODULES,
  GUEST_MODULES,
  GuestFixtureError,
  canPrepareGuests,
  defaultCacheDir,
  prepareGuest,
  writeInitramfs,
  type Guest,
  type GuestArch,
  type PrepareOptions,
} from './node/guest';
export { extractVmlinux, MAX_VMLINUX_SIZE, type ExtractedVmlinux } from './boot/node-fastpath';
export { attachTerminal, HostFileError, MAX_BOOT_FILE, nodeMachineHost, type TerminalOptions } from './node/machine-host';
export { BOOT_USAGE, CliError, parseBootArgs, parseMemorySize, type CliMachine } from './node/cli-args';
