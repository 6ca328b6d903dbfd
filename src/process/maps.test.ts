import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import type { GraftError } from "../core/errors.js";
import { findMapping, formatPerms, parseMaps, readMaps } from "./maps.js";

const SAMPLE = `55d0c8a00000-55d0c8a01000 r--p 00000000 08:01 1234567                    /usr/bin/my prog
55d0c8a01000-55d0c8a02000 r-xp 00001000 08:01 1234567                    /usr/bin/my prog
7f1e2c000000-7f1e2c021000 rw-p 00000000 00:00 0 
7f1e2d000000-7f1e2d028000 r--p 00000000 fd:00 42                         /usr/lib/x86_64-linux-gnu/libfoo.so.1 (deleted)
7f1e2d100000-7f1e2d101000 rw-s 00000000 00:05 98                         /dev/zero (deleted)
7ffd6e5f2000-7ffd6e613000 rw-p 00000000 00:00 0                          [stack]
7ffd6e7e1000-7ffd6e7e3000 r-xp 00000000 00:00 0                          [vdso]
ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]
`;

describe("parseMaps", () => {
  it("parses addresses, perms, offset, device, inode and paths with spaces", () => {
    const maps = parseMaps(SAMPLE);
    expect(maps).toHaveLength(8);
    expect(maps[1]).toEqual({
      start: 0x55d0c8a01000n,
      end: 0x55d0c8a02000n,
      perms: { r: true, w: false, x: true, p: true },
      offset: 0x1000n,
      dev: "08:01",
      inode: 1234567n,
      path: "/usr/bin/my prog",
      deleted: false,
    });
    expect(maps[2]?.path).toBe("");
    expect(maps[7]?.start).toBe(0xffffffffff600000n);
  });

  it("strips the (deleted) mark into a flag", () => {
    const maps = parseMaps(SAMPLE);
    expect(maps[3]).toMatchObject({ path: "/usr/lib/x86_64-linux-gnu/libfoo.so.1", deleted: true });
    expect(maps[4]).toMatchObject({ path: "/dev/zero", deleted: true, perms: { p: false } });
  });

  it("reports lines it cannot parse and keeps going", () => {
    const warnings: string[] = [];
    const maps = parseMaps(`garbage\n${SAMPLE}`, (w) => warnings.push(w));
    expect(maps).toHaveLength(8);
    expect(warnings).toEqual(["unparsed maps line: garbage"]);
  });

  it("round-trips perms through formatPerms", () => {
    expect(parseMaps(SAMPLE).map((m) => formatPerms(m.perms))).toEqual(
      SAMPLE.trim()
        .split("\n")
        .map((l) => l.split(/\s+/)[1]),
    );
  });
});

describe("readMaps", () => {
  it("reads one record per line of this process's maps, and finds the mapping of an address", () => {
    const text = readFileSync("/proc/self/maps", "utf8");
    const maps = readMaps(process.pid);
    // Node may map or unmap memory between the two reads; the counts stay close.
    expect(Math.abs(maps.length - text.trim().split("\n").length)).toBeLessThan(16);
    const stack = maps.find((m) => m.path === "[stack]");
    expect(stack).toBeDefined();
    if (stack !== undefined) expect(findMapping(maps, stack.start + 8n)).toBe(stack);
    expect(findMapping(maps, 0n)).toBeUndefined();
  });

  it("throws NO_SUCH_PROCESS for a PID that does not exist", () => {
    let code: string | undefined;
    try {
      readMaps(0x7ffffffe);
    } catch (error) {
      code = (error as GraftError).code;
    }
    expect(code).toBe("NO_SUCH_PROCESS");
  });
});
