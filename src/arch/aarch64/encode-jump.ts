import { B_BASE, BL_BASE } from "./a64-word.js";

/** Bytes in `b imm26` and `bl imm26`. */
export const BRANCH_LENGTH = 4;
/** Bytes in `ldr x16, #8; br x16; .quad target`. */
export const ABSOLUTE_JUMP_LENGTH = 16;
/** `b`/`bl` reach: imm26 words either way, ±128 MiB [Arm ARM, "B"]. */
export const BRANCH_REACH = 1n << 27n;

const UINT64_MAX = 2n ** 64n - 1n;

/** `b to` at `from`, or `undefined` when `to` is beyond ±128 MiB or not 4-byte aligned. */
export function encodeBranch(from: bigint, to: bigint): Uint8Array | undefined {
  return encodeImm26(B_BASE, from, to);
}

/** `bl to` at `from`, or `undefined` when out of reach. */
export function encodeBranchLink(from: bigint, to: bigint): Uint8Array | undefined {
  return encodeImm26(BL_BASE, from, to);
}

/**
 * `ldr x16, .+8; br x16; .quad to`: reaches any address and is position independent, as the
 * linkers' long-branch veneers are. It clobbers x16 (IP0), which the AAPCS64 gives to veneers
 * between a call and its callee [AAPCS64, "General-purpose Registers"], so it is only valid where a call enters a
 * function. `br x16` may land on `bti c` or `paciasp` in a guarded page (BTYPE 01 is accepted by
 * both [Arm ARM, "Branch Target Identification"]), so any function entry is a valid destination. The literal is data: nothing
 * may fall into it. Throws RangeError for an address outside 0..2^64-1.
 */
export function encodeAbsoluteJump(to: bigint): Uint8Array {
  if (to < 0n || to > UINT64_MAX) throw new RangeError(`address ${to} is not a 64-bit address`);
  const out = new Uint8Array(ABSOLUTE_JUMP_LENGTH);
  const view = new DataView(out.buffer);
  view.setUint32(0, 0x58000050, true); // ldr x16, #8: LDR (literal) 64-bit, imm19 = 2, Rt = 16
  view.setUint32(4, 0xd61f0200, true); // br x16
  view.setBigUint64(8, to, true);
  return out;
}

function encodeImm26(base: number, from: bigint, to: bigint): Uint8Array | undefined {
  const rel = to - from;
  if ((rel & 3n) !== 0n || rel < -BRANCH_REACH || rel >= BRANCH_REACH) return undefined;
  const out = new Uint8Array(BRANCH_LENGTH);
  new DataView(out.buffer).setUint32(0, (base | (Number(rel / 4n) & 0x03ffffff)) >>> 0, true);
  return out;
}
