/**
 * `graft trace` through the calling shapes a stub must leave alone (stack arguments, varargs, a
 * struct by value) and past the runtime's limits (shadow stack full, no thread slot left): calls not
 * followed go straight to the function and are counted, never lost silently (shapes.c).
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { buildFixture, type Compiler, type OutputKind, repoRoot } from "../../support/fixtures.js";
import { ensureBuilt, runGraft } from "../../support/graft-cli.js";

const source = join(repoRoot, "test/scenarios/trace/shapes.c");
const dir = mkdtempSync(join(tmpdir(), "graft-trace-shapes-"));
const env = { GRAFT_STATE_DIR: dir, GMON_OUT_PREFIX: join(dir, "gmon") };

/** Calls followed with --max-threads 2: main and one worker get slots, deep() fills the shadow stack. */
const CALLS = { main: 1, deep: 1023, worker: 1, many: 1100, sum_va: 100, by_value: 100, mixed: 100 };
/** deep(3000) makes 3001 calls, 1023 followed (main holds one entry); 3 workers × (1 + 1000 calls of many). */
const LOSSES = { ringFull: 0, shadowFull: 3001 - 1023, noSlot: 3 * 1001, unwound: 0, corrupt: 0 };

const CELLS: [Compiler, OutputKind, string[]][] = [
  ["gcc", "pie", ["-fpatchable-function-entry=5"]],
  ["gcc", "exe", ["-pg", "-mfentry", "-mnop-mcount", "-mrecord-mcount"]],
  ["clang", "pie", ["-pg", "-mfentry"]],
  ["clang", "exe", ["-fpatchable-function-entry=5"]],
];

beforeAll(() => ensureBuilt());

describe.each(CELLS)("graft trace, calling shapes and limits, %s %s %s", (compiler, output, flags) => {
  const exe = buildFixture({ compiler, sources: [source], flags: ["-O2", ...flags], output });

  it("leaves every result as it was and counts each call it could not follow", () => {
    const untraced = execFileSync(exe, { encoding: "utf8", cwd: dir, env: { ...process.env, ...env } });
    const r = runGraft(
      ["trace", "--json", "--max-threads", "2", ...Object.keys(CALLS).flatMap((f) => ["-F", f]), "--", exe],
      env,
    );
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.startsWith(untraced)).toBe(true);
    const json = JSON.parse(r.stdout.slice(untraced.length)) as {
      summary: { name: string; calls: number }[];
      losses: Record<string, number>;
    };
    expect(Object.fromEntries(json.summary.map((s) => [s.name, s.calls]))).toEqual(CALLS);
    expect(json.losses).toEqual(LOSSES);
  });
});

describe.each([
  ["gcc", ["-fpatchable-function-entry=5"]],
  ["clang", ["-pg", "-mfentry"]],
] as [Compiler, string[]][])(
  "graft trace, a signal handler making traced calls every 20 µs, %s",
  (compiler, flags) => {
    const exe = buildFixture({
      compiler,
      sources: [join(repoRoot, "test/scenarios/trace/timer-signals.c")],
      flags: ["-O2", ...flags],
      output: "pie",
    });

    it("keeps the target alive and every call of the main loop counted", () => {
      const r = runGraft(["trace", "--json", "-F", "leaf", "-F", "work", "--", exe], env);
      expect(r.status, r.stderr).toBe(0); // not 132: SIGILL from an exit that found no entry
      const done = /^done (\d+)$/m.exec(r.stdout);
      expect(done).not.toBeNull();
      const json = JSON.parse(r.stdout.slice(r.stdout.indexOf("\n{") + 1)) as {
        summary: { name: string; calls: number }[];
        losses: Record<string, number>;
      };
      const calls = Object.fromEntries(json.summary.map((s) => [s.name, s.calls]));
      // Every call counted when no event was lost (the loop outruns the drain on a busy machine).
      if (json.losses.ringFull === 0) expect(calls.work).toBe(Number(done![1]));
      else expect(calls.work).toBeLessThan(Number(done![1]));
      expect(calls.leaf).toBeGreaterThan(calls.work!); // the handler's calls too
      expect(json.losses.corrupt).toBe(0);
    });
  },
);
