// The `ringzero` boot flags: parsing (every bad flag is one clear CliError) and the CLI process
// itself (one message on stderr and a non-zero status for bad flags, missing files, impossible
// sizes; a multiboot kernel's isa-debug-exit status as QEMU's).
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CliError, parseBootArgs, parseMemorySize } from './cli-args';
import { MiB, GiB } from '../layout';

const CLI = join(__dirname, '..', 'cli.ts');
const dir = mkdtempSync(join(tmpdir(), 'rz-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const HAVE_NASM = !spawnSync('nasm', ['-v']).error;
if (!HAVE_NASM) console.warn('SKIPPED: nasm not installed: the CLI is not tested with a rebooting kernel');

function run(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--conditions=@ringzero/source', CLI, ...args], { encoding: 'utf8', timeout: 60_000, stdio: ['ignore', 'pipe', 'pipe'] });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('boot flags', () => {
  it('parses a full qemu-like command line', () => {
    const a = parseBootArgs([
      '-m', '256M', '-smp', '1', '-kernel', 'vmlinuz', '-initrd', 'initrd.gz', '-append', 'console=ttyS0 quiet',
      '-drive', 'file=disk.qcow2,format=qcow2,if=virtio,readonly=on',
      '-netdev', 'switch,id=n0,bridge=lan', '-netdev', 'vxlan,id=n1,remote=10.0.0.2:4790,vni=42',
      '-device', 'virtio-net-pci,netdev=n0,mac=52:54:00:00:00:07', '-device', 'virtio-net-pci,netdev=n1',
      '-device', 'virtio-rng-pci', '-device', 'isa-debug-exit,iobase=0xf4,iosize=0x04', '-serial', 'stdio', '-nographic', '-no-reboot',
    ]);
    expect(a.description).toEqual({
      memory: 256 * MiB,
      kernel: 'vmlinuz',
      initrd: 'initrd.gz',
      cmdline: 'console=ttyS0 quiet',
      drives: [{ file: 'disk.qcow2', format: 'qcow2', readOnly: true }],
      netdevs: [{ type: 'switch', id: 'n0', bridge: 'lan' }, { type: 'vxlan', id: 'n1', remote: '10.0.0.2', port: 4790, vni: 42 }],
      devices: [{ type: 'virtio-net', netdev: 'n0', mac: '52:54:00:00:00:07' }, { type: 'virtio-net', netdev: 'n1' }, { type: 'virtio-rng' }],
      serial: true,
      debugExit: { iobase: 0xf4, iosize: 4 },
      time: 'wall',
      noReboot: true,
    });
    expect(parseBootArgs(['-kernel', 'k']).description.noReboot).toBe(false);
    expect(a.serialStdio).toBe(true);
    expect(a.noReboot).toBe(true);
  });
  it('reads memory sizes as QEMU does', () => {
    expect(parseMemorySize('256')).toBe(256 * MiB);
    expect(parseMemorySize('1G')).toBe(GiB);
    expect(parseMemorySize('size=512M')).toBe(512 * MiB);
    expect(parseMemorySize('1.5G')).toBe(1.5 * GiB);
  });
  it.each([
    [['-kernel', 'k', '-m', '1K'], /impossible RAM size/],
    [['-kernel', 'k', '-m', '4096G'], /impossible RAM size/],
    [['-kernel', 'k', '-m', 'lots'], /not a size/],
    [['-kernel', 'k', '-smp', '4'], /only one vCPU/],
    [['-kernel', 'k', '-frobnicate'], /-frobnicate: invalid option/],
    [['-kernel', 'k', 'stray'], /unexpected argument 'stray'/],
    [['-kernel'], /-kernel needs a value/],
    [['-m', '64'], /no -kernel given/],
    [['-kernel', 'k', '-drive', 'format=raw'], /file=... is required/],
    [['-kernel', 'k', '-drive', 'file=a,if=ide'], /if=ide is not supported/],
    [['-kernel', 'k', '-drive', 'file=a,format=vmdk'], /format=vmdk is not supported/],
    [['-kernel', 'k', '-drive', 'file=a,readonly=maybe'], /readonly=maybe must be on or off/],
    [['-kernel', 'k', '-drive', 'file=a,colour=red'], /unknown property 'colour'/],
    [['-kernel', 'k', '-netdev', 'user,id=n'], /type 'user' is not supported/],
    [['-kernel', 'k', '-netdev', 'switch'], /id=... is required/],
    [['-kernel', 'k', '-netdev', 'vxlan,id=v,vni=1'], /remote=HOST\[:PORT\] is required/],
    [['-kernel', 'k', '-netdev', 'vxlan,id=v,remote=1.2.3.4'], /vni=N is required/],
    [['-kernel', 'k', '-device', 'e1000'], /'e1000' is not supported/],
    [['-kernel', 'k', '-device', 'virtio-net-pci'], /netdev=ID is required/],
    [['-kernel', 'k', '-device', 'isa-debug-exit,iosize=3'], /iosize must be 1, 2 or 4/],
    [['-kernel', 'k', '-serial', 'pty'], /only stdio and none/],
  ])('rejects %j', (args, msg) => {
    expect(() => parseBootArgs(args)).toThrow(CliError);
    expect(() => parseBootArgs(args)).toThrow(msg);
  });
});

describe('ringzero process', () => {
  const kernel = join(dir, 'mb.bin');
  // A multiboot a.out-kludge kernel: prints "ok\n" on COM1, writes 0x2a to isa-debug-exit.
  const code = [0xba, 0xf8, 0x03, 0, 0, 0xb0, 0x6f, 0xee, 0xb0, 0x6b, 0xee, 0xb0, 0x0a, 0xee, 0xba, 0xf4, 0, 0, 0, 0xb0, 0x2a, 0xee, 0xf4, 0xeb, 0xfd];
  const img = new Uint8Array(32 + code.length);
  const v = new DataView(img.buffer);
  const flags = 0x00010000;
  [0x1badb002, flags, (-(0x1badb002 + flags)) >>> 0, 0x100000, 0x100000, 0x100000 + img.length, 0, 0x100020].forEach((w, i) => v.setUint32(4 * i, w >>> 0, true));
  img.set(code, 32);
  writeFileSync(kernel, img);

  it('boots a multiboot kernel: serial on stdout, isa-debug-exit status (v << 1) | 1', () => {
    const r = run(['-m', '32', '-kernel', kernel, '-nographic', '-device', 'isa-debug-exit,iobase=0xf4,iosize=0x04', '-no-reboot']);
    expect(r.stdout).toBe('ok\n');
    expect(r.status).toBe(((0x2a << 1) | 1) & 0xff);
  });
  it.each([
    [['-kernel', join(dir, 'missing')], /could not read '.*missing': No such file or directory/],
    [['-kernel', kernel, '-m', '1K'], /impossible RAM size/],
    [['-kernel', kernel, '-bogus'], /-bogus: invalid option/],
    [['-kernel', kernel, '-drive', `file=${join(dir, 'nodisk.qcow2')}`], /could not open disk image/],
    [['-kernel', dir], /Is a directory/],
  ])('%j ends with one message and a non-zero status', (args, msg) => {
    const r = run(args);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(msg);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/^ringzero: /);
  });
  it('quits on Ctrl-A X typed on stdin (status 0, as QEMU)', async () => {
    // The same kernel without the isa-debug-exit write: prints "ok" and halts for ever.
    const idle = join(dir, 'idle.bin');
    const b = img.slice();
    b.set([0xfa, 0xf4, 0xeb, 0xfd], 32 + 14); // cli; hlt; jmp $-3 (after the three OUTs)
    writeFileSync(idle, b);
    const child = spawn(process.execPath, ['--import', 'tsx', '--conditions=@ringzero/source', CLI, '-m', '32', '-kernel', idle, '-nographic'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const status = await new Promise<number | null>((resolve) => {
      child.stdout.on('data', (d: Buffer) => {
        stdout += d.toString();
        if (stdout.includes('ok\n')) child.stdin.write('\x01x');
      });
      child.on('exit', (code) => resolve(code));
    });
    expect({ stdout, stderr, status }).toEqual({ stdout: 'ok\n', stderr: '', status: 0 });
  }, 60_000);
  it.skipIf(!HAVE_NASM)('restarts on a guest reset and stops with -no-reboot (the reboot test kernel, as QEMU)', () => {
    const k = join(dir, 'reboot.bin');
    expect(spawnSync('nasm', ['-i', join(__dirname, '..', 'machine', 'test-kernels') + '/', '-f', 'bin', '-o', k, join(__dirname, '..', 'machine', 'test-kernels', 'reboot.asm')]).status).toBe(0);
    const exit = ['-device', 'isa-debug-exit,iobase=0xf4,iosize=0x04', '-nographic', '-icount', 'shift=auto'];
    const rebooting = run(['-m', '32', '-kernel', k, ...exit]);
    expect({ stdout: rebooting.stdout, status: rebooting.status }).toEqual({ stdout: 'boot 1\r\nboot 2\r\nboot 3\r\nboot 4\r\n', status: 0x21 });
    const once = run(['-m', '32', '-kernel', k, ...exit, '-no-reboot']);
    expect({ stdout: once.stdout, status: once.status }).toEqual({ stdout: 'boot 1\r\n', status: 0 });
  });
  it('refuses a file that is not a kernel with the loader message', () => {
    const junk = join(dir, 'junk.bin');
    writeFileSync(junk, new Uint8Array(4096).fill(0x90));
    const r = run(['-kernel', junk]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^ringzero: .*(not a|bzImage|multiboot|ELF)/i);
  });
});
