/**
 * `graft break` on target.c built with frame pointers: the first three calls of the recursive fib
 * stop with arguments 15, 14, 13 and a backtrace through fib and round_once; the other threads run
 * on; afterwards every executable byte is the file's and the program prints the same result. Both
 * continuation modes: skipping a one-byte sled NOP (gcc) and stepping over the replaced first byte
 * of a 5-byte NOP (clang).
 */
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { buildFixture, type Compiler, repoRoot } from "../../support/fixtures.js";
import { cli, ensureBuilt } from "../../support/graft-cli.js";
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
const dir = mkdtempSync(join(tmpdir(), "graft-break-"));
let target: LiveTarget | undefined;
afterEach(() => {
  killTarget(target);
  target = undefined;
});
beforeAll(() => ensureBuilt());

function textMatchesFile(pid: number, exe: string): boolean {
  const file = readFileSync(exe);
  return maps(pid)
    .filter((m) => m.perms.includes("x") && m.path === exe)
    .every((m) => {
      const live = readMem(pid, m.start, Number(m.end - m.start));
      const fromFile = file.subarray(Number(m.offset), Number(m.offset) + live.length);
      return live.subarray(0, fromFile.length).equals(fromFile);
    });
}

interface Hit {
  tid: number;
  function: string;
  args: string[];
  backtrace: { symbol?: string }[];
}

describe.each<[Compiler, string]>([
  ["gcc", "skip-nop"],
  ["clang", "step"],
])("graft break on a %s sled build", (compiler, mode) => {
  const exe = buildFixture({
    compiler,
    sources: [source],
    flags: ["-O2", "-fno-omit-frame-pointer", "-fpatchable-function-entry=5"],
    output: "pie",
  });

  it("stops at fib three times with its arguments and backtrace, then restores the byte", async () => {
    target = startTarget(exe, [], dir, `break-${compiler}`);
    await waitFor(() => output(target!).startsWith("ready"), "the target to start");
    const child = spawn("node", [cli, "break", String(target.pid), "fib", "--count", "3", "--json"], {
      env: { ...process.env, GRAFT_STATE_DIR: dir },
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => {
      stdout += d;
    });
    child.stderr.on("data", (d) => {
      stderr += d;
    });
    const done = new Promise<number | null>((resolve) => child.on("close", resolve));
    await waitFor(() => stderr.includes("waiting"), "the breakpoint");
    expect(stderr).toContain(`, ${mode}); waiting`);
    process.kill(target.pid, "SIGUSR1");
    expect(await done, stderr).toBe(0);
    const hits = stdout
      .split("\n")
      .filter((l) => l !== "")
      .map((l) => JSON.parse(l) as Hit);
    expect(hits.map((h) => [h.function, BigInt(h.args[0]!)])).toEqual([
      ["fib", 15n],
      ["fib", 14n],
      ["fib", 13n],
    ]);
    expect(hits[0]!.backtrace.map((f) => f.symbol?.replace(/\+0x[0-9a-f]+$/, ""))).toEqual(
      expect.arrayContaining(["fib", "round_once", "main"]),
    );
    expect(hits[2]!.backtrace.slice(0, 4).map((f) => f.symbol?.replace(/\+0x[0-9a-f]+$/, ""))).toEqual([
      "fib",
      "fib",
      "fib",
      "round_once",
    ]);
    await waitFor(() => /^round 1 result/m.test(output(target!)), "round 1");
    expect(textMatchesFile(target.pid, exe)).toBe(true);
    process.kill(target.pid, "SIGUSR1");
    await waitFor(() => /^round 2 result/m.test(output(target!)), "round 2");
    const results = [...output(target).matchAll(/^round \d result (\d+)$/gm)].map((m) => m[1]);
    expect(new Set(results).size).toBe(1);
  });
});
