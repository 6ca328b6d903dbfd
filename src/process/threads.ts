/**
 * Thread enumeration from procfs: /proc/PID/task lists every thread of the thread group, and
 * /proc/PID/task/TID/status says who traces a thread and whether it is a zombie (proc(5)).
 */
import { readdirSync, readFileSync } from "node:fs";
import { ProcessError } from "../core/errors.js";

/**
 * The thread ids of a process, ascending, from /proc/PID/task. Throws NO_SUCH_PROCESS when the
 * process does not exist (or has been fully reaped).
 */
export function listThreads(pid: number): number[] {
  let names: string[];
  try {
    names = readdirSync(`/proc/${pid}/task`);
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ESRCH") {
      throw new ProcessError("NO_SUCH_PROCESS", `no process ${pid}`, { pid, op: "list threads" });
    }
    throw new ProcessError("PERMISSION_DENIED", `cannot list threads of ${pid}: ${code}`, {
      pid,
      op: "list threads",
    });
  }
  const tids: number[] = [];
  for (const name of names) {
    const tid = Number(name);
    if (Number.isInteger(tid) && tid > 0) tids.push(tid);
  }
  return tids.sort((a, b) => a - b);
}

/** The fields of /proc/PID/task/TID/status that decide whether a thread can be seized. */
export interface ThreadStatus {
  /** The one-letter state: R, S, D, T, t (tracing stop), Z (zombie), X (dead), … */
  readonly state: string;
  /** PID of the tracer, 0 when the thread is not traced. */
  readonly tracerPid: number;
  /** The thread's command name. */
  readonly name: string;
}

/** Read a thread's status, or undefined when the thread has gone. */
export function findThreadStatus(pid: number, tid: number): ThreadStatus | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/task/${tid}/status`, "latin1");
  } catch {
    return undefined;
  }
  const field = (key: string): string => {
    const m = new RegExp(`^${key}:\\s*(.*)$`, "m").exec(text);
    return m?.[1]?.trim() ?? "";
  };
  return {
    state: field("State").charAt(0),
    tracerPid: Number(field("TracerPid")) || 0,
    name: field("Name"),
  };
}

/** The command name of a process (`/proc/PID/comm`), or undefined when it has gone. */
export function findProcessName(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/comm`, "latin1").trim();
  } catch {
    return undefined;
  }
}

/**
 * The thread least likely to be missed for a moment: one asleep (state S, e.g. blocked in a system
 * call) rather than running, preferring the main thread. Used to run injected system calls while the
 * rest of the process goes on.
 */
export function pickQuietThread(pid: number): number {
  const tids = listThreads(pid);
  const asleep = tids.filter((tid) => findThreadStatus(pid, tid)?.state === "S");
  if (asleep.includes(pid)) return pid;
  const alive = tids.filter((tid) => findThreadStatus(pid, tid)?.state !== "Z");
  return asleep[0] ?? alive[0] ?? pid;
}
