import { inflateSync } from "node:zlib";
import { FormatError } from "../../core/errors.js";
import { EM, R_AARCH64, R_X86_64, SHF, SHN, SHT } from "../elf/constants.js";
import type { Elf } from "../elf/elf.js";
import type { Section } from "../elf/sections.js";
import type { DwarfSection } from "./dwarf-cursor.js";

/** ELFCOMPRESS_* of an Elf64_Chdr [gABI 4.2 "Section Compression"]. */
const ELFCOMPRESS_ZLIB = 1;
const ELFCOMPRESS_ZSTD = 2;
const CHDR_SIZE = 24;

/**
 * The section contents DWARF is read from: decompressed when SHF_COMPRESSED (`-gz`, what Debian
 * ships in `-dbg`/`-dbgsym` files) or in the old `.zdebug_*` form, and in a relocatable object with
 * its `.rela.debug_*` applied — in a `.o` every offset into `.debug_str`/`.debug_abbrev`/`.debug_line`
 * and every code address is 0 plus a relocation (R_X86_64_32/64 against a section symbol). Code
 * addresses then follow `Elf.sectionAddress`, the same layout graft's analysis uses for `.o` files.
 */
export function debugSection(
  elf: Elf,
  name: string,
  warn: (message: string) => void,
): DwarfSection | undefined {
  const base = name.replace(/^\.debug_/, "");
  const section = elf.findSection(name) ?? elf.findSection(`.zdebug_${base}`);
  if (section === undefined || section.sh_type === SHT.SHT_NOBITS) return undefined;
  let bytes = contents(elf, section);
  if (elf.isRelocatable) bytes = relocate(elf, section, bytes, warn);
  return { name, bytes, file: elf.file };
}

function contents(elf: Elf, s: Section): Uint8Array {
  const raw = elf.sectionBytes(s);
  const where = { ...(elf.file === undefined ? {} : { file: elf.file }), offset: s.sh_offset };
  if ((s.sh_flags & BigInt(SHF.SHF_COMPRESSED)) !== 0n) {
    if (raw.length < CHDR_SIZE)
      throw new FormatError("DWARF_TRUNCATED", `${s.name} compression header is cut short`, where);
    const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    const type = view.getUint32(0, true);
    const size = view.getBigUint64(8, true);
    if (type === ELFCOMPRESS_ZSTD)
      throw new FormatError("DWARF_UNSUPPORTED", `${s.name} is zstd-compressed (ELFCOMPRESS_ZSTD)`, where);
    if (type !== ELFCOMPRESS_ZLIB)
      throw new FormatError("DWARF_UNSUPPORTED", `${s.name} has compression type ${type}`, where);
    return inflate(raw.subarray(CHDR_SIZE), size, s.name, where);
  }
  if (s.name.startsWith(".zdebug_")) {
    // GNU's pre-gABI form: "ZLIB", the size as 8 big-endian bytes, then the zlib stream.
    if (raw.length < 12 || new TextDecoder().decode(raw.subarray(0, 4)) !== "ZLIB")
      throw new FormatError("DWARF_CORRUPT", `${s.name} does not start with "ZLIB"`, where);
    const size = new DataView(raw.buffer, raw.byteOffset + 4, 8).getBigUint64(0, false);
    return inflate(raw.subarray(12), size, s.name, where);
  }
  return raw;
}

function inflate(
  stream: Uint8Array,
  size: bigint,
  name: string,
  where: { file?: string; offset: bigint },
): Uint8Array {
  // A lying size must not make us allocate gigabytes: zlib expands at most ~1032:1.
  if (size > BigInt(stream.length) * 1032n + 64n)
    throw new FormatError("DWARF_CORRUPT", `${name} claims ${size} bytes uncompressed`, where);
  let out: Buffer;
  try {
    out = inflateSync(stream, { maxOutputLength: Number(size) + 1 });
  } catch (e) {
    throw new FormatError("DWARF_CORRUPT", `${name} does not inflate (${(e as Error).message})`, where);
  }
  if (BigInt(out.length) !== size)
    throw new FormatError(
      "DWARF_CORRUPT",
      `${name} inflates to ${out.length} bytes, its header says ${size}`,
      where,
    );
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}

/**
 * Apply the relocations of a relocatable object to a copy of one debug section. Only absolute
 * 32/64-bit types occur in DWARF [x86-64 psABI 4.4, AArch64 ELF 5.7]; others (TLS offsets inside
 * location expressions) are left as they are, with a warning.
 */
function relocate(elf: Elf, target: Section, bytes: Uint8Array, warn: (m: string) => void): Uint8Array {
  const sets = elf.relocationSections().filter((r) => r.target?.index === target.index);
  if (sets.length === 0) return bytes;
  const out = bytes.slice();
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  const symbols = elf.symbols();
  const aarch64 = elf.header.e_machine === EM.EM_AARCH64;
  const abs64 = aarch64 ? R_AARCH64.R_AARCH64_ABS64 : R_X86_64.R_X86_64_64;
  const abs32 = aarch64 ? R_AARCH64.R_AARCH64_ABS32 : R_X86_64.R_X86_64_32;
  const none = aarch64 ? R_AARCH64.R_AARCH64_NONE : R_X86_64.R_X86_64_NONE;
  const skipped = new Set<number>();
  for (const set of sets) {
    for (const r of set.entries) {
      if (r.type === none) continue;
      const size = r.type === abs64 ? 8 : r.type === abs32 ? 4 : 0;
      if (size === 0) {
        skipped.add(r.type);
        continue;
      }
      const sym = symbols[r.symbolIndex];
      if (sym === undefined || r.r_offset + BigInt(size) > BigInt(out.length)) {
        throw new FormatError(
          "DWARF_CORRUPT",
          `relocation in ${set.section.name} at 0x${r.r_offset.toString(16)} names symbol ${r.symbolIndex} or an offset outside ${target.name}`,
          { ...(elf.file === undefined ? {} : { file: elf.file }), offset: set.section.sh_offset },
        );
      }
      let s = 0n;
      if (sym.st_shndx === SHN.SHN_ABS) s = sym.st_value;
      else if (sym.st_shndx > 0 && sym.st_shndx < SHN.SHN_LORESERVE) {
        const in_ = elf.sections[sym.st_shndx];
        s = (in_ === undefined ? 0n : elf.sectionAddress(in_)) + sym.st_value;
      }
      const value = s + r.addend;
      if (size === 8) view.setBigUint64(Number(r.r_offset), BigInt.asUintN(64, value), true);
      else view.setUint32(Number(r.r_offset), Number(BigInt.asUintN(32, value)), true);
    }
  }
  if (skipped.size > 0)
    warn(
      `${target.name}: relocation types ${[...skipped].join(", ")} left unapplied (not addresses or offsets)`,
    );
  return out;
}
