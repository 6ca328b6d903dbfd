import { DECODER_OPTIONS, Decoder, IcedInstruction, MAX_INSTRUCTION_LENGTH, Mnemonic } from "./iced.js";

/**
 * Length of the NOP at `bytes[offset]`, or 0 when the instruction there is not one. A NOP is what
 * iced names NOP: `90` (also with REX.W, `48 90`), `66 90` (`xchg %ax,%ax`), and `0f 1f /0` with any
 * ModRM/SIB/displacement and any number of `66`/segment/`f2`/`f3` prefixes up to 15 bytes
 * (`66 66 2e 0f 1f 84 00 …`, gas's `nopw %cs:0x0(%rax,%rax,1)`).
 * Not NOPs, on purpose: `41 90` is `xchg %eax,%r8d` (REX.B makes 90 a real exchange that zeroes the
 * top of r8); `f3 90` is `pause`; endbr64 is "endbr" (see endbr.ts); the other reserved-NOP hint
 * opcodes `0f 19`–`0f 1e` are not used as NOPs by compilers and are where new instructions land
 * (endbr64, rdssp, cldemote), so rewriting them as padding could destroy meaning.
 */
export function nopLength(bytes: Uint8Array, offset: number): number {
  const first = bytes[offset];
  if (first === undefined) return 0;
  if (first === 0x90) return 1; // the common case, without a trip into wasm
  if (first === 0xcc) return 0;
  const decoder = new Decoder(64, bytes.subarray(offset, offset + MAX_INSTRUCTION_LENGTH), DECODER_OPTIONS);
  const ins = new IcedInstruction();
  try {
    decoder.decodeOut(ins);
    return !ins.isInvalid && ins.mnemonic === Mnemonic.Nop ? ins.length : 0;
  } finally {
    ins.free(); // wasm memory: iced-x86 registers no finalizer
    decoder.free();
  }
}

/**
 * Intel's recommended multi-byte NOPs [Intel SDM Vol. 2B, NOP, Table 4-12] for 1–9 bytes, and gas's
 * longer forms made with more prefixes (binutils `i386_generate_nops`, `alt_patterns`) for 10–11.
 * Longer ones exist (up to 15 bytes) but more than 3–4 prefixes decode slowly on many cores.
 * Index = length.
 */
const NOPS: readonly (readonly number[])[] = [
  [],
  [0x90],
  [0x66, 0x90],
  [0x0f, 0x1f, 0x00],
  [0x0f, 0x1f, 0x40, 0x00],
  [0x0f, 0x1f, 0x44, 0x00, 0x00],
  [0x66, 0x0f, 0x1f, 0x44, 0x00, 0x00],
  [0x0f, 0x1f, 0x80, 0x00, 0x00, 0x00, 0x00],
  [0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00],
  [0x66, 0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00],
  [0x66, 0x2e, 0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00],
  [0x66, 0x66, 0x2e, 0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00],
];

/** Length of the longest NOP `nopFill` uses. */
export const MAX_NOP_FILL_LENGTH = NOPS.length - 1;

/**
 * Exactly `length` bytes of NOPs in the fewest instructions (⌈length / 11⌉): 11-byte NOPs, then one
 * for the remainder, so a thread resuming at any instruction boundary in the fill runs straight
 * through it. Throws RangeError for a negative or fractional length.
 */
export function nopFill(length: number): Uint8Array {
  if (!Number.isSafeInteger(length) || length < 0) throw new RangeError(`bad NOP fill length ${length}`);
  const out = new Uint8Array(length);
  let at = 0;
  while (at < length) {
    const nop = NOPS[Math.min(length - at, MAX_NOP_FILL_LENGTH)]!;
    out.set(nop, at);
    at += nop.length;
  }
  return out;
}
