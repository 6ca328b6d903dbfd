/**
 * Builds C fixtures with real compilers at test time, cached by content hash under .cache/fixtures,
 * so a test matrix of gcc|clang × flags × PIE/non-PIE costs one compile per cell per source change.
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
export const fixturesDir = join(repoRoot, "test/fixtures");
const cacheDir = join(repoRoot, ".cache/fixtures");

export type Compiler = "gcc" | "clang";
export type OutputKind = "pie" | "exe" | "shared" | "object";

export interface FixtureSpec {
  readonly compiler: Compiler;
  /** Source files, relative to test/fixtures or absolute. */
  readonly sources: readonly string[];
  readonly flags?: readonly string[];
  readonly output: OutputKind;
  /** Extra link flags (after the sources). */
  readonly libs?: readonly string[];
  /**
   * Cross-compile for this target (Debian's gcc-aarch64-linux-gnu; clang with --target and lld,
   * which find the libc6-dev-arm64-cross sysroot themselves). Default: the host (x86-64).
   */
  readonly target?: "aarch64";
}

/** The compiler command and its leading arguments for `spec`. */
export function compilerCommand(compiler: Compiler, target?: "aarch64"): [string, ...string[]] {
  if (target === undefined) return [compiler];
  return compiler === "gcc"
    ? ["aarch64-linux-gnu-gcc"]
    : ["clang", "--target=aarch64-linux-gnu", "-fuse-ld=lld"];
}

function sourcePath(s: string): string {
  return s.startsWith("/") ? s : join(fixturesDir, s);
}

/** Compile (once) and return the path of the product. */
export function buildFixture(spec: FixtureSpec): string {
  const flags = spec.flags ?? [];
  const kindFlags =
    spec.output === "pie"
      ? ["-fPIE", "-pie"]
      : spec.output === "exe"
        ? ["-fno-pie", "-no-pie"]
        : spec.output === "shared"
          ? ["-fPIC", "-shared"]
          : ["-c"];
  const hash = createHash("sha256");
  hash.update(JSON.stringify({ ...spec, kindFlags, v: 2 }));
  for (const s of spec.sources) hash.update(readFileSync(sourcePath(s)));
  const name = `${spec.sources
    .map((s) => s.replace(/\W+/g, "_"))
    .join("+")
    .slice(
      0,
      40,
    )}-${spec.compiler}${spec.target === undefined ? "" : `-${spec.target}`}-${spec.output}-${hash.digest("hex").slice(0, 12)}`;
  const out = join(
    cacheDir,
    spec.output === "object" ? `${name}.o` : spec.output === "shared" ? `${name}.so` : name,
  );
  if (existsSync(out)) return out;
  mkdirSync(cacheDir, { recursive: true });
  const tmp = `${out}.tmp${process.pid}`;
  const args = [
    ...kindFlags,
    ...flags,
    "-o",
    tmp,
    ...spec.sources.map(sourcePath),
    ...(spec.output === "object" ? [] : ["-pthread", ...(spec.libs ?? [])]),
  ];
  const [command, ...lead] = compilerCommand(spec.compiler, spec.target);
  execFileSync(command, [...lead, ...args], { stdio: ["ignore", "ignore", "pipe"] });
  renameSync(tmp, out);
  return out;
}

/** Run a command and return stdout (for oracles: readelf, objdump, nm). */
export function run(cmd: string, args: readonly string[]): string {
  return execFileSync(cmd, args, { encoding: "utf8", maxBuffer: 1 << 30 });
}

export function hasCommand(cmd: string): boolean {
  try {
    execFileSync("sh", ["-c", `command -v ${cmd}`], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}
