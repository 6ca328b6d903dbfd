/**
 * The reader on big binaries nobody built for the test: node (about 100 MB, 180 000 symbols) and glibc
 * (versioned .dynsym, RELR, SHF_GNU_RETAIN sections), compared with readelf.
 */
import { existsSync } from "node:fs";
import { describe, expect, test } from "vitest";
import { readElfFile } from "../../src/formats/elf/elf-file.js";
import {
  compareDynamic,
  compareHeader,
  compareNotes,
  compareRelocations,
  compareSections,
  compareSegments,
  symbolMismatches,
} from "./elf-oracle-compare.js";
import { readelfNotes } from "./readelf-oracle.js";

const NODE = "/usr/bin/node";
const LIBC = "/lib/x86_64-linux-gnu/libc.so.6";

describe.skipIf(!existsSync(NODE))(`the ELF reader on ${NODE}`, () => {
  test("reads the headers, sections and segments readelf prints", () => {
    const elf = readElfFile(NODE);
    for (const compare of [compareHeader, compareSections, compareSegments]) {
      const { ours, theirs } = compare(elf, NODE);
      expect(ours).toEqual(theirs);
    }
  });

  test("reads every symbol of .symtab and .dynsym field by field as readelf -s does", () => {
    const elf = readElfFile(NODE);
    const { counts, mismatches } = symbolMismatches(elf, NODE);
    expect(counts.ours).toEqual(counts.theirs);
    expect(counts.ours[".symtab"]).toBeGreaterThan(100_000);
    expect(mismatches).toEqual([]);
  });

  test("reads the build-id readelf -n prints and the DT_NEEDED list readelf -d prints", () => {
    const elf = readElfFile(NODE);
    // node carries annobin notes whose owners readelf decodes specially; the GNU notes are compared.
    const theirs = readelfNotes(NODE).filter((n) => n.owner === "GNU");
    const ours = elf.notes().filter((n) => n.name === "GNU");
    expect(ours.map((n) => n.desc.length)).toEqual(theirs.map((n) => n.dataSize));
    expect(elf.buildId()).toBe(theirs.find((n) => n.buildId !== undefined)?.buildId);
    const { ours: dynOurs, theirs: dynTheirs } = compareDynamic(elf, NODE);
    expect(dynOurs).toEqual(dynTheirs);
  });
});

describe.skipIf(!existsSync(LIBC))(`the ELF reader on ${LIBC}`, () => {
  test("reads the headers, sections and segments readelf prints", () => {
    const elf = readElfFile(LIBC);
    for (const compare of [compareHeader, compareSections, compareSegments]) {
      const { ours, theirs } = compare(elf, LIBC);
      expect(ours).toEqual(theirs);
    }
  });

  test("reads every symbol as readelf -s does, versioned .dynsym names included", () => {
    const elf = readElfFile(LIBC);
    const { counts, mismatches } = symbolMismatches(elf, LIBC);
    expect(counts.ours).toEqual(counts.theirs);
    expect(counts.ours[".dynsym"]).toBeGreaterThan(2000);
    expect(mismatches).toEqual([]);
  });

  test("reads every RELA entry and decodes RELR as readelf -r does", () => {
    const elf = readElfFile(LIBC);
    const { ours, theirs } = compareRelocations(elf, LIBC);
    expect(ours).toEqual(theirs);
  });

  test("reads the notes, build-id, DT_NEEDED and SONAME readelf prints", () => {
    const elf = readElfFile(LIBC);
    for (const compare of [compareNotes, compareDynamic]) {
      const { ours, theirs } = compare(elf, LIBC);
      expect(ours).toEqual(theirs);
    }
    expect(elf.soname()).toBe("libc.so.6");
  });
});
