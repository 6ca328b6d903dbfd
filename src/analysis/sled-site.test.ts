import { describe, expect, it } from "vitest";
import { buildFixture } from "../../test/support/fixtures.js";
import { x86_64 } from "../arch/index.js";
import { readElfFile } from "../formats/elf/elf-file.js";
import { checkElf } from "./check.js";

describe("findSledSite", () => {
  // gcc -fpatchable-function-entry=2 leaves two 1-byte NOPs at each entry and nothing before it.
  const report = checkElf(
    readElfFile(
      buildFixture({
        compiler: "gcc",
        sources: ["sites.c"],
        flags: ["-O2", "-fpatchable-function-entry=2"],
        output: "exe",
      }),
    ),
    x86_64,
  );
  const sleds = report.functions.flatMap((f) =>
    f.sites.filter((s) => s.kind === "sled").map((s) => ({ f, s })),
  );

  it("takes the far jump of a 2-byte sled in the alignment padding before the entry", () => {
    const withPadding = sleds.filter(
      ({ f, s }) =>
        s.detail.kind === "sled" &&
        s.detail.after < 5 &&
        f.sites.find((x) => x.kind === "hotpatch")!.detail.kind === "hotpatch" &&
        (f.sites.find((x) => x.kind === "hotpatch")!.detail as { padding: number }).padding >= 5,
    );
    expect(withPadding.length).toBeGreaterThan(3);
    for (const { f, s } of withPadding) {
      expect(s.problems, f.name).toEqual([]);
      expect(
        s.writes.map((w) => w.role),
        f.name,
      ).toEqual(["far", "entry"]);
      expect(s.writes[0]!.address + BigInt(s.writes[0]!.room), f.name).toBe(f.address);
      expect(f.verdict.best, f.name).toBe("sled");
    }
  });

  it("calls a 2-byte sled without padding before it too small, and says how much padding there is", () => {
    const bare = sleds.filter(
      ({ f, s }) =>
        s.detail.kind === "sled" &&
        s.detail.after < 5 &&
        (f.sites.find((x) => x.kind === "hotpatch")!.detail as { padding: number }).padding < 5,
    );
    expect(bare.length).toBeGreaterThan(0);
    for (const { f, s } of bare) {
      expect(s.problems.join("; "), f.name).toMatch(
        /sled too small to redirect: 0 NOP byte\(s\) before and 2 after the entry, \d byte\(s\) of free padding/,
      );
      expect(f.verdict.best, f.name).not.toBe("sled");
    }
  });
});
