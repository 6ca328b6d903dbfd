/**
 * diff → build → apply on a running process, for cases of the diff catalogue: the target runs the
 * original build (orig/prog.o + harness); `graft build --orig --patched` makes the patch; once it is
 * applied the target prints what the patched build prints (the oracle: that build run once), and
 * after `graft revert` what the original prints again, byte for byte the same code.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildDiffCase, observedValue } from "../support/diff-fixtures.js";
import type { Compiler } from "../support/fixtures.js";
import {
  killTarget,
  type LiveTarget,
  lastTick,
  runGraft,
  startTarget,
  textDiff,
  textSnapshot,
  waitForTick,
} from "../support/live-target.js";

let dir: string;
const started: LiveTarget[] = [];

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "graft-diff-live-"));
  process.env.GRAFT_STATE_DIR = join(dir, "state");
});

afterAll(() => {
  for (const t of started) killTarget(t);
  rmSync(dir, { recursive: true, force: true });
});

const LIVE: readonly [string, Compiler][] = [
  ["inlined-static", "gcc"],
  ["inlined-static", "clang"],
  ["constprop-clone", "gcc"],
  ["isra-clone", "gcc"],
  ["cold-part", "gcc"],
  ["new-static-function", "gcc"],
  ["new-static-function", "clang"],
  ["new-global-variable", "gcc"],
  ["changed-string", "gcc"],
  ["changed-string", "clang"],
  ["switch-table", "gcc"],
  ["recursion", "clang"],
  ["variadic", "gcc"],
  ["grows", "gcc"],
  ["const-table", "gcc"],
  ["static-local", "gcc"],
  ["function-pointers", "clang"],
  ["float-constant", "gcc"],
  ["caller-only", "gcc"],
];

describe("a patch built from two builds changes a running process, and revert restores it", () => {
  for (const [name, compiler] of LIVE) {
    it(`${name} (${compiler})`, async () => {
      const c = buildDiffCase(name, compiler);
      const before = observedValue(c.target);
      const after = observedValue(c.patchedTarget);
      expect(after, "the case must change what observe() returns").not.toBe(before);
      const patch = join(dir, `${name}-${compiler}.graft`);
      const built = runGraft([
        "build",
        "--orig",
        c.orig,
        "--patched",
        c.patched,
        "-t",
        c.target,
        "-o",
        patch,
        "--json",
      ]);
      expect(built.status, built.stderr + built.stdout).toBe(0);
      const t = startTarget(c.target, [], dir, `${name}-${compiler}`);
      started.push(t);
      const first = await waitForTick(t, (x) => x.value === before, { what: `the original value ${before}` });
      const text = textSnapshot(t.pid, c.target);
      const applied = runGraft(["apply", String(t.pid), patch]);
      expect(applied.status, applied.stderr).toBe(0);
      const patched = await waitForTick(t, (x) => x.value === after, {
        after: first,
        what: `the patched value ${after}`,
      });
      // Every tick printed after the one that showed the patched value shows it too.
      await waitForTick(t, (x) => x.tick >= patched.tick + 3, { after: patched });
      expect(lastTick(t)!.value).toBe(after);
      const reverted = runGraft(["revert", String(t.pid)]);
      expect(reverted.status, reverted.stderr).toBe(0);
      const back = await waitForTick(t, (x) => x.value === before, {
        after: lastTick(t),
        what: `the original value ${before} again`,
      });
      expect(back.value).toBe(before);
      expect(textDiff(text, textSnapshot(t.pid, c.target))).toEqual([]);
      killTarget(t);
    });
  }
});
