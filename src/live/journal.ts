import { readdirSync, readFileSync, readlinkSync, unlinkSync } from "node:fs";
import { join } from "node:path";
import { GraftError } from "../core/errors.js";
import { syncFolder, writeFileDurably } from "./durable-file.js";
import { processKey, stateDir } from "./state-dir.js";

/** One byte range graft changes: what was there, what graft puts there. Hex strings. */
export interface JournalWrite {
  /** Runtime address. */
  readonly address: string;
  readonly before: string;
  readonly after: string;
  readonly function: string;
  /** `far`/`entry`: a patch's redirect; `call`: a call instruction rewritten by graft callsite. */
  readonly role: "far" | "entry" | "call";
}

/** One region graft mapped into the process for patch code. */
export interface JournalMapping {
  readonly address: string;
  readonly size: string;
  /**
   * Offset where the fix's own constants and data start, when it has any. Revert unmaps only the code
   * below it: pointers to a patch's strings or tables may live anywhere in the process.
   */
  readonly dataOffset?: string;
}

/**
 * One patch in a process. `applying`/`reverting` are written before any byte of the process changes
 * (write-ahead), so a graft that dies midway leaves enough on disk for the next one to finish or undo
 * exactly; `applied` after the last byte; a reverted patch leaves the journal.
 */
export interface JournalPatch {
  readonly id: string;
  /**
   * `callsite`: one call instruction NOP'd out or retargeted by graft callsite (id `callsite-<hash>`,
   * no code of its own: mapping size 0; `functions` names the caller, the site and the new callee).
   * Absent (journals written before call-site changes existed) or `patch`: a patch from graft apply.
   */
  readonly kind?: "patch" | "callsite";
  readonly file: string;
  /** The patch's content hash (absent for call-site changes and older journals), for the audit log. */
  readonly sha256?: string;
  readonly source: string;
  state: "applying" | "applied" | "reverting";
  readonly mapping: JournalMapping;
  readonly writes: readonly JournalWrite[];
  readonly functions: readonly { name: string; replacement: string; address: string; kind: string }[];
  readonly dependsOn: readonly string[];
  readonly appliedAt: string;
  readonly by: { readonly pid: number; readonly uid: number | undefined };
}

/** Code mappings whose patch was reverted while a thread might still return into them. */
export interface RetiredMapping extends JournalMapping {
  readonly patch: string;
  readonly reason: string;
}

export interface Journal {
  readonly pid: number;
  readonly key: string;
  readonly exe: string;
  patches: JournalPatch[];
  retired: RetiredMapping[];
}

function journalPath(key: string): string {
  return join(stateDir(), `${key}.json`);
}

/**
 * Remove journals and locks of processes that have ended: their patches died with them. A file is
 * stale when no process has its PID with the same start time (a reused PID has another).
 */
export function removeStaleJournals(): number {
  let removed = 0;
  const dir = stateDir();
  for (const name of readdirSync(dir)) {
    const m = /^(\d+)-(\d+)\.(json|lock|trace\.json)$/.exec(name);
    if (m === null) continue;
    let live = false;
    try {
      live = processKey(Number(m[1])) === `${m[1]}-${m[2]}`;
    } catch {}
    if (live) continue;
    try {
      unlinkSync(join(dir, name));
      removed++;
    } catch {}
  }
  return removed;
}

function executableOf(pid: number): string {
  try {
    return readlinkSync(`/proc/${pid}/exe`);
  } catch {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0")[0] ?? "";
    } catch {
      return "";
    }
  }
}

let sweepOnLoad = true;

/**
 * Run `work` with loadJournal's sweep of stale journals turned off (graft apply --all-of sweeps once
 * up front: each sweep reads /proc/PID/stat of every journal in the folder, so a sweep at each of a
 * thousand loads would cost a million reads).
 */
export function withoutStaleSweep<T>(work: () => T): T {
  const was = sweepOnLoad;
  sweepOnLoad = false;
  try {
    return work();
  } finally {
    sweepOnLoad = was;
  }
}

/** The journal of process `pid` (empty when graft never touched it). */
export function loadJournal(pid: number): Journal {
  const key = processKey(pid);
  if (sweepOnLoad) removeStaleJournals();
  let text: string;
  try {
    text = readFileSync(journalPath(key), "utf8");
  } catch {
    return { pid, key, exe: executableOf(pid), patches: [], retired: [] };
  }
  try {
    const j = JSON.parse(text) as Journal;
    return { ...j, exe: executableOf(pid), retired: j.retired ?? [] };
  } catch {
    throw new GraftError("PATCH_CORRUPT", `journal ${journalPath(key)} is not valid JSON`, {
      subject: `pid ${pid}`,
      hint: "inspect it by hand; graft status cannot trust it",
    });
  }
}

/**
 * Durably replace the journal: write a temp file, fsync it, rename over the old one, fsync the
 * directory. After this returns the new state survives a crash of graft (and of the machine).
 */
export function saveJournal(journal: Journal): void {
  const path = journalPath(journal.key);
  if (journal.patches.length === 0 && journal.retired.length === 0) {
    try {
      unlinkSync(path);
    } catch {}
    syncFolder(stateDir());
    return;
  }
  writeFileDurably(path, `${JSON.stringify(journal, null, 2)}\n`);
}
