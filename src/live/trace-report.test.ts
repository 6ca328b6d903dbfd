import { describe, expect, it } from "vitest";
import { RECORD_KIND } from "../arch/trace-layout.js";
import { buildTraceReport } from "./trace-report.js";
import type { RecordVisitor, TracedFunction } from "./trace-session.js";

const fn = (fid: number, name: string): TracedFunction => ({
  fid,
  name,
  address: BigInt(0x1000 + fid * 16),
  kind: "sled",
  site: BigInt(0x1000 + fid * 16),
  args: false,
});
const functions = [fn(0, "main"), fn(1, "fib"), fn(2, "leaf")];
const E = RECORD_KIND.entry;
const X = RECORD_KIND.exit;
const U = RECORD_KIND.unwound;

function report(records: [number, number, number, number][]) {
  return buildTraceReport({
    pid: 1,
    functions,
    forEachRecord: (visit: RecordVisitor) => {
      for (const [tid, ticks, kind, fid] of records) visit(tid, ticks, kind, fid, 0, undefined);
      return 0;
    },
    ticksPerNs: 1,
    durationNs: 100,
    losses: { ringFull: 0, shadowFull: 0, noSlot: 0, unwound: 0, corrupt: 0 },
    trees: true,
  });
}

describe("buildTraceReport", () => {
  it("counts a recursive function's time once in its total and splits self time", () => {
    const r = report([
      [7, 0, E, 0],
      [7, 10, E, 1],
      [7, 20, E, 1],
      [7, 30, X, 1],
      [7, 50, X, 1],
      [7, 60, E, 2],
      [7, 65, X, 2],
      [7, 100, X, 0],
    ]);
    const by = Object.fromEntries(r.summary.map((s) => [s.name, s]));
    expect(by.fib).toMatchObject({ calls: 2, totalNs: 40, selfNs: 40 - 10 + 10 });
    expect(by.main).toMatchObject({ calls: 1, totalNs: 100, selfNs: 100 - 40 - 5 });
    expect(r.threads[0]!.roots[0]!.children.map((c) => c.name)).toEqual(["fib", "leaf"]);
  });

  it("closes frames left by longjmp and calls whose exit was lost, and ignores unmatched exits", () => {
    const r = report([
      [1, 0, E, 0],
      [1, 1, E, 1],
      [1, 2, E, 1],
      [1, 5, U, 1],
      [1, 5, U, 1],
      [1, 6, E, 2],
      [1, 9, X, 0],
      [1, 10, X, 2],
    ]);
    const main = r.threads[0]!.roots[0]!;
    expect(main.end).toBe(9);
    expect(main.children.map((c) => [c.name, c.unwound, c.end])).toEqual([
      ["fib", true, 5],
      ["leaf", true, 9],
    ]);
    expect(r.unmatchedExits).toBe(1);
  });
});
