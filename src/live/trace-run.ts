import { processIsAlive } from "../process/process-alive.js";
import type { TraceSession } from "./trace-session.js";

export interface TraceRunOptions {
  /** Stop after this long (default: until `shouldStop` or the process exits). */
  readonly durationMs?: number;
  /** Polled between drains (e.g. set by a SIGINT handler). */
  readonly shouldStop?: () => boolean;
}

/** Why the run ended. */
export type TraceRunEnd = "stopped" | "duration" | "exited";

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Drain the session's rings until asked to stop, the duration is over, or the process is gone:
 * back to back while megabytes keep coming, every millisecond for a trickle, every 10 ms when idle. Asynchronous, so a SIGINT
 * handler gets to run between drains; all ptrace work stays on this thread (attach/detach).
 */
export async function runTrace(session: TraceSession, options: TraceRunOptions = {}): Promise<TraceRunEnd> {
  const until = options.durationMs === undefined ? Number.POSITIVE_INFINITY : Date.now() + options.durationMs;
  for (;;) {
    const copied = session.drain();
    if (options.shouldStop?.() === true) return "stopped";
    if (Date.now() >= until) return "duration";
    if (!processIsAlive(session.pid)) return "exited";
    // Busy: drain again at once (still yielding, so SIGINT gets through); a trickle: 1 ms; idle: 10 ms.
    if (copied >= 1 << 20) await new Promise<void>((resolve) => setImmediate(resolve));
    else await sleep(copied > 0 ? 1 : 10);
  }
}
