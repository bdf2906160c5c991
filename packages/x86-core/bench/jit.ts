// The block compiler (src/jit) against the interpreter, in the same run: guest instructions per
// CPU-second of this process for the interp-loop program (built by index.ts) and busybox
// sha256sum of RINGZERO_BENCH_MIB MiB (default 1). Output must be identical both ways.
import fs from 'node:fs';
import path from 'node:path';
import { jitDefault } from '../src/jit/jit';
import { runProgram } from '../src/user/run';

const BUSYBOX_CANDIDATES = ['/bin/busybox', '/work/main/.cache/ringzero/amd64/busybox'];

function emit(o: Record<string, unknown>): void {
  process.stdout.write(JSON.stringify(o) + '\n');
}

/** Runs program with the JIT on and off; emits MIPS per CPU-second, interpreter as the peer. */
export function jitVsInterp(name: string, program: string, argv: string[], stdin?: Uint8Array): void {
  const once = (jit: boolean): { mips: number; out: string; retired: number } => {
    jitDefault.enabled = jit;
    try {
      const c0 = process.cpuUsage();
      const r = runProgram({ program, argv, env: ['LANG=C', 'LC_ALL=C'], captureStdout: true, ...(stdin ? { stdin } : {}) });
      const c1 = process.cpuUsage(c0);
      if (r.reason !== 'exit') throw new Error(`${name}: ${r.message}`);
      return { mips: r.retired / ((c1.user + c1.system) / 1e6) / 1e6, out: Buffer.from(r.stdout).toString(), retired: r.retired };
    } finally {
      jitDefault.enabled = true;
    }
  };
  const i = once(false);
  const j = once(true);
  if (i.out !== j.out || i.retired !== j.retired) throw new Error(`${name}: JIT and interpreter differ (${j.retired} vs ${i.retired} instructions)`);
  emit({ name: `jit.${name} MIPS per CPU-second`, value: +j.mips.toFixed(2), unit: 'MIPS', peer: 'interpreter', peerValue: +i.mips.toFixed(2), ratio: +(j.mips / i.mips).toFixed(3) });
}

export function jitBusybox(env: NodeJS.ProcessEnv = process.env): void {
  const busybox = BUSYBOX_CANDIDATES.find((p) => fs.existsSync(p));
  if (!busybox) {
    console.warn('SKIPPED: busybox-static not installed: no JIT busybox figure');
    return;
  }
  const mib = Math.max(1, Math.min(1024, Number(env.RINGZERO_BENCH_MIB ?? 1) || 1));
  const buf = new Uint8Array(mib * 1024 * 1024);
  let x = 0x12345678;
  for (let i = 0; i < buf.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    buf[i] = x & 0xff;
  }
  jitVsInterp(`sha256sum.${mib}MiB`, busybox, ['busybox', 'sha256sum'], buf);
}

if (process.argv[1] && path.resolve(process.argv[1]) === path.resolve(import.meta.filename ?? '')) {
  const loop = process.argv[2];
  if (loop && fs.existsSync(loop)) jitVsInterp('interp-loop', loop, ['loop']);
  jitBusybox();
}
