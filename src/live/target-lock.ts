import { closeSync, openSync, readFileSync, renameSync, unlinkSync, writeSync } from "node:fs";
import { join } from "node:path";
import { RefusedError } from "../core/errors.js";
import { processKey, stateDir } from "./state-dir.js";

/** A held lock on one target process; release it when done (also on failure). */
export interface TargetLock {
  release(): void;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Take the per-target lock so that two graft processes never change one process at once: an
 * O_EXCL lock file holding the owner's PID. A lock whose owner has died is stale and is taken over.
 */
export function lockTarget(pid: number): TargetLock {
  const path = join(stateDir(), `${processKey(pid)}.lock`);
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = openSync(path, "wx", 0o600);
      writeSync(fd, `${process.pid}\n`);
      closeSync(fd);
      return {
        release() {
          try {
            unlinkSync(path);
          } catch {}
        },
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      let owner = Number.NaN;
      try {
        owner = Number.parseInt(readFileSync(path, "utf8"), 10);
      } catch {}
      if (Number.isFinite(owner) && owner !== process.pid && alive(owner)) {
        throw new RefusedError(
          "TARGET_LOCKED",
          [`graft (pid ${owner}) is changing process ${pid} right now`],
          {
            subject: `pid ${pid}`,
          },
        );
      }
      // Take over a stale lock by renaming it aside first: of two grafts racing for it only one rename
      // succeeds, and that one checks that what it moved is still the dead owner's lock, not a fresh one.
      const aside = `${path}.stale.${process.pid}`;
      try {
        renameSync(path, aside);
        const moved = Number.parseInt(readFileSync(aside, "utf8"), 10);
        if (moved !== owner && !(Number.isNaN(moved) && Number.isNaN(owner))) renameSync(aside, path);
        else unlinkSync(aside);
      } catch {}
    }
  }
  throw new RefusedError("TARGET_LOCKED", [`could not take the lock ${path}`], { subject: `pid ${pid}` });
}

/** The PID of the live graft holding `pid`'s lock, or undefined when nobody holds it. */
export function lockOwner(pid: number): number | undefined {
  let owner = Number.NaN;
  try {
    owner = Number.parseInt(readFileSync(join(stateDir(), `${processKey(pid)}.lock`), "utf8"), 10);
  } catch {}
  return Number.isFinite(owner) && alive(owner) ? owner : undefined;
}
