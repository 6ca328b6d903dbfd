import { FormatError } from "../../core/errors.js";
import { type ByteReader, findCString } from "./byte-reader.js";
import { ELF64_SHDR_SIZE } from "./header.js";
import type { Section } from "./sections.js";

/** One symbol table entry [gABI 4.5 "Symbol Table"] with st_info/st_other split out. */
export interface ElfSymbol {
  /** Index in its table (relocations refer to symbols by it). */
  readonly index: number;
  readonly name: string;
  readonly st_name: number;
  readonly st_value: bigint;
  readonly st_size: bigint;
  /** STT_* (low 4 bits of st_info). */
  readonly type: number;
  /** STB_* (high 4 bits of st_info). */
  readonly bind: number;
  /** STV_* (low 2 bits of st_other). */
  readonly visibility: number;
  readonly st_shndx: number;
  /** Which table it came from. */
  readonly table: ".symtab" | ".dynsym" | string;
}

const ELF64_SYM_SIZE = 24;

/**
 * Parse a SHT_SYMTAB/SHT_DYNSYM section; names come from the string table in its sh_link. `shoff`
 * (e_shoff) lets errors in the table's own section header name the offset of the bad field.
 */
export function parseSymbols(
  r: ByteReader,
  table: Section,
  sections: readonly Section[],
  shoff?: bigint,
): ElfSymbol[] {
  const where = r.file === undefined ? {} : { file: r.file };
  const field = (at: number) =>
    shoff === undefined ? where : { ...where, offset: shoff + BigInt(table.index * ELF64_SHDR_SIZE + at) };
  if (table.sh_entsize !== 0n && table.sh_entsize !== BigInt(ELF64_SYM_SIZE)) {
    const detail = `${table.name} sh_entsize is ${table.sh_entsize}, expected ${ELF64_SYM_SIZE}`;
    throw new FormatError("ELF_CORRUPT", detail, field(56));
  }
  const strtab = sections[table.sh_link];
  if (strtab === undefined) {
    const detail = `${table.name} sh_link ${table.sh_link} is not a section (there are ${sections.length})`;
    throw new FormatError("ELF_CORRUPT", detail, field(40));
  }
  const names = r.slice(strtab.sh_offset, strtab.sh_size, `string table ${strtab.name} of ${table.name}`);
  const count = Number(table.sh_size / BigInt(ELF64_SYM_SIZE));
  const base = r.check(
    table.sh_offset,
    BigInt(count * ELF64_SYM_SIZE),
    `symbol table ${table.name} (${count} entries)`,
  );
  const out: ElfSymbol[] = new Array(count);
  for (let i = 0; i < count; i++) {
    const o = base + i * ELF64_SYM_SIZE;
    const st_name = r.rawU32(o);
    const info = r.bytes[o + 4]!;
    const other = r.bytes[o + 5]!;
    const name = st_name === 0 ? "" : findCString(names, st_name);
    if (name === undefined) {
      throw new FormatError(
        "ELF_CORRUPT",
        `symbol ${i} of ${table.name}: name index ${st_name} is outside its string table ${strtab.name} (${names.length} bytes)`,
        { ...where, offset: o },
      );
    }
    out[i] = {
      index: i,
      name,
      st_name,
      st_value: r.rawU64(o + 8),
      st_size: r.rawU64(o + 16),
      type: info & 0xf,
      bind: info >> 4,
      visibility: other & 3,
      st_shndx: r.rawU16(o + 6),
      table: table.name,
    };
  }
  return out;
}
