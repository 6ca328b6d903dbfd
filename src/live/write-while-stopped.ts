import { GraftError, ProcessError, RefusedError } from "../core/errors.js";
import { hex } from "../core/hex.js";
import type { Mapping } from "../process/maps.js";
import type { ProcessMemory } from "../process/memory.js";
import { findSavedPcInside, stepThreadsOutOf } from "../process/step-out.js";
import { type StoppedProcess, type StopWindow, stopProcess } from "../process/stop-the-world.js";
import { faultPoint } from "./fault-point.js";

/** One change to a live process's code, in the order it must be written. */
export interface StoppedWrite {
  readonly address: bigint;
  readonly bytes: Uint8Array;
  /** The range no thread may be strictly inside while it is rewritten (≥ bytes.length). */
  readonly room: number;
  /** Test-only crash point reached right after this write (fault-point.ts). */
  readonly faultPoint: string;
}

export interface WriteWhileStoppedOptions {
  readonly stopTimeoutMs?: number;
  /**
   * The process's maps: when given, also refuse (THREAD_IN_PATCH_RANGE) if a signal frame on some
   * thread's stack would return strictly inside a rewritten range.
   */
  readonly checkSignalFrames?: readonly Mapping[];
  /**
   * `--consistency quiescent`: with every thread stopped and before anything is written, the reasons
   * the process is not quiescent (one per blocking thread); any reason refuses (THREAD_NOT_QUIESCENT).
   */
  readonly findBlockers?: (stopped: StoppedProcess) => string[];
  /**
   * The process, already stopped by the caller (every thread), to use instead of stopping it here;
   * resumed here like a stop of its own, on success and on failure.
   */
  readonly stopped?: StoppedProcess;
  /** Called with every thread stopped, before anything is written; throwing aborts the transaction. */
  readonly beforeWrite?: (stopped: StoppedProcess) => void;
}

/**
 * The stop-the-world transaction every code change goes through: stop all threads, step them out of
 * the ranges to rewrite, write in order, read everything back, resume. On failure every byte written
 * is put back (last first) before resuming; if that fails too, the error says "rollback incomplete".
 */
export function writeWhileStopped(
  pid: number,
  mem: ProcessMemory,
  writes: readonly StoppedWrite[],
  options: WriteWhileStoppedOptions = {},
): { pause: StopWindow; stepped: number } {
  const stopped =
    options.stopped ??
    stopProcess(pid, options.stopTimeoutMs === undefined ? {} : { timeoutMs: options.stopTimeoutMs });
  const done: { address: bigint; before: Uint8Array }[] = [];
  try {
    const blockers = options.findBlockers?.(stopped) ?? [];
    if (blockers.length > 0)
      throw new RefusedError("THREAD_NOT_QUIESCENT", blockers, { subject: `pid ${pid}` });
    const ranges = writes.map((w) => ({ start: w.address, end: w.address + BigInt(w.room) }));
    const stepped = stepThreadsOutOf(stopped, ranges);
    const saved =
      options.checkSignalFrames === undefined
        ? undefined
        : findSavedPcInside(stopped, ranges, options.checkSignalFrames);
    if (saved !== undefined) {
      throw new ProcessError(
        "THREAD_IN_PATCH_RANGE",
        `thread ${saved.tid} is in a signal handler that will return to ${hex(saved.address)}, inside bytes to rewrite`,
        { pid, tid: saved.tid, op: "check signal frames" },
      );
    }
    options.beforeWrite?.(stopped);
    for (const w of writes) {
      done.push({ address: w.address, before: mem.read(w.address, w.bytes.length) });
      mem.write(w.address, w.bytes);
      faultPoint(w.faultPoint);
    }
    for (const w of writes) {
      if (!Buffer.from(mem.read(w.address, w.bytes.length)).equals(w.bytes)) {
        throw new GraftError(
          "MEMORY_ACCESS_FAILED",
          `code at ${hex(w.address)} did not read back as written`,
          {
            subject: `pid ${pid}`,
          },
        );
      }
    }
    return { pause: stopped.resume(), stepped };
  } catch (error) {
    const problems: string[] = [];
    for (const d of done.reverse()) {
      try {
        mem.write(d.address, d.before);
      } catch (e) {
        problems.push(`could not restore ${hex(d.address)}: ${(e as Error).message}`);
      }
    }
    stopped.resume();
    if (problems.length > 0) {
      const code = error instanceof GraftError ? error.code : "INTERNAL";
      throw new GraftError(code, `${(error as Error).message}; rollback incomplete: ${problems.join("; ")}`, {
        subject: `pid ${pid}`,
        hint: "run graft revert PID",
      });
    }
    throw error;
  }
}
