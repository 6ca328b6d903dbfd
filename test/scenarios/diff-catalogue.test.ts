/**
 * The graft diff scenario catalogue: each case of test/fixtures/diff is built with gcc and clang
 * (the same flags for both builds, as two builds of one tree), diffed, and the report checked
 * against what the source change means. Clones are GCC's (`.constprop`, `.isra`, `.part`, `.cold`);
 * clang keeps the plain name, so names are matched up to their clone suffix. Two more cases work on
 * linked files: the same program linked twice, and the ThinLTO rename of LLVM D128863.
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { type BuildDiff, diffBuilds } from "../../src/analysis/diff/diff-builds.js";
import { x86_64 } from "../../src/arch/index.js";
import { readElfFile } from "../../src/formats/elf/elf-file.js";
import { buildDiffCase } from "../support/diff-fixtures.js";
import { type Compiler, fixturesDir, hasCommand, run } from "../support/fixtures.js";

interface Expect {
  /** Names (up to a clone suffix) that must be reported changed; exactly these, no others. */
  changed?: string[];
  lineOnly?: string[];
  added?: string[];
  removed?: string[];
  dataChanged?: string[];
  dataAdded?: string[];
  /** A refusal must match this. */
  refused?: RegExp;
  /** Functions the impacted closure must include (up to a clone suffix). */
  impacted?: string[];
  /** Flags instead of -O2 and the section flags (see buildDiffCase). */
  variant?: string[];
  /** Compilers the case applies to (default both). */
  only?: Compiler;
}

const CATALOGUE: Record<string, Expect> = {
  "inlined-static": { changed: ["first", "second", "third"] },
  // The callers' inlined copies compile the same in both builds: only DWARF shows they hold one.
  "inlined-unchanged-callers": {
    variant: ["-O2", "-g", "-ffunction-sections", "-fdata-sections"],
    changed: ["helper"],
    impacted: ["first"],
  },
  "constprop-clone": { changed: ["scale"] },
  "isra-clone": { changed: ["get"] },
  "part-clone": { changed: ["call1", "call2"] },
  "cold-part": { changed: ["check"] },
  "new-static-function": { changed: ["compute"], added: ["clamp"] },
  "new-global-variable": { changed: ["compute"], dataAdded: ["bonus"] },
  "changed-string": { changed: ["greet"] },
  "line-only": { changed: [], lineOnly: ["compute"] },
  "switch-table": { changed: ["classify2"] },
  recursion: { changed: ["fib"] },
  variadic: { changed: ["sum"] },
  grows: { changed: ["compute"] },
  "struct-layout": { dataChanged: ["cfg"], refused: /cfg .*changed size or layout \(8 → 12 bytes\)/ },
  "initialised-data": { changed: [], dataChanged: ["limit"], refused: /limit@prog\.c .*changed initialiser/ },
  // gcc keeps the constructor's store; clang evaluates it at compile time into level's initialiser.
  constructor: { refused: /constructor setup changed|level .*changed initialiser/ },
  tls: { changed: [], dataChanged: ["depth"], refused: /thread-local variable depth/ },
  identical: { changed: [], lineOnly: [], added: [], removed: [], dataChanged: [], dataAdded: [] },
  "const-table": { changed: ["lookup"], dataChanged: ["table"] },
  "static-local": { changed: ["next"], dataChanged: [], dataAdded: [] },
  "removed-function": { changed: ["compute"], removed: ["twice"] },
  "function-pointers": { changed: ["inc"], dataChanged: [] },
  "caller-only": { changed: ["add"] },
  "new-unused-function": { changed: [], added: ["spare"] },
  "bss-size": {
    dataChanged: ["buffer"],
    refused: /buffer@prog\.c .*changed size or layout \(16 → 32 bytes\)/,
  },
  "float-constant": { changed: ["scaled"] },
  alias: { changed: ["impl"] },
  "same-name-statics": { changed: ["g", "observe"], added: ["h"], dataAdded: ["count"], dataChanged: [] },
  // gcc -O3 clones f per constant and clones the callers too; clang -O3 inlines or specialises in place.
  "clone-family": { variant: ["-O3"], changed: ["f"], impacted: ["b", "observe"] },
};

/** Cases built again without -ffunction-sections -fdata-sections: one section for every function. */
const SHARED_SECTIONS = [
  "inlined-static",
  "new-static-function",
  "changed-string",
  "removed-function",
  "switch-table",
];

const base = (n: string): string => n.replace(/\.(constprop|isra|part|cold)(\.\d+)?/g, "");
/** A static local's variable name: gcc `count.3`, clang `h.count` → `count`. */
const dataNames = (list: readonly { name: string }[]): string[] =>
  [
    ...new Set(
      list.map(
        (u) =>
          u.name
            .split(".")
            .filter((p) => !/^\d+$/.test(p))
            .at(-1)!,
      ),
    ),
  ].sort();
const names = (list: readonly { name: string }[]): string[] =>
  [...new Set(list.map((u) => base(u.name)))].sort();

function check(d: BuildDiff, want: Expect): void {
  const what = JSON.stringify({
    changed: d.functions.changed.map((f) => f.name),
    line: d.functions.lineOnly.map((f) => f.name),
    refusals: d.refusals,
  });
  if (want.changed !== undefined) expect(names(d.functions.changed), what).toEqual([...want.changed].sort());
  if (want.lineOnly !== undefined)
    expect(names(d.functions.lineOnly), what).toEqual([...want.lineOnly].sort());
  if (want.added !== undefined) expect(names(d.functions.added)).toEqual([...want.added].sort());
  if (want.removed !== undefined) expect(names(d.functions.removed)).toEqual([...want.removed].sort());
  if (want.dataChanged !== undefined) expect(dataNames(d.data.changed)).toEqual([...want.dataChanged].sort());
  if (want.dataAdded !== undefined) expect(dataNames(d.data.added)).toEqual([...want.dataAdded].sort());
  if (want.impacted !== undefined) expect(names(d.impacted)).toEqual(expect.arrayContaining(want.impacted));
  if (want.refused !== undefined) expect(d.refusals.join("\n")).toMatch(want.refused);
  else expect(d.refusals).toEqual([]);
}

describe("the catalogue covers every case folder", () => {
  it("has an expectation for each of test/fixtures/diff/* and at least 25 of them", () => {
    const root = join(fixturesDir, "diff");
    const folders = readdirSync(root).filter((n) => statSync(join(root, n)).isDirectory());
    expect(folders.sort()).toEqual(Object.keys(CATALOGUE).sort());
    expect(folders.length).toBeGreaterThanOrEqual(25);
  });
});

for (const compiler of ["gcc", "clang"] as const) {
  describe(`graft diff on two ${compiler} builds of one translation unit`, () => {
    for (const [name, want] of Object.entries(CATALOGUE)) {
      if (want.only !== undefined && want.only !== compiler) continue;
      it(`${name}`, () => {
        const c = buildDiffCase(name, compiler, want.variant);
        const d = diffBuilds(readElfFile(c.orig), readElfFile(c.patched), x86_64);
        if (name === "clone-family" && compiler === "clang") {
          expect(d.functions.changed.length).toBeGreaterThan(0);
          return;
        }
        check(d, want);
      });
    }
    for (const name of SHARED_SECTIONS) {
      it(`${name}, without -ffunction-sections -fdata-sections (calls inside .text resolved by the assembler)`, () => {
        const c = buildDiffCase(name, compiler, ["-O2"]);
        check(diffBuilds(readElfFile(c.orig), readElfFile(c.patched), x86_64), CATALOGUE[name]!);
      });
    }
    it("GCC's clones are correlated under their numbered names (oracle: nm)", () => {
      if (compiler !== "gcc") return;
      const c = buildDiffCase("constprop-clone", compiler);
      expect(run("nm", [c.orig])).toMatch(/ scale\.constprop\.0$/m);
      const d = diffBuilds(readElfFile(c.orig), readElfFile(c.patched), x86_64);
      expect(d.functions.changed.map((f) => f.name)).toEqual(["scale.constprop.0"]);
      expect(d.functions.added).toEqual([]);
    });
  });
}

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe("graft diff on linked files", () => {
  it("the same source linked twice reports nothing (gcc, PIE)", () => {
    const c = buildDiffCase("identical", "gcc");
    const d = diffBuilds(readElfFile(c.target), readElfFile(c.patchedTarget), x86_64);
    check(d, CATALOGUE.identical!);
    expect(d.functions.unchanged).toBeGreaterThan(3);
  });

  for (const compiler of ["gcc", "clang"] as const)
    for (const name of ["float-constant", "switch-table", "changed-string", "const-table", "inlined-static"])
      it(`${name} (${compiler}): linked builds report what the objects report`, () => {
        const c = buildDiffCase(name, compiler);
        const linked = diffBuilds(readElfFile(c.target), readElfFile(c.patchedTarget), x86_64);
        const objects = diffBuilds(readElfFile(c.orig), readElfFile(c.patched), x86_64);
        expect(names(linked.functions.changed)).toEqual(names(objects.functions.changed));
        expect(names(linked.data.changed)).toEqual(names(objects.data.changed));
        expect(linked.functions.added).toEqual([]);
      });

  it("a changed function is found in linked files, addresses compared by what they point at", () => {
    const c = buildDiffCase("new-static-function", "gcc");
    const d = diffBuilds(readElfFile(c.target), readElfFile(c.patchedTarget), x86_64);
    expect(names(d.functions.changed)).toEqual(["compute"]);
    expect(names(d.functions.added)).toEqual(["clamp"]);
  });

  it.skipIf(!hasCommand("ld.lld"))(
    "ThinLTO (LLVM D128863): a change renames f.llvm.<hash>; nm sees renames, graft sees only the real change",
    () => {
      const dir = mkdtempSync(join(tmpdir(), "graft-thinlto-"));
      dirs.push(dir);
      const a = (k: number) => `static int __attribute__((noinline)) helper(int x) { return x * 3 + ${1}; }
int __attribute__((noinline)) other(void) { return ${k}; }
int api(int x) { return helper(x) + 1; }
`;
      const b = `int api(int);
int other(void);
int main(int argc, char **argv) { (void)argv; return api(argc) + other(); }
`;
      const builds = [1, 2].map((k) => {
        const d = join(dir, `b${k}`);
        mkdirSync(d);
        writeFileSync(join(d, "a.c"), a(k));
        writeFileSync(join(d, "b.c"), b);
        execFileSync("clang", ["-O2", "-flto=thin", "-fuse-ld=lld", "a.c", "b.c", "-o", "prog"], {
          cwd: d,
          stdio: "pipe",
        });
        return join(d, "prog");
      });
      const promoted = (f: string) =>
        run("nm", [f])
          .split("\n")
          .filter((l) => /\.llvm\.\d+/.test(l))
          .map((l) => l.split(" ").at(-1)!);
      const [p1, p2] = builds.map(promoted);
      // The naive symbol diff: the promoted names differ between the builds.
      expect(p1!.length).toBeGreaterThan(0);
      expect(p1!.filter((n) => !p2!.includes(n)).length).toBeGreaterThan(0);
      const d = diffBuilds(readElfFile(builds[0]!), readElfFile(builds[1]!), x86_64);
      expect(names(d.functions.changed)).toEqual(["other"]);
      expect(d.functions.added).toEqual([]);
      expect(d.functions.removed).toEqual([]);
      expect(d.refusals).toEqual([]);
    },
  );
});
