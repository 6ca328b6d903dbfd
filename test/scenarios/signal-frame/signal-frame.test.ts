/**
 * A thread in a signal handler resumes, on sigreturn, at the program counter saved in its signal
 * frame. When that address lies strictly inside bytes graft is about to rewrite, apply must not write
 * them: it retries, then refuses with THREAD_IN_PATCH_RANGE, leaving the text byte-identical. The
 * target plants such an address on a sleeping thread's stack; a control run without it applies.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GraftError } from "../../../src/core/errors.js";
import { applyPatch } from "../../../src/live/apply-patch.js";
import { buildPatchFile } from "../../../src/live/build-patch-file.js";
import { patchStatus } from "../../../src/live/patch-status.js";
import { revertPatch } from "../../../src/live/revert-patch.js";
import { buildFixture } from "../../support/fixtures.js";
import {
  isAlive,
  killTarget,
  startTarget,
  textDiff,
  textSnapshot,
  waitForTick,
} from "../../support/live-target.js";

const here = dirname(fileURLToPath(import.meta.url));
let dir: string;
let exe: string;
let patch: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "graft-signal-frame-"));
  process.env.GRAFT_STATE_DIR = join(dir, "state");
  exe = buildFixture({
    compiler: "gcc",
    sources: [join(here, "target.c")],
    flags: ["-O2", "-fpatchable-function-entry=16,14", "-flive-patching=inline-clone"],
    output: "pie",
  });
  patch = join(dir, "fix.graft");
  buildPatchFile({ fix: join(here, "fix.c"), target: exe, output: patch });
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("a saved program counter inside the rewritten bytes", () => {
  it("makes apply refuse with THREAD_IN_PATCH_RANGE and leaves every byte as it was", async () => {
    const target = startTarget(exe, ["hold"], dir, "hold");
    try {
      await waitForTick(target, (t) => t.value === 14, { what: "old answers" });
      const before = textSnapshot(target.pid, exe);
      let error: unknown;
      try {
        applyPatch(target.pid, patch);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(GraftError);
      expect((error as GraftError).code).toBe("THREAD_IN_PATCH_RANGE");
      expect((error as GraftError).message).toMatch(/signal handler/);
      expect(textDiff(before, textSnapshot(target.pid, exe))).toEqual([]);
      expect(patchStatus(target.pid).patches).toEqual([]);
      await waitForTick(target, (t) => t.value === 14, { what: "old answers still" });
      expect(isAlive(target.pid)).toBe(true);
    } finally {
      killTarget(target);
    }
  });

  it("does not stop an apply when no stack holds such an address", async () => {
    const target = startTarget(exe, [], dir, "free");
    try {
      await waitForTick(target, (t) => t.value === 14, { what: "old answers" });
      applyPatch(target.pid, patch);
      await waitForTick(target, (t) => t.value === 21, { what: "the fix's answers" });
      revertPatch(target.pid);
      await waitForTick(target, (t) => t.value === 14, { what: "old answers again" });
    } finally {
      killTarget(target);
    }
  });
});
