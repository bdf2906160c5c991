// Benchmarks print one JSON object per line: {"name","value","unit","peer"?,"peerValue"?,"ratio"?}.
// This package has no benchmark yet; its issue adds one.
export {};
