import { readdirSync, readFileSync, readlinkSync, statSync } from "node:fs";
import { parseElf } from "../formats/elf/elf.js";

/** One process that maps the file looked for. */
export interface ProcessMappingFile {
  readonly pid: number;
  /** The path the kernel shows (ends in " (deleted)" when the file was deleted or replaced). */
  readonly path: string;
}

/**
 * Every process (but graft itself) that maps an ELF file with build-id `buildId`, ascending by PID.
 * Each mapping of file offset 0 is identified by its device, inode and path from /proc/PID/maps, and
 * the build-id of each distinct file is read once, through /proc/PID/map_files: that opens the very
 * file mapped, so a process still running a binary that was deleted or replaced on disk (an upgrade
 * under a running service) is found too. Processes that exit or cannot be read meanwhile are skipped.
 * `file`, when given, is a file with that build-id (graft apply --all-of's BIN): processes running it
 * are recognised by a stat of their executable alone.
 */
export function findProcessesMapping(buildId: string, file?: string): ProcessMappingFile[] {
  const ids = new Map<string, string | undefined>();
  const out: ProcessMappingFile[] = [];
  const known = file === undefined ? undefined : fileIdentity(file);
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    if (pid === process.pid) continue;
    // A process running `file` itself: one stat of /proc/PID/exe (which leads to the very file
    // mapped) says so, without reading and parsing its maps.
    if (known !== undefined && fileIdentity(`/proc/${pid}/exe`) === known) {
      const path = findExecutablePath(pid);
      if (path !== undefined) {
        out.push({ pid, path });
        continue;
      }
    }
    let maps: string;
    try {
      maps = readFileSync(`/proc/${pid}/maps`, "latin1");
    } catch {
      continue;
    }
    for (const line of maps.split("\n")) {
      // start-end perms offset dev inode path
      const m = /^([0-9a-f]+)-([0-9a-f]+) \S+ 0+ (\S+) (\d+)\s+(\/.*)$/.exec(line);
      if (m === null || m[4] === "0") continue;
      const key = `${m[3]} ${m[4]} ${m[5]}`;
      if (!ids.has(key)) ids.set(key, readBuildId(`/proc/${pid}/map_files/${m[1]}-${m[2]}`));
      if (ids.get(key) === buildId) {
        out.push({ pid, path: m[5]! });
        break;
      }
    }
  }
  return out;
}

/** Device, inode, size and modification time of a file (symbolic links followed). */
function fileIdentity(path: string): string | undefined {
  try {
    const st = statSync(path, { bigint: true });
    return `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}`;
  } catch {
    return undefined;
  }
}

/** The executable's path as /proc/PID/maps shows it (with " (deleted)" when it was). */
function findExecutablePath(pid: number): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/exe`);
  } catch {
    return undefined;
  }
}

function readBuildId(path: string): string | undefined {
  try {
    return parseElf(readFileSync(path), { file: path }).buildId();
  } catch {
    return undefined;
  }
}
