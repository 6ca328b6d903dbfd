/**
 * graft diff on AArch64: catalogue cases cross-compiled with aarch64-linux-gnu-gcc and clang
 * --target=aarch64-linux-gnu (lld), as two `.o` files and as two linked PIEs. A64 constants are bit
 * fields sharing the word with opcode, registers and condition: the normaliser clears only those
 * bits (InstructionField.mask, and the R_AARCH64 relocation's field in a .o), so `b.lt` → `b.le`
 * stays a change while the rebuild of the same source reports nothing.
 */
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type BuildDiff, diffBuilds } from "../../src/analysis/diff/diff-builds.js";
import { aarch64 } from "../../src/arch/index.js";
import { readElfFile } from "../../src/formats/elf/elf-file.js";
import { type Compiler, compilerCommand, fixturesDir, hasCommand, run } from "../support/fixtures.js";

const FLAGS = ["-O2", "-ffunction-sections", "-fdata-sections"];

/** `<` → `<=`: only the condition bits of one A64 word differ. */
const CONDITION = (op: string): string => `/* A bound check off by one: only the condition changes. */
__attribute__((noinline)) int side(int x) { return x * 7; }
__attribute__((noinline)) int limited(int x) { if (x ${op} 10) return side(x); return 0; }
int observe(void) { return limited(10); }
`;

/** A longer string early in .rodata moves every ADRP page after it: only its reader changed. */
const SHIFT = (n: number): string => `#include <string.h>
__attribute__((noinline)) int f1(void) { const char *volatile s = "${"a".repeat(n)}"; return (int)strlen(s); }
__attribute__((noinline)) int f2(void) { const char *volatile s = "hello there"; return (int)strlen(s); }
static const int tab[4] = {1, 2, 3, 4};
volatile int i = 1;
__attribute__((noinline)) int f3(void) { return tab[i]; }
int observe(void) { return f1() + f2() + f3(); }
`;

const CASES: Record<string, { sources?: [string, string]; changed: string[]; added?: string[] }> = {
  identical: { changed: [] },
  "inlined-unchanged-callers": { changed: ["helper"] },
  "changed-string": { changed: ["greet"] },
  "new-static-function": { changed: ["compute"], added: ["clamp"] },
  "inlined-static": { changed: ["first", "second", "third"] },
  "switch-table": { changed: ["classify2"] },
  grows: { changed: ["compute"] },
  "const-table": { changed: ["lookup"] },
  "rodata-shift": { sources: [SHIFT(3000), SHIFT(3600)], changed: ["f1"] },
  condition: { sources: [CONDITION("<"), CONDITION("<=")], changed: ["limited"] },
};

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "graft-diff-a64-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const have = hasCommand("aarch64-linux-gnu-gcc") && hasCommand("ld.lld");

/** Both sides of a case as prog.o and a linked PIE (prog.o + the harness), in their own directories. */
function buildCase(
  name: string,
  compiler: Compiler,
  extra: readonly string[] = [],
): { orig: string; patched: string; origExe: string; patchedExe: string } {
  const [cc, ...lead] = compilerCommand(compiler, "aarch64");
  const root = join(dir, `${name}-${compiler}${extra.join("")}`);
  const out: string[] = [];
  for (const side of ["orig", "patched"] as const) {
    const d = join(root, side);
    mkdirSync(d, { recursive: true });
    const given = CASES[name]!.sources;
    if (given !== undefined) writeFileSync(join(d, "prog.c"), given[side === "orig" ? 0 : 1]);
    else copyFileSync(join(fixturesDir, "diff", name, `${side}.c`), join(d, "prog.c"));
    copyFileSync(join(fixturesDir, "diff", "harness.c"), join(d, "harness.c"));
    execFileSync(cc, [...lead, ...FLAGS, ...extra, "-c", "prog.c", "-o", "prog.o"], {
      cwd: d,
      stdio: "pipe",
    });
    execFileSync(cc, [...lead, ...FLAGS, "-fPIE", "-pie", "prog.o", "harness.c", "-o", "prog"], {
      cwd: d,
      stdio: "pipe",
    });
    out.push(join(d, "prog.o"), join(d, "prog"));
  }
  return { orig: out[0]!, origExe: out[1]!, patched: out[2]!, patchedExe: out[3]! };
}

const base = (n: string): string => n.replace(/\.(constprop|isra|part|cold)(\.\d+)?/g, "");
const names = (list: readonly { name: string }[]): string[] =>
  [...new Set(list.map((u) => base(u.name)))].sort();

function check(d: BuildDiff, want: (typeof CASES)[string]): void {
  const what = JSON.stringify(
    { changed: d.functions.changed, refusals: d.refusals, warnings: d.warnings },
    (_k, v) => (typeof v === "bigint" ? v.toString() : v),
  );
  expect(names(d.functions.changed), what).toEqual([...want.changed].sort());
  expect(d.functions.lineOnly, what).toEqual([]);
  expect(names(d.functions.added), what).toEqual([...(want.added ?? [])].sort());
  expect(d.functions.removed).toEqual([]);
  expect(d.refusals).toEqual([]);
}

for (const compiler of ["gcc", "clang"] as const)
  describe.skipIf(!have)(`graft diff on AArch64 (${compiler})`, () => {
    for (const name of Object.keys(CASES)) {
      it(`${name}: two .o files, then two linked PIEs`, () => {
        const c = buildCase(name, compiler);
        const objects = diffBuilds(readElfFile(c.orig), readElfFile(c.patched), aarch64);
        expect(objects.kind).toBe("object");
        check(objects, CASES[name]!);
        const linked = diffBuilds(readElfFile(c.origExe), readElfFile(c.patchedExe), aarch64);
        expect(linked.kind).toBe("linked");
        check(linked, CASES[name]!);
        if (name === "identical") expect(linked.functions.unchanged).toBeGreaterThan(2);
      });
    }

    it("with -g, callers holding an unchanged inlined copy are impacted through DWARF (R_AARCH64_ABS relocations)", () => {
      const c = buildCase("inlined-unchanged-callers", compiler, ["-g"]);
      const d = diffBuilds(readElfFile(c.orig), readElfFile(c.patched), aarch64);
      expect(names(d.functions.changed)).toEqual(["helper"]);
      expect(d.impacted.find((f) => f.name === "first")?.reasons).toContain(
        "holds an inlined copy of helper",
      );
      const linked = diffBuilds(readElfFile(c.origExe), readElfFile(c.patchedExe), aarch64);
      expect(linked.impacted.map((f) => f.name)).toContain("first");
    });

    it("the condition change is one A64 word whose condition bits differ (oracle: objdump)", () => {
      const c = buildCase("condition", compiler);
      const d = diffBuilds(readElfFile(c.orig), readElfFile(c.patched), aarch64);
      const f = d.functions.changed[0]!;
      const dis = (file: string): string =>
        run("aarch64-linux-gnu-objdump", ["-d", `--disassemble=${f.name}`, file])
          .split("\n")
          .filter((l) => /^\s+[0-9a-f]+:\t[0-9a-f]{8} /.test(l))
          .map((l) => l.split("\t").slice(2).join(" ").trim())
          .join("\n");
      const [a, b] = [dis(c.orig), dis(c.patched)];
      expect(a).not.toEqual(b);
      // Same instruction count: the difference is in place, and graft points at it.
      expect(a.split("\n").length).toBe(b.split("\n").length);
      expect(f.firstDifference.orig).not.toEqual(f.firstDifference.patched);
      expect(f.size).toBe(f.patchedSize);
    });
  });
