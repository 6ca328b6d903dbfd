import { type ChildProcess, fork } from "node:child_process";
import { extname } from "node:path";
import { fileURLToPath } from "node:url";
import { GraftError, RefusedError } from "../core/errors.js";
import { readElfFile } from "../formats/elf/elf-file.js";
import { findProcessesMapping } from "../process/processes-mapping.js";
import {
  type FleetOperation,
  type FleetProcessResult,
  type FleetShared,
  runFleetTarget,
} from "./fleet-target.js";
import { removeStaleJournals, withoutStaleSweep } from "./journal.js";
import { readPatchFile } from "./patch-file.js";
import { ModuleCache } from "./target-modules.js";

export interface FleetOptions {
  /** Processes worked on at once: graft's own thread and jobs − 1 worker processes (default 1). */
  readonly jobs?: number;
  /** Go on after a process fails (default: stop starting new ones; the rest are `skipped`). */
  readonly continueOnError?: boolean;
  /** Called after each process (for a progress bar) with its row. */
  readonly onProgress?: (done: number, total: number, row: FleetProcessResult) => void;
  /** Only these PIDs (they must map the binary); default every process that does. */
  readonly pids?: readonly number[];
  /**
   * Measure the private memory gained (apply) or given back (revert) on this many processes, spread
   * evenly over the list; default every process. Each measure walks the process's page tables twice
   * (smaps_rollup), a tenth of a millisecond each, worth saving on a fleet of thousands.
   */
  readonly memorySample?: number;
}

export interface FleetResult {
  readonly operation: FleetOperation["kind"];
  readonly binary: string;
  readonly buildId: string;
  readonly jobs: number;
  /** Wall time from the first process found to the last row, in milliseconds. */
  readonly totalMs: number;
  readonly processes: readonly FleetProcessResult[];
  readonly summary: Readonly<Record<string, number>>;
}

/**
 * `graft apply|revert|status --all-of BIN`: find every process that maps BIN (by build-id, deleted or
 * replaced files too) and run the operation on each: with `jobs` > 1, graft's own thread and
 * jobs − 1 worker processes take one PID at a time; each reads the patch and parses each library
 * once for all its processes. A failing process is a row of the result, never an exception.
 */
export async function runFleet(
  binary: string,
  op: FleetOperation,
  options: FleetOptions = {},
): Promise<FleetResult> {
  const buildId = readElfFile(binary).buildId();
  if (buildId === undefined) {
    throw new GraftError("BUILD_ID_MISMATCH", "the binary has no build-id to find its processes by", {
      subject: binary,
      hint: "link with --build-id (the default of gcc and clang on most distributions)",
    });
  }
  const patchFile = op.kind === "apply" ? readPatchFile(op.patch) : undefined;
  if (patchFile !== undefined && patchFile.manifest.target.buildId !== buildId) {
    throw new RefusedError(
      "BUILD_ID_MISMATCH",
      [
        `the patch is for build-id ${patchFile.manifest.target.buildId} (${patchFile.manifest.target.file}), ${binary} has ${buildId}`,
      ],
      { subject: binary },
    );
  }
  const started = performance.now();
  const wanted = Math.max(1, options.jobs ?? 1);
  // Workers boot (load graft, ~0.3 s of CPU) while this thread looks for the processes.
  const pool = wanted > 1 ? startWorkers(wanted - 1, op) : [];
  let rows: FleetProcessResult[];
  try {
    const found = findProcessesMapping(buildId, binary).map((p) => p.pid);
    const only = options.pids === undefined ? undefined : new Set(options.pids);
    const pids = only === undefined ? found : found.filter((p) => only.has(p));
    if (pids.length === 0) {
      throw new GraftError("NO_SUCH_PROCESS", `no process maps a file with build-id ${buildId}`, {
        subject: binary,
        hint: "is it running? graft finds processes by the build-id of the file they mapped",
      });
    }
    removeStaleJournals();
    const measured = spreadSample(pids, options.memorySample);
    rows = await runAll(pids, op, { patchFile, moduleCache: new ModuleCache() }, pool, options, measured);
  } finally {
    for (const w of pool) if (w.connected) w.disconnect();
  }
  const jobs = pool.length + 1;
  const summary: Record<string, number> = {};
  for (const r of rows) summary[r.outcome] = (summary[r.outcome] ?? 0) + 1;
  return {
    operation: op.kind,
    binary,
    buildId,
    jobs,
    totalMs: performance.now() - started,
    processes: [...rows].sort((a, b) => a.pid - b.pid),
    summary,
  };
}

const FAILED = new Set(["failed", "refused", "gone"]);

/** `count` of `pids` spread evenly over the list (every one when count is undefined or large enough). */
function spreadSample(pids: readonly number[], count: number | undefined): ReadonlySet<number> {
  if (count === undefined || count >= pids.length) return new Set(pids);
  const out = new Set<number>();
  for (let i = 0; i < count; i++) out.add(pids[Math.floor((i * pids.length) / count)]!);
  return out;
}

/** The worker's entry point, beside this file (`.ts` when graft runs from source, through tsx). */
function workerEntry(): { path: string; execArgv: string[] } {
  const ext = extname(fileURLToPath(import.meta.url));
  const path = fileURLToPath(new URL(`./fleet-worker${ext}`, import.meta.url));
  return { path, execArgv: ext === ".ts" ? ["--import", "tsx"] : [] };
}

/** The PIDs sent to a worker and not yet answered, oldest first (the one it works on). */
type Worker = ChildProcess & { inFlight: number[] };

/**
 * PIDs handed to a worker ahead: graft's own thread answers the workers' messages only between two
 * of its own processes (each a synchronous ~2 ms), so a worker given one PID at a time waited for
 * it about half of that every time; with the next one already queued it goes straight on. The cost:
 * after the first failure without --continue-on-error, a worker may still start the one it holds.
 */
const IN_FLIGHT = 2;

function startWorkers(count: number, op: FleetOperation): Worker[] {
  const entry = workerEntry();
  return Array.from({ length: count }, () => {
    const w = fork(entry.path, [], {
      execArgv: entry.execArgv,
      serialization: "advanced",
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    }) as Worker;
    w.inFlight = [];
    w.send({ op });
    return w;
  });
}

/**
 * Work through `pids`: graft's own thread takes one process at a time, each worker holds up to
 * IN_FLIGHT (`--jobs N` = this thread + N − 1 workers), yielding between processes so the workers'
 * messages are answered. A worker that dies has its current process reported `failed` and the ones
 * it had not started put back; the others go on.
 */
function runAll(
  pids: readonly number[],
  op: FleetOperation,
  shared: FleetShared,
  pool: readonly Worker[],
  options: FleetOptions,
  measured: ReadonlySet<number>,
): Promise<FleetProcessResult[]> {
  const rows: FleetProcessResult[] = [];
  const queue = [...pids];
  let stop = false;
  const take = (): number | undefined => (stop ? undefined : queue.shift());
  const record = (row: FleetProcessResult): void => {
    rows.push(row);
    if (FAILED.has(row.outcome) && !options.continueOnError) stop = true;
    options.onProgress?.(rows.length, pids.length, row);
  };
  let live = pool.length + 1;
  let localRunning = true;
  return new Promise((resolve) => {
    const finish = (): void => {
      if (--live > 0) return;
      for (const pid of queue) rows.push({ pid, outcome: "skipped", ms: 0 });
      queue.length = 0;
      resolve(rows);
    };
    for (const w of pool) {
      const next = (): void => {
        while (w.inFlight.length < IN_FLIGHT) {
          const pid = take();
          if (pid === undefined) break;
          w.inFlight.push(pid);
          w.send({ pid, measureMemory: measured.has(pid) });
        }
        if (w.inFlight.length === 0 && w.connected) w.disconnect();
      };
      w.on("message", (m: { ready?: boolean; row?: FleetProcessResult }) => {
        if (m.row !== undefined) {
          w.inFlight = w.inFlight.filter((pid) => pid !== m.row!.pid);
          record(m.row);
        }
        next();
      });
      w.on("exit", (code, signal) => {
        const [current, ...unstarted] = w.inFlight;
        w.inFlight = [];
        if (current !== undefined) {
          // The worker died on this process (a bug, an OOM kill): report it, go on with the others.
          record({
            pid: current,
            outcome: "failed",
            code: "INTERNAL",
            message: `graft worker exited (${signal ?? code}) while on this process`,
            ms: 0,
          });
        }
        queue.unshift(...unstarted);
        // This thread may have run out of work already: it takes the ones put back.
        if (!localRunning && !stop && queue.length > 0) {
          localRunning = true;
          live++;
          setImmediate(local);
        }
        finish();
      });
      w.on("error", () => {});
    }
    const local = (): void => {
      const pid = take();
      if (pid === undefined) {
        localRunning = false;
        finish();
        return;
      }
      record({
        ...withoutStaleSweep(() => runFleetTarget(pid, op, shared, measured.has(pid))),
        by: process.pid,
      });
      setImmediate(local);
    };
    setImmediate(local);
  });
}
