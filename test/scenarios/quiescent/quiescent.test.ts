/**
 * `--consistency quiescent`: apply is refused while a thread waits inside the function being
 * replaced (two frames down, in read()), with the thread and its frames named, and nothing changes;
 * once the thread has returned, the same apply goes through. Revert likewise, while the thread waits
 * inside the patch's code (frames unwound through code that has no CFI).
 */
import { execFileSync } from "node:child_process";
import { closeSync, openSync, writeSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { RefusedError } from "../../../src/core/errors.js";
import { applyPatch } from "../../../src/live/apply-patch.js";
import { buildPatchFile } from "../../../src/live/build-patch-file.js";
import { patchStatus } from "../../../src/live/patch-status.js";
import { revertPatch } from "../../../src/live/revert-patch.js";
import { buildFixture, type Compiler } from "../../support/fixtures.js";
import {
  lastTick,
  startTarget,
  textDiff,
  textSnapshot,
  useScenario,
  waitForTick,
} from "../../support/live-target.js";

const here = dirname(fileURLToPath(import.meta.url));
const { dir, started } = useScenario("graft-quiescent-");

function poke(fifo: string): void {
  const fd = openSync(fifo, "r+");
  try {
    writeSync(fd, "x");
  } finally {
    closeSync(fd);
  }
}

function refusal(f: () => unknown): RefusedError {
  try {
    f();
  } catch (e) {
    if (e instanceof RefusedError) return e;
    throw e;
  }
  throw new Error("expected a refusal");
}

describe.each([
  { compiler: "gcc" as Compiler, flags: ["-O2"] },
  { compiler: "clang" as Compiler, flags: ["-O0"] },
])("quiescent consistency ($compiler $flags)", ({ compiler, flags }) => {
  it("refuses while a thread waits inside the function, applies once it returned; revert likewise", async () => {
    const exe = buildFixture({ compiler, sources: [join(here, "target.c")], flags, output: "pie" });
    const patch = join(dir, `fix-${compiler}.graft`);
    buildPatchFile({ fix: join(here, "fix.c"), target: exe, output: patch });
    const a = join(dir, `a-${compiler}`);
    const b = join(dir, `b-${compiler}`);
    execFileSync("mkfifo", [a, b]);
    const t = startTarget(exe, [a, b], dir, "quiescent");
    started.push(t);

    await waitForTick(t, (k) => k.value === 14 && k.fields.where === 1, { what: "worker inside answer" });
    const before = textSnapshot(t.pid, exe);
    const refused = refusal(() => applyPatch(t.pid, patch, { consistency: "quiescent", timeoutMs: 200 }));
    expect(refused.code).toBe("THREAD_NOT_QUIESCENT");
    expect(refused.reasons.length).toBe(1);
    expect(refused.reasons[0]).toMatch(
      /has a frame \(#\d\) in answer: .*block_on_a\+0x[0-9a-f]+ .*← answer\+0x/,
    );
    expect(textDiff(before, textSnapshot(t.pid, exe))).toEqual([]);
    expect(patchStatus(t.pid).patches).toEqual([]);

    poke(a); // the worker returns from answer() and waits outside it
    const outside = await waitForTick(t, (k) => k.fields.where === 2, { what: "worker outside answer" });
    applyPatch(t.pid, patch, { consistency: "quiescent", timeoutMs: 5000 });
    await waitForTick(t, (k) => k.value === 21, { after: outside, what: "new answers" });

    poke(b); // the worker now waits inside the patch's answer()
    await waitForTick(t, (k) => k.fields.where === 1, {
      after: lastTick(t),
      what: "worker inside new answer",
    });
    const r = refusal(() => revertPatch(t.pid, { consistency: "quiescent", timeoutMs: 200 }));
    expect(r.code).toBe("THREAD_NOT_QUIESCENT");
    expect(r.reasons[0]).toMatch(/the code of patch/);
    expect(patchStatus(t.pid).patches.map((p) => [p.journal, p.sites])).toEqual([["applied", "applied"]]);

    poke(a);
    await waitForTick(t, (k) => k.fields.where === 2, { after: lastTick(t), what: "worker outside again" });
    revertPatch(t.pid, { consistency: "quiescent", timeoutMs: 5000 });
    await waitForTick(t, (k) => k.value === 14, { after: lastTick(t), what: "old answers" });
    expect(textDiff(before, textSnapshot(t.pid, exe))).toEqual([]);
  });
});
