import { bytesFromHex } from "../core/hex.js";
import type { JournalPatch } from "./journal.js";

/**
 * What the bytes at `address` should be now: `original` (the file's) with every write of the
 * journal's entries laid over them in order — patches and call-site changes stack on the same bytes.
 */
export function journaledBytes(
  entries: readonly JournalPatch[],
  address: bigint,
  original: Uint8Array,
): Uint8Array {
  const out = original.slice();
  for (const p of entries) {
    for (const w of p.writes) {
      const after = bytesFromHex(w.after);
      const from = BigInt(w.address) - address;
      for (let i = 0; i < after.length; i++) {
        const k = from + BigInt(i);
        if (k >= 0n && k < BigInt(out.length)) out[Number(k)] = after[i]!;
      }
    }
  }
  return out;
}

/** Whether an entry writes any byte of [start, end). */
export function writesWithin(entry: JournalPatch, start: bigint, end: bigint): boolean {
  return entry.writes.some((w) => {
    const at = BigInt(w.address);
    return at < end && at + BigInt(w.after.length / 2) > start;
  });
}
