/**
 * The fixture matrix the reader is compared with readelf over, and the suite each cell runs. Split by
 * compiler into two test files so vitest compiles and compares them on two workers at once.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { STT } from "../../src/formats/elf/constants.js";
import type { Elf } from "../../src/formats/elf/elf.js";
import { readElfFile } from "../../src/formats/elf/elf-file.js";
import { buildFixture, type Compiler, type FixtureSpec } from "../support/fixtures.js";
import {
  compareDynamic,
  compareHeader,
  compareNotes,
  compareRelocations,
  compareSections,
  compareSegments,
  compareSymbols,
} from "./elf-oracle-compare.js";

export interface OracleCase {
  readonly label: string;
  readonly spec: FixtureSpec;
  /** Turn the built fixture into the file under test (e.g. strip it); the fixture itself when absent. */
  readonly derive?: (fixture: string) => string;
  /**
   * A split debug file keeps PT_INTERP but its .dynamic is NOBITS: readelf, which looks only for
   * DF_1_PIE, calls it a shared object; graft still sees the PIE it came from.
   */
  readonly dynamicStripped?: boolean;
}

const derivedDir = mkdtempSync(join(tmpdir(), "graft-elf-oracle-"));

/** `objcopy <args> fixture out`, into a scratch directory. */
function objcopy(name: string, args: readonly string[]): (fixture: string) => string {
  return (fixture) => {
    const out = join(derivedDir, `${basename(fixture)}.${name}`);
    execFileSync("objcopy", [...args, fixture, out]);
    return out;
  };
}

/** gcc or clang × {pie, exe, shared, object} × {-O0 -g, -O2}, the patching flags, USDT, and the linker variants. */
export function fixtureMatrix(compiler: Compiler): OracleCase[] {
  const cases: OracleCase[] = [];
  for (const output of ["pie", "exe", "shared", "object"] as const) {
    for (const opt of [["-O0", "-g"], ["-O2"]]) {
      cases.push({
        label: `${compiler} ${output} ${opt.join(" ")}`,
        spec: { compiler, sources: ["sites.c"], flags: opt, output },
      });
    }
  }
  const variants = [
    ["-fpatchable-function-entry=16,14"],
    ["-pg", "-mfentry"],
    ["-fcf-protection=full"],
    ["-ffunction-sections", "-g"],
  ];
  for (const flags of variants) {
    for (const output of ["pie", "object"] as const) {
      cases.push({
        label: `${compiler} ${output} -O2 ${flags.join(" ")}`,
        spec: { compiler, sources: ["sites.c"], flags: ["-O2", ...flags], output },
      });
    }
  }
  for (const output of ["pie", "exe", "object"] as const) {
    cases.push({
      label: `${compiler} ${output} usdt.c`,
      spec: { compiler, sources: ["usdt.c"], flags: ["-O2"], output },
    });
  }
  cases.push({
    label: `${compiler} shared lib.c with a SONAME`,
    spec: {
      compiler,
      sources: ["lib.c"],
      flags: ["-O2", `-Wl,-soname,libgraft-oracle-${compiler}.so.1`],
      output: "shared",
    },
  });
  // Files a linker did not write last: a split debug file (every allocated section turned NOBITS,
  // program headers with p_filesz 0) and a fully stripped executable (no .symtab).
  cases.push({
    label: `${compiler} pie -O0 -g split into a debug file by objcopy --only-keep-debug`,
    spec: { compiler, sources: ["sites.c"], flags: ["-O0", "-g"], output: "pie" },
    derive: objcopy("debug", ["--only-keep-debug"]),
    dynamicStripped: true,
  });
  cases.push({
    label: `${compiler} pie -O2 stripped by objcopy --strip-all`,
    spec: { compiler, sources: ["sites.c"], flags: ["-O2"], output: "pie" },
    derive: objcopy("stripped", ["--strip-all"]),
  });
  if (compiler === "clang") {
    cases.push({
      label: "clang pie ThinLTO linked by lld",
      spec: { compiler, sources: ["sites.c"], flags: ["-O2", "-flto=thin", "-fuse-ld=lld"], output: "pie" },
    });
    cases.push({
      label: "clang pie linked by lld with RELR relocations",
      spec: {
        compiler,
        sources: ["sites.c"],
        flags: ["-O2", "-fuse-ld=lld", "-Wl,--pack-dyn-relocs=relr"],
        output: "pie",
      },
    });
  }
  return cases;
}

afterAll(() => rmSync(derivedDir, { recursive: true, force: true }));

/** For one fixture: every part of the reader agrees with readelf. */
export function describeOracle(c: OracleCase): void {
  describe(`the ELF reader on ${c.label}`, () => {
    let path: string;
    let elf: Elf;
    beforeAll(() => {
      const built = buildFixture(c.spec);
      path = c.derive === undefined ? built : c.derive(built);
      elf = readElfFile(path);
    });

    test("reads the file header readelf -h prints", () => {
      const { ours, theirs } = compareHeader(elf, path);
      if (c.dynamicStripped) {
        expect([ours.type, theirs.type]).toEqual([
          "DYN (Position-Independent Executable file)",
          "DYN (Shared object file)",
        ]);
        expect({ ...ours, type: "" }).toEqual({ ...theirs, type: "" });
      } else {
        expect(ours).toEqual(theirs);
      }
    });
    test("reads every section header as readelf -S does", () => {
      const { ours, theirs } = compareSections(elf, path);
      expect(ours).toEqual(theirs);
    });
    test("reads every program header as readelf -l does", () => {
      const { ours, theirs } = compareSegments(elf, path);
      expect(ours).toEqual(theirs);
    });
    test("reads every .symtab and .dynsym entry as readelf -s does", () => {
      const { ours, theirs } = compareSymbols(elf, path);
      expect(ours).toEqual(theirs);
    });
    test("reads every relocation as readelf -r does", () => {
      const { ours, theirs } = compareRelocations(elf, path);
      expect(ours).toEqual(theirs);
    });
    test("reads the notes, build-id and USDT probes readelf -n prints", () => {
      const { ours, theirs } = compareNotes(elf, path);
      expect(ours).toEqual(theirs);
    });
    test("reads the dynamic tags, DT_NEEDED and DT_SONAME readelf -d prints", () => {
      const { ours, theirs } = compareDynamic(elf, path);
      expect(ours).toEqual(theirs);
    });
    if (c.spec.sources.includes("usdt.c")) {
      test("splits every USDT argument spec readelf -n prints into size, sign and operand", () => {
        const probes = elf.usdtProbes();
        expect(probes.map((p) => p.name).sort()).toEqual(["done", "request", "start"]);
        for (const p of probes) {
          const tokens = p.argumentSpec.split(" ").filter((t) => t !== "");
          expect(p.arguments.map((a) => `${a.signed ? "-" : ""}${a.size}@${a.location}`)).toEqual(tokens);
        }
        // Each probe sits inside the function that fires it, in the reader's own address layout.
        const functionAt = (address: bigint): string | undefined =>
          elf
            .symbols()
            .filter((s) => s.type === STT.STT_FUNC && s.st_shndx !== 0)
            .find((s) => {
              const start = elf.isRelocatable
                ? elf.sectionAddress(elf.getSection(s.st_shndx)) + s.st_value
                : s.st_value;
              return address >= start && address < start + s.st_size;
            })?.name;
        expect(Object.fromEntries(probes.map((p) => [p.name, functionAt(p.address)]))).toEqual({
          start: "handle",
          request: "handle",
          done: "main",
        });
        expect(probes.find((p) => p.name === "start")?.arguments.map((a) => [a.size, a.signed])).toEqual([
          [4, true],
          [8, true],
        ]);
      });
    }
  });
}
