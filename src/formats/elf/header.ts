import { FormatError } from "../../core/errors.js";
import type { ByteReader } from "./byte-reader.js";

/** The ELF64 file header [gABI 4.1 "ELF Header"], with the spec's field names. */
export interface ElfHeader {
  readonly e_type: number;
  readonly e_machine: number;
  readonly e_version: number;
  readonly e_entry: bigint;
  readonly e_phoff: bigint;
  readonly e_shoff: bigint;
  readonly e_flags: number;
  readonly e_ehsize: number;
  readonly e_phentsize: number;
  readonly e_phnum: number;
  readonly e_shentsize: number;
  /** Number of sections, after the SHN_UNDEF-extension (real count in section 0's sh_size). */
  readonly e_shnum: number;
  /** Section-name string table index, after the SHN_XINDEX extension (real index in section 0's sh_link). */
  readonly e_shstrndx: number;
  readonly ei_osabi: number;
}

export const ELF64_EHDR_SIZE = 64;
export const ELF64_PHDR_SIZE = 56;
export const ELF64_SHDR_SIZE = 64;

/** Parse and validate the header: magic, 64-bit, little-endian, current version, sane table entry sizes. */
export function parseElfHeader(r: ByteReader): ElfHeader {
  const where = r.file === undefined ? {} : { file: r.file };
  if (
    r.length < 4 ||
    r.bytes[0] !== 0x7f ||
    r.bytes[1] !== 0x45 ||
    r.bytes[2] !== 0x4c ||
    r.bytes[3] !== 0x46
  ) {
    throw new FormatError("ELF_BAD_MAGIC", "missing ELF magic \\x7fELF", { ...where, offset: 0 });
  }
  r.check(0, ELF64_EHDR_SIZE, "ELF64 header");
  const eiClass = r.u8(4, "EI_CLASS");
  if (eiClass !== 2) {
    throw new FormatError(
      "ELF_UNSUPPORTED",
      `EI_CLASS is ${eiClass} (${eiClass === 1 ? "32-bit" : "invalid"}), expected 2 (64-bit)`,
      { ...where, offset: 4 },
    );
  }
  const eiData = r.u8(5, "EI_DATA");
  if (eiData !== 1) {
    throw new FormatError(
      "ELF_UNSUPPORTED",
      `EI_DATA is ${eiData} (${eiData === 2 ? "big-endian" : "invalid"}), expected 1 (little-endian)`,
      { ...where, offset: 5 },
    );
  }
  const eiVersion = r.u8(6, "EI_VERSION");
  if (eiVersion !== 1) {
    throw new FormatError("ELF_CORRUPT", `EI_VERSION is ${eiVersion}, expected 1`, { ...where, offset: 6 });
  }
  const header = {
    e_type: r.u16(16, "e_type"),
    e_machine: r.u16(18, "e_machine"),
    e_version: r.u32(20, "e_version"),
    e_entry: r.u64(24, "e_entry"),
    e_phoff: r.u64(32, "e_phoff"),
    e_shoff: r.u64(40, "e_shoff"),
    e_flags: r.u32(48, "e_flags"),
    e_ehsize: r.u16(52, "e_ehsize"),
    e_phentsize: r.u16(54, "e_phentsize"),
    e_phnum: r.u16(56, "e_phnum"),
    e_shentsize: r.u16(58, "e_shentsize"),
    e_shnum: r.u16(60, "e_shnum"),
    e_shstrndx: r.u16(62, "e_shstrndx"),
    ei_osabi: r.u8(7, "EI_OSABI"),
  };
  if (header.e_phnum > 0 && header.e_phentsize !== ELF64_PHDR_SIZE) {
    throw new FormatError(
      "ELF_CORRUPT",
      `e_phentsize is ${header.e_phentsize}, expected ${ELF64_PHDR_SIZE}`,
      { ...where, offset: 54 },
    );
  }
  if (header.e_shoff !== 0n && header.e_shentsize !== ELF64_SHDR_SIZE) {
    throw new FormatError(
      "ELF_CORRUPT",
      `e_shentsize is ${header.e_shentsize}, expected ${ELF64_SHDR_SIZE}`,
      { ...where, offset: 58 },
    );
  }
  // Extended numbering [gABI 4.2 "Sections"]: counts ≥ SHN_LORESERVE live in section header 0.
  if (header.e_shoff !== 0n && (header.e_shnum === 0 || header.e_shstrndx === 0xffff)) {
    const s0 = r.check(header.e_shoff, ELF64_SHDR_SIZE, "section header 0 (extended numbering)");
    if (header.e_shnum === 0) header.e_shnum = Number(r.u64(s0 + 32, "section 0 sh_size"));
    if (header.e_shstrndx === 0xffff) header.e_shstrndx = r.u32(s0 + 40, "section 0 sh_link");
  }
  return header;
}
