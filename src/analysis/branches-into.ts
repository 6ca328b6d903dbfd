import type { Arch, BranchRef } from "../arch/arch.js";
import { SHF } from "../formats/elf/constants.js";
import type { Elf } from "../formats/elf/elf.js";
import { objectBranchTargets } from "./branch-scan.js";

/** A byte range [start, end) of a file. */
export interface AddressRange {
  readonly start: bigint;
  readonly end: bigint;
}

/**
 * Every direct branch in the file (one linear sweep of each executable section, as objdump does)
 * whose target lies strictly inside one of `ranges` — after its first byte, where a thread could
 * only arrive mid-instruction once the range is rewritten. `ranges` must be sorted and disjoint;
 * the answer is keyed by range index. In a `.o` the relocation on a branch says where it goes.
 * Indirect branches (jump tables, function pointers) are not seen: they land on instruction
 * boundaries of the code as compiled, which a rewrite of whole instructions keeps.
 */
export function findBranchesInto(
  elf: Elf,
  arch: Arch,
  ranges: readonly AddressRange[],
): Map<number, BranchRef[]> {
  const hits = new Map<number, BranchRef[]>();
  if (ranges.length === 0) return hits;
  const starts = Float64Array.from(ranges, (r) => Number(r.start));
  const ends = Float64Array.from(ranges, (r) => Number(r.end));
  const lowest = starts[0]!;
  const highest = ends[ends.length - 1]!;
  const record = (ref: BranchRef): void => {
    const t = Number(ref.to);
    if (t <= lowest || t >= highest) return;
    // Last range starting before t.
    let lo = 0;
    let hi = starts.length - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (starts[mid]! < t) {
        found = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    if (found < 0 || t >= ends[found]!) return;
    const list = hits.get(found);
    if (list === undefined) hits.set(found, [ref]);
    else list.push(ref);
  };
  const fixups = elf.isRelocatable ? objectBranchTargets(elf) : undefined;
  for (const s of elf.sections) {
    if ((s.sh_flags & BigInt(SHF.SHF_EXECINSTR)) === 0n || s.sh_size === 0n || s.sh_type === 8) continue;
    arch.scanBranches(elf.sectionBytes(s), elf.sectionAddress(s), (ref) => {
      if (fixups === undefined) return record(ref);
      const resolved = fixups.get(ref.from + BigInt(ref.length) - 4n);
      if (resolved === null) return; // to another file
      record(resolved === undefined ? ref : { ...ref, to: resolved });
    });
  }
  return hits;
}
