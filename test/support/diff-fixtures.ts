/**
 * Builds one case of the diff catalogue (test/fixtures/diff/<case>/{orig,patched}.c): each source is
 * copied to its own directory as prog.c and compiled there, so both objects name the same source
 * file (STT_FILE "prog.c") as two builds of one tree do; the original is linked with the harness
 * into the target a live test runs, the patched one into a second binary, the oracle of what the
 * patched code does. Cached by content under .cache/diff-fixtures.
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync } from "node:fs";
import { join } from "node:path";
import { type Compiler, fixturesDir, repoRoot } from "./fixtures.js";

export interface DiffCase {
  readonly name: string;
  readonly compiler: Compiler;
  /** The original and patched objects (prog.o of each tree). */
  readonly orig: string;
  readonly patched: string;
  /** orig/prog.o + harness, and patched/prog.o + harness. */
  readonly target: string;
  readonly patchedTarget: string;
  readonly flags: readonly string[];
}

/** Flags of every catalogue build: patchable (a sled), one section per function and variable. */
export function diffCaseFlags(compiler: Compiler): string[] {
  return [
    "-O2",
    "-fpatchable-function-entry=16,14",
    "-ffunction-sections",
    "-fdata-sections",
    ...(compiler === "gcc" ? ["-flive-patching=inline-clone"] : []),
  ];
}

/**
 * Build case `name`; `variant` replaces `-O2` and the section flags by its own (e.g. `-O3`, or no
 * `-ffunction-sections -fdata-sections`), keeping the patch site and gcc's -flive-patching.
 */
export function buildDiffCase(name: string, compiler: Compiler, variant?: readonly string[]): DiffCase {
  const flags =
    variant === undefined
      ? diffCaseFlags(compiler)
      : [...variant, ...diffCaseFlags(compiler).filter((f) => !/^-O|sections$/.test(f))];
  const src = join(fixturesDir, "diff", name);
  const harness = join(fixturesDir, "diff", "harness.c");
  const hash = createHash("sha256");
  hash.update(JSON.stringify({ compiler, flags, v: 1 }));
  for (const f of [join(src, "orig.c"), join(src, "patched.c"), harness]) hash.update(readFileSync(f));
  const dir = join(
    repoRoot,
    ".cache/diff-fixtures",
    `${name}-${compiler}-${hash.digest("hex").slice(0, 12)}`,
  );
  const result: DiffCase = {
    name,
    compiler,
    orig: join(dir, "orig/prog.o"),
    patched: join(dir, "patched/prog.o"),
    target: join(dir, "target"),
    patchedTarget: join(dir, "target-patched"),
    flags,
  };
  if (existsSync(result.patchedTarget)) return result;
  const tmp = `${dir}.tmp${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  for (const side of ["orig", "patched"] as const) {
    mkdirSync(join(tmp, side), { recursive: true });
    copyFileSync(join(src, `${side}.c`), join(tmp, side, "prog.c"));
    execFileSync(compiler, [...flags, "-c", "prog.c", "-o", "prog.o"], {
      cwd: join(tmp, side),
      stdio: ["ignore", "ignore", "pipe"],
    });
  }
  execFileSync(compiler, [...flags, "-c", harness, "-o", join(tmp, "harness.o")], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  for (const [side, out] of [
    ["orig", "target"],
    ["patched", "target-patched"],
  ] as const)
    execFileSync(
      compiler,
      ["-Wl,--build-id", join(tmp, side, "prog.o"), join(tmp, "harness.o"), "-o", join(tmp, out)],
      {
        stdio: ["ignore", "ignore", "pipe"],
      },
    );
  // Another test worker may have built the same case meanwhile: keep the first one, never remove it
  // under its feet.
  try {
    if (!existsSync(result.patchedTarget)) renameSync(tmp, dir);
  } catch (e) {
    if (!existsSync(result.patchedTarget)) throw e;
  }
  rmSync(tmp, { recursive: true, force: true });
  return result;
}

/** What a build of a case prints once (`target once`): the value observe() gives. */
export function observedValue(binary: string): number {
  return Number(execFileSync(binary, ["once"], { encoding: "utf8" }).trim());
}
