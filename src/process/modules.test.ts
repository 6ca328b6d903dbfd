import { realpathSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parseMaps, readMaps } from "./maps.js";
import { findModule, findModuleAt, listModules } from "./modules.js";

const SAMPLE = `400000-401000 r--p 00000000 08:01 10                                 /opt/app
401000-402000 r-xp 00001000 08:01 10                                 /opt/app
402000-403000 rw-p 00002000 08:01 10                                 /opt/app
403000-404000 rw-p 00000000 00:00 0                                  [heap]
7f0000000000-7f0000028000 r--p 00000000 08:01 20                     /lib/libc.so.6
7f0000028000-7f00001bd000 r-xp 00028000 08:01 20                     /lib/libc.so.6
7f00001bd000-7f0000215000 r--p 001bd000 08:01 20                     /lib/libc.so.6
7f0000215000-7f0000219000 rw-p 00214000 08:01 20                     /lib/libc.so.6
7f0000219000-7f0000226000 rw-p 00000000 00:00 0 
7ffd00000000-7ffd00002000 r-xp 00000000 00:00 0                      [vdso]
`;

describe("listModules", () => {
  it("groups the mappings of each file and skips anonymous memory and pseudo-files", () => {
    const modules = listModules(parseMaps(SAMPLE));
    expect(modules.map((m) => m.path)).toEqual(["/opt/app", "/lib/libc.so.6"]);
    const libc = modules[1];
    expect(libc?.mappings).toHaveLength(4);
    expect(libc?.start).toBe(0x7f0000000000n);
    expect(libc?.end).toBe(0x7f0000219000n);
    expect(libc?.base?.start).toBe(0x7f0000000000n);
  });

  it("finds a module by full path, by file name and by address", () => {
    const modules = listModules(parseMaps(SAMPLE));
    expect(findModule(modules, "/opt/app")?.start).toBe(0x400000n);
    expect(findModule(modules, "libc.so.6")?.path).toBe("/lib/libc.so.6");
    expect(findModule(modules, "bc.so.6")).toBeUndefined();
    expect(findModuleAt(modules, 0x7f0000030000n)?.path).toBe("/lib/libc.so.6");
    expect(findModuleAt(modules, 0x403800n)).toBeUndefined();
  });

  it("lists node's own executable and libc in this process, each with its offset-0 mapping", () => {
    const modules = listModules(readMaps(process.pid));
    const node = findModule(modules, realpathSync(process.execPath));
    expect(node?.base?.offset).toBe(0n);
    expect(node?.base?.start).toBe(node?.start);
    expect(findModule(modules, "libc.so.6")?.base).toBeDefined();
  });
});
