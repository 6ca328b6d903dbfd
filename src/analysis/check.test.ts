import { existsSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { buildFixture, run } from "../../test/support/fixtures.js";
import { x86_64 } from "../arch/index.js";
import { readElfFile } from "../formats/elf/elf-file.js";
import { checkElf } from "./check.js";

function stripped(flags: string[]): string {
  const built = buildFixture({
    compiler: "gcc",
    sources: ["gap.c"],
    flags: ["-O2", ...flags],
    output: "shared",
  });
  const out = `${built}.stripped`;
  if (!existsSync(out)) run("strip", ["--strip-all", "-o", out, built]);
  return out;
}

describe("checkElf", () => {
  it("warns about the sled record of a local function that lost its symbol instead of giving it to the next function", () => {
    // gap.c's static mix() and fold() come before the exported functions; stripped, their records
    // (each the address of the function's entry, M = 0) lie in the gap before gap_first.
    const report = checkElf(readElfFile(stripped(["-fpatchable-function-entry=2"])), x86_64);
    const orphans = report.warnings.filter((w) =>
      /__patchable_function_entries entry 0x[0-9a-f]+ belongs to no function/.test(w),
    );
    expect(orphans).toHaveLength(2);
    for (const f of report.functions) {
      const sled = f.sites.find((s) => s.kind === "sled");
      expect(sled?.address, f.name).toBe(f.address);
    }
  });

  it("finds the padding after code no symbol covers from the branch sweep, as a full decode would", () => {
    const report = checkElf(readElfFile(stripped([])), x86_64);
    const first = report.functions.find((f) => f.name === "gap_first")!;
    const hotpatch = first.sites.find((s) => s.kind === "hotpatch")!;
    // gcc aligns gap_first to 16 after fold()'s ret: some fill, never the whole long gap.
    expect(hotpatch.detail.kind === "hotpatch" && hotpatch.detail.padding).toBeGreaterThan(0);
    expect(hotpatch.detail.kind === "hotpatch" && hotpatch.detail.padding).toBeLessThan(16);
  });
});
