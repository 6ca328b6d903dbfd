/**
 * The CLI on AArch64 files: `graft check` reads them (JSON and text), and the live-patching commands
 * refuse them up front with ARCH_UNSUPPORTED (one error line, no stack trace) instead of going on
 * with x86-64 assumptions.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { buildFixture, hasCommand, repoRoot } from "../support/fixtures.js";

const main = join(repoRoot, "dist/cli/main.js");
const tmp = mkdtempSync(join(tmpdir(), "graft-a64-cli-"));

function graft(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [main, ...args], {
    encoding: "utf8",
    env: { ...process.env, GRAFT_DEBUG: "" },
    timeout: 60_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe.runIf(hasCommand("aarch64-linux-gnu-gcc"))("graft on AArch64 files", () => {
  let pie: string;
  beforeAll(() => {
    execFileSync("npm", ["run", "build"], { cwd: repoRoot, stdio: "pipe" });
    pie = buildFixture({
      compiler: "gcc",
      target: "aarch64",
      sources: ["sites.c"],
      flags: ["-O2", "-mbranch-protection=standard", "-fpatchable-function-entry=5,4"],
      output: "pie",
    });
  });
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  test("check --json reports an aarch64 file with sled verdicts that say how to redirect", () => {
    const r = graft("check", pie, "-f", "leaf_add", "--json");
    expect(r.status).toBe(0);
    const json = JSON.parse(r.stdout) as {
      machine: string;
      functions: { name: string; verdict: { best: string; redirect: string[] } }[];
    };
    expect(json.machine).toBe("aarch64");
    expect(json.functions.map((f) => [f.name, f.verdict.best])).toEqual([["leaf_add", "sled"]]);
    expect(json.functions[0]!.verdict.redirect.join("\n")).toMatch(
      /`b` to the replacement[\s\S]*ldr x16, #8; br x16/,
    );
  });

  test("check prints one line per function and the summary", () => {
    const r = graft("check", pie);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/leaf_add +sled 16\+4/);
    expect(r.stdout).toMatch(/, aarch64, build-id [0-9a-f]+/);
  });

  test("check --explain prints under each function how it is redirected and why other kinds fail", () => {
    const r = graft("check", pie, "-f", "leaf_add", "--explain");
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(
      /\n +how: the sled's first NOP bytes at 0x[0-9a-f]+ become `b` to the replacement \(reach ±128 MiB\)\n/,
    );
    expect(r.stdout).toMatch(/\n +how: the landing pad at the entry .* stays/);
    expect(r.stdout).toMatch(/\n +not: fentry: /);
  });

  test("build refuses an aarch64 target with ARCH_UNSUPPORTED, one error line", () => {
    const fix = join(tmp, "fix.c");
    writeFileSync(fix, "int leaf_add(int a, int b) { return a + b; }\n");
    const r = graft("build", fix, "--target", pie, "-o", join(tmp, "p.graft"));
    expect(r.status).not.toBe(0);
    const lines = r.stderr.split("\n").filter((l) => l !== "");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^graft: error: .*live patching aarch64 is not supported yet/);
    const j = graft("build", fix, "--target", pie, "-o", join(tmp, "p.graft"), "--json");
    expect(JSON.parse(j.stdout)).toMatchObject({ error: { code: "ARCH_UNSUPPORTED" } });
  });

  test("calls (call sites judged for live rewriting) refuses an aarch64 file the same way, naming it", () => {
    const r = graft("calls", pie, "--json");
    expect(r.status).not.toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ error: { code: "ARCH_UNSUPPORTED" } });
    expect(graft("calls", pie).stderr).toContain(pie);
  });
});
