/**
 * `graft impact` against the compiler's own record of what it copied where.
 *
 * gcc: `-fdump-ipa-clones` of the same compile lists every inline copy (`inlining to`) and clone
 * (`constprop`, `isra`, `part`) the IPA passes made; the impacted set of f is f plus everything
 * reachable from f over those events (a function inlined into an inlined function…), restricted to
 * the functions that have code in the binary. graft must list exactly those, found from DWARF and
 * symbol names only. Where the two cannot agree, and what the test does about it:
 *   - `.cold` parts come from the RTL hot/cold split, after IPA: the dump never lists them (graft
 *     does, as `cold` of their function; they are checked apart and left out of the comparison);
 *   - aliases are not callgraph transformations: compared by address, so `alias_name` counts as
 *     `alias_target`;
 *   - an inlined copy that optimises away to nothing leaves no DW_TAG_inlined_subroutine with code:
 *     the dump would list it and graft could not (it changes no code, so nothing needs patching);
 *     the fixture has none.
 * clang has no such dump: the oracle is llvm-dwarfdump's DIE tree (concrete subprograms and the
 * abstract origins of the inlined subroutines inside them, names resolved by LLVM), closed the
 * same way, plus clones by symbol name.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, test } from "vitest";
import { parseCloneName } from "../../src/analysis/clone-name.js";
import { listFunctions } from "../../src/analysis/functions.js";
import { ImpactGraph } from "../../src/analysis/impact.js";
import { GraftError } from "../../src/core/errors.js";
import { readDwarf } from "../../src/formats/dwarf/dwarf.js";
import { type Elf, parseElf } from "../../src/formats/elf/elf.js";
import { buildFixture, compilerCommand, type FixtureSpec, fixturesDir, run } from "../support/fixtures.js";

const tmp = mkdtempSync(join(tmpdir(), "graft-impact-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** `Callgraph clone` events of `-fdump-ipa-clones` for the same sources and flags (one dump per unit): from → to. */
function ipaClones(
  sources: readonly string[],
  flags: readonly string[],
  pic: boolean,
  target?: "aarch64",
): [string, string][] {
  const [gcc, ...lead] = compilerCommand("gcc", target);
  return sources.flatMap((source) => {
    const dir = mkdtempSync(join(tmp, "dump-"));
    execFileSync(
      gcc!,
      [
        ...lead,
        ...(pic ? ["-fPIE"] : ["-fno-pie"]),
        ...flags,
        "-fdump-ipa-clones",
        "-c",
        "-o",
        "unit.o",
        join(fixturesDir, source),
      ],
      { cwd: dir, stdio: ["ignore", "ignore", "pipe"] },
    );
    const dump = readdirSync(dir).find((f) => f.endsWith(".ipa-clones"));
    if (dump === undefined) throw new Error(`gcc wrote no .ipa-clones dump for ${source}`);
    return readFileSync(join(dir, dump), "utf8")
      .split("\n")
      .filter((l) => l.startsWith("Callgraph clone;"))
      .map((l): [string, string] => {
        const f = l.split(";");
        return [f[1]!, f[6]!];
      });
  });
}

/** Everything reachable from `start` over `edges`, `start` included. */
function reach(start: string, edges: readonly [string, string][]): Set<string> {
  const seen = new Set([start]);
  const queue = [start];
  for (let n = queue.shift(); n !== undefined; n = queue.shift())
    for (const [from, to] of edges)
      if (from === n && !seen.has(to)) {
        seen.add(to);
        queue.push(to);
      }
  return seen;
}

/** Names → addresses of the functions with code (aliases at one address compare equal). */
function addresses(elf: Elf): Map<string, bigint> {
  return new Map(
    listFunctions(elf).flatMap((f) => [f.name, ...f.aliases].map((n) => [n, f.address] as const)),
  );
}

/** graft's set for `name`, cold parts apart, as sorted addresses; and the cold parts by name. */
function graftSet(graph: ImpactGraph, name: string): { addresses: string[]; cold: string[] } {
  const r = graph.impactOf(name);
  const isCold = (n: string) => parseCloneName(n).kinds.at(-1) === "cold";
  return {
    addresses: [
      ...new Set(r.functions.filter((f) => !isCold(f.name)).map((f) => f.address.toString(16))),
    ].sort(),
    cold: r.functions.filter((f) => isCold(f.name)).map((f) => f.name),
  };
}

const GCC_CELLS: [string, FixtureSpec][] = [
  [
    "-O0 PIE",
    { compiler: "gcc", sources: ["impact.c"], flags: ["-g", "-O0", "-fexceptions"], output: "pie" },
  ],
  [
    "-O2 PIE",
    { compiler: "gcc", sources: ["impact.c"], flags: ["-g", "-O2", "-fexceptions"], output: "pie" },
  ],
  [
    "-O2 object",
    { compiler: "gcc", sources: ["impact.c"], flags: ["-g", "-O2", "-fexceptions"], output: "object" },
  ],
  [
    "-O3 non-PIE",
    { compiler: "gcc", sources: ["impact.c"], flags: ["-g", "-O3", "-fexceptions"], output: "exe" },
  ],
  [
    "-O2 PIE, AArch64",
    {
      compiler: "gcc",
      target: "aarch64",
      sources: ["impact.c"],
      flags: ["-g", "-O2", "-fexceptions"],
      output: "pie",
    },
  ],
  [
    "-O2 object, AArch64",
    {
      compiler: "gcc",
      target: "aarch64",
      sources: ["impact.c"],
      flags: ["-g", "-O2", "-fexceptions"],
      output: "object",
    },
  ],
  [
    "-O2 -gdwarf-4 PIE",
    { compiler: "gcc", sources: ["impact.c"], flags: ["-gdwarf-4", "-O2", "-fexceptions"], output: "pie" },
  ],
  [
    "-O2 -flive-patching=inline-clone PIE",
    {
      compiler: "gcc",
      sources: ["impact.c"],
      flags: ["-g", "-O2", "-fexceptions", "-flive-patching=inline-clone"],
      output: "pie",
    },
  ],
  [
    "-O2 -flive-patching=inline-only-static PIE",
    {
      compiler: "gcc",
      sources: ["impact.c"],
      flags: ["-g", "-O2", "-fexceptions", "-flive-patching=inline-only-static"],
      output: "pie",
    },
  ],
  [
    "-O2 two units sharing a header's static inline",
    { compiler: "gcc", sources: ["impact-a.c", "impact-b.c"], flags: ["-g", "-O2"], output: "pie" },
  ],
];

describe.each(GCC_CELLS)("gcc %s", (label, spec) => {
  const file = buildFixture(spec);
  const elf = parseElf(new Uint8Array(readFileSync(file)), { file });
  const graph = new ImpactGraph(elf, readDwarf(elf));
  const edges = ipaClones(spec.sources, spec.flags!, spec.output !== "exe", spec.target);
  const code = addresses(elf);

  test("agrees with -fdump-ipa-clones on every function's impacted set", () => {
    const names = new Set([
      ...edges.map(([from]) => from),
      ...[...code.keys()].map((n) => parseCloneName(n).base),
    ]);
    const disagreements: string[] = [];
    let nonTrivial = 0;
    for (const name of names) {
      // An alias is the same function under another name: reach from every name at its address.
      const same = code.has(name) ? [...code.keys()].filter((n) => code.get(n) === code.get(name)) : [name];
      const reached = same.flatMap((n) => [...reach(n, edges)]);
      const expected = [
        ...new Set(reached.flatMap((n) => (code.has(n) ? [code.get(n)!.toString(16)] : []))),
      ].sort();
      if (expected.length === 0) continue; // inlined everywhere and into nothing with code
      if (expected.length > 1) nonTrivial++;
      const got = graftSet(graph, name).addresses;
      if (JSON.stringify(got) !== JSON.stringify(expected))
        disagreements.push(`${name}: graft [${got.join(" ")}], ipa-clones [${expected.join(" ")}]`);
    }
    expect(disagreements).toEqual([]);
    // -O0 inlines nothing (no always_inline here): every set is the function alone.
    expect(nonTrivial).toBeGreaterThanOrEqual(
      label.includes("-O0") ? 0 : label.includes("inline-only-static") || label.includes("two units") ? 2 : 5,
    );
  });

  test.skipIf(label.includes("-O0") || label.includes("two units"))(
    "lists the cold part with its function, and the inlined cleanup's callers",
    () => {
      // gcc 12 splits guarded's unwinding path into guarded.cold on x86-64, not on AArch64.
      const cold = code.has("guarded.cold") ? ["guarded.cold"] : [];
      if (spec.target === undefined) expect(cold).toEqual(["guarded.cold"]);
      expect(graftSet(graph, "guarded").cold).toEqual(cold);
      expect(graftSet(graph, "unlock").cold).toEqual(cold);
    },
  );

  test("says whether the build lets IPA leave traceless dependencies", () => {
    const { warnings, complete } = graph.impactOf(label.includes("two units") ? "clamp" : "square");
    if (label.includes("live-patching") || label.includes("-O0")) {
      expect(warnings).toEqual([]);
      expect(complete).toBe(true);
    } else {
      expect(warnings.join("\n")).toMatch(/without -flive-patching=inline-clone/);
      expect(complete).toBe(false);
    }
  });
});

/** Concrete subprograms (DIE → function name and entry address) and inlined copies (origin name → holder DIE), from llvm-dwarfdump. */
function dwarfdumpInlining(file: string): {
  concrete: Map<string, { name: string; entry: string }>;
  edges: [string, string][];
} {
  const text = run("llvm-dwarfdump", ["--debug-info", file]);
  const concrete = new Map<string, { name: string; entry: string }>();
  const edges: [string, string][] = [];
  let current: { offset: string; name?: string; entry?: string } | undefined;
  let inSub: { depth: number; offset: string } | undefined;
  let pendingInlined = false;
  for (const line of text.split("\n")) {
    const d = /^0x([0-9a-f]+):(\s+)(DW_TAG_\w+|NULL)/.exec(line);
    if (d !== null) {
      const depth = d[2]!.length;
      pendingInlined = false;
      if (inSub !== undefined && depth <= inSub.depth) inSub = undefined;
      if (d[3] === "DW_TAG_subprogram") {
        current = { offset: d[1]! };
        inSub = { depth, offset: d[1]! };
      } else if (d[3] === "DW_TAG_inlined_subroutine" && inSub !== undefined) pendingInlined = true;
      continue;
    }
    const origin = /DW_AT_abstract_origin\s+\(0x[0-9a-f]+ "([^"]+)"\)/.exec(line);
    const name = /DW_AT_name\s+\("([^"]+)"\)/.exec(line);
    if (pendingInlined && origin !== null && inSub !== undefined) {
      edges.push([origin[1]!, inSub.offset]);
      pendingInlined = false;
    } else if (current !== undefined && inSub?.offset === current.offset && !pendingInlined) {
      if (origin !== null || name !== null) current.name ??= (origin ?? name)![1]!;
      const entry = /DW_AT_low_pc\s+\(0x([0-9a-f]+)\)/.exec(line) ?? /^\s+\[0x([0-9a-f]+), /.exec(line);
      if (entry !== null) current.entry ??= BigInt(`0x${entry[1]}`).toString(16);
      if (current.entry !== undefined && current.name !== undefined)
        concrete.set(current.offset, { name: current.name, entry: current.entry });
    }
  }
  return { concrete, edges };
}

const CLANG_CELLS: [string, FixtureSpec][] = [
  [
    "-O2 PIE",
    { compiler: "clang", sources: ["impact.c"], flags: ["-g", "-O2", "-fexceptions"], output: "pie" },
  ],
  [
    "ThinLTO PIE",
    {
      compiler: "clang",
      sources: ["lto-a.c", "lto-b.c", "lto-main.c"],
      flags: ["-g", "-O2", "-flto=thin", "-fuse-ld=lld"],
      output: "pie",
    },
  ],
];

describe.each(CLANG_CELLS)("clang %s", (label, spec) => {
  const file = buildFixture(spec);
  const elf = parseElf(new Uint8Array(readFileSync(file)), { file });
  const graph = new ImpactGraph(elf, readDwarf(elf));

  test("agrees with the inlining llvm-dwarfdump shows, closed transitively", () => {
    const { concrete, edges } = dwarfdumpInlining(file);
    // A concrete subprogram is its function's code; an inlined copy inside it makes it impacted.
    const impacted = (name: string): Set<string> => {
      const out = new Set<string>();
      const seen = new Set([name]);
      const queue = [name];
      for (let n = queue.shift(); n !== undefined; n = queue.shift()) {
        const holders = [
          ...[...concrete.entries()].filter(([, c]) => c.name === n).map(([die]) => die),
          ...edges.filter(([from]) => from === n).map(([, die]) => die),
        ];
        for (const die of holders) {
          const fn = concrete.get(die);
          if (fn === undefined) continue;
          out.add(fn.entry);
          if (!seen.has(fn.name)) {
            seen.add(fn.name);
            queue.push(fn.name);
          }
        }
      }
      return out;
    };
    const disagreements: string[] = [];
    let nonTrivial = 0;
    for (const name of new Set([...[...concrete.values()].map((c) => c.name), ...edges.map(([f]) => f)])) {
      const expected = [...impacted(name)].sort();
      if (expected.length === 0) continue;
      if (expected.length > 1) nonTrivial++;
      const got = graftSet(graph, name).addresses;
      if (JSON.stringify(got) !== JSON.stringify(expected))
        disagreements.push(`${name}: graft [${got.join(" ")}], llvm-dwarfdump [${expected.join(" ")}]`);
    }
    expect(disagreements).toEqual([]);
    expect(nonTrivial).toBeGreaterThanOrEqual(label.includes("LTO") ? 2 : 4);
  });

  test("warns that clang's IPA can change callers without a named clone", () => {
    expect(graph.impactOf(label.includes("LTO") ? "a_scale" : "scale").warnings.join("\n")).toMatch(/clang/);
  });

  if (label.includes("LTO"))
    test("finds a promoted local under its .llvm.<hash> name, one static per file with name@file.c", () => {
      const r = graph.impactOf("scale@lto-a.c");
      expect(r.functions).toHaveLength(1);
      expect(r.functions[0]!.name).toMatch(/^scale\.llvm\.\d+$/);
      expect(r.functions[0]!.reasons).toEqual([{ kind: "self", of: "scale", suffixes: ["llvm"] }]);
      expect(graph.impactOf("scale").functions).toHaveLength(2);
      const origin = graph.findOrigin(r.functions[0]!.name)!;
      expect([origin.name, origin.unit?.replace(/^.*\//, "")]).toEqual(["scale", "lto-a.c"]);
    });
});

describe("without full DWARF", () => {
  test("a build without -g still finds clones by name and says inlined copies are unseen", () => {
    const file = buildFixture({
      compiler: "gcc",
      sources: ["impact.c"],
      flags: ["-O2", "-fexceptions"],
      output: "pie",
    });
    const elf = parseElf(new Uint8Array(readFileSync(file)), { file });
    expect(readDwarf(elf)).toBeUndefined();
    const graph = new ImpactGraph(elf, undefined);
    expect(graph.impactOf("scale").functions.map((f) => f.name)).toEqual(["scale.constprop.0"]);
    expect(
      graph
        .impactOf("guarded")
        .functions.map((f) => f.name)
        .sort(),
    ).toEqual(["guarded", "guarded.cold"]);
    expect(graph.impactOf("scale").warnings.join("\n")).toMatch(/no DWARF/);
    const missing = (() => {
      try {
        graph.impactOf("square");
      } catch (e) {
        return e;
      }
    })();
    expect(missing).toBeInstanceOf(GraftError);
    expect((missing as GraftError).code).toBe("UNKNOWN_SYMBOL");
  });

  test("a split-DWARF build warns that the .dwo files are not read", () => {
    const file = buildFixture({
      compiler: "gcc",
      sources: ["impact.c"],
      flags: ["-gdwarf-5", "-O2", "-gsplit-dwarf"],
      output: "pie",
    });
    const elf = parseElf(new Uint8Array(readFileSync(file)), { file });
    const report = new ImpactGraph(elf, readDwarf(elf)).impactOf("scale");
    expect(report.warnings.join("\n")).toMatch(/split DWARF/);
    expect(report.functions.map((f) => f.name)).toEqual(["scale.constprop.0"]);
  });
});

describe("a header's static inline in two units", () => {
  test("is one name with a copy per unit: its set holds the holders of both copies", () => {
    const file = buildFixture({
      compiler: "gcc",
      sources: ["impact-a.c", "impact-b.c"],
      flags: ["-g", "-O2"],
      output: "pie",
    });
    const elf = parseElf(new Uint8Array(readFileSync(file)), { file });
    const r = new ImpactGraph(elf, readDwarf(elf)).impactOf("clamp");
    expect(r.origins.map((o) => o.unit?.replace(/^.*\//, "")).sort()).toEqual(["impact-a.c", "impact-b.c"]);
    const names = r.functions.map((f) => f.name);
    for (const n of ["a1", "b1", "b2"]) expect(names).toContain(n);
    expect(names.some((n) => n.startsWith("norm."))).toBe(true);
  });
});

describe("several functions at once", () => {
  test("the set of several changed functions is the union of their sets (what graft diff asks)", () => {
    const file = buildFixture({
      compiler: "gcc",
      sources: ["impact.c"],
      flags: ["-g", "-O2", "-fexceptions"],
      output: "pie",
    });
    const elf = parseElf(new Uint8Array(readFileSync(file)), { file });
    const graph = new ImpactGraph(elf, readDwarf(elf));
    const names = (q: string | string[]) => graph.impactOf(q).functions.map((f) => f.name);
    expect(names(["square", "helper"]).sort()).toEqual([...names("square"), ...names("helper")].sort());
    expect(() => graph.impactOf(["square", "no_such"])).toThrow(/no function named no_such/);
  });
});

describe("the whole map", () => {
  test("lists each function's impacted set, the most impacted first, sized", () => {
    const file = buildFixture({
      compiler: "gcc",
      sources: ["impact.c"],
      flags: ["-g", "-O2", "-fexceptions"],
      output: "pie",
    });
    const elf = parseElf(new Uint8Array(readFileSync(file)), { file });
    const graph = new ImpactGraph(elf, readDwarf(elf));
    const map = graph.impactMap();
    const lookup = map.entries.find((e) => e.function === "lookup")!;
    expect(lookup.impacted).toEqual(graph.impactOf("lookup").functions.map((f) => f.name));
    expect(map.entries[0]!.others).toBeGreaterThanOrEqual(lookup.others);
    expect(map.summary.withImpact).toBe(map.entries.filter((e) => e.others > 0).length);
    expect(lookup.size).toBe(graph.impactOf("lookup").totalSize);
  });
});
