import { openMemory } from "../process/memory.js";
import { lockOwner } from "./target-lock.js";
import { loadTraceJournal } from "./trace-journal.js";

/** A graft trace on record for a process (trace-journal.ts), and how much of it is still in. */
export interface TraceStatus {
  /** The graft that attached, and when. */
  readonly by: { readonly pid: number; readonly at: string };
  /** That graft still runs (it holds the target's lock): the trace is live, not left behind. */
  readonly tracerRunning: boolean;
  readonly functions: number;
  /** Hook writes (sites and GOT slots) on record, and how many still hold graft's bytes. */
  readonly hooks: number;
  readonly hooksIn: number;
}

/** The trace attached to `pid`, or undefined when graft has none on record. */
export function traceStatus(pid: number): TraceStatus | undefined {
  const journal = loadTraceJournal(pid);
  if (journal === undefined) return undefined;
  const mem = openMemory(pid);
  let hooksIn = 0;
  try {
    for (const w of journal.writes) {
      try {
        if (Buffer.from(mem.read(BigInt(w.address), w.after.length / 2)).toString("hex") === w.after)
          hooksIn++;
      } catch {}
    }
  } finally {
    mem.close();
  }
  return {
    by: journal.by,
    tracerRunning: lockOwner(pid) === journal.by.pid,
    functions: journal.functions.length,
    hooks: journal.writes.length,
    hooksIn,
  };
}
