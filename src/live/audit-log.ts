import { closeSync, fstatSync, openSync, readFileSync, readlinkSync, readSync, writeSync } from "node:fs";
import { userInfo } from "node:os";
import { join } from "node:path";
import { GraftError, RefusedError } from "../core/errors.js";
import { stateDir } from "./state-dir.js";

/** What graft did, or tried to do, to a process. */
export type AuditAction = "apply" | "revert" | "callsite";

/** One line of the audit log. */
export interface AuditRecord {
  readonly time: string;
  readonly user: { readonly uid: number | undefined; readonly name: string | undefined };
  readonly graftPid: number;
  readonly target: { readonly pid: number; readonly exe: string; readonly buildId: string | undefined };
  readonly action: AuditAction;
  /** The patch applied or reverted, as far as it was read before the outcome. */
  readonly patch?: { readonly id?: string; readonly sha256?: string; readonly file?: string };
  /** Journal entries created or removed (patch ids, `callsite-…` ids). */
  readonly entries?: readonly string[];
  /** The signer's key id, when a signature was required. */
  readonly signedBy?: string;
  readonly result: "ok" | "refused" | "failed";
  readonly error?: { readonly code: string; readonly message: string };
}

/** What an operation learns along the way, for its audit line. */
export interface AuditNote {
  patch?: { id?: string; sha256?: string; file?: string };
  entries?: string[];
  signedBy?: string;
}

/** The audit log: $GRAFT_AUDIT_LOG (the CLI's --audit-log sets it), else `audit.log` in the state dir. */
export function auditLogPath(): string {
  return process.env.GRAFT_AUDIT_LOG ?? join(stateDir(), "audit.log");
}

// A line longer than this is cut: one write(2) of a line this short to an O_APPEND file is never
// interleaved with another writer's line (the inode lock covers the whole write on local filesystems).
const MAX_LINE = 4000;

/**
 * The build-id of the process's executable, from the first 64 KiB of /proc/PID/exe: linkers put the
 * `.note.gnu.build-id` note in the first page, and reading a 100 MB binary whole for one line is waste.
 * A note is namesz=4, descsz, type=NT_GNU_BUILD_ID (3), "GNU\0", desc [gABI "Note Section"].
 */
/**
 * Build-ids already read, by the file's identity: a fleet's thousand processes run one file, and a
 * running executable cannot be rewritten in place (ETXTBSY), so one scan serves them all.
 */
const buildIds = new Map<string, string | undefined>();

function executableBuildId(pid: number): string | undefined {
  let fd: number;
  try {
    fd = openSync(`/proc/${pid}/exe`, "r");
  } catch {
    return undefined;
  }
  try {
    const st = fstatSync(fd, { bigint: true });
    const key = `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
    if (buildIds.has(key)) return buildIds.get(key);
    const id = scanBuildId(fd);
    buildIds.set(key, id);
    return id;
  } finally {
    closeSync(fd);
  }
}

function scanBuildId(fd: number): string | undefined {
  const buf = Buffer.alloc(65536);
  const n = readSync(fd, buf, 0, buf.length, 0);
  for (let i = 0; i + 16 <= n; i += 4) {
    if (buf.readUInt32LE(i) !== 4 || buf.readUInt32LE(i + 8) !== 3) continue;
    if (buf.toString("latin1", i + 12, i + 16) !== "GNU\0") continue;
    const size = buf.readUInt32LE(i + 4);
    if (size < 8 || size > 64 || i + 16 + size > n) continue;
    return buf.toString("hex", i + 16, i + 16 + size);
  }
  return undefined;
}

let user: { uid: number | undefined; name: string | undefined } | undefined;

/** Who runs graft: looked up once (getpwuid reads the passwd database each time). */
function currentUser(): { uid: number | undefined; name: string | undefined } {
  user ??= { uid: process.getuid?.(), name: userName() };
  return user;
}

function userName(): string | undefined {
  try {
    return userInfo().username;
  } catch {
    return undefined; // a uid without a passwd entry (containers)
  }
}

function exeOf(pid: number): string {
  try {
    return readlinkSync(`/proc/${pid}/exe`);
  } catch {
    return "";
  }
}

/** The audit log, opened for appending; refuses (before any change) when it cannot be written. */
function openAuditLog(): { fd: number; path: string } {
  const path = auditLogPath();
  try {
    return { fd: openSync(path, "a", 0o600), path };
  } catch (e) {
    throw new GraftError(
      "FILE_UNREADABLE",
      `cannot open the audit log (${(e as NodeJS.ErrnoException).code})`,
      {
        subject: path,
        hint: "graft records every change it makes; fix the path or its permissions (--audit-log FILE, GRAFT_AUDIT_LOG)",
      },
    );
  }
}

/**
 * Run `operation` on process `pid` and append one JSON line saying who did what to which process and
 * how it ended — success, refusal or failure alike. The log is opened first, so an unwritable log
 * refuses before the process is touched; the line is one write(2) to an O_APPEND descriptor, so
 * concurrent grafts never interleave lines.
 */
export function audited<T>(
  action: AuditAction,
  pid: number,
  operation: (note: AuditNote) => T,
  summarize: (result: T, note: AuditNote) => void = () => {},
): T {
  const log = openAuditLog();
  const note: AuditNote = {};
  // Read before the operation: a process that dies in it still gets its exe and build-id recorded.
  const target = { pid, exe: exeOf(pid), buildId: executableBuildId(pid) };
  let outcome: Pick<AuditRecord, "result" | "error">;
  try {
    const result = operation(note);
    summarize(result, note);
    outcome = { result: "ok" };
    return result;
  } catch (e) {
    const code = e instanceof GraftError ? e.code : "INTERNAL";
    const refused = e instanceof RefusedError;
    outcome = {
      result: refused ? "refused" : "failed",
      error: { code, message: (e instanceof Error ? e.message : String(e)).slice(0, 1000) },
    };
    throw e;
  } finally {
    const record: AuditRecord = {
      time: new Date().toISOString(),
      user: currentUser(),
      graftPid: process.pid,
      target,
      action,
      ...(note.patch === undefined ? {} : { patch: note.patch }),
      ...(note.entries === undefined ? {} : { entries: note.entries }),
      ...(note.signedBy === undefined ? {} : { signedBy: note.signedBy }),
      ...outcome!,
    };
    let line = `${JSON.stringify(record)}\n`;
    if (line.length > MAX_LINE) line = `${JSON.stringify({ ...record, entries: undefined })}\n`;
    try {
      writeSync(log.fd, line);
    } catch (e) {
      process.emitWarning(`graft: could not write the audit log ${log.path}: ${(e as Error).message}`);
    } finally {
      closeSync(log.fd);
    }
  }
}

/** Every record of the audit log (oldest first); lines that do not parse are skipped. */
export function readAuditLog(path = auditLogPath()): AuditRecord[] {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch {
    return [];
  }
  const out: AuditRecord[] = [];
  for (const line of text.split("\n")) {
    if (line === "") continue;
    try {
      out.push(JSON.parse(line) as AuditRecord);
    } catch {}
  }
  return out;
}
