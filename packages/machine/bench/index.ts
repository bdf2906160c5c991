// Benchmarks print one JSON object per line: {"name","value","unit","peer"?,"peerValue"?,"ratio"?}.
// The device-dispatch figures (no peer: QEMU's dispatch cannot be timed apart from its exits),
// then the Debian boot next to qemu-system-x86_64 -accel tcg (bench/boot.ts).
import './devices';
import './sriov';
import { bootBench } from './boot';

await bootBench();
