/**
 * Signal frames of the user-mode runner, as Linux builds them on the user stack (isomorphic):
 * the x86-64 rt_sigframe (return address = sa_restorer, ucontext with the saved registers,
 * signal mask and a pointer to the FXSAVE image, siginfo), the i386 rt_sigframe (SA_SIGINFO)
 * and the i386 sigframe (sigreturn), and the matching rt_sigreturn / sigreturn that restore the
 * interrupted state. Guest memory is untrusted: a frame that cannot be written or read back
 * ends in SIGSEGV, as in Linux.
 *
 * x86-64 frame (arch/x86/include/asm/sigframe.h), from the frame address:
 *   +0 pretcode, +8 ucontext { flags, link, stack_t (24), sigcontext (256), sigmask (8) },
 *   +312 siginfo (128); the 512-byte FXSAVE image below the red zone, 64-byte aligned.
 * sigcontext: r8-r15, rdi, rsi, rbp, rbx, rdx, rax, rcx, rsp, rip, eflags, cs/gs/fs/ss (u16),
 *   err, trapno, oldmask, cr2, fpstate pointer, 8 reserved qwords.
 * i386 sigcontext: gs fs es ds edi esi ebp esp ebx edx ecx eax trapno err eip cs eflags
 *   esp_at_signal ss fpstate oldmask cr2 (u32 each). The i386 frames carry no FPU image
 *   (fpstate = 0): the handler's x87/SSE use is not undone.
 */
import { CS, DS, ES, FS, GS, R8, R9, R10, R11, R12, R13, R14, R15, RAX, RBP, RBX, RCX, RDI, RDX, RSI, RSP, SS } from '../constants';
import type { Cpu } from '../cpu';
import { fxX87Hooks } from '../sse/state';
import type { UserMemory } from './memory';

/** What the kernel tells the handler in siginfo. */
export interface SigInfo {
  signo: number;
  code: number;
  /** si_pid / si_uid (kill, SIGCHLD). */
  pid: number;
  uid: number;
  /** Fault address (SIGSEGV/SIGBUS/SIGFPE/SIGILL), or -1 when not a fault. */
  addr: number;
  /** Exit status / signal of a child (SIGCHLD): si_status; -1 otherwise. */
  status: number;
}

/** The signal action in the x86-64 layout (handler, flags, restorer, mask: 8 bytes each). */
export interface SigAction {
  handler: number;
  flags: number;
  restorer: number;
  maskLo: number;
  maskHi: number;
}

export const SA_SIGINFO = 4;
export const SA_ONSTACK = 0x08000000;
export const SA_RESTORER = 0x04000000;
export const SA_NODEFER = 0x40000000;
export const SA_RESETHAND = 0x80000000;
export const SA_RESTART = 0x10000000;

/** EFLAGS bits a signal frame may change on return (Linux FIX_EFLAGS). */
const FIX_EFLAGS = 0x40dd5 | 0x10000;
/** Cleared for the handler: TF, DF, RF, AC. */
const HANDLER_CLEAR = 0x100 | 0x400 | 0x10000 | 0x40000;

const REGS64 = [R8, R9, R10, R11, R12, R13, R14, R15, RDI, RSI, RBP, RBX, RDX, RAX, RCX, RSP];

function u64(b: DataView, o: number, v: number): void {
  b.setUint32(o, v >>> 0, true);
  b.setUint32(o + 4, Math.floor(v / 4294967296) >>> 0, true);
}

function n64(b: DataView, o: number): number {
  const lo = b.getUint32(o, true);
  const hi = b.getInt32(o + 4, true);
  return hi * 4294967296 + lo;
}

/** The FXSAVE image of the CPU's x87/SSE state (as the FXSAVE instruction writes it). */
export function fxImage(cpu: Cpu): Uint8Array {
  const img = new Uint8Array(512);
  const dv = new DataView(img.buffer);
  dv.setUint16(0, cpu.fpCw, true);
  dv.setUint16(2, ((cpu.fpSw & ~0x3800) | ((cpu.fpTop & 7) << 11)) & 0xffff, true);
  let ftw = 0;
  for (let i = 0; i < 8; i++) if (((cpu.fpTag >> (2 * i)) & 3) !== 3) ftw |= 1 << i;
  img[4] = ftw;
  dv.setUint32(24, cpu.mxcsr, true);
  dv.setUint32(28, 0xffff, true);
  const slot = new Uint8Array(10);
  for (let i = 0; i < 8; i++) {
    fxX87Hooks.save(cpu, i, slot);
    img.set(slot, 32 + 16 * i);
  }
  for (let i = 0; i < 64; i++) dv.setUint32(160 + 4 * i, cpu.xmm[i], true);
  return img;
}

/** Loads an FXSAVE image (as FXRSTOR does); false when MXCSR has reserved bits set. */
export function loadFxImage(cpu: Cpu, img: Uint8Array): boolean {
  const dv = new DataView(img.buffer, img.byteOffset, 512);
  const mx = dv.getUint32(24, true);
  if ((mx & ~0xffff) !== 0) return false;
  cpu.mxcsr = mx;
  cpu.fpCw = dv.getUint16(0, true);
  const fsw = dv.getUint16(2, true);
  cpu.fpTop = (fsw >> 11) & 7;
  cpu.fpSw = fsw & ~0x3800;
  let tag = 0;
  for (let i = 0; i < 8; i++) if ((img[4] & (1 << i)) === 0) tag |= 3 << (2 * i);
  cpu.fpTag = tag;
  for (let i = 0; i < 8; i++) fxX87Hooks.restore(cpu, i, img.subarray(32 + 16 * i, 42 + 16 * i));
  for (let i = 0; i < 64; i++) cpu.xmm[i] = dv.getUint32(160 + 4 * i, true);
  return true;
}

function siginfoBytes(info: SigInfo, compat: boolean): Uint8Array {
  const b = new Uint8Array(128);
  const dv = new DataView(b.buffer);
  dv.setInt32(0, info.signo, true);
  dv.setInt32(8, info.code, true);
  const u = compat ? 12 : 16;
  if (info.addr >= 0) {
    if (compat) dv.setUint32(u, info.addr >>> 0, true);
    else u64(dv, u, info.addr);
  } else {
    dv.setInt32(u, info.pid, true);
    dv.setInt32(u + 4, info.uid, true);
    if (info.status >= 0) dv.setInt32(u + 8, info.status, true);
  }
  return b;
}

/**
 * Pushes a signal frame for `info` and points the CPU at the handler. oldMask is the mask to
 * restore on return. Returns false when the frame could not be written (the caller kills the
 * process with SIGSEGV).
 */
export function pushSignalFrame(cpu: Cpu, mem: UserMemory, act: SigAction, info: SigInfo, oldMaskLo: number, oldMaskHi: number): boolean {
  if (cpu.csize !== 8) return pushFrame32(cpu, mem, act, info, oldMaskLo, oldMaskHi);
  const flags = cpu.getFlags();
  let sp = cpu.regNumber(RSP) - 128;
  sp = Math.floor((sp - 512) / 64) * 64;
  const fpAddr = sp;
  const FRAME = 8 + 304 + 128;
  sp = Math.floor((sp - FRAME) / 16) * 16 - 8;
  const frame = new Uint8Array(FRAME);
  const dv = new DataView(frame.buffer);
  u64(dv, 0, act.restorer);
  const uc = 8;
  dv.setInt32(uc + 24, 2, true); // uc_stack.ss_flags = SS_DISABLE
  const sc = uc + 40;
  REGS64.forEach((r, i) => u64(dv, sc + 8 * i, cpu.regNumber(r)));
  u64(dv, sc + 128, cpu.rip);
  u64(dv, sc + 136, flags);
  dv.setUint16(sc + 144, cpu.segSel[CS], true);
  dv.setUint16(sc + 150, cpu.segSel[SS], true);
  if (info.addr >= 0) u64(dv, sc + 176, info.addr); // cr2
  dv.setUint32(sc + 168, oldMaskLo >>> 0, true); // oldmask
  u64(dv, sc + 184, fpAddr);
  dv.setUint32(uc + 296, oldMaskLo >>> 0, true);
  dv.setUint32(uc + 300, oldMaskHi >>> 0, true);
  frame.set(siginfoBytes(info, false), 8 + 304);
  if (!mem.writeFrom(fpAddr, fxImage(cpu)) || !mem.writeFrom(sp, frame)) return false;
  cpu.setRegNumber(RDI, info.signo);
  cpu.setRegNumber(RSI, sp + 8 + 304);
  cpu.setRegNumber(RDX, sp + uc);
  cpu.setRegNumber(RAX, 0);
  cpu.setRegNumber(RSP, sp);
  cpu.rip = act.handler;
  cpu.setFlags(flags & ~HANDLER_CLEAR);
  return true;
}

/** rt_sigreturn (x86-64): restores the state saved by pushSignalFrame; the mask to set, or null (bad frame). */
export function sigreturn64(cpu: Cpu, mem: UserMemory): { maskLo: number; maskHi: number } | null {
  const uc = cpu.regNumber(RSP); // the handler's RET popped pretcode
  const b = mem.readBytes(uc, 304);
  if (!b) return null;
  const dv = new DataView(b.buffer);
  const sc = 40;
  const fp = n64(dv, sc + 184);
  if (fp !== 0) {
    const img = mem.readBytes(fp, 512);
    if (!img || !loadFxImage(cpu, img)) return null;
  }
  REGS64.forEach((r, i) => cpu.setRegNumber(r, n64(dv, sc + 8 * i)));
  cpu.rip = n64(dv, sc + 128);
  const fl = dv.getUint32(sc + 136, true);
  cpu.setFlags((cpu.getFlags() & ~FIX_EFLAGS) | (fl & FIX_EFLAGS));
  return { maskLo: dv.getInt32(296, true), maskHi: dv.getInt32(300, true) };
}

const SC32 = [GS, FS, ES, DS];
const REGS32 = [RDI, RSI, RBP, RSP, RBX, RDX, RCX, RAX];

function sigcontext32(cpu: Cpu, dv: DataView, o: number, info: SigInfo, oldMaskLo: number): void {
  SC32.forEach((s, i) => dv.setUint32(o + 4 * i, cpu.segSel[s], true));
  REGS32.forEach((r, i) => dv.setUint32(o + 16 + 4 * i, cpu.lo[r] >>> 0, true));
  dv.setUint32(o + 56, cpu.rip >>> 0, true);
  dv.setUint32(o + 60, cpu.segSel[CS], true);
  dv.setUint32(o + 64, cpu.getFlags(), true);
  dv.setUint32(o + 68, cpu.lo[RSP] >>> 0, true);
  dv.setUint32(o + 72, cpu.segSel[SS], true);
  dv.setUint32(o + 80, oldMaskLo >>> 0, true);
  if (info.addr >= 0) dv.setUint32(o + 84, info.addr >>> 0, true);
}

function pushFrame32(cpu: Cpu, mem: UserMemory, act: SigAction, info: SigInfo, oldMaskLo: number, oldMaskHi: number): boolean {
  const flags = cpu.getFlags();
  const rt = (act.flags & SA_SIGINFO) !== 0;
  // rt_sigframe: pretcode, sig, pinfo, puc, siginfo (128), ucontext (20 + 88 + 8), retcode (8)
  // sigframe: pretcode, sig, sigcontext (88), unused _fpstate_32 (624), extramask (4), retcode (8)
  const size = rt ? 16 + 128 + 116 + 8 : 8 + 88 + 624 + 4 + 8;
  let sp = (cpu.lo[RSP] >>> 0) - size;
  sp = Math.floor(((sp + 4) & ~15) - 4) >>> 0;
  const f = new Uint8Array(size);
  const dv = new DataView(f.buffer);
  // retcode: the restorer is used when SA_RESTORER is set (glibc always sets it)
  const retAt = size - 8;
  if (rt) {
    f.set([0xb8, 173, 0, 0, 0, 0xcd, 0x80, 0], retAt); // mov eax, 173 (rt_sigreturn) ; int 0x80
  } else {
    f.set([0x58, 0xb8, 119, 0, 0, 0, 0xcd, 0x80], retAt); // pop eax ; mov eax, 119 (sigreturn) ; int 0x80
  }
  dv.setUint32(0, act.flags & SA_RESTORER ? act.restorer >>> 0 : (sp + retAt) >>> 0, true);
  dv.setInt32(4, info.signo, true);
  if (rt) {
    dv.setUint32(8, sp + 16, true);
    dv.setUint32(12, sp + 144, true);
    f.set(siginfoBytes(info, true), 16);
    const uc = 144;
    dv.setInt32(uc + 8 + 4, 2, true); // ss_flags = SS_DISABLE
    sigcontext32(cpu, dv, uc + 20, info, oldMaskLo);
    dv.setUint32(uc + 108, oldMaskLo >>> 0, true);
    dv.setUint32(uc + 112, oldMaskHi >>> 0, true);
  } else {
    sigcontext32(cpu, dv, 8, info, oldMaskLo);
    dv.setUint32(720, oldMaskHi >>> 0, true);
  }
  if (!mem.writeFrom(sp, f)) return false;
  cpu.setReg(RSP, 4, sp | 0, 0);
  cpu.setReg(RAX, 4, info.signo, 0);
  if (rt) {
    cpu.setReg(RDX, 4, (sp + 16) | 0, 0);
    cpu.setReg(RCX, 4, (sp + 144) | 0, 0);
  } else {
    cpu.setReg(RDX, 4, 0, 0);
    cpu.setReg(RCX, 4, 0, 0);
  }
  cpu.rip = act.handler >>> 0;
  cpu.setFlags(flags & ~HANDLER_CLEAR);
  return true;
}

function restore32(cpu: Cpu, dv: DataView, o: number): void {
  REGS32.forEach((r, i) => cpu.setReg(r, 4, dv.getInt32(o + 16 + 4 * i, true), 0));
  cpu.rip = dv.getUint32(o + 56, true);
  const fl = dv.getUint32(o + 64, true);
  cpu.setFlags((cpu.getFlags() & ~FIX_EFLAGS) | (fl & FIX_EFLAGS));
}

/** i386 rt_sigreturn (173) or sigreturn (119): restores the state; the mask to set, or null. */
export function sigreturn32(cpu: Cpu, mem: UserMemory, rt: boolean): { maskLo: number; maskHi: number } | null {
  const esp = cpu.lo[RSP] >>> 0;
  if (rt) {
    // the restorer's RET popped pretcode: ESP points at sig
    const uc = esp - 4 + 144;
    const b = mem.readBytes(uc, 116);
    if (!b) return null;
    const dv = new DataView(b.buffer);
    restore32(cpu, dv, 20);
    return { maskLo: dv.getInt32(108, true), maskHi: dv.getInt32(112, true) };
  }
  // sigreturn: pretcode popped and the restorer's POP EAX took sig: ESP points at sigcontext
  const b = mem.readBytes(esp, 716);
  if (!b) return null;
  const dv = new DataView(b.buffer);
  restore32(cpu, dv, 0);
  return { maskLo: dv.getInt32(80, true), maskHi: dv.getInt32(712, true) };
}
