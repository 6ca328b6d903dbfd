/**
 * What several benches need alike: time a command against its peer (wall clock, and CPU time and
 * peak RSS through GNU time when it is installed), take medians, and make sure `dist/` is current
 * before timing the compiled CLI.
 */
import { spawnSync } from "node:child_process";
import { closeSync, existsSync, openSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { distIsFresh } from "../../test/support/graft-cli.js";

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
/** The compiled CLI, as users run it. */
export const cli = join(repoRoot, "dist/cli/main.js");

const GNU_TIME = "/usr/bin/time";

/** One run of a command. `cpu` (user + system, s) and `rssKb` need GNU time. */
export interface CommandSample {
  readonly wall: number;
  readonly cpu: number | undefined;
  readonly rssKb: number | undefined;
}

/** Run `cmd args > /dev/null` once; throws with the tail of stderr when it fails. */
export function measureCommand(cmd: string, args: readonly string[]): CommandSample {
  const devnull = openSync("/dev/null", "w");
  const timed = existsSync(GNU_TIME);
  const start = process.hrtime.bigint();
  const r = timed
    ? spawnSync(GNU_TIME, ["-f", "%U %S %M", cmd, ...args], {
        stdio: ["ignore", devnull, "pipe"],
        maxBuffer: 1 << 26,
      })
    : spawnSync(cmd, args, { stdio: ["ignore", devnull, "pipe"], maxBuffer: 1 << 26 });
  const wall = Number(process.hrtime.bigint() - start) / 1e9;
  closeSync(devnull);
  const stderr = r.stderr?.toString() ?? "";
  if (r.status !== 0)
    throw new Error(`${cmd} ${args.join(" ")} exited with ${r.status}: ${stderr.slice(-500)}`);
  if (!timed) return { wall, cpu: undefined, rssKb: undefined };
  const [user, sys, rss] = stderr.trim().split("\n").pop()!.split(" ").map(Number);
  return { wall, cpu: user! + sys!, rssKb: Number.isFinite(rss) ? rss : undefined };
}

/** The middle value (upper middle for an even count). */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** Run `npm run build` when dist/ is missing or older than any file under src/. */
export function ensureCliBuilt(): void {
  if (distIsFresh()) return;
  process.stderr.write("building dist/ (npm run build)...\n");
  const b = spawnSync("npm", ["run", "build"], { cwd: repoRoot, stdio: ["ignore", "ignore", "inherit"] });
  if (b.status !== 0) throw new Error("npm run build failed");
}
