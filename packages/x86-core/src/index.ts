// @ringzero/x86-core: skeleton. The package's issue fills in its public surface here.
export {};
