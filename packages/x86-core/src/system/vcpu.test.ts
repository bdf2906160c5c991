/**
 * The vCPU API: exits (port I/O incl. string I/O, MMIO with the complete-and-rerun protocol,
 * EPT violations, HLT, interrupt window, budget, debug, kick), event injection, and the state
 * objects (regs, sregs, FPU, MSRs, LAPIC, events) with their validation.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AddressSpace, HostMemory } from '@ringzero/mmu-ept';
import { EXIT_BUDGET, EXIT_HLT, GP, RAX, RCX, RDI, RSI } from '../constants';
import { HAVE_NASM, longModeVcpu, nasm } from './test/harness';
import { EXIT_DEBUG, EXIT_EPT_VIOLATION, EXIT_INTR, EXIT_IO, EXIT_IRQ_WINDOW, EXIT_MMIO, EXIT_NAMES } from './regs';
import { Vcpu } from './vcpu';

if (!HAVE_NASM) console.warn('SKIPPED: nasm not installed: the vCPU API tests (snippets are assembled with nasm)');

const ENTRY = 0x100000;
const IDT = 0x2000;
const HANDLERS = 0x3000;

function code(src: string): Uint8Array {
  return nasm(`bits 64\norg ${ENTRY}\n${src}\n`);
}

/** A 64-bit IDT at IDT: every vector -> a handler at HANDLERS + v * 16 that does `out 0xe0+?`. */
function installIdt(vcpu: Vcpu, space: AddressSpace): void {
  for (let v = 0; v < 256; v++) {
    const h = HANDLERS + v * 16;
    space.write32(IDT + v * 16, (h & 0xffff) | (0x10 << 16));
    space.write32(IDT + v * 16 + 4, (h & 0xffff0000) | 0x8e00);
    space.write32(IDT + v * 16 + 8, 0);
    space.write32(IDT + v * 16 + 12, 0);
    // handler: mov al, v; out 0xe9, al; (pop error code for vectors with one); iretq
    const errv = v === 8 || (v >= 10 && v <= 14) || v === 17;
    const bytes = [0xb0, v, 0xe6, 0xe9, ...(errv ? [0x48, 0x83, 0xc4, 0x08] : []), 0x48, 0xcf];
    space.writeFrom(h, Uint8Array.from(bytes));
  }
  const s = vcpu.getSregs();
  vcpu.setSregs({ ...s, idt: { base: IDT, limit: 256 * 16 - 1 } });
}

/** Runs until an exit other than port 0xe9 (the handlers' trace); collects the 0xe9 bytes. */
function runTrace(vcpu: Vcpu, trace: number[], max = 100_000): number {
  for (;;) {
    const r = vcpu.run(max);
    if (r === EXIT_IO && vcpu.exit.io.port === 0xe9 && !vcpu.exit.io.input && trace.length < 100) {
      trace.push(vcpu.exit.io.data[0]);
      continue;
    }
    return r;
  }
}

describe.skipIf(!HAVE_NASM)('vCPU exits', () => {
  it('starts from the machine loader state and exits on OUT, IN (completed by the machine) and HLT', () => {
    const { vcpu } = longModeVcpu(code('mov eax, 0x1234abcd\nout 0x80, eax\nin al, 0x71\nmov ebx, eax\nmov dx, 0x3f8\nmov al, 0x41\nout dx, al\nhlt'));
    expect(vcpu.run()).toBe(EXIT_IO);
    const io = vcpu.exit.io;
    expect([io.port, io.size, io.input, io.count, Array.from(io.data)]).toEqual([0x80, 4, false, 1, [0xcd, 0xab, 0x34, 0x12]]);
    expect(vcpu.run()).toBe(EXIT_IO);
    expect([io.port, io.size, io.input]).toEqual([0x71, 1, true]);
    io.data[0] = 0x5a;
    expect(vcpu.run()).toBe(EXIT_IO);
    expect([io.port, io.data[0]]).toEqual([0x3f8, 0x41]);
    expect(vcpu.cpu.lo[3] >>> 0).toBe(0x1234ab5a);
    expect(vcpu.run()).toBe(EXIT_HLT);
    expect(EXIT_NAMES[vcpu.exit.reason]).toBe('hlt');
    expect(vcpu.getRegs().rip).toBe(ENTRY + 19);
  });

  it('byte-sized IN/OUT/INSB/OUTSB (E4 E6 EC EE 6C 6E) exit with size 1; a byte IN changes AL only', () => {
    const src = ['mov eax, 0x12345678', 'in al, 0x60', 'out 0x61, al', 'mov dx, 0x62', 'in al, dx', 'out dx, al', 'mov rdi, 0x200000', 'insb', 'mov rsi, 0x200000', 'outsb', 'hlt'];
    const { vcpu, space } = longModeVcpu(code(src.join('\n')));
    const io = vcpu.exit.io;
    const seen: number[][] = [];
    for (let r = vcpu.run(); r === EXIT_IO; r = vcpu.run()) {
      seen.push([io.port, io.size, io.input ? 1 : 0, io.count, io.data.length]);
      if (io.input) io.data.fill(0xa0 + seen.length);
    }
    expect(seen).toEqual([[0x60, 1, 1, 1, 1], [0x61, 1, 0, 1, 1], [0x62, 1, 1, 1, 1], [0x62, 1, 0, 1, 1], [0x62, 1, 1, 1, 1], [0x62, 1, 0, 1, 1]]);
    expect(vcpu.cpu.lo[RAX] >>> 0).toBe(0x123456a3);
    expect(space.read8(0x200000)).toBe(0xa5);
    expect(space.read8(0x200001)).toBe(0);
  });

  it('string I/O: REP OUTSB carries all elements in one exit, REP INSW writes the machine data', () => {
    const { vcpu, space } = longModeVcpu(code('mov rsi, 0x200000\nmov ecx, 5\nmov dx, 0x1f0\nrep outsb\nmov rdi, 0x201000\nmov ecx, 3\nrep insw\nhlt'));
    space.writeFrom(0x200000, Uint8Array.from([1, 2, 3, 4, 5]));
    expect(vcpu.run()).toBe(EXIT_IO);
    const io = vcpu.exit.io;
    expect([io.port, io.size, io.input, io.count, Array.from(io.data)]).toEqual([0x1f0, 1, false, 5, [1, 2, 3, 4, 5]]);
    expect(vcpu.run()).toBe(EXIT_IO);
    expect([io.size, io.input, io.count]).toEqual([2, true, 3]);
    io.data.set([0x11, 0x22, 0x33, 0x44, 0x55, 0x66]);
    expect(vcpu.run()).toBe(EXIT_HLT);
    const got = new Uint8Array(6);
    space.readInto(0x201000, got);
    expect(Array.from(got)).toEqual([0x11, 0x22, 0x33, 0x44, 0x55, 0x66]);
    expect(vcpu.cpu.lo[RCX]).toBe(0);
    expect(vcpu.cpu.lo[RSI]).toBe(0x200005);
    expect(vcpu.cpu.lo[RDI]).toBe(0x201006);
  });

  it('MMIO: a read is completed by the machine, a read-modify-write reads once and writes once', () => {
    const { vcpu, space } = longModeVcpu(code('mov rbx, 0xd0000000\nmov eax, [rbx + 0x10]\nadd dword [rbx + 0x20], 5\nmov rsi, 0xd0000100\nmov rdi, 0x200000\nmov ecx, 3\nrep movsd\nhlt'));
    space.addMmio(0xd0000000, 0x1000, 7);
    // PD entry for 3 GiB..: map 0xd0000000 with a 2 MiB page in the identity tables (PDPT[3]).
    space.write64(0xa000 + 3 * 8, 0xc003, 0);
    for (let i = 0; i < 512; i++) space.write64(0xc000 + i * 8, (((3 * 512 + i) << 21) | 0x83) >>> 0, 0);
    const m = vcpu.exit.mmio;
    const log: string[] = [];
    const device = new Map<number, number>([[0xd0000010, 0xcafe], [0xd0000020, 40], [0xd0000100, 1], [0xd0000104, 2], [0xd0000108, 3]]);
    for (;;) {
      const r = vcpu.run();
      if (r !== EXIT_MMIO) {
        expect(r).toBe(EXIT_HLT);
        break;
      }
      const dv = new DataView(m.data.buffer);
      if (m.write) {
        log.push(`w ${m.address.toString(16)} ${m.size} ${dv.getUint32(0, true)}`);
        device.set(m.address, dv.getUint32(0, true));
      } else {
        log.push(`r ${m.address.toString(16)} ${m.size}`);
        dv.setUint32(0, device.get(m.address) ?? 0, true);
      }
    }
    expect(log).toEqual(['r d0000010 4', 'r d0000020 4', 'w d0000020 4 45', 'r d0000100 4', 'r d0000104 4', 'r d0000108 4']);
    expect(vcpu.cpu.lo[RAX]).toBe(0xcafe);
    const got = new Uint32Array(3);
    for (let i = 0; i < 3; i++) got[i] = space.read32(0x200000 + 4 * i);
    expect(Array.from(got)).toEqual([1, 2, 3]);
  });

  it('string I/O with MMIO: REP INSB into and REP OUTSW from a device, one element per exit pair, restartable mid-REP (an interrupt in between)', () => {
    const src = ['mov rdi, 0xd0000000', 'mov ecx, 3', 'mov dx, 0x60', 'sti', 'nop', 'rep insb', 'mov rsi, 0xd0000100', 'mov ecx, 3', 'mov dx, 0x61', 'rep outsw', 'hlt'];
    const { vcpu, space } = longModeVcpu(code(src.join('\n')));
    installIdt(vcpu, space);
    space.addMmio(0xd0000000, 0x1000, 7);
    space.write64(0xa000 + 3 * 8, 0xc003, 0);
    for (let i = 0; i < 512; i++) space.write64(0xc000 + i * 8, (((3 * 512 + i) << 21) | 0x83) >>> 0, 0);
    const device = new Map<number, number>([[0xd0000100, 0x1111], [0xd0000102, 0x2222], [0xd0000104, 0x3333]]);
    const log: string[] = [];
    const cpu = vcpu.cpu;
    let portValue = 0x40;
    for (;;) {
      const r = vcpu.run();
      const regs = `rcx=${cpu.lo[RCX]} rsi=${(cpu.lo[RSI] >>> 0).toString(16)} rdi=${(cpu.lo[RDI] >>> 0).toString(16)}`;
      if (r === EXIT_IO) {
        const io = vcpu.exit.io;
        if (io.port === 0xe9) {
          log.push(`irq handler ${io.data[0].toString(16)}`);
          continue;
        }
        if (io.input) io.data[0] = ++portValue;
        log.push(`io ${io.input ? 'in' : 'out'} ${io.port.toString(16)} size ${io.size} count ${io.count}${io.input ? '' : ` data ${io.data[0] | (io.data[1] << 8)}`} ${regs}`);
        // Between the second and third INSB element, an external interrupt arrives.
        if (io.input && portValue === 0x42) vcpu.injectInterrupt(0x40);
        continue;
      }
      if (r === EXIT_MMIO) {
        const m = vcpu.exit.mmio;
        const dv = new DataView(m.data.buffer);
        if (m.write) {
          device.set(m.address, m.data[0]);
          log.push(`mmio w ${m.address.toString(16)} ${m.size} ${m.data[0].toString(16)} ${regs}`);
        } else {
          dv.setUint32(0, device.get(m.address) ?? 0, true);
          log.push(`mmio r ${m.address.toString(16)} ${m.size} ${regs}`);
        }
        continue;
      }
      expect(EXIT_NAMES[r]).toBe('hlt');
      break;
    }
    expect(log).toEqual([
      'io in 60 size 1 count 1 rcx=3 rsi=0 rdi=d0000000',
      'mmio w d0000000 1 41 rcx=3 rsi=0 rdi=d0000000',
      'io in 60 size 1 count 1 rcx=2 rsi=0 rdi=d0000001',
      'mmio w d0000001 1 42 rcx=2 rsi=0 rdi=d0000001',
      'irq handler 40',
      'io in 60 size 1 count 1 rcx=1 rsi=0 rdi=d0000002',
      'mmio w d0000002 1 43 rcx=1 rsi=0 rdi=d0000002',
      'mmio r d0000100 2 rcx=3 rsi=d0000100 rdi=d0000003',
      'io out 61 size 2 count 1 data 4369 rcx=3 rsi=d0000100 rdi=d0000003',
      'mmio r d0000102 2 rcx=2 rsi=d0000102 rdi=d0000003',
      'io out 61 size 2 count 1 data 8738 rcx=2 rsi=d0000102 rdi=d0000003',
      'mmio r d0000104 2 rcx=1 rsi=d0000104 rdi=d0000003',
      'io out 61 size 2 count 1 data 13107 rcx=1 rsi=d0000104 rdi=d0000003',
    ]);
    expect([cpu.lo[RCX], cpu.lo[RSI] >>> 0]).toEqual([0, 0xd0000106]);
  });

  it('REP INSD into unbacked memory: an EPT-violation exit per page; after retryAccess the element is written, the port read only once', () => {
    const { vcpu, space } = longModeVcpu(code('mov rdi, 0x17ffff8\nmov ecx, 4\nmov dx, 0x70\nrep insd\nhlt'), ENTRY, {}, 0x1800000);
    let reads = 0;
    let epts = 0;
    for (;;) {
      const r = vcpu.run();
      if (r === EXIT_IO) {
        for (let k = 0; k < vcpu.exit.io.count; k++) new DataView(vcpu.exit.io.data.buffer).setUint32(k * 4, 0xa0 + ++reads, true);
        continue;
      }
      if (r === EXIT_EPT_VIOLATION) {
        epts++;
        expect(vcpu.exit.ept.gpa).toBe(0x1800000);
        expect(vcpu.exit.ept.write).toBe(true);
        space.addRam(0x1800000, 0x200000);
        vcpu.retryAccess();
        continue;
      }
      expect(EXIT_NAMES[r]).toBe('hlt');
      break;
    }
    expect([reads, epts]).toEqual([4, 1]);
    expect([space.read32(0x17ffff8), space.read32(0x17ffffc), space.read32(0x1800000), space.read32(0x1800004)]).toEqual([0xa1, 0xa2, 0xa3, 0xa4]);
    expect(vcpu.cpu.lo[RDI]).toBe(0x1800008);
  });

  it('an access to unbacked guest-physical memory is an EPT-violation exit; the machine maps RAM and retries', () => {
    const { vcpu, space } = longModeVcpu(code('mov rax, [0x1800000]\nhlt'), ENTRY, {}, 16 * 1024 * 1024);
    expect(vcpu.run()).toBe(EXIT_EPT_VIOLATION);
    expect(vcpu.exit.ept.gpa).toBe(0x1800000);
    expect(vcpu.exit.ept.write).toBe(false);
    space.addRam(0x1800000, 0x200000);
    space.write32(0x1800000, 0x77);
    vcpu.retryAccess();
    expect(vcpu.run()).toBe(EXIT_HLT);
    expect(vcpu.cpu.lo[RAX]).toBe(0x77);
  });

  it('interrupt window, injected interrupts and NMI go through the IDT', () => {
    const { vcpu, space } = longModeVcpu(code('nop\nnop\nsti\nnop\nnop\nhlt\nhlt'));
    installIdt(vcpu, space);
    vcpu.requestInterruptWindow = true;
    expect(vcpu.canInjectInterrupt()).toBe(false);
    const trace: number[] = [];
    expect(runTrace(vcpu, trace)).toBe(EXIT_IRQ_WINDOW);
    // The window opens only after the instruction that follows STI (interrupt shadow).
    expect(vcpu.getRegs().rip).toBe(ENTRY + 4);
    expect(vcpu.canInjectInterrupt()).toBe(true);
    vcpu.requestInterruptWindow = false;
    expect(vcpu.injectInterrupt(0x30)).toBe(true);
    expect(vcpu.injectInterrupt(0x31)).toBe(false);
    vcpu.injectNmi();
    expect(runTrace(vcpu, trace)).toBe(EXIT_HLT);
    expect(trace).toEqual([2, 0x30]);
    expect(vcpu.interruptsDelivered).toBe(2);
    // HLT with IF = 1: an APIC interrupt wakes it (once the APIC is software-enabled).
    vcpu.apic.writeReg(0xf0, 0x1ff);
    vcpu.apic.accept(0x41);
    expect(runTrace(vcpu, trace)).toBe(EXIT_HLT);
    expect(trace).toEqual([2, 0x30, 0x41]);
  });

  it('MOV SS blocks interrupts for one instruction', () => {
    const { vcpu } = longModeVcpu(code('sti\nnop\nmov eax, 0x18\nmov ss, eax\nnop\nhlt'));
    expect(vcpu.run(3)).toBe(EXIT_BUDGET);
    expect(vcpu.canInjectInterrupt()).toBe(true);
    expect(vcpu.run(1)).toBe(EXIT_BUDGET); // mov ss
    expect(vcpu.canInjectInterrupt()).toBe(false);
    expect(vcpu.run(1)).toBe(EXIT_BUDGET); // nop
    expect(vcpu.canInjectInterrupt()).toBe(true);
  });

  it('budget, single-step debug exits and kick', () => {
    const { vcpu } = longModeVcpu(code('l: inc rax\njmp l'));
    expect(vcpu.run(1001)).toBe(EXIT_BUDGET);
    expect(vcpu.cpu.retired).toBe(1001);
    vcpu.debug.singleStep = true;
    expect(vcpu.run()).toBe(EXIT_DEBUG);
    expect(vcpu.cpu.retired).toBe(1002);
    vcpu.debug.singleStep = false;
    vcpu.kick();
    expect(vcpu.run()).toBe(EXIT_INTR);
    // INT3 as a debug exit (software breakpoints owned by the machine's debugger).
    const b = longModeVcpu(code('nop\nint3\nhlt')).vcpu;
    b.debug.int3 = true;
    expect(b.run()).toBe(EXIT_DEBUG);
    expect(b.exit.debugVector).toBe(3);
    expect(b.getRegs().rip).toBe(ENTRY + 1);
    b.debug.int3 = false;
    vcpu.kick();
    expect(vcpu.run()).toBe(EXIT_INTR);
  });

  it('RDMSR of an unknown MSR and a non-canonical FS base raise #GP (KVM, SDM)', () => {
    const { vcpu, space } = longModeVcpu(code('mov ecx, 0x12345\nrdmsr\nmov ecx, 0xc0000100\nxor eax, eax\nmov edx, 0x8000\nwrmsr\nhlt'));
    installIdt(vcpu, space);
    // #GP handler: trace, skip the 2-byte RDMSR/WRMSR, drop the error code, return.
    space.writeFrom(HANDLERS + GP * 16, Uint8Array.from([0xb0, GP, 0xe6, 0xe9, 0x48, 0x83, 0x44, 0x24, 0x08, 0x02, 0x48, 0x83, 0xc4, 0x08, 0x48, 0xcf]));
    const trace: number[] = [];
    expect(runTrace(vcpu, trace)).toBe(EXIT_HLT);
    expect(trace).toEqual([GP, GP]);
  });
});

describe.skipIf(!HAVE_NASM)('decode cache in system mode', () => {
  it('self-modifying code and device writes to code are seen at once', () => {
    const src = 'xor ebx, ebx\nagain:\ntarget: mov eax, 0x11111111\ninc ebx\ncmp ebx, 2\nje done\nmov dword [rel target + 1], 0x22222222\njmp again\ndone: hlt';
    const { vcpu, space } = longModeVcpu(code(src));
    expect(vcpu.run()).toBe(EXIT_HLT);
    expect(vcpu.cpu.lo[RAX]).toBe(0x22222222);
    // A device (DMA) rewrites the immediate; rerun from `target` (ENTRY + 2).
    space.writeFrom(ENTRY + 3, Uint8Array.from([0x33, 0x33, 0x33, 0x33]));
    vcpu.setRegs({ ...vcpu.getRegs(), rbx: 5, rip: ENTRY + 2 });
    vcpu.halted = false;
    vcpu.run(3);
    expect(vcpu.cpu.lo[RAX]).toBe(0x33333333);
  });

  it('code cached at CPL 0 on a supervisor page still faults when ring 3 runs it', () => {
    // shared code runs at CPL 0 (and is cached), then IRETQ sends ring 3 to it: #PF(U|P).
    const src = [
      'mov ecx, 2',
      'shared: dec ecx',
      'jz to_user',
      'jmp shared',
      'to_user: push 0x33',
      'push 0x8000',
      'push 2',
      'push 0x2b',
      'lea rax, [rel shared]',
      'push rax',
      'iretq',
    ].join('\n');
    const { vcpu, space } = longModeVcpu(code(src));
    space.write64(0x500 + 0x28, 0x0000ffff, 0x00affb00); // user code64
    space.write64(0x500 + 0x30, 0x0000ffff, 0x00cff300); // user data
    installIdt(vcpu, space);
    // A TSS at 0x600 with RSP0 = 0x7000 for the ring 3 -> ring 0 transition.
    space.write64(0x604, 0x7000, 0);
    const sr = vcpu.getSregs();
    vcpu.setSregs({ ...sr, gdt: { base: 0x500, limit: 0x37 }, tr: { ...sr.tr, base: 0x600 } });
    vcpu.setMsrs([{ index: 0xc0000080, value: 0x500 }]);
    // #PF handler: trace, then HLT (ring 0) instead of returning to the faulting fetch.
    space.writeFrom(HANDLERS + 14 * 16, Uint8Array.from([0xb0, 14, 0xe6, 0xe9, 0xf4]));
    const trace: number[] = [];
    expect(runTrace(vcpu, trace)).toBe(EXIT_HLT);
    expect(trace).toEqual([14]);
    expect(vcpu.getSregs().cr2).toBe(ENTRY + 5);
    // The error code on the kernel stack: present | user (fetch without NX/SMEP: no I/D bit).
    const rsp = vcpu.getRegs().rsp as number;
    expect(space.read32(rsp)).toBe(5);
  });
});

describe.skipIf(!HAVE_NASM)('vCPU state objects', () => {
  it('regs, sregs, FPU, MSRs, LAPIC and events survive a round trip into a second vCPU', () => {
    const { vcpu } = longModeVcpu(code('mov rax, -2\nmov r15, 0x123456789abcdef0\nmov ecx, 0xc0000102\nmov eax, 0x1000\nmov edx, 0xffff8000\nwrmsr\nmov rax, -2\nhlt'));
    expect(vcpu.run()).toBe(EXIT_HLT);
    vcpu.cpu.xmm[5] = 0xdeadbeef;
    vcpu.apic.accept(0x55);
    const regs = vcpu.getRegs();
    expect(regs.rax).toBe(-2);
    expect(regs.r15).toBe('0x123456789abcdef0');
    const state = JSON.parse(JSON.stringify({ regs, sregs: vcpu.getSregs(), fpu: vcpu.getFpu(), msrs: vcpu.getMsrs(), lapic: vcpu.getLapic(), events: vcpu.getEvents() })) as Record<string, never>;
    const other = longModeVcpu(new Uint8Array(1)).vcpu;
    other.setSregs(state.sregs);
    other.setRegs(state.regs);
    other.setFpu(state.fpu);
    expect(other.setMsrs(state.msrs)).toBe(vcpu.getMsrs().length);
    other.setLapic(state.lapic);
    other.setEvents(state.events);
    expect(other.getRegs()).toEqual(vcpu.getRegs());
    expect(other.getSregs()).toEqual(vcpu.getSregs());
    expect(other.getFpu()).toEqual(vcpu.getFpu());
    expect(other.getLapic()).toEqual(vcpu.getLapic());
    expect(other.getMsrs().find((m) => m.index === 0xc0000102)?.value).toBe(-(2 ** 47) + 0x1000);
    expect(other.getEvents()).toEqual(vcpu.getEvents());
  });

  it('rejects malformed state with TypeError and never anything else', () => {
    const { vcpu } = longModeVcpu(new Uint8Array(1));
    const good = { regs: vcpu.getRegs(), sregs: vcpu.getSregs(), fpu: vcpu.getFpu(), lapic: vcpu.getLapic() };
    fc.assert(
      fc.property(fc.constantFrom('regs', 'sregs', 'fpu', 'lapic'), fc.string({ maxLength: 8 }), fc.anything({ maxDepth: 2 }), (which, key, junk) => {
        const base = JSON.parse(JSON.stringify(good[which])) as Record<string, unknown>;
        const keys = Object.keys(base);
        const k = keys.includes(key) ? key : keys[key.length % keys.length];
        base[k] = junk;
        try {
          if (which === 'regs') vcpu.setRegs(base as never);
          else if (which === 'sregs') vcpu.setSregs(base as never);
          else if (which === 'fpu') vcpu.setFpu(base as never);
          else vcpu.setLapic(base as never);
        } catch (e) {
          expect(e).toBeInstanceOf(TypeError);
        }
      }),
      { numRuns: 300 },
    );
  });
});

/** Byte templates of system instructions (32-bit code) with a 16/32-bit random operand slot. */
const SYS_SNIPPETS: readonly ((a: number, b: number) => number[])[] = [
  (a) => [0x66, 0xb8, a & 0xff, (a >> 8) & 0xff, 0x8e, 0xd8], // mov ax, a; mov ds, ax
  (a) => [0x66, 0xb8, a & 0xff, (a >> 8) & 0xff, 0x8e, 0xd0], // mov ss, ax
  (a) => [0x66, 0xb8, a & 0xff, (a >> 8) & 0xff, 0x8e, 0xe0], // mov fs, ax
  (a, b) => [0xea, b & 0xff, (b >> 8) & 0xff, (b >> 16) & 0xff, b >>> 24, a & 0xff, (a >> 8) & 0xff], // jmp far
  (a, b) => [0x9a, b & 0xff, (b >> 8) & 0xff, (b >> 16) & 0xff, b >>> 24, a & 0xff, (a >> 8) & 0xff], // call far
  (a, b) => [0x68, ...le(b), 0x68, ...le(a & 0xffff), 0x68, ...le(b ^ a), 0xcf], // push; push; push; iret
  (a, b) => [0x68, ...le(a & 0xffff), 0x68, ...le(b), 0xcb], // retf
  (a) => [0xcd, a & 0xff], // int n
  (a) => [0x66, 0xb8, a & 0xff, (a >> 8) & 0xff, 0x0f, 0x00, 0xd8], // ltr ax
  (a) => [0x66, 0xb8, a & 0xff, (a >> 8) & 0xff, 0x0f, 0x00, 0xd0], // lldt ax
  (a) => [0x66, 0xb8, a & 0xff, (a >> 8) & 0xff, 0x0f, 0x02, 0xc8], // lar ecx, ax
  (a) => [0xb8, ...le(a), 0x0f, 0x22, 0xc0], // mov cr0, eax
  (a) => [0xb8, ...le(a), 0x0f, 0x22, 0xe0], // mov cr4, eax
  (a) => [0xb8, ...le(a), 0x0f, 0x22, 0xd8], // mov cr3, eax
  (a, b) => [0xb9, ...le(b % 3 === 0 ? 0xc0000080 : b), 0xb8, ...le(a), 0x31, 0xd2, 0x0f, 0x30], // wrmsr
  (a) => [0xbc, ...le(a)], // mov esp, a
  (a) => [0x0f, 0x01, 0x15, ...le(a & 0xfff)], // lgdt [a]
  (a) => [0x0f, 0x01, 0x1d, ...le(a & 0xfff)], // lidt [a]
  () => [0x0f, 0x34], // sysenter
  () => [0xfb, 0xf4], // sti; hlt
];

function le(v: number): number[] {
  return [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, v >>> 24];
}

describe('vCPU robustness', () => {
  it('hostile system state: random descriptor tables, selectors, gates, control registers and MSRs never throw', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 256, maxLength: 256 }),
        fc.array(fc.tuple(fc.nat(SYS_SNIPPETS.length - 1), fc.oneof(fc.nat(0xffff), fc.integer({ min: 0, max: 0xffffffff })), fc.integer({ min: 0, max: 0xffffffff })), { minLength: 1, maxLength: 12 }),
        fc.boolean(),
        (tables, steps, validIdt) => {
          const space = new AddressSpace(new HostMemory());
          space.addRam(0, 4 << 20);
          // GDT/IDT/TSS made of random bytes at 0x500.. (and the same bytes as LGDT/LIDT operands);
          // GDT entries 1 and 2 stay flat code/data so that valid reloads happen too, and half
          // of the runs get an IDT of valid gates to an IRET (faults then retry until the budget).
          space.writeFrom(0x500, tables);
          space.write64(0x508, 0x0000ffff, 0x00cf9b00);
          space.write64(0x510, 0x0000ffff, 0x00cf9300);
          space.writeFrom(0x600, tables);
          if (validIdt) for (let v = 0; v < 32; v++) space.write64(0x600 + v * 8, 0x00080700, 0x00008e00);
          space.write8(0x700, 0xcf);
          const code = steps.flatMap(([k, a, b]) => SYS_SNIPPETS[k](a, b));
          space.writeFrom(0x100000, Uint8Array.from(code));
          const vcpu = new Vcpu(space);
          const seg = (selector: number, type: number): never => ({ selector, base: 0, limit: 0xffffffff, type, present: 1, dpl: 0, db: 1, s: 1, l: 0, g: 1, avl: 0, unusable: 0 }) as never;
          const sr = vcpu.getSregs();
          vcpu.setSregs({ ...sr, cs: seg(0x08, 0xb), ds: seg(0x10, 3), es: seg(0x10, 3), ss: seg(0x10, 3), fs: seg(0x10, 3), gs: seg(0x10, 3), gdt: { base: 0x500, limit: 0xff }, idt: { base: 0x600, limit: 0xff }, tr: { ...sr.tr, base: 0x500, limit: 0xff }, cr0: 0x11 });
          vcpu.setRegs({ rax: 0, rbx: 0, rcx: 0, rdx: 0, rsi: 0, rdi: 0, rsp: 0x8000, rbp: 0, rip: 0x100000, rflags: 2 });
          for (let i = 0; i < 10; i++) {
            const r = vcpu.run(500);
            expect(EXIT_NAMES[r]).toBeDefined();
            if (r === EXIT_IO || r === EXIT_MMIO || r === EXIT_EPT_VIOLATION || r === EXIT_BUDGET) continue;
            if (r === EXIT_HLT) vcpu.injectNmi();
            else break;
          }
        },
      ),
      { numRuns: 200 },
    );
  });


  it('random firmware from the reset vector (real mode, mode switches, descriptor loads) never throws', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 16, maxLength: 96 }), fc.uint8Array({ minLength: 64, maxLength: 64 }), (rom, table) => {
        const space = new AddressSpace(new HostMemory());
        space.addRam(0, 1 << 20);
        space.addRam(0xffff0000, 0x10000);
        space.writeFrom(0xfffffff0 - (rom.length - 16), rom);
        // Random bytes where descriptor tables, IVT and stacks are likely to be looked for.
        space.writeFrom(0, table);
        space.writeFrom(0xffffff00, table);
        const vcpu = new Vcpu(space);
        for (let i = 0; i < 20; i++) {
          const r = vcpu.run(2000);
          expect(EXIT_NAMES[r]).toBeDefined();
          if (r === EXIT_IO || r === EXIT_MMIO || r === EXIT_EPT_VIOLATION) continue;
          break;
        }
      }),
      { numRuns: 150 },
    );
  });

  it('random code in long mode at CPL 0 never throws and always ends in a known exit', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 64 }), (bytes) => {
        const { vcpu } = longModeVcpu(bytes, ENTRY, {}, 4 * 1024 * 1024);
        for (let i = 0; i < 20; i++) {
          const r = vcpu.run(2000);
          expect(EXIT_NAMES[r]).toBeDefined();
          if (r === EXIT_IO) continue;
          if (r === EXIT_MMIO || r === EXIT_EPT_VIOLATION) continue;
          break;
        }
      }),
      { numRuns: 100 },
    );
  });
});

describe('CPUID model of the vCPU', () => {
  it('advertises the system features, the hypervisor bit and signature, topology and cache leaves', () => {
    const space = new AddressSpace(new HostMemory());
    space.addRam(0, 1 << 20);
    const vcpu = new Vcpu(space, { apicId: 3 });
    const out = new Int32Array(4);
    const q = (leaf: number, sub = 0): number[] => {
      vcpu.sys.cpuid(vcpu.cpu, leaf, sub, out);
      return Array.from(out, (x) => x >>> 0);
    };
    const sig = q(0x40000000);
    const text = [sig[1], sig[2], sig[3]].map((v) => String.fromCharCode(v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, v >>> 24)).join('');
    expect(text).toBe('RingZeroVirt');
    const l1 = q(1);
    expect(l1[2] >>> 31).toBe(1); // hypervisor
    expect((l1[2] >>> 21) & 1).toBe(1); // x2APIC
    for (const bit of [3, 5, 6, 9, 11, 12, 13, 16]) expect((l1[3] >>> bit) & 1).toBe(1); // PSE MSR PAE APIC SEP MTRR PGE PAT
    expect(l1[1] >>> 24).toBe(3); // initial APIC ID
    expect(q(0)[0]).toBeGreaterThanOrEqual(0xb);
    expect(q(0xb, 0)[3]).toBe(3);
    expect(q(0xb, 0)[1]).toBe(1);
    expect(q(0xb, 2)[1]).toBe(0); // end of the topology levels
    expect(q(4, 0)[0] & 0x1f).toBe(1);
    expect(q(4, 3)[0] & 0x1f).toBe(0);
    expect((q(0x80000001)[3] >>> 20) & 1).toBe(1); // NX
    expect((q(7)[1] >>> 7) & 1).toBe(1); // SMEP
    // Features the CPU does not implement stay off: no VMX, no AVX/XSAVE, no PCID.
    expect((l1[2] >>> 5) & 1).toBe(0);
    expect((l1[2] >>> 26) & 1).toBe(0);
    expect((l1[2] >>> 28) & 1).toBe(0);
    expect((l1[2] >>> 17) & 1).toBe(0);
    // Not implemented and not advertised: VME/PVI (EDX bit 1; CR4.VME/PVI are refused, see
    // 'CR4.VME and CR4.PVI are refused'), SMM has no CPUID bit.
    expect((l1[3] >>> 1) & 1).toBe(0);
  });

  it.skipIf(!HAVE_NASM)('CR4.VME and CR4.PVI are refused with #GP(0) (VME is not advertised)', () => {
    for (const bit of [1, 2]) {
      const { vcpu, space } = longModeVcpu(code(`mov rax, cr4\nor rax, ${bit}\nmov cr4, rax\nhlt`));
      installIdt(vcpu, space);
      const trace: number[] = [];
      runTrace(vcpu, trace);
      expect(trace[0]).toBe(GP);
      expect(vcpu.getSregs().cr4 & 3).toBe(0);
    }
  });
});
