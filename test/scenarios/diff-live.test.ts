/**
 * diff → build → apply on a running process, for cases of the diff catalogue: the target runs the
 * original build (orig/prog.o + harness); `graft build --orig --patched` makes the patch; once it is
 * applied the target prints what the patched build prints (the oracle: that build run once), and
 * after `graft revert` what the original prints again, byte for byte the same code.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { producerFlags } from "../../src/live/build-diff-patch-file.js";
import { buildDiffCase, diffCaseFlags, observedValue } from "../support/diff-fixtures.js";
import { type Compiler, fixturesDir, run } from "../support/fixtures.js";
import {
  killTarget,
  lastTick,
  runGraft,
  startTarget,
  textDiff,
  textSnapshot,
  useScenario,
  waitForTick,
} from "../support/live-target.js";

const { dir, started } = useScenario("graft-diff-live-");

const LIVE: readonly [string, Compiler, string[]?][] = [
  ["inlined-static", "gcc"],
  ["inlined-static", "clang"],
  ["constprop-clone", "gcc"],
  ["isra-clone", "gcc"],
  ["cold-part", "gcc"],
  ["new-static-function", "gcc"],
  ["new-static-function", "clang"],
  ["new-global-variable", "gcc"],
  ["changed-string", "gcc"],
  ["changed-string", "clang"],
  ["switch-table", "gcc"],
  ["recursion", "clang"],
  ["variadic", "gcc"],
  ["grows", "gcc"],
  ["const-table", "gcc"],
  ["static-local", "gcc"],
  ["function-pointers", "clang"],
  ["float-constant", "gcc"],
  ["caller-only", "gcc"],
  ["clone-family", "gcc", ["-O3"]],
  // One .text for every function: the whole section is carried, only the changed ones are redirected.
  ["new-static-function", "gcc", ["-O2"]],
  ["changed-string", "clang", ["-O2"]],
  // With -g: the callers holding an inlined copy of helper are replaced too (DWARF impact).
  ["inlined-unchanged-callers", "gcc", ["-O2", "-g", "-ffunction-sections", "-fdata-sections"]],
];

describe("a patch built from two builds changes a running process, and revert restores it", () => {
  for (const [name, compiler, variant] of LIVE) {
    it(`${name} (${compiler}${variant === undefined ? "" : ` ${variant.join(" ")}${variant.includes("-ffunction-sections") ? "" : ", one section for all"}`})`, async () => {
      const c = buildDiffCase(name, compiler, variant);
      const before = observedValue(c.target);
      const after = observedValue(c.patchedTarget);
      expect(after, "the case must change what observe() returns").not.toBe(before);
      const patch = join(dir, `${name}-${compiler}${variant?.join("") ?? ""}.graft`);
      const built = runGraft([
        "build",
        "--orig",
        c.orig,
        "--patched",
        c.patched,
        "-t",
        c.target,
        "-o",
        patch,
        "--json",
      ]);
      expect(built.status, built.stderr + built.stdout).toBe(0);
      const t = startTarget(c.target, [], dir, `${name}-${compiler}`);
      started.push(t);
      const first = await waitForTick(t, (x) => x.value === before, { what: `the original value ${before}` });
      const text = textSnapshot(t.pid, c.target);
      const applied = runGraft(["apply", String(t.pid), patch]);
      expect(applied.status, applied.stderr).toBe(0);
      const patched = await waitForTick(t, (x) => x.value === after, {
        after: first,
        what: `the patched value ${after}`,
      });
      // Every tick printed after the one that showed the patched value shows it too.
      await waitForTick(t, (x) => x.tick >= patched.tick + 3, { after: patched });
      expect(lastTick(t)!.value).toBe(after);
      const reverted = runGraft(["revert", String(t.pid)]);
      expect(reverted.status, reverted.stderr).toBe(0);
      const back = await waitForTick(t, (x) => x.value === before, {
        after: lastTick(t),
        what: `the original value ${before} again`,
      });
      expect(back.value).toBe(before);
      expect(textDiff(text, textSnapshot(t.pid, c.target))).toEqual([]);
      killTarget(t);
    });
  }
});

describe("graft build --diff: an upstream diff applied to a copy of the source tree", () => {
  it("rebuilds the touched unit twice with the flags gcc recorded in the target, and the patch works live", async () => {
    const src = join(dir, "src");
    const fixture = join(fixturesDir, "diff");
    mkdirSync(src);
    copyFileSync(join(fixture, "inlined-static", "orig.c"), join(src, "prog.c"));
    copyFileSync(join(fixture, "harness.c"), join(src, "harness.c"));
    const flags = [...diffCaseFlags("gcc"), "-g"];
    const target = join(dir, "server");
    execFileSync("gcc", [...flags, "-Wl,--build-id", "prog.c", "harness.c", "-o", target], { cwd: src });
    // The upstream fix, as `diff -u a/ b/` writes it.
    const b = join(dir, "b");
    mkdirSync(b);
    copyFileSync(join(fixture, "inlined-static", "patched.c"), join(b, "prog.c"));
    const patchText = spawnSync(
      "diff",
      ["-u", "--label", "a/prog.c", "--label", "b/prog.c", join(src, "prog.c"), join(b, "prog.c")],
      {
        encoding: "utf8",
      },
    ).stdout;
    const fix = join(dir, "fix.patch");
    writeFileSync(fix, patchText);
    // No --cflags: the flags come from what gcc recorded in the target (-g: DW_AT_producer).
    const recorded = producerFlags(target);
    expect(recorded?.compiler).toBe("gcc");
    expect(recorded?.flags).toEqual(expect.arrayContaining(["-O2", "-fpatchable-function-entry=16,14"]));
    const out = join(dir, "fix.graft");
    const built = runGraft(["build", "--diff", fix, "--src", src, "-t", target, "-o", out]);
    expect(built.status, built.stderr).toBe(0);
    expect(built.stdout).toMatch(/replaces first .*\(changed\)/);
    expect(built.stdout).toMatch(/replaces third /);
    expect(built.stdout).not.toMatch(/untouched/);
    const t = startTarget(target, [], dir, "from-diff");
    started.push(t);
    const first = await waitForTick(t, (x) => x.value === 20, { what: "the original value 20" });
    expect(runGraft(["apply", String(t.pid), out]).status).toBe(0);
    const patched = await waitForTick(t, (x) => x.value === 27, {
      after: first,
      what: "the patched value 27",
    });
    expect(runGraft(["revert", String(t.pid)]).status).toBe(0);
    await waitForTick(t, (x) => x.value === 20, { after: patched, what: "20 again" });
    killTarget(t);
  });
});

describe("graft build from two builds refuses what a live patch cannot do", () => {
  it("linked files instead of .o files: NOT_PATCHABLE", () => {
    const c = buildDiffCase("recursion", "gcc");
    const r = runGraft([
      "build",
      "--orig",
      c.target,
      "--patched",
      c.patchedTarget,
      "-t",
      c.target,
      "-o",
      join(dir, "linked.graft"),
    ]);
    expect(r.status).toBe(3);
    expect(r.stderr).toMatch(/from two \.o files/);
  });
  it("--diff changing code in two translation units: one patch per unit", () => {
    const src = join(dir, "two-units");
    mkdirSync(src);
    writeFileSync(join(src, "a.c"), "int fa(int x) { return x + 1; }\n");
    writeFileSync(join(src, "b.c"), "int fb(int x) { return x + 2; }\nint main(void) { return fb(1); }\n");
    const target = join(src, "prog");
    execFileSync("gcc", ["-O2", "-Wl,--build-id", "a.c", "b.c", "-o", target], { cwd: src });
    const fix = join(dir, "two.patch");
    writeFileSync(
      fix,
      "--- a/a.c\n+++ b/a.c\n@@ -1 +1 @@\n-int fa(int x) { return x + 1; }\n+int fa(int x) { return x * 3 + 1; }\n" +
        "--- a/b.c\n+++ b/b.c\n@@ -1,2 +1,2 @@\n-int fb(int x) { return x + 2; }\n+int fb(int x) { return x * 5 + 2; }\n int main(void) { return fb(1); }\n",
    );
    const r = runGraft([
      "build",
      "--diff",
      fix,
      "--src",
      src,
      "-t",
      target,
      "--cflags",
      "-O2",
      "-o",
      join(dir, "two.graft"),
    ]);
    expect(r.status, r.stderr).toBe(3);
    expect(r.stderr).toMatch(/2 translation units/);
    expect(existsSync(join(dir, "two.graft"))).toBe(false);
  });
  for (const name of ["struct-layout", "initialised-data", "tls", "constructor", "bss-size"]) {
    it(`${name}: NOT_PATCHABLE, exit 3, no patch written`, () => {
      const c = buildDiffCase(name, "gcc");
      const out = join(dir, `${name}-refused.graft`);
      const r = runGraft([
        "build",
        "--orig",
        c.orig,
        "--patched",
        c.patched,
        "-t",
        c.target,
        "-o",
        out,
        "--json",
      ]);
      expect(r.status).toBe(3);
      expect(JSON.parse(r.stdout).error.code).toBe("NOT_PATCHABLE");
      expect(existsSync(out)).toBe(false);
    });
  }
  it("two identical builds: nothing to patch", () => {
    const c = buildDiffCase("identical", "clang");
    const r = runGraft([
      "build",
      "--orig",
      c.orig,
      "--patched",
      c.patched,
      "-t",
      c.target,
      "-o",
      join(dir, "same.graft"),
    ]);
    expect(r.status).toBe(3);
    expect(r.stderr).toMatch(/nothing changed/);
  });
});

describe("a __LINE__-only change", () => {
  for (const compiler of ["gcc", "clang"] as const)
    it(`is listed apart and patched by default, left out with --skip-line-only (${compiler})`, () => {
      const c = buildDiffCase("line-only", compiler);
      const d = runGraft(["diff", c.orig, c.patched]);
      expect(d.stdout).toMatch(/^line-only compute +only immediates differ: \+\d+ 0x[0-9a-f]+→0x[0-9a-f]+/m);
      const out = join(dir, `line-only-${compiler}.graft`);
      const built = runGraft(["build", "--orig", c.orig, "--patched", c.patched, "-t", c.target, "-o", out]);
      expect(built.status, built.stderr).toBe(0);
      expect(built.stdout).toMatch(/replaces compute .*only immediates changed/);
      const skipped = runGraft([
        "build",
        "--orig",
        c.orig,
        "--patched",
        c.patched,
        "-t",
        c.target,
        "--skip-line-only",
        "-o",
        out,
      ]);
      expect(skipped.status).toBe(3);
      expect(skipped.stderr).toMatch(
        /only immediates changed \(compute\) and --skip-line-only leaves them out/,
      );
    });
});

describe("graft diff (CLI)", () => {
  it("prints one line per difference and exits 0", () => {
    const c = buildDiffCase("new-static-function", "gcc");
    const r = runGraft(["diff", c.orig, c.patched]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^changed +compute /m);
    expect(r.stdout).toMatch(/^new +clamp@prog\.c/m);
  });
  it("--json carries the report; a refusal exits 3", () => {
    const c = buildDiffCase("initialised-data", "clang");
    const r = runGraft(["diff", c.orig, c.patched, "--json"]);
    expect(r.status).toBe(3);
    const j = JSON.parse(r.stdout);
    expect(j.data.changed[0].name).toBe("limit");
    expect(j.refusals[0]).toMatch(/changed initialiser/);
  });
});

describe("the patch object built from two builds (oracle: readelf)", () => {
  it("copies only the changed function; the static counter binds to the target's, never copied", () => {
    const c = buildDiffCase("static-local", "gcc");
    const out = join(dir, "static-local-oracle.graft");
    expect(
      runGraft(["build", "--orig", c.orig, "--patched", c.patched, "-t", c.target, "-o", out]).status,
    ).toBe(0);
    const sections = run("readelf", ["-SW", out]);
    expect(sections).toMatch(/\.text\.next/);
    expect(sections).not.toMatch(/\.bss|\.data/);
    const symbols = run("readelf", ["-sW", out]);
    expect(symbols).toMatch(/FUNC +GLOBAL +DEFAULT +\d+ next$/m);
    expect(symbols).toMatch(/NOTYPE +GLOBAL +DEFAULT +UND calls\.\d+@prog\.c$/m);
    expect(run("readelf", ["-rW", out])).toMatch(/R_X86_64_PC32 .* calls\.\d+@prog\.c - 4/);
  });
  for (const compiler of ["gcc", "clang"] as const)
    it(`statics of the same name pair with their own function's (${compiler}): g binds to the target's g counter`, () => {
      const c = buildDiffCase("same-name-statics", compiler);
      const out = join(dir, `same-name-${compiler}.graft`);
      expect(
        runGraft(["build", "--orig", c.orig, "--patched", c.patched, "-t", c.target, "-o", out]).status,
      ).toBe(0);
      // The original g's counter, named by the relocation in .rela.text.g of the original object.
      const section = (text: string, name: string): string =>
        text.split(/\n(?=Relocation section)/).find((b) => b.startsWith(`Relocation section '${name}'`)) ??
        "";
      const origG = section(run("readelf", ["-rW", c.orig]), ".rela.text.g");
      const counter = /\.bss\.(\S+)/.exec(origG)?.[1];
      expect(counter).toBeDefined();
      const patchG = section(run("readelf", ["-rW", out]), ".rela.text.g");
      expect(patchG).toContain(`${counter}@prog.c`);
    });
  it("a replaced static function (a clone) is a global named name@file.c", () => {
    const c = buildDiffCase("constprop-clone", "gcc");
    const out = join(dir, "constprop-oracle.graft");
    expect(
      runGraft(["build", "--orig", c.orig, "--patched", c.patched, "-t", c.target, "-o", out]).status,
    ).toBe(0);
    expect(run("readelf", ["-sW", out])).toMatch(/FUNC +GLOBAL +DEFAULT +\d+ scale\.constprop\.0@prog\.c$/m);
  });
});
