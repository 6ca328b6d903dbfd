/**
 * graft diff's impacted closure from the original build's DWARF: a static helper kept out of line
 * and inlined into callers whose code the fix does not change (their arguments never take the fixed
 * branch). Only DW_TAG_inlined_subroutine shows they hold a copy; the diff lists them as impacted,
 * graft build puts them in the patch, and without -g the report says such copies could not be seen.
 * Also: graft build --diff takes its compile flags from the DW_AT_producer of the touched file's unit.
 */
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { diffBuilds } from "../../src/analysis/diff/diff-builds.js";
import { x86_64 } from "../../src/arch/index.js";
import { readElfFile } from "../../src/formats/elf/elf-file.js";
import { buildPatchFromBuilds, producerFlags } from "../../src/live/build-diff-patch-file.js";
import { buildDiffCase } from "../support/diff-fixtures.js";
import { fixturesDir, run } from "../support/fixtures.js";

const CASE = "inlined-unchanged-callers";
const WITH_G = ["-O2", "-g", "-ffunction-sections", "-fdata-sections"];
let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "graft-diff-dwarf-"));
  process.env.GRAFT_STATE_DIR = join(dir, "state");
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

for (const compiler of ["gcc", "clang"] as const)
  describe(`callers holding an inlined copy of a changed function (${compiler})`, () => {
    it("with -g: the callers are impacted through DWARF, though their code is the same (oracle: readelf)", () => {
      const c = buildDiffCase(CASE, compiler, WITH_G);
      // The oracle: the original object says first holds an inlined copy of helper.
      expect(run("readelf", ["--debug-dump=info", c.orig])).toMatch(/DW_TAG_inlined_subroutine/);
      const d = diffBuilds(readElfFile(c.orig), readElfFile(c.patched), x86_64);
      expect(d.functions.changed.map((f) => f.name)).toEqual(["helper"]);
      const first = d.impacted.find((f) => f.name === "first");
      expect(first?.reasons).toContain("holds an inlined copy of helper");
      expect(d.impacted.map((f) => f.name)).not.toContain("untouched");
      expect(d.warnings.join("\n")).not.toMatch(/no DWARF/);
    });

    it("without -g: the same diff misses them and says inlined copies could not be seen", () => {
      const c = buildDiffCase(CASE, compiler);
      const d = diffBuilds(readElfFile(c.orig), readElfFile(c.patched), x86_64);
      expect(d.functions.changed.map((f) => f.name)).toEqual(["helper"]);
      expect(d.impacted.map((f) => f.name)).not.toContain("first");
      expect(d.warnings.join("\n")).toMatch(/no DWARF .*inlined copy .*could not be seen/);
    });

    it("graft build --orig/--patched replaces the impacted callers too", () => {
      const c = buildDiffCase(CASE, compiler, WITH_G);
      const out = join(dir, `${compiler}.graft`);
      const built = buildPatchFromBuilds({ orig: c.orig, patched: c.patched, target: c.target, output: out });
      expect(built.replaces.find((r) => r.name === "first")?.why).toMatch(/inlined copy of helper/);
      expect(run("readelf", ["-sW", out])).toMatch(/FUNC +GLOBAL +DEFAULT +\d+ first$/m);
    });
  });

describe("graft build --diff reads the compile flags from the touched unit's DW_AT_producer", () => {
  it("two units built with different flags: each file gets its own unit's flags (gcc)", () => {
    const src = join(fixturesDir, "diff", CASE, "orig.c");
    const a = join(dir, "prog.c");
    copyFileSync(src, a);
    copyFileSync(join(fixturesDir, "diff", "harness.c"), join(dir, "harness.c"));
    execFileSync("gcc", ["-O1", "-g", "-fno-inline-small-functions", "-c", "prog.c", "-o", "prog.o"], {
      cwd: dir,
    });
    execFileSync("gcc", ["-O2", "-g", "-c", "harness.c", "-o", "harness.o"], { cwd: dir });
    const target = join(dir, "two-units");
    execFileSync("gcc", ["prog.o", "harness.o", "-o", target], { cwd: dir });
    const prog = producerFlags(target, "src/prog.c");
    expect(prog?.compiler).toBe("gcc");
    expect(prog?.unit).toBe("prog.c");
    expect(prog?.flags).toEqual(expect.arrayContaining(["-O1", "-fno-inline-small-functions"]));
    expect(prog?.flags.some((f) => /^-g/.test(f))).toBe(false);
    const harness = producerFlags(target, "harness.c");
    expect(harness?.flags).toContain("-O2");
    expect(harness?.flags).not.toContain("-fno-inline-small-functions");
  });

  it("clang records its command line with -grecord-command-line; without DWARF there is nothing", () => {
    execFileSync(
      "clang",
      ["-O1", "-g", "-grecord-command-line", "-fno-unroll-loops", "-c", "prog.c", "-o", "c.o"],
      {
        cwd: dir,
      },
    );
    const clang = producerFlags(join(dir, "c.o"), "prog.c");
    expect(clang?.compiler).toBe("clang");
    expect(clang?.flags).toEqual(["-O1", "-fno-unroll-loops"]);
    execFileSync("gcc", ["-O2", "-c", "prog.c", "-o", "plain.o"], { cwd: dir });
    expect(producerFlags(join(dir, "plain.o"), "prog.c")).toBeUndefined();
  });
});
