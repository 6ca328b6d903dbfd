/** Run the built graft CLI (dist/cli/main.js), building it first when src/ is newer. */
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { repoRoot } from "./fixtures.js";

export const cli = join(repoRoot, "dist/cli/main.js");

function newestMtime(dir: string): number {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    newest = Math.max(newest, e.isDirectory() ? newestMtime(p) : statSync(p).mtimeMs);
  }
  return newest;
}

/** dist/ is there and no file under src/ is newer than it. */
export function distIsFresh(): boolean {
  return existsSync(cli) && statSync(cli).mtimeMs >= newestMtime(join(repoRoot, "src"));
}

/** Build dist/ when it is missing or older than src/. */
export function ensureBuilt(): void {
  if (distIsFresh()) return;
  execFileSync("npx", ["tsc", "-p", "tsconfig.build.json"], { cwd: repoRoot, stdio: "ignore" });
}

/** Run graft; returns stdout, stderr and the exit status (never throws on a non-zero exit). */
export function runGraft(
  args: readonly string[],
  env: Record<string, string> = {},
): { stdout: string; stderr: string; status: number } {
  const r = spawnSync("node", [cli, ...args], {
    encoding: "utf8",
    maxBuffer: 1 << 28,
    env: { ...process.env, ...env },
    // A hung target must fail the test, not stall the suite; SIGINT lets graft trace detach cleanly.
    timeout: 120_000,
    killSignal: "SIGINT",
  });
  return { stdout: r.stdout, stderr: r.stderr, status: r.status ?? -1 };
}
