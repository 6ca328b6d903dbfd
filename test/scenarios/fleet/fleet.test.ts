/**
 * graft apply/status/revert --all-of on 52 processes of one binary, two worker processes: one runs
 * from a copy of the binary that was deleted after it started (found through map_files by
 * build-id), one is killed mid-run — it is reported `gone` and the others go on
 * (--continue-on-error). Every live process switches to the fix and back, and the status table says so.
 */
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, unlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildPatchFile } from "../../../src/live/build-patch-file.js";
import { runFleet } from "../../../src/live/fleet.js";
import { buildFixture } from "../../support/fixtures.js";
import {
  isAlive,
  killTarget,
  type LiveTarget,
  lastTick,
  startTarget,
  waitForTick,
} from "../../support/live-target.js";

const here = dirname(fileURLToPath(import.meta.url));
const COUNT = 52;
let dir: string;
const started: LiveTarget[] = [];
const others: LiveTarget[] = [];

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "graft-fleet-"));
  process.env.GRAFT_STATE_DIR = join(dir, "state");
});
afterAll(() => {
  for (const t of [...started, ...others]) killTarget(t);
  rmSync(dir, { recursive: true, force: true });
});

/** graft's worker processes (children running fleet-worker). */
function workerPids(): number[] {
  const out: number[] = [];
  for (const tid of readdirSync(`/proc/${process.pid}/task`)) {
    const children = readFileSync(`/proc/${process.pid}/task/${tid}/children`, "utf8").trim();
    for (const c of children === "" ? [] : children.split(" ").map(Number)) {
      try {
        if (readFileSync(`/proc/${c}/cmdline`, "utf8").includes("fleet-worker")) out.push(c);
      } catch {}
    }
  }
  return out;
}

describe("graft --all-of", () => {
  it("loses no process when a worker dies holding some: its current one is failed, the rest done by graft", async () => {
    const exe = buildFixture({
      compiler: "gcc",
      sources: [join(here, "target.c")],
      flags: ["-O2"],
      output: "pie",
    });
    const patch = join(dir, "fix-worker.graft");
    buildPatchFile({ fix: join(here, "fix.c"), target: exe, output: patch });
    const targets = Array.from({ length: 40 }, (_, i) =>
      startTarget(exe, [], dir, `worker${i}`, { nice: 5 }),
    );
    others.push(...targets); // not in `started`: the next test patches exactly those
    for (const t of targets) await waitForTick(t, (k) => k.value === 14, { what: "first tick" });
    const pids = targets.map((t) => t.pid);
    let killed = 0;
    const applied = await runFleet(
      exe,
      { kind: "apply", patch },
      {
        jobs: 2,
        continueOnError: true,
        pids,
        // Killed right after its first row: it then holds the next PID, and is sent another. graft's
        // own process dawdles until then, so the worker (slow to boot under tsx) gets work at all.
        onProgress: (_done, _total, row) => {
          if (row.by !== process.pid && killed === 0) {
            for (const w of workerPids()) process.kill(w, "SIGKILL");
            killed = 1;
          }
          if (row.by === process.pid && killed === 0)
            Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 250);
        },
      },
    );
    expect(applied.processes.map((p) => p.pid)).toEqual([...pids].sort((a, b) => a - b));
    expect(killed).toBe(1);
    const failed = applied.processes.filter((p) => p.outcome !== "applied");
    expect(failed.map((f) => [f.outcome, f.code])).toEqual([["failed", "INTERNAL"]]);
    // The worker did some (the rows it sent before it died); graft's own process did the rest.
    const byWorker = applied.processes.filter((p) => p.outcome === "applied" && p.by !== process.pid);
    expect(byWorker.length).toBeGreaterThanOrEqual(1);
    for (const t of targets) {
      if (failed.some((f) => f.pid === t.pid)) continue;
      await waitForTick(t, (k) => k.value === 21, { after: lastTick(t), what: "new answers" });
    }
    await runFleet(exe, { kind: "revert" }, { pids });
    for (const t of targets) killTarget(t);
  });

  it(`patches, lists and reverts ${COUNT} processes; a deleted binary is found, a dying process is reported`, async () => {
    const exe = buildFixture({
      compiler: "gcc",
      sources: [join(here, "target.c")],
      flags: ["-O2"],
      output: "pie",
    });
    const patch = join(dir, "fix.graft");
    buildPatchFile({ fix: join(here, "fix.c"), target: exe, output: patch });
    const copy = join(dir, "deleted-copy");
    copyFileSync(exe, copy);
    for (let i = 0; i < COUNT; i++)
      started.push(startTarget(i === 0 ? copy : exe, [], dir, `fleet${i}`, { nice: 5 }));
    for (const t of started) await waitForTick(t, (k) => k.value === 14, { what: "first tick" });
    unlinkSync(copy);
    const pids = started.map((t) => t.pid);
    const victim = Math.max(...pids);

    let killed = false;
    const applied = await runFleet(
      exe,
      { kind: "apply", patch },
      {
        jobs: 2,
        continueOnError: true,
        pids,
        onProgress: (done) => {
          if (done === 5 && !killed) {
            killed = true;
            process.kill(victim, "SIGKILL");
          }
        },
      },
    );
    expect(applied.processes.map((p) => p.pid)).toEqual([...pids].sort((a, b) => a - b));
    const byPid = new Map(applied.processes.map((p) => [p.pid, p]));
    expect(byPid.get(victim)?.outcome).toBe("gone");
    const live = started.filter((t) => t.pid !== victim);
    for (const t of live) {
      const row = byPid.get(t.pid)!;
      expect(row.outcome, JSON.stringify(row)).toBe("applied");
      expect(row.pauseMs).toBeGreaterThan(0);
      expect(row.privateKiB).toBeTypeOf("number");
    }
    expect(applied.summary).toEqual({ applied: COUNT - 1, gone: 1 });
    // The patch code is one file mapped by every process (placed at the same distance below the
    // module in each, so the linked bytes are identical), not a private copy each.
    const codeFiles = new Set(
      live.map((t) => {
        const line = readFileSync(`/proc/${t.pid}/maps`, "utf8")
          .split("\n")
          .find((l) => /graft-code-[0-9a-f]+\.text$/.test(l));
        return line?.split(/\s+/).at(-1);
      }),
    );
    expect([...codeFiles]).toHaveLength(1);
    expect([...codeFiles][0]).toMatch(/graft-code-/);
    for (const t of live)
      await waitForTick(t, (k) => k.value === 21, { after: lastTick(t), what: "new answers" });

    // Without --continue-on-error the first failure stops the run: applying again is refused on the
    // first process (already applied) and every other one is left untouched, reported `skipped`.
    const again = await runFleet(exe, { kind: "apply", patch }, { pids });
    expect(again.summary).toEqual({ refused: 1, skipped: COUNT - 2 });
    expect(again.processes.find((p) => p.outcome === "refused")?.code).toBe("PATCH_ALREADY_APPLIED");

    const status = await runFleet(exe, { kind: "status" }, { pids });
    expect(status.summary).toEqual({ patched: COUNT - 1 });

    const reverted = await runFleet(exe, { kind: "revert" }, { jobs: 2, pids, memorySample: 10 });
    expect(reverted.summary).toEqual({ reverted: COUNT - 1 });
    // Private memory measured on a sample of 10, spread over the fleet.
    expect(reverted.processes.filter((p) => p.privateKiB !== undefined)).toHaveLength(10);
    for (const t of live)
      await waitForTick(t, (k) => k.value === 14, { after: lastTick(t), what: "old answers" });
    const after = await runFleet(exe, { kind: "status" }, { pids });
    expect(after.summary).toEqual({ unpatched: COUNT - 1 });
    for (const t of live) {
      expect(isAlive(t.pid)).toBe(true);
      expect(lastTick(t)?.fields.bad).toBe(0);
    }
  });
});
