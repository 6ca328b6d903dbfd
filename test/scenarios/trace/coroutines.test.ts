/**
 * `graft trace` on a target that switches stacks: two ucontext coroutines (coroutines.c) switch to
 * each other from inside traced calls, so one thread has traced frames live on two stacks (64 KiB
 * apart) and a third (main's), and each longjmps out of traced frames on its own stack while the
 * other holds traced frames. The target must finish with its untraced output, every call must be
 * seen exactly once, every return as an exit and every frame skipped by longjmp as unwound.
 */
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { buildFixture, type Compiler, repoRoot } from "../../support/fixtures.js";
import { ensureBuilt, runGraft } from "../../support/graft-cli.js";

const source = join(repoRoot, "test/scenarios/trace/coroutines.c");
const dir = mkdtempSync(join(tmpdir(), "graft-trace-co-"));
// -pg builds write gmon.out on exit: keep it out of the working directory.
const env = { GRAFT_STATE_DIR: dir, GMON_OUT_PREFIX: join(dir, "gmon") };

const ROUNDS = 500; // coroutines.c
const JUMPS = ROUNDS / 50;
const RESULT = "coroutines result 1125750 1127250"; // the untraced output (checked below too)

/** Calls per run, from coroutines.c; deep's frames are all left by longjmp, the others return. */
const ENTRIES: Record<string, number> = {
  main: 1,
  run: 1,
  body: 2,
  step: 2 * ROUNDS,
  inner: 2 * ROUNDS,
  work: 6 * ROUNDS,
  jumper: 2 * JUMPS,
  deep: 6 * JUMPS,
};

const CELLS: [Compiler, "sled" | "fentry", string[]][] = [
  ["gcc", "sled", ["-fpatchable-function-entry=5"]],
  ["gcc", "fentry", ["-pg", "-mfentry"]],
  ["clang", "sled", ["-fpatchable-function-entry=5"]],
  ["clang", "fentry", ["-pg", "-mfentry"]],
];

beforeAll(() => ensureBuilt());

function tally(events: readonly { type: string; function: string }[], type: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const e of events)
    if (e.type === type && e.function in ENTRIES) out[e.function] = (out[e.function] ?? 0) + 1;
  return out;
}

describe.each(CELLS)("graft trace, ucontext coroutines, %s %s sites", (compiler, _kind, flags) => {
  const exe = buildFixture({ compiler, sources: [source], flags: ["-O2", ...flags], output: "pie" });

  it("finishes with the untraced output and counts every call, exit and unwound frame exactly", () => {
    const events = join(dir, `${compiler}-${_kind}.jsonl`);
    const r = runGraft(["trace", "--json", "--format", "json", "-o", events, "--", exe], env);
    expect(r.status, r.stderr).toBe(0);
    // The target's own line comes first on the shared stdout, then graft's JSON.
    const [line, ...rest] = r.stdout.split("\n");
    expect(line).toBe(RESULT);
    const json = JSON.parse(rest.join("\n")) as { end: string; losses: Record<string, number> };
    expect(json.end).toBe("exited");
    expect(json.losses).toEqual({ ringFull: 0, shadowFull: 0, noSlot: 0, unwound: 6 * JUMPS, corrupt: 0 });
    const list = readFileSync(events, "utf8")
      .split("\n")
      .filter((l) => l !== "")
      .map((l) => JSON.parse(l) as { type: string; function: string });
    expect(tally(list, "entry")).toEqual(ENTRIES);
    const { deep, ...returning } = ENTRIES;
    expect(tally(list, "exit")).toEqual(returning); // main's exit: the target returned from main
    expect(tally(list, "unwound")).toEqual({ deep });
  });
});

it("the fixture's output without tracing is the one expected", async () => {
  const { execFileSync } = await import("node:child_process");
  const exe = buildFixture({ compiler: "gcc", sources: [source], flags: ["-O2"], output: "pie" });
  expect(execFileSync(exe, { encoding: "utf8" })).toBe(`${RESULT}\n`);
});
