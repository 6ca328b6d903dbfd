import type { FieldedInstruction, InstructionField } from "../arch.js";
import { DECODER_OPTIONS, Decoder, FlowControl, IcedInstruction, MemorySizeExt } from "./iced.js";
import { instructionKind } from "./instruction-kind.js";

/**
 * Decode every instruction of `bytes` (at `address`) with where its constants sit: the memory
 * displacement, the immediate(s), and for a relative branch the displacement iced reports as its
 * immediate. A build diff compares instructions with these fields masked and the addresses they
 * stand for compared by what they resolve to, never by raw value. Undecodable bytes become one
 * 1-byte instruction each with no fields (compared byte for byte).
 */
export function decodeFields(bytes: Uint8Array, address: bigint): FieldedInstruction[] {
  const out: FieldedInstruction[] = [];
  if (bytes.length === 0) return out;
  const decoder = new Decoder(64, bytes, DECODER_OPTIONS);
  decoder.ip = address;
  const ins = new IcedInstruction();
  try {
    let offset = 0;
    while (offset < bytes.length) {
      decoder.decodeOut(ins);
      const flow = ins.flowControl;
      if (ins.isInvalid) {
        out.push({ offset, length: 1, kind: "invalid", fields: [] });
        offset += 1;
        // Resynchronise one byte on, as objdump's "(bad)" does.
        decoder.position = offset;
        decoder.ip = address + BigInt(offset);
        continue;
      }
      const kind = instructionKind(ins, flow);
      const direct = kind === "jump" || kind === "cond-jump" || kind === "call";
      const co = decoder.getConstantOffsets(ins);
      const fields: InstructionField[] = [];
      if (co.hasDisplacement)
        fields.push({
          offset: co.displacementOffset,
          size: co.displacementSize,
          role: ins.isIpRelMemoryOperand ? "pc-relative" : "displacement",
        });
      if (co.hasImmediate)
        fields.push({
          offset: co.immediateOffset,
          size: co.immediateSize,
          role: direct && flow !== FlowControl.Interrupt ? "branch" : "immediate",
        });
      if (co.hasImmediate2)
        fields.push({ offset: co.immediateOffset2, size: co.immediateSize2, role: "immediate" });
      co.free();
      out.push({
        offset,
        length: ins.length,
        kind,
        fields,
        ...(direct ? { target: ins.nearBranch64 } : {}),
        ...(ins.isIpRelMemoryOperand
          ? { memoryAddress: ins.ipRelMemoryAddress, memorySize: MemorySizeExt.size(ins.memorySize) }
          : {}),
      });
      offset += ins.length;
    }
  } finally {
    ins.free();
    decoder.free();
  }
  return out;
}
