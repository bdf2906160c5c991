import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { FlatGuestMemory } from '@ringzero/mmu-ept';
import { acpiChecksum, AcpiConfigError, buildAcpiTables, writeAcpiTables, type AcpiTables } from './tables';
import { AmlError, eisaIdValue, integer, nameString, pkgLength } from './aml';
import { ACPI_TABLES_START, ECAM_START, GiB, MiB } from '../layout';

// --- The real peer: ACPICA's iasl (disassembler/compiler) and acpiexec (the interpreter Linux uses).

function haveIasl(): boolean {
  if (!spawnSync('iasl', ['-v']).error) return true;
  const root = typeof process.getuid === 'function' && process.getuid() === 0;
  if (root && !spawnSync('apt-get', ['--version']).error) {
    spawnSync('apt-get', ['install', '-y', '-qq', 'acpica-tools'], { stdio: 'ignore', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
    if (!spawnSync('iasl', ['-v']).error) return true;
  }
  return false;
}
const IASL = haveIasl();
if (!IASL) console.warn('SKIPPED: iasl/acpiexec (acpica-tools) not installed: ACPI tables not checked against ACPICA');

function tableBytes(t: AcpiTables, sig: string): Uint8Array {
  const info = t.tables.find((x) => x.signature === sig);
  if (!info) throw new Error(`no ${sig}`);
  return t.bytes.subarray(info.address - t.base, info.address - t.base + info.length);
}

const u32 = (b: Uint8Array, at: number): number => (b[at] | (b[at + 1] << 8) | (b[at + 2] << 16) | (b[at + 3] << 24)) >>> 0;
const sig = (b: Uint8Array, at: number): string => String.fromCharCode(...b.subarray(at, at + 4));

const FULL = { ramSize: 6 * GiB, cpus: 2, hpet: true, serialPorts: [1, 2], gpe0: true } as const;

describe('AML encoder', () => {
  it('encodes PkgLength in the shortest form, decodable back (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 28 - 5 }), (body) => {
        const p = pkgLength(body);
        const n = p[0] >>> 6;
        expect(p.length).toBe(n + 1);
        let total = n === 0 ? p[0] & 0x3f : p[0] & 0xf;
        for (let k = 0; k < n; k++) total += p[1 + k] * 2 ** (4 + 8 * k);
        expect(total).toBe(body + p.length);
        if (n > 0) expect(pkgLength(body).length).toBe(body + 1 < 0x40 ? 1 : body + 2 < 0x1000 ? 2 : body + 3 < 0x10_0000 ? 3 : 4);
      }),
      { numRuns: 300 },
    );
  });

  it('encodes integers, names and EISA IDs as the spec says', () => {
    expect([...integer(0)]).toEqual([0x00]);
    expect([...integer(1)]).toEqual([0x01]);
    expect([...integer(0x10)]).toEqual([0x0a, 0x10]);
    expect([...integer(0x1234)]).toEqual([0x0b, 0x34, 0x12]);
    expect([...integer(0x1_0000_0000)]).toEqual([0x0e, 0, 0, 0, 0, 1, 0, 0, 0]);
    expect([...nameString('\\_S5')]).toEqual([0x5c, 0x5f, 0x53, 0x35, 0x5f]);
    expect([...nameString('_SB.PCI0')]).toEqual([0x2e, 0x5f, 0x53, 0x42, 0x5f, 0x50, 0x43, 0x49, 0x30]);
    expect(nameString('\\A.B.C')[1]).toBe(0x2f);
    expect(eisaIdValue('PNP0A03')).toBe(0x030ad041);
    expect(() => nameString('toolong')).toThrow(AmlError);
    expect(() => integer(-1)).toThrow(AmlError);
  });
});

describe('ACPI tables', () => {
  const t = buildAcpiTables(FULL);

  it('puts the RSDP first, at 0xE0000, with both checksums right', () => {
    expect(t.rsdpAddress).toBe(ACPI_TABLES_START);
    const r = tableBytes(t, 'RSD PTR ');
    expect(String.fromCharCode(...r.subarray(0, 8))).toBe('RSD PTR ');
    expect(acpiChecksum(r, 0, 20)).toBe(0);
    expect(acpiChecksum(r, 0, 36)).toBe(0);
    expect(r[15]).toBe(2);
  });

  it('gives every table a zero checksum and a length matching its header', () => {
    for (const info of t.tables) {
      const b = tableBytes(t, info.signature);
      if (info.signature === 'RSD PTR ') continue;
      expect(u32(b, 4), info.signature).toBe(info.length);
      if (info.signature !== 'FACS') expect(acpiChecksum(b), info.signature).toBe(0);
      expect(info.address % (info.signature === 'FACS' ? 64 : 16)).toBe(0);
    }
  });

  it('links RSDP -> XSDT/RSDT -> FADT/MADT/MCFG/HPET and FADT -> DSDT/FACS', () => {
    const r = tableBytes(t, 'RSD PTR ');
    const at = (addr: number): Uint8Array => t.bytes.subarray(addr - t.base);
    const xsdt = at(u32(r, 24));
    expect(sig(xsdt, 0)).toBe('XSDT');
    const n = (u32(xsdt, 4) - 36) / 8;
    expect(Array.from({ length: n }, (_, i) => sig(at(u32(xsdt, 36 + 8 * i)), 0))).toEqual(['FACP', 'APIC', 'MCFG', 'HPET']);
    const rsdt = at(u32(r, 16));
    expect(sig(rsdt, 0)).toBe('RSDT');
    const fadt = at(u32(xsdt, 36));
    expect(sig(at(u32(fadt, 40)), 0)).toBe('DSDT');
    expect(sig(at(u32(fadt, 36)), 0)).toBe('FACS');
    expect(u32(fadt, 140)).toBe(u32(fadt, 40)); // X_DSDT agrees with DSDT
  });

  it('writes into guest memory where Linux scans for the RSDP', () => {
    const mem = new FlatGuestMemory(2 * MiB);
    writeAcpiTables(mem, t);
    let found = -1;
    for (let a = 0xe0000; a < 0x100000 && found < 0; a += 16) if (mem.read32(a) === 0x20445352 && mem.read32(a + 4) === 0x20525450) found = a;
    expect(found).toBe(0xe0000);
    expect(() => writeAcpiTables(new FlatGuestMemory(0x80000), t)).toThrow(AcpiConfigError);
  });

  it('rejects bad machine descriptions with one clear error', () => {
    expect(() => buildAcpiTables({ ramSize: 6 * GiB, cpus: 0 })).toThrow(AcpiConfigError);
    expect(() => buildAcpiTables({ ramSize: 6 * GiB, serialPorts: [5] })).toThrow(/COM1-COM4/);
    expect(() => buildAcpiTables({ ramSize: 6 * GiB, serialPorts: [1, 1] })).toThrow(AcpiConfigError);
    expect(() => buildAcpiTables({ ramSize: 3 })).toThrow(RangeError);
    expect(() => buildAcpiTables({ ramSize: 64 * MiB, base: 0xe0001 })).toThrow(AcpiConfigError);
  });

  it('builds for any sane configuration (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 512, max: 2 ** 26 }), fc.integer({ min: 1, max: 254 }), fc.boolean(), fc.boolean(),
        fc.subarray([1, 2, 3, 4]),
        (pages, cpus, hpet, pci64, serialPorts) => {
          const x = buildAcpiTables({ ramSize: pages * 4096, cpus, hpet, pci64, serialPorts });
          for (const info of x.tables) if (info.signature !== 'FACS' && info.signature !== 'RSD PTR ') expect(acpiChecksum(tableBytes(x, info.signature))).toBe(0);
        },
      ),
      { numRuns: 40 },
    );
  });
});

describe.skipIf(!IASL)('ACPI tables against ACPICA (iasl -d, iasl recompile, acpiexec)', () => {
  let dir = '';
  const t = buildAcpiTables(FULL);
  const file = (s: string): string => join(dir, `${s.trim().replace(' ', '')}.dat`);

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'rz-acpi-'));
    for (const info of t.tables) writeFileSync(file(info.signature), tableBytes(t, info.signature));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  function disassemble(s: string): string {
    const r = spawnSync('iasl', ['-d', file(s)], { cwd: dir, encoding: 'utf8' });
    const out = `${r.stdout}${r.stderr}`;
    expect(r.status, out).toBe(0);
    expect(out).not.toMatch(/\bError\b|Warning|Invalid/i);
    const dsl = file(s).replace(/\.dat$/, '.dsl');
    expect(existsSync(dsl)).toBe(true);
    const text = readFileSync(dsl, 'utf8');
    expect(text).not.toMatch(/Incorrect|\*\*\*\* /); // iasl flags bad checksums and unknown fields this way
    return text;
  }

  it('FADT: PM blocks, SCI 9, reset via 0xCF9, not hardware-reduced, fixed power button', () => {
    const d = disassemble('FACP');
    expect(d).toMatch(/SCI Interrupt : 0009/);
    expect(d).toMatch(/PM1A Event Block Address : 00000600/);
    expect(d).toMatch(/PM1A Control Block Address : 00000604/);
    expect(d).toMatch(/PM Timer Block Address : 00000608/);
    expect(d).toMatch(/Hardware Reduced \(V5\) : 0/);
    expect(d).toMatch(/Control Method Power Button \(V1\) : 0/);
    expect(d).toMatch(/Reset Register Supported \(V2\) : 1/);
    expect(d).toMatch(/Address : 0000000000000CF9/);
    expect(d).toMatch(/Value to cause reset : 06/);
    expect(d).toMatch(/8042 Present on ports 60\/64 \(V2\) : 1/);
  });

  it('MADT: two LAPICs, the IOAPIC, IRQ0->GSI2, SCI level/high, LINT1 NMI', () => {
    const d = disassemble('APIC');
    expect(d.match(/\[Processor Local APIC\]/g)?.length).toBe(2);
    expect(d).toMatch(/\[I\/O APIC\][\s\S]*?Address : FEC00000/);
    expect(d).toMatch(/Source : 00\s*\n.*Interrupt : 00000002/);
    expect(d).toMatch(/Source : 09\s*\n.*Interrupt : 00000009\s*\n.*Flags \(decoded below\) : 000D/);
    expect(d).toMatch(/\[Local APIC NMI\][\s\S]*Interrupt Input LINT : 01/);
  });

  it('MCFG, HPET, XSDT, RSDT and FACS disassemble cleanly', () => {
    expect(disassemble('MCFG')).toMatch(/Base Address : 00000000E0000000[\s\S]*End Bus Number : FF/);
    expect(disassemble('HPET')).toMatch(/Address : 00000000FED00000/);
    expect(disassemble('XSDT').match(/ACPI Table Address/g)?.length).toBe(4);
    expect(disassemble('RSDT').match(/ACPI Table Address/g)?.length).toBe(4);
    expect(disassemble('FACS')).toMatch(/Signature : "FACS"/);
  });

  it('DSDT: iasl shows the objects, and recompiling its disassembly gives our exact AML', () => {
    const d = disassemble('DSDT');
    for (const re of [
      /Name \(\\_S5, Package \(0x04\)/, /Device \(PCI0\)/, /EisaId \("PNP0A08"\)/, /EisaId \("PNP0A03"\)/,
      /WordBusNumber \(ResourceProducer/, /QWordMemory \(ResourceProducer/, /Name \(_PRT, Package \(0x80\)/, /Method \(_OSC, 4/,
      /EisaId \("PNP0C02"\)/, /0xE0000000,\s+\/\/ Address Base/, /EisaId \("PNP0501"\)/, /EisaId \("PNP0303"\)/, /EisaId \("PNP0B00"\)/,
      /EisaId \("PNP0103"\)/, /"ACPI0007"/,
    ]) expect(d).toMatch(re);
    writeFileSync(join(dir, 'rt.dsl'), d);
    const r = spawnSync('iasl', ['-oa', '-p', join(dir, 'rt'), join(dir, 'rt.dsl')], { cwd: dir, encoding: 'utf8' });
    expect(r.stdout).toMatch(/0 Errors, 0 Warnings/);
    const ours = tableBytes(t, 'DSDT').subarray(36);
    const theirs = new Uint8Array(readFileSync(join(dir, 'rt.aml'))).subarray(36);
    expect(Buffer.from(theirs).equals(Buffer.from(ours))).toBe(true);
  });

  it('DSDT: ACPICA loads it and evaluates _S5, _CRS, _PRT and _OSC without errors', () => {
    const r = spawnSync('acpiexec', ['-b', 'evaluate \\_S5; resources \\_SB.PCI0; resources \\_SB.MRES; evaluate \\_SB.PCI0._OSC (5B 4D DB 33 F7 1F 1C 40 96 57 74 41 C0 3D D7 66) 1 3 (01 00 00 00 1F 00 00 00 1D 00 00 00)', file('DSDT')], {
      cwd: dir, encoding: 'utf8', timeout: 60_000,
    });
    const out = `${r.stdout}${r.stderr}`;
    expect(out).toMatch(/9 Devices/);
    expect(out).not.toMatch(/ACPI Error|AE_AML|Exception/);
    expect(out).toMatch(/\[Package\] Contains 4 Elements/);
    expect(out).toMatch(/Address Maximum : 00FF/); // bus range
    expect(out).toMatch(/Address Minimum : C0000000[\s\S]*Address Maximum : DFFFFFFF/);
    expect(out).toMatch(/Address Minimum : 00000001C0000000/); // 64-bit window after 7 GiB of address space
    expect(out).toMatch(/Address : E0000000\s*\n\s*Address Length : 10000000/); // ECAM reserved as motherboard resource
    // _PRT: slot 1 INTA -> GSI 17, slot 31 INTD -> GSI 18 (the swizzle)
    expect(out).toMatch(/Address : 000000000001FFFF\s*\n\s*Pin : 00000000\s*\n\s*Source : \[NULL NAMESTRING\]\s*\n\s*Source Index : 00000011/);
    expect(out).toMatch(/Address : 000000000001FFFF\s*\n\s*Pin : 00000003\s*\n\s*Source : \[NULL NAMESTRING\]\s*\n\s*Source Index : 00000010/);
    // _OSC with the PCI host bridge UUID, query flag set: every requested control granted, no error bits
    expect(out).toMatch(/\[Buffer\] Length 0C =\s+0000: 01 00 00 00 1F 00 00 00 1D 00 00 00/);
    expect(ECAM_START).toBe(0xe0000000);
  });
});
