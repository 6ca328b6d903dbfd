/**
 * /proc/PID/maps as typed records. Format, proc(5): `start-end perms offset dev inode path`, with
 * hex addresses and offset, perms `rwxp`/`rwxs`, dev `major:minor` in hex, and a path that may hold
 * spaces, be a pseudo-name (`[heap]`, `[stack]`, `[vdso]`, `[vvar]`, `[anon:name]`) or end in
 * ` (deleted)` when the file was unlinked after being mapped.
 */
import { readFileSync } from "node:fs";
import { ProcessError } from "../core/errors.js";

/** The permission column of one mapping. */
export interface MappingPerms {
  readonly r: boolean;
  readonly w: boolean;
  readonly x: boolean;
  /** True for a private (copy-on-write) mapping, false for shared (`s`). */
  readonly p: boolean;
}

/** One line of /proc/PID/maps. */
export interface Mapping {
  readonly start: bigint;
  /** One past the last byte. */
  readonly end: bigint;
  readonly perms: MappingPerms;
  /** File offset of `start` (0 for anonymous mappings). */
  readonly offset: bigint;
  /** Device as printed, `major:minor` in hex. */
  readonly dev: string;
  readonly inode: bigint;
  /** File path or pseudo-name without the ` (deleted)` mark; "" for anonymous memory. */
  readonly path: string;
  /** The file was deleted (or replaced) after it was mapped. */
  readonly deleted: boolean;
}

const LINE =
  /^([0-9a-f]+)-([0-9a-f]+) ([r-])([w-])([x-])([ps]) ([0-9a-f]+) ([0-9a-f]+:[0-9a-f]+) (\d+)\s*(.*)$/;
const DELETED = " (deleted)";

/** Parse the text of a maps file; lines that do not match the format are passed to `onWarning`. */
export function parseMaps(text: string, onWarning?: (message: string) => void): Mapping[] {
  const out: Mapping[] = [];
  for (const line of text.split("\n")) {
    if (line === "") continue;
    const m = LINE.exec(line);
    if (m === null) {
      onWarning?.(`unparsed maps line: ${line}`);
      continue;
    }
    let path = m[10] ?? "";
    const deleted = path.endsWith(DELETED);
    if (deleted) path = path.slice(0, -DELETED.length);
    out.push({
      start: BigInt(`0x${m[1]}`),
      end: BigInt(`0x${m[2]}`),
      perms: { r: m[3] === "r", w: m[4] === "w", x: m[5] === "x", p: m[6] === "p" },
      offset: BigInt(`0x${m[7]}`),
      dev: m[8] ?? "",
      inode: BigInt(m[9] ?? "0"),
      path,
      deleted,
    });
  }
  return out;
}

/** Read and parse /proc/PID/maps; throws NO_SUCH_PROCESS or PERMISSION_DENIED. */
export function readMaps(pid: number, onWarning?: (message: string) => void): Mapping[] {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/maps`, "utf8");
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ESRCH") {
      throw new ProcessError("NO_SUCH_PROCESS", `no process ${pid}`, { pid, op: "read maps" });
    }
    throw new ProcessError("PERMISSION_DENIED", `cannot read /proc/${pid}/maps: ${code}`, {
      pid,
      op: "read maps",
    });
  }
  return parseMaps(text, onWarning);
}

/** The mapping that contains `addr`, or undefined. */
export function findMapping(maps: readonly Mapping[], addr: bigint): Mapping | undefined {
  return maps.find((m) => m.start <= addr && addr < m.end);
}

/** `r-xp`-style rendering of a perms record. */
export function formatPerms(perms: MappingPerms): string {
  return `${perms.r ? "r" : "-"}${perms.w ? "w" : "-"}${perms.x ? "x" : "-"}${perms.p ? "p" : "s"}`;
}
