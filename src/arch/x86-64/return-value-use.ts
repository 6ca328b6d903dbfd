import type { ReturnValueUse } from "../arch.js";
import {
  DECODER_OPTIONS,
  Decoder,
  IcedInstruction,
  InstructionInfoFactory,
  Mnemonic,
  OpAccess,
  Register,
  RegisterExt,
} from "./iced.js";
import { instructionKind } from "./instruction-kind.js";

/**
 * The registers a call returns its value in [SysV x86-64 psABI 3.2.3, "Returning of Values"]: rax
 * (INTEGER class), xmm0 (SSE class), st0 (X87 class); iced's full register (RAX for AL, ZMM0 for
 * XMM0) picks the bit. Not rdx and xmm1, the second eightbyte of a 16-byte result: gcc's -fipa-ra
 * keeps the caller's own values in caller-saved registers across a call to a local function that
 * leaves them alone, and rdx is the one it picks most (`mov %rdi,%rdx; call log_event; lea
 * 0x1(%rdx),%rdi`), so reading rdx after a call says nothing about a result.
 */
const RAX = 1;
const RESULT_BITS = new Map<number, number>([
  [Register.RAX, RAX],
  [Register.ZMM0, 2],
  [Register.ST0, 4],
]);
const ALL = 7;

/** Register names for messages, by bit. */
const NAMES = new Map<number, string>([
  [1, "%rax"],
  [2, "%xmm0"],
  [4, "%st"],
]);

const READS = new Set<number>([OpAccess.Read, OpAccess.CondRead, OpAccess.ReadWrite, OpAccess.ReadCondWrite]);

/** Instructions decoded in all paths before giving up (and answering "used"). */
const DEFAULT_LIMIT = 64;

/**
 * Whether the code after a call reads the call's return value. `code` holds the caller (at
 * `codeAddress`); `from` is the return address. Every path is followed (direct jumps and both ways
 * of a conditional jump, inside `code`) until it overwrites %rax, calls something (which overwrites
 * the result registers again), traps or tail-jumps out of `code`; a read of %rax, %xmm0 or %st on
 * the way means the result is used. The answer is "used" when a path reads
 * one of them first, returns while %rax still holds the callee's value (the caller may return it;
 * the bytes do not say whether it is void), jumps indirectly, runs off the end of `code`, or is
 * longer than `limit` instructions in all: graft cannot tell, so it assumes the worst.
 *
 * A write counts only when it replaces the whole register: `mov %al` or `sete %al` keep the
 * callee's upper bits, `mov %eax` does not (a 32-bit write zero-extends [Intel SDM 3.4.1.1]).
 */
export function returnValueUse(
  code: Uint8Array,
  codeAddress: bigint,
  from: bigint,
  limit = DEFAULT_LIMIT,
): ReturnValueUse {
  const end = codeAddress + BigInt(code.length);
  const decoder = new Decoder(64, code, DECODER_OPTIONS);
  const ins = new IcedInstruction();
  const factory = new InstructionInfoFactory();
  const seen = new Set<string>();
  const work: { at: bigint; live: number }[] = [{ at: from, live: ALL }];
  let budget = limit;
  try {
    while (work.length > 0) {
      const { at, live } = work.pop()!;
      let state = live;
      for (let pc = at; ; ) {
        const key = `${pc}:${state}`;
        if (seen.has(key)) break;
        seen.add(key);
        if (pc < codeAddress || pc >= end) {
          return {
            used: true,
            at: pc,
            reason: "the code runs off the end of the function (a call that does not return?)",
          };
        }
        if (budget-- <= 0)
          return {
            used: true,
            at: pc,
            reason: `graft could not follow every path within ${limit} instructions`,
          };
        const offset = Number(pc - codeAddress);
        decoder.position = offset;
        decoder.ip = pc;
        decoder.decodeOut(ins);
        const kind = instructionKind(ins);
        if (kind === "invalid")
          return { used: true, at: pc, reason: `bytes at 0x${pc.toString(16)} do not decode` };

        const info = factory.info(ins);
        const used = info.usedRegisters();
        let reads = 0;
        let writes = 0;
        const ignoreVectorReads = ins.mnemonic === Mnemonic.Vzeroupper || ins.mnemonic === Mnemonic.Vzeroall;
        for (const u of used) {
          const reg = u.register as number;
          const bit = RESULT_BITS.get(RegisterExt.fullRegister(reg)) ?? 0;
          const access = u.access as number;
          u.free(); // wasm memory: iced-x86 registers no finalizer
          if (bit === 0) continue;
          if (READS.has(access) && !(ignoreVectorReads && bit === 2)) reads |= bit;
          // rax: a write of the 64-bit register (iced reports RAX for a 32-bit write, which
          // zero-extends); xmm0: any xmm/ymm/zmm write replaces the value returned there; st0 is a
          // stack slot, which a push (fld) moves down rather than replaces.
          else if (
            access === OpAccess.Write &&
            (bit === 2 || (bit === RAX && RegisterExt.fullRegister(reg) === reg))
          )
            writes |= bit;
        }
        info.free();
        if ((reads & state) !== 0) {
          const bit = reads & state & -(reads & state);
          return {
            used: true,
            at: pc,
            reason: `0x${pc.toString(16)} reads ${NAMES.get(bit)} before writing it`,
          };
        }
        state &= ~writes;
        // %rax overwritten: the path is done [whatever the callee returned in %rax is gone], having checked the other result registers on the way.
        if ((state & RAX) === 0) break;
        const next = pc + BigInt(ins.length);
        if (kind === "call" || kind === "indirect-call" || kind === "trap") break;
        if (kind === "return") {
          if ((state & RAX) !== 0) {
            return {
              used: true,
              at: pc,
              reason: `the caller returns at 0x${pc.toString(16)} with %rax unchanged: its result may be this call's`,
            };
          }
          break;
        }
        if (kind === "indirect-jump") {
          return {
            used: true,
            at: pc,
            reason: `an indirect jump at 0x${pc.toString(16)} goes where graft cannot follow`,
          };
        }
        if (kind === "jump" || kind === "cond-jump") {
          const target = ins.nearBranch64;
          // Out of the caller: a tail call, which gets the registers as arguments, and %rax is none.
          const inside = target >= codeAddress && target < end;
          if (kind === "jump") {
            if (!inside) break;
            pc = target;
            continue;
          }
          if (inside) work.push({ at: target, live: state });
        }
        pc = next;
      }
    }
  } finally {
    factory.free(); // wasm memory: iced-x86 registers no finalizer
    ins.free();
    decoder.free();
  }
  return {
    used: false,
    reason: "every path overwrites the result registers, calls or leaves before reading them",
  };
}
