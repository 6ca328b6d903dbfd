import type { InstructionKind } from "../arch.js";
import { decode } from "./decode.js";

/**
 * One constant inside an A64 instruction word. A64 fields are bit ranges, not bytes (`b.ne`'s
 * condition shares byte 0 with its offset), so besides the byte range (always the whole word) each
 * field carries `mask`, the bits it occupies in the little-endian word: comparing two builds must
 * clear only those bits, or a changed condition or register would hide under the mask.
 */
export interface A64Field {
  /** Byte offset in the instruction: always 0. */
  readonly offset: 0;
  /** Bytes: always 4, the whole word; `mask` says which bits. */
  readonly size: 4;
  readonly mask: number;
  /** branch: a B/BL/B.cond/CBZ/TBZ offset; pc-relative: ADR/ADRP/LDR-literal, or the low half of an ADRP pair; immediate: a plain constant. */
  readonly role: "branch" | "pc-relative" | "immediate";
}

/** An A64 instruction with its constant fields, offsets relative to the start of the decoded bytes. */
export interface A64FieldedInstruction {
  readonly offset: number;
  readonly length: 4;
  readonly kind: InstructionKind;
  readonly fields: readonly A64Field[];
  readonly target?: bigint;
  readonly memoryAddress?: bigint;
}

const field = (mask: number, role: A64Field["role"]): A64Field => ({
  offset: 0,
  size: 4,
  mask: mask >>> 0,
  role,
});

/** Bits of the offset or constant in `word`, by class [Arm ARM, "A64 instruction set encoding"]; `[]` for none. */
export function fieldsOfWord(word: number, pairedLow: boolean): A64Field[] {
  const w = word >>> 0;
  if ((w & 0x7c000000) >>> 0 === 0x14000000) return [field(0x03ffffff, "branch")]; // B, BL: imm26
  if ((w & 0xff000000) >>> 0 === 0x54000000 || (w & 0x7e000000) === 0x34000000)
    return [field(0x00ffffe0, "branch")]; // B.cond, CBZ/CBNZ: imm19, cond/Rt kept
  if ((w & 0x7e000000) === 0x36000000) return [field(0x0007ffe0, "branch")]; // TBZ/TBNZ: imm14, bit number kept
  if ((w & 0x1f000000) === 0x10000000) return [field(0x60ffffe0, "pc-relative")]; // ADR/ADRP: immlo:immhi
  if ((w & 0x3b000000) === 0x18000000) return [field(0x00ffffe0, "pc-relative")]; // LDR/PRFM literal: imm19
  const imm12 = field(0x003ffc00, pairedLow ? "pc-relative" : "immediate");
  if ((w & 0x1f800000) === 0x11000000) return [imm12]; // ADD/SUB (immediate), 32/64, flags or not
  if ((w & 0x3b000000) === 0x39000000) return [imm12]; // LDR/STR (unsigned offset), every size
  if ((w & 0x1f800000) === 0x12800000) return [field(0x001fffe0, "immediate")]; // MOVN/MOVZ/MOVK: imm16
  return [];
}

/**
 * Every instruction of `bytes` (at `address`) with its fields: what a build diff masks and
 * compares by what it points at (`target` for branches; `memoryAddress` for ADR/ADRP/literals and
 * for the ADD/LDR that completes an ADRP pair, whose imm12 is then an address, not a constant).
 * An ADRP whose page a later instruction completes has no `memoryAddress` here (its field is
 * cleared, not named: the pair's low half names the address). In a `.o` the relocation on the word
 * (R_AARCH64_CALL26, ADR_PREL_PG_HI21, ADD_ABS_LO12_NC …) names the target instead.
 */
export function decodeFields(bytes: Uint8Array, address: bigint): A64FieldedInstruction[] {
  const out: A64FieldedInstruction[] = [];
  const adrps: number[] = [];
  // Pages a later ADD/load/store completes: that one names the address; the page alone is only where
  // the linker put things (a longer string before it moves every page after it).
  const completed = new Set<bigint>();
  decode(bytes, address).forEach((insn, i) => {
    const o = i * 4;
    const w = (bytes[o]! | (bytes[o + 1]! << 8) | (bytes[o + 2]! << 16) | (bytes[o + 3]! << 24)) >>> 0;
    // The low half of an ADRP pair: decode gave it the pair's full address.
    const pairedLow =
      insn.memoryAddress !== undefined &&
      (w & 0x1f000000) !== 0x10000000 &&
      (w & 0x3b000000) !== 0x18000000 &&
      insn.kind === "other";
    if (pairedLow) completed.add(insn.memoryAddress! & ~0xfffn);
    if ((w & 0x9f000000) >>> 0 === 0x90000000) adrps.push(i);
    out.push({
      offset: o,
      length: 4,
      kind: insn.kind,
      fields: fieldsOfWord(w, pairedLow),
      ...(insn.target === undefined ? {} : { target: insn.target }),
      ...(insn.memoryAddress === undefined || insn.kind === "indirect-jump" || insn.kind === "indirect-call"
        ? {}
        : { memoryAddress: insn.memoryAddress }),
    });
  });
  for (const i of adrps) {
    const { memoryAddress: page, ...rest } = out[i]!;
    if (page !== undefined && completed.has(page)) out[i] = rest;
  }
  return out;
}
