/**
 * A64 instruction words: every A64 instruction is one little-endian 32-bit word, 4-byte aligned
 * [Arm ARM, "A64 instruction set encoding"]. The bit-field helpers and the handful of fixed encodings analysis needs.
 */

/** The word at `bytes[offset]`, or `undefined` when fewer than 4 bytes remain. */
export function wordAt(bytes: Uint8Array, offset: number): number | undefined {
  if (offset < 0 || offset + 4 > bytes.length) return undefined;
  return (
    (bytes[offset]! | (bytes[offset + 1]! << 8) | (bytes[offset + 2]! << 16) | (bytes[offset + 3]! << 24)) >>>
    0
  );
}

/** Sign-extend the low `bits` bits of `value`. */
export function signExtend(value: number, bits: number): number {
  const shift = 32 - bits;
  return (value << shift) >> shift;
}

/** `NOP` [Arm ARM, "NOP"]: HINT #0. */
export const NOP = 0xd503201f;
/** HINT #imm: `1101 0101 0000 0011 0010 CRm op2 11111`; imm = CRm:op2 [Arm ARM, "HINT"]. */
export const HINT_MASK = 0xfffff01f;
export const HINT_BASE = 0xd503201f;
/** HINT numbers of the landing pads and return-address signing compilers emit at entries [Arm ARM, "BTI", "PACIA"]. */
export const HINT = {
  PACIAZ: 24,
  PACIASP: 25,
  PACIBZ: 26,
  PACIBSP: 27,
  AUTIAZ: 28,
  AUTIASP: 29,
  AUTIBZ: 30,
  AUTIBSP: 31,
  BTI: 32,
  BTI_C: 34,
  BTI_J: 36,
  BTI_JC: 38,
} as const;

/** The HINT number of `word`, or -1 when it is no HINT. */
export function hintNumber(word: number): number {
  return (word & HINT_MASK) >>> 0 === HINT_BASE ? (word >>> 5) & 0x7f : -1;
}

/** Direct branches and their immediates [Arm ARM, "Branches, Exception Generating and System instructions"]. */
export const B_MASK = 0xfc000000; // B / BL: op 00101 / 10101, imm26
export const B_BASE = 0x14000000;
export const BL_BASE = 0x94000000;
export const BCOND_MASK = 0xff000000; // B.cond / BC.cond: 0101 0100 imm19 o0 cond
export const BCOND_BASE = 0x54000000;
export const CB_MASK = 0x7e000000; // CBZ / CBNZ: sf 011010 op imm19 Rt
export const CB_BASE = 0x34000000;
export const TB_MASK = 0x7e000000; // TBZ / TBNZ: b5 011011 op b40 imm14 Rt
export const TB_BASE = 0x36000000;

/** Destination of the direct branch `word` at `address`, with its kind, or `undefined`. */
export function directBranch(
  word: number,
  address: bigint,
): { kind: "jump" | "call" | "cond-jump"; to: bigint } | undefined {
  const top = (word & B_MASK) >>> 0;
  if (top === B_BASE || top === BL_BASE) {
    const to = pcPlus(address, signExtend(word & 0x03ffffff, 26) * 4);
    return { kind: top === B_BASE ? "jump" : "call", to };
  }
  if ((word & BCOND_MASK) >>> 0 === BCOND_BASE || (word & CB_MASK) >>> 0 === CB_BASE) {
    return { kind: "cond-jump", to: pcPlus(address, signExtend((word >>> 5) & 0x7ffff, 19) * 4) };
  }
  if ((word & TB_MASK) >>> 0 === TB_BASE) {
    return { kind: "cond-jump", to: pcPlus(address, signExtend((word >>> 5) & 0x3fff, 14) * 4) };
  }
  return undefined;
}

/** `address + offset` in the 64-bit address space (wrapping, as the PC does and objdump prints). */
export function pcPlus(address: bigint, offset: number | bigint): bigint {
  return BigInt.asUintN(64, address + BigInt(offset));
}
