import { FormatError } from "../../core/errors.js";
import { ByteReader } from "./byte-reader.js";
import { DT, EM, ET, NT_GNU_BUILD_ID, PT, R_AARCH64, R_X86_64, SHF, SHN, SHT } from "./constants.js";
import { type DynamicEntry, parseDynamic } from "./dynamic.js";
import { type ElfHeader, parseElfHeader } from "./header.js";
import { type ElfNote, parseNotes } from "./notes.js";
import { type ProgramHeader, parseProgramHeaders } from "./program-headers.js";
import { parseRelocations, parseRelr, type RelocationSection } from "./relocations.js";
import { parseSections, type Section, sectionBytes } from "./sections.js";
import { parseStapsdtNotes, type UsdtProbe } from "./stapsdt.js";
import { type ElfSymbol, parseSymbols } from "./symbols.js";

/** DT_FLAGS_1 bit for position-independent executables [gABI dynamic section, DF_1_PIE]. */
const DF_1_PIE = 0x08000000n;

export interface ParseElfOptions {
  /** File name used in error messages. */
  readonly file?: string;
  /** Sink for non-fatal damage; parsing goes on past it. */
  readonly onWarning?: (message: string) => void;
}

/**
 * A parsed ELF64 little-endian file. Headers are read eagerly and validated; symbols, relocations,
 * notes and the dynamic section on first use, memoized. Pure: works on bytes, never touches the disk.
 */
export class Elf {
  readonly file: string | undefined;
  readonly header: ElfHeader;
  readonly programHeaders: readonly ProgramHeader[];
  readonly sections: readonly Section[];
  readonly reader: ByteReader;
  private readonly warn: (message: string) => void;
  private readonly memo = new Map<string, unknown>();

  constructor(bytes: Uint8Array, options: ParseElfOptions = {}) {
    this.file = options.file;
    this.warn = options.onWarning ?? (() => {});
    this.reader = new ByteReader(bytes, options.file);
    this.header = parseElfHeader(this.reader);
    this.programHeaders = parseProgramHeaders(this.reader, this.header);
    this.sections = parseSections(this.reader, this.header, this.warn);
  }

  private once<T>(key: string, make: () => T): T {
    if (!this.memo.has(key)) this.memo.set(key, make());
    return this.memo.get(key) as T;
  }

  private corrupt(detail: string, offset?: bigint | number): FormatError {
    return new FormatError("ELF_CORRUPT", detail, {
      ...(this.file === undefined ? {} : { file: this.file }),
      ...(offset === undefined ? {} : { offset }),
    });
  }

  get bytes(): Uint8Array {
    return this.reader.bytes;
  }
  get isRelocatable(): boolean {
    return this.header.e_type === ET.ET_REL;
  }
  /** ET_DYN: a PIE executable or a shared library; addresses are relative to a load bias. */
  get isPositionIndependent(): boolean {
    return this.header.e_type === ET.ET_DYN;
  }
  get kind(): "relocatable" | "executable" | "pie-executable" | "shared-library" | "core" | "unknown" {
    switch (this.header.e_type) {
      case ET.ET_REL:
        return "relocatable";
      case ET.ET_EXEC:
        return "executable";
      case ET.ET_DYN:
        return this.isPieExecutable() ? "pie-executable" : "shared-library";
      case ET.ET_CORE:
        return "core";
      default:
        return "unknown";
    }
  }

  /**
   * An ET_DYN file is a PIE when DT_FLAGS_1 has DF_1_PIE (how readelf and glibc tell), or, for PIEs
   * linked before DF_1_PIE existed (binutils < 2.35), when it has an interpreter and no DT_SONAME:
   * libc.so.6 has a PT_INTERP too (it runs as a program) yet is a shared library.
   */
  private isPieExecutable(): boolean {
    let entries: readonly DynamicEntry[] = [];
    try {
      entries = this.dynamic();
    } catch (e) {
      this.warn(
        `dynamic section unreadable, telling PIE from shared library by PT_INTERP alone: ${String(e)}`,
      );
    }
    const flags1 = entries.find((e) => e.d_tag === BigInt(DT.DT_FLAGS_1));
    if (flags1 !== undefined && (flags1.d_val & DF_1_PIE) !== 0n) return true;
    const hasInterp = this.programHeaders.some((p) => p.p_type === PT.PT_INTERP);
    return hasInterp && !entries.some((e) => e.d_tag === BigInt(DT.DT_SONAME));
  }

  findSection(name: string): Section | undefined {
    return this.sections.find((s) => s.name === name);
  }
  getSection(index: number): Section {
    const s = this.sections[index];
    if (s === undefined)
      throw this.corrupt(`section index ${index} is out of range (${this.sections.length} sections)`);
    return s;
  }
  /** The bytes of a section (a view into the file). */
  sectionBytes(s: Section): Uint8Array {
    return sectionBytes(this.reader, s);
  }

  /**
   * Address of a section. Linked files use sh_addr. Relocatable objects have every section at 0, so
   * graft lays SHF_ALLOC sections out one after another (like a linker would, from 0x1000) to give every
   * function a distinct address; analysis then works the same on .o files as on linked ones.
   */
  sectionAddress(s: Section): bigint {
    if (!this.isRelocatable) return s.sh_addr;
    return (
      this.once("relLayout", () => {
        const layout = new Map<number, bigint>();
        let next = 0x1000n;
        for (const sec of this.sections) {
          if ((sec.sh_flags & BigInt(SHF.SHF_ALLOC)) === 0n) continue;
          const align = sec.sh_addralign > 1n ? sec.sh_addralign : 1n;
          next = ((next + align - 1n) / align) * align;
          layout.set(sec.index, next);
          next += sec.sh_size;
        }
        return layout;
      }).get(s.index) ?? 0n
    );
  }

  /** `.symtab` entries (locals included), or [] when stripped. */
  symbols(): readonly ElfSymbol[] {
    return this.once("symtab", () => {
      const s = this.sections.find((x) => x.sh_type === SHT.SHT_SYMTAB);
      return s === undefined ? [] : parseSymbols(this.reader, s, this.sections, this.header.e_shoff);
    });
  }
  /** `.dynsym` entries, or []. */
  dynamicSymbols(): readonly ElfSymbol[] {
    return this.once("dynsym", () => {
      const s = this.sections.find((x) => x.sh_type === SHT.SHT_DYNSYM);
      return s === undefined ? [] : parseSymbols(this.reader, s, this.sections, this.header.e_shoff);
    });
  }

  /** Every SHT_REL/SHT_RELA section with its entries and what it applies to. */
  relocationSections(): readonly RelocationSection[] {
    return this.once("relocs", () =>
      this.sections
        .filter((s) => s.sh_type === SHT.SHT_RELA || s.sh_type === SHT.SHT_REL)
        .map((s) => {
          const appliesToSection = this.isRelocatable || (s.sh_flags & BigInt(SHF.SHF_INFO_LINK)) !== 0n;
          return {
            section: s,
            target: appliesToSection && s.sh_info !== 0 ? this.sections[s.sh_info] : undefined,
            symbolTable: s.sh_link !== 0 ? this.sections[s.sh_link] : undefined,
            entries: parseRelocations(this.reader, s, this.header.e_shoff),
          };
        }),
    );
  }
  /** Addresses relocated by SHT_RELR (packed R_*_RELATIVE), or []. */
  relrAddresses(): readonly bigint[] {
    return this.once("relr", () =>
      this.sections.filter((s) => s.sh_type === SHT.SHT_RELR).flatMap((s) => parseRelr(this.reader, s)),
    );
  }

  /** Every note, from SHT_NOTE sections or, in a section-less file, from PT_NOTE segments. */
  notes(): readonly ElfNote[] {
    return this.once("notes", () => {
      const fromSections = this.sections.filter((s) => s.sh_type === SHT.SHT_NOTE);
      if (fromSections.length > 0) {
        return fromSections.flatMap((s) =>
          parseNotes(this.reader, s.sh_offset, s.sh_size, `note section ${s.name}`),
        );
      }
      return this.programHeaders
        .filter((p) => p.p_type === PT.PT_NOTE)
        .flatMap((p) => parseNotes(this.reader, p.p_offset, p.p_filesz, `PT_NOTE segment ${p.index}`));
    });
  }

  /** The GNU build-id as lowercase hex, or undefined when the file has none. */
  buildId(): string | undefined {
    const note = this.notes().find((n) => n.name === "GNU" && n.type === NT_GNU_BUILD_ID);
    return note === undefined ? undefined : Buffer.from(note.desc).toString("hex");
  }

  /**
   * USDT probes from `.note.stapsdt`. In a relocatable object the note's address fields are 0 plus a
   * relocation; they are resolved here in the same layout as `sectionAddress`, so a probe lands inside
   * the function that holds it.
   */
  usdtProbes(): readonly UsdtProbe[] {
    return this.once("usdt", () => {
      const base = this.findSection(".stapsdt.base");
      const relocated = this.isRelocatable ? this.noteRelocations() : undefined;
      return parseStapsdtNotes(
        this.notes(),
        base === undefined ? undefined : this.sectionAddress(base),
        this.file,
        relocated === undefined
          ? undefined
          : (note, at, raw) => relocated.get(note.desc.byteOffset - this.bytes.byteOffset + at) ?? raw,
      );
    });
  }

  /**
   * Absolute 64-bit relocations (R_X86_64_64, R_AARCH64_ABS64) applied to note sections of a
   * relocatable object: file offset of the relocated field → S + A, with S in `sectionAddress` layout.
   */
  private noteRelocations(): Map<number, bigint> {
    const abs64 = this.header.e_machine === EM.EM_AARCH64 ? R_AARCH64.R_AARCH64_ABS64 : R_X86_64.R_X86_64_64;
    const out = new Map<number, bigint>();
    for (const rs of this.relocationSections()) {
      if (rs.target?.sh_type !== SHT.SHT_NOTE || rs.symbolTable?.sh_type !== SHT.SHT_SYMTAB) continue;
      const symbols = this.symbols();
      const entSize = rs.section.sh_type === SHT.SHT_RELA ? 24 : 16;
      for (const [i, r] of rs.entries.entries()) {
        if (r.type !== abs64) continue;
        const sym = symbols[r.symbolIndex];
        if (sym === undefined) {
          const at = rs.section.sh_offset + BigInt(i * entSize + 8); // r_info
          throw this.corrupt(
            `relocation in ${rs.section.name} names symbol ${r.symbolIndex}, past the symbol table`,
            at,
          );
        }
        const inSection =
          sym.st_shndx > 0 && sym.st_shndx < SHN.SHN_LORESERVE ? this.sections[sym.st_shndx] : undefined;
        let s = 0n;
        if (sym.st_shndx === SHN.SHN_ABS) s = sym.st_value;
        else if (inSection !== undefined) s = this.sectionAddress(inSection) + sym.st_value;
        out.set(Number(rs.target.sh_offset + r.r_offset), BigInt.asUintN(64, s + r.addend));
      }
    }
    return out;
  }

  /** The dynamic section entries (from `.dynamic` or PT_DYNAMIC), or []. */
  dynamic(): readonly DynamicEntry[] {
    return this.once("dynamic", () => {
      const s = this.sections.find((x) => x.sh_type === SHT.SHT_DYNAMIC);
      if (s !== undefined) return parseDynamic(this.reader, s.sh_offset, s.sh_size);
      const p = this.programHeaders.find((x) => x.p_type === PT.PT_DYNAMIC);
      return p === undefined ? [] : parseDynamic(this.reader, p.p_offset, p.p_filesz);
    });
  }

  /** DT_NEEDED library names. */
  neededLibraries(): string[] {
    return this.dynamicStrings(DT.DT_NEEDED);
  }
  /** DT_SONAME, if any. */
  soname(): string | undefined {
    return this.dynamicStrings(DT.DT_SONAME)[0];
  }
  private dynamicStrings(tag: number): string[] {
    const entries = this.dynamic();
    const strtab = entries.find((e) => e.d_tag === BigInt(DT.DT_STRTAB));
    if (strtab === undefined) return [];
    const base = this.fileOffsetOf(strtab.d_val);
    if (base === undefined) return [];
    return entries
      .filter((e) => e.d_tag === BigInt(tag))
      .map((e) => {
        const at = base + e.d_val;
        if (at >= BigInt(this.bytes.length)) {
          throw this.corrupt(
            `dynamic string 0x${e.d_val.toString(16)} (from DT_STRTAB) is outside the file`,
            at,
          );
        }
        const start = Number(at);
        const end = this.bytes.indexOf(0, start);
        return new TextDecoder().decode(this.bytes.subarray(start, end < 0 ? this.bytes.length : end));
      });
  }

  /** The PT_LOAD segments, in file order. */
  loadSegments(): readonly ProgramHeader[] {
    return this.programHeaders.filter((p) => p.p_type === PT.PT_LOAD);
  }

  /** File offset holding the byte at link-time address `vaddr`, via PT_LOAD; undefined when not file-backed. */
  fileOffsetOf(vaddr: bigint): bigint | undefined {
    for (const p of this.loadSegments()) {
      if (vaddr >= p.p_vaddr && vaddr < p.p_vaddr + p.p_filesz) return p.p_offset + (vaddr - p.p_vaddr);
    }
    return undefined;
  }

  /** The section whose address range holds `address` (allocated sections only). */
  findSectionAt(address: bigint): Section | undefined {
    for (const s of this.sections) {
      if ((s.sh_flags & BigInt(SHF.SHF_ALLOC)) === 0n || s.sh_size === 0n) continue;
      const start = this.sectionAddress(s);
      if (address >= start && address < start + s.sh_size) return s;
    }
    return undefined;
  }

  /** `length` bytes at `address` from the file (a view), or undefined when they are not all in one section. */
  findBytesAt(address: bigint, length: number): Uint8Array | undefined {
    const s = this.findSectionAt(address);
    if (s === undefined || s.sh_type === SHT.SHT_NOBITS) return undefined;
    const off = address - this.sectionAddress(s);
    if (off + BigInt(length) > s.sh_size) return undefined;
    return this.sectionBytes(s).subarray(Number(off), Number(off) + length);
  }
}

/** Parse `bytes` as ELF64 little-endian. Throws FormatError naming the offset on broken input. */
export function parseElf(bytes: Uint8Array, options: ParseElfOptions = {}): Elf {
  return new Elf(bytes, options);
}
