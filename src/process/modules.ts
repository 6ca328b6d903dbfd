/**
 * Loaded modules: all mappings of one file, grouped. The dynamic loader maps each PT_LOAD of an
 * ELF separately (ld.so `_dl_map_segments`), so one executable or library shows as 2–5 lines of
 * /proc/PID/maps with the same device, inode and path.
 */
import type { Mapping } from "./maps.js";

/** One file mapped into the process. */
export interface Module {
  /** The file path as the kernel prints it. */
  readonly path: string;
  readonly dev: string;
  readonly inode: bigint;
  /** The file was deleted or replaced after it was loaded (a package upgrade under a running process). */
  readonly deleted: boolean;
  /** Its mappings, ascending by address. */
  readonly mappings: readonly Mapping[];
  /** Lowest start of its mappings. */
  readonly start: bigint;
  /** Highest end of its mappings. */
  readonly end: bigint;
  /**
   * The lowest mapping of file offset 0 — the ELF header — or undefined when none maps offset 0.
   * The load bias is `base.start − (p_vaddr of the first PT_LOAD, page-aligned)`; the caller
   * computes it with the ELF (formats/elf/load-bias.ts).
   */
  readonly base: Mapping | undefined;
}

/**
 * Group file-backed mappings into modules (by dev + inode + path), in address order of their
 * first mapping. Anonymous memory and pseudo-files (`[heap]`, `[vdso]`, …) are not modules;
 * the .bss tail of a module is anonymous and is not included either.
 */
export function listModules(maps: readonly Mapping[]): Module[] {
  const groups = new Map<string, Mapping[]>();
  for (const m of maps) {
    if (m.path === "" || m.path.startsWith("[") || m.inode === 0n) continue;
    const key = `${m.dev}\0${m.inode}\0${m.path}`;
    const list = groups.get(key);
    if (list === undefined) groups.set(key, [m]);
    else list.push(m);
  }
  const modules: Module[] = [];
  for (const list of groups.values()) {
    list.sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
    const first = list[0]!;
    let end = first.end;
    for (const m of list) if (m.end > end) end = m.end;
    modules.push({
      path: first.path,
      dev: first.dev,
      inode: first.inode,
      deleted: list.some((m) => m.deleted),
      mappings: list,
      start: first.start,
      end,
      base: list.find((m) => m.offset === 0n),
    });
  }
  return modules.sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
}

/** The module whose path is `path` or ends with `/path`, or undefined. */
export function findModule(modules: readonly Module[], path: string): Module | undefined {
  return modules.find((m) => m.path === path) ?? modules.find((m) => m.path.endsWith(`/${path}`));
}

/** The module that maps `addr`, or undefined. */
export function findModuleAt(modules: readonly Module[], addr: bigint): Module | undefined {
  return modules.find((m) => m.mappings.some((x) => x.start <= addr && addr < x.end));
}
