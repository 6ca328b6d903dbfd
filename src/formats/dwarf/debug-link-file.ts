import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { crc32 } from "node:zlib";
import type { Elf } from "../elf/elf.js";
import { type ParseElfOptions, parseElf } from "../elf/elf.js";

/** Where distributions install detached debug info (Debian's -dbg/-dbgsym, Fedora's -debuginfo). */
const DEBUG_ROOT = "/usr/lib/debug";

/**
 * The separate debug file of a stripped ELF file, the way gdb looks for it
 * [gdb "Separate Debug Files"]: by build-id (`/usr/lib/debug/.build-id/ab/cdef….debug`), then by
 * `.gnu_debuglink` name next to the file, in its `.debug/` folder and under `/usr/lib/debug/<dir>/`.
 * A candidate counts only when its build-id matches (or, without one, the debuglink CRC32 does).
 */
export function findSeparateDebugFile(elf: Elf, path: string, root = DEBUG_ROOT): string | undefined {
  const id = elf.buildId();
  const candidates: string[] = [];
  if (id !== undefined && id.length > 2)
    candidates.push(join(root, ".build-id", id.slice(0, 2), `${id.slice(2)}.debug`));
  const link = debugLink(elf);
  if (link !== undefined) {
    const dir = dirname(path);
    candidates.push(join(dir, link.name), join(dir, ".debug", link.name), join(root, dir, link.name));
  }
  for (const c of candidates) {
    if (c === path || !existsSync(c)) continue;
    let bytes: Uint8Array;
    try {
      bytes = readFileSync(c);
    } catch {
      continue;
    }
    if (id !== undefined) {
      try {
        if (parseElf(bytes).buildId() === id) return c;
      } catch {
        // not an ELF file: not the one
      }
    } else if (link !== undefined && crc32(bytes) === link.crc) return c;
  }
  return undefined;
}

/** `.gnu_debuglink`: a file name, NUL, padding to 4, then the CRC32 of the debug file. */
function debugLink(elf: Elf): { name: string; crc: number } | undefined {
  const s = elf.findSection(".gnu_debuglink");
  if (s === undefined) return undefined;
  const bytes = elf.sectionBytes(s);
  const nul = bytes.indexOf(0);
  if (nul <= 0) return undefined;
  const crcAt = (nul + 4) & ~3;
  if (crcAt + 4 > bytes.length) return undefined;
  const crc = new DataView(bytes.buffer, bytes.byteOffset + crcAt, 4).getUint32(0, true);
  return { name: new TextDecoder().decode(bytes.subarray(0, nul)), crc };
}

/** Read `path` for its symbols and, when it has no DWARF of its own, its separate debug file too. */
export function readWithDebugFile(
  elf: Elf,
  options: Omit<ParseElfOptions, "file"> = {},
): { debugElf: Elf | undefined; debugFile: string | undefined } {
  if (elf.file === undefined || elf.findSection(".debug_info") !== undefined)
    return { debugElf: undefined, debugFile: undefined };
  const debugFile = findSeparateDebugFile(elf, elf.file);
  if (debugFile === undefined) return { debugElf: undefined, debugFile: undefined };
  return { debugElf: parseElf(readFileSync(debugFile), { ...options, file: debugFile }), debugFile };
}
