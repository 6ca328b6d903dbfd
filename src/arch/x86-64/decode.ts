import type { Instruction } from "../arch.js";
import {
  DECODER_OPTIONS,
  Decoder,
  DecoderError,
  FlowControl,
  IcedInstruction,
  MAX_INSTRUCTION_LENGTH,
} from "./iced.js";
import { instructionKind } from "./instruction-kind.js";
import { X86Instruction } from "./x86-instruction.js";

/**
 * Decode up to `limit` instructions (default: all) from `bytes`, which start at `address`.
 * Undecodable bytes become one "invalid" instruction of length 1 each, and decoding goes on at the
 * next byte (as objdump's linear sweep does with "(bad)"), so padding or data inside code does not
 * end the listing. Decoding stops before a last instruction that the bytes cut short, so the
 * lengths sum to less than `bytes.length` exactly when more bytes are needed.
 */
export function decode(bytes: Uint8Array, address: bigint, limit = Number.POSITIVE_INFINITY): Instruction[] {
  const out: Instruction[] = [];
  if (limit <= 0 || bytes.length === 0) return out;
  // iced copies its input into wasm memory: with a small limit, copy only what it can reach.
  const window =
    limit * MAX_INSTRUCTION_LENGTH < bytes.length ? bytes.subarray(0, limit * MAX_INSTRUCTION_LENGTH) : bytes;
  const decoder = new Decoder(64, window, DECODER_OPTIONS);
  decoder.ip = address;
  const ins = new IcedInstruction();
  try {
    let offset = 0;
    while (out.length < limit && offset < window.length) {
      const decoded = decodeNext(decoder, ins, window, offset, address);
      if (decoded === undefined) break;
      out.push(decoded);
      offset += decoded.length;
    }
  } finally {
    ins.free(); // wasm memory: iced-x86 registers no finalizer
    decoder.free();
  }
  return out;
}

/**
 * Decode the one instruction at the start of `bytes` (at `address`); `undefined` when the bytes run
 * out before it ends (including when `bytes` is empty), so the caller can read more and retry.
 */
export function decodeOne(bytes: Uint8Array, address: bigint): Instruction | undefined {
  return decode(bytes, address, 1)[0];
}

/**
 * Decode the instruction at `offset` of `bytes`, where `decoder` (reading `bytes`) stands. After
 * invalid bytes it is moved back to resynchronise one byte on, as the caller's offset says.
 */
function decodeNext(
  decoder: Decoder,
  ins: IcedInstruction,
  bytes: Uint8Array,
  offset: number,
  base: bigint,
): X86Instruction | undefined {
  const address = base + BigInt(offset);
  decoder.decodeOut(ins);
  const flow = ins.flowControl; // read once: every getter is a call into wasm
  if (flow === FlowControl.Exception && ins.isInvalid) {
    // iced says "no more bytes" whenever it read past the end, even for an opcode that is invalid
    // whatever follows (`06`, push %es, has no 64-bit form); no padding can tell the two apart (a
    // cut-short VEX prefix is invalid when padded with zeros), so ask for more bytes, the
    // harmless answer: the caller that has none left sees the sweep end early.
    if (decoder.lastError === DecoderError.NoMoreBytes) return undefined;
    decoder.position = offset + 1;
    decoder.ip = address + 1n;
    const fields = {
      address,
      length: 1,
      kind: "invalid",
      pcRelative: false,
      memoryAddress: undefined,
      relocatable: false,
    } as const;
    return new X86Instruction(fields, bytes, offset);
  }
  const kind = instructionKind(ins, flow);
  const direct = kind === "jump" || kind === "cond-jump" || kind === "call";
  const pcRelative = ins.isIpRelMemoryOperand;
  const fields = {
    address,
    length: ins.length,
    kind,
    target: direct ? ins.nearBranch64 : undefined,
    pcRelative,
    memoryAddress: pcRelative ? ins.ipRelMemoryAddress : undefined,
    // loop/loopcc/jrcxz/jecxz exist only with rel8 [Intel SDM Vol. 2A "JCC", Vol. 2A "LOOP/LOOPcc"].
    relocatable: flow !== FlowControl.ConditionalBranch || !(ins.isLoop || ins.isLoopcc || ins.isJcxShort),
  };
  return new X86Instruction(fields, bytes, offset);
}
