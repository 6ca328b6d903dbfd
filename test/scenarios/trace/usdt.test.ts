/**
 * `graft trace --usdt`: every hit of the sys/sdt.h fixture's probes (test/fixtures/usdt.c) with its
 * arguments decoded from the note's spec — registers at -O2, frame-relative memory at -O0 — and the
 * semaphore-guarded `request` probe firing only because graft raised its semaphore.
 */
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { buildFixture, type Compiler, type OutputKind, run } from "../../support/fixtures.js";
import { ensureBuilt, runGraft } from "../../support/graft-cli.js";

const dir = mkdtempSync(join(tmpdir(), "graft-usdt-"));
beforeAll(() => ensureBuilt());

describe.each<[Compiler, OutputKind, string]>([
  ["gcc", "pie", "-O2"],
  ["gcc", "exe", "-O0"],
  ["clang", "pie", "-O0"],
  ["clang", "exe", "-O2"],
])("graft trace --usdt, %s %s %s", (compiler, output, opt) => {
  const exe = buildFixture({ compiler, sources: ["usdt.c"], flags: [opt], output });

  it("records each probe hit with its arguments, and enables the guarded probe through its semaphore", () => {
    expect(run(exe, []).trim()).toBe("303");
    const events = join(dir, `${compiler}-${output}${opt}.jsonl`);
    const r = runGraft(["trace", "--usdt", "graft_test:*", "--format", "json", "-o", events, "--", exe], {
      GRAFT_STATE_DIR: dir,
    });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.split("\n")[0]).toBe("303");
    const hits = readFileSync(events, "utf8")
      .split("\n")
      .filter((l) => l !== "")
      .map((l) => JSON.parse(l) as { name: string; args: string[] });
    expect(hits.map((h) => `${h.name}(${h.args.join(",")})`)).toEqual([
      "start(0,0)",
      "request(0)",
      "start(1,100)",
      "request(1)",
      "start(2,200)",
      "request(2)",
      "done()",
    ]);
    expect(r.stdout).toMatch(/ 3 {2}graft_test:request {2}\(-4@/);
  });
});
