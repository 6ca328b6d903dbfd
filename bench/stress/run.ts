/**
 * bench:stress — N apply/revert cycles (default 10,000) on a 16-thread process whose threads call the
 * patched function nonstop and check every answer themselves (test/scenarios/stress/target.c), for a
 * sled layout (gcc -O2 -fpatchable-function-entry=16,14) or an entry overwrite (clang -O0, where
 * threads are single-stepped out of the rewritten bytes). Reports cycles done, failures, crashes,
 * wrong answers seen by the target, code mappings retired (a thread still inside at every look until
 * the unmap deadline: safe, listed by graft status), and the pause of each apply and revert. There is
 * no peer to race here: the figure of merit is zero.
 *
 *   npx tsx bench/stress/run.ts [--cycles N] [--layout sled|overwrite] [--threads T]
 *   (npm run bench:stress -- --cycles N)
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { buildPatchFile } from "../../src/live/build-patch-file.js";
import { stressCycles } from "../../test/scenarios/stress/stress-cycles.js";

const here = dirname(fileURLToPath(import.meta.url));
const scenario = resolve(here, "../../test/scenarios/stress");

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(name);
  return i < 0 ? fallback : (process.argv[i + 1] ?? fallback);
}
const CYCLES = Number(arg("--cycles", "10000"));
const LAYOUT = arg("--layout", "sled");
const THREADS = Number(arg("--threads", "16"));

function quantile(values: readonly number[], q: number): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? Number.NaN;
}

const dir = mkdtempSync(join(tmpdir(), "graft-bench-stress-"));
const stateDir = mkdtempSync("/dev/shm/graft-bench-stress-state-");
process.env.GRAFT_STATE_DIR = stateDir;
const exe = join(dir, "target");
const [cc, flags] =
  LAYOUT === "overwrite" ? ["clang", ["-O0"]] : ["gcc", ["-O2", "-fpatchable-function-entry=16,14"]];
execFileSync(cc!, [
  ...(flags as string[]),
  "-fPIE",
  "-pie",
  "-pthread",
  "-o",
  exe,
  join(scenario, "target.c"),
]);
const patch = join(dir, "fix.graft");
buildPatchFile({ fix: join(scenario, "fix.c"), target: exe, output: patch });
const out = join(dir, "target.out");
const pid = Number(
  execFileSync("sh", ["-c", `"$0" ${THREADS} >"$1" 2>&1 </dev/null & echo $!`, exe, out], {
    encoding: "utf8",
  }),
);
const lastLine = (): string => readFileSync(out, "utf8").trim().split("\n").at(-1) ?? "";
try {
  execFileSync("sleep", ["0.5"]);
  console.log(`${CYCLES} apply/revert cycles, ${LAYOUT} layout, ${THREADS} busy threads; target ${pid}`);
  const started = performance.now();
  const step = Math.max(1, Math.floor(CYCLES / 10));
  const r = stressCycles(
    pid,
    patch,
    CYCLES,
    (p) => readFileSync(p, "latin1"),
    (done) => {
      if (done % step === 0)
        process.stderr.write(
          `  ${done} cycles, ${((performance.now() - started) / 1000).toFixed(0)} s: ${lastLine()}\n`,
        );
    },
  );
  const seconds = (performance.now() - started) / 1000;
  execFileSync("sleep", ["0.1"]);
  const tail = lastLine();
  const bad = Number(/ bad (\d+)/.exec(tail)?.[1] ?? Number.NaN);
  let alive = false;
  try {
    alive = !/\) [ZX] /.test(readFileSync(`/proc/${pid}/stat`, "latin1"));
  } catch {}
  console.log(
    `cycles done: ${r.cycles} in ${seconds.toFixed(0)} s (${((seconds * 1000) / r.cycles).toFixed(1)} ms/cycle)`,
  );
  console.log(`failures: ${r.failures.length}${r.failures.length ? ` (first: ${r.failures[0]})` : ""}`);
  console.log(`crashes: ${alive ? 0 : 1}; wrong answers seen by the target: ${bad} (last line: ${tail})`);
  console.log(`code mappings retired (thread inside until the deadline): ${r.retired}`);
  const f = (v: readonly number[]): string =>
    `p50 ${quantile(v, 0.5).toFixed(2)} ms, p99 ${quantile(v, 0.99).toFixed(2)} ms, max ${Math.max(...v).toFixed(2)} ms`;
  console.log(`apply pause: ${f(r.applyPausesMs)}`);
  console.log(`revert pause (longest stop of each): ${f(r.revertPausesMs)}`);
  console.log(
    r.failures.length === 0 && alive && bad === 0 ? "RESULT: 0 crashes, 0 wrong answers" : "RESULT: FAILED",
  );
} finally {
  try {
    process.kill(pid, "SIGKILL");
  } catch {}
  rmSync(dir, { recursive: true, force: true });
  rmSync(stateDir, { recursive: true, force: true });
}
