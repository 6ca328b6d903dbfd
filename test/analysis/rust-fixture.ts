/**
 * Builds the Rust fixture with the installed rustc, cached like the C fixtures (.cache/fixtures).
 * `-Z` flags need a nightly compiler; RUSTC_BOOTSTRAP=1 lets a stable one accept them for tests.
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync } from "node:fs";
import { join } from "node:path";
import { fixturesDir, hasCommand, repoRoot } from "../support/fixtures.js";

export const RUST_CRATE = "rust_sites";

export function hasRustc(): boolean {
  return hasCommand("rustc");
}

/** Compile test/fixtures/rust-sites.rs with `flags` (once); undefined when rustc refuses the flags. */
export function buildRustFixture(flags: readonly string[], bootstrap = false): string | undefined {
  const source = join(fixturesDir, "rust-sites.rs");
  const hash = createHash("sha256")
    .update(JSON.stringify({ flags, bootstrap, v: 1 }))
    .update(readFileSync(source))
    .digest("hex");
  const dir = join(repoRoot, ".cache/fixtures");
  const out = join(dir, `rust-sites-${hash.slice(0, 12)}`);
  if (existsSync(out)) return out;
  mkdirSync(dir, { recursive: true });
  const tmp = `${out}.tmp${process.pid}`;
  try {
    execFileSync("rustc", ["--crate-name", RUST_CRATE, "--edition", "2021", ...flags, "-o", tmp, source], {
      stdio: ["ignore", "ignore", "pipe"],
      env: bootstrap ? { ...process.env, RUSTC_BOOTSTRAP: "1" } : process.env,
    });
  } catch {
    return undefined;
  }
  renameSync(tmp, out);
  return out;
}
