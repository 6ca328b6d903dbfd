/**
 * The `graft check` and `graft cflags` commands as a user runs them (the built CLI, dist/cli/main.js):
 * the text and JSON renderings of check, and cflags judged by what it promises — its `--only` flags,
 * given to the real compiler with sites.c, must compile and make `graft check` report the promised
 * kind of site for the fixture's functions.
 */
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { readSymbols } from "../analysis/oracles.js";
import { buildRustFixture, hasRustc, RUST_CRATE } from "../analysis/rust-fixture.js";
import { buildFixture, type Compiler, repoRoot } from "../support/fixtures.js";

const cli = join(repoRoot, "dist/cli/main.js");

function newestMtime(dir: string): number {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    newest = Math.max(newest, e.isDirectory() ? newestMtime(p) : statSync(p).mtimeMs);
  }
  return newest;
}

/** Build dist/ when it is missing or older than src/ (`npm test` builds first; a lone vitest run may not). */
function ensureBuilt(): void {
  if (existsSync(cli) && statSync(cli).mtimeMs >= newestMtime(join(repoRoot, "src"))) return;
  execFileSync("npx", ["tsc", "-p", "tsconfig.build.json"], { cwd: repoRoot, stdio: "ignore" });
}

function graft(...args: string[]): string {
  return execFileSync("node", [cli, ...args], { encoding: "utf8", maxBuffer: 1 << 28 });
}

interface JsonFunction {
  name: string;
  aliases: string[];
  address: string;
  size: string;
  sites: { kind: string; address: string; problems: string[]; writes: { address: string; room: number }[] }[];
  verdict: { redirectable: boolean; best?: string; reasons: string[] };
}
interface JsonReport {
  functions: JsonFunction[];
  summary: {
    functions: number;
    redirectable: number;
    percentRedirectable: number;
    bestKind: Record<string, number>;
    sitesFound: Record<string, number>;
    roomBytes: number;
  };
}

function checkJson(file: string, ...args: string[]): JsonReport {
  return JSON.parse(graft("check", file, "--json", ...args)) as JsonReport;
}

/** FUNC symbols sites.c defines under these flags (readelf on its own `.o`). */
function fixtureFunctions(compiler: Compiler, flags: readonly string[]): string[] {
  const o = buildFixture({ compiler, sources: ["sites.c"], flags, output: "object" });
  return [
    ...new Set(
      readSymbols(o)
        .filter((s) => s.table === ".symtab" && s.type === "FUNC" && s.ndx > 0)
        .map((s) => s.name),
    ),
  ];
}

beforeAll(() => {
  ensureBuilt();
}, 120_000);

describe("graft check output", () => {
  const file = buildFixture({
    compiler: "gcc",
    sources: ["sites.c"],
    flags: ["-O2", "-fpatchable-function-entry=16,14"],
    output: "exe",
  });
  let text: string;
  let json: JsonReport;
  beforeAll(() => {
    text = graft("check", file);
    json = checkJson(file);
  });

  it("prints a header, then one line per function with its address, verdict, size and name", () => {
    const lines = text.split("\n");
    expect(lines[0]).toMatch(/^\s*ADDRESS\s+VERDICT\s+SIZE\s+FUNCTION\s+SITE \/ WHY NOT$/);
    const rows = lines.slice(1, lines.indexOf(""));
    expect(rows).toHaveLength(json.functions.length);
    rows.forEach((row, i) => {
      const f = json.functions[i]!;
      const m = /^\s*(0x[0-9a-f]+)\s+(\S+)\s+(\d+)\s+(\S+)\s/.exec(row);
      expect(m, row).not.toBeNull();
      expect({ address: m![1], verdict: m![2], size: BigInt(m![3]!), name: m![4] }).toEqual({
        address: f.address,
        verdict: f.verdict.best ?? "NO",
        size: BigInt(f.size),
        name: f.name,
      });
    });
  });

  it("ends with a summary: functions, % redirectable, count per best kind, sites found and patching room", () => {
    const s = json.summary;
    const verdicts = json.functions.map((f) => f.verdict.best ?? "none");
    const count = (k: string): number => verdicts.filter((v) => v === k).length;
    const redirectable = verdicts.filter((v) => v !== "none").length;
    expect(s.functions).toBe(json.functions.length);
    expect(s.redirectable).toBe(redirectable);
    expect(s.percentRedirectable).toBe(Math.round((1000 * redirectable) / s.functions) / 10);
    expect(text).toContain(
      `\nfunctions: ${s.functions}, redirectable: ${redirectable} (${s.percentRedirectable}%)\n`,
    );
    expect(text).toContain(
      `\nbest kind: sled ${count("sled")}, fentry ${count("fentry")}, hotpatch ${count("hotpatch")}, overwrite ${count("overwrite")}, none ${count("none")}\n`,
    );
    const room = json.functions
      .flatMap((f) => f.sites.filter((x) => x.problems.length === 0 && x.kind !== "overwrite"))
      .flatMap((x) => x.writes)
      .reduce((n, w) => n + w.room, 0);
    expect(s.roomBytes).toBe(room);
    expect(text).toMatch(
      new RegExp(
        `\\nsites found: sled ${s.sitesFound.sled}, fentry ${s.sitesFound.fentry}; usdt probes: 0; patching room: ${room} bytes\\n`,
      ),
    );
    expect(text).toMatch(
      new RegExp(
        `^${file.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")}: executable, x86-64, build-id [0-9a-f]+$`,
        "m",
      ),
    );
  });

  it("--summary prints the summary alone", () => {
    const summary = graft("check", file, "--summary");
    expect(summary).not.toMatch(/ADDRESS/);
    expect(text.endsWith(summary)).toBe(true);
    expect(summary.split("\n").filter(Boolean)).toHaveLength(4);
  });

  it("--json parses, with every address and size a 0x… string (JSON has no 64-bit integers)", () => {
    const symbols = readSymbols(file).filter(
      (s) => s.table === ".symtab" && (s.type === "FUNC" || s.type === "IFUNC") && s.ndx > 0,
    );
    expect(new Set(json.functions.map((f) => f.address))).toEqual(
      new Set(symbols.map((s) => `0x${s.value.toString(16)}`)),
    );
    const hex = /^0x[0-9a-f]+$/;
    for (const f of json.functions) {
      expect(f.address).toMatch(hex);
      expect(f.size).toMatch(hex);
      for (const site of f.sites) {
        expect(site.address).toMatch(hex);
        for (const w of site.writes) expect(w.address).toMatch(hex);
      }
    }
  });

  it("--function 'leaf*' keeps only the matching functions, in text and JSON", () => {
    const filtered = checkJson(file, "--function", "leaf*");
    expect(filtered.functions.map((f) => f.name)).toEqual(["leaf_add"]);
    expect(filtered.summary.functions).toBe(1);
    const rows = graft("check", file, "--function", "leaf*")
      .split("\n")
      .filter((l) => /^\s*0x/.test(l));
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatch(/\sleaf_add\s/);
    expect(checkJson(file, "-f", "no_such_*").functions).toEqual([]);
  });
});

const COMPILERS = ["gcc", "clang", "rustc"] as const;
const KINDS = ["sled", "fentry", "hotpatch"] as const;

describe.each(COMPILERS.flatMap((compiler) => KINDS.map((kind) => ({ compiler, kind }))))(
  "graft cflags --compiler $compiler --kind $kind",
  ({ compiler, kind }) => {
    it("prints one flag group per line with a `#` reason, then notes", () => {
      const out = graft("cflags", "--compiler", compiler, "--kind", kind).trimEnd().split("\n");
      expect(out[0]).toBe(`# ${compiler}, ${kind} sites`);
      const flagLines = out.slice(1).filter((l) => !l.startsWith("# note: "));
      expect(flagLines.length).toBeGreaterThanOrEqual(3);
      for (const l of flagLines) expect(l).toMatch(/^-\S*(?: -?\S+)*\s+# \S.*$/);
      // Notes come last.
      expect(out.slice(1 + flagLines.length).every((l) => l.startsWith("# note: "))).toBe(true);
    });

    it("--only prints the same flags on one line, and --json carries them with their reasons", () => {
      const only = graft("cflags", "--compiler", compiler, "--kind", kind, "--only");
      expect(only.endsWith("\n")).toBe(true);
      expect(only.trimEnd()).not.toContain("\n");
      expect(only).not.toContain("#");
      const advice = JSON.parse(graft("cflags", "--compiler", compiler, "--kind", kind, "--json")) as {
        flags: { flags: string[]; why: string }[];
      };
      expect(only.trimEnd()).toBe(advice.flags.flatMap((f) => f.flags).join(" "));
      for (const f of advice.flags) expect(f.why.length).toBeGreaterThan(10);
    });
  },
);

/**
 * The kind a build with the advice gets: the sled when the advice reserves one (gcc and rustc have
 * no hotpatch prologue, rustc no entry fentry call — the advice says so), else the kind asked for.
 */
function promisedKind(only: string, kind: string): string {
  return /patchable-function-entry=/.test(only) ? "sled" : kind;
}

describe.each((["gcc", "clang"] as const).flatMap((compiler) => KINDS.map((kind) => ({ compiler, kind }))))(
  "a build of sites.c with $compiler and `graft cflags --compiler $compiler --kind $kind --only`",
  ({ compiler, kind }) => {
    let only: string[];
    let report: JsonReport;
    let fixture: string[];
    beforeAll(() => {
      only = graft("cflags", "--compiler", compiler, "--kind", kind, "--only").trim().split(/\s+/);
      // pie: what gcc and clang build by default on distributions, and where gcc refuses -mnop-mcount.
      const file = buildFixture({ compiler, sources: ["sites.c"], flags: ["-O2", ...only], output: "pie" });
      report = checkJson(file);
      fixture = fixtureFunctions(compiler, ["-O2", ...only]);
    });

    it("compiles, and graft check reports the promised kind as best for every fixture function", () => {
      const promised = promisedKind(only.join(" "), kind);
      expect(fixture.length).toBeGreaterThanOrEqual(8);
      const verdicts = fixture.map((name) => {
        const f = report.functions.find((x) => x.name === name || x.aliases.includes(name))!;
        return { name, best: f.verdict.best, reasons: f.verdict.reasons };
      });
      if (promised === "hotpatch") {
        // The advice's own caveat: padding is not guaranteed before every function, and graft check
        // names the ones that lack it. Every other function is hotpatchable.
        for (const v of verdicts) {
          if (v.best === "hotpatch") continue;
          expect(
            v.reasons.filter((r) => r.startsWith("hotpatch:")),
            v.name,
          ).toEqual([
            expect.stringMatching(/^hotpatch: \d byte\(s\) of free padding before the entry \(need 5\)$/),
          ]);
        }
        expect(verdicts.filter((v) => v.best === "hotpatch").length).toBeGreaterThan(fixture.length / 2);
      } else {
        expect(
          verdicts.filter((v) => v.best !== promised).map((v) => ({ name: v.name, best: v.best })),
        ).toEqual([]);
      }
    });
  },
);

describe.skipIf(!hasRustc())(
  "a build of rust-sites.rs with `graft cflags --compiler rustc --only` (RUSTC_BOOTSTRAP=1 for -Z)",
  () => {
    it.each(KINDS)(
      "--kind %s compiles and graft check reports its promised kind for the crate's functions",
      (kind) => {
        const only = graft("cflags", "--compiler", "rustc", "--kind", kind, "--only").trim().split(/\s+/);
        const file = buildRustFixture(["-O", ...only], true);
        expect(file, `rustc ${only.join(" ")}`).toBeDefined();
        const crate = checkJson(file!).functions.filter((f) =>
          f.name.includes(`${RUST_CRATE.length}${RUST_CRATE}`),
        );
        expect(crate.length).toBeGreaterThanOrEqual(4);
        const promised = promisedKind(only.join(" "), kind);
        expect(
          crate
            .filter((f) => f.verdict.best !== promised)
            .map((f) => ({ name: f.name, best: f.verdict.best })),
        ).toEqual([]);
      },
    );
  },
);
