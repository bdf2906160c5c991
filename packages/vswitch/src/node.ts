// Node adapters (filled in below).
export {};
