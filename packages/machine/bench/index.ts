// Benchmarks print one JSON object per line: {"name","value","unit","peer"?,"peerValue"?,"ratio"?}.
// The boot-time benchmark against qemu-system-x86_64 arrives with the machine; today this runs
// the device-dispatch figures (no peer: QEMU's dispatch cannot be timed apart from its exits).
import './devices';
import './sriov';
