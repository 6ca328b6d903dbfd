import type { BranchRef } from "../arch.js";
import {
  B_BASE,
  B_MASK,
  BCOND_BASE,
  BCOND_MASK,
  BL_BASE,
  CB_BASE,
  CB_MASK,
  directBranch,
  TB_BASE,
  TB_MASK,
} from "./a64-word.js";

/**
 * Linear sweep over `bytes` (at `address`) calling `onBranch` for every B, BL, B.cond, CBZ/CBNZ and
 * TBZ/TBNZ. A64 words never overlap, so there is nothing to resynchronise; a trailing partial word
 * is ignored. Literal data inside code (`$d` mapping symbols, rare in compiler output) is swept as
 * words too, as `objdump -D` would. One mask test per ordinary word, no bigint until a branch is found.
 */
export function scanBranches(bytes: Uint8Array, address: bigint, onBranch: (ref: BranchRef) => void): void {
  for (let o = 0; o + 4 <= bytes.length; o += 4) {
    const w = (bytes[o]! | (bytes[o + 1]! << 8) | (bytes[o + 2]! << 16) | (bytes[o + 3]! << 24)) >>> 0;
    const top = (w & B_MASK) >>> 0;
    if (
      top !== B_BASE &&
      top !== BL_BASE &&
      (w & BCOND_MASK) >>> 0 !== BCOND_BASE &&
      (w & CB_MASK) >>> 0 !== CB_BASE &&
      (w & TB_MASK) >>> 0 !== TB_BASE
    )
      continue;
    const from = address + BigInt(o);
    const b = directBranch(w, from)!;
    onBranch({ from, to: b.to, kind: b.kind, length: 4 });
  }
}
