/**
 * Crash recovery: with GRAFT_FAULT=<point>, the graft CLI kills itself (SIGKILL, as a crash or the
 * OOM killer would) at that step of an apply or a revert. For every point: the target keeps running
 * with only old or new answers; `graft status --json` tells what was left; a new apply is refused
 * until `graft revert PID` has finished the job; after which the text is byte-for-byte the original
 * and graft status is empty.
 */
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";
import { GraftError } from "../../../src/core/errors.js";
import { applyPatch } from "../../../src/live/apply-patch.js";
import { buildPatchFile } from "../../../src/live/build-patch-file.js";
import { patchStatus } from "../../../src/live/patch-status.js";
import { buildFixture } from "../../support/fixtures.js";
import {
  type CliResult,
  expectSwitched,
  isAlive,
  killTarget,
  type LiveTarget,
  lastTick,
  runGraft,
  startTarget,
  type Tick,
  textDiff,
  textSnapshot,
  ticks,
  useScenario,
  waitForTick,
} from "../../support/live-target.js";

const here = dirname(fileURLToPath(import.meta.url));

const { dir, started } = useScenario("graft-crash-");
let exe: string;
let patch: string;
let patchId: string;

beforeAll(() => {
  exe = buildFixture({
    compiler: "gcc",
    sources: [join(here, "target.c")],
    flags: ["-O2", "-fpatchable-function-entry=16,14", "-flive-patching=inline-clone"],
    output: "pie",
  });
  patch = join(dir, "fix.graft");
  patchId = buildPatchFile({ fix: join(here, "fix.c"), target: exe, output: patch }).manifest.id;
});

/** What a graft killed at `point` leaves behind, and which code the target then runs. */
interface Point {
  readonly point: string;
  readonly journal: "applying" | "reverting";
  readonly sites: "applied" | "reverted" | "partial";
  readonly codeMapped: boolean;
  readonly runs: "old" | "new";
}

// A sled(16,14) redirect is two writes: the far jmp rel32 in the pre-entry NOPs first (never executed
// on its own), then the 2-byte entry jump; revert puts the entry back first, then the far jump.
const APPLY_POINTS: readonly Point[] = [
  { point: "apply:journaled", journal: "applying", sites: "reverted", codeMapped: false, runs: "old" },
  { point: "apply:mapped", journal: "applying", sites: "reverted", codeMapped: true, runs: "old" },
  { point: "apply:loaded", journal: "applying", sites: "reverted", codeMapped: true, runs: "old" },
  { point: "apply:wrote-far", journal: "applying", sites: "partial", codeMapped: true, runs: "old" },
  { point: "apply:wrote-entry", journal: "applying", sites: "applied", codeMapped: true, runs: "new" },
  // Resumed, the journal not yet saying `applied`: the bytes are the truth.
  { point: "apply:resumed", journal: "applying", sites: "applied", codeMapped: true, runs: "new" },
];
const REVERT_POINTS: readonly Point[] = [
  { point: "revert:journaled", journal: "reverting", sites: "applied", codeMapped: true, runs: "new" },
  { point: "revert:wrote-entry", journal: "reverting", sites: "partial", codeMapped: true, runs: "old" },
  { point: "revert:wrote-far", journal: "reverting", sites: "reverted", codeMapped: true, runs: "old" },
  { point: "revert:restored", journal: "reverting", sites: "reverted", codeMapped: true, runs: "old" },
  // Unmapped, the entry not yet out of the journal: the next revert finds nothing left to unmap.
  { point: "revert:unmapped", journal: "reverting", sites: "reverted", codeMapped: false, runs: "old" },
];

const OLD = { value: 14, grows: "old", frozen: ["new"] };
const NEW = { value: 21, grows: "new", frozen: ["old"] };

function graft(args: readonly string[], fault?: string): CliResult {
  return runGraft(args, { env: { GRAFT_FAULT: fault ?? "" } });
}

function expectOk(r: CliResult): void {
  expect([r.status, r.signal], r.stderr).toEqual([0, null]);
}

/** Waits until the target shows it runs `runs` code only, from tick `after` on; the last tick seen. */
type Switched = (target: LiveTarget, runs: "old" | "new", after: Tick | undefined) => Promise<Tick>;

const workersSwitched: Switched = (target, runs, after) =>
  expectSwitched(target, runs === "old" ? OLD : NEW, after);

/** A target without workers: main's own compute(7) answers, three ticks in a row, none bad. */
const mainSwitched: Switched = async (target, runs, after) => {
  const value = runs === "old" ? 14 : 21;
  const first = await waitForTick(target, (t) => t.value === value, { after, what: `the value ${value}` });
  const last = await waitForTick(target, (t) => t.tick >= first.tick + 3, {
    after: first,
    what: "three more ticks",
  });
  for (const t of ticks(target).filter((x) => x.tick >= first.tick && x.tick <= last.tick)) {
    expect([t.value, t.fields.bad], t.line).toEqual([value, 0]);
  }
  return last;
};

/** Kill graft at `point` and check what it left; then `graft revert` must restore `original`. */
async function crashAndRecover(
  target: LiveTarget,
  p: Point,
  args: readonly string[],
  original: ReturnType<typeof textSnapshot>,
  switched: Switched = workersSwitched,
): Promise<void> {
  const crashed = graft(args, p.point);
  // Only what the target prints from now on counts (it printed on while graft started up).
  const before = lastTick(target);
  expect(
    [crashed.status, crashed.signal],
    `graft ${args.join(" ")} with GRAFT_FAULT=${p.point}: ${crashed.stderr}`,
  ).toEqual([null, "SIGKILL"]);

  // The target goes on, running the code the bytes say, never anything else.
  expect(isAlive(target.pid), "the target died with graft").toBe(true);
  const from = await switched(target, p.runs, before);
  if (p.point.startsWith("apply:") && p.runs === "old") {
    // No worker ever got a new answer: the half-applied patch was never reachable.
    for (const t of ticks(target)) expect([t.fields.new, t.value], t.line).toEqual([0, 14]);
  }

  const status = graft(["status", String(target.pid), "--json"]);
  expectOk(status);
  const s = JSON.parse(status.stdout);
  expect(s.patches.map((x: Record<string, unknown>) => [x.id, x.journal, x.sites, x.codeMapped])).toEqual([
    [patchId, p.journal, p.sites, p.codeMapped],
  ]);
  // Nothing new goes on top of a half-done change (the library call: it refuses before any change).
  expect(errorCode(() => applyPatch(target.pid, patch))).toBe("JOURNAL_INCOMPLETE");

  expectOk(graft(["revert", String(target.pid)]));
  await switched(target, "old", from);
  expect(textDiff(original, textSnapshot(target.pid, exe))).toEqual([]);
  expect(graft(["status", String(target.pid)]).stdout).toBe(
    `pid ${target.pid}: no patches applied by graft\n`,
  );
  expect(patchStatus(target.pid)).toMatchObject({ patches: [], retired: [] });
  expect(isAlive(target.pid)).toBe(true);
}

function errorCode(f: () => unknown): string | undefined {
  try {
    f();
  } catch (e) {
    if (e instanceof GraftError) return e.code;
    throw e;
  }
  return undefined;
}

async function start(
  workers = 8,
): Promise<{ target: LiveTarget; original: ReturnType<typeof textSnapshot> }> {
  const target = startTarget(exe, [String(workers)], dir, "crash", { nice: 19 });
  started.push(target);
  await waitForTick(target, (t) => t.value === 14 && (workers === 0 || t.fields.old! > 0), {
    what: "old answers",
  });
  return { target, original: textSnapshot(target.pid, exe) };
}

async function crashApply(p: Point): Promise<void> {
  const { target, original } = await start();
  try {
    await crashAndRecover(target, p, ["apply", String(target.pid), patch], original);
  } finally {
    killTarget(target);
  }
}

describe("graft killed halfway through an apply", () => {
  it.each(APPLY_POINTS)(
    "at $point: the target runs $runs code, status says $sites, revert restores every byte",
    crashApply,
  );
});

// A single-threaded process is stopped once for both the code mapping and the redirects
// (apply-patch.ts): the points inside that one stop, where graft dies holding the only thread.
describe("graft killed halfway through an apply to a single-threaded process", () => {
  it.each(
    APPLY_POINTS.filter((p) =>
      ["apply:mapped", "apply:loaded", "apply:wrote-far", "apply:wrote-entry"].includes(p.point),
    ),
  )("at $point: the target runs $runs code, status says $sites, revert restores every byte", async (p) => {
    const { target, original } = await start(0);
    try {
      await crashAndRecover(target, p, ["apply", String(target.pid), patch], original, mainSwitched);
    } finally {
      killTarget(target);
    }
  });
});

describe("graft killed halfway through a revert", () => {
  it.each(REVERT_POINTS)(
    "at $point: the target runs $runs code, status says $sites, revert finishes exactly",
    async (p) => {
      const { target, original } = await start();
      try {
        expectOk(graft(["apply", String(target.pid), patch]));
        await expectSwitched(target, NEW, undefined);
        await crashAndRecover(target, p, ["revert", String(target.pid)], original);
      } finally {
        killTarget(target);
      }
    },
  );
});
