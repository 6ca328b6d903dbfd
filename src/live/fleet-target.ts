import { readFileSync } from "node:fs";
import { GraftError, RefusedError } from "../core/errors.js";
import { findPrivateDirtyKiB } from "../process/private-memory.js";
import { applyPatch } from "./apply-patch.js";
import type { Consistency } from "./consistency.js";
import type { PatchFile } from "./patch-file.js";
import { patchStatus } from "./patch-status.js";
import { revertPatch } from "./revert-patch.js";
import type { ModuleCache } from "./target-modules.js";

/** What graft does to every process of a binary (graft apply/revert/status --all-of). */
export type FleetOperation =
  | {
      readonly kind: "apply";
      readonly patch: string;
      readonly consistency?: Consistency;
      readonly timeoutMs?: number;
      /** false: each process gets a private copy of the code (see ApplyOptions.sharedCode). */
      readonly sharedCode?: boolean;
    }
  | {
      readonly kind: "revert";
      readonly patch?: string;
      readonly all?: boolean;
      readonly consistency?: Consistency;
      readonly timeoutMs?: number;
    }
  | { readonly kind: "status" };

/**
 * The outcome for one process. `applied`/`reverted`: done; `patched`/`unpatched`/`inconsistent`:
 * status (every patch applied / none / a patch left partial, foreign or unfinished); `refused`: a
 * safety check said no, nothing changed; `failed`: an error, the process as it was (or, with
 * rollback incomplete, as the journal says); `gone`: the process exited meanwhile; `skipped`: not
 * tried, an earlier process failed and --continue-on-error was not given.
 */
export type FleetOutcome =
  | "applied"
  | "reverted"
  | "patched"
  | "unpatched"
  | "inconsistent"
  | "refused"
  | "failed"
  | "gone"
  | "skipped";

/** One row of the per-process table. */
export interface FleetProcessResult {
  readonly pid: number;
  readonly outcome: FleetOutcome;
  /** Error code when refused or failed. */
  readonly code?: string;
  readonly message?: string;
  /** Longest time every thread of the process was stopped, in milliseconds (apply, revert). */
  readonly pauseMs?: number;
  /** Private_Dirty gained (apply) or given back (revert, negative), in KiB. */
  readonly privateKiB?: number;
  /** Patches in the process (status): `id sites-state`. */
  readonly patches?: readonly string[];
  /** Wall time graft spent on this process, in milliseconds. */
  readonly ms: number;
  /** The graft process that handled it: graft's own PID or a --jobs worker's (how the work was split). */
  readonly by?: number;
}

/** What is read once and shared by every process one worker handles. */
export interface FleetShared {
  readonly patchFile: PatchFile | undefined;
  readonly moduleCache: ModuleCache;
}

/** The process exists and is not a zombie (a killed process stays one until its parent reaps it). */
function alive(pid: number): boolean {
  try {
    return !/\) [ZX] /.test(readFileSync(`/proc/${pid}/stat`, "latin1"));
  } catch {
    return false;
  }
}

/**
 * Run the operation on one process; never throws (the error becomes the row). `measureMemory`: read
 * Private_Dirty before and after (two /proc/PID/smaps_rollup walks, ~0.1 ms each; a fleet may
 * measure a sample only, FleetOptions.memorySample).
 */
export function runFleetTarget(
  pid: number,
  op: FleetOperation,
  shared: FleetShared,
  measureMemory = true,
): FleetProcessResult {
  const started = performance.now();
  const ms = (): number => performance.now() - started;
  try {
    if (op.kind === "status") {
      const s = patchStatus(pid);
      const clean = s.patches.every((p) => p.journal === "applied" && p.sites === "applied");
      return {
        pid,
        outcome: s.patches.length === 0 ? "unpatched" : clean ? "patched" : "inconsistent",
        patches: s.patches.map((p) => `${p.id} ${p.journal === "applied" ? p.sites : p.journal}`),
        ms: ms(),
      };
    }
    const before = measureMemory ? findPrivateDirtyKiB(pid) : undefined;
    let pauseNs = 0;
    let outcome: FleetOutcome;
    if (op.kind === "apply") {
      const r = applyPatch(pid, op.patch, {
        ...(shared.patchFile === undefined ? {} : { patchFile: shared.patchFile }),
        moduleCache: shared.moduleCache,
        ...(op.consistency === undefined ? {} : { consistency: op.consistency }),
        ...(op.timeoutMs === undefined ? {} : { timeoutMs: op.timeoutMs }),
        ...(op.sharedCode === undefined ? {} : { sharedCode: op.sharedCode }),
      });
      pauseNs = r.pause?.windowNs ?? 0;
      outcome = "applied";
    } else {
      const r = revertPatch(pid, {
        ...(op.patch === undefined ? {} : { patch: op.patch }),
        ...(op.all === undefined ? {} : { all: op.all }),
        ...(op.consistency === undefined ? {} : { consistency: op.consistency }),
        ...(op.timeoutMs === undefined ? {} : { timeoutMs: op.timeoutMs }),
        moduleCache: shared.moduleCache,
      });
      pauseNs = Math.max(0, ...r.pauses.map((p) => p.windowNs));
      outcome = "reverted";
    }
    const after = before === undefined ? undefined : findPrivateDirtyKiB(pid);
    return {
      pid,
      outcome,
      pauseMs: pauseNs / 1e6,
      ...(before === undefined || after === undefined ? {} : { privateKiB: after - before }),
      ms: ms(),
    };
  } catch (e) {
    if (!alive(pid)) return { pid, outcome: "gone", message: "the process exited", ms: ms() };
    if (e instanceof GraftError)
      return {
        pid,
        outcome: e instanceof RefusedError ? "refused" : "failed",
        code: e.code,
        message: e.message,
        ms: ms(),
      };
    return { pid, outcome: "failed", code: "INTERNAL", message: (e as Error).message, ms: ms() };
  }
}
