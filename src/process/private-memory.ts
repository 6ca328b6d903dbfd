import { readFileSync } from "node:fs";

/**
 * Private_Dirty of a whole process in KiB, from /proc/PID/smaps_rollup (Linux ≥ 4.14): the memory
 * only this process holds and that cannot be dropped — what a patch costs it. Pages of a file
 * mapping that it has not written (shared patch code) are not in it. Undefined when unreadable.
 */
export function findPrivateDirtyKiB(pid: number): number | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/smaps_rollup`, "latin1");
  } catch {
    return undefined;
  }
  const m = /^Private_Dirty:\s+(\d+) kB$/m.exec(text);
  return m === null ? undefined : Number(m[1]);
}
