/**
 * graft's ELF reader, rendered in readelf's terms, next to readelf's own output. Each function takes
 * a parsed file and its path and returns both sides, so a test can `expect(ours).toEqual(theirs)` and
 * a failure shows the differing fields.
 */
import { SHT, STT } from "../../src/formats/elf/constants.js";
import type { Elf } from "../../src/formats/elf/elf.js";
import type { ElfSymbol } from "../../src/formats/elf/symbols.js";
import {
  type ReadelfHeader,
  type ReadelfSymbol,
  readelfDynamic,
  readelfHeader,
  readelfNotes,
  readelfRelocations,
  readelfSections,
  readelfSegments,
  readelfSymbols,
  sectionFlagLetters,
  sectionTypeName,
  segmentFlagColumns,
  segmentTypeName,
  stripDynsymVersion,
  symbolBindName,
  symbolIndexName,
  symbolTypeName,
  symbolVisibilityName,
} from "./readelf-oracle.js";

export interface Comparison<T> {
  readonly ours: T;
  readonly theirs: T;
}

/** readelf -h's Type line for each `Elf.kind`. */
const KIND_TYPES: Readonly<Record<string, string>> = {
  relocatable: "REL (Relocatable file)",
  executable: "EXEC (Executable file)",
  "pie-executable": "DYN (Position-Independent Executable file)",
  "shared-library": "DYN (Shared object file)",
  core: "CORE (Core file)",
};

/** The file header fields readelf -h prints as numbers. */
export function compareHeader(elf: Elf, path: string): Comparison<ReadelfHeader> {
  const h = elf.header;
  return {
    ours: {
      type: KIND_TYPES[elf.kind] ?? elf.kind,
      entry: h.e_entry,
      phoff: h.e_phoff,
      shoff: h.e_shoff,
      phnum: h.e_phnum,
      shnum: h.e_shnum,
      shstrndx: h.e_shstrndx,
      flags: h.e_flags,
    },
    theirs: readelfHeader(path),
  };
}

/** Every section header. */
export function compareSections(elf: Elf, path: string): Comparison<object[]> {
  return {
    ours: elf.sections.map((s) => ({
      index: s.index,
      name: s.name,
      type: sectionTypeName(s.sh_type),
      address: s.sh_addr,
      offset: s.sh_offset,
      size: s.sh_size,
      entsize: s.sh_entsize,
      flags: sectionFlagLetters(s.sh_flags),
      link: s.sh_link,
      info: s.sh_info,
      align: s.sh_addralign,
    })),
    theirs: readelfSections(path),
  };
}

/** Every program header. */
export function compareSegments(elf: Elf, path: string): Comparison<object[]> {
  return {
    ours: elf.programHeaders.map((p) => ({
      type: segmentTypeName(p.p_type),
      offset: p.p_offset,
      vaddr: p.p_vaddr,
      paddr: p.p_paddr,
      filesz: p.p_filesz,
      memsz: p.p_memsz,
      flags: segmentFlagColumns(p.p_flags),
      align: p.p_align,
    })),
    theirs: readelfSegments(path),
  };
}

/** One symbol as readelf prints it; STT_SECTION symbols without a name print their section's name. */
export function symbolRow(elf: Elf, s: ElfSymbol): ReadelfSymbol {
  const name = s.type === STT.STT_SECTION && s.name === "" ? (elf.sections[s.st_shndx]?.name ?? "") : s.name;
  return {
    num: s.index,
    value: s.st_value,
    size: s.st_size,
    type: symbolTypeName(s.type),
    bind: symbolBindName(s.bind),
    vis: symbolVisibilityName(s.visibility),
    ndx: symbolIndexName(s.st_shndx),
    name,
  };
}

/** readelf's row with the version decoration of a .dynsym name taken off. */
function theirRow(table: string, r: ReadelfSymbol): ReadelfSymbol {
  return table === ".dynsym" ? { ...r, name: stripDynsymVersion(r.name) } : r;
}

/** Symbol tables by name: which tables exist, with every entry. */
export function compareSymbols(elf: Elf, path: string): Comparison<Record<string, ReadelfSymbol[]>> {
  const theirs: Record<string, ReadelfSymbol[]> = {};
  for (const [table, rows] of readelfSymbols(path)) theirs[table] = rows.map((r) => theirRow(table, r));
  const ours: Record<string, ReadelfSymbol[]> = {};
  const symtab = elf.sections.find((s) => s.sh_type === SHT.SHT_SYMTAB);
  const dynsym = elf.sections.find((s) => s.sh_type === SHT.SHT_DYNSYM);
  if (dynsym !== undefined) ours[dynsym.name] = elf.dynamicSymbols().map((s) => symbolRow(elf, s));
  if (symtab !== undefined) ours[symtab.name] = elf.symbols().map((s) => symbolRow(elf, s));
  return { ours, theirs };
}

/**
 * For tables too big for a readable diff: the entry counts per table, and the rows that differ (at
 * most `limit`), each as `[ours, theirs]`.
 */
export function symbolMismatches(
  elf: Elf,
  path: string,
  options: { limit?: number } = {},
): {
  counts: Comparison<Record<string, number>>;
  mismatches: [ReadelfSymbol | undefined, ReadelfSymbol | undefined][];
} {
  const limit = options.limit ?? 20;
  const theirs = readelfSymbols(path);
  const ourTables: Record<string, readonly ElfSymbol[]> = {};
  const symtab = elf.sections.find((s) => s.sh_type === SHT.SHT_SYMTAB);
  const dynsym = elf.sections.find((s) => s.sh_type === SHT.SHT_DYNSYM);
  if (dynsym !== undefined) ourTables[dynsym.name] = elf.dynamicSymbols();
  if (symtab !== undefined) ourTables[symtab.name] = elf.symbols();
  const counts = {
    ours: Object.fromEntries(Object.entries(ourTables).map(([k, v]) => [k, v.length])),
    theirs: Object.fromEntries([...theirs].map(([k, v]) => [k, v.length])),
  };
  const mismatches: [ReadelfSymbol | undefined, ReadelfSymbol | undefined][] = [];
  for (const [table, rows] of theirs) {
    const ours = ourTables[table] ?? [];
    for (let i = 0; i < rows.length; i++) {
      const mine = ours[i];
      const a = mine === undefined ? undefined : symbolRow(elf, mine);
      const b = theirRow(table, rows[i]!);
      if (!sameRow(a, b)) mismatches.push([a, b]);
      if (mismatches.length >= limit) return { counts, mismatches };
    }
  }
  return { counts, mismatches };
}

function sameRow(a: ReadelfSymbol | undefined, b: ReadelfSymbol | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return (
    a.num === b.num &&
    a.value === b.value &&
    a.size === b.size &&
    a.type === b.type &&
    a.bind === b.bind &&
    a.vis === b.vis &&
    a.ndx === b.ndx &&
    a.name === b.name
  );
}

/** Every REL/RELA section with its entries, and the decoded RELR addresses. */
export function compareRelocations(elf: Elf, path: string): Comparison<object> {
  const theirs = readelfRelocations(path);
  const relrNames = new Set(elf.sections.filter((s) => s.sh_type === SHT.SHT_RELR).map((s) => s.name));
  const ours = elf.relocationSections();
  return {
    ours: {
      sections: ours.map((r) => ({
        name: r.section.name,
        fileOffset: r.section.sh_offset,
        count: r.entries.length,
        entries: r.entries.map((e) => ({
          offset: e.r_offset,
          type: e.type,
          symbolIndex: e.symbolIndex,
          addend: r.section.sh_type === SHT.SHT_RELA ? e.addend : undefined,
        })),
      })),
      relrWords: elf.sections.filter((s) => s.sh_type === SHT.SHT_RELR).map((s) => Number(s.sh_size / 8n)),
      relr: elf.relrAddresses(),
    },
    theirs: {
      sections: theirs
        .filter((r) => !relrNames.has(r.name))
        .map((r) => ({ name: r.name, fileOffset: r.fileOffset, count: r.count, entries: r.entries })),
      relrWords: theirs.filter((r) => relrNames.has(r.name)).map((r) => r.count),
      relr: theirs.filter((r) => relrNames.has(r.name)).flatMap((r) => r.relrAddresses),
    },
  };
}

/**
 * readelf applies a .o's relocations to its notes with S = st_value, which leaves an offset into the
 * symbol's section; graft resolves them in its `sectionAddress` layout. This maps graft's address back
 * to the offset in the section that holds it. Linked files pass through.
 */
function asReadelfRelocates(elf: Elf, address: bigint): bigint {
  if (!elf.isRelocatable) return address;
  const s = elf.findSectionAt(address);
  if (s === undefined) throw new Error(`0x${address.toString(16)} is in no section of the object's layout`);
  return address - elf.sectionAddress(s);
}

/** Notes (where, owner, size), the build-id and every stapsdt probe. */
export function compareNotes(elf: Elf, path: string): Comparison<object> {
  const theirs = readelfNotes(path);
  const noteSections = elf.sections.filter((s) => s.sh_type === SHT.SHT_NOTE);
  const whereOf = (offset: number): string => {
    const s = noteSections.find(
      (x) => BigInt(offset) >= x.sh_offset && BigInt(offset) < x.sh_offset + x.sh_size,
    );
    return s?.name ?? `offset 0x${offset.toString(16)}`;
  };
  return {
    ours: {
      notes: elf.notes().map((n) => ({ where: whereOf(n.offset), owner: n.name, dataSize: n.desc.length })),
      buildId: elf.buildId(),
      probes: elf.usdtProbes().map((p) => ({
        provider: p.provider,
        name: p.name,
        location: asReadelfRelocates(elf, p.address),
        base: asReadelfRelocates(elf, p.base),
        semaphore: asReadelfRelocates(elf, p.semaphore),
        arguments: p.argumentSpec,
      })),
    },
    theirs: {
      notes: theirs.map((n) => ({ where: n.where, owner: n.owner, dataSize: n.dataSize })),
      buildId: theirs.find((n) => n.buildId !== undefined)?.buildId,
      probes: theirs.flatMap((n) => (n.stapsdt === undefined ? [] : [n.stapsdt])),
    },
  };
}

/** Dynamic tags in order, DT_NEEDED and DT_SONAME. */
export function compareDynamic(elf: Elf, path: string): Comparison<object> {
  const theirs = readelfDynamic(path);
  const entries = elf.dynamic();
  return {
    ours: {
      count: entries.length,
      tags: entries.map((e) => BigInt.asUintN(64, e.d_tag)),
      needed: elf.neededLibraries(),
      soname: elf.soname(),
    },
    theirs,
  };
}
