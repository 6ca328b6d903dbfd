/**
 * Short form of bench/stress: 100 apply/revert cycles (50 on each of two layouts) on a 16-thread target whose threads call the
 * patched function nonstop and check every answer: no cycle fails, the target never crashes, never
 * sees a wrong answer, and ends with its original code byte for byte.
 */
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { buildPatchFile } from "../../../src/live/build-patch-file.js";
import { buildFixture, type Compiler } from "../../support/fixtures.js";
import {
  isAlive,
  lastTick,
  startTarget,
  textDiff,
  textSnapshot,
  useScenario,
  waitForTick,
} from "../../support/live-target.js";
import { stressCycles } from "./stress-cycles.js";

const here = dirname(fileURLToPath(import.meta.url));
const { dir, started } = useScenario("graft-stress-");

describe.each([
  { name: "gcc -O2 sled", compiler: "gcc" as Compiler, flags: ["-O2", "-fpatchable-function-entry=16,14"] },
  { name: "clang -O0 entry overwrite", compiler: "clang" as Compiler, flags: ["-O0"] },
])("stress ($name)", ({ compiler, flags }) => {
  it("50 apply/revert cycles on 16 busy threads: no failure, no crash, no wrong answer", {
    timeout: 600_000,
  }, async () => {
    const exe = buildFixture({ compiler, sources: [join(here, "target.c")], flags, output: "pie" });
    const patch = join(dir, `fix-${compiler}.graft`);
    buildPatchFile({ fix: join(here, "fix.c"), target: exe, output: patch });
    const t = startTarget(exe, ["16"], dir, "stress");
    started.push(t);
    await waitForTick(t, (k) => k.fields.calls! > 0, { what: "workers running" });
    const original = textSnapshot(t.pid, exe);
    const outcome = stressCycles(t.pid, patch, 50, (p) => readFileSync(p, "latin1"));
    expect(outcome.failures).toEqual([]);
    expect(outcome.cycles).toBe(50);
    // Every revert's code mapping is gone or listed as retired; none is left behind unaccounted.
    expect(outcome.retired).toBeLessThan(50);
    const end = await waitForTick(t, () => true, { after: lastTick(t), what: "a tick after the cycles" });
    expect(end.fields.bad, end.line).toBe(0);
    expect(isAlive(t.pid)).toBe(true);
    expect(textDiff(original, textSnapshot(t.pid, exe))).toEqual([]);
  });
});
