import { describe, expect, it } from "vitest";
import { findFreeRegionNear } from "./free-region.js";
import { parseMaps, readMaps } from "./maps.js";
import { findModule, listModules } from "./modules.js";

const GiB = 1n << 30n;

const SAMPLE = parseMaps(`555555554000-555555556000 r--p 00000000 08:01 10        /opt/app
555555556000-555555558000 r-xp 00002000 08:01 10        /opt/app
555555558000-55555555a000 rw-p 00004000 08:01 10        /opt/app
55555555a000-55555557b000 rw-p 00000000 00:00 0         [heap]
7ffff7d80000-7ffff7da8000 r--p 00000000 08:01 20        /lib/libc.so.6
7ffff7da8000-7ffff7f3d000 r-xp 00028000 08:01 20        /lib/libc.so.6
7ffff7f3d000-7ffff7f95000 r--p 001bd000 08:01 20        /lib/libc.so.6
7ffffffde000-7ffffffff000 rw-p 00000000 00:00 0         [stack]
`);

function overlaps(a: { start: bigint; end: bigint }, b: { start: bigint; end: bigint }): boolean {
  return a.start < b.end && b.start < a.end;
}

describe("findFreeRegionNear", () => {
  it("puts the region just below the executable, away from the heap's brk room", () => {
    const app = { start: 0x555555554000n, end: 0x55555555a000n };
    const region = findFreeRegionNear(SAMPLE, app, 0x3000n);
    expect(region).toEqual({ start: 0x555555551000n, end: 0x555555554000n });
  });

  it("rounds the size up to whole pages and never overlaps a mapping", () => {
    const libc = { start: 0x7ffff7d80000n, end: 0x7ffff7f95000n };
    const region = findFreeRegionNear(SAMPLE, libc, 10n);
    expect(region).toEqual({ start: 0x7ffff7d7f000n, end: 0x7ffff7d80000n });
    for (const m of SAMPLE) if (region !== undefined) expect(overlaps(region, m)).toBe(false);
  });

  it("keeps every byte of the region within rel32 reach of every byte of the module", () => {
    // A module whose neighbourhood is full: holes only far away.
    const maps = parseMaps(`10000-40000000 rw-p 00000000 00:00 0
40000000-40001000 r-xp 00000000 08:01 5 /m
40001000-c0000000 rw-p 00000000 00:00 0
`);
    const module = { start: 0x40000000n, end: 0x40001000n };
    expect(findFreeRegionNear(maps, module, 0x1000n)).toBeUndefined();
    const region = findFreeRegionNear(maps, module, 0x1000n, { reach: 4n * GiB });
    expect(region).toEqual({ start: 0xc0000000n, end: 0xc0001000n });
  });

  it("stays out of the room below the stack", () => {
    const maps = parseMaps(`7ffff0000000-7ffff0001000 r-xp 00000000 08:01 5 /m
7ffff0001000-7ffff7000000 rw-p 00000000 00:00 0
7ffff8000000-7ffff8021000 rw-p 00000000 00:00 0 [stack]
`);
    const region = findFreeRegionNear(maps, 0x7ffff0000000n, 0x1000n);
    expect(region?.end).toBeLessThanOrEqual(0x7ffff0000000n);
  });

  it("finds room near libc in this process that no mapping overlaps", () => {
    const maps = readMaps(process.pid);
    const libc = findModule(listModules(maps), "libc.so.6");
    expect(libc).toBeDefined();
    if (libc === undefined) return;
    const region = findFreeRegionNear(maps, libc, 0x10000n);
    expect(region).toBeDefined();
    if (region === undefined) return;
    for (const m of maps) expect(overlaps(region, m)).toBe(false);
    expect(region.end - libc.start).toBeLessThanOrEqual(2n * GiB);
    expect(libc.end - region.start).toBeLessThanOrEqual(2n * GiB);
  });
});
