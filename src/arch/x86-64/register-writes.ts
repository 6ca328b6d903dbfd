import type { RegisterWrites } from "../arch.js";
import {
  DECODER_OPTIONS,
  Decoder,
  DecoderError,
  FlowControl,
  IcedInstruction,
  InstructionInfoFactory,
  Mnemonic,
  OpAccess,
  OpKind,
  Register,
  RegisterExt,
} from "./iced.js";

/**
 * The registers a function may change without saving them [SysV x86-64 psABI 3.2.1, Figure 3.4]:
 * rax, rcx, rdx, rsi, rdi, r8–r11, every vector register (xmm/ymm/zmm 0–31, named `xmmN`), the x87
 * stack with the MMX registers (`st`), the AVX-512 mask registers (`k`).
 */
export const CALLER_SAVED: readonly string[] = [
  "rax",
  "rcx",
  "rdx",
  "rsi",
  "rdi",
  "r8",
  "r9",
  "r10",
  "r11",
  ...Array.from({ length: 32 }, (_, i) => `xmm${i}`),
  "st",
  "k",
];

const GPR = new Map<number, string>([
  [Register.RAX, "rax"],
  [Register.RCX, "rcx"],
  [Register.RDX, "rdx"],
  [Register.RSI, "rsi"],
  [Register.RDI, "rdi"],
  [Register.R8, "r8"],
  [Register.R9, "r9"],
  [Register.R10, "r10"],
  [Register.R11, "r11"],
]);

const WRITES = new Set<number>([
  OpAccess.Write,
  OpAccess.CondWrite,
  OpAccess.ReadWrite,
  OpAccess.ReadCondWrite,
]);

/** The caller-saved name of a full register iced reports, or undefined for a callee-saved one. */
function callerSavedName(full: number): string | undefined {
  const gpr = GPR.get(full);
  if (gpr !== undefined) return gpr;
  if (full >= Register.ZMM0 && full <= Register.ZMM31) return `xmm${full - Register.ZMM0}`;
  if ((full >= Register.ST0 && full <= Register.ST7) || (full >= Register.MM0 && full <= Register.MM7))
    return "st";
  if (full >= Register.K0 && full <= Register.K7) return "k";
  return undefined;
}

/**
 * What the code of one function (`code` at `address`, linear decode) does to caller-saved registers
 * itself, and where it hands control on: direct calls, and direct jumps out of `code` (tail calls).
 * `opaque` when it calls or jumps indirectly, since where that goes (and what it clobbers) is
 * unknown; an indirect jump may be a jump table inside the function, but also `return fp(x)`.
 * Instructions that save and restore register state (xsave, fxrstor) count as writing everything.
 */
export function registerWrites(code: Uint8Array, address: bigint): RegisterWrites {
  const clobbered = new Set<string>();
  const callees: bigint[] = [];
  let opaque = false;
  if (code.length === 0) return { clobbered: [], callees, opaque };
  const end = address + BigInt(code.length);
  const decoder = new Decoder(64, code, DECODER_OPTIONS);
  const ins = new IcedInstruction();
  const factory = new InstructionInfoFactory();
  try {
    decoder.ip = address;
    while (decoder.canDecode) {
      decoder.decodeOut(ins);
      if (ins.isInvalid) {
        if (decoder.lastError === DecoderError.NoMoreBytes) break;
        continue;
      }
      const flow = ins.flowControl;
      if (flow === FlowControl.IndirectCall || flow === FlowControl.IndirectBranch) opaque = true;
      else if (
        (flow === FlowControl.Call ||
          flow === FlowControl.UnconditionalBranch ||
          flow === FlowControl.ConditionalBranch) &&
        ins.op0Kind === OpKind.NearBranch64
      ) {
        const target = ins.nearBranch64;
        if (flow === FlowControl.Call || target < address || target >= end) callees.push(target);
      }
      if (ins.isSaveRestoreInstruction) {
        for (const r of CALLER_SAVED) clobbered.add(r);
        continue;
      }
      // The kernel returns in rax, which iced does not list among syscall's writes (rcx, r11).
      if (ins.mnemonic === Mnemonic.Syscall) clobbered.add("rax");
      const info = factory.info(ins);
      for (const u of info.usedRegisters()) {
        const access = u.access as number;
        const reg = u.register as number;
        u.free(); // wasm memory: iced-x86 registers no finalizer
        if (!WRITES.has(access)) continue;
        const name = callerSavedName(RegisterExt.fullRegister(reg));
        if (name !== undefined) clobbered.add(name);
      }
      info.free();
    }
  } finally {
    factory.free();
    ins.free();
    decoder.free();
  }
  return { clobbered: CALLER_SAVED.filter((r) => clobbered.has(r)), callees, opaque };
}
