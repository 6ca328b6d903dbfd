import { createHash } from "node:crypto";
import { existsSync, mkdirSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { stateDir } from "./state-dir.js";

/** How graft's code files show in /proc/PID/maps (revert recognises its own mappings by it). */
export const CODE_FILE_PATTERN = /\/graft-code-[0-9a-f]{32}\.text( \(deleted\))?$/;

/**
 * The linked code of a patch as a file, named by its content, so that every process whose copy
 * would be byte-identical (same patch, same code placement relative to the module, the usual case
 * for many processes of one binary) maps the same file MAP_PRIVATE and shares its page-cache pages
 * instead of each holding a private copy. Written once (temp file + rename), never changed: a
 * process that has it mapped keeps exactly these bytes. World-readable (the code is no secret)
 * so a target running as another user can open it; the folder `code/` of the state dir.
 */
export function sharedCodeFile(text: Uint8Array): string {
  // A fleet links the same bytes for process after process: the file made last is checked first.
  if (
    last !== undefined &&
    last.dir === stateDir() &&
    Buffer.from(text).equals(last.text) &&
    existsSync(last.path)
  )
    return last.path;
  const path = makeCodeFile(text);
  last = { dir: stateDir(), text: Uint8Array.from(text), path };
  return path;
}

let last: { dir: string; text: Uint8Array; path: string } | undefined;

function makeCodeFile(text: Uint8Array): string {
  const dir = join(stateDir(), "code");
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const path = join(dir, `graft-code-${createHash("sha256").update(text).digest("hex").slice(0, 32)}.text`);
  if (!existsSync(path)) {
    const tmp = `${path}.tmp${process.pid}`;
    writeFileSync(tmp, text, { mode: 0o444 });
    renameSync(tmp, path);
  }
  return path;
}
