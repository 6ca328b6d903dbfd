/**
 * Two patches stacked on one function: patch 1 replaces compute() (x * 3); patch 2, built
 * `--after` patch 1, replaces compute() again (x * 4) and flavor() (2). Reverting patch 1 under
 * patch 2 is refused with REVERT_ORDER and changes nothing; reverting patch 2 brings back patch 1's
 * behaviour; reverting patch 1 brings back the original, byte for byte.
 */
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { GraftError } from "../../../src/core/errors.js";
import { applyPatch } from "../../../src/live/apply-patch.js";
import { buildPatchFile } from "../../../src/live/build-patch-file.js";
import { patchStatus } from "../../../src/live/patch-status.js";
import { revertPatch } from "../../../src/live/revert-patch.js";
import { buildFixture, type Compiler } from "../../support/fixtures.js";
import {
  expectSwitched,
  isAlive,
  killTarget,
  lastTick,
  startTarget,
  textDiff,
  textSnapshot,
  useScenario,
  waitForTick,
} from "../../support/live-target.js";

const here = dirname(fileURLToPath(import.meta.url));

const { dir, started } = useScenario("graft-stacked-");

/** The error code `f` throws (undefined when it does not throw a GraftError). */
function codeOf(f: () => unknown): string | undefined {
  try {
    f();
  } catch (e) {
    if (e instanceof GraftError) return e.code;
    throw e;
  }
  return undefined;
}

const ORIGINAL = { value: 14, fields: { flavor: 0 }, grows: "x2", frozen: ["x3", "x4"] };
const PATCH1 = { value: 21, fields: { flavor: 0 }, grows: "x3", frozen: ["x2", "x4"] };
const PATCH2 = { value: 28, fields: { flavor: 2 }, grows: "x4", frozen: ["x2", "x3"] };

const LAYOUTS: readonly { name: string; compiler: Compiler; flags: string[]; pie: boolean; kind: string }[] =
  [
    {
      name: "gcc -O2 PIE, sled 16,14",
      compiler: "gcc",
      flags: ["-O2", "-fpatchable-function-entry=16,14", "-flive-patching=inline-clone"],
      pie: true,
      kind: "sled",
    },
    {
      name: "clang -O0 non-PIE, entry overwrite",
      compiler: "clang",
      flags: ["-O0"],
      pie: false,
      kind: "overwrite",
    },
  ];

type Layout = (typeof LAYOUTS)[number];

/** The target for a layout and its two patches, patch 2 built --after patch 1. */
function buildAll(layout: Layout) {
  const exe = buildFixture({
    compiler: layout.compiler,
    sources: [join(here, "target.c")],
    flags: layout.flags,
    output: layout.pie ? "pie" : "exe",
  });
  const p1 = join(dir, `p1-${layout.compiler}.graft`);
  const p2 = join(dir, `p2-${layout.compiler}.graft`);
  const b1 = buildPatchFile({ fix: join(here, "fix.c"), target: exe, output: p1 });
  const b2 = buildPatchFile({ fix: join(here, "fix2.c"), target: exe, output: p2, after: [p1] });
  expect(b2.manifest.dependsOn).toEqual([b1.manifest.id]);
  expect(b2.manifest.functions.map((f) => [f.name, f.kind]).sort()).toEqual([
    ["compute", layout.kind],
    ["flavor", layout.kind],
  ]);
  return { exe, p1, p2, b1, b2 };
}

describe.each(LAYOUTS)("stacked patches on a $name target", (layout) => {
  it("apply 1, apply 2 --after 1, refuse to revert 1 first, revert 2, revert 1: exact at every step", async () => {
    const { exe, p1, p2, b1, b2 } = buildAll(layout);

    const target = startTarget(exe, ["8"], dir, "stacked");
    started.push(target);
    try {
      const running = await waitForTick(target, (t) => t.value === 14 && t.fields.x2! > 0, {
        what: "old answers",
      });
      const original = textSnapshot(target.pid, exe);
      const ids = () => patchStatus(target.pid).patches.map((p) => [p.id, p.journal, p.sites]);

      // Patch 2 alone is refused: it was built on top of patch 1.
      expect(codeOf(() => applyPatch(target.pid, p2))).toBe("DEPENDENCY_MISSING");
      expect(textDiff(original, textSnapshot(target.pid, exe))).toEqual([]);
      expect(ids()).toEqual([]);

      applyPatch(target.pid, p1);
      await expectSwitched(target, PATCH1, running);
      applyPatch(target.pid, p2);
      const both = await expectSwitched(target, PATCH2, lastTick(target));
      expect(ids()).toEqual([
        [b1.manifest.id, "applied", "applied"],
        [b2.manifest.id, "applied", "applied"],
      ]);

      // Patch 1 cannot go while patch 2 builds on it; nothing changes.
      const stackedText = textSnapshot(target.pid, exe);
      expect(codeOf(() => revertPatch(target.pid, { patch: b1.manifest.id }))).toBe("REVERT_ORDER");
      expect(codeOf(() => revertPatch(target.pid, { patch: p1 }))).toBe("REVERT_ORDER");
      expect(textDiff(stackedText, textSnapshot(target.pid, exe))).toEqual([]);
      expect(ids()).toEqual([
        [b1.manifest.id, "applied", "applied"],
        [b2.manifest.id, "applied", "applied"],
      ]);
      await expectSwitched(target, PATCH2, both);

      const r2 = revertPatch(target.pid, { patch: p2 });
      expect(r2.reverted.map((r) => [r.id, r.unmapped])).toEqual([[b2.manifest.id, true]]);
      await expectSwitched(target, PATCH1, lastTick(target));
      expect(ids()).toEqual([[b1.manifest.id, "applied", "applied"]]);

      const r1 = revertPatch(target.pid, { patch: b1.manifest.id });
      expect(r1.reverted.map((r) => [r.id, r.unmapped])).toEqual([[b1.manifest.id, true]]);
      await expectSwitched(target, ORIGINAL, lastTick(target));

      expect(textDiff(original, textSnapshot(target.pid, exe))).toEqual([]);
      const status = patchStatus(target.pid);
      expect([status.patches, status.retired]).toEqual([[], []]);
      expect(isAlive(target.pid)).toBe(true);
    } finally {
      killTarget(target);
    }
  });

  it("revert --all takes the whole stack off in one go, exactly", async () => {
    const { exe, p1, p2 } = buildAll(layout);
    const target = startTarget(exe, ["8"], dir, "stacked-all");
    started.push(target);
    try {
      await waitForTick(target, (t) => t.value === 14 && t.fields.x2! > 0, { what: "old answers" });
      const original = textSnapshot(target.pid, exe);
      applyPatch(target.pid, p1);
      applyPatch(target.pid, p2);
      await expectSwitched(target, PATCH2, undefined);
      const r = revertPatch(target.pid, { all: true });
      expect(r.reverted.map((x) => x.unmapped)).toEqual([true, true]);
      await expectSwitched(target, ORIGINAL, lastTick(target));
      expect(textDiff(original, textSnapshot(target.pid, exe))).toEqual([]);
      const status = patchStatus(target.pid);
      expect([status.patches, status.retired]).toEqual([[], []]);
    } finally {
      killTarget(target);
    }
  });
});
