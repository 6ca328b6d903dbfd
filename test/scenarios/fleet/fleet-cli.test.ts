/**
 * The CLI of --all-of, as a user runs it (dist/cli/main.js): apply with two worker processes prints
 * the per-process table (no progress bar when stderr is not a terminal) and exits 0; status and
 * revert --json give one row per process; usage errors are one line with exit 2.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildPatchFile } from "../../../src/live/build-patch-file.js";
import { buildFixture } from "../../support/fixtures.js";
import {
  killTarget,
  type LiveTarget,
  runGraft,
  startTarget,
  waitForTick,
} from "../../support/live-target.js";

const here = dirname(fileURLToPath(import.meta.url));
let dir: string;
let env: NodeJS.ProcessEnv;
const started: LiveTarget[] = [];
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "graft-fleet-cli-"));
  env = { GRAFT_STATE_DIR: join(dir, "state") };
});
afterAll(() => {
  for (const t of started) killTarget(t);
  rmSync(dir, { recursive: true, force: true });
});

describe("graft CLI --all-of", () => {
  it("apply prints a table, status and revert --json a row per process", async () => {
    // clang (fleet.test.ts builds with gcc): no other test's processes run this binary (same build-id).
    const exe = buildFixture({
      compiler: "clang",
      sources: [join(here, "target.c")],
      flags: ["-O2"],
      output: "pie",
    });
    const patch = join(dir, "fix.graft");
    buildPatchFile({ fix: join(here, "fix.c"), target: exe, output: patch });
    for (let i = 0; i < 3; i++) started.push(startTarget(exe, [], dir, `cli${i}`));
    for (const t of started) await waitForTick(t, (k) => k.value === 14);
    const pids = started.map((t) => t.pid).sort((a, b) => a - b);

    const applied = runGraft(["apply", "--all-of", exe, patch, "--jobs", "2"], { env });
    expect(applied.stderr).toBe("");
    expect(applied.status).toBe(0);
    const lines = applied.stdout.trim().split("\n");
    expect(lines[0]).toMatch(/^PID\s+RESULT\s+PAUSE ms\s+PRIVATE KiB\s+DETAIL$/);
    expect(lines.slice(1, 4).map((l) => l.split(/\s+/).slice(0, 2))).toEqual(
      pids.map((p) => [String(p), "applied"]),
    );
    expect(lines[4]).toMatch(/^apply on 3 process\(es\) of .*: 3 applied in [\d.]+ s, 2 job\(s\)$/);

    const status = runGraft(["status", "--all-of", exe, "--json"], { env });
    expect(status.status).toBe(0);
    const s = JSON.parse(status.stdout) as {
      processes: { pid: number; outcome: string; patches: string[] }[];
    };
    expect(s.processes.map((p) => [p.pid, p.outcome, p.patches.length])).toEqual(
      pids.map((p) => [p, "patched", 1]),
    );

    const reverted = runGraft(["revert", "--all-of", exe, "--json", "--memory-sample", "1"], { env });
    expect(reverted.status).toBe(0);
    const r = JSON.parse(reverted.stdout) as {
      summary: Record<string, number>;
      processes: { privateKiB?: number }[];
    };
    expect(r.summary).toEqual({ reverted: 3 });
    // Private memory measured on one process of the three only.
    expect(r.processes.filter((p) => p.privateKiB !== undefined)).toHaveLength(1);

    const usage = runGraft(["apply", "--all-of", exe], { env });
    expect(usage.status).toBe(2);
    expect(usage.stderr).toMatch(/^graft: error: .*with --all-of give the patch file/);
    expect(usage.stderr.trim().split("\n")).toHaveLength(1);
  });
});
