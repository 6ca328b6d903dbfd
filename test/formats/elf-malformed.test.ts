/**
 * Malformed ELF files built byte by byte: each names one kind of damage and asserts the exact error
 * code and the file offset the message points at. The well-formed base file is first checked against
 * readelf, so the damage is the only thing wrong with each case.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, test } from "vitest";
import type { ErrorCode } from "../../src/core/error-codes.js";
import { FormatError } from "../../src/core/errors.js";
import { DT, ET, PT, SHF, SHT, STB, STT } from "../../src/formats/elf/constants.js";
import { parseElf } from "../../src/formats/elf/elf.js";
import { readElfFile } from "../../src/formats/elf/elf-file.js";
import {
  type BuiltElf,
  buildElf,
  concat,
  type ElfSpec,
  noteEntry,
  relaEntries,
  type SectionSpec,
  stringTable,
  symbolEntries,
  words,
} from "../support/elf-builder.js";
import {
  compareDynamic,
  compareHeader,
  compareNotes,
  compareRelocations,
  compareSections,
  compareSegments,
  compareSymbols,
} from "./elf-oracle-compare.js";

const tmp = mkdtempSync(join(tmpdir(), "graft-elf-malformed-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const strtab = stringTable(["helper", "main"]);
const dynstr = stringTable(["libc.so.6", "libsample.so.1"]);
const TEXT = 0x10000n;
const DYNSTR = 0x40000n;
const STAPSDT_BASE = 0x20000n;

function stapsdtDesc(pc: bigint, base: bigint, semaphore: bigint, strings: string): Uint8Array {
  return concat(words([pc, base, semaphore]), new TextEncoder().encode(strings));
}

/** The sections of a small, well-formed shared object; a case replaces the one it damages. */
function sampleSections(): SectionSpec[] {
  return [
    {
      name: ".text",
      type: SHT.SHT_PROGBITS,
      flags: 6n,
      addr: TEXT,
      addralign: 16n,
      data: new Uint8Array(16).fill(0x90),
    },
    {
      name: ".note.gnu.build-id",
      type: SHT.SHT_NOTE,
      flags: 2n,
      addralign: 4n,
      data: noteEntry(
        "GNU",
        3,
        Uint8Array.from({ length: 20 }, (_, i) => i + 1),
      ),
    },
    {
      name: ".note.stapsdt",
      type: SHT.SHT_NOTE,
      addralign: 4n,
      data: noteEntry(
        "stapsdt",
        3,
        stapsdtDesc(TEXT + 4n, STAPSDT_BASE, 0n, "prov\0probe\0-4@%edi 8@%rsi\0"),
      ),
    },
    { name: ".stapsdt.base", type: SHT.SHT_PROGBITS, flags: 2n, addr: STAPSDT_BASE, data: new Uint8Array(1) },
    { name: ".dynstr", type: SHT.SHT_STRTAB, flags: 2n, addr: DYNSTR, data: dynstr.bytes },
    {
      name: ".dynamic",
      type: SHT.SHT_DYNAMIC,
      flags: 3n,
      addr: 0x50000n,
      link: ".dynstr",
      entsize: 16n,
      addralign: 8n,
      data: words([
        BigInt(DT.DT_NEEDED),
        BigInt(dynstr.offsetOf("libc.so.6")),
        BigInt(DT.DT_SONAME),
        BigInt(dynstr.offsetOf("libsample.so.1")),
        BigInt(DT.DT_STRTAB),
        DYNSTR,
        BigInt(DT.DT_STRSZ),
        BigInt(dynstr.bytes.length),
        0n,
        0n,
      ]),
    },
    {
      name: ".symtab",
      type: SHT.SHT_SYMTAB,
      link: ".strtab",
      info: 2,
      entsize: 24n,
      addralign: 8n,
      data: symbolEntries([
        { name: 0 },
        {
          name: strtab.offsetOf("helper"),
          value: TEXT,
          size: 4n,
          type: STT.STT_FUNC,
          bind: STB.STB_LOCAL,
          shndx: 1,
        },
        {
          name: strtab.offsetOf("main"),
          value: TEXT + 4n,
          size: 12n,
          type: STT.STT_FUNC,
          bind: STB.STB_GLOBAL,
          shndx: 1,
          other: 2,
        },
      ]),
    },
    { name: ".strtab", type: SHT.SHT_STRTAB, data: strtab.bytes },
    {
      name: ".rela.text",
      type: SHT.SHT_RELA,
      flags: BigInt(SHF.SHF_INFO_LINK),
      link: ".symtab",
      info: ".text",
      entsize: 24n,
      addralign: 8n,
      data: relaEntries([
        { offset: TEXT + 8n, type: 2, symbol: 2, addend: -4n },
        { offset: TEXT + 12n, type: 8, addend: 0x1234n },
      ]),
    },
    {
      name: ".relr.dyn",
      type: SHT.SHT_RELR,
      flags: 2n,
      addr: 0x60000n,
      entsize: 8n,
      addralign: 8n,
      // An address, then a bitmap of the 63 words after it: bits 0 and 2 → +8 and +24.
      data: words([0x30000n, (0b101n << 1n) | 1n]),
    },
  ];
}

function sample(
  change: { sections?: (s: SectionSpec[]) => SectionSpec[]; header?: ElfSpec["header"] } = {},
): BuiltElf {
  const sections = change.sections === undefined ? sampleSections() : change.sections(sampleSections());
  return buildElf({
    type: ET.ET_DYN,
    sections,
    segments: [
      { type: PT.PT_LOAD, section: ".dynstr" },
      { type: PT.PT_DYNAMIC, section: ".dynamic", flags: 6 },
      { type: PT.PT_NOTE, section: ".note.gnu.build-id" },
    ],
    ...(change.header === undefined ? {} : { header: change.header }),
  });
}

/** Replace the named section of the sample. */
const replacing =
  (name: string, patch: Partial<SectionSpec>) =>
  (sections: SectionSpec[]): SectionSpec[] =>
    sections.map((s) => (s.name === name ? { ...s, ...patch } : s));

/** Run `action` and assert it throws a FormatError with `code` whose message names `offset`. */
function expectFormatError(action: () => unknown, code: ErrorCode, offset: bigint | number): FormatError {
  let caught: unknown;
  try {
    action();
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(FormatError);
  const e = caught as FormatError;
  expect({ code: e.code, offset: e.offset }).toEqual({ code, offset: BigInt(offset) });
  expect(e.message).toContain(`at offset 0x${offset.toString(16)}`);
  return e;
}

function writeTemp(name: string, bytes: Uint8Array): string {
  const path = join(tmp, name);
  writeFileSync(path, bytes);
  return path;
}

describe("the test ELF builder", () => {
  test("writes a shared object that graft and readelf read the same way", () => {
    const path = writeTemp("sample.so", sample().bytes);
    const elf = readElfFile(path);
    for (const compare of [
      compareHeader,
      compareSections,
      compareSegments,
      compareSymbols,
      compareRelocations,
      compareNotes,
      compareDynamic,
    ]) {
      const { ours, theirs } = compare(elf, path);
      expect(ours).toEqual(theirs);
    }
    // The parts readelf prints agree, and hold what the builder was asked for.
    expect(elf.relrAddresses()).toEqual([0x30000n, 0x30008n, 0x30018n]);
    expect(elf.neededLibraries()).toEqual(["libc.so.6"]);
    expect(elf.soname()).toBe("libsample.so.1");
    expect(elf.usdtProbes().map((p) => [p.provider, p.name, p.address, p.arguments.length])).toEqual([
      ["prov", "probe", TEXT + 4n, 2],
    ]);
    expect(elf.buildId()).toBe("0102030405060708090a0b0c0d0e0f1011121314");
  });

  test("writes extended section numbering that graft and readelf both follow", () => {
    // [gABI 4.2] e_shnum 0 and e_shstrndx SHN_XINDEX: the real values sit in section 0.
    const plain = sample();
    const shnum = plain.index(".shstrtab") + 1;
    const built = sample({
      header: { e_shnum: 0, e_shstrndx: 0xffff, section0Size: BigInt(shnum), section0Link: shnum - 1 },
    });
    const path = writeTemp("extended.so", built.bytes);
    const elf = readElfFile(path);
    expect([elf.header.e_shnum, elf.header.e_shstrndx]).toEqual([shnum, shnum - 1]);
    const { ours, theirs } = compareSections(elf, path);
    expect(ours).toEqual(theirs);
    expect(elf.symbols().map((s) => s.name)).toEqual(["", "helper", "main"]);
  });
});

describe("a malformed ELF header", () => {
  test("cut short inside its 64 bytes is ELF_TRUNCATED at offset 0", () => {
    expectFormatError(() => parseElf(sample().bytes.subarray(0, 40)), "ELF_TRUNCATED", 0);
  });

  test("of a 32-bit file (EI_CLASS 1) is ELF_UNSUPPORTED at offset 4", () => {
    const e = expectFormatError(
      () => parseElf(sample({ header: { ei_class: 1 } }).bytes),
      "ELF_UNSUPPORTED",
      4,
    );
    expect(e.message).toContain("32-bit");
  });

  test("of a big-endian file (EI_DATA 2) is ELF_UNSUPPORTED at offset 5", () => {
    const e = expectFormatError(
      () => parseElf(sample({ header: { ei_data: 2 } }).bytes),
      "ELF_UNSUPPORTED",
      5,
    );
    expect(e.message).toContain("big-endian");
  });

  test("without the \\x7fELF magic is ELF_BAD_MAGIC at offset 0, and so is an empty file", () => {
    const bytes = sample().bytes.slice();
    bytes[1] = 0x45 ^ 0x20;
    expectFormatError(() => parseElf(bytes), "ELF_BAD_MAGIC", 0);
    expectFormatError(() => parseElf(new Uint8Array(0)), "ELF_BAD_MAGIC", 0);
    expectFormatError(() => parseElf(new TextEncoder().encode("#!/bin/sh\necho hi\n")), "ELF_BAD_MAGIC", 0);
  });

  test("with EI_VERSION 0 is ELF_CORRUPT at offset 6", () => {
    expectFormatError(() => parseElf(sample({ header: { ei_version: 0 } }).bytes), "ELF_CORRUPT", 6);
  });

  test("with e_phentsize 32 is ELF_CORRUPT at offset 0x36, and e_shentsize 40 at offset 0x3a", () => {
    expectFormatError(() => parseElf(sample({ header: { e_phentsize: 32 } }).bytes), "ELF_CORRUPT", 0x36);
    expectFormatError(() => parseElf(sample({ header: { e_shentsize: 40 } }).bytes), "ELF_CORRUPT", 0x3a);
  });

  test("pointing its section header table past the end of the file is ELF_TRUNCATED at e_shoff", () => {
    const size = sample().bytes.length;
    const shoff = BigInt(size - 32);
    expectFormatError(() => parseElf(sample({ header: { e_shoff: shoff } }).bytes), "ELF_TRUNCATED", shoff);
    expectFormatError(
      () => parseElf(sample({ header: { e_shoff: 1n << 62n } }).bytes),
      "ELF_TRUNCATED",
      1n << 62n,
    );
  });

  test("pointing its program header table past the end of the file is ELF_TRUNCATED at e_phoff", () => {
    const phoff = BigInt(sample().bytes.length - 8);
    expectFormatError(() => parseElf(sample({ header: { e_phoff: phoff } }).bytes), "ELF_TRUNCATED", phoff);
  });

  test("with e_shstrndx beyond the section count is ELF_CORRUPT at offset 0x3e", () => {
    expectFormatError(() => parseElf(sample({ header: { e_shstrndx: 200 } }).bytes), "ELF_CORRUPT", 0x3e);
  });
});

describe("a malformed section", () => {
  test("whose name index lies past the section name table is ELF_CORRUPT at its header", () => {
    const built = sample({ sections: replacing(".symtab", { nameIndex: 0x7fff }) });
    expectFormatError(() => parseElf(built.bytes), "ELF_CORRUPT", built.headerOffset(".symtab"));
  });

  test("whose sh_offset + sh_size wraps past 2^64 is reported as a warning, then ELF_TRUNCATED when read", () => {
    const offset = (1n << 64n) - 16n;
    const built = sample({ sections: replacing(".text", { offset, size: 0x100n }) });
    const warnings: string[] = [];
    const elf = parseElf(built.bytes, { onWarning: (w) => warnings.push(w) });
    expect(warnings).toEqual(["section 1 (.text) extends past the end of the file"]);
    expectFormatError(() => elf.sectionBytes(elf.getSection(1)), "ELF_TRUNCATED", offset);
    expectFormatError(() => elf.findBytesAt(TEXT, 4), "ELF_TRUNCATED", offset);
  });

  test("of relocations claiming 2^60 bytes is ELF_TRUNCATED at its sh_offset, before anything is allocated", () => {
    const built = sample({ sections: replacing(".rela.text", { size: 1n << 60n }) });
    const elf = parseElf(built.bytes);
    expectFormatError(() => elf.relocationSections(), "ELF_TRUNCATED", built.contentOffset(".rela.text"));
  });

  test("of relocations with sh_entsize 16 for RELA is ELF_CORRUPT at its sh_entsize field", () => {
    const built = sample({ sections: replacing(".rela.text", { entsize: 16n }) });
    const elf = parseElf(built.bytes);
    expectFormatError(() => elf.relocationSections(), "ELF_CORRUPT", built.headerOffset(".rela.text") + 56);
  });
});

describe("a malformed symbol table", () => {
  test("with a symbol name index past its string table is ELF_CORRUPT at that symbol's entry", () => {
    const data = symbolEntries([{ name: 0 }, { name: 0x4000, type: STT.STT_FUNC, shndx: 1 }]);
    const built = sample({ sections: replacing(".symtab", { data }) });
    const elf = parseElf(built.bytes);
    expectFormatError(() => elf.symbols(), "ELF_CORRUPT", built.contentOffset(".symtab") + 24);
  });

  test("whose sh_link names no section is ELF_CORRUPT at its sh_link field", () => {
    const built = sample({ sections: replacing(".symtab", { link: 99 }) });
    const elf = parseElf(built.bytes);
    expectFormatError(() => elf.symbols(), "ELF_CORRUPT", built.headerOffset(".symtab") + 40);
  });

  test("with sh_entsize 16 is ELF_CORRUPT at its sh_entsize field", () => {
    const built = sample({ sections: replacing(".symtab", { entsize: 16n }) });
    const elf = parseElf(built.bytes);
    expectFormatError(() => elf.symbols(), "ELF_CORRUPT", built.headerOffset(".symtab") + 56);
  });

  test("running past the end of the file is ELF_TRUNCATED at its sh_offset", () => {
    const built = sample({ sections: replacing(".symtab", { size: 24n * 100_000n }) });
    const elf = parseElf(built.bytes);
    expectFormatError(() => elf.symbols(), "ELF_TRUNCATED", built.contentOffset(".symtab"));
  });
});

describe("a malformed note", () => {
  test("whose namesz runs past its section is ELF_CORRUPT at the note's header", () => {
    const data = noteEntry("GNU", 3, new Uint8Array(20), { namesz: 0xfffffff0 });
    const built = sample({ sections: replacing(".note.gnu.build-id", { data }) });
    const elf = parseElf(built.bytes);
    expectFormatError(() => elf.notes(), "ELF_CORRUPT", built.contentOffset(".note.gnu.build-id"));
    expectFormatError(() => elf.buildId(), "ELF_CORRUPT", built.contentOffset(".note.gnu.build-id"));
  });

  test("whose descsz runs past its section is ELF_CORRUPT at the note's header", () => {
    const data = concat(
      noteEntry("GNU", 1, new Uint8Array(4)),
      noteEntry("GNU", 3, new Uint8Array(20), { descsz: 21 }),
    );
    const built = sample({ sections: replacing(".note.gnu.build-id", { data }) });
    expectFormatError(
      () => parseElf(built.bytes).notes(),
      "ELF_CORRUPT",
      built.contentOffset(".note.gnu.build-id") + 20,
    );
  });

  test("from stapsdt too short for its three addresses is ELF_CORRUPT at the note", () => {
    const data = noteEntry("stapsdt", 3, new Uint8Array(16));
    const built = sample({ sections: replacing(".note.stapsdt", { data }) });
    expectFormatError(
      () => parseElf(built.bytes).usdtProbes(),
      "ELF_CORRUPT",
      built.contentOffset(".note.stapsdt"),
    );
  });
});

describe("stapsdt notes of a relocatable object", () => {
  /** The sample as an ET_REL whose stapsdt note is all zeros plus relocations against .text and .stapsdt.base. */
  function objectWithNoteRelocations(symbolIndex: number): BuiltElf {
    return sample({
      header: { e_type: ET.ET_REL },
      sections: (sections) => [
        ...replacing(".note.stapsdt", {
          data: noteEntry("stapsdt", 3, stapsdtDesc(0n, 0n, 0n, "prov\0probe\0-4@%edi\0")),
        })(sections),
        {
          name: ".rela.note.stapsdt",
          type: SHT.SHT_RELA,
          flags: BigInt(SHF.SHF_INFO_LINK),
          link: ".symtab",
          info: ".note.stapsdt",
          entsize: 24n,
          addralign: 8n,
          // Field offsets inside the note: 12-byte header + "stapsdt\0" = 20 for pc, 28 for base.
          data: relaEntries([
            { offset: 20n, type: 1, symbol: symbolIndex, addend: 6n },
            { offset: 28n, type: 1, symbol: 0, addend: 0n },
          ]),
        },
      ],
    });
  }

  test("resolve their addresses through the relocations into the object's section layout", () => {
    const elf = parseElf(objectWithNoteRelocations(2).bytes);
    const text = elf.findSection(".text")!;
    // Symbol 2 is `main` in .text; in a .o its st_value is an offset into .text: pc = S + A.
    const main = elf.symbols()[2]!;
    expect(elf.usdtProbes().map((p) => [p.address, p.base])).toEqual([
      [elf.sectionAddress(text) + main.st_value + 6n, 0n],
    ]);
  });

  test("with a relocation naming a symbol past the symbol table are ELF_CORRUPT at its r_info", () => {
    const built = objectWithNoteRelocations(77);
    expectFormatError(
      () => parseElf(built.bytes).usdtProbes(),
      "ELF_CORRUPT",
      built.contentOffset(".rela.note.stapsdt") + 8,
    );
  });
});

describe("a malformed dynamic section", () => {
  test("with a DT_NEEDED string outside the file is ELF_CORRUPT at the offset it points to", () => {
    const plain = sample();
    const dynstrOffset = plain.contentOffset(".dynstr");
    const far = 0x100000n;
    const data = words([BigInt(DT.DT_NEEDED), far, BigInt(DT.DT_STRTAB), DYNSTR, 0n, 0n]);
    const built = sample({ sections: replacing(".dynamic", { data }) });
    expect(built.contentOffset(".dynstr")).toBe(dynstrOffset);
    expectFormatError(
      () => parseElf(built.bytes).neededLibraries(),
      "ELF_CORRUPT",
      BigInt(dynstrOffset) + far,
    );
  });

  test("running past the end of the file is ELF_TRUNCATED at its sh_offset", () => {
    const built = sample({ sections: replacing(".dynamic", { size: 1n << 40n }) });
    expectFormatError(
      () => parseElf(built.bytes).dynamic(),
      "ELF_TRUNCATED",
      built.contentOffset(".dynamic"),
    );
  });
});

describe("errors from a file on disk", () => {
  test("name the file as their subject", () => {
    const path = writeTemp("thirty-two.so", sample({ header: { ei_class: 1 } }).bytes);
    const e = expectFormatError(() => readElfFile(path), "ELF_UNSUPPORTED", 4);
    expect([e.file, e.subject]).toEqual([path, path]);
  });
});
