/**
 * `graft impact` as a user runs it (the built CLI): one function's set with reasons, the whole map,
 * JSON that matches the library's report, and one-line errors with their exit codes.
 */
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, test } from "vitest";
import { ImpactGraph } from "../../src/analysis/impact.js";
import { readDwarf } from "../../src/formats/dwarf/dwarf.js";
import { parseElf } from "../../src/formats/elf/elf.js";
import { buildFixture, repoRoot } from "../support/fixtures.js";

const main = join(repoRoot, "dist/cli/main.js");

function graft(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [main, ...args], {
    encoding: "utf8",
    env: { ...process.env, GRAFT_DEBUG: "" },
    timeout: 60_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe("graft impact", () => {
  const file = buildFixture({
    compiler: "gcc",
    sources: ["impact.c"],
    flags: ["-g", "-O2", "-fexceptions"],
    output: "pie",
  });

  test("prints each function to patch with why, the total, and why the set may be incomplete", () => {
    const r = graft("impact", file, "lookup");
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/lookup\.part\.0 +clone of lookup \(part\)/);
    for (const f of ["find1", "find2", "find3", "find4"])
      expect(r.stdout).toMatch(new RegExp(`${f} +inlines lookup`));
    expect(r.stdout).toMatch(/lookup \(.*impact\.c\): 5 function\(s\) to patch/);
    expect(r.stdout).toMatch(/warning: may be incomplete: .*-flive-patching=inline-clone/);
  });

  test("--json is the library's report", () => {
    const r = graft("impact", file, "helper", "--json");
    expect(r.status).toBe(0);
    const json = JSON.parse(r.stdout);
    const elf = parseElf(new Uint8Array(readFileSync(file)), { file });
    const report = new ImpactGraph(elf, readDwarf(elf)).impactOf("helper");
    expect(json.functions.map((f: { name: string }) => f.name)).toEqual(report.functions.map((f) => f.name));
    expect(json.functions.map((f: { name: string }) => f.name)).toEqual(["top1", "top2"]);
    expect(json.totalSize).toBe(`0x${report.totalSize.toString(16)}`);
    expect(json.complete).toBe(false);
  });

  test("--all lists the functions whose change reaches others, and a summary", () => {
    const r = graft("impact", file, "--all");
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(
      /^lookup: 5 function\(s\), \d+ bytes: lookup\.part\.0, find1, find2, find3, find4$/m,
    );
    expect(r.stdout).toMatch(/function\(s\) with code, \d+ reach other functions/);
    const json = JSON.parse(graft("impact", file, "--all", "--json").stdout);
    expect(json.summary.withImpact).toBeGreaterThanOrEqual(6);
  });

  test("an unknown function is one line on stderr and exit code 3", () => {
    const r = graft("impact", file, "no_such_function");
    expect(r.status).toBe(3);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toMatch(/^graft: error: .*no function named no_such_function.*\(hint: /);
    expect(JSON.parse(graft("impact", file, "no_such_function", "--json").stdout).error.code).toBe(
      "UNKNOWN_SYMBOL",
    );
  });

  test("neither FUNC nor --all is a usage error; --help shows examples", () => {
    expect(graft("impact", file).status).toBe(2);
    const help = graft("impact", "--help");
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/Examples:\n {2}graft impact /);
  });
});

describe("graft impact on a stripped library", () => {
  const libc = "/lib/x86_64-linux-gnu/libc.so.6";
  const id = existsSync(libc) ? parseElf(new Uint8Array(readFileSync(libc))).buildId() : undefined;
  const debug =
    id === undefined ? undefined : `/usr/lib/debug/.build-id/${id.slice(0, 2)}/${id.slice(2)}.debug`;

  test.skipIf(debug === undefined || !existsSync(debug))(
    "reads the DWARF and symbols of its separate debug file (libc6-dbg), found by build-id",
    () => {
      const stripped = graft("impact", libc, "unlink_chunk");
      expect(stripped.status).toBe(0);
      expect(stripped.stderr).toContain(`graft: DWARF from ${debug}`);
      expect(stripped.stdout).toMatch(/unlink_chunk\.constprop\.0 +clone of unlink_chunk \(constprop\)/);
      const direct = JSON.parse(graft("impact", debug!, "unlink_chunk", "--json").stdout);
      const viaLink = JSON.parse(graft("impact", libc, "unlink_chunk", "--json").stdout);
      expect(viaLink.functions).toEqual(direct.functions);
    },
  );
});
