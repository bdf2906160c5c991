// @ringzero/machine: skeleton. The package's issue fills in its public surface here.
export {};
