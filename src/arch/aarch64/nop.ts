import { HINT, hintNumber, NOP, wordAt } from "./a64-word.js";

/** Bytes in every A64 instruction, the NOP included. */
export const INSTRUCTION_LENGTH = 4;

/**
 * 4 when the word at `bytes[offset]` is `nop` (HINT #0, what `-fpatchable-function-entry` and gas's
 * code alignment emit), else 0. Other HINTs are not NOPs here even though they execute as such on
 * cores without the feature: `bti`, `paciasp`, `xpaclri` carry meaning on cores that have it.
 */
export function nopLength(bytes: Uint8Array, offset: number): number {
  return wordAt(bytes, offset) === NOP ? INSTRUCTION_LENGTH : 0;
}

/**
 * 4 when the word at `bytes[offset]` is a BTI landing pad (`bti`, `bti c`, `bti j`, `bti jc`), else 0.
 * It plays endbr64's part: an indirect branch into a guarded page must land on one [Arm ARM, "Branch Target Identification"],
 * so a redirect is written after it. `paciasp`/`pacibsp` are implicit `bti c` pads too, but they
 * are the prologue's return-address signing, which the replacement does for itself; see
 * `isImplicitLandingPad`.
 */
export function endbrLength(bytes: Uint8Array, offset: number): number {
  const hint = hintNumber(wordAt(bytes, offset) ?? 0);
  return hint === HINT.BTI || hint === HINT.BTI_C || hint === HINT.BTI_J || hint === HINT.BTI_JC
    ? INSTRUCTION_LENGTH
    : 0;
}

/** `paciasp`/`pacibsp` at `offset`: a landing pad for BLR and BR x16/x17 in a guarded page [Arm ARM, "Branch Target Identification"]. */
export function isImplicitLandingPad(bytes: Uint8Array, offset: number): boolean {
  const hint = hintNumber(wordAt(bytes, offset) ?? 0);
  return hint === HINT.PACIASP || hint === HINT.PACIBSP;
}

/** `length / 4` NOPs; throws RangeError when `length` is not a multiple of 4. */
export function nopFill(length: number): Uint8Array {
  if (length < 0 || length % INSTRUCTION_LENGTH !== 0)
    throw new RangeError(`${length} bytes is not a whole number of A64 instructions`);
  const out = new Uint8Array(length);
  const view = new DataView(out.buffer);
  for (let o = 0; o < length; o += 4) view.setUint32(o, NOP, true);
  return out;
}
