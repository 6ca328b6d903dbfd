import type { Arch, BranchRef } from "../arch/arch.js";
import { R_AARCH64, R_X86_64, SHF } from "../formats/elf/constants.js";
import type { Elf } from "../formats/elf/elf.js";
import type { FunctionInfo } from "./functions.js";

/** Bytes after each entry in which a branch target matters (longest rewrite: a 14-byte absolute jump). */
export const ENTRY_WINDOW = 16n;

/** What one linear sweep of the executable sections tells about the functions' surroundings. */
export interface CodeScan {
  /**
   * Direct branches whose target is in the padding before an entry or its first ENTRY_WINDOW bytes,
   * per function index; without calls to the entry itself and jumps to it from other functions (tail
   * calls), which go where a redirect wants them and are most of all branches in a big file.
   */
  readonly branchesNear: Map<number, BranchRef[]>;
  /**
   * Per function index: the end of the last direct branch the sweep met between the previous
   * function's end and the entry, an instruction boundary from which to look for padding when the gap
   * holds code no symbol covers (stripped libraries) instead of decoding all of it again.
   */
  readonly gapBoundaries: Map<number, bigint>;
}

/**
 * Every direct branch in the file (linear sweep of each executable section, as objdump does) whose
 * target falls near a function entry: in the padding before it or the first ENTRY_WINDOW bytes.
 * Those are the branches that can break a redirect. Returns them per function index.
 */
export function findBranchesNearEntries(
  elf: Elf,
  arch: Arch,
  functions: readonly FunctionInfo[],
): Map<number, BranchRef[]> {
  return scanCode(elf, arch, functions).branchesNear;
}

/** One sweep for both `branchesNear` and `gapBoundaries` (see CodeScan). `functions` sorted by address. */
export function scanCode(elf: Elf, arch: Arch, functions: readonly FunctionInfo[]): CodeScan {
  const starts = new Float64Array(functions.length);
  const ends = new Float64Array(functions.length);
  const entries = new Float64Array(functions.length);
  const gapStarts = new Float64Array(functions.length);
  const bodyEnds = new Float64Array(functions.length);
  functions.forEach((f, i) => {
    bodyEnds[i] = Number(f.address + f.size);
    starts[i] = Math.min(Number(f.previousEnd), Number(f.address));
    ends[i] = Number(f.address + ENTRY_WINDOW);
    entries[i] = Number(f.address);
    gapStarts[i] = Number(f.previousEnd);
  });
  const hits = new Map<number, BranchRef[]>();
  const gapBoundaries = new Map<number, bigint>();
  const record = (ref: BranchRef): void => {
    const t = Number(ref.to);
    let lo = 0;
    let hi = functions.length - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (starts[mid]! <= t) {
        found = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    if (found < 0 || t >= ends[found]!) return;
    if (t === entries[found]!) {
      const from = Number(ref.from);
      if (ref.kind === "call" || from < t || from >= bodyEnds[found]!) return;
    }
    const list = hits.get(found);
    if (list === undefined) hits.set(found, [ref]);
    else list.push(ref);
  };
  // The sweep of a section goes up in address: `next` is the first function whose entry is past the
  // current branch, advanced as the sweep goes, found again by binary search at each section.
  let next = 0;
  const boundary = (ref: BranchRef): void => {
    const from = Number(ref.from);
    while (next < entries.length && entries[next]! <= from) next++;
    const end = from + ref.length;
    if (next < entries.length && from >= gapStarts[next]! && end <= entries[next]!)
      gapBoundaries.set(next, ref.from + BigInt(ref.length));
  };
  const fixups = elf.isRelocatable ? objectBranchTargets(elf) : undefined;
  for (const s of elf.sections) {
    if ((s.sh_flags & BigInt(SHF.SHF_EXECINSTR)) === 0n || s.sh_size === 0n || s.sh_type === 8) continue;
    const base = elf.sectionAddress(s);
    next = firstEntryAfter(entries, Number(base) - 1);
    arch.scanBranches(elf.sectionBytes(s), base, (ref) => {
      boundary(ref);
      if (fixups === undefined) return record(ref);
      // In a .o the displacement is a placeholder; the relocation on it says where the branch goes.
      const resolved = fixups.get(ref.from + BigInt(ref.length) - 4n);
      if (resolved === null) return; // to another file: cannot land near an entry of this one
      record(resolved === undefined ? ref : { ...ref, to: resolved });
    });
  }
  return { branchesNear: hits, gapBoundaries };
}

/** Index of the first entry > `address` (entries sorted). */
function firstEntryAfter(entries: Float64Array, address: number): number {
  let lo = 0;
  let hi = entries.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (entries[mid]! <= address) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * PC bias of a branch relocation: x86-64 PC32/PLT32 sit on the rel32 field, 4 bytes before the end
 * the CPU counts from (lands at S + A + 4); AArch64 JUMP26/CALL26/CONDBR19/TSTBR14 sit on the branch
 * word itself and count from it (lands at S + A). Undefined for any other type.
 */
const BRANCH_RELOCATION_BIAS = new Map<number, bigint>([
  [R_X86_64.R_X86_64_PC32, 4n],
  [R_X86_64.R_X86_64_PLT32, 4n],
  [R_AARCH64.R_AARCH64_JUMP26, 0n],
  [R_AARCH64.R_AARCH64_CALL26, 0n],
  [R_AARCH64.R_AARCH64_CONDBR19, 0n],
  [R_AARCH64.R_AARCH64_TSTBR14, 0n],
]);

/**
 * Relocated field → branch destination (null when the symbol is undefined) in a `.o`. The field is
 * the last 4 bytes of the branch on both arches (x86 rel32; the whole A64 word).
 */
export function objectBranchTargets(elf: Elf): Map<bigint, bigint | null> {
  const map = new Map<bigint, bigint | null>();
  const symbols = elf.symbols();
  for (const rs of elf.relocationSections()) {
    const target = rs.target;
    if (target === undefined || (target.sh_flags & BigInt(SHF.SHF_EXECINSTR)) === 0n) continue;
    const base = elf.sectionAddress(target);
    for (const r of rs.entries) {
      const bias = BRANCH_RELOCATION_BIAS.get(r.type);
      if (bias === undefined) continue;
      const sym = symbols[r.symbolIndex];
      const section =
        sym !== undefined && sym.st_shndx !== 0 && sym.st_shndx < 0xff00
          ? elf.sections[sym.st_shndx]
          : undefined;
      // x86: S + A - P is the displacement; the branch lands at P + 4 + disp = S + A + 4.
      map.set(
        base + r.r_offset,
        section === undefined ? null : elf.sectionAddress(section) + sym!.st_value + r.addend + bias,
      );
    }
  }
  return map;
}
