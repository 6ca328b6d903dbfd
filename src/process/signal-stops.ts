/**
 * Threads that graft keeps attached while the process runs (graft break, graft trace --usdt) report
 * more than the traps graft set: clones, exits and other event stops. One polling round handles those
 * the same way for every such user and hands back only the signal-delivery-stops to interpret.
 */
import { cont, getEventMsg, PTRACE_EVENT, waitThread } from "./ptrace.js";

/** A thread in a signal-delivery-stop: it stays stopped until the caller continues it. */
export interface SignalStop {
  readonly tid: number;
  readonly signal: number;
}

/** What one polling round over the attached threads found. */
export interface SignalStopRound {
  /** Signal-delivery-stops, for the caller to handle and continue. */
  readonly stops: SignalStop[];
  /** Nothing reported at all: the caller may sleep before the next round. */
  readonly idle: boolean;
}

/**
 * Poll every thread in `threads` once (WNOHANG). Exited and vanished threads are removed; a
 * PTRACE_EVENT_CLONE adds the new thread (attached by PTRACE_O_TRACECLONE) and continues the parent;
 * any other event stop is continued.
 */
export function pollSignalStops(pid: number, threads: Set<number>): SignalStopRound {
  const stops: SignalStop[] = [];
  let idle = true;
  for (const tid of [...threads]) {
    let status: ReturnType<typeof waitThread>;
    try {
      status = waitThread(tid, { noHang: true, pid });
    } catch {
      threads.delete(tid); // ECHILD: gone and reaped
      continue;
    }
    if (status === undefined) continue;
    idle = false;
    if (status.kind === "exited" || status.kind === "signaled") {
      threads.delete(tid);
      continue;
    }
    if (status.kind !== "stopped") continue;
    if (status.event === PTRACE_EVENT.PTRACE_EVENT_CLONE) {
      threads.add(Number(getEventMsg(tid, pid)));
      cont(tid, 0, pid);
    } else if (status.event !== 0) {
      cont(tid, 0, pid);
    } else {
      stops.push({ tid, signal: status.signal });
    }
  }
  return { stops, idle };
}
