/** `endbr64`: the IBT landing pad that `-fcf-protection` puts at every indirect-branch target. */
const ENDBR64 = [0xf3, 0x0f, 0x1e, 0xfa] as const;

/**
 * Length of the `endbr64` at `bytes[offset]` (4), or 0. Only endbr64: endbr32 (`f3 0f 1e fb`) marks
 * 32-bit code and is a plain hint NOP in 64-bit mode, so it is no landing pad a patch must keep.
 */
export function endbrLength(bytes: Uint8Array, offset: number): number {
  for (let i = 0; i < ENDBR64.length; i++) {
    if (bytes[offset + i] !== ENDBR64[i]) return 0;
  }
  return ENDBR64.length;
}
