import { FormatError } from "../../core/errors.js";
import { type ByteReader, findCString } from "./byte-reader.js";
import { SHT } from "./constants.js";
import type { ElfHeader } from "./header.js";
import { ELF64_SHDR_SIZE } from "./header.js";

/** One section header [gABI 4.2], plus its index and resolved name. */
export interface Section {
  readonly index: number;
  readonly name: string;
  readonly sh_name: number;
  readonly sh_type: number;
  readonly sh_flags: bigint;
  readonly sh_addr: bigint;
  readonly sh_offset: bigint;
  readonly sh_size: bigint;
  readonly sh_link: number;
  readonly sh_info: number;
  readonly sh_addralign: bigint;
  readonly sh_entsize: bigint;
}

export function parseSections(r: ByteReader, h: ElfHeader, onWarning: (message: string) => void): Section[] {
  if (h.e_shoff === 0n || h.e_shnum === 0) return [];
  const where = r.file === undefined ? {} : { file: r.file };
  const base = r.check(
    h.e_shoff,
    BigInt(h.e_shnum) * BigInt(ELF64_SHDR_SIZE),
    `section header table (${h.e_shnum} entries)`,
  );
  const raw = [];
  for (let i = 0; i < h.e_shnum; i++) {
    const o = base + i * ELF64_SHDR_SIZE;
    raw.push({
      index: i,
      sh_name: r.rawU32(o),
      sh_type: r.rawU32(o + 4),
      sh_flags: r.rawU64(o + 8),
      sh_addr: r.rawU64(o + 16),
      sh_offset: r.rawU64(o + 24),
      sh_size: r.rawU64(o + 32),
      sh_link: r.rawU32(o + 40),
      sh_info: r.rawU32(o + 44),
      sh_addralign: r.rawU64(o + 48),
      sh_entsize: r.rawU64(o + 56),
    });
  }
  let names: Uint8Array = new Uint8Array(0);
  if (h.e_shstrndx !== 0) {
    const strtab = raw[h.e_shstrndx];
    if (strtab === undefined) {
      throw new FormatError(
        "ELF_CORRUPT",
        `e_shstrndx ${h.e_shstrndx} is not a section (there are ${h.e_shnum})`,
        { ...where, offset: 62 },
      );
    }
    names = r.slice(strtab.sh_offset, strtab.sh_size, `section name table (section ${h.e_shstrndx})`);
  }
  return raw.map((s) => {
    let name = h.e_shstrndx === 0 ? "" : findCString(names, s.sh_name);
    if (name === undefined) {
      throw new FormatError(
        "ELF_CORRUPT",
        `section ${s.index} name index ${s.sh_name} is outside the section name table (${names.length} bytes)`,
        {
          ...where,
          offset: base + s.index * ELF64_SHDR_SIZE,
        },
      );
    }
    if (
      s.sh_type !== SHT.SHT_NOBITS &&
      s.sh_type !== SHT.SHT_NULL &&
      s.sh_offset + s.sh_size > BigInt(r.length)
    ) {
      onWarning(`section ${s.index} (${name}) extends past the end of the file`);
      name = name || `#${s.index}`;
    }
    return { ...s, name };
  });
}

/** The bytes of a section (a view). Throws ELF_TRUNCATED when they run past the end of the file. */
export function sectionBytes(r: ByteReader, s: Section): Uint8Array {
  if (s.sh_type === SHT.SHT_NOBITS) return new Uint8Array(0);
  return r.slice(s.sh_offset, s.sh_size, `contents of section ${s.index} (${s.name})`);
}
