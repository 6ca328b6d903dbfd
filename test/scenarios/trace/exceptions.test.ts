/**
 * `graft trace` on C++ code that throws through traced calls (exceptions.cc), three threads: the
 * unwinder must never meet a traced frame's return point (it would find no frame there and end the
 * process in std::terminate). The program must finish with its untraced output, every call must be
 * counted, the frames an exception left (and only those) recorded as unwound — the catching frames
 * go on and their returns are traced. g++ and clang++, sled and fentry sites, started with -- and
 * attached to a running process.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { buildFixture, type Compiler, repoRoot } from "../../support/fixtures.js";
import { ensureBuilt, runGraft } from "../../support/graft-cli.js";
import { killTarget, type LiveTarget, output, startTarget, waitFor } from "../../support/live-target.js";

const source = join(repoRoot, "test/scenarios/trace/exceptions.cc");
const dir = mkdtempSync(join(tmpdir(), "graft-trace-exc-"));
const env = { GRAFT_STATE_DIR: dir, GMON_OUT_PREFIX: join(dir, "gmon") };
const HOOKED = ["leaf", "middle", "outer", "relay", "top", "work", "note"];
const filters = HOOKED.flatMap((f) => ["-F", f]);

/** Calls in one run of three threads of work(700) (exceptions.cc). */
const CALLS: Record<string, number> = {
  work: 3,
  outer: 2100,
  top: 2100,
  relay: 2100,
  middle: 4200,
  leaf: 4200,
  note: 4500,
};
/** Frames left by a throw: leaf and middle on both paths, relay's too on the rethrow path; 100 per path and thread. */
const UNWOUND = 3 * (100 * 2 + 100 * 3);

interface TraceJson {
  summary: { name: string; calls: number }[];
  losses: { ringFull: number; shadowFull: number; noSlot: number; unwound: number; corrupt: number };
  unmatchedExits: number;
  exit?: { code?: number; signal?: number };
}

/** graft's JSON after the target's own lines on the shared stdout. */
function parseJson(stdout: string): TraceJson {
  return JSON.parse(stdout.slice(stdout.indexOf("\n{") + 1)) as TraceJson;
}

const CELLS: [Compiler, "sled" | "fentry", string[]][] = [
  ["gcc", "sled", ["-fpatchable-function-entry=5"]],
  ["gcc", "fentry", ["-pg", "-mfentry"]],
  ["clang", "sled", ["-fpatchable-function-entry=5"]],
  ["clang", "fentry", ["-pg", "-mfentry"]],
];

beforeAll(() => ensureBuilt());

let target: LiveTarget | undefined;
afterEach(() => {
  killTarget(target);
  target = undefined;
});

describe.each(CELLS)("graft trace, C++ exceptions, %s %s sites", (compiler, kind, flags) => {
  const exe = buildFixture({
    compiler,
    sources: [source],
    flags: ["-O2", ...flags],
    output: "pie",
    libs: ["-lstdc++"],
  });

  it("runs to the untraced result, counts every call and unwinds exactly the frames thrown through", () => {
    const untraced = execFileSync(exe, { encoding: "utf8", cwd: dir, env: { ...process.env, ...env } });
    expect(untraced).toMatch(/^result (\d+) \1 \1 noted \d+\n$/);
    const r = runGraft(["trace", "--json", ...filters, "--", exe], env);
    expect(r.status, `${kind}: ${r.stderr}`).toBe(0);
    expect(r.stdout.startsWith(untraced)).toBe(true);
    const json = parseJson(r.stdout);
    expect(json.exit).toEqual({ code: 0 });
    expect(Object.fromEntries(json.summary.map((s) => [s.name, s.calls]))).toEqual(CALLS);
    expect(json.losses).toEqual({ ringFull: 0, shadowFull: 0, noSlot: 0, unwound: UNWOUND, corrupt: 0 });
    expect(json.unmatchedExits).toBe(0);
  });

  it("lets a child forked inside traced calls throw through the frames it inherited", () => {
    const r = runGraft(["trace", "--json", "-F", "fork_a", "-F", "fork_b", "--", exe, "fork"], env);
    expect(r.status, `${kind}: ${r.stderr}`).toBe(0);
    expect(r.stdout).toMatch(/^caught in the child\nchild exit 0\n/);
  });

  it("traces every function of the program alike, never a cold part (landing pads live there)", () => {
    const untraced = execFileSync(exe, { encoding: "utf8", cwd: dir, env: { ...process.env, ...env } });
    const r = runGraft(["trace", "--json", "--", exe], env);
    expect(r.status, `${kind}: ${r.stderr}`).toBe(0);
    expect(r.stdout.startsWith(untraced)).toBe(true);
    const json = parseJson(r.stdout) as TraceJson & { functions: { name: string }[] };
    const names = json.functions.map((f) => f.name);
    expect(names).toEqual(expect.arrayContaining([...HOOKED, "main"]));
    expect(names.filter((n) => n.includes(".cold"))).toEqual([]);
    expect(json.losses.unwound).toBe(UNWOUND);
    expect(json.losses.corrupt).toBe(0);
  });
});

describe("graft trace, C++ exceptions, attached to a running process", () => {
  const exe = buildFixture({
    compiler: "gcc",
    sources: [source],
    flags: ["-O2", "-fpatchable-function-entry=5"],
    output: "pie",
    libs: ["-lstdc++"],
  });

  it("keeps a throwing process alive and right while traced and after, twice", async () => {
    target = startTarget(exe, ["loop"], dir, "exceptions-loop");
    await waitFor(() => /^result \d+$/m.test(output(target!)), "the first result");
    const expected = /^result (\d+)$/m.exec(output(target))![1];
    for (let round = 0; round < 2; round++) {
      const r = runGraft(["trace", String(target.pid), "--json", "--duration", "1", ...filters], env);
      expect(r.status, r.stderr).toBe(0);
      const json = parseJson(r.stdout);
      const calls = Object.fromEntries(json.summary.map((s) => [s.name, s.calls]));
      expect(calls.outer).toBeGreaterThan(0);
      expect(json.losses.unwound).toBeGreaterThan(0); // exceptions were thrown through traced frames
      expect(json.losses.corrupt).toBe(0);
      const seen = output(target).length;
      await waitFor(() => /^result \d+$/m.test(output(target!).slice(seen)), "a result after detach");
    }
    const results = new Set([...output(target).matchAll(/^result (\d+)$/gm)].map((m) => m[1]));
    expect([...results]).toEqual([expected]);
  });
});
