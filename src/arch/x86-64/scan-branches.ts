import type { BranchRef } from "../arch.js";
import { DECODER_OPTIONS, Decoder, DecoderError, FlowControl, IcedInstruction, OpKind } from "./iced.js";

// Enum members hoisted out of the hot loop: each is a property load on iced's enum object.
const NEXT = FlowControl.Next;
const JUMP = FlowControl.UnconditionalBranch;
const COND_JUMP = FlowControl.ConditionalBranch;
const CALL = FlowControl.Call;
const XBEGIN = FlowControl.XbeginXabortXend;
const EXCEPTION = FlowControl.Exception;
const NEAR_BRANCH64 = OpKind.NearBranch64;
const NO_MORE_BYTES = DecoderError.NoMoreBytes;

/**
 * Linear sweep over `bytes` (at `address`) calling `onBranch` for every direct jmp, jcc (with
 * loop/jrcxz and xbegin's abort target, as "cond-jump") and call. Undecodable bytes are skipped one
 * at a time; the sweep ends at the end of the bytes or at a last instruction they cut short.
 *
 * Written for speed (a whole .text, millions of instructions): one iced Decoder and one reused
 * Instruction, and per ordinary instruction only the two calls into wasm that cannot be avoided,
 * `decodeOut` and `flowControl`; the end is noticed on the rare `Exception` path instead of asking
 * `canDecode` every time, and no bigint is made until a branch is found.
 */
export function scanBranches(bytes: Uint8Array, address: bigint, onBranch: (ref: BranchRef) => void): void {
  if (bytes.length === 0) return;
  const decoder = new Decoder(64, bytes, DECODER_OPTIONS);
  const ins = new IcedInstruction();
  try {
    decoder.ip = address;
    for (;;) {
      decoder.decodeOut(ins);
      const flow = ins.flowControl;
      if (flow === NEXT) continue;
      if (flow === JUMP || flow === COND_JUMP || flow === CALL || flow === XBEGIN) {
        // Direct branches only: in 64-bit mode these flows have no far (ptr16:32) form, and
        // xabort/xend (XBEGIN flow, no NearBranch64 operand) fall out here.
        if (ins.op0Kind !== NEAR_BRANCH64) continue;
        const kind = flow === JUMP ? "jump" : flow === CALL ? "call" : "cond-jump";
        onBranch({ from: ins.ip, to: ins.nearBranch64, kind, length: ins.length });
      } else if (flow === EXCEPTION && ins.isInvalid) {
        if (decoder.lastError === NO_MORE_BYTES) return; // the bytes ended, whole or mid-instruction
        const next = Number(ins.ip - address) + 1; // resynchronise one byte on, as objdump does
        decoder.position = next;
        decoder.ip = address + BigInt(next);
      }
    }
  } finally {
    ins.free(); // wasm memory: iced-x86 registers no finalizer
    decoder.free();
  }
}
