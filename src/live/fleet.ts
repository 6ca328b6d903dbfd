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
  /** Processes patched at once, each by a worker process of its own (default 1: graft's own thread). */
  readonly jobs?: number;
  /** Go on after a process fails (default: stop starting new ones; the rest are `skipped`). */
  readonly continueOnError?: boolean;
  /** Called after each process (for a progress bar). */
  readonly onProgress?: (done: number, total: number) => void;
  /** Only these PIDs (they must map the binary); default every process that does. */
  readonly pids?: readonly number[];
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
 * replaced files too) and run the operation on each: with `jobs` > 1, in that many worker processes
 * fed one PID at a time; each worker reads the patch and parses each library once for all its
 * processes. A failing process is a row of the result, never an exception.
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
  const found = findProcessesMapping(buildId).map((p) => p.pid);
  const pids = options.pids === undefined ? found : found.filter((p) => options.pids!.includes(p));
  if (pids.length === 0) {
    throw new GraftError("NO_SUCH_PROCESS", `no process maps a file with build-id ${buildId}`, {
      subject: binary,
      hint: "is it running? graft finds processes by the build-id of the file they mapped",
    });
  }
  removeStaleJournals();
  const jobs = Math.max(1, Math.min(options.jobs ?? 1, pids.length));
  const rows =
    jobs === 1
      ? runHere(pids, op, { patchFile, moduleCache: new ModuleCache() }, options)
      : await runInWorkers(pids, op, jobs, options);
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

function runHere(
  pids: readonly number[],
  op: FleetOperation,
  shared: FleetShared,
  options: FleetOptions,
): FleetProcessResult[] {
  return withoutStaleSweep(() => {
    const rows: FleetProcessResult[] = [];
    let stop = false;
    for (const pid of pids) {
      if (stop) {
        rows.push({ pid, outcome: "skipped", ms: 0 });
        continue;
      }
      const row = runFleetTarget(pid, op, shared);
      rows.push(row);
      if (FAILED.has(row.outcome) && !options.continueOnError) stop = true;
      options.onProgress?.(rows.length, pids.length);
    }
    return rows;
  });
}

/** The worker's entry point, beside this file (`.ts` when graft runs from source, through tsx). */
function workerEntry(): { path: string; execArgv: string[] } {
  const ext = extname(fileURLToPath(import.meta.url));
  const path = fileURLToPath(new URL(`./fleet-worker${ext}`, import.meta.url));
  return { path, execArgv: ext === ".ts" ? ["--import", "tsx"] : [] };
}

function runInWorkers(
  pids: readonly number[],
  op: FleetOperation,
  jobs: number,
  options: FleetOptions,
): Promise<FleetProcessResult[]> {
  const entry = workerEntry();
  const rows: FleetProcessResult[] = [];
  const queue = [...pids];
  let stop = false;
  return new Promise((resolve, reject) => {
    let live = 0;
    const finish = (): void => {
      if (live > 0) return;
      for (const pid of queue) rows.push({ pid, outcome: "skipped", ms: 0 });
      queue.length = 0;
      resolve(rows);
    };
    const next = (w: ChildProcess): void => {
      const pid = stop ? undefined : queue.shift();
      if (pid === undefined) {
        w.disconnect();
        return;
      }
      (w as ChildProcess & { current?: number }).current = pid;
      w.send({ pid });
    };
    for (let i = 0; i < jobs; i++) {
      const w = fork(entry.path, [], {
        execArgv: entry.execArgv,
        serialization: "advanced",
        stdio: ["ignore", "inherit", "inherit", "ipc"],
      }) as ChildProcess & { current?: number };
      live++;
      w.send({ op });
      w.on("message", (m: { ready?: boolean; row?: FleetProcessResult }) => {
        if (m.row !== undefined) {
          w.current = undefined;
          rows.push(m.row);
          if (FAILED.has(m.row.outcome) && !options.continueOnError) stop = true;
          options.onProgress?.(rows.length, pids.length);
        }
        next(w);
      });
      w.on("exit", (code, signal) => {
        live--;
        if (w.current !== undefined) {
          // The worker died on this process (a bug or an OOM kill): report it, go on with the others.
          rows.push({
            pid: w.current,
            outcome: "failed",
            code: "INTERNAL",
            message: `graft worker exited (${signal ?? code}) while on this process`,
            ms: 0,
          });
          if (!options.continueOnError) stop = true;
        }
        finish();
      });
      w.on("error", reject);
    }
  });
}
