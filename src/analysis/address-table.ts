import { R_AARCH64, R_X86_64 } from "../formats/elf/constants.js";
import type { Elf } from "../formats/elf/elf.js";
import type { Section } from "../formats/elf/sections.js";

/**
 * Read a table of 8-byte code addresses that the compiler emits (`__patchable_function_entries`,
 * `__mcount_loc`) in any kind of file: absolute words in ET_EXEC; R_*_RELATIVE-relocated words in
 * PIE and DSOs (the addend is the address; the stored word may be 0); R_X86_64_64 against a symbol
 * or section in `.o` files, where the table may also be split into one SHF_LINK_ORDER section per
 * function — pass every section of that name.
 */
export function readAddressTable(elf: Elf, sections: readonly Section[]): bigint[] {
  const out: bigint[] = [];
  const relocated = relocatedWords(elf);
  for (const s of sections) {
    const bytes = elf.sectionBytes(s);
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const base = elf.isRelocatable ? 0n : s.sh_addr;
    const inObject = elf.isRelocatable ? objectRelocations(elf, s) : undefined;
    for (let o = 0; o + 8 <= bytes.length; o += 8) {
      const at = base + BigInt(o);
      const fromReloc = inObject !== undefined ? inObject.get(BigInt(o)) : relocated.get(at);
      const value = fromReloc ?? view.getBigUint64(o, true);
      if (value !== 0n) out.push(value);
    }
  }
  return out;
}

/** Link-time address → value for RELATIVE relocations in linked files (RELA addends and RELR words). */
function relocatedWords(elf: Elf): Map<bigint, bigint> {
  const map = new Map<bigint, bigint>();
  if (elf.isRelocatable) return map;
  for (const rs of elf.relocationSections()) {
    for (const r of rs.entries) {
      if (r.type === R_X86_64.R_X86_64_RELATIVE || r.type === R_AARCH64.R_AARCH64_RELATIVE)
        map.set(r.r_offset, r.addend);
    }
  }
  for (const at of elf.relrAddresses()) {
    const bytes = elf.findBytesAt(at, 8);
    if (bytes !== undefined)
      map.set(at, new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true));
  }
  return map;
}

/** Offset in `s` → resolved address, from the relocation section that applies to `s` in a `.o`. */
function objectRelocations(elf: Elf, s: Section): Map<bigint, bigint> {
  const map = new Map<bigint, bigint>();
  for (const rs of elf.relocationSections()) {
    if (rs.target !== s) continue;
    const symbols = elf.symbols();
    for (const r of rs.entries) {
      if (r.type !== R_X86_64.R_X86_64_64 && r.type !== R_AARCH64.R_AARCH64_ABS64) continue;
      const sym = symbols[r.symbolIndex];
      if (sym === undefined || sym.st_shndx === 0 || sym.st_shndx >= 0xff00) continue;
      const section = elf.sections[sym.st_shndx];
      if (section === undefined) continue;
      map.set(r.r_offset, elf.sectionAddress(section) + sym.st_value + r.addend);
    }
  }
  return map;
}
