/**
 * `graft check` over the flag matrix: gcc and clang × patch-site flags × -O0/-O2 × executable, PIE
 * and `.o`, each file compared with readelf/objdump (see subject.ts), then the semantic promises of
 * each flag set checked against the functions the fixture itself defines (read from its `.o`).
 */
import { execFileSync } from "node:child_process";
import { beforeAll, describe, expect, it } from "vitest";
import { buildFixture, type Compiler, type OutputKind } from "../support/fixtures.js";
import { readSymbols } from "./oracles.js";
import { analyse, byName, expectAgreesWithBinutils, type Subject, site } from "./subject.js";

interface FlagSet {
  readonly label: string;
  readonly flags: readonly string[];
  /** Only these compilers/outputs (the rest are skipped knowingly, see the tests below). */
  readonly compilers?: readonly Compiler[];
  readonly outputs?: readonly OutputKind[];
  /** Extra flags for the `.o` build (gcc's -mnop-mcount needs non-PIC code). */
  readonly objectFlags?: readonly string[];
}

const FLAG_SETS: readonly FlagSet[] = [
  { label: "no flags", flags: [] },
  { label: "sled 16,14", flags: ["-fpatchable-function-entry=16,14"] },
  { label: "sled 5,0", flags: ["-fpatchable-function-entry=5,0"] },
  { label: "sled 2", flags: ["-fpatchable-function-entry=2"] },
  { label: "-pg -mfentry", flags: ["-pg", "-mfentry"] },
  {
    label: "-pg -mfentry -mnop-mcount -mrecord-mcount",
    flags: ["-pg", "-mfentry", "-mnop-mcount", "-mrecord-mcount"],
    compilers: ["gcc"],
    outputs: ["exe", "object"],
    objectFlags: ["-fno-pie"],
  },
  {
    label: "cf-protection + sled 16,14",
    flags: ["-fcf-protection=full", "-fpatchable-function-entry=16,14"],
  },
  { label: "function-sections", flags: ["-ffunction-sections"] },
  {
    label: "function-sections + sled 16,14",
    flags: ["-ffunction-sections", "-fpatchable-function-entry=16,14"],
  },
];

const COMPILERS: readonly Compiler[] = ["gcc", "clang"];
const OPTS = ["-O0", "-O2"] as const;
const OUTPUTS: readonly OutputKind[] = ["exe", "pie", "object"];

interface Cell {
  readonly name: string;
  readonly compiler: Compiler;
  readonly set: FlagSet;
  readonly opt: (typeof OPTS)[number];
  readonly output: OutputKind;
}

const CELLS: Cell[] = FLAG_SETS.flatMap((set) =>
  COMPILERS.filter((c) => set.compilers === undefined || set.compilers.includes(c)).flatMap((compiler) =>
    OPTS.flatMap((opt) =>
      OUTPUTS.filter((o) => set.outputs === undefined || set.outputs.includes(o)).map((output) => ({
        name: `${compiler} ${opt} ${set.label} ${output}`,
        compiler,
        set,
        opt,
        output,
      })),
    ),
  ),
);

function build(cell: Pick<Cell, "compiler" | "set" | "opt">, output: OutputKind): string {
  const extra = output === "object" ? (cell.set.objectFlags ?? []) : [];
  return buildFixture({
    compiler: cell.compiler,
    sources: ["sites.c"],
    flags: [cell.opt, ...cell.set.flags, ...extra],
    output,
  });
}

/** The functions sites.c itself defines under these flags: FUNC symbols of its `.o` (readelf). */
function fixtureFunctions(cell: Cell): string[] {
  const names = readSymbols(build(cell, "object"))
    .filter((s) => s.table === ".symtab" && s.type === "FUNC" && s.ndx > 0)
    .map((s) => s.name);
  return [...new Set(names)];
}

function sledShape(flags: readonly string[]): { n: number; m: number } | undefined {
  for (const f of flags) {
    const m = /^-fpatchable-function-entry=(\d+)(?:,(\d+))?$/.exec(f);
    if (m) return { n: Number(m[1]), m: Number(m[2] ?? 0) };
  }
  return undefined;
}

describe.each(CELLS)("graft check on sites.c: $name", (cell) => {
  let s: Subject;
  let fixture: string[];
  beforeAll(() => {
    s = analyse(build(cell, cell.output));
    fixture = fixtureFunctions(cell);
  });

  it("agrees with readelf and objdump on functions, sleds, fentry calls, NOPs, padding and loop heads", () => {
    expectAgreesWithBinutils(s);
  });

  it("reports every function the fixture defines", () => {
    for (const name of fixture) expect(byName(s, name), name).toBeDefined();
  });

  const shape = sledShape(cell.set.flags);
  if (shape !== undefined) {
    it(`finds the ${shape.n},${shape.m} sled of every fixture function and judges it by its room`, () => {
      for (const name of fixture) {
        const f = byName(s, name)!;
        const sled = site(f, "sled");
        const pad = site(f, "hotpatch")!.detail.padding;
        const before = sled?.detail.before ?? 0;
        const after = sled?.detail.after ?? 0;
        // Room for a redirect: a 5-byte jump at the entry, or a 2-byte one there and a 5-byte one in
        // the sled's pre-entry NOPs or, failing those, in the free padding before the entry.
        const room = after >= 5 || (after >= 2 && (before >= 5 || pad >= 5));
        expect({
          name,
          before,
          afterAtLeast: after >= shape.n - shape.m,
          usable: sled?.problems.length === 0,
        }).toEqual({
          name,
          before: shape.m,
          afterAtLeast: true,
          usable: room,
        });
        if (room) expect(f.verdict.best, name).toBe("sled");
        else expect(sled!.problems.join("; "), name).toMatch(/sled too small/);
      }
    });
  }
  if (shape !== undefined && shape.n - shape.m >= 2 && (shape.m >= 5 || shape.n - shape.m >= 5)) {
    it(`judges every fixture function redirectable through its sled (${shape.m} NOP bytes before the entry, ${shape.n - shape.m} after)`, () => {
      expect(fixture.filter((name) => byName(s, name)!.verdict.best !== "sled")).toEqual([]);
    });
  } else if (shape === undefined) {
    it("reports no sled anywhere (nothing records one)", () => {
      expect(s.report.functions.filter((f) => site(f, "sled") !== undefined).map((f) => f.name)).toEqual([]);
    });
  }

  if (cell.set.flags.includes("-mfentry")) {
    it("judges every fixture function redirectable through its fentry site", () => {
      const nop = cell.set.flags.includes("-mnop-mcount");
      for (const name of fixture) {
        const f = byName(s, name)!;
        const fe = site(f, "fentry");
        expect({
          name,
          best: f.verdict.best,
          state: fe?.detail.state,
          recorded: fe?.detail.recorded,
        }).toEqual({
          name,
          best: "fentry",
          state: nop ? "nop" : "call",
          recorded: cell.set.flags.includes("-mrecord-mcount"),
        });
      }
    });
  } else {
    it("reports no fentry site", () => {
      expect(s.report.functions.filter((f) => site(f, "fentry") !== undefined).map((f) => f.name)).toEqual(
        [],
      );
    });
  }

  if (shape === undefined && !cell.set.flags.includes("-mfentry")) {
    if (cell.opt === "-O2") {
      it("refuses hotpatch and overwrite for wait_flag, whose entry is its loop head", () => {
        const f = byName(s, "wait_flag")!;
        expect(f.verdict.redirectable).toBe(false);
        for (const kind of ["hotpatch", "overwrite"] as const) {
          expect(site(f, kind)!.problems.join("; "), kind).toMatch(/loop head|branch target/);
        }
      });

      it("refuses hotpatch for empty_fn, naming its 1-byte `ret`", () => {
        const f = byName(s, "empty_fn")!;
        expect(f.verdict.best).not.toBe("hotpatch");
        expect(site(f, "hotpatch")!.problems.join("; ")).toMatch(/`ret` is 1 byte/);
      });

      it("marks bump_counter's overwritten instructions as not relocatable (RIP-relative)", () => {
        const ow = site(byName(s, "bump_counter")!, "overwrite")!;
        expect(ow.detail.instructions[0]).toMatch(/\(%rip\)/);
        expect(ow.detail.relocatable).toBe(false);
      });
    }
  }

  // clang gives every function its own table section linked to the function's section; gcc 12 emits
  // one table for the whole file, even with -ffunction-sections (linked to the first function's section).
  if (cell.output === "object" && shape !== undefined && cell.compiler === "clang") {
    it("reads one SHF_LINK_ORDER __patchable_function_entries section per function", () => {
      const tables = s.oracle.sections.filter((x) => x.name === "__patchable_function_entries");
      expect(tables.length).toBe(fixture.length);
      for (const t of tables) expect(t.flags).toContain("L");
      expect(s.report.summary.sitesFound.sled).toBe(fixture.length);
    });
  }
});

describe("flag combinations a compiler refuses", () => {
  it("clang rejects -mnop-mcount and -mrecord-mcount on x86-64, so that cell is gcc-only", () => {
    let stderr = "";
    try {
      execFileSync(
        "clang",
        ["-pg", "-mfentry", "-mnop-mcount", "-mrecord-mcount", "-x", "c", "-c", "-o", "/dev/null", "-"],
        {
          input: "int f(void) { return 0; }\n",
          stdio: ["pipe", "ignore", "pipe"],
        },
      );
    } catch (e) {
      stderr = String((e as { stderr?: Buffer }).stderr ?? "");
    }
    expect(stderr).toMatch(/unsupported option '-mnop-mcount'/);
  });

  it("gcc rejects -mnop-mcount in position-independent code, so that cell is non-PIE only", () => {
    let stderr = "";
    try {
      execFileSync(
        "gcc",
        ["-fPIE", "-pg", "-mfentry", "-mnop-mcount", "-x", "c", "-c", "-o", "/dev/null", "-"],
        {
          input: "int f(void) { return 0; }\n",
          stdio: ["pipe", "ignore", "pipe"],
        },
      );
    } catch (e) {
      stderr = String((e as { stderr?: Buffer }).stderr ?? "");
    }
    expect(stderr).toMatch(/mnop-mcount/);
  });
});
