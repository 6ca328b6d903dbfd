/**
 * What a `graft trace` changed in a process, on disk while it is attached: the hooks (site and GOT
 * bytes, before and after), where the runtime and its memory are, and each function's return point.
 * Written before the first hook byte (write-ahead) and removed after a clean detach, so a graft
 * trace that was killed (SIGKILL, a crash, a closed terminal) leaves enough for `graft trace
 * --detach PID` to take the hooks out, put the return addresses back and unmap the runtime exactly
 * as the tracer itself would have; `graft status PID` reports it. One file per process, named by
 * its PID and start time like the patch journal (a reused PID never inherits it).
 */
import { readFileSync, unlinkSync } from "node:fs";
import { join } from "node:path";
import { GraftError } from "../core/errors.js";
import { writeFileDurably } from "./durable-file.js";
import { processKey, stateDir } from "./state-dir.js";

export interface TraceJournal {
  readonly pid: number;
  readonly key: string;
  /** The tracing graft process and when it attached. */
  readonly by: { readonly pid: number; readonly at: string };
  readonly codeBase: string;
  readonly codeSize: string;
  readonly dataBase: string;
  readonly privateBase: string;
  readonly layout: { readonly slots: number; readonly ringBytes: number; readonly shadowEntries: number };
  readonly tidOffset: number;
  readonly functions: readonly {
    readonly fid: number;
    readonly name: string;
    readonly address: string;
    readonly kind: "sled" | "fentry" | "hotpatch" | "overwrite";
    readonly site: string;
    readonly args: boolean;
    /** Where a followed call's return-address slot points while the function runs. */
    readonly returnPoint: string;
  }[];
  /** Every hook write (sites, GOT slots), hex bytes. */
  readonly writes: readonly {
    readonly address: string;
    readonly before: string;
    readonly after: string;
    readonly room: number;
  }[];
}

function pathOf(key: string): string {
  return join(stateDir(), `${key}.trace.json`);
}

/** Durably write the journal (before the first hook byte: write-ahead). */
export function saveTraceJournal(journal: TraceJournal): void {
  writeFileDurably(pathOf(journal.key), `${JSON.stringify(journal, null, 2)}\n`);
}

/** The journal of a trace attached to `pid`, or undefined when none is on record. */
export function loadTraceJournal(pid: number): TraceJournal | undefined {
  const path = pathOf(processKey(pid));
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
  try {
    return JSON.parse(text) as TraceJournal;
  } catch {
    throw new GraftError("PATCH_CORRUPT", `trace journal ${path} is not valid JSON`, {
      subject: `pid ${pid}`,
      hint: "inspect it by hand; graft cannot trust it",
    });
  }
}

/** Forget the trace of process `key` (its hooks are out, or the process is gone). */
export function removeTraceJournal(key: string): void {
  try {
    unlinkSync(pathOf(key));
  } catch {}
}
