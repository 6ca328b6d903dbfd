/** Bytes in `jmp rel8` (eb). */
export const SHORT_JUMP_LENGTH = 2;
/** Bytes in `jmp rel32` (e9), and in `call rel32` (e8). */
export const NEAR_JUMP_LENGTH = 5;
/** Bytes in `jmp *0x0(%rip)` followed by its 8-byte target. */
export const ABSOLUTE_JUMP_LENGTH = 14;

const INT32_MIN = -(2n ** 31n);
const INT32_MAX = 2n ** 31n - 1n;
const UINT64_MAX = 2n ** 64n - 1n;

/** `jmp rel8` from `from` to `to`, or `undefined` when `to` lies beyond -128..127 of its end. */
export function encodeShortJump(from: bigint, to: bigint): Uint8Array | undefined {
  const rel = to - (from + BigInt(SHORT_JUMP_LENGTH)); // relative to the next instruction [SDM JMP]
  if (rel < -128n || rel > 127n) return undefined;
  return Uint8Array.of(0xeb, Number(rel) & 0xff);
}

/** `jmp rel32` from `from` to `to`, or `undefined` when `to` is beyond ±2 GiB of its end. */
export function encodeNearJump(from: bigint, to: bigint): Uint8Array | undefined {
  return encodeRel32(0xe9, from, to);
}

/** `call rel32` from `from` to `to`, or `undefined` when `to` is beyond ±2 GiB of its end. */
export function encodeNearCall(from: bigint, to: bigint): Uint8Array | undefined {
  return encodeRel32(0xe8, from, to);
}

/**
 * `jmp *0x0(%rip)` followed by the 8-byte target it reads: reaches any address, clobbers no
 * register or flag, and is position independent (what Frida and Detours use on x86-64). The
 * target is data after the jump, so nothing may fall through into it. Throws RangeError for an
 * address outside 0..2^64-1.
 */
export function encodeAbsoluteJump(to: bigint): Uint8Array {
  if (to < 0n || to > UINT64_MAX) throw new RangeError(`address ${to} is not a 64-bit address`);
  const out = new Uint8Array(ABSOLUTE_JUMP_LENGTH);
  out.set([0xff, 0x25, 0, 0, 0, 0]); // ff /4, ModRM 00 100 101 = [rip + disp32], disp32 = 0
  new DataView(out.buffer).setBigUint64(6, to, true);
  return out;
}

/** `opcode` + rel32, the displacement counted from the end of the 5 bytes. */
function encodeRel32(opcode: number, from: bigint, to: bigint): Uint8Array | undefined {
  const rel = to - (from + BigInt(NEAR_JUMP_LENGTH));
  if (rel < INT32_MIN || rel > INT32_MAX) return undefined;
  const out = new Uint8Array(NEAR_JUMP_LENGTH);
  out[0] = opcode;
  new DataView(out.buffer).setInt32(1, Number(rel), true);
  return out;
}
