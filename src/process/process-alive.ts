import { readdirSync } from "node:fs";
import { findThreadStatus } from "./threads.js";

/** True while the process exists and is neither a zombie nor dead (its memory is still there). */
export function processIsAlive(pid: number): boolean {
  const s = findThreadStatus(pid, pid);
  if (s === undefined) return false;
  if (s.state !== "Z" && s.state !== "X") return true;
  // A zombie leader whose other threads still run (it called pthread_exit) is alive.
  try {
    return otherThreadsAlive(pid);
  } catch {
    return false;
  }
}

function otherThreadsAlive(pid: number): boolean {
  return readdirSync(`/proc/${pid}/task`).some((t) => {
    const s = findThreadStatus(pid, Number(t));
    return s !== undefined && s.state !== "Z" && s.state !== "X";
  });
}
