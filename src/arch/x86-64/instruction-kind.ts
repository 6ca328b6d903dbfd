import type { InstructionKind } from "../arch.js";
import { Code, FlowControl, type IcedInstruction, Mnemonic, OpKind } from "./iced.js";

/**
 * What a decoded iced instruction does to control flow, in the contract's terms (`flow`: its
 * FlowControl, when the caller has already read it). Mostly iced's FlowControl, with the cases
 * where patching needs a finer or different answer:
 * - "jump", "cond-jump" and "call" promise a target, so they need a near-branch operand: iced also
 *   files `syscall`, `sysenter` and `vmcall` under `Call`; those are "other" (they return).
 * - `Next` splits into "nop" (every form iced names NOP, see nop.ts), "endbr" (endbr64 only: the
 *   landing pad of 64-bit code; endbr32 is a hint NOP there) and "other"; `hlt` is also `Next` in
 *   iced but never falls through in user space (#GP), so "trap".
 * - `Interrupt` is "trap" only for int3/int1, which stop the process; `int $n` is a system-call
 *   gate that returns, so "other".
 * - `Exception` is ud0/ud1/ud2 ("trap") or undecodable bytes ("invalid").
 * - `xbegin` branches to its abort handler: a "cond-jump" with a target (xend, xabort are `Next`).
 * - `Return` covers ret, lret, iret, sysret alike: in user space all leave the function.
 */
export function instructionKind(ins: IcedInstruction, flow: FlowControl = ins.flowControl): InstructionKind {
  switch (flow) {
    case FlowControl.Next: {
      const mnemonic = ins.mnemonic;
      if (mnemonic === Mnemonic.Nop) return "nop";
      if (mnemonic === Mnemonic.Endbr64) return "endbr";
      if (mnemonic === Mnemonic.Hlt) return "trap";
      return "other";
    }
    case FlowControl.UnconditionalBranch:
      return direct(ins, "jump");
    case FlowControl.ConditionalBranch:
    case FlowControl.XbeginXabortXend:
      return direct(ins, "cond-jump");
    case FlowControl.Call:
      return direct(ins, "call");
    case FlowControl.IndirectBranch:
      return "indirect-jump";
    case FlowControl.IndirectCall:
      return "indirect-call";
    case FlowControl.Return:
      return "return";
    case FlowControl.Interrupt:
      return ins.code === Code.Int3 || ins.code === Code.Int1 ? "trap" : "other";
    case FlowControl.Exception:
      return ins.isInvalid ? "invalid" : "trap";
    default:
      return "other";
  }
}

/** `kind` when the instruction has a near-branch target (rel8/rel16/rel32), else "other". */
function direct(ins: IcedInstruction, kind: "jump" | "cond-jump" | "call"): InstructionKind {
  return ins.op0Kind === OpKind.NearBranch64 ? kind : "other";
}
