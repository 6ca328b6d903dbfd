import type { Arch } from "../arch/arch.js";
import { SHF, STB, STT } from "../formats/elf/constants.js";
import type { Elf } from "../formats/elf/elf.js";
import type { Section } from "../formats/elf/sections.js";
import type { ElfSymbol } from "../formats/elf/symbols.js";

/** A function of the file: one address, every symbol name that points at it, its extent. */
export interface FunctionInfo {
  readonly name: string;
  /** Other symbols at the same address (aliases such as `__libc_malloc`/`malloc`). */
  readonly aliases: readonly string[];
  readonly address: bigint;
  /**
   * st_size; when the symbol says 0 (crtstuff's frame_dummy, hand-written assembly), the distance to
   * the next function or the end of the section, less the NOP/int3 fill at its end when an arch is given.
   */
  readonly size: bigint;
  readonly sizeFromSymbol: boolean;
  readonly section: Section;
  readonly binding: "local" | "global" | "weak";
  /** End of whatever precedes this function in its section (the previous function or the section start). */
  readonly previousEnd: bigint;
}

const EXEC = BigInt(SHF.SHF_EXECINSTR);

function bindingName(bind: number): FunctionInfo["binding"] {
  return bind === STB.STB_LOCAL ? "local" : bind === STB.STB_WEAK ? "weak" : "global";
}

/**
 * Every function in executable sections, from `.symtab` (locals included) or, when stripped, from
 * `.dynsym`. Symbols sharing an address become one function with aliases; the global name wins.
 * With `arch`, a function whose symbol has no size ends after its last instruction that is not fill,
 * so the alignment padding and pre-entry sled of the next function are not counted as its body.
 */
export function listFunctions(elf: Elf, arch?: Arch): FunctionInfo[] {
  const symtab = elf.symbols();
  const symbols = symtab.length > 0 ? symtab : elf.dynamicSymbols();
  type Candidate = { sym: ElfSymbol; section: Section; address: bigint };
  const byAddress = new Map<bigint, Candidate[]>();
  for (const sym of symbols) {
    if (sym.type !== STT.STT_FUNC && sym.type !== STT.STT_GNU_IFUNC) continue;
    if (sym.st_shndx === 0 || sym.st_shndx >= 0xff00) continue;
    const section = elf.sections[sym.st_shndx];
    if (section === undefined || (section.sh_flags & EXEC) === 0n) continue;
    const address = elf.isRelocatable ? elf.sectionAddress(section) + sym.st_value : sym.st_value;
    const list = byAddress.get(address);
    if (list === undefined) byAddress.set(address, [{ sym, section, address }]);
    else list.push({ sym, section, address });
  }
  const rank = (c: Candidate): number =>
    c.sym.bind === STB.STB_GLOBAL ? 0 : c.sym.bind === STB.STB_WEAK ? 1 : 2;
  const groups = [...byAddress.values()].map((list) =>
    list.sort(
      (a, b) =>
        rank(a) - rank(b) || Number(b.sym.st_size - a.sym.st_size) || a.sym.name.length - b.sym.name.length,
    ),
  );
  groups.sort((a, b) => (a[0]!.address < b[0]!.address ? -1 : a[0]!.address > b[0]!.address ? 1 : 0));

  const out: FunctionInfo[] = [];
  for (let i = 0; i < groups.length; i++) {
    const group = groups[i]!;
    const main = group[0]!;
    const sectionStart = elf.sectionAddress(main.section);
    const sectionEnd = sectionStart + main.section.sh_size;
    const next = groups[i + 1]?.[0];
    const nextStart = next !== undefined && next.section === main.section ? next.address : sectionEnd;
    const symbolSize = group.reduce((m, c) => (c.sym.st_size > m ? c.sym.st_size : m), 0n);
    const size =
      symbolSize > 0n ? symbolSize : unsizedExtent(elf, arch, main.section, main.address, nextStart);
    const prev = out[out.length - 1];
    const previousEnd =
      prev !== undefined && prev.section === main.section && prev.address + prev.size <= main.address
        ? prev.address + prev.size
        : sectionStart;
    out.push({
      name: main.sym.name,
      aliases: [...new Set(group.slice(1).map((c) => c.sym.name))].filter((n) => n !== main.sym.name),
      address: main.address,
      size,
      sizeFromSymbol: symbolSize > 0n,
      section: main.section,
      binding: bindingName(main.sym.bind),
      previousEnd,
    });
  }
  return out;
}

/**
 * Extent of an unsized function from `address` to `limit` (the next function or the section end):
 * up to the end of its last instruction that is neither a NOP nor the trap fill byte. Without this,
 * gcc's `-fpatchable-function-entry=N,M` sled of the next function (M NOPs before its entry) falls
 * inside crtstuff's size-0 `frame_dummy` and is taken for a sled of frame_dummy.
 */
function unsizedExtent(
  elf: Elf,
  arch: Arch | undefined,
  section: Section,
  address: bigint,
  limit: bigint,
): bigint {
  if (arch === undefined || limit <= address) return limit - address;
  const bytes = elf.sectionBytes(section);
  const from = Number(address - elf.sectionAddress(section));
  const to = Math.min(bytes.length, Number(limit - elf.sectionAddress(section)));
  if (from < 0 || from >= to) return limit - address;
  let end = 0;
  let at = 0;
  for (const insn of arch.decode(bytes.subarray(from, to), address)) {
    at += insn.length;
    const fill = insn.kind === "nop" || (insn.length === 1 && bytes[from + at - 1] === arch.trapByte);
    if (!fill) end = at;
  }
  // Bytes the decoder could not finish (cut short at `limit`) are not fill: keep them.
  if (at < to - from) end = to - from;
  return end === 0 ? limit - address : BigInt(end);
}
