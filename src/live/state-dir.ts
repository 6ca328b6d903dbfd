import { mkdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ProcessError } from "../core/errors.js";

/**
 * Where graft keeps journals and locks: $GRAFT_STATE_DIR, else /run/graft for root (tmpfs: a journal
 * lives as long as the processes it describes, i.e. until reboot), else $XDG_RUNTIME_DIR/graft.
 */
export function stateDir(): string {
  const dir =
    process.env.GRAFT_STATE_DIR ??
    (process.getuid?.() === 0
      ? "/run/graft"
      : join(process.env.XDG_RUNTIME_DIR ?? tmpdir(), `graft-${process.getuid?.() ?? "user"}`));
  if (!made.has(dir)) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    made.add(dir);
  }
  return dir;
}

/**
 * State dirs this process has made sure exist: a fleet apply asks for the dir a few times per
 * process (lock, journal, audit log, code file), and each recursive mkdir is two system calls.
 */
const made = new Set<string>();

/**
 * A name for one process that survives nothing but that process: `PID-STARTTIME`, with the start
 * time in clock ticks since boot from /proc/PID/stat field 22, so a reused PID never inherits the
 * journal of a process that died.
 */
export function processKey(pid: number): string {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    throw new ProcessError("NO_SUCH_PROCESS", "no such process", { pid, op: "read /proc/PID/stat" });
  }
  // The command name (field 2) may hold spaces and parentheses; fields after the last ')' are plain.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const startTime = fields[19];
  if (startTime === undefined)
    throw new ProcessError("INTERNAL", "unreadable /proc/PID/stat", { pid, op: "parse stat" });
  return `${pid}-${startTime}`;
}
