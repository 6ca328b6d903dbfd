/**
 * readelf as an oracle: runs `readelf -W` on a file and parses its text back into records, and turns
 * graft's numbers into readelf's spellings (flag letters, type names) so the two can be compared field
 * by field. The spellings follow binutils 2.40 readelf.c (get_section_type_name, get_elf_section_flags,
 * get_segment_type, get_symbol_type/binding/visibility, get_symbol_index_type, print_vma DEC_5).
 */
import { execFileSync } from "node:child_process";

const hexBig = (s: string): bigint => BigInt(`0x${s}`);

/** readelf with -W, one call; its warnings (e.g. node's annobin "Gap in build notes") are dropped. */
export function readelf(args: readonly string[], file: string): string {
  return execFileSync("readelf", ["-W", ...args, file], {
    encoding: "utf8",
    maxBuffer: 1 << 30,
    stdio: ["ignore", "pipe", "ignore"],
  });
}

// ---------------------------------------------------------------------------------------------- header

export interface ReadelfHeader {
  readonly type: string;
  readonly entry: bigint;
  readonly phoff: bigint;
  readonly shoff: bigint;
  readonly phnum: number;
  readonly shnum: number;
  readonly shstrndx: number;
  readonly flags: number;
}

/** `readelf -h`. */
export function readelfHeader(file: string): ReadelfHeader {
  const text = readelf(["-h"], file);
  const field = (label: string): string => {
    const m = new RegExp(`^\\s*${label}:\\s+(.*)$`, "m").exec(text);
    if (m === null) throw new Error(`readelf -h has no "${label}" line`);
    return m[1]!.trim();
  };
  return {
    type: field("Type"),
    entry: BigInt(field("Entry point address")),
    phoff: BigInt(field("Start of program headers").split(" ")[0]!),
    shoff: BigInt(field("Start of section headers").split(" ")[0]!),
    phnum: Number(field("Number of program headers").split(" ")[0]),
    shnum: Number(field("Number of section headers").split(" ")[0]),
    shstrndx: Number(field("Section header string table index").split(" ")[0]),
    flags: Number(field("Flags").split(",")[0]),
  };
}

// -------------------------------------------------------------------------------------------- sections

export interface ReadelfSection {
  readonly index: number;
  readonly name: string;
  readonly type: string;
  readonly address: bigint;
  readonly offset: bigint;
  readonly size: bigint;
  readonly entsize: bigint;
  readonly flags: string;
  readonly link: number;
  readonly info: number;
  readonly align: bigint;
}

// Parsed from the right: the name (any width with -W) and the type (which may hold spaces, e.g.
// "SYMTAB SECTION INDICES") share the middle, split at readelf's `%-17s %-15s` columns.
const SECTION_LINE =
  /^\s*\[\s*(\d+)\] (.*?) ?(SYMTAB SECTION INDICES|<unknown>: \S+|\S+)\s+([0-9a-f]{16}) ([0-9a-f]+) ([0-9a-f]+) ([0-9a-f]+) ([A-Za-z ]*?)\s+(\d+)\s+(\d+)\s+(\d+)$/;

/** `readelf -S`: every section header. */
export function readelfSections(file: string): ReadelfSection[] {
  const out: ReadelfSection[] = [];
  for (const line of readelf(["-S"], file).split("\n")) {
    if (!/^\s*\[\s*\d+\]/.test(line)) continue;
    const m = SECTION_LINE.exec(line);
    if (m === null) throw new Error(`unparsed readelf -S line: ${line}`);
    out.push({
      index: Number(m[1]),
      name: m[2]!.trim(),
      type: LLVM_SECTION_TYPES[m[3]!] === undefined ? m[3]! : sectionTypeName(LLVM_SECTION_TYPES[m[3]!]!),
      address: hexBig(m[4]!),
      offset: hexBig(m[5]!),
      size: hexBig(m[6]!),
      entsize: hexBig(m[7]!),
      flags: m[8]!.trim(),
      link: Number(m[9]),
      info: Number(m[10]),
      align: BigInt(m[11]!),
    });
  }
  return out;
}

const SHT_NAMES: ReadonlyMap<number, string> = new Map([
  [0, "NULL"],
  [1, "PROGBITS"],
  [2, "SYMTAB"],
  [3, "STRTAB"],
  [4, "RELA"],
  [5, "HASH"],
  [6, "DYNAMIC"],
  [7, "NOTE"],
  [8, "NOBITS"],
  [9, "REL"],
  [10, "SHLIB"],
  [11, "DYNSYM"],
  [14, "INIT_ARRAY"],
  [15, "FINI_ARRAY"],
  [16, "PREINIT_ARRAY"],
  [17, "GROUP"],
  [18, "SYMTAB SECTION INDICES"],
  [19, "RELR"],
  [0x6ffffff5, "GNU_ATTRIBUTES"],
  [0x6ffffff6, "GNU_HASH"],
  [0x6ffffff7, "GNU_LIBLIST"],
  [0x6ffffffd, "VERDEF"],
  [0x6ffffffe, "VERNEED"],
  [0x6fffffff, "VERSYM"],
  [0x70000001, "X86_64_UNWIND"],
]);

// readelf 2.40 prints LLVM's section types as LOOS+…; later versions name some of them.
const LLVM_SECTION_TYPES: Readonly<Record<string, number>> = {
  LLVM_ODRTAB: 0x6fff4c00,
  LLVM_LINKER_OPTIONS: 0x6fff4c01,
  LLVM_ADDRSIG: 0x6fff4c03,
  LLVM_DEPENDENT_LIBRARIES: 0x6fff4c04,
  LLVM_SYMPART: 0x6fff4c05,
  LLVM_PART_EHDR: 0x6fff4c06,
  LLVM_PART_PHDR: 0x6fff4c07,
  LLVM_BB_ADDR_MAP_V0: 0x6fff4c08,
  LLVM_CALL_GRAPH_PROFILE: 0x6fff4c09,
  LLVM_BB_ADDR_MAP: 0x6fff4c0a,
};

/** readelf's name for an sh_type on x86-64, in binutils 2.40's spelling. */
export function sectionTypeName(type: number): string {
  const known = SHT_NAMES.get(type);
  if (known !== undefined) return known;
  if (type >= 0x70000000 && type <= 0x7fffffff) return `LOPROC+0x${(type - 0x70000000).toString(16)}`;
  if (type >= 0x60000000 && type <= 0x6fffffff) return `LOOS+0x${(type - 0x60000000).toString(16)}`;
  if (type >= 0x80000000) return `LOUSER+0x${(type - 0x80000000).toString(16)}`;
  return `<unknown>: ${type.toString(16)}`;
}

/** readelf's flag letters for sh_flags on x86-64 (GNU OSABI), lowest bit first as readelf prints them. */
export function sectionFlagLetters(flags: bigint): string {
  const letters = new Map<bigint, string>([
    [0x1n, "W"],
    [0x2n, "A"],
    [0x4n, "X"],
    [0x10n, "M"],
    [0x20n, "S"],
    [0x40n, "I"],
    [0x80n, "L"],
    [0x100n, "O"],
    [0x200n, "G"],
    [0x400n, "T"],
    [0x800n, "C"],
    [0x200000n, "R"], // SHF_GNU_RETAIN
    [0x1000000n, "D"], // SHF_GNU_MBIND
    [0x10000000n, "l"], // SHF_X86_64_LARGE
    [0x80000000n, "E"], // SHF_EXCLUDE
  ]);
  let out = "";
  let rest = flags;
  while (rest !== 0n) {
    const bit = rest & -rest;
    rest &= ~bit;
    const known = letters.get(bit);
    if (known !== undefined) out += known;
    else if ((bit & 0x0ff00000n) !== 0n) out += "o";
    else if ((bit & 0xf0000000n) !== 0n) out += "p";
    else out += "x";
  }
  return out;
}

// -------------------------------------------------------------------------------------------- segments

export interface ReadelfSegment {
  readonly type: string;
  readonly offset: bigint;
  readonly vaddr: bigint;
  readonly paddr: bigint;
  readonly filesz: bigint;
  readonly memsz: bigint;
  /** Three columns: R, W, E or a space each. */
  readonly flags: string;
  readonly align: bigint;
}

const SEGMENT_LINE =
  /^ {2}(\S+)\s+0x([0-9a-f]+) 0x([0-9a-f]+) 0x([0-9a-f]+) 0x([0-9a-f]+) 0x([0-9a-f]+) (.{3}) (?:0x)?([0-9a-f]+)$/; // p_align is printed `%#lx`: plain 0 for zero

/** `readelf -l`: every program header, or [] when there are none. */
export function readelfSegments(file: string): ReadelfSegment[] {
  const text = readelf(["-l"], file);
  const out: ReadelfSegment[] = [];
  let inTable = false;
  for (const line of text.split("\n")) {
    if (line.startsWith("Program Headers:")) {
      inTable = true;
      continue;
    }
    if (!inTable) continue;
    if (line.trim() === "" || line.startsWith(" Section to Segment")) break;
    if (/^\s+Type\s+Offset/.test(line) || /^\s+\[/.test(line)) continue;
    const m = SEGMENT_LINE.exec(line);
    if (m === null) throw new Error(`unparsed readelf -l line: ${line}`);
    out.push({
      type: m[1]!,
      offset: hexBig(m[2]!),
      vaddr: hexBig(m[3]!),
      paddr: hexBig(m[4]!),
      filesz: hexBig(m[5]!),
      memsz: hexBig(m[6]!),
      flags: m[7]!,
      align: hexBig(m[8]!),
    });
  }
  return out;
}

const PT_NAMES: ReadonlyMap<number, string> = new Map([
  [0, "NULL"],
  [1, "LOAD"],
  [2, "DYNAMIC"],
  [3, "INTERP"],
  [4, "NOTE"],
  [5, "SHLIB"],
  [6, "PHDR"],
  [7, "TLS"],
  [0x6474e550, "GNU_EH_FRAME"],
  [0x6474e551, "GNU_STACK"],
  [0x6474e552, "GNU_RELRO"],
  [0x6474e553, "GNU_PROPERTY"],
  [0x6474e554, "GNU_SFRAME"],
]);

/** readelf's name for a p_type. */
export function segmentTypeName(type: number): string {
  const known = PT_NAMES.get(type);
  if (known !== undefined) return known;
  if (type >= 0x70000000 && type <= 0x7fffffff) return `LOPROC+0x${(type - 0x70000000).toString(16)}`;
  if (type >= 0x60000000 && type <= 0x6fffffff) return `LOOS+0x${(type - 0x60000000).toString(16)}`;
  return `<unknown>: ${type.toString(16)}`;
}

/** readelf's three flag columns for p_flags. */
export function segmentFlagColumns(flags: number): string {
  return `${flags & 4 ? "R" : " "}${flags & 2 ? "W" : " "}${flags & 1 ? "E" : " "}`;
}

// --------------------------------------------------------------------------------------------- symbols

export interface ReadelfSymbol {
  readonly num: number;
  readonly value: bigint;
  readonly size: bigint;
  readonly type: string;
  readonly bind: string;
  readonly vis: string;
  readonly ndx: string;
  /** The name as printed, version decorations included. */
  readonly name: string;
}

const SYMBOL_LINE = /^\s*(\d+): ([0-9a-f]{16}) +(\d+|0x[0-9a-f]+) (\S+) +(\S+) +(\S+) +(\S+) ?(.*)$/;

/** `readelf -s`: every symbol table, keyed by section name. */
export function readelfSymbols(file: string): Map<string, ReadelfSymbol[]> {
  const out = new Map<string, ReadelfSymbol[]>();
  let current: ReadelfSymbol[] | undefined;
  for (const line of readelf(["-s", "--wide"], file).split("\n")) {
    const header = /^Symbol table '(.+)' contains (\d+) entr/.exec(line);
    if (header !== null) {
      current = [];
      out.set(header[1]!, current);
      continue;
    }
    if (current === undefined || !/^\s*\d+:/.test(line)) continue;
    const m = SYMBOL_LINE.exec(line);
    if (m === null) throw new Error(`unparsed readelf -s line: ${line}`);
    current.push({
      num: Number(m[1]),
      value: hexBig(m[2]!),
      size: BigInt(m[3]!),
      type: m[4]!,
      bind: m[5]!,
      vis: m[6]!,
      ndx: m[7]!,
      name: m[8]!,
    });
  }
  return out;
}

/**
 * The symbol's own name from a readelf .dynsym line: readelf appends the version from .gnu.version
 * (`name@VER (n)`, `name@@VER`), which is not part of the string in .dynstr. In .symtab, GNU ld
 * writes `name@VER` into .strtab itself, so there nothing is stripped.
 */
export function stripDynsymVersion(printed: string): string {
  const noIndex = printed.replace(/ \(\d+\)$/, "");
  const at = noIndex.indexOf("@");
  return at < 0 ? noIndex : noIndex.slice(0, at);
}

const STT_NAMES = ["NOTYPE", "OBJECT", "FUNC", "SECTION", "FILE", "COMMON", "TLS"];
/** readelf's name for an STT_* value (GNU OSABI). */
export function symbolTypeName(type: number): string {
  if (type < STT_NAMES.length) return STT_NAMES[type]!;
  if (type === 10) return "IFUNC";
  if (type >= 13) return `<processor specific>: ${type}`;
  if (type >= 10) return `<OS specific>: ${type}`;
  return `<unknown>: ${type}`;
}
/** readelf's name for an STB_* value. */
export function symbolBindName(bind: number): string {
  return ["LOCAL", "GLOBAL", "WEAK"][bind] ?? (bind === 10 ? "UNIQUE" : `<unknown>: ${bind}`);
}
/** readelf's name for an STV_* value. */
export function symbolVisibilityName(vis: number): string {
  return ["DEFAULT", "INTERNAL", "HIDDEN", "PROTECTED"][vis]!;
}
/** readelf's Ndx column for st_shndx on x86-64. */
export function symbolIndexName(shndx: number): string {
  if (shndx === 0) return "UND";
  if (shndx === 0xfff1) return "ABS";
  if (shndx === 0xfff2) return "COM";
  if (shndx === 0xff02) return "LARGE_COM";
  if (shndx >= 0xff00 && shndx <= 0xff1f) return `PRC[0x${shndx.toString(16).padStart(4, "0")}]`;
  if (shndx >= 0xff20 && shndx <= 0xff3f) return `OS [0x${shndx.toString(16).padStart(4, "0")}]`;
  if (shndx >= 0xff00) return `RSV[0x${shndx.toString(16).padStart(4, "0")}]`;
  return String(shndx);
}

// ----------------------------------------------------------------------------------------- relocations

export interface ReadelfRelocation {
  readonly offset: bigint;
  readonly type: number;
  readonly symbolIndex: number;
  readonly addend: bigint | undefined;
}

export interface ReadelfRelocationSection {
  readonly name: string;
  readonly fileOffset: bigint;
  readonly count: number;
  /** REL/RELA entries, or the decoded addresses of a RELR section. */
  readonly entries: ReadelfRelocation[];
  readonly relrAddresses: bigint[];
}

const RELOC_LINE = /^([0-9a-f]{16}) {2}([0-9a-f]{16}) (\S+)(.*)$/;

/** `readelf -r`: every relocation section with its entries (RELR decoded into addresses). */
export function readelfRelocations(file: string): ReadelfRelocationSection[] {
  const out: ReadelfRelocationSection[] = [];
  let current: ReadelfRelocationSection | undefined;
  for (const line of readelf(["-r"], file).split("\n")) {
    const header = /^Relocation section '(.+)' at offset 0x([0-9a-f]+) contains (\d+) entr/.exec(line);
    if (header !== null) {
      current = {
        name: header[1]!,
        fileOffset: hexBig(header[2]!),
        count: Number(header[3]),
        entries: [],
        relrAddresses: [],
      };
      out.push(current);
      continue;
    }
    if (current === undefined) continue;
    const m = RELOC_LINE.exec(line);
    if (m !== null) {
      const info = hexBig(m[2]!);
      const tail = m[4]!;
      let addend: bigint | undefined;
      const signed = / ([+-]) ([0-9a-f]+)$/.exec(tail);
      const bare = /^\s+([0-9a-f]+)$/.exec(tail);
      if (signed !== null) addend = signed[1] === "-" ? -hexBig(signed[2]!) : hexBig(signed[2]!);
      else if (bare !== null) addend = BigInt.asIntN(64, hexBig(bare[1]!));
      current.entries.push({
        offset: hexBig(m[1]!),
        type: Number(info & 0xffffffffn),
        symbolIndex: Number(info >> 32n),
        addend,
      });
      continue;
    }
    const relr = /^([0-9a-f]{16})(\s.*)?$/.exec(line);
    if (relr !== null) current.relrAddresses.push(hexBig(relr[1]!));
  }
  return out;
}

// ----------------------------------------------------------------------------------------------- notes

export interface ReadelfStapsdt {
  readonly provider: string;
  readonly name: string;
  readonly location: bigint;
  readonly base: bigint;
  readonly semaphore: bigint;
  readonly arguments: string;
}

export interface ReadelfNote {
  /** The section the note was found in (or `offset 0x…` for segments). */
  readonly where: string;
  readonly owner: string;
  readonly dataSize: number;
  readonly description: string;
  readonly buildId?: string;
  readonly stapsdt?: ReadelfStapsdt;
}

/** `readelf -n`: every note, with the build-id and stapsdt fields decoded. */
export function readelfNotes(file: string): ReadelfNote[] {
  const out: ReadelfNote[] = [];
  let where = "";
  let note: { -readonly [K in keyof ReadelfNote]: ReadelfNote[K] } | undefined;
  const probe: Record<string, string> = {};
  const flushProbe = (): void => {
    if (note !== undefined && probe.Provider !== undefined) {
      const loc = /Location: 0x([0-9a-f]+), Base: 0x([0-9a-f]+), Semaphore: 0x([0-9a-f]+)/.exec(
        probe.Location ?? "",
      );
      if (loc === null) throw new Error(`unparsed stapsdt location: ${probe.Location}`);
      note.stapsdt = {
        provider: probe.Provider,
        name: probe.Name ?? "",
        location: hexBig(loc[1]!),
        base: hexBig(loc[2]!),
        semaphore: hexBig(loc[3]!),
        arguments: probe.Arguments ?? "",
      };
    }
    for (const k of Object.keys(probe)) delete probe[k];
  };
  const detail = (n: { buildId?: string }, text: string): void => {
    const buildId = /^Build ID: ([0-9a-f]+)$/.exec(text);
    if (buildId !== null) n.buildId = buildId[1]!;
    const field = /^(Provider|Name|Location|Arguments): ?(.*)$/.exec(text);
    if (field !== null) probe[field[1]!] = field[1] === "Location" ? text : field[2]!;
  };
  for (const line of readelf(["-n"], file).split("\n")) {
    const sec = /^Displaying notes found (?:in: (.+)|at file offset (0x[0-9a-f]+))/.exec(line);
    if (sec !== null) {
      flushProbe();
      where = sec[1] ?? `offset ${sec[2]}`;
      continue;
    }
    const head = /^ {2}(\S.*?)\s+0x([0-9a-f]{8})\t(.*)$/.exec(line);
    if (head !== null) {
      flushProbe();
      // With -W the first line of the decoded description follows the type after a tab.
      const [description, ...firstDetail] = head[3]!.split("\t");
      note = {
        where,
        owner: head[1]!,
        dataSize: Number.parseInt(head[2]!, 16),
        description: description!.trim(),
      };
      out.push(note);
      if (firstDetail.length > 0) detail(note, firstDetail.join("\t").trim());
      continue;
    }
    if (note !== undefined) detail(note, line.trim());
  }
  flushProbe();
  return out;
}

// --------------------------------------------------------------------------------------------- dynamic

export interface ReadelfDynamic {
  readonly count: number;
  readonly tags: bigint[];
  readonly needed: string[];
  readonly soname: string | undefined;
}

/** `readelf -d`: the dynamic tags in order, DT_NEEDED names and DT_SONAME; count 0 when there is none. */
export function readelfDynamic(file: string): ReadelfDynamic {
  const text = readelf(["-d"], file);
  const header = /^Dynamic section at offset 0x[0-9a-f]+ contains (\d+) entr/m.exec(text);
  const tags: bigint[] = [];
  const needed: string[] = [];
  let soname: string | undefined;
  for (const line of text.split("\n")) {
    const m = /^ 0x([0-9a-f]{16}) \((\S+)\)\s+(.*)$/.exec(line);
    if (m === null) continue;
    tags.push(hexBig(m[1]!));
    const lib = /^Shared library: \[(.*)\]$/.exec(m[3]!);
    if (lib !== null) needed.push(lib[1]!);
    const so = /^Library soname: \[(.*)\]$/.exec(m[3]!);
    if (so !== null) soname = so[1]!;
  }
  return { count: header === null ? 0 : Number(header[1]), tags, needed, soname };
}
