/**
 * `graft trace` on a running process with a known call graph (target.c): gcc and clang, sled and
 * fentry sites, PIE and non-PIE, 4 worker threads, recursion, a signal handler, longjmp. Each cell:
 * attach by PID, trigger one round, stop with SIGINT; the call counts are exact, every thread's events
 * nest (each exit closes the latest open call of that function), callers are the ones in the source;
 * after detach every executable byte equals the file's, the runtime is unmapped, and the next round
 * prints the same result. A child forked inside traced calls returns through them (its copy of the
 * shadow stacks) and exits cleanly. Then `-- CMD` mode, repeated attach/detach, and the chrome/text outputs.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { buildFixture, type Compiler, type OutputKind, repoRoot } from "../../support/fixtures.js";
import { cli, ensureBuilt, runGraft } from "../../support/graft-cli.js";
import {
  killTarget,
  type LiveTarget,
  maps,
  output,
  readMem,
  startTarget,
  waitFor,
} from "../../support/live-target.js";

const source = join(repoRoot, "test/scenarios/trace/target.c");
const dir = mkdtempSync(join(tmpdir(), "graft-trace-"));
const env = { GRAFT_STATE_DIR: dir };

/** Calls per round, from target.c (main is entered before graft attaches: not seen). */
const PER_ROUND: Record<string, number> = {
  on_usr1: 1,
  round_once: 1,
  worker: 4,
  a: 4000,
  b: 4000,
  leaf: 12001,
  fib: 1973,
  signal_test: 1,
  on_usr2: 1,
  handler_work: 1,
  jumper: 1,
  deep: 6,
  forker: 1,
};

/** Who may call whom (a traced caller, or `-` for a root). */
const CALLERS: Record<string, readonly string[]> = {
  on_usr1: ["-"],
  round_once: ["-"],
  worker: ["-"],
  a: ["worker"],
  b: ["a"],
  leaf: ["a", "b", "handler_work"],
  fib: ["fib", "round_once"],
  signal_test: ["round_once"],
  on_usr2: ["signal_test"],
  handler_work: ["on_usr2"],
  jumper: ["round_once"],
  deep: ["deep", "jumper"],
  forker: ["round_once"],
};

interface Event {
  type: "entry" | "exit" | "unwound";
  tid: number;
  function: string;
  depth: number;
}

interface TraceJson {
  functions: { name: string; kind: string }[];
  calls: number;
  summary: { name: string; calls: number }[];
  losses: { ringFull: number; shadowFull: number; noSlot: number; unwound: number; corrupt: number };
  runtime: { code: string; data: string };
  detach: { sitesRestored: number; unmapped: boolean; keptBecause?: string };
}

let target: LiveTarget | undefined;
afterEach(() => {
  killTarget(target);
  target = undefined;
});

beforeAll(() => ensureBuilt());

/** Start `graft trace` in the background; resolves once it says it is tracing. */
async function startGraft(
  args: readonly string[],
): Promise<{ child: ChildProcess; done: Promise<{ stdout: string; stderr: string; code: number | null }> }> {
  const child = spawn("node", [cli, "trace", ...args], { env: { ...process.env, ...env }, cwd: dir });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d) => {
    stdout += d;
  });
  child.stderr.on("data", (d) => {
    stderr += d;
  });
  const done = new Promise<{ stdout: string; stderr: string; code: number | null }>((resolve) =>
    child.on("close", (code) => resolve({ stdout, stderr, code })),
  );
  let exited = false;
  void done.then(() => {
    exited = true;
  });
  await waitFor(() => stderr.includes("graft: tracing") || exited, "graft to attach");
  if (exited) throw new Error(`graft trace failed: ${stderr}`);
  return { child, done };
}

/** The running executable's r-x mapping compared with the same bytes of the file. */
function textMatchesFile(pid: number, exe: string): boolean {
  const file = readFileSync(exe);
  const text = maps(pid).filter((m) => m.perms.includes("x") && m.path === exe);
  expect(text.length).toBeGreaterThan(0);
  for (const m of text) {
    const length = Number(m.end - m.start);
    const live = readMem(pid, m.start, length);
    const off = Number(m.offset);
    const fromFile = file.subarray(off, off + length);
    if (!live.subarray(0, fromFile.length).equals(fromFile)) return false;
  }
  return true;
}

function roundLine(t: LiveTarget, n: number): string | undefined {
  return new RegExp(`^round ${n} result (-?\\d+)$`, "m").exec(output(t))?.[1];
}

/**
 * Every thread's events nest; with `callers`, each call's traced caller is one target.c allows
 * (only when every function is hooked: otherwise the nearest hooked ancestor shows as the caller).
 */
function checkNesting(events: readonly Event[], callers = true): void {
  const stacks = new Map<number, string[]>();
  for (const e of events) {
    const stack = stacks.get(e.tid) ?? [];
    stacks.set(e.tid, stack);
    if (e.type === "entry") {
      const caller = stack.at(-1) ?? "-";
      if (callers) expect(CALLERS[e.function], `${e.function} called by ${caller}`).toContain(caller);
      expect(e.depth).toBe(stack.length);
      stack.push(e.function);
    } else {
      expect(stack.at(-1), `${e.type} of ${e.function}`).toBe(e.function);
      stack.pop();
      expect(e.depth).toBe(stack.length);
    }
  }
  for (const s of stacks.values()) expect(s).toEqual([]);
}

function counts(events: readonly Event[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const e of events) if (e.type === "entry") out[e.function] = (out[e.function] ?? 0) + 1;
  return out;
}

/** Attach by PID, run one round, detach; returns the JSON result and the events. */
async function traceOneRound(t: LiveTarget, round: number, extra: readonly string[] = []) {
  const events = join(dir, `events-${t.pid}-${round}.jsonl`);
  const g = await startGraft([String(t.pid), "--json", "--format", "json", "-o", events, ...extra]);
  process.kill(t.pid, "SIGUSR1");
  await waitFor(() => roundLine(t, round) !== undefined, `round ${round}`);
  g.child.kill("SIGINT");
  const r = await g.done;
  expect(r.code, r.stderr).toBe(0);
  const json = JSON.parse(r.stdout) as TraceJson;
  const list = readFileSync(events, "utf8")
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => JSON.parse(l) as Event);
  return { json, events: list, stderr: r.stderr };
}

const CELLS: [Compiler, "sled" | "fentry", OutputKind, string[]][] = [
  ["gcc", "sled", "pie", ["-fpatchable-function-entry=5"]],
  ["gcc", "sled", "exe", ["-fpatchable-function-entry=5"]],
  ["gcc", "fentry", "pie", ["-pg", "-mfentry"]],
  ["gcc", "fentry", "exe", ["-pg", "-mfentry", "-mnop-mcount", "-mrecord-mcount"]],
  ["clang", "sled", "pie", ["-fpatchable-function-entry=5"]],
  ["clang", "sled", "exe", ["-fpatchable-function-entry=5"]],
  ["clang", "fentry", "pie", ["-pg", "-mfentry"]],
  ["clang", "fentry", "exe", ["-pg", "-mfentry"]],
];

describe.each(CELLS)("graft trace, %s %s sites, %s", (compiler, kind, outputKind, flags) => {
  const exe = buildFixture({ compiler, sources: [source], flags: ["-O2", ...flags], output: outputKind });

  it("counts every call exactly, nests them, restores the bytes and leaves the output unchanged", async () => {
    target = startTarget(exe, [], dir, `trace-${compiler}-${kind}-${outputKind}`);
    await waitFor(() => output(target!).startsWith("ready"), "the target to start");
    expect(textMatchesFile(target.pid, exe)).toBe(true);
    const { json, events } = await traceOneRound(target, 1);
    expect(counts(events)).toEqual(PER_ROUND);
    expect(Object.fromEntries(json.summary.map((s) => [s.name, s.calls]))).toEqual(PER_ROUND);
    expect(json.losses).toEqual({ ringFull: 0, shadowFull: 0, noSlot: 0, unwound: 6, corrupt: 0 });
    expect(events.filter((e) => e.type === "unwound").map((e) => e.function)).toEqual(Array(6).fill("deep"));
    expect(new Set(events.filter((e) => e.function === "worker").map((e) => e.tid)).size).toBe(4);
    checkNesting(events);
    // Detach: the bytes are the file's, the runtime is gone, and the program runs on unchanged.
    expect(json.detach.unmapped, json.detach.keptBecause).toBe(true);
    expect(textMatchesFile(target.pid, exe)).toBe(true);
    const starts = maps(target.pid).map((m) => m.start);
    expect(starts).not.toContain(BigInt(json.runtime.code));
    expect(starts).not.toContain(BigInt(json.runtime.data));
    const first = roundLine(target, 1);
    process.kill(target.pid, "SIGUSR1");
    await waitFor(() => roundLine(target!, 2) !== undefined, "round 2");
    expect(roundLine(target, 2)).toBe(first);
  });
});

describe.each<[Compiler]>([["gcc"], ["clang"]])("graft trace, %s build without patch flags", (compiler) => {
  const exe = buildFixture({ compiler, sources: [source], flags: ["-O2"], output: "pie" });

  it("hooks hotpatch and overwrite sites, running the displaced instructions, with exact counts", async () => {
    target = startTarget(exe, [], dir, `trace-plain-${compiler}`);
    await waitFor(() => output(target!).startsWith("ready"), "the target to start");
    const { json, events } = await traceOneRound(target, 1);
    const hooked = json.functions.map((f) => f.name);
    const kinds = new Set(json.functions.map((f) => f.kind));
    expect([...kinds].every((k) => k === "hotpatch" || k === "overwrite")).toBe(true);
    for (const f of ["worker", "a", "b", "fib"]) expect(hooked).toContain(f);
    const expected = Object.fromEntries(Object.entries(PER_ROUND).filter(([f]) => hooked.includes(f)));
    expect(counts(events)).toEqual(expected);
    checkNesting(events, false);
    expect(textMatchesFile(target.pid, exe)).toBe(true);
    const first = roundLine(target, 1);
    process.kill(target.pid, "SIGUSR1");
    await waitFor(() => roundLine(target!, 2) !== undefined, "round 2");
    expect(roundLine(target, 2)).toBe(first);
  });
});

describe("graft trace, repeated and started", () => {
  const exe = buildFixture({
    compiler: "gcc",
    sources: [source],
    flags: ["-O2", "-fpatchable-function-entry=5"],
    output: "pie",
  });

  it("attaches and detaches three times on the same process, with filters and a depth limit", async () => {
    target = startTarget(exe, [], dir, "trace-repeat");
    await waitFor(() => output(target!).startsWith("ready"), "the target to start");
    const one = await traceOneRound(target, 1, ["-F", "a", "-F", "leaf"]);
    expect(counts(one.events)).toEqual({ a: 4000, leaf: 12001 });
    const two = await traceOneRound(target, 2, ["-N", "leaf", "-N", "b", "--depth", "1"]);
    // Depth 1: only outermost traced calls are recorded (worker in threads; main-thread roots).
    expect(counts(two.events)).toEqual({ on_usr1: 1, round_once: 1, worker: 4 });
    const three = await traceOneRound(target, 3, ["--args", "fib", "-F", "fib"]);
    const fibs = readFileSync(join(dir, `events-${target.pid}-3.jsonl`), "utf8")
      .split("\n")
      .filter((l) => l.includes('"entry"'))
      .map((l) => JSON.parse(l) as { args: string[] });
    expect(three.json.calls).toBe(1973);
    expect(fibs[0]!.args[0]).toBe("0xf"); // fib(15)
    expect(textMatchesFile(target.pid, exe)).toBe(true);
    expect(new Set([roundLine(target, 1), roundLine(target, 2), roundLine(target, 3)]).size).toBe(1);
  });

  it("reads rings that wrap many times (4 KiB buffers): no record twice, none torn, every loss counted", async () => {
    target = startTarget(exe, [], dir, "trace-wrap");
    await waitFor(() => output(target!).startsWith("ready"), "the target to start");
    const events = join(dir, `events-${target.pid}-wrap.jsonl`);
    const g = await startGraft([
      String(target.pid),
      "--json",
      "--format",
      "json",
      "-o",
      events,
      "--buffer-size",
      "4K",
    ]);
    const ROUNDS = 4;
    for (let round = 1; round <= ROUNDS; round++) {
      process.kill(target.pid, "SIGUSR1");
      await waitFor(() => roundLine(target!, round) !== undefined, `round ${round}`);
    }
    g.child.kill("SIGINT");
    const r = await g.done;
    expect(r.code, r.stderr).toBe(0);
    const json = JSON.parse(r.stdout) as TraceJson;
    // A round is ~44,000 records through 256-record rings: they fill (counted) and wrap many times.
    expect(json.losses.ringFull).toBeGreaterThan(0);
    expect(json.losses.corrupt).toBe(0);
    // Records read from later laps (each round starts where the last ended, over the old records):
    // more than one ring's worth, and never one read twice or left from a lap before.
    expect(json.calls).toBeGreaterThan(256);
    const seen = counts(
      readFileSync(events, "utf8")
        .split("\n")
        .filter((l) => l !== "")
        .map((l) => JSON.parse(l) as Event),
    );
    for (const [name, n] of Object.entries(seen)) expect(n).toBeLessThanOrEqual(ROUNDS * PER_ROUND[name]!);
    expect(new Set([1, 2, 3, 4].map((n) => roundLine(target!, n))).size).toBe(1);
    expect(textMatchesFile(target.pid, exe)).toBe(true);
  });

  it("takes out with --detach the hooks a killed graft trace left, and refuses while a tracer runs", async () => {
    target = startTarget(exe, [], dir, "trace-left");
    await waitFor(() => output(target!).startsWith("ready"), "the target to start");
    const live = await startGraft([String(target.pid), "--format", "summary"]);
    const busy = runGraft(["trace", "--detach", String(target.pid)], env);
    expect(busy.status).not.toBe(0);
    expect(busy.stderr).toMatch(/^graft: error: .*TARGET_LOCKED|is changing process/m);
    // Killed in the middle of a round: calls may be in flight (their return addresses hijacked).
    process.kill(target.pid, "SIGUSR1");
    live.child.kill("SIGKILL");
    await live.done;
    await waitFor(() => roundLine(target!, 1) !== undefined, "round 1");
    expect(textMatchesFile(target.pid, exe)).toBe(false);
    const status = runGraft(["status", String(target.pid)], env);
    expect(status.stdout).toMatch(
      /trace hooks of graft pid \d+ .* that graft is gone: run graft trace --detach/,
    );
    const r = runGraft(["trace", "--detach", String(target.pid), "--json"], env);
    expect(r.status, r.stderr).toBe(0);
    const left = JSON.parse(r.stdout) as { sitesRestored: number; unmapped: boolean; functions: number };
    expect(left.sitesRestored).toBeGreaterThanOrEqual(left.functions);
    expect(textMatchesFile(target.pid, exe)).toBe(true);
    expect(maps(target.pid).some((m) => m.path.includes("graft-trace"))).toBe(false);
    process.kill(target.pid, "SIGUSR1");
    await waitFor(() => roundLine(target!, 2) !== undefined, "round 2");
    expect(roundLine(target, 2)).toBe(roundLine(target, 1));
    expect(runGraft(["status", String(target.pid)], env).stdout).not.toContain("trace hooks");
    const again = runGraft(["trace", "--detach", String(target.pid)], env);
    expect(again.status).not.toBe(0);
    expect(again.stderr.trim().split("\n")).toHaveLength(1);
  });

  it("ends with the exit status of a command it started (code, or 128 + the signal that ended it)", () => {
    const exits = buildFixture({
      compiler: "gcc",
      sources: [join(repoRoot, "test/scenarios/trace/exits.c")],
      flags: ["-O2", "-fpatchable-function-entry=5"],
      output: "pie",
    });
    const seven = runGraft(["trace", "--json", "-F", "step", "--", exits, "7"], env);
    expect(seven.status, seven.stderr).toBe(7);
    const json = JSON.parse(seven.stdout) as TraceJson & { exit: unknown };
    expect(json.exit).toEqual({ code: 7 });
    expect(json.calls).toBe(100);
    expect(seven.stderr).toContain("process exited with status 7");
    const signalled = runGraft(["trace", "--format", "summary", "-F", "step", "--", exits, "signal"], env);
    expect(signalled.status, signalled.stderr).toBe(128 + 15);
    expect(signalled.stderr).toContain("process exited on signal 15");
    expect(runGraft(["trace", "--format", "summary", "--", exits, "0"], env).status).toBe(0);
  });

  it("starts a command under trace with -- and writes readable text and valid Chrome JSON", () => {
    const chrome = join(dir, "t.json");
    const r = runGraft(["trace", "--format", "chrome", "-o", chrome, "--", exe, "now"], env);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^round 1 result \d+$/m);
    const trace = JSON.parse(readFileSync(chrome, "utf8")) as { traceEvents: Record<string, unknown>[] };
    const calls = trace.traceEvents.filter((e) => e.ph === "X");
    expect(calls.length).toBeGreaterThan(PER_ROUND.leaf!);
    for (const e of calls) {
      expect(typeof e.name).toBe("string");
      expect(typeof e.ts).toBe("number");
      expect(typeof e.dur).toBe("number");
      expect(e.pid).toEqual(expect.any(Number));
      expect(e.tid).toEqual(expect.any(Number));
    }
    expect(calls.filter((e) => e.name === "main")).toHaveLength(1);
    const text = runGraft(["trace", "-F", "round_once", "-F", "jumper", "-F", "deep", "--", exe, "now"], env);
    expect(text.status, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/\[ *\d+\] \| round_once\(\) \{\n.*\[ *\d+\] \| {3}jumper\(\) \{\n/);
    expect(text.stdout).toMatch(/ [nu]s \[ *\d+\] \| +deep\(\); \/\* left by longjmp or throw \*\//);
    expect(text.stdout).toMatch(/^ +1 +\S+ \S+ +\S+ \S+ +\S+ \S+ {2}round_once$/m);
    expect(text.stdout).toContain("# no events lost; 6 frame(s) left by longjmp or throw");
  });
});
