/**
 * bench:fleet — graft apply/status/revert --all-of on N processes (default 1000) of one binary on
 * this machine, against the naive peer measured in the same run: one `gdb -batch -p PID` per
 * process writing the same 5 bytes at the patched function's entry (the bytes already there, a
 * no-op write of equal size). gdb runs on a sample (default 50) and is extrapolated to N, which the
 * output says. The targets (test/scenarios/fleet/target.c) sleep between calls and check their
 * own answers; every one is checked alive and patched (by graft status, which reads the bytes).
 *
 *   npx tsx bench/fleet/run.ts [--processes N] [--jobs J] [--gdb-sample S] [--memory-sample M]
 *   (npm run bench:fleet -- --processes N)
 */
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { buildPatchFile } from "../../src/live/build-patch-file.js";

const here = dirname(fileURLToPath(import.meta.url));
// graft as installed: the compiled library (npm run build), so --jobs workers start as plain node
// processes (under tsx each would spend a second compiling TypeScript first).
const { runFleet }: typeof import("../../src/live/fleet.js") = await import(
  pathToFileURL(resolve(here, "../../dist/live/fleet.js")).href
);
const scenario = resolve(here, "../../test/scenarios/fleet");

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(name);
  return i < 0 ? fallback : Number(process.argv[i + 1]);
}
const N = arg("--processes", 1000);
const JOBS = arg("--jobs", cpus().length);
const SAMPLE = Math.min(N, arg("--gdb-sample", 50));
// Private memory is measured (smaps_rollup before and after) on this many of the N, spread evenly.
const MEMORY_SAMPLE = Math.min(N, arg("--memory-sample", 50));
const GOAL_S = 2;

function quantile(values: number[], q: number): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? Number.NaN;
}

const dir = mkdtempSync(join(tmpdir(), "graft-bench-fleet-"));
// Journals on tmpfs, as graft's default state dir /run/graft is on a normal host (here /run is on
// disk, where each journal fsync would cost ~2 ms per process).
const stateDir = mkdtempSync("/dev/shm/graft-bench-fleet-state-");
process.env.GRAFT_STATE_DIR = stateDir;
const exe = join(dir, "target");
execFileSync("gcc", ["-O2", "-fPIE", "-pie", "-o", exe, join(scenario, "target.c")]);
const patch = join(dir, "fix.graft");
const built = buildPatchFile({ fix: join(scenario, "fix.c"), target: exe, output: patch });
const compute = built.manifest.functions[0]!;

// Start all targets detached from one shell (not our children: see test/support/live-target.ts).
// N for graft's fleet run, plus a sample that gets the patch as a private copy (memory compared on
// processes patched for the first time: a revert leaves the copied-on-write page of the redirect).
const script = `for i in $(seq ${N + SAMPLE}); do nice -n 5 "$0" 1000 >/dev/null 2>&1 </dev/null & echo $!; done`;
const all = execFileSync("sh", ["-c", script, exe], { encoding: "utf8", maxBuffer: 1 << 24 })
  .trim()
  .split("\n")
  .map(Number);
const pids = all.slice(0, N);
const sample = all.slice(N);
const kill = (): void => {
  for (const p of all) {
    try {
      process.kill(p, "SIGKILL");
    } catch {}
  }
};
try {
  // Wait until each has run main (its ld.so work done): its compute() has been called.
  execFileSync("sleep", ["1"]);
  console.log(`${N} processes of ${exe}, ${cpus().length} CPUs, ${JOBS} graft job(s)`);

  // CPU time of graft itself (this process and its reaped workers, user + sys): what the run costs
  // regardless of how loaded the machine is (wall time here also waits for other work on the CPUs).
  const cpuSeconds = (): number => {
    const f = readFileSync("/proc/self/stat", "latin1").split(") ")[1]!.split(" ");
    return (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / 100;
  };
  const cpuBefore = cpuSeconds();
  const applied = await runFleet(
    exe,
    { kind: "apply", patch },
    { jobs: JOBS, continueOnError: true, pids, memorySample: MEMORY_SAMPLE },
  );
  const applyCpu = cpuSeconds() - cpuBefore;
  const status = await runFleet(exe, { kind: "status" }, { jobs: JOBS, pids });
  const reverted = await runFleet(
    exe,
    { kind: "revert" },
    { jobs: JOBS, continueOnError: true, pids, memorySample: MEMORY_SAMPLE },
  );
  const pauses = applied.processes.flatMap((p) => (p.pauseMs === undefined ? [] : [p.pauseMs]));
  const priv = applied.processes.flatMap((p) => (p.privateKiB === undefined ? [] : [p.privateKiB]));
  const alive = pids.filter((p) => {
    try {
      return !/\) [ZX] /.test(readFileSync(`/proc/${p}/stat`, "latin1"));
    } catch {
      return false;
    }
  }).length;

  // Memory without sharing: the same patch as a private anonymous copy in each of a sample.
  const unshared = await runFleet(
    exe,
    { kind: "apply", patch, sharedCode: false },
    { jobs: JOBS, pids: sample },
  );
  await runFleet(exe, { kind: "revert" }, { jobs: JOBS, pids: sample });
  const privUnshared = unshared.processes.flatMap((p) => (p.privateKiB === undefined ? [] : [p.privateKiB]));

  // The peer: gdb -batch per process, the same 5-byte write at compute's entry (bytes already there).
  const bias = (pid: number): bigint => {
    const line = readFileSync(`/proc/${pid}/maps`, "utf8")
      .split("\n")
      .find((l) => l.endsWith(exe));
    return BigInt(`0x${line!.split("-")[0]}`);
  };
  const gdbStart = performance.now();
  let gdbOk = 0;
  for (const pid of pids.slice(0, SAMPLE)) {
    const at = bias(pid) + BigInt(compute.address);
    const r = spawnSync(
      "gdb",
      [
        "-nx",
        "-batch",
        "-p",
        String(pid),
        "-ex",
        `set {unsigned char[5]}0x${at.toString(16)} = *(unsigned char(*)[5])0x${at.toString(16)}`,
      ],
      { encoding: "utf8" },
    );
    if (r.status === 0) gdbOk++;
  }
  const gdbPerProcessMs = (performance.now() - gdbStart) / SAMPLE;
  const gdbTotalS = (gdbPerProcessMs * N) / 1000;

  const s = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;
  console.log(
    `apply  --all-of: ${s(applied.totalMs)} total (${JSON.stringify(applied.summary)}), ${(applied.totalMs / N).toFixed(2)} ms/process`,
  );
  console.log(
    `apply CPU time of graft (all jobs, user+sys): ${applyCpu.toFixed(2)} s = ${((applyCpu * 1000) / N).toFixed(2)} ms/process; load average ${readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ")}`,
  );
  const split = new Map<number, number>();
  for (const p of applied.processes) if (p.by !== undefined) split.set(p.by, (split.get(p.by) ?? 0) + 1);
  console.log(
    `apply split over the jobs: ${[...split].map(([by, n]) => `${by === process.pid ? "graft" : `worker ${by}`} ${n}`).join(", ")}`,
  );
  console.log(`status --all-of: ${s(status.totalMs)} (${JSON.stringify(status.summary)})`);
  console.log(`revert --all-of: ${s(reverted.totalMs)} (${JSON.stringify(reverted.summary)})`);
  console.log(
    `pause per process (the targets are single-threaded: one stop maps the code and writes the redirects): p50 ${quantile(pauses, 0.5).toFixed(2)} ms, p99 ${quantile(pauses, 0.99).toFixed(2)} ms, max ${Math.max(...pauses).toFixed(2)} ms`,
  );
  console.log(
    `private memory gained per process (Private_Dirty, measured on ${priv.length} of the ${N}): p50 ${quantile(priv, 0.5)} KiB, max ${Math.max(...priv)} KiB`,
  );
  console.log(
    `  the same patch as a private copy in each process (no shared code file, ${sample.length} processes): p50 ${quantile(privUnshared, 0.5)} KiB, max ${Math.max(...privUnshared)} KiB`,
  );
  console.log(`alive after apply+revert: ${alive}/${N}`);
  console.log(
    `gdb -batch per process: ${gdbPerProcessMs.toFixed(0)} ms (measured on ${SAMPLE}, ${gdbOk} ok) → ${gdbTotalS.toFixed(1)} s for ${N} (extrapolated)`,
  );
  console.log(
    `ratio gdb/graft (apply, ${N} processes): ${(gdbTotalS / (applied.totalMs / 1000)).toFixed(1)}x; goal ≤ ${GOAL_S} s: ${applied.totalMs / 1000 <= GOAL_S ? "met" : "not met"}`,
  );
} finally {
  kill();
  rmSync(dir, { recursive: true, force: true });
  rmSync(stateDir, { recursive: true, force: true });
}
