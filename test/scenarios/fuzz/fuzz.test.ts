/**
 * The short form of bench/fuzz: a few thousand damaged patches, manifests and target files
 * (test/support/patch-fuzz.ts) through the readers and `graft apply --dry-run` against a live
 * process. Not one may crash graft — every failure is a GraftError with a code — and the dry runs
 * change nothing: the target's text and mappings are what they were, no journal, lock or audit line.
 */
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildPatchFile } from "../../../src/live/build-patch-file.js";
import { buildFixture, repoRoot } from "../../support/fixtures.js";
import {
  isAlive,
  killTarget,
  type LiveTarget,
  maps,
  startTarget,
  textDiff,
  textSnapshot,
  waitForTick,
} from "../../support/live-target.js";
import { FUZZ_KINDS, fuzzPatches } from "../../support/patch-fuzz.js";

const CASES = 2000;
const hardening = join(repoRoot, "test/scenarios/hardening");

let dir: string;
let exe: string;
let patch: string;
let target: LiveTarget;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "graft-fuzz-"));
  process.env.GRAFT_STATE_DIR = join(dir, "state");
  exe = buildFixture({
    compiler: "gcc",
    sources: [join(hardening, "target.c")],
    flags: ["-O2", "-fpatchable-function-entry=16,14", "-flive-patching=inline-clone"],
    output: "pie",
  });
  patch = join(dir, "fix.graft");
  buildPatchFile({ fix: join(hardening, "fix.c"), target: exe, output: patch });
  target = startTarget(exe, ["2"], dir, "fuzz", { nice: 19 });
  await waitForTick(target, (t) => t.value === 14, { what: "old answers" });
});

afterAll(() => {
  killTarget(target);
  rmSync(dir, { recursive: true, force: true });
});

describe("fuzzing patches, manifests and target files", () => {
  it(`${CASES} cases: no crash of graft, every failure a coded GraftError, and dry runs write nothing`, () => {
    const text = textSnapshot(target.pid, exe);
    const mappings = maps(target.pid).map((m) => `${m.start}-${m.end} ${m.perms}`);
    const tally = fuzzPatches({ pid: target.pid, patch, exe, cases: CASES, seed: 7, dir });
    expect(tally.crashes).toEqual([]);
    expect(Object.values(tally.perKind)).toEqual(FUZZ_KINDS.map(() => CASES / FUZZ_KINDS.length));
    // The damage reaches past the readers: into manifest checks, site verification and linking.
    expect(Object.keys(tally.codes)).toEqual(expect.arrayContaining(["PATCH_CORRUPT", "ELF_CORRUPT"]));
    expect(Object.keys(tally.codes).length).toBeGreaterThanOrEqual(5);
    expect(textDiff(text, textSnapshot(target.pid, exe))).toEqual([]);
    expect(maps(target.pid).map((m) => `${m.start}-${m.end} ${m.perms}`)).toEqual(mappings);
    const state = join(dir, "state");
    expect(existsSync(state) ? readdirSync(state) : []).toEqual([]);
    expect(isAlive(target.pid)).toBe(true);
    console.log(
      `fuzz: ${tally.cases} cases in ${(tally.totalMs / 1000).toFixed(1)} s, codes ${JSON.stringify(tally.codes)}`,
    );
  });
});
